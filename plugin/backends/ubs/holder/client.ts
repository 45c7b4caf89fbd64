// The agent's side of the UB holder (./ubs-holder.ts): finds the holder on its socket, or starts
// one detached from the agent (its own session, outside the agent's process group; the unit's
// KillMode=process leaves it running when systemd stops or restarts the agent), and speaks the
// protocol (./protocol.ts). A holder that goes away is noticed at once (the socket closes): the
// next call starts a new one, and onInstanceChange tells the backend that every mapping of the
// old one is gone.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ShmemInfo } from '../../../../native/ubs-sdk';
import type { UbsPool } from './pool';
import { HOLDER_PROTOCOLS, LineReader, type HolderHello } from './protocol';
import { messageOf } from '../../../model/errors';

export interface RemotePoolOptions {
  socketPath: string;
  sdkLibrary: string;
  /** where a started holder's output goes when the agent is not under journald */
  logFile: string;
  /** how the holder is started: [executable, ...args]; default this node with ./ubs-holder.js */
  command?: string[];
  /** a holder process other than the last one answered: the old one's mappings are gone */
  onInstanceChange?(previous: HolderHello | undefined, current: HolderHello): void;
  info?(msg: string, detail?: object): void;
  warn?(msg: string, detail?: object): void;
}

type Reply = { code?: number; info?: ShmemInfo; shares?: Array<{ name: string; sizeBytes: number }>; hello?: HolderHello; error?: string };

/** How long a started holder may take to answer on its socket. */
const START_TIMEOUT_MS = 15_000;

export class RemotePool implements UbsPool {
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();
  private last: HolderHello | undefined;
  private closed = false;
  private readyWaiters: Array<() => void> = [];
  private poll: NodeJS.Timeout | undefined;

  constructor(private readonly o: RemotePoolOptions) {}

  /** Starts connecting (starting the holder if needed) and watching its SDK link. */
  start(): void {
    void this.hello().catch((err: Error) => this.o.warn?.('ubs: the holder is not reachable yet; retrying', { err: err.message }));
    this.poll = setInterval(() => {
      if (this.last?.sdk.ready && this.sock) return;
      void this.hello().catch(() => undefined);
    }, 1000);
    this.poll.unref();
  }

  /** What the holder said last (for status), or undefined before it answered. */
  holder(): HolderHello | undefined {
    return this.last;
  }

  unavailable(): string | undefined {
    if (!this.last) return 'the UB holder process has not answered yet';
    if (!this.last.sdk.ready) return `the UB memory SDK is not connected to its daemon (${this.last.sdk.reason})`;
    return undefined;
  }

  whenReady(): Promise<void> {
    if (!this.unavailable()) return Promise.resolve();
    return new Promise((r) => this.readyWaiters.push(r));
  }

  async hello(): Promise<HolderHello> {
    const r = await this.call({ op: 'hello', protocols: HOLDER_PROTOCOLS });
    if (!r.hello) throw new Error(`the UB holder answered hello without itself: ${JSON.stringify(r)}`);
    const prev = this.last;
    this.last = r.hello;
    if (prev && prev.instance !== r.hello.instance) this.o.onInstanceChange?.(prev, r.hello);
    if (!prev) this.o.onInstanceChange?.(undefined, r.hello);
    if (r.hello.sdk.ready && !(prev?.sdk.ready && prev.instance === r.hello.instance)) {
      this.o.info?.('ubs: connected to the UB memory daemon (through the holder)', { holderPid: r.hello.pid, holds: r.hello.held.length });
    }
    if (r.hello.sdk.ready) for (const w of this.readyWaiters.splice(0)) w();
    return r.hello;
  }

  async allocate(region: string, name: string, sizeBytes: number, mode: number, flags: number): Promise<number> {
    return this.code(await this.call({ op: 'allocate', region, name, sizeBytes, mode, flags }));
  }

  async deallocate(name: string): Promise<number> {
    return this.code(await this.call({ op: 'deallocate', name }));
  }

  async map(name: string, lengthBytes: number, prot: number): Promise<number> {
    return this.code(await this.call({ op: 'map', name, lengthBytes, prot }));
  }

  async unmap(name: string): Promise<number> {
    return this.code(await this.call({ op: 'unmap', name }));
  }

  async lookup(name: string): Promise<{ code: number; info?: ShmemInfo }> {
    const r = await this.call({ op: 'lookup', name });
    return { code: this.code(r), info: r.info };
  }

  async listLookup(prefix: string): Promise<{ code: number; shares: Array<{ name: string; sizeBytes: number }> }> {
    const r = await this.call({ op: 'listLookup', prefix });
    return { code: this.code(r), shares: r.shares ?? [] };
  }

