// The real agent (dist/agent/nri-memshare.js run) beside a test containerd, with a private config,
// declarations directory, state and shares directory; helpers to declare shares, look at the
// host's mounts and the agent's status, and to clean up. The agent leaves shares mounted when it
// stops (running containers still use them), so cleanup() unmounts whatever is left under its
// sharesDir; a process exit hook does the same for a test file that dies.
import type { NodeStatus, ShareStatus } from '../../plugin/agent/status';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startPlugin, type PluginProcess } from './plugin-process';
import { AGENT_CLI } from '../support/agent-cli';

export const CLI = AGENT_CLI;
// e2e tests take it from here with the rest of the agent's helpers
export { rejection } from '../support/util';
export const SYNCED = /"msg":"nri: synchronized"/;
export const RECONCILED = /"msg":"reconciled with the runtime"/;
export const MiB = 1024 * 1024;

export interface AgentOptions {
  nriSocket: string;
  /** config `limits` (byte counts or quantities such as "512Mi") */
  limits?: Record<string, string | number>;
  /** log level (default info) */
  logLevel?: string;
  /** config metrics.address (default "": no metrics server) */
  metricsAddress?: string;
  /** a command that execs the agent (its arguments), e.g. setpriv with a capability set */
  launcher?: readonly string[];
}

const live = new Set<Agent>();
let hookInstalled = false;

export class Agent {
  readonly dir: string;
  readonly configPath: string;
  readonly stateDir: string;
  readonly sharesDir: string;
  readonly declarationsDir: string;
  /** the running agent process, if any */
  proc: PluginProcess | undefined;
  /** output of earlier runs of this agent (before restarts) */
  private earlier = '';

  constructor(private readonly opts: AgentOptions) {
    this.dir = realpathSync(mkdtempSync('/tmp/nrims-agent-'));
    this.stateDir = join(this.dir, 'state');
    this.sharesDir = join(this.dir, 'shares');
    this.declarationsDir = join(this.dir, 'shares.d');
    mkdirSync(this.declarationsDir, { recursive: true });
    mkdirSync(this.sharesDir, { recursive: true });
    this.configPath = join(this.dir, 'config.json');
    const config: Record<string, unknown> = {
      nri: { socket: opts.nriSocket, name: 'memshare', index: '50' },
      stateDir: this.stateDir,
      sharesDir: this.sharesDir,
      declarationsDir: this.declarationsDir,
      metrics: { address: opts.metricsAddress ?? '' },
      log: { level: opts.logLevel ?? 'info' },
    };
    if (opts.limits) config.limits = opts.limits;
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
    live.add(this);
    installExitHook();
  }

  /** Starts the agent and waits until it is registered and synchronized with the runtime. */
  async start(timeoutMs = 30000): Promise<void> {
    if (this.proc && this.proc.child.exitCode === null && this.proc.child.signalCode === null) {
      throw new Error('agent already running');
    }
    if (this.proc) this.earlier += this.proc.output();
    const rt = agentRuntime();
    if (rt) {
      this.proc = startPlugin([rt.cli, 'run', '--config', this.configPath], rt.env, this.opts.launcher, rt.node);
      // the emulated agent starts slower (qemu translates V8 and its JIT code): a longer wait
      await this.proc.waitFor(SYNCED, 1, timeoutMs * 4);
    } else {
      this.proc = startPlugin([CLI, 'run', '--config', this.configPath], {}, this.opts.launcher);
      await this.proc.waitFor(SYNCED, 1, timeoutMs);
    }
  }

  /** Stops the agent (SIGTERM: orderly; SIGKILL: as a crash). Shares stay mounted. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    agentRuntime()?.recordProof();
    await this.proc?.kill(signal);
  }

  /** Everything every run of this agent printed. */
  output(): string {
    return this.earlier + (this.proc?.output() ?? '');
  }

  /** Log lines (all runs) at level error or fatal. */
  errorLines(): string[] {
    return this.output()
      .split('\n')
      .filter((l) => /"level":"(error|fatal)"/.test(l));
  }

