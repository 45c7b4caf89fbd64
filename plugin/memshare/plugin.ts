// The memshare plugin as NRI handlers: converts NRI's pods and containers into the service's
// plain shapes, and the service's injection into an NRI container adjustment.
import { ContainerState, type Container, type Handlers, type PodSandbox, type Stub } from '../nri';
import { killContainerInit, type KillOutcome } from './evict';
import type { MemshareService } from './service';
import type { ContainerInfo, ContainerStateName, PodInfo } from './types';

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

export interface PluginDeps {
  service: MemshareService;
  /** the stub, for evictions after reconcile (sent outside any handler) */
  stub: () => Pick<Stub, 'updateContainers'>;
  onReconciled?(report: Awaited<ReturnType<MemshareService['reconcile']>>): void;
  onEvicted?(containerId: string, outcome: KillOutcome): void;
  onError?(what: string, err: unknown): void;
  /** how an evicted container's init is stopped (tests replace it); default: pidfd + cgroup check + SIGKILL */
  kill?(containerId: string, pid: number): KillOutcome;
}

export function memshareHandlers(d: PluginDeps): Handlers {
  const { service } = d;
  /** created while the agent was down and not started at reconcile: evicted when they start */
  const evictOnStart = new Set<string>();
  const killInit = (containerId: string, pid: number): void => {
    try {
      // kill first: an optional call would skip evaluating its arguments without a listener
      const outcome = (d.kill ?? killContainerInit)(containerId, pid);
      d.onEvicted?.(containerId, outcome);
    } catch (err) {
      d.onError?.(`evicting container ${containerId} (pid ${pid})`, err);
    }
  };
  const end = (what: string) => async (_pod: PodSandbox, c: Container) => {
    evictOnStart.delete(c.id);
    try {
      await service.endContainer(c.id, what);
    } catch (err) {
      d.onError?.(`ending bindings of container ${c.id} (${what})`, err);
    }
  };
  return {
    async synchronize(pods, containers) {
      const report = await service.reconcile(pods.map(podInfo), containers.map(containerInfo));
      d.onReconciled?.(report);
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
    async createContainer(pod, container) {
      const inj = await service.createContainer(podInfo(pod), containerInfo(container));
      if (!inj) return;
      return { adjust: { mounts: inj.mounts, env: inj.env } };
    },
    postStartContainer(pod, c) {
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
