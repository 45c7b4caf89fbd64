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
// An object the API server holds but this node leaves out (its own limits, its budget) is a
// refusal: kept with its reason, its generation and the namespaces it grants (refused()), so pods
// it grants are told why and the node's status entry says so. Refusals share the cap of problems
// kept (MAX_OBJECT_PROBLEMS), and their grants a cap of names (MAX_REFUSED_GRANTS).
// Memory is bounded by what is kept, not by what tenants create: a list page is read item by item
// (../kube/list.ts) and each item validated at once; an object past MAX_OBJECT_BYTES, or past the
// budget of kept declarations (./kept-declarations.ts), is left out and reported by name.
import type { Log } from '../log/log';
import type * as http from 'node:http';
import type { Limits, ShareDeclaration } from '../model/types';
import { isObject, type PlainObject } from '../model';
import type { KubeCredentials } from '../kube/kubeconfig';
import { BodyTooLargeError, GoneError, KubeApiError as ApiError, describeRequestError, readBody, sendRequest } from '../kube/request';
import { metaOf, readListPage, type ListItem } from '../kube/list';
import { readWatchStream, type WatchEvent } from '../kube/watch';
import { DeclarationError, SHARE_MEMORY_API_VERSION, SHARE_MEMORY_KIND, readGrants, validateShareMemory } from './sharememory';
import { KeptDeclarations, MAX_KEPT_DECLARATION_BYTES } from './kept-declarations';
import {
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  type RefusalChangeListener,
  type RefusedDeclaration,
  ListenerSet,
  diffDeclarations,
  sameDeclaration,
} from './store';
import { messageOf } from '../model/errors';

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
// The largest object accepted, in a list page as in a watch event: the same bound. A list page is
// read as it streams, one item at a time (plugin/kube/list.ts), so a page has no size cap of its
// own: 500 objects of the largest size the API server stores are some 150 MiB, and the agent
// never holds more than one of them as text. A larger object is left out, named, with a warning.
export const MAX_OBJECT_BYTES = MAX_WATCH_EVENT_BYTES;
// Problems about single objects kept for errors() (and status); past this they are only counted,
// so that 100,000 invalid objects cost no more than 1,000.
export const MAX_OBJECT_PROBLEMS = 1000;
// Namespace names kept as the grants of refused objects, all together; past it a refusal keeps no
// grants (only its own namespace's pods learn of it). 16,384 names are at most about 1.5 MiB.
export const MAX_REFUSED_GRANTS = 16384;
// A refusal's reason as kept and shown (status, pods' errors): the field and why, cut here.
export const MAX_REFUSAL_REASON = 512;
// Error bodies are only read for their Status message.
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export type SourceLog = Log;

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
  /** an object (list item) larger than this is left out and reported (default MAX_OBJECT_BYTES) */
  maxObjectBytes?: number;
  /** the declarations kept take at most this many bytes; more objects are left out (default MAX_KEPT_DECLARATION_BYTES) */
  maxKeptBytes?: number;
  /** called once for each new problem (a connection failure or an invalid object) */
  onProblem?: (problem: DeclarationProblem) => void;
  onListenerError?: (err: unknown) => void;
  log?: SourceLog;
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

/** Why a valid-looking object is not declared here: the message for errors() and the reason for refused(). */
interface Rejection {
  message: string;
  reason: string;
}

const isDeclaration = (r: ShareDeclaration | Rejection): r is ShareDeclaration => !('reason' in r);

const sameRefusal = (a: RefusedDeclaration, b: RefusedDeclaration): boolean =>
  a.reason === b.reason && a.generation === b.generation && (a.grants ?? []).join(',') === (b.grants ?? []).join(',') && (a.grants === undefined) === (b.grants === undefined);

/** "namespace/name" as the object says, for keying and messages even when invalid. */
function objectKey(obj: unknown): string {
  const m = metaOf(obj);
  const s = (v: unknown) => (typeof v === 'string' && v ? v : '?');
  return `${s(m.namespace)}/${s(m.name)}`;
}

