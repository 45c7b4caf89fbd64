// The benchmark: prints figures and writes them to test/bench/results/bench.json (committed).
// Never run by the test command; timings are measured here, not asserted anywhere.
//
//   node dist/test/bench/bench.js [--only ttrpc,startup,lifecycle,rss,nribench,nribench-stub,nribench-ubs,nribench-ubs-nosync,ubs-restart,containerd,kube-list] [-n 200] [--rounds 8]
//   (ends with the table of issue 14: Go stub, the stub alone, the real agent, RSS, start-up)
//
// - ttrpc: in-process round trip of the project's ttrpc over a unix socket
// - startup: spawn to registered / synchronized with the fake runtime (median of 15 runs)
// - nribench: the bare NRI round trip beside containerd's own Go stub, through
//   ../shared/tools/nribench/compare.sh (NRI 0.6.1 runtime code), and the agent's RSS there;
//   nribench-ubs: the same with the agent on the ubs backend over the SDK double (zero delay);
//   nribench-ubs-nosync: the same with ledger.sync "never", to see what the record's sync costs
// - ubs-restart: the agent restarted (SIGKILL, SIGTERM) with 8 UB shares bound and the UB holder
//   alive, to reconciled with the same memids; the holder's RSS beside the agent's (./ubs-restart.ts).
//   `--only ubs-restart,nribench-ubs,nribench-ubs-nosync,nribench` gives issue 20's figures from one run
// - kube-list: the agent's Kubernetes source with the launcher's heap flags listing 10,000 and
//   100,000 ShareMemory objects of the largest size the CRD allows, from a generator (./kube-list.ts);
//   its RSS and heap after the list (issue 22.1)
// - rss: the agent's RSS idle and after 10,000 events (nribench, one long run)
// - containerd: added CreateContainer latency through CRI on real containerd 1.7 and 2.1, with
//   the agent versus none, interleaved in one run; first binding of a share versus later ones
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Server, duplexTransport } from '../../plugin/ttrpc';
import { readMountInfo, umount2, MNT_DETACH } from '../../native';
import type { LedgerSync } from '../../plugin/agent/config';
import { percentiles, fmt, round, type Percentiles } from './stats';
import { AGENT_CLI } from '../support/agent-cli';

const repo = resolve(__dirname, '..', '..', '..');
const shared = resolve(repo, '..', 'shared');
const resultsFile = join(repo, 'test', 'bench', 'results', 'bench.json');
const args = process.argv.slice(2);
const only = (args[args.indexOf('--only') + 1] ?? '').split(',').filter((x) => args.includes('--only') && x);
const want = (name: string) => only.length === 0 || only.includes(name);
const N = Number(args.includes('-n') ? args[args.indexOf('-n') + 1] : 200);
// containerd: interleaved rounds (more rounds, a tighter estimate of the per-round median)
const ROUNDS = Number(args.includes('--rounds') ? args[args.indexOf('--rounds') + 1] : 8);

type Results = Record<string, unknown>;
const results: Results = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : {};
const save = () => {
  mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
};
const machine = () => ({ cpus: require('node:os').cpus().length, node: process.version, when: new Date().toISOString() });

async function benchTtrpc(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-bench-'));
  const path = join(dir, 's.sock');
  const server = new Server().register('bench.Echo', { Echo: (p) => p });
  const srv = createServer((sock) => server.serve(duplexTransport(sock)));
  await new Promise<void>((r) => srv.listen(path, r));
  const sock: Socket = connect(path);
  await new Promise((r) => sock.once('connect', r));
  const client = new Client(duplexTransport(sock));
  const payload = Buffer.alloc(512, 7);
  const times: number[] = [];
  for (let i = 0; i < 22000; i++) {
    const t = performance.now();
    await client.call('bench.Echo', 'Echo', payload, { timeoutMs: 2000 });
    if (i >= 2000) times.push(performance.now() - t);
  }
  // concurrency: 64 calls in flight
  const t0 = performance.now();
  const total = 20000;
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next++ < total) await client.call('bench.Echo', 'Echo', payload);
  }));
  const throughput = total / ((performance.now() - t0) / 1000);
  client.close();
  srv.close();
  rmSync(dir, { recursive: true, force: true });
  const p = percentiles(times.map((x) => x * 1000));
  console.log(`ttrpc round trip (unix socket, 512 B, back to back): ${fmt(p, 'us')}; 64 in flight: ${Math.round(throughput)} calls/s`);
  results.ttrpc = { unit: 'us', ...roundAll(p), throughputCallsPerSec: Math.round(throughput), machine: machine() };
  save();
}

