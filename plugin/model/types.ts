// The vocabulary every folder shares: pods, containers, shares, what a container gets. Kept
// NRI-agnostic: the memshare plugin converts NRI's wire messages into these shapes.

/**
 * A container mount to add, in OCI terms. The core's own shape (it knows no wire format): the NRI
 * adapter turns it into NRI's Mount, as it turns EnvVar into KeyValue.
 */
export interface MountSpec {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** An environment variable to set in the container. */
export interface EnvVar {
  key: string;
  value: string;
}

/** A device node to create in the container (the runtime also allows it in the devices cgroup). */
export interface DeviceSpec {
  path: string;
  /** 'c' (character) or 'b' (block) */
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** An OCI hook for the runtime to run (path absolute on the host; args include argv[0]). */
export interface HookSpec {
  path: string;
  args: string[];
  env: string[];
  /** seconds; the runtime kills the hook and fails the container past it */
  timeout?: number;
}

/** Everything one container gets for its shares, computed once per container. */
export interface ContainerInjection {
  mounts: MountSpec[];
  env: EnvVar[];
  devices: DeviceSpec[];
  /** fully qualified CDI device names ("vendor.io/class=name") the runtime resolves itself */
  cdiDevices: string[];
  /** OCI createRuntime hooks: run by runc at `create`, in the runtime's namespaces; one failing fails the container */
  createRuntimeHooks?: HookSpec[];
}

export const emptyInjection = (): ContainerInjection => ({ mounts: [], env: [], devices: [], cdiDevices: [] });

/** A pod as the memshare service needs to know it. */
export interface PodInfo {
  /** sandbox id */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  annotations: Record<string, string>;
}

/**
 * A ResourceClaim prepared on this node through the DRA front door: a holder of shares as a
 * container is. Its namespace plays the pod namespace's part in authorization.
 */
export interface ClaimInfo {
  namespace: string;
  name: string;
  uid: string;
}

/** A container as the memshare service needs to know it. */
export interface ContainerInfo {
  id: string;
  podSandboxId: string;
  name: string;
  /** 'created' | 'running' | 'paused' | 'stopped' | 'unknown' */
  state: ContainerStateName;
  /** the container's init process on the host, when the runtime reports it (0: unknown) */
  pid?: number;
  /** destinations of the container's mounts, when the runtime reports them (reconcile) */
  mounts?: string[];
}

export type ContainerStateName = 'unknown' | 'created' | 'paused' | 'running' | 'stopped';

/** One share reference parsed from an annotation value. */
export interface ShareRef {
  namespace: string;
  name: string;
  readOnly: boolean;
}

/** A validated ShareMemory declaration. */
export interface ShareDeclaration {
  namespace: string;
  name: string;
  sizeBytes: number;
  /** spec.allowedNamespaces: other namespaces that may bind it, read-write or read-only */
  allowedNamespaces: string[];
  /** spec.readOnlyNamespaces: other namespaces that may bind it read-only only; absent: none */
  readOnlyNamespaces?: string[];
  /** spec.allowExec: containers may execute files of the share (mounted without noexec); absent: false */
  allowExec?: boolean;
  /** where it came from: a file path, or "kubernetes" */
  origin: string;
}

/** Configured limits (product.md defaults: 128 MiB..512 GiB per share, 512 GiB per node, names <= 47). */
export interface Limits {
  minShareBytes: number;
  maxShareBytes: number;
  maxNodeBytes: number;
  maxNameLength: number;
}

export const DEFAULT_LIMITS: Limits = {
  minShareBytes: 128 * 1024 * 1024,
  maxShareBytes: 512 * 1024 ** 3,
  maxNodeBytes: 512 * 1024 ** 3,
  maxNameLength: 47,
};

/** A JSON-safe value a backend keeps about a share it made present. */
export type HandleValue = string | number | boolean | readonly number[] | readonly string[];

/** What a backend keeps about a share, as the ledger records it (JSON). */
export type HandleData = Readonly<Record<string, HandleValue>>;

/**
 * A share made present on this node by a backend: what the ledger records durably, so that a
 * restarted agent can release exactly what the last one acquired. `D` is the backend's own data
 * (each backend reads recorded data back through a checked reader of its own).
 */
export interface ShareHandle<D extends HandleData = HandleData> {
  /** the backend kind that made it ("local", "ubs") */
  readonly backend: string;
  readonly namespace: string;
  readonly name: string;
  /** the size really in force (the backend may round the declared size up) */
  readonly sizeBytes: number;
  /** the declared size it was acquired for: a changed declaration acquires again */
  readonly requestedBytes: number;
  /** backend-specific facts (local: hostPath; ubs: SDK name, memids, device major) */
  readonly data: Readonly<D>;
}

/**
 * An error that refuses a binding; its message is shown to the user through CRI (and in an Event
 * in the pod's namespace). `operatorDetail`, when set, is the fuller account for the agent's log
 * only: the message is kept the same on purpose, so that it tells the tenant nothing of other
 * namespaces.
 */
export class RefusalError extends Error {
  constructor(
    message: string,
    /** a short machine-readable reason, used as a metric label (the operator's view) */
    readonly reason: string,
    readonly operatorDetail?: string,
    /** `cause`: what made the binding fail (e.g. the backend's error), kept for the log */
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RefusalError';
  }
}