export class KubernetesDeclarationSource implements DeclarationSource {
  readonly name: string;
  private readonly listeners: ListenerSet;
  /** valid declarations by "namespace/name", within the byte budget */
  private decls: KeptDeclarations;
  /** invalid objects by "namespace/name" (at most MAX_OBJECT_PROBLEMS) */
  private invalid = new Map<string, string>();
  /** invalid objects past MAX_OBJECT_PROBLEMS, only counted */
  private invalidUncounted = 0;
  /** of the invalid objects, those this node refuses (a readable name): reason, generation, grants */
  private refusedMap = new Map<string, RefusedDeclaration>();
  /** namespace names kept in refusedMap's grants (at most MAX_REFUSED_GRANTS) */
  private refusedGrants = 0;
  private readonly refusalListeners = new Set<RefusalChangeListener>();
  /** objects left out for the budget since the last list: a list is due once there is room */
  private leftOutForBudget = 0;
  private connectionProblem: string | undefined;
  private rv: string | undefined;
  private started = false;
  private stopped = false;
  private isConnected = false;
  private lastSync: number | undefined;
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
  private readonly maxObjectBytes: number;
  private running: Promise<void> | undefined;

  constructor(private readonly options: KubernetesSourceOptions) {
    this.name = options.name ?? 'kubernetes';
    this.listeners = new ListenerSet(options.onListenerError);
    this.backoff = options.backoff ?? { initialMs: 1000, maxMs: 30000 };
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.pageSize = options.pageSize ?? 500;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60000;
    this.maxEventBytes = options.maxEventBytes ?? MAX_WATCH_EVENT_BYTES;
    this.maxObjectBytes = options.maxObjectBytes ?? MAX_OBJECT_BYTES;
    this.decls = new KeptDeclarations(options.maxKeptBytes ?? MAX_KEPT_DECLARATION_BYTES);
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
    if (this.invalidUncounted > 0) {
      out.push({ source: this.name, message: `${this.invalidUncounted} more ShareMemory object(s) are invalid or left out (only the first ${MAX_OBJECT_PROBLEMS} are listed)` });
    }
    return out;
  }

  onChange(listener: DeclarationChangeListener): () => void {
    return this.listeners.add(listener);
  }

  /** The last resourceVersion seen (from a list, an event or a bookmark). */
  get resourceVersion(): string | undefined {
    return this.rv;
  }

  /** When a list last succeeded or the watch last delivered an event or bookmark (ms; undefined: never). */
  get lastSyncAt(): number | undefined {
    return this.lastSync;
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
        // a list again also when objects were left out for the budget and room has been made since
        if (this.rv === undefined || (this.leftOutForBudget > 0 && this.decls.bytes < this.decls.maxBytes / 2)) await this.relist();
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
          const msg = err instanceof ApiError ? err.message : `${this.options.credentials.server.origin}: ${messageOf(err)}`;
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
    this.lastSync = Date.now();
    if (this.connectionProblem) {
      this.options.log?.info({ source: this.name, resourceVersion: this.rv, declarations: this.decls.size }, 'kubernetes: connected again');
    }
    this.isConnected = true;
    this.setConnectionProblem(undefined);
  }

  // ---- list -------------------------------------------------------------------------------------

  private async relist(): Promise<void> {
    // each item is validated as it arrives and only its declaration is kept (the unchanged ones
    // are the very objects already held): a list costs the kept set plus one object's text
    const next = new KeptDeclarations(this.decls.maxBytes, this.decls);
    const invalid = new Map<string, string>();
    const refused = new Map<string, RefusedDeclaration>();
    const grantsKept = { n: 0 };
    let uncounted = 0;
    let leftOut = 0;
    const onItem = (item: ListItem) => {
      let key: string;
      let r: ShareDeclaration | Rejection;
      let obj: unknown;
      if ('tooLarge' in item) {
        const t = item.tooLarge;
        key = `${t.namespace || '?'}/${t.name || '?'}`;
        r = this.tooLarge(key, t.bytes);
      } else {
        // list items of a custom resource carry apiVersion and kind; fill them in if a server omits them
        const raw = item.object;
        obj = isObject(raw) ? { apiVersion: SHARE_MEMORY_API_VERSION, kind: SHARE_MEMORY_KIND, ...raw } : raw;
        key = objectKey(obj);
        r = this.validate(obj);
      }
      if (isDeclaration(r)) {
        const before = this.decls.get(key);
        const kept = next.set(key, r, before && sameDeclaration(before, r) ? before : undefined);
        if (kept === true) return;
        leftOut++;
        r = this.overBudget(key, kept, next);
      }
      if (invalid.size < MAX_OBJECT_PROBLEMS) {
        invalid.set(key, r.message);
        const refusal = this.refusalOf(key, obj, r.reason, grantsKept);
        if (refusal) refused.set(key, refusal);
      } else uncounted++;
    };
    let cont: string | undefined;
    let rv: string | undefined;
    let pages = 0;
    do {
      const q = new URLSearchParams();
      if (this.pageSize > 0) q.set('limit', String(this.pageSize));
      if (cont) q.set('continue', cont);
      const res = await this.request(q);
      if (res.statusCode !== 200) throw this.httpError(res, await this.errorBody(res), 'list');
      const page = await readListPage(res, { where: this.where(), timeoutMs: this.requestTimeoutMs, maxItemBytes: this.maxObjectBytes }, onItem);
      rv = page.resourceVersion;
      cont = page.continue;
      pages++;
    } while (cont && !this.stopped);
    if (this.stopped) return;

    next.settle();
    const changes = diffDeclarations(this.decls.map(), next.map());
    const newProblems = [...invalid].filter(([k, m]) => this.invalid.get(k) !== m).map(([, m]) => m);
    const refusalChanges: Array<[RefusedDeclaration, 'added' | 'changed' | 'removed']> = [];
    for (const [k, r] of refused) {
      const was = this.refusedMap.get(k);
      if (!was) refusalChanges.push([r, 'added']);
      else if (!sameRefusal(was, r)) refusalChanges.push([r, 'changed']);
    }
    for (const [k, r] of this.refusedMap) if (!refused.has(k)) refusalChanges.push([r, 'removed']);
    this.decls = next;
    this.invalid = invalid;
    this.invalidUncounted = uncounted;
    this.refusedMap = refused;
    this.refusedGrants = grantsKept.n;
    this.leftOutForBudget = leftOut;
    this.rv = rv;
    // a list is the expensive way in (every object again); its line tells a resumed watch from it
    this.options.log?.info({ source: this.name, resourceVersion: rv, declarations: next.size, pages }, 'kubernetes: listed ShareMemory objects');
    this.connectedNow();
    for (const message of newProblems) this.reportInvalid(message);
    this.listeners.emit(changes);
    for (const [r, kind] of refusalChanges) this.emitRefusal(r, kind);
    this.resolveReady();
  }

