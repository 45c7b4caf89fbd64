// This node's entry in a ShareMemory's status, written with server-side apply on the status
// subresource. Each node applies as its own field manager (nri-memshare-<node>) and sends only
// its own entry: the API server merges status.nodes by nodeName (a map-type list) and the sets
// status.nodeNames and status.holdersByNode by value, so a node owns exactly its entry and its two
// set elements. An apply without them removes what this manager owned and nobody else does,
// which is how the entry goes when the node no longer holds the share.
// A ShareMemory this node refuses (its own limits) gets an entry too: the reason and the
// generation judged, and the node's element in status.refusedBy (the Refused-By column). Fixed
// (a new generation the node takes), the apply no longer carries them and they go.
import { createHash } from 'node:crypto';
import { isObject, messageOf } from '../model';
import { SHARE_MEMORY_API_VERSION, SHARE_MEMORY_KIND } from '../declarations/sharememory';
import { SHARE_MEMORY_PLURAL } from '../declarations/kubernetes';
import type { KubeRequest, KubeResponse } from '../kube/request';

export const APPLY_CONTENT_TYPE = 'application/apply-patch+yaml';

/** What one node reports about one share it holds. */
export interface NodeShareStatus {
  /** bound containers on this node */
  holders: number;
  /** bytes in use, when the backend can tell */
  bytesUsed: number | null;
  /** the size the share was made with on this node (bytes) */
  sizeInForce: number;
  /** RFC 3339: the oldest current binding on this node */
  since: string;
  /** e.g. "local", "ubs" */
  backend: string;
}

/** Why this node refuses the share's ShareMemory, and the generation of the object it judged. */
export interface NodeRefusal {
  reason: string;
  observedGeneration?: number;
}

export interface ShareRef {
  namespace: string;
  name: string;
}

/** Sends one request to the API server (kubeRequest with the agent's credentials, or a test's). */
export type KubeSend = (r: KubeRequest) => Promise<KubeResponse>;

/**
 * The field manager of a node's agent. Field managers are limited to 128 characters and node
 * names to 253: a long name keeps its start and gets a hash, so it stays unique and readable.
 */
export function fieldManagerFor(nodeName: string): string {
  const m = `nri-memshare-${nodeName}`;
  if (m.length <= 128) return m;
  const hash = createHash('sha256').update(nodeName).digest('hex').slice(0, 16);
  return `${m.slice(0, 128 - 17)}-${hash}`;
}

/**
 * The apply configuration: the node's entry (what it holds, its refusal, or both), or (neither)
 * nothing, to remove it.
 */
export function statusApplyBody(nodeName: string, share: ShareRef, entry: NodeShareStatus | undefined, refusal?: NodeRefusal): Record<string, unknown> {
  const body: Record<string, unknown> = {
    apiVersion: SHARE_MEMORY_API_VERSION,
    kind: SHARE_MEMORY_KIND,
    metadata: { name: share.name, namespace: share.namespace },
  };
  const node: Record<string, unknown> = { nodeName };
  const status: Record<string, unknown> = { nodes: [node] };
  if (entry) {
    Object.assign(node, { holders: entry.holders, sizeInForce: entry.sizeInForce, since: entry.since, backend: entry.backend });
    if (entry.bytesUsed !== null) node.bytesUsed = entry.bytesUsed;
    Object.assign(status, { nodeNames: [nodeName], holdersByNode: [`${nodeName}=${entry.holders}`] });
  }
  if (refusal) {
    node.refused = refusal.reason;
    if (refusal.observedGeneration !== undefined) node.observedGeneration = refusal.observedGeneration;
    status.refusedBy = [nodeName];
  }
  if (entry || refusal) body.status = status;
  return body;
}

export function statusPath(share: ShareRef): string {
  return `/apis/${SHARE_MEMORY_API_VERSION}/namespaces/${encodeURIComponent(share.namespace)}/${SHARE_MEMORY_PLURAL}/${encodeURIComponent(share.name)}/status`;
}

export type ApplyOutcome =
  | { kind: 'applied' }
  /** the object (or its status subresource) does not exist: nothing to write until it does */
  | { kind: 'gone'; message: string }
  /** the server is away or busy: write the latest state later */
  | { kind: 'retry'; message: string; retryAfterMs: number }
  /** refused for a reason waiting does not cure (403, 422, 400, 415): reported, dropped */
  | { kind: 'refused'; code: number; message: string };

