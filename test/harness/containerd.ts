// Starts a real containerd (1.7 or 2.1, from fetch-containerd.sh's cache) with NRI enabled, in a
// private temp dir of its own (root, state, sockets, runc root), and takes it down without leftovers:
// no containerd, no shim, no container process, no mount under its dir.
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { CriClient } from './cri';
import { debug, step } from './debug';
import { assertFetched, containerdBinDir, containerdDeb, ContainerdVersion, imageTarPath, TEST_IMAGE } from './paths';

export interface ContainerdOptions {
  version: ContainerdVersion;
  /** NRI socket path; default <dir>/nri/nri.sock. */
  nriSocket?: string;
  /** containerd duration strings; defaults keep a missing plugin from stalling tests for long. */
  nriRegistrationTimeout?: string;
  nriRequestTimeout?: string;
  logLevel?: 'debug' | 'info' | 'warn';
  /** TOML appended to the generated config (e.g. extra plugin sections). */
  extraConfig?: string;
  /** How long to wait for the CRI socket to answer; default 30 s. */
  startTimeoutMs?: number;
  /** where the instance's private dir is made (default /tmp); e.g. a tmpfs for benchmarks */
  baseDir?: string;
  /** set: CRI enable_cdi = true with these cdi_spec_dirs (unset: the version's defaults) */
  cdiSpecDirs?: string[];
}

export interface ContainerdInstance {
  readonly version: string; // e.g. "1.7.24~ds1" or "2.1.9+unknown", from containerd --version
  readonly deb: string; // the .deb it came from
  readonly dir: string; // private temp dir holding everything of this instance
  readonly criAddress: string; // unix socket path of the CRI (and containerd) gRPC API
  readonly nriSocket: string;
  readonly cri: CriClient;
  readonly pid: number | undefined;
  /** containerd's stderr so far (all starts of this instance). */
  logs(): string;
  /** Resolves with the first log line matching re (from any start); rejects after timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Runs this version's ctr against this instance (namespace k8s.io); returns stdout. */
  ctr(args: string[]): string;
  /** Stops containerd only (containers and shims live on, as on a real node), starts it again. */
  restart(): Promise<void>;
  /** SIGKILLs containerd only, as a crash would; start it again with restart(). */
  kill(): Promise<void>;
  /** Removes pods through CRI (best effort), stops containerd, kills leftovers, unmounts, deletes dir. */
  stop(): Promise<void>;
}

const live = new Set<Instance>();
let exitHookInstalled = false;

export async function startContainerd(opts: ContainerdOptions): Promise<ContainerdInstance> {
  assertFetched(opts.version);
  installExitHook();
  const inst = new Instance(opts);
  live.add(inst);
  try {
    await step(`containerd ${opts.version} start`, () => inst.launch());
    await step(`containerd ${opts.version} image import`, async () => inst.importImage());
  } catch (e) {
    await inst.stop().catch(() => undefined);
    throw e;
  }
  return inst;
}

class Instance implements ContainerdInstance {
  readonly version: string;
  readonly deb: string;
  readonly dir: string;
  readonly criAddress: string;
  readonly nriSocket: string;
  readonly cri: CriClient;
  private readonly bin: string;
  private readonly configPath: string;
  private readonly runcRoot: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';
  private stopped = false;

