// The local backend: each share is a size-limited tmpfs at <sharesDir>/<namespace>/<name> on the
// host, bound into containers at /dev/shm/<name>. The kernel enforces the size (ENOSPC).
// Self-contained: its kind, its config keys (none besides "kind"), its factory.
import { promises as fsp, realpathSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../native';
import {
  DEFAULT_SHARES_DIR,
  KeyedLock,
  emptyInjection,
  isDnsLabel,
  quote,
  shareKey,
  wrapError,
  type ConfigReader,
  type ContainerInjection,
  type ShareDeclaration,
  type ShareHandle,
} from '../model';
import type { AttachTarget, Backend, BoundShare } from './types';

export { DEFAULT_SHARES_DIR };

export const LOCAL_KIND = 'local';

export interface LocalBackendConfig {
  kind: typeof LOCAL_KIND;
}

/** Reads backend.* for kind "local": no keys of its own. */
export function readLocalConfig(r: ConfigReader): LocalBackendConfig {
  r.has('kind');
  r.done();
  return { kind: LOCAL_KIND };
}

/** A local share's handle: where its tmpfs is mounted on the host. */
export type LocalShareHandle = ShareHandle & { readonly data: { readonly hostPath: string } };

/** The host path of a local share's handle. */
export const hostPathOf = (h: ShareHandle): string => String(h.data.hostPath ?? '');

/** Where a bound share appears inside a container. */
export const CONTAINER_SHM_DIR = '/dev/shm';

export interface LocalBackendOptions {
  sharesDir?: string;
}

/** What the local backend needs from the kernel; a seam so tests can count or fail calls. */
export interface MountOps {
  mount: typeof native.mount;
  umount2: typeof native.umount2;
  statfs: typeof native.statfs;
  readMountInfo: typeof native.readMountInfo;
  isMountRoot: typeof native.isMountRoot;
}

const realOps: MountOps = {
  mount: native.mount,
  umount2: native.umount2,
  statfs: native.statfs,
  readMountInfo: native.readMountInfo,
  isMountRoot: native.isMountRoot,
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
export class LocalBackend implements Backend {
  readonly kind = LOCAL_KIND;
  // a tmpfs ends with the kernel, and with it every container bound to it
  readonly durable = false;
  readonly sharesDir: string;
  private resolvedDir: string | undefined;
  // One operation at a time per share; different shares proceed in parallel.
  private readonly lock = new KeyedLock();

  constructor(
    options: LocalBackendOptions = {},
    private readonly ops: MountOps = realOps,
  ) {
    this.sharesDir = options.sharesDir ?? DEFAULT_SHARES_DIR;
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
    return this.lock.run(shareKey(decl.namespace, decl.name), () => this.doAcquire(decl, path));
  }

  async release(handle: Pick<ShareHandle, 'namespace' | 'name'>): Promise<void> {
    const path = this.pathOf(handle.namespace, handle.name);
    return this.lock.run(shareKey(handle.namespace, handle.name), () => this.doRelease(handle.namespace, path));
  }

  async present(): Promise<LocalShareHandle[]> {
    const base = this.baseDir();
    const out = new Map<string, LocalShareHandle>();
    for (const m of this.ops.readMountInfo()) {
      if (m.fsType !== 'tmpfs' || !m.mountPoint.startsWith(`${base}/`)) continue;
      const rest = m.mountPoint.slice(base.length + 1).split('/');
      if (rest.length !== 2 || !isDnsLabel(rest[0]) || !isDnsLabel(rest[1])) continue;
      let sizeBytes = 0;
      try {
        sizeBytes = this.ops.statfs(m.mountPoint).totalBytes;
      } catch {
        // gone since mountinfo was read; still listed so reconcile can tidy it
      }
      out.set(m.mountPoint, handleOf(rest[0], rest[1], m.mountPoint, sizeBytes, sizeBytes));
    }
    return [...out.values()];
  }

  async usage(handle: Pick<ShareHandle, 'namespace' | 'name'>): Promise<{ sizeBytes: number; usedBytes: number } | undefined> {
    const path = this.pathOf(handle.namespace, handle.name);
    const st = await this.mountedTmpfs(path);
    if (!st) return undefined;
    return { sizeBytes: st.totalBytes, usedBytes: st.usedBytes };
  }

  attach(_target: AttachTarget, shares: readonly BoundShare[]): ContainerInjection {
    const inj = emptyInjection();
    for (const { handle, readOnly } of shares) {
      checkComponent('share name', handle.name);
      inj.mounts.push({
        destination: `${CONTAINER_SHM_DIR}/${handle.name}`,
        type: 'bind',
        source: hostPathOf(handle) || this.pathOf(handle.namespace, handle.name),
        // rprivate: the container's copy must not receive later host mount events under the
        // share nor send its own back; it matches what kubelet asks for (propagation None).
        options: ['rbind', 'rprivate', readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'],
      });
    }
    return inj;
  }

  private baseDir(): string {
    if (this.resolvedDir) return this.resolvedDir;
    // mountinfo shows real paths, so compare against the real one (/var/run -> /run).
    mkdirSync(this.sharesDir, { recursive: true, mode: 0o755 });
    this.resolvedDir = realpathSync(this.sharesDir);
    return this.resolvedDir;
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
    let st = await this.mountedTmpfs(path);
    if (!st) {
      const data = `size=${decl.sizeBytes},mode=1777`;
      try {
        this.ops.mount('tmpfs', path, 'tmpfs', native.MS_NOSUID | native.MS_NODEV, data);
      } catch (err) {
        throw wrapError(`local backend: cannot mount tmpfs for share ${key} at ${path}`, err);
      }
      st = this.ops.statfs(path);
    } else {
      const want = roundUp(decl.sizeBytes, st.blockSize);
      // A shrink below what is in use cannot work; do not even ask.
      if (st.totalBytes !== want && (want > st.totalBytes || st.usedBytes <= want)) {
        const flags = native.MS_REMOUNT | native.MS_NOSUID | native.MS_NODEV;
        try {
          this.ops.mount('tmpfs', path, 'tmpfs', flags, `size=${decl.sizeBytes}`);
          st = this.ops.statfs(path);
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
    return handleOf(decl.namespace, decl.name, path, st.totalBytes, decl.sizeBytes);
  }

  private async doRelease(namespace: string, path: string): Promise<void> {
    for (let i = 0; i < MAX_STACKED_MOUNTS && (await this.isMountPoint(path)); i++) {
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

  /** statfs of `path` if a tmpfs is mounted right there, else undefined. */
  private async mountedTmpfs(path: string): Promise<native.FsStats | undefined> {
    if (!(await this.isMountPoint(path))) return undefined;
    const st = this.ops.statfs(path);
    if (st.type !== native.TMPFS_MAGIC) {
      throw new Error(`local backend: ${path} is a mount point but not a tmpfs (filesystem type 0x${st.type.toString(16)}); refusing to use it`);
    }
    return st;
  }

  // statx's mount-root attribute is exact (also for same-filesystem bind mounts); kernels that
  // lack it get a mountinfo scan.
  private async isMountPoint(path: string): Promise<boolean> {
    let root: boolean | undefined;
    try {
      root = this.ops.isMountRoot(path);
    } catch (err) {
      if ((err as native.SyscallError).code === 'ENOENT') return false;
      throw err;
    }
    if (root !== undefined) return root;
    return this.ops.readMountInfo().some((m) => m.mountPoint === path);
  }
}

function handleOf(namespace: string, name: string, hostPath: string, sizeBytes: number, requestedBytes: number): LocalShareHandle {
  return { backend: LOCAL_KIND, namespace, name, sizeBytes, requestedBytes, data: { hostPath } };
}

function checkComponent(what: string, value: string): void {
  // Callers validated these as DNS-1123 labels already; this is the last line before a path.
  if (!isDnsLabel(value) || value.includes('/') || value.includes('..')) {
    throw new Error(`local backend: ${what} ${quote(value)} is not a DNS-1123 label; refusing to build a host path from it`);
  }
}

async function ensureDir(path: string): Promise<void> {
  try {
    await fsp.mkdir(path, { mode: 0o755 });
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
