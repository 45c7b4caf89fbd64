// The cluster benchmark on the real API server (test/harness/apiserver.ts: Kubernetes'
// apiextensions-apiserver 1.36.4 over etcd 3.5; bash test/harness/fetch-kube-tools.sh first).
// Prints figures and writes them to test/bench/results/cluster.json (committed), one entry per
// object count (a run of 100,000 adds to the file a run of 10,000 wrote). Never run by the test
// command; timings are measured here, not asserted anywhere. Run it under the test lock:
//
//   flock /tmp/nri-memshare-tests.lock node dist/test/bench/cluster.js [--objects 10000] [--creates 200] [--churn-seconds 30] [--list-runs 7]
//
// Each run starts its own etcd and API server, applies the shipped CRD and creates --objects small
// ShareMemory objects through the HTTP API (8 requests in flight on keep-alive connections), then:
// - a full list of all objects, in process: the agent's Kubernetes source (paged by 500, each
//   object validated) from its start to ready, --list-runs times (the first ones warm the JIT)
// - the real agent (dist/agent/nri-memshare.js with the launcher's node flags, a client
//   certificate in system:masters) started against them: its RSS once it holds all declarations
// - created in the API -> bindable on the node, --creates objects one at a time: from just before
//   the POST to the agent's "declarations: changed ... added" line for the object, read from its
//   output (the share is then in the store every binding reads, so the next CreateContainer asking
//   for it binds); it includes the write to etcd, the watch cache's dispatch and the watch stream.
//   When the agent's budget of kept declarations (32 MiB) is full, as with 100,000 objects, a new
//   object is left out instead, and the time to the warning naming it is reported apart
// - the API server's and etcd's RSS (VmRSS) beside the agent's, and their peaks (sampled every
//   250 ms), and etcd's database size (its default quota is 2 GiB)
// - with --churn-seconds > 0: API writes per second of the status writer (default policy) during
//   pod churn of 100, 400 and 1600 pods a minute over 10 shares, each pod binding one share and
//   ending 15-25 s later, counted at the writer's requests (every one a server-side apply PATCH to
//   the real server, which must answer 200)
// Nothing here is served by the project's fake API server any more: every case above is one the
// real server can serve.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { Agent as HttpsAgent, request } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubernetesDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { StatusWriter, type NodeShareStatus } from '../../plugin/cluster';
import { parseKubeconfig } from '../../plugin/kube';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { startKubeApi, type KubeApi } from '../harness/apiserver';
import { kubeSendForKubeconfig } from '../e2e/cluster-support';
import { fmt, percentiles, round } from './stats';
import { AGENT_CLI } from '../support/agent-cli';
import { AGENT_NODE_FLAGS } from './bench';

