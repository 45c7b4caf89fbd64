// Helpers for the UB memory e2e tests: a "UB node" in a temp dir (ubsmd-standin as the daemon socket,
// the SDK double's shared state, a device dir, a CDI dir, a fake /proc/devices), the real agent with
// backend kind "ubs" and the double's environment, host-side consumers (this node or "another node"),
// the UB test image (busybox + glibc's loader and libc + ubsm-consumer) and the OCI spec containerd wrote.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, importImage, type ContainerdInstance } from '../harness';
import { Agent, CLI } from './agent';

export const REPO = join(__dirname, '..', '..', '..');
export const NATIVE = join(REPO, 'dist', 'native', 'ubs');
export const SDK_LIB = join(NATIVE, 'lib', 'libubsm_sdk.so');
export const CONSUMER = join(NATIVE, 'bin', 'ubsm-consumer');
export const STANDIN = join(NATIVE, 'bin', 'ubsmd-standin');
export const UBS_IMAGE = 'localhost/nri-memshare-ubs:1';
export const STAND_IN_LIBS = ['libobmm.so.1', 'libnuma.so.1', 'libhcom.so.0', 'libboundscheck.so'];
/** the daemon's group (socket root:GID 0660) */
export const DAEMON_GID = 4242;
export const BLOCK = 128 * 1024 * 1024;
/** The SDK name the agent gives the Kubernetes share <ns>/<share> (default prefix "nms"). */
export const sdkNameOf = (ns: string, share: string): string => `nms.${ns}.${share}`;

