// The shapes that cross module boundaries inside the memshare plugin. Kept NRI-agnostic:
// the NRI stub converts its wire messages into these before calling the memshare service.

/** A container mount to add, in OCI/NRI terms. */
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

/** What the memshare service returns for one container at creation. */
export interface ContainerInjection {
  mounts: MountSpec[];
  env: EnvVar[];
}

/** A pod as the memshare service needs to know it. */
export interface PodInfo {
  /** sandbox id */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  annotations: Record<string, string>;
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
  allowedNamespaces: string[];
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

/** A share made present on this node by a backend. */
export interface AcquiredShare {
  namespace: string;
  name: string;
  /** host path to bind into containers */
  hostPath: string;
  sizeBytes: number;
}

/**
 * A memory backend: makes a share present on the node and takes it away again.
 * Both calls are idempotent; neither knows about containers or annotations.
 */
export interface Backend {
  readonly kind: string;
  acquire(decl: ShareDeclaration): Promise<AcquiredShare>;
  release(namespace: string, name: string): Promise<void>;
  /** shares this backend finds present on the node right now (for reconcile) */
  present(): Promise<Array<{ namespace: string; name: string; hostPath: string }>>;
  /** size and bytes used of a present share, or undefined if not present */
  usage(namespace: string, name: string): Promise<{ sizeBytes: number; usedBytes: number } | undefined>;
  /** extra mounts and env a bound container gets besides the share itself (UBS: SDK libs, sockets) */
  injection(share: AcquiredShare, ref: ShareRef): ContainerInjection;
}

/** An error that refuses a binding; its message is shown to the user through CRI. */
export class RefusalError extends Error {
  constructor(
    message: string,
    /** a short machine-readable reason, used as a metric label */
    readonly reason: string,
  ) {
    super(message);
    this.name = 'RefusalError';
  }
}
