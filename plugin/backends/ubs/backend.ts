// The UBS backend: shares in the UB memory pool, owned by the agent through the ubs-mem SDK.
// A node's first binding of a share allocates it (or finds it, made by another node), maps it in
// the UB holder (a process of its own that outlives the agent: ./holder; the mapping attaches the
// share here, so its device nodes exist and its memids stay put while the node uses it) and looks
// up its memids. A bound container gets exactly the vendor's recipe for its shares: their device
// nodes, the SDK read-only, the daemon's socket directory, the environment, and on containerd
// >= 2.1 the daemon's group through CDI. The last release on the node unmaps in the holder, then
// deallocates: the pool frees it once no node uses it. An agent restart finds the holder's
// mappings again: nothing changes for running containers. Every SDK call runs in the holder (or
// off the event loop through koffi async, without a holder); the service bounds how long a
// request waits for them (acquireBudgetMs).
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadUbsSdk, ubsmCodeMeaning, ubsmCodeName, UbsmCode, type UbsSdk } from '../../../native/ubs-sdk';
import { emptyInjection, messageOf, shareKey, wrapError, type ContainerInjection, type DeviceSpec, type HookSpec, type ShareDeclaration, type ShareHandle } from '../../model';
import { BackendDefaults, RetryableError, type BackendEnv, type BackendInspection, type BoundShare, type LostListener, type RuntimeInfo } from '../types';
import { ACCESS_CHECK_COMMAND, ACCESS_CHECK_TIMEOUT_S, formatShareArg } from './access';
import { CDI_DEVICE_NAME, runtimeResolvesCdi, writeCdiSpec } from './cdi';
import { SDK_SOCKET_DIR, UBS_KIND, resolveGroups, type UbsBackendConfig } from './config';
import { readShmdevMajor, shmdevPath } from './devices';
import { devNumber, openersOf } from './openers';
import { RemotePool, probeHolder } from './holder/client';
import { SdkPool, type UbsPool } from './holder/pool';
import { HOLDER_SOCKET, type HolderHello } from './holder/protocol';
import { readNameSecret, sdkNameOf } from './naming';
import { NO_NAME_SECRET_WARNING } from './check';

const MiB = 1024 * 1024;
/** The SDK's size rule: a multiple of 4 MiB (the pool then rounds up to its block size). */
const SIZE_UNIT = 4 * MiB;
const PROT_READ = 1;
/** Environment variable that tells the application the SDK name of each of its shares. */
export const SHARES_ENV = 'MEMSHARE_UBS_SHARES';
/** Codes that may pass by waiting: busy, network, unknown/timeout. */
const PASSING = new Set<number>([UbsmCode.BUSY, UbsmCode.NET, UbsmCode.BUFF]);

/** Pooled memory outlives this node's kernel: its records must reach the disk. */
export const UBS_DURABLE = true;

/** What a UB share's handle keeps: its SDK name and the device numbers it has on this node. */
export type UbsHandleData = { readonly sdkName: string; readonly memIds: readonly number[]; readonly major: number; readonly unitBytes: number };

export type UbsShareHandle = ShareHandle<UbsHandleData>;

/** A recorded handle's data as far as it is the UB backend's (a placeholder has none of it). */
export function ubsData(h: Pick<ShareHandle, 'data'>): Partial<UbsHandleData> {
  const { sdkName, memIds, major, unitBytes } = h.data;
  return {
    ...(typeof sdkName === 'string' && sdkName ? { sdkName } : {}),
    ...(Array.isArray(memIds) && memIds.every((m) => typeof m === 'number') ? { memIds: memIds as readonly number[] } : {}),
    ...(typeof major === 'number' ? { major } : {}),
    ...(typeof unitBytes === 'number' ? { unitBytes } : {}),
  };
}

/** What `status` shows of UB: the holder (shares are known from the records: the SDK's calls can block). */
export async function inspectUbs(c: UbsBackendConfig, env: Pick<BackendEnv, 'stateDir'>, holdsShares: boolean): Promise<BackendInspection> {
  if (!c.holder) return { helper: null, warnings: [] };
  const h = await probeHolder(join(env.stateDir, HOLDER_SOCKET));
  if (typeof h === 'string') {
    const warnings = holdsShares ? [`UB holder: ${h}; the node's UB shares are not attached by this node until the agent starts one`] : [];
    return { helper: { running: false, reason: h }, warnings };
  }
  return { helper: { running: true, pid: h.pid, version: h.version, since: new Date(h.startedAt).toISOString(), protocol: h.protocol, sdk: h.sdk, maps: h.held.map((x) => x.name) }, warnings: [] };
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

/** A share's SDK name is held in the pool by something that is not an agent. */
export class UbsNameTakenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UbsNameTakenError';
  }
}

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

