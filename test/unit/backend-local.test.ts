import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, readFileSync, statSync, existsSync, mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as native from '../../native';
import { LocalBackend, SHARES_LOCK_FILE, mountSourceFor, type MountOps } from '../../plugin/backends';
import type { ShareDeclaration } from '../../plugin/model/types';
import { rejects } from '../support/util';
import { needRoot, unmountAndRemove } from '../support/mounts';


const MiB = 1024 * 1024;

const base = mkdtempSync(join(tmpdir(), 'backend-local-'));
const sharesDir = join(base, 'shares');
const stateDir = join(base, 'state');

function decl(name: string, sizeBytes: number, namespace = 'team-a', allowExec?: boolean): ShareDeclaration {
  return { namespace, name, sizeBytes, allowedNamespaces: [], origin: 'test', ...(allowExec === undefined ? {} : { allowExec }) };
}

function mountsAt(path: string): native.MountInfo[] {
  return native.readMountInfo().filter((m) => m.mountPoint === path);
}

/** Fills `dir` until the kernel says no; returns the error code and bytes written. */
function fill(dir: string, chunk = MiB): { code: string | undefined; written: number } {
  const fd = openSync(join(dir, 'fill'), 'w');
  const buf = Buffer.alloc(chunk, 7);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, buf);
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code, written };
  } finally {
    closeSync(fd);
  }
}

test('acquire mounts a nosuid,nodev,noexec tmpfs of exactly the declared size, mode 1777, marked as the agent\'s, in 0700 directories', async () => {
  if (!needRoot('acquire size')) return;
  const b = new LocalBackend({ sharesDir, stateDir });
  const share = await b.acquire(decl('exact', 128 * MiB));
  assert.is(share.data.hostPath, join(b.pathOf('team-a', 'exact')));
  assert.is(share.sizeBytes, 128 * MiB);
  const st = native.statfs(share.data.hostPath);
  assert.is(st.type, native.TMPFS_MAGIC);
  assert.is(st.totalBytes, 128 * MiB);
  const m = mountsAt(share.data.hostPath);
  assert.is(m.length, 1);
  assert.is(m[0].fsType, 'tmpfs');
  for (const o of ['nosuid', 'nodev', 'noexec']) assert.ok(m[0].mountOptions.includes(o), m[0].mountOptions.join(','));
  assert.is(m[0].source, mountSourceFor(stateDir));
  assert.match(m[0].source, /^nri-memshare:[0-9a-f]{16}$/);
  assert.is(share.data.source, m[0].source);
  assert.is(share.data.exec, false);
  assert.is(statSync(share.data.hostPath).mode & 0o7777, 0o1777);
  assert.is(statSync(join(share.data.hostPath, '..')).mode & 0o7777, 0o700);
  assert.is(statSync(sharesDir).mode & 0o7777, 0o700);
  await b.release({ namespace: 'team-a', name: 'exact' });
});

test('writing past the size gives ENOSPC', async () => {
  if (!needRoot('ENOSPC')) return;
  const b = new LocalBackend({ sharesDir });
  const share = await b.acquire(decl('small', 2 * MiB));
  const r = fill(share.data.hostPath, 64 * 1024);
  assert.is(r.code, 'ENOSPC');
  assert.ok(r.written <= 2 * MiB && r.written >= 2 * MiB - 128 * 1024, `wrote ${r.written}`);
  const u = await b.usage({ namespace: 'team-a', name: 'small' });
  assert.ok(u);
  assert.is(u!.sizeBytes, 2 * MiB);
  assert.ok(u!.usedBytes >= r.written, `used ${u!.usedBytes} < written ${r.written}`);
  await b.release({ namespace: 'team-a', name: 'small' });
});

test('acquire twice (and concurrently) mounts once and keeps the data', async () => {
  if (!needRoot('acquire idempotent')) return;
  const b = new LocalBackend({ sharesDir });
  const first = await b.acquire(decl('twice', 4 * MiB));
  writeFileSync(join(first.data.hostPath, 'keep'), 'hello');
  const again = await b.acquire(decl('twice', 4 * MiB));
  assert.equal(again, first);
  const many = await Promise.all(Array.from({ length: 8 }, () => b.acquire(decl('twice', 4 * MiB))));
  assert.ok(many.every((s) => s.data.hostPath === first.data.hostPath));
  assert.is(mountsAt(first.data.hostPath).length, 1);
  assert.is(readFileSync(join(first.data.hostPath, 'keep'), 'utf8'), 'hello');
  await b.release({ namespace: 'team-a', name: 'twice' });
});

