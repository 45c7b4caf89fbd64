// systemd readiness: the agent speaks sd_notify to a unix datagram socket this test owns (a path
// and an abstract "@" name), and the test runs the real CLI against the fake runtime: a STATUS=
// line saying why it retries while containerd is absent, READY=1 with the runtime once it has
// registered and synchronized, WATCHDOG=1 from its timer, STOPPING=1 on SIGTERM. systemd's own
// systemd-notify checks the test's receiver, so both ends agree with systemd's encoding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, recvDatagram, sockaddrUn, unixBind, unixDgramSocket } from '../../native/libc';
import { notifierFromEnv, notifyMessage, watchdogIntervalMs } from '../../plugin/agent/notify';
import { DEFAULT_NRI_SNIPPET, Stub } from '../../plugin/nri/stub';
import { FakeRuntime } from '../support/fake-runtime';
import { startPlugin } from '../e2e/plugin-process';
import { tmpSocketPath, waitFor, within } from '../support/util';
import { cleanupsAfterEach, tempDirs } from '../support/cleanup';
import { AGENT_CLI } from '../support/agent-cli';

const CLI = AGENT_CLI;
const cleanups = cleanupsAfterEach(test);
const tempDir = tempDirs(test, 'memshare-notify-');

/** A bound datagram socket and the messages it has received, each as KEY -> VALUE. */
function receiver(address: string): { messages: () => Array<Map<string, string>>; raw: () => string[] } {
  const fd = unixDgramSocket();
  unixBind(fd, address);
  cleanups.push(() => closeFd(fd));
  const raw: string[] = [];
  const drain = () => {
    for (let d = recvDatagram(fd); d; d = recvDatagram(fd)) raw.push(d.toString('utf8'));
  };
  const parse = (m: string) => new Map(m.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
  return {
    raw: () => (drain(), raw.slice()),
    messages: () => (drain(), raw.map(parse)),
  };
}

const uniqueAbstract = () => `@nri-memshare-test-${process.pid}-${Math.random().toString(36).slice(2)}`;

test('sockaddr_un: a path is NUL-terminated, an abstract name starts with NUL and has no terminator', () => {
  const p = sockaddrUn('/run/systemd/notify');
  assert.is(p.len, 2 + '/run/systemd/notify'.length + 1);
  assert.is(p.addr.readUInt16LE(0), 1, 'AF_UNIX');
  assert.is(p.addr.subarray(2, p.len - 1).toString(), '/run/systemd/notify');
  assert.is(p.addr[p.len - 1], 0);
  const a = sockaddrUn('@x/y');
  assert.is(a.len, 2 + 1 + 3);
  assert.is(a.addr[2], 0);
  assert.is(a.addr.subarray(3, a.len).toString(), 'x/y');
  assert.throws(() => sockaddrUn('relative'), /neither an absolute path nor "@abstract"/);
  assert.throws(() => sockaddrUn(`/${'x'.repeat(120)}`), /longer than 107 bytes/);
});

test('messages are KEY=VALUE lines; a newline in a value cannot start another assignment', () => {
  assert.is(notifyMessage({ READY: '1', STATUS: 'a\nWATCHDOG=1' }), 'READY=1\nSTATUS=a WATCHDOG=1');
  assert.throws(() => notifyMessage({ 'bad key': '1' }), /not a valid variable name/);
});

test('the watchdog interval is half of WATCHDOG_USEC, and only for this pid', () => {
  assert.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 7), 15000);
  assert.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 7), 15000);
  assert.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, 7), undefined);
  assert.is(watchdogIntervalMs({}, 7), undefined);
  assert.is(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 7), undefined);
});

