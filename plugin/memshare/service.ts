// The memshare service: what happens to shares when containers come and go. It decides and
// records; the backend makes memory present or absent; the ledger remembers who holds what.
// Knows nothing of wire formats: the NRI adapter (plugin.ts) calls it with plain objects.
import { parseBinding } from './annotations';
import { authorize } from './authorize';
import { KeyedLock } from './keyed-lock';
import { shareKey } from './names';
import {
  RefusalError,
  type AcquiredShare,
  type Backend,
  type ContainerInfo,
  type ContainerInjection,
  type Limits,
  type PodInfo,
} from './types';
import type { DeclarationStore } from '../declarations/store';
import type { BindingRecord, Ledger } from '../ledger';

export interface ServiceEvents {
  bound?(rec: BindingRecord): void;
  refused?(reason: string, message: string): void;
  released?(namespace: string, name: string, why: string): void;
  warn?(msg: string, detail?: object): void;
}

export interface ReconcileReport {
  ended: number;
  released: string[];
  orphansReleased: string[];
  evict: Array<{ containerId: string; pid: number; reason: string }>;
}

export interface ServiceOptions {
  backend: Backend;
  ledger: Ledger;
  declarations: DeclarationStore;
  limits: Limits;
  events?: ServiceEvents;
  now?: () => number;
}

export class MemshareService {
  private readonly lock = new KeyedLock();
  /** shares this node holds right now, by "ns/name" */
  private readonly present = new Map<string, AcquiredShare>();
  private readonly ev: ServiceEvents;
  private readonly now: () => number;

  constructor(private readonly o: ServiceOptions) {
    this.ev = o.events ?? {};
    this.now = o.now ?? Date.now;
  }

  /** Learns which shares are already mounted (after a restart) so limits and reuse see them. */
  async init(): Promise<void> {
    for (const p of await this.o.backend.present()) {
      const decl = this.o.declarations.get(p.namespace, p.name);
      const usage = await this.o.backend.usage(p.namespace, p.name);
      this.present.set(shareKey(p.namespace, p.name), {
        namespace: p.namespace,
        name: p.name,
        hostPath: p.hostPath,
        sizeBytes: usage?.sizeBytes ?? decl?.sizeBytes ?? 0,
      });
    }
  }

  /**
   * The injection for a container being created, or undefined when it asks for no share.
   * Throws RefusalError when the binding cannot be honoured; the container then must not start.
   * Every binding is durably recorded before this returns.
   */
  async createContainer(pod: PodInfo, ctr: ContainerInfo): Promise<ContainerInjection | undefined> {
    let authorized;
    try {
      const binding = parseBinding(pod.annotations, pod.namespace, ctr.name, { maxNameLength: this.o.limits.maxNameLength });
      if (binding.refs.length === 0) return undefined;
      authorized = authorize({
        annotation: binding.annotation,
        refs: binding.refs,
        podNamespace: pod.namespace,
        store: this.o.declarations,
        limits: this.o.limits,
        isPresent: (ns, name) => this.present.has(shareKey(ns, name)),
        nodeBytesInUse: this.nodeBytes(),
      });
    } catch (err) {
      if (err instanceof RefusalError) this.ev.refused?.(err.reason, err.message);
      throw err;
    }
    const injection: ContainerInjection = { mounts: [], env: [] };
    const done: Array<{ key: string }> = [];
    try {
      for (const { ref, declaration } of authorized) {
        const key = shareKey(ref.namespace, ref.name);
        await this.lock.run(key, async () => {
          let share = this.present.get(key);
          if (!share || share.sizeBytes !== declaration.sizeBytes) {
            share = await this.o.backend.acquire(declaration);
            this.present.set(key, share);
          }
          const t = this.now();
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
          done.push({ key });
          this.ev.bound?.(rec);
          const inj = this.o.backend.injection(share, ref);
          injection.mounts.push(...inj.mounts);
          injection.env.push(...inj.env);
        });
      }
    } catch (err) {
      // nothing half-done survives a failed creation: undo this container's bindings
      await this.endContainer(ctr.id, 'creation failed').catch(() => undefined);
      if (err instanceof RefusalError) {
        this.ev.refused?.(err.reason, err.message);
        throw err;
      }
      const msg = `memshare: cannot bind shares for container ${ctr.name} of pod ${pod.namespace}/${pod.name}: ${(err as Error).message}`;
      this.ev.refused?.('backend', msg);
      throw new RefusalError(msg, 'backend');
    }
    return injection;
  }

  /** Ends every binding of a container (exit, removal, failed creation); idempotent. */
  async endContainer(containerId: string, why: string): Promise<number> {
    const recs = this.boundRecords(containerId);
    if (recs.length === 0) return 0;
    await this.o.ledger.end(containerId, why);
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
      for (const r of recs) touched.set(shareKey(r.share.namespace, r.share.name), r.share);
    }
    await Promise.all([...touched.values()].map((sh) => this.releaseIfUnused(sh.namespace, sh.name, 'last user gone at reconcile')));

