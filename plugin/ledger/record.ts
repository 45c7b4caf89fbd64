// The ownership record: which container of which pod holds which share on this node.

export type BindingState = 'bound' | 'released';

export interface BindingRecord {
  share: { namespace: string; name: string };
  pod: { namespace: string; name: string; uid: string; sandboxId: string };
  container: { id: string; name: string };
  readOnly: boolean;
  state: BindingState;
  /** epoch milliseconds */
  createdAt: number;
  /** epoch milliseconds */
  updatedAt: number;
  /** why the binding ended; only on released records */
  endReason?: string;
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `v` is not a well-formed BindingRecord, or undefined if it is. */
export function recordProblem(v: unknown): string | undefined {
  if (!isObj(v)) return 'is not an object';
  const { share, pod, container } = v;
  if (!isObj(share) || !isStr(share.namespace) || !isStr(share.name) || !share.namespace || !share.name) {
    return 'share must have non-empty string namespace and name';
  }
  if (!isObj(pod) || !isStr(pod.namespace) || !isStr(pod.name) || !isStr(pod.uid) || !isStr(pod.sandboxId)) {
    return 'pod must have string namespace, name, uid and sandboxId';
  }
  if (!isObj(container) || !isStr(container.id) || !isStr(container.name) || !container.id) {
    return 'container must have a non-empty string id and a string name';
  }
  if (typeof v.readOnly !== 'boolean') return 'readOnly must be a boolean';
  if (v.state !== 'bound' && v.state !== 'released') return 'state must be "bound" or "released"';
  if (!Number.isFinite(v.createdAt) || !Number.isFinite(v.updatedAt)) return 'createdAt and updatedAt must be numbers';
  if (v.endReason !== undefined && !isStr(v.endReason)) return 'endReason must be a string';
  return undefined;
}

/** A frozen copy holding only the record's own fields (nothing extra from the caller). */
export function freezeRecord(r: BindingRecord): Readonly<BindingRecord> {
  const out: BindingRecord = {
    share: Object.freeze({ namespace: r.share.namespace, name: r.share.name }),
    pod: Object.freeze({ namespace: r.pod.namespace, name: r.pod.name, uid: r.pod.uid, sandboxId: r.pod.sandboxId }),
    container: Object.freeze({ id: r.container.id, name: r.container.name }),
    readOnly: r.readOnly,
    state: r.state,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.endReason !== undefined) out.endReason = r.endReason;
  return Object.freeze(out);
}
