// The UBS backend: shares in the UB memory pool, owned by the agent through the ubs-mem SDK.
// A node's first binding of a share allocates it (or finds it, made by another node), maps it in
// the agent (the mapping attaches it here, so its device nodes exist and its memids stay put
// while the node uses it) and looks up its memids. A bound container gets exactly the vendor's
// recipe for its shares: their device nodes, the SDK read-only, the daemon's socket directory,
// the environment, and on containerd >= 2.1 the daemon's group through CDI. The last release on
// the node unmaps in the agent, then deallocates: the pool frees it once no node uses it.
// Every SDK call runs off the event loop (koffi async); the service bounds how long a request
// waits for them (acquireBudgetMs).
import { chmodSync } from 'node:fs';
import { loadUbsSdk, ubsmCodeMeaning, ubsmCodeName, UbsmCode, type SdkMapping, type UbsSdk } from '../../../native/ubs-sdk';
import { emptyInjection, messageOf, shareKey, wrapError, type ContainerInjection, type DeviceSpec, type ShareDeclaration, type ShareHandle } from '../../model';
import { RetryableError, type AttachTarget, type Backend, type BoundShare, type RuntimeInfo } from '../types';
import type { BackendEnv } from '../index';
import { CDI_DEVICE_NAME, runtimeResolvesCdi, writeCdiSpec } from './cdi';
import { SDK_SOCKET_DIR, UBS_KIND, resolveGroups, type UbsBackendConfig } from './config';
import { readShmdevMajor, shmdevPath } from './devices';
import { sdkNameOf } from './naming';

const MiB = 1024 * 1024;
/** The SDK's size rule: a multiple of 4 MiB (the pool then rounds up to its block size). */
const SIZE_UNIT = 4 * MiB;
const PROT_READ = 1;
const PROT_WRITE = 2;
/** Environment variable that tells the application the SDK name of each of its shares. */
export const SHARES_ENV = 'MEMSHARE_UBS_SHARES';
/** Codes that may pass by waiting: busy, network, unknown/timeout. */
const PASSING = new Set<number>([UbsmCode.BUSY, UbsmCode.NET, UbsmCode.BUFF]);

/** A UB share's handle: its SDK name and the device numbers it has on this node. */
export interface UbsHandleData {
  sdkName: string;
  memIds: number[];
  major: number;
  unitBytes: number;
}

/** An SDK call that returned an error code, in words that name the share and the operation. */
export class UbsSdkError extends Error {
  constructor(
    readonly op: string,
    readonly code: number,
    share: string,
    sdkName: string,
  ) {
    super(`UB share ${share} (SDK name ${sdkName}): ${op} failed with ${code} ${ubsmCodeName(code)}: ${ubsmCodeMeaning(code)}`);
    this.name = 'UbsSdkError';
  }
}

type SdkState = { kind: 'starting'; reason: string } | { kind: 'ready' } | { kind: 'failed'; reason: string };

/** The largest minor number Linux has (MINORMASK): a memid is a device minor. */
const MAX_MINOR = (1 << 20) - 1;

/** Why a lookup's answer cannot describe a share's device nodes, or undefined when it can. */
export function lookupProblem(sizeBytes: number, unitBytes: number, memIds: readonly number[]): string | undefined {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) return `size ${sizeBytes}`;
  if (memIds.length === 0) return 'no memids';
  const bad = memIds.find((m) => !Number.isInteger(m) || m < 1 || m > MAX_MINOR);
  if (bad !== undefined) return `memid ${bad}, which is not a device minor (1 to ${MAX_MINOR})`;
  if (new Set(memIds).size !== memIds.length) return 'the same memid twice';
  if (unitBytes > 0 && memIds.length !== Math.ceil(sizeBytes / unitBytes)) return `${memIds.length} memids for ${sizeBytes} bytes in units of ${unitBytes}`;
  return undefined;
}

export class UbsBackend implements Backend {
  readonly kind = UBS_KIND;
  // pooled memory outlives this node's kernel: its records must reach the disk
  readonly durable = true;
  readonly acquireBudgetMs: number;
  private readonly sdk: UbsSdk;
  private state: SdkState = { kind: 'starting', reason: 'ubsmem_initialize has not answered yet' };
  private ready: Promise<void> | undefined;
  /** the agent's own mappings, by "ns/name" */
  private readonly mappings = new Map<string, { mapping: SdkMapping; handle: ShareHandle }>();
  private cdi = false;
  private gids: number[] = [];
  private stopped = false;

  constructor(
    private readonly c: UbsBackendConfig,
    private readonly env: BackendEnv,
    sdk?: UbsSdk,
  ) {
    this.acquireBudgetMs = c.budgetMs;
    // a missing or unloadable library fails the start here, naming the path
    this.sdk = sdk ?? loadUbsSdk(c.sdkLibrary);
    const { gids, missing } = resolveGroups(c.groups);
    this.gids = gids;
    if (missing.length) env.warn?.(`ubs: groups ${missing.join(', ')} do not exist on this host; containers get no daemon group for them`, { groups: missing });
  }

