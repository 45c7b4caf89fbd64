// The kubelet plugin's gRPC layer (plugin/kubelet-plugin/) end to end over real unix sockets, with
// the kubelet played by test/harness/kubelet-player.ts (the real protocol, the project's protos) and
// a fake DraDriver (the project's own interface: the driver itself is tested on its own).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { startKubeletPlugin, type KubeletPlugin, type KubeletPluginOptions } from '../../plugin/kubelet-plugin';
import * as dra from '../../plugin/kubelet-plugin/dra.pb';
import type { ClaimRef, DraDriver, PrepareResult } from '../../plugin/dra/types';
import type { Log } from '../../plugin/log/log';
import { KubeletPlayer, type KubeletDraService } from '../harness/kubelet-player';
import { cleanupsAfterEach, tempDirs } from '../support/cleanup';
import { rejection, waitFor } from '../support/util';

const cleanups = cleanupsAfterEach(test);
const tmp = tempDirs(test, 'kubelet-plugin-');
const ROOT = join(__dirname, '..', '..', '..');
const DRIVER = 'memshare.nri.io';

const claimA: ClaimRef = { namespace: 'team-a', uid: 'uid-a', name: 'shared' };
const claimB: ClaimRef = { namespace: 'team-b', uid: 'uid-b', name: 'other' };

/** A DraDriver that answers from a table and records what it was asked. */
class FakeDriver implements DraDriver {
  readonly prepared: ClaimRef[][] = [];
  readonly unprepared: ClaimRef[][] = [];
  prepareAnswer: (c: ClaimRef) => PrepareResult | undefined = (c) => ({
    devices: [{ requestNames: ['mem'], poolName: 'node-1', deviceName: `${c.name}-0badcafe`, cdiDeviceIds: [`k8s.memshare.nri.io/claim=${c.uid}-${c.name}`] }],
  });
  unprepareAnswer: (c: ClaimRef) => string | undefined | 'omit' = () => undefined;
  throwOn?: Error;
  async prepare(claims: readonly ClaimRef[]): Promise<Map<string, PrepareResult>> {
    this.prepared.push([...claims]);
    if (this.throwOn) throw this.throwOn;
    const m = new Map<string, PrepareResult>();
    for (const c of claims) {
      const r = this.prepareAnswer(c);
      if (r) m.set(c.uid, r);
    }
    return m;
  }
  async unprepare(claims: readonly ClaimRef[]): Promise<Map<string, string | undefined>> {
    this.unprepared.push([...claims]);
    if (this.throwOn) throw this.throwOn;
    const m = new Map<string, string | undefined>();
    for (const c of claims) {
      const r = this.unprepareAnswer(c);
      if (r !== 'omit') m.set(c.uid, r);
    }
    return m;
  }
}

interface Logged {
  level: string;
  detail: object;
  msg?: string;
}
function memoryLog(): Log & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (detail: object, msg?: string) => void lines.push({ level, detail, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

interface Setup {
  dir: string;
  registryDir: string;
  pluginDir: string;
  driver: FakeDriver;
  log: ReturnType<typeof memoryLog>;
  plugin: KubeletPlugin;
  player: KubeletPlayer;
}

async function setup(o: { kubelet?: KubeletDraService[]; plugin?: Partial<KubeletPluginOptions> } = {}): Promise<Setup> {
  const dir = tmp();
  const registryDir = join(dir, 'plugins_registry');
  const pluginDir = join(dir, 'plugins', DRIVER);
  mkdirSync(registryDir, { recursive: true });
  const driver = new FakeDriver();
  const log = memoryLog();
  const player = await KubeletPlayer.start({ registryDir, services: o.kubelet });
  cleanups.push(() => player.close());
  const plugin = await startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir, driver, log, ...o.plugin });
  cleanups.push(() => plugin.close());
  return { dir, registryDir, pluginDir, driver, log, plugin, player };
}

