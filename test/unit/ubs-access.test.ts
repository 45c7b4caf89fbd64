// The UB access model (plugin/backends/ubs/access.ts): which mode class ubsmd applies to a
// container's uid/gid, what it grants, which bindings the SDK can honour; the createRuntime hook
// `nri-memshare ubs-access-check` as runc runs it (state JSON on stdin, the bundle's config.json),
// the hook the ubs backend adds to every UB container, the NRI wire form of that hook, and the
// config key that names the command.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as protobuf from 'protobufjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACCESS_CHECK_COMMAND,
  checkAccess,
  containerUser,
  formatShareArg,
  granted,
  modeClass,
  octal,
  parseShareArg,
  refusalMessage,
  runAccessCheck,
  type Access,
  type ShareAccess,
} from '../../plugin/backends/ubs/access';
import { UbsBackend, defaultUbsConfig } from '../../plugin/backends/ubs';
import type { UbsPool } from '../../plugin/backends/ubs/holder/pool';
import { adjustmentOf } from '../../plugin/nri-adapter/adapter';
import { codecs } from '../../plugin/nri/api';
import { parseConfig } from '../../plugin/agent/config';
import type { ShareHandle } from '../../plugin/model';
import { AGENT_CLI } from '../support/agent-cli';
import { tempDirs } from '../support/cleanup';

const share = (mode: number, access: Access, over: Partial<ShareAccess> = {}): ShareAccess => ({
  share: 'team/a',
  sdkName: 'nms.team.a',
  mode,
  ownerUid: 0,
  ownerGid: 0,
  access,
  ...over,
});

test('mode class: uid equal to the owner\'s -> owner; else primary gid equal -> group; else other', () => {
  assert.is(modeClass(0, 0, 0, 0), 'owner');
  assert.is(modeClass(0, 4178, 0, 0), 'owner', 'uid first, whatever the gid');
  assert.is(modeClass(4178, 0, 0, 0), 'group', 'a non-root uid with primary gid 0');
  assert.is(modeClass(4178, 4178, 0, 0), 'other');
  assert.is(modeClass(4178, 4178, 4178, 1), 'owner');
  assert.is(modeClass(1, 4178, 4178, 4178), 'group');
});

test('granted bits per class: r and w, x ignored', () => {
  assert.equal(granted(0o666, 'owner'), { read: true, write: true });
  assert.equal(granted(0o644, 'group'), { read: true, write: false });
  assert.equal(granted(0o644, 'other'), { read: true, write: false });
  assert.equal(granted(0o640, 'other'), { read: false, write: false });
  assert.equal(granted(0o460, 'owner'), { read: true, write: false });
  assert.equal(granted(0o460, 'group'), { read: true, write: true });
  assert.equal(granted(0o222, 'other'), { read: false, write: true });
  assert.equal(granted(0o111, 'owner'), { read: false, write: false }, 'x grants nothing');
  assert.equal(granted(0o7777, 'other'), { read: true, write: true }, 'high bits ignored');
  assert.is(octal(0o644), '0644');
  assert.is(octal(0o6), '0006');
});

// every class (root = owner, primary gid 0 = group, anyone else = other) x every r/w combination x
// both bindings: ok exactly when :ro has r without w, :rw has r and w
test('every class, mode and binding: :ro needs read without write, :rw read and write', () => {
  const users: Array<[number, number, 'owner' | 'group' | 'other']> = [
    [0, 0, 'owner'],
    [0, 4178, 'owner'],
    [4178, 0, 'group'],
    [4178, 4178, 'other'],
  ];
  let cases = 0;
  for (const [uid, gid, cls] of users) {
    for (let bits = 0; bits < 8; bits++) {
      // the class under test gets `bits`, the others the opposite r/w, so a wrong class shows
      const shift = { owner: 6, group: 3, other: 0 }[cls];
      const others = (~bits & 6) | 1;
      const mode = ((others << 6) | (others << 3) | others) & ~(7 << shift) | (bits << shift);
      const r = (bits & 4) !== 0;
      const w = (bits & 2) !== 0;
      for (const access of ['ro', 'rw'] as const) {
        const v = checkAccess(share(mode, access), uid, gid);
        const want = access === 'ro' ? r && !w : r && w;
        assert.is(v.cls, cls, `uid ${uid} gid ${gid}`);
        assert.is(v.ok, want, `uid ${uid} gid ${gid} mode ${octal(mode)} :${access}`);
        assert.equal({ read: v.read, write: v.write }, { read: r, write: w });
        if (!v.ok) {
          assert.ok(v.reason && v.suggestedMode !== undefined);
          // the suggested mode is one the same user and binding pass with
          assert.ok(checkAccess(share(v.suggestedMode!, access), uid, gid).ok, `suggestion ${octal(v.suggestedMode!)} for mode ${octal(mode)} :${access}`);
          // and it changes only this class's bits
          assert.is(v.suggestedMode! & ~(7 << shift), mode & 0o777 & ~(7 << shift));
        } else assert.is(v.reason, undefined);
        cases++;
      }
    }
  }
  assert.is(cases, 4 * 8 * 2);
});

