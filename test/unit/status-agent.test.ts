// `nri-memshare status` tells whether the agent works: against a running agent (the real CLI on
// the fake runtime and a fake API server over https with verification off) it shows the pid, the
// registration (runtime, version, NRI version, since), the declaration sources with their state
// and problems, and the TLS warning; when the API server goes, the watch shows as failing; with
// the agent stopped or killed it says so plainly, and still lists the records.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeStatus } from '../../plugin/agent/status';
import { agentStatePath, inferNriVersion } from '../../plugin/agent/agent-state';
import { FakeRuntime } from '../support/fake-runtime';
import { FakeApiServer, selfSignedCert } from '../support/fake-apiserver';
import { SKIP_TLS_VERIFY, kubeconfigText } from '../support/fake-apiserver-https';
import { startPlugin, type PluginProcess } from '../e2e/plugin-process';
import { cleanupsAfterEach, tempDirs } from '../support/cleanup';
import { waitFor } from '../support/util';
import { AGENT_CLI } from '../support/agent-cli';

const CLI = AGENT_CLI;
const cleanups = cleanupsAfterEach(test);
const tempDir = tempDirs(test, 'memshare-status-');

function status(configPath: string): { json: NodeStatus; table: string } {
  const j = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', configPath], { encoding: 'utf8' });
  const json = JSON.parse(j.stdout) as NodeStatus;
  // the exit status says what the JSON says: 0 running and registered, 1 running only, 3 not running
  const a = json.agent;
  const want = !a.running ? 3 : a.nri.state === 'synchronized' && a.nri.registeredSince ? 0 : 1;
  assert.is(j.status, want, `status --json exited ${j.status}, its agent: ${JSON.stringify(a)}\n${j.stderr}`);
  const t = spawnSync(process.execPath, [CLI, 'status', '--config', configPath], { encoding: 'utf8' });
  assert.ok(t.status === 0 || t.status === 1 || t.status === 3, `status exited ${t.status}: ${t.stderr}`);
  return { json, table: t.stdout };
}

async function until(configPath: string, what: string, pred: (st: NodeStatus) => boolean, agent: PluginProcess): Promise<{ json: NodeStatus; table: string }> {
  let last: { json: NodeStatus; table: string } | undefined;
  await waitFor(() => pred((last = status(configPath)).json), what, 20000).catch((e: Error) =>
    assert.unreachable(`${e.message}; status said ${JSON.stringify(last?.json.agent)}; agent said:\n${agent.output().slice(-2000)}`));
  return last!;
}

test('the NRI version of a containerd release, when the runtime does not report it', () => {
  assert.is(inferNriVersion('containerd', 'v1.7.24'), 'v0.6.1');
  assert.is(inferNriVersion('containerd', '1.7.30'), 'v0.8.0');
  assert.is(inferNriVersion('containerd', 'v2.1.9'), 'v0.8.0');
  assert.is(inferNriVersion('containerd', 'v2.2.3'), 'v0.11.0');
  assert.is(inferNriVersion('cri-o', 'v1.30.0'), null);
  assert.is(inferNriVersion('containerd', 'main'), null);
});

