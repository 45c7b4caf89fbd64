// Keeps this node's ResourceSlices (what the scheduler allocates claims from) in line with the
// declared shares. slice-builder.ts says what a slice holds; this module writes it.
//
//   const publisher = createSlicePublisher({ send, nodeName, backend: 'local', store, limits, onEvent });
//   publisher.start();          // publishes now, then follows the store's changes
//   await publisher.flush();    // (tests) one sync now, resolved when written
//   await publisher.stop();
//
// Options (SlicePublisherOptions):
//   send         one request to the API server (kubeRequest with the agent's credentials)
//   nodeName     this node; its slices carry spec.nodeName (pool per node)
//   driverName   default DEFAULT_DRIVER_NAME ("memshare.nri.io")
//   backend      the backend kind, published as each device's `backend` attribute
//   store        the declarations (list + onChange): every change schedules a sync
//   limits       the node's limits: shares outside them are not published; maxNodeBytes is the
//                node's counter
//   topology     {kind: 'node'} (default; the local backend) or {kind: 'spanning', poolName,
//                nodeSelector} (the UB backend: one pool the UB nodes share; slice-builder.ts);
//                topologyFor(backend.kind, ubPool) gives the one to use
//   nodeLimit    'counters' (default) or 'none': the node limit as shared counters
//   apiVersion   'v1' (default, Kubernetes 1.34+) or 'v1beta1' (1.32, 1.33: no counters, no
//                multiple allocations)
//   debounceMs   changes within this coalesce into one sync (default 250)
//   backoff      after a failed sync: first retry, doubling to max (default 1000 .. 60000 ms)
//   resyncMs     a sync this often even without changes, to repair slices someone else deleted
//                (default 300000; 0: never)
//   onEvent      what happened: published / failed / left-out (no logging in here)
//
// How it writes: each slice by server-side apply (PATCH, application/apply-patch+yaml, force) as
// the field manager nri-memshare-dra-<node> (a spanning pool: nri-memshare-dra-pool-<pool>, shared
// by the pool's nodes). A sync lists this node's slices of this driver (fieldSelector
// spec.nodeName and spec.driver; a spanning pool: spec.driver and then the pool name), and when
// the wanted content differs from what it last wrote, or a slice is missing or of another
// generation, applies every wanted slice with the pool generation one above the highest seen,
// then deletes the listed slices it no longer wants. Slices of other nodes are never listed, so
// never touched. Content is compared with what this process wrote (the server may print
// quantities differently), so the first sync after a start always writes once.
import type * as Crypto from 'node:crypto';
import type { Limits, ShareDeclaration } from '../model';
import { isObject, messageOf } from '../model';
import { RESOURCE_GROUP, retryAfterMs, statusDetail, type KubeSend } from './api';
import { DEFAULT_DRIVER_NAME } from './devices';
import { buildSlices, toV1beta1, type LeftOut, type PoolTopology, type SliceObject } from './slice-builder';

export const APPLY_CONTENT_TYPE = 'application/apply-patch+yaml';

export interface DeclarationFeed {
  list(): ShareDeclaration[];
  onChange(listener: () => void): () => void;
}

export type SlicePublisherEvent =
  | { kind: 'published'; poolName: string; generation: number; slices: string[]; devices: number; deleted: string[] }
  | { kind: 'failed'; message: string; retryInMs: number }
  /** the declarations this node does not publish changed (empty: none left out any more) */
  | { kind: 'left-out'; shares: LeftOut[] };

export interface SlicePublisherOptions {
  send: KubeSend;
  nodeName: string;
  driverName?: string;
  backend: string;
  store: DeclarationFeed;
  limits: Limits;
  topology?: PoolTopology;
  nodeLimit?: 'counters' | 'none';
  apiVersion?: 'v1' | 'v1beta1';
  debounceMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  resyncMs?: number;
  onEvent?: (e: SlicePublisherEvent) => void;
}

export interface SlicePublisherStats {
  syncs: number;
  applies: number;
  deletes: number;
  failures: number;
  generation: number;
  lastError: string | null;
}

/** A failed request of a sync; the sync is retried whole. */
export class SlicePublishError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
    this.name = 'SlicePublishError';
  }
}

export function createSlicePublisher(o: SlicePublisherOptions): SlicePublisher {
  return new SlicePublisher(o);
}

/** The label that marks the nodes of a UB pool; the spanning pool's node selector matches it. */
export const UB_POOL_LABEL = 'memshare.nri.io/ub-pool';

/**
 * The pool shape for a backend: a pool per node, except on the UB backend ("ubs"), whose shares
 * are reachable from every node of the UB pool `ubPool` (default "default"): one pool named
 * memshare-ub-<ubPool> (the prefix packaging/kubernetes/dra/admission-policy.yaml lets every node
 * write) over the nodes labelled memshare.nri.io/ub-pool=<ubPool>.
 */
