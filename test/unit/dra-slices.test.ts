// The slice builder (plugin/dra/slice-builder.ts) and the publisher's write logic
// (plugin/dra/slices.ts) against an in-memory stand-in of the ResourceSlice API written here (it
// keeps objects by name, filters by field selector and counts requests; the real server's side is
// test/e2e/dra-apiserver.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildSlices, toV1beta1, DEVICES_PER_SLICE, DEVICES_PER_SLICE_WITH_COUNTERS, slicePrefix } from '../../plugin/dra/slice-builder';
import { createSlicePublisher, sliceFieldManager, topologyFor, type SlicePublisherEvent } from '../../plugin/dra/slices';
import { deviceNameOf } from '../../plugin/dra/devices';
import { DEFAULT_LIMITS, type ShareDeclaration } from '../../plugin/model';
import type { KubeRequest, KubeResponse } from '../../plugin/kube/request';

const GiB = 1024 ** 3;
const decl = (namespace: string, name: string, sizeBytes = GiB): ShareDeclaration => ({ namespace, name, sizeBytes, allowedNamespaces: [], origin: 'test' });
const base = { driverName: 'memshare.nri.io', nodeName: 'node-a', backend: 'local', limits: DEFAULT_LIMITS, topology: { kind: 'node' as const }, nodeLimit: 'counters' as const };

test('one device per share: name, attributes, capacity not consumed by claims, multiple allocations, counters', () => {
  const b = buildSlices({ ...base, declarations: [decl('team-b', 'feed', 2 * GiB), decl('team-a', 'demo')] });
  assert.is(b.poolName, 'node-a');
  assert.is(b.slices.length, 2, 'a counter slice and a device slice');
  const [counters, devices] = b.slices;
  assert.equal(counters.spec.sharedCounters, [{ name: 'node-memory', counters: { memory: { value: String(DEFAULT_LIMITS.maxNodeBytes) } } }]);
  assert.is(counters.spec.devices, undefined, 'a slice has devices or counters, not both');
  assert.is(counters.spec.nodeName, 'node-a');
  assert.equal(devices.spec.pool, { name: 'node-a', generation: 0, resourceSliceCount: 2 });
  assert.equal(devices.spec.devices?.map((d) => d.name), [deviceNameOf('team-a', 'demo'), deviceNameOf('team-b', 'feed')], 'sorted by namespace, name');
  assert.equal(devices.spec.devices?.[1], {
    name: deviceNameOf('team-b', 'feed'),
    attributes: { shareNamespace: { string: 'team-b' }, share: { string: 'feed' }, backend: { string: 'local' } },
    capacity: { memory: { value: String(2 * GiB), requestPolicy: { default: '0', validRange: { min: '0', max: '0' } } } },
    allowMultipleAllocations: true,
    consumesCounters: [{ counterSet: 'node-memory', counters: { memory: { value: String(2 * GiB) } } }],
  });
  assert.equal(b.slices.map((s) => s.name), ['memshare-nri-io-node-a-0', 'memshare-nri-io-node-a-1']);
});

test('at most 64 devices per slice with counters, 128 without; resourceSliceCount counts them all', () => {
  const many = Array.from({ length: 200 }, (_, i) => decl('ns', `s-${String(i).padStart(3, '0')}`));
  const withCounters = buildSlices({ ...base, declarations: many });
  assert.equal(withCounters.slices.map((s) => s.spec.devices?.length ?? 0), [0, 64, 64, 64, 8]);
  assert.ok(withCounters.slices.every((s) => s.spec.pool.resourceSliceCount === 5));
  assert.is(DEVICES_PER_SLICE_WITH_COUNTERS, 64);
  const without = buildSlices({ ...base, nodeLimit: 'none', declarations: many });
  assert.equal(without.slices.map((s) => s.spec.devices?.length ?? 0), [128, 72]);
  assert.is(DEVICES_PER_SLICE, 128);
  assert.ok(without.slices.every((s) => s.spec.devices?.every((d) => d.consumesCounters === undefined)));
  const none = buildSlices({ ...base, nodeLimit: 'none', declarations: [] });
  assert.equal(none.slices, [], 'nothing declared, nothing published');
});

test('shares this node would refuse are left out, each with its reason', () => {
  const limits = { ...DEFAULT_LIMITS, maxNodeBytes: 4 * GiB };
  const b = buildSlices({ ...base, limits, declarations: [decl('a', 'small', 64 * 1024 * 1024), decl('a', 'big', 8 * GiB), decl('a', 'x'.repeat(48)), decl('a', 'ok')] });
  assert.equal(b.slices[1].spec.devices?.map((d) => d.name), [deviceNameOf('a', 'ok')]);
  assert.equal(b.leftOut.map((l) => l.name), ['small', 'big', 'x'.repeat(48)]);
  assert.match(b.leftOut[0].reason, /below limits\.minShareBytes/);
  assert.match(b.leftOut[1].reason, /above limits\.maxNodeBytes 4294967296/);
  assert.match(b.leftOut[2].reason, /longer than 47/);
});