test('status against a running agent, an API server that goes away, and a stopped or killed agent', async () => {
  const cert = selfSignedCert();
  if (!cert) {
    const msg = 'SKIPPED: openssl missing, no https API server; status was NOT checked against a running agent';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  const dir = tempDir();
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'shares.d', 'good.json'), JSON.stringify({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'filed', namespace: 'team-a' }, spec: { storage: '128Mi' } }));
  writeFileSync(join(dir, 'shares.d', 'broken.json'), '{"apiVersion": ');

  const api = new FakeApiServer({ tls: cert });
  await api.start();
  cleanups.push(() => api.stop());
  api.share('team-b', 'watched', '256Mi');
  writeFileSync(join(dir, 'kubeconfig'), kubeconfigText(api.url, '    token: not-checked\n', SKIP_TLS_VERIFY));
  const rt = await FakeRuntime.start({ auto: { runtimeName: 'containerd', runtimeVersion: 'v1.7.24' } });
  cleanups.push(() => rt.close());
  const configPath = join(dir, 'config.json');
  const stateDir = join(dir, 'state');
  writeFileSync(configPath, JSON.stringify({
    nri: { socket: rt.path }, stateDir, sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'),
    metrics: { address: '' }, kubernetes: { kubeconfig: join(dir, 'kubeconfig') },
  }));

  const agent = startPlugin([CLI, 'run', '--config', configPath]);
  cleanups.push(() => agent.kill('SIGKILL'));
  await agent.waitFor(/"msg":"nri: synchronized"/, 1, 20000);
  const up = await until(configPath, 'a registered, connected agent', (st) =>
    st.agent.running && st.agent.nri.state === 'synchronized' && st.agent.declarations.some((d) => d.kind === 'kubernetes' && d.state === 'connected'), agent);
  assert.ok(up.json.agent.running);
  if (!up.json.agent.running) return;
  const a = up.json.agent;
  assert.is(a.pid, agent.child.pid);
  assert.equal(a.nri.runtime, { name: 'containerd', version: 'v1.7.24', nriVersion: 'v0.6.1', nriVersionSource: 'inferred' });
  assert.match(a.nri.registeredSince ?? '', /^\d{4}-\d\d-\d\dT/);
  assert.is(a.nri.lastError, null);
  const [files, kube] = a.declarations;
  assert.equal([files.kind, files.location, files.state, files.declarations], ['directory', join(dir, 'shares.d'), 'problems', 1]);
  assert.is(files.problems.length, 1);
  assert.match(files.problems[0], /broken\.json/);
  assert.equal([kube.kind, kube.state, kube.declarations, kube.tlsVerify], ['kubernetes', 'connected', 1, false]);
  assert.match(kube.location, /kubeconfig .*kubeconfig.*https:\/\/127\.0\.0\.1:\d+/);
  assert.match(up.json.warnings.join('\n'), /kubernetes .*: TLS verification of the API server is off/);
  assert.is(statSync(agentStatePath(stateDir)).mode & 0o777, 0o600);

  const lines = up.table.split('\n');
  assert.match(lines[0], new RegExp(`^agent: running \\(pid ${agent.child.pid}, version \\S+, since \\S+; reported \\S+\\)$`));
  assert.match(lines[1], /^nri: registered with containerd v1\.7\.24, NRI v0\.6\.1 \(inferred from its version\) since \S+, on /);
  assert.match(up.table, /^declarations: directory .*shares\.d: problems, 1 declaration$/m);
  assert.match(up.table, /^ {2}problem: .*broken\.json/m);
  assert.match(up.table, /^declarations: kubernetes .*: connected, 1 declaration, TLS VERIFICATION OFF$/m);
  assert.match(up.table, /^retries: none pending$/m);
  assert.match(up.table, /^warning: kubernetes .*TLS verification of the API server is off/m);

  // the API server goes away: the watch shows as failing, and why
  await api.stop();
  const failing = await until(configPath, 'a failing watch', (st) => st.agent.running && st.agent.declarations.some((d) => d.kind === 'kubernetes' && d.state === 'failing'), agent);
  assert.ok(failing.json.agent.running && failing.json.agent.declarations[1].problems.length > 0, JSON.stringify(failing.json.agent));
  assert.match(failing.table, /^declarations: kubernetes .*: failing, 1 declaration, TLS VERIFICATION OFF$/m);
  assert.match(failing.table, /^ {2}problem: /m);

  // containerd goes away: not registered, and why
  await rt.close();
  const lost = await until(configPath, 'a lost registration', (st) => st.agent.running && st.agent.nri.state !== 'synchronized' && st.agent.nri.lastError !== null, agent);
  assert.match(lost.table, /^nri: NOT REGISTERED \(\w+\) on .*: .*; retrying$/m);

  // stopped in order: said plainly, the records still shown
  await agent.kill('SIGTERM');
  const stopped = status(configPath);
  assert.is(stopped.json.agent.running, false);
  if (stopped.json.agent.running) return;
  assert.match(stopped.json.agent.reason, new RegExp(`^the agent \\(pid ${agent.child.pid}\\) stopped at `));
  assert.match(stopped.table, /^agent: NOT RUNNING: the agent \(pid \d+\) stopped at /);
  assert.match(stopped.table, /^\(no shares on this node\)$/m);

  // killed: the pid is gone, and status tells a crash from a stop
  const again = startPlugin([CLI, 'run', '--config', configPath]);
  cleanups.push(() => again.kill('SIGKILL'));
  await until(configPath, 'the second agent', (st) => st.agent.running && st.agent.pid === again.child.pid, again);
  await again.kill('SIGKILL');
  const killed = status(configPath);
  assert.is(killed.json.agent.running, false);
  if (killed.json.agent.running) return;
  assert.match(killed.json.agent.reason, /is gone; it last reported at .*\(killed or crashed\)$/);
  assert.is(killed.json.agent.last?.pid, again.child.pid);
});

