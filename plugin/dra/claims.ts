// Reads a ResourceClaim from the API server for the driver's Prepare (the ClaimReader of types.ts).
//
//   const reader = createClaimReader({ send: (r) => kubeRequest(credentials, r) });
//   const view = await reader.read({ namespace, name, uid });   // rejects with a ClaimReadError
//
// Options (ClaimReaderOptions):
//   send       one request to the API server (required)
//   versions   the resource.k8s.io versions to try, newest first (default ['v1', 'v1beta1']: v1 is
//              served from Kubernetes 1.34, v1beta1 on 1.32 and 1.33). A version the server does not
//              serve answers 404 without naming the claim; the reader then tries the next and
//              remembers the first that answered.
//   timeoutMs  per request (default 10000; the kubelet gives Prepare 45 s in all)
//
// What it returns: the claim's uid (checked against the kubelet's: a claim deleted and created
// again under the same name is another claim), every allocation result (all drivers; the driver
// keeps its own) and the opaque config in force. When the claim is allocated that is
// status.allocation.devices.config (the class's and the claim's config as the scheduler copied them
// at allocation); before, the claim's own spec.devices.config. `results` is undefined while the
// claim is not allocated; notAllocated() gives the error to report then.
// v1beta1 differs from v1 in the requests (fields directly on the request, no `exactly`), not in
// status.allocation.devices.{results,config} nor spec.devices.config, the parts read here.
import { isObject, messageOf } from '../model';
import type { AllocationResult, ClaimReader, ClaimRef, OpaqueConfig, ResourceClaimView } from './types';
import { RESOURCE_GROUP, statusDetail, type KubeSend } from './api';

export type ResourceApiVersion = 'v1' | 'v1beta1';

export interface ClaimReaderOptions {
  send: KubeSend;
  versions?: readonly ResourceApiVersion[];
  timeoutMs?: number;
}

export type ClaimReadFailure =
  /** no such claim (404 naming it) */
  | 'not-found'
  /** 401/403: the agent's credentials or RBAC */
  | 'forbidden'
  /** the claim by that name has another uid than the kubelet's */
  | 'uid-mismatch'
  /** the server serves none of the versions tried */
  | 'no-api'
  /** the server is away, busy or answered 5xx: the kubelet retries Prepare */
  | 'unavailable'
  /** the answer is not a ResourceClaim */
  | 'invalid';

/** Why a claim could not be read; the message names the claim and the reason. */
export class ClaimReadError extends Error {
  constructor(
    message: string,
    readonly failure: ClaimReadFailure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ClaimReadError';
  }
}

/** "ResourceClaim ns/name (uid u)": how every message names the claim. */
export function claimLabel(ref: ClaimRef): string {
  return `ResourceClaim ${ref.namespace}/${ref.name} (uid ${ref.uid})`;
}

/** The error for a claim read while not allocated (the driver reports it; the kubelet retries). */
export function notAllocated(view: ResourceClaimView): Error {
  return new Error(`${claimLabel(view)}: not allocated (status.allocation is empty; the scheduler allocates a claim before the kubelet prepares it)`);
}

export function createClaimReader(o: ClaimReaderOptions): ClaimReader {
  return new KubeClaimReader(o);
}

export class KubeClaimReader implements ClaimReader {
  private readonly versions: readonly ResourceApiVersion[];
  /** the version that answered last; tried first */
  private served: ResourceApiVersion | undefined;

  constructor(private readonly o: ClaimReaderOptions) {
    this.versions = o.versions?.length ? o.versions : ['v1', 'v1beta1'];
  }

  async read(ref: ClaimRef): Promise<ResourceClaimView> {
    const order = this.served ? [this.served, ...this.versions.filter((v) => v !== this.served)] : this.versions;
    const unserved: string[] = [];
    for (const version of order) {
      const got = await this.get(ref, version);
      if (got === 'unserved') {
        unserved.push(`${RESOURCE_GROUP}/${version}`);
        continue;
      }
      this.served = version;
      return parseClaim(ref, version, got);
    }
    if (this.served && unserved.length === order.length) this.served = undefined;
    throw new ClaimReadError(`${claimLabel(ref)}: the API server serves no ResourceClaims (tried ${unserved.join(', ')}; DRA needs Kubernetes 1.32 or later, v1beta1 enabled on 1.32 and 1.33)`, 'no-api');
  }