export class UbsBackend extends BackendDefaults {
  readonly kind = UBS_KIND;
  readonly durable = UBS_DURABLE;
  readonly acquireBudgetMs: number;
  readonly staleGraceMs: number;
  private readonly pool: UbsPool;
  private readonly remote: RemotePool | undefined;
  /** the shares mapped for this node (in the holder), by "ns/name" */
  private readonly mappings = new Map<string, { handle: UbsShareHandle }>();
  private lost: LostListener | undefined;
  private cdi = false;
  private gids: number[] = [];
  /** said once: the intruder check cannot see other users' descriptors */
  private warnedBlind = false;
  /** the cluster's name secret (backend.nameSecretFile), keyed into every SDK name */
  private readonly secret: Buffer | undefined;

  /**
   * pool: where the SDK calls go; default the holder process (config `holder`), or the SDK in
   * this process with `holder: false` (its mappings then end with the agent).
   */
  constructor(
    private readonly c: UbsBackendConfig,
    private readonly env: BackendEnv,
    pool?: UbsPool | UbsSdk,
    /** the proc filesystem, where the agent looks for processes holding a share's host nodes */
    private readonly procDir = '/proc',
  ) {
    super();
    try {
      this.secret = c.nameSecretFile === undefined ? undefined : readNameSecret(c.nameSecretFile);
    } catch (err) {
      throw wrapError('backend.nameSecretFile', err);
    }
    if (!this.secret) env.warn?.(`ubs: ${NO_NAME_SECRET_WARNING}`);
    this.acquireBudgetMs = c.budgetMs;
    this.staleGraceMs = c.staleGraceSeconds * 1000;
    const log = { info: env.info, warn: env.warn };
    if (pool && 'libraryPath' in pool) this.pool = new SdkPool(pool, log);
    else if (pool) this.pool = pool;
    else if (c.holder) {
      // a missing or unloadable library fails the start here, naming the path (the holder loads it again)
      loadUbsSdk(c.sdkLibrary);
      this.remote = new RemotePool({
        socketPath: join(env.stateDir, HOLDER_SOCKET),
        sdkLibrary: c.sdkLibrary,
        logFile: join(env.stateDir, 'ubs-holder.log'),
        onInstanceChange: (prev, cur) => this.holderChanged(prev, cur),
        ...log,
      });
      this.pool = this.remote;
    } else this.pool = new SdkPool(loadUbsSdk(c.sdkLibrary), log);
    const { gids, missing } = resolveGroups(c.groups);
    this.gids = gids;
    if (missing.length) env.warn?.(`ubs: groups ${missing.join(', ')} do not exist on this host; containers get no daemon group for them`, { groups: missing });
  }

  /** Connects to the holder (starting it if none runs) in the background. */
  start(): void {
    this.remote?.start();
  }

  /** Who re-makes shares whose holder died (their memids change): the service restores them and evicts stale holders. */
  onLost(listener: LostListener): void {
    this.lost = listener;
  }

  /** The holder as it said last (status), or undefined without one. */
  holder(): HolderHello | undefined {
    return this.remote?.holder();
  }

  /** Asks the holder about itself now (undefined without one). */
  async holderNow(): Promise<HolderHello | undefined> {
    return this.remote?.hello();
  }

  unavailable(): string | undefined {
    const why = this.pool.unavailable();
    return why ? `UB shares cannot be bound yet: ${why}; the kubelet will retry` : undefined;
  }

  pendingMessage(decl: ShareDeclaration): string {
    return `UB share ${shareKey(decl.namespace, decl.name)} is still being attached on this node (the UB memory daemon is slow to answer); the kubelet will retry`;
  }

  sdkName(namespace: string, name: string): string {
    return sdkNameOf(this.c.namePrefix, namespace, name, this.secret);
  }

  private holderChanged(prev: HolderHello | undefined, cur: HolderHello): void {
    if (!prev) {
      this.env.info?.('ubs: holder found', { pid: cur.pid, instance: cur.instance, since: new Date(cur.startedAt).toISOString(), holds: cur.held.length, protocol: cur.protocol });
      return;
    }
    const still = new Set(cur.held.map((h) => h.name));
    const lost: Array<{ namespace: string; name: string }> = [];
    for (const [key, m] of this.mappings) {
      if (still.has(this.nameOf(m.handle))) continue;
      this.mappings.delete(key);
      lost.push({ namespace: m.handle.namespace, name: m.handle.name });
    }
    this.env.warn?.('ubs: the holder was replaced (it exited or was killed): the shares it mapped were detached from this node', { previousPid: prev.pid, pid: cur.pid, lost: lost.map((l) => shareKey(l.namespace, l.name)) });
    if (lost.length) this.lost?.(lost);
  }

