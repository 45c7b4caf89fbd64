// A minimal NRI *runtime* (the containerd side) built on the project's own Mux and ttrpc: it
// serves nri.pkg.api.v1alpha1.Runtime on mux conn 2 and calls the Plugin service on conn 1. It
// stands in for containerd in unit tests and records, in wire order, what crossed each connection.
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { Client, MessageReader, Server, type Transport } from '../../plugin/ttrpc';
import { decodeRequest } from '../../plugin/ttrpc/codec';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from '../../plugin/nri/mux';
import {
  PLUGIN_SERVICE,
  RUNTIME_SERVICE,
  codecs,
  type ConfigureRequest,
  type Container,
  type ContainerEviction,
  type ContainerUpdate,
  type CreateContainerResponse,
  type Event,
  type PodSandbox,
} from '../../plugin/nri/api';
import { deferred, tmpSocketPath, within } from './util';

export interface Registration {
  name: string;
  idx: string;
  nriVersion: string;
}

export interface FakeRuntimeOptions {
  /** After RegisterPlugin: Configure with these fields and Synchronize with nothing. Default: manual. */
  auto?: Partial<ConfigureRequest>;
  /**
   * Called for each accepted socket (n counts from 0) before anything else; returning true means
   * the test took the socket over (e.g. to write garbage) and the fake runtime leaves it alone.
   */
  takeOver?: (socket: Socket, n: number) => boolean;
  /** RegisterPlugin answers with this error instead of success */
  registerError?: string;
  /** listen here instead of a fresh temp path */
  path?: string;
}

/** One plugin connection as the runtime sees it. */
export class RuntimeConn {
  readonly mux: Mux;
  /** runtime → plugin calls (conn 1) */
  readonly client: Client;
  /** wire-order log: `call:M` when the runtime sends M, `reply:M` when its response arrives, `req:M` for plugin → runtime requests */
  readonly log: string[] = [];
  readonly updateRequests: Array<{ update: ContainerUpdate[]; evict: ContainerEviction[] }> = [];
  readonly registered = deferred<Registration>();
  readonly closed = deferred<Error | undefined>();
  /** the events mask from the last Configure */
  events?: number;
  /** failed updates UpdateContainers answers with */
  failUpdates: ContainerUpdate[] = [];

  constructor(socket: Socket, private readonly opts: FakeRuntimeOptions) {
    this.mux = new Mux(socket);
    this.mux.onClose((err) => this.closed.resolve(err));
    const pluginConn = this.record(this.mux.open(PLUGIN_SERVICE_CONN), 'client');
    const runtimeConn = this.record(this.mux.open(RUNTIME_SERVICE_CONN), 'server');
    const server = new Server();
    server.register(RUNTIME_SERVICE, {
      RegisterPlugin: (b) => {
        const r = codecs.RegisterPluginRequest.decode(b);
        if (opts.registerError) throw new Error(opts.registerError);
        this.registered.resolve({ name: r.pluginName, idx: r.pluginIdx, nriVersion: r.NRIVersion ?? '' });
        return codecs.Empty.encode({});
      },
      UpdateContainers: (b) => {
        this.updateRequests.push(codecs.UpdateContainersRequest.decode(b));
        return codecs.UpdateContainersResponse.encode({ failed: this.failUpdates });
      },
    });
    server.serve(runtimeConn);
    this.client = new Client(pluginConn);
  }

  /** Wraps a transport so that every whole ttrpc message crossing it is logged in wire order. */
  private record(t: Transport, role: 'client' | 'server'): Transport {
    const methods = new Map<number, string>();
    const inbound = new MessageReader();
    const log = this.log;
    return {
      write(message: Buffer) {
        if (role === 'client') {
          const method = decodeRequest(message.subarray(10)).method;
          methods.set(message.readUInt32BE(4), method);
          log.push(`call:${method}`);
        }
        t.write(message);
      },
      onData(listener) {
        t.onData((bytes) => {
          inbound.push(
            bytes,
            (m) => log.push(role === 'client' ? `reply:${methods.get(m.streamId) ?? `#${m.streamId}`}` : `req:${safeMethod(m.data)}`),
            () => log.push('oversized'),
          );
          listener(bytes);
        });
      },
      onClose: (l) => t.onClose(l),
      close: (e) => t.close(e),
      get closed() {
        return t.closed;
      },
    };
  }

