// The memshare service: what happens to shares when containers come and go. It decides and
// records; the backend makes memory present or absent; the ledger remembers who holds what.
// Knows nothing of wire formats: the NRI adapter (plugin.ts) calls it with plain objects, and the
// DRA driver (plugin/dra/driver.ts) calls prepareClaim/unprepareClaim the same way. A share has
// two kinds of holder, containers and ResourceClaims; it is released when the last of either ends,
// and nothing done for containers (their end, a pod's end, reconcile) ends a claim's holding.
import { parseBinding } from './annotations';
import { authorize } from './authorize';
import { KeyedLock } from '../locks/keyed-lock';
import {
  RefusalError,
  emptyInjection,
  messageOf,
  shareKey,
  type ClaimInfo,
  type ContainerInfo,
  type ContainerInjection,
  type Limits,
  type PodInfo,
  type ShareDeclaration,
  type ShareHandle,
  type ShareRef,
} from '../model';
import { RetryableError, type Backend, type BoundShare, type RuntimeInfo } from '../backends/types';
import type { DeclarationStore } from '../declarations/store';
import type { BindingRecord, ClaimRecord, HeldShare, Ledger } from '../ledger';

/** Whose binding was refused (for an Event on the pod, and the agent's log). */
export interface RefusalSubject {
  pod: PodInfo;
  container: ContainerInfo;
  /** the shares ("namespace/name") the container asked for; empty when its annotation was refused */
  shares: string[];
}

export interface ServiceEvents {
  bound?(rec: BindingRecord): void;
  /** a binding ended (its container ended or was removed); the share may stay for other holders */
  unbound?(rec: Readonly<BindingRecord>, why: string): void;
  /** a ResourceClaim now holds a share (recorded) */
  claimed?(rec: Readonly<ClaimRecord>): void;
  /** a ResourceClaim's holding ended (unprepared); the share may stay for other holders */
  unclaimed?(rec: Readonly<ClaimRecord>, why: string): void;
  /** `message` is the tenant's; `operatorDetail` (RefusalError's) is for the log only; no subject for a claim (the message names it) */
  refused?(reason: string, message: string, subject?: RefusalSubject, operatorDetail?: string): void;
  released?(namespace: string, name: string, why: string): void;
  /** a release failed; `retryAt` is when it is tried again (undefined: only at the next start) */
  releaseFailed?(namespace: string, name: string, message: string, retryAt: number | undefined): void;
  warn?(msg: string, detail?: object): void;
}

/** Told about containers to evict outside reconcile (e.g. a restored UB share got new memids). */
export type EvictListener = (containerId: string, reason: string) => void;

export interface ReconcileReport {
  ended: number;
  released: string[];
  orphansReleased: string[];
  /** pod as "namespace/name", container by name, and the shares it lacks (or holds stale) */
  evict: Array<{ containerId: string; pid: number; reason: string; pod: string; container: string; shares: string[] }>;
}

export interface ServiceOptions {
  backend: Backend;
  ledger: Ledger;
  declarations: DeclarationStore;
  limits: Limits;
  events?: ServiceEvents;
  now?: () => number;
  /** first retry of a failed release (ms, doubled per attempt up to releaseRetryMaxMs) */
  releaseRetryMs?: number;
  releaseRetryMaxMs?: number;
  /** how long a share acquired for a refused binding waits for the kubelet's retry (ms) */
  abandonedGraceMs?: number;
}

export interface PrepareClaimOptions {
  /** epoch ms: when the kubelet stops waiting (undefined: the backend's own budget) */
  deadline?: number;
  /** the front door's words for asking read-only access, for a read-only-grant refusal */
  readOnlyHow?: string;
}

/** What a request keeps back from its deadline for the answer to reach the runtime. */
const ANSWER_MARGIN_MS = 150;

/** Who a binding is for: a container being created (NRI), or a ResourceClaim being prepared (DRA). */
type Holder =
  | { kind: 'container'; pod: PodInfo; ctr: ContainerInfo }
  /** record: false when the claim already holds the share as asked (prepared again) */
  | { kind: 'claim'; claim: ClaimInfo; record: boolean };

const describeHolder = (h: Holder): string =>
  h.kind === 'container' ? `container ${h.ctr.name} of pod ${h.pod.namespace}/${h.pod.name}` : claimName(h.claim);

const claimName = (c: ClaimInfo): string => `ResourceClaim ${c.namespace}/${c.name}`;

export class MemshareService {
  private readonly lock = new KeyedLock();
  /** shares this node holds right now, by "ns/name" */
  private readonly present = new Map<string, ShareHandle>();
  /** recorded by the last agent run and not restored in this one yet (UB: its memids may be gone) */
  private readonly unrestored = new Set<string>();
  /** acquires still running (past a request's budget, kept for the kubelet's retry) */
  private readonly acquiring = new Map<string, Promise<ShareHandle>>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** shares kept with no binding until then (ms): their holders were evicted for stale device numbers */
  private readonly keepUntil = new Map<string, number>();
  private readonly restoreTimers = new Map<string, NodeJS.Timeout>();
  private readonly restoreAttempts = new Map<string, number>();
  private readonly ev: ServiceEvents;
  private readonly now: () => number;
  private evictListener: EvictListener | undefined;
  private closed = false;

