// Robustness: random bytes, truncated frames and absurd length fields fed to the mux (through a
// real socket), to the ttrpc reader + server (through a transport) and to the NRI codecs; and a
// fake runtime that talks garbage on its first connection. Nothing may crash the process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Socket } from 'node:net';
import { Mux } from '../../plugin/nri/mux';
import { Stub, type StubState } from '../../plugin/nri/stub';
import { Event, codecs, type Codec } from '../../plugin/nri/api';
import { MessageReader, MessageType, Server, encodeMessage, type Message } from '../../plugin/ttrpc';
import { decodeResponse, encodeRequest } from '../../plugin/ttrpc/codec';
import { FakeRuntime, container, pod } from '../support/fake-runtime';
import { transportPair } from '../support/transport-pair';
import { crashCounter, muxFrame, seedFromEnv, socketPair, waitFor, within } from '../support/util';
import { makeRng, type Rng } from '../support/prng';

const crashes = crashCounter();
const SEED = seedFromEnv('fuzz');

const cleanups: Array<() => unknown> = [];
test.after.each(async () => {
  // never throw from here: uvu would stop the file and swallow the failures
  for (const c of cleanups.splice(0)) {
    try {
      await c();
    } catch {}
  }
});

function write(s: Socket, b: Buffer): Promise<void> {
  return new Promise((r) => s.write(b, () => r()));
}

function echoServer(onProtocolError?: (e: Error) => void): Server {
  return new Server({ onProtocolError }).register('fuzz.Echo', {
    // Buffer.from: an absent payload decodes as [] (pinned separately in ttrpc.test.ts)
    Echo: (p) => Buffer.from(p), Fail: () => Promise.reject(new Error('nope')) });
}

const validRequest = (id: number, payload: Buffer) =>
  encodeMessage(id, MessageType.Request, encodeRequest({ service: 'fuzz.Echo', method: 'Echo', payload, timeoutNano: 0, metadata: [] }));

function mutate(rng: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (rng.int(0, 3)) {
    case 0: // byte flips
      for (let i = rng.int(1, 4); i > 0 && out.length; i--) out[rng.int(0, out.length - 1)] ^= 1 << rng.int(0, 7);
      return out;
    case 1: // truncation
      return out.subarray(0, rng.int(0, out.length));
    case 2: // random byte overwritten
      if (out.length) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return out;
    default: // garbage inserted
      const at = rng.int(0, out.length);
      return Buffer.concat([out.subarray(0, at), rng.bytes(rng.int(1, 8)), out.subarray(at)]);
  }
}

// ---- (a) the mux ---------------------------------------------------------------

test('mux: random bytes, truncated frames and huge lengths through a socket never crash', async () => {
  const rng = makeRng(SEED);
  let closedByMux = 0;
  for (let round = 0; round < 60; round++) {
    const [a, b] = await socketPair();
    b.on('error', () => {});
    const mux = new Mux(a);
    // ttrpc servers on both conns, so that whatever gets through goes deeper
    echoServer().serve(mux.open(1));
    echoServer().serve(mux.open(2));
    let closeErr: Error | undefined;
    mux.onClose((e) => (closeErr = e));
    const kind = round % 4;
    let bytes: Buffer;
    if (kind === 0) bytes = rng.bytes(rng.int(1, 5000));
    else if (kind === 1) {
      // valid frames carrying valid requests, then cut anywhere
      const frames = Buffer.concat(Array.from({ length: 5 }, (_, i) => muxFrame(rng.int(1, 2), validRequest(2 * i + 1, rng.bytes(rng.int(0, 300))))));
      bytes = frames.subarray(0, rng.int(0, frames.length));
    } else if (kind === 2) {
      const h = Buffer.alloc(8);
      h.writeUInt32BE(rng.int(0, 0xffffffff), 0);
      h.writeUInt32BE(rng.int((1 << 24) + 1, 0xffffffff), 4); // above MAX_FRAME
      bytes = Buffer.concat([muxFrame(1, validRequest(1, Buffer.from('ok'))), h, rng.bytes(rng.int(0, 100))]);
    } else {
      // valid frames whose ttrpc content is mutated
      bytes = Buffer.concat(Array.from({ length: 4 }, (_, i) => muxFrame(rng.int(1, 2), mutate(rng, validRequest(2 * i + 1, rng.bytes(rng.int(0, 100)))))));
    }
    let off = 0;
    while (off < bytes.length && !b.destroyed) {
      const n = rng.int(1, 700);
      await write(b, bytes.subarray(off, off + n));
      off += n;
    }
    if (kind === 2) {
      await waitFor(() => mux.isClosed, `mux closes on an oversized frame (round ${round}, seed ${SEED})`);
      assert.match(String(closeErr?.message), /exceeds/);
    }
    if (mux.isClosed) closedByMux++;
    b.end();
    await waitFor(() => mux.isClosed, 'mux closes on EOF');
    mux.close();
    b.destroy();
  }
  assert.ok(closedByMux >= 15, `${closedByMux} rounds closed by the mux itself`);
});

