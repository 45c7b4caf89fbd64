// koffi bindings to the few libc calls the plugin needs on the request path: mount(2), umount2(2),
// statfs(2) and flock(2). libc is loaded on first use, so importing this module costs nothing and
// platforms without it (e.g. a macOS dev box running pure unit tests) only fail when a call is made.
// Calls are synchronous: each is a single short syscall, and errno must be read on the same thread.
import { closeSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { loadKoffi, type Koffi } from './koffi';

/** mount(2) flags (linux/mount.h). */
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;

/** umount2(2) flags. */
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;

/** flock(2) operations. */
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** statx(2) constants. */
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;
const STATX_ATTR_MOUNT_ROOT = 0x2000;
// the 64-bit mount id that is never reused while the system runs (Linux 6.8+)
const STATX_MNT_ID_UNIQUE = 0x4000;

/** statfs f_type of a tmpfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;

/** An error from a libc call: names the call, its target and strerror. */
export class SyscallError extends Error {
  constructor(
    readonly syscall: string,
    readonly path: string,
    readonly errno: number,
    /** symbolic errno name, e.g. "EBUSY" (node's `code` convention) */
    readonly code: string,
    detail: string,
  ) {
    super(`${syscall}(${path}) failed: ${code}: ${detail}`);
    this.name = 'SyscallError';
  }
}

/** The subset of struct statfs the plugin uses; byte counts already multiplied out. */
export interface FsStats {
  /** filesystem magic, compare with TMPFS_MAGIC */
  type: number;
  blockSize: number;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}

interface LibcFns {
  mount: (source: string, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
  statfs: (path: string, buf: Record<string, unknown>) => number;
  flock: (fd: number, op: number) => number;
  statx: (dirfd: number, path: string, flags: number, mask: number, buf: Record<string, unknown>) => number;
  strerror: (errnum: number) => string;
  /** syscall(2), variadic: extra arguments come as (type, value) pairs */
  syscall: (num: number, ...typedArgs: unknown[]) => number;
  koffi: Koffi;
}

let libc: LibcFns | undefined;

function load(): LibcFns {
  if (libc) return libc;
  if (process.platform !== 'linux') throw new Error(`libc bindings: unsupported platform ${process.platform}, Linux only`);
  // struct statfs below is the 64-bit layout (x86_64, aarch64, riscv64); 32-bit differs.
  if (process.arch !== 'x64' && process.arch !== 'arm64' && process.arch !== 'riscv64') {
    throw new Error(`libc bindings: unsupported architecture ${process.arch}, 64-bit only`);
  }
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  koffi.struct('nri_memshare_statfs', {
    f_type: 'long',
    f_bsize: 'long',
    f_blocks: 'uint64',
    f_bfree: 'uint64',
    f_bavail: 'uint64',
    f_files: 'uint64',
    f_ffree: 'uint64',
    f_fsid: koffi.array('int', 2),
    f_namelen: 'long',
    f_frsize: 'long',
    f_flags: 'long',
    f_spare: koffi.array('long', 4),
  });
  // struct statx (linux/stat.h), 256 bytes; the spans we don't read are typed arrays (cheap to
  // decode: this runs on every binding of a share that is already mounted)
  koffi.struct('nri_memshare_statx', {
    stx_mask: 'uint32',
    stx_blksize: 'uint32',
    stx_attributes: 'uint64',
    stx_nlink: 'uint32',
    stx_uid: 'uint32',
    stx_gid: 'uint32',
    stx_mode: 'uint16',
    stx_spare0: 'uint16',
    stx_ino: 'uint64',
    stx_size: 'uint64',
    stx_blocks: 'uint64',
    stx_attributes_mask: 'uint64',
    stx_times: koffi.array('uint64', 8, 'Typed'), // atime, btime, ctime, mtime
    stx_devs: koffi.array('uint32', 4, 'Typed'), // rdev major/minor, dev major/minor
    stx_mnt_id: 'uint64',
    stx_rest: koffi.array('uint64', 13, 'Typed'),
  });
  libc = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    statfs: lib.func('int statfs(const char *path, _Out_ nri_memshare_statfs *buf)'),
    flock: lib.func('int flock(int fd, int op)'),
    statx: lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, _Out_ nri_memshare_statx *buf)'),
    strerror: lib.func('const char *strerror(int errnum)'),
    syscall: lib.func('long syscall(long number, ...)'),
    koffi,
  };
  return libc;
}

