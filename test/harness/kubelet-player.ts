// A stand-in for the kubelet's side of the DRA plugin API, for tests. It speaks the real protocol
// (gRPC over unix sockets, @grpc/grpc-js, the project's codecs from proto/*.proto) and follows what
// the kubelet does (pkg/kubelet/pluginmanager and pkg/kubelet/cm/dra/plugin):
// - watches the plugin registry directory (inotify, through fs.watch) and takes every unix socket
//   whose name does not start with "." (the kubelet takes any socket there, not only *-reg.sock);
// - dials it, calls GetInfo (1 s), and validates the answer as the kubelet does: a handler for the
//   type (only "DRAPlugin" here), a non-empty list of services, the first service in the plugin's
//   order that this kubelet knows (a 1.34+ kubelet knows v1.DRAPlugin and v1beta1.DRAPlugin, a
//   1.32/1.33 one v1beta1 only: `services`), an endpoint not already registered for the driver, an
//   empty endpoint meaning the registration socket itself;
// - calls NotifyRegistrationStatus with the verdict (the reason on a refusal);
// - calls NodePrepareResources / NodeUnprepareResources on the chosen service (45 s deadline) and
//   gives back the answers as plain objects, keyed by claim uid;
// - forgets a plugin whose registration socket goes away.
// What it does not do: read pods or ResourceClaims, pick the claims to prepare, keep the kubelet's
// claim checkpoint, retry failed claims, hand CDI ids to the runtime (an e2e test passes them to
// CRI itself), wipe ResourceSlices of a plugin that is gone, or watch resource health.
import { watch, type FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as dra from '../../plugin/kubelet-plugin/dra.pb';
import * as reg from '../../plugin/kubelet-plugin/pluginregistration.pb';
import type { ClaimRef } from '../../plugin/dra/types';

/** The DRAPlugin services a 1.34+ kubelet knows, the newest first. */
export const KUBELET_DRA_SERVICES = ['v1.DRAPlugin', 'v1beta1.DRAPlugin'] as const;
export type KubeletDraService = (typeof KUBELET_DRA_SERVICES)[number];

const PACKAGE_OF: Record<KubeletDraService, keyof typeof dra.services> = {
  'v1.DRAPlugin': 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin',
  'v1beta1.DRAPlugin': 'k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin',
};

/** The kubelet's timeouts: GetInfo, NotifyRegistrationStatus, a DRA call. */
const GET_INFO_MS = 1000;
const NOTIFY_MS = 5000;
const DRA_CALL_MS = 45_000;

export interface PreparedDeviceAnswer {
  requestNames: string[];
  poolName: string;
  deviceName: string;
  cdiDeviceIds: string[];
}
export interface PrepareAnswer {
  devices: PreparedDeviceAnswer[];
  error: string;
}

/** What GetInfo said, as the player read it. */
export interface PluginInfoAnswer {
  type: string;
  name: string;
  endpoint: string;
  supportedVersions: string[];
}

/** A registration the player refused, with the reason it sent back. */
export interface RefusedRegistration {
  socket: string;
  error: string;
}

type Codec<T> = { encode(m: object): Buffer; decode(b: Uint8Array): T };

function unary<Res>(client: grpc.Client, path: string, req: Codec<unknown>, res: Codec<Res>, arg: object, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, (m: object) => req.encode(m), (b: Buffer) => res.decode(b), arg, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, value) => {
      if (err) reject(err);
      else resolve(value as Res);
    });
  });
}

/** A registered DRA plugin as the kubelet holds it: its driver, endpoint and the chosen service. */
export class PlayerPlugin {
  private readonly client: grpc.Client;
  constructor(
    readonly driverName: string,
    readonly endpoint: string,
    readonly service: KubeletDraService,
    readonly registrationSocket: string,
  ) {
    this.client = new grpc.Client(`unix:${endpoint}`, grpc.credentials.createInsecure());
  }

