// The agent beside real containerd 1.7 and 2.1 with a kubeconfig pointing at the fake API server:
// a ShareMemory created in the API becomes bindable, the node's status entry follows pods as they
// come and go (holders up and down, removed at release), another node's entry stays untouched, a
// refused pod gets a Kubernetes Event whose note is the text CRI reported, and a restarted agent
// corrects an entry it left behind.
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName, type RunningPod } from '../harness';
import { Agent, rejection, waitUntil } from './agent';
import { FakeApiServer } from '../support/fake-apiserver';
import { applyNodeStatus, kubeSendFor } from './cluster-support';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';

const POD_KEY = 'memshare.nri.io/pod';
const NODE = 'e2e-node-a';
// objects from the fake as JSON: the assertions check their shape
type Doc = Record<string, any>;

forEachContainerd('cluster status and events', (test, env) => {
  let agent: Agent;
  let api: FakeApiServer;
  const ns = 'team-c';

  const pod = (annotations: Record<string, string>): Promise<RunningPod> => env.cri.runPod({ name: uniqueName('p'), namespace: ns, annotations });
  const entry = (share: string, node = NODE): Doc | undefined => (api.get(ns, share)?.status?.nodes as Doc[] | undefined)?.find((e) => e.nodeName === node);
  const waitEntry = (share: string, pred: (e: Doc | undefined) => boolean, what: string) =>
    waitUntil(() => pred(entry(share)), 20000, () => `${what}: status is ${JSON.stringify(api.get(ns, share)?.status)}; agent log tail:\n${agent.output().slice(-2500)}`);

  test('the agent starts with the API server and writes as node e2e-node-a', async () => {
    api = new FakeApiServer();
    await api.start();
    agent = new Agent({ nriSocket: env.containerd.nriSocket });
    const kubeconfig = join(agent.dir, 'kubeconfig');
    writeFileSync(kubeconfig, anonymousKubeconfigText(api.url));
    const config = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Doc;
    config.kubernetes = { kubeconfig, nodeName: NODE };
    writeFileSync(agent.configPath, JSON.stringify(config, null, 2));
    await agent.start();
    assert.match(agent.output(), /"node":"e2e-node-a","status":true,"events":true/);
  });

  test('status follows pods: holders up, down, and the entry removed at release; the other node untouched', async () => {
    const share = uniqueName('s');
    api.share(ns, share, '128Mi'); // created in the API while the agent runs
    await waitUntil(() => agent.output().includes(`"share":"${ns}/${share}"`), 15000, () => 'the agent never saw the new ShareMemory');
    // another node holds it too
    const send = kubeSendFor(api.url);
    assert.equal(await applyNodeStatus(send, 'e2e-node-b', { namespace: ns, name: share }, { holders: 4, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T00:00:00Z', backend: 'local' }), { kind: 'applied' });

    const pa = await pod({ [POD_KEY]: share });
    const a = await env.cri.runContainer(pa, { name: 'main' });
    await waitEntry(share, (e) => e?.holders === 1, 'one holder');
    const e1 = entry(share)!;
    assert.is(e1.sizeInForce, 128 * 1024 * 1024);
    assert.is(e1.backend, 'local');
    assert.ok(Number.isInteger(e1.bytesUsed), 'a tmpfs tells its usage');
    assert.match(e1.since, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const pb = await pod({ [POD_KEY]: share });
    const b = await env.cri.runContainer(pb, { name: 'main' });
    await waitEntry(share, (e) => e?.holders === 2, 'two holders');
    assert.ok(api.get(ns, share)!.status.holdersByNode.includes(`${NODE}=2`));
    await env.cri.stopContainer(a, 5);
    await waitEntry(share, (e) => e?.holders === 1, 'back to one holder');
    await env.cri.stopContainer(b, 5);
    await agent.waitMounted(ns, share, false);
    await waitEntry(share, (e) => e === undefined, 'entry removed at release');
    assert.equal(entry(share, 'e2e-node-b')?.holders, 4, "e2e-node-b's entry untouched throughout");
    assert.equal(api.get(ns, share)!.status.nodeNames, ['e2e-node-b']);
    assert.equal(api.get(ns, share)!.spec, { storage: '128Mi' });
    for (const p of [pa, pb]) {
      await env.cri.removePod(p.id).catch(() => undefined);
    }
    const managers = (api.get(ns, share)!.metadata.managedFields as Doc[]).map((m) => m.manager);
    assert.equal(managers, ['nri-memshare-e2e-node-b']);
  });

  test('a refused pod gets a Warning Event whose note is the text CRI reported; a retry folds into it', async () => {
    const missing = uniqueName('nope');
    const p = await pod({ [POD_KEY]: missing });
    const cri = (await rejection(env.cri.createContainer(p.id, p.config, { name: 'main' }), 'CreateContainer of a pod asking for an undeclared share')).message;
    await waitUntil(() => [...api.writes.events.values()].some((e) => e.regarding?.name === p.config.metadata.name), 15000, () => `no Event; agent log tail:\n${agent.output().slice(-2000)}`);
    const ev = [...api.writes.events.values()].find((e) => e.regarding?.name === p.config.metadata.name)!;
    assert.equal([ev.reason, ev.type, ev.regarding.kind, ev.regarding.namespace, ev.regarding.uid], ['MemshareRefused', 'Warning', 'Pod', ns, p.config.metadata.uid]);
    assert.ok(cri.includes(ev.note), `the CRI error ${JSON.stringify(cri)} carries the note ${JSON.stringify(ev.note)}`);
    assert.match(ev.note, new RegExp(`memshare\\.nri\\.io/pod.*${missing}`), 'names the annotation and the share');
    // the kubelet retries: the same refusal again
    await rejection(env.cri.createContainer(p.id, p.config, { name: 'main' }), 'the retry');
    await waitUntil(() => [...api.writes.events.values()].find((e) => e.regarding?.name === p.config.metadata.name)?.series?.count === 2, 15000, () => 'the retry did not fold into the Event');
    assert.is([...api.writes.events.values()].filter((e) => e.regarding?.name === p.config.metadata.name).length, 1, 'one Event');
    await env.cri.removePod(p.id).catch(() => undefined);
  });

  test('a restarted agent removes an entry it left behind and keeps the one it holds', async () => {
    const held = uniqueName('h');
    const stale = uniqueName('st');
    api.share(ns, held, '128Mi');
    api.share(ns, stale, '128Mi');
    await waitUntil(() => agent.output().includes(`"share":"${ns}/${stale}"`), 15000, () => 'not seen');
    const p = await pod({ [POD_KEY]: held });
    await env.cri.runContainer(p, { name: 'main' });
    await waitEntry(held, (e) => e?.holders === 1, 'held');
    await agent.stop('SIGKILL');
    // left by an earlier life of this node (e.g. killed between release and the write)
    const send = kubeSendFor(api.url);
    assert.equal(await applyNodeStatus(send, NODE, { namespace: ns, name: stale }, { holders: 1, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T00:00:00Z', backend: 'local' }), { kind: 'applied' });
    await agent.start();
    await waitUntil(() => entry(stale) === undefined, 20000, () => `stale entry kept: ${JSON.stringify(api.get(ns, stale)?.status)}`);
    assert.equal(entry(held)?.holders, 1, 'the held share keeps its entry');
    await env.cri.removePod(p.id).catch(() => undefined);
  });

  test('cleanup', async () => {
    await agent.cleanup();
    await api.stop();
    assert.equal(agent.errorLines(), [], 'no errors in the agent log');
  });
});