  async acquire(decl: ShareDeclaration): Promise<UbsShareHandle> {
    this.requireReady();
    const key = shareKey(decl.namespace, decl.name);
    const name = this.sdkName(decl.namespace, decl.name);
    const mine = this.mappings.get(key);
    // a mapped share cannot change size: report the size in force, for the declared one
    if (mine) return { ...mine.handle, requestedBytes: decl.sizeBytes };
    const size = Math.ceil(decl.sizeBytes / SIZE_UNIT) * SIZE_UNIT;
    const alloc = await this.pool.allocate(this.c.region, name, size, this.c.shareMode, this.c.flags);
    // already there: made by another node (or by this node's last agent): use it
    if (alloc !== 0 && alloc !== UbsmCode.ALREADY_EXIST) throw this.error('allocate', alloc, key, name);
    try {
      // a name that was there already is adopted only if it is what an agent would have made
      return await this.mapAndLook(decl.namespace, decl.name, name, decl.sizeBytes, { adopting: alloc === UbsmCode.ALREADY_EXIST ? size : undefined, firstAttach: true });
    } catch (err) {
      // made by this call and not usable: give it back rather than leak it in the pool
      if (alloc === 0) await this.pool.deallocate(name).catch(() => undefined);
      throw err;
    }
  }

  async restore(handle: ShareHandle): Promise<UbsShareHandle> {
    await this.pool.whenReady();
    const key = shareKey(handle.namespace, handle.name);
    const mine = this.mappings.get(key);
    if (mine) return mine.handle;
    const name = this.nameOf(handle);
    // still mapped by the holder (the agent restarted, the holder did not): the same memids
    const held = (await this.pool.held()).includes(name);
    return this.mapAndLook(handle.namespace, handle.name, name, handle.requestedBytes, { alreadyMapped: held });
  }

  async release(handle: ShareHandle): Promise<void> {
    const key = shareKey(handle.namespace, handle.name);
    const name = this.nameOf(handle);
    const why = this.pool.unavailable();
    if (why) throw new RetryableError(`UB share ${key} (SDK name ${name}): cannot release it yet: ${why}`);
    let code: number;
    try {
      code = await this.pool.unmap(name);
    } catch (err) {
      throw new RetryableError(`UB share ${key} (SDK name ${name}): cannot release it yet: ${messageOf(err)}`, { cause: err });
    }
    if (code !== 0 && code !== UbsmCode.NOT_FOUND) throw this.error('unmap', code, key, name);
    this.mappings.delete(key);
    code = await this.pool.deallocate(name);
    if (code === 0 || code === UbsmCode.NOT_FOUND) return;
    if (code === UbsmCode.IN_USING) {
      // mapped on another node: not an error; the last node to let go deletes it
      this.env.info?.(`ubs: share ${key} (SDK name ${name}) is still in use on another node; that node deallocates it`, { share: key });
      return;
    }
    throw this.error('deallocate', code, key, name);
  }

  attach(shares: readonly BoundShare[]): ContainerInjection {
    const inj = emptyInjection();
    const ro = ['rbind', 'rprivate', 'ro', 'nosuid', 'nodev'];
    inj.mounts.push({ destination: this.c.sdkDir.container, type: 'bind', source: this.c.sdkDir.host, options: ro });
    for (const lib of this.c.libraries) inj.mounts.push({ destination: lib.container, type: 'bind', source: lib.host, options: ro });
    // read-only is enough to connect to a socket; the container cannot add or replace files there
    inj.mounts.push({ destination: SDK_SOCKET_DIR, type: 'bind', source: this.c.socketDir, options: [...ro, 'noexec'] });
    inj.mounts.push(...this.c.mounts.map((m) => ({ ...m, options: [...m.options] })));
    const names: string[] = [];
    const checks: string[] = [];
    for (const s of shares) {
      const d = ubsData(s.handle);
      const sdkName = d.sdkName ?? this.nameOf(s.handle);
      names.push(`${s.ref}=${sdkName}`);
      for (const memid of d.memIds ?? []) inj.devices.push(this.device(d.major ?? 0, memid, s.readOnly));
      // the holder (root) allocated it with shareMode: owner 0:0 (a share another node made has
      // that node's holder as owner, root too, and the pool's one shareMode)
      checks.push('--share', formatShareArg({ share: shareKey(s.handle.namespace, s.handle.name), sdkName, mode: this.c.shareMode, ownerUid: 0, ownerGid: 0, access: s.readOnly ? 'ro' : 'rw' }));
    }
    const lib = `${this.c.sdkDir.container}/lib/`;
    inj.env.push({ key: 'LD_LIBRARY_PATH', value: `/usr/lib64/:${lib}` });
    for (const [key, value] of Object.entries(this.c.env)) inj.env.push({ key, value });
    inj.env.push({ key: SHARES_ENV, value: names.join(',') });
    if (this.cdi && this.gids.length) inj.cdiDevices.push(CDI_DEVICE_NAME);
    inj.createRuntimeHooks = [this.accessHook(checks)];
    return inj;
  }

