// Small test helpers: seeds (the PRNG is ./prng.ts), bounded waits, rejections, temp unix sockets, raw frame parsing.
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A seed from TEST_SEED or the clock, printed so a failure can be replayed. */
export function seedFromEnv(label: string): number {
  const seed = process.env.TEST_SEED ? Number(process.env.TEST_SEED) : Date.now() % 1_000_000_007;
  console.log(`[${label}] seed=${seed} (replay with TEST_SEED=${seed})`);
  return seed;
}

/** Polls until `pred` is true; rejects after `timeoutMs` (a bound, not an assertion on timing). */
export async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Races a promise against a bound. */
export function within<T>(p: Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    }),
  ]);
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const dirs: string[] = [];
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh path for a unix socket in a temp dir removed at exit. */
export function tmpSocketPath(name = 'test.sock'): string {
  const d = mkdtempSync(join(tmpdir(), 'nri-memshare-t-'));
  dirs.push(d);
  return join(d, name);
}

/** A connected pair of real unix-domain sockets (through a listening server, closed after). */
export async function socketPair(): Promise<[Socket, Socket]> {
  const path = tmpSocketPath();
  const server: NetServer = createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const a = connect(path);
  await new Promise<void>((r, j) => {
    a.once('connect', r);
    a.once('error', j);
  });
  const b = await accepted;
  server.close();
  return [a, b];
}

/** Collects everything a socket receives. */
export function collect(socket: Socket): { bytes(): Buffer; length(): number; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  let len = 0;
  const ended = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('data', (b: Buffer) => {
    chunks.push(b);
    len += b.length;
  });
  socket.on('error', () => {});
  return { bytes: () => Buffer.concat(chunks, len), length: () => len, ended };
}

export interface RawFrame {
  conn: number;
  payload: Buffer;
}

/** Parses NRI mux frames from a byte stream; throws if the bytes do not end on a frame boundary. */
export function parseFrames(bytes: Buffer): RawFrame[] {
  const out: RawFrame[] = [];
  let off = 0;
  while (off < bytes.length) {
    if (bytes.length - off < 8) throw new Error(`trailing ${bytes.length - off} bytes are not a frame header`);
    const conn = bytes.readUInt32BE(off);
    const len = bytes.readUInt32BE(off + 4);
    if (bytes.length - off - 8 < len) throw new Error(`frame of ${len} bytes truncated`);
    out.push({ conn, payload: bytes.subarray(off + 8, off + 8 + len) });
    off += 8 + len;
  }
  return out;
}

/** One mux frame. */
export function muxFrame(conn: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(conn, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** Counts uncaught exceptions and unhandled rejections for the life of the process. */
export function crashCounter(): { count(): number; errors: unknown[] } {
  const errors: unknown[] = [];
  process.on('uncaughtException', (e) => errors.push(e));
  process.on('unhandledRejection', (e) => errors.push(e));
  return { count: () => errors.length, errors };
}

/** The error `p` rejects with; fails the test if `p` resolves. */
export async function rejection<E extends Error = Error>(p: Promise<unknown>, what = 'the promise'): Promise<E> {
  try {
    await p;
  } catch (err) {
    return err as E;
  }
  throw new Error(`${what}: expected a rejection, but it resolved`);
}

/** The error `p` rejects with, which must be an instance of `kind`; fails the test otherwise. */
export async function rejectionOf<E extends Error>(p: Promise<unknown>, kind: new (...args: never[]) => E): Promise<E> {
  const err = await rejection(p, `expected a rejection with a ${kind.name}`);
  assert.instance(err, kind);
  return err as E;
}

/** Fails the test unless `p` rejects with a message matching `re`. */
export async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  assert.match((await rejection(p, `expected a rejection matching ${re}`)).message, re);
}