  constructor(private readonly o: ServiceOptions) {
    this.ev = o.events ?? {};
    this.now = o.now ?? Date.now;
  }

  /**
   * Learns which shares this node holds (recorded handles, then what the backend finds present),
   * schedules the releases that were failing, and restores recorded shares in the background.
   */
  async init(): Promise<void> {
    for (const h of this.o.ledger.held()) {
      if (h.releasing) this.scheduleRelease(h.handle.namespace, h.handle.name, 0);
      else {
        this.present.set(shareKey(h.handle.namespace, h.handle.name), h.handle);
        if (h.keepUntil !== undefined && h.keepUntil > this.now()) this.keepUntil.set(shareKey(h.handle.namespace, h.handle.name), h.keepUntil);
        // (a placeholder, recorded before its share was made, is acquired anew or released instead)
        if (h.handle.requestedBytes > 0) this.unrestored.add(shareKey(h.handle.namespace, h.handle.name));
      }
    }
    const found = new Set<string>();
    for (const p of await this.o.backend.present()) {
      const key = shareKey(p.namespace, p.name);
      found.add(key);
      if (this.o.ledger.heldShare(p.namespace, p.name)?.releasing) continue;
      const decl = this.o.declarations.get(p.namespace, p.name);
      const recorded = this.present.get(key);
      // what the kernel reports wins; the declared size it was made for comes from the record
      this.present.set(key, { ...p, sizeBytes: p.sizeBytes || recorded?.sizeBytes || decl?.sizeBytes || 0, requestedBytes: recorded?.requestedBytes ?? p.requestedBytes });
    }
    // memory that ends with the kernel (local tmpfs) and is not there: the node rebooted. Claims
    // outlive a reboot on record (the kubelet prepares them again), so such a share is made anew
    // at its next binding, not handed out as the record says
    if (!this.o.backend.durable) {
      for (const key of [...this.present.keys()]) {
        if (found.has(key)) continue;
        this.present.delete(key);
        this.unrestored.delete(key);
      }
    }
    this.o.backend.onLost((shares) => {
      for (const s of shares) this.unrestored.add(shareKey(s.namespace, s.name));
      void this.restoreAll();
    });
    void this.restoreAll();
  }

  /** When a share kept for its evicted holders' return is released at the latest, or undefined. */
  keptUntil(namespace: string, name: string): number | undefined {
    const t = this.keepUntil.get(shareKey(namespace, name));
    return t !== undefined && t > this.now() ? t : undefined;
  }

  /** Who evicts containers found stale outside reconcile (the NRI plugin, which knows their pids). */
  onEvict(listener: EvictListener): void {
    this.evictListener = listener;
  }

  setRuntime(info: RuntimeInfo): void {
    this.o.backend.setRuntime(info);
  }

  /** Stops the background retries (the records stay; the next start picks them up). */
  close(): void {
    this.closed = true;
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    for (const t of this.restoreTimers.values()) clearTimeout(t);
    this.restoreTimers.clear();
  }

  /**
   * The injection for a container being created, or undefined when it asks for no share.
   * Throws RefusalError when the binding cannot be honoured; the container then must not start.
   * Every binding is durably recorded before this returns. `deadline` (epoch ms): when the runtime
   * stops waiting for the answer, if it said.
   */
  async createContainer(pod: PodInfo, ctr: ContainerInfo, deadline?: number): Promise<ContainerInjection | undefined> {
    let authorized;
    let shares: string[] = [];
    try {
      const binding = parseBinding(pod.annotations, pod.namespace, ctr.name, { maxNameLength: this.o.limits.maxNameLength });
      if (binding.refs.length === 0) return undefined;
      shares = binding.refs.map((r) => shareKey(r.namespace, r.name));
      authorized = authorize({
        annotation: binding.annotation,
        refs: binding.refs,
        podNamespace: pod.namespace,
        store: this.o.declarations,
        limits: this.o.limits,
        isPresent: (ns, name) => this.present.has(shareKey(ns, name)),
        nodeBytesInUse: this.nodeBytes(),
      });
      const down = this.o.backend.unavailable();
      if (down) throw new RefusalError(`${binding.annotation}: ${down}`, 'backend-unavailable');
    } catch (err) {
      if (err instanceof RefusalError) this.ev.refused?.(err.reason, err.message, { pod, container: ctr, shares }, err.operatorDetail);
      throw err;
    }
    const bound: BoundShare[] = [];
    try {
      for (const { ref, declaration } of authorized) {
        const handle = await this.bindOne({ kind: 'container', pod, ctr }, ref, declaration, deadline);
        bound.push({ handle, readOnly: ref.readOnly, ref: ref.namespace === pod.namespace ? ref.name : shareKey(ref.namespace, ref.name) });
      }
      return this.o.backend.attach(bound);
    } catch (err) {
      // nothing half-done survives a failed creation: undo this container's bindings
      await this.endContainer(ctr.id, 'creation failed').catch(() => undefined);
      if (err instanceof RefusalError) {
        this.ev.refused?.(err.reason, err.message, { pod, container: ctr, shares }, err.operatorDetail);
        throw err;
      }
      const msg = `memshare: cannot bind shares for container ${ctr.name} of pod ${pod.namespace}/${pod.name}: ${messageOf(err)}`;
      this.ev.refused?.('backend', msg, { pod, container: ctr, shares });
      throw new RefusalError(msg, 'backend', undefined, { cause: err });
    }
  }

