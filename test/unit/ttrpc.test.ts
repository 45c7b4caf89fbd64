// ttrpc client/server/framing over an in-memory transport pair and over real unix sockets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  ClosedError,
  Code,
  HEADER_LENGTH,
  MessageReader,
  MessageType,
  OversizedMessageError,
  Server,
  TtrpcError,
  duplexTransport,
  encodeMessage,
  type CallContext,
  type Message,
} from '../../plugin/ttrpc';
import { decodeRequest, decodeResponse, encodeRequest } from '../../plugin/ttrpc/codec';
import { codecs } from '../../plugin/nri/api';
import { transportPair, type TestTransport } from '../support/transport-pair';
import { crashCounter, deferred, seedFromEnv, socketPair, waitFor, within, rejection } from '../support/util';
import { makeRng, type Rng } from '../support/prng';

const crashes = crashCounter();

const SVC = 'test.Echo';
const enc = (s: string) => Buffer.from(s);
const dec = (b: Uint8Array) => Buffer.from(b).toString();

function echoServer(opts: ConstructorParameters<typeof Server>[0] = {}): Server {
  return new Server(opts).register(SVC, {
    Echo: (p) => p,
    Upper: async (p) => enc(dec(p).toUpperCase()),
  });
}

/** client transport + server over the in-memory pair */
function pair(server = echoServer(), clientOpts: { maxMessage?: number } = {}): { client: Client; c: TestTransport; s: TestTransport } {
  const [c, s] = transportPair();
  server.serve(s);
  return { client: new Client(c, clientOpts), c, s };
}

/** Sends a raw request on the peer transport and waits for the response with that stream id. */
function rawCall(c: TestTransport, streamId: number, req: Parameters<typeof encodeRequest>[0]): Promise<{ code: number; message: string; payload: Buffer }> {
  const reader = new MessageReader();
  const done = deferred<{ code: number; message: string; payload: Buffer }>();
  c.onData((b) =>
    reader.push(
      b,
      (m) => {
        if (m.streamId !== streamId) return;
        const r = decodeResponse(m.data);
        done.resolve({ code: r.status?.code ?? 0, message: r.status?.message ?? '', payload: Buffer.from(r.payload) });
      },
      () => done.reject(new Error('oversized')),
    ),
  );
  c.write(encodeMessage(streamId, MessageType.Request, encodeRequest(req)));
  return within(done.promise, `response on stream ${streamId}`);
}

const req = (method: string, payload = Buffer.alloc(0), timeoutNano = 0) => ({ service: SVC, method, payload, timeoutNano, metadata: [] });

// ---- framing ----------------------------------------------------------------

test('encodeMessage: 10-byte big-endian header, then the data', () => {
  const m = encodeMessage(0x01020304, MessageType.Response, Buffer.from([0xaa, 0xbb, 0xcc]), 0x04);
  assert.is(HEADER_LENGTH, 10);
  assert.equal([...m], [0, 0, 0, 3, 1, 2, 3, 4, 2, 4, 0xaa, 0xbb, 0xcc]);
});

test('client request header: length of the data, stream 1, type Request, flags 0', async () => {
  const { client, c } = pair();
  const payload = codecs.RegisterPluginRequest.encode({ pluginName: 'shm', pluginIdx: '10' });
  client.call('nri.pkg.api.v1alpha1.Runtime', 'RegisterPlugin', payload).catch(() => {});
  const m = c.written[0];
  assert.is(m.readUInt32BE(0), m.length - 10);
  assert.is(m.readUInt32BE(4), 1);
  assert.is(m[8], 1);
  assert.is(m[9], 0);
  const r = decodeRequest(m.subarray(10));
  assert.is(r.service, 'nri.pkg.api.v1alpha1.Runtime');
  assert.is(r.method, 'RegisterPlugin');
  assert.equal(codecs.RegisterPluginRequest.decode(r.payload).pluginName, 'shm');
  c.close();
});