  private tooLarge(key: string, bytes: number): Rejection {
    const reason = `the object is larger than the ${this.maxObjectBytes} bytes a ShareMemory may be here (${bytes} bytes or more)`;
    return { message: `kubernetes:${key}: ${reason}; this object is ignored`, reason };
  }

  private overBudget(key: string, need: number, kept: KeptDeclarations): Rejection {
    const detail = `left out: the ${kept.size} ShareMemory declaration(s) kept from Kubernetes take ${kept.bytes} of the ${kept.maxBytes} bytes this agent keeps, and this one needs ${need} more`;
    return {
      message: `kubernetes:${key}: ${detail} (limit the objects per namespace with a ResourceQuota); this object is ignored until there is room`,
      // without the counts, which move with every other object: a refusal that changes is a status write
      reason: `left out: this node's agent keeps at most ${kept.maxBytes} bytes of ShareMemory declarations and they are full; taken when there is room`,
    };
  }

  /**
   * The refusal of an object left out (undefined when its name cannot be read). Its grants are
   * read as far as they are namespace names, and kept within MAX_REFUSED_GRANTS names in all
   * (`kept` counts them); past that, or for a list longer than the CRD allows, none are kept.
   */
  private refusalOf(key: string, obj: unknown, reason: string, kept: { n: number }): RefusedDeclaration | undefined {
    const i = key.indexOf('/');
    const namespace = key.slice(0, i);
    const name = key.slice(i + 1);
    if (namespace === '?' || name === '?') return undefined;
    const r: RefusedDeclaration = { namespace, name, reason: reason.length > MAX_REFUSAL_REASON ? `${reason.slice(0, MAX_REFUSAL_REASON - 3)}...` : reason };
    const generation = metaOf(obj).generation;
    if (typeof generation === 'number' && Number.isSafeInteger(generation)) r.generation = generation;
    const grants = readGrants(obj);
    if (grants && kept.n + grants.length <= MAX_REFUSED_GRANTS) {
      kept.n += grants.length;
      r.grants = grants;
    }
    return r;
  }

  refused(namespace: string, name: string): RefusedDeclaration | undefined {
    return this.refusedMap.get(`${namespace}/${name}`);
  }

  refusals(): RefusedDeclaration[] {
    return [...this.refusedMap.values()];
  }

  onRefusalChange(listener: RefusalChangeListener): () => void {
    const entry: RefusalChangeListener = (s, k) => listener(s, k);
    this.refusalListeners.add(entry);
    return () => void this.refusalListeners.delete(entry);
  }

  private emitRefusal(r: RefusedDeclaration, kind: 'added' | 'changed' | 'removed'): void {
    for (const l of [...this.refusalListeners]) {
      try {
        l({ namespace: r.namespace, name: r.name }, kind);
      } catch (err) {
        (this.options.onListenerError ?? ((e: unknown) => process.emitWarning(`refusal listener failed: ${messageOf(e)}`)))(err);
      }
    }
  }

