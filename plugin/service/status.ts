// `nri-memshare status`: what is shared on this node, read from the ownership records and the
// backend (never from the running agent, so it works while the agent is down too).
import { Ledger, type BindingRecord } from '../ledger';
import { shareKey } from '../memshare/names';
import { formatBytes } from '../declarations';
import { createBackend } from './backend';
import type { Config } from './config';

export interface ShareStatus {
  namespace: string;
  name: string;
  /** where the backend has it on the host; '' when records name it but it is not present */
  hostPath: string;
  present: boolean;
  sizeBytes: number | null;
  usedBytes: number | null;
  holders: Array<{
    pod: BindingRecord['pod'];
    container: BindingRecord['container'];
    readOnly: boolean;
    since: string;
  }>;
}

export interface NodeStatus {
  stateDir: string;
  backend: string;
  shares: ShareStatus[];
  warnings: string[];
}

export async function collectStatus(config: Config): Promise<NodeStatus> {
  const backend = createBackend(config);
  const { records, warnings } = Ledger.read(config.stateDir);
  const shares = new Map<string, ShareStatus>();
  const entry = (namespace: string, name: string): ShareStatus => {
    const key = shareKey(namespace, name);
    let s = shares.get(key);
    if (!s) shares.set(key, (s = { namespace, name, hostPath: '', present: false, sizeBytes: null, usedBytes: null, holders: [] }));
    return s;
  };
  for (const p of await backend.present()) {
    const s = entry(p.namespace, p.name);
    s.present = true;
    s.hostPath = p.hostPath;
    const u = await backend.usage(p.namespace, p.name);
    if (u) {
      s.sizeBytes = u.sizeBytes;
      s.usedBytes = u.usedBytes;
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
  for (const s of shares.values()) {
    if (!s.present && s.holders.length) warnings.push(`share ${shareKey(s.namespace, s.name)} has holders on record but is not present on this node`);
    if (s.present && !s.holders.length) warnings.push(`share ${shareKey(s.namespace, s.name)} is present at ${s.hostPath} but no record explains it (the agent releases it at its next reconcile)`);
  }
  return {
    stateDir: config.stateDir,
    backend: backend.kind,
    shares: [...shares.values()].sort((a, b) => shareKey(a.namespace, a.name).localeCompare(shareKey(b.namespace, b.name))),
    warnings,
  };
}

export function renderStatus(st: NodeStatus): string {
  const rows: string[][] = [['SHARE', 'SIZE', 'USED', 'HOLDERS', 'POD', 'CONTAINER', 'MODE']];
  for (const s of st.shares) {
    const size = s.sizeBytes === null ? '-' : formatBytes(s.sizeBytes);
    const used = s.usedBytes === null ? '-' : formatBytes(s.usedBytes);
    const first = [shareKey(s.namespace, s.name), size, used, String(s.holders.length)];
    if (s.holders.length === 0) rows.push([...first, '-', '-', '-']);
    s.holders.forEach((h, i) => {
      const lead = i === 0 ? first : ['', '', '', ''];
      rows.push([...lead, `${h.pod.namespace}/${h.pod.name}`, `${h.container.name} (${h.container.id.slice(0, 12)})`, h.readOnly ? 'ro' : 'rw']);
    });
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) => r.map((x, c) => x.padEnd(widths[c])).join('  ').trimEnd());
  if (st.shares.length === 0) lines.push('(no shares on this node)');
  for (const w of st.warnings) lines.push(`warning: ${w}`);
  return `${lines.join('\n')}\n`;
}

export async function showStatus(config: Config, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const st = await collectStatus(config);
  out.write(json ? `${JSON.stringify(st, null, 2)}\n` : renderStatus(st));
  return 0;
}
