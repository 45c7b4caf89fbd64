// The plugin stub against a fake NRI runtime (test/support/fake-runtime.ts) on a temp unix socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Stub, type StubOptions, type StubState } from '../../plugin/nri/stub';
import type { Handlers } from '../../plugin/nri/handlers';
import { Event, VALID_EVENTS_V0_6, codecs, type ConfigureRequest, type Container, type PodSandbox } from '../../plugin/nri/api';
import { subscriptionMask, eventsOf } from '../../plugin/nri/events';
import { Code, TtrpcError } from '../../plugin/ttrpc';
import { FakeRuntime, container, pod, type FakeRuntimeOptions } from '../support/fake-runtime';
import { deferred, seedFromEnv, tmpSocketPath, waitFor, within, rejection } from '../support/util';
import { makeRng } from '../support/prng';

const cleanups: Array<() => unknown> = [];
test.after.each(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function makeStub(handlers: Handlers, socketPath: string, opts: StubOptions = {}, states?: StubState[]): Stub {
  const stub = new Stub(handlers, {
    socketPath,
    name: 'memshare-test',
    index: '42',
    env: {},
    backoff: { initialMs: 5, maxMs: 40 },
    observer: states ? { state: (s) => states.push(s) } : undefined,
    ...opts,
  });
  cleanups.push(() => stub.stop());
  return stub;
}

async function runtime(opts: FakeRuntimeOptions = {}): Promise<FakeRuntime> {
  const rt = await FakeRuntime.start(opts);
  cleanups.push(() => rt.close());
  return rt;
}

const shmHandlers = (): Handlers => ({ createContainer() {}, removeContainer() {}, removePodSandbox() {} });

test('registers with its name and index, serving conn 1 first', async () => {
  const rt = await runtime();
  const stub = makeStub(shmHandlers(), rt.path);
  void stub.start();
  const { conn, reg } = await rt.registered(0);
  assert.is(reg.name, 'memshare-test');
  assert.is(reg.idx, '42');
  // the Plugin service already answers
  assert.is(await conn.configure({ runtimeVersion: 'v1.7.24' }), 0x40c);
});

test('Configure mask = the handlers\' events; within 0x7FF on 1.7.24 and 2.1.9; v0.10 bits allowed on 2.2.0', async () => {
  const rt = await runtime();
  const explicit = 0x40c | 0x800 | 0x2000; // asks for UPDATE_POD_SANDBOX and VALIDATE too
  const cases: Array<[Handlers, number | undefined, Partial<ConfigureRequest>, number]> = [
    [shmHandlers(), undefined, { runtimeVersion: 'v1.7.24' }, 0x40c],
    [shmHandlers(), undefined, { runtimeVersion: '2.1.9' }, 0x40c],
    [shmHandlers(), undefined, { runtimeVersion: 'v2.2.0' }, 0x40c],
    [{}, explicit, { runtimeVersion: 'v1.7.24' }, 0x40c],
    [{}, explicit, { runtimeVersion: '2.1.9' }, 0x40c],
    [{}, explicit, { runtimeVersion: 'v2.2.0' }, explicit],
    [{}, explicit, { runtimeVersion: 'v2.3.1', nriVersion: 'v0.12.0' }, explicit],
    [{}, explicit, { runtimeName: 'cri-o', runtimeVersion: '1.30.0' }, 0x40c],
  ];
  for (const [i, [handlers, events, configure, want]] of cases.entries()) {
    const stub = makeStub(handlers, rt.path, { events });
    void stub.start();
    const { conn } = await rt.registered(i);
    const mask = await conn.configure(configure);
    assert.is(mask, want, `case ${i}: ${JSON.stringify(configure)}`);
    assert.ok(mask !== 0);
    stub.stop();
  }
});

test('every handler → 0x7FF; no events at all → Configure fails, never answers 0', async () => {
  const rt = await runtime();
  const all: Handlers = {};
  for (const k of ['runPodSandbox', 'stopPodSandbox', 'removePodSandbox', 'createContainer', 'postCreateContainer', 'startContainer', 'postStartContainer', 'updateContainer', 'postUpdateContainer', 'stopContainer', 'removeContainer'] as const)
    (all as Record<string, () => void>)[k] = () => {};
  makeStub(all, rt.path).start();
  const c0 = (await rt.registered(0)).conn;
  assert.is(await c0.configure({ runtimeVersion: '2.1.9' }), 0x7ff);
  makeStub({ configure() {}, synchronize() {} }, rt.path).start();
  const c1 = (await rt.registered(1)).conn;
  const e = await rejection<TtrpcError>(c1.configure({ runtimeVersion: 'v2.2.0' }));
  assert.is(e.code, Code.UNKNOWN);
  assert.match(e.message, /no event/);
});

test('subscriptionMask: random wanted masks stay non-zero and within the runtime\'s valid set (seeded)', () => {
  const rng = makeRng(seedFromEnv('stub masks'));
  const req = (runtimeVersion: string, nriVersion = ''): ConfigureRequest => ({ config: '', runtimeName: 'containerd', runtimeVersion, registrationTimeout: 0, requestTimeout: 0, nriVersion });
  for (let i = 0; i < 2000; i++) {
    const wanted = Math.floor(rng.next() * 0x4000);
    for (const [r, valid] of [[req('v1.7.24'), 0x7ff], [req('2.1.9'), 0x7ff], [req('v2.0.0'), 0x7ff], [req('v2.2.0'), 0x3fff], [req('2.3.0', '0.12.0'), 0x3fff]] as const) {
      if ((wanted & valid) === 0) {
        assert.throws(() => subscriptionMask(wanted, r));
        continue;
      }
      const m = subscriptionMask(wanted, r);
      assert.is(m, wanted & valid);
      assert.ok(m !== 0 && (m & ~valid) === 0);
    }
  }
  assert.is(eventsOf(shmHandlers()), 0x40c);
  assert.ok((eventsOf(shmHandlers()) & ~VALID_EVENTS_V0_6) === 0);
});

test('Synchronize in 3 chunks: more=true replies carry no updates; handler called once with everything', async () => {
  const rt = await runtime();
  const calls: Array<[PodSandbox[], Container[]]> = [];
  const stub = makeStub(
    {
      ...shmHandlers(),
      synchronize(pods, containers) {
        calls.push([pods, containers]);
        return [{ containerId: 'c5', ignoreFailure: true }];
      },
    },
    rt.path,
  );
  const started = stub.start();
  const { conn } = await rt.registered(0);
  await conn.configure({ runtimeVersion: 'v2.1.0' });
  const r1 = await conn.synchronize([pod('p1'), pod('p2')], [container('c1', 'p1')], true);
  assert.is(r1.more, true);
  assert.is(r1.update.length, 0);
  const r2 = await conn.synchronize([pod('p3')], [container('c2', 'p2'), container('c3', 'p3')], true);
  assert.is(r2.more, true);
  assert.is(r2.update.length, 0);
  assert.is(calls.length, 0, 'handler not called before the last chunk');
  assert.not.ok(stub.isSynchronized);
  const r3 = await conn.synchronize([], [container('c4', 'p3'), container('c5', 'p1')], false);
  assert.is(r3.more, false);
  assert.equal(r3.update.map((u) => u.containerId), ['c5']);
  assert.is(calls.length, 1);
  assert.equal(calls[0][0].map((p) => p.id), ['p1', 'p2', 'p3']);
  assert.equal(calls[0][1].map((c) => c.id), ['c1', 'c2', 'c3', 'c4', 'c5']);
  assert.is(calls[0][1][4].podSandboxId, 'p1');
  await within(started, 'start() resolves after the first sync');
  assert.ok(stub.isSynchronized);
});

test('CreateContainer reaches the handler and its adjustment comes back', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  const seen: string[] = [];
  const stub = makeStub(
    {
      createContainer(p, c) {
        seen.push(`${p.id}/${c.id}/${p.annotations['shm']}`);
        return {
          adjust: { mounts: [{ destination: '/dev/shm/x', type: 'bind', source: '/run/x', options: ['rbind', 'rw'] }], env: [{ key: 'A', value: 'b' }] },
          evict: [{ containerId: 'other', reason: 'why' }],
        };
      },
    },
    rt.path,
  );
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  const res = await conn.createContainer(pod('p1', { shm: 'yes' }), container('c1', 'p1'));
  assert.equal(seen, ['p1/c1/yes']);
  assert.is(res.adjust?.mounts?.length, 1);
  assert.equal({ ...res.adjust!.mounts![0] }, { destination: '/dev/shm/x', type: 'bind', source: '/run/x', options: ['rbind', 'rw'] });
  assert.is(res.adjust?.env?.[0].key, 'A');
  assert.is(res.evict?.[0].containerId, 'other');
});

