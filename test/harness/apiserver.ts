// A real Kubernetes API server for the cluster tests: etcd and Kubernetes' apiextensions-apiserver
// (built by fetch-kube-tools.sh) on free loopback ports, in a private temp dir, with a private CA
// made by openssl. Clients authenticate by certificate: kubeconfig(user, groups) writes one for
// any user; the server lets only the group system:masters through (others get 403; it has no
// RBAC: see ../../../shared/docs/real-apiserver.md). kubectl() and etcdctl() run the fetched tools
// against it. stop() leaves no process and no file behind; so does a test process that exits.
import { ChildProcess, spawn, spawnSync, execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'node:https';
import { step } from './debug';
import { assertKubeFetched, kubeApiserverPath, kubeToolsBinDir } from './paths';

export const ADMIN_GROUP = 'system:masters';

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface KubeApi {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly dir: string;
  /** a kubeconfig of a user in system:masters (kubectl's default here) */
  readonly adminKubeconfig: string;
  /** writes (once per user and groups) a client certificate with CN=user, O=each group, and a kubeconfig for it */
  kubeconfig(user: string, groups?: string[]): string;
  /** kubectl against this server (admin unless opts.kubeconfig); never throws */
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string }): CommandResult;
  /** kubectl that must succeed: its stdout, or an error with its stderr */
  kubectlOk(args: string[], opts?: { input?: string; kubeconfig?: string }): string;
  /** etcdctl against this etcd; must succeed; its stdout */
  etcdctl(args: string[]): string;
  /** etcd's current revision */
  etcdRevision(): number;
  /** stops the API server (SIGTERM) and starts it again on the same port; etcd stays */
  restartServer(): Promise<void>;
  /** stops only the API server (SIGTERM); etcd stays */
  stopServer(): Promise<void>;
  /** starts the API server again on its port and waits for /readyz */
  startServer(): Promise<void>;
  /** resident memory of the two processes, bytes */
  rss(): { apiserver: number; etcd: number };
  /** the API server's output so far */
  serverLog(): string;
  /** pids of etcd and the API server (while running) */
  pids(): number[];
  stop(): Promise<void>;
}

const live = new Set<Instance>();
let exitHookInstalled = false;

export async function startKubeApi(opts: { baseDir?: string } = {}): Promise<KubeApi> {
  assertKubeFetched();
  installExitHook();
  const inst = new Instance(mkdtempSync(join(opts.baseDir ?? '/tmp', 'nms-kubeapi-')));
  live.add(inst);
  try {
    await step('kube api start', () => inst.launch());
  } catch (e) {
    await inst.stop().catch(() => undefined);
    throw e;
  }
  return inst;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
}

class Instance implements KubeApi {
  url = '';
  readonly adminKubeconfig: string;
  private etcdProc: Proc | undefined;
  private serverProc: Proc | undefined;
  private etcdUrl = '';
  private port = 0;
  private log = '';
  private readonly users = new Map<string, string>();

  constructor(readonly dir: string) {
    this.adminKubeconfig = join(dir, 'admin.kubeconfig');
  }

  async launch(): Promise<void> {
    this.makeCa();
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    this.port = await freePort();
    this.url = `https://127.0.0.1:${this.port}`;
    this.etcdUrl = `http://127.0.0.1:${clientPort}`;
    writeFileSync(this.adminKubeconfig, readFileSync(this.kubeconfig('nms-admin', [ADMIN_GROUP])));
    this.etcdProc = this.spawn('etcd', join(kubeToolsBinDir(), 'etcd'), [
      '--name=nms-test', `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`, `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=nms-test=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ]);
    await this.waitFor('etcd', async () => spawnSync(join(kubeToolsBinDir(), 'etcdctl'), [`--endpoints=${this.etcdUrl}`, 'endpoint', 'health'], { encoding: 'utf8' }).status === 0);
    await this.startServer();
  }

  private makeCa(): void {
    const d = this.dir;
    openssl(d, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=nri-memshare test CA']);
    openssl(d, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(d, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    openssl(d, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext']);
  }

  kubeconfig(user: string, groups: string[] = []): string {
    const key = [user, ...groups].join('\n');
    const known = this.users.get(key);
    if (known) return known;
    if (!/^[a-z0-9][a-z0-9.:-]*$/.test(user) || groups.some((g) => !/^[a-z0-9][a-z0-9.:-]*$/.test(g))) throw new Error(`user ${user} or groups ${groups} not plain names`);
    const d = this.dir;
    const subj = `/CN=${user}${groups.map((g) => `/O=${g}`).join('')}`;
    const id = `client-${this.users.size}`; // one file set per user and group list
    openssl(d, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${id}.key`, '-out', `${id}.csr`, '-subj', subj]);
    writeFileSync(join(d, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    openssl(d, ['x509', '-req', '-in', `${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${id}.crt`, '-days', '2', '-extfile', 'client.ext']);
    const path = join(d, `${id}.kubeconfig`);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: nms-test',
        '  cluster:',
        `    server: ${this.url}`,
        `    certificate-authority: ${join(d, 'ca.crt')}`,
        'users:',
        `- name: ${user}`,
        '  user:',
        `    client-certificate: ${join(d, `${id}.crt`)}`,
        `    client-key: ${join(d, `${id}.key`)}`,
        'contexts:',
        '- name: nms-test',
        '  context:',
        '    cluster: nms-test',
        `    user: ${user}`,
        'current-context: nms-test',
        '',
      ].join('\n'),
    );
    this.users.set(key, path);
    return path;
  }