const repo = resolve(__dirname, '..', '..', '..');
const resultsFile = join(repo, 'test', 'bench', 'results', 'cluster.json');
const args = process.argv.slice(2);
const arg = (name: string, def: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const OBJECTS = arg('--objects', 10000);
const CREATES = arg('--creates', 200);
const CHURN_SECONDS = arg('--churn-seconds', 30);
const LIST_RUNS = arg('--list-runs', 7);
const IN_FLIGHT = 8;
const GROUP_PATH = '/apis/resource.ubsvirt.huawei.com/v1';
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small, realistic ShareMemory: a size, a label, one in ten shared with two namespaces (one read-only). */
function shareMemory(namespace: string, name: string, i: number): object {
  return {
    apiVersion: 'resource.ubsvirt.huawei.com/v1',
    kind: 'ShareMemory',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': `app-${i % 50}` } },
    spec: {
      storage: ['128Mi', '512Mi', '1Gi', '4Gi'][i % 4],
      ...(i % 10 === 0 ? { allowedNamespaces: [`ns-${(i + 1) % 100}`], readOnlyNamespaces: [`ns-${(i + 2) % 100}`] } : {}),
    },
  };
}

interface Answer {
  status: number;
  body: string;
}

/** Requests as the admin (system:masters), over keep-alive connections: for creating objects fast. */
class AdminClient {
  private readonly agent: HttpsAgent;
  private readonly url: URL;

  constructor(api: KubeApi) {
    const text = readFileSync(api.adminKubeconfig, 'utf8');
    const field = (k: string): string => {
      const m = new RegExp(`${k}: (.+)`).exec(text);
      if (!m) throw new Error(`${api.adminKubeconfig}: no ${k}`);
      return m[1].trim();
    };
    this.url = new URL(api.url);
    this.agent = new HttpsAgent({
      keepAlive: true, maxSockets: IN_FLIGHT,
      ca: readFileSync(field('certificate-authority')), cert: readFileSync(field('client-certificate')), key: readFileSync(field('client-key')),
    });
  }

  send(method: string, path: string, body?: object): Promise<Answer> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.url.hostname, port: this.url.port, path, method, agent: this.agent,
        headers: { Accept: 'application/json', ...(data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  /** POSTs one object; a 429 or 5xx (the server busy) is retried a few times, anything else but 201 throws. */
  async create(obj: { metadata: { namespace: string; name: string } } & object): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.send('POST', `${GROUP_PATH}/namespaces/${obj.metadata.namespace}/sharememories`, obj);
      if (r.status === 201) return;
      if ((r.status === 429 || r.status >= 500) && attempt < 5) {
        await sleep(200 * (attempt + 1));
        continue;
      }
      throw new Error(`create ${obj.metadata.namespace}/${obj.metadata.name}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Creates ns-{i % 100}/share-{i} for i < n, IN_FLIGHT at a time; objects per second. */
async function createObjects(client: AdminClient, n: number): Promise<number> {
  const start = Date.now();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await client.create(shareMemory(`ns-${i % 100}`, `share-${i}`, i) as { metadata: { namespace: string; name: string } });
      if (++done % 10000 === 0) console.log(`  ${done} of ${n} created (${round(done / ((Date.now() - start) / 1000), 0)}/s)`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return n / ((Date.now() - start) / 1000);
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak RSS of the API server, etcd and (once set) the agent, sampled every 250 ms. */
class RssPeaks {
  apiserver = 0;
  etcd = 0;
  agent = 0;
  agentPid: number | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly api: KubeApi) {
    this.timer = setInterval(() => this.sample(), 250);
  }

  sample(): void {
    const r = this.api.rss();
    this.apiserver = Math.max(this.apiserver, r.apiserver);
    this.etcd = Math.max(this.etcd, r.etcd);
    if (this.agentPid) this.agent = Math.max(this.agent, rssKiB(this.agentPid) * 1024);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The API server's, etcd's (and the agent's) RSS now, MiB. */
function rssNow(api: KubeApi, agentPid?: number): Record<string, number> {
  const r = api.rss();
  return { apiserver: round(r.apiserver / MiB, 1), etcd: round(r.etcd / MiB, 1), ...(agentPid ? { agent: round(rssKiB(agentPid) / 1024, 1) } : {}) };
}

function etcdDbMiB(api: KubeApi): { dbSize: number; dbSizeInUse: number } {
  const s = JSON.parse(api.etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { dbSize: number; dbSizeInUse: number } }>;
  return { dbSize: round(s[0].Status.dbSize / MiB, 1), dbSizeInUse: round(s[0].Status.dbSizeInUse / MiB, 1) };
}

/** The agent as a process (the launcher's node flags); `onLine` sees each line of its output as it comes. */
function startAgent(dir: string, kubeconfig: string, onLine: (l: string) => void): ChildProcess {
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d), { recursive: true });
  const config = {
    nri: { socket: join(dir, 'no-containerd.sock'), name: 'memshare', index: '50' },
    stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'),
    metrics: { address: '' }, log: { level: 'info' },
    kubernetes: { kubeconfig, nodeName: 'bench-node' },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_CLI, 'run', '--config', join(dir, 'config.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
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

/** The full list in process: the agent's source from start to ready, `runs` times. */
async function benchList(api: KubeApi): Promise<Record<string, unknown>> {
  const credentials = parseKubeconfig(readFileSync(api.adminKubeconfig, 'utf8'), api.adminKubeconfig);
  const times: number[] = [];
  let kept = 0;
  for (let i = 0; i < LIST_RUNS; i++) {
    const src = new KubernetesDeclarationSource({ credentials, limits: DEFAULT_LIMITS });
    const store = new MergedDeclarationStore([src]);
    const start = process.hrtime.bigint();
    src.start();
    await src.ready();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    kept = src.list().length;
    await src.stop();
    store.close();
  }
  const warm = Math.min(2, LIST_RUNS - 1);
  const p = percentiles(times.slice(warm));
  console.log(`full list of ${OBJECTS} ShareMemory objects on the real server (paged by 500, validated): ${fmt(p)}; first run ${round(times[0], 1)} ms; ${kept} declarations kept`);
  return { p50: round(p.p50, 1), max: round(Math.max(...times.slice(warm)), 1), first: round(times[0], 1), runs: p.n, pageSize: 500, declarationsKept: kept };
}

/** The real agent: RSS once it holds every declaration, then created -> bindable one object at a time. */
async function benchAgent(api: KubeApi, client: AdminClient, peaks: RssPeaks, expected: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'nrims-cluster-bench-'));
  // an object past the budget of kept declarations is not added but left out, with a warning naming it
  const waiting = new Map<string, (how: 'added' | 'left out') => void>();
  const t0 = Date.now();
  const child = startAgent(dir, api.adminKubeconfig, (l) => {
    const m = /"change":"added","share":"([^"]+)"/.exec(l);
    if (m) waiting.get(m[1])?.('added');
    const o = /kubernetes:([^: ]+): left out/.exec(l);
    if (o) waiting.get(o[1])?.('left out');
  });
  const killAgent = () => child.kill('SIGKILL');
  process.once('exit', killAgent); // an interrupted run leaves no agent behind
  peaks.agentPid = child.pid;
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
    const until = Date.now() + 300_000;
    let listed = 0;
    while ((listed = kubeCount()) < expected && Date.now() < until) {
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}) before listing`);
      await sleep(50);
    }
    const listedAt = Date.now();
    if (listed < expected) throw new Error(`the agent holds ${listed} of ${expected} declarations after 300 s`);
    await sleep(3000); // settle: first list done, the watch open, the status writer's start-up list done
    const afterList = rssNow(api, child.pid);
    const latencies: number[] = [];
    const leftOut: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      const name = `new-${i}`;
      const seen = new Promise<'added' | 'left out'>((r) => waiting.set(`bench/${name}`, r));
      const start = process.hrtime.bigint();
      await client.create(shareMemory('bench', name, i) as { metadata: { namespace: string; name: string } });
      const how = await seen;
      (how === 'added' ? latencies : leftOut).push(Number(process.hrtime.bigint() - start) / 1e6);
      waiting.delete(`bench/${name}`);
    }
    await sleep(2000);
    const afterCreates = rssNow(api, child.pid);
    const p = percentiles(latencies);
    const q = percentiles(leftOut);
    if (latencies.length) console.log(`created in the API -> bindable on the node (the agent's "added" line): ${fmt(p)}`);
    if (leftOut.length) console.log(`created in the API -> left out by the agent (its budget of kept declarations is full; the warning naming it): ${fmt(q)}`);
    console.log(`agent holds ${listed} declarations of ${OBJECTS} objects`);
    console.log(`agent start to ${listed} declarations held (seen through agent-state.json, a bound): ${listedAt - t0} ms`);
    console.log(`RSS MiB with ${OBJECTS} objects, after the agent's list: ${JSON.stringify(afterList)}; after ${CREATES} more: ${JSON.stringify(afterCreates)}`);
    return {
      declarationsHeld: listed,
      ...(latencies.length ? { createdToBindableMs: { p50: round(p.p50), p90: round(p.p90), p99: round(p.p99), max: round(Math.max(...latencies)), n: p.n } } : {}),
      ...(leftOut.length ? { createdToLeftOutMs: { p50: round(q.p50), p90: round(q.p90), p99: round(q.p99), max: round(Math.max(...leftOut)), n: q.n } } : {}),
      agentStartToListedMs: listedAt - t0,
      rssMiBAfterAgentList: afterList,
      rssMiBAfterCreates: afterCreates,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    process.removeListener('exit', killAgent);
    peaks.agentPid = undefined;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Status writes per second during pod churn, against the real server. */
async function benchChurn(api: KubeApi, client: AdminClient, podsPerMinute: number): Promise<Record<string, number>> {
  const SHARES = 10;
  const ns = `churn-${podsPerMinute}`;
  for (let i = 0; i < SHARES; i++) await client.create(shareMemory(ns, `s${i}`, 1) as { metadata: { namespace: string; name: string } });
  const holders = new Map<string, number>();
  const send = kubeSendForKubeconfig(api.adminKubeconfig);
  let writes = 0;
  let refused = 0;
  let changes = 0;
  const writer = new StatusWriter({
    nodeName: 'bench-node',
    send: async (r) => {
      const res = await send(r);
      if (r.method === 'PATCH') {
        writes++;
        if (res.status !== 200) refused++;
      }
      return res;
    },
    snapshot: async (s): Promise<NodeShareStatus | undefined> => {
      const n = holders.get(s.name) ?? 0;
      return n > 0 ? { holders: n, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T00:00:00Z', backend: 'local' } : undefined;
    },
    held: () => [...holders].filter(([, n]) => n > 0).map(([name]) => ({ namespace: ns, name })),
  }).start();
  const change = (name: string, d: number) => {
    holders.set(name, (holders.get(name) ?? 0) + d);
    changes++;
    writer.changed({ namespace: ns, name });
  };
  await writer.idle();
  const before = writes;
  const start = Date.now();
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
    }, 60_000 / podsPerMinute);
  });
  const elapsed = (Date.now() - start) / 1000;
  const n = writes - before;
  for (const t of timers) clearTimeout(t);
  await writer.stop();
  if (refused) throw new Error(`${refused} status writes were not answered 200`);
  const out = { podsPerMinute, pods, shares: SHARES, seconds: round(elapsed, 1), stateChanges: changes, apiWrites: n, apiWritesPerSecond: round(n / elapsed, 2), stateChangesPerSecond: round(changes / elapsed, 2) };
  console.log(`churn ${podsPerMinute} pods/min over ${SHARES} shares: ${out.stateChangesPerSecond} state changes/s -> ${out.apiWritesPerSecond} API writes/s (${n} in ${out.seconds} s), RSS MiB ${JSON.stringify(rssNow(api))}`);
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: npm run build first`);
  const api = await startKubeApi();
  const peaks = new RssPeaks(api);
  const client = new AdminClient(api);
  const scale: Record<string, unknown> = { objects: OBJECTS, when: new Date().toISOString() };
  let churn: Record<string, unknown> | undefined;
  try {
    api.kubectlOk(['apply', '-f', join(repo, 'packaging', 'kubernetes', 'crd-sharememory.yaml')]);
    api.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/sharememories.resource.ubsvirt.huawei.com']);
    const idle = rssNow(api);
    console.log(`creating ${OBJECTS} ShareMemory objects (${IN_FLIGHT} in flight)...`);
    const rate = await createObjects(client, OBJECTS);
    await sleep(2000);
    scale.rssMiBIdleEmpty = idle;
    scale.createsPerSecond = round(rate, 0);
    scale.rssMiBAfterCreates = rssNow(api);
    scale.etcdMiB = etcdDbMiB(api);
    console.log(`created at ${round(rate, 0)}/s; RSS MiB ${JSON.stringify(scale.rssMiBAfterCreates)} (empty: ${JSON.stringify(idle)}); etcd database ${JSON.stringify(scale.etcdMiB)}`);
    scale.fullListMs = await benchList(api);
    scale.rssMiBAfterLists = rssNow(api);
    scale.agent = await benchAgent(api, client, peaks, (scale.fullListMs as { declarationsKept: number }).declarationsKept);
    if (CHURN_SECONDS > 0) {
      const runs = [];
      for (const ppm of [100, 400, 1600]) runs.push(await benchChurn(api, client, ppm));
      churn = {
        objects: OBJECTS,
        policy: 'status writer defaults: one write per share per 2 s at most, 5 writes/s in all (burst 10); unchanged states are not written',
        runs,
        rssMiBAfter: rssNow(api),
      };
    }
    peaks.sample();
    scale.peakRssMiB = { apiserver: round(peaks.apiserver / MiB, 1), etcd: round(peaks.etcd / MiB, 1), agent: round(peaks.agent / MiB, 1) };
    console.log(`peak RSS MiB: ${JSON.stringify(scale.peakRssMiB)}`);
  } finally {
    peaks.stop();
    client.close();
    await api.stop();
  }
  // one file for all runs: this object count's entry replaced, the others kept
  let results: { server?: string; machine?: unknown; scales?: Record<string, unknown>; churn?: unknown } = {};
  try {
    const old = JSON.parse(readFileSync(resultsFile, 'utf8')) as typeof results;
    if (old.scales) results = old;
  } catch {
    /* first run */
  }
  results.server = 'real: apiextensions-apiserver 1.36.4 (test/harness/apiserver) over etcd 3.5, loopback, client certificates';
  results.machine = { cpus: cpus().length, node: process.version, agentNodeFlags: AGENT_NODE_FLAGS.join(' ') };
  results.scales = { ...(results.scales ?? {}), [String(OBJECTS)]: scale };
  if (churn) results.churn = churn;
  mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written to ${resultsFile}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
