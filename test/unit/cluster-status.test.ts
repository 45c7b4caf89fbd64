// This node's ShareMemory status entries against the fake API server: server-side apply on
// /status with a field manager per node, no node touching another's entry, coalescing, an outage
// and the catch-up after it, removal, the start-up correction, and the fake's own semantics.
// On the fake for outages, conflicts and exact write counts at chosen moments, which a real API
// server cannot be made to produce on demand; apply, merge and removal per node are proven on a
// real one in test/e2e/cluster-apiserver.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kubeRequest, parseKubeconfig, type KubeCredentials } from '../../plugin/kube';
import { applyNodeStatus, fieldManagerFor, startClusterWriters, StatusWriter, type KubeSend, type NodeRefusal, type NodeShareStatus, type ShareRef } from '../../plugin/cluster';
import { FakeApiServer } from '../support/fake-apiserver';
import type { RefusalChangeListener, RefusedDeclaration } from '../../plugin/declarations';
import { waitFor } from '../support/util';
import type { ShareHandle } from '../../plugin/model';
import type { BindingRecord } from '../../plugin/ledger';
import { cleanupsAfterEach } from '../support/cleanup';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';

const NS = 'team-a';
// objects and answers as JSON: the assertions check their shape
type Doc = Record<string, any>;

function creds(api: FakeApiServer): KubeCredentials {
  // anonymous over http: the fake needs no token here (tokens go over https only)
  const text = anonymousKubeconfigText(api.url);
  return parseKubeconfig(text, '/nonexistent/kubeconfig');
}

const cleanups = cleanupsAfterEach(test);

async function server(): Promise<{ api: FakeApiServer; send: KubeSend }> {
  const api = new FakeApiServer();
  await api.start();
  cleanups.push(() => api.stop());
  const c = creds(api);
  return { api, send: (r) => kubeRequest(c, r) };
}

/** A node: its shares (namespace/name -> state) and its writer. */
function node(nodeName: string, send: KubeSend, opts: Partial<ConstructorParameters<typeof StatusWriter>[0]> = {}) {
  const shares = new Map<string, NodeShareStatus>();
  const writer = new StatusWriter({
    nodeName,
    send,
    snapshot: async (s) => shares.get(`${s.namespace}/${s.name}`),
    held: () => [...shares.keys()].map((k) => ({ namespace: k.split('/')[0], name: k.split('/')[1] })),
    minIntervalMs: 0,
    resyncMs: 0,
    backoff: { initialMs: 20, maxMs: 100 },
    ...opts,
  });
  cleanups.push(() => writer.stop());
  const set = (name: string, holders: number | undefined) => {
    if (holders === undefined) shares.delete(`${NS}/${name}`);
    else shares.set(`${NS}/${name}`, { holders, bytesUsed: 4096 * holders, sizeInForce: 134217728, since: '2026-12-01T10:00:00Z', backend: 'local' });
    writer.changed({ namespace: NS, name });
  };
  return { shares, writer, set };
}

const patches = (api: FakeApiServer, name?: string) =>
  api.requests.filter((r) => r.method === 'PATCH' && (!name || r.path.endsWith(`/${name}/status`))).length;
const entries = (api: FakeApiServer, name: string): Doc[] => api.get(NS, name)?.status?.nodes ?? [];
const entry = (api: FakeApiServer, name: string, nodeName: string) => entries(api, name).find((e) => e.nodeName === nodeName);

