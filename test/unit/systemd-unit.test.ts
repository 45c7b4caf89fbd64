// The systemd unit: systemd itself accepts it without a warning, and it keeps the properties the
// product depends on (host mount namespace, shares preserved across restarts, the exact ExecStart).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unitSection } from '../support/unit-file';
import { EXIT_CONFIG } from '../../plugin/agent/config';
import { tempDirs } from '../support/cleanup';

const tempDir = tempDirs(test, 'memshare-unit-');

const UNIT = join(__dirname, '../../../systemd/nri-memshare.service');
const RUNTIME_DROPIN = join(__dirname, '../../../systemd/nri-memshare.service.d/10-runtime.conf');

const text = readFileSync(UNIT, 'utf8');
const section = (name: string): Map<string, string[]> => unitSection(UNIT, name);

function haveTool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

test('systemd-analyze verify accepts the unit with no warnings', () => {
  if (!haveTool('systemd-analyze')) {
    const msg = 'SKIPPED: systemd-analyze not installed (apt-get install systemd); the unit was NOT verified';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  // verify checks that ExecStart's binary exists; /usr/bin/nri-memshare only exists once the RPM is
  // installed, so verify a copy whose ExecStart names a binary that exists here.
  const dir = tempDir();
  const copy = join(dir, 'nri-memshare.service');
  const patched = text.replace(/^ExecStart=\/usr\/bin\/nri-memshare /m, 'ExecStart=/bin/true ');
  assert.is.not(patched, text, 'ExecStart was rewritten');
  writeFileSync(copy, patched);
  mkdirSync(`${copy}.d`);
  copyFileSync(RUNTIME_DROPIN, join(`${copy}.d`, '10-runtime.conf'));
  // BindsTo= needs containerd.service to exist; a node has containerd's own unit, this machine
  // may not: give verify a minimal one beside the copy (the copy's directory is searched first)
  writeFileSync(join(dir, 'containerd.service'), '[Unit]\nDescription=containerd (stand-in for verify)\n[Service]\nExecStart=/bin/true\n');
  const r = spawnSync('systemd-analyze', ['verify', copy], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_UNIT_PATH: `${dir}:` },
  });
  const about = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => l.includes('nri-memshare') || l.includes(dir));
  assert.equal(about, [], `systemd-analyze verify said:\n${r.stdout}${r.stderr}`);
  assert.is(r.status, 0, `exit ${r.status}\n${r.stdout}${r.stderr}`);
});

test('verify would catch a broken unit (the check above is not vacuous)', () => {
  if (!haveTool('systemd-analyze')) return;
  const dir = tempDir();
  const copy = join(dir, 'nri-memshare.service');
  writeFileSync(copy, text.replace(/^ExecStart=\/usr\/bin\/nri-memshare /m, 'ExecStart=/bin/true ').replace('Restart=on-failure', 'Restart=sometimes'));
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  assert.match(`${r.stdout}${r.stderr}`, /nri-memshare\.service:\d+: Failed to parse service restart/);
});

test('the unit runs the product CLI and restarts on failure', () => {
  const s = section('Service');
  assert.equal(s.get('ExecStart'), ['/usr/bin/nri-memshare run --config /etc/nri-memshare/config.json']);
  assert.equal(s.get('Restart'), ['on-failure']);
  assert.equal(s.get('RestartSec'), ['2s']);
  // except on a refused config: restarting would refuse it again forever; the unit stays failed
  assert.equal(s.get('RestartPreventExitStatus'), [String(EXIT_CONFIG)]);
  assert.equal(s.get('StandardOutput'), ['journal']);
  assert.equal(s.get('StateDirectory'), ['nri-memshare']);
  assert.equal(s.get('RuntimeDirectory'), ['nri-memshare']);
  assert.equal(s.get('ConfigurationDirectory'), ['nri-memshare']);
  assert.equal((section('Install').get('WantedBy') ?? []).join(' ').split(/\s+/).sort(), ['containerd.service', 'multi-user.target']);
});

test('shares under /run/nri-memshare survive a stop of the agent', () => {
  assert.equal(section('Service').get('RuntimeDirectoryPreserve'), ['yes']);
});

test('bound to containerd.service through the drop-in, not the unit: another runtime unit is a same-named drop-in in /etc away', () => {
  const u = section('Unit');
  assert.not.ok(text.split('\n').some((l) => /^(BindsTo|Requires|After|Requisite|PartOf)=.*containerd/.test(l)), 'the unit itself names no runtime unit');
  assert.equal(u.get('After'), ['local-fs.target']);
  const d = unitSection(RUNTIME_DROPIN, 'Unit');
  assert.equal([...d.keys()].sort(), ['After', 'BindsTo']);
  assert.equal(d.get('BindsTo'), ['containerd.service']);
  assert.equal(d.get('After'), ['containerd.service']);
  assert.ok((section('Install').get('WantedBy') ?? []).join(' ').includes('containerd.service'));
});

test('what systemd-analyze security weighs: UMask=0077, no namespaces, containerd\'s OOM score', () => {
  const s = section('Service');
  assert.equal(s.get('UMask'), ['0077']);
  assert.equal(s.get('RestrictNamespaces'), ['yes']);
  assert.equal(s.get('OOMScoreAdjust'), ['-999']);
});

test('systemd-analyze security --offline: exposure at or below 4.9 (the systemd-node e2e measures the installed unit)', () => {
  if (!haveTool('systemd-analyze')) {
    if (process.env.CI === 'true') assert.unreachable('systemd-analyze not installed');
    return;
  }
  const dir = tempDir();
  const copy = join(dir, 'nri-memshare.service');
  writeFileSync(copy, text);
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', copy], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
  const m = /Overall exposure level for nri-memshare\.service: (\d+\.\d)/.exec(r.stdout);
  assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
  process.stdout.write(`\n  systemd-analyze security --offline: ${m[1]}\n`);
  assert.ok(Number(m[1]) <= 4.9, `exposure ${m[1]}`);
});

test('no hardening option that would give the agent a private mount namespace', () => {
  const s = section('Service');
  const caps = (s.get('CapabilityBoundingSet') ?? []).join(' ').split(/\s+/).sort();
  // CAP_KILL: evicting a container whose init runs as another uid (test/e2e/memshare-evict-caps)
  assert.equal(caps, ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SYS_ADMIN']);
  assert.equal(s.get('NoNewPrivileges'), ['yes']);
  for (const k of [
    'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'PrivateNetwork', 'ProtectSystem', 'ProtectHome',
    'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectKernelLogs', 'ProtectControlGroups',
    'ProtectProc', 'ReadOnlyPaths', 'ReadWritePaths', 'InaccessiblePaths', 'TemporaryFileSystem',
    'BindPaths', 'BindReadOnlyPaths', 'RootDirectory', 'MountFlags', 'MemoryDenyWriteExecute',
  ]) {
    const v = s.get(k);
    assert.ok(v === undefined || v.every((x) => /^(no|false|shared)$/.test(x)), `${k}=${v} is set`);
  }
});

test.run();
