// The DRA front door's transport cost: NodePrepareResources round trips through the real gRPC layer
// (plugin/kubelet-plugin, in a child process as in the agent) called by the kubelet player
// (test/harness/kubelet-player.ts), beside the NRI door's CreateContainer round trip through the
// project's NRI stub and ttrpc (also a child process, called by the fake runtime of the unit tests),
// interleaved in one run. Both plugins' handlers are trivial (one device / no adjustment), so the
// figures are the doors' own cost, not the memshare core's. Prints the figures and writes
// test/bench/results/dra-grpc.json (committed); never run by the test command, asserts nothing.
//
//   flock /tmp/nri-memshare-tests.lock node dist/test/bench/dra-grpc.js [-n 2000] [--rounds 5]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubeletPlayer } from '../harness/kubelet-player';
import { FakeRuntime, container, pod } from '../support/fake-runtime';
import { percentiles, round } from './stats';

const repo = resolve(__dirname, '..', '..', '..');
const resultsFile = join(repo, 'test', 'bench', 'results', 'dra-grpc.json');
const DRIVER = 'memshare.nri.io';
const args = process.argv.slice(2);
const opt = (name: string, def: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);

// ---- the child processes: the two plugins with trivial handlers ----

async function serveDra(dir: string): Promise<void> {
  const { startKubeletPlugin } = await import('../../plugin/kubelet-plugin');
  const plugin = await startKubeletPlugin({
    driverName: DRIVER,
    registryDir: join(dir, 'registry'),
    pluginDir: join(dir, 'plugin'),
    driver: {
      prepare: async (claims) =>
        new Map(claims.map((c) => [c.uid, { devices: [{ requestNames: [], poolName: 'node-1', deviceName: `${c.name}-0badcafe`, cdiDeviceIds: [`k8s.${DRIVER}/claim=${c.uid}-${c.name}`] }] }])),
      unprepare: async (claims) => new Map(claims.map((c) => [c.uid, undefined])),
    },
  });
  process.once('SIGTERM', () => void plugin.close().then(() => process.exit(0)));
}

async function serveNri(socketPath: string): Promise<void> {
  const { Stub } = await import('../../plugin/nri/stub');
  const stub = new Stub({ createContainer() {}, removeContainer() {}, removePodSandbox() {} }, { socketPath, name: 'bench', index: '50', env: {} });
  void stub.start();
  process.once('SIGTERM', () => void Promise.resolve(stub.stop()).then(() => process.exit(0)));
}

// ---- the bench ----

function child(mode: string, arg: string): ChildProcess {
  const c = spawn(process.execPath, [__filename, mode, arg], { stdio: ['ignore', 'inherit', 'inherit'] });
  return c;
}

function rssKB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  await new Promise<void>((r) => {
    c.once('exit', () => r());
    c.kill('SIGTERM');
  });
}

async function timed(n: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    us.push((performance.now() - t) * 1000);
  }
  return us;
}

