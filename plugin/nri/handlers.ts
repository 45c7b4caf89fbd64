// What a plugin author writes: a handful of typed handlers. Each one is optional; the stub
// subscribes to exactly the events whose handlers exist.
import type { ConfigureRequest, Container, ContainerAdjustment, ContainerEviction, ContainerUpdate, LinuxResources, PodSandbox } from './api';

export type MaybePromise<T> = T | Promise<T>;

export interface CreateContainerResult {
  adjust?: ContainerAdjustment;
  update?: ContainerUpdate[];
  evict?: ContainerEviction[];
}

export interface Handlers {
  /** Called once per connection with the runtime's name, version and timeouts. */
  configure?(req: ConfigureRequest): MaybePromise<void>;
  /** The runtime's pods and containers at (re)connection; all chunks of a paged sync in one call. */
  synchronize?(pods: PodSandbox[], containers: Container[]): MaybePromise<ContainerUpdate[] | void>;
  /** Throwing fails the container's creation with the error's message. */
  createContainer?(pod: PodSandbox, container: Container): MaybePromise<CreateContainerResult | void>;
  updateContainer?(pod: PodSandbox, container: Container, resources?: LinuxResources): MaybePromise<{ update?: ContainerUpdate[]; evict?: ContainerEviction[] } | void>;
  stopContainer?(pod: PodSandbox, container: Container): MaybePromise<ContainerUpdate[] | void>;
  runPodSandbox?(pod: PodSandbox): MaybePromise<void>;
  stopPodSandbox?(pod: PodSandbox): MaybePromise<void>;
  removePodSandbox?(pod: PodSandbox): MaybePromise<void>;
  postCreateContainer?(pod: PodSandbox, container: Container): MaybePromise<void>;
  startContainer?(pod: PodSandbox, container: Container): MaybePromise<void>;
  postStartContainer?(pod: PodSandbox, container: Container): MaybePromise<void>;
  postUpdateContainer?(pod: PodSandbox, container: Container): MaybePromise<void>;
  removeContainer?(pod: PodSandbox, container: Container): MaybePromise<void>;
}
