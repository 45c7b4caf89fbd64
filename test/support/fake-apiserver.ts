// A fake kube-apiserver serving one custom resource, sharememories.resource.ubsvirt.huawei.com/v1,
// for tests of the Kubernetes declaration source. It STANDS IN for a real kube-apiserver (backed by
// etcd and its watch cache) and follows the wire protocol a client sees:
//  - list  GET /apis/resource.ubsvirt.huawei.com/v1/sharememories (and .../namespaces/NS/sharememories):
//          {kind: ShareMemoryList, metadata: {resourceVersion, continue?}, items} with items in key
//          order, each with apiVersion, kind and metadata.{resourceVersion, uid, creationTimestamp, generation};
//          paging with limit + continue over a consistent snapshot; a continue token older than the
//          compaction point gets HTTP 410 (reason Expired), as etcd compaction does.
//  - watch ?watch=1|true: HTTP 200, chunked, one JSON event {type, object} per line, flushed at once.
//          resourceVersion unset or "0": synthetic ADDED for every existing object, then live events;
//          resourceVersion=N: every event after N from history, then live; N older than the
//          compaction point: an ERROR event with a 410 Status ("too old resource version"), then the
//          stream ends (or HTTP 410 when goneAsHttpStatus is set, as some server paths do).
//          allowWatchBookmarks=true: BOOKMARK events on bookmark(). timeoutSeconds=S: the server ends
//          the stream after S seconds (a clean end of the chunked response).
//  - one global resourceVersion counter shared by all objects (etcd's revision); every write bumps it.
//  - authentication: with `token` set, a request without "Authorization: Bearer <token>" gets a
//          401 Status; `forbidden` makes every request a 403 Status naming the verb and resource;
//          `crdInstalled = false` makes the resource path a plain-text "404 page not found".
//  - https when given a key and certificate (selfSignedCert() makes one with openssl if present).
//  - writeRawToWatches(): bytes no real server sends (an endless line), to test the client's limits.
//  - writes the agent makes, in fake-apiserver-writes.ts (which lists what it implements): GET of
//          one object, server-side apply on sharememories and sharememories/status with
//          managedFields per field manager, 404/409/415/422 answers; events.k8s.io/v1 create,
//          list and merge patch. A status write is a MODIFIED event to watchers like any other.
// It does NOT implement: other resources or discovery, other writes through HTTP (tests create and
// delete objects through methods), resourceVersionMatch, fieldSelector/labelSelector, sendInitialEvents, protobuf or
// table output, client-certificate authentication, admission or schema validation (so invalid
// objects can be stored on purpose), a "too large resource version" wait, or watch-cache
// windows beyond the explicit compact().
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiWrites } from './fake-apiserver-writes';

export const GROUP = 'resource.ubsvirt.huawei.com';
export const API_VERSION = `${GROUP}/v1`;
const KIND = 'ShareMemory';
const PLURAL = 'sharememories';

type Obj = Record<string, any>;

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

interface Watcher {
  res: http.ServerResponse;
  namespace?: string;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

export interface RequestRecord {
  method?: string;
  path: string;
  query: Record<string, string>;
  authorization?: string;
  status: number;
}

export interface FakeApiServerOptions {
  /** bearer token required of every request (none: anonymous allowed) */
  token?: string;
  /** serve https with this key and certificate (PEM) */
  tls?: { key: Buffer | string; cert: Buffer | string };
}

export class FakeApiServer {
  token: string | undefined;
  forbidden = false;
  crdInstalled = true;
  /** answer a watch from a compacted resourceVersion with HTTP 410 instead of an ERROR event */
  goneAsHttpStatus = false;
  /** every request, in order */
  readonly requests: RequestRecord[] = [];
  /** TCP connections accepted so far (kept-alive requests share one) */
  connectionsAccepted = 0;

  private rv = 1;
  private compactedRv = 1;
  /** state at compactedRv */
  private base = new Map<string, Obj>();
  private history: HistoryEntry[] = [];
  private objects = new Map<string, Obj>();
  private watchers = new Set<Watcher>();
  private held: Array<() => void> = [];
  private holding = false;
  private server: http.Server | undefined;
  private sockets = new Set<Socket>();
  private uid = 0;
  private port = 0;
  /** the write side: server-side apply on ShareMemory objects, Events */
  readonly writes: FakeApiWrites = new FakeApiWrites({
    get: (ns, name) => this.get(ns, name),
    put: (obj, keepGeneration) => this.apply(obj, keepGeneration),
    nextRv: () => String(++this.rv),
    forbidden: () => this.forbidden,
  });

  constructor(private readonly options: FakeApiServerOptions = {}) {
    this.token = options.token;
  }