test('concurrent first acquires of one share mount once', async () => {
  if (!needRoot('concurrent acquire')) return;
  const b = new LocalBackend({ sharesDir });
  const all = await Promise.all(Array.from({ length: 8 }, () => b.acquire(decl('race', 4 * MiB))));
  assert.is(mountsAt(all[0].data.hostPath).length, 1);
  await b.release({ namespace: 'team-a', name: 'race' });
});

test('acquire and release of one share run one at a time, in call order', async () => {
  if (!needRoot('acquire/release order')) return;
  const b = new LocalBackend({ sharesDir });
  const d = decl('order', 4 * MiB);
  const [s] = await Promise.all([b.acquire(d), b.release({ namespace: 'team-a', name: 'order' }), b.acquire(d), b.release({ namespace: 'team-a', name: 'order' }), b.acquire(d)]);
  assert.is(mountsAt(s.data.hostPath).length, 1, 'the last call was an acquire');
  await Promise.all([b.acquire(d), b.release({ namespace: 'team-a', name: 'order' })]);
  assert.is(mountsAt(s.data.hostPath).length, 0, 'the last call was a release');
});

test('a larger declaration grows the mounted share in place; a smaller one shrinks it only when the data fits', async () => {
  if (!needRoot('resize')) return;
  const b = new LocalBackend({ sharesDir });
  const s = await b.acquire(decl('resize', 4 * MiB));
  writeFileSync(join(s.data.hostPath, 'data'), Buffer.alloc(3 * MiB, 1));
  const grown = await b.acquire(decl('resize', 8 * MiB));
  assert.is(grown.sizeBytes, 8 * MiB);
  assert.is(native.statfs(s.data.hostPath).totalBytes, 8 * MiB);
  assert.is(readFileSync(join(s.data.hostPath, 'data')).length, 3 * MiB);
  // 3 MiB in use: shrinking to 2 MiB cannot be done, the share stays at 8 MiB and says so
  const kept = await b.acquire(decl('resize', 2 * MiB));
  assert.is(kept.sizeBytes, 8 * MiB);
  assert.is(mountsAt(s.data.hostPath).length, 1);
  // 6 MiB is enough for the data: shrink happens
  const shrunk = await b.acquire(decl('resize', 6 * MiB));
  assert.is(shrunk.sizeBytes, 6 * MiB);
  assert.is(native.statfs(s.data.hostPath).totalBytes, 6 * MiB);
  await b.release({ namespace: 'team-a', name: 'resize' });
});

test('release unmounts, removes the directories, and is idempotent', async () => {
  if (!needRoot('release')) return;
  const b = new LocalBackend({ sharesDir });
  const s = await b.acquire(decl('gone', 4 * MiB, 'team-r'));
  writeFileSync(join(s.data.hostPath, 'x'), 'x');
  await b.release({ namespace: 'team-r', name: 'gone' });
  assert.is(mountsAt(s.data.hostPath).length, 0);
  assert.not.ok(existsSync(s.data.hostPath));
  assert.not.ok(existsSync(join(s.data.hostPath, '..')), 'empty namespace dir removed');
  await b.release({ namespace: 'team-r', name: 'gone' });
  await b.release({ namespace: 'team-r', name: 'never-acquired' });
  assert.is(await b.usage({ namespace: 'team-r', name: 'gone' }), undefined);
});

test('release keeps the namespace dir while another share of the namespace is there', async () => {
  if (!needRoot('release keeps namespace')) return;
  const b = new LocalBackend({ sharesDir });
  const one = await b.acquire(decl('one', 4 * MiB, 'team-k'));
  const two = await b.acquire(decl('two', 4 * MiB, 'team-k'));
  await b.release({ namespace: 'team-k', name: 'one' });
  assert.ok(existsSync(two.data.hostPath));
  assert.is(mountsAt(two.data.hostPath).length, 1);
  assert.not.ok(existsSync(one.data.hostPath));
  await b.release({ namespace: 'team-k', name: 'two' });
});

