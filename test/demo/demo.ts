// The nri-memshare demo (run by scripts/demo.sh, which installs, builds and fetches first):
// a private real containerd, the agent beside it, two pods that share memory through one
// declared share, and the share released once both are gone. Narrated for a human reader.
//
// usage: node dist/test/demo/demo.js --workdir DIR [--containerd 1.7|2.1]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriError, mountsUnder, startContainerd, uniqueName, type ContainerdInstance, type RunningPod } from '../harness';
import type { ContainerdVersion } from '../harness';
import { AGENT_CLI } from '../support/agent-cli';

const CLI = AGENT_CLI;
const NAMESPACE = 'demo';
const SHARE = 'demo-share';
const SHARE_SIZE = '128Mi';
const ANNOTATION = 'memshare.nri.io/pod';

// ---- narration ----

const tty = process.stdout.isTTY;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');

let stepNo = 0;
function step(title: string): void {
  stepNo++;
  process.stdout.write(`\n${bold(cyan(`== Step ${stepNo}: ${title}`))}\n`);
}
function say(text: string): void {
  process.stdout.write(`   ${text}\n`);
}
function ok(text: string): void {
  process.stdout.write(`   ${green('OK')} ${text}\n`);
}
/** Shows a command (as a person would type it) and its output, indented. */
function show(command: string, output: string): void {
  process.stdout.write(`   ${dim('$')} ${command}\n`);
  for (const line of output.replace(/\n+$/, '').split('\n')) process.stdout.write(`     ${line}\n`);
}

class DemoError extends Error {}
function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new DemoError(what);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- arguments ----

function parseArgs(argv: string[]): { version: ContainerdVersion; workdir: string } {
  let version: ContainerdVersion = '2.1';
  let workdir = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--containerd') {
      const v = argv[++i];
      if (v !== '1.7' && v !== '2.1') throw new DemoError(`--containerd must be 1.7 or 2.1, got ${JSON.stringify(v ?? '')}`);
      version = v;
    } else if (a === '--workdir') {
      workdir = argv[++i] ?? '';
    } else {
      throw new DemoError(`unknown argument ${JSON.stringify(a)} (usage: demo.js --workdir DIR [--containerd 1.7|2.1])`);
    }
  }
  if (!workdir) throw new DemoError('--workdir DIR is required (scripts/demo.sh makes one)');
  return { version, workdir };
}

// ---- the agent process ----

interface LogLine {
  level?: string;
  msg?: string;
  [k: string]: unknown;
}

class Agent {
  readonly proc: ChildProcess;
  private out = '';
  private exited = false;
  readonly exitedPromise: Promise<number | null>;

  constructor(configPath: string, logPath: string, pidPath: string) {
    const log = createWriteStream(logPath, { flags: 'a' });
    this.proc = spawn(process.execPath, [CLI, 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    writeFileSync(pidPath, `${this.proc.pid}\n`);
    const feed = (b: Buffer) => {
      this.out += b.toString('utf8');
      log.write(b);
    };
    this.proc.stdout!.on('data', feed);
    this.proc.stderr!.on('data', feed);
    this.exitedPromise = new Promise((resolve) =>
      this.proc.once('exit', (code) => {
        this.exited = true;
        log.end();
        resolve(code);
      }),
    );
  }

  lines(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.out.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        /* a partial line */
      }
    }
    return out;
  }

  tail(n = 30): string {
    return this.out.split('\n').slice(-n).join('\n');
  }

  /** The first log line (JSON) after `from` lines that matches, or an error naming what was awaited. */
  async waitFor(match: (l: LogLine) => boolean, what: string, timeoutMs = 20_000, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines().slice(from).find(match);
      if (hit) return hit;
      if (this.exited) throw new DemoError(`the agent exited while waiting for: ${what}`);
      if (Date.now() > deadline) throw new DemoError(`the agent did not log "${what}" within ${timeoutMs / 1000} s`);
      await sleep(50);
    }
  }

  async stop(): Promise<number | null> {
    if (this.exited) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    const code = await this.exitedPromise;
    clearTimeout(timer);
    return code;
  }

  killNow(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

/** Runs the CLI (status, check-config) and returns its output; throws on a non-zero exit. */
function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new DemoError(`nri-memshare ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${out}`);
  return out;
}

