// The NRI multiplexer over a real unix socket pair: the Go-compatible outgoing split, reassembly of
// arbitrarily split incoming frames, dropping of unknown conns, and the frame-size cap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Socket } from 'node:net';
import { MAX_FRAME, Mux, MuxError } from '../../plugin/nri/mux';
import { MessageReader, MessageType, encodeMessage, type Message } from '../../plugin/ttrpc';
import { collect, deferred, muxFrame, parseFrames, seedFromEnv, socketPair, waitFor, within } from '../support/util';
import { makeRng } from '../support/prng';

async function setup(maxFrame?: number): Promise<{ mux: Mux; peer: Socket; raw: ReturnType<typeof collect>; muxSocket: Socket }> {
  const [a, b] = await socketPair();
  const mux = maxFrame === undefined ? new Mux(a) : new Mux(a, maxFrame);
  return { mux, peer: b, raw: collect(b), muxSocket: a };
}

function writeAll(s: Socket, b: Buffer): Promise<void> {
  return new Promise((r, j) => s.write(b, (err) => (err ? j(err) : r())));
}

/** Writes one ttrpc message of `total` bytes on conn `id` and returns the frames the peer saw. */
async function framesFor(total: number, id = 2): Promise<{ frames: ReturnType<typeof parseFrames>; message: Buffer }> {
  const { mux, raw, peer } = await setup();
  const message = encodeMessage(1, MessageType.Request, makeRng(total).bytes(total - 10));
  mux.open(id).write(message);
  await waitFor(() => raw.length() >= total + 16 || (total <= 4096 && raw.length() >= total + 8), `${total}-byte message on the wire`, 10_000);
  await new Promise((r) => setTimeout(r, 5)); // let anything extra arrive
  const frames = parseFrames(raw.bytes());
  mux.close();
  peer.destroy();
  return { frames, message };
}

test('a 100-byte message goes out as one frame [conn][len][payload]', async () => {
  const { frames, message } = await framesFor(100);
  assert.is(frames.length, 1);
  assert.is(frames[0].conn, 2);
  assert.ok(frames[0].payload.equals(message));
});

test('a message of exactly 4096 bytes is still one frame', async () => {
  const { frames } = await framesFor(4096, 1);
  assert.equal(frames.map((f) => [f.conn, f.payload.length]), [[1, 4096]]);
});

test('4097 bytes: frames of 4096 and 1', async () => {
  const { frames, message } = await framesFor(4097);
  assert.equal(frames.map((f) => f.payload.length), [4096, 1]);
  assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(message));
});

test('a 10,000-byte message: exactly two frames, 4096 and 5904 bytes', async () => {
  const { frames, message } = await framesFor(10_000);
  assert.equal(frames.map((f) => [f.conn, f.payload.length]), [[2, 4096], [2, 5904]]);
  assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(message));
});

test('a 4 MiB message (+10 header): exactly two frames, 4096 and the rest', async () => {
  const total = (4 << 20) + 10;
  const { frames, message } = await framesFor(total, 1);
  assert.equal(frames.map((f) => [f.conn, f.payload.length]), [[1, 4096], [1, total - 4096]]);
  assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(message));
});

test('messages on two conns never share a frame and each stays contiguous', async () => {
  const { mux, raw, peer } = await setup();
  const rng = makeRng(3);
  const sizes = [10, 5000, 4096, 9000, 1, 20000];
  const sent: Array<[number, Buffer]> = [];
  sizes.forEach((n, i) => {
    const id = (i % 2) + 1;
    const m = encodeMessage(2 * i + 1, MessageType.Request, rng.bytes(n));
    sent.push([id, m]);
    mux.open(id).write(m);
  });
  const total = sent.reduce((s, [, m]) => s + m.length + (m.length > 4096 ? 16 : 8), 0);
  await waitFor(() => raw.length() >= total, 'all frames');
  const frames = parseFrames(raw.bytes());
  let fi = 0;
  for (const [id, m] of sent) {
    const parts = m.length > 4096 ? 2 : 1;
    const got = frames.slice(fi, fi + parts);
    fi += parts;
    assert.ok(got.every((f) => f.conn === id));
    assert.ok(Buffer.concat(got.map((f) => f.payload)).equals(m));
    if (parts === 2) assert.is(got[0].payload.length, 4096);
  }
  assert.is(fi, frames.length);
  mux.close();
  peer.destroy();
});

/** Collects whole ttrpc messages a mux conn receives. */
function messagesOf(mux: Mux, id: number): Message[] {
  const out: Message[] = [];
  const r = new MessageReader();
  mux.open(id).onData((b) => r.push(b, (m) => out.push(m), () => assert.unreachable('oversized')));
  return out;
}

test('incoming 1-byte frames are reassembled into messages', async () => {
  const { mux, peer } = await setup();
  const got = messagesOf(mux, 1);
  const msgs = [encodeMessage(1, 1, Buffer.from('hello')), encodeMessage(3, 1, Buffer.alloc(300, 9))];
  const bytes = Buffer.concat(msgs);
  await writeAll(peer, Buffer.concat([...bytes].map((x) => muxFrame(1, Buffer.from([x])))));
  await waitFor(() => got.length === 2, 'two messages');
  assert.is(got[0].data.toString(), 'hello');
  assert.ok(got[1].data.equals(Buffer.alloc(300, 9)));
  assert.is(got[1].streamId, 3);
  mux.close();
});