test('release of a share held open on the host detaches it', async () => {
  if (!needRoot('release busy')) return;
  const b = new LocalBackend({ sharesDir });
  const s = await b.acquire(decl('busy', 4 * MiB));
  const fd = openSync(join(s.data.hostPath, 'open'), 'w');
  try {
    process.chdir(s.data.hostPath); // makes a plain umount fail with EBUSY
    await b.release({ namespace: 'team-a', name: 'busy' });
    assert.is(mountsAt(s.data.hostPath).length, 0);
  } finally {
    process.chdir('/');
    closeSync(fd);
  }
});

test('present lists the mounted shares and nothing else', async () => {
  if (!needRoot('present')) return;
  const b = new LocalBackend({ sharesDir });
  await b.acquire(decl('p1', 4 * MiB, 'team-p'));
  await b.acquire(decl('p2', 4 * MiB, 'team-q'));
  mkdirSync(join(sharesDir, 'team-p', 'not-mounted'));
  const p = (await b.present()).map((x) => `${x.namespace}/${x.name}`).sort();
  assert.equal(p, ['team-p/p1', 'team-q/p2']);
  const p1 = (await b.present()).find((x) => x.name === 'p1');
  assert.is(p1!.data.hostPath, b.pathOf('team-p', 'p1'));
  await b.release({ namespace: 'team-p', name: 'p1' });
  await b.release({ namespace: 'team-q', name: 'p2' });
  rmSync(join(sharesDir, 'team-p'), { recursive: true });
  assert.equal(await b.present(), []);
});

test('a name or namespace with "/" or ".." is refused before any path is touched', async () => {
  const b = new LocalBackend({ sharesDir: join(base, 'never-made') });
  for (const [ns, name] of [['team-a', '../x'], ['team-a', 'a/b'], ['..', 'x'], ['a/b', 'x'], ['team-a', '..'], ['team-a', '']]) {
    await rejects(b.acquire(decl(name, 4 * MiB, ns)), /not a DNS-1123 label/);
    await rejects(b.release({ namespace: ns, name: name }), /not a DNS-1123 label/);
    assert.throws(() => b.pathOf(ns, name), /refusing to build a host path/);
  }
  assert.not.ok(existsSync(join(base, 'never-made')));
});

test('a non-tmpfs mount at the share path is refused', async () => {
  if (!needRoot('non-tmpfs refused')) return;
  const b = new LocalBackend({ sharesDir });
  const path = b.pathOf('team-a', 'foreign');
  mkdirSync(path, { recursive: true });
  const disk = mkdtempSync(join(tmpdir(), 'backend-local-disk-'));
  native.mount(disk, path, null, native.MS_BIND, null); // on the disk, not tmpfs
  try {
    assert.is.not(native.statfs(path).type, native.TMPFS_MAGIC, 'test premise: tmpdir is not on tmpfs');
    await rejects(b.acquire(decl('foreign', 4 * MiB)), /not a tmpfs/);
  } finally {
    native.umount2(path, 0);
    rmSync(path, { recursive: true });
    rmSync(disk, { recursive: true });
  }
});

test('injection is one bind mount at /dev/shm/<name>, ro with :ro, and no env', () => {
  const b = new LocalBackend({ sharesDir });
  const share = { backend: 'local', namespace: 'team-a', name: 'inj', sizeBytes: 1, requestedBytes: 1, data: { hostPath: '/run/x/team-a/inj' } };
  const rw = b.attach([{ handle: share, readOnly: false, ref: 'inj' }]);
  assert.equal(rw.env, []);
  assert.equal(rw.mounts, [
    { destination: '/dev/shm/inj', type: 'bind', source: '/run/x/team-a/inj', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] },
  ]);
  assert.equal(rw.devices, []);
  const ro = b.attach([{ handle: share, readOnly: true, ref: 'inj' }]);
  assert.ok(ro.mounts[0].options.includes('ro'));
  assert.not.ok(ro.mounts[0].options.includes('rw'));
  // a share that allows exec is bound without noexec (nosuid, nodev stay)
  const ex = b.attach([{ handle: { ...share, data: { ...share.data, exec: true } }, readOnly: false, ref: 'inj' }]);
  assert.equal(ex.mounts[0].options, ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev']);
});

