// A warning that would repeat on every failure (a lost notify socket, an unwritable state file,
// an API server that refuses Events) is written once a minute at most: a long outage must not
// flood the log, and the first failure is always written.

/** Allows one occurrence per `everyMs`; the first is always allowed. */
export class Throttle {
  private last: number | undefined;

  constructor(
    private readonly everyMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to write it now (and, if so, the next is allowed `everyMs` from now). */
  allow(): boolean {
    const t = this.now();
    if (this.last !== undefined && t - this.last < this.everyMs) return false;
    this.last = t;
    return true;
  }
}
