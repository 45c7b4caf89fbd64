// The DRA front door, when the config enables it: the driver over the same service, ledger and
// backend as the NRI door, the ResourceClaim reader and this node's ResourceSlice publisher over
// the agent's Kubernetes credentials, and the kubelet plugin (registration and DRAPlugin sockets)
// in front. Every part of it is imported here, lazily: a node without DRA loads no gRPC library.
import type { Config } from './config';
import type { DraDoorState } from './agent-state';
import type { Logger } from './logger';
import type { MemshareMetrics } from './metrics';
import type { MemshareService } from '../memshare/service';
import type { DeclarationStore } from '../declarations/store';
import type { KubeCredentials } from '../kube/kubeconfig';

export interface DraDoorParts {
  service: MemshareService;
  declarations: DeclarationStore;
  credentials: KubeCredentials;
  /** this node's name in the cluster (the pool its slices publish, the node claims are allocated on) */
  nodeName: string;
  /** published as each device's backend attribute */
  backendKind: string;
  metrics: MemshareMetrics;
  log: Logger;
}

/** What the kubelet said of the registration: waiting (no word yet), registered, refused. */
export type DraRegistration = 'waiting' | 'registered' | 'refused';

export interface DraDoor {
  registration(): DraRegistration;
  /** for agent-state.json and `status` */
  state(): DraDoorState;
  /** the parts stop in reverse order of their start: the kubelet plugin first, so no call arrives mid-stop */
  stop(): Promise<void>;
}

/** Starts the door's parts in order; undefined when dra.enabled is false. A part that cannot start fails the start, naming why. */
export async function startDraDoor(config: Config, parts: DraDoorParts): Promise<DraDoor | undefined> {
  if (!config.dra.enabled) return undefined;
  const { dra } = config;
  const { log, metrics } = parts;
  const stops: Array<() => unknown> = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) await stop();
  };
  // 1 while the kubelet has accepted the registration (read at scrape time)
  const registered = metrics.registry.gauge('nri_memshare_dra_registered', '1 while the kubelet has accepted the DRA driver\'s registration, else 0; absent when dra.enabled is false.');
  registered.set(0);
  try {
    const { kubeRequest, keptAliveRequests } = await import('../kube');
    const send = (r: Parameters<typeof kubeRequest>[1]) => kubeRequest(parts.credentials, r);
    const { createClaimReader } = await import('../dra/claims');
    // each Prepare reads its claim: over kept-alive connections (a TLS handshake per read was most of Prepare's time)
    const claimRequests = keptAliveRequests(parts.credentials);
    stops.push(() => claimRequests.close());
    const claims = createClaimReader({ send: claimRequests.send });
    const { MemshareDraDriver } = await import('../dra/driver');
    const driver = new MemshareDraDriver({ driverName: dra.driverName, reader: claims, service: parts.service, declarations: parts.declarations, cdiDir: dra.cdiDir });
    // what the scheduler allocates from: this node's shares as devices, kept in line with the declarations
    const { createSlicePublisher, topologyFor } = await import('../dra/slices');
    const slices = createSlicePublisher({
      send,
      nodeName: parts.nodeName,
      driverName: dra.driverName,
      backend: parts.backendKind,
      // on UB one pool over the UB pool's nodes (every node's shares are every node's); else a pool per node
      topology: topologyFor(parts.backendKind, dra.ubPool),
      store: parts.declarations,
      limits: config.limits,
      onEvent: (e) => {
        if (e.kind === 'published') log.info({ pool: e.poolName, generation: e.generation, slices: e.slices, devices: e.devices, deleted: e.deleted }, 'dra: ResourceSlices published');
        else if (e.kind === 'failed') log.warn({ err: e.message, retryInMs: e.retryInMs }, 'dra: publishing ResourceSlices failed; retrying');
        else if (e.shares.length) log.warn({ shares: e.shares }, 'dra: shares left out of the ResourceSlices');
      },
    });
    slices.start();
    stops.push(() => slices.stop());

    const { startKubeletPlugin } = await import('../kubelet-plugin');
    let state: DraRegistration = 'waiting';
    let lastError: string | null = null;
    const plugin = await startKubeletPlugin({
      driverName: dra.driverName,
      registryDir: dra.registryDir,
      pluginDir: dra.pluginDir,
      driver,
      log,
      onRegistration: (s) => {
        state = s.state;
        lastError = s.state === 'refused' ? s.error ?? 'no reason given' : null;
        registered.set(s.state === 'registered' ? 1 : 0);
        if (s.state === 'registered') log.info({ driver: dra.driverName }, 'dra: registered with the kubelet');
        else if (s.state === 'refused') log.error({ driver: dra.driverName, err: s.error }, 'dra: the kubelet refused the registration; it will not prepare claims here');
      },
    });
    stops.push(() => plugin.close());
    stops.push(() => registered.set(0));
    log.info({ driver: dra.driverName, endpoint: plugin.endpoint, registrationSocket: plugin.registrationSocket, cdiDir: dra.cdiDir, node: parts.nodeName }, 'dra: front door started');
    return {
      registration: () => state,
      state: () => ({ driverName: dra.driverName, registration: state, registrationSocket: plugin.registrationSocket, endpoint: plugin.endpoint, lastError }),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