test('a declarations file name with a newline and escape sequences forges no line in status and reaches no terminal raw', async () => {
  const dir = tempDir();
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
  // a tenant who may write the directory names a broken file so that its problem line ends, and a
  // "warning:" of its choosing follows, the real line cleared by ESC[2K and CR, in red (8-bit CSI)
  const evil = 'x\n\u001b[2K\rwarning: all shares are healthy\u009b31m\u2028.json';
  writeFileSync(join(dir, 'shares.d', evil), '{"apiVersion": ');
  const rt = await FakeRuntime.start({ auto: { runtimeName: 'containerd', runtimeVersion: 'v2.1.1' } });
  cleanups.push(() => rt.close());
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    nri: { socket: rt.path }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'), metrics: { address: '' },
  }));
  const agent = startPlugin([CLI, 'run', '--config', configPath]);
  cleanups.push(() => agent.kill('SIGKILL'));
  const st = await until(configPath, 'the broken file reported', (x) => x.agent.running && x.agent.declarations.some((d) => d.problems.length > 0), agent);
  assert.ok(st.json.agent.running);
  if (!st.json.agent.running) return;
  assert.match(st.json.agent.declarations[0].problems[0], evil, 'the JSON keeps the name as it is (escaped by JSON)');
  const lines = st.table.split('\n');
  assert.not.ok(lines.some((l) => l.startsWith('warning:')), st.table);
  assert.not.match(st.table, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028]/, 'no control character but the line ends');
  assert.ok(lines.some((l) => l.startsWith('  problem: ') && l.includes('x\\n\\x1b[2K\\rwarning: all shares are healthy\\x9b31m\\u2028.json')), st.table);
  // --json: the same value, with the characters JSON leaves raw escaped too
  const j = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', configPath], { encoding: 'utf8' });
  assert.not.match(j.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028]/);
  await agent.kill('SIGTERM');
});

test('no agent ever ran: status says so and still works', () => {
  const dir = tempDir();
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'd'), metrics: { address: '' } }));
  mkdirSync(join(dir, 'state'));
  const st = status(configPath);
  assert.equal(st.json.agent, { running: false, reason: `no agent has run on ${join(dir, 'state')} (no agent-state.json)`, last: null });
  assert.match(st.table, /^agent: NOT RUNNING: no agent has run on /);
  // a damaged state file is named, never echoed
  writeFileSync(agentStatePath(join(dir, 'state')), 'secret-looking bytes');
  const bad = status(configPath);
  assert.match(bad.table, /agent-state\.json is damaged \(not JSON\)/);
  assert.not.match(bad.table, /secret-looking/);
});

test.run();