  async held(): Promise<string[]> {
    return (await this.hello()).held.map((h) => h.name);
  }

  /** Asks the holder to end its mappings and exit (uninstall, tests); the shares' records stay. */
  async shutdown(): Promise<void> {
    await this.call({ op: 'shutdown' }).catch(() => undefined);
  }

  /** Closes the agent's connection; the holder and its mappings stay. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    this.sock?.destroy();
  }

  private code(r: Reply): number {
    if (typeof r.code !== 'number') throw new Error(`the UB holder gave no code: ${JSON.stringify(r)}`);
    return r.code;
  }

  private async call(req: object): Promise<Reply> {
    if (this.closed) throw new Error('the agent is stopping');
    const sock = await this.connect();
    const id = this.nextId++;
    const reply = new Promise<Reply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    sock.write(`${JSON.stringify({ id, ...req })}\n`);
    const r = await reply;
    if (r.error !== undefined) throw new Error(`UB holder: ${r.error}`);
    return r;
  }

  private connect(): Promise<Socket> {
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Socket> {
    let sock = await dial(this.o.socketPath).catch(() => undefined);
    if (!sock) {
      this.startHolder();
      const until = Date.now() + START_TIMEOUT_MS;
      while (!sock && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        sock = await dial(this.o.socketPath).catch(() => undefined);
      }
      if (!sock) throw new Error(`the UB holder did not answer on ${this.o.socketPath} within ${START_TIMEOUT_MS / 1000} s (its output: ${this.o.logFile} or the journal)`);
    }
    const s = sock;
    s.setEncoding('utf8');
    const reader = new LineReader(
      (line) => {
        let msg: Reply & { id?: number };
        try {
          msg = JSON.parse(line) as Reply & { id?: number };
        } catch {
          return;
        }
        const w = msg.id === undefined ? undefined : this.waiting.get(msg.id);
        if (!w) return;
        this.waiting.delete(msg.id!);
        w.resolve(msg);
      },
      () => s.destroy(new Error('the UB holder sent a line that is too long')),
    );
    s.on('data', (d: string) => reader.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.sock === s) this.sock = undefined;
      const err = new Error('the connection to the UB holder closed (the holder exited?)');
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
      if (!this.closed) {
        this.o.warn?.('ubs: the connection to the UB holder closed; reconnecting', { socket: this.o.socketPath });
        void this.hello().catch(() => undefined);
      }
    });
    this.sock = s;
    return s;
  }

  private startHolder(): void {
    const [exe, ...args] = this.o.command ?? [process.execPath, '--max-semi-space-size=1', '--max-old-space-size=64', join(__dirname, 'ubs-holder.js')];
    // under journald the holder writes to the agent's journal stream; otherwise to a file
    const journal = !!process.env.JOURNAL_STREAM;
    const fd = journal ? undefined : openSync(this.o.logFile, 'a', 0o600);
    try {
      const child = spawn(exe, [...args, '--socket', this.o.socketPath, '--sdk', this.o.sdkLibrary], {
        detached: true,
        stdio: ['ignore', fd ?? 'inherit', fd ?? 'inherit'],
        env: holderEnv(),
      });
      child.on('error', (err) => this.o.warn?.('ubs: cannot start the UB holder', { err: err.message, command: exe }));
      child.unref();
      this.o.info?.('ubs: started the UB holder', { pid: child.pid, socket: this.o.socketPath });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** The agent's environment minus systemd's notify and watchdog (they are the agent's, not the holder's). */
function holderEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID']) delete env[k];
  return env;
}

/**
 * What the holder on `socketPath` says of itself, without starting one (for `status`): its hello,
 * or why there is none.
 */
export async function probeHolder(socketPath: string, timeoutMs = 2000): Promise<HolderHello | string> {
  let sock: Socket;
  try {
    sock = await dial(socketPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ECONNREFUSED' ? `no holder answers on ${socketPath}` : `cannot reach ${socketPath}: ${messageOf(err)}`;
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(`the holder on ${socketPath} did not answer within ${timeoutMs} ms`);
    }, timeoutMs);
    sock.setEncoding('utf8');
    const reader = new LineReader(
      (line) => {
        clearTimeout(timer);
        sock.destroy();
        try {
          const r = JSON.parse(line) as { hello?: HolderHello; error?: string };
          resolve(r.hello ?? `the holder refused: ${r.error ?? line}`);
        } catch {
          resolve(`the holder answered something else: ${line.slice(0, 200)}`);
        }
      },
      () => resolve('the holder sent a line that is too long'),
    );
    sock.on('data', (d: string) => reader.push(d));
    sock.on('error', () => undefined);
    sock.write(`${JSON.stringify({ id: 1, op: 'hello', protocols: HOLDER_PROTOCOLS })}\n`);
  });
}