/** A config and declarations for an agent under test, in a private dir. */
export function agentConfig(dir: string, nriSocket: string, shares: Array<{ ns: string; name: string; size: string }>, ledgerSync: LedgerSync = 'auto'): string {
  const decl = join(dir, 'shares.d');
  mkdirSync(decl, { recursive: true });
  for (const s of shares) {
    writeFileSync(join(decl, `${s.ns}-${s.name}.json`), JSON.stringify({
      apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory',
      metadata: { name: s.name, namespace: s.ns }, spec: { storage: s.size },
    }));
  }
  const cfg = join(dir, `config-${ledgerSync}.json`);
  writeFileSync(cfg, JSON.stringify({
    nri: { socket: nriSocket, name: 'memshare', index: '50' },
    stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: decl,
    metrics: { address: '' }, log: { level: 'info' }, ledger: { sync: ledgerSync },
  }, null, 2));
  return cfg;
}

// What the agent gets on a node: the node flags of the shipped launcher's exec line
// (packaging/nri-memshare.sh) and the unit's Environment= lines (MALLOC_ARENA_MAX and the like).
// AGENT_NODE_FLAGS="..." in the environment overrides the flags, for trying others.
function launcherFlags(): string[] {
  const exec = readFileSync(join(repo, 'packaging', 'nri-memshare.sh'), 'utf8').split('\n').find((l) => l.startsWith('exec '));
  if (!exec) throw new Error('packaging/nri-memshare.sh: no exec line');
  return [...exec.matchAll(/ (--[a-z0-9-]+(?:=[^\s"]+)?)/g)].map((m) => m[1]);
}
export const AGENT_NODE_FLAGS = process.env.AGENT_NODE_FLAGS !== undefined ? process.env.AGENT_NODE_FLAGS.split(' ').filter(Boolean) : launcherFlags();
for (const line of readFileSync(join(repo, 'systemd', 'nri-memshare.service'), 'utf8').split('\n')) {
  const m = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
  if (m && process.env[m[1]] === undefined) process.env[m[1]] = m[2];
}
export const agentCmd = (cfg: string) => [process.execPath, ...AGENT_NODE_FLAGS, process.env.AGENT_CLI ?? AGENT_CLI, 'run', '--config', cfg];

/**
 * compare.sh with a plugin command: `agent` is the real agent binding a declared share (ledger
 * write, tmpfs mount at the first binding, umount at the last stop: every iteration
 * here, since nribench runs one container at a time); `stub` is the project's stub with the
 * minimal fixture plugin, the like-for-like match for the Go reference (a mount, no other work).
 */
function benchNribench(kind: 'agent' | 'stub', ub?: UbBench): void {
  const dir = mkdtempSync(join(tmpdir(), 'nribench-agent-'));
  const cfg = agentConfig(dir, join(dir, 'unused.sock'), [{ ns: 'default', name: 'bench', size: '128Mi' }], ub?.ledgerSync);
  if (ub) {
    const c = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    c.backend = ub.backend;
    writeFileSync(cfg, JSON.stringify(c, null, 2));
  }
  const out = join(dir, 'out');
  const cmd = kind === 'agent'
    // a UB binding adds no /dev/shm mount: its socket dir mount at /run/matrix/memory is the one counted
    ? ['-a', 'memshare.nri.io/pod=bench', ...(ub ? ['-p', '/run/matrix/memory'] : []), '--', ...agentCmd(cfg), '--socket', '{SOCKET}']
    : ['-a', 'test.memshare/mount=bench', '--', process.execPath, ...AGENT_NODE_FLAGS, join(repo, 'dist', 'test', 'fixtures', 'echo-plugin.js'), '{SOCKET}'];
  const r = spawnSync('bash', [join(shared, 'tools', 'nribench', 'compare.sh'), '-n', '2000', '-r', '5', ...cmd], {
    encoding: 'utf8', env: { ...process.env, ...ub?.env, OUT: out }, maxBuffer: 64 << 20,
  });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    process.stderr.write(r.stderr.slice(-4000));
    throw new Error(`compare.sh failed (exit ${r.status})`);
  }
  const ratio = /median ([0-9.]+) \(rounds: ([0-9. ]+)\)/.exec(r.stdout);
  const rows: Record<string, Record<string, number[]>> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(base|go|yours)\s+(\w+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)/.exec(line);
    if (m) (rows[m[1]] ??= {})[m[2]] = [Number(m[3]), Number(m[4]), Number(m[5])];
  }
  const rss = [...r.stdout.matchAll(/^(go|yours)\s+CreateContainer.*?(\d+) -> (\d+)\s*$/gm)].map((m) => ({ plugin: m[1], idleKB: Number(m[2]), afterKB: Number(m[3]) }));
  const key = ub ? (ub.ledgerSync === 'never' ? 'nribenchUbsNoSync' : 'nribenchUbs') : kind === 'agent' ? 'nribench' : 'nribenchStub';
    // p99 of the medians over rounds (compare.sh prints a per-round ratio for p50 only)
  const p99Ratio = rows.yours?.CreateContainer && rows.go?.CreateContainer ? round(rows.yours.CreateContainer[2] / rows.go.CreateContainer[2], 2) : null;
  const entry = { plugin: kind, ...(ub ? { backend: 'ubs', note: ub.note } : {}), medianOverRounds: 5, callsPerRound: 2000, p50p90p99us: rows, rss, createP50RatioYoursOverGo: ratio ? Number(ratio[1]) : null, createP99RatioOfMedians: p99Ratio, rounds: ratio?.[2].trim().split(/\s+/).map(Number), machine: machine() };
  console.log(`${key}: CreateContainer ratio agent/Go reference: p50 ${ratio?.[1] ?? '?'} (median of rounds), p99 ${p99Ratio ?? '?'} (of the medians)`);
  results[key] = entry;
  if (ub) {
    // re-read: other figures may have been written since this process started
    const now = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : {};
    writeFileSync(resultsFile, `${JSON.stringify({ ...now, [key]: entry }, null, 2)}\n`);
  } else save();
  unmountUnder(dir);
  if (ub) stopHoldersUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The UB holders that this run's agents started (one per compare.sh round, each on its socket in
 * `dir`): they outlive the agent by design, so they are stopped here, by pid.
 */
function stopHoldersUnder(dir: string): void {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes('ubs-holder') && cmd.includes(`\0${dir}/`)) {
      try {
        process.kill(Number(pid), 'SIGTERM');
      } catch {
        // gone
      }
    }
  }
}

/** The agent's environment and backend config for nribench in UB mode. */
interface UbBench {
  env: Record<string, string>;
  backend: Record<string, unknown>;
  note: string;
  /** ledger.sync (default "auto": always, for ubs); "never" only to measure what the record's sync costs */
  ledgerSync?: LedgerSync;
}

/**
 * nribench with the agent on the ubs backend: the SDK double at zero delay behind the daemon
 * stand-in, the share "bench" declared, ledger.sync "auto" (always, for ubs). nribench's readiness
 * probe container is never stopped: it makes the node's first binding (allocate, map, lookup)
 * and holds the share, so the measured CreateContainers are later bindings (the injection and a
 * record with fdatasync) and StopContainers end a record without a release.
 */
async function benchNribenchUbs(ledgerSync: LedgerSync = 'auto'): Promise<void> {
  const { UbsNode } = await import('../e2e/ubs-env');
  const node = new UbsNode();
  try {
    await node.start();
    node.control('');
    // the agent's environment as the e2e tests give it (no node name: "local")
    const env = Object.fromEntries(Object.entries(node.hostEnv()).filter(([k]) => k !== 'UBSM_DOUBLE_NODE' && k !== 'HCOM_CONNECTION_RETRY_INTERVAL_SEC'));
    benchNribench('agent', {
      env,
      backend: node.backendConfig(),
      ledgerSync,
      note: ledgerSync === 'never'
        ? 'as nribenchUbs, but ledger.sync "never" (records in the page cache, not synced): a diagnostic of what the record\'s sync costs, not a configuration to run'
        : 'agent with backend kind ubs over the SDK test double (zero delay) and ubsmd-standin, ledger synced (O_DSYNC journal since issue 20; write + fdatasync before); nribench\'s probe container holds the share, so measured calls are later bindings (injection + record) and ends without release',
    });
    // the last round's probe binding is still on record (the agent was stopped, not the container)
    const left = node.shares().filter((s) => s !== 'nms.default.bench');
    if (left.length) throw new Error(`nribench UB: unexpected shares left in the double: ${left.join(' ')}`);
  } finally {
    await node.cleanup();
  }
}

function benchRss(): void {
  const nribench = join(process.env.NRIBENCH_DIR ?? '/var/tmp/nribench', 'bin', 'nribench');
  if (!existsSync(nribench)) execFileSync('bash', [join(shared, 'tools', 'nribench', 'build.sh')], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'rss-agent-'));
  const sock = join(dir, 'nri.sock');
  const cfg = agentConfig(dir, sock, [{ ns: 'default', name: 'bench', size: '128Mi' }]);
  const out = join(dir, 'rss.json');
  // 3,334 iterations x (create, stop, remove) = 10,002 events
  execFileSync(nribench, ['-label', 'rss', '-n', '3334', '-warmup', '0', '-socket', sock, '-out', out, '-annotation', 'memshare.nri.io/pod=bench', '-expect-mount', '1', '--', ...agentCmd(cfg)], { stdio: 'ignore' });
  const j = JSON.parse(readFileSync(out, 'utf8')) as { proc_idle: { RSSkB: number }; proc_after: { RSSkB: number; HWMkB: number } };
  console.log(`agent RSS: idle ${round(j.proc_idle.RSSkB / 1024, 1)} MB, after 10,002 events ${round(j.proc_after.RSSkB / 1024, 1)} MB (peak ${round(j.proc_after.HWMkB / 1024, 1)} MB)`);
  results.rss = { idleMB: round(j.proc_idle.RSSkB / 1024, 1), after10kEventsMB: round(j.proc_after.RSSkB / 1024, 1), peakMB: round(j.proc_after.HWMkB / 1024, 1), machine: machine() };
  save();
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** The agent leaves shares mounted when it stops (containers may still use them): unmount ours. */
export function unmountUnder(dir: string): void {
  for (const m of readMountInfo().filter((x) => x.mountPoint.startsWith(`${dir}/`)).reverse()) umount2(m.mountPoint, MNT_DETACH);
}

/**
 * Start-up: from spawning the agent (the launcher's node flags) to registered with a runtime
 * (RegisterPlugin received) and to ready (Configure and an empty Synchronize answered), against
 * the test suite's fake runtime on a unix socket; RUNS runs, one at a time. A bare `node -e 0`
 * with the same flags is timed beside it (spawn to exit) as the floor.
 */
async function benchStartup(runs = 15): Promise<void> {
  const { FakeRuntime } = await import('../support/fake-runtime');
  const { spawn } = await import('node:child_process');
  const registered: number[] = [];
  const ready: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, [...AGENT_NODE_FLAGS, '-e', '0']);
    bare.push(performance.now() - t0);
    const dir = mkdtempSync(join(tmpdir(), 'startup-agent-'));
    const rt = await FakeRuntime.start({ path: join(dir, 'nri.sock') });
    const cfg = agentConfig(dir, rt.path, [{ ns: 'default', name: 'bench', size: '128Mi' }]);
    const [cmd, ...rest] = agentCmd(cfg);
    const t = performance.now();
    const child = spawn(cmd, rest, { stdio: 'ignore', env: { ...process.env } });
    try {
      const { conn } = await rt.registered(0, 10000);
      registered.push(performance.now() - t);
      await conn.configure({ runtimeName: 'bench', runtimeVersion: '0' });
      await conn.synchronize([], []);
      ready.push(performance.now() - t);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      await rt.close();
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const p = (xs: number[]) => ({ p50: round(percentiles(xs).p50, 1), max: round(Math.max(...xs), 1) });
  results.startup = { unit: 'ms', runs, toRegisteredMs: p(registered), toSynchronizedMs: p(ready), bareNodeMs: p(bare), nodeFlags: AGENT_NODE_FLAGS, machine: machine() };
  console.log(`start-up to registered: p50 ${p(registered).p50} ms (max ${p(registered).max}); to synchronized ${p(ready).p50} ms; bare node ${p(bare).p50} ms (${runs} runs)`);
  save();
}

/** The table (issue 14), from the figures in the results file; `*` marks one not measured in this run. */
function printTable(fresh: Set<string>): void {
  type Nb = { p50p90p99us: Record<string, Record<string, number[]>>; rss: Array<{ plugin: string; idleKB: number; afterKB: number }>; createP50RatioYoursOverGo: number; createP99RatioOfMedians?: number | null };
  const agent = results.nribench as Nb | undefined;
  const stub = results.nribenchStub as Nb | undefined;
  const rss = results.rss as { idleMB: number; after10kEventsMB: number } | undefined;
  const st = results.startup as { toRegisteredMs: { p50: number }; bareNodeMs?: { p50: number } } | undefined;
  type Cri = Record<string, { 'agent-later-binding'?: { addedP50MedianOverRoundsMs: number; addedP50IqrOverRoundsMs?: number }; rounds?: number; containersPerMode?: number }>;
  const cri = results.containerd as Cri | undefined;
  const criRow = (v: string): string[] => {
    const m = cri?.[v]?.['agent-later-binding'];
    const spread = m?.addedP50IqrOverRoundsMs === undefined ? '' : `, IQR over ${cri?.[v]?.rounds ?? '?'} rounds ${m.addedP50IqrOverRoundsMs} ms`;
    return [`CRI CreateContainer added p50, later binding, containerd ${v}`, '', m ? `${m.addedP50MedianOverRoundsMs} ms${spread}${mark('containerd')}` : '?', '<= 1 ms'];
  };
  const mark = (k: string) => (fresh.has(k) ? '' : ' *');
  const us = (n?: number[]) => (n ? `${Math.round(n[0])} / ${Math.round(n[2])} us` : '?');
  const goRss = agent?.rss.find((r) => r.plugin === 'go');
  const rows: string[][] = [
    ['CreateContainer p50, real agent (ratio to Go)', '1.0', agent ? `${agent.createP50RatioYoursOverGo} x${mark('nribench')}` : '?', '<= 1.0 x'],
    ['CreateContainer p99, real agent', agent ? `${Math.round(agent.p50p90p99us.go.CreateContainer[2])} us` : '?', agent ? `${Math.round(agent.p50p90p99us.yours.CreateContainer[2])} us (${agent.createP99RatioOfMedians} x)${mark('nribench')}` : '?', '<= 1.3 x'],
    ['CreateContainer p50, the stub alone (ratio to Go)', '1.0', stub ? `${stub.createP50RatioYoursOverGo} x${mark('nribenchStub')}` : '?', '<= 0.7 x'],
    ['RSS idle', goRss ? `${round(goRss.idleKB / 1024, 1)} MB` : '?', rss ? `${rss.idleMB} MB${mark('rss')}` : '?', '<= 46 MB'],
    ['RSS after 10,000 events', goRss ? `${round(goRss.afterKB / 1024, 1)} MB (after a round)` : '?', rss ? `${rss.after10kEventsMB} MB${mark('rss')}` : '?', '<= 52 MB'],
    ['start-up to registered (p50)', '', st ? `${st.toRegisteredMs.p50} ms (bare node ${st.bareNodeMs?.p50 ?? '?'} ms)${mark('startup')}` : '?', '<= 150 ms'],
    criRow('1.7'),
    criRow('2.1'),
  ];
  if (agent) rows.push(['  (p50 / p99 medians: Go | agent)', us(agent.p50p90p99us.go.CreateContainer), us(agent.p50p90p99us.yours.CreateContainer), '']);
  const head = ['figure', 'Go stub plugin', 'nri-memshare', 'target'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  console.log(`\n${line(head)}\n|${w.map((n) => '-'.repeat(n + 2)).join('|')}|\n${rows.map(line).join('\n')}`);
  if (['nribench', 'nribenchStub', 'rss', 'startup', 'containerd'].some((k) => !fresh.has(k))) console.log('* from an earlier run (not measured now)');
}

function roundAll(p: Percentiles): Percentiles {
  return { n: p.n, p50: round(p.p50), p90: round(p.p90), p99: round(p.p99) };
}

async function main(): Promise<void> {
  const before = new Set(Object.keys(results).map((k) => `${k}:${JSON.stringify((results[k] as { machine?: { when?: string } })?.machine?.when)}`));
  if (want('ttrpc')) await benchTtrpc();
  if (want('startup')) await benchStartup();
  if (want('lifecycle')) {
    const { benchLifecycle, benchMountedAcquire } = await import('./lifecycle');
    // ledger.sync "never" is what a local-backend node runs ("auto"); "always" what a UBS node runs
    results.lifecycle = { noFdatasync: await benchLifecycle(false), fdatasync: await benchLifecycle(true), mountedAcquire: await benchMountedAcquire(), machine: machine() };
    save();
  }
  if (want('rss')) benchRss();
  if (want('nribench')) benchNribench('agent');
  if (want('nribench-stub')) benchNribench('stub');
  if (want('ubs-restart')) {
    const { benchUbsRestart } = await import('./ubs-restart');
    const r = await benchUbsRestart(agentConfig, agentCmd);
    // re-read: other figures may have been written since this process started
    const now = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : {};
    results.ubsRestart = { ...r, machine: machine() };
    writeFileSync(resultsFile, `${JSON.stringify({ ...now, ubsRestart: results.ubsRestart }, null, 2)}\n`);
  }
  if (want('kube-list')) {
    const { benchKubeList } = await import('./kube-list');
    const r = await benchKubeList([10_000, 100_000]);
    const now = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : {};
    results.kubeList = { runs: r, machine: machine() };
    writeFileSync(resultsFile, `${JSON.stringify({ ...now, kubeList: results.kubeList }, null, 2)}\n`);
  }
  if (want('nribench-ubs')) await benchNribenchUbs();
  if (want('nribench-ubs-nosync')) await benchNribenchUbs('never');
  if (want('containerd')) {
    const { benchContainerd } = await import('./containerd-latency');
    results.containerd = { ...(await benchContainerd(N, agentConfig, agentCmd, ROUNDS)), machine: machine() };
    save();
  }
  const fresh = new Set(Object.keys(results).filter((k) => !before.has(`${k}:${JSON.stringify((results[k] as { machine?: { when?: string } })?.machine?.when)}`)));
  printTable(fresh);
  console.log(`\nresults written to ${resultsFile}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
