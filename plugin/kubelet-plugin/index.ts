// The DRA front door's kubelet side: the DRAPlugin service (v1 and v1beta1) on <pluginDir>/dra.sock,
// then the Registration service on <registryDir>/<driver>-reg.sock, which is how the kubelet finds
// it. Requests become DraDriver calls; this layer knows nothing of shares. @grpc/grpc-js is loaded
// when a plugin starts, not before (./grpc.ts).
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { DraDriver } from '../dra/types';
import type { Log } from '../log/log';
import { DRA_SERVICES, Serializer, draService, type DraService } from './dra-service';
import { grpc, type Grpc } from './grpc';
import { registrationService, type RegistrationState } from './registration';
import { identify, prepareSocketPath, removeSocket, type SocketIdentity } from './sockets';

export { DRA_SERVICES, type DraService } from './dra-service';
export { DRA_PLUGIN_TYPE, type RegistrationState } from './registration';

export interface KubeletPluginOptions {
  /** the DRA driver's name (a DNS subdomain), as in ResourceSlices and DeviceClasses */
  driverName: string;
  /** the kubelet's plugin registry, /var/lib/kubelet/plugins_registry */
  registryDir: string;
  /** the driver's own directory for its DRA socket, /var/lib/kubelet/plugins/<driver> by convention */
  pluginDir: string;
  driver: DraDriver;
  log?: Log;
  /** the DRAPlugin versions to serve and advertise, most preferred first (default: v1, v1beta1) */
  services?: readonly DraService[];
  /** one Prepare or Unprepare at a time, as the Go helper does by default (default true) */
  serialize?: boolean;
  /** each verdict of the kubelet on the registration */
  onRegistration?: (s: RegistrationState) => void;
}

export interface KubeletPlugin {
  /** the DRA socket's path (what GetInfo tells the kubelet) */
  readonly endpoint: string;
  /** the registration socket's path */
  readonly registrationSocket: string;
  /** the kubelet's last word on the registration */
  registration(): RegistrationState;
  /** withdraws the registration, lets calls in flight finish (a few seconds at most), removes both sockets */
  close(): Promise<void>;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** how long close() waits for calls in flight before cutting them */
const SHUTDOWN_GRACE_MS = 5000;

function bind(g: typeof Grpc, server: Grpc.Server, path: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix:${path}`, g.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new Error(`${what} ${path}: cannot listen: ${err.message}`));
      else resolve();
    });
  });
}

function shutdown(server: Grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Starts serving; rejects, naming the path or the option and the reason, when it cannot. */
export async function startKubeletPlugin(opts: KubeletPluginOptions): Promise<KubeletPlugin> {
  const { driverName, log } = opts;
  if (driverName.length > 253 || !DNS_SUBDOMAIN.test(driverName)) {
    throw new Error(`DRA driver name ${JSON.stringify(driverName)}: not a DNS subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)`);
  }
  const services = opts.services ?? DRA_SERVICES;
  if (services.length === 0) throw new Error('kubelet plugin: services: at least one DRAPlugin version must be served');
  for (const s of services) {
    if (!DRA_SERVICES.includes(s)) throw new Error(`kubelet plugin: services: ${JSON.stringify(s)} is not one of ${DRA_SERVICES.join(', ')}`);
  }
  const endpoint = join(opts.pluginDir, 'dra.sock');
  const registrationSocket = join(opts.registryDir, `${driverName}-reg.sock`);
  await prepareSocketPath(endpoint, 'DRA socket');
  await prepareSocketPath(registrationSocket, 'registration socket');

  const g = grpc();
  const serializer = new Serializer();
  const dra = new g.Server();
  for (const s of new Set(services)) {
    const { definition, handlers } = draService(g, s, { driver: opts.driver, log, serialize: opts.serialize }, serializer);
    dra.addService(definition, handlers);
  }
  const reg = registrationService({ driverName, endpoint, supportedVersions: [...new Set(services)], log, onStatus: opts.onRegistration });
  const registry = new g.Server();
  registry.addService(reg.definition, reg.handlers);

  const bound: SocketIdentity[] = [];
  const stop = async (): Promise<void> => {
    // the registration first: the kubelet stops sending work before the service goes
    await shutdown(registry);
    await shutdown(dra);
    for (const id of bound.splice(0).reverse()) await removeSocket(id);
  };
  try {
    // the service is up before the kubelet can learn of it
    await bind(g, dra, endpoint, 'DRA socket');
    bound.push(await identify(endpoint));
    await chmod(endpoint, 0o600);
    await bind(g, registry, registrationSocket, 'registration socket');
    bound.push(await identify(registrationSocket));
    await chmod(registrationSocket, 0o600);
  } catch (err) {
    await stop();
    throw err;
  }
  log?.info({ driver: driverName, endpoint, registrationSocket, services: [...new Set(services)] }, 'kubelet plugin: serving, waiting for the kubelet');

  let closing: Promise<void> | undefined;
  return {
    endpoint,
    registrationSocket,
    registration: reg.state,
    close: () => (closing ??= stop()),
  };
}
