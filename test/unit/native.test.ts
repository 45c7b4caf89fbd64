import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as native from '../../native';
import { tempDirs } from '../support/cleanup';
import { needRoot } from '../support/mounts';
const tempDir = tempDirs(test, 'native-test-');


test('parseMountInfo reads fields and unescapes octal escapes in paths', () => {
  const text =
    '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n' +
    '40 20 0:52 / /run/x rw,nosuid,nodev - tmpfs tmpfs rw,size=131072k,mode=1777\n' +
    'garbage line\n';
  const m = native.parseMountInfo(text);
  assert.is(m.length, 2);
  assert.is(m[0].mountPoint, '/mnt/with space');
  assert.equal(m[0].propagation, ['master:1', 'shared:7']);
  assert.is(m[0].fsType, 'ext3');
  assert.is(m[1].fsType, 'tmpfs');
  assert.equal(m[1].mountOptions, ['rw', 'nosuid', 'nodev']);
  assert.ok(m[1].superOptions.includes('size=131072k'));
  assert.equal(m[1].propagation, []);
});

test('importing native does not load koffi or libc (lazy)', () => {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(__dirname, '..', '..', 'native'))}); console.log(Object.keys(require.cache).some((k) => k.includes('/node_modules/koffi/')))`], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), 'false');
});

test('koffi loads from its prebuilt binary, without its build tooling (https, tls, zlib)', () => {
  const mod = JSON.stringify(join(__dirname, '..', '..', 'native', 'koffi'));
  const code = `const k = require(${mod}).loadKoffi();
    const loaded = process.moduleLoadList.filter((m) => /^NativeModule (https|tls|zlib)$/.test(m));
    console.log(JSON.stringify({ load: typeof k.load, struct: typeof k.struct, loaded }));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout) as unknown, { load: 'function', struct: 'function', loaded: [] });
});

test('readMountInfo finds the root mount', () => {
  const m = native.readMountInfo();
  assert.ok(m.some((x) => x.mountPoint === '/'));
});

test('statfs reports a tmpfs with its magic and byte counts', () => {
  const st = native.statfs('/dev/shm');
  assert.is(st.type, native.TMPFS_MAGIC);
  assert.ok(st.blockSize > 0);
  assert.is(st.usedBytes, st.totalBytes - st.freeBytes);
});

test('a failing call throws naming the call, the path and strerror', () => {
  try {
    native.statfs('/definitely/not/here');
    assert.unreachable('statfs should have thrown');
  } catch (err) {
    assert.instance(err, native.SyscallError);
    const e = err as native.SyscallError;
    assert.is(e.code, 'ENOENT');
    assert.is(e.syscall, 'statfs');
    assert.match(e.message, 'statfs(/definitely/not/here)');
    assert.match(e.message, 'No such file or directory');
  }
});

test('mount and umount2 a tmpfs', () => {
  if (!needRoot('mount and umount2 a tmpfs')) return;
  const dir = tempDir();
  const target = join(dir, 'mnt');
  mkdirSync(target);
  try {
    native.mount('tmpfs', target, 'tmpfs', native.MS_NOSUID | native.MS_NODEV, 'size=1048576');
    const st = native.statfs(target);
    assert.is(st.type, native.TMPFS_MAGIC);
    assert.is(st.totalBytes, 1048576);
    const mi = native.readMountInfo().filter((m) => m.mountPoint === target);
    assert.is(mi.length, 1);
    assert.ok(mi[0].mountOptions.includes('nosuid') && mi[0].mountOptions.includes('nodev'));
    native.umount2(target, native.UMOUNT_NOFOLLOW);
    assert.is.not(native.statfs(target).type === native.TMPFS_MAGIC && native.statfs(target).totalBytes === 1048576, true);
    try {
      native.umount2(target, native.UMOUNT_NOFOLLOW);
      assert.unreachable('second umount should fail');
    } catch (err) {
      assert.is((err as native.SyscallError).code, 'EINVAL');
      assert.match((err as Error).message, 'umount2(');
    }
  } finally {
    try { native.umount2(target, native.MNT_DETACH); } catch { /* already gone */ }
  }
});

test('mountStat tells mount roots from plain directories, also for same-filesystem binds', () => {
  assert.is(native.mountStat('/').mountRoot, true);
  assert.is(native.mountStat('/proc').mountRoot, true);
  const dir = tempDir();
  assert.is(native.mountStat(dir).mountRoot, false);
  if (!needRoot('mountStat bind')) return;
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  native.mount(src, dst, null, native.MS_BIND, null);
  try {
    assert.is(native.mountStat(dst).mountRoot, true);
    assert.is(native.mountStat(src).mountRoot, false);
  } finally {
    native.umount2(dst, 0);
  }
  assert.is(native.mountStat(dst).mountRoot, false);
});

test('mountStat: a unique mount id, when there is one, is never 0 and differs between two mounts', () => {
  // qemu-user 7.2 (test/arch64.sh runs the agent as aarch64 under it) passes statx's mask through,
  // STATX_MNT_ID_UNIQUE bit included, but not stx_mnt_id: every path then reported id "0", and the
  // local backend took a foreign tmpfs stacked on a share for its own mount (docs/aarch64.md)
  const a = native.mountStat('/');
  const b = native.mountStat('/proc');
  assert.is.not(a.uniqueMountId, '0');
  assert.is.not(b.uniqueMountId, '0');
  if (a.uniqueMountId !== undefined || b.uniqueMountId !== undefined) assert.is.not(a.uniqueMountId, b.uniqueMountId, '/ and /proc are two mounts');
});

test('flock: a second exclusive non-blocking lock on the same file is refused', () => {
  const dir = tempDir();
  const a = openSync(join(dir, 'lock'), 'w');
  const b = openSync(join(dir, 'lock'), 'r');
  try {
    native.flock(a, native.LOCK_EX | native.LOCK_NB, 'lock');
    try {
      native.flock(b, native.LOCK_EX | native.LOCK_NB, 'lock');
      assert.unreachable('second lock should fail');
    } catch (err) {
      assert.is((err as native.SyscallError).code, 'EAGAIN');
    }
    native.flock(a, native.LOCK_UN, 'lock');
    native.flock(b, native.LOCK_EX | native.LOCK_NB, 'lock');
  } finally {
    closeSync(a);
    closeSync(b);
  }
});

test.run();