test('incoming frames spanning messages, interleaved conns, random socket slicing (seeded)', async () => {
  const seed = seedFromEnv('mux reassembly');
  const rng = makeRng(seed);
  const { mux, peer } = await setup();
  const got1 = messagesOf(mux, 1);
  const got2 = messagesOf(mux, 2);
  const want: Record<number, Buffer[]> = { 1: [], 2: [] };
  const streams: Record<number, Buffer> = { 1: Buffer.alloc(0), 2: Buffer.alloc(0) };
  for (let i = 0; i < 40; i++) {
    const id = rng.int(1, 2);
    const m = encodeMessage(2 * want[id].length + 1, 1, rng.bytes(rng.next() < 0.1 ? rng.int(5000, 70000) : rng.int(0, 200)));
    want[id].push(m);
    streams[id] = Buffer.concat([streams[id], m]);
  }
  // cut each conn's byte stream into frames of random sizes regardless of message boundaries
  const frames: Buffer[] = [];
  const off = { 1: 0, 2: 0 } as Record<number, number>;
  while (off[1] < streams[1].length || off[2] < streams[2].length) {
    const id = off[1] >= streams[1].length ? 2 : off[2] >= streams[2].length ? 1 : rng.int(1, 2);
    const n = Math.min(streams[id].length - off[id], rng.next() < 0.3 ? rng.int(1, 3) : rng.int(1, 9000));
    frames.push(muxFrame(id, streams[id].subarray(off[id], off[id] + n)));
    off[id] += n;
  }
  // also slice the socket writes randomly, cutting through frame headers
  const wire = Buffer.concat(frames);
  let w = 0;
  while (w < wire.length) {
    const n = rng.int(1, 3000);
    await writeAll(peer, wire.subarray(w, w + n));
    w += n;
  }
  await waitFor(() => got1.length === want[1].length && got2.length === want[2].length, 'all messages', 10_000);
  const asBytes = (ms: Message[]) => ms.map((m) => encodeMessage(m.streamId, m.type, m.data, m.flags).toString('hex'));
  assert.equal(asBytes(got1), want[1].map((b) => b.toString('hex')), `seed ${seed}`);
  assert.equal(asBytes(got2), want[2].map((b) => b.toString('hex')), `seed ${seed}`);
  assert.not.ok(mux.isClosed);
  mux.close();
});

test('frames for an unopened conn id (and empty frames) are dropped; the mux keeps going', async () => {
  const { mux, peer } = await setup();
  const got = messagesOf(mux, 1);
  const m = encodeMessage(1, 1, Buffer.from('for conn 1'));
  await writeAll(
    peer,
    Buffer.concat([muxFrame(7, Buffer.from('nobody listens')), muxFrame(1, Buffer.alloc(0)), muxFrame(0, Buffer.alloc(100, 1)), muxFrame(1, m), muxFrame(3, Buffer.alloc(5000))]),
  );
  await waitFor(() => got.length === 1, 'conn 1 message');
  assert.is(got[0].data.toString(), 'for conn 1');
  await writeAll(peer, muxFrame(1, encodeMessage(3, 1, Buffer.from('again'))));
  await waitFor(() => got.length === 2, 'second conn 1 message');
  assert.not.ok(mux.isClosed);
  mux.close();
});

test('a frame longer than MAX_FRAME closes the mux, its conns and the socket', async () => {
  const { mux, peer, raw } = await setup();
  const closed = deferred<Error | undefined>();
  const connClosed = deferred<Error | undefined>();
  mux.onClose((e) => closed.resolve(e));
  mux.open(1).onClose((e) => connClosed.resolve(e));
  const h = Buffer.alloc(8);
  h.writeUInt32BE(1, 0);
  h.writeUInt32BE(MAX_FRAME + 1, 4);
  await writeAll(peer, h);
  const err = await within(closed.promise, 'mux close');
  assert.instance(err, MuxError);
  assert.match(err!.message, /exceeds/);
  assert.instance(await within(connClosed.promise, 'conn close'), MuxError);
  assert.ok(mux.isClosed);
  assert.ok(mux.open(1).closed);
  await within(raw.ended, 'peer socket closed');
});

test('a frame of exactly MAX_FRAME is accepted (no close on the header alone)', async () => {
  const { mux, peer } = await setup();
  const h = Buffer.alloc(8);
  h.writeUInt32BE(1, 0);
  h.writeUInt32BE(MAX_FRAME, 4);
  await writeAll(peer, h);
  await new Promise((r) => setTimeout(r, 10));
  assert.not.ok(mux.isClosed);
  mux.close();
});

test('a custom maxFrame is enforced', async () => {
  const { mux, peer } = await setup(1000);
  const closed = deferred<Error | undefined>();
  mux.onClose((e) => closed.resolve(e));
  await writeAll(peer, muxFrame(1, Buffer.alloc(1000)));
  await new Promise((r) => setTimeout(r, 5));
  assert.not.ok(mux.isClosed);
  await writeAll(peer, muxFrame(1, Buffer.alloc(1001)));
  assert.instance(await within(closed.promise, 'close'), MuxError);
});

test('peer EOF closes the mux and every conn; writes after close are ignored', async () => {
  const { mux, peer } = await setup();
  const t = mux.open(2);
  const closed = deferred<void>();
  t.onClose(() => closed.resolve());
  peer.end();
  await within(closed.promise, 'conn close on EOF');
  assert.ok(mux.isClosed);
  t.write(encodeMessage(1, 1, Buffer.from('x'))); // must not throw
  const late = mux.open(5);
  assert.ok(late.closed, 'a conn opened after close is closed');
});

test('closing one conn closes the whole trunk', async () => {
  const { mux, raw } = await setup();
  const other = deferred<void>();
  mux.open(1).onClose(() => other.resolve());
  mux.open(2).close();
  await within(other.promise, 'conn 1 closed');
  await within(raw.ended, 'socket closed');
});

test.run();
