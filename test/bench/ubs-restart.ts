// Agent restart with the UB holder alive: the real agent (bundled, the launcher's node flags) on the
// ubs backend over the SDK test double (native/ubs/double; ubsmd-standin stands in for the UB
// memory daemon), N shares bound, then RESTARTS times: the agent killed (SIGKILL, then SIGTERM), a
// new one started, timed from the kill to
//   - "reconciled": the new agent's "reconciled with the runtime" log line after the runtime's
//     Synchronize (the test suite's fake NRI runtime, which lists the N containers as running),
//     with nothing ended and nobody evicted, and
//   - "serving": one later binding of each of the N shares answered (CreateContainer through NRI)
//     with the same memids (device minors) as before the kill, which a binding of a share not yet
//     restored from the holder waits for (one refused while the agent is not yet connected to the
//     holder is asked again after 5 ms, as the kubelet would, and counted); the double's attach record must also name the same
//     memids and the holder's pid, and the holder must be the same process.
// Also the holder's RSS (/proc/<pid>/status VmRSS) idle (connected, nothing mapped) and with the
// N shares mapped, beside the agent's. Writes results.ubsRestart of test/bench/results/bench.json.
//   node dist/test/bench/bench.js --only ubs-restart,nribench-ubs   (this and the NRI round trip)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Event } from '../../plugin/nri/api';
import { FakeRuntime, container, pod, type RuntimeConn } from '../support/fake-runtime';
import { UbsNode, sdkNameOf } from '../e2e/ubs-env';
import { percentiles, round } from './stats';

type Cmd = (cfg: string) => string[];
type Cfg = (dir: string, nriSocket: string, shares: Array<{ ns: string; name: string; size: string }>) => string;

interface Log {
  msg?: string;
  pid?: number;
  holderPid?: number;
  ended?: number;
  evicted?: string[];
}

