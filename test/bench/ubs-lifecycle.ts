// In-process costs of a UB binding through the UBS backend (its UB holder process included) and the
// memshare service, with the SDK test double (native/ubs/double) at zero delay and a real ledger with fdatasync (ubs makes
// "auto" sync): a node's first binding of a share (allocate, list, map, lookup, two records),
// later bindings (one record), and the release at the last exit (unmap, deallocate, records); and
// where a later binding's time goes (ledger appends, fdatasyncs, thread-pool writes, time in the ledger).
// The double is a file-backed stand-in: these figures are the agent's own overhead (koffi async
// calls, thread-pool hops, records), not the real daemon's. Writes test/bench/results/ubs.json.
// usage: node dist/test/bench/ubs-lifecycle.js [samples]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { UbsBackend, defaultUbsConfig } from '../../plugin/backends/ubs';
import { DEFAULT_LIMITS, type ContainerInfo, type PodInfo, type ShareDeclaration } from '../../plugin/model';
import { fmt, percentiles, round, type Percentiles } from './stats';

const repo = join(__dirname, '..', '..', '..');
const out = join(repo, 'dist', 'native', 'ubs');
const r3 = (p: Percentiles) => ({ n: p.n, p50: round(p.p50), p90: round(p.p90), p99: round(p.p99) });

