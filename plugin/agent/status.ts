// `nri-memshare status`: what is shared on this node, read from the ownership records and the
// backend (never from the running agent, so it works while the agent is down too). It only reads:
// no directory or file is created, whatever the config names.
import { Ledger, type BindingRecord, type ClaimRecord } from '../ledger';
import { formatBytes, messageOf, printable, printableJson, shareKey, type ShareHandle } from '../model';
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { inspectBackend, type HelperStatus } from '../backends';
import type { Config } from './config';
import { readFailedEvictions, type FailedEviction } from './failed-evictions';
import { readAgentState, type AgentState, type DraDoorState } from './agent-state';

export interface ShareStatus {
  namespace: string;
  name: string;
  /** where the backend has it on the host; '' when it has no path to show or is not present */
  location: string;
  present: boolean;
  sizeBytes: number | null;
  usedBytes: number | null;
  /** backend facts recorded with it (ubs: SDK name, memids, device major) */
  handle: ShareHandle['data'] | null;
  /** set while its release is failing: retried in the background */
  releasing: { attempts: number; lastError: string; retryable: boolean; since: string; nextAttemptAt: string | null } | null;
  /** kept with no binding until then: its containers were evicted for stale device numbers (UB) */
  keptUntil: string | null;
  holders: Array<{
    pod: BindingRecord['pod'];
    container: BindingRecord['container'];
    readOnly: boolean;
    since: string;
  }>;
  /** ResourceClaims prepared on this node with the share (the DRA front door): holders too */
  claims: Array<{
    claim: ClaimRecord['claim'];
    readOnly: boolean;
    since: string;
  }>;
}

/** Whether the agent runs, and what it said about itself (agent-state.json in stateDir). */
export type AgentStatus =
  | ({ running: true } & Omit<AgentState, 'version' | 'pidStartTicks' | 'lifecycle'>)
  | { running: false; reason: string; last: Omit<AgentState, 'version' | 'pidStartTicks'> | null };

export interface NodeStatus {
  agent: AgentStatus;
  stateDir: string;
  backend: string;
  shares: ShareStatus[];
  /** UB: the holder process that keeps the node's shares attached (null for other backends) */
  holder: HelperStatus | null;
  /** containers the agent could not evict (they run without their shares), from the state directory */
  failedEvictions: FailedEviction[];
  warnings: string[];
}

export async function collectStatus(config: Config): Promise<NodeStatus> {
  const { records, claims, held, warnings } = Ledger.read(config.stateDir);
  const shares = new Map<string, ShareStatus>();
  const entry = (namespace: string, name: string): ShareStatus => {
    const key = shareKey(namespace, name);
    let s = shares.get(key);
    if (!s) shares.set(key, (s = { namespace, name, location: '', present: false, sizeBytes: null, usedBytes: null, handle: null, releasing: null, keptUntil: null, holders: [], claims: [] }));
    return s;
  };
  const backend = await inspectBackend(config.backend, { stateDir: config.stateDir }, { sharesDir: config.sharesDir }, held.some((x) => !x.releasing));
  // what the last agent recorded it holds (UB shares are known only from these records: status
  // never loads the SDK, whose calls can block)
  for (const h of held) {
    const s = entry(h.handle.namespace, h.handle.name);
    s.handle = h.handle.data;
    s.sizeBytes = h.handle.sizeBytes;
    s.present = !h.releasing && backend.present === undefined;
    if (h.keepUntil !== undefined && h.keepUntil > Date.now()) s.keptUntil = new Date(h.keepUntil).toISOString();
    if (h.releasing) {
      const r = h.releasing;
      s.releasing = { attempts: r.attempts, lastError: r.lastError, retryable: r.retryable, since: new Date(r.since).toISOString(), nextAttemptAt: r.retryable ? new Date(r.nextAttemptAt).toISOString() : null };
    }
  }
  // where the backend sees its shares itself (local: the mount table), that is the truth
  for (const p of backend.present ?? []) {
    const s = entry(p.namespace, p.name);
    s.present = true;
    s.location = p.location;
    if (p.usage) {
      s.sizeBytes = p.usage.sizeBytes;
      s.usedBytes = p.usage.usedBytes;
    }
  }
  for (const r of records) {
    if (r.state !== 'bound') continue;
    entry(r.share.namespace, r.share.name).holders.push({
      pod: r.pod,
      container: r.container,
      readOnly: r.readOnly,
      since: new Date(r.createdAt).toISOString(),
    });
  }
  for (const c of claims) {
    entry(c.share.namespace, c.share.name).claims.push({ claim: c.claim, readOnly: c.readOnly, since: new Date(c.createdAt).toISOString() });
  }
  for (const s of shares.values()) {
    const held = s.holders.length + s.claims.length;
    if (!s.present && held) warnings.push(`share ${shareKey(s.namespace, s.name)} has holders on record but is not present on this node`);
    if (s.present && !held && s.keptUntil) warnings.push(`share ${shareKey(s.namespace, s.name)}: its containers were evicted for stale device numbers; kept for their return until ${s.keptUntil}, then released`);
    else if (s.present && !held) warnings.push(`share ${shareKey(s.namespace, s.name)} is present${s.location ? ` at ${s.location}` : ''} but no record explains it (the agent releases it at its next reconcile)`);
    if (s.releasing) warnings.push(`share ${shareKey(s.namespace, s.name)}: release failing after ${s.releasing.attempts} attempt(s) (${s.releasing.lastError}); ${s.releasing.nextAttemptAt ? `next attempt ${s.releasing.nextAttemptAt}` : 'retried at the next start'}`);
  }
  warnings.push(...backend.warnings);
  const failed = readFailedEvictions(config.stateDir);
  warnings.push(...failed.warnings);
  const live = readAgentState(config.stateDir);
  const strip = ({ version: _v, pidStartTicks: _t, ...rest }: AgentState) => rest;
  const agent: AgentStatus = live.running
    ? (({ lifecycle: _l, ...rest }) => ({ running: true as const, ...rest }))(strip(live.state))
    : { running: false, reason: live.reason, last: live.last ? strip(live.last) : null };
  if (agent.running) {
    for (const d of agent.declarations) {
      if (d.tlsVerify === false) warnings.push(`${d.kind} ${d.location}: TLS verification of the API server is off (insecure-skip-tls-verify, or plain http); its ShareMemory objects could come from anyone on the path`);
    }
  }
  return {
    agent,
    stateDir: config.stateDir,
    backend: config.backend.kind,
    shares: [...shares.values()].sort((a, b) => shareKey(a.namespace, a.name).localeCompare(shareKey(b.namespace, b.name))),
    holder: backend.helper,
    failedEvictions: failed.failedEvictions,
    warnings,
  };
}