test('RegisterPlugin{shm,10} without deadline is byte-for-byte the nri-protocol.md §4 example', async () => {
  const { client, c } = pair();
  const payload = codecs.RegisterPluginRequest.encode({ pluginName: 'shm', pluginIdx: '10' });
  client.call('nri.pkg.api.v1alpha1.Runtime', 'RegisterPlugin', payload).catch(() => {});
  const expected = Buffer.concat([
    Buffer.from('00000039' + '00000001' + '01' + '00', 'hex'),
    Buffer.from([0x0a, 0x1c]), enc('nri.pkg.api.v1alpha1.Runtime'),
    Buffer.from([0x12, 0x0e]), enc('RegisterPlugin'),
    Buffer.from([0x1a, 0x09, 0x0a, 0x03]), enc('shm'), Buffer.from([0x12, 0x02]), enc('10'),
  ]);
  assert.is(expected.length, 67); // what the mux frame header of the example announces (0x43)
  // a Go client leaves timeout_nano out when there is no deadline (proto3 default)
  assert.is(c.written[0].toString('hex'), expected.toString('hex'));
  c.close();
});

test('client stream ids are 1, 3, 5, 7 …', async () => {
  const { client, c } = pair();
  await Promise.all([1, 2, 3, 4].map((i) => client.call(SVC, 'Echo', enc(`m${i}`))));
  await client.call(SVC, 'Echo', enc('later'));
  assert.equal(c.written.map((m) => m.readUInt32BE(4)), [1, 3, 5, 7, 9]);
  c.close();
});

test('concurrent calls answered out of order are matched by stream id', async () => {
  const gates = new Map<string, ReturnType<typeof deferred<void>>>();
  const server = new Server().register(SVC, {
    Slow: async (p) => {
      const g = deferred<void>();
      gates.set(dec(p), g);
      await g.promise;
      return enc(`answer-${dec(p)}`);
    },
  });
  const { client, s, c } = pair(server);
  const names = ['a', 'b', 'c', 'd', 'e'];
  const calls = names.map((n) => client.call(SVC, 'Slow', enc(n)));
  await waitFor(() => gates.size === names.length, 'all handlers running');
  for (const n of [...names].reverse()) gates.get(n)!.resolve();
  const results = await Promise.all(calls);
  assert.equal(results.map(dec), names.map((n) => `answer-${n}`));
  // the server really answered in reverse order
  assert.equal(s.written.map((m) => m.readUInt32BE(4)), [9, 7, 5, 3, 1]);
  c.close();
});

test('unknown service or method: UNIMPLEMENTED (12), "service X" / "method X"', async () => {
  const { client, c } = pair();
  const e1 = (await rejection(client.call('no.Such', 'Echo', enc('x')))) as TtrpcError;
  assert.instance(e1, TtrpcError);
  assert.is(e1.code, Code.UNIMPLEMENTED);
  assert.is(e1.code, 12);
  assert.is(e1.message, 'service no.Such');
  const e2 = (await rejection(client.call(SVC, 'Nope', enc('x')))) as TtrpcError;
  assert.is(e2.code, 12);
  assert.is(e2.message, 'method Nope');
  // still serving after both
  assert.is(dec(await client.call(SVC, 'Echo', enc('ok'))), 'ok');
  c.close();
});

test('a handler error becomes UNKNOWN (2) with its message; sync and async', async () => {
  const server = new Server().register(SVC, {
    Async: async () => {
      throw new Error('boom async');
    },
    Sync: () => {
      throw new Error('boom sync');
    },
    NonError: async () => {
      throw 'a string'; // eslint-disable-line no-throw-literal
    },
  });
  const { client, c } = pair(server);
  for (const [m, msg] of [['Async', 'boom async'], ['Sync', 'boom sync'], ['NonError', 'a string']]) {
    const e = (await rejection(client.call(SVC, m, enc('')))) as TtrpcError;
    assert.instance(e, TtrpcError);
    assert.is(e.code, Code.UNKNOWN, m);
    assert.is(e.message, msg);
  }
  c.close();
});

