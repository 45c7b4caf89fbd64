// The agent against a real Kubernetes API server (test/harness/apiserver.ts: Kubernetes'
// apiextensions-apiserver over etcd), beside real containerd 1.7 and 2.1. What the project's fake
// API server proved before, here against Kubernetes' own code: the shipped CRD and RBAC applied
// with kubectl; ShareMemory objects created, changed and deleted with kubectl and the agent's
// declarations following, down to the share inside a container; the watch resumed after the
// server restarts and after etcd compaction (410, list again); two agents as two nodes writing
// their status entries by server-side apply, each removing only its own; kubectl get and describe
// showing them; refusal Events through a stand-in for events.k8s.io/v1; a forbidden list; a
// ShareMemory the CRD admits but a node with narrower limits refuses, visible in the node's
// status entry and the Refused-By column, told to the pods it grants and to no other pod.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, startContainerd, startKubeApi, uniqueName, type ContainerdInstance, type KubeApi, type RunningPod } from '../harness';
import { Agent, rejection, waitUntil } from './agent';
import { applyNodeStatus, kubeSendForKubeconfig } from './cluster-support';

const REPO = join(__dirname, '..', '..', '..');
const KUBE = join(REPO, 'packaging', 'kubernetes');
const FIXTURES = join(REPO, 'test', 'fixtures', 'kube');
const POD_KEY = 'memshare.nri.io/pod';
const GROUP = 'resource.ubsvirt.huawei.com';
const NODE_A = 'e2e-node-a';
const NODE_B = 'e2e-node-b';
type Doc = Record<string, any>;

const smv = (ns: string, name: string, storage: string, extra = ''): string =>
  `apiVersion: ${GROUP}/v1\nkind: ShareMemory\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {storage: ${storage}${extra}}\n`;

/** an agent with a kubeconfig for `user` (a client certificate) as node `node` */
function kubeAgent(api: KubeApi, nriSocket: string, node: string, groups: string[]): Agent {
  const agent = new Agent({ nriSocket });
  const config = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Doc;
  config.kubernetes = { kubeconfig: api.kubeconfig(`system:node:${node}`, groups), nodeName: node };
  writeFileSync(agent.configPath, JSON.stringify(config, null, 2));
  return agent;
}

/** rewrites the agent's config `limits` (undefined: the defaults); takes effect at its next start */
function setLimits(agent: Agent, limits: Record<string, string> | undefined): void {
  const config = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Doc;
  if (limits) config.limits = limits;
  else delete config.limits;
  writeFileSync(agent.configPath, JSON.stringify(config, null, 2));
}

/** the memshare part of a CRI error (containerd wraps it in its own words) */
const memshareText = (err: Error): string => err.message.slice(err.message.indexOf(POD_KEY));

