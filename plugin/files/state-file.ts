// The agent's own small state files (failed evictions, agent state, the CDI spec): replaced whole
// and atomically, so a reader sees the old file or the new one, never half of either.
// The temp file beside the target is created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW) under a
// random name: a file or symbolic link planted at a name the agent would use is never opened, let
// alone written through (a predictable "<file>.tmp-<pid>" could point anywhere root can write).
import { closeSync, constants, fsyncSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';

export interface StateFileOptions {
  /** the file's mode (the temp file is created with it) */
  mode: number;
  /** fsync the data before the rename: for records that must survive a crash, not for live views */
  durable?: boolean;
}

const CREATE_EXCLUSIVE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** 16 hex digits from the kernel's random source (no node:crypto on the start-up path). */
function randomSuffix(): string {
  const buf = Buffer.alloc(8);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf, 0, 8, null);
  } finally {
    closeSync(fd);
  }
  return buf.toString('hex');
}

/** Replaces `path` with `text` atomically (exclusive temp file beside it, then rename). */
export function writeStateFile(path: string, text: string, opts: StateFileOptions): void {
  let tmp = '';
  let fd = -1;
  // a name taken already (planted, or left by a crash) is never reused: another random one
  for (let attempt = 0; fd < 0; attempt++) {
    tmp = `${path}.tmp-${randomSuffix()}`;
    try {
      fd = openSync(tmp, CREATE_EXCLUSIVE, opts.mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
  }
  try {
    try {
      writeSync(fd, text);
      if (opts.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // gone already (renamed, or never fully made): nothing to clean
    }
    throw err;
  }
}

/** Removes `path`; nothing there is fine. */
export function removeStateFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The file's text, or undefined when there is no file; any other failure throws. */
export function readStateFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
