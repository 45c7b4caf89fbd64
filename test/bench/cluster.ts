// The cluster benchmark: prints figures and writes them to test/bench/results/cluster.json
// (committed). Never run by the test command; timings are measured here, not asserted anywhere.
//
//   node dist/test/bench/cluster.js [--objects 10000] [--creates 200] [--churn-seconds 30]
//
// - created -> bindable: the real agent (dist/agent/nri-memshare.js run, a kubeconfig at the fake API
//   server holding --objects ShareMemory objects) and the time from an object's creation in the
//   API to the agent's "declarations: changed ... added" line for it (the share is then in the
//   store every binding reads), one object at a time
// - the agent's RSS (VmRSS) after the first list of all objects, and idle after the creates
// - the agent's start to all objects listed (as agent-state.json reports; a bound, not a precise time)
// - a full list of all objects (the watcher's paged list, 500 per page, and validation), in process
// - API writes per second of the status writer (default policy) during pod churn of 100, 400 and
//   1600 pods a minute over 10 shares, each pod binding one share and ending ~20 s later: the writes
//   are bounded by the coalescing (one per share per 2 s, 5/s in all), not by the churn
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubernetesDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { StatusWriter, type NodeShareStatus } from '../../plugin/cluster';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { FakeApiServer } from '../support/fake-apiserver';
import { kubeSendFor } from '../e2e/cluster-support';
import { fmt, percentiles, round } from './stats';
import { AGENT_CLI } from '../support/agent-cli';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';

