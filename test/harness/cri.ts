// A small typed CRI v1 client (the calls the tests make, as kubelet would make them), over
// @grpc/grpc-js with the CRI api.proto from Debian's cri-api package (gogoproto lines removed).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { randomBytes } from 'node:crypto';
import { criProtoPath, TEST_IMAGE } from './paths';

// ---- messages (snake_case, as the proto; only the fields the tests use are typed) ----

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
type StringMap = Record<string, string>;

export interface NamespaceOption {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
}

export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  hostname: string;
  log_directory: string;
  labels: StringMap;
  annotations: StringMap;
  linux: { cgroup_parent: string; security_context: { namespace_options: NamespaceOption; privileged?: boolean } };
}

export interface CriMount {
  container_path: string;
  host_path: string;
  readonly?: boolean;
  propagation?: MountPropagation;
}

export interface ContainerConfig {
  metadata: { name: string; attempt: number };
  image: { image: string };
  command: string[];
  args: string[];
  working_dir: string;
  envs: { key: string; value: string }[];
  mounts: CriMount[];
  labels: StringMap;
  annotations: StringMap;
  log_path: string;
  /** CRI field 17 (CDI_devices): fully qualified CDI device names, as the kubelet passes a claim's prepared devices */
  CDI_devices?: { name: string }[];
  linux: {
    security_context: {
      namespace_options: NamespaceOption;
      run_as_user?: { value: number };
      run_as_group?: { value: number };
      supplemental_groups?: number[];
      privileged?: boolean;
      capabilities?: { add_capabilities: string[]; drop_capabilities: string[] };
    };
    resources?: { cpu_shares?: number; memory_limit_in_bytes?: number; oom_score_adj?: number };
  };
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  created_at: string; // int64 nanoseconds, as a decimal string
  started_at: string;
  finished_at: string;
  exit_code: number;
  reason: string;
  message: string;
  labels: StringMap;
  annotations: StringMap;
  mounts: CriMount[];
}

export interface ContainerInfo {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  created_at: string;
  labels: StringMap;
  annotations: StringMap;
}

export interface PodInfo {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: PodSandboxState;
  created_at: string;
  labels: StringMap;
  annotations: StringMap;
}

export interface VersionInfo {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// ---- helper inputs ----

export interface PodSpec {
  name: string;
  namespace?: string; // default "default"
  uid?: string; // default: random
  annotations?: StringMap;
  labels?: StringMap;
}

export interface RunningPod {
  id: string;
  config: PodSandboxConfig;
}

export interface ContainerSpec {
  name: string;
  command?: string[]; // default: the image's (/pause)
  args?: string[];
  image?: string; // default: the test image
  annotations?: StringMap;
  labels?: StringMap;
  envs?: StringMap;
  mounts?: CriMount[];
  /** uid the container's processes run as (CRI run_as_user; default: the image's user, root) */
  runAsUser?: number;
  /** gid they run as (CRI run_as_group; only with runAsUser) */
  runAsGroup?: number;
  /** extra groups of its processes (CRI supplemental_groups, what kubelet passes from the pod's supplementalGroups) */
  supplementalGroups?: number[];
  /** CRI metadata.attempt (default 0); the kubelet counts it up for every restart of a container */
  attempt?: number;
  /**
   * CDI devices ("vendor/class=name") in ContainerConfig.CDI_devices (field 17), as the kubelet
   * (1.28 and later) passes the CDI ids a DRA driver's NodePrepareResources returned; containerd
   * (1.7.2 and later, with CDI enabled) resolves them against its cdi_spec_dirs.
   */
  cdiDevices?: string[];
  /**
   * The older annotation form, cdi.k8s.io/<key> = the devices joined by ",", which older kubelets set
   * beside the field; containerd 1.7.24 and 2.1.9 apply the devices of both forms
   * (harness-smoke.test.ts).
   */
  cdiAnnotation?: { key: string; devices: string[] };
}

/** A CRI call failed; message carries the method and the gRPC status message (the plugin's text). */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`CRI ${method} failed (${grpc.status[code] ?? code}): ${details}`);
    this.name = 'CriError';
  }
}

