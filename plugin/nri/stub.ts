// The NRI plugin stub: connects to the runtime (or uses the pre-launched socket on fd 3), serves
// the Plugin service, registers, subscribes, and dispatches events to the plugin's handlers.
// It reconnects by itself: containerd never says Shutdown, a restart is just EOF.
import { connect, Socket } from 'node:net';
import type { Log } from '../log/log';
import { Client, Server, type CallContext, type Method } from '../ttrpc';
import {
  Event,
  PLUGIN_SERVICE,
  RUNTIME_SERVICE,
  codecs,
  type ConfigureRequest,
  type Container,
  type ContainerEviction,
  type ContainerUpdate,
  type PodSandbox,
} from './api';
import { eventsOf, subscriptionMask } from './events';
import type { Handlers, RequestContext } from './handlers';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from './mux';

export const DEFAULT_SOCKET = '/var/run/nri/nri.sock';
/** where the RPM installs the containerd snippet that enables NRI (named in the missing-socket hint) */
export const DEFAULT_NRI_SNIPPET = '/usr/share/nri-memshare/containerd/nri.toml';

/** pino-compatible: the project's one logging shape. */
export type Logger = Log;

export type StubState = 'connecting' | 'registered' | 'synchronized' | 'disconnected' | 'stopped';

export interface StubObserver {
  /** every Plugin-service request: its method, how long the handler took, and whether it failed */
  request?(method: string, ms: number, ok: boolean): void;
  state?(state: StubState, detail?: string): void;
  /** a connection attempt failed and the stub will retry; `reason` is the (unthrottled) warning text */
  retrying?(reason: string): void;
}

export interface StubOptions {
  name?: string;
  index?: string;
  socketPath?: string;
  /** explicit event mask; by default the events whose handlers exist */
  events?: number;
  /** how long RegisterPlugin may take: the runtime registers plugins one at a time */
  registrationTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
  observer?: StubObserver;
  /** environment to detect pre-launched mode from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** what to do when a pre-launched plugin loses its connection (default: exit the process) */
  onPrelaunchedClose?: () => void;
  /** the containerd snippet named in the missing-socket hint (default DEFAULT_NRI_SNIPPET) */
  nriSnippetPath?: string;
  /** a connection warning with an unchanged reason is repeated at most this often (default 60 s) */
  retryWarnEveryMs?: number;
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface QueuedUpdate {
  update: ContainerUpdate[];
  evict: ContainerEviction[];
  resolve: (failed: ContainerUpdate[]) => void;
  reject: (err: Error) => void;
}

export class Stub {
  readonly name: string;
  readonly index: string;
  private readonly socketPath: string;
  private readonly prelaunchedFd?: number;
  private readonly log: Logger;
  private readonly observer: StubObserver;
  private readonly wantedEvents: number;
  private mux?: Mux;
  private client?: Client;
  private stopped = false;
  private synced = false;
  private inFlight = 0;
  private queue: QueuedUpdate[] = [];
  private syncPods: PodSandbox[] = [];
  private syncContainers: Container[] = [];
  private syncChunks = 0;
  private retryTimer?: NodeJS.Timeout;
  private delay: number;
  private readonly firstSync: Promise<void>;
  /** retry-warning throttle: the last reason warned about, when, and the attempts since */
  private lastRetryWarning?: { reason: string; at: number; suppressed: number };
  private resolveFirstSync!: () => void;
  /** the runtime as it introduced itself in the last Configure */
  runtime?: ConfigureRequest;

  constructor(
    private readonly handlers: Handlers,
    private readonly opts: StubOptions = {},
  ) {
    const env = opts.env ?? process.env;
    if (env.NRI_PLUGIN_SOCKET) {
      // pre-launched: the runtime chose our name and index; NRI < 0.4 passed "NN-name" as the name
      this.prelaunchedFd = Number(env.NRI_PLUGIN_SOCKET);
      const raw = env.NRI_PLUGIN_NAME ?? opts.name ?? 'memshare';
      this.index = env.NRI_PLUGIN_IDX ?? opts.index ?? '50';
      this.name = raw.startsWith(`${this.index}-`) ? raw.slice(this.index.length + 1) : raw;
    } else {
      this.name = opts.name ?? 'memshare';
      this.index = opts.index ?? '50';
    }
    if (!/^[0-9]{2}$/.test(this.index)) throw new Error(`nri: plugin index "${this.index}" must be exactly two digits`);
    if (!/^[A-Za-z0-9_.+-]+$/.test(this.name)) throw new Error(`nri: plugin name "${this.name}" must be non-empty and only [A-Za-z0-9_.+-]`);
    this.socketPath = opts.socketPath ?? DEFAULT_SOCKET;
    this.log = opts.logger ?? silent;
    this.observer = opts.observer ?? {};
    this.wantedEvents = opts.events ?? eventsOf(handlers);
    this.delay = opts.backoff?.initialMs ?? 100;
    this.firstSync = new Promise((r) => (this.resolveFirstSync = r));
  }