  /**
   * NRI (< 0.11) does not say the container's uid/gid, and the SDK's access depends on them
   * (./access.ts): runc runs this at `create`, with the bundle whose config.json has the user, and
   * fails the container with the hook's line when a binding cannot be honoured.
   */
  private accessHook(checks: string[]): HookSpec {
    const [path, ...fixed] = this.c.accessCheck;
    // runc gives a hook only the environment named here: keep the packaged wrapper's override
    const node = process.env.NRI_MEMSHARE_NODE;
    return { path, args: [path, ...fixed, ACCESS_CHECK_COMMAND, ...checks], env: node ? [`NRI_MEMSHARE_NODE=${node}`] : [], timeout: ACCESS_CHECK_TIMEOUT_S };
  }

  async present(): Promise<UbsShareHandle[]> {
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

  /**
   * At agent stop: closes the connection to the holder, whose mappings stay (the shares stay
   * attached for the running containers). Without a holder: drops the daemon link, which the
   * daemon treats as this process's exit (its mappings end).
   */
  async close(): Promise<void> {
    this.mappings.clear();
    await this.pool.close();
  }

  /** Asks the holder to end its mappings and exit (tests, uninstall); records stay. */
  async stopHolder(): Promise<void> {
    await this.remote?.shutdown();
  }

  /**
   * Maps the share in the holder (unless `alreadyMapped`) and looks up its memids. `adopting`: the
   * size this agent allocates for it, when it found the name already in the pool: then the share
   * must be one an agent made (see checkMaker), else it is refused as taken by someone else.
   * `firstAttach`: no container of this node has it (an acquire, not a restore), so anyone else
   * holding its host nodes got in through the pool's window (refuseIntruders).
   */
  private async mapAndLook(namespace: string, shareName: string, name: string, requestedBytes: number, how: { alreadyMapped?: boolean; adopting?: number; firstAttach?: boolean } = {}): Promise<UbsShareHandle> {
    const { alreadyMapped = false, adopting, firstAttach = false } = how;
    const key = shareKey(namespace, shareName);
    if (!alreadyMapped) {
      // the map length must be the real size, which the pool rounds to its block size
      const listed = await this.pool.listLookup(name);
      if (listed.code !== 0) throw this.error('list_lookup', listed.code, key, name);
      const real = listed.shares.find((s) => s.name === name)?.sizeBytes;
      if (!real) throw this.error('list_lookup', UbsmCode.NOT_FOUND, key, name);
      // smaller than what an agent allocates: never one of ours (mapping it would only attach it here)
      if (adopting !== undefined && real < adopting) throw this.taken(key, name, `its size is ${real} bytes, an agent makes ${adopting} bytes or more`);
      // read-only is all the holder needs: its mapping only keeps the share attached here
      const code = await this.pool.map(name, real, PROT_READ);
      // an agent's share has the pool's one shareMode, which grants root (its creator) read
      if (code === UbsmCode.NOPERM && adopting !== undefined) throw this.taken(key, name, 'the agent may not map it (its creator or mode is not an agent\'s)');
      if (code !== 0) throw this.error('map', code, key, name);
    }
    try {
      const looked = await this.pool.lookup(name);
      if (looked.code !== 0 || !looked.info) throw this.error('lookup', looked.code, key, name);
      const memIds = looked.info.memIds;
      const bad = lookupProblem(looked.info.sizeBytes, looked.info.unitBytes, memIds);
      if (bad) throw new Error(`UB share ${key} (SDK name ${name}): lookup returned ${bad}; refusing to make device nodes from it`);
      const major = readShmdevMajor(this.c.procDevices);
      if (adopting !== undefined) this.checkMaker(key, name, adopting, looked.info.sizeBytes, looked.info.unitBytes, memIds);
      this.tightenHostNodes(key, memIds);
      if (firstAttach) this.refuseIntruders(key, name, major, memIds);
      const handle: UbsShareHandle = { backend: UBS_KIND, namespace, name: shareName, sizeBytes: looked.info.sizeBytes, requestedBytes, data: { sdkName: name, memIds, major, unitBytes: looked.info.unitBytes } };
      this.mappings.set(key, { handle });
      return handle;
    } catch (err) {
      if (!alreadyMapped) await this.pool.unmap(name).catch(() => undefined);
      throw err instanceof UbsSdkError || err instanceof UbsNameTakenError ? err : wrapError(`UB share ${key} (SDK name ${name})`, err);
    }
  }

  /**
   * Whether a share found already in the pool is one an agent made: its real size is what the
   * pool makes of the size an agent asks for, and its host device nodes (which UBSE gives the
   * share creator's uid/gid and the share's mode on import, docs ubs-sdk.md B.2) are root's, with
   * the shareMode every agent uses (or hostDeviceMode, set by an agent of this node). The SDK says
   * nothing else of a share's creator. Throws "taken by someone else" otherwise.
   */
  private checkMaker(key: string, name: string, asked: number, real: number, unitBytes: number, memIds: readonly number[]): void {
    const want = unitBytes > 0 ? Math.ceil(asked / unitBytes) * unitBytes : asked;
    if (real !== want) throw this.taken(key, name, `its size is ${real} bytes, an agent's would be ${want} bytes`);
    for (const id of memIds) {
      const path = shmdevPath(this.c.hostDevDir, id);
      let st;
      try {
        st = statSync(path);
      } catch (err) {
        throw this.taken(key, name, `its device node ${path} cannot be checked (${messageOf(err)})`);
      }
      const mode = st.mode & 0o777;
      if (st.uid !== 0 || st.gid !== 0) throw this.taken(key, name, `it was made by uid ${st.uid} gid ${st.gid} (its device node ${path}), not by an agent (root)`);
      if (mode !== (this.c.shareMode & 0o666) && mode !== this.c.shareMode && mode !== this.c.hostDeviceMode) {
        throw this.taken(key, name, `it has mode 0${mode.toString(8)} (its device node ${path}), an agent's has 0${this.c.shareMode.toString(8)}`);
      }
    }
  }

  /** The refusal of a name someone else holds in the pool (not retried: waiting does not help). */
  private taken(key: string, name: string, why: string): Error {
    return new UbsNameTakenError(`UB share ${key}: its SDK name ${name} is taken by someone else in the UB memory pool (${why}); refusing to adopt it. Set backend.nameSecretFile so that names cannot be guessed, and have the pool's operator remove the other share`);
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

  /**
   * After the chmod that closes the host's nodes (./openers.ts): refuses the share when a process
   * other than the agent and its holder holds one of them open or mapped, before any container is
   * given it: such a process got in while the pool had the nodes at the share's mode.
   */
  private refuseIntruders(key: string, name: string, major: number, memIds: readonly number[]): void {
    const except = new Set([process.pid, ...(this.remote?.holder()?.pid !== undefined ? [this.remote.holder()!.pid] : [])]);
    const { pids, unreadable } = openersOf(new Set(memIds.map((m) => devNumber(major, m))), memIds.map((m) => shmdevPath('', m).slice(1)), except, this.procDir);
    if (unreadable && !this.warnedBlind) {
      this.warnedBlind = true;
      this.env.warn?.(`ubs: cannot see the descriptors of ${unreadable} process(es) of other users (no CAP_SYS_PTRACE): a host device node opened by one of them before the agent's chmod would go unnoticed`, { unreadable });
    }
    if (pids.length) {
      throw new Error(`UB share ${key} (SDK name ${name}): its host device nodes were opened by pid ${pids.join(', ')} while the pool had them at the share's mode (before the agent's chmod to hostDeviceMode); refusing to hand the share to containers`);
    }
  }

  private device(major: number, memid: number, readOnly: boolean): DeviceSpec {
    // the container's own node: any of its users may open it (only bound containers have one);
    // read-only bindings get a node that opens read-only (the access hook refuses a :ro binding
    // whose user the share's mode grants write: the SDK would open this node read-write)
    return { path: shmdevPath('/dev', memid), type: 'c', major, minor: memid, fileMode: readOnly ? 0o444 : 0o666, uid: 0, gid: 0 };
  }

  private nameOf(handle: ShareHandle): string {
    return ubsData(handle).sdkName ?? this.sdkName(handle.namespace, handle.name);
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