test('mux: after junk on an unopened conn, a valid request on conn 1 is still answered', async () => {
  const rng = makeRng(SEED + 1);
  const [a, b] = await socketPair();
  const mux = new Mux(a);
  echoServer().serve(mux.open(1));
  const got: Message[] = [];
  const reader = new MessageReader();
  b.on('data', (d: Buffer) => {
    // responses come back as frames on conn 1; parse them out
    let off = 0;
    while (off < d.length) {
      const len = d.readUInt32BE(off + 4);
      reader.push(d.subarray(off + 8, off + 8 + len), (m) => got.push(m), () => {});
      off += 8 + len;
    }
  });
  for (let i = 0; i < 50; i++) await write(b, muxFrame(rng.int(3, 1000), rng.bytes(rng.int(0, 2000))));
  await write(b, muxFrame(1, validRequest(1, Buffer.from('still here'))));
  await waitFor(() => got.length === 1, 'echo reply');
  assert.is(Buffer.from(decodeResponse(got[0].data).payload).toString(), 'still here');
  mux.close();
});

// ---- (b) ttrpc reader + server ------------------------------------------------------

test('ttrpc server: random bytes and mutated requests give only well-formed responses, never a crash', async () => {
  const rng = makeRng(SEED + 2);
  let responses = 0;
  for (let round = 0; round < 300; round++) {
    const [c, s] = transportPair();
    const protocolErrors: Error[] = [];
    echoServer((e) => protocolErrors.push(e)).serve(s);
    const reader = new MessageReader();
    c.onData((b) =>
      reader.push(
        b,
        (m) => {
          responses++;
          assert.is(m.type, MessageType.Response);
          const r = decodeResponse(m.data); // must be decodable
          assert.ok(r.status === null || r.status === undefined || typeof r.status.code === 'number');
        },
        () => assert.unreachable('server sent an oversized message'),
      ),
    );
    let bytes: Buffer;
    if (round % 3 === 0) bytes = rng.bytes(rng.int(0, 3000));
    else bytes = Buffer.concat(Array.from({ length: rng.int(1, 6) }, (_, i) => mutate(rng, validRequest(2 * i + 1, rng.bytes(rng.int(0, 200))))));
    if (round % 7 === 0) {
      // an absurd length field (> 4 MiB): answered RESOURCE_EXHAUSTED, the rest discarded
      const h = Buffer.alloc(10);
      h.writeUInt32BE(rng.int((4 << 20) + 1, 0xffffffff), 0);
      h.writeUInt32BE(1, 4);
      h[8] = 1;
      bytes = Buffer.concat([h, bytes]);
    }
    let off = 0;
    while (off < bytes.length) {
      const n = rng.int(1, 500);
      c.write(bytes.subarray(off, off + n));
      off += n;
    }
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    c.close();
  }
  assert.ok(responses > 50, `${responses} responses`);
});

test('ttrpc server: an oversized length field is answered RESOURCE_EXHAUSTED and the connection recovers', async () => {
  const [c, s] = transportPair();
  echoServer().serve(s);
  const got: Message[] = [];
  const reader = new MessageReader();
  c.onData((b) => reader.push(b, (m) => got.push(m), () => {}));
  const len = (4 << 20) + 1;
  const h = Buffer.alloc(10);
  h.writeUInt32BE(len, 0);
  h.writeUInt32BE(1, 4);
  h[8] = 1;
  c.write(h);
  for (let sent = 0; sent < len; sent += 1 << 20) c.write(Buffer.alloc(Math.min(1 << 20, len - sent), 0xab)); // the body, in pieces
  c.write(validRequest(3, Buffer.from('after')));
  await waitFor(() => got.length === 2, 'two replies');
  assert.equal(got.map((m) => m.streamId), [1, 3]);
  assert.is(decodeResponse(got[0].data).status?.code, 8);
  assert.is(Buffer.from(decodeResponse(got[1].data).payload).toString(), 'after');
  c.close();
});