  /** Keeps (or drops, refusal undefined) the refusal of `key` from a watch event; tells listeners. */
  private setRefusal(key: string, refusal: RefusedDeclaration | undefined): void {
    const was = this.refusedMap.get(key);
    if (was) {
      this.refusedMap.delete(key);
      this.refusedGrants -= was.grants?.length ?? 0;
    }
    if (refusal) {
      this.refusedMap.set(key, refusal);
      this.refusedGrants += refusal.grants?.length ?? 0;
    }
    if (refusal && !was) this.emitRefusal(refusal, 'added');
    else if (refusal && was && !sameRefusal(was, refusal)) this.emitRefusal(refusal, 'changed');
    else if (!refusal && was) this.emitRefusal(was, 'removed');
  }

  /** Records an invalid (or left out) object; true if its message is new. */
  private setInvalid(key: string, message: string): boolean {
    const known = this.invalid.get(key);
    if (known === undefined && this.invalid.size >= MAX_OBJECT_PROBLEMS) {
      this.invalidUncounted++;
      return true;
    }
    this.invalid.set(key, message);
    return known !== message;
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
    const startedAt = Date.now();
    const res = await this.request(q);
    if (res.statusCode !== 200) throw this.httpError(res, await this.errorBody(res), 'watch');
    this.connectedNow();
    return readWatchStream(res, {
      where: this.where(),
      startedAt,
      timeoutSeconds: this.watchTimeoutSeconds,
      maxEventBytes: this.maxEventBytes,
      stopped: () => this.stopped,
      onEvent: (ev) => this.onEvent(ev),
    });
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
    this.lastSync = Date.now();
    if (ev.type === 'BOOKMARK') return undefined;
    const key = objectKey(obj);
    const previous = this.decls.get(key);
    let change: DeclarationChange | undefined;
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
      let r = this.validate(obj);
      if (isDeclaration(r)) {
        const kept = this.decls.set(key, r, previous && sameDeclaration(previous, r) ? previous : undefined);
        if (kept !== true) {
          this.leftOutForBudget++;
          r = this.overBudget(key, kept, this.decls);
        }
      }
      if (!isDeclaration(r)) {
        this.decls.delete(key);
        if (this.setInvalid(key, r.message)) this.reportInvalid(r.message);
        let refusal: RefusedDeclaration | undefined;
        if (this.invalid.has(key)) {
          // this object's own grants are given back before it is judged again
          const kept = { n: this.refusedGrants - (this.refusedMap.get(key)?.grants?.length ?? 0) };
          refusal = this.refusalOf(key, obj, r.reason, kept);
        }
        if (previous) change = { kind: 'removed', declaration: previous };
        if (change) this.listeners.emit([change]);
        this.setRefusal(key, refusal);
        return undefined;
      } else {
        this.invalid.delete(key);
        const kept = this.decls.get(key)!;
        if (!previous) change = { kind: 'added', declaration: kept };
        else if (!sameDeclaration(previous, kept)) change = { kind: 'changed', declaration: kept, previous };
      }
    } else if (ev.type === 'DELETED') {
      this.invalid.delete(key);
      this.decls.delete(key);
      if (previous) change = { kind: 'removed', declaration: previous };
    } else {
      return new ApiError(`${this.where()}: watch: unknown event type ${JSON.stringify(ev.type)}`);
    }
    if (change) this.listeners.emit([change]);
    this.setRefusal(key, undefined); // declared now, or deleted
    return undefined;
  }

  private validate(obj: unknown): ShareDeclaration | Rejection {
    try {
      return validateShareMemory(obj, `kubernetes:${objectKey(obj)}`, this.options.limits);
    } catch (err) {
      if (err instanceof DeclarationError) return { message: `${err.message}; this object is ignored`, reason: err.field ? `${err.field}: ${err.reason}` : err.reason };
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
    const r = { method: 'GET' as const, path: SHARE_MEMORY_LIST_PATH, query, timeoutMs: this.requestTimeoutMs };
    return sendRequest(this.options.credentials, r, (req) => (this.current = req)).catch((err: unknown) => {
      throw new ApiError(`${this.where()}: ${describeRequestError(err)}`);
    });
  }

  /** An error answer's body, read only for its Status message (past the cap only the code counts). */
  private errorBody(res: http.IncomingMessage): Promise<string> {
    return readBody(res, this.requestTimeoutMs, MAX_ERROR_BODY_BYTES).catch((err: unknown) => {
      if (err instanceof BodyTooLargeError) return '';
      throw err;
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
