// A refused binding as a Kubernetes Event on the pod (events.k8s.io/v1), so `kubectl describe pod`
// shows why the container does not start: reason MemshareRefused, the note is the text CRI
// reports (it names the annotation, the share and why). Repeats are folded the way client-go's
// event correlator does for the kubelet: the same pod, reason and note within the window update
// one Event's series (count, lastObservedTime) with a PATCH instead of creating another. New
// Events per pod are limited by a token bucket (client-go's spam filter: burst 25, one per 5 min).
// Everything here is best effort and off the request path: a lost Event never fails a binding.
import type { Log } from '../log/log';
import { randomBytes } from 'node:crypto';
import { messageOf } from '../model';
import { statusMessage, type KubeSend } from './apply';
import { Throttle } from '../log/throttle';

export const EVENT_REASON = 'MemshareRefused';
export const REPORTING_CONTROLLER = 'memshare.nri.io/agent';
/** events.k8s.io/v1 limits the note to 1 kB */
const MAX_NOTE_BYTES = 1024;

export interface EventPod {
  namespace: string;
  name: string;
  uid: string;
}

export type RefusalEventsLog = Log;

export interface RefusalEventsOptions {
  nodeName: string;
  send: KubeSend;
  /** repeats within this fold into one Event (default 10 min, as client-go) */
  windowMs?: number;
  /** a folded repeat is sent at most this often per Event (default 1000 ms) */
  patchIntervalMs?: number;
  /** Events remembered for folding (default 4096, as client-go's LRU) */
  maxKeys?: number;
  /** per pod: new Events in a burst, and one more per refillMs (default 25, 300000) */
  burst?: number;
  refillMs?: number;
  log?: RefusalEventsLog;
  now?: () => number;
}

export interface RefusalEventsStats {
  created: number;
  patched: number;
  /** repeats folded into an Event's series */
  folded: number;
  /** dropped by the per-pod limit */
  limited: number;
  failures: number;
}

interface Tracked {
  key: string;
  name: string;
  namespace: string;
  firstAt: number;
  lastAt: number;
  count: number;
  /** the count the server has */
  sentCount: number;
  /** undefined until created */
  created: boolean;
  inFlight: boolean;
  timer?: NodeJS.Timeout;
}

export class RefusalEvents {
  private readonly tracked = new Map<string, Tracked>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly windowMs: number;
  private readonly patchIntervalMs: number;
  private readonly maxKeys: number;
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly now: () => number;
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;
  private readonly warnings: Throttle;
  private readonly s: RefusalEventsStats = { created: 0, patched: 0, folded: 0, limited: 0, failures: 0 };

  constructor(private readonly o: RefusalEventsOptions) {
    this.windowMs = o.windowMs ?? 600_000;
    this.patchIntervalMs = o.patchIntervalMs ?? 1000;
    this.maxKeys = o.maxKeys ?? 4096;
    this.burst = o.burst ?? 25;
    this.refillMs = o.refillMs ?? 300_000;
    this.now = o.now ?? Date.now;
    this.warnings = new Throttle(60_000, this.now);
  }

  get stats(): RefusalEventsStats {
    return { ...this.s };
  }

  /** A binding of this pod was refused with `message` (the CRI text). Never waits, never throws. */
  refused(pod: EventPod, message: string): void {
    if (this.stopped || !pod.name || !pod.namespace) return;
    const note = truncateUtf8(message, MAX_NOTE_BYTES);
    const key = `${pod.namespace}\0${pod.name}\0${pod.uid}\0${EVENT_REASON}\0${note}`;
    const t = this.now();
    const known = this.tracked.get(key);
    if (known && t - known.lastAt <= this.windowMs) {
      known.count++;
      known.lastAt = t;
      this.s.folded++;
      // most recently used last: the oldest is the first to go
      this.tracked.delete(key);
      this.tracked.set(key, known);
      this.flushLater(key, known, pod, note);
      return;
    }
    if (!this.take(`${pod.namespace}/${pod.name}/${pod.uid}`, t)) {
      this.s.limited++;
      return;
    }
    const tr: Tracked = {
      key,
      // as the kubelet names its Events: the object's name and a unique suffix
      name: `${pod.name.slice(0, 200)}.${t.toString(16)}${randomBytes(4).toString('hex')}`,
      namespace: pod.namespace,
      firstAt: t,
      lastAt: t,
      count: 1,
      sentCount: 0,
      created: false,
      inFlight: false,
    };
    this.tracked.delete(key);
    this.tracked.set(key, tr);
    while (this.tracked.size > this.maxKeys) {
      const [oldest, old] = this.tracked.entries().next().value as [string, Tracked];
      clearTimeout(old.timer);
      this.tracked.delete(oldest);
    }
    this.track(this.send(tr, pod, note));
  }

