// ShareMemory declarations from the Kubernetes API: a list+watch of sharememories cluster-wide,
// the way client-go's reflector does it, with node:http(s) only.
//
//  list   GET /apis/resource.ubsvirt.huawei.com/v1/sharememories?limit=N[&continue=T]
//         -> items + metadata.resourceVersion (RV); paged, a 410 on a continue token re-lists
//  watch  GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=S
//         -> newline-delimited JSON events {type, object}; RV advances with every event and bookmark
//  stream ended (timeoutSeconds)            -> watch again from the last RV
//  ERROR event code 410 / HTTP 410 (Gone)   -> list again and reconcile (objects deleted meanwhile go)
//  connection error, 401/403/404, 5xx       -> reported in errors(), back off (1 s doubling to 30 s), retry
//
// While the API server is unreachable the last known declarations stay: an outage never empties
// the set. An invalid object is reported and left out; the others are unaffected. An object that
// turns invalid (e.g. MODIFIED to a size beyond this node's limits) is left out too: the object is
// the truth, and a last good copy would be a size nobody declares any more.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Limits, ShareDeclaration } from '../model/types';
import { isObject, type PlainObject } from '../model';
import type { KubeConnection, KubeCredentials } from './kubeconfig';
import { DeclarationError, SHARE_MEMORY_API_VERSION, SHARE_MEMORY_KIND, validateShareMemory } from './sharememory';
import {
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  ListenerSet,
  diffDeclarations,
  sameDeclaration,
} from './store';

export const SHARE_MEMORY_GROUP = 'resource.ubsvirt.huawei.com';
export const SHARE_MEMORY_PLURAL = 'sharememories';
export const SHARE_MEMORY_LIST_PATH = `/apis/${SHARE_MEMORY_API_VERSION}/${SHARE_MEMORY_PLURAL}`;

// The largest watch event line accepted. No object can be bigger than what the API server lets a
// client write: kube-apiserver refuses request bodies over 3 MiB, and etcd refuses values over
// 1.5 MiB by default (--max-request-bytes); an event is the object plus a few bytes of wrapper and
// the fields the server adds (managedFields, status). 8 MiB leaves room for clusters that raise
// those limits and still bounds what a broken or hostile server (or a proxy in between) can make
// the agent hold: a longer line ends the stream with an error and the watch reconnects.
export const MAX_WATCH_EVENT_BYTES = 8 * 1024 * 1024;
// The largest list page accepted: a page holds pageSize (500) objects; a ShareMemory with the
// most allowedNamespaces (1024) is about 70 KiB of JSON, so a full page of the largest is some
// 35 MiB. Past the cap the list fails, naming it (lower pageSize, or raise the cap).
export const MAX_LIST_BODY_BYTES = 64 * 1024 * 1024;
// Error bodies are only read for their Status message.
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** The subset of a pino logger this source writes to. */
export interface SourceLog {
  info(detail: object, msg: string): void;
  warn(detail: object, msg: string): void;
}

export interface KubernetesSourceOptions {
  credentials: KubeCredentials;
  limits: Limits;
  /** the source's name in problems (default "kubernetes") */
  name?: string;
  /** asked of the server per watch; it ends the stream then and we watch again (default 300) */
  watchTimeoutSeconds?: number;
  /** page size of a list (default 500; 0 = no paging) */
  pageSize?: number;
  /** retry delays after a failure: first, doubling up to max (default 1000 .. 30000 ms) */
  backoff?: { initialMs: number; maxMs: number };
  /** a list (or a watch's headers) taking longer than this fails (default 60000 ms) */
  requestTimeoutMs?: number;
  /** a watch event line longer than this ends the stream with an error (default MAX_WATCH_EVENT_BYTES) */
  maxEventBytes?: number;
  /** a list page larger than this fails (default MAX_LIST_BODY_BYTES) */
  maxListBytes?: number;
  /** called once for each new problem (a connection failure or an invalid object) */
  onProblem?: (problem: DeclarationProblem) => void;
  onListenerError?: (err: unknown) => void;
  log?: SourceLog;
}

/** A 410 Gone: the resourceVersion (or continue token) is too old; list again. */
class GoneError extends Error {}