test('the documented table: 0666 refuses every :ro, 0644 lets non-root :ro and root :rw through, 0444 only :ro', () => {
  const table = (mode: number) =>
    [
      [0, 0],
      [4178, 4178],
    ].map(([uid, gid]) => (['ro', 'rw'] as const).map((a) => (checkAccess(share(mode, a), uid, gid).ok ? 'ok' : 'refused')).join(' '));
  assert.equal(table(0o666), ['refused ok', 'refused ok']);
  assert.equal(table(0o644), ['refused ok', 'ok refused']);
  assert.equal(table(0o444), ['ok refused', 'ok refused']);
  assert.equal(table(0o466), ['ok refused', 'refused ok']);
  assert.equal(table(0o600), ['refused ok', 'refused refused']);
});

test('refusal messages name the user, share, mode, owner, binding, reason and what to do', () => {
  const m1 = refusalMessage(share(0o666, 'ro'), 4178, 4178, checkAccess(share(0o666, 'ro'), 4178, 4178));
  assert.is(
    m1,
    'nri-memshare: UB share team/a (SDK name nms.team.a) cannot be bound read-only (:ro) to this container: it runs as uid 4178 gid 4178, ' +
      'and the share\'s mode 0666 (owner uid 0 gid 0) grants it read-write through its "other" bits, so the SDK opens its read-only (0444) ' +
      'device nodes for writing and every map fails (6051). To fix: run the container as a uid or primary gid the mode grants read only, ' +
      'or bind the share :rw, or set backend.shareMode so that the other class gets read only (e.g. "0664"; it applies to shares allocated after the change)',
  );
  const m2 = refusalMessage(share(0o644, 'ro'), 0, 0, checkAccess(share(0o644, 'ro'), 0, 0));
  assert.match(m2, 'it runs as uid 0 gid 0');
  assert.match(m2, 'grants it read-write as the share\'s owner');
  assert.match(m2, 'root (CAP_DAC_OVERRIDE) would write through the read-only binding');
  assert.match(m2, 'run the container as a non-root user');
  assert.match(m2, '"0444"');
  const m3 = refusalMessage(share(0o644, 'rw'), 4178, 4178, checkAccess(share(0o644, 'rw'), 4178, 4178));
  assert.match(m3, 'cannot be bound read-write (:rw)');
  assert.match(m3, 'grants it read only through its "other" bits, so the SDK refuses a writable map (6011)');
  assert.match(m3, 'or bind the share :ro');
  assert.match(m3, '"0646"');
  const m4 = refusalMessage(share(0o640, 'ro'), 4178, 0, checkAccess(share(0o640, 'ro'), 4178, 0));
  assert.match(m4, 'grants it read only through its group bits (its primary gid is the owner\'s)');
  const m5 = refusalMessage(share(0o600, 'ro'), 4178, 4178, checkAccess(share(0o600, 'ro'), 4178, 4178));
  assert.match(m5, 'grants it no read access through its "other" bits, so the SDK refuses every map of it (6011)');
  assert.match(m5, '"0604"');
  for (const m of [m1, m2, m3, m4, m5]) assert.not.match(m, '\n');
});