/** Builds the native parts if missing (npm run build does it too). */
export function ensureNative(): void {
  if (existsSync(SDK_LIB) && existsSync(CONSUMER) && existsSync(STANDIN)) return;
  const r = spawnSync('bash', [join(REPO, 'native', 'ubs', 'build.sh'), NATIVE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native/ubs/build.sh failed: ${r.stderr}`);
}

/** A major that the host's /proc/devices does not use (509 unless taken). */
export function freeMajor(): number {
  const used = new Set(readFileSync('/proc/devices', 'utf8').split('\n').map((l) => /^\s*(\d+)\s/.exec(l)?.[1]).filter(Boolean).map(Number));
  for (let m = 509; m > 400; m--) if (!used.has(m)) return m;
  throw new Error('no free char major between 401 and 509');
}

let imageTar: string | undefined;
/** The UB image, built once per process: /pause, busybox, /lib64/ld-linux-x86-64.so.2, libc.so.6, ubsm-consumer. */
export function ubsImageTar(): string {
  if (imageTar) return imageTar;
  ensureNative();
  const work = mkdtempSync('/tmp/nrims-ubsimg-');
  const pause = join(work, 'pause');
  execFileSync('gcc', ['-static', '-O2', '-s', '-o', pause, join(REPO, 'test', 'harness', 'pause.c')]);
  const loader = realpathSync('/lib64/ld-linux-x86-64.so.2');
  const libc = realpathSync('/lib/x86_64-linux-gnu/libc.so.6');
  const applets = ['sh', 'cat', 'echo', 'ls', 'stat', 'grep', 'id', 'env', 'sleep', 'test', 'head', 'tr', 'wc', 'true', 'false'];
  const tar = join(work, 'ubs-image.tar');
  buildImage(
    {
      name: UBS_IMAGE,
      files: [
        { src: pause, dest: '/pause' },
        { src: '/bin/busybox', dest: '/bin/busybox' },
        { src: loader, dest: '/lib64/ld-linux-x86-64.so.2' },
        { src: libc, dest: '/lib/x86_64-linux-gnu/libc.so.6' },
        { src: libc, dest: '/lib64/libc.so.6' },
        { src: CONSUMER, dest: '/usr/local/bin/ubsm-consumer' },
      ],
      symlinks: Object.fromEntries(applets.map((a) => [`/bin/${a}`, 'busybox'])),
      dirs: ['usr/lib64'],
    },
    tar,
  );
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
  imageTar = tar;
  return tar;
}

export function importUbsImage(containerd: ContainerdInstance): void {
  importImage(containerd, ubsImageTar());
}

/** The OCI runtime spec containerd wrote for a started container. */
export function ociSpec(containerd: ContainerdInstance, id: string): OciSpec {
  const p = join(containerd.dir, 'state', 'io.containerd.runtime.v2.task', 'k8s.io', id, 'config.json');
  return JSON.parse(readFileSync(p, 'utf8')) as OciSpec;
}

export interface OciSpec {
  hooks?: { createRuntime?: Array<{ path: string; args?: string[]; env?: string[]; timeout?: number }> };
  process: { env: string[]; user: { uid: number; gid: number; additionalGids?: number[] } };
  mounts: Array<{ destination: string; source?: string; type?: string; options?: string[] }>;
  linux: {
    devices?: Array<{ path: string; type: string; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }>;
    resources?: { devices?: Array<{ allow: boolean; type?: string; major?: number; minor?: number; access?: string }> };
  };
}

export interface ConsumerResult {
  status: number | null;
  json: Record<string, unknown>;
  out: string;
}

export function parseConsumer(status: number | null, stdout: string, stderr: string): ConsumerResult {
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(stdout.trim().split('\n')[0]) as Record<string, unknown>;
  } catch {
    // left empty; asserts show `out`
  }
  return { status, json, out: `${stdout}${stderr}` };
}

export interface UbsNodeOptions {
  /** config backend.sdkLibrary (default the built double) */
  sdkLibrary?: string;
  /** more backend keys */
  backend?: Record<string, unknown>;
}

/**
 * One UB node in a temp dir. Made before containerd starts (the 2.1 config names its CDI dir);
 * start() runs the daemon stand-in, startAgent() the agent.
 */
/**
 * Not a torn write of the double: it replaces a state file through "<name>.tmp.<pid>.<thread>" and
 * a rename, so a process killed in between (the chaos test kills the agent mid-call) leaves that
 * file behind. The double itself skips such names; so do these listings.
 */
const notTorn = (entry: string): boolean => !entry.includes('.tmp.');

export class UbsNode {
  readonly dir: string;
  readonly socketDir: string;
  readonly stateDir: string;
  readonly devDir: string;
  readonly otherDevDir: string;
  readonly cdiDir: string;
  readonly procDevices: string;
  readonly sdkDir: string;
  readonly major: number;
  /**
   * backend.accessCheck: the agent's CLI for runc to run as the createRuntime hook (on a node the
   * RPM's /usr/bin/nri-memshare; here a launcher of the bundled agent with this Node.js)
   */
  readonly accessCheck: string;
  standin: ChildProcess | undefined;
  agent: Agent | undefined;
  private readonly holders = new Set<ChildProcess>();

  constructor() {
    ensureNative();
    this.dir = realpathSync(mkdtempSync('/tmp/nrims-ub-'));
    chmodSync(this.dir, 0o755);
    this.socketDir = join(this.dir, 'matrix', 'memory');
    this.stateDir = join(this.dir, 'state');
    this.devDir = join(this.dir, 'dev');
    this.otherDevDir = join(this.dir, 'dev-other');
    this.cdiDir = join(this.dir, 'cdi');
    this.procDevices = join(this.dir, 'proc-devices');
    this.sdkDir = join(this.dir, 'ubs_mem');
    this.major = freeMajor();
    for (const d of [this.stateDir, this.devDir, this.otherDevDir, this.cdiDir, join(this.sdkDir, 'lib')]) mkdirSync(d, { recursive: true });
    chmodSync(this.stateDir, 0o777);
    copyFileSync(SDK_LIB, join(this.sdkDir, 'lib', 'libubsm_sdk.so'));
    writeFileSync(this.procDevices, `Character devices:\n  1 mem\n${this.major} OBMM_SHMDEV\n\nBlock devices:\n`);
    this.accessCheck = join(this.dir, 'nri-memshare');
    // runc runs hooks with an empty environment: every path absolute
    writeFileSync(this.accessCheck, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`, { mode: 0o755 });
    process.on('exit', () => this.cleanupSync());
  }

  /** The double's environment on the host, as the agent has it (node "local"). */
  hostEnv(node = 'local'): Record<string, string> {
    return {
      UBSM_DOUBLE_DIR: this.socketDir,
      UBSM_DOUBLE_STATE: this.stateDir,
      UBSM_DOUBLE_DEV_DIR: node === 'local' ? this.devDir : this.otherDevDir,
      UBSM_DOUBLE_OBMM: join(NATIVE, 'lib', 'libobmm.so.1'),
      UBSM_DOUBLE_MAJOR: String(this.major),
      UBSM_DOUBLE_NODE: node,
      HCOM_CONNECTION_RETRY_TIMES: '1',
      HCOM_CONNECTION_RETRY_INTERVAL_SEC: '1',
    };
  }

  backendConfig(opts: UbsNodeOptions = {}): Record<string, unknown> {
    return {
      kind: 'ubs',
      sdkLibrary: opts.sdkLibrary ?? SDK_LIB,
      sdkDir: { host: this.sdkDir, container: '/host/usr/local/ubs_mem' },
      libraries: STAND_IN_LIBS.map((l) => ({ host: join(NATIVE, 'lib', l), container: `/usr/lib64/${l}` })),
      socketDir: this.socketDir,
      groups: [DAEMON_GID],
      cdi: 'auto',
      cdiDir: this.cdiDir,
      procDevices: this.procDevices,
      hostDevDir: this.devDir,
      mounts: [{ source: this.stateDir, destination: '/run/ubsm-double', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev'] }],
      env: { UBSM_DOUBLE_STATE: '/run/ubsm-double', HCOM_CONNECTION_RETRY_TIMES: '1' },
      budgetMs: 1000,
      accessCheck: [this.accessCheck],
      ...opts.backend,
    };
  }

  /** Starts ubsmd-standin on <socketDir>/MxmAgentIpcServer (root:DAEMON_GID 0660). */
  async start(): Promise<void> {
    const sock = join(this.socketDir, 'MxmAgentIpcServer');
    const child = spawn(STANDIN, [sock, String(DAEMON_GID)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.standin = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`ubsmd-standin not ready: ${out}`)), 10000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (c) => {
        clearTimeout(timer);
        reject(new Error(`ubsmd-standin exited ${c}: ${out}`));
      });
    });
  }

  /** The agent's own environment: the double's, without a node name (it is node "local"). */
  agentEnv(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.hostEnv()).filter(([k]) => k !== 'UBSM_DOUBLE_NODE' && k !== 'HCOM_CONNECTION_RETRY_INTERVAL_SEC'));
  }

  /** An Agent (not started) with the ubs backend and the double's environment. */
  makeAgent(nriSocket: string, opts: UbsNodeOptions = {}): Agent {
    const env = Object.entries(this.agentEnv()).map(([k, v]) => `${k}=${v}`);
    const agent = new Agent({ nriSocket, launcher: ['env', ...env] });
    const cfg = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Record<string, unknown>;
    cfg.backend = this.backendConfig(opts);
    writeFileSync(agent.configPath, JSON.stringify(cfg, null, 2));
    return agent;
  }

  /** Starts the agent and waits until its SDK is connected to the stand-in. */
  async startAgent(nriSocket: string): Promise<Agent> {
    const agent = this.makeAgent(nriSocket);
    this.agent = agent;
    await agent.start();
    await agent.proc!.waitFor(/ubs: connected to the UB memory daemon/, 1, 15000);
    return agent;
  }

  /**
   * Restarts the agent with more backend keys (e.g. shareMode: it applies to shares allocated from
   * then on); the holder and its mappings stay. Waits until the SDK is connected again.
   */
  async restartAgent(backend: Record<string, unknown>): Promise<void> {
    const agent = this.agent!;
    await agent.stop();
    const cfg = JSON.parse(readFileSync(agent.configPath, 'utf8')) as { backend: Record<string, unknown> };
    cfg.backend = { ...cfg.backend, ...backend };
    writeFileSync(agent.configPath, JSON.stringify(cfg, null, 2));
    await agent.start();
    await agent.proc!.waitFor(/ubs: connected to the UB memory daemon/, 1, 15000);
  }

  /** The double's control file (delay_ms, fail.<op>=CODE, ...); "" clears it. */
  control(text: string): void {
    const p = join(this.stateDir, 'control');
    writeFileSync(`${p}.tmp`, text);
    chmodSync(`${p}.tmp`, 0o666);
    execFileSync('mv', ['-f', `${p}.tmp`, p]);
  }

  /** Share names the double holds (its <state>/shares dir). */
  shares(): string[] {
    return safeReaddir(join(this.stateDir, 'shares')).filter(notTorn);
  }

  /** Map entries in the double (<state>/maps/<name>@<node>@<id>), optionally of one share. */
  maps(name?: string): string[] {
    return safeReaddir(join(this.stateDir, 'maps')).filter((m) => notTorn(m) && (!name || m.startsWith(`${name}@`)));
  }

  /**
   * The memids of a share attached on a node as the double records them, and the pids whose
   * mappings keep it attached (<state>/attach/<name>@<node>, <state>/maps/<name>@<node>@<pid>.<seq>.<t>);
   * undefined when it is not attached there. An entry of a dead process stays until the next SDK call.
   */
  attachment(sdkName: string, node = 'local'): { memids: number[]; pids: number[] } | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.stateDir, 'attach', `${sdkName}@${node}`), 'utf8');
    } catch {
      return undefined;
    }
    const line = text.split('\n').find((l) => l.startsWith('memids='));
    const memids = (line ?? '').slice('memids='.length).trim().split(/\s+/).filter(Boolean).map(Number);
    const pids = this.maps(sdkName)
      .map((m) => m.split('@'))
      .filter((f) => f.length === 3 && f[1] === node)
      .map((f) => Number(f[2].split('.')[0]));
    return { memids, pids };
  }

  devNodes(dir = this.devDir): string[] {
    return safeReaddir(dir).filter((f) => f.startsWith('obmm_shmdev'));
  }

  /** ubsm-consumer on the host, as root, with the agent's environment (node "local" or another). */
  consumer(args: string[], node = 'local'): ConsumerResult {
    const r = spawnSync(CONSUMER, args, { env: { ...process.env, ...this.hostEnv(node) }, encoding: 'utf8', timeout: 30000 });
    return parseConsumer(r.status, r.stdout ?? '', r.stderr ?? '');
  }

  /** `ubsm-consumer --sdk-name NAME hold SECONDS` on another node; resolves with its first line. */
  async hold(sdkName: string, seconds: number, node = 'other'): Promise<{ child: ChildProcess; line: Record<string, unknown> }> {
    const child = spawn(CONSUMER, ['--sdk-name', sdkName, 'hold', String(seconds)], { env: { ...process.env, ...this.hostEnv(node) }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.holders.add(child);
    child.once('exit', () => this.holders.delete(child));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(out.slice(0, nl));
      });
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (c) => reject(new Error(`hold exited ${c}: ${out}`)));
    });
    return { child, line: JSON.parse(line) as Record<string, unknown> };
  }

  async stopHolder(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    return new Promise((resolve) => {
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
  }

  async cleanup(): Promise<void> {
    for (const h of [...this.holders]) await this.stopHolder(h);
    await this.agent?.cleanup();
    this.agent = undefined;
    if (this.standin && this.standin.exitCode === null && this.standin.signalCode === null) {
      const s = this.standin;
      await new Promise<void>((resolve) => {
        s.once('exit', () => resolve());
        s.kill('SIGTERM');
      });
    }
    this.cleanupSync();
  }

  cleanupSync(): void {
    for (const h of this.holders) h.kill('SIGKILL');
    if (this.standin && this.standin.exitCode === null && this.standin.signalCode === null) this.standin.kill('SIGKILL');
    this.agent?.cleanupSync();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d).sort();
  } catch {
    return [];
  }
}
