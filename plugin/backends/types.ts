// The seam between the memshare service and a memory backend. Two very different backends sit
// behind it: tmpfs mounts on one node (local) and shares in the UB memory pool (ubs). Every member
// is one each backend has; what most backends do alike is written once, in BackendDefaults, so the
// service calls every member unconditionally.
import { shareKey, type ContainerInjection, type ShareDeclaration, type ShareHandle } from '../model';

/** A share bound to a container being created, as attach() needs it. */
export interface BoundShare {
  readonly handle: ShareHandle;
  readonly readOnly: boolean;
  /** the share as the pod's annotation wrote it: "name" (own namespace) or "namespace/name" */
  readonly ref: string;
}

/** What the runtime told the agent about itself (NRI Configure). */
export interface RuntimeInfo {
  name: string;
  version: string;
}

/** What every backend may use from the agent: where its state lives and whom to tell. */
export interface BackendEnv {
  stateDir: string;
  /** told about things worth a log line (the backend never logs itself) */
  warn?(msg: string, detail?: object): void;
  info?(msg: string, detail?: object): void;
}

/** A release that failed for a reason that may pass (busy, network): the service retries it. */
export class RetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryableError';
  }
}

/** Shares that went away from the node behind the agent's back (UB: the holder died). */
export type LostListener = (shares: Array<{ namespace: string; name: string }>) => void;

export interface Backend {
  readonly kind: string;
  /** true when its memory outlives the node's kernel, so its records must reach the disk */
  readonly durable: boolean;
  /**
   * How long a binding may wait for acquire() inside a request (ms); past it the binding is
   * refused with pendingMessage() and the acquire goes on for the retry. undefined: no budget.
   */
  readonly acquireBudgetMs: number | undefined;
  /**
   * How long a share whose holders were evicted because restore() changed its handle stays with
   * no binding before it is released (ms): the kubelet recreates them and they bind it again.
   */
  readonly staleGraceMs: number;
  /** Tells who restores shares that went away from the node behind the agent's back. */
  onLost(listener: LostListener): void;
  /** Starts what the backend needs (its lock, the connection to a daemon in the background). */
  start(): void;
  /** Why new bindings cannot be made right now, or undefined when they can. */
  unavailable(): string | undefined;
  /** The words for a binding refused because acquire() ran past the budget. */
  pendingMessage(decl: ShareDeclaration): string;
  /** Whether a present share's handle serves `decl` as it is; false: acquire() again. */
  serves(handle: ShareHandle, decl: ShareDeclaration): boolean;
  /** Makes the share present on this node at the declared size; idempotent. */
  acquire(decl: ShareDeclaration): Promise<ShareHandle>;
  /** Takes a share away from this node; idempotent. Throws RetryableError for passing failures. */
  release(handle: ShareHandle): Promise<void>;
  /** Everything a container gets for its shares, computed once per container. */
  attach(shares: readonly BoundShare[]): ContainerInjection;
  /** Shares this backend finds present on the node right now (for reconcile and status). */
  present(): Promise<ShareHandle[]>;
  /** After an agent restart: makes a recorded share usable again; the handle may change (UB memids). */
  restore(handle: ShareHandle): Promise<ShareHandle>;
  /** Size and bytes used of a present share, or undefined when it is not present. */
  usage(handle: ShareHandle): Promise<{ sizeBytes: number; usedBytes: number | null } | undefined>;
  /** Where the share is on the host, for messages; '' when there is no path to show. */
  locationOf(handle: ShareHandle): string;
  /** The runtime the agent is registered with; a backend may adapt its injection (CDI). */
  setRuntime(info: RuntimeInfo): void;
  /** Lets go of in-process resources at agent stop (the shares themselves stay). */
  close(): Promise<void>;
}

/** The members most backends have alike; a backend overrides what it does differently. */
export abstract class BackendDefaults implements Backend {
  abstract readonly kind: string;
  abstract readonly durable: boolean;
  /** no budget: a binding waits for acquire() */
  readonly acquireBudgetMs: number | undefined = undefined;
  /** no grace: restore() never changes a handle */
  readonly staleGraceMs: number = 0;
  /** nothing goes away behind the agent's back */
  onLost(_listener: LostListener): void {}
  start(): void {}
  unavailable(): string | undefined {
    return undefined;
  }
  pendingMessage(decl: ShareDeclaration): string {
    return `share ${shareKey(decl.namespace, decl.name)} is still being made ready on this node; the kubelet will retry`;
  }
  /** the declared size it was acquired for */
  serves(handle: ShareHandle, decl: ShareDeclaration): boolean {
    return handle.requestedBytes === decl.sizeBytes;
  }
  /** what survives an agent restart unchanged needs nothing re-made */
  async restore(handle: ShareHandle): Promise<ShareHandle> {
    return handle;
  }
  locationOf(_handle: ShareHandle): string {
    return '';
  }
  setRuntime(_info: RuntimeInfo): void {}
  async close(): Promise<void> {}
  abstract acquire(decl: ShareDeclaration): Promise<ShareHandle>;
  abstract release(handle: ShareHandle): Promise<void>;
  abstract attach(shares: readonly BoundShare[]): ContainerInjection;
  abstract present(): Promise<ShareHandle[]>;
  abstract usage(handle: ShareHandle): Promise<{ sizeBytes: number; usedBytes: number | null } | undefined>;
}

/** A share as a backend sees it on the node without the agent (for `status`). */
export interface ShareSeen {
  namespace: string;
  name: string;
  location: string;
  /** undefined: gone since it was listed */
  usage: { sizeBytes: number; usedBytes: number | null } | undefined;
}

/** What `status` learns from a backend without the running agent. */
export interface BackendInspection {
  /** the shares present on the node; undefined: only the agent's records know (they are trusted) */
  present?: ShareSeen[];
  /** a process of the backend's that keeps shares attached (UB's holder), or null without one */
  helper: HelperStatus | null;
  warnings: string[];
}

/** A backend's helper process as `status` shows it. */
export type HelperStatus =
  | { running: true; pid: number; version: string; since: string; protocol: number; sdk: { ready: true } | { ready: false; reason: string }; maps: string[] }
  | { running: false; reason: string };
