// The chaos test's own handle on the real agent (dist/agent/nri-memshare.js run): restarted many times
// over one config, its JSON log kept across runs in one file, and what the driver needs to know
// from it: which run we are in (epoch), whether that run is synchronized, and what each
// reconcile evicted.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { AGENT_CLI } from '../support/agent-cli';
import type { NodeStatus } from '../../plugin/agent/status';

export const CLI = AGENT_CLI;

export interface Share {
  ns: string;
  name: string;
  size: string;
}

/** Writes the agent's config and declarations under dir; returns the config path and dirs. */
export function writeAgentConfig(dir: string, nriSocket: string, shares: Share[], backend?: Record<string, unknown>): { config: string; sharesDir: string; stateDir: string } {
  const decl = join(dir, 'shares.d');
  const sharesDir = join(dir, 'shares');
  const stateDir = join(dir, 'state');
  mkdirSync(decl, { recursive: true });
  mkdirSync(sharesDir, { recursive: true });
  for (const s of shares) {
    writeFileSync(
      join(decl, `${s.ns}-${s.name}.json`),
      JSON.stringify({
        apiVersion: 'resource.ubsvirt.huawei.com/v1',
        kind: 'ShareMemory',
        metadata: { name: s.name, namespace: s.ns },
        spec: { storage: s.size },
      }),
    );
  }
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      nri: { socket: nriSocket, name: 'memshare', index: '50' },
      stateDir,
      sharesDir,
      declarationsDir: decl,
      metrics: { address: '' },
      log: { level: 'info' },
      ...(backend ? { backend } : {}),
    }),
  );
  return { config, sharesDir, stateDir };
}

export interface AgentSlotOptions {
  /** added to the agent's environment (the UB SDK double's variables) */
  env?: Record<string, string>;
  /**
   * a run counts as synchronized only once it has also logged a line matching this (the ubs
   * backend connects to its daemon in the background: until then it refuses UB bindings)
   */
  readyLog?: RegExp;
}

export interface ReconcileSeen {
  epoch: number;
  at: number;
  evicted: string[];
  ended: number;
  orphansReleased: string[];
}

/** One agent "slot": at most one process at a time, restarted by the driver. */
export class AgentSlot {
  /** incremented each time a process is started (the run number) */
  epoch = 0;
  /** the current run has logged "nri: synchronized" since (re)connecting */
  synced = false;
  /** synchronizations seen in all runs */
  syncCount = 0;
  readonly reconciles: ReconcileSeen[] = [];
  readonly errors: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: WriteStream;
  private waiters = new Set<() => void>();
  private nriSynced = false;
  private readySeen = true;

  constructor(
    private readonly configPath: string,
    readonly logPath: string,
    private readonly opts: AgentSlotOptions = {},
  ) {
    this.log = createWriteStream(logPath, { flags: 'a' });
  }

  /** the current process's pid (undefined when none runs) */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error('agent already running');
    const epoch = ++this.epoch;
    this.synced = false;
    this.nriSynced = false;
    this.readySeen = !this.opts.readyLog;
    this.log.write(`---- chaos: agent run ${epoch} ----\n`);
    const child = spawn(process.execPath, [CLI, 'run', '--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.opts.env, MALLOC_ARENA_MAX: '2' },
    });
    this.child = child;
    let partial = '';
    const feed = (b: Buffer): void => {
      this.log.write(b);
      partial += b.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) this.line(l, epoch);
    };
    child.stdout!.on('data', feed);
    child.stderr!.on('data', feed);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.synced = false;
        resolve();
        this.wake();
      }),
    );
  }

  private line(l: string, epoch: number): void {
    if (!l.startsWith('{')) return;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return;
    }
    const msg = String(j.msg ?? '');
    if (msg === 'nri: synchronized' && epoch === this.epoch) {
      this.nriSynced = true;
      this.synced = this.readySeen;
      this.syncCount++;
    } else if (this.opts.readyLog && this.opts.readyLog.test(msg) && epoch === this.epoch) {
      this.readySeen = true;
      this.synced = this.nriSynced;
    } else if (msg === 'reconciled with the runtime') {
      this.reconciles.push({
        epoch,
        at: Date.now(),
        evicted: (j.evicted as string[]) ?? [],
        ended: Number(j.ended ?? 0),
        orphansReleased: (j.orphansReleased as string[]) ?? [],
      });
    } else if (/disconnect|closed|lost/i.test(msg) && epoch === this.epoch) {
      // the connection to containerd went (e.g. containerd restarts): not synchronized until it says so again
      this.synced = false;
      this.nriSynced = false;
    }
    if (j.level === 'error' || j.level === 'fatal' || (typeof j.level === 'number' && j.level >= 50)) this.errors.push(`run ${epoch}: ${l.slice(0, 400)}`);
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Marks the current run as not synchronized (e.g. containerd goes away) until it logs it again. */
  unsync(): void {
    this.synced = false;
    this.nriSynced = false;
  }

  /** Resolves once the current run is synchronized; rejects if it exits first or after timeoutMs. */
  waitSynced(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.synced) done(undefined);
        else if (!this.running) done(new Error(`agent run ${this.epoch} exited before it synchronized (log: ${this.logPath})`));
      };
      const done = (err: Error | undefined): void => {
        this.waiters.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(new Error(`agent run ${this.epoch} not synchronized within ${timeoutMs} ms (log: ${this.logPath})`)), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the next synchronization (any run) after this call, bounded. */
  waitNextSync(timeoutMs: number): Promise<boolean> {
    const start = this.syncCount;
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.syncCount > start) finish(true);
      };
      const finish = (v: boolean): void => {
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(check);
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.synced = false;
    child.kill(signal);
    await this.exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  killSync(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  close(): void {
    this.log.end();
  }
}

/** `nri-memshare status --json --config FILE`, parsed. */
export function agentStatus(configPath: string): NodeStatus {
  const r = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', configPath], { encoding: 'utf8', timeout: 60_000 });
  // 0 registered, 1 running but not registered, 3 not running: each prints the status
  if (r.status !== 0 && r.status !== 1 && r.status !== 3) throw new Error(`status --json exited ${r.status ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout) as NodeStatus;
}