test('a spanning pool (UB): one pool name, the node selector, no counters, other node names do not matter', () => {
  const nodeSelector = { nodeSelectorTerms: [{ matchExpressions: [{ key: 'memshare.nri.io/ub-pool', operator: 'In', values: ['pool-1'] }] }] };
  const input = { ...base, backend: 'ubs', topology: { kind: 'spanning' as const, poolName: 'memshare-ub-pool-1', nodeSelector }, declarations: [decl('a', 'demo')] };
  const a = buildSlices(input);
  const b = buildSlices({ ...input, nodeName: 'node-b' });
  assert.equal(a, b, 'every UB node computes the same slices');
  assert.is(a.slices.length, 1);
  assert.equal(a.slices[0].spec.nodeSelector, nodeSelector);
  assert.is(a.slices[0].spec.nodeName, undefined);
  assert.is(a.slices[0].spec.pool.name, 'memshare-ub-pool-1');
  assert.is(a.slices[0].spec.devices?.[0].consumesCounters, undefined);
  assert.equal(a.slices[0].spec.devices?.[0].attributes.backend, { string: 'ubs' });
});

test('topologyFor: a pool per node, the UB backend one pool over the labelled UB nodes (the prefix the admission policy allows)', () => {
  assert.equal(topologyFor('local'), { kind: 'node' });
  const ub = topologyFor('ubs', 'rack-1');
  assert.equal(ub, { kind: 'spanning', poolName: 'memshare-ub-rack-1', nodeSelector: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'memshare.nri.io/ub-pool', operator: 'In', values: ['rack-1'] }] }] } });
});

test('names stay DNS subdomains of at most 253 characters; field managers at most 128', () => {
  const long = `n${'a'.repeat(250)}`;
  assert.ok(slicePrefix('memshare.nri.io', long).length <= 200);
  assert.match(slicePrefix('memshare.nri.io', long), /^memshare-nri-io-na+-[0-9a-f]{16}$/);
  assert.is(sliceFieldManager({ kind: 'node' }, 'node-a'), 'nri-memshare-dra-node-a');
  assert.ok(sliceFieldManager({ kind: 'node' }, long).length <= 128);
});

test('v1beta1 (1.32, 1.33): devices under basic, without request policy', () => {
  const b = buildSlices({ ...base, nodeLimit: 'none', declarations: [decl('a', 'demo')] });
  const v = toV1beta1(b.slices[0].spec) as { devices: Array<Record<string, unknown>> };
  assert.equal(v.devices[0], { name: deviceNameOf('a', 'demo'), basic: { attributes: { shareNamespace: { string: 'a' }, share: { string: 'demo' }, backend: { string: 'local' } }, capacity: { memory: { value: String(GiB) } } } });
});

/** An in-memory ResourceSlice API: apply, delete, list by field selector. */
function fakeApi() {
  const objects = new Map<string, { metadata: { name: string }; spec: Record<string, any> }>();
  const log: string[] = [];
  let failNext = 0;
  const send = async (r: KubeRequest): Promise<KubeResponse> => {
    log.push(`${r.method} ${r.path.split('/').pop()}`);
    if (failNext > 0) {
      failNext -= 1;
      return { status: 503, headers: {}, body: '{"kind":"Status","message":"busy"}' };
    }
    const name = r.path.split('/').pop() as string;
    if (r.method === 'GET') {
      const sel = Object.fromEntries((r.query?.get('fieldSelector') ?? '').split(',').map((kv) => kv.split('=')));
      const items = [...objects.values()].filter((o) => (!sel['spec.nodeName'] || o.spec.nodeName === sel['spec.nodeName']) && (!sel['spec.driver'] || o.spec.driver === sel['spec.driver']));
      return { status: 200, headers: {}, body: JSON.stringify({ items, metadata: {} }) };
    }
    if (r.method === 'PATCH') {
      assert.is(r.contentType, 'application/apply-patch+yaml');
      assert.ok(r.query?.get('fieldManager'));
      objects.set(name, JSON.parse(r.body as string));
      return { status: 200, headers: {}, body: r.body as string };
    }
    if (r.method === 'DELETE') {
      const had = objects.delete(name);
      return { status: had ? 200 : 404, headers: {}, body: '{}' };
    }
    throw new Error(`unexpected ${r.method}`);
  };
  return { objects, log, send, failTimes: (n: number) => void (failNext = n) };
}

function feed(initial: ShareDeclaration[]) {
  let decls = initial;
  const listeners = new Set<() => void>();
  return {
    list: () => decls,
    onChange: (l: () => void) => (listeners.add(l), () => void listeners.delete(l)),
    set(next: ShareDeclaration[]) {
      decls = next;
      for (const l of listeners) l();
    },
  };
}