  /** NodePrepareResources: the answer per claim uid, as plain objects. */
  async prepare(claims: readonly ClaimRef[], timeoutMs = DRA_CALL_MS): Promise<Record<string, PrepareAnswer>> {
    const m = dra.services[PACKAGE_OF[this.service]].NodePrepareResources;
    const r = await unary(this.client, m.path, m.request, m.response, { claims: claims.map((c) => ({ ...c })) }, timeoutMs);
    const out: Record<string, PrepareAnswer> = {};
    for (const [uid, v] of Object.entries(r.claims as Record<string, dra.NodePrepareResourceResponse>)) {
      out[uid] = {
        error: v.error as string,
        devices: (v.devices as dra.Device[]).map((d) => ({
          requestNames: [...(d.requestNames as string[])],
          poolName: d.poolName as string,
          deviceName: d.deviceName as string,
          cdiDeviceIds: [...(d.cdiDeviceIds as string[])],
        })),
      };
    }
    return out;
  }

  /** NodeUnprepareResources: the error per claim uid ("" when done). */
  async unprepare(claims: readonly ClaimRef[], timeoutMs = DRA_CALL_MS): Promise<Record<string, string>> {
    const m = dra.services[PACKAGE_OF[this.service]].NodeUnprepareResources;
    const r = await unary(this.client, m.path, m.request, m.response, { claims: claims.map((c) => ({ ...c })) }, timeoutMs);
    const out: Record<string, string> = {};
    for (const [uid, v] of Object.entries(r.claims as Record<string, dra.NodeUnprepareResourceResponse>)) out[uid] = v.error as string;
    return out;
  }

