// Refused bindings as Kubernetes Events against the fake API server: one Event per pod, reason and
// note; repeats folded into its series like the kubelet's correlator; a new Event when the old one
// expired; the per-pod limit; the config keys that switch the writers off.
// On the fake for failures at chosen moments (a lost create, 404 on a patch, outages), which a
// real API server cannot be made to produce on demand; the Event and its series are proven on a
// real one (stand-in CRD) in test/e2e/cluster-apiserver.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kubeRequest, parseKubeconfig } from '../../plugin/kube';
import { EVENT_REASON, REPORTING_CONTROLLER, RefusalEvents, resolveNodeName, type KubeSend } from '../../plugin/cluster';
import { parseConfig } from '../../plugin/agent/config';
import { FakeApiServer } from '../support/fake-apiserver';
import { cleanupsAfterEach } from '../support/cleanup';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';

// Events as JSON: the assertions check their shape
type Doc = Record<string, any>;
const POD = { namespace: 'team-a', name: 'web-1', uid: '11111111-2222-4333-8444-555555555555' };
const MSG = 'memshare.nri.io/pod: share "team-a/missing": not declared (no ShareMemory team-a/missing on this node)';

const cleanups = cleanupsAfterEach(test);

async function setup(opts: Partial<ConstructorParameters<typeof RefusalEvents>[0]> = {}) {
  const api = new FakeApiServer();
  await api.start();
  cleanups.push(() => api.stop());
  const c = parseKubeconfig(anonymousKubeconfigText(api.url), '/nonexistent/kubeconfig');
  const send: KubeSend = (r) => kubeRequest(c, r);
  const ev = new RefusalEvents({ nodeName: 'node-a', send, patchIntervalMs: 10, ...opts });
  cleanups.push(() => ev.stop());
  return { api, ev, send, events: () => [...api.writes.events.values()] as Doc[] };
}