export function topologyFor(backendKind: string, ubPool = 'default'): PoolTopology {
  if (backendKind !== 'ubs') return { kind: 'node' };
  return {
    kind: 'spanning',
    poolName: `memshare-ub-${ubPool}`,
    nodeSelector: { nodeSelectorTerms: [{ matchExpressions: [{ key: UB_POOL_LABEL, operator: 'In', values: [ubPool] }] }] },
  };
}

/** Field managers are at most 128 characters: a long name keeps its start and gets a hash. */
export function sliceFieldManager(topology: PoolTopology, nodeName: string): string {
  const m = topology.kind === 'node' ? `nri-memshare-dra-${nodeName}` : `nri-memshare-dra-pool-${topology.poolName}`;
  if (m.length <= 128) return m;
  return `${m.slice(0, 111)}-${(require('node:crypto') as typeof Crypto).createHash('sha256').update(m).digest('hex').slice(0, 16)}`;
}

interface ListedSlice {
  name: string;
  generation: number;
}

export class SlicePublisher {
  private readonly driverName: string;
  private readonly topology: PoolTopology;
  private readonly nodeLimit: 'counters' | 'none';
  private readonly version: 'v1' | 'v1beta1';
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly fieldManager: string;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private delay: number;
  private stopped = false;
  /** what this process last wrote (content without the generation) and at which generation */
  private written: { content: string; generation: number; names: string[] } | undefined;
  private leftOutKey = '';
  private readonly s: SlicePublisherStats = { syncs: 0, applies: 0, deletes: 0, failures: 0, generation: 0, lastError: null };

  constructor(private readonly o: SlicePublisherOptions) {
    this.driverName = o.driverName ?? DEFAULT_DRIVER_NAME;
    this.topology = o.topology ?? { kind: 'node' };
    this.version = o.apiVersion ?? 'v1';
    // v1beta1 has no counters to consume; a spanning pool has no one node's limit
    this.nodeLimit = this.version === 'v1beta1' || this.topology.kind === 'spanning' ? 'none' : (o.nodeLimit ?? 'counters');
    this.backoff = o.backoff ?? { initialMs: 1000, maxMs: 60000 };
    this.delay = this.backoff.initialMs;
    this.fieldManager = sliceFieldManager(this.topology, o.nodeName);
  }

  /** Publishes now and then after every change of the declarations. */
  start(): void {
    if (this.unsubscribe || this.stopped) return;
    this.unsubscribe = this.o.store.onChange(() => this.schedule(this.o.debounceMs ?? 250));
    this.schedule(0);
    const every = this.o.resyncMs ?? 300000;
    if (every > 0) {
      this.resyncTimer = setInterval(() => this.schedule(0), every);
      this.resyncTimer.unref();
    }
  }