test('v1: registers through the registry socket (GetInfo as the kubelet reads it), then Prepare and Unprepare reach the driver', async () => {
  const s = await setup();
  assert.is(s.plugin.registrationSocket, join(s.registryDir, `${DRIVER}-reg.sock`));
  assert.is(s.plugin.endpoint, join(s.pluginDir, 'dra.sock'));
  const p = await s.player.plugin(DRIVER);
  assert.is(p.service, 'v1.DRAPlugin', 'a 1.34+ kubelet picks v1, the first the plugin lists');
  assert.is(p.endpoint, s.plugin.endpoint);
  await waitFor(() => s.plugin.registration().state === 'registered', 'the kubelet\'s verdict');
  assert.ok(s.log.lines.some((l) => l.level === 'info' && /registered with the kubelet/.test(l.msg ?? '')));

  const got = await p.prepare([claimA, claimB]);
  assert.equal(Object.keys(got).sort(), ['uid-a', 'uid-b']);
  assert.equal(got['uid-a'], {
    error: '',
    devices: [{ requestNames: ['mem'], poolName: 'node-1', deviceName: 'shared-0badcafe', cdiDeviceIds: ['k8s.memshare.nri.io/claim=uid-a-shared'] }],
  });
  assert.equal(s.driver.prepared, [[claimA, claimB]]);
  assert.equal(await p.unprepare([claimA, claimB]), { 'uid-a': '', 'uid-b': '' });
  assert.equal(s.driver.unprepared, [[claimA, claimB]]);
});

test('v1beta1: a 1.32/1.33 kubelet (v1beta1 only) and a plugin serving v1beta1 only both end up on v1beta1, end to end', async () => {
  const old = await setup({ kubelet: ['v1beta1.DRAPlugin'] });
  const p = await old.player.plugin(DRIVER);
  assert.is(p.service, 'v1beta1.DRAPlugin');
  assert.equal((await p.prepare([claimA]))['uid-a'].devices[0].deviceName, 'shared-0badcafe');
  assert.equal(await p.unprepare([claimA]), { 'uid-a': '' });

  const narrow = await setup({ plugin: { services: ['v1beta1.DRAPlugin'] } });
  const q = await narrow.player.plugin(DRIVER);
  assert.is(q.service, 'v1beta1.DRAPlugin');
  assert.is((await q.prepare([claimB]))['uid-b'].error, '');
  // and a plugin serving v1beta1 only does not answer on v1's path
  const v1Path = dra.services['k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin'].NodePrepareResources.path;
  const err = await rejection<grpc.ServiceError>(q.raw(v1Path, dra.NodePrepareResourcesRequestCodec.encode({ claims: [claimA] })));
  assert.is(err.code, grpc.status.UNIMPLEMENTED);
});

test('per-claim errors: a driver error, a missing answer and an empty error each give that claim a non-empty error; the others succeed', async () => {
  const s = await setup();
  const claimC: ClaimRef = { namespace: 'team-c', uid: 'uid-c', name: 'gone' };
  const claimD: ClaimRef = { namespace: 'team-d', uid: 'uid-d', name: 'fine' };
  s.driver.prepareAnswer = (c) => {
    if (c.uid === 'uid-a') return { error: 'share team-a/shared: namespace team-a may not use it' };
    if (c.uid === 'uid-b') return undefined;
    if (c.uid === 'uid-c') return { error: '' };
    return { devices: [] };
  };
  const p = await s.player.plugin(DRIVER);
  const got = await p.prepare([claimA, claimB, claimC, claimD]);
  assert.equal(Object.keys(got).sort(), ['uid-a', 'uid-b', 'uid-c', 'uid-d'], 'every claim of the request has an entry');
  assert.is(got['uid-a'].error, 'share team-a/shared: namespace team-a may not use it');
  assert.match(got['uid-b'].error, /the driver gave no answer for claim team-b\/other \(uid uid-b\)/);
  assert.match(got['uid-c'].error, /preparing claim team-c\/gone \(uid uid-c\) failed/);
  assert.equal(got['uid-d'], { error: '', devices: [] }, 'zero devices is a valid answer');

  s.driver.unprepareAnswer = (c) => (c.uid === 'uid-a' ? 'still in use' : c.uid === 'uid-b' ? 'omit' : undefined);
  const un = await p.unprepare([claimA, claimB, claimD]);
  assert.equal(un['uid-a'], 'still in use');
  assert.match(un['uid-b'], /no answer for claim team-b\/other/);
  assert.is(un['uid-d'], '');
  assert.ok(s.log.lines.some((l) => l.level === 'warn' && (l.detail as { uid?: string }).uid === 'uid-a'), 'a claim not prepared is logged');
});

