// Issue 12: the systemd unit under a real systemd. This machine's PID 1 is not systemd, so
// test/harness/systemd-node.sh boots the installed one (Debian 12: systemd 252) as PID 1 of its own
// namespaces, on a tmpfs overlay of /. Into that node goes what an admin installs: the RPM built
// from this checkout (`rpm -i`: its unit, its /usr/bin/nri-memshare, its config and containerd
// snippet), and containerd 1.7 and 2.1 from the harness's cache as containerd.service. Everything
// below is asked of that systemd and its journal: systemctl show, journalctl -o json, the
// watchdog's kill, BindsTo=containerd.service.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, realpathSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriClient, requireRoot, type RunningPod } from '../harness';
import { assertFetched } from '../harness/paths';
import { DAEMON_GID, NATIVE, STAND_IN_LIBS, UBS_IMAGE, freeMajor, ubsImageTar } from './ubs-env';
import { EXIT_CONFIG } from '../../plugin/agent/config';

const repo = join(__dirname, '../../..');
const harness = join(repo, 'test/harness/systemd-node.sh');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const UNIT = 'nri-memshare.service';
const SOCKET = '/var/run/nri/nri.sock';
// the Node that runs this test runs the agent too (/usr/bin/node is the launcher's default)
const agentNode = realpathSync(process.execPath);

interface Run { status: number | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], input?: string): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C', SYSTEMD_COLORS: '0' } });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

let nodeDir = '';
let nodePid = 0;
let work = '';