  /** Log lines (all runs) that parse as JSON, as objects. */
  logRecords(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of this.output().split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a partial line
      }
    }
    return out;
  }

  private running(): PluginProcess {
    if (!this.proc) throw new Error('agent not started');
    return this.proc;
  }

  declarationPath(ns: string, name: string): string {
    return join(this.declarationsDir, `${ns}-${name}.json`);
  }

  /** Writes a ShareMemory file (atomically: the agent skips dot files, so write one and rename). */
  writeDeclaration(ns: string, name: string, storage: string, allowedNamespaces?: string[]): string {
    const spec: Record<string, unknown> = { storage };
    if (allowedNamespaces) spec.allowedNamespaces = allowedNamespaces;
    const obj = { apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name, namespace: ns }, spec };
    const path = this.declarationPath(ns, name);
    const tmp = join(this.declarationsDir, `.${ns}-${name}.json.tmp`);
    writeFileSync(tmp, JSON.stringify(obj, null, 2));
    renameSync(tmp, path);
    return path;
  }

  /**
   * Declares a share and waits until the running agent has it (its "declarations: changed" log
   * line: added, or changed when the file existed).
   */
  async declare(ns: string, name: string, storage: string, allowedNamespaces?: string[], timeoutMs = 15000): Promise<void> {
    const p = this.running();
    const re = new RegExp(`"change":"(added|changed)","share":"${esc(ns)}/${esc(name)}"`);
    const before = p.count(re);
    this.writeDeclaration(ns, name, storage, allowedNamespaces);
    await p.waitFor(re, before + 1, timeoutMs);
  }

  /** Removes a share's file and waits until the running agent has dropped the declaration. */
  async undeclare(ns: string, name: string, timeoutMs = 15000): Promise<void> {
    const p = this.running();
    const re = new RegExp(`"change":"removed","share":"${esc(ns)}/${esc(name)}"`);
    const before = p.count(re);
    rmSync(this.declarationPath(ns, name));
    await p.waitFor(re, before + 1, timeoutMs);
  }

  hostPath(ns: string, name: string): string {
    return join(this.sharesDir, ns, name);
  }

  /** Whether <sharesDir>/<ns>/<name> is a mount point in the host's /proc/self/mountinfo. */
  isMounted(ns: string, name: string): boolean {
    return hostMountPoints().includes(this.hostPath(ns, name));
  }

  /** Waits (bounded) until the share's mount state is `mounted`; throws with context otherwise. */
  async waitMounted(ns: string, name: string, mounted: boolean, timeoutMs = 15000): Promise<void> {
    await waitUntil(() => this.isMounted(ns, name) === mounted, timeoutMs, () =>
      `share ${ns}/${name} still ${mounted ? 'not mounted' : 'mounted'} at ${this.hostPath(ns, name)} after ${timeoutMs} ms; agent log tail:\n${this.output().slice(-3000)}`);
  }

  /** `nri-memshare status --json --config <cfg>`, parsed. */
  status(): NodeStatus {
    const r = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', this.configPath], { encoding: 'utf8' });
    // 0 registered, 1 running but not registered, 3 not running (the agent may be stopped on purpose)
    if (r.status !== 0 && r.status !== 1 && r.status !== 3) throw new Error(`status --json exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout) as NodeStatus;
  }

  /** `nri-memshare status --config <cfg>` (the table). */
  statusTable(): string {
    const r = spawnSync(process.execPath, [CLI, 'status', '--config', this.configPath], { encoding: 'utf8' });
    if (r.status !== 0 && r.status !== 1 && r.status !== 3) throw new Error(`status exited ${r.status}: ${r.stderr}`);
    return r.stdout;
  }

  shareStatus(ns: string, name: string): ShareStatus | undefined {
    return this.status().shares.find((s) => s.namespace === ns && s.name === name);
  }

  /** Stops the agent if running, unmounts everything left under sharesDir, deletes the dir. */
  async cleanup(): Promise<void> {
    await this.stop('SIGTERM').catch(() => undefined);
    this.cleanupSync();
  }

  cleanupSync(): void {
    if (this.proc && this.proc.child.exitCode === null && this.proc.child.signalCode === null) this.proc.child.kill('SIGKILL');
    unmountUnder(this.sharesDir);
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Mount points of the host (this process's mount namespace), unescaped. */
export function hostMountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Lazily unmounts every mount under dir, deepest first. */
export function unmountUnder(dir: string): void {
  const mps = hostMountPoints()
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mps) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // already gone (a stacked mount went with its parent)
    }
  }
}

/** Polls `cond` every 100 ms until true; throws `why()` after timeoutMs. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Calls fn until it resolves (every 250 ms), for at most timeoutMs; then rethrows its last error. */
export async function retry<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * How the tests run the agent on another architecture (test/arch64.sh sets these; unset: the agent
 * runs as `process.execPath dist/agent/nri-memshare.js`, on this host's architecture):
 * - NRI_MEMSHARE_AGENT_ARCH=aarch64: the agent is an aarch64 process, the arm64 node under
 *   qemu-aarch64-static -L <prefix> (test/harness/fetch-arm64.sh's sysroot), talking to the real (x86)
 *   containerd over its NRI socket. Its UB holder is started by the agent with process.execPath,
 *   i.e. the arm64 node again, through binfmt_misc (fetch-arm64.sh registers it).
 * - NRI_MEMSHARE_AGENT_PAYLOAD (required): the unpacked payload of the aarch64 RPM (rpm2cpio);
 *   the agent is its usr/lib/nri-memshare/dist/agent/nri-memshare.js, with the RPM's
 *   node_modules (koffi's linux_arm64 binary only).
 * - NRI_MEMSHARE_ARM64_ROOT: the sysroot (default $NRI_MEMSHARE_CACHE/arm64/root).
 * - NRI_MEMSHARE_AGENT_NATIVE: the aarch64 build of native/ubs (default dist/native/ubs-aarch64).
 *   The emulated processes see it AT dist/native/ubs: qemu's -L prefix is a directory of this
 *   process's own (links to the sysroot's usr, lib, bin, sbin, and <repo>/dist/native/ubs -> the
 *   aarch64 build), and qemu-user opens an absolute path under the prefix first when it exists
 *   there. So the configs the tests write stay as they are: backend.sdkLibrary and
 *   UBSM_DOUBLE_OBMM name dist/native/ubs/lib/..., the aarch64 agent and holder load the arm64
 *   double from that path, and the x86 processes (check-config and status run by the tests,
 *   containers, their consumer) load the x86 one, as on two nodes of two architectures.
 * - NRI_MEMSHARE_QEMU_PAGESIZE: qemu's -p (the page size the guest sees).
 * - NRI_MEMSHARE_ARCH_PROOF=FILE: before each stop, one line per emulated process of the run
 *   (agent and holder): its pid, its command line and the ELF objects it has mapped from the
 *   payload, the sysroot and the native dir. test/arch64.sh checks that the arm64 koffi and the
 *   arm64 double were loaded.
 */
export interface AgentRuntime {
  node: string[];
  cli: string;
  env: Record<string, string>;
  recordProof(): void;
}

const REPO = join(__dirname, '..', '..', '..');
const HOST_NATIVE = join(REPO, 'dist', 'native', 'ubs');
let runtime: AgentRuntime | null | undefined;

export function agentRuntime(): AgentRuntime | null {
  if (runtime !== undefined) return runtime;
  const arch = process.env.NRI_MEMSHARE_AGENT_ARCH ?? '';
  if (arch === '' || arch === process.arch || (arch === 'x86_64' && process.arch === 'x64')) return (runtime = null);
  if (arch !== 'aarch64' && arch !== 'arm64') throw new Error(`NRI_MEMSHARE_AGENT_ARCH=${arch}: only aarch64 is supported`);
  const cache = process.env.NRI_MEMSHARE_CACHE ?? '/var/tmp/nri-memshare-cache';
  const root = process.env.NRI_MEMSHARE_ARM64_ROOT ?? join(cache, 'arm64', 'root');
  const payload = process.env.NRI_MEMSHARE_AGENT_PAYLOAD;
  if (!payload) throw new Error('NRI_MEMSHARE_AGENT_ARCH=aarch64 needs NRI_MEMSHARE_AGENT_PAYLOAD (the unpacked aarch64 RPM; test/arch64.sh)');
  const native = process.env.NRI_MEMSHARE_AGENT_NATIVE ?? join(REPO, 'dist', 'native', 'ubs-aarch64');
  const cli = join(payload, 'usr', 'lib', 'nri-memshare', 'dist', 'agent', 'nri-memshare.js');
  const qemu = '/usr/bin/qemu-aarch64-static';
  for (const f of [qemu, join(root, 'usr', 'bin', 'node'), cli, join(native, 'lib', 'libubsm_sdk.so')]) {
    if (!existsSync(f)) throw new Error(`NRI_MEMSHARE_AGENT_ARCH=aarch64: ${f} is missing (run test/arch64.sh)`);
  }
  // the prefix: the sysroot plus dist/native/ubs -> the aarch64 build (see above)
  const prefix = realpathSync(mkdtempSync('/tmp/nrims-a64-'));
  process.on('exit', () => rmSync(prefix, { recursive: true, force: true }));
  for (const e of readdirSync(root)) symlinkSync(join(root, e), join(prefix, e));
  mkdirSync(join(prefix, dirname(HOST_NATIVE)), { recursive: true });
  symlinkSync(native, join(prefix, HOST_NATIVE));
  const page = process.env.NRI_MEMSHARE_QEMU_PAGESIZE;
  const node = [qemu, '-L', prefix, ...(page ? ['-p', page] : []), join(root, 'usr', 'bin', 'node')];
  // QEMU_LD_PREFIX (and QEMU_PAGESIZE) reach what the agent starts through binfmt: its holder
  const env: Record<string, string> = { QEMU_LD_PREFIX: prefix, ...(page ? { QEMU_PAGESIZE: page } : {}) };
  const proofFile = process.env.NRI_MEMSHARE_ARCH_PROOF;
  const recordProof = (): void => {
    if (!proofFile) return;
    const nodeBin = realpathSync(join(root, 'usr', 'bin', 'node'));
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let maps: string;
      let cmd: string;
      try {
        maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      } catch {
        continue; // gone, or not ours to read
      }
      if (!maps.includes(nodeBin) || !cmd.includes(payload)) continue; // not an emulated node of this payload (agent, holder)
      const objs = new Set<string>();
      for (const l of maps.split('\n')) {
        const f = l.split(/\s+/).slice(5).join(' ');
        if (/\.(node|so)(\.\d+)*$/.test(f) && (f.startsWith(payload) || f.startsWith(native) || f.startsWith(root) || f.startsWith(`${HOST_NATIVE}/`) || f.includes('/koffi/'))) objs.add(f);
      }
      appendFileSync(proofFile, `${JSON.stringify({ pid: Number(pid), cmd, objects: [...objs].sort() })}\n`);
    }
  };
  runtime = { node, cli, env, recordProof };
  return runtime;
}

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const a of [...live]) {
      try {
        a.cleanupSync();
      } catch {
        // best effort at exit
      }
    }
  });
}
