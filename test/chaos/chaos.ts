// The chaos driver: a real containerd (private instance), the real agent with a few declared
// shares, pods and containers coming and going at random, the agent SIGKILLed at random moments
// (and restarted at once), a few containerd restarts; invariants checked all along and at the end:
//
//  (a) end: the records (status --json) match the runtime: every record's container exists and is
//      created/running; every created/running container whose pod asks for a share holds a record
//      for it (or was evicted);
//  (b) end: no share is mounted on the host without a user on record (and none on record is absent);
//      after every pod is removed, nothing is on record and nothing is mounted;
//  (c) all along: no share is ever unmounted (or replaced) under a running bound container: each
//      verified container gets a marker file written through the host path; the container must
//      always read it back at /dev/shm/<share>, and the host path must stay a tmpfs holding it;
//  (d) all along: every running container that asked for shares has them mounted (with the right
//      ro/rw), except containers created while the agent was down (or dying), which the agent must
//      evict once it is back: EXITED within EVICT_BOUND_MS and at least two reconciles.
//
//
// UB mode (backend "ubs"): the agent runs the ubs backend over the SDK double (native/ubs) with the
// daemon stand-in, the double slowed per call (DELAYS) so that kills land inside attach (allocate,
// map) and release (unmap, deallocate); some kills wait for an SDK call in flight. (c) and (d)
// then read the runtime spec containerd wrote instead of mounts: each running bound container's
// LinuxDevices must name exactly the memids its shares have in the double now, attached by the
// live agent; one with other (stale) or no device numbers must be evicted (every agent death
// detaches the shares: the restarted agent re-maps them under new memids). (b) reads the double:
// every share in it is held by a container on record, and after every pod is removed the double
// holds no share and no mapping.
//
// Used by test/e2e/chaos.test.ts (short form) and test/chaos/run.ts (long form).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CriError,
  type CriClient,
  mountsUnder,
  startContainerd,
  uniqueName,
  type ContainerInfo,
  type ContainerdInstance,
  type ContainerdVersion,
  type PodInfo,
  type PodSandboxConfig,
} from '../harness';
import { UBS_IMAGE, UbsNode, importUbsImage, ociSpec, sdkNameOf } from '../e2e/ubs-env';
import { AgentSlot, agentStatus, writeAgentConfig, type Share } from './agent-proc';
import { makeRng, type Rng } from '../support/prng';

export const NAMESPACE = 'chaos';
export const SHARES: Share[] = [
  { ns: NAMESPACE, name: 'alpha', size: '128Mi' },
  { ns: NAMESPACE, name: 'beta', size: '128Mi' },
  { ns: NAMESPACE, name: 'gamma', size: '128Mi' },
];
/** UB mode: a share no churn pod uses, for the last kill (between allocate and the record) */
const LONE: Share = { ns: NAMESPACE, name: 'lone', size: '128Mi' };
/** UB mode: a share bound by one pod the churn never touches: its bytes must outlive every kill */
const KEPT: Share = { ns: NAMESPACE, name: 'kept', size: '128Mi' };
const POD_KEY = 'memshare.nri.io/pod';
const CTR_KEY = 'memshare.nri.io/container.';
const CONTAINER_NAMES = ['app', 'side', 'tool'] as const;
const POD_VALUES: Array<string | undefined> = ['alpha', 'beta', 'alpha,beta:ro', 'gamma:ro', 'beta,gamma', 'alpha:ro,gamma', undefined];
const MAX_PODS = 6;
/** a container created without its shares must be EXITED (evicted) this long after it was seen so */
export const EVICT_BOUND_MS = 30_000;
/**
 * UB mode: the double's delay per SDK call (ms), to widen the windows that kills aim at; the sum
 * for a first binding (allocate + list + map + lookup) stays well inside the agent's budget
 */
const DELAYS: Record<string, number> = { allocate: 150, map: 250, unmap: 250, deallocate: 150 };
/** UB mode: the agent's SDK budget per request (ms); containerd gives NRI 2 s */
const UB_BUDGET_MS = 1500;
export type ChaosBackend = 'local' | 'ubs';

export interface ChaosOptions {
  version: ContainerdVersion;
  /** the agent's backend: tmpfs shares (default), or UB shares over the SDK double */
  backend?: ChaosBackend;
  /** SIGKILLs of the agent */
  kills: number;
  /** containerd restarts, spread over the run (some are SIGKILL + start) */
  containerdRestarts: number;
  /** default: CHAOS_SEED, else random */
  seed?: number;
  /** stop killing after this long even if fewer kills were done (the result says so) */
  durationLimitMs?: number;
  log?: (line: string) => void;
  /** where the agent's log is copied when violations were found (default /tmp) */
  artifactsDir?: string;
}

export interface ChaosCounts {
  kills: number;
  killsBeforeSync: number;
  killsDuringCreate: number;
  containerdRestarts: number;
  agentSyncs: number;
  reconciles: number;
  pods: number;
  podsRemoved: number;
  containers: number;
  containersStarted: number;
  containersStopped: number;
  containersRemoved: number;
  createFailures: number;
  /** created while the agent was down/dying and found without their shares */
  createdWithoutShares: number;
  evictions: number;
  mountChecks: number;
  markerChecks: number;
  hostChecks: number;
  /** violations of (a) and (b): records or mounts that do not match the runtime */
  leaks: number;
  /** UB mode: kills while a CreateContainer waited on an SDK call (allocate, map, ...) */
  killsDuringAttach: number;
  /** UB mode: kills while a StopContainer waited on an SDK call (unmap, deallocate) */
  killsDuringRelease: number;
  /** UB mode: running containers whose device numbers were compared with the double's */
  deviceChecks: number;
  /** UB mode: running containers seen with stale device numbers (the share re-attached since) */
  staleSeen: number;
  /** UB mode: CreateContainer refused because an SDK call outlived the budget (injected delays) */
  pendingRefusals: number;
  /** UB mode: shares in the double at the end of the churn / after every pod was removed */
  ubSharesAtEnd: number;
  ubSharesLeft: number;
  ubMapsLeft: number;
  /** UB mode: running containers with stale or missing device numbers at the end */
  staleRunningAtEnd: number;
  /** UB mode: 1 when the last kill (not in kills) landed after the SDK allocated a share and before the agent had mapped it */
  lastAttachKill: number;
  /** UB mode: 1 when the keeper's share read back its bytes after every kill */
  keptDataChecks: number;
}

export interface ChaosResult {
  version: ContainerdVersion;
  backend: ChaosBackend;
  containerdVersion: string;
  seed: number;
  durationMs: number;
  /** the kill loop stopped on durationLimitMs before doing all kills */
  timedOut: boolean;
  counts: ChaosCounts;
  violations: string[];
  /** CreateContainer failure messages (shortened) and how often */
  createFailureKinds: Record<string, number>;
  agentErrors: string[];
  /** the agent's log (kept when there were violations) */
  agentLog?: string;
}

interface Ref {
  ns: string;
  name: string;
  ro: boolean;
}

interface PodM {
  id: string;
  name: string;
  annotations: Record<string, string>;
  config?: PodSandboxConfig;
  stopRequested: boolean;
}