test('a node applies its own entry to /status as its own field manager', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const gen = api.get(NS, 'demo')!.metadata.generation;
  const a = node('node-a', send);
  a.writer.start();
  a.set('demo', 2);
  await a.writer.idle();
  assert.equal(entry(api, 'demo', 'node-a'), { nodeName: 'node-a', holders: 2, bytesUsed: 8192, sizeInForce: 134217728, since: '2026-12-01T10:00:00Z', backend: 'local' });
  const obj = api.get(NS, 'demo')!;
  assert.equal(obj.status.nodeNames, ['node-a']);
  assert.equal(obj.status.holdersByNode, ['node-a=2']);
  assert.equal(obj.spec, { storage: '128Mi' }, 'spec untouched');
  assert.is(obj.metadata.generation, gen, 'a status write keeps the generation');
  const mf = obj.metadata.managedFields as Doc[];
  assert.equal(mf.map((m) => [m.manager, m.operation, m.subresource]), [['nri-memshare-node-a', 'Apply', 'status']]);
  assert.ok(mf[0].fieldsV1['f:status']['f:nodes']['k:{"nodeName":"node-a"}']['f:holders'], 'the entry is owned by key');
  const req = api.requests.find((r) => r.method === 'PATCH')!;
  assert.equal([req.path, req.query.fieldManager, req.query.force], [`/apis/resource.ubsvirt.huawei.com/v1/namespaces/${NS}/sharememories/demo/status`, 'nri-memshare-node-a', 'true']);
});

test('two nodes: each keeps its own entry; an update or removal by one never touches the other', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const a = node('node-a', send);
  const b = node('node-b', send);
  a.writer.start();
  b.writer.start();
  a.set('demo', 1);
  b.set('demo', 3);
  await Promise.all([a.writer.idle(), b.writer.idle()]);
  assert.equal(entries(api, 'demo').map((e) => [e.nodeName, e.holders]).sort(), [['node-a', 1], ['node-b', 3]]);
  a.set('demo', 5);
  await a.writer.idle();
  assert.equal(entry(api, 'demo', 'node-a')?.holders, 5);
  assert.equal(entry(api, 'demo', 'node-b')?.holders, 3, "node-b's entry as node-b wrote it");
  a.set('demo', undefined); // node-a released the share
  await a.writer.idle();
  assert.is(entry(api, 'demo', 'node-a'), undefined, "node-a's entry is gone");
  assert.equal(entries(api, 'demo').map((e) => e.nodeName), ['node-b']);
  const obj = api.get(NS, 'demo')!;
  assert.equal([obj.status.nodeNames, obj.status.holdersByNode], [['node-b'], ['node-b=3']]);
  assert.equal((obj.metadata.managedFields as Doc[]).map((m) => m.manager), ['nri-memshare-node-b'], 'node-a owns nothing any more');
});