test('--share SPEC: round trip, and bad specs named', () => {
  const s = share(0o644, 'ro', { share: 'team-ub/secro-1', sdkName: 'nms.team-ub.x:abcdefgh234567ab', ownerUid: 0, ownerGid: 0 });
  const arg = formatShareArg(s);
  assert.is(arg, 'team-ub/secro-1,sdk=nms.team-ub.x:abcdefgh234567ab,mode=0644,owner=0:0,access=ro');
  assert.equal(parseShareArg(arg), s);
  for (const [bad, why] of [
    ['a,sdk=x,mode=0644,owner=0:0,access=ro', 'must start with <namespace>/<share>'],
    ['t/a,mode=0644,owner=0:0,access=ro', 'no sdk='],
    ['t/a,sdk=x,mode=999,owner=0:0,access=ro', 'is not an octal mode'],
    ['t/a,sdk=x,mode=0644,owner=0,access=ro', 'owner must be <uid>:<gid>'],
    ['t/a,sdk=x,mode=0644,owner=0:0,access=wo', 'access must be ro or rw'],
    ['t/a,sdk=x,mode=0644,owner=0:0,access=ro,extra=1', 'unknown key extra'],
    ['t/a,sdk=x,mode=0644,owner=0:0,ro', 'is not key=value'],
  ]) assert.throws(() => parseShareArg(bad), (e: Error) => e.message.includes(why), bad);
});

// ---- the hook: state on stdin, config.json in the bundle

// removed after the file's last test
const dir = tempDirs(test, 'ubs-access-')();
let bundles = 0;
function bundle(user: unknown): string {
  const b = join(dir, `bundle-${++bundles}`);
  require('node:fs').mkdirSync(b);
  writeFileSync(join(b, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { user, args: ['/bin/sh'] }, root: { path: 'rootfs' } }));
  return b;
}
const state = (b: string) => JSON.stringify({ ociVersion: '1.0.2', id: 'c1', status: 'creating', pid: 4242, bundle: b, annotations: {} });