/** `prefix-<8 hex>`: CRI reserves names, so each run needs fresh ones (DNS-1123 safe). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

// ---- client ----

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type Method = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type ServiceCtor = new (address: string, creds: grpc.ChannelCredentials, opts?: grpc.ClientOptions) => grpc.Client;

let services: { runtime: ServiceCtor; image: ServiceCtor } | undefined;

function loadServices(): { runtime: ServiceCtor; image: ServiceCtor } {
  if (services) return services;
  const def = protoLoader.loadSync(criProtoPath(), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: ServiceCtor; ImageService: ServiceCtor } };
  };
  services = { runtime: pkg.runtime.v1.RuntimeService, image: pkg.runtime.v1.ImageService };
  return services;
}

export interface CriClientOptions {
  /** Default deadline of each call; CreateContainer waits on NRI plugins, so not too short. */
  timeoutMs?: number;
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly images: grpc.Client;
  private readonly timeoutMs: number;

  /** address: a unix socket path (or a full grpc target such as unix:///run/x.sock). */
  constructor(address: string, opts: CriClientOptions = {}) {
    const target = address.includes(':') ? address : `unix://${address}`;
    const { runtime, image } = loadServices();
    const chOpts: grpc.ClientOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // Fail fast while the socket is not there yet instead of backing off for seconds.
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 200,
    };
    this.runtime = new runtime(target, grpc.credentials.createInsecure(), chOpts);
    this.images = new image(target, grpc.credentials.createInsecure(), chOpts);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private call<T>(client: grpc.Client, method: string, req: object, timeoutMs = this.timeoutMs): Promise<T> {
    const fn = (client as unknown as Record<string, Method>)[method];
    return new Promise<T>((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details || err.message));
        else resolve(res as T);
      });
    });
  }

  version(timeoutMs?: number): Promise<VersionInfo> {
    return this.call<VersionInfo>(this.runtime, 'Version', { version: 'v1' }, timeoutMs);
  }

  /** Host-network pod (no CNI needed); pid per container, ipc per pod, like a default kubelet pod. */
  async runPod(spec: PodSpec): Promise<RunningPod> {
    const config: PodSandboxConfig = {
      metadata: {
        name: spec.name,
        uid: spec.uid ?? randomBytes(16).toString('hex'),
        namespace: spec.namespace ?? 'default',
        attempt: 0,
      },
      hostname: '',
      log_directory: '',
      labels: spec.labels ?? {},
      annotations: spec.annotations ?? {},
      linux: { cgroup_parent: '', security_context: { namespace_options: hostNetwork() } },
    };
    const res = await this.call<{ pod_sandbox_id: string }>(this.runtime, 'RunPodSandbox', { config });
    return { id: res.pod_sandbox_id, config };
  }

  /** RunPodSandbox with a config the caller made whole (e.g. from a pod manifest, as kubelet does). */
  async runPodSandbox(config: PodSandboxConfig): Promise<RunningPod> {
    const res = await this.call<{ pod_sandbox_id: string }>(this.runtime, 'RunPodSandbox', { config });
    return { id: res.pod_sandbox_id, config };
  }

  /** CreateContainer with a config the caller made whole; returns the container id. */
  async createContainerFrom(pod: RunningPod, config: ContainerConfig): Promise<string> {
    const res = await this.call<{ container_id: string }>(this.runtime, 'CreateContainer', {
      pod_sandbox_id: pod.id,
      config,
      sandbox_config: pod.config,
    });
    return res.container_id;
  }

  async createContainer(podId: string, podConfig: PodSandboxConfig, spec: ContainerSpec): Promise<string> {
    const config: ContainerConfig = {
      metadata: { name: spec.name, attempt: spec.attempt ?? 0 },
      image: { image: spec.image ?? TEST_IMAGE },
      command: spec.command ?? [],
      args: spec.args ?? [],
      working_dir: '',
      envs: Object.entries(spec.envs ?? {}).map(([key, value]) => ({ key, value })),
      mounts: spec.mounts ?? [],
      labels: spec.labels ?? {},
      annotations: { ...spec.annotations },
      log_path: '',
      linux: { security_context: { namespace_options: hostNetwork() } },
    };
    if (spec.cdiDevices?.length) config.CDI_devices = spec.cdiDevices.map((name) => ({ name }));
    if (spec.cdiAnnotation) config.annotations[`cdi.k8s.io/${spec.cdiAnnotation.key}`] = spec.cdiAnnotation.devices.join(',');
    if (spec.runAsUser !== undefined) config.linux.security_context.run_as_user = { value: spec.runAsUser };
    if (spec.runAsGroup !== undefined) config.linux.security_context.run_as_group = { value: spec.runAsGroup };
    if (spec.supplementalGroups?.length) config.linux.security_context.supplemental_groups = [...spec.supplementalGroups];
    const res = await this.call<{ container_id: string }>(this.runtime, 'CreateContainer', {
      pod_sandbox_id: podId,
      config,
      sandbox_config: podConfig,
    });
    return res.container_id;
  }

  async startContainer(id: string): Promise<void> {
    await this.call(this.runtime, 'StartContainer', { container_id: id });
  }

  /** Create and start; returns the container id. */
  async runContainer(pod: RunningPod, spec: ContainerSpec): Promise<string> {
    const id = await this.createContainer(pod.id, pod.config, spec);
    await this.startContainer(id);
    return id;
  }

  async execSync(id: string, cmd: string[], timeoutSec = 10): Promise<ExecResult> {
    const res = await this.call<{ stdout: Buffer; stderr: Buffer; exit_code: number }>(
      this.runtime,
      'ExecSync',
      { container_id: id, cmd, timeout: timeoutSec },
      (timeoutSec + 10) * 1000,
    );
    return { exitCode: res.exit_code, stdout: res.stdout.toString('utf8'), stderr: res.stderr.toString('utf8') };
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    const res = await this.call<{ status: ContainerStatus }>(this.runtime, 'ContainerStatus', { container_id: id });
    return res.status;
  }

  async listContainers(filter: { podId?: string; id?: string } = {}): Promise<ContainerInfo[]> {
    const res = await this.call<{ containers: ContainerInfo[] }>(this.runtime, 'ListContainers', {
      filter: { id: filter.id ?? '', pod_sandbox_id: filter.podId ?? '' },
    });
    return res.containers;
  }

  async listPods(): Promise<PodInfo[]> {
    const res = await this.call<{ items: PodInfo[] }>(this.runtime, 'ListPodSandbox', {});
    return res.items;
  }

  /** timeoutSec: grace after SIGTERM before SIGKILL (0: SIGKILL at once). `sleep` as PID 1
   * ignores SIGTERM and so takes the whole grace; the image's /pause exits on it. */
  async stopContainer(id: string, timeoutSec = 1): Promise<void> {
    await this.call(this.runtime, 'StopContainer', { container_id: id, timeout: timeoutSec }, (timeoutSec + 30) * 1000);
  }

  async removeContainer(id: string): Promise<void> {
    await this.call(this.runtime, 'RemoveContainer', { container_id: id });
  }

  async stopPod(id: string): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { pod_sandbox_id: id });
  }

  async removePod(id: string): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { pod_sandbox_id: id });
  }

  /** Stops and removes every pod (StopPodSandbox kills its containers at once), then any stray
   * container; tries all, then throws the first error. */
  async cleanupAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const p of await this.listPods()) {
      await this.stopPod(p.id).catch((e: unknown) => errors.push(e));
      await this.removePod(p.id).catch((e: unknown) => errors.push(e));
    }
    for (const c of await this.listContainers()) {
      await this.stopContainer(c.id, 0).catch((e: unknown) => errors.push(e));
      await this.removeContainer(c.id).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw errors[0];
  }

  async listImages(): Promise<string[]> {
    const res = await this.call<{ images: { repo_tags: string[] }[] }>(this.images, 'ListImages', {});
    return res.images.flatMap((i) => i.repo_tags);
  }
}

function hostNetwork(): NamespaceOption {
  return { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' };
}