test("a ShareMemory this node refuses gets the node's entry with the reason and the generation judged; fixed, the entry goes, or turns normal while held", async () => {
  const { api, send } = await server();
  api.share(NS, 'small', '128Mi');
  api.share(NS, 'held', '128Mi');
  const refusals = new Map<string, NodeRefusal>();
  const a = node('node-a', send, {
    refusal: (s) => refusals.get(`${s.namespace}/${s.name}`),
    refused: () => [...refusals.keys()].map((k) => ({ namespace: NS, name: k.split('/')[1] })),
  });
  const b = node('node-b', send);
  refusals.set(`${NS}/small`, { reason: 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 512 GiB', observedGeneration: 1 });
  a.writer.start(); // a refusal known at start is written without a change
  b.writer.start();
  b.set('small', 1);
  await a.writer.idle();
  await b.writer.idle();
  assert.equal(entry(api, 'small', 'node-a'), { nodeName: 'node-a', refused: 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 512 GiB', observedGeneration: 1 });
  assert.equal(api.get(NS, 'small')!.status.refusedBy, ['node-a']);
  assert.equal(api.get(NS, 'small')!.status.nodeNames, ['node-b'], 'a refusing node holds nothing');
  // a new generation still refused: the entry follows it
  refusals.set(`${NS}/small`, { reason: 'spec.storage: "64Mi" is 64 MiB, outside the allowed range 256 MiB to 512 GiB', observedGeneration: 2 });
  a.writer.changed({ namespace: NS, name: 'small' });
  await a.writer.idle();
  assert.is(entry(api, 'small', 'node-a')?.observedGeneration, 2);
  // fixed: the entry and the node's refusedBy element go; node b's entry stays. The daemon tells
  // the writer of a declaration added as of an object created (it may be one): the refused entry
  // of the same object must still go
  refusals.delete(`${NS}/small`);
  a.writer.objectCreated({ namespace: NS, name: 'small' });
  a.writer.changed({ namespace: NS, name: 'small' });
  await a.writer.idle();
  assert.is(entry(api, 'small', 'node-a'), undefined);
  assert.equal(api.get(NS, 'small')!.status.refusedBy ?? [], []);
  assert.is(entry(api, 'small', 'node-b')?.holders, 1);
  // held, then refused (the object changed under its users): one entry with both; fixed, normal again
  a.set('held', 1);
  refusals.set(`${NS}/held`, { reason: 'spec.storage: "1Ti" is 1 TiB, outside the allowed range 256 MiB to 512 GiB', observedGeneration: 4 });
  a.writer.changed({ namespace: NS, name: 'held' });
  await a.writer.idle();
  assert.equal(entry(api, 'held', 'node-a'), { nodeName: 'node-a', holders: 1, bytesUsed: 4096, sizeInForce: 134217728, since: '2026-12-01T10:00:00Z', backend: 'local', refused: 'spec.storage: "1Ti" is 1 TiB, outside the allowed range 256 MiB to 512 GiB', observedGeneration: 4 });
  refusals.delete(`${NS}/held`);
  a.writer.changed({ namespace: NS, name: 'held' });
  await a.writer.idle();
  assert.equal(entry(api, 'held', 'node-a'), { nodeName: 'node-a', holders: 1, bytesUsed: 4096, sizeInForce: 134217728, since: '2026-12-01T10:00:00Z', backend: 'local' });
  assert.equal(api.get(NS, 'held')!.status.refusedBy ?? [], []);
});

test("startClusterWriters follows the store's refusals: one known at start is written, one told later too, and one that goes is removed", async () => {
  const { api } = await server();
  for (const n of ['early', 'late']) api.share(NS, n, '128Mi');
  const refusals = new Map<string, RefusedDeclaration>();
  const listeners = new Set<RefusalChangeListener>();
  const refuse = (name: string, reason: string | undefined) => {
    const had = refusals.has(name);
    if (reason) refusals.set(name, { namespace: NS, name, reason, generation: 1 });
    else refusals.delete(name);
    for (const l of listeners) l({ namespace: NS, name }, !reason ? 'removed' : had ? 'changed' : 'added');
  };
  refuse('early', 'spec.storage: too small here');
  const writers = startClusterWriters({
    credentials: creds(api), nodeName: 'node-a', status: true, events: false, backendKind: 'local',
    presentShares: () => [], bindings: () => [], usage: async () => undefined,
    refusals: {
      refused: (ns, name) => (ns === NS ? refusals.get(name) : undefined),
      refusals: () => [...refusals.values()],
      onRefusalChange: (l) => (listeners.add(l), () => void listeners.delete(l)),
    },
    log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    statusOptions: { minIntervalMs: 0, resyncMs: 0 },
  });
  cleanups.push(() => writers.stop());
  await waitFor(() => entry(api, 'early', 'node-a')?.refused === 'spec.storage: too small here', 'the refusal known at start');
  assert.is(entry(api, 'early', 'node-a')?.observedGeneration, 1);
  refuse('late', 'spec.storage: too large here');
  await waitFor(() => entry(api, 'late', 'node-a')?.refused === 'spec.storage: too large here', 'the refusal told later');
  refuse('early', undefined);
  await waitFor(() => entry(api, 'early', 'node-a') === undefined, 'the refusal gone');
  assert.equal(api.get(NS, 'late')!.status.refusedBy, ['node-a']);
  await writers.stop();
  assert.is(listeners.size, 0, 'stop() unsubscribes');
});

test('startClusterWriters counts a ResourceClaim holding the share as a holder, beside the containers bound to it', async () => {
  const { api } = await server();
  api.share(NS, 'both', '128Mi');
  const handle: ShareHandle = { backend: 'local', namespace: NS, name: 'both', sizeBytes: 134217728, requestedBytes: 134217728, data: {} };
  const claimedAt = Date.parse('2026-12-01T09:00:00Z');
  const boundAt = Date.parse('2026-12-01T10:00:00Z');
  const writers = startClusterWriters({
    credentials: creds(api), nodeName: 'node-a', status: true, events: false, backendKind: 'local',
    presentShares: () => [handle],
    bindings: (): BindingRecord[] => [{
      share: { namespace: NS, name: 'both' }, pod: { namespace: NS, name: 'app', uid: 'u1', sandboxId: 's1' }, container: { id: 'c1', name: 'app' },
      readOnly: false, state: 'bound', createdAt: boundAt, updatedAt: boundAt,
    }],
    claims: (ns, name) => (ns === NS && name === 'both' ? [{ createdAt: claimedAt }] : []),
    usage: async () => undefined,
    log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    statusOptions: { minIntervalMs: 0, resyncMs: 0 },
  });
  cleanups.push(() => writers.stop());
  writers.changed({ namespace: NS, name: 'both' });
  await waitFor(() => entry(api, 'both', 'node-a')?.holders === 2, 'one container and one claim: two holders');
  assert.is(entry(api, 'both', 'node-a')?.since, '2026-12-01T09:00:00Z', 'held since the claim, the older holder');
  await writers.stop();
});

test('a burst of changes to one share is one write of the latest state; an unchanged state is none', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const a = node('node-a', send, { minIntervalMs: 300 });
  a.writer.start();
  for (let i = 1; i <= 50; i++) a.set('demo', i);
  await a.writer.idle();
  assert.is(patches(api), 1, 'fifty changes, one write');
  assert.equal(entry(api, 'demo', 'node-a')?.holders, 50, 'the latest state');
  assert.ok(a.writer.stats.coalesced >= 49);
  const rv = api.get(NS, 'demo')!.metadata.resourceVersion;
  a.writer.changed({ namespace: NS, name: 'demo' }); // nothing changed on the node
  a.writer.resync();
  await a.writer.idle();
  assert.is(patches(api), 1, 'no write for a state the server has');
  assert.is(api.get(NS, 'demo')!.metadata.resourceVersion, rv);
});

test('an API outage: writes pause, and the latest state of every changed share is written when it is back', async () => {
  const { api, send } = await server();
  for (const n of ['s1', 's2', 's3']) api.share(NS, n, '128Mi');
  const a = node('node-a', send);
  a.writer.start();
  a.set('s1', 1);
  a.set('s2', 1);
  await a.writer.idle();
  await api.stop();
  a.set('s1', 2);
  a.set('s1', 3);
  a.set('s2', undefined); // released during the outage
  a.set('s3', 7); // bound during the outage
  await waitFor(() => a.writer.stats.failures >= 2, 'failed writes while the server is away');
  assert.ok(a.writer.stats.lastError && /ECONNREFUSED|connect/.test(a.writer.stats.lastError), a.writer.stats.lastError ?? '');
  assert.ok(a.writer.stats.dirty >= 1, 'the changes are kept');
  const before = patches(api);
  await api.start();
  await a.writer.idle();
  assert.equal(entry(api, 's1', 'node-a')?.holders, 3, 's1: the latest state, not a replay');
  assert.is(entry(api, 's2', 'node-a'), undefined, 's2: removed');
  assert.equal(entry(api, 's3', 'node-a')?.holders, 7, 's3: written');
  assert.is(patches(api) - before, 3, 'one write per changed share after the outage');
  assert.is(a.writer.stats.lastError, null);
});

test('start-up: the node removes its stale entries, keeps others, and writes what it holds', async () => {
  const { api, send } = await server();
  for (const n of ['old', 'kept', 'new']) api.share(NS, n, '128Mi');
  // an earlier run of node-a left entries; node-b has one too
  const entryOf = (holders: number): NodeShareStatus => ({ holders, bytesUsed: null, sizeInForce: 134217728, since: '2026-12-01T09:00:00Z', backend: 'local' });
  for (const n of ['old', 'kept']) assert.equal(await applyNodeStatus(send, 'node-a', { namespace: NS, name: n }, entryOf(1)), { kind: 'applied' });
  assert.equal(await applyNodeStatus(send, 'node-b', { namespace: NS, name: 'old' }, entryOf(4)), { kind: 'applied' });
  // the restarted node holds "kept" (now 2 holders) and "new", no longer "old"
  const a = node('node-a', send);
  a.shares.set(`${NS}/kept`, entryOf(2));
  a.shares.set(`${NS}/new`, entryOf(1));
  a.writer.start();
  await a.writer.idle();
  assert.ok(a.writer.stats.corrected);
  assert.is(entry(api, 'old', 'node-a'), undefined, 'stale entry removed');
  assert.equal(entry(api, 'old', 'node-b')?.holders, 4, "node-b's entry stays");
  assert.equal(entry(api, 'kept', 'node-a')?.holders, 2);
  assert.equal(entry(api, 'new', 'node-a')?.holders, 1);
});

test('a missing object is 404: dropped, not retried; the object created later gets the entry', async () => {
  const { api, send } = await server();
  const a = node('node-a', send);
  a.writer.start();
  a.set('later', 1);
  await a.writer.idle();
  assert.is(patches(api, 'later'), 1);
  assert.is(api.requests.find((r) => r.method === 'PATCH')?.status, 404);
  assert.is(a.writer.stats.dirty, 0, 'not retried');
  api.share(NS, 'later', '128Mi');
  a.writer.objectCreated({ namespace: NS, name: 'later' }); // no-op: nothing was written
  a.writer.changed({ namespace: NS, name: 'later' });
  await a.writer.idle();
  assert.equal(entry(api, 'later', 'node-a')?.holders, 1);
});

test('a deleted and re-created object gets the entry again', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const a = node('node-a', send);
  a.writer.start();
  a.set('demo', 1);
  await a.writer.idle();
  api.delete(NS, 'demo');
  api.share(NS, 'demo', '128Mi');
  assert.is(entry(api, 'demo', 'node-a'), undefined);
  a.writer.objectCreated({ namespace: NS, name: 'demo' });
  await a.writer.idle();
  assert.equal(entry(api, 'demo', 'node-a')?.holders, 1);
});

test('403: reported once, naming the RBAC it needs; the binding path never waits for it', async () => {
  const { api, send } = await server();
  api.share(NS, 'd1', '128Mi');
  api.share(NS, 'd2', '128Mi');
  const warnings: string[] = [];
  const a = node('node-a', send, { log: { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (d: object, m?: string) => warnings.push(`${m}: ${(d as Doc).problem}`) } });
  a.writer.start();
  await a.writer.idle();
  api.forbidden = true;
  a.set('d1', 1);
  a.set('d2', 1);
  await a.writer.idle();
  const refused = warnings.filter((w) => w.includes('refused'));
  assert.is(refused.length, 1, warnings.join('\n'));
  assert.match(refused[0], /403.*sharememories\/status.*packaging\/kubernetes\/rbac\.yaml/);
});

test('fake: the status subresource takes only status; the main resource ignores status', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const path = `/apis/resource.ubsvirt.huawei.com/v1/namespaces/${NS}/sharememories/demo`;
  const body = (spec: Doc, status: Doc) => JSON.stringify({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'demo', namespace: NS }, spec, status });
  const apply = (sub: string, b: string, q: Record<string, string> = { fieldManager: 'test', force: 'true' }) =>
    send({ method: 'PATCH', path: `${path}${sub}`, query: new URLSearchParams(q), contentType: 'application/apply-patch+yaml', body: b });
  let r = await apply('/status', body({ storage: '1Gi' }, { nodes: [{ nodeName: 'x', holders: 1 }] }));
  assert.is(r.status, 200);
  assert.equal(api.get(NS, 'demo')!.spec, { storage: '128Mi' }, '/status ignored the spec');
  assert.equal(entries(api, 'demo'), [{ nodeName: 'x', holders: 1 }]);
  r = await apply('', body({ storage: '128Mi' }, { nodes: [{ nodeName: 'y', holders: 9 }] }));
  assert.is(r.status, 200);
  assert.equal(entries(api, 'demo'), [{ nodeName: 'x', holders: 1 }], 'the main resource ignored the status');
  // 422: the schema (holders is an integer >= 0; a map-list item needs its key)
  r = await apply('/status', body({}, { nodes: [{ nodeName: 'x', holders: -1 }] }));
  assert.is(r.status, 422, r.body);
  r = await apply('/status', body({}, { nodes: [{ holders: 1 }] }));
  assert.is(r.status, 422, r.body);
  assert.match(JSON.parse(r.body).message, /nodeName: Required value/);
  // 400 without fieldManager, 415 for another patch type, 404 for a missing object
  assert.is((await apply('/status', body({}, {}), {})).status, 400);
  assert.is((await send({ method: 'PATCH', path: `${path}/status`, contentType: 'application/merge-patch+json', body: '{}' })).status, 415);
  assert.is((await send({ method: 'PATCH', path: `${path}x/status`, query: new URLSearchParams({ fieldManager: 't' }), contentType: 'application/apply-patch+yaml', body: body({}, {}).replace('"demo"', '"demox"') })).status, 404);
});