  /** Stops following; an in-flight sync finishes. The slices stay (unpublish() removes them). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearTimeout(this.timer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.timer = this.resyncTimer = undefined;
    await this.chain;
  }

  /** One sync now (after any in flight); rejects with its error. */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.syncOnce());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Deletes every slice this publisher owns (the DRA path switched off). */
  async unpublish(): Promise<string[]> {
    const run = this.chain.then(async () => {
      const existing = await this.list();
      for (const s of existing) await this.remove(s.name);
      this.written = undefined;
      return existing.map((s) => s.name);
    });
    this.chain = run.then(() => undefined, () => undefined);
    return run;
  }

  stats(): SlicePublisherStats {
    return { ...this.s };
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().then(
        () => {
          this.delay = this.backoff.initialMs;
        },
        (err: unknown) => {
          const wait = Math.max(this.delay, err instanceof SlicePublishError ? err.retryAfterMs : 0);
          this.delay = Math.min(this.delay * 2, this.backoff.maxMs);
          this.o.onEvent?.({ kind: 'failed', message: messageOf(err), retryInMs: wait });
          this.schedule(wait);
        },
      );
    }, ms);
  }

  private async syncOnce(): Promise<void> {
    this.s.syncs += 1;
    try {
      await this.sync();
      this.s.lastError = null;
    } catch (err) {
      this.s.failures += 1;
      this.s.lastError = messageOf(err);
      throw err;
    }
  }

  private async sync(): Promise<void> {
    const built = buildSlices({
      driverName: this.driverName,
      nodeName: this.o.nodeName,
      backend: this.o.backend,
      declarations: this.o.store.list(),
      limits: this.o.limits,
      topology: this.topology,
      nodeLimit: this.nodeLimit,
    });
    const leftOutKey = JSON.stringify(built.leftOut);
    if (leftOutKey !== this.leftOutKey) {
      this.leftOutKey = leftOutKey;
      this.o.onEvent?.({ kind: 'left-out', shares: built.leftOut });
    }
    const content = JSON.stringify(built.slices);
    const existing = await this.list();
    const wanted = built.slices.map((s) => s.name);
    const w = this.written;
    const inPlace =
      w !== undefined && w.content === content &&
      existing.length === wanted.length &&
      existing.every((e) => wanted.includes(e.name) && e.generation === w.generation);
    if (inPlace) return;

    const generation = Math.max(0, this.written?.generation ?? 0, ...existing.map((e) => e.generation)) + 1;
    for (const slice of built.slices) await this.apply(slice, generation);
    const deleted: string[] = [];
    for (const e of existing) {
      if (wanted.includes(e.name)) continue;
      await this.remove(e.name);
      deleted.push(e.name);
    }
    this.written = { content, generation, names: wanted };
    this.s.generation = generation;
    const devices = built.slices.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0);
    this.o.onEvent?.({ kind: 'published', poolName: built.poolName, generation, slices: wanted, devices, deleted });
  }

  private base(): string {
    return `/apis/${RESOURCE_GROUP}/${this.version}/resourceslices`;
  }

  /** This publisher's slices on the server: this node's (or this spanning pool's) of this driver. */
  private async list(): Promise<ListedSlice[]> {
    const selector = this.topology.kind === 'node' ? `spec.nodeName=${this.o.nodeName},spec.driver=${this.driverName}` : `spec.driver=${this.driverName}`;
    const out: ListedSlice[] = [];
    let cont = '';
    do {
      const query = new URLSearchParams({ fieldSelector: selector, limit: '500' });
      if (cont) query.set('continue', cont);
      const res = await this.request({ method: 'GET', path: this.base(), query }, 'listing this node\'s ResourceSlices');
      let page: unknown;
      try {
        page = JSON.parse(res.body);
      } catch {
        throw new SlicePublishError('listing this node\'s ResourceSlices: the answer is not JSON');
      }
      if (!isObject(page) || !Array.isArray(page.items)) throw new SlicePublishError('listing this node\'s ResourceSlices: the answer has no items');
      for (const item of page.items) {
        if (!isObject(item) || !isObject(item.metadata) || !isObject(item.spec) || !isObject(item.spec.pool)) continue;
        const { name } = item.metadata;
        const pool = item.spec.pool;
        if (typeof name !== 'string') continue;
        // the field selector already holds a node's slices to this node; a spanning pool's are
        // told apart by pool name, and a slice of this node without a node name is not ours
        if (this.topology.kind === 'spanning' ? pool.name !== this.topology.poolName || item.spec.nodeName !== undefined : item.spec.nodeName !== this.o.nodeName) continue;
        out.push({ name, generation: typeof pool.generation === 'number' ? pool.generation : 0 });
      }
      const meta = isObject(page.metadata) ? page.metadata : {};
      cont = typeof meta.continue === 'string' ? meta.continue : '';
    } while (cont);
    return out;
  }

  private async apply(slice: SliceObject, generation: number): Promise<void> {
    const spec = { ...slice.spec, pool: { ...slice.spec.pool, generation } };
    const body = {
      apiVersion: `${RESOURCE_GROUP}/${this.version}`,
      kind: 'ResourceSlice',
      metadata: { name: slice.name, labels: { 'app.kubernetes.io/managed-by': 'nri-memshare' } },
      spec: this.version === 'v1beta1' ? toV1beta1(spec) : spec,
    };
    await this.request(
      {
        method: 'PATCH',
        path: `${this.base()}/${encodeURIComponent(slice.name)}`,
        query: new URLSearchParams({ fieldManager: this.fieldManager, force: 'true' }),
        contentType: APPLY_CONTENT_TYPE,
        body: JSON.stringify(body),
      },
      `applying ResourceSlice ${slice.name}`,
    );
    this.s.applies += 1;
  }

  private async remove(name: string): Promise<void> {
    await this.request({ method: 'DELETE', path: `${this.base()}/${encodeURIComponent(name)}` }, `deleting ResourceSlice ${name}`, true);
    this.s.deletes += 1;
  }

  private async request(r: Parameters<KubeSend>[0], what: string, goneIsFine = false) {
    let res;
    try {
      res = await this.o.send(r);
    } catch (err) {
      throw new SlicePublishError(`${what}: ${messageOf(err)}`);
    }
    if (res.status >= 200 && res.status < 300) return res;
    if (goneIsFine && res.status === 404) return res;
    const d = statusDetail(res.body);
    const hint =
      res.status === 403 ? `; the agent needs create, patch, update, delete, list and watch on resourceslices in API group ${RESOURCE_GROUP} (ClusterRole nri-memshare-dra in packaging/kubernetes/dra/rbac.yaml), and the ValidatingAdmissionPolicy lets a node write only its own slices`
      : res.status === 404 ? `; does the API server serve ${RESOURCE_GROUP}/${this.version} (Kubernetes 1.34+ for v1)?`
      : '';
    throw new SlicePublishError(`${what}: HTTP ${res.status}: ${d.message}${hint}`, retryAfterMs(res));
  }
}
