// In-process costs of a UB binding through the UBS backend and the memshare service, with the
// SDK test double (native/ubs/double) at zero delay and a real ledger with fdatasync (ubs makes
// "auto" sync): a node's first binding of a share (allocate, list, map, lookup, two records),
// later bindings (one record), and the release at the last exit (unmap, deallocate, records).
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
  writeFileSync(join(root, 'proc-devices'), 'Character devices:\n509 OBMM_SHMDEV\n');
  Object.assign(process.env, {
    UBSM_DOUBLE_DIR: daemonDir, UBSM_DOUBLE_STATE: stateDir, UBSM_DOUBLE_DEV_DIR: devDir,
    UBSM_DOUBLE_OBMM: join(out, 'lib', 'libobmm.so.1'), UBSM_DOUBLE_MAJOR: '509', HCOM_CONNECTION_RETRY_TIMES: '1',
  });
  const standin = spawn(join(out, 'bin', 'ubsmd-standin'), [join(daemonDir, 'MxmAgentIpcServer'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => standin.stdout!.once('data', r));
  const backend = new UbsBackend({ ...defaultUbsConfig(), sdkLibrary: join(out, 'lib', 'libubsm_sdk.so'), procDevices: join(root, 'proc-devices'), hostDevDir: devDir, groups: [], budgetMs: 60_000 }, { sharesDir: '', stateDir: '' });
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
    await service.endContainer(held.ctr.id, 'bench');
    const res = {
      note: 'UBS backend + memshare service, SDK test double at zero delay, ledger with fdatasync; ms',
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
    await backend.close();
    standin.kill();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
