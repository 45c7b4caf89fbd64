// Evicting a container that runs without the shares it asked for (created while the agent was
// down). NRI's UpdateContainers carries evictions, but the runtimes this product supports
// (NRI 0.6 in containerd 1.7, 0.8 in 2.0/2.1) ignore them there; so the agent also stops the
// container itself: SIGKILL to its init process, and the kubelet recreates it, with its memory.
// The init of a container usually runs as another uid than the agent: signalling it takes
// CAP_KILL (the systemd unit grants it). A kill that fails anyway is retried with backoff by the
// Evictor below and reported (log, metrics, the state file that `status` reads).
import { readFileSync, closeSync } from 'node:fs';
import * as native from '../../native';

/** An eviction that failed and is not resolved yet (the container still runs without its shares). */
export interface FailedEviction {
  containerId: string;
  /** the container's init process that could not be signalled */
  pid: number;
  /** failed attempts so far */
  attempts: number;
  /** the last attempt's error, e.g. "pidfd_send_signal(pidfd 22) failed: EPERM: Operation not permitted" */
  lastError: string;
  /** ISO time of the first failed attempt */
  since: string;
  /** whether another attempt is scheduled (false: the agent gave up until its next reconcile) */
  retrying: boolean;
}

export type KillOutcome = 'killed' | 'gone' | 'no-pid' | 'not-this-container';

/**
 * Kills the init process of container `containerId`, whose pid the runtime reported. A pidfd pins
 * the process first, and its cgroup must name the container, so a pid reused by another process
 * since the runtime looked is never signalled.
 */
export function killContainerInit(containerId: string, pid: number): KillOutcome {
  if (!pid) return 'no-pid';
  let fd: number;
  try {
    fd = native.pidfdOpen(pid);
  } catch (err) {
    if ((err as native.SyscallError).code === 'ESRCH') return 'gone';
    throw err;
  }
  try {
    let cgroup: string;
    try {
      cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch (err) {
      // only a process that went away is "gone"; anything else (EACCES...) is a failure to report
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') return 'gone';
      throw err;
    }
    // cgroupfs ("/kubepods/.../<id>") and systemd ("cri-containerd-<id>.scope") paths both carry the id
    if (!cgroup.includes(containerId)) return 'not-this-container';
    try {
      native.pidfdSendSignal(fd, 9);
    } catch (err) {
      if ((err as native.SyscallError).code === 'ESRCH') return 'gone';
      throw err;
    }
    return 'killed';
  } finally {
    closeSync(fd);
  }
}

/** Delays between attempts of one eviction: 1 s, 2 s, 4 s, 8 s (five attempts in about 15 s). */
export const EVICTION_RETRY_DELAYS_MS: readonly number[] = [1000, 2000, 4000, 8000];

/** One failed attempt. */
export interface EvictionFailure extends FailedEviction {
  /** what the kill threw */
  error: unknown;
  /** its errno name ("EPERM"), or "unknown" */
  errno: string;
  /** no attempt follows (until the next reconcile asks again) */
  final: boolean;
  /** when retrying: the delay before the next attempt */
  retryInMs?: number;
}

export interface EvictorOptions {
  /** stops the container's init; throws when it cannot (default: killContainerInit) */
  kill?(containerId: string, pid: number): KillOutcome;
  /** delays between attempts (default EVICTION_RETRY_DELAYS_MS); attempts = delays + 1 */
  retryDelaysMs?: readonly number[];
  /** an eviction is over: the init was killed, or the container is gone (ends the retries) */
  onOutcome?(containerId: string, pid: number, outcome: KillOutcome): void;
  /** an attempt failed */
  onFailure?(f: EvictionFailure): void;
  /** the list of failing evictions changed (to persist it and set a gauge) */
  onChange?(failing: FailedEviction[]): void;
  /** failures recorded by an earlier agent: listed until a reconcile retries or drops them */
  initial?: readonly FailedEviction[];
  now?(): Date;
}

function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code ? code : 'unknown';
}

/**
 * Evicts containers by killing their init, retrying a failed kill with backoff (bounded), and
 * keeps the list of evictions still failing. An eviction ends when the kill succeeds, when the
 * container turns out to be gone, or when the container ends (forget); after the last attempt
 * it stays listed, not retried, until one of those or the next reconcile.
 */
export class Evictor {
  private readonly failed = new Map<string, FailedEviction>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly delays: readonly number[];
  private readonly kill: (containerId: string, pid: number) => KillOutcome;

  constructor(private readonly opts: EvictorOptions = {}) {
    this.delays = opts.retryDelaysMs ?? EVICTION_RETRY_DELAYS_MS;
    this.kill = opts.kill ?? killContainerInit;
    for (const f of opts.initial ?? []) this.failed.set(f.containerId, { ...f, retrying: false });
  }

  /** Kills the container's init now; a failure is retried. No-op while retries are scheduled. */
  evict(containerId: string, pid: number): void {
    if (this.timers.has(containerId)) return;
    this.attempt(containerId, pid, 0);
  }

  /** The container ended: no more attempts, and it is no longer listed as failing. */
  forget(containerId: string): void {
    const t = this.timers.get(containerId);
    if (t) clearTimeout(t);
    this.timers.delete(containerId);
    if (this.failed.delete(containerId)) this.changed();
  }

  /** At reconcile: only the containers it evicts stay listed (or retried); the rest are over. */
  retain(containerIds: ReadonlySet<string>): void {
    for (const id of [...this.failed.keys(), ...this.timers.keys()]) {
      if (containerIds.has(id)) continue;
      const t = this.timers.get(id);
      if (t) clearTimeout(t);
      this.timers.delete(id);
      this.failed.delete(id);
    }
    this.changed(); // always: also replaces what an earlier agent left in the state file
  }

  /** Evictions failing now, oldest first. */
  failing(): FailedEviction[] {
    return [...this.failed.values()].map((f) => ({ ...f })).sort((a, b) => a.since.localeCompare(b.since) || a.containerId.localeCompare(b.containerId));
  }

  /** Cancels every scheduled attempt (the agent stops); the list stays as it is. */
  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private attempt(containerId: string, pid: number, round: number): void {
    let outcome: KillOutcome;
    try {
      outcome = this.kill(containerId, pid);
    } catch (error) {
      const prev = this.failed.get(containerId);
      const retrying = round < this.delays.length;
      const f: FailedEviction = {
        containerId,
        pid,
        attempts: (prev?.attempts ?? 0) + 1,
        lastError: error instanceof Error ? error.message : String(error),
        since: prev?.since ?? (this.opts.now?.() ?? new Date()).toISOString(),
        retrying,
      };
      this.failed.set(containerId, f);
      if (retrying) {
        const t = setTimeout(() => {
          this.timers.delete(containerId);
          this.attempt(containerId, pid, round + 1);
        }, this.delays[round]);
        t.unref();
        this.timers.set(containerId, t);
      }
      this.opts.onFailure?.({ ...f, error, errno: errnoOf(error), final: !retrying, retryInMs: retrying ? this.delays[round] : undefined });
      this.changed();
      return;
    }
    const wasFailing = this.failed.delete(containerId);
    this.opts.onOutcome?.(containerId, pid, outcome);
    if (wasFailing) this.changed();
  }

  private changed(): void {
    this.opts.onChange?.(this.failing());
  }
}