// Aliases share a number (EAGAIN/EWOULDBLOCK): the first name, the usual one, wins.
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);

function fail(fns: LibcFns, syscall: string, path: string): never {
  const errno = fns.koffi.errno();
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  throw new SyscallError(syscall, path, errno, code, fns.strerror(errno));
}

/** mount(2). `data` is the filesystem option string, e.g. "size=134217728,mode=1777". */
export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  const fns = load();
  fns.koffi.errno(0);
  if (fns.mount(source, target, fstype, flags, data) !== 0) fail(fns, 'mount', target);
}

/** umount2(2) with MNT_* / UMOUNT_NOFOLLOW flags. */
export function umount2(target: string, flags: number): void {
  const fns = load();
  fns.koffi.errno(0);
  if (fns.umount2(target, flags) !== 0) fail(fns, 'umount2', target);
}

/** statfs(2): size and use of the filesystem holding `path`. */
export function statfs(path: string): FsStats {
  const fns = load();
  const buf: Record<string, unknown> = {};
  fns.koffi.errno(0);
  if (fns.statfs(path, buf) !== 0) fail(fns, 'statfs', path);
  const bsize = Number(buf.f_bsize);
  const blocks = Number(buf.f_blocks);
  const bfree = Number(buf.f_bfree);
  return {
    type: Number(buf.f_type),
    blockSize: bsize,
    totalBytes: blocks * bsize,
    freeBytes: bfree * bsize,
    usedBytes: (blocks - bfree) * bsize,
  };
}

/** flock(2) on an open file descriptor; `what` names the file in errors. */
export function flock(fd: number, op: number, what: string): void {
  const fns = load();
  fns.koffi.errno(0);
  if (fns.flock(fd, op) !== 0) fail(fns, 'flock', what);
}

/**
 * Opens `path` (created 0600 if missing) and takes an exclusive flock(2) on it without waiting.
 * Returns the descriptor, which holds the lock until it is closed (also by the process's death),
 * or undefined when another open file holds the lock (another process, or another open in this
 * one). Other failures throw. The one way the agent keeps a directory to itself.
 */
export function tryLockFile(path: string): number | undefined {
  const fd = openSync(path, 'a', 0o600);
  try {
    flock(fd, LOCK_EX | LOCK_NB, path);
    return fd;
  } catch (err) {
    closeSync(fd);
    const code = (err as SyscallError).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return undefined;
    throw err;
  }
}

function hasBit(v: unknown, bit: number): boolean {
  return typeof v === 'bigint' ? (v & BigInt(bit)) !== 0n : (Number(v) & bit) !== 0;
}

export interface MountStat {
  /**
   * `path` is the root of a mount (STATX_ATTR_MOUNT_ROOT, Linux 5.8+); undefined if the kernel does
   * not report it. Catches bind mounts from the same filesystem, which a device-number comparison misses.
   */
  mountRoot: boolean | undefined;
  /**
   * The unique id of the mount `path` is on, as a decimal string; undefined before Linux 6.8.
   * Unlike mountinfo's ids it is never given to another mount, so an unchanged id means the
   * very mount seen before.
   */
  uniqueMountId: string | undefined;
}

/** One statx(2) of `path` (not following a final symlink): its mount-root bit and mount id. */
export function mountStat(path: string): MountStat {
  const fns = load();
  const buf: Record<string, unknown> = {};
  fns.koffi.errno(0);
  if (fns.statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, buf) !== 0) fail(fns, 'statx', path);
  return {
    mountRoot: hasBit(buf.stx_attributes_mask, STATX_ATTR_MOUNT_ROOT) ? hasBit(buf.stx_attributes, STATX_ATTR_MOUNT_ROOT) : undefined,
    // 0 is no mount's id: a statx that sets the mask bit but not the field (qemu-user 7.2 copies
    // stx_mask whole and drops stx_mnt_id) must not make every mount look like the same one
    uniqueMountId: hasBit(buf.stx_mask, STATX_MNT_ID_UNIQUE) && BigInt(buf.stx_mnt_id as number | bigint) !== 0n ? String(buf.stx_mnt_id) : undefined,
  };
}

// pidfd syscalls: numbers from the unified table (>= 424) are the same on every architecture.
const SYS_PIDFD_SEND_SIGNAL = 424;
const SYS_PIDFD_OPEN = 434;

