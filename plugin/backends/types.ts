// The seam between the memshare service and a memory backend. Two very different backends sit
// behind it: tmpfs mounts on one node (local) and shares in the UB memory pool (ubs).
import type { ContainerInjection, RequestContext, ShareDeclaration, ShareHandle } from '../model';

/** A share bound to a container being created, as attach() needs it. */
export interface BoundShare {
  readonly handle: ShareHandle;
  readonly readOnly: boolean;
  /** the share as the pod's annotation wrote it: "name" (own namespace) or "namespace/name" */
  readonly ref: string;
}

/** The container a backend attaches shares to. */
export interface AttachTarget {
  readonly id: string;
  readonly name: string;
  readonly podNamespace: string;
}

/** What the runtime told the agent about itself (NRI Configure). */
export interface RuntimeInfo {
  name: string;
  version: string;
}

/** A release that failed for a reason that may pass (busy, network): the service retries it. */
export class RetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryableError';
  }
}

export interface Backend {
  readonly kind: string;
  /** true when its memory outlives the node's kernel, so its records must reach the disk */
  readonly durable: boolean;
  /**
   * How long a binding may wait for acquire() inside a request (ms); past it the binding is
   * refused with pendingMessage() and the acquire goes on for the retry. undefined: no budget.
   */
  readonly acquireBudgetMs?: number;
  /**
   * How long a share whose holders were evicted because restore() changed its handle stays with
   * no binding before it is released (ms): the kubelet recreates them and they bind it again.
   */
  readonly staleGraceMs?: number;
  /** Tells who restores shares that went away from the node behind the agent's back (UB: the holder died). */
  onLost?(listener: (shares: Array<{ namespace: string; name: string }>) => void): void;
  /** Starts what the backend needs in the background (e.g. the SDK's connection to its daemon). */
  start?(): void;
  /** Why new bindings cannot be made right now, or undefined when they can. */
  unavailable?(): string | undefined;
  /** The words for a binding refused because acquire() ran past the budget. */
  pendingMessage?(decl: ShareDeclaration): string;
  /** Makes the share present on this node at the declared size; idempotent. */
  acquire(decl: ShareDeclaration, ctx: RequestContext): Promise<ShareHandle>;
  /** Takes a share away from this node; idempotent. Throws RetryableError for passing failures. */
  release(handle: ShareHandle): Promise<void>;
  /** Everything a container gets for its shares, computed once per container. */
  attach(target: AttachTarget, shares: readonly BoundShare[]): ContainerInjection;
  /** Undoes what attach() left outside the container (files written for it); idempotent. */
  detach?(containerId: string): Promise<void>;
  /** Shares this backend finds present on the node right now (for reconcile and status). */
  present(): Promise<ShareHandle[]>;
  /** After an agent restart: makes a recorded share usable again; the handle may change (UB memids). */
  restore?(handle: ShareHandle): Promise<ShareHandle>;
  /** Size and bytes used of a present share, or undefined when it is not present. */
  usage(handle: ShareHandle): Promise<{ sizeBytes: number; usedBytes: number | null } | undefined>;
  /** The runtime the agent is registered with; a backend may adapt its injection (CDI). */
  setRuntime?(info: RuntimeInfo): void;
  /** Lets go of in-process resources at agent stop (the shares themselves stay). */
  close?(): Promise<void>;
}
