// NRI messages as TypeScript sees them after decoding (proto/nri.proto), and their codecs.
// Decoded objects are instances of the generated message classes (nri.pb.ts, static codecs made
// from proto/nri.proto at build time): absent fields read as proto3 defaults.
import * as pb from './nri.pb';

export const PLUGIN_SERVICE = 'nri.pkg.api.v1alpha1.Plugin';
export const RUNTIME_SERVICE = 'nri.pkg.api.v1alpha1.Runtime';

export enum Event {
  UNKNOWN = 0,
  RUN_POD_SANDBOX = 1,
  STOP_POD_SANDBOX = 2,
  REMOVE_POD_SANDBOX = 3,
  CREATE_CONTAINER = 4,
  POST_CREATE_CONTAINER = 5,
  START_CONTAINER = 6,
  POST_START_CONTAINER = 7,
  UPDATE_CONTAINER = 8,
  POST_UPDATE_CONTAINER = 9,
  STOP_CONTAINER = 10,
  REMOVE_CONTAINER = 11,
  UPDATE_POD_SANDBOX = 12,
  POST_UPDATE_POD_SANDBOX = 13,
  VALIDATE_CONTAINER_ADJUSTMENT = 14,
}

export const eventBit = (e: Event): number => 1 << (e - 1);
/** Every event a runtime before NRI v0.10 accepts (containerd 1.7, 2.0, 2.1). */
export const VALID_EVENTS_V0_6 = 0x7ff;
/** Every event a runtime from NRI v0.10 accepts. */
export const VALID_EVENTS_V0_10 = 0x3fff;

export enum ContainerState {
  UNKNOWN = 0,
  CREATED = 1,
  PAUSED = 2,
  RUNNING = 3,
  STOPPED = 4,
}

export interface PodSandbox {
  id: string;
  name: string;
  uid: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
  pid: number;
  ips: string[];
}

export interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface Container {
  id: string;
  podSandboxId: string;
  name: string;
  state: ContainerState;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  args: string[];
  env: string[];
  mounts: Mount[];
  pid: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface LinuxDevice {
  path: string;
  type: string;
  major: number;
  minor: number;
  fileMode?: { value: number };
  uid?: { value: number };
  gid?: { value: number };
}

/** An OCI hook (api.proto Hook: path=1, args=2, env=3, timeout=4 OptionalInt seconds). */
export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: { value: number };
}

/** api.proto Hooks, by OCI hook point (1 prestart ... 6 poststop). */
export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export interface ContainerAdjustment {
  annotations?: Record<string, string>;
  mounts?: Mount[];
  env?: KeyValue[];
  /** field 5, in every NRI version: the runtime appends these to the OCI spec's hooks */
  hooks?: Hooks;
  linux?: { devices?: LinuxDevice[] };
  /** NRI >= 0.7 (containerd 2.x); older runtimes skip the field */
  CDIDevices?: Array<{ name: string }>;
  args?: string[];
}

export interface LinuxResources {
  memory?: { limit?: { value: number } };
  cpu?: { shares?: { value: number }; quota?: { value: number }; period?: { value: number }; cpus?: string; mems?: string };
  unified?: Record<string, string>;
}

export interface ContainerUpdate {
  containerId: string;
  linux?: { resources?: LinuxResources };
  ignoreFailure?: boolean;
}

export interface ContainerEviction {
  containerId: string;
  reason: string;
}

export interface ConfigureRequest {
  config: string;
  runtimeName: string;
  runtimeVersion: string;
  /** milliseconds; 0 when the runtime predates NRI v0.7 */
  registrationTimeout: number;
  /** milliseconds; 0 when the runtime predates NRI v0.7 */
  requestTimeout: number;
  /** set from NRI v0.12 */
  nriVersion: string;
}

export interface SynchronizeRequest {
  pods: PodSandbox[];
  containers: Container[];
  more: boolean;
}

export interface CreateContainerResponse {
  adjust?: ContainerAdjustment;
  update?: ContainerUpdate[];
  evict?: ContainerEviction[];
}

