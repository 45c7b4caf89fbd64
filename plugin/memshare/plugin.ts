// The memshare plugin as NRI handlers: converts NRI's pods and containers into the service's
// plain shapes, and the service's injection into an NRI container adjustment.
import { ContainerState, type Container, type Handlers, type PodSandbox, type Stub } from '../nri';
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
});

export interface PluginDeps {
  service: MemshareService;
  /** the stub, for evictions after reconcile (sent outside any handler) */
  stub: () => Pick<Stub, 'updateContainers'>;
  onReconciled?(report: Awaited<ReturnType<MemshareService['reconcile']>>): void;
  onError?(what: string, err: unknown): void;
}

export function memshareHandlers(d: PluginDeps): Handlers {
  const { service } = d;
  const end = (what: string) => async (_pod: PodSandbox, c: Container) => {
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
        d.stub()
          .updateContainers([], report.evict)
          .catch((err: unknown) => d.onError?.('evicting containers created while the agent was down', err));
      }
      return [];
    },
    async createContainer(pod, container) {
      const inj = await service.createContainer(podInfo(pod), containerInfo(container));
      if (!inj) return;
      return { adjust: { mounts: inj.mounts, env: inj.env } };
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