  /** A raw call on the DRA socket (a malformed request, another service's path). */
  raw(path: string, body: Buffer, timeoutMs = DRA_CALL_MS): Promise<Buffer> {
    const id: Codec<Buffer> = { encode: (b) => b as Buffer, decode: (b) => Buffer.from(b) };
    return unary(this.client, path, id, id, body, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

export interface KubeletPlayerOptions {
  /** the plugin registry directory to watch (the kubelet's /var/lib/kubelet/plugins_registry) */
  registryDir: string;
  /** the DRAPlugin services this kubelet knows (default: a 1.34+ kubelet's, v1 and v1beta1) */
  services?: readonly KubeletDraService[];
}

export class KubeletPlayer {
  /** registered plugins by driver name, the newest last (the kubelet calls the newest) */
  private readonly plugins = new Map<string, PlayerPlugin[]>();
  private readonly bySocket = new Map<string, PlayerPlugin>();
  private readonly pending = new Set<string>();
  private readonly waiters: Array<() => void> = [];
  private watcher?: FSWatcher;
  private closed = false;
  /** registrations refused, with the reason sent to the plugin */
  readonly refused: RefusedRegistration[] = [];
  /** errors that kept a registration from completing (GetInfo or Notify failed) */
  readonly failed: RefusedRegistration[] = [];

  private constructor(private readonly opts: KubeletPlayerOptions) {}

  static async start(opts: KubeletPlayerOptions): Promise<KubeletPlayer> {
    const p = new KubeletPlayer(opts);
    p.watcher = watch(opts.registryDir, (_event, name) => {
      if (name) void p.consider(String(name));
    });
    for (const name of await readdir(opts.registryDir)) void p.consider(name);
    return p;
  }

  /** The newest registered plugin of a driver, waiting for it to register (rejects after timeoutMs). */
  async plugin(driverName: string, timeoutMs = 10_000): Promise<PlayerPlugin> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const list = this.plugins.get(driverName);
      if (list && list.length) return list[list.length - 1];
      const left = deadline - Date.now();
      if (left <= 0) {
        const why = [...this.refused, ...this.failed].map((r) => `${r.socket}: ${r.error}`).join('; ');
        throw new Error(`kubelet player: DRA driver ${driverName} did not register within ${timeoutMs} ms${why ? ` (${why})` : ''}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits until a registration is refused or fails (rejects after timeoutMs). */
  async refusal(timeoutMs = 10_000): Promise<RefusedRegistration> {
    const deadline = Date.now() + timeoutMs;
    while (this.refused.length === 0 && this.failed.length === 0) {
      if (Date.now() > deadline) throw new Error(`kubelet player: no registration refused within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.refused[0] ?? this.failed[0];
  }

  /** Whether a driver has a registered plugin now (false after its registration socket went away). */
  registered(driverName: string): boolean {
    return (this.plugins.get(driverName)?.length ?? 0) > 0;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** A name in the registry directory appeared or went away. */
  private async consider(name: string): Promise<void> {
    if (this.closed || name.startsWith('.')) return;
    const socket = join(this.opts.registryDir, name);
    let isSocket = false;
    try {
      isSocket = (await lstat(socket)).isSocket();
    } catch {
      isSocket = false;
    }
    if (!isSocket) {
      this.forget(socket);
      return;
    }
    if (this.bySocket.has(socket) || this.pending.has(socket)) return;
    this.pending.add(socket);
    try {
      await this.register(socket);
    } catch (err) {
      this.failed.push({ socket, error: (err as Error).message });
    } finally {
      this.pending.delete(socket);
      this.wake();
    }
  }

  private forget(socket: string): void {
    const p = this.bySocket.get(socket);
    if (!p) return;
    this.bySocket.delete(socket);
    const list = (this.plugins.get(p.driverName) ?? []).filter((q) => q !== p);
    if (list.length) this.plugins.set(p.driverName, list);
    else this.plugins.delete(p.driverName);
    p.close();
  }

  /** The kubelet's registration of one socket: GetInfo, validation, then the verdict to the plugin. */
  private async register(socket: string): Promise<void> {
    const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure());
    const m = reg.services['pluginregistration.Registration'];
    const notify = async (registered: boolean, error: string): Promise<void> => {
      await unary(client, m.NotifyRegistrationStatus.path, m.NotifyRegistrationStatus.request, m.NotifyRegistrationStatus.response, { pluginRegistered: registered, error }, NOTIFY_MS);
    };
    try {
      const got = await unary(client, m.GetInfo.path, m.GetInfo.request, m.GetInfo.response, {}, GET_INFO_MS);
      const info: PluginInfoAnswer = {
        type: got.type as string,
        name: got.name as string,
        endpoint: (got.endpoint as string) || socket,
        supportedVersions: [...(got.supportedVersions as string[])],
      };
      const refuse = async (error: string): Promise<void> => {
        this.refused.push({ socket, error });
        await notify(false, error);
      };
      if (info.type !== 'DRAPlugin') return await refuse(`RegisterPlugin error -- no handler registered for plugin type: ${info.type} at socket ${socket}`);
      const known: readonly string[] = this.opts.services ?? KUBELET_DRA_SERVICES;
      if (info.supportedVersions.length === 0) return await refuse(`invalid supported gRPC versions of DRA driver plugin ${info.name} at endpoint ${info.endpoint}: empty list of supported gRPC services`);
      const chosen = info.supportedVersions.find((v) => known.includes(v)) as KubeletDraService | undefined;
      if (!chosen) {
        return await refuse(`invalid supported gRPC versions of DRA driver plugin ${info.name} at endpoint ${info.endpoint}: none of the services supported by the plugin (${info.supportedVersions.join(', ')}) are supported by the kubelet (${known.join(', ')})`);
      }
      if ((this.plugins.get(info.name) ?? []).some((p) => p.endpoint === info.endpoint)) {
        return await refuse(`endpoint ${info.endpoint} already registered for DRA driver plugin ${info.name}`);
      }
      const plugin = new PlayerPlugin(info.name, info.endpoint, chosen, socket);
      this.plugins.set(info.name, [...(this.plugins.get(info.name) ?? []), plugin]);
      this.bySocket.set(socket, plugin);
      await notify(true, '');
    } finally {
      client.close();
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    for (const p of this.bySocket.values()) p.close();
    this.bySocket.clear();
    this.plugins.clear();
    this.wake();
  }
}
