// `nri-memshare status` shows the failed evictions the agent recorded in its state directory:
// the file (atomic, 0600, removed when empty; a damaged one is a warning, not a crash), the
// "failed evictions" section of the table and the JSON's failedEvictions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FAILED_EVICTIONS_FILE,
  readFailedEvictions,
  writeFailedEvictions,
  type FailedEviction,
} from '../../plugin/agent/failed-evictions';
import { collectStatus, renderStatus, showStatus, type NodeStatus } from '../../plugin/agent/status';
import { defaultConfig } from '../../plugin/agent/config';
import { tempDirs } from '../support/cleanup';

const ID = 'f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef0123';
const failure: FailedEviction = {
  containerId: ID,
  pid: 4321,
  attempts: 5,
  lastError: 'pidfd_send_signal(pidfd 22) failed: EPERM: Operation not permitted',
  since: '2026-03-04T05:06:07.000Z',
  retrying: false,
};

const tmp = tempDirs(test, 'memshare-status-');

test('the file: written whole with mode 0600, read back, removed when nothing fails', () => {
  const dir = tmp();
  assert.equal(readFailedEvictions(dir), { failedEvictions: [], warnings: [] }, 'no file: nothing failing');
  writeFailedEvictions(dir, [failure]);
  assert.is((statSync(join(dir, FAILED_EVICTIONS_FILE)).mode & 0o777).toString(8), '600');
  assert.equal(readdirSync(dir), [FAILED_EVICTIONS_FILE], 'no temp file left');
  assert.equal(readFailedEvictions(dir), { failedEvictions: [failure], warnings: [] });
  writeFailedEvictions(dir, []);
  assert.not.ok(existsSync(join(dir, FAILED_EVICTIONS_FILE)));
  writeFailedEvictions(dir, []); // and again: no error
});

test('a damaged file gives a warning, and the intact entries', () => {
  const dir = tmp();
  writeFileSync(join(dir, FAILED_EVICTIONS_FILE), '{"failedEvictions": [');
  const r = readFailedEvictions(dir);
  assert.equal(r.failedEvictions, []);
  assert.match(r.warnings.join('\n'), /damaged/);
  writeFileSync(join(dir, FAILED_EVICTIONS_FILE), JSON.stringify({ failedEvictions: [failure, { containerId: 7 }] }));
  const r2 = readFailedEvictions(dir);
  assert.equal(r2.failedEvictions, [failure]);
  assert.match(r2.warnings.join('\n'), /entry 2 is damaged/);
});

const base: NodeStatus = { agent: { running: false, reason: 'no agent in this test', last: null }, stateDir: '/var/lib/nri-memshare', backend: 'local', shares: [], holder: null, failedEvictions: [], warnings: [] };

test('UB: the holder line says whether it runs, its pid, protocol and link, and how many shares it maps', () => {
  const up = renderStatus({ ...base, backend: 'ubs', holder: { running: true, pid: 4321, version: '0.1.0', since: '2026-12-07T03:00:00.000Z', protocol: 1, sdk: { ready: true }, maps: ['nms.a.b', 'nms.a.c'] } });
  assert.match(up, 'ub holder: running (pid 4321, version 0.1.0, protocol 1, since 2026-12-07T03:00:00.000Z), connected to the UB memory daemon, maps 2 share(s)');
  const down = renderStatus({ ...base, backend: 'ubs', holder: { running: false, reason: 'no holder answers on /var/lib/nri-memshare/ubs-holder.sock' } });
  assert.match(down, 'ub holder: NOT RUNNING: no holder answers on /var/lib/nri-memshare/ubs-holder.sock');
  assert.not.match(renderStatus(base), /ub holder/);
});

test('the table has no failed-evictions section when nothing fails', () => {
  const out = renderStatus(base);
  assert.not.match(out, /failed evictions/i);
  assert.match(out, '(no shares on this node)');
});

test('the table shows each failed eviction: container, pid, attempts, since, retrying, last error', () => {
  const out = renderStatus({ ...base, failedEvictions: [failure, { ...failure, containerId: 'abcdef0123456789', pid: 99, attempts: 2, retrying: true }] });
  const lines = out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('failed evictions (2)'));
  assert.ok(at > 0, out);
  assert.match(lines[at], 'run without their shares');
  assert.equal(lines[at + 1].split(/\s{2,}/), ['CONTAINER', 'PID', 'ATTEMPTS', 'SINCE', 'RETRYING', 'LAST ERROR']);
  assert.equal(lines[at + 2].split(/\s{2,}/), [ID.slice(0, 12), '4321', '5', failure.since, 'no', failure.lastError]);
  assert.equal(lines[at + 3].split(/\s{2,}/), ['abcdef012345', '99', '2', failure.since, 'yes', failure.lastError]);
});

test('status reads them from the state directory (table and --json), also with the agent down', async () => {
  const dir = tmp();
  const config = { ...defaultConfig(), stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares') };
  const { mkdirSync } = await import('node:fs');
  mkdirSync(config.stateDir, { recursive: true });
  mkdirSync(config.sharesDir, { recursive: true });
  writeFailedEvictions(config.stateDir, [failure]);
  const st = await collectStatus(config);
  assert.equal(st.failedEvictions, [failure]);
  let json = '';
  await showStatus(config, true, { write: (s: string) => ((json += s), true) } as unknown as NodeJS.WritableStream);
  assert.equal((JSON.parse(json) as NodeStatus).failedEvictions, [failure]);
  let table = '';
  await showStatus(config, false, { write: (s: string) => ((table += s), true) } as unknown as NodeJS.WritableStream);
  assert.match(table, `failed evictions (1)`);
  assert.match(table, ID.slice(0, 12));
});

test.run();