test('allowExec mounts without noexec; a changed declaration remounts with the new setting and keeps the data and size', async () => {
  if (!needRoot('allowExec')) return;
  const b = new LocalBackend({ sharesDir, stateDir });
  const s = await b.acquire(decl('exec', 4 * MiB, 'team-a', true));
  assert.is(s.data.exec, true);
  const opts = () => mountsAt(s.data.hostPath)[0].mountOptions;
  assert.not.ok(opts().includes('noexec'), opts().join(','));
  writeFileSync(join(s.data.hostPath, 'keep'), 'data');
  const off = await b.acquire(decl('exec', 4 * MiB, 'team-a', false));
  assert.is(off.data.exec, false);
  assert.ok(opts().includes('noexec'), opts().join(','));
  // a resize keeps noexec (a remount sets every flag it is given, and only those)
  const grown = await b.acquire(decl('exec', 8 * MiB, 'team-a'));
  assert.is(grown.sizeBytes, 8 * MiB);
  assert.ok(opts().includes('noexec') && opts().includes('nosuid') && opts().includes('nodev'), opts().join(','));
  const on = await b.acquire(decl('exec', 8 * MiB, 'team-a', true));
  assert.is(on.data.exec, true);
  assert.not.ok(opts().includes('noexec'), opts().join(','));
  assert.is(readFileSync(join(s.data.hostPath, 'keep'), 'utf8'), 'data');
  assert.is(mountsAt(s.data.hostPath).length, 1);
  assert.equal((await b.present()).find((p) => p.name === 'exec')?.data.exec, true);
  await b.release({ namespace: 'team-a', name: 'exec' });
});

/** Mounts somebody else's tmpfs at <sharesDir>/<ns>/<name>. */
function foreignTmpfs(ns: string, name: string, source = 'tmpfs'): string {
  const path = join(sharesDir, ns, name);
  mkdirSync(path, { recursive: true });
  native.mount(source, path, 'tmpfs', 0, 'size=1048576');
  writeFileSync(join(path, 'theirs'), 'x');
  return path;
}

test('a foreign tmpfs under sharesDir is not present, is reported once, and is never acquired nor released', async () => {
  if (!needRoot('foreign tmpfs')) return;
  const warnings: string[] = [];
  const b = new LocalBackend({ sharesDir, stateDir, warn: (msg) => warnings.push(msg) });
  const plain = foreignTmpfs('team-f', 'plain');
  // another agent's mark (another stateDir) is foreign too
  const other = foreignTmpfs('team-f', 'other', mountSourceFor(join(base, 'other-state')));
  const mine = await b.acquire(decl('mine', 4 * MiB, 'team-f'));
  try {
    assert.equal((await b.present()).map((p) => `${p.namespace}/${p.name}`), ['team-f/mine']);
    assert.is(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings.join('\n'), `${plain} has a tmpfs mount not made by this agent (source "tmpfs")`);
    assert.match(warnings.join('\n'), `${other} has a tmpfs mount not made by this agent`);
    await b.present();
    assert.is(warnings.length, 2, 'reported once');

    await rejects(b.acquire(decl('plain', 4 * MiB, 'team-f')), /team-f\/plain: .* has a tmpfs not made by this agent \(source "tmpfs"\); refusing to hand it out/);
    // released with a handle of this agent's (it carries the mark): the foreign mount stays
    await rejects(b.release({ ...mine, name: 'other', data: { ...mine.data, hostPath: other } }), /cannot release the share at .*other: the mount there was not made by this agent/);
    assert.is(mountsAt(other).length, 1);
    assert.is(mountsAt(plain).length, 1);
    assert.is(readFileSync(join(plain, 'theirs'), 'utf8'), 'x');
    // the agent's own goes
    await b.release(mine);
    assert.is(mountsAt(mine.data.hostPath).length, 0);
  } finally {
    native.umount2(plain, 0);
    native.umount2(other, 0);
    rmSync(join(sharesDir, 'team-f'), { recursive: true, force: true });
  }
});

// the ops seam: the real calls, counted
function countingOps(): { ops: MountOps; mountinfoReads: () => number } {
  let reads = 0;
  const ops: MountOps = {
    mount: native.mount,
    umount2: native.umount2,
    statfs: native.statfs,
    mountStat: native.mountStat,
    readMountInfo: () => {
      reads++;
      return native.readMountInfo();
    },
  };
  return { ops, mountinfoReads: () => reads };
}

