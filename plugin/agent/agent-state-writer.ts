// Keeps agent-state.json current for `status`: rewritten on changes (coalesced, off the request
// path) and every 5 s, so the Kubernetes watch's state and the counts stay current; the last
// write, at stop, says "stopped".
import { inferNriVersion, processStartTicks, writeAgentState, type AgentState, type DeclarationSourceState, type DraDoorState } from './agent-state';
import { packageVersion } from './build-info';
import type { ConfigureRequest } from '../nri';
import type { Logger } from './logger';
import type { NriConnection } from './nri-connection';
import { messageOf } from '../model/errors';
import { Throttle } from '../log/throttle';

export interface AgentStateInputs {
  stateDir: string;
  nriSocket: string;
  nri: NriConnection;
  runtime: () => ConfigureRequest | undefined;
  declarationSources: () => DeclarationSourceState[];
  pendingReleases: () => number;
  failedEvictions: () => number;
  metricsAddress: () => string | null;
  /** the DRA door's state; null when it is off */
  dra: () => DraDoorState | null;
}

export class AgentStateWriter {
  private readonly startedAt = new Date().toISOString();
  private readonly pidStartTicks = processStartTicks('self') ?? '';
  private pending = false;
  private stopped = false;
  private readonly writeFailures = new Throttle();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: AgentStateInputs,
    private readonly log: Logger,
  ) {}

  /** Writes now, then every 5 s. */
  start(): void {
    this.write();
    this.timer = setInterval(() => this.write(), 5_000);
    this.timer.unref();
  }

  /** Something `status` shows changed: written once the current work is done. */
  changed(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (!this.stopped) this.write();
    });
  }

  /** Stops the timer and writes the last state ("stopped"). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.write('stopped');
  }

  private state(lifecycle: AgentState['lifecycle']): AgentState {
    const { nri } = this.o;
    const rt = this.o.runtime();
    const reported = rt?.nriVersion ? rt.nriVersion : null;
    const inferred = rt && !reported ? inferNriVersion(rt.runtimeName, rt.runtimeVersion) : null;
    return {
      version: 1, pid: process.pid, pidStartTicks: this.pidStartTicks, agentVersion: packageVersion(), startedAt: this.startedAt,
      updatedAt: new Date().toISOString(), lifecycle,
      nri: {
        socket: this.o.nriSocket, state: nri.state, registeredSince: nri.registeredSince?.toISOString() ?? null,
        runtime: rt ? { name: rt.runtimeName, version: rt.runtimeVersion, nriVersion: reported ?? inferred, nriVersionSource: reported ? 'reported' : inferred ? 'inferred' : null } : null,
        lastError: nri.state === 'synchronized' ? null : nri.lastError,
      },
      declarations: this.o.declarationSources(),
      pendingReleases: this.o.pendingReleases(),
      failedEvictions: this.o.failedEvictions(),
      metricsAddress: this.o.metricsAddress(),
      dra: this.o.dra(),
    };
  }

  private write(lifecycle: AgentState['lifecycle'] = 'running'): void {
    try {
      writeAgentState(this.o.stateDir, this.state(lifecycle));
    } catch (err) {
      if (this.writeFailures.allow()) this.log.error({ err: messageOf(err), stateDir: this.o.stateDir }, 'agent state: cannot record it for status');
    }
  }
}