interface CtrM {
  id: string;
  podId: string;
  name: string;
  wants: Ref[];
  /** created entirely while the agent was synchronized: no kill, no containerd restart during the call */
  clean: boolean;
  adopted: boolean;
  stopRequested: boolean;
  verified: boolean;
  lackingSince?: number;
  lackingSyncs?: number;
  lackingReported?: boolean;
  evicted: boolean;
  /** when the driver learnt of it (a listing taken before that cannot know it) */
  addedAt: number;
  /** agent run when its creation began (UB: a later run re-attached its shares); 0 if adopted */
  createdEpoch: number;
  /** UB: the agent pid whose mappings carried the memids it was verified with */
  verifiedPid?: number;
}

/** The shares a container asks for (same rules as the product's annotation contract). */
export function wantedShares(annotations: Record<string, string>, podNs: string, ctrName: string): Ref[] {
  let v = annotations[`${CTR_KEY}${ctrName}`];
  if (v === undefined || v.trim() === '') v = annotations[POD_KEY];
  if (v === undefined || v.trim() === '' || v.trim() === '-') return [];
  return v.split(',').map((item) => {
    const [target, opt] = item.trim().split(':');
    const [ns, name] = target.includes('/') ? target.split('/') : [podNs, target];
    return { ns, name, ro: opt === 'ro' };
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface HostMount {
  mountPoint: string;
  fsType: string;
}

function hostMounts(): HostMount[] {
  const out: HostMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [left, right = ''] = line.split(' - ');
    const mp = (left.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ mountPoint: mp, fsType: right.split(' ')[0] ?? '' });
  }
  return out;
}

/** mount point -> per-mount options, from a container's /proc/self/mountinfo */
function parseMountinfo(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 6 || !/^\d+$/.test(f[0])) continue;
    m.set(f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), f[5].split(','));
  }
  return m;
}

/**
 * Whether a thread of the process sleeps in (clock_)nanosleep: in the UB holder (which makes the
 * agent's SDK calls) that is the SDK double's injected delay, i.e. an SDK call in flight, while
 * the agent waits for its answer (node's own threads wait in epoll/futex).
 */
function inSdkCall(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const nr = Number(readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ')[0]);
      if (nr === SYS_CLOCK_NANOSLEEP || nr === SYS_NANOSLEEP) return true;
    }
  } catch {
    // the process or a thread went meanwhile
  }
  return false;
}
// x86_64 syscall numbers
const SYS_NANOSLEEP = 35;
const SYS_CLOCK_NANOSLEEP = 230;

