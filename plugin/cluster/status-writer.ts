// Keeps this node's entries in the ShareMemory statuses in line with what the node holds, off the
// request path. Changes only mark a share dirty; a single pump writes the latest state of dirty
// shares later, so a burst of bindings and releases of one share costs one write:
//  - per share at most one write per minIntervalMs; a state equal to the last one written is not sent
//  - across shares a token bucket (ratePerSecond, burst): API writes stay bounded however fast
//    pods churn
//  - a failure (server away, 5xx, 429) pauses all writes with backoff; the dirty set is kept, and
//    what is written when the server is back is the state at that moment, not a replay
//  - at start (and after every resync) the node's own entries are corrected from its records: every
//    share it holds or refuses, and every object whose status still names it, is checked and written
import type { Log } from '../log/log';
import { messageOf, shareKey } from '../model';
import { applyNodeStatus, listOwnEntries, type KubeSend, type NodeRefusal, type NodeShareStatus, type ShareRef } from './apply';

export type StatusWriterLog = Log;

export interface StatusWriterOptions {
  nodeName: string;
  send: KubeSend;
  /** this node's state of one share now; undefined when it does not hold it */
  snapshot(share: ShareRef): Promise<NodeShareStatus | undefined>;
  /** every share this node holds */
  held(): ShareRef[];
  /** this node's refusal of the share's ShareMemory now, if it refuses it (absent: never) */
  refusal?(share: ShareRef): NodeRefusal | undefined;
  /** every share whose ShareMemory this node refuses */
  refused?(): ShareRef[];
  /** per share: writes at least this far apart (default 2000 ms) */
  minIntervalMs?: number;
  /** all shares: sustained writes per second (default 5) and burst (default 10) */
  ratePerSecond?: number;
  burst?: number;
  /** every share held is checked this often, e.g. for bytesUsed (default 60000 ms; 0: never) */
  resyncMs?: number;
  /** after a failure: first pause, doubling to max (default 1000 .. 60000 ms) */
  backoff?: { initialMs: number; maxMs: number };
  log?: StatusWriterLog;
  now?: () => number;
}

export interface StatusWriterStats {
  /** PATCH requests sent */
  writes: number;
  /** changes that did not need a write of their own (coalesced or unchanged) */
  coalesced: number;
  failures: number;
  dirty: number;
  /** false until the start-up list of this node's entries succeeded */
  corrected: boolean;
  lastError: string | null;
}

/** The last state written: JSON of the entry, ABSENT (no entry of ours), or UNKNOWN (found at start). */
const ABSENT = '';
const UNKNOWN = '?';

export class StatusWriter {
  private readonly dirty = new Map<string, ShareRef>();
  private readonly written = new Map<string, string>();
  private readonly lastWriteAt = new Map<string, number>();
  private readonly minIntervalMs: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly now: () => number;
  private tokens: number;
  private tokensAt: number;
  private pausedUntil = 0;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private needCorrection = true;
  private readonly reported = new Set<string>();
  private readonly s: StatusWriterStats = { writes: 0, coalesced: 0, failures: 0, dirty: 0, corrected: false, lastError: null };

  constructor(private readonly o: StatusWriterOptions) {
    this.minIntervalMs = o.minIntervalMs ?? 2000;
    this.rate = o.ratePerSecond ?? 5;
    this.burst = o.burst ?? 10;
    this.backoff = o.backoff ?? { initialMs: 1000, maxMs: 60000 };
    this.delay = this.backoff.initialMs;
    this.now = o.now ?? Date.now;
    this.tokens = this.burst;
    this.tokensAt = this.now();
  }

  get stats(): StatusWriterStats {
    return { ...this.s, dirty: this.dirty.size };
  }

  /** Corrects the node's entries, then follows changes. */
  start(): this {
    if (this.started || this.stopped) return this;
    this.started = true;
    for (const r of this.mine()) this.changed(r);
    if (this.o.resyncMs !== 0) {
      this.resyncTimer = setInterval(() => this.resync(), this.o.resyncMs ?? 60000);
      this.resyncTimer.unref();
    }
    this.schedule(0);
    return this;
  }

  /** The share's state on this node may have changed (bound, unbound, released). Cheap; never waits. */
  changed(share: ShareRef): void {
    if (this.stopped) return;
    const key = shareKey(share.namespace, share.name);
    if (this.dirty.has(key)) this.s.coalesced++;
    else this.dirty.set(key, { namespace: share.namespace, name: share.name });
    if (this.started) this.schedule(this.dueAt(key));
  }

  /**
   * The object may be new (re)created: what was written to an earlier one is gone with it. Or it
   * is the same object, declared here now after a refusal, and the refused entry is still there.
   * So the state on the server is unknown, and the next state is written whatever it is.
   */
  objectCreated(share: ShareRef): void {
    const key = shareKey(share.namespace, share.name);
    if (!this.written.has(key)) return;
    this.written.set(key, UNKNOWN);
    this.changed(share);
  }

  /** Resolves once nothing is dirty and no write runs (for tests and an orderly stop). */
  async idle(): Promise<void> {
    while (!this.stopped && (this.dirty.size > 0 || this.pumping || this.needCorrection)) {
      await (this.pumping ?? new Promise((r) => setTimeout(r, 20)));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.resyncTimer);
    await this.pumping;
  }

