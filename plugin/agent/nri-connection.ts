// What the agent knows of its connection to the runtime, from the NRI stub's observer: the state,
// since when it is registered, why it last failed. It feeds the systemd status line, the metrics
// and the agent state that `status` reads.
import type { ConfigureRequest, StubObserver, StubState } from '../nri';
import type { MemshareMetrics, NriEventName } from './metrics';
import type { Systemd } from './systemd';

export class NriConnection {
  state: StubState = 'connecting';
  registeredSince: Date | undefined;
  /** why the last connection attempt failed, or why the connection closed */
  lastError: string | null = null;
  private everSynced = false;

  constructor(
    private readonly o: {
      metrics: MemshareMetrics;
      systemd: Systemd;
      /** the runtime as it introduced itself (the stub's, once it exists) */
      runtime: () => ConfigureRequest | undefined;
      /** the state changed (for the agent state file) */
      changed: () => void;
    },
  ) {}

  /** The stub's observer. */
  observer(): StubObserver {
    const { metrics, systemd } = this.o;
    return {
      request: (method, ms) => metrics.timer(method as NriEventName).observe(ms / 1000),
      state: (s, detail) => {
        this.state = s;
        if (s === 'disconnected' && detail) this.lastError = `connection closed: ${detail}`;
        this.o.changed();
        metrics.pluginRegistered.set(s === 'synchronized' ? 1 : 0);
        if (s === 'synchronized') {
          if (this.everSynced) metrics.reconnects.inc();
          this.everSynced = true;
          this.registeredSince = new Date();
          const rt = this.o.runtime();
          const who = rt ? `${rt.runtimeName || 'runtime'} ${rt.runtimeVersion || '(version unknown)'}` : 'the runtime';
          // READY once: systemd's start job completes when containerd can use the plugin
          systemd.ready(`registered with ${who} since ${this.registeredSince.toISOString()}`);
        } else if (s === 'registered') {
          systemd.status('registered with containerd; synchronizing');
        } else if (s === 'disconnected') {
          this.registeredSince = undefined;
          systemd.status(`disconnected from containerd${detail ? ` (${detail})` : ''}; reconnecting`);
        }
      },
      retrying: (reason) => {
        this.lastError = reason.replace(/^nri: /, '').replace(/\. Retrying$/, '');
        systemd.status(`retrying: ${this.lastError}`);
        this.o.changed();
      },
    };
  }
}