  /**
   * The injection for a ResourceClaim being prepared on this node: the claim holds each of `refs`
   * as a container would (authorized as the annotation path authorizes a pod of the claim's
   * namespace, acquired through the same backend, recorded before this returns). Idempotent: a
   * claim prepared again (the kubelet's retry, or after an agent restart) gets the same answer
   * from its records without being authorized again; shares it held and no longer asks for end.
   * Throws RefusalError naming the claim when a ref cannot be honoured.
   */
  async prepareClaim(claim: ClaimInfo, refs: readonly ShareRef[], opts: PrepareClaimOptions = {}): Promise<ContainerInjection> {
    const { deadline } = opts;
    const what = claimName(claim);
    const wanted = mergeRefs(refs);
    const recorded = new Map(this.o.ledger.byClaim(claim.uid).map((r) => [shareKey(r.share.namespace, r.share.name), r]));
    const fresh = wanted.filter((r) => recorded.get(shareKey(r.namespace, r.name))?.readOnly !== r.readOnly);
    let authorized;
    try {
      authorized = authorize({
        annotation: what,
        ...(opts.readOnlyHow ? { readOnlyHow: () => opts.readOnlyHow! } : {}),
        refs: fresh,
        podNamespace: claim.namespace,
        store: this.o.declarations,
        limits: this.o.limits,
        isPresent: (ns, name) => this.present.has(shareKey(ns, name)),
        nodeBytesInUse: this.nodeBytes(),
      });
      const down = fresh.length ? this.o.backend.unavailable() : undefined;
      if (down) throw new RefusalError(`${what}: ${down}`, 'backend-unavailable');
    } catch (err) {
      if (err instanceof RefusalError) this.ev.refused?.(err.reason, err.message, undefined, err.operatorDetail);
      throw err;
    }
    const declOf = new Map(authorized.map((a) => [shareKey(a.ref.namespace, a.ref.name), a.declaration]));
    const bound: BoundShare[] = [];
    const madeHere: ShareRef[] = [];
    try {
      for (const ref of wanted) {
        const key = shareKey(ref.namespace, ref.name);
        const isFresh = declOf.has(key);
        const handle = await this.bindOne({ kind: 'claim', claim, record: isFresh }, ref, declOf.get(key) ?? this.o.declarations.get(ref.namespace, ref.name), deadline);
        if (isFresh) madeHere.push(ref);
        bound.push({ handle, readOnly: ref.readOnly, ref: ref.namespace === claim.namespace ? ref.name : key });
      }
      const inj = bound.length ? this.o.backend.attach(bound) : emptyInjection();
      // the claim's allocation no longer names a share it held (reallocated under the same uid)
      const keep = new Set(wanted.map((r) => shareKey(r.namespace, r.name)));
      for (const [key, r] of recorded) if (!keep.has(key)) await this.unclaimShares(claim.uid, 'no longer in the claim\'s allocation', [r.share]);
      return inj;
    } catch (err) {
      // nothing half-done survives: what this call recorded goes (earlier holdings stay)
      await this.unclaimShares(claim.uid, 'preparation failed', madeHere).catch(() => undefined);
      if (err instanceof RefusalError) {
        this.ev.refused?.(err.reason, err.message, undefined, err.operatorDetail);
        throw err;
      }
      const msg = `memshare: cannot prepare shares for ${what}: ${messageOf(err)}`;
      this.ev.refused?.('backend', msg);
      throw new RefusalError(msg, 'backend', undefined, { cause: err });
    }
  }

  /**
   * Ends every holding of a ResourceClaim (NodeUnprepareResources) and releases the shares nobody
   * else holds; idempotent: a claim unknown here (never prepared, or unprepared already) gives 0.
   */
  async unprepareClaim(uid: string, why: string): Promise<number> {
    const recs = this.o.ledger.byClaim(uid);
    if (recs.length === 0) return 0;
    return this.unclaimShares(uid, why, recs.map((r) => r.share));
  }

  /** The shares a claim holds, as recorded (for the driver's answer after a restart, and status). */
  claimHoldings(uid: string): Array<Readonly<ClaimRecord>> {
    return this.o.ledger.byClaim(uid);
  }