test('a TtrpcError thrown by a handler keeps its code and message', async () => {
  const server = new Server().register(SVC, {
    NotFound: async () => {
      throw new TtrpcError(Code.NOT_FOUND, 'no container x');
    },
    Precondition: () => {
      throw new TtrpcError(Code.FAILED_PRECONDITION, 'not yet');
    },
  });
  const { client, c } = pair(server);
  const e = (await rejection(client.call(SVC, 'NotFound', enc('')))) as TtrpcError;
  assert.is(e.code, Code.NOT_FOUND);
  assert.is(e.message, 'no container x');
  const e2 = (await rejection(client.call(SVC, 'Precondition', enc('')))) as TtrpcError;
  assert.is(e2.code, Code.FAILED_PRECONDITION);
  c.close();
});

test('OK responses carry the payload; empty payloads round-trip', async () => {
  const { client, c } = pair();
  assert.is(dec(await client.call(SVC, 'Upper', enc('abc'))), 'ABC');
  assert.is((await client.call(SVC, 'Echo', new Uint8Array(0))).length, 0);
  c.close();
});

test('request timeout_nano is a server-side deadline: handler aborted, DEADLINE_EXCEEDED', async () => {
  let seen: CallContext | undefined;
  const aborted = deferred<unknown>();
  const server = new Server().register(SVC, {
    Hang: (_p, ctx) => {
      seen = ctx;
      ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason));
      return new Promise<Uint8Array>(() => {}); // never answers by itself
    },
  });
  const [c, s] = transportPair();
  server.serve(s);
  const before = Date.now();
  const res = await rawCall(c, 1, req('Hang', Buffer.alloc(0), 30e6)); // 30 ms, no client timer
  assert.is(res.code, Code.DEADLINE_EXCEEDED);
  assert.ok(seen?.deadline !== undefined && seen.deadline >= before + 29, 'ctx.deadline set from timeout_nano');
  assert.ok(seen!.signal.aborted, 'handler signal aborted');
  const reason = await within(aborted.promise, 'abort event');
  assert.instance(reason, TtrpcError);
  assert.is((reason as TtrpcError).code, Code.DEADLINE_EXCEEDED);
  c.close();
});

test('client timeoutMs: the client gets DEADLINE_EXCEEDED and the handler sees the abort', async () => {
  const aborted = deferred<void>();
  const server = new Server().register(SVC, {
    Hang: (_p, ctx) => {
      ctx.signal.addEventListener('abort', () => aborted.resolve());
      return new Promise<Uint8Array>(() => {});
    },
  });
  const { client, c } = pair(server);
  const e = (await rejection(client.call(SVC, 'Hang', enc(''), { timeoutMs: 30 }))) as TtrpcError;
  assert.is(e.code, Code.DEADLINE_EXCEEDED);
  const sent = decodeRequest(c.written[0].subarray(10));
  assert.is(sent.timeoutNano, 30e6);
  await within(aborted.promise, 'handler abort');
  c.close();
});

test('client-side timeout with a silent server; a late response is dropped; later calls work', async () => {
  const [c, s] = transportPair();
  const client = new Client(c);
  const reqs: Message[] = [];
  const reader = new MessageReader();
  s.onData((b) => reader.push(b, (m) => reqs.push(m), () => {}));
  const e = (await rejection(client.call(SVC, 'X', enc('1'), { timeoutMs: 20 }))) as TtrpcError;
  assert.instance(e, TtrpcError);
  assert.is(e.code, Code.DEADLINE_EXCEEDED);
  const ok = (id: number, text: string) =>
    s.write(encodeMessage(id, MessageType.Response, Buffer.concat([Buffer.from([0x0a, 0x00, 0x12, text.length]), enc(text)])));
  ok(1, 'late'); // response to the timed-out call: must be ignored
  const next = client.call(SVC, 'X', enc('2'));
  await waitFor(() => reqs.length === 2, 'second request');
  assert.is(reqs[1].streamId, 3);
  ok(3, 'fresh');
  assert.is(dec(await next), 'fresh');
  c.close();
});

