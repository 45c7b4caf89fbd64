// Reading a file that someone else controls (declarations, kubeconfig and its token and
// certificate files, the config) without letting it stall or flood the agent:
// - only regular files: the path is stat'ed first, so a FIFO or device is never even opened
//   (opening some devices acts: a watchdog starts, a tape rewinds), and the opened descriptor is
//   fstat'ed again (same inode, still regular) so a swap in between is caught;
// - opened with O_NONBLOCK, so if a FIFO or device is swapped in anyway, open and read return
//   at once instead of waiting for a writer;
// - never from /proc, /sys and the like: their "regular" files report size 0 and can block or
//   act on read (/proc/kmsg blocks, and reading it takes the kernel's messages from the logger);
//   the check is on the opened descriptor's filesystem, through /proc/self/fd;
// - the byte limit is on what is read (at most limit + 1 bytes), not on what stat says.
// Symbolic links are followed: a Kubernetes ConfigMap or Secret volume presents every file as a
// link into its "..data" directory, and the checks above apply to what the link reaches.
import * as fs from 'node:fs';
import { messageOf } from '../model/errors';

export type FileRefusal =
  | 'missing' // nothing at the path
  | 'dangling-link' // a symbolic link to nothing
  | 'not-regular' // a FIFO, device, socket or directory
  | 'pseudo-filesystem' // /proc, /sys, ...
  | 'too-large'
  | 'changed' // replaced between stat and open
  | 'unreadable'; // EACCES, EIO, EAGAIN...

/** Why a file was not read; the message names the path and the reason, never the content. */
export class FileReadError extends Error {
  constructor(
    readonly path: string,
    readonly refusal: FileRefusal,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${reason}`, options);
    this.name = 'FileReadError';
  }
}

// statfs(2) magic numbers of filesystems whose files are not data at rest
const PSEUDO_FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x62656570, 'configfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
  [0x1cd1, 'devpts'],
]);

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;

function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** The refusal for what stat (following links) found, or undefined for a regular file. */
function checkPath(path: string, st: fs.Stats | undefined, statErr: unknown): FileReadError | undefined {
  if (st === undefined) {
    if (code(statErr) === 'ENOENT') {
      let isLink = false;
      try {
        isLink = fs.lstatSync(path).isSymbolicLink();
      } catch {
        // gone entirely
      }
      return isLink
        ? new FileReadError(path, 'dangling-link', 'is a symbolic link to nothing (its target does not exist)')
        : new FileReadError(path, 'missing', 'no such file');
    }
    return new FileReadError(path, 'unreadable', `cannot read (${code(statErr) ?? messageOf(statErr)})`, { cause: statErr });
  }
  if (!st.isFile()) return new FileReadError(path, 'not-regular', `is ${kindOf(st)}, not a regular file; it is not read`);
  return undefined;
}

function checkDescriptor(path: string, fd: number, before: fs.Stats): void {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new FileReadError(path, 'not-regular', `is ${kindOf(st)}, not a regular file; it is not read`);
  if (st.ino !== before.ino || st.dev !== before.dev) throw new FileReadError(path, 'changed', 'was replaced while being opened; it is read again on the next scan');
  let type: number | undefined;
  try {
    type = fs.statfsSync(`/proc/self/fd/${fd}`).type;
  } catch {
    type = undefined; // no /proc (some sandboxes): the other checks still hold
  }
  const pseudo = type === undefined ? undefined : PSEUDO_FILESYSTEMS.get(type);
  if (pseudo) throw new FileReadError(path, 'pseudo-filesystem', `is on ${pseudo}, whose files are not data at rest; it is not read`);
}

function tooLarge(path: string, maxBytes: number): FileReadError {
  return new FileReadError(path, 'too-large', `is larger than the ${maxBytes} bytes allowed; it is not read`);
}

/** Reads at most maxBytes + 1 bytes from fd; throws too-large past maxBytes. */
export function readAtMostSync(path: string, fd: number, maxBytes: number): Buffer {
  const buf = Buffer.alloc(Math.min(maxBytes + 1, 64 * 1024));
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) return Buffer.concat(chunks, total);
    total += n;
    if (total > maxBytes) throw tooLarge(path, maxBytes);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
}

function wrapUnexpected(path: string, err: unknown): FileReadError {
  if (err instanceof FileReadError) return err;
  if (code(err) === 'ENOENT') return new FileReadError(path, 'missing', 'no such file');
  return new FileReadError(path, 'unreadable', `cannot read (${code(err) ?? messageOf(err)})`, { cause: err });
}

/** The file's bytes, if it is a regular file of at most maxBytes; throws FileReadError. */
export function readRegularFileSync(path: string, maxBytes: number): Buffer {
  let st: fs.Stats | undefined;
  let statErr: unknown;
  try {
    st = fs.statSync(path);
  } catch (err) {
    statErr = err;
  }
  const refused = checkPath(path, st, statErr);
  if (refused) throw refused;
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, OPEN_FLAGS);
    checkDescriptor(path, fd, st!);
    return readAtMostSync(path, fd, maxBytes);
  } catch (err) {
    throw wrapUnexpected(path, err);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The same, with the reads off the event loop (libuv's thread pool). */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  let st: fs.Stats | undefined;
  let statErr: unknown;
  try {
    st = await fs.promises.stat(path);
  } catch (err) {
    statErr = err;
  }
  const refused = checkPath(path, st, statErr);
  if (refused) throw refused;
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(path, OPEN_FLAGS);
    checkDescriptor(path, fh.fd, st!);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(maxBytes + 1 - total, 64 * 1024) || 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(path, maxBytes);
      chunks.push(buf.subarray(0, bytesRead));
    }
  } catch (err) {
    throw wrapUnexpected(path, err);
  } finally {
    await fh?.close();
  }
}