/** A failure talking to the API server, with a message meant for the operator. */
class ApiError extends Error {
  constructor(message: string, readonly retryAfterMs = 0) {
    super(message);
  }
}

interface WatchEvent {
  type: string;
  object: unknown;
}

/** How the API server is reached, for the start-up warning and for status. */
export interface KubernetesSourceSecurity {
  /** the server's origin, e.g. "https://10.0.0.1:6443" */
  server: string;
  /** "verified", "unverified-tls" (insecure-skip-tls-verify) or "plain-http" (anonymous http://) */
  transport: KubeCredentials['transport'];
  /** false unless the server's certificate is checked */
  tlsVerified: boolean;
  /** what is unsafe and which kubeconfig field makes it so; absent when verified */
  warning?: string;
}

/** A body larger than the cap: the request fails naming it. */
class BodyTooLargeError extends Error {}


function metaOf(obj: unknown): PlainObject {
  return isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
}

/** "namespace/name" as the object says, for keying and messages even when invalid. */
function objectKey(obj: unknown): string {
  const m = metaOf(obj);
  const s = (v: unknown) => (typeof v === 'string' && v ? v : '?');
  return `${s(m.namespace)}/${s(m.name)}`;
}

export class KubernetesDeclarationSource implements DeclarationSource {
  readonly name: string;
  private readonly listeners: ListenerSet;
  /** valid declarations by "namespace/name" */
  private decls = new Map<string, ShareDeclaration>();
  /** invalid objects by "namespace/name" */
  private invalid = new Map<string, string>();
  private connectionProblem: string | undefined;
  private rv: string | undefined;
  private started = false;
  private stopped = false;
  private isConnected = false;
  private current: http.ClientRequest | undefined;
  private wake: (() => void) | undefined;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly watchTimeoutSeconds: number;
  private readonly pageSize: number;
  private readonly requestTimeoutMs: number;
  private readonly maxEventBytes: number;
  private readonly maxListBytes: number;
  private running: Promise<void> | undefined;