test('a huge timeout_nano (30 days) is not an immediate deadline', async () => {
  const server = new Server().register(SVC, {
    Slowish: async () => {
      await new Promise((r) => setTimeout(r, 40));
      return enc('done');
    },
  });
  const [c, s] = transportPair();
  server.serve(s);
  const res = await rawCall(c, 1, req('Slowish', Buffer.alloc(0), 30 * 24 * 3600 * 1e9));
  assert.is(res.code, Code.OK, `got ${res.code} ${res.message}: setTimeout overflows above 2^31-1 ms and fires at once`);
  assert.is(res.payload.toString(), 'done');
  c.close();
});

test('ctx.signal read only after the deadline passed is aborted', async () => {
  const seen = deferred<{ aborted: boolean; reason: unknown }>();
  const server = new Server().register(SVC, {
    Late: async (_p, ctx) => {
      await new Promise((r) => setTimeout(r, 60)); // deadline is 10 ms; the handler looks only now
      seen.resolve({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
      return enc('');
    },
  });
  const [c, s] = transportPair();
  server.serve(s);
  const res = await rawCall(c, 1, req('Late', Buffer.alloc(0), 10e6));
  assert.is(res.code, Code.DEADLINE_EXCEEDED);
  const { aborted, reason } = await within(seen.promise, 'handler looked at its signal');
  assert.ok(aborted, 'a handler that looks at ctx.signal after its deadline must see it aborted');
  assert.instance(reason, TtrpcError);
  c.close();
});

test('ctx.signal read only after the connection closed is aborted', async () => {
  const started = deferred<void>();
  const seen = deferred<boolean>();
  const server = new Server().register(SVC, {
    Late: async () => enc(''),
    Watch: async (_p, ctx) => {
      started.resolve();
      await new Promise((r) => setTimeout(r, 30));
      seen.resolve(ctx.signal.aborted);
      return enc('');
    },
  });
  const { client, c } = pair(server);
  client.call(SVC, 'Watch', enc('')).catch(() => {});
  await within(started.promise, 'handler started');
  c.close();
  assert.ok(await within(seen.promise, 'handler looked'), 'signal aborted after close');
});

test('a request without a payload field gives the handler a Uint8Array, and echoing it works', async () => {
  const before = crashes.count();
  let got: unknown;
  const server = new Server().register(SVC, {
    Echo: (p) => ((got = p), p),
  });
  const [c, s] = transportPair();
  server.serve(s);
  // Go omits an empty bytes field (e.g. the payload of an Empty message): service + method only
  const raw = Buffer.concat([Buffer.from([0x0a, SVC.length]), enc(SVC), Buffer.from([0x12, 4]), enc('Echo')]);
  const reader = new MessageReader();
  const replies: Message[] = [];
  c.onData((b) => reader.push(b, (m) => replies.push(m), () => {}));
  c.write(encodeMessage(1, MessageType.Request, raw));
  await waitFor(() => replies.length === 1 || crashes.count() > before, 'reply or crash');
  assert.is(crashes.count() - before, 0, `uncaught: ${crashes.errors.map(String).join('; ')}`);
  assert.ok(got instanceof Uint8Array, `handler got ${Object.prototype.toString.call(got)} ${JSON.stringify(got)}`);
  assert.is(decodeResponse(replies[0].data).status?.code ?? 0, Code.OK);
  c.close();
});

test('a response without a payload field resolves to a Uint8Array', async () => {
  const [c, s] = transportPair();
  const client = new Client(c);
  const reader = new MessageReader();
  s.onData((b) => reader.push(b, (m) => s.write(encodeMessage(m.streamId, MessageType.Response, Buffer.from([0x0a, 0x00]))), () => {}));
  const p = await client.call(SVC, 'X', enc(''));
  assert.ok(p instanceof Uint8Array, `got ${Object.prototype.toString.call(p)}`);
  assert.is(p.length, 0);
  c.close();
});

test('client: a huge timeoutMs (30 days) is not an immediate deadline', async () => {
  const [c, s] = transportPair();
  const client = new Client(c);
  const reader = new MessageReader();
  // a peer that answers after 40 ms and ignores deadlines
  s.onData((b) =>
    reader.push(
      b,
      (m) => setTimeout(() => s.write(encodeMessage(m.streamId, MessageType.Response, Buffer.from([0x0a, 0x00, 0x12, 0x02, 0x6f, 0x6b]))), 40),
      () => {},
    ),
  );
  let result: string;
  try {
    result = dec(await client.call(SVC, 'X', enc(''), { timeoutMs: 30 * 24 * 3600 * 1000 }));
  } catch (err) {
    result = `rejected: ${(err as Error).message}`;
  }
  assert.is(result, 'ok', 'client setTimeout overflows above 2^31-1 ms and fires at once');
  c.close();
});

test('server rejects an even stream id (INVALID_ARGUMENT) without calling the handler', async () => {
  let calls = 0;
  const server = new Server().register(SVC, { Count: () => (calls++, enc('')) });
  const [c, s] = transportPair();
  server.serve(s);
  const res = await rawCall(c, 2, req('Count'));
  assert.is(res.code, Code.INVALID_ARGUMENT);
  assert.match(res.message, /odd/);
  assert.is(calls, 0);
  const ok = await rawCall(c, 1, req('Count'));
  assert.is(ok.code, Code.OK);
  assert.is(calls, 1);
  c.close();
});

test('server rejects a non-increasing stream id', async () => {
  let calls = 0;
  const server = new Server().register(SVC, { Count: () => (calls++, enc('')) });
  const [c, s] = transportPair();
  server.serve(s);
  assert.is((await rawCall(c, 5, req('Count'))).code, Code.OK);
  const back = await rawCall(c, 3, req('Count'));
  assert.is(back.code, Code.INVALID_ARGUMENT);
  assert.match(back.message, /increment/);
  assert.is((await rawCall(c, 5, req('Count'))).code, Code.INVALID_ARGUMENT); // same id again
  assert.is((await rawCall(c, 7, req('Count'))).code, Code.OK);
  assert.is(calls, 2);
  c.close();
});

test('client refuses an oversized request with OversizedMessageError before sending', async () => {
  const { client, c } = pair(echoServer(), { maxMessage: 100 });
  const e = (await rejection(client.call(SVC, 'Echo', Buffer.alloc(200)))) as OversizedMessageError;
  assert.instance(e, OversizedMessageError);
  assert.is(e.code, Code.RESOURCE_EXHAUSTED);
  assert.is(e.limit, 100);
  assert.ok(e.size > 200);
  assert.is(c.written.length, 0, 'nothing written');
  // the stream id was not consumed either
  await client.call(SVC, 'Echo', enc('small'));
  assert.is(c.written[0].readUInt32BE(4), 1);
  c.close();
});

test('server answers RESOURCE_EXHAUSTED to an oversized request and keeps serving', async () => {
  let calls = 0;
  const server = new Server({ maxMessage: 1000 }).register(SVC, { Echo: (p) => (calls++, p) });
  const { client, c } = pair(server);
  const e = (await rejection(client.call(SVC, 'Echo', Buffer.alloc(5000, 7)))) as TtrpcError;
  assert.is(e.code, Code.RESOURCE_EXHAUSTED);
  assert.is(calls, 0);
  assert.is(dec(await client.call(SVC, 'Echo', enc('after'))), 'after');
  assert.is(calls, 1);
  c.close();
});

test('server: an oversized response becomes RESOURCE_EXHAUSTED', async () => {
  const server = new Server({ maxMessage: 1000 }).register(SVC, { Big: () => Buffer.alloc(5000) });
  const { client, c } = pair(server);
  const e = (await rejection(client.call(SVC, 'Big', enc('')))) as TtrpcError;
  assert.is(e.code, Code.RESOURCE_EXHAUSTED);
  c.close();
});

test('client: an oversized response fails that call only', async () => {
  const server = new Server().register(SVC, { Sized: (p) => Buffer.alloc(Number(dec(p))) });
  const { client, c } = pair(server, { maxMessage: 1000 });
  const e = (await rejection(client.call(SVC, 'Sized', enc('5000')))) as TtrpcError;
  assert.is(e.code, Code.RESOURCE_EXHAUSTED);
  assert.is((await client.call(SVC, 'Sized', enc('10'))).length, 10);
  c.close();
});

test('server: malformed request data → INVALID_ARGUMENT; wrong message type reported, not answered', async () => {
  const errors: Error[] = [];
  const server = echoServer({ onProtocolError: (e) => errors.push(e) });
  const [c, s] = transportPair();
  server.serve(s);
  const reader = new MessageReader();
  const got: Message[] = [];
  c.onData((b) => reader.push(b, (m) => got.push(m), () => {}));
  c.write(encodeMessage(1, MessageType.Request, Buffer.from([0xff, 0xff, 0xff])));
  c.write(encodeMessage(3, MessageType.Data, Buffer.from([1, 2, 3])));
  c.write(encodeMessage(5, MessageType.Request, encodeRequest(req('Echo', enc('alive')))));
  await waitFor(() => got.length === 2, 'two responses');
  assert.equal(got.map((m) => m.streamId), [1, 5]);
  assert.is(decodeResponse(got[0].data).status?.code, Code.INVALID_ARGUMENT);
  assert.is(Buffer.from(decodeResponse(got[1].data).payload).toString(), 'alive');
  assert.is(errors.length, 1);
  assert.match(errors[0].message, /type 3/);
  c.close();
});

// ---- MessageReader ----------------------------------------------------------

function messageStream(rng: Rng, count: number, maxLen: number): { bytes: Buffer; msgs: Message[] } {
  const msgs: Message[] = [];
  for (let i = 0; i < count; i++) {
    const len = rng.next() < 0.2 ? 0 : rng.int(0, maxLen);
    msgs.push({ streamId: 2 * i + 1, type: rng.int(1, 3), flags: rng.int(0, 7), data: rng.bytes(len) });
  }
  return { bytes: Buffer.concat(msgs.map((m) => encodeMessage(m.streamId, m.type, m.data, m.flags))), msgs };
}

test('MessageReader reassembles messages fed byte by byte', () => {
  const rng = makeRng(seedFromEnv('ttrpc byte-by-byte'));
  const { bytes, msgs } = messageStream(rng, 20, 300);
  const r = new MessageReader();
  const out: Message[] = [];
  for (let i = 0; i < bytes.length; i++) r.push(bytes.subarray(i, i + 1), (m) => out.push(m), () => assert.unreachable('oversized'));
  assert.equal(out, msgs);
});

test('MessageReader reassembles messages fed in random slices (seeded)', () => {
  const seed = seedFromEnv('ttrpc random slices');
  const rng = makeRng(seed);
  for (let round = 0; round < 200; round++) {
    const { bytes, msgs } = messageStream(rng, rng.int(1, 15), rng.next() < 0.1 ? 70_000 : 600);
    const r = new MessageReader();
    const out: Message[] = [];
    let off = 0;
    while (off < bytes.length) {
      const n = rng.int(1, Math.max(1, Math.min(bytes.length - off, rng.next() < 0.5 ? 16 : 5000)));
      r.push(bytes.subarray(off, off + n), (m) => out.push(m), () => assert.unreachable('oversized'));
      off += n;
    }
    assert.equal(out, msgs, `seed ${seed} round ${round}`);
  }
});

test('MessageReader discards oversized messages in any slicing and keeps the ones around them', () => {
  const seed = seedFromEnv('ttrpc oversized slices');
  const rng = makeRng(seed);
  for (let round = 0; round < 100; round++) {
    const parts = [
      { streamId: 1, type: 1, flags: 0, data: rng.bytes(rng.int(0, 50)) },
      { streamId: 3, type: 1, flags: 0, data: rng.bytes(rng.int(101, 3000)) }, // oversized for max 100
      { streamId: 5, type: 2, flags: 0, data: rng.bytes(rng.int(0, 100)) },
    ];
    const bytes = Buffer.concat(parts.map((m) => encodeMessage(m.streamId, m.type, m.data)));
    const r = new MessageReader(100);
    const out: Message[] = [];
    const over: number[] = [];
    let off = 0;
    while (off < bytes.length) {
      const n = rng.int(1, 400);
      r.push(bytes.subarray(off, off + n), (m) => out.push(m), (o) => over.push(o.streamId, o.length));
      off += n;
    }
    assert.equal(out, [parts[0], parts[2]], `seed ${seed} round ${round}`);
    assert.equal(over, [3, parts[1].data.length]);
  }
});

// ---- close --------------------------------------------------------------------

test('pending calls fail with ClosedError when the transport closes; later calls too', async () => {
  const server = new Server().register(SVC, { Hang: () => new Promise<Uint8Array>(() => {}) });
  const { client, c, s } = pair(server);
  const calls = [client.call(SVC, 'Hang', enc('')), client.call(SVC, 'Hang', enc(''), { timeoutMs: 60_000 })];
  await waitFor(() => c.written.length === 2, 'requests written');
  s.close(new Error('peer went away'));
  for (const p of calls) {
    const e = await rejection(p);
    assert.instance(e, ClosedError);
    assert.is((e as ClosedError).code, Code.UNAVAILABLE);
  }
  assert.instance(await rejection(client.call(SVC, 'Hang', enc(''))), ClosedError);
});

test('client.close() fails pending calls with ClosedError and aborts the server handlers', async () => {
  const started = deferred<void>();
  const aborted = deferred<void>();
  const server = new Server().register(SVC, {
    Hang: (_p, ctx) => {
      ctx.signal.addEventListener('abort', () => aborted.resolve());
      started.resolve();
      return new Promise<Uint8Array>(() => {});
    },
  });
  const { client } = pair(server);
  const p = client.call(SVC, 'Hang', enc(''));
  await within(started.promise, 'handler started');
  client.close();
  assert.instance(await rejection(p), ClosedError);
  await within(aborted.promise, 'server handler abort on close');
});

// ---- real sockets -------------------------------------------------------------

test('over a real unix socket: concurrent calls, errors, a 3 MiB payload, close', async () => {
  const [a, b] = await socketPair();
  const server = new Server().register(SVC, {
    Echo: async (p) => {
      await new Promise((r) => setImmediate(r));
      return p;
    },
    Fail: () => {
      throw new TtrpcError(Code.INTERNAL, 'internal!');
    },
    Hang: () => new Promise<Uint8Array>(() => {}),
  });
  server.serve(duplexTransport(b));
  const client = new Client(duplexTransport(a));
  const rng = makeRng(7);
  const payloads = Array.from({ length: 50 }, (_, i) => rng.bytes(i * 97));
  const results = await Promise.all(payloads.map((p) => client.call(SVC, 'Echo', p)));
  results.forEach((r, i) => assert.ok(Buffer.from(r).equals(payloads[i]), `payload ${i}`));
  const big = rng.bytes(3 << 20);
  assert.ok(Buffer.from(await client.call(SVC, 'Echo', big)).equals(big));
  const e = (await rejection(client.call(SVC, 'Fail', enc('')))) as TtrpcError;
  assert.is(e.code, Code.INTERNAL);
  assert.is(e.message, 'internal!');
  const hang = client.call(SVC, 'Hang', enc(''));
  await new Promise((r) => setTimeout(r, 10));
  b.destroy();
  assert.instance(await within(rejection(hang), 'ClosedError after peer destroy'), ClosedError);
});

test('over a real socket: server discards a 6 MiB request (max 4 MiB) and serves the next one', async () => {
  const [a, b] = await socketPair();
  let calls = 0;
  new Server().register(SVC, { Echo: (p) => (calls++, p) }).serve(duplexTransport(b));
  const client = new Client(duplexTransport(a), { maxMessage: 16 << 20 });
  const e = (await rejection(client.call(SVC, 'Echo', Buffer.alloc(6 << 20, 1)))) as TtrpcError;
  assert.is(e.code, Code.RESOURCE_EXHAUSTED);
  assert.match(e.message, /exceeds maximum message size of 4194304/);
  assert.is(calls, 0);
  assert.is(dec(await client.call(SVC, 'Echo', enc('next'))), 'next');
  assert.is(calls, 1);
  client.close();
  b.destroy();
});

test('no uncaught exception during the whole file', () => {
  assert.is(crashes.count(), 0, crashes.errors.map(String).join('; '));
});

test.run();