test('containerUser: uid and primary gid from <bundle>/config.json; unreadable state or bundle is an error', () => {
  assert.equal(containerUser(state(bundle({ uid: 4178, gid: 4177, additionalGids: [0, 4242] }))), { uid: 4178, gid: 4177, id: 'c1' });
  assert.equal(containerUser(state(bundle({}))), { uid: 0, gid: 0, id: 'c1' }, 'absent: what runc runs as');
  assert.throws(() => containerUser('not json'), /not JSON/);
  assert.throws(() => containerUser(JSON.stringify({ id: 'x' })), /no absolute "bundle"/);
  assert.throws(() => containerUser(state(join(dir, 'nowhere'))), /cannot read the container's user from .*nowhere\/config\.json/);
  assert.throws(() => containerUser(state(bundle({ uid: -1, gid: 0 }))), /process\.user\.uid is not a uid/);
});

test('runAccessCheck: 0 when every binding can be honoured, 1 with one line naming the first refused (and the others), 2 on bad arguments', () => {
  const user = bundle({ uid: 4178, gid: 4178 });
  const root = bundle({ uid: 0, gid: 0 });
  const arg = (mode: number, access: Access, name = 'a') => formatShareArg(share(mode, access, { share: `team/${name}`, sdkName: `nms.team.${name}` }));
  assert.equal(runAccessCheck(['--share', arg(0o644, 'ro')], state(user)), { code: 0 });
  assert.equal(runAccessCheck(['--share', arg(0o666, 'rw'), `--share=${arg(0o666, 'rw', 'b')}`], state(user)), { code: 0 });
  assert.equal(runAccessCheck(['--share', arg(0o644, 'rw')], state(root)), { code: 0 });
  const one = runAccessCheck(['--share', arg(0o666, 'ro')], state(user));
  assert.is(one.code, 1);
  assert.is(one.message, refusalMessage(share(0o666, 'ro'), 4178, 4178, checkAccess(share(0o666, 'ro'), 4178, 4178)));
  const two = runAccessCheck(['--share', arg(0o644, 'rw', 'a'), '--share', arg(0o644, 'ro', 'b'), '--share', arg(0o644, 'rw', 'c')], state(user));
  assert.is(two.code, 1);
  assert.match(two.message!, /^nri-memshare: UB share team\/a /);
  assert.match(two.message!, '. Also refused: team/c (:rw: the mode grants read only)');
  assert.not.match(two.message!, 'team/b');
  const rootRo = runAccessCheck(['--share', arg(0o666, 'ro')], state(root));
  assert.is(rootRo.code, 1);
  assert.match(rootRo.message!, 'it runs as uid 0 gid 0');
  // fail closed: nobody knows the user
  const blind = runAccessCheck(['--share', arg(0o644, 'ro')], '');
  assert.is(blind.code, 1);
  assert.match(blind.message!, /^nri-memshare: cannot check the UB share bindings of this container: the container state on stdin is not JSON/);
  assert.is(runAccessCheck([], state(user)).code, 2);
  assert.match(runAccessCheck(['--shar', 'x'], state(user)).message!, 'unknown argument "--shar"');
  assert.match(runAccessCheck(['--share'], state(user)).message!, '--share needs a value');
  assert.match(runAccessCheck(['--share', 'nope'], state(user)).message!, 'must start with <namespace>/<share>');
});

const hook = (args: string[], input: string) => spawnSync(process.execPath, [AGENT_CLI, ACCESS_CHECK_COMMAND, ...args], { input, encoding: 'utf8', env: {} });

test('the subcommand as runc runs it (bundled agent, empty environment, state on stdin): exit code and one stderr line', () => {
  const user = bundle({ uid: 4178, gid: 4178, additionalGids: [4242] });
  const ok = hook(['--share', formatShareArg(share(0o644, 'ro'))], state(user));
  assert.is(ok.status, 0, ok.stderr);
  assert.is(ok.stderr, '');
  assert.is(ok.stdout, '');
  const t0 = Date.now();
  const no = hook(['--share', formatShareArg(share(0o666, 'ro'))], state(user));
  const ms = Date.now() - t0;
  assert.is(no.status, 1);
  assert.is(no.stderr, `${refusalMessage(share(0o666, 'ro'), 4178, 4178, checkAccess(share(0o666, 'ro'), 4178, 4178))}\n`);
  assert.is(no.stdout, '');
  assert.ok(ms < 5000, `the hook is quick (nothing of the daemon starts): ${ms} ms`);
  const usage = hook(['--frob'], state(user));
  assert.is(usage.status, 2);
  assert.match(usage.stderr, /^nri-memshare ubs-access-check: unknown argument "--frob"\n$/);
  const noState = hook(['--share', formatShareArg(share(0o644, 'ro'))], '{"id":"c1"}');
  assert.is(noState.status, 1);
  assert.match(noState.stderr, 'no absolute "bundle"');
  // help mentions it, but not among the commands people run (the bash completion offers those)
  const help = spawnSync(process.execPath, [AGENT_CLI, 'help'], { encoding: 'utf8' });
  const commands = help.stdout.slice(help.stdout.indexOf('commands:'), help.stdout.indexOf('options:'));
  assert.not.match(commands, ACCESS_CHECK_COMMAND);
  assert.match(help.stdout, `${ACCESS_CHECK_COMMAND} --share SPEC`);
});

// ---- the backend's hook, its NRI wire form, the config key

const noPool = {} as UbsPool;
const handle = (ns: string, name: string, memIds: number[]): ShareHandle => ({
  backend: 'ubs',
  namespace: ns,
  name,
  sizeBytes: 128 << 20,
  requestedBytes: 128 << 20,
  data: { sdkName: `nms.${ns}.${name}`, memIds, major: 509, unitBytes: 128 << 20 },
});

test('attach(): one createRuntime hook running accessCheck ubs-access-check with a --share per binding; :ro nodes 0444, :rw 0666', () => {
  const cfg = { ...defaultUbsConfig(), groups: [], shareMode: 0o644, accessCheck: ['/opt/bin/nms', '--flag'] };
  const b = new UbsBackend(cfg, { stateDir: dir }, noPool);
  const inj = b.attach([
    { handle: handle('team', 'a', [3]), readOnly: true, ref: 'a:ro' },
    { handle: handle('other', 'b', [5, 6]), readOnly: false, ref: 'other/b' },
  ]);
  assert.equal(inj.createRuntimeHooks, [
    {
      path: '/opt/bin/nms',
      args: ['/opt/bin/nms', '--flag', 'ubs-access-check', '--share', 'team/a,sdk=nms.team.a,mode=0644,owner=0:0,access=ro', '--share', 'other/b,sdk=nms.other.b,mode=0644,owner=0:0,access=rw'],
      env: process.env.NRI_MEMSHARE_NODE ? [`NRI_MEMSHARE_NODE=${process.env.NRI_MEMSHARE_NODE}`] : [],
      timeout: 10,
    },
  ]);
  assert.equal(inj.devices.map((d) => [d.minor, d.fileMode]), [[3, 0o444], [5, 0o666], [6, 0o666]]);
  // the NRI adjustment carries it as hooks.create_runtime (ContainerAdjustment field 5, Hooks field 2)
  const adjust = adjustmentOf(inj);
  const wire = Buffer.from(codecs.CreateContainerResponse.encode({ adjust }));
  const back = codecs.CreateContainerResponse.decode(wire) as unknown as { adjust: { hooks: { createRuntime: Array<{ path: string; args: string[]; env: string[]; timeout: { value: number } }>; prestart: unknown[] } } };
  const h = back.adjust.hooks.createRuntime;
  assert.is(h.length, 1);
  assert.is(h[0].path, '/opt/bin/nms');
  assert.equal(h[0].args, inj.createRuntimeHooks![0].args);
  assert.is(Number(h[0].timeout.value), 10);
  assert.is(back.adjust.hooks.prestart.length, 0);
  // read by an independent decoder from proto/nri.proto (field 5 hooks, Hooks.create_runtime = 2, Hook 1..4)
  const root = protobuf.loadSync(join(__dirname, '..', '..', '..', 'proto', 'nri.proto'));
  const Resp = root.lookupType('nri.pkg.api.v1alpha1.CreateContainerResponse');
  const obj = Resp.toObject(Resp.decode(wire), { longs: Number }) as { adjust: { hooks: { createRuntime: Array<{ path: string; args: string[]; timeout: { value: number } }> } } };
  assert.equal(obj.adjust.hooks.createRuntime, [{ path: '/opt/bin/nms', args: inj.createRuntimeHooks![0].args, timeout: { value: 10 } }]);
  // an injection without hooks (the local backend) adds none
  assert.is(adjustmentOf({ mounts: [], env: [], devices: [], cdiDevices: [] }).hooks, undefined);
});

test('config backend.accessCheck: default /usr/bin/nri-memshare; an absolute executable and string arguments; bad values named', () => {
  assert.equal(defaultUbsConfig().accessCheck, ['/usr/bin/nri-memshare']);
  const read = (v: unknown) => parseConfig({ backend: { kind: 'ubs', accessCheck: v } }, 't');
  const good = read(['/usr/bin/node', '/opt/nms/nri-memshare.js']);
  assert.equal(good.problems, []);
  assert.equal((good.config.backend as unknown as { accessCheck: string[] }).accessCheck, ['/usr/bin/node', '/opt/nms/nri-memshare.js']);
  for (const [bad, why] of [
    ['/usr/bin/nri-memshare', 'must be an array of 1 to 16 non-empty strings'],
    [[], 'must be an array of 1 to 16 non-empty strings'],
    [['/usr/bin/x', ''], 'must be an array of 1 to 16 non-empty strings'],
    [['/usr/bin/x', 3], 'must be an array of 1 to 16 non-empty strings'],
    [['nri-memshare'], 'the executable (its first element) must be an absolute path without ".."'],
    [['/usr/../bin/x'], 'the executable (its first element) must be an absolute path without ".."'],
  ] as const) {
    const p = read(bad).problems;
    assert.ok(p.some((x) => x.startsWith('backend.accessCheck: ') && x.includes(why)), `${JSON.stringify(bad)}: ${p.join('; ')}`);
  }
});

test.run();