  /** Ends a claim's holding of `shares`, then releases each one nobody holds any more. */
  private async unclaimShares(uid: string, why: string, shares: ReadonlyArray<{ namespace: string; name: string }>): Promise<number> {
    const ended: Array<Readonly<ClaimRecord>> = [];
    const all = this.o.ledger.byClaim(uid).length;
    if (shares.length && shares.length === all) ended.push(...(await this.o.ledger.unclaim(uid, why)));
    else for (const sh of shares) ended.push(...(await this.o.ledger.unclaim(uid, why, sh)));
    for (const r of ended) this.ev.unclaimed?.(r, why);
    for (const r of ended) await this.releaseIfUnused(r.share.namespace, r.share.name, `last holder ended (${why})`);
    return ended.length;
  }

  /**
   * Makes one share present (within the backend's budget) and records the holder's binding.
   * `decl` is undefined only for a share a claim holds already whose declaration went: it keeps it.
   */
  private async bindOne(holder: Holder, ref: { namespace: string; name: string; readOnly: boolean }, decl: ShareDeclaration | undefined, deadline: number | undefined): Promise<ShareHandle> {
    const key = shareKey(ref.namespace, ref.name);
    let gaveUp = false;
    const task = this.lock.run(key, async () => {
      const handle = decl ? await this.ensurePresent(key, decl) : await this.heldHandle(key);
      // the caller refused the binding meanwhile: keep the share for the kubelet's retry, bind nothing
      if (gaveUp) return handle;
      const t = this.now();
      if (holder.kind === 'container') {
        const { pod, ctr } = holder;
        const rec: BindingRecord = {
          share: { namespace: ref.namespace, name: ref.name },
          pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid, sandboxId: pod.id },
          container: { id: ctr.id, name: ctr.name },
          readOnly: ref.readOnly,
          state: 'bound',
          createdAt: t,
          updatedAt: t,
        };
        await this.o.ledger.bind(rec);
        if (gaveUp) {
          await this.o.ledger.end(ctr.id, 'creation refused (budget)');
          return handle;
        }
        this.ev.bound?.(rec);
      } else if (holder.record) {
        const { claim } = holder;
        const rec: ClaimRecord = {
          share: { namespace: ref.namespace, name: ref.name },
          claim: { namespace: claim.namespace, name: claim.name, uid: claim.uid },
          readOnly: ref.readOnly,
          createdAt: t,
        };
        await this.o.ledger.claim(rec);
        if (gaveUp) {
          await this.o.ledger.unclaim(claim.uid, 'preparation refused (budget)', rec.share);
          return handle;
        }
        this.ev.claimed?.(rec);
      }
      // bound again (the kubelet recreated an evicted container): the grace period is over
      if (this.keepUntil.delete(key)) await this.o.ledger.hold({ handle }).catch(() => undefined);
      return handle;
    });
    const budget = this.budgetMs(deadline);
    if (budget === undefined) return task;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        gaveUp = true;
        void task.then(() => this.releaseLaterIfUnused(ref.namespace, ref.name), () => undefined);
        const msg = decl ? this.o.backend.pendingMessage(decl) : `share ${key} is still being made ready on this node; the kubelet will retry`;
        reject(new RefusalError(`memshare: ${describeHolder(holder)}: ${msg}`, 'pending'));
      }, budget);
    });
    try {
      return await Promise.race([task, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Under the share's lock: the handle of a share held already (restored first after a restart). */
  private async heldHandle(key: string): Promise<ShareHandle> {
    const have = this.present.get(key);
    if (!have) throw new Error(`share ${key} is recorded for this claim but is no longer present on this node, and its ShareMemory is gone, so it cannot be made again`);
    return this.unrestored.has(key) ? this.restoreOne(have) : have;
  }

  /** The time a binding may wait for the backend in this request, or undefined for no limit. */
  private budgetMs(deadline: number | undefined): number | undefined {
    const own = this.o.backend.acquireBudgetMs;
    if (own === undefined) return undefined;
    const left = deadline === undefined ? own : deadline - Date.now() - ANSWER_MARGIN_MS;
    return Math.max(0, Math.min(own, left));
  }

  /** Under the share's lock: the present handle, acquiring (and recording) it when needed. */
  private async ensurePresent(key: string, decl: ShareDeclaration): Promise<ShareHandle> {
    let have = this.present.get(key);
    // a binding made before the background restore reached this share would get the last run's
    // device numbers: restore it first (under the share's lock, as restoreAll does)
    if (have && this.unrestored.has(key)) have = await this.restoreOne(have);
    // what it was acquired for (the size; local: the exec setting): nothing to do (a later binding's path)
    if (have && this.o.backend.serves(have, decl)) return have;
    let p = this.acquiring.get(key);
    if (!p) {
      p = (async () => {
        // a durable backend's share outlives the agent: recorded (by name) before it is made, so
        // that an agent killed between making and recording it finds it to release at reconcile
        const intent = this.o.backend.durable && !this.o.ledger.heldShare(decl.namespace, decl.name);
        if (intent) await this.o.ledger.hold({ handle: placeholderHandle(this.o.backend.kind, decl.namespace, decl.name) });
        let handle: ShareHandle;
        try {
          handle = await this.o.backend.acquire(decl);
        } catch (err) {
          // the backend undid what this call made: the intent goes (unless a release took it over)
          if (intent && !this.o.ledger.heldShare(decl.namespace, decl.name)?.releasing) await this.o.ledger.drop(decl.namespace, decl.name).catch(() => undefined);
          throw err;
        }
        // recorded before any binding of it: a restarted agent must find what to release
        await this.o.ledger.hold({ handle });
        this.present.set(key, handle);
        this.unrestored.delete(key);
        this.cancelRetry(key);
        return handle;
      })();
      this.acquiring.set(key, p);
      const clear = () => {
        if (this.acquiring.get(key) === p) this.acquiring.delete(key);
      };
      p.then(clear, clear);
    }
    return p;
  }

  /** A share acquired for a refused binding: released after a grace period unless bound by then. */
  private releaseLaterIfUnused(namespace: string, name: string): void {
    const t = setTimeout(() => {
      if (this.closed) return;
      this.releaseIfUnused(namespace, name, 'acquired for a refused binding and not bound since').catch((err) =>
        this.ev.warn?.(`releasing share ${shareKey(namespace, name)} failed`, { err: messageOf(err) }));
    }, this.o.abandonedGraceMs ?? 120_000);
    t.unref();
  }

  /** Ends every binding of a container (exit, removal, failed creation); idempotent. */
  async endContainer(containerId: string, why: string): Promise<number> {
    const recs = this.boundRecords(containerId);
    if (recs.length === 0) return 0;
    await this.o.ledger.end(containerId, why);
    for (const r of recs) this.ev.unbound?.(r, why);
    for (const r of recs) await this.releaseIfUnused(r.share.namespace, r.share.name, `last user ended (${why})`);
    return recs.length;
  }

  /** Ends every binding of a pod's containers (RemovePodSandbox); idempotent. */
  async endPod(sandboxId: string, why: string): Promise<number> {
    const ids = new Set(this.o.ledger.all().filter((r) => r.state === 'bound' && r.pod.sandboxId === sandboxId).map((r) => r.container.id));
    let n = 0;
    for (const id of ids) n += await this.endContainer(id, why);
    return n;
  }

  /**
   * Brings records and mounts in line with the runtime's containers (NRI Synchronize):
   * bindings of containers that are gone or stopped end; shares nobody holds are released;
   * live containers that asked for shares but hold no binding are returned for eviction.
   */
  async reconcile(pods: PodInfo[], containers: ContainerInfo[]): Promise<ReconcileReport> {
    const report: ReconcileReport = { ended: 0, released: [], orphansReleased: [], evict: [] };
    const live = new Map(containers.filter((c) => c.state === 'created' || c.state === 'running' || c.state === 'paused').map((c) => [c.id, c]));
    const gone = new Set<string>();
    for (const r of this.o.ledger.all()) if (r.state === 'bound' && !live.has(r.container.id)) gone.add(r.container.id);
    // all at once: the ledger commits concurrent ends together, and Synchronize has 2 s in all
    const ended = await Promise.all([...gone].map((id) => this.o.ledger.end(id, 'gone at reconcile')));
    const touched = new Map<string, { namespace: string; name: string }>();
    for (const recs of ended) {
      report.ended += recs.length;
      for (const r of recs) {
        touched.set(shareKey(r.share.namespace, r.share.name), r.share);
        this.ev.unbound?.(r, 'gone at reconcile');
      }
    }
    const releases: Array<Promise<unknown>> = [];
    for (const sh of touched.values()) releases.push(this.releaseIfUnused(sh.namespace, sh.name, 'last user gone at reconcile'));

    // shares present or recorded that no binding explains (e.g. the agent died between acquire
    // and record, or before the last user's release)
    const held = new Set(this.o.ledger.all().filter((r) => r.state === 'bound').map((r) => shareKey(r.share.namespace, r.share.name)));
    // a claim's holding ends only at its unprepare, never here
    for (const c of this.o.ledger.allClaims()) held.add(shareKey(c.share.namespace, c.share.name));
    const unexplained = new Map<string, ShareHandle>();
    for (const h of this.o.ledger.held()) unexplained.set(shareKey(h.handle.namespace, h.handle.name), h.handle);
    for (const p of await this.o.backend.present()) unexplained.set(shareKey(p.namespace, p.name), p);
    for (const [key, p] of unexplained) {
      if (held.has(key) || touched.has(key) || this.acquiring.has(key)) continue;
      releases.push(
        this.lock.run(key, async () => {
          if (this.activeBindings(p.namespace, p.name) > 0 || this.acquiring.has(key)) return;
          if (this.keepForEvicted(p.namespace, p.name, 'orphan at reconcile')) return;
          const at = this.o.backend.locationOf(p);
          const where = at ? ` at ${at}` : '';
          this.ev.warn?.(`share ${key} is present${where} but no binding holds it; releasing it`);
          if (await this.releaseNow(p, 'orphan at reconcile')) report.orphansReleased.push(key);
        }),
      );
    }
    // Synchronize has the runtime's request timeout in all: a slow backend goes on in the background
    const waitMs = this.o.backend.acquireBudgetMs;
    const all = Promise.all(releases.map((r) => r.catch((err) => this.ev.warn?.('release at reconcile failed', { err: messageOf(err) }))));
    if (waitMs === undefined) await all;
    else await Promise.race([all, new Promise((r) => setTimeout(r, waitMs).unref())]);

    const podsById = new Map(pods.map((p) => [p.id, p]));
    for (const c of live.values()) {
      const pod = podsById.get(c.podSandboxId);
      if (!pod) continue;
      const why = this.eviction(pod, c);
      if (why) report.evict.push({ containerId: c.id, pid: c.pid ?? 0, reason: why.reason, pod: shareKey(pod.namespace, pod.name), container: c.name, shares: why.shares });
    }
    return report;
  }

  /**
   * Why a container must be evicted because it runs without shares its annotations ask for and
   * holds no binding of; undefined when it has them all (or asks for none). For a container the
   * agent never saw: created after one agent died and started after the next one's Synchronize,
   * which does not list it because the runtime stores a container only once its creation is done.
   * Also when it holds its bindings but its mounts show they never reached it (see lostInjection).
   */
  evictionReason(pod: PodInfo, ctr: Pick<ContainerInfo, 'id' | 'name' | 'mounts'>): string | undefined {
    return this.eviction(pod, ctr)?.reason;
  }

  /** evictionReason's answer, with the shares it concerns (reconcile reports them). */
  private eviction(pod: PodInfo, ctr: Pick<ContainerInfo, 'id' | 'name' | 'mounts'>): { reason: string; shares: string[] } | undefined {
    let refs;
    try {
      refs = parseBinding(pod.annotations, pod.namespace, ctr.name, { maxNameLength: this.o.limits.maxNameLength }).refs;
    } catch {
      return undefined; // a bad annotation could never have been created with us present
    }
    if (refs.length === 0) return undefined;
    const missing = unbound(this.boundRecords(ctr.id), refs);
    if (missing.length) return { reason: createdWithout(missing), shares: missing.map((r) => shareKey(r.namespace, r.name)) };
    const lost = this.lostInjection(ctr, pod.namespace);
    return lost ? { reason: lost, shares: refs.map((r) => shareKey(r.namespace, r.name)) } : undefined;
  }

  /**
   * Why a container recorded as bound does not show what its bindings add, from its mounts as the
   * runtime reports them, or undefined. This is the trace of an answer that never reached the
   * runtime or reached it after its deadline: NRI then fails open, and the container runs without
   * the share while the binding is on record. (A runtime that reports no mounts at all is not
   * judged: every real container has some.)
   */
  private lostInjection(c: Pick<ContainerInfo, 'id' | 'name' | 'mounts'>, podNamespace: string): string | undefined {
    if (!c.mounts || c.mounts.length === 0) return undefined;
    const has = new Set(c.mounts);
    const lost: string[] = [];
    for (const r of this.boundRecords(c.id)) {
      const want = this.expectedMounts(c, podNamespace, r);
      if (want.some((m) => !has.has(m))) lost.push(`${shareKey(r.share.namespace, r.share.name)} (${want.filter((m) => !has.has(m)).join(', ')} not among its mounts)`);
    }
    if (!lost.length) return undefined;
    return `memshare: recorded as bound to ${lost.join('; ')}: the agent's answer did not reach the runtime in time, so the container was created without it; evicted so it is recreated with it`;
  }

  /** The mount destinations a container bound by record `r` must show. */
  private expectedMounts(c: Pick<ContainerInfo, 'id' | 'name'>, podNamespace: string, r: Readonly<BindingRecord>): string[] {
    const handle = this.present.get(shareKey(r.share.namespace, r.share.name)) ?? placeholderHandle(this.o.backend.kind, r.share.namespace, r.share.name);
    const ref = r.share.namespace === podNamespace ? r.share.name : shareKey(r.share.namespace, r.share.name);
    return this.o.backend.attach([{ handle, readOnly: r.readOnly, ref }]).mounts.map((m) => m.destination);
  }

  private boundRecords(containerId: string): Array<Readonly<BindingRecord>> {
    return this.o.ledger.byContainer(containerId).filter((r) => r.state === 'bound');
  }

  /** Shares present on this node, for status and metrics. */
  presentShares(): ShareHandle[] {
    return [...this.present.values()];
  }

  /** Shares whose release is failing, for status and metrics. */
  pendingReleases(): Array<Readonly<HeldShare>> {
    return this.o.ledger.held().filter((h) => h.releasing);
  }

  /** Holders of a share: containers bound to it and claims prepared with it. */
  private activeBindings(namespace: string, name: string): number {
    return this.o.ledger.byShare(namespace, name).filter((r) => r.state === 'bound').length + this.o.ledger.claimsByShare(namespace, name).length;
  }

  private nodeBytes(): number {
    let n = 0;
    for (const s of this.present.values()) n += s.sizeBytes;
    return n;
  }

  private releaseIfUnused(namespace: string, name: string, why: string): Promise<void> {
    const key = shareKey(namespace, name);
    return this.lock.run(key, async () => {
      if (this.activeBindings(namespace, name) > 0 || this.acquiring.has(key)) return;
      if (this.keepForEvicted(namespace, name, why)) return;
      // not known as present (e.g. an older agent's records): the backend call is idempotent anyway
      const handle = this.present.get(key) ?? this.o.ledger.heldShare(namespace, name)?.handle ?? placeholderHandle(this.o.backend.kind, namespace, name);
      await this.releaseNow(handle, why);
    });
  }

  /**
   * Under the share's lock: releases it and forgets it; true when released. A failure is recorded
   * with the handle (so it survives restarts) and retried with backoff when it may pass; a failure
   * that will not pass by waiting is thrown after being recorded.
   */
  private async releaseNow(handle: ShareHandle, why: string): Promise<boolean> {
    const { namespace, name } = handle;
    const key = shareKey(namespace, name);
    try {
      await this.o.backend.release(handle);
    } catch (err) {
      this.present.delete(key); // half-released (UB: unmapped, not deallocated): acquire again to reuse
      const prev = this.o.ledger.heldShare(namespace, name)?.releasing;
      const attempts = (prev?.attempts ?? 0) + 1;
      const retryable = err instanceof RetryableError;
      const delay = Math.min((this.o.releaseRetryMs ?? 1000) * 2 ** (attempts - 1), this.o.releaseRetryMaxMs ?? 300_000);
      const t = this.now();
      await this.o.ledger.hold({
        handle,
        releasing: { attempts, lastError: messageOf(err), retryable, since: prev?.since ?? t, nextAttemptAt: retryable ? t + delay : 0 },
      });
      this.ev.releaseFailed?.(namespace, name, messageOf(err), retryable ? t + delay : undefined);
      if (!retryable) throw err;
      this.scheduleRelease(namespace, name, delay);
      return false;
    }
    this.cancelRetry(key);
    this.present.delete(key);
    await this.o.ledger.drop(namespace, name);
    this.ev.released?.(namespace, name, why);
    return true;
  }

  private scheduleRelease(namespace: string, name: string, delayMs: number): void {
    const key = shareKey(namespace, name);
    if (this.closed) return;
    clearTimeout(this.retryTimers.get(key));
    const t = setTimeout(() => {
      this.retryTimers.delete(key);
      this.lock
        .run(key, async () => {
          const held = this.o.ledger.heldShare(namespace, name);
          if (!held?.releasing) return; // acquired again meanwhile
          if (this.activeBindings(namespace, name) > 0 || this.acquiring.has(key)) {
            await this.o.ledger.hold({ handle: held.handle }); // in use again: no release pending
            return;
          }
          await this.releaseNow(held.handle, `retry ${held.releasing.attempts + 1} of a failed release`);
        })
        .catch((err) => this.ev.warn?.(`release of share ${key} failed`, { err: messageOf(err) }));
    }, delayMs);
    t.unref();
    this.retryTimers.set(key, t);
  }

  private cancelRetry(key: string): void {
    clearTimeout(this.retryTimers.get(key));
    this.retryTimers.delete(key);
  }

  /**
   * After a restart: makes every recorded share usable again (UB: the last agent's mappings died
   * with it). A share whose device numbers changed leaves its containers stale: they are evicted.
   */
  private async restoreAll(): Promise<void> {
    for (const h of this.o.ledger.held()) {
      if (h.releasing) continue;
      const { namespace, name } = h.handle;
      const key = shareKey(namespace, name);
      await this.lock.run(key, async () => {
        if (this.activeBindings(namespace, name) === 0) return; // reconcile releases it
        if (!this.unrestored.has(key)) return; // a binding restored it meanwhile
        await this.restoreOne(this.present.get(key) ?? h.handle).catch(() => undefined);
      });
    }
  }

  /**
   * Under the share's lock: true when a share kept for its evicted holders must not go yet; a
   * release is then tried again at the end of the grace period.
   */
  private keepForEvicted(namespace: string, name: string, why: string): boolean {
    const key = shareKey(namespace, name);
    const until = this.keepUntil.get(key);
    if (until === undefined) return false;
    const left = until - this.now();
    if (left <= 0) {
      this.keepUntil.delete(key);
      return false;
    }
    const t = setTimeout(() => {
      if (this.closed) return;
      this.releaseIfUnused(namespace, name, `${why}; kept ${Math.round(this.o.backend.staleGraceMs / 1000)} s for its evicted containers, none came back`).catch((err) =>
        this.ev.warn?.(`releasing share ${key} failed`, { err: messageOf(err) }));
    }, left + 10);
    t.unref();
    return true;
  }

  /** Under the share's lock: re-makes a recorded share usable, evicting holders whose device numbers went stale. */
  private async restoreOne(handle: ShareHandle): Promise<ShareHandle> {
    const { namespace, name } = handle;
    const key = shareKey(namespace, name);
    let fresh: ShareHandle;
    try {
      fresh = await this.o.backend.restore(handle);
    } catch (err) {
      if (err instanceof RetryableError) {
        // busy (the daemon's delayed removal after a holder died), network: it passes; the
        // containers keep running meanwhile, and are evicted once the share is back if its
        // device numbers changed
        this.ev.warn?.(`cannot restore share ${key} yet; retrying`, { err: messageOf(err) });
        this.scheduleRestore(key);
        throw err;
      }
      this.ev.warn?.(`cannot restore share ${key} after the restart; its containers are evicted`, { err: messageOf(err) });
      for (const r of this.o.ledger.byShare(namespace, name)) this.evictListener?.(r.container.id, `memshare: share ${key} could not be restored after an agent restart (${messageOf(err)}); evicted so it is recreated with it`);
      this.warnClaims(namespace, name, `could not be restored after an agent restart (${messageOf(err)})`);
      throw err;
    }
    this.unrestored.delete(key);
    this.restoreAttempts.delete(key);
    this.present.set(key, fresh);
    if (!sameData(fresh, handle)) {
      const holders = this.o.ledger.byShare(namespace, name).filter((r) => r.state === 'bound');
      // an eviction is not a release: the share and its data wait for the recreated containers
      const graceMs = this.o.backend.staleGraceMs;
      const keepUntil = holders.length && graceMs > 0 ? this.now() + graceMs : undefined;
      if (keepUntil !== undefined) this.keepUntil.set(key, keepUntil);
      await this.o.ledger.hold(keepUntil !== undefined ? { handle: fresh, keepUntil } : { handle: fresh });
      for (const r of holders) {
        this.evictListener?.(r.container.id, `memshare: share ${key} came back with other device numbers (it was detached from this node: the UB holder or the daemon restarted); the container's are stale; evicted so it is recreated with the new ones`);
      }
      this.warnClaims(namespace, name, 'came back with other device numbers (the UB holder or the daemon restarted); the CDI spec of a claim prepared again gets the new ones');
    }
    return fresh;
  }

  /**
   * Claims holding a share that went stale: the agent knows no container of a claim (the kubelet
   * passes them CDI ids), so it can only say so.
   */
  private warnClaims(namespace: string, name: string, what: string): void {
    for (const c of this.o.ledger.claimsByShare(namespace, name)) {
      this.ev.warn?.(`share ${shareKey(namespace, name)} ${what}: the containers of ${claimName(c.claim)} (uid ${c.claim.uid}) run with what they got at their creation`, { claim: c.claim.uid });
    }
  }

  /** Tries a restore that failed for a passing reason again, with backoff. */
  private scheduleRestore(key: string): void {
    if (this.closed || this.restoreTimers.has(key)) return;
    const attempt = (this.restoreAttempts.get(key) ?? 0) + 1;
    this.restoreAttempts.set(key, attempt);
    const delay = Math.min(1000 * 2 ** (attempt - 1), 30_000);
    const t = setTimeout(() => {
      this.restoreTimers.delete(key);
      if (this.closed || !this.unrestored.has(key)) return;
      void this.lock.run(key, async () => {
        const h = this.present.get(key);
        if (!h || !this.unrestored.has(key)) return;
        await this.restoreOne(h).catch(() => undefined);
      });
    }, delay);
    t.unref();
    this.restoreTimers.set(key, t);
  }
}

/** A handle for a share known only by name (records from before handles were kept). */
function placeholderHandle(backend: string, namespace: string, name: string): ShareHandle {
  return { backend, namespace, name, sizeBytes: 0, requestedBytes: 0, data: {} };
}

function sameData(a: ShareHandle, b: ShareHandle): boolean {
  return JSON.stringify(a.data) === JSON.stringify(b.data);
}

/** One ref per share, in first-seen order; read-write when any of its refs is (two requests of one claim). */
function mergeRefs(refs: readonly ShareRef[]): ShareRef[] {
  const out = new Map<string, ShareRef>();
  for (const r of refs) {
    const key = shareKey(r.namespace, r.name);
    const prev = out.get(key);
    out.set(key, { namespace: r.namespace, name: r.name, readOnly: (prev?.readOnly ?? true) && r.readOnly });
  }
  return [...out.values()];
}

/** The refs no record binds. */
function unbound(records: ReadonlyArray<Readonly<BindingRecord>>, refs: ReadonlyArray<{ namespace: string; name: string }>): Array<{ namespace: string; name: string }> {
  const bound = new Set(records.map((r) => shareKey(r.share.namespace, r.share.name)));
  return refs.filter((r) => !bound.has(shareKey(r.namespace, r.name)));
}

const createdWithout = (missing: ReadonlyArray<{ namespace: string; name: string }>): string =>
  `memshare: created without its shared memory (${missing.map((r) => shareKey(r.namespace, r.name)).join(', ')}) while the agent was down; evicted so it is recreated with it`;