  /** ubsmem_initialize in the background: it can take half a minute while the daemon is down. */
  start(): void {
    if (this.ready) return;
    this.ready = (async () => {
      for (let attempt = 1, delay = 1000; !this.stopped; attempt++, delay = Math.min(delay * 2, 30_000)) {
        const code = await this.sdk.initialize();
        if (code === 0) {
          this.state = { kind: 'ready' };
          this.env.info?.('ubs: connected to the UB memory daemon', { library: this.sdk.libraryPath, attempts: attempt });
          return;
        }
        const reason = `ubsmem_initialize returned ${code} ${ubsmCodeName(code)}: ${ubsmCodeMeaning(code)}`;
        this.state = { kind: 'failed', reason };
        this.env.warn?.(`ubs: cannot connect to the UB memory daemon; retrying in ${delay / 1000} s`, { reason, attempt });
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    })();
  }

  unavailable(): string | undefined {
    if (this.state.kind === 'ready') return undefined;
    return `UB shares cannot be bound yet: the UB memory SDK is not connected to its daemon (${this.state.reason}); the kubelet will retry`;
  }

  pendingMessage(decl: ShareDeclaration): string {
    return `UB share ${shareKey(decl.namespace, decl.name)} is still being attached on this node (the UB memory daemon is slow to answer); the kubelet will retry`;
  }

  sdkName(namespace: string, name: string): string {
    return sdkNameOf(this.c.namePrefix, namespace, name);
  }

  async acquire(decl: ShareDeclaration): Promise<ShareHandle> {
    this.requireReady();
    const key = shareKey(decl.namespace, decl.name);
    const name = this.sdkName(decl.namespace, decl.name);
    const mine = this.mappings.get(key);
    // a mapped share cannot change size: report the size in force, for the declared one
    if (mine) return { ...mine.handle, requestedBytes: decl.sizeBytes };
    const size = Math.ceil(decl.sizeBytes / SIZE_UNIT) * SIZE_UNIT;
    const alloc = await this.sdk.allocate(this.c.region, name, size, this.c.shareMode, this.c.flags);
    // already there: made by another node (or by this node's last agent): use it
    if (alloc !== 0 && alloc !== UbsmCode.ALREADY_EXIST) throw this.error('allocate', alloc, key, name);
    try {
      return await this.mapAndLook(decl.namespace, decl.name, name, decl.sizeBytes);
    } catch (err) {
      // made by this call and not usable: give it back rather than leak it in the pool
      if (alloc === 0) await this.sdk.deallocate(name).catch(() => undefined);
      throw err;
    }
  }

  async restore(handle: ShareHandle): Promise<ShareHandle> {
    await this.ready;
    this.requireReady();
    const key = shareKey(handle.namespace, handle.name);
    const mine = this.mappings.get(key);
    if (mine) return mine.handle;
    return this.mapAndLook(handle.namespace, handle.name, this.nameOf(handle), handle.requestedBytes);
  }

  async release(handle: ShareHandle): Promise<void> {
    const key = shareKey(handle.namespace, handle.name);
    const name = this.nameOf(handle);
    if (this.state.kind !== 'ready') throw new RetryableError(`UB share ${key} (SDK name ${name}): cannot release it yet: ${this.unavailable()}`);
    const mine = this.mappings.get(key);
    if (mine) {
      const code = await this.sdk.unmap(mine.mapping);
      if (code !== 0 && code !== UbsmCode.NOT_FOUND) throw this.error('unmap', code, key, name);
      this.mappings.delete(key);
    }
    const code = await this.sdk.deallocate(name);
    if (code === 0 || code === UbsmCode.NOT_FOUND) return;
    if (code === UbsmCode.IN_USING) {
      // mapped on another node: not an error; the last node to let go deletes it
      this.env.info?.(`ubs: share ${key} (SDK name ${name}) is still in use on another node; that node deallocates it`, { share: key });
      return;
    }
    throw this.error('deallocate', code, key, name);
  }

  attach(_target: AttachTarget, shares: readonly BoundShare[]): ContainerInjection {
    const inj = emptyInjection();
    const ro = ['rbind', 'rprivate', 'ro', 'nosuid', 'nodev'];
    inj.mounts.push({ destination: this.c.sdkDir.container, type: 'bind', source: this.c.sdkDir.host, options: ro });
    for (const lib of this.c.libraries) inj.mounts.push({ destination: lib.container, type: 'bind', source: lib.host, options: ro });
    // read-only is enough to connect to a socket; the container cannot add or replace files there
    inj.mounts.push({ destination: SDK_SOCKET_DIR, type: 'bind', source: this.c.socketDir, options: [...ro, 'noexec'] });
    inj.mounts.push(...this.c.mounts.map((m) => ({ ...m, options: [...m.options] })));
    const names: string[] = [];
    for (const s of shares) {
      const d = s.handle.data as unknown as Partial<UbsHandleData>;
      names.push(`${s.ref}=${d.sdkName ?? this.nameOf(s.handle)}`);
      for (const memid of d.memIds ?? []) inj.devices.push(this.device(d.major ?? 0, memid, s.readOnly));
    }
    const lib = `${this.c.sdkDir.container}/lib/`;
    inj.env.push({ key: 'LD_LIBRARY_PATH', value: `/usr/lib64/:${lib}` });
    for (const [key, value] of Object.entries(this.c.env)) inj.env.push({ key, value });
    inj.env.push({ key: SHARES_ENV, value: names.join(',') });
    if (this.cdi && this.gids.length) inj.cdiDevices.push(CDI_DEVICE_NAME);
    return inj;
  }

  async present(): Promise<ShareHandle[]> {
    return [...this.mappings.values()].map((m) => m.handle);
  }

  async usage(handle: ShareHandle): Promise<{ sizeBytes: number; usedBytes: number | null } | undefined> {
    const mine = this.mappings.get(shareKey(handle.namespace, handle.name));
    // the pool does not report bytes in use
    return mine ? { sizeBytes: mine.handle.sizeBytes, usedBytes: null } : undefined;
  }

  setRuntime(info: RuntimeInfo): void {
    const want = this.c.cdi === 'always' || (this.c.cdi === 'auto' && runtimeResolvesCdi(info.name, info.version));
    if (want && this.gids.length) {
      try {
        const path = writeCdiSpec(this.c.cdiDir, this.gids);
        this.env.info?.('ubs: CDI spec for the daemon group written', { path, gids: this.gids });
      } catch (err) {
        this.env.warn?.('ubs: cannot write the CDI spec; containers get no daemon group', { err: messageOf(err) });
        this.cdi = false;
        return;
      }
    }
    this.cdi = want;
  }

  /** Drops the daemon link: the daemon treats it as this process's exit (its mappings end). */
  async close(): Promise<void> {
    this.stopped = true;
    this.mappings.clear();
    if (this.state.kind === 'ready') await this.sdk.finalize();
    this.state = { kind: 'failed', reason: 'the agent is stopping' };
  }

  private async mapAndLook(namespace: string, shareName: string, name: string, requestedBytes: number): Promise<ShareHandle> {
    const key = shareKey(namespace, shareName);
    // the map length must be the real size, which the pool rounds to its block size
    const listed = await this.sdk.listLookup(name);
    if (listed.code !== 0) throw this.error('list_lookup', listed.code, key, name);
    const real = listed.shares.find((s) => s.name === name)?.sizeBytes;
    if (!real) throw this.error('list_lookup', UbsmCode.NOT_FOUND, key, name);
    const mapped = await this.sdk.map(name, real, PROT_READ | PROT_WRITE);
    if (mapped.code !== 0 || !mapped.mapping) throw this.error('map', mapped.code, key, name);
    try {
      const looked = await this.sdk.lookup(name);
      if (looked.code !== 0 || !looked.info) throw this.error('lookup', looked.code, key, name);
      const memIds = looked.info.memIds;
      const bad = lookupProblem(looked.info.sizeBytes, looked.info.unitBytes, memIds);
      if (bad) throw new Error(`UB share ${key} (SDK name ${name}): lookup returned ${bad}; refusing to make device nodes from it`);
      const major = readShmdevMajor(this.c.procDevices);
      this.tightenHostNodes(key, memIds);
      const data: UbsHandleData = { sdkName: name, memIds, major, unitBytes: looked.info.unitBytes };
      const handle: ShareHandle = { backend: UBS_KIND, namespace, name: shareName, sizeBytes: looked.info.sizeBytes, requestedBytes, data: { ...data } };
      this.mappings.set(key, { mapping: mapped.mapping, handle });
      return handle;
    } catch (err) {
      await this.sdk.unmap(mapped.mapping).catch(() => undefined);
      throw err instanceof UbsSdkError ? err : wrapError(`UB share ${key} (SDK name ${name})`, err);
    }
  }

  /**
   * The pool gives the host's nodes the share's mode (what containers need to map it); on the
   * host only root may open them, containers get nodes of their own.
   */
  private tightenHostNodes(key: string, memIds: readonly number[]): void {
    for (const id of memIds) {
      try {
        chmodSync(shmdevPath(this.c.hostDevDir, id), this.c.hostDeviceMode);
      } catch (err) {
        this.env.warn?.(`ubs: cannot restrict the host device node of share ${key}`, { path: shmdevPath(this.c.hostDevDir, id), err: messageOf(err) });
      }
    }
  }

  private device(major: number, memid: number, readOnly: boolean): DeviceSpec {
    // the container's own node: any of its users may open it (only bound containers have one);
    // read-only bindings get a node that opens read-only
    return { path: shmdevPath('/dev', memid), type: 'c', major, minor: memid, fileMode: readOnly ? 0o444 : 0o666, uid: 0, gid: 0 };
  }

  private nameOf(handle: ShareHandle): string {
    const n = handle.data.sdkName;
    return typeof n === 'string' && n ? n : this.sdkName(handle.namespace, handle.name);
  }

  private requireReady(): void {
    const why = this.unavailable();
    if (why) throw new Error(why);
  }

  private error(op: string, code: number, key: string, name: string): Error {
    const err = new UbsSdkError(op, code, key, name);
    return PASSING.has(code) ? new RetryableError(err.message, { cause: err }) : err;
  }
}
