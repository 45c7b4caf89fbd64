// The agent's side of systemd (Type=notify): STATUS= lines, READY=1 once containerd can use the
// plugin, STOPPING=1, and the watchdog. Without NOTIFY_SOCKET every call does nothing.
import { notifierFromEnv, watchdogIntervalMs, type Notifier } from './notify';
import type { Logger } from './logger';
import { Throttle } from '../log/throttle';

export class Systemd {
  private readonly notifier: Notifier | undefined;
  private lastStatus = '';
  private readySent = false;
  private stopped = false;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly notifyFailures = new Throttle();

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
  ) {
    this.notifier = notifierFromEnv(env, (err) => {
      // a lost notify socket must not flood the log
      if (this.notifyFailures.allow()) log.warn({ err: err.message }, 'systemd: cannot notify');
    });
  }

  /** The STATUS= line; an unchanged one is not sent again, and nothing after stopping(). */
  status(text: string, extra: Record<string, string> = {}): void {
    // after STOPPING=1 the stub's own teardown (disconnected, stopped) is no news
    if (!this.notifier || this.stopped || (text === this.lastStatus && Object.keys(extra).length === 0)) return;
    this.lastStatus = text;
    this.notifier.send({ ...extra, STATUS: text });
  }

  /** A STATUS= line that also says READY=1 the first time: systemd's start job completes then. */
  ready(text: string): void {
    this.status(text, this.readySent ? {} : { READY: '1' });
    this.readySent = true;
  }

  /** Whether the last status is still one of the start's ("starting: ..."). */
  get starting(): boolean {
    return this.lastStatus.startsWith('starting');
  }

  /**
   * Feeds the watchdog when the unit asks for one: a timer on the event loop, so a stalled loop
   * stops feeding it and systemd restarts the agent (WatchdogSec= in the unit).
   */
  startWatchdog(): void {
    const everyMs = this.notifier ? watchdogIntervalMs(this.env) : undefined;
    if (everyMs === undefined) return;
    this.watchdog = setInterval(() => this.notifier?.send({ WATCHDOG: '1' }), everyMs);
    this.watchdog.unref();
    this.log.info({ everyMs }, 'systemd: watchdog on');
  }

  /** STOPPING=1; from now on the parts' teardown sends no status. */
  stopping(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.status('stopping', { STOPPING: '1' });
    this.stopped = true;
  }

  close(): void {
    this.notifier?.close();
  }
}