forEachContainerd('the agent on a real API server', (test, env) => {
  let api: KubeApi;
  let a: Agent;
  const ns = 'team-r';
  const pod = (annotations: Record<string, string>, cri = env.cri): Promise<RunningPod> => cri.runPod({ name: uniqueName('p'), namespace: ns, annotations });
  const get = (name: string): Doc => JSON.parse(api.kubectlOk(['get', 'smv', '-n', ns, name, '-o', 'json', '--show-managed-fields'])) as Doc;
  const entry = (name: string, node: string): Doc | undefined => (get(name).status?.nodes as Doc[] | undefined)?.find((e) => e.nodeName === node);
  const seen = (agent: Agent, change: string, name: string): number => agent.output().split(`"change":"${change}","share":"${ns}/${name}"`).length - 1;
  const waitSeen = (agent: Agent, change: string, name: string, n = 1) =>
    waitUntil(() => seen(agent, change, name) >= n, 20000, () => `the agent did not log ${change} ${ns}/${name}; log tail:\n${agent.output().slice(-2500)}`);

  test('the shipped CRD and the RBAC (on stand-in RBAC kinds) are applied with kubectl', async () => {
    api = await startKubeApi();
    const crd = api.kubectlOk(['apply', '--validate=strict', '-f', join(KUBE, 'crd-sharememory.yaml')]);
    assert.match(crd, /customresourcedefinition.apiextensions.k8s.io\/sharememories.resource.ubsvirt.huawei.com created/);
    api.kubectlOk(['apply', '-f', join(FIXTURES, 'events-standin-crd.yaml'), '-f', join(FIXTURES, 'rbac-standin-crds.yaml')]);
    api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/sharememories.resource.ubsvirt.huawei.com', 'crd/events.events.k8s.io', 'crd/clusterroles.rbac.authorization.k8s.io', 'crd/clusterrolebindings.rbac.authorization.k8s.io']);
    const conds = (JSON.parse(api.kubectlOk(['get', 'crd', 'sharememories.resource.ubsvirt.huawei.com', '-o', 'json'])) as Doc).status.conditions as Doc[];
    assert.equal(conds.filter((c) => c.type === 'NonStructuralSchema'), [], 'a structural schema');
    // rbac.yaml also has a ServiceAccount (core API: not on this server); the rest goes in as shipped
    const rbac = readFileSync(join(KUBE, 'rbac.yaml'), 'utf8').split(/^---$/m).filter((d) => !/^kind: ServiceAccount$/m.test(d)).join('---');
    const out = api.kubectlOk(['apply', '--validate=strict', '-f', '-'], { input: rbac });
    for (const n of ['watcher', 'status', 'events']) {
      assert.match(out, new RegExp(`clusterrole.rbac.authorization.k8s.io/nri-memshare-${n} created`));
      assert.match(out, new RegExp(`clusterrolebinding.rbac.authorization.k8s.io/nri-memshare-${n} created`));
    }
  });

  test('an agent whose certificate is outside the allowed groups is told what its list needs (403)', async () => {
    const denied = kubeAgent(api, env.containerd.nriSocket, NODE_A, ['system:nodes']);
    try {
      await denied.start();
      await waitUntil(() => /403 Forbidden/.test(denied.output()), 20000, () => `no 403 in the log:\n${denied.output().slice(-2000)}`);
      const line = denied.output().split('\n').find((l) => l.includes('403 Forbidden'))!;
      assert.match(line, /needs get, list and watch on sharememories in API group resource\.ubsvirt\.huawei\.com/);
      assert.match(line, /nri-memshare-watcher from packaging\/kubernetes\/rbac\.yaml/);
      assert.match(line, /system:node:e2e-node-a/, "the server's own Status message names the user");
    } finally {
      await denied.cleanup();
    }
  });

  test('ShareMemory created, changed and deleted with kubectl: the declaration and the share follow', async () => {
    a = kubeAgent(api, env.containerd.nriSocket, NODE_A, ['system:masters', 'system:nodes']);
    await a.start();
    assert.match(a.output(), /"node":"e2e-node-a","status":true,"events":true/);
    const s = uniqueName('s');
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, s, '128Mi') });
    await waitSeen(a, 'added', s);
    const p = await pod({ [POD_KEY]: s });
    const c = await env.cri.runContainer(p, { name: 'main' });
    const df = await env.cri.execSync(c, ['df', '-k', `/dev/shm/${s}`], 20);
    assert.match(df.stdout, /\s131072\s/, `a 128 MiB tmpfs in the container: ${df.stdout}`);
    // changed with kubectl: the agent takes the new size; the next binding grows the tmpfs in place
    api.kubectlOk(['patch', 'smv', '-n', ns, s, '--type=merge', '-p', '{"spec":{"storage":"192Mi"}}']);
    await waitSeen(a, 'changed', s);
    const p2 = await pod({ [POD_KEY]: s });
    await env.cri.runContainer(p2, { name: 'main' });
    const grown = await env.cri.execSync(c, ['df', '-k', `/dev/shm/${s}`], 20);
    assert.match(grown.stdout, /\s196608\s/, `grown to 192 MiB, seen from the first container: ${grown.stdout}`);
    await env.cri.stopContainer(c, 5);
    for (const x of [p, p2]) await env.cri.removePod(x.id);
    // deleted with kubectl: the declaration goes, a pod asking for it is refused
    api.kubectlOk(['delete', 'smv', '-n', ns, s]);
    await waitSeen(a, 'removed', s);
    const q = await pod({ [POD_KEY]: s });
    const err = await rejection(env.cri.createContainer(q.id, q.config, { name: 'main' }), 'a pod asking for a deleted share');
    assert.match(err.message, /not declared/);
    await env.cri.removePod(q.id).catch(() => undefined);
  });

  test('the refusal is an Event in events.k8s.io/v1 (stand-in), its retry folded into series', async () => {
    const missing = uniqueName('nope');
    const p = await pod({ [POD_KEY]: missing });
    const cri = (await rejection(env.cri.createContainer(p.id, p.config, { name: 'main' }), 'a pod asking for an undeclared share')).message;
    const events = (): Doc[] => ((JSON.parse(api.kubectlOk(['get', 'events.v1.events.k8s.io', '-n', ns, '-o', 'json'])) as Doc).items as Doc[]).filter((e) => e.regarding?.name === p.config.metadata.name);
    await waitUntil(() => events().length === 1, 15000, () => `no Event; agent log tail:\n${a.output().slice(-2000)}`);
    const ev = events()[0];
    assert.equal([ev.reason, ev.type, ev.action, ev.regarding.kind, ev.regarding.namespace, ev.regarding.uid, ev.reportingInstance], ['MemshareRefused', 'Warning', 'Bind', 'Pod', ns, p.config.metadata.uid, NODE_A]);
    assert.ok(cri.includes(ev.note), `the CRI error carries the note ${JSON.stringify(ev.note)}`);
    await rejection(env.cri.createContainer(p.id, p.config, { name: 'main' }), 'the retry');
    await waitUntil(() => events()[0]?.series?.count === 2, 15000, () => `no series: ${JSON.stringify(events())}`);
    assert.is(events().length, 1, 'one Event');
    // the stand-in refuses what a real events API refuses (so the agent's accepted writes count)
    const bad = api.kubectl(['create', '-n', ns, '-f', '-'], { input: JSON.stringify({ ...ev, metadata: { name: uniqueName('bad'), namespace: ns }, type: 'Fatal', series: { count: 1, lastObservedTime: ev.eventTime } }) });
    assert.is.not(bad.status, 0);
    assert.match(bad.stderr, /type: Unsupported value: "Fatal"/);
    assert.match(bad.stderr, /series.count: Invalid value: 1: .*greater than or equal to 2/);
    await env.cri.removePod(p.id).catch(() => undefined);
  });

  test('two agents as two nodes: each writes its status entry by server-side apply and removes only its own', async () => {
    let cb: ContainerdInstance | undefined;
    let b: Agent | undefined;
    try {
      cb = await startContainerd({ version: env.version as '1.7' | '2.1' });
      b = kubeAgent(api, cb.nriSocket, NODE_B, ['system:masters', 'system:nodes']);
      await b.start();
      const s = uniqueName('two');
      api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, s, '128Mi') });
      await waitSeen(a, 'added', s);
      await waitSeen(b, 'added', s);
      const pa = await pod({ [POD_KEY]: s });
      const ca = await env.cri.runContainer(pa, { name: 'main' });
      const pb = await pod({ [POD_KEY]: s }, cb.cri);
      const cbc = await cb.cri.runContainer(pb, { name: 'main' });
      const pb2 = await pod({ [POD_KEY]: s }, cb.cri);
      await cb.cri.runContainer(pb2, { name: 'main' });
      await waitUntil(() => entry(s, NODE_A)?.holders === 1 && entry(s, NODE_B)?.holders === 2, 20000, () => `entries: ${JSON.stringify(get(s).status)}`);
      const obj = get(s);
      assert.equal([...obj.status.nodeNames].sort(), [NODE_A, NODE_B]);
      assert.equal([...obj.status.holdersByNode].sort(), [`${NODE_A}=1`, `${NODE_B}=2`]);
      const managers = (obj.metadata.managedFields as Doc[]).filter((m) => m.subresource === 'status').map((m) => [m.manager, m.operation]).sort();
      assert.equal(managers, [[`nri-memshare-${NODE_A}`, 'Apply'], [`nri-memshare-${NODE_B}`, 'Apply']], 'one field manager per node, by apply');
      // what an operator sees
      const table = api.kubectlOk(['get', 'smv', '-A']);
      const row = table.split('\n').find((l) => l.includes(s))!;
      assert.match(row, new RegExp(`^${ns}\\s+${s}\\s+128Mi\\s+`));
      assert.ok(row.includes(NODE_A) && row.includes(NODE_B) && row.includes(`${NODE_B}=2`), `kubectl get smv -A row: ${row}`);
      const describe = api.kubectlOk(['describe', 'smv', '-n', ns, s]);
      assert.match(describe, /Node Name:\s+e2e-node-a/);
      assert.match(describe, /Node Name:\s+e2e-node-b/);
      assert.match(describe, /Size In Force:\s+134217728/);
      // node b lets go: only its entry goes; node a's stays as it was
      await cb.cri.stopContainer(cbc, 5);
      await waitUntil(() => entry(s, NODE_B)?.holders === 1, 20000, () => `b down to one: ${JSON.stringify(get(s).status)}`);
      for (const p of [pb, pb2]) await cb.cri.removePod(p.id);
      await waitUntil(() => entry(s, NODE_B) === undefined, 20000, () => `b's entry kept: ${JSON.stringify(get(s).status)}`);
      assert.is(entry(s, NODE_A)?.holders, 1, "a's entry untouched");
      assert.equal(get(s).status.nodeNames, [NODE_A]);
      await env.cri.stopContainer(ca, 5);
      await env.cri.removePod(pa.id);
      await waitUntil(() => entry(s, NODE_A) === undefined, 20000, () => `a's entry kept: ${JSON.stringify(get(s).status)}`);
      assert.equal(get(s).spec, { storage: '128Mi' }, 'status writes never touch spec');
    } finally {
      await b?.cleanup();
      await cb?.stop();
    }
    assert.equal(b!.errorLines(), [], 'no errors in node b\'s log');
  });

  test('a restarted agent removes an entry it left behind and keeps the one it holds', async () => {
    const held = uniqueName('h');
    const stale = uniqueName('st');
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, held, '128Mi') + '---\n' + smv(ns, stale, '128Mi') });
    await waitSeen(a, 'added', stale);
    await waitSeen(a, 'added', held);
    const p = await pod({ [POD_KEY]: held });
    await env.cri.runContainer(p, { name: 'main' });
    await waitUntil(() => entry(held, NODE_A)?.holders === 1, 20000, () => `held: ${JSON.stringify(get(held).status)}`);
    await a.stop('SIGKILL');
    // left by an earlier life of this node (killed between a release and its write), as it applies
    const send = kubeSendForKubeconfig(api.kubeconfig(`system:node:${NODE_A}`, ['system:masters', 'system:nodes']));
    assert.equal(await applyNodeStatus(send, NODE_A, { namespace: ns, name: stale }, { holders: 1, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T00:00:00Z', backend: 'local' }), { kind: 'applied' });
    assert.is(entry(stale, NODE_A)?.holders, 1);
    await a.start();
    await waitUntil(() => entry(stale, NODE_A) === undefined, 20000, () => `stale entry kept: ${JSON.stringify(get(stale).status)}`);
    assert.is(entry(held, NODE_A)?.holders, 1, 'the held share keeps its entry');
    await env.cri.removePod(p.id).catch(() => undefined);
  });

  test("a ShareMemory the CRD admits but this node's narrower limits refuse: its entry says why, Refused-By shows it, granted pods are told, others not; fixed, it goes", async () => {
    const s = uniqueName('small');
    const granted = uniqueName('ns-g');
    const outsider = uniqueName('ns-o');
    // this node takes shares of 256Mi and up; the CRD (the default limits) admits 128Mi
    await a.stop();
    setLimits(a, { minShareBytes: '256Mi' });
    await a.start();
    try {
      await refusedHere(s, granted, outsider);
    } finally {
      // the tests after this one run with the default limits, whatever happened here
      if (/minShareBytes/.test(readFileSync(a.configPath, 'utf8'))) {
        await a.stop();
        setLimits(a, undefined);
        await a.start();
      }
    }
  });

  async function refusedHere(s: string, granted: string, outsider: string): Promise<void> {
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, s, '128Mi', `, allowedNamespaces: [${granted}]`) });
    const reason = 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 512 GiB';
    await waitUntil(() => entry(s, NODE_A)?.refused === reason, 20000, () => `no refused entry: ${JSON.stringify(get(s).status)}; log tail:\n${a.output().slice(-2000)}`);
    let obj = get(s);
    assert.equal(obj.status.nodes, [{ nodeName: NODE_A, refused: reason, observedGeneration: obj.metadata.generation }], 'the node judged this generation');
    assert.equal(obj.status.refusedBy, [NODE_A]);
    assert.is(obj.status.nodeNames, undefined, 'a refusing node holds nothing');
    // kubectl get smv: the printer column, through the real server's table conversion
    const table = api.kubectlOk(['get', 'smv', '-n', ns]).split('\n');
    assert.match(table[0], /^NAME\s+SIZE\s+NODES\s+HOLDERS\s+REFUSED-BY\s+AGE$/);
    const row = table.find((l) => l.startsWith(`${s} `))!;
    assert.match(row, new RegExp(`^${s}\\s+128Mi\\s+\\["${NODE_A}"\\]\\s+\\d+s$`), `the row: ${row}`);
    // the pods it grants (its own namespace, a listed one) are told why; any other pod gets what a
    // share that never existed gets, word for word
    const told = `${POD_KEY}: share "${ns}/${s}": declared but refused on this node: ${reason}`;
    const refusedIn = async (namespace: string, share: string): Promise<string> => {
      const p = await env.cri.runPod({ name: uniqueName('p'), namespace, annotations: { [POD_KEY]: `${ns}/${share}` } });
      try {
        return memshareText(await rejection(env.cri.createContainer(p.id, p.config, { name: 'main' }), `a pod of ${namespace} asking for ${ns}/${share}`));
      } finally {
        await env.cri.removePod(p.id).catch(() => undefined);
      }
    };
    assert.is(await refusedIn(ns, s), told);
    assert.is(await refusedIn(granted, s), told);
    const ghost = uniqueName('ghost');
    const outside = await refusedIn(outsider, s);
    assert.is(outside, (await refusedIn(outsider, ghost)).replaceAll(ghost, s));
    assert.match(outside, `not granted to namespace "${outsider}"`);
    // the log line (JSON) keeps the operator's difference
    assert.match(a.output(), JSON.stringify(`declared but refused on this node: ${reason}; "${outsider}" is not among the namespaces it grants`).slice(1, -1));
    // fixed with kubectl (a new generation): the entry goes, the column empties, a granted pod binds
    api.kubectlOk(['patch', 'smv', '-n', ns, s, '--type=merge', '-p', '{"spec":{"storage":"256Mi"}}']);
    await waitUntil(() => entry(s, NODE_A) === undefined, 20000, () => `the refused entry stayed: ${JSON.stringify(get(s).status)}`);
    assert.equal(get(s).status?.refusedBy ?? [], []);
    assert.match(api.kubectlOk(['get', 'smv', '-n', ns, s]).split('\n')[1], new RegExp(`^${s}\\s+256Mi\\s+\\d+s$`));
    const p = await env.cri.runPod({ name: uniqueName('p'), namespace: granted, annotations: { [POD_KEY]: `${ns}/${s}` } });
    await env.cri.runContainer(p, { name: 'main' });
    await waitUntil(() => entry(s, NODE_A)?.holders === 1, 20000, () => `no holder entry: ${JSON.stringify(get(s).status)}`);
    assert.is(entry(s, NODE_A)?.refused, undefined);
    // changed back under its user: one entry with both; then the node's limits change (restart
    // with the defaults): the same generation is taken, and the entry turns normal
    api.kubectlOk(['patch', 'smv', '-n', ns, s, '--type=merge', '-p', '{"spec":{"storage":"128Mi"}}']);
    await waitUntil(() => entry(s, NODE_A)?.refused === reason, 20000, () => `not refused again: ${JSON.stringify(get(s).status)}`);
    obj = get(s);
    assert.equal([entry(s, NODE_A)?.holders, entry(s, NODE_A)?.observedGeneration], [1, obj.metadata.generation]);
    assert.equal(obj.status.nodeNames, [NODE_A]);
    await a.stop();
    setLimits(a, undefined);
    await a.start();
    await waitUntil(() => entry(s, NODE_A)?.refused === undefined, 20000, () => `still refused with the default limits: ${JSON.stringify(get(s).status)}`);
    assert.is(entry(s, NODE_A)?.holders, 1);
    assert.equal(get(s).status?.refusedBy ?? [], []);
    await env.cri.removePod(p.id);
    await waitUntil(() => entry(s, NODE_A) === undefined, 20000, () => `entry kept after the pod went: ${JSON.stringify(get(s).status)}`);
  }

  test('the watch resumes after the API server restarts', async () => {
    await api.restartServer();
    const s = uniqueName('after');
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, s, '128Mi') });
    await waitSeen(a, 'added', s);
  });

  test('after etcd compaction past its resourceVersion the agent takes the 410 and lists again', async () => {
    const kept = uniqueName('kept');
    const gone = uniqueName('gone');
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, kept, '128Mi') + '---\n' + smv(ns, gone, '128Mi') });
    await waitSeen(a, 'added', kept);
    await waitSeen(a, 'added', gone);
    // with the server down, a deletion the agent can only learn by listing, then compaction of
    // every revision its watch could resume from
    await api.stopServer();
    assert.match(api.etcdctl(['del', `/registry/apiextensions.kubernetes.io/${GROUP}/sharememories/${ns}/${gone}`]), /^1$/m, 'one key deleted');
    const rev = api.etcdRevision();
    api.etcdctl(['compact', String(rev)]);
    await api.startServer();
    await waitSeen(a, 'removed', gone);
    assert.is(seen(a, 'removed', kept), 0, 'the other object stays declared');
    const s = uniqueName('later');
    api.kubectlOk(['apply', '-f', '-'], { input: smv(ns, s, '128Mi') });
    await waitSeen(a, 'added', s);
  });

  test('cleanup', async () => {
    await a.cleanup();
    await api.stop();
    // the restarts and the 410 are warnings (connection problems), never errors
    assert.equal(a.errorLines(), [], 'no errors in the agent log');
  });
});