test('a refusal is a Warning Event on the pod with the CRI text as its note', async () => {
  const { api, ev, events } = await setup();
  ev.refused(POD, MSG);
  await ev.idle();
  const [e, ...more] = events();
  assert.equal(more, []);
  assert.is(e.apiVersion, 'events.k8s.io/v1');
  assert.equal([e.reason, e.type, e.note, e.action], [EVENT_REASON, 'Warning', MSG, 'Bind']);
  assert.equal(e.regarding, { apiVersion: 'v1', kind: 'Pod', namespace: POD.namespace, name: POD.name, uid: POD.uid });
  assert.equal([e.reportingController, e.reportingInstance], [REPORTING_CONTROLLER, 'node-a']);
  assert.is(e.metadata.namespace, POD.namespace);
  assert.match(e.metadata.name, /^web-1\.[0-9a-f]+$/);
  assert.match(e.eventTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime');
  assert.is(e.series, undefined, 'a first occurrence has no series');
  assert.equal(api.requests.filter((r) => r.method === 'POST').map((r) => r.status), [201]);
});

test('repeats within the window fold into one Event: its series counts them (PATCH, not new Events)', async () => {
  const { api, ev, events } = await setup();
  ev.refused(POD, MSG);
  await ev.idle();
  for (let i = 0; i < 9; i++) ev.refused(POD, MSG); // the kubelet retrying the container
  await ev.idle();
  const all = events();
  assert.is(all.length, 1, 'one Event');
  assert.is(all[0].series.count, 10);
  assert.match(all[0].series.lastObservedTime, /Z$/);
  const patches = api.requests.filter((r) => r.method === 'PATCH');
  assert.ok(patches.length >= 1 && patches.length <= 9, `folded repeats are patched, coalesced: ${patches.length}`);
  assert.ok(patches.every((p) => p.status === 200));
  assert.is(ev.stats.created, 1);
  assert.is(ev.stats.folded, 9);
});

test('another message, another pod or a repeat after the window: a new Event', async () => {
  let now = 1_000_000;
  const { ev, events } = await setup({ now: () => now, windowMs: 60_000 });
  ev.refused(POD, MSG);
  ev.refused(POD, `${MSG} (other)`);
  ev.refused({ ...POD, name: 'web-2', uid: 'u2' }, MSG);
  await ev.idle();
  assert.is(events().length, 3);
  now += 61_000;
  ev.refused(POD, MSG);
  await ev.idle();
  assert.is(events().length, 4, 'past the window: not folded');
});

test('an Event gone from the server (its TTL) is created anew on the next repeat', async () => {
  const { api, ev, events } = await setup();
  ev.refused(POD, MSG);
  await ev.idle();
  api.writes.events.clear(); // expired
  ev.refused(POD, MSG);
  await ev.idle();
  const all = events();
  assert.is(all.length, 1);
  assert.is(all[0].series.count, 2, 'the count carries over');
  assert.ok(api.requests.some((r) => r.method === 'PATCH' && r.status === 404));
});

test('the per-pod limit drops new Events past the burst (the spam filter), folding still counts', async () => {
  const { ev, events } = await setup({ burst: 2 });
  for (let i = 0; i < 5; i++) ev.refused(POD, `${MSG} #${i}`);
  await ev.idle();
  assert.is(events().length, 2);
  assert.is(ev.stats.limited, 3);
});

test('a note longer than 1 kB is cut at a character boundary (the API refuses more)', async () => {
  const { ev, events } = await setup();
  ev.refused(POD, `${MSG} ${'ä'.repeat(1000)}`);
  await ev.idle();
  const [e] = events();
  assert.ok(Buffer.byteLength(e.note) <= 1024);
  assert.ok(e.note.endsWith('...'));
});

test('the server away: no throw, counted, the next refusal tries afresh', async () => {
  const { api, ev, events } = await setup();
  await api.stop();
  ev.refused(POD, MSG);
  await ev.idle();
  assert.is(ev.stats.failures, 1);
  await api.start();
  ev.refused(POD, MSG);
  await ev.idle();
  assert.is(events().length, 1);
});

test('fake: Events are validated as events.k8s.io/v1 (422) and names are unique (409)', async () => {
  const { send } = await setup();
  const post = (e: Doc) => send({ method: 'POST', path: '/apis/events.k8s.io/v1/namespaces/team-a/events', body: JSON.stringify(e) });
  const good = { metadata: { name: 'x.1' }, eventTime: '2026-12-01T00:00:00.000000Z', reportingController: 'a/b', reportingInstance: 'i', action: 'Bind', reason: 'R', type: 'Warning', regarding: { kind: 'Pod', namespace: 'team-a', name: 'p' } };
  assert.is((await post(good)).status, 201);
  assert.is((await post(good)).status, 409);
  for (const bad of [{ eventTime: undefined }, { type: 'Error' }, { series: { count: 1, lastObservedTime: 'x' } }, { regarding: { kind: 'Pod', namespace: 'other', name: 'p' } }, { action: undefined }]) {
    const r = await post({ ...good, metadata: { name: `y.${Math.random()}` }, ...bad });
    assert.is(r.status, 422, JSON.stringify(bad));
  }
  const patch = await send({ method: 'PATCH', path: '/apis/events.k8s.io/v1/namespaces/team-a/events/nope', contentType: 'application/merge-patch+json', body: '{}' });
  assert.is(patch.status, 404);
});

test('config: kubernetes.status, kubernetes.events and kubernetes.nodeName; errors name the key', () => {
  const k = (extra: Doc) => parseConfig({ kubernetes: { kubeconfig: '/etc/kubernetes/kubelet.conf', ...extra } }, 't');
  assert.equal(k({}).config.kubernetes, { kubeconfig: '/etc/kubernetes/kubelet.conf', inCluster: false }, 'absent: on, nothing added');
  assert.equal(k({ status: false, events: false, nodeName: 'worker-1.example' }).config.kubernetes,
    { kubeconfig: '/etc/kubernetes/kubelet.conf', inCluster: false, status: false, events: false, nodeName: 'worker-1.example' });
  assert.equal(k({ status: 'no' }).problems, ['kubernetes.status: must be true or false, got "no"']);
  assert.match(k({ events: 1 }).problems[0], /^kubernetes\.events: must be true or false/);
  assert.match(k({ nodeName: 'Worker_1' }).problems[0], /^kubernetes\.nodeName: must be a node name/);
});

test('the node name: config, else NODE_NAME, else the host name lowercased', () => {
  assert.is(resolveNodeName('cfg', { NODE_NAME: 'env' }, () => 'Host'), 'cfg');
  assert.is(resolveNodeName(undefined, { NODE_NAME: 'env' }, () => 'Host'), 'env');
  assert.is(resolveNodeName(undefined, {}, () => 'Host-1'), 'host-1');
});

test.run();