test('a driver that throws: every claim of the call gets the reason, the server stays up and serves the next call', async () => {
  const s = await setup();
  s.driver.throwOn = new Error('ledger: cannot write the journal: ENOSPC');
  const p = await s.player.plugin(DRIVER);
  const got = await p.prepare([claimA, claimB]);
  for (const uid of ['uid-a', 'uid-b']) {
    assert.match(got[uid].error, /failed: ledger: cannot write the journal: ENOSPC/);
    assert.equal(got[uid].devices, []);
  }
  const un = await p.unprepare([claimA]);
  assert.match(un['uid-a'], /unpreparing claim team-a\/shared \(uid uid-a\) failed: ledger/);
  assert.ok(s.log.lines.some((l) => l.level === 'error' && /failed to prepare/.test(l.msg ?? '')));
  s.driver.throwOn = undefined;
  assert.is((await p.prepare([claimA]))['uid-a'].error, '');
});

test('Prepare twice (the kubelet retries, or prepares again after a restart): each call reaches the driver and both get its answer', async () => {
  const s = await setup();
  const p = await s.player.plugin(DRIVER);
  const first = await p.prepare([claimA]);
  const second = await p.prepare([claimA]);
  assert.equal(second, first);
  assert.is(s.driver.prepared.length, 2, 'idempotence is the driver\'s: the layer passes each call through');
  // a claim listed twice in one request is asked about once
  await p.prepare([claimA, { ...claimA }]);
  assert.equal(s.driver.prepared[2], [claimA]);
});

test('malformed requests: a missing claim field or undecodable bytes give INVALID_ARGUMENT naming the field or message; the driver is not called', async () => {
  const s = await setup();
  const p = await s.player.plugin(DRIVER);
  const e1 = await rejection<grpc.ServiceError>(p.prepare([claimA, { namespace: 'team-b', uid: '', name: 'x' }]));
  assert.is(e1.code, grpc.status.INVALID_ARGUMENT);
  assert.match(e1.details, /NodePrepareResources: claims\[1\]\.uid is empty/);
  const e2 = await rejection<grpc.ServiceError>(p.unprepare([{ namespace: '', uid: 'u', name: 'x' }]));
  assert.is(e2.code, grpc.status.INVALID_ARGUMENT);
  assert.match(e2.details, /NodeUnprepareResources: claims\[0\]\.namespace is empty/);
  const e3 = await rejection<grpc.ServiceError>(p.prepare([claimA, { ...claimA, name: 'another' }]));
  assert.match(e3.details, /claims\[1\]\.uid uid-a names team-a\/another, claims\[0\] team-a\/shared/);
  const path = dra.services['k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin'].NodePrepareResources.path;
  const e4 = await rejection<grpc.ServiceError>(p.raw(path, Buffer.from([0x0a, 0x05, 0x0a])));
  assert.is(e4.code, grpc.status.INVALID_ARGUMENT);
  assert.match(e4.details, /NodePrepareResourcesRequest: cannot decode 3 bytes/);
  assert.equal(s.driver.prepared, [], 'no malformed request reached the driver');
  assert.is((await p.prepare([claimA]))['uid-a'].error, '', 'still serving');
});