async function bench(): Promise<void> {
  const N = opt('-n', 2000);
  const ROUNDS = opt('--rounds', 5);
  const dir = mkdtempSync(join(tmpdir(), 'dra-grpc-bench-'));
  mkdirSync(join(dir, 'registry'));

  const player = await KubeletPlayer.start({ registryDir: join(dir, 'registry') });
  const draChild = child('--serve-dra', dir);
  const dra = await player.plugin(DRIVER, 30_000);
  const rt = await FakeRuntime.start();
  const nriChild = child('--serve-nri', rt.path);
  const { conn } = await rt.registered(0, 30_000);
  await conn.configure({ runtimeVersion: 'v2.1.0' });
  await conn.synchronize([], []);

  const claim = (i: number) => ({ namespace: 'bench', uid: `uid-${i}`, name: 'shared' });
  const thePod = pod('pod-1', { 'memshare.nri.io/pod': 'shared' });
  // warm-up: both JITs and both connections
  await timed(500, (i) => dra.prepare([claim(i)]));
  await timed(500, (i) => conn.createContainer(thePod, container(`w${i}`, 'pod-1')));

  const rounds: Array<{ prepare: ReturnType<typeof percentiles>; prepare3: ReturnType<typeof percentiles>; unprepare: ReturnType<typeof percentiles>; create: ReturnType<typeof percentiles> }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const prepare = percentiles(await timed(N, (i) => dra.prepare([claim(i)])));
    const create = percentiles(await timed(N, (i) => conn.createContainer(thePod, container(`c${r}-${i}`, 'pod-1'))));
    const prepare3 = percentiles(await timed(N, (i) => dra.prepare([claim(3 * i), claim(3 * i + 1), claim(3 * i + 2)])));
    const unprepare = percentiles(await timed(N, (i) => dra.unprepare([claim(i)])));
    rounds.push({ prepare, prepare3, unprepare, create });
    console.log(`round ${r + 1}/${ROUNDS}: Prepare p50 ${round(prepare.p50, 1)} us p99 ${round(prepare.p99, 1)} us | CreateContainer p50 ${round(create.p50, 1)} us p99 ${round(create.p99, 1)} us`);
  }
  const rss = { draPluginKB: rssKB(draChild.pid as number), nriStubKB: rssKB(nriChild.pid as number) };
  player.close();
  await stop(draChild);
  await stop(nriChild);
  await rt.close();
  rmSync(dir, { recursive: true, force: true });

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const med = (k: keyof (typeof rounds)[number], q: 'p50' | 'p90' | 'p99') => round(median(rounds.map((x) => x[k][q])), 1);
  const out = {
    what: 'round trips with trivial handlers, plugin in a child process, caller in this one, unix sockets; median over rounds of each round\'s percentile (us)',
    callsPerRound: N,
    rounds: ROUNDS,
    grpcPrepare1Claim: { p50: med('prepare', 'p50'), p90: med('prepare', 'p90'), p99: med('prepare', 'p99') },
    grpcPrepare3Claims: { p50: med('prepare3', 'p50'), p90: med('prepare3', 'p90'), p99: med('prepare3', 'p99') },
    grpcUnprepare1Claim: { p50: med('unprepare', 'p50'), p90: med('unprepare', 'p90'), p99: med('unprepare', 'p99') },
    nriCreateContainer: { p50: med('create', 'p50'), p90: med('create', 'p90'), p99: med('create', 'p99') },
    prepareOverCreateP50: round(med('prepare', 'p50') / med('create', 'p50'), 2),
    prepareOverCreateP99: round(med('prepare', 'p99') / med('create', 'p99'), 2),
    rssAfterKB: rss,
    machine: { cpus: require('node:os').cpus().length, node: process.version, when: new Date().toISOString() },
  };
  console.log(`\nDRA NodePrepareResources (1 claim, gRPC): p50 ${out.grpcPrepare1Claim.p50} us  p99 ${out.grpcPrepare1Claim.p99} us`);
  console.log(`DRA NodePrepareResources (3 claims):     p50 ${out.grpcPrepare3Claims.p50} us  p99 ${out.grpcPrepare3Claims.p99} us`);
  console.log(`DRA NodeUnprepareResources (1 claim):    p50 ${out.grpcUnprepare1Claim.p50} us  p99 ${out.grpcUnprepare1Claim.p99} us`);
  console.log(`NRI CreateContainer (stub, ttrpc):       p50 ${out.nriCreateContainer.p50} us  p99 ${out.nriCreateContainer.p99} us`);
  console.log(`Prepare / CreateContainer: p50 x${out.prepareOverCreateP50}, p99 x${out.prepareOverCreateP99}`);
  console.log(`RSS after: DRA plugin process ${rss.draPluginKB} KB, NRI stub process ${rss.nriStubKB} KB`);
  // context from another run: the whole agent's CreateContainer under containerd's own NRI code (bench.ts nribench)
  try {
    const nb = (JSON.parse(readFileSync(join(repo, 'test', 'bench', 'results', 'bench.json'), 'utf8')) as { nribench?: { p50p90p99us?: { yours?: { CreateContainer?: number[] } }; machine?: { when?: string } } }).nribench;
    const cc = nb?.p50p90p99us?.yours?.CreateContainer;
    if (cc) {
      Object.assign(out, { contextNribenchAgentCreateContainer: { p50: cc[0], p90: cc[1], p99: cc[2], from: `test/bench/results/bench.json nribench, ${nb?.machine?.when ?? '?'}, not this run` } });
      console.log(`for context (bench.json nribench, ${nb?.machine?.when ?? '?'}, not this run): the agent's whole CreateContainer under containerd's NRI code p50 ${cc[0]} us p99 ${cc[2]} us`);
    }
  } catch {
    // no earlier nribench figures: nothing to set beside
  }
  mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`written: ${resultsFile}`);
}

const mode = args[0];
const main = mode === '--serve-dra' ? serveDra(args[1]) : mode === '--serve-nri' ? serveNri(args[1]) : bench();
main.catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exit(1);
});