const repo = resolve(__dirname, '..', '..', '..');
const resultsFile = join(repo, 'test', 'bench', 'results', 'cluster.json');
const CLI = AGENT_CLI;
const args = process.argv.slice(2);
const arg = (name: string, def: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const OBJECTS = arg('--objects', 10000);
const CREATES = arg('--creates', 200);
const CHURN_SECONDS = arg('--churn-seconds', 30);

const kubeconfigText = (url: string) =>
  anonymousKubeconfigText(url);

function fill(api: FakeApiServer, n: number): void {
  for (let i = 0; i < n; i++) api.share(`ns-${i % 100}`, `share-${i}`, '128Mi', i % 10 === 0 ? ['team-b', 'team-c'] : undefined);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** The agent as a process; `onLine` sees each line of its output as it comes. */
function startAgent(dir: string, url: string, onLine: (l: string) => void): ChildProcess {
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText(url));
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d), { recursive: true });
  const config = {
    nri: { socket: join(dir, 'no-containerd.sock'), name: 'memshare', index: '50' },
    stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'),
    metrics: { address: '' }, log: { level: 'info' },
    kubernetes: { kubeconfig, nodeName: 'bench-node' },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const child = spawn(process.execPath, [CLI, 'run', '--config', join(dir, 'config.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  const feed = (b: Buffer) => {
    buf += b.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  };
  child.stdout!.on('data', feed);
  child.stderr!.on('data', feed);
  return child;
}

async function benchAgent(): Promise<Record<string, unknown>> {
  const api = new FakeApiServer();
  await api.start();
  fill(api, OBJECTS);
  const dir = mkdtempSync(join(tmpdir(), 'nrims-cluster-bench-'));
  const waiting = new Map<string, () => void>();
  let listed = 0;
  const t0 = Date.now();
  let listedAt = 0;
  const child = startAgent(dir, api.url, (l) => {
    const m = /"change":"added","share":"([^"]+)"/.exec(l);
    if (m) waiting.get(m[1])?.();
  });
  // the first list is not logged object by object: agent-state.json (rewritten every 5 s or on
  // changes) counts the declarations the Kubernetes source holds
  const kubeCount = (): number => {
    try {
      const st = JSON.parse(readFileSync(join(dir, 'state', 'agent-state.json'), 'utf8')) as { declarations: Array<{ kind: string; declarations: number }> };
      return st.declarations.find((d) => d.kind === 'kubernetes')?.declarations ?? 0;
    } catch {
      return 0;
    }
  };
  try {
    const until = Date.now() + 120_000;
    while ((listed = kubeCount()) < OBJECTS && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    listedAt = Date.now();
    if (listed < OBJECTS) throw new Error(`the agent listed ${listed} of ${OBJECTS} objects within 120 s`);
    await new Promise((r) => setTimeout(r, 2000)); // settle: first list done, the watch open
    const rssAfterList = rssKiB(child.pid!);
    const latencies: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      const key = `bench/new-${i}`;
      const seen = new Promise<void>((r) => waiting.set(key, r));
      const start = process.hrtime.bigint();
      api.share('bench', `new-${i}`, '128Mi');
      await seen;
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      waiting.delete(key);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const rssIdle = rssKiB(child.pid!);
    const p = percentiles(latencies);
    console.log(`created in the API -> bindable on the node: ${fmt(p)}`);
    console.log(`agent RSS with ${OBJECTS} ShareMemory objects: ${round(rssAfterList / 1024, 1)} MiB after the first list, ${round(rssIdle / 1024, 1)} MiB after ${CREATES} more`);
    console.log(`agent start to ${OBJECTS} declarations listed (process start, list, validation; seen through agent-state.json): ${listedAt - t0} ms`);
    return {
      createdToBindableMs: { p50: round(p.p50), p90: round(p.p90), p99: round(p.p99), n: p.n },
      agentRssMiB: { afterFirstList: round(rssAfterList / 1024, 1), afterCreates: round(rssIdle / 1024, 1), objects: OBJECTS },
      agentStartToListedMs: listedAt - t0,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchList(): Promise<Record<string, unknown>> {
  const api = new FakeApiServer();
  await api.start();
  fill(api, OBJECTS);
  const times: number[] = [];
  try {
    for (let i = 0; i < 7; i++) {
      const c = (await import('../../plugin/kube')).parseKubeconfig(kubeconfigText(api.url), '/nonexistent/kubeconfig');
      const src = new KubernetesDeclarationSource({ credentials: c, limits: DEFAULT_LIMITS });
      const store = new MergedDeclarationStore([src]);
      const start = process.hrtime.bigint();
      src.start();
      await src.ready();
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (src.list().length !== OBJECTS) throw new Error(`listed ${src.list().length} of ${OBJECTS}`);
      await src.stop();
      store.close();
    }
  } finally {
    await api.stop();
  }
  const p = percentiles(times.slice(2)); // the first runs warm the JIT
  console.log(`full list of ${OBJECTS} ShareMemory objects (paged by 500, validated): ${fmt(p)}`);
  return { fullListMs: { p50: round(p.p50, 1), max: round(Math.max(...times.slice(2)), 1), objects: OBJECTS, pageSize: 500, runs: p.n } };
}

async function benchChurn(podsPerMinute: number): Promise<Record<string, number>> {
  const api = new FakeApiServer();
  await api.start();
  const SHARES = 10;
  for (let i = 0; i < SHARES; i++) api.share('churn', `s${i}`, '128Mi');
  const holders = new Map<string, number>();
  const send = kubeSendFor(api.url);
  let changes = 0;
  const writer = new StatusWriter({
    nodeName: 'bench-node',
    send,
    snapshot: async (s): Promise<NodeShareStatus | undefined> => {
      const n = holders.get(s.name) ?? 0;
      return n > 0 ? { holders: n, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T00:00:00Z', backend: 'local' } : undefined;
    },
    held: () => [...holders].filter(([, n]) => n > 0).map(([name]) => ({ namespace: 'churn', name })),
  }).start();
  const change = (name: string, d: number) => {
    holders.set(name, (holders.get(name) ?? 0) + d);
    changes++;
    writer.changed({ namespace: 'churn', name });
  };
  await writer.idle();
  const before = api.requests.filter((r) => r.method === 'PATCH').length;
  const start = Date.now();
  const interval = 60_000 / podsPerMinute;
  const timers: NodeJS.Timeout[] = [];
  let pods = 0;
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      if (Date.now() - start >= CHURN_SECONDS * 1000) {
        clearInterval(tick);
        return done();
      }
      const name = `s${pods++ % SHARES}`;
      change(name, +1);
      timers.push(setTimeout(() => change(name, -1), 15_000 + Math.random() * 10_000)); // the pod's life
    }, interval);
  });
  const elapsed = (Date.now() - start) / 1000;
  const writes = api.requests.filter((r) => r.method === 'PATCH').length - before;
  for (const t of timers) clearTimeout(t);
  await writer.stop();
  await api.stop();
  const out = { podsPerMinute, pods, shares: SHARES, seconds: round(elapsed, 1), stateChanges: changes, apiWrites: writes, apiWritesPerSecond: round(writes / elapsed, 2), stateChangesPerSecond: round(changes / elapsed, 2) };
  console.log(`churn ${podsPerMinute} pods/min over ${SHARES} shares: ${out.stateChangesPerSecond} state changes/s -> ${out.apiWritesPerSecond} API writes/s (${writes} in ${out.seconds} s)`);
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  const results: Record<string, unknown> = { machine: { cpus: cpus().length, node: process.version, when: new Date().toISOString() } };
  results.agent = await benchAgent();
  results.list = await benchList();
  const churn = [];
  for (const ppm of [100, 400, 1600]) churn.push(await benchChurn(ppm));
  results.churn = {
    policy: 'status writer defaults: one write per share per 2 s at most, 5 writes/s in all (burst 10); unchanged states are not written',
    runs: churn,
  };
  mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written to ${resultsFile}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
