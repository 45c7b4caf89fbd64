// The memshare plugin as NRI handlers: converts NRI's pods and containers into the service's
// plain shapes, and the service's injection into an NRI container adjustment.
import { ContainerState, type Container, type ContainerAdjustment, type Handlers, type PodSandbox } from '../nri';
import { Evictor, killContainerInit, type EvictionFailure, type FailedEviction, type KillOutcome } from '../eviction/evictor';
import type { MemshareService } from '../memshare/service';
import type { ContainerInfo, ContainerInjection, ContainerStateName, PodInfo } from '../model';

const stateNames: Record<number, ContainerStateName> = {
  [ContainerState.CREATED]: 'created',
  [ContainerState.PAUSED]: 'paused',
  [ContainerState.RUNNING]: 'running',
  [ContainerState.STOPPED]: 'stopped',
};

export const podInfo = (p: PodSandbox): PodInfo => ({ id: p.id, name: p.name, namespace: p.namespace, uid: p.uid, annotations: p.annotations });

export const containerInfo = (c: Container): ContainerInfo => ({
  id: c.id,
  podSandboxId: c.podSandboxId,
  name: c.name,
  state: stateNames[c.state] ?? 'unknown',
  pid: c.pid,
  mounts: c.mounts.map((m) => m.destination),
});

/** Whose container an eviction is about, for the log (the runtime names it only by id). */
export interface ContainerWho {
  /** "namespace/name" */
  pod: string;
  container: string;
}

export interface PluginDeps {
  service: MemshareService;
  onReconciled?(report: Awaited<ReturnType<MemshareService['reconcile']>>): void;
  onEvicted?(containerId: string, outcome: KillOutcome, who?: ContainerWho): void;
  onError?(what: string, err: unknown): void;
  /** how an evicted container's init is stopped (tests replace it); default: pidfd + cgroup check + SIGKILL */
  kill?(containerId: string, pid: number): KillOutcome;
  /** a container found stale outside reconcile (e.g. a restored UB share has new device numbers) */
  onStale?(containerId: string, reason: string, who?: ContainerWho): void;
  /** delays between attempts of a failed eviction (default 1 s, 2 s, 4 s, 8 s) */
  evictionRetryDelaysMs?: readonly number[];
  /** each failed attempt to evict (without it: onError) */
  onEvictionFailed?(f: EvictionFailure, who?: ContainerWho): void;
  /** the evictions still failing changed (to persist them for `status`, and for a gauge) */
  onFailedEvictions?(failing: FailedEviction[]): void;
  /** failed evictions an earlier agent recorded: listed until the first reconcile decides */
  failedEvictions?: readonly FailedEviction[];
}