test('a later binding of a share this agent mounted is checked by its mount id, without reading mountinfo', async () => {
  if (!needRoot('mount id')) return;
  if (native.mountStat('/').uniqueMountId === undefined) {
    // before Linux 6.8 there is no unique mount id: every later binding reads mountinfo
    const msg = 'statx has no STATX_MNT_ID_UNIQUE on this kernel (before 6.8), or qemu-user drops it (test/arch64.sh): the mountinfo check runs every time';
    if (process.env.CI === 'true' && process.env.NRI_MEMSHARE_EMULATED !== 'qemu-user') throw new Error(msg);
    console.log(`\n!!!!! SKIPPED: ${msg} !!!!!\n`);
    return;
  }
  const { ops, mountinfoReads } = countingOps();
  const b = new LocalBackend({ sharesDir, stateDir }, ops);
  const first = await b.acquire(decl('by-id', 4 * MiB, 'team-i'));
  try {
    const before = mountinfoReads();
    const again = await b.acquire(decl('by-id', 4 * MiB, 'team-i'));
    assert.is(mountinfoReads(), before, 'no mountinfo read for a later binding');
    assert.equal(again.data, first.data);
  } finally {
    await b.release(first);
  }
});

test('a later binding after the mount changed under the agent reads mountinfo again and refuses a foreign tmpfs stacked on top', async () => {
  if (!needRoot('stacked mount')) return;
  const { ops, mountinfoReads } = countingOps();
  const b = new LocalBackend({ sharesDir, stateDir }, ops);
  const mine = await b.acquire(decl('stacked', 4 * MiB, 'team-i'));
  const path = mine.data.hostPath;
  native.mount('tmpfs', path, 'tmpfs', native.MS_NOSUID, 'size=1m');
  try {
    const before = mountinfoReads();
    await rejects(b.acquire(decl('stacked', 4 * MiB, 'team-i')), /team-i\/stacked: .* has a tmpfs not made by this agent \(source "tmpfs"\); refusing to hand it out/);
    assert.ok(mountinfoReads() > before, 'the changed mount id sent it to mountinfo');
  } finally {
    native.umount2(path, 0);
  }
  // with the foreign mount gone, the agent's own mount is on top again: the id it made
  const before = mountinfoReads();
  const back = await b.acquire(decl('stacked', 4 * MiB, 'team-i'));
  if (native.mountStat('/').uniqueMountId !== undefined) assert.is(mountinfoReads(), before, 'the very mount it made (unique ids are never reused)');
  assert.is(back.data.source, mine.data.source);
  await b.release(back);
  assert.is(mountsAt(path).length, 0);
});

test('a share recorded by an agent from before the mark (handle without a source) is still released', async () => {
  if (!needRoot('legacy release')) return;
  const b = new LocalBackend({ sharesDir, stateDir });
  const legacy = foreignTmpfs('team-l', 'old'); // what older agents mounted: source "tmpfs"
  await b.release({ backend: 'local', namespace: 'team-l', name: 'old', sizeBytes: 0, requestedBytes: 0, data: { hostPath: legacy } });
  assert.is(mountsAt(legacy).length, 0);
  assert.not.ok(existsSync(legacy));
});

test('start() closes sharesDir and its namespace directories to all but root and locks sharesDir against a second agent', async () => {
  if (!needRoot('sharesDir lock')) return;
  const dir = join(base, 'locked');
  mkdirSync(join(dir, 'team-old'), { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'team-old'), 0o755);
  const one = new LocalBackend({ sharesDir: dir, stateDir: join(base, 'state-one') });
  one.start();
  try {
    assert.is(statSync(dir).mode & 0o777, 0o700);
    assert.is(statSync(join(dir, 'team-old')).mode & 0o777, 0o700, 'a namespace dir of an older version is closed too');
    const two = new LocalBackend({ sharesDir: dir, stateDir: join(base, 'state-two') });
    assert.throws(
      () => two.start(),
      (e: Error) =>
        e.message.includes(`sharesDir ${dir} is in use by another agent (pid ${process.pid}, stateDir ${join(base, 'state-one')})`) &&
        e.message.includes(`${join(dir, SHARES_LOCK_FILE)} is locked`),
    );
  } finally {
    await one.close();
  }
  // once the holder is gone, another agent may take it
  const three = new LocalBackend({ sharesDir: dir, stateDir: join(base, 'state-three') });
  three.start();
  await three.close();
});

test.after(() => unmountAndRemove(base));

test.run();