test('a kubelet that knows none of the plugin\'s services refuses the registration; the plugin records and logs the reason', async () => {
  const s = await setup({ kubelet: [], plugin: { services: ['v1beta1.DRAPlugin'] } });
  const refused = await s.player.refusal();
  assert.match(refused.error, /none of the services supported by the plugin \(v1beta1\.DRAPlugin\)/);
  await waitFor(() => s.plugin.registration().state === 'refused', 'the refusal');
  const r = s.plugin.registration();
  assert.ok(r.state === 'refused' && r.error === refused.error);
  const line = s.log.lines.find((l) => l.level === 'error');
  assert.ok(line && line.msg?.includes(`the kubelet refused to register DRA driver ${DRIVER}: invalid supported gRPC versions`), JSON.stringify(line));
  assert.not.ok(s.player.registered(DRIVER));
});

test('close withdraws the registration and removes both sockets; a start after it works on the same paths', async () => {
  const s = await setup();
  await s.player.plugin(DRIVER);
  assert.ok(lstatSync(s.plugin.endpoint).isSocket());
  assert.is(statSync(s.plugin.endpoint).mode & 0o777, 0o600);
  assert.is(statSync(s.pluginDir).mode & 0o777, 0o750, 'the plugin dir it made is not world-readable');
  await s.plugin.close();
  await s.plugin.close(); // twice is fine
  assert.not.ok(existsSync(s.plugin.endpoint));
  assert.not.ok(existsSync(s.plugin.registrationSocket));
  await waitFor(() => !s.player.registered(DRIVER), 'the player to forget the plugin');
  const again = await startKubeletPlugin({ driverName: DRIVER, registryDir: s.registryDir, pluginDir: s.pluginDir, driver: s.driver });
  cleanups.push(() => again.close());
  const p = await s.player.plugin(DRIVER);
  assert.is((await p.prepare([claimB]))['uid-b'].error, '');
});

/** A socket file nobody listens on: what a killed agent leaves (its process exits without unlinking). */
function staleSocket(path: string): void {
  const code = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.ok(lstatSync(path).isSocket());
}

test('stale sockets from a killed agent are replaced; a socket someone still serves is refused, naming it', async () => {
  const dir = tmp();
  const registryDir = join(dir, 'registry');
  const pluginDir = join(dir, 'plugin');
  mkdirSync(registryDir);
  mkdirSync(pluginDir);
  staleSocket(join(pluginDir, 'dra.sock'));
  staleSocket(join(registryDir, `${DRIVER}-reg.sock`));
  const player = await KubeletPlayer.start({ registryDir });
  cleanups.push(() => player.close());
  const plugin = await startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir, driver: new FakeDriver() });
  cleanups.push(() => plugin.close());
  assert.is((await (await player.plugin(DRIVER)).prepare([claimA]))['uid-a'].error, '');

  // a second agent on the same paths: the first still answers there
  const err = await rejection(startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir, driver: new FakeDriver() }));
  assert.match(err.message, new RegExp(`DRA socket ${join(pluginDir, 'dra.sock')}: a server already answers on it`));
  assert.ok(lstatSync(plugin.endpoint).isSocket(), 'the live socket is left alone');

  // a foreign listener on the registration path (not grpc): refused too
  const other = join(tmp(), 'x');
  mkdirSync(join(other, 'p'), { recursive: true });
  const srv = createServer();
  const regPath = join(other, 'r', `${DRIVER}-reg.sock`);
  mkdirSync(join(other, 'r'));
  await new Promise<void>((r) => srv.listen(regPath, r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  const err2 = await rejection(startKubeletPlugin({ driverName: DRIVER, registryDir: join(other, 'r'), pluginDir: join(other, 'p'), driver: new FakeDriver() }));
  assert.match(err2.message, /registration socket .*-reg\.sock: a server already answers on it/);
  assert.not.ok(existsSync(join(other, 'p', 'dra.sock')), 'a failed start leaves no socket behind');
});