export interface PodContainerRequest {
  pod: PodSandbox;
  container: Container;
}

export interface UpdateContainerRequest extends PodContainerRequest {
  linuxResources?: LinuxResources;
}

export interface StateChangeEvent {
  event: Event;
  pod?: PodSandbox;
  container?: Container;
}

/** Typed encode/decode for one NRI message. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

type Generated = { encode(m: object): Buffer; decode(b: Uint8Array): object };
function codec<T>(name: string): Codec<T> {
  const c = (pb as unknown as Record<string, Generated>)[`${name}Codec`];
  if (!c) throw new Error(`no codec for ${name}`);
  // plain objects with the proto's camelCase names encode directly
  return c as unknown as Codec<T>;
}

interface LongLike {
  toNumber(): number;
}
const num = (v: number | LongLike | undefined): number => (v === undefined ? 0 : typeof v === 'number' ? v : v.toNumber());

const configureRaw = codec<Omit<ConfigureRequest, 'registrationTimeout' | 'requestTimeout' | 'nriVersion'> & {
  registrationTimeout: number | LongLike;
  requestTimeout: number | LongLike;
  NRIVersion: string;
}>('ConfigureRequest');

export const codecs = {
  Empty: codec<Record<string, never>>('Empty'),
  RegisterPluginRequest: codec<{ pluginName: string; pluginIdx: string; NRIVersion?: string }>('RegisterPluginRequest'),
  UpdateContainersRequest: codec<{ update: ContainerUpdate[]; evict: ContainerEviction[] }>('UpdateContainersRequest'),
  UpdateContainersResponse: codec<{ failed: ContainerUpdate[] }>('UpdateContainersResponse'),
  ConfigureRequest: {
    encode: (v: ConfigureRequest) => configureRaw.encode({ ...v, NRIVersion: v.nriVersion }),
    decode: (b: Uint8Array): ConfigureRequest => {
      const r = configureRaw.decode(b);
      return {
        config: r.config,
        runtimeName: r.runtimeName,
        runtimeVersion: r.runtimeVersion,
        registrationTimeout: num(r.registrationTimeout),
        requestTimeout: num(r.requestTimeout),
        nriVersion: r.NRIVersion,
      };
    },
  } satisfies Codec<ConfigureRequest>,
  ConfigureResponse: codec<{ events: number }>('ConfigureResponse'),
  SynchronizeRequest: codec<SynchronizeRequest>('SynchronizeRequest'),
  SynchronizeResponse: codec<{ update: ContainerUpdate[]; more: boolean }>('SynchronizeResponse'),
  CreateContainerRequest: codec<PodContainerRequest>('CreateContainerRequest'),
  CreateContainerResponse: codec<CreateContainerResponse>('CreateContainerResponse'),
  UpdateContainerRequest: codec<UpdateContainerRequest>('UpdateContainerRequest'),
  UpdateContainerResponse: codec<{ update?: ContainerUpdate[]; evict?: ContainerEviction[] }>('UpdateContainerResponse'),
  StopContainerRequest: codec<PodContainerRequest>('StopContainerRequest'),
  StopContainerResponse: codec<{ update?: ContainerUpdate[] }>('StopContainerResponse'),
  StateChangeEvent: codec<StateChangeEvent>('StateChangeEvent'),
  PodSandboxEventRequest: codec<{ pod: PodSandbox }>('PodSandboxEventRequest'),
  ContainerEventRequest: codec<PodContainerRequest>('ContainerEventRequest'),
  UpdatePodSandboxRequest: codec<{ pod: PodSandbox }>('UpdatePodSandboxRequest'),
  UpdatePodSandboxResponse: codec<Record<string, never>>('UpdatePodSandboxResponse'),
  ValidateContainerAdjustmentRequest: codec<PodContainerRequest & { adjust?: ContainerAdjustment }>('ValidateContainerAdjustmentRequest'),
  ValidateContainerAdjustmentResponse: codec<{ reject: boolean; reason: string }>('ValidateContainerAdjustmentResponse'),
};
