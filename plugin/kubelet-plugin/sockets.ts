// The unix socket files the kubelet plugin serves on: made ready before a bind (a stale socket left
// by a dead agent is removed; anything else at the path is refused, by name), and removed on close
// only while they are still the ones this process bound (a successor's socket is left alone).
import { connect } from 'node:net';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname } from 'node:path';

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** What a file is, in words, for an error message. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device node';
  return 'not a socket';
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether a server accepts connections on the socket at `path` (a live owner, not a stale file). */
function answers(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (live: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    // a listener that does not accept within the time is taken as alive: refusing is the safe side
    const timer = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes `path` ready for a bind: its directory exists (created with mode 0750 where missing), no file
 * is there (a stale socket is removed). Rejects, naming the path and the reason, when the path is too
 * long for a unix socket, when something other than a socket is there, or when a server answers on it.
 */
export async function prepareSocketPath(path: string, what: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`${what} ${path}: ${Buffer.byteLength(path)} bytes, longer than a unix socket path may be (${MAX_SOCKET_PATH_BYTES})`);
  }
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new Error(`${what} ${path}: cannot create its directory ${dir}: ${(err as Error).message}`);
  }
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw new Error(`${what} ${path}: cannot inspect it: ${(err as Error).message}`);
  }
  if (!st.isSocket()) {
    throw new Error(`${what} ${path} is ${kindOf(st)}, not a socket: refusing to replace it (remove it by hand if it is not needed)`);
  }
  if (await answers(path, 2000)) {
    throw new Error(`${what} ${path}: a server already answers on it (another nri-memshare agent?): refusing to take it over`);
  }
  try {
    await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw new Error(`${what} ${path}: cannot remove the stale socket: ${(err as Error).message}`);
  }
}

/** The identity of a bound socket file, so that close removes that file and no other. */
export interface SocketIdentity {
  path: string;
  dev: number;
  ino: number;
}

export async function identify(path: string): Promise<SocketIdentity> {
  const st = await lstat(path);
  return { path, dev: st.dev, ino: st.ino };
}

/** Removes the socket file if it is still the one identified (a missing file is fine). */
export async function removeSocket(id: SocketIdentity): Promise<void> {
  try {
    const st = await lstat(id.path);
    if (!st.isSocket() || st.dev !== id.dev || st.ino !== id.ino) return;
    await unlink(id.path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