  /** Checks every share held and every entry written (bytesUsed moves; a missed change is caught). */
  resync(): void {
    for (const r of this.mine()) this.changed(r);
    for (const key of this.written.keys()) {
      const [namespace, name] = splitKey(key);
      this.changed({ namespace, name });
    }
  }

  /** The shares this node has something to say about: held ones and refused ones. */
  private mine(): ShareRef[] {
    return this.o.refused ? [...this.o.held(), ...this.o.refused()] : this.o.held();
  }

  private dueAt(key: string): number {
    return Math.max(this.pausedUntil, (this.lastWriteAt.get(key) ?? -Infinity) + this.minIntervalMs);
  }

  private schedule(at: number): void {
    if (this.stopped || this.pumping) return; // the pump reschedules itself when done
    const ms = Math.max(0, at - this.now());
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pumping = this.pump().finally(() => {
        this.pumping = undefined;
        this.scheduleNext();
      });
    }, ms);
    this.timer.unref();
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    if (this.needCorrection) return this.schedule(this.pausedUntil);
    let next = Infinity;
    for (const key of this.dirty.keys()) next = Math.min(next, this.dueAt(key));
    if (next < Infinity) this.schedule(next);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.tokensAt) / 1000) * this.rate);
    this.tokensAt = t;
  }

  private async pump(): Promise<void> {
    if (this.now() < this.pausedUntil) return;
    if (this.needCorrection && !(await this.correct())) return;
    for (const [key, share] of [...this.dirty]) {
      if (this.stopped || this.now() < this.pausedUntil) return;
      if (this.dueAt(key) > this.now()) continue;
      let entry: NodeShareStatus | undefined;
      try {
        entry = await this.o.snapshot(share);
      } catch (err) {
        this.report(`status: cannot read the state of share ${key}: ${messageOf(err)}`);
        this.dirty.delete(key);
        continue;
      }
      const refusal = this.o.refusal?.(share);
      const state = entry || refusal ? JSON.stringify([entry ?? null, refusal ?? null]) : ABSENT;
      if (state === (this.written.get(key) ?? ABSENT)) {
        this.dirty.delete(key); // what the server has already
        this.s.coalesced++;
        continue;
      }
      this.refill();
      if (this.tokens < 1) {
        // the bucket is empty: the rest waits for tokens (the timer's next round)
        this.pausedUntil = Math.max(this.pausedUntil, this.now() + ((1 - this.tokens) / this.rate) * 1000);
        return;
      }
      this.tokens -= 1;
      this.dirty.delete(key);
      this.lastWriteAt.set(key, this.now());
      this.s.writes++;
      const outcome = await applyNodeStatus(this.o.send, this.o.nodeName, share, entry, refusal);
      if (outcome.kind === 'applied') {
        if (state !== ABSENT) this.written.set(key, state);
        else this.written.delete(key);
        this.succeeded();
      } else if (outcome.kind === 'gone') {
        this.written.delete(key); // nothing of ours can be there; a new object is announced
        this.succeeded();
      } else if (outcome.kind === 'refused') {
        this.s.failures++;
        this.report(outcome.message, `refused ${outcome.code}`);
        this.written.set(key, UNKNOWN); // tried again at the next change or resync
      } else {
        if (!this.dirty.has(key)) this.dirty.set(key, share); // the latest state goes when the server is back
        this.failed(outcome.message, outcome.retryAfterMs);
        return;
      }
    }
  }

  /** The start-up correction: every object naming this node in its status is checked. */
  private async correct(): Promise<boolean> {
    let mine: ShareRef[];
    try {
      mine = await listOwnEntries(this.o.send, this.o.nodeName);
    } catch (err) {
      this.failed(messageOf(err), 0);
      return false;
    }
    this.needCorrection = false;
    this.s.corrected = true;
    for (const r of mine) {
      const key = shareKey(r.namespace, r.name);
      if (!this.written.has(key)) this.written.set(key, UNKNOWN);
      if (!this.dirty.has(key)) this.dirty.set(key, r);
    }
    this.o.log?.info({ node: this.o.nodeName, entries: mine.length, held: this.o.held().length }, 'status: correcting this node\'s ShareMemory status entries');
    this.succeeded();
    return true;
  }

  private succeeded(): void {
    if (this.s.lastError) this.o.log?.info({ node: this.o.nodeName, dirty: this.dirty.size }, 'status: the API server takes writes again');
    this.s.lastError = null;
    this.delay = this.backoff.initialMs;
  }

  private failed(message: string, retryAfterMs: number): void {
    this.s.failures++;
    const first = this.s.lastError === null;
    this.s.lastError = message;
    this.pausedUntil = this.now() + Math.max(this.delay, retryAfterMs);
    if (first) this.o.log?.warn({ node: this.o.nodeName, problem: message, retryInMs: this.pausedUntil - this.now() }, 'status: cannot write ShareMemory status; keeping the latest state and retrying');
    this.delay = Math.min(this.delay * 2, this.backoff.maxMs);
  }

  /** A refusal is logged once per kind: the same 403 for every share is one line. */
  private report(message: string, kind = message): void {
    this.s.lastError = message;
    if (this.reported.has(kind) || this.reported.size > 100) return;
    this.reported.add(kind);
    this.o.log?.warn({ node: this.o.nodeName, problem: message }, 'status: a ShareMemory status write was refused');
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}