  /** The stored object (a copy), or undefined. */
  get(namespace: string, name: string): Obj | undefined {
    const o = this.objects.get(`${namespace}/${name}`);
    return o ? structuredClone(o) : undefined;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Open watch streams right now. */
  get watchCount(): number {
    return this.watchers.size;
  }

  /** Listens (on `port`, e.g. the previous one after stop(); default any free port). */
  async start(port = this.port): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    const server = this.options.tls ? https.createServer({ key: this.options.tls.key, cert: this.options.tls.cert }, handler) : http.createServer(handler);
    server.on('connection', (s: Socket) => {
      this.connectionsAccepted++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** Goes away like a crashed server: stops listening and cuts every connection. State is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const w of this.watchers) clearTimeout(w.timer);
    this.watchers.clear();
    this.held = [];
    for (const s of this.sockets) s.destroy();
    server?.closeAllConnections();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  // ---- state (what kubectl apply/delete would do) ------------------------------------------------

  /** Stores an object as given (no validation); metadata.namespace and name are required. */
  apply(object: Obj, keepGeneration = false): Obj {
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const old = this.objects.get(key);
    const rv = ++this.rv;
    const stored: Obj = structuredClone(object);
    stored.metadata = {
      ...stored.metadata,
      resourceVersion: String(rv),
      uid: old?.metadata.uid ?? `00000000-0000-4000-8000-${String(++this.uid).padStart(12, '0')}`,
      creationTimestamp: old?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      generation: (old?.metadata.generation ?? 0) + (keepGeneration && old ? 0 : 1),
    };
    this.objects.set(key, stored);
    this.record({ rv, type: old ? 'MODIFIED' : 'ADDED', object: stored });
    return stored;
  }

  /** A valid ShareMemory. */
  share(namespace: string, name: string, storage: string, allowedNamespaces?: string[]): Obj {
    return this.apply(shareMemory(namespace, name, storage, allowedNamespaces));
  }

  delete(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const old = this.objects.get(key);
    if (!old) return false;
    this.objects.delete(key);
    const rv = ++this.rv;
    // the DELETED event carries the last state with the deletion's resourceVersion
    this.record({ rv, type: 'DELETED', object: { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } } });
    return true;
  }

  /** Writes to other resources: etcd's revision (the resourceVersion) moves on without an event here. */
  otherWrites(n = 1): void {
    this.rv += n;
  }

  /** Forgets history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.base = new Map(this.objects);
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Sends a BOOKMARK with the current resourceVersion to watchers that allowed bookmarks. */
  bookmark(): void {
    const ev = { type: 'BOOKMARK', object: { apiVersion: API_VERSION, kind: KIND, metadata: { resourceVersion: String(this.rv) } } };
    for (const w of this.watchers) if (w.bookmarks) send(w.res, ev);
  }

  /** Ends every watch stream cleanly, as timeoutSeconds would. */
  endWatches(): void {
    for (const w of [...this.watchers]) this.endWatch(w);
  }

  /** Holds new watch requests unanswered (the client is "away") until releaseWatches(). */
  holdWatches(): void {
    this.holding = true;
  }

  releaseWatches(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }

  /**
   * Writes raw bytes to every open watch stream, as a broken or hostile server (or a proxy in
   * between) could; a real kube-apiserver only ever writes whole JSON events of at most a few
   * MiB (objects are limited by its 3 MiB request bodies and etcd's 1.5 MiB values).
   */
  writeRawToWatches(data: string | Buffer): void {
    for (const w of this.watchers) if (!w.res.destroyed) w.res.write(data);
  }

  /** Watch requests currently held. */
  get heldCount(): number {
    return this.held.length;
  }

  // ---- HTTP ---------------------------------------------------------------------------------------

  private record(entry: HistoryEntry): void {
    this.history.push(entry);
    for (const w of this.watchers) {
      if (!w.namespace || w.namespace === entry.object.metadata.namespace) send(w.res, { type: entry.type, object: entry.object });
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const rec: RequestRecord = { method: req.method, path: url.pathname, query, authorization: req.headers.authorization, status: 0 };
    this.requests.push(rec);
    const reply = (code: number, body: unknown, type = 'application/json') => {
      rec.status = code;
      res.writeHead(code, { 'Content-Type': type });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const write = this.writes.handles(url.pathname);
    if (req.method !== 'GET' && !write) return reply(405, status(405, 'MethodNotAllowed', 'the fake API server is read-only over HTTP'));
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      return reply(401, status(401, 'Unauthorized', 'Unauthorized'));
    }
    if (write) return this.writes.handle(req, url, reply);
    const m = /^\/apis\/resource\.ubsvirt\.huawei\.com\/v1\/(?:namespaces\/([a-z0-9-]+)\/)?sharememories$/.exec(url.pathname);
    if (!m || !this.crdInstalled) return reply(404, '404 page not found\n', 'text/plain; charset=utf-8');
    const namespace = m[1];
    const watching = query.watch === '1' || query.watch === 'true';
    if (this.forbidden) {
      const verb = watching ? 'watch' : 'list';
      const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
      return reply(
        403,
        status(403, 'Forbidden', `sharememories.${GROUP} is forbidden: User "system:serviceaccount:kube-system:default" cannot ${verb} resource "sharememories" in API group "${GROUP}" ${scope}`),
      );
    }
    if (!watching) return this.list(namespace, query, reply);
    const start = () => this.watch(namespace, query, req, res, rec, reply);
    if (this.holding) this.held.push(start);
    else start();
  }

  private snapshot(rv: number): Map<string, Obj> {
    const state = new Map(this.base);
    for (const e of this.history) {
      if (e.rv > rv) break;
      const key = `${e.object.metadata.namespace}/${e.object.metadata.name}`;
      if (e.type === 'DELETED') state.delete(key);
      else state.set(key, e.object);
    }
    return state;
  }

  private list(namespace: string | undefined, query: Record<string, string>, reply: (code: number, body: unknown) => void): void {
    let rv = this.rv;
    let after = '';
    if (query.continue) {
      let token: { rv: number; after: string };
      try {
        token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8'));
      } catch {
        return reply(400, status(400, 'BadRequest', 'continue key is not valid'));
      }
      if (token.rv < this.compactedRv) {
        return reply(
          410,
          status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'),
        );
      }
      rv = token.rv;
      after = token.after;
    }
    const keys = [...this.snapshot(rv).entries()]
      .filter(([k]) => (!namespace || k.startsWith(`${namespace}/`)) && k > after)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const limit = Number(query.limit ?? 0);
    const page = limit > 0 ? keys.slice(0, limit) : keys;
    const metadata: Obj = { resourceVersion: String(rv) };
    if (limit > 0 && keys.length > limit) {
      metadata.continue = Buffer.from(JSON.stringify({ rv, after: page[page.length - 1][0] })).toString('base64url');
      metadata.remainingItemCount = keys.length - limit;
    }
    reply(200, { apiVersion: API_VERSION, kind: `${KIND}List`, metadata, items: page.map(([, o]) => o) });
  }

  private watch(
    namespace: string | undefined,
    query: Record<string, string>,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rec: RequestRecord,
    reply: (code: number, body: unknown) => void,
  ): void {
    if (res.destroyed || !this.server) return;
    const from = query.resourceVersion ? Number(query.resourceVersion) : 0;
    if (!Number.isInteger(from) || from < 0) return reply(400, status(400, 'BadRequest', `invalid resource version: ${query.resourceVersion}`));
    const tooOld = from > 0 && from < this.compactedRv;
    const gone = status(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
    if (tooOld && this.goneAsHttpStatus) return reply(410, gone);
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (tooOld) {
      send(res, { type: 'ERROR', object: gone });
      res.end();
      return;
    }
    const w: Watcher = { res, namespace, bookmarks: query.allowWatchBookmarks === 'true' };
    const inNs = (o: Obj) => !namespace || o.metadata.namespace === namespace;
    if (from === 0) {
      for (const o of [...this.objects.values()].filter(inNs)) send(res, { type: 'ADDED', object: o });
    } else {
      for (const e of this.history) if (e.rv > from && inNs(e.object)) send(res, { type: e.type, object: e.object });
    }
    this.watchers.add(w);
    const seconds = Number(query.timeoutSeconds ?? 0);
    if (seconds > 0) w.timer = setTimeout(() => this.endWatch(w), seconds * 1000);
    req.on('close', () => {
      clearTimeout(w.timer);
      this.watchers.delete(w);
    });
  }

  private endWatch(w: Watcher): void {
    clearTimeout(w.timer);
    this.watchers.delete(w);
    w.res.end();
  }
}

function send(res: http.ServerResponse, event: unknown): void {
  if (!res.destroyed) res.write(`${JSON.stringify(event)}\n`);
}

function status(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export function shareMemory(namespace: string, name: string, storage: string, allowedNamespaces?: string[]): Obj {
  const spec: Obj = { storage };
  if (allowedNamespaces) spec.allowedNamespaces = allowedNamespaces;
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, spec };
}

/** A self-signed certificate for 127.0.0.1 made with openssl, or undefined without openssl. */
export function selfSignedCert(): { key: Buffer; cert: Buffer } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'fake-apiserver-'));
  try {
    const r = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdio: 'ignore' },
    );
    if (r.error || r.status !== 0) return undefined;
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