function formatLog(l: LogLine): string {
  const { level, msg, time: _t, ...rest } = l;
  if (rest.name === 'nri-memshare') delete rest.name; // the logger's own name, on every line
  const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
  return `[${level}] ${msg}${extra}`;
}

// ---- the demo ----

async function main(): Promise<void> {
  const { version, workdir } = parseArgs(process.argv.slice(2));
  const stateDir = join(workdir, 'state');
  const sharesDir = join(workdir, 'shares');
  const declarationsDir = join(workdir, 'shares.d');
  const configPath = join(workdir, 'config.json');
  for (const d of [stateDir, sharesDir, declarationsDir]) mkdirSync(d, { recursive: true });

  let containerd: ContainerdInstance | undefined;
  let agent: Agent | undefined;
  // Ctrl-C or a crash: the harness sweeps containerd (its own exit hook); the agent and any share
  // still mounted are ours to take down. scripts/demo.sh sweeps the work dir once more after us.
  process.on('exit', () => {
    agent?.killNow();
    for (const m of mountsUnder(sharesDir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  });
  // registered before the harness's own handlers: say what happens, then exit; the exit hooks
  // (the harness's and the one above) take containerd, its containers, the agent and mounts down
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      process.stdout.write(`\n${red(bold('DEMO INTERRUPTED'))} (${sig}): stopping the agent, the pods and containerd\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }

  try {
    // 1. containerd
    step(`start a private containerd ${version} with NRI enabled`);
    say('It gets its own root, state, sockets and runc root in a temp dir, so it cannot disturb');
    say("a containerd this machine may already run. Pods use host networking (no CNI needed).");
    containerd = await startContainerd({ version });
    ok(`containerd ${containerd.version} (${containerd.deb}) is up`);
    say(`CRI socket: ${containerd.criAddress}`);
    say(`NRI socket: ${containerd.nriSocket}  <- the agent registers here`);

    // 2. config + declaration
    step('write the agent config and declare a share');
    const config = {
      nri: { socket: containerd.nriSocket, name: 'memshare', index: '50' },
      stateDir,
      sharesDir,
      declarationsDir,
      backend: { kind: 'local' },
      metrics: { address: '127.0.0.1:0' },
      log: { level: 'info' },
    };
    writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
    say('Every path is private to this demo (the defaults are /var/lib/nri-memshare, /run/nri-memshare/shares,');
    say('/etc/nri-memshare/shares.d and /var/run/nri/nri.sock); metrics listen on a free local port.');
    show(`cat ${configPath}`, readFileSync(configPath, 'utf8'));
    show(`nri-memshare check-config --config ${configPath}`, cli(['check-config', '--config', configPath]));

    const declPath = join(declarationsDir, `${SHARE}.yaml`);
    writeFileSync(
      declPath,
      `# A ${SHARE_SIZE} share named ${SHARE} in namespace ${NAMESPACE}; pods of ${NAMESPACE} may bind it.
apiVersion: resource.ubsvirt.huawei.com/v1
kind: ShareMemory
metadata:
  name: ${SHARE}
  namespace: ${NAMESPACE}
spec:
  storage: ${SHARE_SIZE}
`,
    );
    say('A share must be declared before any pod can bind it. Without Kubernetes, declarations are');
    say('ShareMemory objects in files in the declarations directory (in a cluster: the ShareMemory CRD).');
    show(`cat ${declPath}`, readFileSync(declPath, 'utf8'));

    // 3. agent
    step('start the agent: nri-memshare run');
    agent = new Agent(configPath, join(workdir, 'agent.log'), join(workdir, 'agent.pid'));
    say(`pid ${agent.proc.pid}; its JSON log lines go to ${join(workdir, 'agent.log')}`);
    await agent.waitFor((l) => l.msg === 'nri: synchronized', 'nri: synchronized');
    const a = agent;
    const interesting = (l: LogLine) =>
      ['nri-memshare started', 'nri: registered', 'nri: configured', 'nri: synchronized', 'metrics: listening', 'reconciled with the runtime'].includes(
        l.msg ?? '',
      ) || l.msg?.startsWith('declarations:') === true;
    for (const l of a.lines().filter(interesting)) say(dim(formatLog(l)));
    ok('the agent registered with containerd and reconciled (nothing to do on a fresh node)');
    const listening = a.lines().find((l) => l.msg === 'metrics: listening');
    const metricsAddress = typeof listening?.address === 'string' ? listening.address : '';
    if (metricsAddress) {
      const health = await fetch(`http://${metricsAddress}/healthz`);
      show(`curl http://${metricsAddress}/healthz`, `${health.status} ${(await health.text()).trim()}`);
    }

    // 4. pods
    const cri = containerd.cri;
    step(`run pod A with the annotation ${ANNOTATION}: "${SHARE}" and write a message`);
    const podA = await cri.runPod({ name: uniqueName('pod-a'), namespace: NAMESPACE, annotations: { [ANNOTATION]: SHARE } });
    const ctrA = await cri.runContainer(podA, { name: 'writer' });
    ok(`pod ${NAMESPACE}/${podA.config.metadata.name} is running (container "writer" ${ctrA.slice(0, 12)})`);
    say(`While containerd created the container, the agent recorded the binding, mounted a ${SHARE_SIZE} tmpfs on`);
    say(`the host at ${join(sharesDir, NAMESPACE, SHARE)} and bound it into the container at /dev/shm/${SHARE}.`);
    const message = `hello from pod A (${podA.config.metadata.name}), written at ${new Date().toISOString()}`;
    const write = await exec(cri, ctrA, ['sh', '-c', `echo '${message}' > /dev/shm/${SHARE}/message && df -h /dev/shm/${SHARE}`]);
    show(`(in pod A) echo '${message}' > /dev/shm/${SHARE}/message && df -h /dev/shm/${SHARE}`, write);

    step(`run pod B with the same annotation and read the message`);
    const podB = await cri.runPod({ name: uniqueName('pod-b'), namespace: NAMESPACE, annotations: { [ANNOTATION]: SHARE } });
    const ctrB = await cri.runContainer(podB, { name: 'reader' });
    ok(`pod ${NAMESPACE}/${podB.config.metadata.name} is running (container "reader" ${ctrB.slice(0, 12)})`);
    const read = await exec(cri, ctrB, ['cat', `/dev/shm/${SHARE}/message`]);
    show(`(in pod B) cat /dev/shm/${SHARE}/message`, read);
    check(read.trim() === message, `pod B read ${JSON.stringify(read.trim())}, expected ${JSON.stringify(message)}`);
    ok('pod B sees what pod A wrote: two pods, one piece of shared memory');

    // 5. status + metrics
    step('what the node shares now: nri-memshare status');
    const status = cli(['status', '--config', configPath]);
    show(`nri-memshare status --config ${configPath}`, status);
    check(status.includes(`${NAMESPACE}/${SHARE}`), `status does not list ${NAMESPACE}/${SHARE}`);
    const hostMounts = mountsUnder(sharesDir);
    show(`cut -d' ' -f5 /proc/self/mountinfo | grep '^${sharesDir}/'   # mounts on the host`, hostMounts.length ? hostMounts.join('\n') : '(nothing mounted)');
    check(hostMounts.includes(join(sharesDir, NAMESPACE, SHARE)), `the share is not mounted at ${join(sharesDir, NAMESPACE, SHARE)}`);
    if (metricsAddress) {
      const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
      const lines = text.split('\n').filter((l) => /^nri_memshare_(bindings|share_size_bytes|share_used_bytes|plugin_registered)\b/.test(l));
      show(`curl -s http://${metricsAddress}/metrics | grep ...`, lines.join('\n'));
    }

    // 6. a refusal
    step('a pod that asks for a share nobody declared is refused, not started without it');
    const podC = await cri.runPod({ name: uniqueName('pod-c'), namespace: NAMESPACE, annotations: { [ANNOTATION]: 'no-such-share' } });
    let refusal = '';
    try {
      await cri.createContainer(podC.id, podC.config, { name: 'app' });
    } catch (e) {
      refusal = e instanceof CriError ? e.details : (e as Error).message;
    }
    check(refusal, 'creating a container that asks for an undeclared share succeeded; it must fail');
    show('(kubelet would report) CreateContainer error', refusal);
    check(refusal.includes('no-such-share'), 'the refusal does not name the share');
    ok('the error names the annotation, the share and the reason');
    await removePod(cri, podC, []);

    // 7. release
    step('remove pod A: the share stays, pod B still holds it');
    await removePod(cri, podA, [ctrA]);
    ok(`pod A removed`);
    show(`nri-memshare status --config ${configPath}`, cli(['status', '--config', configPath]));
    check(mountsUnder(sharesDir).includes(join(sharesDir, NAMESPACE, SHARE)), 'the share went away while pod B still held it');
    const stillThere = await exec(cri, ctrB, ['cat', `/dev/shm/${SHARE}/message`]);
    check(stillThere.trim() === message, 'pod B lost the message when pod A went away');
    ok('pod B still reads the message: the memory outlives its writer');

    step('remove pod B, the last user: the agent releases the share');
    const before = a.lines().length;
    await removePod(cri, podB, [ctrB]);
    ok('pod B removed');
    const released = await a.waitFor((l) => l.msg === 'share released', 'share released', 20_000, before);
    say(dim(formatLog(released)));
    const left = mountsUnder(sharesDir);
    show(`cut -d' ' -f5 /proc/self/mountinfo | grep '^${sharesDir}/'   # mounts on the host`, left.length ? left.join('\n') : '(nothing mounted)');
    check(left.length === 0, `still mounted after the release: ${left.join(', ')}`);
    const after = cli(['status', '--config', configPath]);
    show(`nri-memshare status --config ${configPath}`, after);
    check(after.includes('(no shares on this node)'), 'status still lists shares after the release');
    ok('the tmpfs is unmounted and its memory returned to the node; no records remain');

    // 8. shutdown
    step('stop the agent and containerd, and clean up');
    const code = await a.stop();
    check(code === 0, `the agent exited with ${code} on SIGTERM`);
    ok('agent stopped (SIGTERM, exit 0)');
    const c = containerd;
    containerd = undefined;
    await c.stop();
    ok('containerd stopped; its temp dir, shims and mounts are gone');
  } catch (err) {
    process.stdout.write(`\n${red(bold('DEMO FAILED'))}: ${(err as Error).message}\n`);
    if (agent) process.stdout.write(`\n--- last lines of the agent's log ---\n${agent.tail()}\n`);
    if (containerd) process.stdout.write(`\n--- last lines of containerd's log ---\n${containerd.logs().split('\n').slice(-20).join('\n')}\n`);
    agent?.killNow();
    await containerd?.stop().catch(() => undefined);
    process.exitCode = 1;
    return;
  }
  check(!existsSync(join(sharesDir, NAMESPACE, SHARE)), 'the share directory is still there');
  process.stdout.write(`\n${green(bold('DEMO PASSED'))}: two pods shared memory through ${NAMESPACE}/${SHARE}, and it was released when they were gone.\n`);
}

async function exec(cri: ContainerdInstance['cri'], id: string, cmd: string[]): Promise<string> {
  const r = await cri.execSync(id, cmd);
  if (r.exitCode !== 0) throw new DemoError(`${cmd.join(' ')} exited with ${r.exitCode} in container ${id.slice(0, 12)}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function removePod(cri: ContainerdInstance['cri'], pod: RunningPod, containers: string[]): Promise<void> {
  for (const id of containers) {
    await cri.stopContainer(id, 2);
    await cri.removeContainer(id);
  }
  await cri.stopPod(pod.id);
  await cri.removePod(pod.id);
}

main().catch((err: unknown) => {
  process.stdout.write(`\n${red(bold('DEMO FAILED'))}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