export function memshareHandlers(d: PluginDeps): Handlers {
  const { service } = d;
  /** created while the agent was down and not started at reconcile: evicted when they start */
  const evictOnStart = new Set<string>();
  // a listener that throws must not break the handler that evicts
  const guarded = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      d.onError?.(what, err);
    }
  };
  /** pod and name of the containers the runtime told about, by id (evictions are by id) */
  const whoOf = new Map<string, ContainerWho>();
  const learn = (p: PodSandbox, c: Container) => whoOf.set(c.id, { pod: `${p.namespace}/${p.name}`, container: c.name });
  const evictor = new Evictor({
    kill: d.kill ?? killContainerInit,
    retryDelaysMs: d.evictionRetryDelaysMs,
    initial: d.failedEvictions,
    onOutcome: (id, _pid, outcome) => guarded(`reporting the eviction of ${id}`, () => d.onEvicted?.(id, outcome, whoOf.get(id))),
    onFailure: (f) =>
      guarded(`reporting the failed eviction of ${f.containerId}`, () =>
        d.onEvictionFailed ? d.onEvictionFailed(f, whoOf.get(f.containerId)) : d.onError?.(`evicting container ${f.containerId} (pid ${f.pid})`, f.error)),
    onChange: (failing) => guarded('recording the failed evictions', () => d.onFailedEvictions?.(failing)),
  });
  const killInit = (containerId: string, pid: number): void => evictor.evict(containerId, pid);
  /** pids of live containers, for evictions decided outside reconcile (a restored share changed) */
  const pidOf = new Map<string, number>();
  /** evictions decided before the runtime's Synchronize told the pids (a restore at start) */
  const beforeSync = new Set<string>();
  let synchronized = false;
  service.onEvict((containerId, reason) => {
    const pid = pidOf.get(containerId) ?? 0;
    d.onStale?.(containerId, reason, whoOf.get(containerId));
    if (pid > 1) killInit(containerId, pid);
    else if (!synchronized) beforeSync.add(containerId);
    else evictOnStart.add(containerId);
  });
  const end = (what: string) => async (_pod: PodSandbox, c: Container) => {
    evictOnStart.delete(c.id);
    pidOf.delete(c.id);
    whoOf.delete(c.id);
    evictor.forget(c.id); // a container that ended needs no eviction any more
    try {
      await service.endContainer(c.id, what);
    } catch (err) {
      d.onError?.(`ending bindings of container ${c.id} (${what})`, err);
    }
  };
  return {
    configure(req) {
      service.setRuntime({ name: req.runtimeName, version: req.runtimeVersion });
    },
    async synchronize(pods, containers) {
      for (const c of containers) if (c.pid > 1) pidOf.set(c.id, c.pid);
      const podById = new Map(pods.map((p) => [p.id, p]));
      for (const c of containers) {
        const p = podById.get(c.podSandboxId);
        if (p) learn(p, c);
      }
      synchronized = true;
      // stale before the runtime said which containers run: a running one is evicted now, one
      // only created when it starts, one that is gone needs nothing
      for (const id of beforeSync) {
        const c = containers.find((x) => x.id === id);
        if (c && c.pid > 1) killInit(id, c.pid);
        else if (c) evictOnStart.add(id);
      }
      beforeSync.clear();
      const report = await service.reconcile(pods.map(podInfo), containers.map(containerInfo));
      d.onReconciled?.(report);
      // failed evictions of containers this reconcile does not evict again are over
      evictor.retain(new Set(report.evict.map((e) => e.containerId)));
      if (report.evict.length) {
        // containerd (NRI 0.6 to 0.8) ignores the evictions of a plugin's UpdateContainers: it
        // relays only the updates. So the agent evicts by SIGKILLing the container's init process
        // (the runtime then reports it exited, and kubelet recreates it, with its shares); the
        // eviction request still goes out for runtimes that honour it.
        // A container only created (no process yet) is evicted when it starts.
        const pids = new Map(containers.map((c) => [c.id, c.pid]));
        for (const e of report.evict) {
          const pid = pids.get(e.containerId) ?? 0;
          if (pid > 1) killInit(e.containerId, pid);
          else evictOnStart.add(e.containerId);
        }
        // No UpdateContainers with the evictions: containerd <= 2.1 drops them, and an unsolicited
        // UpdateContainers racing a container start deadlocks containerd's NRI (seen by the chaos
        // test on 2.1.9: the call never returns, StartContainer hangs, no plugin can register again).
      }
      return [];
    },
    async createContainer(pod, container, ctx) {
      const inj = await service.createContainer(podInfo(pod), containerInfo(container), ctx.deadline);
      // (after the answer only: a refused creation has no container to remember)
      learn(pod, container);
      if (!inj) return;
      return { adjust: adjustmentOf(inj) };
    },
    postStartContainer(pod, c) {
      learn(pod, c);
      if (c.pid > 1) pidOf.set(c.id, c.pid);
      // flagged at reconcile, or never seen: created in the gap after one agent died, stored by
      // the runtime only after the next one's Synchronize had listed the containers
      const evict = evictOnStart.delete(c.id) || service.evictionReason(podInfo(pod), containerInfo(c)) !== undefined;
      if (evict && c.pid > 1) killInit(c.id, c.pid);
    },
    stopContainer: async (pod, c) => {
      await end('container stopped')(pod, c);
    },
    removeContainer: end('container removed'),
    async removePodSandbox(pod) {
      try {
        await service.endPod(pod.id, 'pod removed');
      } catch (err) {
        d.onError?.(`ending bindings of pod ${pod.namespace}/${pod.name}`, err);
      }
    },
  };
}

/** The service's injection as an NRI container adjustment (devices, CDI and hooks only when there are some). */
export function adjustmentOf(inj: ContainerInjection): ContainerAdjustment {
  const adjust: ContainerAdjustment = { mounts: inj.mounts, env: inj.env };
  if (inj.devices.length) {
    adjust.linux = {
      devices: inj.devices.map((d) => ({
        path: d.path,
        type: d.type,
        major: d.major,
        minor: d.minor,
        fileMode: { value: d.fileMode },
        uid: { value: d.uid },
        gid: { value: d.gid },
      })),
    };
  }
  if (inj.cdiDevices.length) adjust.CDIDevices = inj.cdiDevices.map((name) => ({ name }));
  // ContainerAdjustment.hooks exists in every NRI version (0.6.1 on)
  if (inj.createRuntimeHooks?.length) {
    adjust.hooks = { createRuntime: inj.createRuntimeHooks.map((h) => ({ path: h.path, args: h.args, env: h.env, ...(h.timeout !== undefined ? { timeout: { value: h.timeout } } : {}) })) };
  }
  return adjust;
}