test('each handler gets the request deadline and an abort signal; devices and CDI devices reach the wire', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v2.1.9' } });
  const got: Array<{ left: number; aborted: boolean }> = [];
  const stub = makeStub(
    {
      createContainer(_p, _c, ctx) {
        got.push({ left: (ctx.deadline ?? 0) - Date.now(), aborted: ctx.signal.aborted });
        return {
          adjust: {
            linux: { devices: [{ path: '/dev/obmm_shmdev77', type: 'c', major: 509, minor: 77, fileMode: { value: 0o666 }, uid: { value: 0 }, gid: { value: 0 } }] },
            CDIDevices: [{ name: 'memshare.nri.io/ubs=daemon-access' }],
          },
        };
      },
    },
    rt.path,
  );
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  const res = await conn.createContainer(pod('p1'), container('c1', 'p1'));
  assert.is(got.length, 1);
  assert.ok(got[0].left > 1000 && got[0].left <= 5000, `the call's 5 s timeout reached the handler as a deadline (${got[0].left} ms left)`);
  assert.is(got[0].aborted, false);
  const dev = (res.adjust as { linux?: { devices?: Array<{ path: string; major: unknown; minor: unknown; fileMode?: { value: number } }> } }).linux?.devices?.[0];
  assert.is(dev?.path, '/dev/obmm_shmdev77');
  assert.is(Number(dev?.major), 509);
  assert.is(Number(dev?.minor), 77);
  assert.is(dev?.fileMode?.value, 0o666);
  assert.equal((res.adjust as { CDIDevices?: Array<{ name: string }> }).CDIDevices?.map((d) => d.name), ['memshare.nri.io/ubs=daemon-access']);
});

