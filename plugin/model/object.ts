// Plain-object checks for parsed JSON and YAML (declarations, config, records, API answers).

export type PlainObject = Record<string, unknown>;

/** True for a non-null, non-array object. */
export function isObject(v: unknown): v is PlainObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