/** The lines above the shares: the agent, its registration, its declaration sources. */
function renderAgent(a: AgentStatus): string[] {
  if (!a.running) {
    const out = [`agent: NOT RUNNING: ${a.reason}`, 'nri: not registered (no agent); containers that ask for shares fail or start without them'];
    out.push('(the shares below are what the records and mounts show)');
    return out;
  }
  const out = [`agent: running (pid ${a.pid}, version ${a.agentVersion}, since ${a.startedAt}; reported ${a.updatedAt})`];
  const n = a.nri;
  if (n.state === 'synchronized' && n.registeredSince) {
    const rt = n.runtime;
    const nri = rt?.nriVersion ? `, NRI ${rt.nriVersion}${rt.nriVersionSource === 'inferred' ? ' (inferred from its version)' : ''}` : '';
    out.push(`nri: registered with ${rt ? `${rt.name} ${rt.version}` : 'the runtime'}${nri} since ${n.registeredSince}, on ${n.socket}`);
  } else {
    out.push(`nri: NOT REGISTERED (${n.state}) on ${n.socket}${n.lastError ? `: ${n.lastError}` : ''}; retrying`);
  }
  for (const d of a.declarations) {
    const what = `${d.declarations} declaration${d.declarations === 1 ? '' : 's'}`;
    out.push(`declarations: ${d.kind} ${d.location}: ${d.state}, ${what}${d.tlsVerify === false ? ', TLS VERIFICATION OFF' : ''}`);
    for (const p of d.problems) out.push(`  problem: ${p}`);
  }
  const retries: string[] = [];
  if (a.pendingReleases) retries.push(`${a.pendingReleases} release(s) retrying`);
  if (a.failedEvictions) retries.push(`${a.failedEvictions} failed eviction(s)`);
  out.push(`retries: ${retries.length ? retries.join(', ') : 'none pending'}`);
  if (a.metricsAddress) out.push(`metrics: http://${a.metricsAddress}/metrics`);
  if (a.dra) out.push(renderDra(a.dra));
  return out;
}

function renderDra(d: DraDoorState): string {
  if (d.registration === 'registered') return `dra: registered with the kubelet as ${d.driverName}, serving ${d.endpoint}`;
  if (d.registration === 'refused') return `dra: REFUSED by the kubelet (${d.lastError ?? 'no reason given'}); no claims are prepared here; registration socket ${d.registrationSocket}`;
  return `dra: WAITING for the kubelet to register ${d.driverName} (registration socket ${d.registrationSocket})`;
}

function renderHolder(h: NodeStatus['holder']): string[] {
  if (!h) return [];
  if (!h.running) return [`ub holder: NOT RUNNING: ${h.reason}`];
  const sdk = h.sdk.ready ? 'connected to the UB memory daemon' : `NOT CONNECTED to the UB memory daemon (${h.sdk.reason})`;
  return [`ub holder: running (pid ${h.pid}, version ${h.version}, protocol ${h.protocol}, since ${h.since}), ${sdk}, maps ${h.maps.length} share(s)`];
}