// ---- (c) NRI codecs -------------------------------------------------------------------

const samples: Array<[string, Uint8Array]> = [
  ['CreateContainerRequest', codecs.CreateContainerRequest.encode({ pod: pod('p', { a: 'b', 'x/y': 'z' }), container: { ...container('c', 'p'), env: ['A=B'], args: ['sh'], mounts: [{ destination: '/d', type: 'bind', source: '/s', options: ['ro'] }] } })],
  ['CreateContainerResponse', codecs.CreateContainerResponse.encode({ adjust: { mounts: [{ destination: '/dev/shm/x', type: 'bind', source: '/s', options: ['rbind', 'rw'] }], annotations: { k: 'v' } }, evict: [{ containerId: 'c', reason: 'r' }] })],
  ['SynchronizeRequest', codecs.SynchronizeRequest.encode({ pods: [pod('p1'), pod('p2')], containers: [container('c1', 'p1')], more: true })],
  ['ConfigureRequest', codecs.ConfigureRequest.encode({ config: 'a: b', runtimeName: 'containerd', runtimeVersion: 'v2.2.0', registrationTimeout: 5000, requestTimeout: 2000, nriVersion: 'v0.12.0' })],
  ['StateChangeEvent', codecs.StateChangeEvent.encode({ event: Event.REMOVE_CONTAINER, pod: pod('p'), container: container('c', 'p') })],
  ['UpdateContainerRequest', codecs.UpdateContainerRequest.encode({ pod: pod('p'), container: container('c', 'p'), linuxResources: { memory: { limit: { value: 1 << 30 } }, unified: { 'memory.high': 'max' } } })],
  ['UpdateContainersRequest', codecs.UpdateContainersRequest.encode({ update: [{ containerId: 'c', linux: { resources: { cpu: { cpus: '0-3' } } } }], evict: [] })],
  ['RegisterPluginRequest', codecs.RegisterPluginRequest.encode({ pluginName: 'shm', pluginIdx: '10' })],
];
const allCodecs = Object.entries(codecs) as Array<[string, Codec<unknown>]>;

function decodeOutcome(codec: Codec<unknown>, bytes: Uint8Array): 'ok' | 'error' {
  try {
    codec.decode(bytes);
    return 'ok';
  } catch (err) {
    if (!(err instanceof Error)) throw new Error(`decoder threw a non-Error: ${String(err)}`);
    return 'error';
  }
}

test('codecs: every decoder returns or throws an Error on random bytes', () => {
  const rng = makeRng(SEED + 3);
  const tally = { ok: 0, error: 0 };
  for (let i = 0; i < 400; i++) {
    const bytes = rng.bytes(rng.int(0, 200));
    for (const [, codec] of allCodecs) tally[decodeOutcome(codec, bytes)]++;
  }
  assert.ok(tally.ok > 0 && tally.error > 0, JSON.stringify(tally));
});

test('codecs: valid messages with flips, truncation and inserted garbage return or throw an Error', () => {
  const rng = makeRng(SEED + 4);
  const tally = { ok: 0, error: 0 };
  for (const [name, bytes] of samples) {
    const codec = (codecs as unknown as Record<string, Codec<unknown>>)[name];
    assert.is(decodeOutcome(codec, bytes), 'ok', `${name} decodes its own encoding`);
    for (let i = 0; i < 500; i++) tally[decodeOutcome(codec, mutate(rng, Buffer.from(bytes)))]++;
    // every other codec must cope with this message too (wrong type on the wire)
    for (const [, other] of allCodecs) decodeOutcome(other, bytes);
  }
  assert.ok(tally.error > 0, JSON.stringify(tally));
});

test('codecs: unknown fields are skipped (newer runtimes send more)', () => {
  const base = Buffer.from(samples[0][1]);
  // field 99, varint, and field 100, length-delimited, appended
  const extra = Buffer.concat([base, Buffer.from([0x98, 0x06, 0x05, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63])]);
  const r = codecs.CreateContainerRequest.decode(extra);
  assert.is(r.pod.id, 'p');
  assert.is(r.container.id, 'c');
  assert.equal(r.container.env, ['A=B']);
});

test('codecs: huge length prefixes are refused without allocating', () => {
  // field 1 (pod), length-delimited, length 2^31-ish, then nothing
  const evil = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x07]);
  assert.is(decodeOutcome(codecs.CreateContainerRequest as Codec<unknown>, evil), 'error');
  const evil2 = Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
  assert.is(decodeOutcome(codecs.SynchronizeRequest as Codec<unknown>, evil2), 'error');
});