test('a throwing createContainer fails that call with its message; the connection stays', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  let n = 0;
  const stub = makeStub(
    {
      createContainer() {
        if (n++ === 0) throw new Error('quota exceeded for pod');
      },
    },
    rt.path,
  );
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  const e = await rejection<TtrpcError>(conn.createContainer(pod('p'), container('c', 'p')));
  assert.is(e.code, Code.UNKNOWN);
  assert.is(e.message, 'quota exceeded for pod');
  const ok = await conn.createContainer(pod('p'), container('c2', 'p'));
  assert.not.ok(ok.adjust);
  assert.is(rt.conns.length, 1);
});

test('StateChange REMOVE_CONTAINER and v0.12 RemoveContainer reach the same handler', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v2.3.0', nriVersion: 'v0.12.0' } });
  const removed: string[] = [];
  const podsRemoved: string[] = [];
  const stub = makeStub(
    {
      createContainer() {},
      removeContainer(p, c) {
        removed.push(`${p.id}/${c.id}`);
      },
      removePodSandbox(p) {
        podsRemoved.push(p.id);
      },
    },
    rt.path,
  );
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  await conn.stateChange(Event.REMOVE_CONTAINER, pod('p1'), container('c1', 'p1'));
  await conn.call('RemoveContainer', codecs.ContainerEventRequest.encode({ pod: pod('p2'), container: container('c2', 'p2') }));
  assert.equal(removed, ['p1/c1', 'p2/c2']);
  await conn.stateChange(Event.REMOVE_POD_SANDBOX, pod('p3'));
  await conn.call('RemovePodSandbox', codecs.PodSandboxEventRequest.encode({ pod: pod('p4') }));
  assert.equal(podsRemoved, ['p3', 'p4']);
  // an event without a handler is answered, not failed
  await conn.call('StartContainer', codecs.ContainerEventRequest.encode({ pod: pod('p5'), container: container('c5', 'p5') }));
  await conn.stateChange(Event.START_CONTAINER, pod('p5'), container('c5', 'p5'));
  assert.is(removed.length, 2);
});