/** The message of a Status body, or the start of whatever the body is. */
export function statusMessage(body: string): string {
  try {
    const s: unknown = JSON.parse(body);
    if (isObject(s) && typeof s.message === 'string') return s.message;
  } catch {
    /* not a Status */
  }
  return body.trim().slice(0, 200);
}

export function retryAfterMs(res: KubeResponse): number {
  const ra = Number(res.headers['retry-after']);
  return Number.isFinite(ra) && ra > 0 ? Math.min(ra, 300) * 1000 : 0;
}

/** Applies this node's entry (or its absence) to the share's status; force: a node's entry is its own. */
export async function applyNodeStatus(send: KubeSend, nodeName: string, share: ShareRef, entry: NodeShareStatus | undefined, refusal?: NodeRefusal): Promise<ApplyOutcome> {
  const what = `status of ShareMemory ${share.namespace}/${share.name}`;
  let res: KubeResponse;
  try {
    res = await send({
      method: 'PATCH',
      path: statusPath(share),
      query: new URLSearchParams({ fieldManager: fieldManagerFor(nodeName), force: 'true' }),
      contentType: APPLY_CONTENT_TYPE,
      // JSON is YAML: the apply content type takes it as is
      body: JSON.stringify(statusApplyBody(nodeName, share, entry, refusal)),
    });
  } catch (err) {
    return { kind: 'retry', message: `${what}: ${messageOf(err)}`, retryAfterMs: 0 };
  }
  if (res.status >= 200 && res.status < 300) return { kind: 'applied' };
  const detail = statusMessage(res.body);
  if (res.status === 404) return { kind: 'gone', message: `${what}: 404 Not Found (${detail})` };
  if (res.status === 429 || res.status >= 500 || res.status === 401 || res.status === 409) {
    // 401: a rotated token is read again on the next attempt; 409 cannot happen with force, and
    // if a server says it anyway, the latest state is written again later
    return { kind: 'retry', message: `${what}: HTTP ${res.status}: ${detail}`, retryAfterMs: retryAfterMs(res) };
  }
  const hint = res.status === 403
    ? '; the agent needs patch on sharememories/status in API group resource.ubsvirt.huawei.com: apply packaging/kubernetes/rbac.yaml'
    : res.status === 422 ? '; is the CRD from packaging/kubernetes/crd-sharememory.yaml (with the status schema) applied?' : '';
  return { kind: 'refused', code: res.status, message: `${what}: HTTP ${res.status}: ${detail}${hint}` };
}

/** Shares whose status has an entry of this node, from a full list (paged). */
export async function listOwnEntries(send: KubeSend, nodeName: string, pageSize = 500): Promise<ShareRef[]> {
  const out: ShareRef[] = [];
  let cont = '';
  do {
    const q = new URLSearchParams({ limit: String(pageSize) });
    if (cont) q.set('continue', cont);
    const res = await send({ method: 'GET', path: `/apis/${SHARE_MEMORY_API_VERSION}/${SHARE_MEMORY_PLURAL}`, query: q });
    if (res.status !== 200) throw new Error(`listing ShareMemory objects for this node's status entries: HTTP ${res.status}: ${statusMessage(res.body)}`);
    let page: unknown;
    try {
      page = JSON.parse(res.body);
    } catch (err) {
      throw new Error('listing ShareMemory objects for this node\'s status entries: the answer is not JSON', { cause: err });
    }
    if (!isObject(page) || !Array.isArray(page.items)) throw new Error('listing ShareMemory objects for this node\'s status entries: the answer has no items');
    for (const item of page.items) {
      if (!isObject(item) || !isObject(item.metadata) || !isObject(item.status)) continue;
      const mine = (Array.isArray(item.status.nodes) && item.status.nodes.some((n) => isObject(n) && n.nodeName === nodeName)) ||
        (Array.isArray(item.status.nodeNames) && item.status.nodeNames.includes(nodeName));
      const { namespace, name } = item.metadata;
      if (mine && typeof namespace === 'string' && typeof name === 'string') out.push({ namespace, name });
    }
    const meta = isObject(page.metadata) ? page.metadata : {};
    cont = typeof meta.continue === 'string' ? meta.continue : '';
  } while (cont);
  return out;
}