/** One agent process and its JSON log lines. */
class AgentProc {
  readonly lines: Log[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<void>;
  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as Log);
        } catch {
          continue;
        }
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    });
    child.stderr!.on('data', () => undefined);
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }
  /** The first log line (from index `from`) whose msg matches; rejects after timeoutMs. */
  waitFor(re: RegExp, timeoutMs = 20000, from = 0): Promise<Log> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent log: no ${re} within ${timeoutMs} ms; last lines: ${JSON.stringify(this.lines.slice(-5))}`)), timeoutMs);
      const check = (): void => {
        const hit = this.lines.slice(from).find((l) => re.test(l.msg ?? ''));
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        } else this.waiters.push(check);
      };
      check();
    });
  }
}

/** The agent's line naming the holder it talks to (pid or holderPid). */
const HOLDER_LINE = /^ubs: (holder found|connected to the UB memory daemon)/;

/**
 * CreateContainer, asked again while the agent refuses it because its backend is not connected
 * yet (a restarted agent's first seconds): what the kubelet would see as a retry.
 */
let refusedWhileConnecting = 0;
async function createRetrying(conn: RuntimeConn, p: ReturnType<typeof pod>, c: ReturnType<typeof container>): Promise<unknown> {
  const until = performance.now() + 15000;
  for (;;) {
    try {
      return await conn.createContainer(p, c);
    } catch (err) {
      if (performance.now() > until || !/not connected|unavailable|not reachable|holder|daemon/i.test(String(err))) throw err;
      refusedWhileConnecting++;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

export function rssKB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

const minors = (res: unknown): number[] =>
  (((res as { adjust?: { linux?: { devices?: Array<{ minor?: number | bigint }> } } }).adjust?.linux?.devices) ?? []).map((d) => Number(d.minor)).sort((a, b) => a - b);

export async function benchUbsRestart(agentConfig: Cfg, agentCmd: Cmd, shares = 8, restarts = 10): Promise<Record<string, unknown>> {
  const node = new UbsNode();
  const dir = mkdtempSync('/var/tmp/ubs-restart-'); // the ledger on a real disk (fdatasync)
  const rt = await FakeRuntime.start({ path: join(dir, 'nri.sock') });
  let agent: AgentProc | undefined;
  let holderPid: number | undefined;
  try {
    await node.start();
    node.control('');
    const names = Array.from({ length: shares }, (_, i) => `s${i}`);
    const cfg = agentConfig(dir, rt.path, names.map((name) => ({ ns: 'default', name, size: '128Mi' })));
    const c = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    c.backend = node.backendConfig();
    writeFileSync(cfg, JSON.stringify(c, null, 2));
    const [exe, ...args] = agentCmd(cfg);
    let connNo = 0;
    const pods = names.map((n) => pod(`pod-${n}`, { 'memshare.nri.io/pod': n }));
    const ctrs = names.map((n, i) => ({ ...container(`ctr-${n}`, pods[i].id, 'app'), state: 2 /* RUNNING */ }));
    /** Starts an agent and runs the runtime's side up to Synchronize (with the N containers once bound). */
    const startAgent = async (bound: boolean): Promise<{ proc: AgentProc; conn: RuntimeConn }> => {
      const proc = new AgentProc(spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...node.agentEnv() } }));
      const { conn } = await rt.registered(connNo++, 20000);
      await conn.configure({ runtimeName: 'bench', runtimeVersion: '2.1.0' });
      await conn.synchronize(bound ? pods : [], bound ? ctrs : []);
      return { proc, conn };
    };
    let later = 0;
    /** One later binding of each share; returns its memids per share. The containers are removed after. */
    const bindEach = async (conn: RuntimeConn): Promise<number[][]> => {
      const made = names.map((_, i) => ({ ...container(`later-${++later}`, pods[i].id, 'later'), state: 1 }));
      const out = await Promise.all(names.map(async (_, i) => {
        const m = minors(await createRetrying(conn, pods[i], made[i]));
        if (!m.length) throw new Error(`later binding of share ${names[i]}: no device in the answer`);
        return m;
      }));
      for (const [i, c] of made.entries()) await conn.stateChange(Event.REMOVE_CONTAINER, pods[i], c);
      return out;
    };

    // the first agent: holder started, RSS idle, then the N shares bound
    let s = await startAgent(false);
    agent = s.proc;
    const hello = await agent.waitFor(HOLDER_LINE);
    holderPid = hello.holderPid ?? hello.pid;
    if (!holderPid) throw new Error('no holder pid in the agent log');
    await new Promise((r) => setTimeout(r, 1000));
    const idle = { holderKB: rssKB(holderPid), agentKB: rssKB(agent.child.pid!) };
    const memids: number[][] = [];
    for (let i = 0; i < shares; i++) {
      const res = await createRetrying(s.conn, pods[i], ctrs[i]);
      memids.push(minors(res));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const mapped = { holderKB: rssKB(holderPid), agentKB: rssKB(agent.child.pid!) };
    const attach0 = names.map((n) => node.attachment(sdkNameOf('default', n)));
    for (const [i, a] of attach0.entries()) {
      if (!a || !a.pids.includes(holderPid)) throw new Error(`share ${names[i]}: not attached through the holder (pid ${holderPid}): ${JSON.stringify(a)}`);
    }

    const runs: Record<string, { reconciledMs: number[]; servingMs: number[] }> = {};
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      const r = (runs[signal] = { reconciledMs: [] as number[], servingMs: [] as number[] });
      for (let k = 0; k < restarts; k++) {
        const old = agent;
        const t0 = performance.now();
        old.child.kill(signal);
        await old.exited;
        s = await startAgent(true);
        agent = s.proc;
        const rec = await agent.waitFor(/^reconciled with the runtime$/);
        r.reconciledMs.push(performance.now() - t0);
        if (rec.ended || rec.evicted?.length) throw new Error(`${signal} restart ${k + 1}: reconcile ended ${rec.ended} and evicted ${JSON.stringify(rec.evicted)}`);
        const now = await bindEach(s.conn);
        r.servingMs.push(performance.now() - t0);
        for (let i = 0; i < shares; i++) {
          if (JSON.stringify(now[i]) !== JSON.stringify(memids[i])) throw new Error(`${signal} restart ${k + 1}: share ${names[i]} came back with memids ${now[i]}, had ${memids[i]}`);
          const a = node.attachment(sdkNameOf('default', names[i]));
          if (JSON.stringify(a?.memids) !== JSON.stringify(attach0[i]?.memids) || !a?.pids.includes(holderPid)) throw new Error(`${signal} restart ${k + 1}: share ${names[i]}: the double's attachment changed: ${JSON.stringify(a)} (was ${JSON.stringify(attach0[i])})`);
        }
        const hl = await agent.waitFor(HOLDER_LINE);
        const h = hl.holderPid ?? hl.pid;
        if (h !== undefined && h !== holderPid) throw new Error(`${signal} restart ${k + 1}: another holder (pid ${h}, was ${holderPid})`);
        process.kill(holderPid, 0); // still there
      }
    }
    const after = { holderKB: rssKB(holderPid), agentKB: rssKB(agent.child.pid!) };
    const pct = (xs: number[]) => { const p = percentiles(xs); return { n: p.n, p50: round(p.p50, 1), p90: round(p.p90, 1), max: round(Math.max(...xs), 1) }; };
    const mb = (kb: number) => round(kb / 1024, 1);
    const res = {
      note: `real agent (bundle, launcher flags) on the ubs backend; the UB daemon is ubsmd-standin with the SDK test double (zero delay), not ubsmd; the runtime is the test suite's fake NRI runtime (Synchronize lists the ${shares} containers), not containerd; ms from the kill to the new agent's "reconciled with the runtime" log line, and to one later binding of each share answered with the same memids`,
      shares,
      restarts,
      sigkill: { reconciledMs: pct(runs.SIGKILL.reconciledMs), servingMs: pct(runs.SIGKILL.servingMs) },
      sigterm: { reconciledMs: pct(runs.SIGTERM.reconciledMs), servingMs: pct(runs.SIGTERM.servingMs) },
      rssMB: {
        holderIdle: mb(idle.holderKB), holderMapped: mb(mapped.holderKB), holderAfterRestarts: mb(after.holderKB),
        agentIdle: mb(idle.agentKB), agentBound: mb(mapped.agentKB), agentAfterRestart: mb(after.agentKB),
      },
      sameMemidsAndHolder: true,
      /** CreateContainers refused (backend not connected yet) and asked again, over all restarts */
      refusedWhileConnecting,
    };
    const row = (sig: 'sigkill' | 'sigterm') => `p50 ${res[sig].reconciledMs.p50} ms, p90 ${res[sig].reconciledMs.p90} ms (serving all ${shares}: p50 ${res[sig].servingMs.p50}, p90 ${res[sig].servingMs.p90} ms)`;
    console.log(`UB agent restart to reconciled, ${shares} shares bound, holder alive, ${restarts} restarts each (daemon: ubsmd-standin + SDK double; runtime: fake NRI runtime):`);
    console.log(`  SIGKILL: ${row('sigkill')}`);
    console.log(`  SIGTERM: ${row('sigterm')}`);
    console.log(`  same memids, same holder pid ${holderPid} after every restart: yes; CreateContainers refused while the new agent connected to the holder (asked again after 5 ms): ${refusedWhileConnecting}`);
    console.log(`UB holder RSS: idle ${res.rssMB.holderIdle} MB, ${shares} shares mapped ${res.rssMB.holderMapped} MB (after the restarts ${res.rssMB.holderAfterRestarts} MB); agent RSS: idle ${res.rssMB.agentIdle} MB, ${shares} bound ${res.rssMB.agentBound} MB, a restarted agent ${res.rssMB.agentAfterRestart} MB`);
    return res;
  } finally {
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    if (holderPid) {
      try {
        process.kill(holderPid, 'SIGTERM'); // the holder this benchmark's agent started
      } catch {
        // gone
      }
    }
    await rt.close();
    await node.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
