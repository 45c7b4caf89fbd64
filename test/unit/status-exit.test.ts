// `nri-memshare status` behaves as a status command (issue 24.4): its exit status says whether the
// agent runs and is registered (0), runs unregistered (1), does not run (3, as systemctl) or cannot
// be told (4: not root); it creates nothing; a user who is not root is told it needs root.
// `check-config` says when the default file it checked is absent and warns about unverified TLS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATUS_EXIT, showStatus } from '../../plugin/agent/status';
import { defaultConfig } from '../../plugin/agent/config';
import { processStartTicks, writeAgentState, type AgentState } from '../../plugin/agent/agent-state';
import { AGENT_CLI } from '../support/agent-cli';

const dir = mkdtempSync(join(tmpdir(), 'status-exit-'));
chmodSync(dir, 0o755); // the non-root case reads its config here
const isRoot = process.getuid?.() === 0;

function cli(args: string[], opts: { uid?: number; gid?: number } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [AGENT_CLI, ...args], { encoding: 'utf8', timeout: 30_000, ...opts });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function configFile(name: string, config: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config));
  chmodSync(path, 0o644);
  return path;
}

function state(over: Partial<AgentState> & { nriState: string; registered: boolean }): AgentState {
  const now = new Date().toISOString();
  return {
    version: 1, pid: process.pid, pidStartTicks: processStartTicks('self') ?? '', agentVersion: '0.0.0-test', startedAt: now, updatedAt: now,
    lifecycle: over.lifecycle ?? 'running',
    nri: {
      socket: '/run/nri/nri.sock', state: over.nriState, registeredSince: over.registered ? now : null,
      runtime: over.registered ? { name: 'containerd', version: 'v2.1.9', nriVersion: 'v0.8.0', nriVersionSource: 'reported' } : null,
      lastError: over.registered ? null : 'socket /run/nri/nri.sock does not exist',
    },
    declarations: [], pendingReleases: 0, failedEvictions: 0, metricsAddress: null,
  };
}

const sink = () => {
  let text = '';
  return { stream: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream, text: () => text };
};

test('exit status: 0 running and registered, 1 running but not registered, 3 stopped or gone', async () => {
  const stateDir = join(dir, 'codes-state');
  const config = { ...defaultConfig(), stateDir, sharesDir: join(dir, 'codes-shares') };
  mkdirSync(stateDir, { mode: 0o700 });
  const cases: Array<[string, AgentState, number]> = [
    ['registered', state({ nriState: 'synchronized', registered: true }), STATUS_EXIT.ok],
    ['connecting', state({ nriState: 'connecting', registered: false }), STATUS_EXIT.notRegistered],
    ['stopped in order', state({ nriState: 'stopped', registered: false, lifecycle: 'stopped' }), STATUS_EXIT.notRunning],
    ['killed (another pid)', { ...state({ nriState: 'synchronized', registered: true }), pidStartTicks: '1' }, STATUS_EXIT.notRunning],
  ];
  for (const [what, s, code] of cases) {
    writeAgentState(stateDir, s);
    const out = sink();
    assert.is(await showStatus(config, false, out.stream, sink().stream), code, `${what}: ${out.text()}`);
    // the CLI exits with it, text and --json alike
    const path = configFile('codes', { stateDir, sharesDir: config.sharesDir });
    assert.is(cli(['status', '--config', path]).status, code, what);
    assert.is(cli(['status', '--json', '--config', path]).status, code, what);
  }
  assert.equal([STATUS_EXIT.ok, STATUS_EXIT.notRegistered, STATUS_EXIT.usage, STATUS_EXIT.notRunning, STATUS_EXIT.unknown], [0, 1, 2, 3, 4]);
});

test('no agent ever ran: exit 3, and status creates neither the state nor the shares directory', () => {
  const stateDir = join(dir, 'never', 'state');
  const sharesDir = join(dir, 'never', 'shares');
  const r = cli(['status', '--config', configFile('never', { stateDir, sharesDir })]);
  assert.is(r.status, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /^agent: NOT RUNNING: no agent has run on /);
  assert.match(r.stdout, /\(no shares on this node\)/);
  assert.not.ok(existsSync(join(dir, 'never')), 'status made a directory');
});

test('a bad config: exit 2 with the problem, not a stack trace', () => {
  const r = cli(['status', '--config', configFile('bad', { stateDir: 'relative/path' })]);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /^nri-memshare status: .*stateDir/);
});

test('a user who is not root: "needs root" and exit 4, not a raw EACCES', () => {
  if (!isRoot) {
    const msg = 'SKIPPED: not root, cannot run status as another user; the non-root case was NOT checked';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  const stateDir = join(dir, 'root-state');
  mkdirSync(stateDir, { mode: 0o700 });
  writeAgentState(stateDir, state({ nriState: 'synchronized', registered: true }));
  const path = configFile('root', { stateDir, sharesDir: join(dir, 'root-shares') });
  for (const args of [['status'], ['status', '--json']]) {
    const r = cli([...args, '--config', path], { uid: 65534, gid: 65534 });
    assert.is(r.status, 4, r.stdout + r.stderr);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /^nri-memshare status: needs root: .*root-state is readable by root only \(run it as root, e\.g\. with sudo\)\n$/);
  }
  // root itself sees it
  assert.is(cli(['status', '--config', path]).status, 0);
});

test('check-config: the default file absent is said, not a silent "ok"', () => {
  if (!isRoot) {
    const msg = 'SKIPPED: not root, cannot hide /etc/nri-memshare in a mount namespace; NOT checked';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  // the default path is /etc/nri-memshare/config.json: hidden (if the directory is there at all)
  // under an empty tmpfs in a private mount namespace
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    '[ ! -d /etc/nri-memshare ] || mount -t tmpfs none /etc/nri-memshare; exec "$0" "$@"', process.execPath, AGENT_CLI, 'check-config'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /^\/etc\/nri-memshare\/config\.json: warning: does not exist: checked the built-in defaults, which `run` uses without the file$/m);
  assert.match(r.stdout, /^\/etc\/nri-memshare\/config\.json: ok \(\d warnings?\)\n$/);
  // and a file that is there is not said to be missing
  const there = cli(['check-config', '--config', configFile('there', { stateDir: join(dir, 's'), sharesDir: join(dir, 'sh'), declarationsDir: dir })]);
  assert.is(there.status, 0, there.stderr);
  assert.not.match(there.stderr, /does not exist/);
});

test('check-config warns about insecure-skip-tls-verify, as run does at start', () => {
  const kc = join(dir, 'insecure.kubeconfig');
  writeFileSync(kc, [
    'apiVersion: v1', 'kind: Config', 'current-context: x',
    'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]',
    'users: [{name: u, user: {token: abc}}]',
    'contexts: [{name: x, context: {cluster: c, user: u}}]', '',
  ].join('\n'));
  const declarations = join(dir, 'shares.d');
  mkdirSync(declarations, { recursive: true });
  const path = configFile('insecure', { stateDir: join(dir, 's'), sharesDir: join(dir, 'sh'), declarationsDir: declarations, kubernetes: { kubeconfig: kc } });
  const r = cli(['check-config', '--config', path]);
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /warning: .*insecure-skip-tls-verify is true: the API server's certificate is not checked/);
  assert.match(r.stdout, /: ok \(1 warning\)\n$/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
