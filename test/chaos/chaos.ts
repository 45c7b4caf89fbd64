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
import { chooseSeed, makeRng, type Rng } from './prng';

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

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const seed = chooseSeed(opts.seed);
  const rng: Rng = makeRng(seed);
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const started = Date.now();
  const limit = opts.durationLimitMs ?? Number.POSITIVE_INFINITY;
  const ub = opts.backend === 'ubs';
  log(`chaos: containerd ${opts.version}${ub ? ', UB mode' : ''}, seed ${seed} (CHAOS_SEED=${seed} replays the choices), ${opts.kills} kills, ${opts.containerdRestarts} containerd restarts`);

  const counts: ChaosCounts = {
    kills: 0, killsBeforeSync: 0, killsDuringCreate: 0, containerdRestarts: 0, agentSyncs: 0, reconciles: 0,
    pods: 0, podsRemoved: 0, containers: 0, containersStarted: 0, containersStopped: 0, containersRemoved: 0,
    createFailures: 0, createdWithoutShares: 0, evictions: 0, mountChecks: 0, markerChecks: 0, hostChecks: 0, leaks: 0,
    killsDuringAttach: 0, killsDuringRelease: 0, deviceChecks: 0, staleSeen: 0, pendingRefusals: 0,
    ubSharesAtEnd: 0, ubSharesLeft: 0, ubMapsLeft: 0, staleRunningAtEnd: 0, lastAttachKill: 0, keptDataChecks: 0,
  };
  const violations: string[] = [];
  const createFailureKinds: Record<string, number> = {};
  const t = () => `+${((Date.now() - started) / 1000).toFixed(1)}s`;
  const violation = (what: string, leak = false): void => {
    const line = `${t()} ${what}`;
    violations.push(line);
    if (leak) counts.leaks++;
    log(`chaos: VIOLATION ${line}`);
  };

  const dir = mkdtempSync('/tmp/nrims-chaos-');
  let inst: ContainerdInstance | undefined;
  let agent: AgentSlot | undefined;
  const pods = new Map<string, PodM>();
  const ctrs = new Map<string, CtrM>();
  let cdEpoch = 0; // bumped at the start and the end of each containerd restart
  let cdRestarting = false;
  let createsInFlight = 0;
  let stopsInFlight = 0;
  let node: UbsNode | undefined;
  // containerd 2.1.9 deadlocks when a plugin registers while a RemovePodSandbox is in flight (its
  // forced stop takes NRI's plugin-sync read lock a second time behind the waiting sync): pod
  // removals therefore run only while the agent is synchronized and no kill is pending.
  let removalsInFlight = 0;
  /** containers whose StartContainer is in flight (a containerd restart under it ends them) */
  const startsInFlight = new Set<string>();
  let killPending = false;
  let stopChurn = false;
  let cfg: ReturnType<typeof writeAgentConfig> | undefined;
  const exitHook = (): void => agent?.killSync();
  process.on('exit', exitHook);

  const hostPath = (r: Ref) => join(cfg!.sharesDir, r.ns, r.name);
  const markerName = (id: string) => `.chaos-${id.slice(0, 16)}`;

  try {
    // a UB node is made before containerd starts: 2.1's config names its CDI dir
    if (ub) node = new UbsNode();
    inst = await startContainerd({ version: opts.version, ...(node && opts.version === '2.1' ? { cdiSpecDirs: [node.cdiDir] } : {}) });
    const cri = inst.cri;
    const startTracked = async (id: string): Promise<void> => {
      startsInFlight.add(id);
      try {
        await cri.startContainer(id);
      } finally {
        startsInFlight.delete(id);
      }
    };
    log(`chaos: containerd ${inst.version} in ${inst.dir}; work dir ${dir}${node ? `; UB node ${node.dir}` : ''}`);
    if (node) {
      await node.start();
      importUbsImage(inst);
      node.control(Object.entries(DELAYS).map(([op, ms]) => `delay_ms.${op}=${ms}\n`).join(''));
    }
    cfg = writeAgentConfig(dir, inst.nriSocket, ub ? [...SHARES, LONE, KEPT] : SHARES, node?.backendConfig({ backend: { budgetMs: UB_BUDGET_MS } }));
    agent = new AgentSlot(cfg.config, join(dir, 'agent.log'), node ? { env: node.agentEnv(), readyLog: /^ubs: connected to the UB memory daemon/ } : {});
    const ag = agent;
    const image = ub ? UBS_IMAGE : undefined;
    ag.start();
    await ag.waitSynced();

    // UB: a pod the churn leaves alone holds KEPT; its application maps it only now and then (here:
    // never), so only the holder keeps it attached through every agent kill; its bytes are checked
    // at the end, with its memids
    let keeper: { podId: string; token: string; memids: number[] } | undefined;
    if (ub) {
      const kp = await cri.runPod({ name: uniqueName('chaos-keeper'), namespace: NAMESPACE, annotations: { [POD_KEY]: KEPT.name } });
      await cri.runContainer(kp, { name: 'app', image });
      const sdk = sdkNameOf(KEPT.ns, KEPT.name);
      const token = uniqueName('kept-bytes');
      const w = node!.consumer(['--sdk-name', sdk, 'write', '4096', token]);
      if (w.status !== 0) violation(`writing the keeper's bytes: ${w.out}`);
      keeper = { podId: kp.id, token, memids: node!.attachment(sdk)?.memids ?? [] };
      log(`chaos: keeper pod bound to ${KEPT.ns}/${KEPT.name} (memids ${keeper.memids.join(' ')}), ${token.length} bytes written`);
    }

    // ---------------- churn ----------------
    const window = () => ({ epoch: ag.epoch, synced: ag.synced && !cdRestarting, cd: cdEpoch });
    const stillClean = (w: ReturnType<typeof window>) => w.synced && ag.epoch === w.epoch && ag.synced && !cdRestarting && cdEpoch === w.cd;

    const adoptPod = (p: PodInfo): PodM => {
      let m = pods.get(p.id);
      if (!m) {
        m = { id: p.id, name: p.metadata.name, annotations: p.annotations ?? {}, stopRequested: false };
        pods.set(p.id, m);
      }
      return m;
    };
    const adoptCtr = (c: ContainerInfo): CtrM => {
      let m = ctrs.get(c.id);
      if (!m) {
        const pod = pods.get(c.pod_sandbox_id);
        m = {
          id: c.id, podId: c.pod_sandbox_id, name: c.metadata.name,
          wants: pod ? wantedShares(pod.annotations, NAMESPACE, c.metadata.name) : [],
          clean: false, adopted: true, stopRequested: pod?.stopRequested ?? false, verified: false, evicted: false, addedAt: Date.now(), createdEpoch: 0,
        };
        ctrs.set(c.id, m);
      }
      return m;
    };

    const churnOnce = async (): Promise<void> => {
      let cPods: PodInfo[];
      let cCtrs: ContainerInfo[];
      try {
        cPods = (await cri.listPods()).filter((p) => p.id !== keeper?.podId);
        cCtrs = (await cri.listContainers()).filter((c) => c.pod_sandbox_id !== keeper?.podId);
      } catch {
        await sleep(200);
        return;
      }
      for (const p of cPods) adoptPod(p);
      for (const c of cCtrs) adoptCtr(c);
      const ready = cPods.filter((p) => p.state === 'SANDBOX_READY' && !pods.get(p.id)!.stopRequested);
      const withFreeName = ready.filter((p) => pods.get(p.id)!.config && cCtrs.filter((c) => c.pod_sandbox_id === p.id).length < CONTAINER_NAMES.length);
      const created = cCtrs.filter((c) => c.state === 'CONTAINER_CREATED' && !ctrs.get(c.id)!.stopRequested);
      const running = cCtrs.filter((c) => c.state === 'CONTAINER_RUNNING' && !ctrs.get(c.id)!.stopRequested);
      const exited = cCtrs.filter((c) => c.state === 'CONTAINER_EXITED');
      const action = rng.weighted({
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
            const refs = (x: string): string => (ub ? x.replace(/:ro/g, '') : x);
            const v = rng.pick(POD_VALUES);
            if (v !== undefined) annotations[POD_KEY] = refs(v);
            if (rng.chance(0.35)) annotations[`${CTR_KEY}side`] = refs(rng.pick(['-', 'gamma', 'alpha:ro', 'beta,alpha']));
            if (rng.chance(0.2)) annotations[`${CTR_KEY}tool`] = refs(rng.pick(['-', 'beta:ro']));
            const name = uniqueName('chaos');
            const pod = await cri.runPod({ name, namespace: NAMESPACE, annotations });
            pods.set(pod.id, { id: pod.id, name, annotations, config: pod.config, stopRequested: false });
            counts.pods++;
            break;
          }
          case 'createContainer': {
            const p = rng.pick(withFreeName);
            const pm = pods.get(p.id)!;
            const taken = new Set(cCtrs.filter((c) => c.pod_sandbox_id === p.id).map((c) => c.metadata.name));
            const name = rng.pick(CONTAINER_NAMES.filter((n) => !taken.has(n)));
            const w = window();
            createsInFlight++;
            let id: string;
            try {
              id = await cri.createContainer(p.id, pm.config!, { name, image });
            } catch (e) {
              counts.createFailures++;
              const kind = shortError(e);
              createFailureKinds[kind] = (createFailureKinds[kind] ?? 0) + 1;
              // UB: an SDK call slower than the budget (the delays are injected; the machine is
              // shared) is refused for the kubelet's retry, as documented: not a fault
              if (ub && /is still being attached/.test(kind)) counts.pendingRefusals++;
              // the agent refusing while it was up the whole time is not chaos, it is a bug
              else if (stillClean(w) && /memshare/.test(kind)) violation(`CreateContainer ${name} in pod ${pm.name} refused while the agent was up: ${kind}`);
              break;
            } finally {
              createsInFlight--;
            }
            const clean = stillClean(w);
            const existing = ctrs.get(id); // adopted by the checker meanwhile
            ctrs.set(id, {
              id, podId: p.id, name, wants: wantedShares(pm.annotations, NAMESPACE, name), clean, adopted: false,
              stopRequested: existing?.stopRequested ?? false, verified: existing?.verified ?? false,
              lackingSince: existing?.lackingSince, lackingSyncs: existing?.lackingSyncs, evicted: existing?.evicted ?? false,
              addedAt: existing?.addedAt ?? Date.now(), createdEpoch: w.epoch, verifiedPid: existing?.verifiedPid,
            });
            counts.containers++;
            if (rng.chance(0.85)) {
              await startTracked(id);
              counts.containersStarted++;
            }
            break;
          }
          case 'start': {
            const c = rng.pick(created);
            await startTracked(c.id);
            counts.containersStarted++;
            break;
          }
          case 'stop': {
            const c = rng.pick(running);
            ctrs.get(c.id)!.stopRequested = true;
            stopsInFlight++;
            try {
              await cri.stopContainer(c.id, 1);
            } finally {
              stopsInFlight--;
            }
            counts.containersStopped++;
            break;
          }
          case 'remove': {
            const c = rng.pick(exited);
            ctrs.get(c.id)!.stopRequested = true;
            await cri.removeContainer(c.id);
            counts.containersRemoved++;
            break;
          }
          case 'removePod': {
            if (!ag.synced || killPending || cdRestarting) break;
            const p = rng.pick(cPods);
            pods.get(p.id)!.stopRequested = true;
            for (const c of ctrs.values()) if (c.podId === p.id) c.stopRequested = true;
            removalsInFlight++;
            try {
              await cri.stopPod(p.id);
              await cri.removePod(p.id);
            } finally {
              removalsInFlight--;
            }
            counts.podsRemoved++;
            break;
          }
          default:
            await sleep(50);
        }
      } catch {
        // expected while containerd restarts or the agent dies mid-call; the next listing tells what exists
      }
      await sleep(rng.int(0, 60));
    };

    // ---------------- checks ----------------
    const confirmRunning = async (c: CtrM): Promise<boolean> => {
      if (c.stopRequested) return false;
      try {
        const st = await cri.containerStatus(c.id);
        return st.state === 'CONTAINER_RUNNING' && !c.stopRequested;
      } catch {
        return false;
      }
    };

    /** (c) host side: the share's host path is a tmpfs mount holding the container's marker. */
    const hostProblem = (c: CtrM): string | undefined => {
      const mounts = hostMounts();
      for (const r of c.wants) {
        const hp = hostPath(r);
        const m = mounts.filter((x) => x.mountPoint === hp).pop();
        if (!m) return `host path ${hp} of share ${r.ns}/${r.name} is not a mount point`;
        if (m.fsType !== 'tmpfs') return `host path ${hp} is a ${m.fsType} mount, not tmpfs`;
        let content = '';
        try {
          content = readFileSync(join(hp, markerName(c.id)), 'utf8');
        } catch {
          content = '<missing>';
        }
        if (content !== c.id) return `share ${r.ns}/${r.name}: host path lost the marker of container ${c.id.slice(0, 12)} (read ${JSON.stringify(content.slice(0, 20))}): unmounted or replaced under it`;
      }
      return undefined;
    };

    // ---- UB mode: device numbers in the runtime spec against the double
    type DevState = { kind: 'ok'; pid: number } | { kind: 'none' } | { kind: 'stale' | 'mode'; detail: string } | { kind: 'unknown' };
    /** the UB holder's pid (looked up at most every 300 ms), or undefined when none runs */
    let holderSeen = { at: 0, pid: undefined as number | undefined };
    const holderPid = (): number | undefined => {
      if (Date.now() - holderSeen.at > 300) {
        const r = spawnSync('pgrep', ['-f', `socket ${join(cfg!.stateDir, 'ubs-holder.sock')}`], { encoding: 'utf8' });
        const pids = (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
        holderSeen = { at: Date.now(), pid: pids.length === 1 ? pids[0] : undefined };
      }
      return holderSeen.pid;
    };
    /** what the runtime spec of a started container says, against the memids the UB holder keeps attached now */
    const deviceState = (c: CtrM): DevState => {
      let devs;
      try {
        devs = (ociSpec(inst!, c.id).linux.devices ?? []).filter((d) => d.major === node!.major);
      } catch {
        return { kind: 'unknown' }; // not started yet, or gone
      }
      if (devs.length === 0) return { kind: 'none' };
      // the UB holder keeps the node's shares attached (it outlives the agent's kills)
      const pid = holderPid();
      if (pid === undefined) return { kind: 'stale', detail: 'no UB holder runs: nothing keeps its shares attached' };
      const want = new Map<number, Ref>();
      for (const r of c.wants) {
        const a = node!.attachment(sdkNameOf(r.ns, r.name));
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
    };

    const lacking = (c: CtrM): void => {
      c.lackingSince = Date.now();
      c.lackingSyncs = ag.syncCount;
    };

    /** (d), UB: a new running container's device numbers */
    const verifyDevices = async (c: CtrM): Promise<void> => {
      const st = deviceState(c);
      if (st.kind === 'unknown' || c.stopRequested) return;
      counts.deviceChecks++;
      if (st.kind === 'ok') {
        c.verified = true;
        c.verifiedPid = st.pid;
        return;
      }
      if (!(await confirmRunning(c))) return;
      const what = `container ${c.id.slice(0, 12)} (${c.name}, pod ${pods.get(c.podId)?.name})`;
      if (st.kind === 'mode') {
        violation(`(d) ${what}: ${st.detail}`);
        c.lackingReported = true;
        return;
      }
      const sameRun = c.clean && c.createdEpoch === ag.epoch && ag.running;
      if (st.kind === 'none') {
        if (sameRun) {
          violation(`(d) ${what} runs without device nodes, though it was created while the agent was up and synchronized`);
          c.lackingReported = true;
        } else {
          log(`chaos: ${t()} ${what} runs without device nodes: created while the agent was down or dying; it must be evicted`);
          counts.createdWithoutShares++;
        }
      } else if (sameRun) {
        // the agent that created it is still the one running: nothing re-attached its shares
        violation(`(d) ${what} was created by the running agent with device numbers the double does not have: ${st.detail}`);
        c.lackingReported = true;
      } else {
        log(`chaos: ${t()} ${what} runs with stale device numbers (${st.detail}); it must be evicted`);
        counts.staleSeen++;
      }
      lacking(c);
    };

    /** (c), UB: a verified container's device numbers stay valid while the agent that made them runs */
    const recheckDevices = async (c: CtrM): Promise<void> => {
      counts.hostChecks++;
      const st = deviceState(c);
      if (st.kind === 'ok' || st.kind === 'unknown' || st.kind === 'mode') return;
      if (!(await confirmRunning(c))) return;
      c.verified = false;
      if (holderPid() === c.verifiedPid) {
        violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound, and its share was released or re-attached under it while the same UB holder ran (pid ${c.verifiedPid}): ${st.kind === 'none' ? 'no devices' : st.detail}`);
        c.stopRequested = true; // report once
        return;
      }
      log(`chaos: ${t()} container ${c.id.slice(0, 12)} (${c.name}) now has stale device numbers (${st.kind === 'none' ? 'none' : st.detail}); it must be evicted`);
      counts.staleSeen++;
      lacking(c);
    };

    const verifyMounts = async (c: CtrM): Promise<void> => {
      if (ub) return verifyDevices(c);
      let out;
      try {
        out = await cri.execSync(c.id, ['/bin/cat', '/proc/self/mountinfo'], 5);
      } catch {
        return; // containerd restarting, or the container went
      }
      if (out.exitCode !== 0 || c.stopRequested) return;
      counts.mountChecks++;
      const mi = parseMountinfo(out.stdout);
      const missing = c.wants.filter((r) => !mi.has(`/dev/shm/${r.name}`));
      const wrongMode = c.wants.filter((r) => mi.has(`/dev/shm/${r.name}`) && mi.get(`/dev/shm/${r.name}`)!.includes('ro') !== r.ro);
      for (const r of wrongMode) violation(`(d) container ${c.id.slice(0, 12)} (${c.name}) has /dev/shm/${r.name} mounted ${r.ro ? 'rw' : 'ro'}, asked ${r.ro ? 'ro' : 'rw'}`);
      if (missing.length === 0) {
        // write the markers through the host path; from now on the container must always see them
        for (const r of c.wants) {
          const hp = hostPath(r);
          if (!hostMounts().some((m) => m.mountPoint === hp && m.fsType === 'tmpfs')) {
            if (await confirmRunning(c)) violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound to ${r.ns}/${r.name} but its host path ${hp} is not a tmpfs mount`);
            return;
          }
          try {
            writeFileSync(join(hp, markerName(c.id)), c.id);
          } catch (e) {
            if (await confirmRunning(c)) violation(`(c) cannot write marker into ${hp} while container ${c.id.slice(0, 12)} runs bound to it: ${(e as Error).message}`);
            return;
          }
        }
        c.verified = true;
        return;
      }
      const what = `container ${c.id.slice(0, 12)} (${c.name}, pod ${pods.get(c.podId)?.name}) runs without ${missing.map((r) => `/dev/shm/${r.name}`).join(', ')}`;
      if (c.clean) {
        violation(`(d) ${what}, though it was created while the agent was up and synchronized`);
        c.lackingReported = true;
      } else {
        log(`chaos: ${t()} ${what}: created while the agent was down or dying; it must be evicted`);
        counts.createdWithoutShares++;
      }
      c.lackingSince = Date.now();
      c.lackingSyncs = ag.syncCount;
    };

    const checkMarkers = async (c: CtrM): Promise<void> => {
      const files = c.wants.map((r) => `/dev/shm/${r.name}/${markerName(c.id)}`);
      let out;
      try {
        out = await cri.execSync(c.id, ['/bin/sh', '-c', 'for f; do echo "== $f"; cat "$f" 2>/dev/null || echo "<missing>"; echo; done', 'sh', ...files], 5);
      } catch {
        return;
      }
      if (c.stopRequested) return;
      counts.markerChecks++;
      const bad: string[] = [];
      for (const f of files) {
        const m = new RegExp(`== ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n([^\\n]*)`).exec(out.stdout);
        if (!m || m[1] !== c.id) bad.push(`${f}: ${JSON.stringify((m?.[1] ?? '<no output>').slice(0, 30))}`);
      }
      if (bad.length && (await confirmRunning(c))) {
        violation(`(c) running container ${c.id.slice(0, 12)} (${c.name}) no longer sees its marker: ${bad.join('; ')} (its share was unmounted or replaced under it)`);
        c.verified = false;
        c.stopRequested = true; // report once
      }
    };

    const checkRound = async (final = false): Promise<void> => {
      let cCtrs: ContainerInfo[];
      const listedAt = Date.now();
      try {
        cCtrs = await cri.listContainers();
      } catch {
        return;
      }
      const state = new Map(cCtrs.map((c) => [c.id, c.state]));
      for (const c of cCtrs) adoptCtr(c);
      for (const c of ctrs.values()) {
        const s = state.get(c.id);
        if (c.addedAt >= listedAt) continue; // created after this listing was asked for
        if (s === undefined && !c.stopRequested) c.stopRequested = true; // gone with its pod
        if (s === 'CONTAINER_EXITED' && !c.stopRequested && !c.evicted) {
          c.evicted = true;
          counts.evictions++;
          // UB: every agent death detaches the shares, so each restart legitimately evicts the
          // containers made before it; one evicted by the agent run that created it is a fault
          if (ub) {
            if (c.wants.length === 0) violation(`container ${c.id.slice(0, 12)} (${c.name}) asks for no share and was stopped without a CRI stop`);
            else if (!c.adopted && c.clean && c.createdEpoch === ag.epoch) violation(`container ${c.id.slice(0, 12)} (${c.name}) created while the agent was up was evicted by that same agent run ${ag.epoch}`);
          } else if (c.verified) violation(`container ${c.id.slice(0, 12)} (${c.name}) had its shares and was evicted (stopped without a CRI stop)`);
          else if (c.clean && c.wants.length) violation(`container ${c.id.slice(0, 12)} (${c.name}) created while the agent was up was evicted`);
          else if (c.wants.length === 0) violation(`container ${c.id.slice(0, 12)} (${c.name}) asks for no share and was stopped without a CRI stop`);
        }
      }
      const running = [...ctrs.values()].filter((c) => state.get(c.id) === 'CONTAINER_RUNNING' && !c.stopRequested && c.wants.length > 0);
      // (d): new running containers: are their shares there?
      const unverified = running.filter((c) => !c.verified && c.lackingSince === undefined);
      // device checks read files: all of them every round; mount checks exec into containers: a few
      for (const c of final || ub ? unverified : unverified.slice(0, 3)) await verifyMounts(c);
      // (d): containers without their shares must go
      for (const c of running) {
        if (c.lackingSince === undefined || c.lackingReported) continue;
        if (Date.now() - c.lackingSince > EVICT_BOUND_MS && ag.syncCount >= (c.lackingSyncs ?? 0) + 2 && (await confirmRunning(c))) {
          violation(`(d) container ${c.id.slice(0, 12)} (${c.name}) still runs without its shares ${((Date.now() - c.lackingSince) / 1000).toFixed(0)} s and ${ag.syncCount - c.lackingSyncs!} agent synchronizations after it was seen so: not evicted`);
          c.lackingReported = true;
        }
      }
      // (c): host side for every verified container, container side for a few
      const verified = running.filter((c) => c.verified);
      if (ub) {
        for (const c of verified) await recheckDevices(c);
        return;
      }
      for (const c of verified) {
        counts.hostChecks++;
        const p = hostProblem(c);
        if (p && (await confirmRunning(c))) {
          violation(`(c) container ${c.id.slice(0, 12)} (${c.name}) runs bound: ${p}`);
          c.verified = false;
          c.stopRequested = true;
        }
      }
      const sample = final ? verified : verified.sort(() => rng.next() - 0.5).slice(0, 2);
      for (const c of sample) await checkMarkers(c);
    };

    // ---------------- kills ----------------
    const restartAt = new Set<number>();
    for (let r = 1; r <= opts.containerdRestarts; r++) restartAt.add(Math.floor((r * opts.kills) / (opts.containerdRestarts + 1)));
    let timedOut = false;
    const restartContainerd = async (): Promise<void> => {
      cdRestarting = true;
      while (removalsInFlight > 0) await sleep(5);
      // a StartContainer that containerd dies or restarts under leaves the container EXITED
      // (containerd's recovery, with no plugin involved): such an exit is explained, not an eviction
      for (const id of startsInFlight) {
        const c = ctrs.get(id);
        if (c) c.stopRequested = true;
      }
      cdEpoch++;
      ag.unsync();
      const crash = rng.chance(0.34);
      log(`chaos: ${t()} containerd ${crash ? 'SIGKILL + start' : 'restart'}`);
      if (crash) await inst!.kill();
      await inst!.restart();
      cdEpoch++;
      cdRestarting = false;
      counts.containerdRestarts++;
      try {
        await ag.waitSynced(60_000);
      } catch (e) {
        violation(`agent did not synchronize after containerd restarted: ${(e as Error).message}`);
      }
    };
    const killer = async (): Promise<void> => {
      for (let k = 0; k < opts.kills; k++) {
        if (Date.now() - started > limit) {
          timedOut = true;
          log(`chaos: duration limit reached after ${counts.kills} kills`);
          break;
        }
        if (restartAt.has(k)) await restartContainerd();
        const mode = ub
          ? rng.weighted({ afterSync: 3, beforeSync: 1.5, duringAttach: 3, duringRelease: 2.5 })!
          : rng.weighted({ afterSync: 6, beforeSync: 2, duringCreate: 2 })!;
        if (mode === 'duringAttach' || mode === 'duringRelease') {
          // UB: wait for a CreateContainer (attach) or StopContainer (release) blocked in an SDK call
          try {
            await ag.waitSynced(30_000);
          } catch (e) {
            violation(`agent run ${ag.epoch} did not synchronize: ${(e as Error).message}`);
          }
          const inWindow = (): boolean =>
            (mode === 'duringAttach' ? createsInFlight > 0 && stopsInFlight === 0 : stopsInFlight > 0 && createsInFlight === 0) && inSdkCall(holderPid());
          const until = Date.now() + 4000;
          while (!inWindow() && Date.now() < until) await sleep(3);
          if (inWindow()) {
            await sleep(rng.int(0, 40)); // inside the call's delay (150 to 250 ms)
            if (mode === 'duringAttach') counts.killsDuringAttach++;
            else counts.killsDuringRelease++;
          }
        } else if (mode === 'beforeSync') {
          await sleep(rng.int(0, 500));
          if (ag.synced) {
            await sleep(rng.int(0, 300));
          } else counts.killsBeforeSync++;
        } else {
          try {
            await ag.waitSynced(30_000);
          } catch (e) {
            violation(`agent run ${ag.epoch} did not synchronize: ${(e as Error).message}`);
          }
          if (mode === 'afterSync') await sleep(rng.int(50, 1200));
          else {
            const until = Date.now() + 3000;
            while (createsInFlight === 0 && Date.now() < until) await sleep(2);
            if (createsInFlight > 0) {
              await sleep(rng.int(0, 25));
              counts.killsDuringCreate++;
            }
          }
        }
        killPending = true;
        while (removalsInFlight > 0) await sleep(5);
        await ag.kill('SIGKILL');
        counts.kills++;
        ag.start();
        killPending = false;
        if (counts.kills % 20 === 0) log(`chaos: ${t()} ${counts.kills} kills, ${counts.containers} containers, ${counts.pods} pods, ${violations.length} violations`);
      }
      try {
        await ag.waitSynced(30_000);
      } catch (e) {
        violation(`agent did not synchronize after the last kill: ${(e as Error).message}`);
      }
    };

    const churn = (async () => {
      while (!stopChurn) await churnOnce();
    })();
    const checker = (async () => {
      while (!stopChurn) {
        await checkRound();
        await sleep(150);
      }
    })();
    await killer();
    stopChurn = true;
    await churn;
    await checker;

    // ---------------- settle ----------------
    log(`chaos: ${t()} churn stopped; settling`);
    await ag.waitSynced(30_000).catch((e: Error) => violation(`agent not synchronized at the end: ${e.message}`));
    // a final reconcile after everything stopped moving would hide event-path bugs: none is forced.
    const settleUntil = Date.now() + EVICT_BOUND_MS + 15_000;
    for (;;) {
      await checkRound(true);
      const cCtrs = await cri.listContainers().catch(() => [] as ContainerInfo[]);
      const pending = cCtrs.filter((c) => {
        const m = ctrs.get(c.id);
        return m && c.state === 'CONTAINER_RUNNING' && m.wants.length > 0 && !m.stopRequested && !m.verified && !m.lackingReported;
      });
      if (pending.length === 0 || Date.now() > settleUntil) {
        for (const c of pending) violation(`(d) container ${c.id.slice(0, 12)} (${c.metadata.name}) still runs without its shares at the end (not evicted)`);
        break;
      }
      await sleep(250);
    }

    // UB: no running bound container may be left with stale or missing device numbers
    if (ub) {
      for (const c of await cri.listContainers()) {
        const m = ctrs.get(c.id);
        if (!m || c.state !== 'CONTAINER_RUNNING' || m.wants.length === 0 || m.stopRequested) continue;
        const st = deviceState(m);
        if (st.kind !== 'ok' && (await confirmRunning(m))) {
          counts.staleRunningAtEnd++;
          if (!m.lackingReported) violation(`(d) container ${c.id.slice(0, 12)} (${c.metadata.name}) runs at the end with ${st.kind === 'none' ? 'no device nodes' : `stale device numbers: ${st.kind === 'unknown' ? 'no runtime spec' : st.detail}`}`);
        }
      }
    }

    /**
     * (b), UB: every share in the double is held by a container on record and every held share is
     * in the double; with expectEmpty, no share and no mapping is left. Releases (their SDK calls
     * delayed) may still be under way: agreement is waited for, bounded.
     */
    const ubCheck = async (phase: string, expectEmpty: boolean): Promise<void> => {
      const until = Date.now() + 30_000;
      let problems: string[];
      for (;;) {
        problems = [];
        const st = agentStatus(cfg!.config);
        const heldBy = new Set(st.shares.filter((s) => s.holders.length).map((s) => sdkNameOf(s.namespace, s.name)));
        const inDouble = node!.shares();
        for (const n of inDouble) if (!heldBy.has(n)) problems.push(`share ${n} is in the double but no container on record holds it`);
        for (const n of heldBy) if (!inDouble.includes(n)) problems.push(`share ${n} is held on record but is not in the double`);
        if (expectEmpty) for (const m of node!.maps()) problems.push(`mapping ${m} is left in the double`);
        if (problems.length === 0 || Date.now() > until) break;
        await sleep(500);
      }
      for (const p of problems) violation(`(b) ${phase}: ${p}`, true);
      if (expectEmpty) {
        counts.ubSharesLeft = node!.shares().length;
        counts.ubMapsLeft = node!.maps().length;
      } else counts.ubSharesAtEnd = node!.shares().length;
    };

    // (a) and (b)
    const finalCheck = async (phase: string, expectEmpty: boolean): Promise<void> => {
      const st = agentStatus(cfg!.config);
      const cCtrs = await cri.listContainers();
      const cPods = await cri.listPods();
      const podById = new Map(cPods.map((p) => [p.id, p]));
      const byId = new Map(cCtrs.map((c) => [c.id, c]));
      const held = new Map<string, Set<string>>(); // container id -> shares
      for (const s of st.shares) {
        for (const h of s.holders) {
          const c = byId.get(h.container.id);
          if (!c) violation(`(a) ${phase}: record of ${s.namespace}/${s.name} for container ${h.container.id.slice(0, 12)} (${h.container.name}) that does not exist`, true);
          else if (c.state !== 'CONTAINER_CREATED' && c.state !== 'CONTAINER_RUNNING') violation(`(a) ${phase}: record of ${s.namespace}/${s.name} for container ${c.id.slice(0, 12)} (${c.metadata.name}) that is ${c.state}`, true);
          let set = held.get(h.container.id);
          if (!set) held.set(h.container.id, (set = new Set()));
          set.add(`${s.namespace}/${s.name}`);
        }
        if (ub) continue; // (b) for UB shares: ubCheck, from the double
        if (!s.present && s.holders.length) violation(`(b) ${phase}: share ${s.namespace}/${s.name} has ${s.holders.length} holder(s) on record but is not mounted`, true);
        if (s.present && s.holders.length === 0) violation(`(b) ${phase}: share ${s.namespace}/${s.name} is mounted at ${s.location} without a user on record`, true);
      }
      // a container only created (no process) while the agent was down cannot be killed yet: the
      // agent evicts it when it starts; it passes if a reconcile listed it for eviction
      const toEvict = new Set(ag.reconciles.flatMap((r) => r.evicted));
      for (const c of cCtrs) {
        if (c.state !== 'CONTAINER_CREATED' && c.state !== 'CONTAINER_RUNNING') continue;
        if (c.state === 'CONTAINER_CREATED' && toEvict.has(c.id)) continue;
        const p = podById.get(c.pod_sandbox_id);
        if (!p) continue;
        for (const r of wantedShares(p.annotations ?? {}, p.metadata.namespace, c.metadata.name)) {
          if (!held.get(c.id)?.has(`${r.ns}/${r.name}`)) violation(`(a) ${phase}: ${c.state} container ${c.id.slice(0, 12)} (${c.metadata.name}) asks for ${r.ns}/${r.name} but holds no record of it and was not evicted`, true);
        }
      }
      // (b) from the host's own mount table, independent of the status command (UB: nothing is mounted there)
      const recorded = new Set(st.shares.filter((s) => s.holders.length).map((s) => join(cfg!.sharesDir, s.namespace, s.name)));
      for (const m of mountsUnder(cfg!.sharesDir)) {
        if (!recorded.has(m)) violation(`(b) ${phase}: ${m} is mounted on the host without a user on record`, true);
      }
      if (ub) await ubCheck(phase, expectEmpty);
      if (expectEmpty) {
        const holders = st.shares.reduce((n, s) => n + s.holders.length, 0);
        if (holders) violation(`(a) ${phase}: ${holders} binding(s) still on record after every pod was removed`, true);
      }
      for (const w of st.warnings) log(`chaos: status warning (${phase}): ${w}`);
    };
    // an eviction's exit reaches the agent as containerd's StopContainer event, asynchronously: give
    // records of containers that just exited a bounded time to end before judging them
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(250)) {
      const live = new Set((await cri.listContainers().catch(() => [] as ContainerInfo[]))
        .filter((c) => c.state === 'CONTAINER_CREATED' || c.state === 'CONTAINER_RUNNING').map((c) => c.id));
      if (agentStatus(cfg!.config).shares.every((s) => s.holders.every((h) => live.has(h.container.id)))) break;
    }
    await finalCheck('end of chaos', false);

    // UB: the keeper's share went through every kill with no application mapping it
    if (keeper) {
      const sdk = sdkNameOf(KEPT.ns, KEPT.name);
      const r = node!.consumer(['--sdk-name', sdk, 'read', '4096', String(keeper.token.length)]);
      const memids = node!.attachment(sdk)?.memids ?? [];
      if (r.json.text !== keeper.token) violation(`(e) the keeper's share ${KEPT.ns}/${KEPT.name} lost its bytes through ${counts.kills} agent kills: read ${r.out.trim()}`);
      if (memids.join(' ') !== keeper.memids.join(' ')) violation(`(e) the keeper's share changed memids through agent kills: ${keeper.memids.join(' ')} -> ${memids.join(' ')}`);
      counts.keptDataChecks = r.json.text === keeper.token ? 1 : 0;
      log(`chaos: keeper data check after ${counts.kills} kills: ${r.json.text === keeper.token ? 'the same bytes' : 'LOST'}, memids ${memids.join(' ')}`);
    }

    // UB: one more kill, aimed after the SDK allocated a share that no other pod uses and before
    // the agent mapped it (in the map's delay): a restarted agent must still release it
    if (ub) {
      const sdk = sdkNameOf(LONE.ns, LONE.name);
      const lone = await cri.runPod({ name: uniqueName('chaos-lone'), namespace: NAMESPACE, annotations: { [POD_KEY]: LONE.name } });
      const created = cri.createContainer(lone.id, lone.config, { name: 'app', image }).then(() => 'created', (e: unknown) => `refused: ${shortError(e)}`);
      const inWindow = (): boolean => node!.shares().includes(sdk) && inSdkCall(holderPid());
      const until = Date.now() + 10_000;
      while (!inWindow() && Date.now() < until) await sleep(2);
      if (inWindow()) {
        await ag.kill('SIGKILL');
        counts.lastAttachKill = 1;
        ag.start();
      }
      log(`chaos: ${t()} last kill ${counts.lastAttachKill ? 'after allocate, before map' : 'found no window (not done)'}; CreateContainer ${await created}`);
      await ag.waitSynced(30_000).catch((e: Error) => violation(`agent not synchronized after the last kill: ${e.message}`));
    }

    // every pod goes (agent up, no kills): the last user of each share ends, so everything is released
    log(`chaos: ${t()} removing every pod`);
    for (const p of await cri.listPods()) {
      for (const c of ctrs.values()) if (c.podId === p.id) c.stopRequested = true;
      await cri.stopPod(p.id).catch((e: unknown) => violation(`StopPodSandbox ${p.id.slice(0, 12)} at the end: ${shortError(e)}`));
      await cri.removePod(p.id).catch((e: unknown) => violation(`RemovePodSandbox ${p.id.slice(0, 12)} at the end: ${shortError(e)}`));
    }
    await finalCheck('after removing every pod', true);
    counts.agentSyncs = ag.syncCount;
    counts.reconciles = ag.reconciles.length;
    if (ag.running === false) violation('the agent is not running at the end');

    return {
      version: opts.version,
      backend: ub ? 'ubs' : 'local',
      containerdVersion: inst.version,
      seed,
      durationMs: Date.now() - started,
      timedOut,
      counts,
      violations,
      createFailureKinds,
      agentErrors: ag.errors.slice(0, 50),
      agentLog: violations.length ? keepLog(ag.logPath, opts.artifactsDir ?? '/tmp', seed, opts.version) : undefined,
    };
  } finally {
    stopChurn = true;
    process.removeListener('exit', exitHook);
    await agent?.stop().catch(() => undefined);
    agent?.close();
    await inst?.stop().catch((e: unknown) => log(`chaos: containerd stop: ${(e as Error).message}`));
    await node?.cleanup().catch((e: unknown) => log(`chaos: UB node cleanup: ${(e as Error).message}`));
    // the agent leaves shares mounted when it stops; whatever is left is ours to take down
    if (cfg) for (const m of mountsUnder(cfg.sharesDir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
    if (existsSync(dir) && mountsUnder(dir).length === 0) spawnSync('rm', ['-rf', '--one-file-system', dir]);
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