function shortError(e: unknown): string {
  const msg = e instanceof CriError ? `${e.method}: ${e.details}` : (e as Error).message ?? String(e);
  return msg
    .replace(/[0-9a-f]{64}/g, '<id>')
    .replace(/[0-9a-f]{8,}/g, '<hex>')
    .replace(/\/tmp\/nrims-[^\s"]+/g, '<path>')
    .replace(/\d+(\.\d+)?(ms|s)\b/g, '<t>')
    .slice(0, 200);
}

/** CHAOS_SEED from the environment, else a fresh random seed. */
function chooseSeed(explicit?: number): number {
  if (explicit !== undefined && Number.isFinite(explicit)) return explicit >>> 0;
  const env = process.env.CHAOS_SEED;
  if (env && env.trim() !== '') {
    const n = Number(env);
    if (!Number.isFinite(n)) throw new Error(`CHAOS_SEED must be a number, got ${JSON.stringify(env)}`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}
/** The runtime spec's UB device nodes of a container, against what the UB holder keeps attached now. */
type DevState = { kind: 'ok'; pid: number } | { kind: 'none' } | { kind: 'stale' | 'mode'; detail: string } | { kind: 'unknown' };

/** The agent run and containerd generation a call began in: a call is clean if neither changed. */
interface ChurnWindow {
  epoch: number;
  synced: boolean;
  cd: number;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  return new ChaosRun(opts).run();
}

/**
 * One chaos run. The phases, in order, read as the invariants above: start containerd and the
 * agent (and the UB node); bind the keeper (UB); churn pods and containers while the agent is
 * killed and containerd restarted, checking (c) and (d) all along; settle; check (a) and (b);
 * check the keeper's bytes (e) and the last kill (UB); remove every pod and check (a) and (b) again.
 */
class ChaosRun {
  private readonly seed: number;
  private readonly rng: Rng;
  private readonly log: (line: string) => void;
  private readonly started = Date.now();
  private readonly limit: number;
  private readonly ub: boolean;
  private readonly counts: ChaosCounts = {
    kills: 0, killsBeforeSync: 0, killsDuringCreate: 0, containerdRestarts: 0, agentSyncs: 0, reconciles: 0,
    pods: 0, podsRemoved: 0, containers: 0, containersStarted: 0, containersStopped: 0, containersRemoved: 0,
    createFailures: 0, createdWithoutShares: 0, evictions: 0, mountChecks: 0, markerChecks: 0, hostChecks: 0, leaks: 0,
    killsDuringAttach: 0, killsDuringRelease: 0, deviceChecks: 0, staleSeen: 0, pendingRefusals: 0,
    ubSharesAtEnd: 0, ubSharesLeft: 0, ubMapsLeft: 0, staleRunningAtEnd: 0, lastAttachKill: 0, keptDataChecks: 0,
  };
  private readonly violations: string[] = [];
  private readonly createFailureKinds: Record<string, number> = {};
  private readonly dir = mkdtempSync('/tmp/nrims-chaos-');
  private inst: ContainerdInstance | undefined;
  private agent: AgentSlot | undefined;
  private readonly pods = new Map<string, PodM>();
  private readonly ctrs = new Map<string, CtrM>();
  /** bumped at the start and the end of each containerd restart */
  private cdEpoch = 0;
  private cdRestarting = false;
  private createsInFlight = 0;
  private stopsInFlight = 0;
  private node: UbsNode | undefined;
  // containerd 2.1.9 deadlocks when a plugin registers while a RemovePodSandbox is in flight (its
  // forced stop takes NRI's plugin-sync read lock a second time behind the waiting sync): pod
  // removals therefore run only while the agent is synchronized and no kill is pending.
  private removalsInFlight = 0;
  /** containers whose StartContainer is in flight (a containerd restart under it ends them) */
  private readonly startsInFlight = new Set<string>();
  private killPending = false;
  private stopChurn = false;
  /** the kill loop stopped on durationLimitMs before doing all kills */
  private timedOut = false;
  private cfg: ReturnType<typeof writeAgentConfig> | undefined;
  /** UB: the pod the churn leaves alone, bound to KEPT, and the bytes written into it */
  private keeper: { podId: string; token: string; memids: number[] } | undefined;
  /** the UB holder's pid (looked up at most every 300 ms), or undefined when none runs */
  private holderSeen = { at: 0, pid: undefined as number | undefined };

  constructor(private readonly opts: ChaosOptions) {
    this.seed = chooseSeed(opts.seed);
    this.rng = makeRng(this.seed);
    this.log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
    this.limit = opts.durationLimitMs ?? Number.POSITIVE_INFINITY;
    this.ub = opts.backend === 'ubs';
  }

  async run(): Promise<ChaosResult> {
    this.log(`chaos: containerd ${this.opts.version}${this.ub ? ', UB mode' : ''}, seed ${this.seed} (CHAOS_SEED=${this.seed} replays the choices), ${this.opts.kills} kills, ${this.opts.containerdRestarts} containerd restarts`);
    const exitHook = (): void => this.agent?.killSync();
    process.on('exit', exitHook);
    try {
      await this.startContainerdAndAgent();
      if (this.ub) await this.bindKeeper();
      await this.churnWhileKilling();
      await this.settle();
      if (this.ub) await this.noStaleDevicesAtEnd();
      await this.letEvictionsEnd();
      await this.finalCheck('end of chaos', false);
      if (this.ub) {
        await this.keeperKeptItsBytes();
        await this.killBetweenAllocateAndMap();
      }
      await this.removeEveryPod();
      await this.finalCheck('after removing every pod', true);
      return this.result();
    } finally {
      process.removeListener('exit', exitHook);
      await this.tearDown();
    }
  }

  private get cri(): CriClient {
    return this.inst!.cri;
  }

  private get ag(): AgentSlot {
    return this.agent!;
  }

  private get image(): string | undefined {
    return this.ub ? UBS_IMAGE : undefined;
  }

  private t(): string {
  return `+${((Date.now() - this.started) / 1000).toFixed(1)}s`;
  }

  private violation(what: string, leak = false): void {
    const line = `${this.t()} ${what}`;
    this.violations.push(line);
    if (leak) this.counts.leaks++;
    this.log(`chaos: VIOLATION ${line}`);
  }

  private hostPath(r: Ref): string {
    return join(this.cfg!.sharesDir, r.ns, r.name);
  }

  private markerName(id: string): string {
    return `.chaos-${id.slice(0, 16)}`;
  }

  // ---------------- start ----------------

  private async startContainerdAndAgent(): Promise<void> {
    // a UB node is made before containerd starts: 2.1's config names its CDI dir
    if (this.ub) this.node = new UbsNode();
    this.inst = await startContainerd({ version: this.opts.version, ...(this.node && this.opts.version === '2.1' ? { cdiSpecDirs: [this.node.cdiDir] } : {}) });
    this.log(`chaos: containerd ${this.inst.version} in ${this.inst.dir}; work dir ${this.dir}${this.node ? `; UB node ${this.node.dir}` : ''}`);
    if (this.node) {
      await this.node.start();
      importUbsImage(this.inst);
      this.node.control(Object.entries(DELAYS).map(([op, ms]) => `delay_ms.${op}=${ms}\n`).join(''));
    }
    this.cfg = writeAgentConfig(this.dir, this.inst.nriSocket, this.ub ? [...SHARES, LONE, KEPT] : SHARES, this.node?.backendConfig({ backend: { budgetMs: UB_BUDGET_MS } }));
    this.agent = new AgentSlot(this.cfg.config, join(this.dir, 'agent.log'), this.node ? { env: this.node.agentEnv(), readyLog: /^ubs: connected to the UB memory daemon/ } : {});
    this.ag.start();
    await this.ag.waitSynced();
  }

  private async startTracked(id: string): Promise<void> {
    this.startsInFlight.add(id);
    try {
      await this.cri.startContainer(id);
    } finally {
      this.startsInFlight.delete(id);
    }
  }

  /**
   * UB: a pod the churn leaves alone holds KEPT; its application maps it only now and then (here:
   * never), so only the holder keeps it attached through every agent kill; its bytes are checked
   * at the end, with its memids
   */
  private async bindKeeper(): Promise<void> {
    const kp = await this.cri.runPod({ name: uniqueName('chaos-keeper'), namespace: NAMESPACE, annotations: { [POD_KEY]: KEPT.name } });
    await this.cri.runContainer(kp, { name: 'app', image: this.image });
    const sdk = sdkNameOf(KEPT.ns, KEPT.name);
    const token = uniqueName('kept-bytes');
    const w = this.node!.consumer(['--sdk-name', sdk, 'write', '4096', token]);
    if (w.status !== 0) this.violation(`writing the keeper's bytes: ${w.out}`);
    this.keeper = { podId: kp.id, token, memids: this.node!.attachment(sdk)?.memids ?? [] };
    this.log(`chaos: keeper pod bound to ${KEPT.ns}/${KEPT.name} (memids ${this.keeper.memids.join(' ')}), ${token.length} bytes written`);
  }

  // ---------------- churn ----------------

  private window(): ChurnWindow {
    return { epoch: this.ag.epoch, synced: this.ag.synced && !this.cdRestarting, cd: this.cdEpoch };
  }

  private stillClean(w: ChurnWindow): boolean {
    return w.synced && this.ag.epoch === w.epoch && this.ag.synced && !this.cdRestarting && this.cdEpoch === w.cd;
  }

  private adoptPod(p: PodInfo): PodM {
    let m = this.pods.get(p.id);
    if (!m) {
      m = { id: p.id, name: p.metadata.name, annotations: p.annotations ?? {}, stopRequested: false };
      this.pods.set(p.id, m);
    }
    return m;
  }

  private adoptCtr(c: ContainerInfo): CtrM {
    let m = this.ctrs.get(c.id);
    if (!m) {
      const pod = this.pods.get(c.pod_sandbox_id);
      m = {
        id: c.id, podId: c.pod_sandbox_id, name: c.metadata.name,
        wants: pod ? wantedShares(pod.annotations, NAMESPACE, c.metadata.name) : [],
        clean: false, adopted: true, stopRequested: pod?.stopRequested ?? false, verified: false, evicted: false, addedAt: Date.now(), createdEpoch: 0,
      };
      this.ctrs.set(c.id, m);
    }
    return m;
  }

  private async churnOnce(): Promise<void> {
    let cPods: PodInfo[];
    let cCtrs: ContainerInfo[];
    try {
      cPods = (await this.cri.listPods()).filter((p) => p.id !== this.keeper?.podId);
      cCtrs = (await this.cri.listContainers()).filter((c) => c.pod_sandbox_id !== this.keeper?.podId);
    } catch {
      await sleep(200);
      return;
    }
    for (const p of cPods) this.adoptPod(p);
    for (const c of cCtrs) this.adoptCtr(c);
    const ready = cPods.filter((p) => p.state === 'SANDBOX_READY' && !this.pods.get(p.id)!.stopRequested);
    const withFreeName = ready.filter((p) => this.pods.get(p.id)!.config && cCtrs.filter((c) => c.pod_sandbox_id === p.id).length < CONTAINER_NAMES.length);
    const created = cCtrs.filter((c) => c.state === 'CONTAINER_CREATED' && !this.ctrs.get(c.id)!.stopRequested);
    const running = cCtrs.filter((c) => c.state === 'CONTAINER_RUNNING' && !this.ctrs.get(c.id)!.stopRequested);
    const exited = cCtrs.filter((c) => c.state === 'CONTAINER_EXITED');
    const action = this.rng.weighted({
      createPod: ready.length < MAX_PODS ? 3 : 0,
      createContainer: withFreeName.length ? 5 : 0,
      start: created.length ? 3 : 0,
      stop: running.length > 1 ? 2 : 0,
      remove: exited.length ? 2 : 0,
      removePod: cPods.length > 2 ? 1.5 : 0,
    });
    try {
      switch (action) {
        case 'createPod': {
          const annotations: Record<string, string> = {};
          // UB mode: the churn's containers run as root, the owner class of the holder's shares
          // (mode 0666): the access check refuses a root :ro binding at start (README, UB access),
          // so UB churn binds read-write only; the access model has its own e2e test (ubs.test.ts)
          const refs = (x: string): string => (this.ub ? x.replace(/:ro/g, '') : x);
          const v = this.rng.pick(POD_VALUES);
          if (v !== undefined) annotations[POD_KEY] = refs(v);
          if (this.rng.chance(0.35)) annotations[`${CTR_KEY}side`] = refs(this.rng.pick(['-', 'gamma', 'alpha:ro', 'beta,alpha']));
          if (this.rng.chance(0.2)) annotations[`${CTR_KEY}tool`] = refs(this.rng.pick(['-', 'beta:ro']));
          const name = uniqueName('chaos');
          const pod = await this.cri.runPod({ name, namespace: NAMESPACE, annotations });
          this.pods.set(pod.id, { id: pod.id, name, annotations, config: pod.config, stopRequested: false });
          this.counts.pods++;
          break;
        }
        case 'createContainer': {
          const p = this.rng.pick(withFreeName);
          const pm = this.pods.get(p.id)!;
          const taken = new Set(cCtrs.filter((c) => c.pod_sandbox_id === p.id).map((c) => c.metadata.name));
          const name = this.rng.pick(CONTAINER_NAMES.filter((n) => !taken.has(n)));
          const w = this.window();
          this.createsInFlight++;
          let id: string;
          try {
            id = await this.cri.createContainer(p.id, pm.config!, { name, image: this.image });
          } catch (e) {
            this.counts.createFailures++;
            const kind = shortError(e);
            this.createFailureKinds[kind] = (this.createFailureKinds[kind] ?? 0) + 1;
            // UB: an SDK call slower than the budget (the delays are injected; the machine is
            // shared) is refused for the kubelet's retry, as documented: not a fault
            if (this.ub && /is still being attached/.test(kind)) this.counts.pendingRefusals++;
            // the agent refusing while it was up the whole time is not chaos, it is a bug
            else if (this.stillClean(w) && /memshare/.test(kind)) this.violation(`CreateContainer ${name} in pod ${pm.name} refused while the agent was up: ${kind}`);
            break;
          } finally {
            this.createsInFlight--;
          }
          const clean = this.stillClean(w);
          const existing = this.ctrs.get(id); // adopted by the checker meanwhile
          this.ctrs.set(id, {
            id, podId: p.id, name, wants: wantedShares(pm.annotations, NAMESPACE, name), clean, adopted: false,
            stopRequested: existing?.stopRequested ?? false, verified: existing?.verified ?? false,
            lackingSince: existing?.lackingSince, lackingSyncs: existing?.lackingSyncs, evicted: existing?.evicted ?? false,
            addedAt: existing?.addedAt ?? Date.now(), createdEpoch: w.epoch, verifiedPid: existing?.verifiedPid,
          });
          this.counts.containers++;
          if (this.rng.chance(0.85)) {
            await this.startTracked(id);
            this.counts.containersStarted++;
          }
          break;
        }
        case 'start': {
          const c = this.rng.pick(created);
          await this.startTracked(c.id);
          this.counts.containersStarted++;
          break;
        }
        case 'stop': {
          const c = this.rng.pick(running);
          this.ctrs.get(c.id)!.stopRequested = true;
          this.stopsInFlight++;
          try {
            await this.cri.stopContainer(c.id, 1);
          } finally {
            this.stopsInFlight--;
          }
          this.counts.containersStopped++;
          break;
        }
        case 'remove': {
          const c = this.rng.pick(exited);
          this.ctrs.get(c.id)!.stopRequested = true;
          await this.cri.removeContainer(c.id);
          this.counts.containersRemoved++;
          break;
        }
        case 'removePod': {
          if (!this.ag.synced || this.killPending || this.cdRestarting) break;
          const p = this.rng.pick(cPods);
          this.pods.get(p.id)!.stopRequested = true;
          for (const c of this.ctrs.values()) if (c.podId === p.id) c.stopRequested = true;
          this.removalsInFlight++;
          try {
            await this.cri.stopPod(p.id);
            await this.cri.removePod(p.id);
          } finally {
            this.removalsInFlight--;
          }
          this.counts.podsRemoved++;
          break;
        }
        default:
          await sleep(50);
      }
    } catch {
      // expected while containerd restarts or the agent dies mid-call; the next listing tells what exists
    }
    await sleep(this.rng.int(0, 60));
  }

  // ---------------- checks ----------------

  private async confirmRunning(c: CtrM): Promise<boolean> {
    if (c.stopRequested) return false;
    try {
      const st = await this.cri.containerStatus(c.id);
      return st.state === 'CONTAINER_RUNNING' && !c.stopRequested;
    } catch {
      return false;
    }
  }

    /** (c) host side: the share's host path is a tmpfs mount holding the container's marker. */
  private hostProblem(c: CtrM): string | undefined {
    const mounts = hostMounts();
    for (const r of c.wants) {
      const hp = this.hostPath(r);
      const m = mounts.filter((x) => x.mountPoint === hp).pop();
      if (!m) return `host path ${hp} of share ${r.ns}/${r.name} is not a mount point`;
      if (m.fsType !== 'tmpfs') return `host path ${hp} is a ${m.fsType} mount, not tmpfs`;
      let content = '';
      try {
        content = readFileSync(join(hp, this.markerName(c.id)), 'utf8');
      } catch {
        content = '<missing>';
      }
      if (content !== c.id) return `share ${r.ns}/${r.name}: host path lost the marker of container ${c.id.slice(0, 12)} (read ${JSON.stringify(content.slice(0, 20))}): unmounted or replaced under it`;
    }
    return undefined;
  }

  // ---- UB mode: device numbers in the runtime spec against the double

    /** the UB holder's pid (looked up at most every 300 ms), or undefined when none runs */
  private holderPid(): number | undefined {
    if (Date.now() - this.holderSeen.at > 300) {
      const r = spawnSync('pgrep', ['-f', `socket ${join(this.cfg!.stateDir, 'ubs-holder.sock')}`], { encoding: 'utf8' });
      const pids = (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
      this.holderSeen = { at: Date.now(), pid: pids.length === 1 ? pids[0] : undefined };
    }
    return this.holderSeen.pid;
  }

    /** what the runtime spec of a started container says, against the memids the UB holder keeps attached now */
  private deviceState(c: CtrM): DevState {
    let devs;
    try {
      devs = (ociSpec(this.inst!, c.id).linux.devices ?? []).filter((d) => d.major === this.node!.major);
    } catch {
      return { kind: 'unknown' }; // not started yet, or gone
    }
    if (devs.length === 0) return { kind: 'none' };
    // the UB holder keeps the node's shares attached (it outlives the agent's kills)
    const pid = this.holderPid();
    if (pid === undefined) return { kind: 'stale', detail: 'no UB holder runs: nothing keeps its shares attached' };
    const want = new Map<number, Ref>();
    for (const r of c.wants) {
      const a = this.node!.attachment(sdkNameOf(r.ns, r.name));
      if (!a || !a.pids.includes(pid)) return { kind: 'stale', detail: `${r.ns}/${r.name} is not attached by the UB holder (pid ${pid})` };
      for (const m of a.memids) want.set(m, r);
    }
    const have = devs.map((d) => d.minor).sort((x, y) => x - y);
    const expect = [...want.keys()].sort((x, y) => x - y);
    if (have.join(' ') !== expect.join(' ')) return { kind: 'stale', detail: `spec minors [${have.join(' ')}], the double's memids now [${expect.join(' ')}]` };
    for (const d of devs) {
      const r = want.get(d.minor)!;
      if (d.fileMode !== (r.ro ? 0o444 : 0o666)) return { kind: 'mode', detail: `/dev/obmm_shmdev${d.minor} of ${r.ns}/${r.name} has mode ${d.fileMode?.toString(8)}, asked ${r.ro ? 'ro' : 'rw'}` };
    }
    return { kind: 'ok', pid };
  }

  private lacking(c: CtrM): void {
    c.lackingSince = Date.now();
    c.lackingSyncs = this.ag.syncCount;
  }

    /** (d), UB: a new running container's device numbers */
  private async verifyDevices(c: CtrM): Promise<void> {
    const st = this.deviceState(c);
    if (st.kind === 'unknown' || c.stopRequested) return;
    this.counts.deviceChecks++;
    if (st.kind === 'ok') {
      c.verified = true;
      c.verifiedPid = st.pid;
      return;
    }
    if (!(await this.confirmRunning(c))) return;
    const what = `container ${c.id.slice(0, 12)} (${c.name}, pod ${this.pods.get(c.podId)?.name})`;
    if (st.kind === 'mode') {
      this.violation(`(d) ${what}: ${st.detail}`);
      c.lackingReported = true;
      return;
    }
    const sameRun = c.clean && c.createdEpoch === this.ag.epoch && this.ag.running;
    if (st.kind === 'none') {
      if (sameRun) {
        this.violation(`(d) ${what} runs without device nodes, though it was created while the agent was up and synchronized`);
        c.lackingReported = true;
      } else {
        this.log(`chaos: ${this.t()} ${what} runs without device nodes: created while the agent was down or dying; it must be evicted`);
        this.counts.createdWithoutShares++;
      }
    } else if (sameRun) {
      // the agent that created it is still the one running: nothing re-attached its shares
      this.violation(`(d) ${what} was created by the running agent with device numbers the double does not have: ${st.detail}`);
      c.lackingReported = true;
    } else {
      this.log(`chaos: ${this.t()} ${what} runs with stale device numbers (${st.detail}); it must be evicted`);
      this.counts.staleSeen++;
    }
    this.lacking(c);
  }

    /** (c), UB: a verified container's device numbers stay valid while the agent that made them runs */
  private async recheckDevices(c: CtrM): Promise<void> {
    this.counts.hostChecks++;
    const st = this.deviceState(c);
    if (st.kind === 'ok' || st.kind === 'unknown' || st.kind === 'mode') return;
    if (!(await this.confirmRunning(c))) return;
    c.verified = false;
    if (this.holderPid() === c.verifiedPid) {
      this.violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound, and its share was released or re-attached under it while the same UB holder ran (pid ${c.verifiedPid}): ${st.kind === 'none' ? 'no devices' : st.detail}`);
      c.stopRequested = true; // report once
      return;
    }
    this.log(`chaos: ${this.t()} container ${c.id.slice(0, 12)} (${c.name}) now has stale device numbers (${st.kind === 'none' ? 'none' : st.detail}); it must be evicted`);
    this.counts.staleSeen++;
    this.lacking(c);
  }

  private async verifyMounts(c: CtrM): Promise<void> {
    if (this.ub) return this.verifyDevices(c);
    let out;
    try {
      out = await this.cri.execSync(c.id, ['/bin/cat', '/proc/self/mountinfo'], 5);
    } catch {
      return; // containerd restarting, or the container went
    }
    if (out.exitCode !== 0 || c.stopRequested) return;
    this.counts.mountChecks++;
    const mi = parseMountinfo(out.stdout);
    const missing = c.wants.filter((r) => !mi.has(`/dev/shm/${r.name}`));
    const wrongMode = c.wants.filter((r) => mi.has(`/dev/shm/${r.name}`) && mi.get(`/dev/shm/${r.name}`)!.includes('ro') !== r.ro);
    for (const r of wrongMode) this.violation(`(d) container ${c.id.slice(0, 12)} (${c.name}) has /dev/shm/${r.name} mounted ${r.ro ? 'rw' : 'ro'}, asked ${r.ro ? 'ro' : 'rw'}`);
    if (missing.length === 0) {
      // write the markers through the host path; from now on the container must always see them
      for (const r of c.wants) {
        const hp = this.hostPath(r);
        if (!hostMounts().some((m) => m.mountPoint === hp && m.fsType === 'tmpfs')) {
          if (await this.confirmRunning(c)) this.violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound to ${r.ns}/${r.name} but its host path ${hp} is not a tmpfs mount`);
          return;
        }
        try {
          writeFileSync(join(hp, this.markerName(c.id)), c.id);
        } catch (e) {
          if (await this.confirmRunning(c)) this.violation(`(c) cannot write marker into ${hp} while container ${c.id.slice(0, 12)} runs bound to it: ${(e as Error).message}`);
          return;
        }
      }
      c.verified = true;
      return;
    }
    const what = `container ${c.id.slice(0, 12)} (${c.name}, pod ${this.pods.get(c.podId)?.name}) runs without ${missing.map((r) => `/dev/shm/${r.name}`).join(', ')}`;
    if (c.clean) {
      this.violation(`(d) ${what}, though it was created while the agent was up and synchronized`);
      c.lackingReported = true;
    } else {
      this.log(`chaos: ${this.t()} ${what}: created while the agent was down or dying; it must be evicted`);
      this.counts.createdWithoutShares++;
    }
    c.lackingSince = Date.now();
    c.lackingSyncs = this.ag.syncCount;
  }

  private async checkMarkers(c: CtrM): Promise<void> {
    const files = c.wants.map((r) => `/dev/shm/${r.name}/${this.markerName(c.id)}`);
    let out;
    try {
      out = await this.cri.execSync(c.id, ['/bin/sh', '-c', 'for f; do echo "== $f"; cat "$f" 2>/dev/null || echo "<missing>"; echo; done', 'sh', ...files], 5);
    } catch {
      return;
    }
    if (c.stopRequested) return;
    this.counts.markerChecks++;
    const bad: string[] = [];
    for (const f of files) {
      const m = new RegExp(`== ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n([^\\n]*)`).exec(out.stdout);
      if (!m || m[1] !== c.id) bad.push(`${f}: ${JSON.stringify((m?.[1] ?? '<no output>').slice(0, 30))}`);
    }
    if (bad.length && (await this.confirmRunning(c))) {
      this.violation(`(c) running container ${c.id.slice(0, 12)} (${c.name}) no longer sees its marker: ${bad.join('; ')} (its share was unmounted or replaced under it)`);
      c.verified = false;
      c.stopRequested = true; // report once
    }
  }

  private async checkRound(final = false): Promise<void> {
    let cCtrs: ContainerInfo[];
    const listedAt = Date.now();
    try {
      cCtrs = await this.cri.listContainers();
    } catch {
      return;
    }
    const state = new Map(cCtrs.map((c) => [c.id, c.state]));
    for (const c of cCtrs) this.adoptCtr(c);
    for (const c of this.ctrs.values()) {
      const s = state.get(c.id);
      if (c.addedAt >= listedAt) continue; // created after this listing was asked for
      if (s === undefined && !c.stopRequested) c.stopRequested = true; // gone with its pod
      if (s === 'CONTAINER_EXITED' && !c.stopRequested && !c.evicted) {
        c.evicted = true;
        this.counts.evictions++;
        // UB: every agent death detaches the shares, so each restart legitimately evicts the
        // containers made before it; one evicted by the agent run that created it is a fault
        if (this.ub) {
          if (c.wants.length === 0) this.violation(`container ${c.id.slice(0, 12)} (${c.name}) asks for no share and was stopped without a CRI stop`);
          else if (!c.adopted && c.clean && c.createdEpoch === this.ag.epoch) this.violation(`container ${c.id.slice(0, 12)} (${c.name}) created while the agent was up was evicted by that same agent run ${this.ag.epoch}`);
        } else if (c.verified) this.violation(`container ${c.id.slice(0, 12)} (${c.name}) had its shares and was evicted (stopped without a CRI stop)`);
        else if (c.clean && c.wants.length) this.violation(`container ${c.id.slice(0, 12)} (${c.name}) created while the agent was up was evicted`);
        else if (c.wants.length === 0) this.violation(`container ${c.id.slice(0, 12)} (${c.name}) asks for no share and was stopped without a CRI stop`);
      }
    }
    const running = [...this.ctrs.values()].filter((c) => state.get(c.id) === 'CONTAINER_RUNNING' && !c.stopRequested && c.wants.length > 0);
    // (d): new running containers: are their shares there?
    const unverified = running.filter((c) => !c.verified && c.lackingSince === undefined);
    // device checks read files: all of them every round; mount checks exec into containers: a few
    for (const c of final || this.ub ? unverified : unverified.slice(0, 3)) await this.verifyMounts(c);
    // (d): containers without their shares must go
    for (const c of running) {
      if (c.lackingSince === undefined || c.lackingReported) continue;
      if (Date.now() - c.lackingSince > EVICT_BOUND_MS && this.ag.syncCount >= (c.lackingSyncs ?? 0) + 2 && (await this.confirmRunning(c))) {
        this.violation(`(d) container ${c.id.slice(0, 12)} (${c.name}) still runs without its shares ${((Date.now() - c.lackingSince) / 1000).toFixed(0)} s and ${this.ag.syncCount - c.lackingSyncs!} agent synchronizations after it was seen so: not evicted`);
        c.lackingReported = true;
      }
    }
    // (c): host side for every verified container, container side for a few
    const verified = running.filter((c) => c.verified);
    if (this.ub) {
      for (const c of verified) await this.recheckDevices(c);
      return;
    }
    for (const c of verified) {
      this.counts.hostChecks++;
      const p = this.hostProblem(c);
      if (p && (await this.confirmRunning(c))) {
        this.violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound: ${p}`);
        c.verified = false;
        c.stopRequested = true;
      }
    }
    const sample = final ? verified : verified.sort(() => this.rng.next() - 0.5).slice(0, 2);
    for (const c of sample) await this.checkMarkers(c);
  }

  // ---------------- kills ----------------

  private async restartContainerd(): Promise<void> {
    this.cdRestarting = true;
    while (this.removalsInFlight > 0) await sleep(5);
    // a StartContainer that containerd dies or restarts under leaves the container EXITED
    // (containerd's recovery, with no plugin involved): such an exit is explained, not an eviction
    for (const id of this.startsInFlight) {
      const c = this.ctrs.get(id);
      if (c) c.stopRequested = true;
    }
    this.cdEpoch++;
    this.ag.unsync();
    const crash = this.rng.chance(0.34);
    this.log(`chaos: ${this.t()} containerd ${crash ? 'SIGKILL + start' : 'restart'}`);
    if (crash) await this.inst!.kill();
    await this.inst!.restart();
    this.cdEpoch++;
    this.cdRestarting = false;
    this.counts.containerdRestarts++;
    try {
      await this.ag.waitSynced(60_000);
    } catch (e) {
      this.violation(`agent did not synchronize after containerd restarted: ${(e as Error).message}`);
    }
  }

  private async killer(): Promise<void> {
    const restartAt = new Set<number>();
    for (let r = 1; r <= this.opts.containerdRestarts; r++) restartAt.add(Math.floor((r * this.opts.kills) / (this.opts.containerdRestarts + 1)));
    for (let k = 0; k < this.opts.kills; k++) {
      if (Date.now() - this.started > this.limit) {
        this.timedOut = true;
        this.log(`chaos: duration limit reached after ${this.counts.kills} kills`);
        break;
      }
      if (restartAt.has(k)) await this.restartContainerd();
      const mode = this.ub
        ? this.rng.weighted({ afterSync: 3, beforeSync: 1.5, duringAttach: 3, duringRelease: 2.5 })!
        : this.rng.weighted({ afterSync: 6, beforeSync: 2, duringCreate: 2 })!;
      if (mode === 'duringAttach' || mode === 'duringRelease') {
        // UB: wait for a CreateContainer (attach) or StopContainer (release) blocked in an SDK call
        try {
          await this.ag.waitSynced(30_000);
        } catch (e) {
          this.violation(`agent run ${this.ag.epoch} did not synchronize: ${(e as Error).message}`);
        }
        const inWindow = (): boolean =>
          (mode === 'duringAttach' ? this.createsInFlight > 0 && this.stopsInFlight === 0 : this.stopsInFlight > 0 && this.createsInFlight === 0) && inSdkCall(this.holderPid());
        const until = Date.now() + 4000;
        while (!inWindow() && Date.now() < until) await sleep(3);
        if (inWindow()) {
          await sleep(this.rng.int(0, 40)); // inside the call's delay (150 to 250 ms)
          if (mode === 'duringAttach') this.counts.killsDuringAttach++;
          else this.counts.killsDuringRelease++;
        }
      } else if (mode === 'beforeSync') {
        await sleep(this.rng.int(0, 500));
        if (this.ag.synced) {
          await sleep(this.rng.int(0, 300));
        } else this.counts.killsBeforeSync++;
      } else {
        try {
          await this.ag.waitSynced(30_000);
        } catch (e) {
          this.violation(`agent run ${this.ag.epoch} did not synchronize: ${(e as Error).message}`);
        }
        if (mode === 'afterSync') await sleep(this.rng.int(50, 1200));
        else {
          const until = Date.now() + 3000;
          while (this.createsInFlight === 0 && Date.now() < until) await sleep(2);
          if (this.createsInFlight > 0) {
            await sleep(this.rng.int(0, 25));
            this.counts.killsDuringCreate++;
          }
        }
      }
      this.killPending = true;
      while (this.removalsInFlight > 0) await sleep(5);
      await this.ag.kill('SIGKILL');
      this.counts.kills++;
      this.ag.start();
      this.killPending = false;
      if (this.counts.kills % 20 === 0) this.log(`chaos: ${this.t()} ${this.counts.kills} kills, ${this.counts.containers} containers, ${this.counts.pods} pods, ${this.violations.length} violations`);
    }
    try {
      await this.ag.waitSynced(30_000);
    } catch (e) {
      this.violation(`agent did not synchronize after the last kill: ${(e as Error).message}`);
    }
  }

  /** Churn and checks run while the killer kills the agent (and restarts containerd) opts.kills times. */
  private async churnWhileKilling(): Promise<void> {
    const churn = (async () => {
      while (!this.stopChurn) await this.churnOnce();
    })();
    const checker = (async () => {
      while (!this.stopChurn) {
        await this.checkRound();
        await sleep(150);
      }
    })();
    await this.killer();
    this.stopChurn = true;
    await churn;
    await checker;
  }

  // ---------------- settle ----------------

  /** (d) at the end: every running container that asks for shares has them, or was evicted. */
  private async settle(): Promise<void> {
    this.log(`chaos: ${this.t()} churn stopped; settling`);
    await this.ag.waitSynced(30_000).catch((e: Error) => this.violation(`agent not synchronized at the end: ${e.message}`));
    // a final reconcile after everything stopped moving would hide event-path bugs: none is forced.
    const settleUntil = Date.now() + EVICT_BOUND_MS + 15_000;
    for (;;) {
      await this.checkRound(true);
      const cCtrs = await this.cri.listContainers().catch(() => [] as ContainerInfo[]);
      const pending = cCtrs.filter((c) => {
        const m = this.ctrs.get(c.id);
        return m && c.state === 'CONTAINER_RUNNING' && m.wants.length > 0 && !m.stopRequested && !m.verified && !m.lackingReported;
      });
      if (pending.length === 0 || Date.now() > settleUntil) {
        for (const c of pending) this.violation(`(d) container ${c.id.slice(0, 12)} (${c.metadata.name}) still runs without its shares at the end (not evicted)`);
        break;
      }
      await sleep(250);
    }
  }

  /** UB: no running bound container may be left with stale or missing device numbers */
  private async noStaleDevicesAtEnd(): Promise<void> {
    for (const c of await this.cri.listContainers()) {
      const m = this.ctrs.get(c.id);
      if (!m || c.state !== 'CONTAINER_RUNNING' || m.wants.length === 0 || m.stopRequested) continue;
      const st = this.deviceState(m);
      if (st.kind !== 'ok' && (await this.confirmRunning(m))) {
        this.counts.staleRunningAtEnd++;
        if (!m.lackingReported) this.violation(`(d) container ${c.id.slice(0, 12)} (${c.metadata.name}) runs at the end with ${st.kind === 'none' ? 'no device nodes' : `stale device numbers: ${st.kind === 'unknown' ? 'no runtime spec' : st.detail}`}`);
      }
    }
  }

    /**
     * (b), UB: every share in the double is held by a container on record and every held share is
     * in the double; with expectEmpty, no share and no mapping is left. Releases (their SDK calls
     * delayed) may still be under way: agreement is waited for, bounded.
     */
  private async ubCheck(phase: string, expectEmpty: boolean): Promise<void> {
    const until = Date.now() + 30_000;
    let problems: string[];
    for (;;) {
      problems = [];
      const st = agentStatus(this.cfg!.config);
      const heldBy = new Set(st.shares.filter((s) => s.holders.length).map((s) => sdkNameOf(s.namespace, s.name)));
      const inDouble = this.node!.shares();
      for (const n of inDouble) if (!heldBy.has(n)) problems.push(`share ${n} is in the double but no container on record holds it`);
      for (const n of heldBy) if (!inDouble.includes(n)) problems.push(`share ${n} is held on record but is not in the double`);
      if (expectEmpty) for (const m of this.node!.maps()) problems.push(`mapping ${m} is left in the double`);
      if (problems.length === 0 || Date.now() > until) break;
      await sleep(500);
    }
    for (const p of problems) this.violation(`(b) ${phase}: ${p}`, true);
    if (expectEmpty) {
      this.counts.ubSharesLeft = this.node!.shares().length;
      this.counts.ubMapsLeft = this.node!.maps().length;
    } else this.counts.ubSharesAtEnd = this.node!.shares().length;
  }

  /** (a) and (b) */
  private async finalCheck(phase: string, expectEmpty: boolean): Promise<void> {
    const st = agentStatus(this.cfg!.config);
    const cCtrs = await this.cri.listContainers();
    const cPods = await this.cri.listPods();
    const podById = new Map(cPods.map((p) => [p.id, p]));
    const byId = new Map(cCtrs.map((c) => [c.id, c]));
    const held = new Map<string, Set<string>>(); // container id -> shares
    for (const s of st.shares) {
      for (const h of s.holders) {
        const c = byId.get(h.container.id);
        if (!c) this.violation(`(a) ${phase}: record of ${s.namespace}/${s.name} for container ${h.container.id.slice(0, 12)} (${h.container.name}) that does not exist`, true);
        else if (c.state !== 'CONTAINER_CREATED' && c.state !== 'CONTAINER_RUNNING') this.violation(`(a) ${phase}: record of ${s.namespace}/${s.name} for container ${c.id.slice(0, 12)} (${c.metadata.name}) that is ${c.state}`, true);
        let set = held.get(h.container.id);
        if (!set) held.set(h.container.id, (set = new Set()));
        set.add(`${s.namespace}/${s.name}`);
      }
      if (this.ub) continue; // (b) for UB shares: ubCheck, from the double
      if (!s.present && s.holders.length) this.violation(`(b) ${phase}: share ${s.namespace}/${s.name} has ${s.holders.length} holder(s) on record but is not mounted`, true);
      if (s.present && s.holders.length === 0) this.violation(`(b) ${phase}: share ${s.namespace}/${s.name} is mounted at ${s.location} without a user on record`, true);
    }
    // a container only created (no process) while the agent was down cannot be killed yet: the
    // agent evicts it when it starts; it passes if a reconcile listed it for eviction
    const toEvict = new Set(this.ag.reconciles.flatMap((r) => r.evicted));
    for (const c of cCtrs) {
      if (c.state !== 'CONTAINER_CREATED' && c.state !== 'CONTAINER_RUNNING') continue;
      if (c.state === 'CONTAINER_CREATED' && toEvict.has(c.id)) continue;
      const p = podById.get(c.pod_sandbox_id);
      if (!p) continue;
      for (const r of wantedShares(p.annotations ?? {}, p.metadata.namespace, c.metadata.name)) {
        if (!held.get(c.id)?.has(`${r.ns}/${r.name}`)) this.violation(`(a) ${phase}: ${c.state} container ${c.id.slice(0, 12)} (${c.metadata.name}) asks for ${r.ns}/${r.name} but holds no record of it and was not evicted`, true);
      }
    }
    // (b) from the host's own mount table, independent of the status command (UB: nothing is mounted there)
    const recorded = new Set(st.shares.filter((s) => s.holders.length).map((s) => join(this.cfg!.sharesDir, s.namespace, s.name)));
    for (const m of mountsUnder(this.cfg!.sharesDir)) {
      if (!recorded.has(m)) this.violation(`(b) ${phase}: ${m} is mounted on the host without a user on record`, true);
    }
    if (this.ub) await this.ubCheck(phase, expectEmpty);
    if (expectEmpty) {
      const holders = st.shares.reduce((n, s) => n + s.holders.length, 0);
      if (holders) this.violation(`(a) ${phase}: ${holders} binding(s) still on record after every pod was removed`, true);
    }
    for (const w of st.warnings) this.log(`chaos: status warning (${phase}): ${w}`);
  }

    // an eviction's exit reaches the agent as containerd's StopContainer event, asynchronously: give
    // records of containers that just exited a bounded time to end before judging them
  private async letEvictionsEnd(): Promise<void> {
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(250)) {
      const live = new Set((await this.cri.listContainers().catch(() => [] as ContainerInfo[]))
        .filter((c) => c.state === 'CONTAINER_CREATED' || c.state === 'CONTAINER_RUNNING').map((c) => c.id));
      if (agentStatus(this.cfg!.config).shares.every((s) => s.holders.every((h) => live.has(h.container.id)))) break;
    }
  }

  /** (e), UB: the keeper's share went through every kill with no application mapping it */
  private async keeperKeptItsBytes(): Promise<void> {
    if (!this.keeper) return;
    const sdk = sdkNameOf(KEPT.ns, KEPT.name);
    const r = this.node!.consumer(['--sdk-name', sdk, 'read', '4096', String(this.keeper.token.length)]);
    const memids = this.node!.attachment(sdk)?.memids ?? [];
    if (r.json.text !== this.keeper.token) this.violation(`(e) the keeper's share ${KEPT.ns}/${KEPT.name} lost its bytes through ${this.counts.kills} agent kills: read ${r.out.trim()}`);
    if (memids.join(' ') !== this.keeper.memids.join(' ')) this.violation(`(e) the keeper's share changed memids through agent kills: ${this.keeper.memids.join(' ')} -> ${memids.join(' ')}`);
    this.counts.keptDataChecks = r.json.text === this.keeper.token ? 1 : 0;
    this.log(`chaos: keeper data check after ${this.counts.kills} kills: ${r.json.text === this.keeper.token ? 'the same bytes' : 'LOST'}, memids ${memids.join(' ')}`);
  }

  /**
   * UB: one more kill, aimed after the SDK allocated a share that no other pod uses and before
   * the agent mapped it (in the map's delay): a restarted agent must still release it
   */
  private async killBetweenAllocateAndMap(): Promise<void> {
    const sdk = sdkNameOf(LONE.ns, LONE.name);
    const lone = await this.cri.runPod({ name: uniqueName('chaos-lone'), namespace: NAMESPACE, annotations: { [POD_KEY]: LONE.name } });
    const created = this.cri.createContainer(lone.id, lone.config, { name: 'app', image: this.image }).then(() => 'created', (e: unknown) => `refused: ${shortError(e)}`);
    const inWindow = (): boolean => this.node!.shares().includes(sdk) && inSdkCall(this.holderPid());
    const until = Date.now() + 10_000;
    while (!inWindow() && Date.now() < until) await sleep(2);
    if (inWindow()) {
      await this.ag.kill('SIGKILL');
      this.counts.lastAttachKill = 1;
      this.ag.start();
    }
    this.log(`chaos: ${this.t()} last kill ${this.counts.lastAttachKill ? 'after allocate, before map' : 'found no window (not done)'}; CreateContainer ${await created}`);
    await this.ag.waitSynced(30_000).catch((e: Error) => this.violation(`agent not synchronized after the last kill: ${e.message}`));
  }

  /** Every pod goes (agent up, no kills): the last user of each share ends, so everything is released. */
  private async removeEveryPod(): Promise<void> {
    this.log(`chaos: ${this.t()} removing every pod`);
    for (const p of await this.cri.listPods()) {
      for (const c of this.ctrs.values()) if (c.podId === p.id) c.stopRequested = true;
      await this.cri.stopPod(p.id).catch((e: unknown) => this.violation(`StopPodSandbox ${p.id.slice(0, 12)} at the end: ${shortError(e)}`));
      await this.cri.removePod(p.id).catch((e: unknown) => this.violation(`RemovePodSandbox ${p.id.slice(0, 12)} at the end: ${shortError(e)}`));
    }
  }

  private result(): ChaosResult {
    this.counts.agentSyncs = this.ag.syncCount;
    this.counts.reconciles = this.ag.reconciles.length;
    if (this.ag.running === false) this.violation('the agent is not running at the end');

    return {
      version: this.opts.version,
      backend: this.ub ? 'ubs' : 'local',
      containerdVersion: this.inst!.version,
      seed: this.seed,
      durationMs: Date.now() - this.started,
      timedOut: this.timedOut,
      counts: this.counts,
      violations: this.violations,
      createFailureKinds: this.createFailureKinds,
      agentErrors: this.ag.errors.slice(0, 50),
      agentLog: this.violations.length ? keepLog(this.ag.logPath, this.opts.artifactsDir ?? '/tmp', this.seed, this.opts.version) : undefined,
    };
  }

  private async tearDown(): Promise<void> {
    this.stopChurn = true;
    await this.agent?.stop().catch(() => undefined);
    this.agent?.close();
    await this.inst?.stop().catch((e: unknown) => this.log(`chaos: containerd stop: ${(e as Error).message}`));
    await this.node?.cleanup().catch((e: unknown) => this.log(`chaos: UB node cleanup: ${(e as Error).message}`));
    // the agent leaves shares mounted when it stops; whatever is left is ours to take down
    if (this.cfg) for (const m of mountsUnder(this.cfg.sharesDir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
    if (existsSync(this.dir) && mountsUnder(this.dir).length === 0) spawnSync('rm', ['-rf', '--one-file-system', this.dir]);
  }
}

function keepLog(path: string, to: string, seed: number, version: string): string | undefined {
  try {
    const dest = join(to, `nrims-chaos-${version}-${seed}-agent.log`);
    copyFileSync(path, dest);
    return dest;
  } catch {
    return undefined;
  }
}

/** One line of counts for humans. */
export function summary(r: ChaosResult): string {
  const c = r.counts;
  return (
    `${r.backend === 'ubs' ? 'UB mode, ' : ''}containerd ${r.version} (${r.containerdVersion}) seed ${r.seed}: ${(r.durationMs / 1000).toFixed(1)} s, ` +
    `kills ${c.kills} (before sync ${c.killsBeforeSync}, during CreateContainer ${c.killsDuringCreate}), containerd restarts ${c.containerdRestarts}, ` +
    `agent syncs ${c.agentSyncs}, pods ${c.pods} (removed ${c.podsRemoved}), containers ${c.containers} (started ${c.containersStarted}, stopped ${c.containersStopped}, removed ${c.containersRemoved}, create failures ${c.createFailures}), ` +
    `created without shares ${c.createdWithoutShares}, evictions ${c.evictions}, checks: mounts ${c.mountChecks} markers ${c.markerChecks} host ${c.hostChecks}, ` +
    (r.backend === 'ubs'
      ? `UB: kills during attach ${c.killsDuringAttach}, during release ${c.killsDuringRelease}, device checks ${c.deviceChecks}, stale seen ${c.staleSeen}, ` +
        `refused as still attaching ${c.pendingRefusals}, shares in the double at the end ${c.ubSharesAtEnd}, after removing every pod: ${c.ubSharesLeft} shares ${c.ubMapsLeft} maps, ` +
        `running with stale device numbers at the end ${c.staleRunningAtEnd}, last kill between allocate and map ${c.lastAttachKill ? 'done' : 'NOT DONE'}, `
      : '') +
    `leaks found ${c.leaks}, violations ${r.violations.length}${r.timedOut ? ' (DURATION LIMIT HIT)' : ''}`
  );
}