  /** Resolves when no request runs and no folded repeat waits (tests, orderly stop). */
  async idle(): Promise<void> {
    for (;;) {
      const waiting = [...this.tracked.values()].some((t) => t.timer || t.inFlight);
      if (!waiting && this.pending.size === 0) return;
      await (this.pending.size ? Promise.all(this.pending) : new Promise((r) => setTimeout(r, 20)));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tracked.values()) clearTimeout(t.timer);
    await Promise.all(this.pending);
  }

  private take(object: string, t: number): boolean {
    const b = this.buckets.get(object) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + (t - b.at) / this.refillMs);
    b.at = t;
    this.buckets.delete(object);
    this.buckets.set(object, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private flushLater(key: string, tr: Tracked, pod: EventPod, note: string): void {
    if (tr.timer || tr.inFlight || !tr.created) return; // the running request or the create's end sends the count
    tr.timer = setTimeout(() => {
      tr.timer = undefined;
      if (this.stopped || this.tracked.get(key) !== tr) return;
      this.track(this.send(tr, pod, note));
    }, this.patchIntervalMs);
    tr.timer.unref();
  }

  /** Creates the Event or patches its series to the current count; then sends what came meanwhile. */
  private async send(tr: Tracked, pod: EventPod, note: string): Promise<void> {
    tr.inFlight = true;
    const count = tr.count;
    const lastAt = tr.lastAt;
    try {
      let ok = false;
      if (tr.created) {
        ok = await this.patch(tr, count, lastAt);
        if (!ok && !tr.created) ok = await this.create(tr, pod, note, count, lastAt); // expired (TTL): a new one
      } else {
        ok = await this.create(tr, pod, note, count, lastAt);
      }
      if (ok) tr.sentCount = count;
    } finally {
      tr.inFlight = false;
    }
    // never created (the server away, refused): forgotten, so the next refusal tries afresh
    if (!tr.created && this.tracked.get(tr.key) === tr) this.tracked.delete(tr.key);
    if (tr.created && tr.count > tr.sentCount && !this.stopped) this.flushLater(tr.key, tr, pod, note);
  }

  private async create(tr: Tracked, pod: EventPod, note: string, count: number, lastAt: number): Promise<boolean> {
    const body: Record<string, unknown> = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: tr.name, namespace: tr.namespace },
      eventTime: microTime(tr.firstAt),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.o.nodeName.slice(0, 128), // as the kubelet: its node
      action: 'Bind',
      reason: EVENT_REASON,
      regarding: { apiVersion: 'v1', kind: 'Pod', namespace: pod.namespace, name: pod.name, ...(pod.uid ? { uid: pod.uid } : {}) },
      note,
      type: 'Warning',
    };
    if (count > 1) body.series = { count, lastObservedTime: microTime(lastAt) };
    const r = await this.request('POST', `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(tr.namespace)}/events`, 'application/json', body);
    if (r === 409) {
      // a name taken (a retry whose first attempt did reach the server): take another
      tr.name = `${tr.name.split('.')[0]}.${this.now().toString(16)}${randomBytes(4).toString('hex')}`;
      return false;
    }
    if (r !== 'ok') return false;
    tr.created = true;
    this.s.created++;
    return true;
  }

  private async patch(tr: Tracked, count: number, lastAt: number): Promise<boolean> {
    const body = { series: { count, lastObservedTime: microTime(lastAt) } };
    const r = await this.request('PATCH', `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(tr.namespace)}/events/${encodeURIComponent(tr.name)}`, 'application/merge-patch+json', body);
    if (r === 404) {
      tr.created = false;
      return false;
    }
    if (r !== 'ok') return false;
    this.s.patched++;
    return true;
  }

  private async request(method: 'POST' | 'PATCH', path: string, contentType: string, body: unknown): Promise<'ok' | number> {
    let why: string;
    try {
      const res = await this.o.send({ method, path, contentType, body: JSON.stringify(body), timeoutMs: 10_000 });
      if (res.status >= 200 && res.status < 300) return 'ok';
      if (res.status === 404 || res.status === 409) return res.status;
      why = `HTTP ${res.status}: ${statusMessage(res.body)}${res.status === 403 ? '; the agent needs create and patch on events in API group events.k8s.io: apply packaging/kubernetes/rbac.yaml' : ''}`;
    } catch (err) {
      why = messageOf(err);
    }
    this.s.failures++;
    // one line a minute at most: a flood of refusals during an outage must not flood the log
    if (this.warnings.allow()) this.o.log?.warn({ problem: why, path }, 'events: cannot record a refusal as a Kubernetes Event');
    return 0;
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = Buffer.from(s).subarray(0, max - 3).toString('utf8');
  while (Buffer.byteLength(out) > max - 3 || out.endsWith('\uFFFD')) out = out.slice(0, -1);
  return `${out}...`;
}
