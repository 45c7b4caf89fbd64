// What a plugin author writes: a handful of typed handlers. Each one is optional; the stub
// subscribes to exactly the events whose handlers exist.
import type { ConfigureRequest, Container, ContainerAdjustment, ContainerEviction, ContainerUpdate, LinuxResources, PodSandbox } from './api';

export type MaybePromise<T> = T | Promise<T>;

/** A request's limits, as every handler of containerd's Go stub gets them in its ctx. */
export interface RequestContext {
  /** when the runtime stops waiting for the answer (epoch ms), if it said */
  deadline?: number;
  /** aborted when the deadline passes or the connection closes */
  signal: AbortSignal;
}

export interface CreateContainerResult {
  adjust?: ContainerAdjustment;
  update?: ContainerUpdate[];
  evict?: ContainerEviction[];
}

export interface Handlers {
  /** Called once per connection with the runtime's name, version and timeouts. */
  configure?(req: ConfigureRequest): MaybePromise<void>;
  /** The runtime's pods and containers at (re)connection; all chunks of a paged sync in one call. */
  synchronize?(pods: PodSandbox[], containers: Container[], ctx: RequestContext): MaybePromise<ContainerUpdate[] | void>;
  /** Throwing fails the container's creation with the error's message. */
  createContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<CreateContainerResult | void>;
  updateContainer?(pod: PodSandbox, container: Container, resources: LinuxResources | undefined, ctx: RequestContext): MaybePromise<{ update?: ContainerUpdate[]; evict?: ContainerEviction[] } | void>;
  stopContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<ContainerUpdate[] | void>;
  runPodSandbox?(pod: PodSandbox, ctx: RequestContext): MaybePromise<void>;
  stopPodSandbox?(pod: PodSandbox, ctx: RequestContext): MaybePromise<void>;
  removePodSandbox?(pod: PodSandbox, ctx: RequestContext): MaybePromise<void>;
  postCreateContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<void>;
  startContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<void>;
  postStartContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<void>;
  postUpdateContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<void>;
  removeContainer?(pod: PodSandbox, container: Container, ctx: RequestContext): MaybePromise<void>;
}