test('publisher: writes, skips an unchanged sync, bumps the generation on change, deletes its stale slice, leaves another node alone', async () => {
  const api = fakeApi();
  api.objects.set('other', { metadata: { name: 'other' }, spec: { driver: 'memshare.nri.io', nodeName: 'node-b', pool: { name: 'node-b', generation: 7, resourceSliceCount: 1 } } });
  const store = feed([decl('a', 'demo')]);
  const events: SlicePublisherEvent[] = [];
  const p = createSlicePublisher({ send: api.send, nodeName: 'node-a', backend: 'local', store, limits: DEFAULT_LIMITS, nodeLimit: 'none', onEvent: (e) => events.push(e) });
  await p.flush();
  assert.equal([...api.objects.keys()].sort(), ['memshare-nri-io-node-a-0', 'other']);
  assert.is(api.objects.get('memshare-nri-io-node-a-0')?.spec.pool.generation, 1);
  api.log.length = 0;
  await p.flush();
  assert.equal(api.log, ['GET resourceslices'], 'unchanged: one list, no write');

  // 130 shares: two slices; then back to one: the second is deleted, generation 3
  store.set(Array.from({ length: 130 }, (_, i) => decl('a', `s-${i}`)));
  await p.flush();
  assert.equal(api.objects.get('memshare-nri-io-node-a-1')?.spec.pool, { name: 'node-a', generation: 2, resourceSliceCount: 2 });
  store.set([decl('a', 'demo')]);
  await p.flush();
  assert.not.ok(api.objects.has('memshare-nri-io-node-a-1'), 'stale slice deleted');
  assert.equal(api.objects.get('memshare-nri-io-node-a-0')?.spec.pool, { name: 'node-a', generation: 3, resourceSliceCount: 1 });
  assert.is(api.objects.get('other')?.spec.pool.generation, 7, 'another node\'s slice untouched');
  assert.ok(!api.log.some((l) => l.endsWith(' other')), 'never addressed');
  const published = events.filter((e) => e.kind === 'published');
  assert.equal(published.map((e) => e.kind === 'published' && e.generation), [1, 2, 3]);
  assert.equal(published[2].kind === 'published' && published[2].deleted, ['memshare-nri-io-node-a-1']);

  // someone deletes our slice: the next sync writes it again
  api.objects.delete('memshare-nri-io-node-a-0');
  await p.flush();
  assert.is(api.objects.get('memshare-nri-io-node-a-0')?.spec.pool.generation, 4);
  await p.stop();
});

test('publisher: changes coalesce into one sync; a failed sync is retried with backoff and reported', async () => {
  const api = fakeApi();
  const store = feed([]);
  const events: SlicePublisherEvent[] = [];
  const p = createSlicePublisher({ send: api.send, nodeName: 'node-a', backend: 'local', store, limits: DEFAULT_LIMITS, debounceMs: 30, backoff: { initialMs: 20, maxMs: 40 }, resyncMs: 0, onEvent: (e) => events.push(e) });
  api.failTimes(2);
  p.start();
  for (let i = 0; i < 10; i++) store.set([decl('a', `s-${i}`)]);
  await waitFor(() => events.some((e) => e.kind === 'published'));
  const failed = events.filter((e) => e.kind === 'failed');
  assert.is(failed.length, 2);
  assert.match(failed[0].kind === 'failed' ? failed[0].message : '', /listing this node's ResourceSlices: HTTP 503: busy/);
  const published = events.filter((e) => e.kind === 'published');
  assert.is(published.length, 1, 'ten changes, one write');
  assert.equal(api.objects.get('memshare-nri-io-node-a-1')?.spec.devices.map((d: { name: string }) => d.name), [deviceNameOf('a', 's-9')]);
  assert.is(p.stats().failures, 2);
  await p.stop();
});

test('publisher: a 403 names the ClusterRole; unpublish() deletes only this node\'s slices', async () => {
  const api = fakeApi();
  const p = createSlicePublisher({ send: api.send, nodeName: 'node-a', backend: 'local', store: feed([decl('a', 'demo')]), limits: DEFAULT_LIMITS });
  const denied = createSlicePublisher({ send: async () => ({ status: 403, headers: {}, body: '{"kind":"Status","message":"forbidden"}' }), nodeName: 'node-a', backend: 'local', store: feed([]), limits: DEFAULT_LIMITS });
  try {
    await denied.flush();
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /HTTP 403: forbidden; .*ClusterRole nri-memshare-dra/);
  }
  await p.flush();
  api.objects.set('other', { metadata: { name: 'other' }, spec: { driver: 'memshare.nri.io', nodeName: 'node-b', pool: { name: 'node-b', generation: 1, resourceSliceCount: 1 } } });
  assert.equal((await p.unpublish()).sort(), ['memshare-nri-io-node-a-0', 'memshare-nri-io-node-a-1']);
  assert.equal([...api.objects.keys()], ['other']);
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.run();