test('unknown Plugin methods answer UNIMPLEMENTED (12), so a v0.12 runtime can fall back', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v2.3.0' } });
  const stub = makeStub(shmHandlers(), rt.path);
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  const e = await rejection<TtrpcError>(conn.call('SomeFutureEvent', new Uint8Array(0)));
  assert.is(e.code, Code.UNIMPLEMENTED);
  assert.is(e.message, 'method SomeFutureEvent');
});

test('UpdateContainers asked for inside createContainer is sent only after the handler answered', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  let stub!: Stub;
  let updated: Promise<unknown> | undefined;
  stub = makeStub(
    {
      async createContainer() {
        updated = stub.updateContainers([{ containerId: 'neighbour' }], [{ containerId: 'victim', reason: 'r' }]);
        await new Promise((r) => setTimeout(r, 30)); // the handler keeps working after asking
        return { adjust: { env: [{ key: 'K', value: 'V' }] } };
      },
    },
    rt.path,
  );
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  conn.failUpdates = [{ containerId: 'neighbour' }];
  await conn.createContainer(pod('p'), container('c', 'p'));
  assert.ok(updated, 'handler ran');
  const failed = (await within(updated!, 'updateContainers result')) as Array<{ containerId: string }>;
  assert.equal(failed.map((f) => f.containerId), ['neighbour']);
  const replyAt = conn.log.indexOf('reply:CreateContainer');
  const reqAt = conn.log.indexOf('req:UpdateContainers');
  assert.ok(replyAt >= 0 && reqAt >= 0, conn.log.join(' '));
  assert.ok(replyAt < reqAt, `UpdateContainers reached the runtime before the CreateContainer reply: ${conn.log.join(' ')}`);
  assert.is(conn.updateRequests.length, 1);
  assert.is(conn.updateRequests[0].update[0].containerId, 'neighbour');
  assert.is(conn.updateRequests[0].evict[0].containerId, 'victim');
});

test('UpdateContainers is held back until Synchronize completed', async () => {
  const rt = await runtime();
  const stub = makeStub(shmHandlers(), rt.path);
  void stub.start();
  const { conn } = await rt.registered(0);
  const p = stub.updateContainers([{ containerId: 'early' }]);
  await conn.configure({ runtimeVersion: 'v1.7.24' });
  await new Promise((r) => setTimeout(r, 20));
  assert.is(conn.updateRequests.length, 0, 'not sent before sync');
  await conn.synchronize([], []);
  await within(p, 'update after sync');
  assert.is(conn.updateRequests.length, 1);
  assert.ok(conn.log.indexOf('reply:Synchronize') < conn.log.indexOf('req:UpdateContainers'));
});

test('after the runtime closes the socket the stub reconnects and re-registers by itself', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v2.1.9' } });
  const states: StubState[] = [];
  const stub = makeStub(shmHandlers(), rt.path, {}, states);
  await within(stub.start(), 'first sync');
  const first = await rt.conn(0);
  first.close();
  const { reg, conn } = await rt.registered(1);
  assert.is(reg.name, 'memshare-test');
  assert.is(reg.idx, '42');
  await waitFor(() => states.filter((s) => s === 'synchronized').length === 2, 'second synchronized state');
  assert.equal(states, ['connecting', 'registered', 'synchronized', 'disconnected', 'connecting', 'registered', 'synchronized']);
  assert.is(conn.events, 0x40c);
  // and the new connection works
  const res = await conn.createContainer(pod('p'), container('c', 'p'));
  assert.not.ok(res.adjust);
  // repeated: a third time
  conn.close();
  await rt.registered(2);
});

test('the stub retries while the socket does not exist yet, then registers', async () => {
  const path = tmpSocketPath('late.sock');
  const states: StubState[] = [];
  const stub = makeStub(shmHandlers(), path, {}, states);
  const started = stub.start();
  await waitFor(() => states.filter((s) => s === 'connecting').length >= 3, 'a few connection attempts');
  assert.not.ok(states.includes('registered'));
  const rt = await runtime({ path, auto: { runtimeVersion: 'v1.7.24' } });
  await within(started, 'sync once the runtime appears');
  assert.is((await rt.registered(0)).reg.name, 'memshare-test');
});

