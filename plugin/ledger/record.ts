// The ownership records: which container of which pod holds which share on this node
// (BindingRecord), and which ResourceClaim prepared through the DRA front door does (ClaimRecord).
import { dnsLabelProblem, isObject, type HandleValue, type ShareHandle } from '../model';

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

/**
 * Why a share's namespace or name read back from disk is not usable, or undefined. Host paths and
 * SDK names are built from these, so a record edited (or damaged) into "../x" must never reach them.
 */
function shareNamesProblem(what: string, namespace: string, name: string): string | undefined {
  const ns = dnsLabelProblem(namespace);
  if (ns) return `${what} namespace ${JSON.stringify(namespace.slice(0, 80))} ${ns}`;
  const n = dnsLabelProblem(name);
  if (n) return `${what} name ${JSON.stringify(name.slice(0, 80))} ${n}`;
  return undefined;
}

/** Why `v` is not a well-formed BindingRecord, or undefined if it is. */
export function recordProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'is not an object';
  const { share, pod, container } = v;
  if (!isObject(share) || !isStr(share.namespace) || !isStr(share.name) || !share.namespace || !share.name) {
    return 'share must have non-empty string namespace and name';
  }
  const names = shareNamesProblem('share', share.namespace, share.name);
  if (names) return names;
  if (!isObject(pod) || !isStr(pod.namespace) || !isStr(pod.name) || !isStr(pod.uid) || !isStr(pod.sandboxId)) {
    return 'pod must have string namespace, name, uid and sandboxId';
  }
  if (!isObject(container) || !isStr(container.id) || !isStr(container.name) || !container.id) {
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

/**
 * A ResourceClaim's holding of a share (the DRA front door): one record per claim and share, kept
 * from NodePrepareResources to NodeUnprepareResources. Its own kind beside BindingRecord, so the
 * container records (and everything that reads them: reconcile, endPod, the cluster writers) are
 * unchanged and a container's end can never end a claim's holding.
 */
export interface ClaimRecord {
  share: { namespace: string; name: string };
  claim: { namespace: string; name: string; uid: string };
  readOnly: boolean;
  /** epoch milliseconds */
  createdAt: number;
}

/** Why `v` is not a well-formed ClaimRecord, or undefined if it is. */
export function claimRecordProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'is not an object';
  const { share, claim } = v;
  if (!isObject(share) || !isStr(share.namespace) || !isStr(share.name) || !share.namespace || !share.name) {
    return 'share must have non-empty string namespace and name';
  }
  const names = shareNamesProblem('share', share.namespace, share.name);
  if (names) return names;
  if (!isObject(claim) || !isStr(claim.namespace) || !isStr(claim.name) || !isStr(claim.uid) || !claim.uid) {
    return 'claim must have string namespace and name and a non-empty string uid';
  }
  if (typeof v.readOnly !== 'boolean') return 'readOnly must be a boolean';
  if (!Number.isFinite(v.createdAt)) return 'createdAt must be a number';
  return undefined;
}

/** A frozen copy holding only the claim record's own fields. */
export function freezeClaimRecord(r: ClaimRecord): Readonly<ClaimRecord> {
  return Object.freeze({
    share: Object.freeze({ namespace: r.share.namespace, name: r.share.name }),
    claim: Object.freeze({ namespace: r.claim.namespace, name: r.claim.name, uid: r.claim.uid }),
    readOnly: r.readOnly,
    createdAt: r.createdAt,
  });
}

/** A release that has not succeeded yet (UB: daemon busy, network): retried in the background. */
export interface ReleaseState {
  attempts: number;
  /** the last failure's message */
  lastError: string;
  /** false: the failure will not pass by waiting (e.g. no permission); retried only at start */
  retryable: boolean;
  /** epoch ms: first failure, next attempt */
  since: number;
  nextAttemptAt: number;
}

/** A share this node holds through a backend, with the backend's handle (see model ShareHandle). */
export interface HeldShare {
  handle: ShareHandle;
  /** set while its release is failing */
  releasing?: ReleaseState;
  /**
   * Not released before this time (ms since the epoch) even with no binding: its holders were
   * evicted for stale device numbers, and the kubelet's recreated containers bind it again.
   */
  keepUntil?: number;
}

const isHandleValue = (v: unknown): boolean =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ||
  (Array.isArray(v) && (v.every((x) => typeof x === 'number') || v.every((x) => typeof x === 'string')));

/** Why `v` is not a well-formed HeldShare, or undefined if it is. */
export function heldProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'is not an object';
  const h = v.handle;
  if (!isObject(h)) return 'handle must be an object';
  if (!isStr(h.backend) || !h.backend) return 'handle.backend must be a non-empty string';
  if (!isStr(h.namespace) || !isStr(h.name) || !h.namespace || !h.name) return 'handle must have non-empty string namespace and name';
  const names = shareNamesProblem('handle', h.namespace, h.name);
  if (names) return names;
  if (!Number.isSafeInteger(h.sizeBytes) || !Number.isSafeInteger(h.requestedBytes)) return 'handle.sizeBytes and requestedBytes must be integers';
  if (!isObject(h.data) || !Object.values(h.data).every(isHandleValue)) return 'handle.data must be an object of strings, numbers, booleans or arrays of them';
  const r = v.releasing;
  if (r !== undefined) {
    if (!isObject(r) || !Number.isSafeInteger(r.attempts) || !isStr(r.lastError) || typeof r.retryable !== 'boolean' ||
        !Number.isFinite(r.since) || !Number.isFinite(r.nextAttemptAt)) {
      return 'releasing must have attempts, lastError, retryable, since and nextAttemptAt';
    }
  }
  if (v.keepUntil !== undefined && !Number.isSafeInteger(v.keepUntil)) return 'keepUntil must be an integer';
  return undefined;
}

/** A frozen copy of a held share with only its own fields. */
export function freezeHeld(s: HeldShare): Readonly<HeldShare> {
  const h = s.handle;
  const data: Record<string, HandleValue> = {};
  for (const [k, v] of Object.entries(h.data)) data[k] = Array.isArray(v) ? Object.freeze([...v]) : v;
  const out: HeldShare = {
    handle: Object.freeze({ backend: h.backend, namespace: h.namespace, name: h.name, sizeBytes: h.sizeBytes, requestedBytes: h.requestedBytes, data: Object.freeze(data) }),
  };
  if (s.releasing) out.releasing = Object.freeze({ ...s.releasing });
  if (s.keepUntil !== undefined) out.keepUntil = s.keepUntil;
  return Object.freeze(out);
}