  async call(method: string, payload: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
    return this.client.call(PLUGIN_SERVICE, method, payload, { timeoutMs });
  }

  async configure(req: Partial<ConfigureRequest> = {}): Promise<number> {
    const full: ConfigureRequest = {
      config: '',
      runtimeName: 'containerd',
      runtimeVersion: 'v1.7.24',
      registrationTimeout: 0,
      requestTimeout: 0,
      nriVersion: '',
      ...req,
    };
    const res = codecs.ConfigureResponse.decode(await this.call('Configure', codecs.ConfigureRequest.encode(full)));
    this.events = res.events;
    return res.events;
  }

  async synchronize(pods: PodSandbox[], containers: Container[], more = false): Promise<{ update: ContainerUpdate[]; more: boolean }> {
    const b = await this.call('Synchronize', codecs.SynchronizeRequest.encode({ pods, containers, more }));
    return codecs.SynchronizeResponse.decode(b);
  }

  async createContainer(pod: PodSandbox, container: Container): Promise<CreateContainerResponse> {
    const b = await this.call('CreateContainer', codecs.CreateContainerRequest.encode({ pod, container }));
    return codecs.CreateContainerResponse.decode(b);
  }

  async stateChange(event: Event, pod: PodSandbox, container?: Container): Promise<void> {
    await this.call('StateChange', codecs.StateChangeEvent.encode({ event, pod, container }));
  }

  close(): void {
    this.mux.close();
  }
}

function safeMethod(data: Buffer): string {
  try {
    return decodeRequest(data).method;
  } catch {
    return '?';
  }
}

export class FakeRuntime {
  readonly path: string;
  readonly conns: RuntimeConn[] = [];
  /** every accepted socket, including the ones a test took over */
  accepted = 0;
  private readonly server: NetServer;
  private waiters: Array<() => void> = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly opts: FakeRuntimeOptions) {
    this.path = opts.path ?? tmpSocketPath('nri.sock');
    this.server = createServer((socket) => this.accept(socket));
  }

  static async start(opts: FakeRuntimeOptions = {}): Promise<FakeRuntime> {
    const rt = new FakeRuntime(opts);
    await new Promise<void>((r) => rt.server.listen(rt.path, r));
    return rt;
  }

  private accept(socket: Socket): void {
    const n = this.accepted++;
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.opts.takeOver?.(socket, n)) return;
    const conn = new RuntimeConn(socket, this.opts);
    this.conns.push(conn);
    if (this.opts.auto) {
      const auto = this.opts.auto;
      void conn.registered.promise
        .then(() => conn.configure(auto))
        .then(() => conn.synchronize([], []))
        .catch(() => {});
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The n-th plugin connection (0-based) once the fake runtime has accepted it. */
  async conn(n: number, timeoutMs = 5000): Promise<RuntimeConn> {
    const ready = new Promise<void>((resolve) => {
      const check = () => (this.conns.length > n ? resolve() : this.waiters.push(check));
      check();
    });
    await within(ready, `runtime connection #${n}`, timeoutMs);
    return this.conns[n];
  }

  /** The n-th connection once its plugin registered. */
  async registered(n: number, timeoutMs = 5000): Promise<{ conn: RuntimeConn; reg: Registration }> {
    const conn = await this.conn(n, timeoutMs);
    const reg = await within(conn.registered.promise, `registration on connection #${n}`, timeoutMs);
    return { conn, reg };
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of this.conns) c.close();
    // taken-over sockets may be paused and never see EOF: server.close() would wait for them forever
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

export function pod(id: string, annotations: Record<string, string> = {}): PodSandbox {
  return { id, name: `pod-${id}`, uid: `uid-${id}`, namespace: 'default', labels: {}, annotations, runtimeHandler: '', pid: 0, ips: [] };
}

export function container(id: string, podId: string, name = `ctr-${id}`): Container {
  return { id, podSandboxId: podId, name, state: 1, labels: {}, annotations: {}, args: [], env: [], mounts: [], pid: 0 };
}
