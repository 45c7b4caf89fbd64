// The running agent's own account of itself, for `nri-memshare status`: a small JSON file in
// stateDir (agent-state.json, mode 0600, replaced atomically) that the daemon rewrites when its
// connection to containerd or its declaration sources change, and every few seconds. status
// reads it and checks that the pid it names is alive and is still the same process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../files/state-file';
import { messageOf } from '../model/errors';

export const AGENT_STATE_FILE = 'agent-state.json';

export interface DeclarationSourceState {
  /** "directory" or "kubernetes" */
  kind: string;
  /** the directory, or how the API server is reached (kubeconfig path, in-cluster) */
  location: string;
  /** directory: ok | problems; kubernetes: connected | failing | connecting */
  state: string;
  declarations: number;
  /** what is wrong now: broken files, invalid objects, why the watch fails */
  problems: string[];
  /** kubernetes: false when TLS verification of the API server is off */
  tlsVerify?: boolean;
}

export interface AgentState {
  version: 1;
  pid: number;
  /** /proc/<pid>/stat starttime: tells a reused pid from the agent */
  pidStartTicks: string;
  agentVersion: string;
  startedAt: string;
  updatedAt: string;
  /** "running", or "stopped" once it stopped in order */
  lifecycle: 'running' | 'stopped';
  nri: {
    socket: string;
    /** the stub's state: connecting, registered, synchronized, disconnected, stopped */
    state: string;
    /** when the current registration was synchronized; null while not registered */
    registeredSince: string | null;
    runtime: { name: string; version: string; nriVersion: string | null; nriVersionSource: 'reported' | 'inferred' | null } | null;
    /** why the last connection attempt failed, or why the connection closed; null once registered */
    lastError: string | null;
  };
  declarations: DeclarationSourceState[];
  pendingReleases: number;
  failedEvictions: number;
  metricsAddress: string | null;
  /** the DRA front door; null (or absent, from an agent before it) when dra.enabled is false */
  dra?: DraDoorState | null;
}

/** What the kubelet made of the DRA door's registration, for `status`. */
export interface DraDoorState {
  driverName: string;
  /** waiting: no word from the kubelet yet; registered; refused (lastError says why) */
  registration: 'waiting' | 'registered' | 'refused';
  registrationSocket: string;
  endpoint: string;
  lastError: string | null;
}

export function agentStatePath(stateDir: string): string {
  return join(stateDir, AGENT_STATE_FILE);
}

/** Replaces the file atomically (write beside it, then rename); it is not fsync'd: it only describes the live process. */
export function writeAgentState(stateDir: string, state: AgentState): void {
  const path = agentStatePath(stateDir);
  writeStateFile(path, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks after boot), or undefined if no such process. */
export function processStartTicks(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from its closing one
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export type AgentLiveness =
  | { running: true; state: AgentState }
  | { running: false; reason: string; last: AgentState | null };

/** The agent's state file, and whether the process that wrote it still runs. */
export function readAgentState(stateDir: string): AgentLiveness {
  const path = agentStatePath(stateDir);
  let text: string | undefined;
  try {
    text = readStateFile(path);
  } catch (err) {
    return { running: false, reason: `cannot read ${path}: ${messageOf(err)}`, last: null };
  }
  if (text === undefined) return { running: false, reason: `no agent has run on ${stateDir} (no ${AGENT_STATE_FILE})`, last: null };
  let state: AgentState;
  try {
    state = JSON.parse(text) as AgentState;
    if (state.version !== 1 || !Number.isSafeInteger(state.pid) || state.pid <= 0 || typeof state.nri !== 'object' || !Array.isArray(state.declarations)) {
      throw new Error('not an agent state (version 1)');
    }
  } catch (err) {
    // never echo the file's contents: only that it is damaged
    return { running: false, reason: `${path} is damaged (${err instanceof SyntaxError ? 'not JSON' : messageOf(err)})`, last: null };
  }
  if (state.lifecycle === 'stopped') return { running: false, reason: `the agent (pid ${state.pid}) stopped at ${state.updatedAt}`, last: state };
  const ticks = processStartTicks(state.pid);
  if (ticks === undefined || ticks !== state.pidStartTicks) {
    return { running: false, reason: `the agent (pid ${state.pid}) is gone; it last reported at ${state.updatedAt} (killed or crashed)`, last: state };
  }
  return { running: true, state };
}

/**
 * The NRI version of a containerd release, from its go.mod (nri-protocol.md §8), for runtimes
 * older than NRI v0.12 that do not report it in Configure.
 */
export function inferNriVersion(runtimeName: string, runtimeVersion: string): string | null {
  if (runtimeName !== 'containerd') return null;
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(runtimeVersion);
  if (!m) return null;
  const [maj, min, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (maj === 1 && min === 7) {
    if (patch <= 6) return 'v0.3.0';
    if (patch <= 13) return 'v0.4.0';
    if (patch <= 15) return 'v0.6.0';
    if (patch <= 25) return 'v0.6.1';
    return 'v0.8.0';
  }
  if (maj === 2 && (min === 0 || min === 1)) return 'v0.8.0';
  if (maj === 2 && min === 2) return patch === 0 ? 'v0.10.0' : 'v0.11.0';
  if (maj === 2 && min === 3) return 'v0.12.0';
  return null;
}
