// The local backend: each share is a size-limited tmpfs at <sharesDir>/<namespace>/<name> on the
// host, bound into containers at /dev/shm/<name>. The kernel enforces the size (ENOSPC).
// Self-contained: its kind, its config (sharesDir), its factory, its status and check.
//
// Only root and the bound containers reach a share: sharesDir and the namespace directories are
// 0700 root (runc resolves a bind source as root, so containers need no traversal there), and a
// share is noexec unless its declaration has allowExec. The tmpfs root stays 1777, which is what
// the container sees. Every tmpfs the agent mounts carries its mark as the mount source
// (mountSourceFor), so reconcile and release touch only the agent's own mounts; a lock file in
// sharesDir keeps a second agent out.
import type * as Crypto from 'node:crypto';
import { chmodSync, closeSync, existsSync, ftruncateSync, mkdirSync, promises as fsp, readdirSync, readFileSync, realpathSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as native from '../../native';
import type { ConfigReader } from '../config/reader';
import { KeyedLock } from '../locks/keyed-lock';
import {
  DEFAULT_SHARES_DIR,
  emptyInjection,
  isDnsLabel,
  isObject,
  quote,
  shareKey,
  wrapError,
  type ContainerInjection,
  type ShareDeclaration,
  type ShareHandle,
} from '../model';
import { BackendDefaults, type BackendEnv, type BackendInspection, type BoundShare } from './types';

export { DEFAULT_SHARES_DIR };

export const LOCAL_KIND = 'local';

/** A tmpfs ends with the kernel, and with it every container bound to it. */
export const LOCAL_DURABLE = false;

export interface LocalBackendConfig {
  kind: typeof LOCAL_KIND;
}

/**
 * The local backend's settings that the config file has at its top level (where files written so
 * far have them): only this backend reads them.
 */
export interface LocalTopLevel {
  /** where the shares are mounted */
  sharesDir: string;
}

/** Reads backend.* for kind "local": no keys of its own. */
export function readLocalConfig(r: ConfigReader): LocalBackendConfig {
  r.has('kind');
  r.done();
  return { kind: LOCAL_KIND };
}

/** What a local share's handle keeps: where its tmpfs is on the host, its mount source, whether it allows exec. */
export type LocalHandleData = { readonly hostPath: string; readonly source: string; readonly exec: boolean };

export type LocalShareHandle = ShareHandle<LocalHandleData>;

/**
 * A recorded handle's data as far as it is the local backend's: the mount source is absent in
 * handles recorded by agents from before the mark, exec in those from before allowExec.
 */
export function localData(h: Pick<ShareHandle, 'data'>): Partial<LocalHandleData> {
  const { hostPath, source, exec } = h.data ?? {};
  return {
    ...(typeof hostPath === 'string' ? { hostPath } : {}),
    ...(typeof source === 'string' ? { source } : {}),
    ...(typeof exec === 'boolean' ? { exec } : {}),
  };
}

/** The host path of a local share's handle. */
export const hostPathOf = (h: ShareHandle): string => localData(h).hostPath ?? '';

/** The local backend for the agent. */
export function createLocalBackend(_c: LocalBackendConfig, env: BackendEnv, top: LocalTopLevel): LocalBackend {
  return new LocalBackend({ sharesDir: top.sharesDir, stateDir: env.stateDir, warn: env.warn });
}

/** What `status` shows of local shares: the mount table is the truth for tmpfs shares. */
export async function inspectLocal(_c: LocalBackendConfig, env: Pick<BackendEnv, 'stateDir'>, top: LocalTopLevel): Promise<BackendInspection> {
  // no sharesDir: no agent has made a share here (and status creates nothing: present() would)
  if (!existsSync(top.sharesDir)) return { present: [], helper: null, warnings: [] };
  const backend = new LocalBackend({ sharesDir: top.sharesDir, stateDir: env.stateDir });
  const present = [];
  for (const p of await backend.present()) {
    const u = await backend.usage(p);
    present.push({ namespace: p.namespace, name: p.name, location: p.data.hostPath, usage: u });
  }
  return { present, helper: null, warnings: [] };
}

/** Where a bound share appears inside a container. */
export const CONTAINER_SHM_DIR = '/dev/shm';

export interface LocalBackendOptions {
  sharesDir?: string;
  /**
   * The agent's stateDir: its shares are the tmpfs mounts whose source is mountSourceFor(stateDir).
   * Absent (read-only users such as status): any agent's mark counts.
   */
  stateDir?: string;
  /** told about foreign mounts under sharesDir (once each) */
  warn?(msg: string, detail?: object): void;
}

/** Every mount source the agent uses starts with this. */
export const MOUNT_SOURCE_PREFIX = 'nri-memshare:';
/** The mount source tmpfs shares had before they were marked; accepted only for such handles. */
const LEGACY_SOURCE = 'tmpfs';
/** In sharesDir: held (flock) by the agent using it; says who that is. */
export const SHARES_LOCK_FILE = '.nri-memshare.lock';

/**
 * The mount source of the tmpfs shares of the agent with this stateDir, as mountinfo shows it:
 * "nri-memshare:" and 16 hex digits of the state directory's real path. Stable across restarts
 * (the records and the mounts belong together), distinct for agents with distinct state.
 */
export function mountSourceFor(stateDir: string): string {
  let path = resolve(stateDir);
  try {
    path = realpathSync(path);
  } catch {
    // not made yet: its path as written
  }
  const { createHash } = require('node:crypto') as typeof Crypto;
  return `${MOUNT_SOURCE_PREFIX}${createHash('sha256').update(path).digest('hex').slice(0, 16)}`;
}

/** What the local backend needs from the kernel; a seam so tests can count or fail calls. */
export interface MountOps {
  mount: typeof native.mount;
  umount2: typeof native.umount2;
  statfs: typeof native.statfs;
  readMountInfo: typeof native.readMountInfo;
  mountStat: typeof native.mountStat;
}

const realOps: MountOps = {
  mount: native.mount,
  umount2: native.umount2,
  statfs: native.statfs,
  readMountInfo: native.readMountInfo,
  mountStat: native.mountStat,
};

// Bounds the unmount loop in release(): one share dir should never carry more stacked mounts.
const MAX_STACKED_MOUNTS = 8;

/**
 * Size policy when a share is already mounted with another size (its declaration changed):
 * - larger: remounted with the new size at once (MS_REMOUNT), users keep their data;
 * - smaller: remounted too, unless more than the new size is in use (the kernel would refuse);
 *   then the share keeps its current size until it is released, and acquire() reports the size
 *   really in force in the handle's sizeBytes so the caller can log the difference.
 * Sizes are whole pages: tmpfs rounds size= up to the page size.
 */
export class LocalBackend extends BackendDefaults {
  readonly kind = LOCAL_KIND;
  readonly durable = LOCAL_DURABLE;
  readonly sharesDir: string;
  private resolvedDir: string | undefined;
  private sourceMark: string | undefined;
  // One operation at a time per share; different shares proceed in parallel.
  private readonly lock = new KeyedLock();
  private readonly stateDir: string | undefined;
  private readonly warn: LocalBackendOptions['warn'];
  /** foreign mounts already reported, by mount id and point */
  private readonly reported = new Set<string>();
  private lockFd: number | undefined;
  /**
   * Share mounts this agent made or checked in mountinfo, by path, with statx's unique mount id
   * then (Linux 6.8+). A later binding whose statx shows the same id is on that very mount, so it
   * skips re-reading mountinfo (its cost grows with every mount on the node).
   */
  private readonly known = new Map<string, { mountId: string; source: string; exec: boolean }>();
  /**
   * The allowExec each share was acquired for by this agent, by "ns/name": a change acquires
   * again (a remount). A share found after a restart has no entry and is taken as it is.
   */
  private readonly acquiredExec = new Map<string, boolean>();

  constructor(
    options: LocalBackendOptions = {},
    private readonly ops: MountOps = realOps,
  ) {
    super();
    this.sharesDir = options.sharesDir ?? DEFAULT_SHARES_DIR;
    this.stateDir = options.stateDir;
    this.warn = options.warn;
  }

  /**
   * The mount source of this agent's shares; undefined: any agent's mark is recognised. Made at
   * first use: its hash loads node:crypto, which a node without shares never needs at start-up.
   */
  get source(): string | undefined {
    if (this.stateDir === undefined) return undefined;
    return (this.sourceMark ??= mountSourceFor(this.stateDir));
  }

  /**
   * For the agent (not for status): closes sharesDir and its namespace directories to everyone
   * but root (older versions made them 0755), and locks sharesDir for this agent, or throws
   * naming the agent that holds it.
   */
  start(): void {
    const base = this.baseDir();
    const lockPath = join(base, SHARES_LOCK_FILE);
    let fd: number | undefined;
    try {
      fd = native.tryLockFile(lockPath);
    } catch (err) {
      throw wrapError(`local backend: sharesDir ${this.sharesDir}: cannot lock ${lockPath}`, err);
    }
    if (fd === undefined) {
      throw new Error(`local backend: sharesDir ${this.sharesDir} is in use by another agent (${lockHolder(lockPath)}): ${lockPath} is locked; give each agent a sharesDir of its own`);
    }
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, `${JSON.stringify({ pid: process.pid, stateDir: this.stateDir ?? null })}\n`, 0);
      chmodSync(base, 0o700);
      for (const e of readdirSync(base, { withFileTypes: true })) {
        if (e.isDirectory() && isDnsLabel(e.name)) chmodSync(join(base, e.name), 0o700);
      }
    } catch (err) {
      closeSync(fd);
      throw wrapError(`local backend: sharesDir ${this.sharesDir}: cannot prepare it`, err);
    }
    this.lockFd = fd;
  }

  /** Drops the sharesDir lock (the shares stay mounted). */
  async close(): Promise<void> {
    if (this.lockFd === undefined) return;
    closeSync(this.lockFd);
    this.lockFd = undefined;
  }

  /** The host path of a share; refuses names that could leave sharesDir. */
  pathOf(namespace: string, name: string): string {
    checkComponent('namespace', namespace);
    checkComponent('share name', name);
    return join(this.baseDir(), namespace, name);
  }

  async acquire(decl: ShareDeclaration): Promise<LocalShareHandle> {
    const path = this.pathOf(decl.namespace, decl.name);
    if (!Number.isSafeInteger(decl.sizeBytes) || decl.sizeBytes <= 0) {
      throw new Error(`local backend: share ${shareKey(decl.namespace, decl.name)}: size ${decl.sizeBytes} is not a positive whole number of bytes`);
    }
    const key = shareKey(decl.namespace, decl.name);
    return this.lock.run(key, async () => {
      const handle = await this.doAcquire(decl, path);
      this.acquiredExec.set(key, decl.allowExec === true);
      return handle;
    });
  }

  /** The size and the exec setting it was acquired for. */
  serves(handle: ShareHandle, decl: ShareDeclaration): boolean {
    const exec = this.acquiredExec.get(shareKey(handle.namespace, handle.name));
    return super.serves(handle, decl) && (exec === undefined || exec === (decl.allowExec === true));
  }

  locationOf(handle: ShareHandle): string {
    return hostPathOf(handle);
  }

  async release(handle: Pick<ShareHandle, 'namespace' | 'name'> & Partial<ShareHandle>): Promise<void> {
    const path = this.pathOf(handle.namespace, handle.name);
    // a handle without a source was recorded before shares were marked: its tmpfs has the old one
    const legacyOk = localData({ data: handle.data ?? {} }).source === undefined;
    const key = shareKey(handle.namespace, handle.name);
    return this.lock.run(key, async () => {
      await this.doRelease(handle.namespace, path, legacyOk);
      this.acquiredExec.delete(key);
    });
  }

  /** The agent's own shares present; foreign mounts where a share could be are reported once. */
  async present(): Promise<LocalShareHandle[]> {
    const base = this.baseDir();
    const out = new Map<string, LocalShareHandle>();
    for (const m of this.ops.readMountInfo()) {
      if (!m.mountPoint.startsWith(`${base}/`)) continue;
      const rest = m.mountPoint.slice(base.length + 1).split('/');
      if (rest.length !== 2 || !isDnsLabel(rest[0]) || !isDnsLabel(rest[1])) continue;
      if (!this.owns(m, false)) {
        this.reportForeign(m);
        continue;
      }
      let sizeBytes = 0;
      try {
        sizeBytes = this.ops.statfs(m.mountPoint).totalBytes;
      } catch {
        // gone since mountinfo was read; still listed so reconcile can tidy it
      }
      out.set(m.mountPoint, handleOf(rest[0], rest[1], m.mountPoint, sizeBytes, sizeBytes, m.source, !m.mountOptions.includes('noexec')));
    }
    return [...out.values()];
  }

  async usage(handle: Pick<ShareHandle, 'namespace' | 'name'>): Promise<{ sizeBytes: number; usedBytes: number } | undefined> {
    const path = this.pathOf(handle.namespace, handle.name);
    const st = (await this.mountedTmpfs(path))?.st;
    if (!st) return undefined;
    return { sizeBytes: st.totalBytes, usedBytes: st.usedBytes };
  }

  attach(shares: readonly BoundShare[]): ContainerInjection {
    const inj = emptyInjection();
    for (const { handle, readOnly } of shares) {
      checkComponent('share name', handle.name);
      const options = ['rbind', 'rprivate', readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'];
      // said here too: the runtime's bind remount sets the flags it is given, not the source's
      if (localData(handle).exec !== true) options.push('noexec');
      inj.mounts.push({
        destination: `${CONTAINER_SHM_DIR}/${handle.name}`,
        type: 'bind',
        source: hostPathOf(handle) || this.pathOf(handle.namespace, handle.name),
        // rprivate: the container's copy must not receive later host mount events under the
        // share nor send its own back; it matches what kubelet asks for (propagation None).
        options,
      });
    }
    return inj;
  }

  private baseDir(): string {
    if (this.resolvedDir) return this.resolvedDir;
    // mountinfo shows real paths, so compare against the real one (/var/run -> /run).
    mkdirSync(this.sharesDir, { recursive: true, mode: 0o700 });
    this.resolvedDir = realpathSync(this.sharesDir);
    return this.resolvedDir;
  }

  /**
   * Whether a mount is one of this agent's shares: its mark as the source. `legacyOk`: also a
   * tmpfs with the source unmarked agents used, for handles recorded by such an agent.
   */
  private owns(m: native.MountInfo, legacyOk: boolean): boolean {
    if (m.fsType !== 'tmpfs') return false;
    if (this.source === undefined ? m.source.startsWith(MOUNT_SOURCE_PREFIX) : m.source === this.source) return true;
    return legacyOk && m.source === LEGACY_SOURCE;
  }

  private reportForeign(m: native.MountInfo): void {
    const key = `${m.mountId} ${m.mountPoint}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.warn?.(`local backend: ${m.mountPoint} has a ${m.fsType} mount not made by this agent (source ${quote(m.source)}); leaving it alone`, {
      mountPoint: m.mountPoint,
      fsType: m.fsType,
      source: m.source,
    });
  }

  /** The mount a lookup of `path` reaches, or undefined when `path` is no mount point. */
  private async topMount(path: string): Promise<native.MountInfo | undefined> {
    if (!(await this.isMountPoint(path))) return undefined;
    return native.topMountAt(this.ops.readMountInfo(), path);
  }

  private async doAcquire(decl: ShareDeclaration, path: string): Promise<LocalShareHandle> {
    const key = shareKey(decl.namespace, decl.name);
    // release() of the namespace's last other share may remove the namespace dir between our
    // two mkdirs; then make it again.
    for (let attempt = 0; ; attempt++) {
      await ensureDir(join(this.baseDir(), decl.namespace));
      try {
        await ensureDir(path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
    const exec = decl.allowExec === true;
    const flags = native.MS_NOSUID | native.MS_NODEV | (exec ? 0 : native.MS_NOEXEC);
    const source = this.source ?? `${MOUNT_SOURCE_PREFIX}unknown`;
    const mounted = await this.mountedTmpfs(path);
    let st = mounted?.st;
    let inForce = { source, exec };
    if (!st) {
      const data = `size=${decl.sizeBytes},mode=1777`;
      try {
        this.ops.mount(source, path, 'tmpfs', flags, data);
      } catch (err) {
        throw wrapError(`local backend: cannot mount tmpfs for share ${key} at ${path}`, err);
      }
      st = this.ops.statfs(path);
      this.remember(path, this.ops.mountStat(path).uniqueMountId, inForce);
    } else {
      const seen = this.known.get(path);
      if (seen && mounted?.mountId !== undefined && seen.mountId === mounted.mountId) {
        inForce = { source: seen.source, exec: seen.exec };
      } else {
        const top = await this.topMount(path);
        if (!top || !this.owns(top, false)) {
          throw new Error(`local backend: share ${key}: ${path} has a tmpfs not made by this agent (source ${quote(top?.source ?? '?')}); refusing to hand it out`);
        }
        inForce = { source: top.source, exec: !top.mountOptions.includes('noexec') };
        // the id statx saw before mountinfo was read: a mount stacked in between shows in both
        this.remember(path, mounted?.mountId, inForce);
      }
      const want = roundUp(decl.sizeBytes, st.blockSize);
      // A shrink below what is in use cannot work; do not even ask.
      const resize = st.totalBytes !== want && (want > st.totalBytes || st.usedBytes <= want);
      // a remount sets the mount's flags as given, so it also carries the exec setting
      if (resize || inForce.exec !== exec) {
        try {
          this.ops.mount(source, path, 'tmpfs', native.MS_REMOUNT | flags, resize ? `size=${decl.sizeBytes}` : null);
          st = this.ops.statfs(path);
          inForce = { source: inForce.source, exec };
          this.remember(path, mounted?.mountId, inForce); // a remount keeps the mount (and its id)
        } catch (err) {
          // A grow that fails is a real error; a shrink refused because the data does not fit
          // leaves the share at its current size (see the class comment).
          // (data written meanwhile: the kernel says EINVAL, older kernels EBUSY)
          const code = (err as native.SyscallError).code;
          if (want > st.totalBytes || (code !== 'EINVAL' && code !== 'EBUSY')) {
            throw wrapError(`local backend: cannot resize share ${key} at ${path} from ${st.totalBytes} to ${want} bytes`, err);
          }
        }
      }
    }
    return handleOf(decl.namespace, decl.name, path, st.totalBytes, decl.sizeBytes, inForce.source, inForce.exec);
  }

  private async doRelease(namespace: string, path: string, legacyOk: boolean): Promise<void> {
    this.known.delete(path);
    for (let i = 0; i < MAX_STACKED_MOUNTS; i++) {
      const top = await this.topMount(path);
      if (!top) break;
      if (!this.owns(top, legacyOk)) {
        throw new Error(`local backend: cannot release the share at ${path}: the mount there was not made by this agent (${top.fsType}, source ${quote(top.source)}); leaving it alone`);
      }
      try {
        this.ops.umount2(path, native.UMOUNT_NOFOLLOW);
      } catch (err) {
        if ((err as native.SyscallError).code !== 'EBUSY') {
          throw wrapError(`local backend: cannot unmount share at ${path}`, err);
        }
        // Still open on the host (e.g. a shell cd'ed into it): detach now, the kernel frees
        // the memory when the last user lets go.
        this.ops.umount2(path, native.MNT_DETACH | native.UMOUNT_NOFOLLOW);
      }
    }
    if (await this.isMountPoint(path)) {
      throw new Error(`local backend: share at ${path} is still mounted after ${MAX_STACKED_MOUNTS} unmounts`);
    }
    await rmdirIfThere(path);
    // The namespace dir goes when its last share goes; a concurrent acquire recreates it.
    await rmdirIfThere(join(this.baseDir(), namespace), true);
  }

  private remember(path: string, mountId: string | undefined, inForce: { source: string; exec: boolean }): void {
    if (mountId === undefined) this.known.delete(path);
    else this.known.set(path, { mountId, ...inForce });
  }

  /** statfs of `path` and statx's mount id if a tmpfs is mounted right there, else undefined. */
  private async mountedTmpfs(path: string): Promise<{ st: native.FsStats; mountId: string | undefined } | undefined> {
    const at = await this.mountPoint(path);
    if (!at) return undefined;
    const st = this.ops.statfs(path);
    if (st.type !== native.TMPFS_MAGIC) {
      throw new Error(`local backend: ${path} is a mount point but not a tmpfs (filesystem type 0x${st.type.toString(16)}); refusing to use it`);
    }
    return { st, mountId: at.mountId };
  }

  private async isMountPoint(path: string): Promise<boolean> {
    return (await this.mountPoint(path)) !== undefined;
  }

  // statx's mount-root attribute is exact (also for same-filesystem bind mounts); kernels that
  // lack it get a mountinfo scan.
  private async mountPoint(path: string): Promise<{ mountId: string | undefined } | undefined> {
    let ms: native.MountStat;
    try {
      ms = this.ops.mountStat(path);
    } catch (err) {
      if ((err as native.SyscallError).code === 'ENOENT') return undefined;
      throw err;
    }
    const root = ms.mountRoot ?? this.ops.readMountInfo().some((m) => m.mountPoint === path);
    return root ? { mountId: ms.uniqueMountId } : undefined;
  }
}

function handleOf(namespace: string, name: string, hostPath: string, sizeBytes: number, requestedBytes: number, source: string, exec: boolean): LocalShareHandle {
  return { backend: LOCAL_KIND, namespace, name, sizeBytes, requestedBytes, data: { hostPath, source, exec } };
}

/** Who holds a sharesDir lock, from what the holder wrote into the file (root-only). */
function lockHolder(lockPath: string): string {
  try {
    const v: unknown = JSON.parse(readFileSync(lockPath, 'utf8'));
    if (isObject(v) && Number.isSafeInteger(v.pid)) {
      const alive = existsSync(`/proc/${String(v.pid)}`) ? '' : ', no longer running';
      return `pid ${String(v.pid)}${alive}, stateDir ${typeof v.stateDir === 'string' ? v.stateDir : 'unknown'}`;
    }
  } catch {
    // written by something else, or being written: say so below
  }
  return 'holder unknown';
}

function checkComponent(what: string, value: string): void {
  // Callers validated these as DNS-1123 labels already; this is the last line before a path.
  if (!isDnsLabel(value) || value.includes('/') || value.includes('..')) {
    throw new Error(`local backend: ${what} ${quote(value)} is not a DNS-1123 label; refusing to build a host path from it`);
  }
}

async function ensureDir(path: string): Promise<void> {
  try {
    await fsp.mkdir(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Never mount over (or through) a symlink someone planted.
  const st = await fsp.lstat(path);
  if (!st.isDirectory()) throw new Error(`local backend: ${path} exists and is not a directory`);
}

async function rmdirIfThere(path: string, onlyIfEmpty = false): Promise<void> {
  try {
    await fsp.rmdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (onlyIfEmpty && (code === 'ENOTEMPTY' || code === 'EEXIST')) return;
    throw wrapError(`local backend: cannot remove ${path}`, err);
  }
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}