test("systemd's own systemd-notify reaches the test's receiver, on a path and an abstract name", () => {
  if (spawnSync('sh', ['-c', 'command -v systemd-notify']).status !== 0) {
    const msg = 'SKIPPED: systemd-notify not installed (apt-get install systemd); the receiver was NOT checked against systemd';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  for (const address of [tmpSocketPath('notify.sock'), uniqueAbstract()]) {
    const r = receiver(address);
    const out = spawnSync('systemd-notify', ['--no-block', '--ready', '--status=hello from systemd'], { env: { ...process.env, NOTIFY_SOCKET: address }, encoding: 'utf8' });
    assert.is(out.status, 0, `systemd-notify to ${address}: ${out.stderr}`);
    const got = r.messages();
    assert.is(got.length, 1, `${address}: ${JSON.stringify(r.raw())}`);
    assert.is(got[0].get('READY'), '1');
    assert.is(got[0].get('STATUS'), 'hello from systemd');
  }
});

test('the notifier sends to a path and to an abstract name, and reports a dead socket without throwing', () => {
  for (const address of [tmpSocketPath('notify.sock'), uniqueAbstract()]) {
    const r = receiver(address);
    const n = notifierFromEnv({ NOTIFY_SOCKET: address });
    assert.ok(n);
    cleanups.push(() => n.close());
    assert.ok(n.send({ STATUS: 'one' }));
    assert.ok(n.send({ WATCHDOG: '1' }));
    assert.equal(r.raw(), ['STATUS=one', 'WATCHDOG=1']);
  }
  const errors: string[] = [];
  const dead = notifierFromEnv({ NOTIFY_SOCKET: uniqueAbstract() }, (e) => errors.push(e.message));
  assert.ok(dead);
  assert.is(dead.send({ READY: '1' }), false);
  dead.close();
  assert.match(errors[0], /^sd_notify to @nri-memshare-test-.*: sendto\(@.*\) failed: ECONNREFUSED/);
  assert.is(notifierFromEnv({}), undefined, 'not under systemd: no notifier');
  assert.is(notifierFromEnv({ NOTIFY_SOCKET: 'vsock:2:1' }, (e) => errors.push(e.message)), undefined);
  assert.match(errors[1], /not a unix socket path or @abstract name/);
});

test('the connection warning is rate limited and names the installed containerd snippet', async () => {
  const missing = tmpSocketPath('absent.sock');
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const reasons: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => warnings.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }) };
  const stub = new Stub({}, { socketPath: missing, env: {}, logger: log, backoff: { initialMs: 1, maxMs: 2 }, observer: { retrying: (r) => reasons.push(r) } });
  cleanups.push(() => stub.stop());
  void stub.start();
  await waitFor(() => reasons.length >= 8, 'eight failed attempts');
  stub.stop();
  assert.is(warnings.length, 1, `one warning for ${reasons.length} attempts: ${JSON.stringify(warnings)}`);
  assert.ok(warnings[0].msg.includes(`see ${DEFAULT_NRI_SNIPPET})`), warnings[0].msg);
  assert.is(DEFAULT_NRI_SNIPPET, '/usr/share/nri-memshare/containerd/nri.toml');
  assert.not.match(warnings[0].msg, /packaging\//);

  // with no throttle every attempt warns: the count above is the throttle's doing
  const unthrottled: string[] = [];
  const reasons2: string[] = [];
  const stub2 = new Stub({}, {
    socketPath: missing, env: {}, retryWarnEveryMs: 0, backoff: { initialMs: 1, maxMs: 2 },
    logger: { ...log, warn: (_o: object, m?: string) => unthrottled.push(m ?? '') }, observer: { retrying: (r) => reasons2.push(r) },
  });
  cleanups.push(() => stub2.stop());
  void stub2.start();
  await waitFor(() => reasons2.length >= 3, 'three failed attempts');
  stub2.stop();
  assert.is(unthrottled.length, reasons2.length);
});

test('the agent: STATUS while retrying, READY=1 once registered, WATCHDOG=1, STOPPING=1 on SIGTERM', async () => {
  const dir = tempDir();
  const nriSocket = join(dir, 'nri.sock');
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    nri: { socket: nriSocket }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'),
    metrics: { address: '' },
  }));
  const address = uniqueAbstract();
  const r = receiver(address);
  // 200 ms watchdog: fed every 100 ms
  const agent = startPlugin([CLI, 'run', '--config', configPath], { NOTIFY_SOCKET: address, WATCHDOG_USEC: '200000' });
  cleanups.push(() => agent.kill('SIGKILL'));
  const status = () => r.messages().map((m) => m.get('STATUS')).filter((s): s is string => s !== undefined);

  // containerd absent: the agent says why it waits, and is not ready
  await within(waitFor(() => status().some((s) => s.startsWith('retrying: socket ')), 'a retrying STATUS', 15000), 'retrying STATUS', 16000)
    .catch((e: Error) => assert.unreachable(`${e.message}; got ${JSON.stringify(r.raw())}; agent said:\n${agent.output()}`));
  const retrying = status().find((s) => s.startsWith('retrying: '))!;
  assert.ok(retrying.includes(`${nriSocket} does not exist`), retrying);
  assert.not.ok(r.messages().some((m) => m.has('READY')), 'not READY before registration');

  const rt = await FakeRuntime.start({ path: nriSocket, auto: { runtimeName: 'containerd', runtimeVersion: 'v2.1.9' } });
  cleanups.push(() => rt.close());
  await waitFor(() => r.messages().some((m) => m.get('READY') === '1'), 'READY=1', 15000)
    .catch((e: Error) => assert.unreachable(`${e.message}; got ${JSON.stringify(r.raw())}; agent said:\n${agent.output()}`));
  const ready = r.messages().find((m) => m.get('READY') === '1')!;
  assert.match(ready.get('STATUS') ?? '', /^registered with containerd v2\.1\.9 since \d{4}-\d\d-\d\dT[\d:.]+Z$/);
  await agent.waitFor(/"msg":"nri: synchronized"/, 1, 15000); // the log line that READY follows

  const feeds = () => r.messages().filter((m) => m.get('WATCHDOG') === '1').length;
  await waitFor(() => feeds() >= 3, 'three WATCHDOG=1', 15000);

  await agent.kill('SIGTERM');
  assert.is(agent.child.exitCode, 0, agent.output());
  const last = r.messages().filter((m) => !m.has('WATCHDOG')).pop()!;
  assert.is(last.get('STOPPING'), '1');
  assert.is(r.messages().filter((m) => m.has('READY')).length, 1, 'READY once');
});

test.run();