  get prelaunched(): boolean {
    return this.prelaunchedFd !== undefined;
  }

  get isSynchronized(): boolean {
    return this.synced;
  }

  /** Starts connecting; resolves once the plugin is registered and synchronized the first time. */
  start(): Promise<void> {
    this.connect();
    return this.firstSync;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // let go of the session first: its close is ours, not news to warn about
    const mux = this.mux;
    this.mux = undefined;
    this.client = undefined;
    this.synced = false;
    mux?.close();
    for (const q of this.queue) q.reject(new Error('nri: stub stopped'));
    this.queue = [];
    this.setState('stopped');
  }

  /**
   * Asks the runtime to update or evict containers. Sent only while no event handler is running
   * and after Synchronize: the runtime holds its lock while it waits for a handler, so a request
   * from inside one would deadlock until the request timeout.
   */
  updateContainers(update: ContainerUpdate[], evict: ContainerEviction[] = []): Promise<ContainerUpdate[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ update, evict, resolve, reject });
      this.flushSoon();
    });
  }

  private setState(state: StubState, detail?: string): void {
    this.observer.state?.(state, detail);
  }

  private connect(): void {
    if (this.stopped) return;
    this.setState('connecting');
    const socket = this.prelaunchedFd !== undefined ? new Socket({ fd: this.prelaunchedFd, readable: true, writable: true }) : connect(this.socketPath);
    let established = this.prelaunchedFd !== undefined;
    socket.once('connect', () => {
      established = true;
      this.lastRetryWarning = undefined; // the next failure is news again
      void this.session(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (established) return; // the session's own close handling takes over
      const reason = connectHint(err, this.socketPath, this.opts.nriSnippetPath ?? DEFAULT_NRI_SNIPPET);
      this.observer.retrying?.(reason);
      this.warnRetry(reason, err.message);
      this.scheduleReconnect();
    });
    if (this.prelaunchedFd !== undefined) void this.session(socket);
  }

  /** Warns about a failed attempt when the reason is new, else at most once per retryWarnEveryMs. */
  private warnRetry(reason: string, err: string): void {
    const now = Date.now();
    const last = this.lastRetryWarning;
    if (last && last.reason === reason && now - last.at < (this.opts.retryWarnEveryMs ?? 60_000)) {
      last.suppressed++;
      return;
    }
    const repeated = last && last.reason === reason ? { failedAttemptsSinceLastWarning: last.suppressed + 1 } : {};
    this.lastRetryWarning = { reason, at: now, suppressed: 0 };
    this.log.warn({ socket: this.socketPath, err, ...repeated }, reason);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    if (this.prelaunched) {
      // the runtime owns a pre-launched plugin's life; nothing to reconnect to
      this.log.error({}, 'nri: pre-launched connection closed');
      (this.opts.onPrelaunchedClose ?? (() => process.exit(1)))();
      return;
    }
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, this.opts.backoff?.maxMs ?? 5000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, wait);
  }

  private async session(socket: Socket): Promise<void> {
    const mux = new Mux(socket);
    this.mux = mux;
    this.synced = false;
    this.syncPods = [];
    this.syncContainers = [];
    this.syncChunks = 0;
    const server = new Server({ onProtocolError: (err) => this.log.warn({ err: err.message }, 'nri: ttrpc protocol error') });
    server.register(PLUGIN_SERVICE, this.pluginService());
    // serve the Plugin service first: Configure can arrive before RegisterPlugin's reply
    server.serve(mux.open(PLUGIN_SERVICE_CONN));
    const client = new Client(mux.open(RUNTIME_SERVICE_CONN));
    this.client = client;
    mux.onClose((err) => {
      if (this.mux !== mux) return;
      this.mux = undefined;
      this.client = undefined;
      this.synced = false;
      this.log.warn({ err: err?.message }, 'nri: connection to the runtime closed');
      this.setState('disconnected', err?.message);
      this.scheduleReconnect();
    });
    try {
      await client.call(
        RUNTIME_SERVICE,
        'RegisterPlugin',
        codecs.RegisterPluginRequest.encode({ pluginName: this.name, pluginIdx: this.index }),
        { timeoutMs: this.opts.registrationTimeoutMs ?? 15000 },
      );
      this.log.info({ name: this.name, index: this.index }, 'nri: registered');
      this.setState('registered');
    } catch (err) {
      this.log.error({ err: (err as Error).message, name: this.name, index: this.index }, 'nri: registration failed');
      mux.close(err as Error);
    }
  }

  private pluginService(): Record<string, Method> {
    const h = this.handlers;
    const podEvent = (fn?: (pod: PodSandbox, ctx: RequestContext) => unknown): Method =>
      this.wrap(async (b, ctx) => {
        const { pod } = codecs.PodSandboxEventRequest.decode(b);
        await fn?.call(h, pod, requestContext(ctx));
        return codecs.Empty.encode({});
      });
    const ctrEvent = (fn?: (pod: PodSandbox, c: Container, ctx: RequestContext) => unknown): Method =>
      this.wrap(async (b, ctx) => {
        const { pod, container } = codecs.ContainerEventRequest.decode(b);
        await fn?.call(h, pod, container, requestContext(ctx));
        return codecs.Empty.encode({});
      });
    return {
      Configure: this.wrap(async (b) => {
        const req = codecs.ConfigureRequest.decode(b);
        this.runtime = req;
        await h.configure?.(req);
        const events = subscriptionMask(this.wantedEvents, req);
        this.log.info({ runtime: req.runtimeName, version: req.runtimeVersion, events: `0x${events.toString(16)}` }, 'nri: configured');
        return codecs.ConfigureResponse.encode({ events });
      }),
      Synchronize: this.wrap(async (b, ctx) => {
        const req = codecs.SynchronizeRequest.decode(b);
        for (const p of req.pods) this.syncPods.push(p);
        for (const c of req.containers) this.syncContainers.push(c); // no spread: thousands of items
        this.syncChunks++;
        if (req.more) return codecs.SynchronizeResponse.encode({ update: [], more: true });
        const pods = this.syncPods;
        const containers = this.syncContainers;
        const chunks = this.syncChunks;
        this.syncPods = [];
        this.syncContainers = [];
        this.syncChunks = 0;
        const update = (await h.synchronize?.(pods, containers, requestContext(ctx))) ?? [];
        if (ctx.deadline !== undefined && Date.now() > ctx.deadline) {
          // the runtime gave up on this sync: on NRI <= 0.11 we would be a zombie that gets no events
          this.log.error({ pods: pods.length, containers: containers.length }, 'nri: Synchronize finished after its deadline; reconnecting');
          setImmediate(() => this.mux?.close(new Error('synchronize deadline exceeded')));
        } else {
          setImmediate(() => this.markSynced(pods.length, containers.length, chunks));
        }
        return codecs.SynchronizeResponse.encode({ update, more: false });
      }),
      Shutdown: this.wrap(() => {
        setImmediate(() => this.mux?.close());
        return codecs.Empty.encode({});
      }),
      CreateContainer: this.wrap(async (b, ctx) => {
        const { pod, container } = codecs.CreateContainerRequest.decode(b);
        const res = (await h.createContainer?.(pod, container, requestContext(ctx))) ?? {};
        return codecs.CreateContainerResponse.encode(res);
      }),
      UpdateContainer: this.wrap(async (b, ctx) => {
        const { pod, container, linuxResources } = codecs.UpdateContainerRequest.decode(b);
        const res = (await h.updateContainer?.(pod, container, linuxResources, requestContext(ctx))) ?? {};
        return codecs.UpdateContainerResponse.encode(res);
      }),
      StopContainer: this.wrap(async (b, ctx) => {
        const { pod, container } = codecs.StopContainerRequest.decode(b);
        const update = (await h.stopContainer?.(pod, container, requestContext(ctx))) ?? [];
        return codecs.StopContainerResponse.encode({ update });
      }),
      StateChange: this.wrap(async (b, ctx) => {
        const ev = codecs.StateChangeEvent.decode(b);
        await this.stateChange(ev.event, requestContext(ctx), ev.pod, ev.container);
        return codecs.Empty.encode({});
      }),
      // NRI v0.12 sends each event on its own method, reaching the same handlers
      RunPodSandbox: podEvent(h.runPodSandbox),
      StopPodSandbox: podEvent(h.stopPodSandbox),
      RemovePodSandbox: podEvent(h.removePodSandbox),
      PostUpdatePodSandbox: podEvent(),
      PostCreateContainer: ctrEvent(h.postCreateContainer),
      StartContainer: ctrEvent(h.startContainer),
      PostStartContainer: ctrEvent(h.postStartContainer),
      PostUpdateContainer: ctrEvent(h.postUpdateContainer),
      RemoveContainer: ctrEvent(h.removeContainer),
      UpdatePodSandbox: this.wrap(() => codecs.UpdatePodSandboxResponse.encode({})),
      // never subscribed to; answered so a runtime that sends it anyway is not failed
      ValidateContainerAdjustment: this.wrap(() => codecs.ValidateContainerAdjustmentResponse.encode({ reject: false, reason: '' })),
    };
  }

  private async stateChange(event: Event, ctx: RequestContext, pod?: PodSandbox, container?: Container): Promise<void> {
    const h = this.handlers;
    if (!pod) return;
    switch (event) {
      case Event.RUN_POD_SANDBOX: return void (await h.runPodSandbox?.(pod, ctx));
      case Event.STOP_POD_SANDBOX: return void (await h.stopPodSandbox?.(pod, ctx));
      case Event.REMOVE_POD_SANDBOX: return void (await h.removePodSandbox?.(pod, ctx));
    }
    if (!container) return;
    switch (event) {
      case Event.POST_CREATE_CONTAINER: return void (await h.postCreateContainer?.(pod, container, ctx));
      case Event.START_CONTAINER: return void (await h.startContainer?.(pod, container, ctx));
      case Event.POST_START_CONTAINER: return void (await h.postStartContainer?.(pod, container, ctx));
      case Event.POST_UPDATE_CONTAINER: return void (await h.postUpdateContainer?.(pod, container, ctx));
      case Event.REMOVE_CONTAINER: return void (await h.removeContainer?.(pod, container, ctx));
      default: return;
    }
  }

  /** Times a Plugin-service method and tracks that a handler is running. */
  private wrap(fn: (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array): Method {
    return async (payload, ctx) => {
      const started = performance.now();
      this.inFlight++;
      let ok = false;
      try {
        const out = await fn(payload, ctx);
        ok = true;
        return out;
      } finally {
        this.inFlight--;
        this.observer.request?.(ctx.method, performance.now() - started, ok);
        if (this.queue.length) this.flushSoon();
      }
    };
  }

  private markSynced(pods: number, containers: number, chunks: number): void {
    this.synced = true;
    this.delay = this.opts.backoff?.initialMs ?? 100;
    this.log.info({ pods, containers, chunks }, 'nri: synchronized');
    this.setState('synchronized', `pods=${pods} containers=${containers} chunks=${chunks}`);
    this.resolveFirstSync();
    this.flushSoon();
  }

  private flushSoon(): void {
    setImmediate(() => {
      if (!this.synced || this.inFlight > 0 || !this.client) return;
      const client = this.client;
      const batch = this.queue;
      this.queue = [];
      for (const q of batch) {
        client
          .call(RUNTIME_SERVICE, 'UpdateContainers', codecs.UpdateContainersRequest.encode({ update: q.update, evict: q.evict }), {
            timeoutMs: this.runtime?.requestTimeout || 2000,
          })
          .then((b) => q.resolve(codecs.UpdateContainersResponse.decode(b).failed), q.reject);
      }
    });
  }
}

/** The part of ttrpc's call context a handler sees. */
function requestContext(ctx: CallContext): RequestContext {
  return { deadline: ctx.deadline, get signal() { return ctx.signal; } };
}

function connectHint(err: NodeJS.ErrnoException, socket: string, snippet: string): string {
  switch (err.code) {
    case 'ENOENT':
      return `nri: socket ${socket} does not exist: is containerd running with NRI enabled? (containerd 1.7 has NRI disabled by default; see ${snippet}). Retrying`;
    case 'ECONNREFUSED':
      return `nri: nobody listens on ${socket}: containerd is not running or NRI connections are disabled (disable_connections). Retrying`;
    case 'EACCES':
      return `nri: permission denied on ${socket}: the agent must run as root. Retrying`;
    default:
      return `nri: cannot connect to ${socket}: ${err.message}. Retrying`;
  }
}