test('a regular file or a directory at a socket path is refused, naming the path and what is there, and left as it was', async () => {
  const dir = tmp();
  const registryDir = join(dir, 'registry');
  const pluginDir = join(dir, 'plugin');
  mkdirSync(registryDir);
  mkdirSync(pluginDir);
  writeFileSync(join(pluginDir, 'dra.sock'), 'not a socket');
  const e1 = await rejection(startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir, driver: new FakeDriver() }));
  assert.is(e1.message, `DRA socket ${join(pluginDir, 'dra.sock')} is a regular file, not a socket: refusing to replace it (remove it by hand if it is not needed)`);
  assert.ok(statSync(join(pluginDir, 'dra.sock')).isFile());

  const pluginDir2 = join(dir, 'plugin2');
  mkdirSync(join(registryDir, `${DRIVER}-reg.sock`));
  const e2 = await rejection(startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir: pluginDir2, driver: new FakeDriver() }));
  assert.match(e2.message, new RegExp(`registration socket ${join(registryDir, DRIVER)}-reg\\.sock is a directory, not a socket`));
  assert.not.ok(existsSync(join(pluginDir2, 'dra.sock')), 'the DRA socket bound before the refusal is removed again');
});

test('bad options are refused by name: a driver name that is not a DNS subdomain, an unknown service, a socket path too long', async () => {
  const dir = tmp();
  const base = { registryDir: join(dir, 'r'), pluginDir: join(dir, 'p'), driver: new FakeDriver() };
  assert.match((await rejection(startKubeletPlugin({ ...base, driverName: 'Mem_Share' }))).message, /DRA driver name "Mem_Share": not a DNS subdomain/);
  assert.match((await rejection(startKubeletPlugin({ ...base, driverName: DRIVER, services: ['v2.DRAPlugin' as 'v1.DRAPlugin'] }))).message, /services: "v2\.DRAPlugin" is not one of v1\.DRAPlugin, v1beta1\.DRAPlugin/);
  const long = join(dir, 'x'.repeat(120));
  assert.match((await rejection(startKubeletPlugin({ ...base, driverName: DRIVER, pluginDir: long }))).message, /DRA socket .*dra\.sock: \d+ bytes, longer than a unix socket path may be \(107\)/);
});

test('the player ignores names starting with "." and files that are not sockets, as the kubelet does', async () => {
  const dir = tmp();
  const registryDir = join(dir, 'registry');
  mkdirSync(registryDir);
  staleSocket(join(registryDir, '.hidden-reg.sock'));
  writeFileSync(join(registryDir, 'notes-reg.sock'), 'a file');
  const player = await KubeletPlayer.start({ registryDir });
  cleanups.push(() => player.close());
  const plugin = await startKubeletPlugin({ driverName: DRIVER, registryDir, pluginDir: join(dir, 'p'), driver: new FakeDriver() });
  cleanups.push(() => plugin.close());
  await player.plugin(DRIVER);
  assert.equal(player.failed, [], 'no dial of the hidden socket or the file');
  assert.equal(player.refused, []);
});

test('the codecs write the bytes protobufjs writes from proto/dra-v1beta1.proto, and read them back', () => {
  const root = protobuf.loadSync(join(ROOT, 'proto', 'dra-v1beta1.proto'));
  const T = root.lookupType('k8s.io.kubelet.pkg.apis.dra.v1beta1.NodePrepareResourcesResponse');
  const msg = {
    claims: {
      'uid-1': { devices: [{ requestNames: ['a', 'b'], poolName: 'p', deviceName: 'd', cdiDeviceIds: ['x.io/c=d'] }] },
      'uid-2': { error: 'no' },
    },
  };
  const ours = dra.NodePrepareResourcesResponseCodec.encode(msg);
  assert.ok(ours.equals(Buffer.from(T.encode(T.fromObject(msg)).finish())));
  const back = dra.NodePrepareResourcesResponseCodec.decode(ours);
  assert.equal(JSON.parse(JSON.stringify(back)), msg);
  assert.is(Object.getPrototypeOf(back.claims), null, 'a map decodes into an object without a prototype');
  const evil = dra.NodePrepareResourcesResponseCodec.decode(T.encode(T.fromObject({ claims: { __proto__x: { error: 'e' } } })).finish());
  assert.is(evil.claims.__proto__x.error, 'e');
});

test.run();