/** pidfd_open(2): a handle on process `pid` that cannot come to mean another process later. */
export function pidfdOpen(pid: number): number {
  const fns = load();
  fns.koffi.errno(0);
  const fd = Number(fns.syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (fd < 0) fail(fns, 'pidfd_open', `pid ${pid}`);
  return fd;
}

/** pidfd_send_signal(2). */
export function pidfdSendSignal(pidfd: number, signal: number): void {
  const fns = load();
  fns.koffi.errno(0);
  if (Number(fns.syscall(SYS_PIDFD_SEND_SIGNAL, 'int', pidfd, 'int', signal, 'void *', null, 'unsigned int', 0)) !== 0) {
    fail(fns, 'pidfd_send_signal', `pidfd ${pidfd}`);
  }
}

// Unix datagram sockets, for sd_notify(3): node's dgram module has no AF_UNIX. Bound on first
// use, apart from the calls above, so this section only ever adds to the module.
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sun_path) in struct sockaddr_un */
const SUN_PATH_MAX = 108;

interface SocketFns {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  close: (fd: number) => number;
}

let socketFns: SocketFns | undefined;

function loadSocketFns(): { fns: LibcFns; sock: SocketFns } {
  const fns = load();
  if (!socketFns) {
    const lib = fns.koffi.load('libc.so.6');
    socketFns = {
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
      sendto: lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recv: lib.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
      close: lib.func('int close(int fd)'),
    };
  }
  return { fns, sock: socketFns };
}

/**
 * struct sockaddr_un for `path` and its length. A leading "@" means the abstract namespace
 * (sun_path starts with NUL, the length counts the name exactly, no terminator), as systemd
 * writes such addresses in NOTIFY_SOCKET.
 */
export function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path, 'utf8');
  if (!abstract && !path.startsWith('/')) throw new Error(`unix socket address ${JSON.stringify(path)}: neither an absolute path nor "@abstract"`);
  const pathLen = name.length + 1; // a leading NUL (abstract) or a trailing one (path)
  if (pathLen > SUN_PATH_MAX) throw new Error(`unix socket address ${JSON.stringify(path)}: longer than ${SUN_PATH_MAX - 1} bytes`);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0); // sa_family_t is host order; every supported arch is little-endian
  name.copy(addr, abstract ? 3 : 2);
  return { addr, len: abstract ? 2 + 1 + name.length : 2 + name.length + 1 };
}

/** A new AF_UNIX SOCK_DGRAM socket (close-on-exec, non-blocking); returns its fd. */
export function unixDgramSocket(): number {
  const { fns, sock } = loadSocketFns();
  fns.koffi.errno(0);
  const fd = sock.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail(fns, 'socket', 'AF_UNIX SOCK_DGRAM');
  return fd;
}

/** bind(2) a unix socket to a path or "@abstract" name. */
export function unixBind(fd: number, path: string): void {
  const { fns, sock } = loadSocketFns();
  const { addr, len } = sockaddrUn(path);
  fns.koffi.errno(0);
  if (sock.bind(fd, addr, len) !== 0) fail(fns, 'bind', path);
}

/** One datagram to the socket at `path` (never blocks: a full receiver fails with EAGAIN). */
export function unixSendTo(fd: number, data: Buffer, path: string): void {
  const { fns, sock } = loadSocketFns();
  const { addr, len } = sockaddrUn(path);
  fns.koffi.errno(0);
  if (Number(sock.sendto(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, len)) < 0) fail(fns, 'sendto', path);
}

/** The next datagram waiting on `fd` (at most `max` bytes), or undefined when none is queued. */
export function recvDatagram(fd: number, max = 4096): Buffer | undefined {
  const { fns, sock } = loadSocketFns();
  const buf = Buffer.alloc(max);
  fns.koffi.errno(0);
  const n = Number(sock.recv(fd, buf, max, MSG_DONTWAIT));
  if (n < 0) {
    const errno = fns.koffi.errno();
    if (errno === osConstants.errno.EAGAIN) return undefined;
    fail(fns, 'recv', `fd ${fd}`);
  }
  return buf.subarray(0, n);
}

/** close(2) a descriptor made above. */
export function closeFd(fd: number): void {
  const { fns, sock } = loadSocketFns();
  fns.koffi.errno(0);
  if (sock.close(fd) !== 0) fail(fns, 'close', `fd ${fd}`);
}