    // shares mounted that no binding explains (e.g. the agent died between mount and record)
    const held = new Set(this.o.ledger.all().filter((r) => r.state === 'bound').map((r) => shareKey(r.share.namespace, r.share.name)));
    for (const p of await this.o.backend.present()) {
      const key = shareKey(p.namespace, p.name);
      if (held.has(key)) continue;
      await this.lock.run(key, async () => {
        if (this.activeBindings(p.namespace, p.name) > 0) return;
        this.ev.warn?.(`share ${key} is mounted at ${p.hostPath} but no record explains it; releasing it`);
        await this.o.backend.release(p.namespace, p.name);
        this.present.delete(key);
        report.orphansReleased.push(key);
        this.ev.released?.(p.namespace, p.name, 'orphan at reconcile');
      });
    }

    const podsById = new Map(pods.map((p) => [p.id, p]));
    for (const c of live.values()) {
      const pod = podsById.get(c.podSandboxId);
      if (!pod) continue;
      let refs;
      try {
        refs = parseBinding(pod.annotations, pod.namespace, c.name, { maxNameLength: this.o.limits.maxNameLength }).refs;
      } catch {
        continue; // a bad annotation could never have been created with us present; nothing to restore
      }
      if (refs.length === 0) continue;
      const records = this.boundRecords(c.id);
      const missing = unbound(records, refs);
      const unmounted: string[] = [];
      // recorded, but the mount never reached the container: the agent died after recording and
      // before answering, and the runtime went on without it (NRI fails open)
      if (c.mounts && c.mounts.length > 0) {
        const has = new Set(c.mounts);
        for (const r of records) {
          const share = { namespace: r.share.namespace, name: r.share.name, hostPath: '', sizeBytes: 0 };
          const want = this.o.backend.injection(share, { namespace: r.share.namespace, name: r.share.name, readOnly: r.readOnly }).mounts;
          if (want.some((m) => !has.has(m.destination))) unmounted.push(`${shareKey(r.share.namespace, r.share.name)} (${want.map((m) => m.destination).join(', ')} not among its mounts: ${[...has].join(' ')})`);
        }
      }
      if (missing.length) {
        report.evict.push({ containerId: c.id, pid: c.pid ?? 0, reason: createdWithout(missing) });
      } else if (unmounted.length) {
        report.evict.push({
          containerId: c.id,
          pid: c.pid ?? 0,
          reason: `memshare: recorded as bound to ${unmounted.join('; ')}: the agent stopped before its answer reached the runtime; evicted so it is recreated with it`,
        });
      }
    }
    return report;
  }

  /**
   * Why a container must be evicted because it runs without shares its annotations ask for and
   * holds no binding of; undefined when it has them all (or asks for none). For a container the
   * agent never saw: created after one agent died and started after the next one's Synchronize,
   * which does not list it because the runtime stores a container only once its creation is done.
   */
  evictionReason(pod: PodInfo, ctr: Pick<ContainerInfo, 'id' | 'name'>): string | undefined {
    let refs;
    try {
      refs = parseBinding(pod.annotations, pod.namespace, ctr.name, { maxNameLength: this.o.limits.maxNameLength }).refs;
    } catch {
      return undefined; // a bad annotation could never have been created with us present
    }
    const missing = unbound(this.boundRecords(ctr.id), refs);
    return missing.length ? createdWithout(missing) : undefined;
  }

  private boundRecords(containerId: string): Array<Readonly<BindingRecord>> {
    return this.o.ledger.byContainer(containerId).filter((r) => r.state === 'bound');
  }

  /** Shares present on this node, for status and metrics. */
  presentShares(): AcquiredShare[] {
    return [...this.present.values()];
  }

  private activeBindings(namespace: string, name: string): number {
    return this.o.ledger.byShare(namespace, name).filter((r) => r.state === 'bound').length;
  }

  private nodeBytes(): number {
    let n = 0;
    for (const s of this.present.values()) n += s.sizeBytes;
    return n;
  }

  private releaseIfUnused(namespace: string, name: string, why: string): Promise<void> {
    const key = shareKey(namespace, name);
    return this.lock.run(key, async () => {
      if (this.activeBindings(namespace, name) > 0) return;
      if (!this.present.has(key)) {
        // not known as present (e.g. the agent restarted): the backend call is idempotent anyway
      }
      await this.o.backend.release(namespace, name);
      this.present.delete(key);
      this.ev.released?.(namespace, name, why);
    });
  }
}

/** The refs no record binds. */
function unbound(records: ReadonlyArray<Readonly<BindingRecord>>, refs: ReadonlyArray<{ namespace: string; name: string }>): Array<{ namespace: string; name: string }> {
  const bound = new Set(records.map((r) => shareKey(r.share.namespace, r.share.name)));
  return refs.filter((r) => !bound.has(shareKey(r.namespace, r.name)));
}

const createdWithout = (missing: ReadonlyArray<{ namespace: string; name: string }>): string =>
  `memshare: created without its shared memory (${missing.map((r) => shareKey(r.namespace, r.name)).join(', ')}) while the agent was down; evicted so it is recreated with it`;
