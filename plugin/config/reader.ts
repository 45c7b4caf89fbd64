// Reads one JSON object of a config file, collecting problems instead of throwing: every
// problem names its key path ("limits.maxShareBytes: ..."), and keys never asked about are
// reported as unknown. Used by the service's config and by each backend for its own keys.
import { isAbsolute } from 'node:path';
import { isObject, type PlainObject } from '../model/object';
import { parseQuantityBytes } from '../model/quantity';
import { quotedName } from '../model/printable';
import { messageOf } from '../model/errors';

/** A short description of a value for a problem message. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Collects problems while reading one object; keys it never asked about are reported as unknown. */
export class ConfigReader {
  private readonly seen = new Set<string>();
  constructor(
    private readonly obj: PlainObject,
    private readonly path: string,
    private readonly problems: string[],
  ) {}

  key(k: string): string {
    return this.path ? `${this.path}.${k}` : k;
  }

  problem(k: string, msg: string): void {
    this.problems.push(`${this.key(k)}: ${msg}`);
  }

  has(k: string): boolean {
    this.seen.add(k);
    return Object.prototype.hasOwnProperty.call(this.obj, k);
  }

  /** every key present, read or not */
  keys(): string[] {
    return Object.keys(this.obj);
  }

  raw(k: string): unknown {
    return this.has(k) ? this.obj[k] : undefined;
  }

  /**
   * A key whose value `parse` turns into a T (undefined: not `expected`), then `check` may refuse;
   * either way a problem naming the key and the default, so one bad key never stops the rest.
   */
  parsed<T>(k: string, def: T, expected: string, parse: (v: unknown) => T | undefined, check?: (v: T) => string | undefined): T {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    const value = parse(v);
    if (value === undefined) {
      this.problem(k, `must be ${expected}, got ${describe(v)}`);
      return def;
    }
    const why = check?.(value);
    if (why) {
      this.problem(k, why);
      return def;
    }
    return value;
  }

  string(k: string, def: string, check?: (v: string) => string | undefined): string {
    return this.parsed(k, def, 'a string', (v) => (typeof v === 'string' ? v : undefined), check);
  }

  /** One of a fixed set of strings. */
  oneOf<T extends string>(k: string, def: T, allowed: readonly T[]): T {
    return this.string(k, def, (v) =>
      (allowed as readonly string[]).includes(v) ? undefined : `must be one of ${allowed.join(', ')}, got ${describe(v)}`) as T;
  }

  path_(k: string, def: string): string {
    return this.string(k, def, (v) => (isAbsolute(v) ? undefined : `must be an absolute path, got ${describe(v)}`));
  }

  boolean(k: string, def: boolean): boolean {
    return this.parsed(k, def, 'true or false', (v) => (typeof v === 'boolean' ? v : undefined));
  }

  /** A positive byte count: a number, or a Kubernetes quantity string such as "512Gi". */
  bytes(k: string, def: number): number {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v <= 0) {
        this.problem(k, `must be a positive integer number of bytes or a quantity like "512Gi", got ${describe(v)}`);
        return def;
      }
      return v;
    }
    if (typeof v === 'string') {
      try {
        const n = parseQuantityBytes(v);
        if (n > 0) return n;
        this.problem(k, `must be more than 0 bytes, got ${describe(v)}`);
      } catch (err) {
        this.problem(k, messageOf(err));
      }
      return def;
    }
    this.problem(k, `must be a positive integer number of bytes or a quantity like "512Gi", got ${describe(v)}`);
    return def;
  }

  integer(k: string, def: number, min: number, max: number): number {
    const inRange = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : undefined);
    return this.parsed(k, def, `an integer from ${min} to ${max}`, inRange);
  }

  /** A nested object; undefined (and a problem) when present but not an object. */
  object(k: string): ConfigReader | undefined {
    if (!this.has(k)) return undefined;
    const v = this.obj[k];
    if (!isObject(v)) {
      this.problem(k, `must be an object, got ${describe(v)}`);
      return undefined;
    }
    return new ConfigReader(v, this.key(k), this.problems);
  }

  /** Report every key that was not read, with the nearest known key when one is close. */
  done(): void {
    for (const k of Object.keys(this.obj)) {
      if (this.seen.has(k)) continue;
      const near = nearest(k, [...this.seen]);
      // the file's own key, not one this code asked about: quoted and escaped unless a plain name
      this.problems.push(`${this.key(quotedName(k))}: unknown key${near ? ` (did you mean ${JSON.stringify(this.key(near))}?)` : ''}`);
    }
  }
}

/**
 * The known key closest to a mistyped one, if it is close enough to be the likely intent: case
 * ignored, at most a third of the key's letters (and at least 2) inserted, deleted or changed.
 */
export function nearest(typed: string, known: readonly string[]): string | undefined {
  const t = typed.toLowerCase();
  let best: string | undefined;
  let bestCost = Math.max(2, Math.floor(t.length / 3)) + 1;
  for (const k of known) {
    const cost = editDistance(t, k.toLowerCase(), bestCost);
    if (cost < bestCost) [best, bestCost] = [k, cost];
  }
  return best;
}

/** Levenshtein distance, giving up (returning `limit`) once it must reach `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      rowMin = Math.min(rowMin, cur[j]);
    }
    if (rowMin >= limit) return limit;
    prev = cur;
  }
  return Math.min(prev[b.length], limit);
}