  /** The claim's JSON, or 'unserved' when this version of the API is not there. */
  private async get(ref: ClaimRef, version: ResourceApiVersion): Promise<unknown> {
    const path = `/apis/${RESOURCE_GROUP}/${version}/namespaces/${encodeURIComponent(ref.namespace)}/resourceclaims/${encodeURIComponent(ref.name)}`;
    let res;
    try {
      res = await this.o.send({ method: 'GET', path, timeoutMs: this.o.timeoutMs ?? 10000 });
    } catch (err) {
      throw new ClaimReadError(`${claimLabel(ref)}: reading it from the API server failed: ${messageOf(err)}`, 'unavailable', { cause: err });
    }
    if (res.status === 200) {
      try {
        return JSON.parse(res.body) as unknown;
      } catch (err) {
        throw new ClaimReadError(`${claimLabel(ref)}: the API server's answer is not JSON`, 'invalid', { cause: err });
      }
    }
    const d = statusDetail(res.body);
    if (res.status === 404) {
      // a 404 for the claim names it in details; one for a resource type the server lacks does not
      if (d.name !== ref.name) return 'unserved';
      throw new ClaimReadError(`${claimLabel(ref)}: not found (404: ${d.message || 'NotFound'})`, 'not-found');
    }
    if (res.status === 401 || res.status === 403) {
      throw new ClaimReadError(
        `${claimLabel(ref)}: HTTP ${res.status}: ${d.message}; the agent needs get on resourceclaims in API group ${RESOURCE_GROUP} (ClusterRole nri-memshare-dra in packaging/kubernetes/dra/rbac.yaml)`,
        'forbidden',
      );
    }
    throw new ClaimReadError(`${claimLabel(ref)}: HTTP ${res.status}: ${d.message}`, res.status === 429 || res.status >= 500 ? 'unavailable' : 'invalid');
  }
}

/** The parts the driver reads; anything malformed is an 'invalid' error naming the field. */
export function parseClaim(ref: ClaimRef, version: string, obj: unknown): ResourceClaimView {
  const bad = (field: string, why: string) => new ClaimReadError(`${claimLabel(ref)}: ${field} ${why} (${RESOURCE_GROUP}/${version})`, 'invalid');
  if (!isObject(obj) || !isObject(obj.metadata)) throw bad('metadata', 'is missing');
  const uid = obj.metadata.uid;
  if (typeof uid !== 'string' || uid === '') throw bad('metadata.uid', 'is missing');
  if (uid !== ref.uid) {
    throw new ClaimReadError(
      `${claimLabel(ref)}: the claim of that name on the API server has uid ${uid}, not the kubelet's (deleted and created again?)`,
      'uid-mismatch',
    );
  }
  const spec = isObject(obj.spec) ? obj.spec : {};
  const status = isObject(obj.status) ? obj.status : {};
  const allocation = isObject(status.allocation) ? status.allocation : undefined;
  const allocDevices = allocation && isObject(allocation.devices) ? allocation.devices : undefined;
  let results: AllocationResult[] | undefined;
  let config: OpaqueConfig[];
  if (allocation) {
    const raw = allocDevices?.results ?? [];
    if (!Array.isArray(raw)) throw bad('status.allocation.devices.results', 'is not a list');
    results = raw.map((r, i) => parseResult(r, `status.allocation.devices.results[${i}]`, bad));
    config = parseConfig(allocDevices?.config, 'status.allocation.devices.config', bad);
  } else {
    const specDevices = isObject(spec.devices) ? spec.devices : {};
    config = parseConfig(specDevices.config, 'spec.devices.config', bad);
  }
  return { namespace: ref.namespace, name: ref.name, uid, results, config };
}

type Bad = (field: string, why: string) => Error;

function parseResult(r: unknown, field: string, bad: Bad): AllocationResult {
  if (!isObject(r)) throw bad(field, 'is not an object');
  const str = (k: string): string => {
    const v = r[k];
    if (typeof v !== 'string' || v === '') throw bad(`${field}.${k}`, 'is missing');
    return v;
  };
  const out: AllocationResult = { request: str('request'), driver: str('driver'), pool: str('pool'), device: str('device') };
  if (typeof r.shareID === 'string') out.shareID = r.shareID;
  if (isObject(r.consumedCapacity)) {
    const cc: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.consumedCapacity)) {
      if (typeof v !== 'string' && typeof v !== 'number') throw bad(`${field}.consumedCapacity.${k}`, 'is not a quantity');
      cc[k] = String(v);
    }
    out.consumedCapacity = cc;
  }
  return out;
}

function parseConfig(raw: unknown, field: string, bad: Bad): OpaqueConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad(field, 'is not a list');
  const out: OpaqueConfig[] = [];
  raw.forEach((c, i) => {
    if (!isObject(c)) throw bad(`${field}[${i}]`, 'is not an object');
    // only opaque configuration exists in the API today; another kind is not ours to read
    if (!isObject(c.opaque)) return;
    const driver = c.opaque.driver;
    if (typeof driver !== 'string' || driver === '') throw bad(`${field}[${i}].opaque.driver`, 'is missing');
    const requests = c.requests ?? [];
    if (!Array.isArray(requests) || requests.some((x) => typeof x !== 'string')) throw bad(`${field}[${i}].requests`, 'is not a list of names');
    out.push({ requests: requests as string[], driver, parameters: c.opaque.parameters });
  });
  return out;
}