test('a failed registration closes the connection and the stub tries again', async () => {
  const rt = await runtime({ registerError: 'plugin name rejected' });
  const states: StubState[] = [];
  makeStub(shmHandlers(), rt.path, {}, states).start();
  await waitFor(() => rt.conns.length >= 3, 'three attempts');
  await within(rt.conns[0].closed.promise, 'first connection closed');
  assert.not.ok(states.includes('registered'));
  assert.ok(states.includes('disconnected'));
});

test('Shutdown closes the connection and the stub comes back', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  const stub = makeStub(shmHandlers(), rt.path);
  await within(stub.start(), 'sync');
  const c0 = await rt.conn(0);
  await c0.call('Shutdown', codecs.Empty.encode({}));
  await within(c0.closed.promise, 'closed after Shutdown');
  await rt.registered(1);
});

test('a Synchronize that finishes after its deadline makes the stub reconnect (no zombie)', async () => {
  const rt = await runtime();
  let syncs = 0;
  const stub = makeStub(
    {
      ...shmHandlers(),
      async synchronize() {
        if (syncs++ === 0) await new Promise((r) => setTimeout(r, 60));
      },
    },
    rt.path,
  );
  const started = stub.start();
  const { conn } = await rt.registered(0);
  await conn.configure({ runtimeVersion: 'v1.7.24' });
  const e = await rejection<TtrpcError>(conn.client.call('nri.pkg.api.v1alpha1.Plugin', 'Synchronize', codecs.SynchronizeRequest.encode({ pods: [], containers: [], more: false }), { timeoutMs: 15 }));
  assert.is(e.code, Code.DEADLINE_EXCEEDED);
  await within(conn.closed.promise, 'stub drops the late-synced connection');
  const second = (await rt.registered(1)).conn;
  await second.configure({ runtimeVersion: 'v1.7.24' });
  await second.synchronize([], []);
  await within(started, 'first sync promise resolves on the second connection');
  assert.ok(stub.isSynchronized);
});

test('stop() ends the session and no reconnection follows', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  const states: StubState[] = [];
  const stub = makeStub(shmHandlers(), rt.path, {}, states);
  await within(stub.start(), 'sync');
  const c0 = await rt.conn(0);
  stub.stop();
  await within(c0.closed.promise, 'connection closed');
  await new Promise((r) => setTimeout(r, 60)); // several backoff periods
  assert.is(rt.accepted, 1);
  assert.is(states[states.length - 1], 'stopped');
  await assert.not.throws(() => stub.stop());
});

test('a stop() is no warning: the session it closes is not reported as lost', async () => {
  const rt = await runtime({ auto: { runtimeVersion: 'v1.7.24' } });
  const warnings: string[] = [];
  const logger = { debug() {}, info() {}, warn: (_o: object, msg: string) => void warnings.push(msg), error: (_o: object, msg: string) => void warnings.push(msg) };
  const states: StubState[] = [];
  const stub = makeStub(shmHandlers(), rt.path, { logger }, states);
  await within(stub.start(), 'sync');
  const c0 = await rt.conn(0);
  stub.stop();
  await within(c0.closed.promise, 'connection closed');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(warnings, []);
  assert.not.ok(states.includes('disconnected'), states.join(' '));
});

test('invalid index or name throws at construction; pre-launched env is honoured', () => {
  const make = (name: string | undefined, index: string | undefined) => () => new Stub({}, { name, index, env: {} });
  for (const idx of ['1', '100', 'ab', '', ' 1', '1a', '٣٣']) assert.throws(make('ok', idx), /index/, `index ${JSON.stringify(idx)}`);
  for (const name of ['', 'bad name', 'a/b', 'x:y', 'ü']) assert.throws(make(name, '10'), /name/, `name ${JSON.stringify(name)}`);
  assert.not.throws(make('a-b_c.d+e', '00'));
  const pre = new Stub({}, { env: { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: '10-shm', NRI_PLUGIN_IDX: '10' } });
  assert.ok(pre.prelaunched);
  assert.is(pre.name, 'shm');
  assert.is(pre.index, '10');
  assert.throws(() => new Stub({}, { env: { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: 'shm', NRI_PLUGIN_IDX: '7' } }), /index/);
  const d = new Stub({}, { env: {} });
  assert.is(d.name, 'memshare');
  assert.is(d.index, '50');
  assert.not.ok(d.prelaunched);
});

test.run();
