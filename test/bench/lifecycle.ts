// In-process costs of the ownership lifecycle, on a real ledger (on disk; with or without an
// fdatasync per change, see config ledger.sync) and the real tmpfs backend: a binding on the request path, the release at container exit (record + umount),
// and a reconcile of 10,000 records against the runtime's containers.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalBackend } from '../../plugin/backends';
import { readMountInfo } from '../../native';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { DEFAULT_LIMITS, type ContainerInfo, type PodInfo, type ShareDeclaration } from '../../plugin/model/types';
import { percentiles, fmt, round, type Percentiles } from './stats';

const r3 = (p: Percentiles) => ({ n: p.n, p50: round(p.p50), p90: round(p.p90), p99: round(p.p99) });

export async function benchLifecycle(sync: boolean, records = 10000, samples = 500): Promise<Record<string, unknown>> {
  const dir = mkdtempSync('/var/tmp/memshare-lifecycle-'); // a real disk: fdatasync costs what it costs
  const sharesDir = join(dir, 'shares');
  const shares: ShareDeclaration[] = Array.from({ length: 100 }, (_, i) => ({ namespace: 'bench', name: `s${i}`, sizeBytes: 128 << 20, allowedNamespaces: [], origin: 'bench' }));
  const { ledger } = await Ledger.open(join(dir, 'state'), { sync });
  const backend = new LocalBackend({ sharesDir });
  const service = new MemshareService({ backend, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('bench', shares)]), limits: DEFAULT_LIMITS });
  await service.init();
  const pods: PodInfo[] = [];
  const ctrs: ContainerInfo[] = [];
  const mk = (i: number, share: string) => {
    const pod: PodInfo = { id: `sandbox-${i}-${'a'.repeat(48)}`, name: `pod-${i}`, namespace: 'bench', uid: `uid-${i}`, annotations: { 'memshare.nri.io/pod': share } };
    const ctr: ContainerInfo = { id: `ctr-${i}-${'c'.repeat(52)}`, podSandboxId: pod.id, name: 'app', state: 'running' };
    return { pod, ctr };
  };
  try {
    // binding on the request path: a share already present (the later-binding case)
    const { pod: hp, ctr: hc } = mk(-1, 's0');
    await service.createContainer(hp, hc);
    const bindMs: number[] = [];
    const releaseMs: number[] = [];
    for (let i = 0; i < samples; i++) {
      const { pod, ctr } = mk(1e6 + i, 's0');
      let t = performance.now();
      await service.createContainer(pod, ctr);
      bindMs.push(performance.now() - t);
      await service.endContainer(ctr.id, 'bench');
    }
    // release at exit: the last holder of a share ends (record + umount)
    for (let i = 0; i < samples; i++) {
      const { pod, ctr } = mk(2e6 + i, 's1');
      await service.createContainer(pod, ctr);
      const t = performance.now();
      await service.endContainer(ctr.id, 'bench');
      releaseMs.push(performance.now() - t);
    }
    await service.endContainer(hc.id, 'bench');
    // 10,000 records over 100 mounted shares, all containers alive
    for (let i = 0; i < records; i++) {
      const { pod, ctr } = mk(i, `s${i % 100}`);
      pods.push(pod);
      ctrs.push(ctr);
    }
    const B = 64;
    for (let i = 0; i < records; i += B) await Promise.all(ctrs.slice(i, i + B).map((c, j) => service.createContainer(pods[i + j], c)));
    const reconcileMs: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const rep = await service.reconcile(pods, ctrs);
      reconcileMs.push(performance.now() - t);
      if (rep.ended || rep.evict.length || rep.orphansReleased.length) throw new Error('reconcile of a consistent node changed something');
    }
    // and once where every container is gone: 10,000 ends and 100 unmounts
    let t = performance.now();
    const gone = await service.reconcile([], []);
    const reconcileAllGoneMs = performance.now() - t;
    if (gone.ended !== records) throw new Error(`expected ${records} ended, got ${gone.ended}`);
    const out = {
      bindOnRequestPathMs: r3(percentiles(bindMs)),
      releaseAtExitMs: r3(percentiles(releaseMs)),
      reconcile10kConsistentMs: r3(percentiles(reconcileMs)),
      reconcile10kAllGoneMs: round(reconcileAllGoneMs),
    };
    console.log(`ledger ${sync ? 'with' : 'without'} fdatasync:`);
    console.log(`binding on the request path (parse, authorize, record): ${fmt(percentiles(bindMs))}`);
    console.log(`release at container exit (ledger + umount of the last holder's share): ${fmt(percentiles(releaseMs))}`);
    console.log(`reconcile of ${records} records, all alive: ${fmt(percentiles(reconcileMs))}; all gone (10k ends, 100 umounts): ${round(reconcileAllGoneMs)} ms`);
    return out;
  } finally {
    await ledger.close();
    for (const p of await backend.present()) await backend.release({ namespace: p.namespace, name: p.name });
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The backend's acquire of a share that is already mounted: the first one by a new backend (an
 * agent just restarted) checks the mount in /proc/self/mountinfo; later ones compare statx's unique
 * mount id with the one checked (Linux 6.8+). Before that check existed, every such acquire read
 * mountinfo, whose size grows with every mount on the node (`mounts` says how many there were).
 */
export async function benchMountedAcquire(samples = 500): Promise<Record<string, unknown>> {
  const dir = mkdtempSync('/var/tmp/memshare-acquire-');
  const opts = { sharesDir: join(dir, 'shares'), stateDir: join(dir, 'state') };
  const decl: ShareDeclaration = { namespace: 'bench', name: 'mounted', sizeBytes: 128 << 20, allowedNamespaces: [], origin: 'bench' };
  const owner = new LocalBackend(opts);
  await owner.acquire(decl);
  try {
    const firstUs: number[] = [];
    const againUs: number[] = [];
    for (let i = 0; i < samples; i++) {
      const b = new LocalBackend(opts);
      let t = performance.now();
      await b.acquire(decl);
      firstUs.push((performance.now() - t) * 1000);
      t = performance.now();
      await b.acquire(decl);
      againUs.push((performance.now() - t) * 1000);
    }
    const mounts = readMountInfo().length;
    const out = { unit: 'us', mounts, firstByNewBackend: r3(percentiles(firstUs)), again: r3(percentiles(againUs)) };
    console.log(`acquire of a mounted share (${mounts} mounts on this machine): by a new backend (mountinfo) ${fmt(percentiles(firstUs), 'us')}; again (mount id) ${fmt(percentiles(againUs), 'us')}`);
    return out;
  } finally {
    await owner.release(decl);
    rmSync(dir, { recursive: true, force: true });
  }
}