test('fake: a field another manager owns is a 409 conflict without force; force takes it over', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const share: ShareRef = { namespace: NS, name: 'demo' };
  const e = (holders: number): NodeShareStatus => ({ holders, bytesUsed: null, sizeInForce: 1, since: '2026-12-01T09:00:00Z', backend: 'local' });
  assert.equal(await applyNodeStatus(send, 'node-b', share, e(3)), { kind: 'applied' });
  // node-b's entry applied by another manager (what a buggy agent would do), without force
  const path = `/apis/resource.ubsvirt.huawei.com/v1/namespaces/${NS}/sharememories/demo/status`;
  const steal = (force: boolean) => send({
    method: 'PATCH', path, contentType: 'application/apply-patch+yaml',
    query: new URLSearchParams({ fieldManager: fieldManagerFor('node-a'), ...(force ? { force: 'true' } : {}) }),
    body: JSON.stringify({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'demo', namespace: NS }, status: { nodes: [{ nodeName: 'node-b', holders: 0 }] } }),
  });
  const r = await steal(false);
  assert.is(r.status, 409, r.body);
  assert.match(JSON.parse(r.body).message, /conflict with "nri-memshare-node-b": \.status\.nodes\[nodeName="node-b"\]\.holders/);
  assert.equal(entry(api, 'demo', 'node-b')?.holders, 3, 'unchanged');
  assert.is((await steal(true)).status, 200);
  assert.equal(entry(api, 'demo', 'node-b')?.holders, 0);
  // the same value is shared ownership, not a conflict
  const same = await applyNodeStatus(send, 'node-b', share, { ...e(3), holders: 0 });
  assert.equal(same, { kind: 'applied' });
});

test('status writes are MODIFIED events the watch sees without a declaration change', async () => {
  const { api, send } = await server();
  api.share(NS, 'demo', '128Mi');
  const rv = Number(api.resourceVersion);
  assert.equal(await applyNodeStatus(send, 'node-a', { namespace: NS, name: 'demo' }, { holders: 1, bytesUsed: 0, sizeInForce: 1, since: '2026-12-01T09:00:00Z', backend: 'local' }), { kind: 'applied' });
  assert.ok(Number(api.resourceVersion) > rv, 'a write bumps the resourceVersion');
});

test.run();