/** A command inside the node (nsenter into all its namespaces). */
function node(args: string[], input?: string): Run {
  return run('bash', [harness, 'exec', nodeDir, ...args], input);
}
function nodeMust(args: string[], input?: string): string {
  const r = node(args, input);
  if (r.status !== 0) throw new Error(`in the node: ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function show(unit = UNIT): Record<string, string> {
  const out = nodeMust(['systemctl', 'show', '-p', 'ActiveState,SubState,StatusText,MainPID,NRestarts,Result,WatchdogUSec,ExecMainStatus', unit]);
  const o: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) o[line.slice(0, i)] = line.slice(i + 1);
  }
  return o;
}

interface Entry { PRIORITY: string; MESSAGE: string; MESSAGE_ID?: string; _PID?: string; SYSLOG_IDENTIFIER?: string; __MONOTONIC_TIMESTAMP: string; _SYSTEMD_INVOCATION_ID?: string; INVOCATION_ID?: string; [k: string]: unknown }

function journal(args: string[]): Entry[] {
  const out = nodeMust(['journalctl', '--no-pager', '-o', 'json', ...args]);
  return out.split('\n').filter(Boolean).map((l) => {
    const e = JSON.parse(l) as Entry;
    // journald stores a MESSAGE that is not valid UTF-8 as an array of bytes
    if (Array.isArray(e.MESSAGE)) e.MESSAGE = Buffer.from(e.MESSAGE as number[]).toString('utf8');
    return e;
  });
}

/** The agent's own lines (its stdout), parsed. */
function agentLines(entries: Entry[]): Array<Entry & { json: { level: string; msg: string; [k: string]: unknown } }> {
  return entries.filter((e) => e.SYSLOG_IDENTIFIER !== 'systemd' && e.MESSAGE.startsWith('{')).map((e) => ({ ...e, json: JSON.parse(e.MESSAGE) }));
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000, why: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out (${timeoutMs / 1000} s) waiting for ${what}\n${why()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const statusDiag = () => {
  const r = node(['systemctl', 'status', '--no-pager', '-n', '30', UNIT]);
  return `${r.stdout}${r.stderr}`;
};

async function waitActive(runtime: RegExp): Promise<Record<string, string>> {
  return until(`${UNIT} active (running) with STATUS= "registered with ..."`, () => {
    const s = show();
    return s.ActiveState === 'active' && s.SubState === 'running' && runtime.test(s.StatusText) ? s : undefined;
  }, 60_000, statusDiag);
}

/**
 * Before each restart the test makes on purpose: this test starts the agent about 7 times within
 * seconds, past systemd's default start limit (5 starts in 10 s), which is there for crash loops;
 * `reset-failed` also resets a unit's start counter.
 */
function resetStartLimit(): void {
  nodeMust(['systemctl', 'reset-failed', UNIT]);
}

function stopNode(): void {
  if (!nodeDir) return;
  if (process.env.NRI_MEMSHARE_SYSTEMD_KEEP === '1') {
    process.stdout.write(`\nNRI_MEMSHARE_SYSTEMD_KEEP=1: the node stays up: bash ${harness} exec ${nodeDir} systemctl status; stop it with: bash ${harness} stop ${nodeDir}\n`);
    nodeDir = '';
    return;
  }
  const r = run('bash', [harness, 'stop', nodeDir]);
  if (r.status !== 0) process.stderr.write(`systemd-node stop: ${r.stdout}${r.stderr}\n`);
  nodeDir = '';
}

/**
 * The RPM of this checkout, built as a distribution's build system does: the SRPM (make-tarball.sh's
 * two sources and spec, rpmbuild -bs), rebuilt with `rpmbuild --rebuild` in a network namespace
 * with only lo (unshare -n). release > 1: the spec's Release: bumped, which rpm takes for a newer
 * package (the upgrade test's "next release"). --nodeps: Debian's node is not an rpm package.
 */
function buildRpm(release = 1): string {
  const out = join(work, 'out');
  must('bash', [join(repo, 'scripts/make-tarball.sh'), '--no-build', '--out', out]);
  const top = join(work, release === 1 ? 'top' : `top-r${release}`);
  let spec = join(out, 'nri-memshare.spec');
  if (release !== 1) {
    const text = readFileSync(spec, 'utf8');
    assert.match(text, /^Release:\s+1%\{\?dist\}$/m, 'the spec says Release: 1%{?dist}');
    spec = join(out, `nri-memshare-r${release}.spec`);
    writeFileSync(spec, text.replace(/^Release:\s+1%\{\?dist\}$/m, `Release:        ${release}%{?dist}`));
  }
  must('rpmbuild', ['-bs', '--quiet', '--define', `_topdir ${top}`, '--define', `_sourcedir ${out}`, spec]);
  const srpm = join(top, 'SRPMS', readdirSync(join(top, 'SRPMS'))[0]);
  must('unshare', ['-n', 'rpmbuild', '--rebuild', '--quiet', '--nodeps', '--define', `_topdir ${top}`, '--define', `_tmppath ${work}`, srpm]);
  const rpms: string[] = [];
  for (const arch of readdirSync(join(top, 'RPMS'))) for (const f of readdirSync(join(top, 'RPMS', arch))) rpms.push(join(top, 'RPMS', arch, f));
  assert.is(rpms.length, 1, `one RPM: ${rpms.join(', ')}`);
  return rpms[0];
}

const captured: Record<string, string> = {};
function capture(name: string, text: string): void {
  captured[name] = text;
  process.stdout.write(`\n----- ${name} -----\n${text.trimEnd()}\n-----\n`);
}

const test = suite('systemd-node: the unit under a real systemd');
let ok = true;
try {
  ok = requireRoot('systemd-node');
} catch (e) {
  test('requires root', () => {
    throw e;
  });
  ok = false;
}

if (ok) {
  process.on('exit', () => {
    stopNode();
    if (work && process.env.NRI_MEMSHARE_SYSTEMD_KEEP !== '1') rmSync(work, { recursive: true, force: true });
  });
  test.after(() => {
    stopNode();
    if (work && process.env.NRI_MEMSHARE_SYSTEMD_KEEP !== '1') rmSync(work, { recursive: true, force: true });
    work = '';
    if (process.env.NRI_MEMSHARE_SYSTEMD_CAPTURE) {
      writeFileSync(process.env.NRI_MEMSHARE_SYSTEMD_CAPTURE, `${JSON.stringify(captured, null, 2)}\n`);
    }
  });

  let rpm = '';
  test('a node boots: systemd as PID 1 of its own namespaces, containerd 1.7 as a unit', async () => {
    assertFetched('1.7');
    assertFetched('2.1');
    for (const t of ['rpmbuild', 'rpm', 'unshare', 'nsenter', '/lib/systemd/systemd']) {
      assert.is(run('sh', ['-c', `command -v ${t}`]).status, 0, `${t} is installed (apt-get install rpm util-linux systemd)`);
    }
    work = mkdtempSync('/tmp/nms-sdnode-');
    rpm = buildRpm();
    nodeDir = join(work, 'node');
    // NMS_NODE_OWNER: the node goes when this process goes, even if it is killed (SIGKILL)
    if (process.env.NRI_MEMSHARE_SYSTEMD_KEEP !== '1') process.env.NMS_NODE_OWNER = String(process.pid);
    nodePid = Number(must('bash', [harness, 'start', nodeDir, '1.7']).trim());
    delete process.env.NMS_NODE_OWNER;
    assert.ok(nodePid > 1, 'the node has a host pid');
    // (no --wait: that needs D-Bus, which this node does not run; systemctl talks to PID 1 over
    // its private socket)
    const state = await until('the boot to end', () => {
      const st = node(['systemctl', 'is-system-running']).stdout.trim();
      return ['initializing', 'starting', ''].includes(st) ? undefined : st;
    }, 60_000, () => node(['systemctl', 'list-jobs', '--no-pager']).stdout);
    assert.is(state, 'running', `the node's systemd says ${state}: ${node(['systemctl', '--failed', '--no-pager']).stdout}`);
    assert.is(nodeMust(['cat', '/proc/1/comm']).trim(), 'systemd', 'PID 1 in the node is systemd');
    assert.match(nodeMust(['systemctl', '--version']), /^systemd \d+/);
    assert.is(show('containerd.service').ActiveState, 'active', 'containerd.service runs');
  });

  test('the RPM installs into the node; systemd-analyze verify and the journal accept the unit', () => {
    const inNode = `/var/tmp/${rpm.split('/').pop()}`;
    copyFileSync(rpm, `/proc/${nodePid}/root${inNode}`);
    // --nodeps: nodejs and containerd are not rpm packages on this Debian machine
    nodeMust(['rpm', '-i', '--nodeps', '--nosignature', inNode]);
    for (const p of ['/usr/bin/nri-memshare', '/usr/lib/systemd/system/nri-memshare.service', '/usr/lib/systemd/system/nri-memshare.service.d/10-runtime.conf',
      '/usr/share/doc/nri-memshare/README.md', '/usr/share/doc/nri-memshare/docs/operations.md', '/usr/share/licenses/nri-memshare/node_modules-licenses/pino/LICENSE', '/etc/nri-memshare/config.json',
      '/usr/share/bash-completion/completions/nri-memshare', '/usr/share/nri-memshare/containerd/nri.toml']) {
      assert.is(node(['test', '-e', p]).status, 0, `the RPM installed ${p}`);
    }
    assert.is(nodeMust(['cat', '/usr/lib/systemd/system/nri-memshare.service']), readFileSync(join(repo, 'systemd/nri-memshare.service'), 'utf8'),
      'the installed unit is this checkout\'s');
    const v = node(['systemd-analyze', 'verify', UNIT]);
    assert.is(v.status, 0, `systemd-analyze verify ${UNIT}: ${v.stdout}${v.stderr}`);
    const complaints = `${v.stdout}${v.stderr}`.split('\n').filter((l) => l.includes('nri-memshare'));
    assert.equal(complaints, [], 'systemd-analyze verify has nothing to say about the unit');
    if (agentNode !== '/usr/bin/node') {
      // test/all.sh runs the suite under Node 20 and Node 24, and the agent runs under the Node
      // that runs the tests: here through the launcher's documented override, in a drop-in
      nodeMust(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
      nodeMust(['tee', `/etc/systemd/system/${UNIT}.d/10-node.conf`], `[Service]\nEnvironment=NRI_MEMSHARE_NODE=${agentNode}\n`);
      nodeMust(['systemctl', 'daemon-reload']);
    }
    nodeMust(['systemctl', 'enable', UNIT]);
    assert.is(nodeMust(['systemctl', 'is-enabled', UNIT]).trim(), 'enabled');
    assert.is(node(['test', '-L', `/etc/systemd/system/containerd.service.wants/${UNIT}`]).status, 0,
      'enable links it into containerd.service.wants (WantedBy=containerd.service)');
  });

  test('Type=notify: "activating" while containerd 1.7 has NRI off, its Status: saying why', async () => {
    nodeMust(['systemctl', 'start', '--no-block', UNIT]);
    const s = await until('STATUS= retrying', () => {
      const s = show();
      return /^retrying: /.test(s.StatusText) ? s : undefined;
    }, 60_000, statusDiag);
    assert.is(s.ActiveState, 'activating', `not active before registering: ${JSON.stringify(s)}`);
    assert.is(s.SubState, 'start');
    assert.match(s.StatusText, `retrying: socket ${SOCKET} does not exist`);
    assert.match(s.StatusText, 'containerd 1.7 has NRI disabled by default; see /usr/share/nri-memshare/containerd/nri.toml');
    assert.is(node(['systemctl', 'is-active', UNIT]).stdout.trim(), 'activating');
    assert.match(statusDiag(), /Active: activating \(start\)/);
    assert.match(statusDiag(), /Status: "retrying: socket/);
    // what PID 1 said while loading the unit it now runs (e.g. "/lib/systemd/system/nri-memshare.service:12:
    // Unknown key 'X' in section [Service], ignoring."): nothing
    const said = journal(['_PID=1']).map((e) => e.MESSAGE)
      .filter((m) => m.includes('nri-memshare.service') && /\.service:\d+: |unknown|ignoring|deprecated|unsupported|not supported/i.test(m));
    assert.equal(said, [], 'systemd logged no complaint about the unit file');
  });

  test('journald: -p warning has the retry warning at priority 4 and no info lines; info lines are priority 6', async () => {
    // (journald takes the agent's stdout in its own time: wait for the line, then look at all)
    const warnings = await until('a warning in the journal', () => {
      const w = journal(['-u', UNIT, '-p', 'warning']);
      return w.length > 0 ? w : undefined;
    }, 30_000, () => node(['journalctl', '--no-pager', '-u', UNIT]).stdout);
    for (const e of warnings) assert.ok(Number(e.PRIORITY) <= 4, `priority ${e.PRIORITY} in -p warning: ${e.MESSAGE}`);
    const lines = agentLines(warnings);
    const retry = lines.find((l) => l.json.msg.startsWith(`nri: socket ${SOCKET} does not exist`));
    assert.ok(retry, `the retry warning is there: ${warnings.map((e) => e.MESSAGE).join('\n')}`);
    assert.is(retry!.PRIORITY, '4');
    assert.is(retry!.json.level, 'warn');
    assert.ok(!retry!.MESSAGE.startsWith('<'), 'journald stripped the <4> prefix');
    assert.equal(lines.filter((l) => l.json.level === 'info'), [], 'no info line in -p warning');
    const all = agentLines(journal(['-u', UNIT]));
    const started = all.find((l) => l.json.msg === 'nri-memshare started');
    assert.ok(started, 'the start line is in the journal');
    assert.is(started!.PRIORITY, '6');
    for (const l of all) {
      const want = { trace: '7', debug: '7', info: '6', warn: '4', error: '3', fatal: '2' }[l.json.level];
      assert.is(l.PRIORITY, want, `level ${l.json.level} is priority ${want}: ${l.MESSAGE}`);
    }
  });

  test('active (running) only after containerd registered it: the snippet in conf.d, containerd restarted', async () => {
    nodeMust(['cp', '/usr/share/nri-memshare/containerd/nri.toml', '/etc/containerd/conf.d/nri-memshare.toml']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', 'containerd']);
    const s = await waitActive(/^registered with containerd 1\.7\.\d+\S* since \d{4}-\d\d-\d\dT/);
    // the order, from the two clocks' own records (journald's receive order of the agent's stdout
    // and PID 1's messages is not the order they happened in): the agent logs "synchronized" and
    // then sends READY=1; systemd records the moment it took the unit for active
    const inv = nodeMust(['systemctl', 'show', '-P', 'InvocationID', UNIT]).trim();
    const synced = agentLines(journal([`_SYSTEMD_INVOCATION_ID=${inv}`])).find((l) => l.json.msg === 'nri: synchronized');
    assert.ok(synced, 'this run of the agent logged "nri: synchronized"');
    const enter = nodeMust(['systemctl', 'show', '--timestamp=us+utc', '-P', 'ActiveEnterTimestamp', UNIT]).trim();
    const m = /^\w+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\.(\d{6}) UTC$/.exec(enter);
    assert.ok(m, `ActiveEnterTimestamp ${enter}`);
    const activeAtMs = Date.parse(`${m![1]}T${m![2]}.${m![3].slice(0, 3)}Z`);
    const syncedAtMs = Date.parse(String(synced!.json.time));
    assert.ok(syncedAtMs <= activeAtMs, `systemd took the unit for active (${enter}) only after the agent synchronized (${String(synced!.json.time)})`);
    // the node as an admin sees it right after enabling NRI (docs/operations.md shows these)
    capture('systemctl status nri-memshare', node(['systemctl', 'status', '--no-pager', UNIT]).stdout);
    capture('journalctl -u nri-memshare -p warning', nodeMust(['journalctl', '--no-pager', '-u', UNIT, '-p', 'warning']));
    capture('nri-memshare status', nodeMust(['nri-memshare', 'status']));
    assert.is(show().MainPID, s.MainPID);
    assert.is(nodeMust(['readlink', `/proc/${s.MainPID}/exe`]).trim(), agentNode, `the agent runs under ${agentNode}`);
    // the unit's hardening, as the kernel applies it to the running agent
    const proc = nodeMust(['cat', `/proc/${s.MainPID}/status`]);
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(proc)?.[1];
    assert.is(field('NoNewPrivs'), '1', 'NoNewPrivileges=yes');
    assert.is(field('Seccomp'), '2', 'SystemCallFilter= and RestrictAddressFamilies= are a seccomp filter');
    // CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_FOWNER 3, CAP_KILL 5, CAP_SYS_ADMIN 21
    assert.is(field('CapBnd'), (2 ** 0 + 2 ** 1 + 2 ** 3 + 2 ** 5 + 2 ** 21).toString(16).padStart(16, '0'), 'CapabilityBoundingSet=');
  });

  test('nri-memshare status (and --json) in the node: running, registered with containerd 1.7', () => {
    const pid = show().MainPID;
    const text = nodeMust(['nri-memshare', 'status']);
    assert.match(text, new RegExp(`^agent: running \\(pid ${pid}, version ${version.replace(/\./g, '\\.')}, since `));
    assert.match(text, new RegExp(`\\nnri: registered with containerd 1\\.7\\.\\d+\\S*, NRI v0\\.6\\.\\d+ \\(inferred from its version\\) since \\S+, on ${SOCKET}\\n`));
    const j = JSON.parse(nodeMust(['nri-memshare', 'status', '--json'])) as { agent: { running: boolean; pid: number; nri: { state: string; runtime: { name: string; version: string; nriVersion: string } } } };
    assert.is(j.agent.running, true);
    assert.is(String(j.agent.pid), pid);
    assert.is(j.agent.nri.state, 'synchronized');
    assert.is(j.agent.nri.runtime.name, 'containerd');
    assert.match(j.agent.nri.runtime.version, /^1\.7\./);
    assert.match(j.agent.nri.runtime.nriVersion, /^v0\.6\./);
  });

  test('error and fatal lines are priorities 3 and 2 (the agent as transient units, systemd-run)', async () => {
    // an agent whose agent-state.json cannot be written (a directory is in its way): the error
    // "agent state: cannot record it for status". Its socket leads nowhere, so it never registers.
    nodeMust(['mkdir', '-p', '/var/lib/nms-second/agent-state.json/in-the-way']);
    nodeMust(['sh', '-c', 'sed -e "s|/var/lib/nri-memshare|/var/lib/nms-second|; s|/run/nri-memshare/shares|/run/nms-second/shares|; s|/var/run/nri/nri.sock|/run/nms-second/none.sock|; s|127.0.0.1:9464|127.0.0.1:9465|" /etc/nri-memshare/config.json > /etc/nms-second.json']);
    nodeMust(['systemd-run', '--unit=nms-second', '--collect', '-p', 'Restart=no', '/usr/bin/nri-memshare', 'run', '--config', '/etc/nms-second.json']);
    try {
      const err = await until('the error line', () =>
        agentLines(journal(['-u', 'nms-second'])).find((l) => l.json.msg === 'agent state: cannot record it for status'), 30_000,
      () => node(['journalctl', '--no-pager', '-u', 'nms-second']).stdout);
      assert.is(err.json.level, 'error');
      assert.is(err.PRIORITY, '3');
    } finally {
      node(['systemctl', 'stop', 'nms-second']);
    }
    // a start that fails on its config: one fatal line, exit status EXIT_CONFIG (78)
    // (systemd-run --wait needs D-Bus: the unit's end is polled instead)
    nodeMust(['systemd-run', '--unit=nms-broken', '-p', 'Restart=no', '/usr/bin/nri-memshare', 'run', '--config', '/etc/nms-missing.json']);
    try {
      const ended = await until('nms-broken to fail', () => {
        const st = show('nms-broken.service');
        return st.ActiveState === 'failed' ? st : undefined;
      }, 30_000, () => node(['systemctl', 'status', '--no-pager', 'nms-broken']).stdout);
      assert.is(ended.Result, 'exit-code');
      assert.is(nodeMust(['systemctl', 'show', '-P', 'ExecMainStatus', 'nms-broken']).trim(), String(EXIT_CONFIG), 'exit status EXIT_CONFIG');
    } finally {
      node(['systemctl', 'reset-failed', 'nms-broken']);
    }
    const fatal = agentLines(journal(['-u', 'nms-broken'])).find((l) => l.json.msg.startsWith('start failed: '));
    assert.ok(fatal, `the fatal line is in the journal: ${journal(['-u', 'nms-broken']).map((e) => e.MESSAGE).join('\n')}`);
    assert.is(fatal!.json.level, 'fatal');
    assert.is(fatal!.PRIORITY, '2');
  });

  test('watchdog: an agent whose event loop stops (SIGSTOP) is killed for it and restarted', async () => {
    // The shipped WatchdogSec=30s would make this test wait 30 s and more; a drop-in shortens it to
    // 3 s (the agent then pings every 1.5 s, half of WATCHDOG_USEC). LimitCORE=0: no core file.
    nodeMust(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
    nodeMust(['tee', `/etc/systemd/system/${UNIT}.d/test-watchdog.conf`], '[Service]\nWatchdogSec=3s\nLimitCORE=0\n');
    nodeMust(['systemctl', 'daemon-reload']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', UNIT]);
    const before = await waitActive(/^registered with containerd 1\.7/);
    assert.is(before.WatchdogUSec, '3s');
    const restarts = Number(before.NRestarts);
    const since = nodeMust(['date', '+%Y-%m-%d %H:%M:%S']).trim();
    nodeMust(['kill', '-STOP', before.MainPID]);
    const after = await until('a restart after the watchdog fired', () => {
      const s = show();
      return Number(s.NRestarts) > restarts && s.MainPID !== before.MainPID && s.ActiveState === 'active' && s.SubState === 'running' ? s : undefined;
    }, 90_000, statusDiag);
    assert.is(Number(after.NRestarts), restarts + 1, 'one restart');
    const said = journal(['-u', UNIT, '--since', since]).filter((e) => e.SYSLOG_IDENTIFIER === 'systemd').map((e) => e.MESSAGE);
    assert.ok(said.some((m) => m === `${UNIT}: Watchdog timeout (limit 3s)!`), `systemd saw the watchdog time out:\n${said.join('\n')}`);
    // (the process name is "node" under Node 20, "MainThread" under Node 24)
    assert.ok(said.some((m) => new RegExp(`^${UNIT.replace('.', '\\.')}: Killing process ${before.MainPID} \\(.+\\) with signal SIGABRT\\.$`).test(m)), said.join('\n'));
    assert.ok(said.some((m) => m === `${UNIT}: Failed with result 'watchdog'.`), said.join('\n'));
    // back to the shipped unit
    nodeMust(['rm', `/etc/systemd/system/${UNIT}.d/test-watchdog.conf`]);
    nodeMust(['systemctl', 'daemon-reload']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', UNIT]);
    assert.is((await waitActive(/^registered with containerd 1\.7/)).WatchdogUSec, '30s');
  });

  test('a refused config: the shipped unit lands in failed (RestartPreventExitStatus), not in a restart loop', async () => {
    // the shipped unit, its config replaced by one with an unknown key (a drop-in on ExecStart)
    nodeMust(['sh', '-c', 'sed -e "s|^{|{\\"notAKey\\": 1,|" /etc/nri-memshare/config.json > /etc/nms-refused.json']);
    nodeMust(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
    nodeMust(['tee', `/etc/systemd/system/${UNIT}.d/test-refused.conf`], '[Service]\nExecStart=\nExecStart=/usr/bin/nri-memshare run --config /etc/nms-refused.json\n');
    nodeMust(['systemctl', 'daemon-reload']);
    resetStartLimit();
    try {
      node(['systemctl', 'restart', UNIT]); // fails: the start is refused
      const failed = await until(`${UNIT} failed`, () => {
        const st = show();
        return st.ActiveState === 'failed' ? st : undefined;
      }, 60_000, statusDiag);
      assert.is(failed.Result, 'exit-code');
      assert.is(failed.ExecMainStatus, String(EXIT_CONFIG));
      // RestartSec is 2s: well past it, still failed and never restarted
      await new Promise((r) => setTimeout(r, 6000));
      const later = show();
      assert.is(later.ActiveState, 'failed', 'no restart into the same refusal');
      assert.is(later.NRestarts, failed.NRestarts, 'NRestarts unchanged');
      const fatal = agentLines(journal(['-u', UNIT])).filter((l) => l.json.msg.startsWith('start failed: config /etc/nms-refused.json'));
      assert.is(fatal.length, 1, 'one refusal in the journal, not one per RestartSec');
      assert.match(fatal[0].json.msg, 'notAKey: unknown key');
    } finally {
      nodeMust(['rm', '-f', `/etc/systemd/system/${UNIT}.d/test-refused.conf`, '/etc/nms-refused.json']);
      nodeMust(['systemctl', 'daemon-reload']);
      node(['systemctl', 'reset-failed', UNIT]);
      resetStartLimit();
      nodeMust(['systemctl', 'restart', UNIT]);
    }
    await waitActive(/^registered with containerd 1\.7/);
  });

  test('BindsTo=containerd.service: stopping containerd stops the agent; starting it starts the agent', async () => {
    nodeMust(['systemctl', 'stop', 'containerd']);
    await until(`${UNIT} inactive`, () => show().ActiveState === 'inactive', 60_000, statusDiag);
    // exit 3, as `systemctl status` of a stopped unit
    const st = node(['nri-memshare', 'status']);
    assert.is(st.status, 3, `status of a stopped agent exits 3: ${st.stdout}${st.stderr}`);
    const text = st.stdout;
    assert.match(text, /^agent: NOT RUNNING: the agent \(pid \d+\) stopped at \S+\n/);
    assert.match(text, /\nnri: not registered \(no agent\)/);
    const sj = node(['nri-memshare', 'status', '--json']);
    assert.is(sj.status, 3);
    const j = JSON.parse(sj.stdout) as { agent: { running: boolean; reason: string } };
    assert.is(j.agent.running, false);
    capture('nri-memshare status (stopped)', text);
    resetStartLimit();
    nodeMust(['systemctl', 'start', 'containerd']);
    await waitActive(/^registered with containerd 1\.7/);
  });

  test('systemd-analyze security of the installed unit: exposure at or below 4.9; UMask, RestrictNamespaces, OOMScoreAdjust in effect', () => {
    const r = node(['systemd-analyze', 'security', '--no-pager', UNIT]);
    const m = /Overall exposure level for nri-memshare\.service: (\d+\.\d)/.exec(r.stdout);
    assert.ok(m, `systemd-analyze security said:\n${r.stdout}${r.stderr}`);
    capture('systemd-analyze security nri-memshare.service (exposure)', m[0]);
    assert.ok(Number(m[1]) <= 4.9, `exposure ${m[1]}`);
    const s = show();
    const pid = s.MainPID;
    assert.match(nodeMust(['systemctl', 'show', '-p', 'OOMScoreAdjust', UNIT]), /^OOMScoreAdjust=-999$/m);
    // lowering a score needs CAP_SYS_RESOURCE, which some VMs and containers withhold even from
    // root (this one does: containerd runs with restrict_oom_score_adj); systemd then starts the
    // unit at the score it has, as it did here
    const capSysResource = (BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n;
    const adj = nodeMust(['cat', `/proc/${pid}/oom_score_adj`]).trim();
    if (capSysResource) assert.is(adj, '-999');
    else process.stdout.write(`\n  oom_score_adj ${adj}: this machine withholds CAP_SYS_RESOURCE, so -999 could not be applied\n`);
    assert.match(nodeMust(['grep', '^Umask:', `/proc/${pid}/status`]), /^Umask:\s+0077$/m);
    // still the host's mount namespace (the node's): the shares it mounts are containerd's to see
    assert.is(nodeMust(['readlink', `/proc/${pid}/ns/mnt`]).trim(), nodeMust(['readlink', '/proc/1/ns/mnt']).trim());
    // the state files it writes under UMask=0077 are root's alone
    assert.is(nodeMust(['stat', '-c', '%a', '/var/lib/nri-memshare/agent-state.json']).trim(), '600');
  });

  test('another runtime unit is a drop-in away: BindsTo=k3s.service in /etc, add-wants; k3s stops and starts the agent', async () => {
    assert.match(nodeMust(['systemctl', 'show', '-p', 'BindsTo', UNIT]), /^BindsTo=.*\bcontainerd\.service\b/m, 'the shipped drop-in binds it to containerd');
    // k3s.service: the same containerd under another unit name (as k3s and RKE2 embed theirs)
    nodeMust(['systemctl', 'stop', 'containerd']);
    await until(`${UNIT} inactive`, () => show().ActiveState === 'inactive', 60_000, statusDiag);
    nodeMust(['sh', '-c', 'sed "s/^Description=.*/Description=k3s stand-in: containerd under another unit name/" /etc/systemd/system/containerd.service > /etc/systemd/system/k3s.service']);
    nodeMust(['mkdir', '-p', `/etc/systemd/system/${UNIT}.d`]);
    nodeMust(['tee', `/etc/systemd/system/${UNIT}.d/10-runtime.conf`], '[Unit]\nBindsTo=k3s.service\nAfter=k3s.service\n');
    nodeMust(['systemctl', 'daemon-reload']);
    nodeMust(['systemctl', 'add-wants', 'k3s.service', UNIT]);
    const binds = nodeMust(['systemctl', 'show', '-p', 'BindsTo', '-p', 'After', UNIT]);
    assert.match(binds, /^BindsTo=k3s\.service$/m, binds);
    assert.not.match(binds, /containerd\.service/, 'the /etc drop-in replaced the shipped one');
    resetStartLimit();
    nodeMust(['systemctl', 'start', 'k3s.service']);
    await waitActive(/^registered with containerd 1\.7/);
    nodeMust(['systemctl', 'stop', 'k3s.service']);
    await until(`${UNIT} inactive after k3s stopped`, () => show().ActiveState === 'inactive', 60_000, statusDiag);
    // back to containerd.service for the rest of the run
    nodeMust(['rm', '-f', `/etc/systemd/system/${UNIT}.d/10-runtime.conf`, '/etc/systemd/system/k3s.service', `/etc/systemd/system/k3s.service.wants/${UNIT}`]);
    nodeMust(['systemctl', 'daemon-reload']);
    assert.match(nodeMust(['systemctl', 'show', '-p', 'BindsTo', UNIT]), /^BindsTo=.*\bcontainerd\.service\b/m);
    resetStartLimit();
    nodeMust(['systemctl', 'start', 'containerd']);
    await waitActive(/^registered with containerd 1\.7/);
  });

  test('containerd 2.1 in place of 1.7: the agent follows the restart and registers with it', async () => {
    must('bash', [harness, 'containerd', nodeDir, '2.1']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', 'containerd']);
    const s = await waitActive(/^registered with containerd 2\.1\.\d+\S* since /);
    const text = nodeMust(['nri-memshare', 'status']);
    assert.match(text, new RegExp(`^agent: running \\(pid ${s.MainPID}, `));
    assert.match(text, /\nnri: registered with containerd 2\.1\.\d+\S*, NRI v0\.8\.\d+( \(inferred from its version\))? since /);
    const j = JSON.parse(nodeMust(['nri-memshare', 'status', '--json'])) as { agent: { nri: { runtime: { nriVersion: string; nriVersionSource: string } } } };
    assert.match(j.agent.nri.runtime.nriVersion, /^v0\.8\./);
    capture('systemctl status nri-memshare (containerd 2.1)', node(['systemctl', 'status', '--no-pager', UNIT]).stdout);
    capture('nri-memshare status (containerd 2.1)', text);
    const w = node(['journalctl', '--no-pager', '-u', UNIT, '-p', 'warning']);
    capture('journalctl -u nri-memshare -p warning (end)', `${w.stdout}${w.stderr ? `(stderr: ${w.stderr}, exit ${w.status})` : ''}`);
  });
  // ---- Issue 20: UB shares outlive the agent across restarts, an RPM upgrade and its removal ----
  // The agent on the ubs backend, over the C double of libubsm_sdk.so (dist/native/ubs; the vendor's
  // SDK, ubsmd and obmm cannot run here) with ubsmd-standin as the daemon's socket, as a unit of the
  // node's own (nms-ubsmd). A pod through CRI (host network, the UB test image) binds a share: the
  // agent's UB holder (dist/agent/ubs-holder.js, started by the agent in the unit's cgroup) maps it.
  // The double lists each live mapping as <state>/maps/<name>@<node>@<pid>.<seq>.<t>.
  const UB = '/var/lib/nms-ub';
  /** dist/native/ubs as the node sees it (copied in) */
  const NODE_NATIVE = `${UB}/native`;
  const UB_SOCKDIR = `${UB}/matrix/memory`;
  const UB_STATE = `${UB}/state`;
  const UB_DEV = `${UB}/dev`;
  const HOLDER_SOCK = '/var/lib/nri-memshare/ubs-holder.sock';
  const UB_NS = 'team-up';
  const UB_SHARE = 'kept-across';
  const UB_SDK_NAME = `nms.${UB_NS}.${UB_SHARE}`;
  let cri: CriClient | undefined;
  let ubPod: RunningPod | undefined;
  let ubCtr = '';
  let ubHolder = 0;
  let ubMemids: number[] = [];
  /** where the next checks of the journal start: the cursor of the unit's last entry */
  let ubCursor = '';

  /** The holder's pid in the node (its command line names the socket), or 0. */
  const holderPid = (): number => {
    const r = node(['pgrep', '-f', `ubs-holder\\.js --socket ${HOLDER_SOCK.replace(/\./g, '\\.')}`]);
    const pids = r.stdout.split('\n').filter(Boolean).map(Number);
    if (pids.length > 1) throw new Error(`more than one holder: ${pids.join(' ')}`);
    return pids[0] ?? 0;
  };
  /** The double's live mappings of the share, as the pids that hold them. */
  const mappers = (): number[] => {
    let entries: string[];
    try {
      entries = readdirSync(`/proc/${nodePid}/root${UB_STATE}/maps`);
    } catch {
      return [];
    }
    // (".tmp." names are the double's half-written files)
    return entries.filter((e) => !e.includes('.tmp.') && e.startsWith(`${UB_SDK_NAME}@local@`))
      .map((e) => Number(e.split('@')[2].split('.')[0])).sort();
  };
  /** The share's memids on this node as the double records them (<state>/attach/<name>@local). */
  const attachedMemids = (): number[] => {
    try {
      const t = readFileSync(`/proc/${nodePid}/root${UB_STATE}/attach/${UB_SDK_NAME}@local`, 'utf8');
      return (/^memids=(.*)$/m.exec(t)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const alive = (pid: number): boolean => pid > 0 && node(['kill', '-0', String(pid)]).status === 0;
  const markJournal = (): void => {
    const last = journal(['-u', UNIT, '-n', '1']);
    ubCursor = String(last[last.length - 1]?.__CURSOR ?? '');
  };
  /** The unit's lines (agent and holder) since markJournal(). */
  const linesSinceMark = () => agentLines(journal(['-u', UNIT, ...(ubCursor ? ['--after-cursor', ubCursor] : [])]));
  /** Evictions, releases, unmaps and holder stops since markJournal(): there must be none. */
  const disturbances = () => linesSinceMark().map((l) => l.json.msg)
    .filter((m) => /evict/i.test(m) || m === 'share released' || m === 'unmapped' || m.startsWith('holder stopping') || m.startsWith('ubs: the holder was replaced'));
  const ubDiag = () => `${statusDiag()}\n${node(['journalctl', '--no-pager', '-u', UNIT, '-n', '40']).stdout}`;
  const statusJson = () => JSON.parse(((r) => {
    // 0 registered, 1 not registered, 3 not running: the JSON is printed in each case
    if (r.status !== 0 && r.status !== 1 && r.status !== 3) throw new Error(`nri-memshare status --json exited ${r.status}: ${r.stderr}`);
    return r.stdout;
  })(node(['nri-memshare', 'status', '--json']))) as {
    agent: { running: boolean; pid: number };
    holder?: { running: boolean; pid: number; version: string; maps: string[] };
    shares: Array<{ namespace: string; name: string; holders: unknown[]; handle?: { memIds?: number[] } }>;
  };
  /** The running agent (MainPID) logged "ubs: holder found" with the share held and reconciled. */
  const newAgentFoundHolder = async (mainPid: string) => {
    const found = await until(`agent ${mainPid}: "ubs: holder found" and "reconciled with the runtime"`, () => {
      const ls = agentLines(journal(['-u', UNIT, `_PID=${mainPid}`]));
      const f = ls.find((l) => l.json.msg === 'ubs: holder found');
      return f && ls.some((l) => l.json.msg === 'reconciled with the runtime') ? f : undefined;
    }, 60_000, ubDiag);
    assert.is(found.json.pid, ubHolder, `the agent found the same holder: ${found.MESSAGE}`);
    assert.is(found.json.holds, 1, `with the share held: ${found.MESSAGE}`);
    // the background restore runs once the holder answered: give it a moment to act (or misact)
    await new Promise((r) => setTimeout(r, 1500));
    return found;
  };
  /** What must hold after each restart: same holder, same mapping and memids, the app runs. */
  const unchanged = async (what: string) => {
    assert.is(holderPid(), ubHolder, `${what}: the holder's pid is unchanged`);
    assert.equal(mappers(), [ubHolder], `${what}: the holder still maps the share, and only it`);
    assert.equal(attachedMemids(), ubMemids, `${what}: the share keeps its memids`);
    assert.is((await cri!.containerStatus(ubCtr)).state, 'CONTAINER_RUNNING', `${what}: the container still runs`);
    const st = statusJson().shares.find((s) => s.namespace === UB_NS && s.name === UB_SHARE);
    assert.equal(st?.handle?.memIds, ubMemids, `${what}: status shows the same memids`);
    assert.is(st?.holders.length, 1, `${what}: the container is still bound`);
    assert.equal(disturbances(), [], `${what}: no eviction, release, unmap or holder stop in the journal`);
  };

  test('UB node: the agent on the ubs backend (double + stand-in daemon), a pod through CRI binds a share, the holder maps it', async () => {
    // the double's daemon dir, state (shared with containers: 0777), device dir, /proc/devices
    const major = freeMajor();
    nodeMust(['mkdir', '-p', UB_SOCKDIR, UB_DEV, `${UB}/cdi`, NODE_NATIVE]);
    nodeMust(['mkdir', '-m', '0777', '-p', UB_STATE]);
    nodeMust(['tee', `${UB}/proc-devices`], `Character devices:\n  1 mem\n${major} OBMM_SHMDEV\n\nBlock devices:\n`);
    // the double, the stand-in and their libraries, copied into the node: the node has a /tmp of
    // its own, so a checkout under /tmp (CI's clean clone may be one) is not visible in it
    must('cp', ['-a', `${NATIVE}/.`, `/proc/${nodePid}/root${NODE_NATIVE}`]);
    // the daemon stand-in: a unit of the test's own
    nodeMust(['systemd-run', '--unit=nms-ubsmd', '-p', 'Restart=no', join(NODE_NATIVE, 'bin', 'ubsmd-standin'), `${UB_SOCKDIR}/MxmAgentIpcServer`, String(DAEMON_GID)]);
    await until('the stand-in socket', () => node(['test', '-S', `${UB_SOCKDIR}/MxmAgentIpcServer`]).status === 0, 15_000,
      () => node(['journalctl', '--no-pager', '-u', 'nms-ubsmd']).stdout);
    // the agent's config: the ubs backend over the double (as test/e2e/ubs-env.ts's backendConfig)
    const cfg = JSON.parse(nodeMust(['cat', '/etc/nri-memshare/config.json'])) as Record<string, unknown>;
    cfg.backend = {
      kind: 'ubs',
      sdkLibrary: join(NODE_NATIVE, 'lib', 'libubsm_sdk.so'),
      sdkDir: { host: NODE_NATIVE, container: '/host/usr/local/ubs_mem' },
      libraries: STAND_IN_LIBS.map((l) => ({ host: join(NODE_NATIVE, 'lib', l), container: `/usr/lib64/${l}` })),
      socketDir: UB_SOCKDIR,
      groups: [DAEMON_GID],
      cdi: 'never',
      cdiDir: `${UB}/cdi`,
      procDevices: `${UB}/proc-devices`,
      hostDevDir: UB_DEV,
      mounts: [{ source: UB_STATE, destination: '/run/ubsm-double', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev'] }],
      env: { UBSM_DOUBLE_STATE: '/run/ubsm-double', HCOM_CONNECTION_RETRY_TIMES: '1' },
    };
    nodeMust(['tee', '/etc/nri-memshare/config.json'], `${JSON.stringify(cfg, null, 2)}\n`);
    nodeMust(['nri-memshare', 'check-config']);
    // the double's environment (ubs-env.ts's agentEnv), for the agent and so for the holder it starts.
    // CAP_MKNOD: the double makes the device nodes itself at the first attach (the real obmm driver
    // does that in the kernel); the unit's bounding set lacks it, and a drop-in's list adds to it.
    nodeMust(['tee', `/etc/systemd/system/${UNIT}.d/20-ubs-double.conf`], [
      '[Service]',
      `Environment=UBSM_DOUBLE_DIR=${UB_SOCKDIR} UBSM_DOUBLE_STATE=${UB_STATE} UBSM_DOUBLE_DEV_DIR=${UB_DEV}`,
      `Environment=UBSM_DOUBLE_OBMM=${join(NODE_NATIVE, 'lib', 'libobmm.so.1')} UBSM_DOUBLE_MAJOR=${major}`,
      'CapabilityBoundingSet=CAP_MKNOD',
      '',
    ].join('\n'));
    // the pod sandbox image: the UB test image (it has /pause), in the node's containerd
    const conf = nodeMust(['cat', '/etc/containerd/config.toml']);
    const header = '[plugins."io.containerd.grpc.v1.cri"]\n';
    assert.ok(conf.includes(header), conf);
    nodeMust(['tee', '/etc/containerd/config.toml'], conf.replace(header, `${header}  sandbox_image = ${JSON.stringify(UBS_IMAGE)}\n`));
    copyFileSync(ubsImageTar(), `/proc/${nodePid}/root/var/tmp/ubs-image.tar`);
    // back to containerd 1.7 for the pods: the node's config.toml (version 2) sets the CRI
    // snapshotter "native", which 1.7 uses; 2.1 unpacked the sandbox image into overlayfs, whose
    // mounts fail (EINVAL) on the node's own overlay root
    must('bash', [harness, 'containerd', nodeDir, '1.7']);
    nodeMust(['systemctl', 'daemon-reload']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', 'containerd']);
    resetStartLimit();
    nodeMust(['systemctl', 'restart', UNIT]);
    const s = await waitActive(/^registered with containerd 1\.7/);
    nodeMust(['ctr', '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'native', '/var/tmp/ubs-image.tar']);
    await until('the agent connected to the UB memory daemon', () =>
      agentLines(journal(['-u', UNIT, `_PID=${s.MainPID}`])).some((l) => l.json.msg.startsWith('ubs: connected to the UB memory daemon')), 30_000, ubDiag);
    ubHolder = await until('the holder', () => holderPid() || undefined, 30_000, ubDiag);
    assert.not.equal(String(ubHolder), s.MainPID, 'the holder is a process of its own');
    // in the unit's cgroup (KillMode=process leaves it there when systemd stops the agent)
    assert.match(nodeMust(['cat', `/proc/${ubHolder}/cgroup`]), /\/system\.slice\/nri-memshare\.service$/m);
    // declare the share, then a pod that asks for it
    const decl = { apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: UB_SHARE, namespace: UB_NS }, spec: { storage: '128Mi' } };
    nodeMust(['tee', `/etc/nri-memshare/shares.d/.${UB_NS}-${UB_SHARE}.json.tmp`], JSON.stringify(decl));
    nodeMust(['mv', `/etc/nri-memshare/shares.d/.${UB_NS}-${UB_SHARE}.json.tmp`, `/etc/nri-memshare/shares.d/${UB_NS}-${UB_SHARE}.json`]);
    await until('the declaration', () => agentLines(journal(['-u', UNIT, `_PID=${s.MainPID}`]))
      .some((l) => l.json.msg === 'declarations: changed' && l.json.share === `${UB_NS}/${UB_SHARE}`), 30_000, ubDiag);
    cri = new CriClient(`/proc/${nodePid}/root/run/containerd/containerd.sock`);
    ubPod = await cri.runPod({ name: 'ub-app', namespace: UB_NS, annotations: { 'memshare.nri.io/pod': UB_SHARE } });
    ubCtr = await cri.runContainer(ubPod, { name: 'app', image: UBS_IMAGE });
    assert.is((await cri.containerStatus(ubCtr)).state, 'CONTAINER_RUNNING');
    assert.equal(mappers(), [ubHolder], `the holder (pid ${ubHolder}), not the agent (${s.MainPID}), maps the share`);
    ubMemids = attachedMemids();
    assert.ok(ubMemids.length >= 1, 'the share is attached on this node, with its memids');
    const st = statusJson();
    assert.is(st.holder?.pid, ubHolder);
    assert.equal(st.holder?.maps, [UB_SDK_NAME]);
    markJournal();
  });

  test('systemctl restart: the agent restarts, the holder (same pid) keeps the share mapped, the new agent finds it', async () => {
    const before = show();
    resetStartLimit();
    nodeMust(['systemctl', 'restart', UNIT]);
    const after = await waitActive(/^registered with containerd 1\.7/);
    assert.not.equal(after.MainPID, before.MainPID, 'a new agent');
    await newAgentFoundHolder(after.MainPID);
    await unchanged('after systemctl restart');
  });

  test('systemctl kill -s SIGKILL (the agent only): Restart=on-failure brings it back, the holder and the share stay', async () => {
    const before = show();
    // --kill-whom=main: systemctl kill signals the whole cgroup by default, the holder too
    // (KillMode= does not apply to it); that would be the "holder killed" case of concepts.md
    nodeMust(['systemctl', 'kill', '--kill-whom=main', '-s', 'SIGKILL', UNIT]);
    const after = await until('the restart after SIGKILL', () => {
      const s = show();
      return Number(s.NRestarts) > Number(before.NRestarts) && s.MainPID !== before.MainPID && s.ActiveState === 'active' && s.SubState === 'running' ? s : undefined;
    }, 60_000, ubDiag);
    await newAgentFoundHolder(after.MainPID);
    await unchanged('after SIGKILL');
  });

  test('rpm -U of the next release: %postun restarts the agent on the new files; the old holder keeps the share; status shows it', async () => {
    // No earlier release had a holder, so "the next release" is this checkout's own build with
    // Release: 2: the RPM upgrade path (rpm -U, %preun/%postun with $1 = 1, try-restart) is the
    // one a real next release takes.
    const rpm2 = buildRpm(2);
    const inNode = `/var/tmp/${rpm2.split('/').pop()}`;
    copyFileSync(rpm2, `/proc/${nodePid}/root${inNode}`);
    assert.match(nodeMust(['rpm', '-q', 'nri-memshare']).trim(), new RegExp(`^nri-memshare-${version.replace(/\./g, '\\.')}-1\\.`));
    const before = show();
    resetStartLimit();
    nodeMust(['rpm', '-U', '--nodeps', '--nosignature', inNode]);
    assert.match(nodeMust(['rpm', '-q', 'nri-memshare']).trim(), new RegExp(`^nri-memshare-${version.replace(/\./g, '\\.')}-2\\.`), 'release 2 is installed');
    const after = await waitActive(/^registered with containerd 1\.7/);
    assert.not.equal(after.MainPID, before.MainPID, '%postun try-restart restarted the agent');
    await newAgentFoundHolder(after.MainPID);
    await unchanged('after rpm -U');
    const text = nodeMust(['nri-memshare', 'status']);
    assert.match(text, new RegExp(`\\nub holder: running \\(pid ${ubHolder}, version ${version.replace(/\./g, '\\.')}, protocol \\d+, since \\S+\\), .*, maps 1 share\\(s\\)`));
    capture('nri-memshare status (UB, after rpm -U)', text);
  });

  test('rpm -e stops the agent; the holder stays and keeps the share mapped (also after the pod ends) until its socket is removed', async () => {
    const agentPid = Number(show().MainPID);
    nodeMust(['rpm', '-e', '--nodeps', 'nri-memshare']);
    await until(`${UNIT} stopped`, () => !alive(agentPid) && show().ActiveState !== 'active', 30_000, ubDiag);
    assert.is(node(['test', '-e', '/usr/bin/nri-memshare']).status, 1, 'the package is gone');
    // KillMode=process: systemd signalled the agent only and says so of the holder
    const said = journal(['_PID=1']).map((e) => e.MESSAGE);
    assert.ok(said.some((m) => new RegExp(`^${UNIT.replace('.', '\\.')}: Unit process ${ubHolder} \\(.+\\) remains running after unit stopped\\.$`).test(m)),
      `systemd left the holder running:\n${said.filter((m) => m.includes(UNIT)).slice(-10).join('\n')}`);
    assert.is(holderPid(), ubHolder, 'the holder outlives the package');
    assert.equal(mappers(), [ubHolder], 'the share stays mapped for the running container');
    assert.equal(attachedMemids(), ubMemids, 'with its memids');
    assert.is((await cri!.containerStatus(ubCtr)).state, 'CONTAINER_RUNNING', 'the container runs on');
    // the pod ends: with no agent nobody tells the holder to let go; it keeps the share mapped
    // (a reinstalled agent would find it and release the share of the ended container)
    await cri!.stopPod(ubPod!.id);
    await cri!.removePod(ubPod!.id);
    await new Promise((r) => setTimeout(r, 3000));
    assert.is(holderPid(), ubHolder, 'the holder stays after the pod ended');
    assert.equal(mappers(), [ubHolder], 'and still maps the share');
    // its socket removed (e.g. with /var/lib/nri-memshare): nothing could find it again, it exits
    // and its mapping ends
    nodeMust(['rm', HOLDER_SOCK]);
    await until('the holder to exit', () => !alive(ubHolder), 15_000, ubDiag);
    // (the holder writes to the stdout it inherited from the agent that started it: journald files
    // its lines under that agent's _PID, so they are told apart by their own name and pid)
    const stopLine = await until('the holder\'s last line', () => agentLines(journal(['-u', UNIT]))
      .find((l) => l.json.name === 'nri-memshare-ubs-holder' && l.json.pid === ubHolder && l.json.msg.startsWith('holder stopping')), 15_000, ubDiag);
    assert.is(stopLine.json.msg, 'holder stopping (its socket was removed); its mappings end');
    assert.equal(stopLine.json.held, [UB_SDK_NAME]);
    await until('its mapping to end', () => mappers().length === 0, 15_000, () => JSON.stringify(mappers()));
    cri!.close();
    cri = undefined;
    node(['systemctl', 'stop', 'nms-ubsmd']);
  });
}

test.run();