export function renderStatus(st: NodeStatus): string {
  const head = [...renderAgent(st.agent), ...renderHolder(st.holder), ''];
  const rows: string[][] = [['SHARE', 'SIZE', 'USED', 'HOLDERS', 'POD', 'CONTAINER', 'MODE']];
  for (const s of st.shares) {
    const size = s.sizeBytes === null ? '-' : formatBytes(s.sizeBytes);
    const used = s.usedBytes === null ? '-' : formatBytes(s.usedBytes);
    const first = [shareKey(s.namespace, s.name), size, used, String(s.holders.length + s.claims.length)];
    // containers, then claims (a claim's containers are the kubelet's to know: it shows as the claim)
    const holderRows = [
      ...s.holders.map((h) => [`${h.pod.namespace}/${h.pod.name}`, `${h.container.name} (${h.container.id.slice(0, 12)})`, h.readOnly ? 'ro' : 'rw']),
      ...s.claims.map((c) => [`claim ${c.claim.namespace}/${c.claim.name} (${c.claim.uid})`, '-', c.readOnly ? 'ro' : 'rw']),
    ];
    if (holderRows.length === 0) rows.push([...first, '-', '-', '-']);
    holderRows.forEach((h, i) => rows.push([...(i === 0 ? first : ['', '', '', '']), ...h]));
  }
  const lines = renderTable(rows);
  if (st.shares.length === 0) lines.push('(no shares on this node)');
  lines.unshift(...head);
  if (st.failedEvictions.length) lines.push('', ...renderFailedEvictions(st.failedEvictions));
  for (const w of st.warnings) lines.push(`warning: ${w}`);
  // names and errors in these lines came from files, records and tenants: a newline or an escape
  // sequence in one must not forge a line of its own ("warning: ...") or drive the terminal
  return `${lines.map(printable).join('\n')}\n`;
}

/** Rows as aligned columns, each cell escaped first so that the widths hold. */
function renderTable(rows: string[][]): string[] {
  const cells = rows.map((r) => r.map(printable));
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  return cells.map((r) => r.map((x, c) => x.padEnd(widths[c])).join('  ').trimEnd());
}

/** The "failed evictions" section: containers that run without their shares because the agent could not kill them. */
function renderFailedEvictions(list: readonly FailedEviction[]): string[] {
  const rows: string[][] = [['CONTAINER', 'PID', 'ATTEMPTS', 'SINCE', 'RETRYING', 'LAST ERROR']];
  for (const f of list) rows.push([f.containerId.slice(0, 12), String(f.pid), String(f.attempts), f.since, f.retrying ? 'yes' : 'no', f.lastError]);
  return [`failed evictions (${list.length}): these containers run without their shares; the agent could not kill them`, ...renderTable(rows)];
}

/**
 * `status` exit codes, after systemctl's (LSB's) for `status`: 0 and 3 mean what they mean there.
 * docs/operations.md and the man page list them.
 */
export const STATUS_EXIT = {
  /** the agent runs and is registered with the runtime (containers get their shares) */
  ok: 0,
  /** the agent runs but is not (yet, or no longer) registered with the runtime */
  notRegistered: 1,
  /** bad arguments or config (the CLI's own) */
  usage: 2,
  /** the agent does not run */
  notRunning: 3,
  /** status cannot tell: it may not read the state directory (not root) */
  unknown: 4,
} as const;

export function statusExitCode(st: NodeStatus): number {
  if (!st.agent.running) return STATUS_EXIT.notRunning;
  const n = st.agent.nri;
  return n.state === 'synchronized' && n.registeredSince ? STATUS_EXIT.ok : STATUS_EXIT.notRegistered;
}

/** A permission error (the state directory and its files are root's alone, mode 0700/0600). */
function isPermissionError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM' || /\b(EACCES|EPERM)\b/.test(messageOf(err));
}

/** The path status may not read, if any: stateDir (0700) and the agent's state file (0600) in it. */
function unreadable(config: Config): string | undefined {
  for (const [path, mode] of [[config.stateDir, fsConstants.R_OK | fsConstants.X_OK], [join(config.stateDir, 'agent-state.json'), fsConstants.R_OK]] as const) {
    try {
      accessSync(path, mode);
    } catch (err) {
      if (isPermissionError(err)) return path;
    }
  }
  return undefined;
}

export async function showStatus(config: Config, json: boolean, out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const needsRoot = (detail: string) => {
    err.write(`nri-memshare status: needs root: ${detail} (run it as root, e.g. with sudo)\n`);
    return STATUS_EXIT.unknown;
  };
  const denied = unreadable(config);
  if (denied) return needsRoot(`${denied} is readable by root only`);
  let st: NodeStatus;
  try {
    st = await collectStatus(config);
  } catch (e) {
    if (isPermissionError(e)) return needsRoot(messageOf(e));
    throw e;
  }
  out.write(json ? `${printableJson(JSON.stringify(st, null, 2))}\n` : renderStatus(st));
  return statusExitCode(st);
}