  constructor(private readonly opts: ContainerdOptions) {
    this.bin = containerdBinDir(opts.version);
    this.version = execFileSync(join(this.bin, 'containerd'), ['--version'], { encoding: 'utf8' }).split(/\s+/)[2] ?? '?';
    this.deb = containerdDeb(opts.version);
    // Short path: unix socket paths must stay under 108 bytes.
    this.dir = mkdtempSync(join(opts.baseDir ?? '/tmp', `nrims-${opts.version.replace('.', '')}-`));
    this.criAddress = join(this.dir, 'containerd.sock');
    this.nriSocket = opts.nriSocket ?? join(this.dir, 'nri', 'nri.sock');
    this.configPath = join(this.dir, 'config.toml');
    this.runcRoot = join(this.dir, 'runc');
    for (const d of ['root', 'state', 'nri/plugins', 'nri/conf.d', 'cni/bin', 'cni/conf', 'runc']) {
      mkdirSync(join(this.dir, d), { recursive: true });
    }
    writeFileSync(this.configPath, this.config());
    this.cri = new CriClient(this.criAddress);
    debug(`containerd ${this.version} (${this.deb}) in ${this.dir}`);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  logs(): string {
    return this.log;
  }

  private config(): string {
    const q = (s: string): string => JSON.stringify(s); // TOML basic strings accept JSON escapes
    const runc = whichOr('runc', '/usr/sbin/runc');
    // Version-2 config for both: 2.1 migrates it itself (and logs that it did).
    return `version = 2
root = ${q(join(this.dir, 'root'))}
state = ${q(join(this.dir, 'state'))}

[grpc]
  address = ${q(this.criAddress)}

[ttrpc]
  address = ${q(`${this.criAddress}.ttrpc`)}

[debug]
  address = ""
  level = ${q(this.opts.logLevel ?? 'info')}

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(TEST_IMAGE)}
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
${this.opts.cdiSpecDirs ? `  enable_cdi = true\n  cdi_spec_dirs = [${this.opts.cdiSpecDirs.map(q).join(', ')}]\n` : ''}  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = ${q(runc)}
        Root = ${q(this.runcRoot)}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(join(this.dir, 'cni', 'bin'))}
    conf_dir = ${q(join(this.dir, 'cni', 'conf'))}

[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
  socket_path = ${q(this.nriSocket)}
  plugin_path = ${q(join(this.dir, 'nri', 'plugins'))}
  plugin_config_path = ${q(join(this.dir, 'nri', 'conf.d'))}
  plugin_registration_timeout = ${q(this.opts.nriRegistrationTimeout ?? '5s')}
  plugin_request_timeout = ${q(this.opts.nriRequestTimeout ?? '2s')}
${this.opts.extraConfig ?? ''}
`;
  }

  async launch(): Promise<void> {
    this.log += `---- nri-memshare harness: starting containerd ${this.version} ----\n`;
    const logFile = createWriteStream(join(this.dir, 'containerd.log'), { flags: 'a' });
    const proc = spawn(join(this.bin, 'containerd'), ['--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // This version's shim must be found first: containerd looks shims up in PATH.
      env: { ...process.env, PATH: `${this.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
    this.proc = proc;
    const collect = (b: Buffer): void => {
      this.log += b.toString('utf8');
      logFile.write(b);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, sig) => {
        this.log += `---- containerd exited (code ${code}, signal ${sig}) ----\n`;
        logFile.end();
        if (this.proc === proc) this.proc = undefined;
        resolve();
      });
    });
    await this.waitReady(proc);
  }

  private async waitReady(proc: ChildProcess): Promise<void> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 30_000);
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`containerd ${this.version} exited during start-up; log:\n${tail(this.log)}`);
      }
      if (existsSync(this.criAddress)) {
        try {
          await this.cri.version(1000);
          if (existsSync(this.nriSocket)) return;
          last = `NRI socket ${this.nriSocket} not there`;
        } catch (e) {
          last = (e as Error).message;
        }
      }
      await sleep(50);
    }
    throw new Error(`containerd ${this.version} not ready in time (${last}); log:\n${tail(this.log)}`);
  }

  async waitForLog(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.log.split('\n').find((l) => re.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`no containerd log line matching ${re} within ${timeoutMs} ms`);
      await sleep(25);
    }
  }

  ctr(args: string[]): string {
    const r = spawnSync(join(this.bin, 'ctr'), ['-a', this.criAddress, '-n', 'k8s.io', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
    return r.stdout;
  }

  importImage(): void {
    // --local: import in-process rather than through 2.x's transfer service; same effect, fewer moving parts.
    const local = this.opts.version === '1.7' ? [] : ['--local'];
    this.ctr(['images', 'import', ...local, '--snapshotter', 'native', imageTarPath()]);
  }

  async kill(): Promise<void> {
    this.proc?.kill('SIGKILL');
    await this.exited;
  }

  async restart(): Promise<void> {
    await step(`containerd ${this.opts.version} restart`, async () => {
      await this.terminate();
      await this.launch();
    });
  }

  private async terminate(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await step(`containerd ${this.opts.version} stop`, async () => {
      if (this.proc) {
        // Let CRI undo what it did (and let NRI plugins see the removals); leftovers are swept below.
        await withTimeout(this.cri.cleanupAll(), 20_000).catch((e: unknown) =>
          debug(`cleanupAll on stop: ${(e as Error).message}`),
        );
      }
      this.cri.close();
      await this.terminate();
      this.sweep();
      live.delete(this);
    });
  }

  /** Synchronous (usable from an exit hook): kills containers and shims, unmounts, deletes dir. */
  sweep(): void {
    if (this.proc) spawnSync('kill', ['-KILL', String(this.proc.pid)]);
    sweepDir(this.dir, this.criAddress, this.runcRoot);
  }
}

/** Kills everything an instance left running and removes its dir; throws if a mount will not go. */
export function sweepDir(dir: string, address: string, runcRoot: string): void {
  // 1. Container processes: runc delete --force kills them and removes their cgroups.
  for (const ns of safeReaddir(runcRoot)) {
    const root = join(runcRoot, ns);
    for (const id of safeReaddir(root)) spawnSync('runc', ['--root', root, 'delete', '--force', id], { timeout: 10_000 });
  }
  // 2. Shims of this instance (they name its address on their command line); their sockets too.
  for (const pid of shimPids(address)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  const tasks = join(dir, 'state', 'io.containerd.runtime.v2.task');
  for (const ns of safeReaddir(tasks)) {
    for (const id of safeReaddir(join(tasks, ns))) {
      const sock = shimSocket(join(tasks, ns, id));
      if (sock.startsWith('/run/containerd/s/')) rmSync(sock, { force: true });
    }
  }
  // 3. Mounts under the dir, deepest first; lazy as a last resort (a dying process may still hold one).
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) break;
    for (const m of mounts.sort((a, b) => b.length - a.length)) {
      const r = spawnSync('umount', pass < 2 ? [m] : ['-l', m]);
      if (r.status !== 0) debug(`umount ${m}: ${r.stderr?.toString().trim()}`);
    }
  }
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`still mounted under ${dir}: ${left.join(', ')}`);
  // --one-file-system: never walk into anything mounted after the check above.
  spawnSync('rm', ['-rf', '--one-file-system', dir]);
}

/** The shim's socket path as its bundle records it: 1.7 writes "address", 2.x "bootstrap.json". */
function shimSocket(bundle: string): string {
  let addr = readOr(join(bundle, 'address')).trim();
  if (!addr) {
    try {
      const boot = JSON.parse(readOr(join(bundle, 'bootstrap.json')) || '{}') as { address?: unknown };
      addr = typeof boot.address === 'string' ? boot.address : '';
    } catch {
      addr = '';
    }
  }
  return addr.replace(/^unix:\/\//, '');
}

/** Mount points (this mount namespace) at or below dir. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(`${dir}/`)) out.push(mp);
  }
  return out;
}

/** Pids of containerd shims started by the containerd listening on address. */
export function shimPids(address: string): number[] {
  const pids: number[] = [];
  for (const p of safeReaddir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const argv = readOr(`/proc/${p}/cmdline`).split('\0');
    if (!argv[0]?.includes('containerd-shim')) continue;
    const i = argv.indexOf('-address');
    if (i >= 0 && argv[i + 1] === address) pids.push(Number(p));
  }
  return pids;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted test must not leave containerd, shims or mounts behind.
  const sweepAll = (): void => {
    for (const inst of live) {
      try {
        inst.sweep();
      } catch (e) {
        process.stderr.write(`nri-memshare harness: cleanup of ${inst.dir} failed: ${(e as Error).message}\n`);
      }
    }
    live.clear();
  };
  process.on('exit', sweepAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      sweepAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    });
  }
}

function whichOr(name: string, fallback: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : fallback;
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

function readOr(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function tail(s: string, lines = 40): string {
  return s.split('\n').slice(-lines).join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}