  constructor(private readonly options: KubernetesSourceOptions) {
    this.name = options.name ?? 'kubernetes';
    this.listeners = new ListenerSet(options.onListenerError);
    this.backoff = options.backoff ?? { initialMs: 1000, maxMs: 30000 };
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.pageSize = options.pageSize ?? 500;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60000;
    this.maxEventBytes = options.maxEventBytes ?? MAX_WATCH_EVENT_BYTES;
    this.maxListBytes = options.maxListBytes ?? MAX_LIST_BODY_BYTES;
    this.readyPromise = new Promise<void>((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.readyPromise.catch(() => undefined); // nobody has to ask
  }

  list(): ShareDeclaration[] {
    return [...this.decls.values()];
  }

  errors(): DeclarationProblem[] {
    const out: DeclarationProblem[] = [];
    if (this.connectionProblem) out.push({ source: this.name, message: this.connectionProblem });
    for (const message of this.invalid.values()) out.push({ source: this.name, message });
    return out;
  }

  onChange(listener: DeclarationChangeListener): () => void {
    return this.listeners.add(listener);
  }

  /** The last resourceVersion seen (from a list, an event or a bookmark). */
  get resourceVersion(): string | undefined {
    return this.rv;
  }

  /** True while a list succeeded or a watch stream is open; false while failing. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** How the API server is reached; `warning` set when its certificate is not verified. */
  get security(): KubernetesSourceSecurity {
    const c = this.options.credentials;
    return {
      server: c.server.origin,
      transport: c.transport,
      tlsVerified: c.transport === 'verified',
      ...(c.transportWarning ? { warning: c.transportWarning } : {}),
    };
  }

  /** Resolves after the first successful list; rejects if stopped before that. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Starts listing and watching in the background (idempotent). */
  start(): this {
    if (!this.started && !this.stopped) {
      this.started = true;
      const sec = this.security;
      if (sec.warning) {
        // loud and once: the operator chose this, but must not be able to miss it
        this.options.log?.warn(
          { source: this.name, server: sec.server, transport: sec.transport, problem: sec.warning },
          'kubernetes: the API server is NOT verified; ShareMemory objects from it can be forged',
        );
      }
      this.running = this.run();
    }
    return this;
  }

  /** Ends the watch and the retries; the declarations stay readable. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.rejectReady(new Error(`${this.name}: stopped before the first list of ShareMemory objects`));
    this.current?.destroy();
    this.wake?.();
    await this.running;
  }

  private async run(): Promise<void> {
    let delay = this.backoff.initialMs;
    let goneInARow = 0;
    while (!this.stopped) {
      let retryAfterMs = 0;
      try {
        if (this.rv === undefined) await this.relist();
        const outcome = await this.watch();
        if (outcome === 'gone') {
          // too old: list again (at once the first time; a second 410 in a row backs off)
          this.rv = undefined;
          if (++goneInARow < 2) continue;
        } else {
          goneInARow = 0;
          delay = this.backoff.initialMs; // a 200 watch means the server is fine again
          if (outcome === 'ended') continue;
          // 'idle': ended at once without anything; do not spin
        }
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof GoneError) {
          this.rv = undefined;
          if (++goneInARow < 2) continue;
        } else {
          goneInARow = 0;
          this.isConnected = false;
          retryAfterMs = err instanceof ApiError ? err.retryAfterMs : 0;
          const msg = err instanceof ApiError ? err.message : `${this.options.credentials.server.origin}: ${(err as Error).message}`;
          this.setConnectionProblem(`${msg}; keeping the last ${this.decls.size} known declaration(s) and retrying`);
        }
      }
      await this.sleep(Math.max(delay, retryAfterMs));
      delay = Math.min(delay * 2, this.backoff.maxMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private setConnectionProblem(message: string | undefined): void {
    if (message === this.connectionProblem) return;
    this.connectionProblem = message;
    if (message) {
      this.options.onProblem?.({ source: this.name, message });
      this.options.log?.warn({ source: this.name, problem: message }, 'kubernetes: cannot watch ShareMemory objects');
    }
  }

  private connectedNow(): void {
    if (this.connectionProblem) {
      this.options.log?.info({ source: this.name, resourceVersion: this.rv, declarations: this.decls.size }, 'kubernetes: connected again');
    }
    this.isConnected = true;
    this.setConnectionProblem(undefined);
  }

  // ---- list -------------------------------------------------------------------------------------

  private async relist(): Promise<void> {
    const items: unknown[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const q = new URLSearchParams();
      if (this.pageSize > 0) q.set('limit', String(this.pageSize));
      if (cont) q.set('continue', cont);
      const res = await this.request(q);
      const ok = res.statusCode === 200;
      let body: string;
      try {
        body = await readBody(res, this.requestTimeoutMs, ok ? this.maxListBytes : MAX_ERROR_BODY_BYTES);
      } catch (err) {
        if (!(err instanceof BodyTooLargeError)) throw err;
        if (!ok) body = ''; // a Status is small; past the cap only the code counts
        else throw new ApiError(`${this.where()}: list: ${err.message} (a page of ${this.pageSize || 'all'} objects; lower pageSize)`);
      }
      if (!ok) throw this.httpError(res, body, 'list');
      let page: unknown;
      try {
        page = JSON.parse(body);
      } catch {
        throw new ApiError(`${this.where()}: list: the response is not JSON`);
      }
      if (!isObject(page) || !Array.isArray(page.items)) throw new ApiError(`${this.where()}: list: the response has no items`);
      const meta = metaOf(page);
      if (typeof meta.resourceVersion !== 'string' || !meta.resourceVersion) {
        throw new ApiError(`${this.where()}: list: the response has no metadata.resourceVersion`);
      }
      rv = meta.resourceVersion;
      items.push(...page.items);
      cont = typeof meta.continue === 'string' && meta.continue ? meta.continue : undefined;
    } while (cont && !this.stopped);
    if (this.stopped) return;

    const next = new Map<string, ShareDeclaration>();
    const invalid = new Map<string, string>();
    for (const raw of items) {
      // list items of a custom resource carry apiVersion and kind; fill them in if a server omits them
      const obj = isObject(raw) ? { apiVersion: SHARE_MEMORY_API_VERSION, kind: SHARE_MEMORY_KIND, ...raw } : raw;
      const key = objectKey(obj);
      const r = this.validate(obj);
      if (typeof r === 'string') invalid.set(key, r);
      else next.set(key, r);
    }
    const changes = diffDeclarations(this.decls, next);
    const newProblems = [...invalid].filter(([k, m]) => this.invalid.get(k) !== m).map(([, m]) => m);
    this.decls = next;
    this.invalid = invalid;
    this.rv = rv;
    this.connectedNow();
    for (const message of newProblems) this.reportInvalid(message);
    this.listeners.emit(changes);
    this.resolveReady();
  }

  // ---- watch ------------------------------------------------------------------------------------

  /** One watch stream: 'ended' (server closed it), 'idle' (closed at once, empty), 'gone' (410). */
  private async watch(): Promise<'ended' | 'idle' | 'gone'> {
    const q = new URLSearchParams({
      watch: '1',
      resourceVersion: this.rv ?? '',
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(this.watchTimeoutSeconds),
    });
    const started = Date.now();
    const res = await this.request(q);
    if (res.statusCode !== 200) {
      const body = await readBody(res, this.requestTimeoutMs, MAX_ERROR_BODY_BYTES).catch((err: unknown) => {
        if (err instanceof BodyTooLargeError) return '';
        throw err;
      });
      throw this.httpError(res, body, 'watch');
    }
    this.connectedNow();
    return new Promise((resolve, reject) => {
      // the line so far, as chunks: each byte is looked at once for a newline (scanning the whole
      // buffer again on every chunk made a long line quadratic: 66 MiB cost 40 s of CPU)
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let events = 0;
      let settled = false;
      // the server ends the stream after timeoutSeconds; one that stays silent well beyond that
      // is a half-open connection
      const guard = setTimeout(() => {
        finish(new ApiError(`${this.where()}: watch: the stream outlived timeoutSeconds=${this.watchTimeoutSeconds} by 30 s; reconnecting`));
      }, this.watchTimeoutSeconds * 1000 + 30000);
      const finish = (outcome: 'ended' | 'idle' | 'gone' | Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        pending = [];
        res.removeAllListeners('data');
        if (outcome !== 'ended' && outcome !== 'idle') res.destroy();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const onLine = (line: string) => {
        line = line.trim();
        if (!line) return;
        events++;
        let ev: WatchEvent;
        try {
          ev = JSON.parse(line) as WatchEvent;
        } catch {
          finish(new ApiError(`${this.where()}: watch: event ${events} is not JSON (${Buffer.byteLength(line)} bytes); reconnecting`));
          return;
        }
        const r = this.onEvent(ev);
        if (r) finish(r);
      };
      res.on('data', (chunk: Buffer) => {
        let start = 0;
        let nl: number;
        while (!settled && (nl = chunk.indexOf(0x0a, start)) >= 0) {
          const part = chunk.subarray(start, nl);
          if (pendingBytes + part.length > this.maxEventBytes) return finish(this.tooLong());
          // utf8 is decoded per whole line, so a character split across chunks stays whole
          const line = pendingBytes ? Buffer.concat([...pending, part], pendingBytes + part.length) : part;
          pending = [];
          pendingBytes = 0;
          onLine(line.toString('utf8'));
          start = nl + 1;
        }
        if (settled || start >= chunk.length) return;
        const rest = chunk.subarray(start);
        if (pendingBytes + rest.length > this.maxEventBytes) return finish(this.tooLong());
        pending.push(rest);
        pendingBytes += rest.length;
      });
      res.on('end', () => {
        if (this.stopped) return finish('ended');
        const idle = events === 0 && Date.now() - started < 1000;
        finish(idle ? 'idle' : 'ended');
      });
      res.on('error', (err) => finish(new ApiError(`${this.where()}: watch: ${err.message}`)));
      res.on('close', () => finish(this.stopped ? 'ended' : new ApiError(`${this.where()}: watch: the connection closed mid-stream`)));
    });
  }

  private tooLong(): ApiError {
    return new ApiError(
      `${this.where()}: watch: an event is longer than ${this.maxEventBytes} bytes without a newline (no ShareMemory is that large); the stream is cut off and the watch reconnects`,
    );
  }

  /** Applies one event; returns 'gone' or an Error to end the stream. */
  private onEvent(ev: WatchEvent): 'gone' | Error | undefined {
    if (!isObject(ev) || typeof ev.type !== 'string') return new ApiError(`${this.where()}: watch: an event has no type`);
    const obj = ev.object;
    if (ev.type === 'ERROR') {
      const status = isObject(obj) ? obj : {};
      if (status.code === 410) return 'gone';
      return new ApiError(`${this.where()}: watch: the server sent an error: ${String(status.message ?? JSON.stringify(status))}${status.code ? ` (${String(status.code)})` : ''}`);
    }
    const rv = metaOf(obj).resourceVersion;
    if (typeof rv === 'string' && rv) this.rv = rv;
    if (ev.type === 'BOOKMARK') return undefined;
    const key = objectKey(obj);
    const previous = this.decls.get(key);
    let change: DeclarationChange | undefined;
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
      const r = this.validate(obj);
      if (typeof r === 'string') {
        const known = this.invalid.get(key);
        this.invalid.set(key, r);
        this.decls.delete(key);
        if (known !== r) this.reportInvalid(r);
        if (previous) change = { kind: 'removed', declaration: previous };
      } else {
        this.invalid.delete(key);
        this.decls.set(key, r);
        if (!previous) change = { kind: 'added', declaration: r };
        else if (!sameDeclaration(previous, r)) change = { kind: 'changed', declaration: r, previous };
      }
    } else if (ev.type === 'DELETED') {
      this.invalid.delete(key);
      this.decls.delete(key);
      if (previous) change = { kind: 'removed', declaration: previous };
    } else {
      return new ApiError(`${this.where()}: watch: unknown event type ${JSON.stringify(ev.type)}`);
    }
    if (change) this.listeners.emit([change]);
    return undefined;
  }

  private validate(obj: unknown): ShareDeclaration | string {
    try {
      return validateShareMemory(obj, `kubernetes:${objectKey(obj)}`, this.options.limits);
    } catch (err) {
      if (err instanceof DeclarationError) return `${err.message}; this object is ignored`;
      throw err;
    }
  }

  private reportInvalid(message: string): void {
    this.options.onProblem?.({ source: this.name, message });
    this.options.log?.warn({ source: this.name, problem: message }, 'kubernetes: invalid ShareMemory');
  }

  // ---- HTTP -------------------------------------------------------------------------------------

  private where(): string {
    return `kubernetes ${this.options.credentials.server.origin}`;
  }

  private request(query: URLSearchParams): Promise<http.IncomingMessage> {
    if (this.stopped) return Promise.reject(new Error('stopped'));
    const conn = this.options.credentials.connection(); // rotating tokens and certificates: read now
    const base = conn.server.pathname.replace(/\/+$/, '');
    const path = `${base}${SHARE_MEMORY_LIST_PATH}?${query.toString()}`;
    const headers = { Accept: 'application/json', 'User-Agent': 'nri-memshare', ...conn.headers };
    return new Promise((resolve, reject) => {
      const req = openRequest(conn, 'GET', path, headers);
      this.current = req;
      const timer = setTimeout(() => req.destroy(new Error(`no response within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        const code = (err as NodeJS.ErrnoException).code;
        reject(new ApiError(`${this.where()}: ${code && !err.message.includes(code) ? `${code} ` : ''}${err.message}`));
      });
      req.end();
    });
  }

  private httpError(res: http.IncomingMessage, body: string, what: string): Error {
    const code = res.statusCode ?? 0;
    let status: PlainObject = {};
    try {
      const parsed: unknown = JSON.parse(body);
      if (isObject(parsed)) status = parsed;
    } catch {
      /* not a Status: e.g. "404 page not found" */
    }
    const detail = typeof status.message === 'string' ? status.message : body.trim().slice(0, 200);
    const at = `${this.where()}: ${what} ${SHARE_MEMORY_PLURAL}.${SHARE_MEMORY_GROUP}`;
    const who = this.options.credentials.description;
    switch (code) {
      case 410:
        return new GoneError(detail);
      case 401:
        return new ApiError(`${at}: 401 Unauthorized: the API server refused the credentials of ${who} (expired or wrong token or certificate?)`);
      case 403:
        return new ApiError(
          `${at}: 403 Forbidden (${detail}): the agent's user needs get, list and watch on sharememories in API group ${SHARE_MEMORY_GROUP} at cluster scope; apply the ClusterRole and ClusterRoleBinding nri-memshare-watcher from packaging/kubernetes/rbac.yaml`,
        );
      case 404:
        return new ApiError(
          `${at}: 404 Not Found: the ShareMemory CustomResourceDefinition (sharememories.${SHARE_MEMORY_GROUP}, version v1) is not installed; apply packaging/kubernetes/crd-sharememory.yaml`,
        );
      default: {
        const ra = Number(res.headers['retry-after']);
        return new ApiError(`${at}: HTTP ${code}: ${detail}`, Number.isFinite(ra) && ra > 0 ? Math.min(ra, 300) * 1000 : 0);
      }
    }
  }
}

/** The whole body, at most maxBytes; a failure rejects with a plain Error (the caller names the server). */
function readBody(res: http.IncomingMessage, timeoutMs: number, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const tooLarge = () => {
      clearTimeout(timer);
      reject(new BodyTooLargeError(`the response is larger than the ${maxBytes} bytes allowed`));
      res.destroy();
    };
    const timer = setTimeout(() => res.destroy(new Error(`the response did not complete within ${timeoutMs} ms`)), timeoutMs);
    // a declared length over the cap fails before any of it is read
    if (Number(res.headers['content-length']) > maxBytes) return tooLarge();
    res.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxBytes) return tooLarge();
      chunks.push(c);
    });
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`reading the response: ${err.message}`));
    });
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.complete) reject(new Error('the connection closed before the response was complete'));
    });
  });
}