// ---- (d) the stub against a runtime that talks garbage -----------------------------------

async function garbageThenBehave(garbage: (rng: Rng) => Buffer, hangUp: boolean, registrationTimeoutMs?: number): Promise<StubState[]> {
  const rng = makeRng(SEED + 5);
  const taken: Socket[] = [];
  const rt = await FakeRuntime.start({
    auto: { runtimeVersion: 'v2.1.9' },
    takeOver: (socket, n) => {
      if (n > 0) return false;
      taken.push(socket);
      socket.write(garbage(rng), () => {
        if (hangUp) socket.end();
      });
      return true;
    },
  });
  cleanups.push(() => rt.close());
  cleanups.push(() => taken.forEach((s) => s.destroy()));
  const states: StubState[] = [];
  const stub = new Stub(
    { createContainer: () => ({ adjust: { env: [{ key: 'OK', value: '1' }] } }), removeContainer() {} },
    { socketPath: rt.path, name: 'fuzzed', index: '33', env: {}, backoff: { initialMs: 5, maxMs: 20 }, registrationTimeoutMs, observer: { state: (s) => states.push(s) } },
  );
  cleanups.push(() => stub.stop());
  await within(stub.start(), 'sync on the second connection', 8000);
  const { conn, reg } = await rt.registered(0);
  assert.is(rt.accepted, 2);
  assert.is(reg.name, 'fuzzed');
  assert.is(reg.idx, '33');
  const res = await conn.createContainer(pod('p'), container('c', 'p'));
  assert.is(res.adjust?.env?.[0].value, '1');
  assert.equal(states.slice(0, 2), ['connecting', 'disconnected']);
  return states;
}

test('stub: a runtime writing a frame header over MAX_FRAME is dropped; the stub re-registers', async () => {
  await garbageThenBehave((rng) => Buffer.concat([Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]), rng.bytes(64)]), false);
});

test('stub: random garbage and a hang-up; the stub reconnects', async () => {
  await garbageThenBehave((rng) => rng.bytes(rng.int(1, 4000)), true);
});

test('stub: random garbage and silence; registration times out and the stub reconnects', async () => {
  await garbageThenBehave((rng) => rng.bytes(rng.int(1, 4000)), false, 150);
});

test('stub: garbage inside valid frames on both conns, then silence; the stub reconnects', async () => {
  await garbageThenBehave(
    (rng) => Buffer.concat(Array.from({ length: 20 }, () => muxFrame(rng.int(1, 2), mutate(rng, validRequest(rng.int(0, 20), rng.bytes(rng.int(0, 300))))))),
    false,
    150,
  );
});

test('stub: mutated Plugin-service requests on a live connection never crash it', async () => {
  const rng = makeRng(SEED + 6);
  const rt = await FakeRuntime.start({ auto: { runtimeVersion: 'v1.7.24' } });
  cleanups.push(() => rt.close());
  const stub = new Stub({ createContainer: (p) => ({ adjust: { annotations: { seen: p.id } } }), removeContainer() {} }, { socketPath: rt.path, name: 'f', index: '01', env: {} });
  cleanups.push(() => stub.stop());
  await within(stub.start(), 'sync');
  const conn = await rt.conn(0);
  const methods = ['CreateContainer', 'StateChange', 'Synchronize', 'Configure', 'RemoveContainer', 'UpdateContainer', 'StopContainer'];
  let failures = 0;
  for (let i = 0; i < 150; i++) {
    const [, sample] = samples[rng.int(0, samples.length - 1)];
    try {
      await conn.call(methods[rng.int(0, methods.length - 1)], mutate(rng, Buffer.from(sample)), 2000);
    } catch (err) {
      failures++;
      assert.ok(err instanceof Error);
      assert.not.match((err as Error).message, /deadline/); // answered, not hung
    }
  }
  // the connection is still the first one and still works
  assert.is(rt.accepted, 1);
  const res = await conn.createContainer(pod('alive'), container('c', 'alive'));
  assert.is(res.adjust?.annotations?.seen, 'alive');
  console.log(`[fuzz] ${failures}/150 mutated calls failed with an error status`);
});

test('no uncaught exception or unhandled rejection during the whole file', async () => {
  await new Promise((r) => setTimeout(r, 20));
  assert.is(crashes.count(), 0, `uncaught: ${crashes.errors.map((e) => (e instanceof Error ? e.stack : String(e))).join('\n')}`);
});

test.run();