  private spawn(name: string, bin: string, args: string[]): Proc {
    const out = createWriteStream(join(this.dir, `${name}.log`), { flags: 'a' });
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (b: Buffer): void => {
      out.write(b);
      if (name === 'apiserver') this.log += b.toString();
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    const exited = new Promise<void>((resolve) => child.once('exit', (code, sig) => {
      out.end(`---- ${name} exited (code ${code}, signal ${sig}) ----\n`);
      resolve();
    }));
    return { child, exited };
  }

  async startServer(): Promise<void> {
    const d = this.dir;
    this.serverProc = this.spawn('apiserver', kubeApiserverPath(), [
      `--etcd-servers=${this.etcdUrl}`, '--bind-address=127.0.0.1', `--secure-port=${this.port}`,
      `--tls-cert-file=${join(d, 'server.crt')}`, `--tls-private-key-file=${join(d, 'server.key')}`,
      `--client-ca-file=${join(d, 'ca.crt')}`, `--allowed-groups=${ADMIN_GROUP}`,
      `--cert-dir=${join(d, 'certs')}`,
    ]);
    await this.waitFor('the API server', async () => (await this.readyz()) === 200);
  }

  private readyz(): Promise<number> {
    return new Promise((resolve) => {
      const req = request(`${this.url}/readyz`, { ca: readFileSync(join(this.dir, 'ca.crt')), timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }

  private async waitFor(what: string, ready: () => Promise<boolean>, timeoutMs = 30000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (const p of [this.etcdProc, this.serverProc]) {
        if (p && (p.child.exitCode !== null || p.child.signalCode !== null)) throw new Error(`${what}: a process exited during start-up; logs in ${this.dir}:\n${this.tailLogs()}`);
      }
      if (await ready()) return;
      if (Date.now() > end) throw new Error(`${what} not ready after ${timeoutMs} ms; logs:\n${this.tailLogs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private tailLogs(): string {
    return ['etcd', 'apiserver']
      .map((n) => (existsSync(join(this.dir, `${n}.log`)) ? `== ${n}\n${readFileSync(join(this.dir, `${n}.log`), 'utf8').slice(-3000)}` : `== ${n}: no log`))
      .join('\n');
  }

  kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}): CommandResult {
    const r = spawnSync(join(kubeToolsBinDir(), 'kubectl'), [`--kubeconfig=${opts.kubeconfig ?? this.adminKubeconfig}`, ...args], {
      input: opts.input,
      encoding: 'utf8',
      // kubectl's discovery cache would go under $HOME: keep it in this instance's dir
      env: { ...process.env, HOME: this.dir, KUBECACHEDIR: join(this.dir, 'kube-cache') },
      maxBuffer: 512 * 1024 * 1024,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  kubectlOk(args: string[], opts: { input?: string; kubeconfig?: string } = {}): string {
    const r = this.kubectl(args, opts);
    if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  etcdctl(args: string[]): string {
    return execFileSync(join(kubeToolsBinDir(), 'etcdctl'), [`--endpoints=${this.etcdUrl}`, ...args], { encoding: 'utf8' });
  }

  etcdRevision(): number {
    const s = JSON.parse(this.etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { header: { revision: number } } }>;
    return s[0].Status.header.revision;
  }

  async restartServer(): Promise<void> {
    await this.stopServer();
    await this.startServer();
  }

  async stopServer(): Promise<void> {
    await this.kill(this.serverProc, 'SIGTERM');
  }

  rss(): { apiserver: number; etcd: number } {
    const of = (p: Proc | undefined): number => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p?.child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    };
    return { apiserver: of(this.serverProc), etcd: of(this.etcdProc) };
  }

  serverLog(): string {
    return this.log;
  }

  pids(): number[] {
    return [this.etcdProc, this.serverProc].flatMap((p) => (p?.child.pid && p.child.exitCode === null && p.child.signalCode === null ? [p.child.pid] : []));
  }

  private async kill(p: Proc | undefined, sig: NodeJS.Signals): Promise<void> {
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill(sig);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10000);
    await p.exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.kill(this.serverProc, 'SIGTERM');
    await this.kill(this.etcdProc, 'SIGTERM');
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** synchronous, for the exit hook */
  sweep(): void {
    for (const p of [this.serverProc, this.etcdProc]) {
      if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted test must not leave etcd or the API server running.
  const sweepAll = (): void => {
    for (const inst of live) inst.sweep();
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