/** One request to the API server with this connection's TLS material; one connection per request. */
function openRequest(conn: KubeConnection, method: string, path: string, headers: Record<string, string>): http.ClientRequest {
  const opts: https.RequestOptions = {
    protocol: conn.server.protocol,
    hostname: conn.server.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: conn.server.port || (conn.server.protocol === 'https:' ? 443 : 80),
    path,
    method,
    headers,
    agent: false, // one connection per request: a watch holds its own, and stop() ends it
  };
  if (conn.server.protocol === 'https:') {
    Object.assign(opts, {
      ca: conn.tls.ca,
      cert: conn.tls.cert,
      key: conn.tls.key,
      rejectUnauthorized: conn.tls.rejectUnauthorized,
      servername: conn.tls.servername,
    });
  }
  return (conn.server.protocol === 'https:' ? https : http).request(opts);
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** below the server's base path, e.g. /apis/events.k8s.io/v1/namespaces/NS/events */
  path: string;
  query?: URLSearchParams;
  contentType?: string;
  body?: string;
  /** no complete answer within this fails (default 30000 ms) */
  timeoutMs?: number;
}

export interface KubeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request and its whole answer (at most MAX_LIST_BODY_BYTES), for the writers beside the
 * watch (plugin/cluster: status, Events). Any HTTP status resolves; no answer rejects with an
 * Error naming the server and the request (cause set).
 */
export async function kubeRequest(credentials: KubeCredentials, r: KubeRequest): Promise<KubeResponse> {
  const timeoutMs = r.timeoutMs ?? 30000;
  const where = `kubernetes ${credentials.server.origin}: ${r.method} ${r.path}`;
  try {
    const conn = credentials.connection(); // rotating tokens and certificates: read now
    const base = conn.server.pathname.replace(/\/+$/, '');
    const qs = r.query?.toString();
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'nri-memshare', ...conn.headers };
    if (r.body !== undefined) {
      headers['Content-Type'] = r.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(r.body));
    }
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = openRequest(conn, r.method, `${base}${r.path}${qs ? `?${qs}` : ''}`, headers);
      const timer = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
      req.on('response', (resp) => {
        clearTimeout(timer);
        resolve(resp);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(r.body);
    });
    const body = await readBody(res, timeoutMs, MAX_LIST_BODY_BYTES);
    return { status: res.statusCode ?? 0, headers: res.headers, body };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = (err as Error).message;
    throw new Error(`${where}: ${code && !msg.includes(code) ? `${code} ` : ''}${msg}`, { cause: err });
  }
}