async function main(): Promise<void> {
  const samples = Number(process.argv[2] ?? 200);
  const b = spawnSync('bash', [join(repo, 'native', 'ubs', 'build.sh'), out], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`build.sh: ${b.stderr}`);
  const root = mkdtempSync('/var/tmp/memshare-ubs-bench-');
  const daemonDir = join(root, 'matrix', 'memory');
  const devDir = join(root, 'dev');
  const stateDir = join(root, 'state');
  mkdirSync(devDir);
  mkdirSync(stateDir, { mode: 0o777 });
  mkdirSync(join(root, 'agent')); // the UB holder's socket and log (the backend starts a holder, as on a node)
  writeFileSync(join(root, 'proc-devices'), 'Character devices:\n509 OBMM_SHMDEV\n');
  Object.assign(process.env, {
    UBSM_DOUBLE_DIR: daemonDir, UBSM_DOUBLE_STATE: stateDir, UBSM_DOUBLE_DEV_DIR: devDir,
    UBSM_DOUBLE_OBMM: join(out, 'lib', 'libobmm.so.1'), UBSM_DOUBLE_MAJOR: '509', HCOM_CONNECTION_RETRY_TIMES: '1',
  });
  const standin = spawn(join(out, 'bin', 'ubsmd-standin'), [join(daemonDir, 'MxmAgentIpcServer'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => standin.stdout!.once('data', r));
  const backend = new UbsBackend({ ...defaultUbsConfig(), sdkLibrary: join(out, 'lib', 'libubsm_sdk.so'), procDevices: join(root, 'proc-devices'), hostDevDir: devDir, groups: [], budgetMs: 60_000 }, { stateDir: join(root, 'agent') });
  backend.start();
  while (backend.unavailable()) await new Promise((r) => setTimeout(r, 10));
  const decls: ShareDeclaration[] = Array.from({ length: samples + 1 }, (_, i) => ({ namespace: 'bench', name: `s${i}`, sizeBytes: 128 << 20, allowedNamespaces: [], origin: 'bench' }));
  const { ledger } = await Ledger.open(join(root, 'ledger'), { sync: true });
  const service = new MemshareService({ backend, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('bench', decls)]), limits: { ...DEFAULT_LIMITS, maxNodeBytes: 1024 * 1024 ** 3 } });
  await service.init();
  let n = 0;
  const mk = (share: string): { pod: PodInfo; ctr: ContainerInfo } => {
    const pod: PodInfo = { id: `sb-${++n}`, name: `pod-${n}`, namespace: 'bench', uid: `uid-${n}`, annotations: { 'memshare.nri.io/pod': share } };
    return { pod, ctr: { id: `ctr-${n}-${'c'.repeat(52)}`, podSandboxId: pod.id, name: 'app', state: 'created' } };
  };
  try {
    const first: number[] = [];
    const later: number[] = [];
    const release: number[] = [];
    const held = mk('s0');
    await service.createContainer(held.pod, held.ctr);
    for (let i = 0; i < samples; i++) {
      const a = mk(`s${i + 1}`);
      let t = performance.now();
      await service.createContainer(a.pod, a.ctr);
      first.push(performance.now() - t);
      const c = mk('s0');
      t = performance.now();
      await service.createContainer(c.pod, c.ctr);
      later.push(performance.now() - t);
      await service.endContainer(c.ctr.id, 'bench');
      t = performance.now();
      await service.endContainer(a.ctr.id, 'bench');
      release.push(performance.now() - t);
    }
    // where a later binding's time goes: the ledger's calls counted and timed around it
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('node:fs') as typeof import('node:fs');
    const saved = { write: fs.write, writeSync: fs.writeSync, fdatasync: fs.fdatasync, bind: ledger.bind, end: ledger.end, hold: ledger.hold };
    const count = { appends: 0, asyncWrites: 0, inlineWrites: 0, fdatasyncs: 0 };
    const syncMs: number[] = [];
    let timing = false; // only the later bindings' own calls are timed
    const ledgerMs: number[] = [];
    const total: number[] = [];
    let disk = 0; // ms in the ledger's thread-pool calls (write, fdatasync) of the binding being timed
    fs.write = ((...a: unknown[]) => {
      count.asyncWrites++;
      const t = performance.now();
      const mine = timing;
      const cb = a[a.length - 1] as (...r: unknown[]) => void;
      a[a.length - 1] = (...r: unknown[]) => (mine && (disk += performance.now() - t), cb(...r));
      (saved.write as (...x: unknown[]) => void)(...a);
    }) as typeof fs.write;
    fs.writeSync = ((...a: unknown[]) => (count.inlineWrites++, (saved.writeSync as (...x: unknown[]) => number)(...a))) as typeof fs.writeSync;
    fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
      count.fdatasyncs++;
      const t = performance.now();
      const mine = timing;
      saved.fdatasync(fd, (e) => (mine && (disk += performance.now() - t), cb(e)));
    }) as typeof fs.fdatasync;
    for (const op of ['bind', 'end', 'hold'] as const) {
      const orig = saved[op] as (...a: unknown[]) => Promise<unknown>;
      (ledger as unknown as Record<string, unknown>)[op] = async (...a: unknown[]) => {
        count.appends++;
        const t = performance.now();
        try {
          return await orig.apply(ledger, a);
        } finally {
          if (op === 'bind' && timing) ledgerMs.push(performance.now() - t);
        }
      };
    }
    const before = { ...count };
    const K = Math.min(samples, 200);
    for (let i = 0; i < K; i++) {
      const c = mk('s0');
      timing = true;
      disk = 0;
      const t = performance.now();
      await service.createContainer(c.pod, c.ctr);
      total.push(performance.now() - t);
      timing = false;
      syncMs.push(disk);
      const w = { ...count };
      await service.endContainer(c.ctr.id, 'bench');
      // the end's own calls are not the binding's
      for (const k of Object.keys(count) as Array<keyof typeof count>) count[k] = w[k];
    }
    const perLater = { ...count };
    // and a node's first binding of a share (then released again), for its count
    const F = 20;
    for (let i = 0; i < F; i++) {
      const c = mk(`s${i + 1}`);
      await service.createContainer(c.pod, c.ctr);
      const w = { ...count };
      await service.endContainer(c.ctr.id, 'bench');
      for (const k of Object.keys(count) as Array<keyof typeof count>) count[k] = w[k];
    }
    const first1 = { ...count };
    const perFirst = (k: keyof typeof count) => round((first1[k] - perLater[k]) / F, 2);
    Object.assign(count, perLater);
    Object.assign(fs, { write: saved.write, writeSync: saved.writeSync, fdatasync: saved.fdatasync });
    Object.assign(ledger, { bind: saved.bind, end: saved.end, hold: saved.hold });
    const per = (k: keyof typeof count) => round((count[k] - before[k]) / K, 2);
    const breakdown = {
      bindings: K,
      perBinding: { ledgerAppends: per('appends'), fdatasyncs: per('fdatasyncs'), threadPoolWrites: per('asyncWrites'), inlineWrites: per('inlineWrites') },
      perFirstBindingOnNode: { ledgerAppends: perFirst('appends'), fdatasyncs: perFirst('fdatasyncs'), threadPoolWrites: perFirst('asyncWrites') },
      totalMs: r3(percentiles(total)),
      inLedgerBindMs: r3(percentiles(ledgerMs)),
      // the journal's write and fdatasync calls, each from call to callback, summed per binding
      ledgerThreadPoolCallsMs: r3(percentiles(syncMs)),
      // per binding: its total minus its time in ledger.bind (parse, authorize, lock, injection)
      outsideLedgerMs: r3(percentiles(total.map((t, i) => t - ledgerMs[i]))),
    };
    console.log(`UB later binding, where the time goes (${K} bindings): per binding ${breakdown.perBinding.ledgerAppends} ledger append(s), ${breakdown.perBinding.fdatasyncs} fdatasync(s), ${breakdown.perBinding.threadPoolWrites} thread-pool write(s), ${breakdown.perBinding.inlineWrites} inline write(s); total p50 ${breakdown.totalMs.p50} ms, in ledger.bind p50 ${breakdown.inLedgerBindMs.p50} ms (its thread-pool write/fdatasync calls, call to callback: p50 ${breakdown.ledgerThreadPoolCallsMs.p50} ms), the rest p50 ${breakdown.outsideLedgerMs.p50} ms; a first binding on the node: ${breakdown.perFirstBindingOnNode.ledgerAppends} appends (${breakdown.perFirstBindingOnNode.threadPoolWrites} thread-pool writes, ${breakdown.perFirstBindingOnNode.fdatasyncs} fdatasyncs)`);
    await service.endContainer(held.ctr.id, 'bench');
    const res = {
      note: 'UBS backend (with its UB holder) + memshare service, SDK test double at zero delay, ledger synced (O_DSYNC journal); ms',
      laterBindingBreakdown: breakdown,
      firstBindingOnNodeMs: r3(percentiles(first)),
      laterBindingMs: r3(percentiles(later)),
      releaseAtLastExitMs: r3(percentiles(release)),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      at: new Date().toISOString(),
    };
    console.log(`UB first binding on the node (allocate, list, map, lookup, hold + bind records): ${fmt(percentiles(first))}`);
    console.log(`UB later binding (bind record): ${fmt(percentiles(later))}`);
    console.log(`UB release at the last exit (end record, unmap, deallocate, drop record): ${fmt(percentiles(release))}`);
    mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
    writeFileSync(join(repo, 'test', 'bench', 'results', 'ubs.json'), `${JSON.stringify(res, null, 2)}\n`);
  } finally {
    await ledger.close();
    await backend.stopHolder(); // the holder this benchmark's backend started
    await backend.close();
    standin.kill();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
