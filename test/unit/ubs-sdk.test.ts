// The koffi binding (native/ubs-sdk.ts) against the C test double of libubsm_sdk.so (native/ubs/double),
// with ubsmd-standin as the daemon socket and ubsm-consumer as the other processes (another node, another
// uid). Builds the double if dist/native/ubs is missing. Needs root (mknod, setpriv), which CI always is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as koffi from 'koffi';
import { loadUbsSdk, ubsStructs, ubsmCodeMeaning, ubsmCodeName, UbsSdkLoadError, UbsmCode, UBSM_OK, PROT_READ, PROT_WRITE, type UbsSdk } from '../../native/ubs-sdk';

const repo = join(__dirname, '..', '..', '..');
const out = join(repo, 'dist', 'native', 'ubs');
const libPath = join(out, 'lib', 'libubsm_sdk.so');
const consumer = join(out, 'bin', 'ubsm-consumer');
const MiB = 1 << 20;
const BLOCK = 128 * MiB;
const RW = PROT_READ | PROT_WRITE;

if (!existsSync(libPath) || !existsSync(consumer)) {
  const r = spawnSync('bash', [join(repo, 'native', 'ubs', 'build.sh'), out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native/ubs/build.sh failed: ${r.stderr}`);
}

const root = mkdtempSync(join(tmpdir(), 'ubs-sdk-test-'));
chmodSync(root, 0o755); // the consumer runs as uid 65534 too
const daemonDir = join(root, 'matrix', 'memory'); // created by the standin, like ubsmd does
const devDir = join(root, 'dev');
const otherDevDir = join(root, 'dev-other');
mkdirSync(devDir);
mkdirSync(otherDevDir);
const control = join(daemonDir, '.ubsm-double', 'control');
const NOBODY = 65534;
const USER = 4178; // the vendor's test pods' uid; gets NOBODY (the standin socket's group) as a supplementary group

// The double reads these at call time; set before loading, as the agent's environment would be.
Object.assign(process.env, {
  UBSM_DOUBLE_DIR: daemonDir,
  UBSM_DOUBLE_DEV_DIR: devDir,
  UBSM_DOUBLE_OBMM: join(out, 'lib', 'libobmm.so.1'),
  UBSM_DOUBLE_NODE: 'local',
  HCOM_CONNECTION_RETRY_TIMES: '1',
  HCOM_CONNECTION_RETRY_INTERVAL_SEC: '1',
});

const sdk: UbsSdk = loadUbsSdk(libPath);
const children: ChildProcess[] = [];

/** Spawn a program, resolve with its first stdout line (and keep it running). */
function startLine(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve({ child, line: buf.slice(0, nl) });
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited ${code} before a line: ${err}`)));
  });
}

interface ConsumerResult { status: number | null; json: Record<string, unknown>; stderr: string }
function runConsumer(args: string[], opts: { env?: NodeJS.ProcessEnv; asNobody?: boolean; asUser?: number } = {}): ConsumerResult {
  // asUser: uid = primary gid = asUser (what the share's mode is checked against), plus the socket's group as a
  // supplementary group (it reaches the daemon socket but plays no part in the mode check, A.5)
  const [cmd, argv] = opts.asNobody
    ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', consumer, ...args]]
    : opts.asUser !== undefined
      ? ['setpriv', [`--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, `--groups=${NOBODY}`, consumer, ...args]]
      : [consumer, args];
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 20000 });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout.trim().split('\n')[0]) as Record<string, unknown>;
  } catch {
    /* leave empty; asserts below show stdout */
  }
  return { status: r.status, json, stderr: r.stderr + r.stdout };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const devNodes = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('obmm_shmdev')).sort();
const sorted = (a: number[]): number[] => [...a].sort((x, y) => x - y);

test('koffi struct layouts match the ABI (docs/ubs-sdk.md A.2)', () => {
  assert.is(koffi.sizeof(ubsStructs.shmemDesc), 64);
  assert.is(koffi.sizeof(ubsStructs.shmemInfo), 16464);
  assert.is(koffi.sizeof(ubsStructs.regionNodeDesc), 65);
  assert.is(koffi.sizeof(ubsStructs.regionAttributes), 1044);
  assert.is(koffi.sizeof(ubsStructs.options), 1);
  assert.is(koffi.offsetof(ubsStructs.shmemDesc, 'size'), 56);
  assert.is(koffi.offsetof(ubsStructs.shmemInfo, 'size'), 56);
  assert.is(koffi.offsetof(ubsStructs.shmemInfo, 'mem_num'), 64);
  assert.is(koffi.offsetof(ubsStructs.shmemInfo, 'mem_unit_size'), 72);
  assert.is(koffi.offsetof(ubsStructs.shmemInfo, 'mem_id_list'), 80);
  assert.is(koffi.offsetof(ubsStructs.regionAttributes, 'hosts'), 4);
});

test('code names and meanings', () => {
  assert.is(ubsmCodeName(6017), 'UBSM_ERR_BUSY');
  assert.is(ubsmCodeName(UBSM_OK), 'UBSM_OK');
  assert.is(ubsmCodeName(6014), 'UBSM_CHECK_RESOURCE_ERROR');
  assert.match(ubsmCodeMeaning(6017), 'busy');
  assert.match(ubsmCodeMeaning(4242), '4242');
  assert.is(UbsmCode.IN_USING, 6024);
});

test('a missing library gives UbsSdkLoadError naming the path', () => {
  const p = join(root, 'nope', 'libubsm_sdk.so');
  try {
    loadUbsSdk(p);
    assert.unreachable('load should fail');
  } catch (err) {
    assert.instance(err, UbsSdkLoadError);
    assert.match((err as Error).message, p);
    assert.ok((err as Error).cause !== undefined);
  }
});

const loadError = (p: string): Error => {
  try {
    loadUbsSdk(p);
  } catch (err) {
    assert.instance(err, UbsSdkLoadError);
    assert.match((err as Error).message, `cannot load the UB memory SDK ${p}: `);
    return err as Error;
  }
  return assert.unreachable(`loading ${p} should fail`) as never;
};

test('a file that is not a shared object gives UbsSdkLoadError naming the path and the reason', () => {
  const text = join(root, 'text.so');
  writeFileSync(text, 'not an ELF file\n'.repeat(100));
  assert.match(loadError(text).message, /not an ELF file|invalid ELF header/);
  const tiny = join(root, 'tiny.so');
  writeFileSync(tiny, 'x');
  assert.match(loadError(tiny).message, /not an ELF file|file too short/);
});

test('a truncated ELF (the loader would die of SIGBUS mapping past its end) gives UbsSdkLoadError, not a crash', () => {
  const whole = readFileSync(libPath);
  // where the last PT_LOAD segment ends, by binutils (a second reader of the same headers)
  const loads = spawnSync('readelf', ['-lW', libPath], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\s*LOAD\s/.test(l));
  assert.ok(loads.length > 0, 'readelf lists LOAD segments');
  const end = Math.max(...loads.map((l) => {
    const f = l.trim().split(/\s+/);
    return parseInt(f[1], 16) + parseInt(f[4], 16);
  }));
  for (const n of [4096, end - 1]) {
    const p = join(root, `trunc-${n}.so`);
    writeFileSync(p, whole.subarray(0, n));
    assert.match(loadError(p).message, `truncated: ${n} bytes, but its segments need`);
  }
  const head = join(root, 'head.so');
  writeFileSync(head, whole.subarray(0, 40)); // cut inside the ELF header
  assert.match(loadError(head).message, 'truncated');
});

test('a library without the SDK\'s functions gives UbsSdkLoadError naming the symbol', () => {
  const src = join(root, 'empty.c');
  writeFileSync(src, 'int not_the_sdk(void) { return 0; }\n');
  const so = join(root, 'libempty.so');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-o', so, src], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(loadError(so).message, "symbol ubsmem_initialize: Cannot find function 'ubsmem_initialize'");
});

test('shm calls before initialize return 6040', async () => {
  assert.is((await sdk.lookup('x')).code, UbsmCode.NET);
  assert.is(await sdk.allocate('default', 'x', 4 * MiB, 0o600, 0), UbsmCode.NET);
  assert.is((await sdk.map('x', BLOCK, RW)).code, UbsmCode.NET);
  assert.is((await sdk.listLookup('x')).code, UbsmCode.NET);
  assert.is(await sdk.deallocate('x'), UbsmCode.NET);
});

test('initialize: obmm library missing -> 6015; no socket -> 6015 after the retry sleep', async () => {
  process.env.UBSM_DOUBLE_OBMM = join(root, 'missing', 'libobmm.so.1');
  assert.is(await sdk.initialize(), UbsmCode.MEMLIB);
  process.env.UBSM_DOUBLE_OBMM = join(out, 'lib', 'libobmm.so.1');
  const t0 = Date.now();
  assert.is(await sdk.initialize(), UbsmCode.MEMLIB);
  assert.ok(Date.now() - t0 >= 900, `one retry sleeps 1 s, took ${Date.now() - t0} ms`);
});

test('initialize connects to the standin socket', async () => {
  const { line } = await startLine(join(out, 'bin', 'ubsmd-standin'), [join(daemonDir, 'MxmAgentIpcServer'), String(NOBODY)]);
  assert.match(line, 'ready');
  const st = statSync(join(daemonDir, 'MxmAgentIpcServer'));
  assert.ok(st.isSocket());
  assert.is(st.mode & 0o777, 0o660);
  assert.is(st.gid, NOBODY);
  assert.is(await sdk.initialize(), UBSM_OK);
});

test('allocate: argument checks, duplicate, region, rounding, quota', async () => {
  assert.is(await sdk.allocate('default', 'n'.repeat(48), 4 * MiB, 0o600, 0), UbsmCode.PARAM_INVALID);
  assert.is(await sdk.allocate('default', 'bad/char', 4 * MiB, 0o600, 0), UbsmCode.PARAM_INVALID);
  assert.is(await sdk.allocate('default', 'bad char', 4 * MiB, 0o600, 0), UbsmCode.PARAM_INVALID);
  assert.is(await sdk.allocate('default', 'odd', 5 * MiB, 0o600, 0), UbsmCode.PARAM_INVALID);
  assert.is(await sdk.allocate('default', 'numa', 4 * MiB, 0o600, 0x40), UbsmCode.PARAM_INVALID);
  assert.is(await sdk.allocate('elsewhere', 'noregion', 4 * MiB, 0o600, 0), UbsmCode.NOT_FOUND);
  assert.is(await sdk.allocate('default', 'n'.repeat(47), 4 * MiB, 0o600, 0), UBSM_OK);
  assert.is(await sdk.deallocate('n'.repeat(47)), UBSM_OK);
  assert.is(await sdk.allocate('default', 'small.a:1_-', 4 * MiB, 0o660, 0), UBSM_OK);
  assert.is(await sdk.allocate('default', 'small.a:1_-', 4 * MiB, 0o660, 0), UbsmCode.ALREADY_EXIST);
  assert.equal((await sdk.listLookup('small')).shares, [{ name: 'small.a:1_-', sizeBytes: BLOCK }]);
  // not attached anywhere yet: lookup has nothing to say
  assert.is((await sdk.lookup('small.a:1_-')).code, UbsmCode.NOT_FOUND);
  writeFileSync(control, `capacity=${3 * BLOCK}\n`);
  assert.is(await sdk.allocate('default', 'toobig', 3 * BLOCK, 0o600, 0), UbsmCode.MALLOC_FAIL);
  assert.is(await sdk.allocate('default', 'fits', 2 * BLOCK, 0o600, 0), UBSM_OK);
  unlinkSync(control);
  assert.is(await sdk.deallocate('fits'), UBSM_OK);
});

let firstIds: number[] = [];
test('map attaches: scattered memids, device nodes with major 509 and minor = memid, owner and mode', async () => {
  assert.is(await sdk.allocate('default', 'big', 4 * BLOCK - 8 * MiB, 0o640, 0), UBSM_OK);
  assert.is((await sdk.map('big', 3 * BLOCK, RW)).code, UbsmCode.PARAM_INVALID, 'length must be the real size');
  const m = await sdk.map('big', 4 * BLOCK, RW);
  assert.is(m.code, UBSM_OK);
  assert.is((await sdk.map('big', 4 * BLOCK, RW)).code, UbsmCode.PARAM_INVALID, 'one map per name per process');
  const l = await sdk.lookup('big');
  assert.is(l.code, UBSM_OK);
  const info = l.info!;
  assert.is(info.sizeBytes, 4 * BLOCK);
  assert.is(info.unitBytes, BLOCK);
  assert.is(info.memNum, 4);
  const ids = info.memIds;
  assert.is(new Set(ids).size, 4);
  const s = sorted(ids);
  for (let i = 1; i < s.length; i++) assert.ok(s[i] - s[i - 1] > 1, `memids ${ids} look consecutive`);
  for (const id of ids) {
    assert.ok(id >= 1 && id <= 1048575);
    const st = statSync(join(devDir, `obmm_shmdev${id}`), { bigint: true });
    assert.ok(st.isCharacterDevice());
    const rdev = st.rdev;
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    assert.is(major, 509);
    assert.is(minor, id);
    assert.is(Number(st.mode & 0o777n), 0o640);
    assert.is(Number(st.uid), 0);
  }
  firstIds = ids;
  assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
  assert.is(await sdk.unmap(m.mapping!), UbsmCode.PARAM_INVALID, 'a handle unmaps once');
  assert.is((await sdk.lookup('big')).code, UbsmCode.NOT_FOUND, 'detached after the last unmap');
  assert.equal(devNodes(devDir), []);
});

test('re-attach gives different memids', async () => {
  const m = await sdk.map('big', 4 * BLOCK, PROT_READ);
  assert.is(m.code, UBSM_OK);
  const ids = (await sdk.lookup('big')).info!.memIds;
  assert.is(ids.filter((i) => firstIds.includes(i)).length, 0, `${ids} vs ${firstIds}`);
  assert.is(devNodes(devDir).length, 4);
  assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
});

test('data written by one process is read by another; a read-only map faults on write', () => {
  const w = runConsumer(['--sdk-name', 'big', 'write', String(BLOCK + 5), 'hello ubs']);
  assert.is(w.status, 0, w.stderr);
  const r = runConsumer(['read', 'team-a/big-share:ro', String(BLOCK + 5), '9'], { env: { MEMSHARE_UBS_SHARES: 'x=y,team-a/big-share=big' } });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.json.text, 'hello ubs');
  const ro = runConsumer(['--sdk-name', 'big', 'map-ro']);
  assert.is(ro.status, 0, ro.stderr);
  assert.is(ro.json.writeFaulted, true);
  assert.is(runConsumer(['read', 'unknown', '0', '1'], { env: { MEMSHARE_UBS_SHARES: 'a=b' } }).status, 2);
});

test('map permission follows the mode for another uid; a missing device node is 6051', async () => {
  // big is root:root 0640: other bits are 0 -> 6011 for nobody
  const denied = runConsumer(['--sdk-name', 'big', 'read', '0', '1'], { asNobody: true });
  assert.is(denied.json.code, UbsmCode.NOPERM, denied.stderr);
  assert.is(denied.status, 1);
  assert.is(await sdk.allocate('default', 'open', 4 * MiB, 0o644, 0), UBSM_OK);
  const m = await sdk.map('open', BLOCK, RW); // attached here, so nodes exist
  assert.is(m.code, UBSM_OK);
  assert.is(runConsumer(['--sdk-name', 'open', 'read', '0', '1'], { asNobody: true }).status, 0);
  assert.is(runConsumer(['--sdk-name', 'open', 'write', '0', 'x'], { asNobody: true }).json.code, UbsmCode.NOPERM);
  const id = (await sdk.lookup('open')).info!.memIds[0];
  unlinkSync(join(devDir, `obmm_shmdev${id}`));
  const gone = runConsumer(['--sdk-name', 'open', 'read', '0', '1']);
  assert.is(gone.json.code, UbsmCode.OBMM);
  assert.match(gone.stderr, `obmm_shmdev${id}`);
  assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
});

test('deallocate: 6024 while another node maps it, 6011 for another uid, then 0 once the mapper died', async () => {
  const { child, line } = await startLine(consumer, ['--sdk-name', 'big', 'hold', '60'], {
    ...process.env,
    UBSM_DOUBLE_NODE: 'other',
    UBSM_DOUBLE_DEV_DIR: otherDevDir,
  });
  assert.is((JSON.parse(line) as { ok: boolean }).ok, true, line);
  assert.is(devNodes(otherDevDir).length, 4);
  assert.is((await sdk.lookup('big')).code, UbsmCode.NOT_FOUND, 'attached on the other node only');
  assert.is(await sdk.deallocate('big'), UbsmCode.IN_USING);
  const nobody = runConsumer(['deallocate', 'big'], { asNobody: true });
  assert.is(nobody.json.code, UbsmCode.NOPERM, nobody.stderr);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL'); // no unmap, no finalize: the double must see the dead lock holder
  await exited;
  assert.is(await sdk.deallocate('big'), UBSM_OK);
  assert.equal(devNodes(otherDevDir), [], 'the dead mapper was swept and the other node detached');
  assert.is(await sdk.deallocate('big'), UbsmCode.NOT_FOUND);
});

test('a delayed call keeps the event loop running', async () => {
  writeFileSync(control, 'delay_ms.lookup=1000\n');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 50);
  const t0 = Date.now();
  const r = await sdk.lookup('small.a:1_-');
  const took = Date.now() - t0;
  clearInterval(timer);
  unlinkSync(control);
  assert.is(r.code, UbsmCode.NOT_FOUND);
  assert.ok(took >= 950, `took ${took} ms`);
  assert.ok(ticks >= 12, `only ${ticks} ticks of 50 ms during a 1 s call`);
});

test('fail.<op>.count fails exactly the next N calls', async () => {
  writeFileSync(control, 'fail.allocate=6099\nfail.allocate.count=2\nblock_size=268435456\n');
  assert.is(await sdk.allocate('default', 'flaky', 4 * MiB, 0o600, 0), UbsmCode.BUFF);
  assert.is(await sdk.allocate('default', 'flaky', 4 * MiB, 0o600, 0), UbsmCode.BUFF);
  assert.match(readFileSync(control, 'utf8'), 'fail.allocate.count=0');
  assert.is(await sdk.allocate('default', 'flaky', 4 * MiB, 0o600, 0), UBSM_OK);
  unlinkSync(control);
  assert.is((await sdk.listLookup('flaky')).shares[0].sizeBytes, 256 * MiB, 'block_size applies at allocate');
  assert.is(await sdk.deallocate('flaky'), UBSM_OK);
});

test('list lookup: prefix filter, too-small buffer, empty pool', async () => {
  assert.is(await sdk.allocate('default', 'small-2', 4 * MiB, 0o600, 0), UBSM_OK);
  const all = await sdk.listLookup('small');
  assert.equal(all.shares.map((s) => s.name), ['small-2', 'small.a:1_-']);
  const tight = await sdk.listLookup('small', 1);
  assert.is(tight.code, UbsmCode.PARAM_INVALID);
  assert.is(tight.needed, 2);
  assert.equal((await sdk.listLookup('zzz')).shares, []);
  for (const n of ['small-2', 'small.a:1_-', 'open']) assert.is(await sdk.deallocate(n), UBSM_OK);
  assert.is((await sdk.listLookup('s')).code, UbsmCode.NOT_FOUND, 'no shares at all');
});

test('map opens the device nodes with the bits the mode grants, not with prot (A.5)', async () => {
  // 0666 grants a non-owner rw, so the SDK opens the nodes O_RDWR even for a PROT_READ map
  assert.is(await sdk.allocate('default', 'granted', 4 * MiB, 0o666, 0), UBSM_OK);
  const m = await sdk.map('granted', BLOCK, RW); // the agent keeps it attached, so the nodes stay
  assert.is(m.code, UBSM_OK);
  const [id] = (await sdk.lookup('granted')).info!.memIds;
  const node = join(devDir, `obmm_shmdev${id}`);
  assert.is(statSync(node).mode & 0o777, 0o666);
  chmodSync(node, 0o444); // what a ":ro" binding gives a container
  const ro = runConsumer(['--sdk-name', 'granted', 'read', '0', '1'], { asUser: USER });
  assert.is(ro.json.code, UbsmCode.OBMM, `read-only map by uid ${USER} through a 0444 node: ${ro.stderr}`);
  assert.match(ro.stderr, `obmm_shmdev${id}`);
  assert.match(ro.stderr, 'Permission denied');
  assert.is(runConsumer(['--sdk-name', 'granted', 'read', '0', '1']).status, 0, 'root opens it O_RDWR anyway (CAP_DAC_OVERRIDE)');
  chmodSync(node, 0o666);
  const w = runConsumer(['--sdk-name', 'granted', 'write', '0', 'by 4178'], { asUser: USER });
  assert.is(w.status, 0, w.stderr);
  const r = runConsumer(['--sdk-name', 'granted', 'read', '0', '7'], { asUser: USER });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.json.text, 'by 4178');
  assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
  assert.is(await sdk.deallocate('granted'), UBSM_OK);
  // a mode that grants the caller r only opens O_RDONLY: a 0444 node is enough
  assert.is(await sdk.allocate('default', 'granted-r', 4 * MiB, 0o644, 0), UBSM_OK);
  const mr = await sdk.map('granted-r', BLOCK, RW);
  assert.is(mr.code, UBSM_OK);
  const [rid] = (await sdk.lookup('granted-r')).info!.memIds;
  chmodSync(join(devDir, `obmm_shmdev${rid}`), 0o444);
  const rr = runConsumer(['--sdk-name', 'granted-r', 'read', '0', '1'], { asUser: USER });
  assert.is(rr.status, 0, rr.stderr);
  assert.is(await sdk.unmap(mr.mapping!), UBSM_OK);
  assert.is(await sdk.deallocate('granted-r'), UBSM_OK);
});

test('the only mapper killed: a delayed-removal record makes the name busy (6017), its handler detaches, the data stays (B.4)', async () => {
  const DELAY = 3000;
  process.env.UBSM_DOUBLE_REAP_DELAY_MS = String(DELAY);
  try {
    assert.is(await sdk.allocate('default', 'reap', 4 * MiB, 0o600, 0), UBSM_OK);
    const w = runConsumer(['--sdk-name', 'reap', 'write', '100', 'kept bytes']);
    assert.is(w.status, 0, w.stderr);
    assert.is((await sdk.lookup('reap')).code, UbsmCode.NOT_FOUND, 'its explicit unmap (the last user) detached at once');
    const { child, line } = await startLine(consumer, ['--sdk-name', 'reap', 'hold', '60']);
    assert.is((JSON.parse(line) as { ok: boolean }).ok, true, line);
    const before = (await sdk.lookup('reap')).info!.memIds;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL'); // no unmap, no finalize
    await exited;
    const t0 = Date.now();
    assert.is((await sdk.map('reap', BLOCK, RW)).code, UbsmCode.BUSY, 'map while the record is pending');
    assert.is(await sdk.allocate('default', 'reap', 4 * MiB, 0o600, 0), UbsmCode.BUSY, 'allocate while pending');
    assert.is(await sdk.deallocate('reap'), UbsmCode.BUSY, 'deallocate while pending');
    const other = runConsumer(['--sdk-name', 'reap', 'read', '100', '10']);
    assert.is(other.json.code, UbsmCode.BUSY, `another process maps: ${other.stderr}`);
    const pending = await sdk.lookup('reap');
    assert.is(pending.code, UBSM_OK, 'still attached while the record is pending');
    assert.equal(pending.info!.memIds, before);
    assert.is(devNodes(devDir).length, 1);
    assert.ok(Date.now() - t0 < DELAY, `the busy checks took ${Date.now() - t0} ms, longer than the delay`);
    await sleep(t0 + DELAY + 1000 - Date.now());
    assert.is((await sdk.lookup('reap')).code, UbsmCode.NOT_FOUND, 'the handler detached it');
    assert.equal(devNodes(devDir), []);
    assert.equal((await sdk.listLookup('reap')).shares, [{ name: 'reap', sizeBytes: BLOCK }], 'not deleted');
    const m = await sdk.map('reap', BLOCK, RW);
    assert.is(m.code, UBSM_OK, 're-attaches');
    const after = (await sdk.lookup('reap')).info!.memIds;
    assert.is(after.filter((i) => before.includes(i)).length, 0, `new memids: ${after} vs ${before}`);
    const r = runConsumer(['--sdk-name', 'reap', 'read', '100', '10']);
    assert.is(r.json.text, 'kept bytes', r.stderr);
    assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
    assert.is(await sdk.deallocate('reap'), UBSM_OK);
  } finally {
    delete process.env.UBSM_DOUBLE_REAP_DELAY_MS;
  }
});

test('a killed mapper with other local users left just leaves the user set; the last user\'s unmap detaches at once (B.2, B.4)', async () => {
  writeFileSync(control, 'reap_delay_ms=600000\n'); // a record, if one were made, would stay pending
  try {
    assert.is(await sdk.allocate('default', 'users', 4 * MiB, 0o600, 0), UBSM_OK);
    const m = await sdk.map('users', BLOCK, RW);
    assert.is(m.code, UBSM_OK);
    const ids = (await sdk.lookup('users')).info!.memIds;
    const { child, line } = await startLine(consumer, ['--sdk-name', 'users', 'hold', '60']);
    assert.is((JSON.parse(line) as { ok: boolean }).ok, true, line);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const r = runConsumer(['--sdk-name', 'users', 'write', '0', 'x']);
    assert.is(r.status, 0, `no record, so no 6017: ${r.stderr}`);
    assert.equal((await sdk.lookup('users')).info!.memIds, ids, 'still attached, same memids');
    assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
    assert.is((await sdk.lookup('users')).code, UbsmCode.NOT_FOUND, 'detached at once');
    assert.equal(devNodes(devDir), []);
    const again = await sdk.map('users', BLOCK, RW);
    assert.is(again.code, UBSM_OK, 'no 6017 after an explicit unmap');
    assert.is(await sdk.unmap(again.mapping!), UBSM_OK);
    assert.is(await sdk.deallocate('users'), UBSM_OK, 'no 6017 either');
  } finally {
    unlinkSync(control);
  }
});

test('finalize drops the link, which is handled as exit: the only user leaves a delayed-removal record (A.3, B.4)', async () => {
  process.env.UBSM_DOUBLE_REAP_DELAY_MS = '0';
  writeFileSync(control, 'reap_delay_ms=600000\n'); // the control key wins over the environment
  try {
    assert.is(await sdk.allocate('default', 'fin2', 4 * MiB, 0o600, 0), UBSM_OK);
    assert.is(runConsumer(['--sdk-name', 'fin2', 'write', '0', 'survives']).status, 0);
    assert.is((await sdk.map('fin2', BLOCK, RW)).code, UBSM_OK);
    const before = (await sdk.lookup('fin2')).info!.memIds;
    assert.is(await sdk.finalize(), UBSM_OK);
    assert.is(await sdk.initialize(), UBSM_OK);
    assert.is((await sdk.map('fin2', BLOCK, RW)).code, UbsmCode.BUSY);
    assert.is(await sdk.allocate('default', 'fin2', 4 * MiB, 0o600, 0), UbsmCode.BUSY);
    assert.is(await sdk.deallocate('fin2'), UbsmCode.BUSY);
    assert.equal((await sdk.lookup('fin2')).info?.memIds, before, 'still attached while pending');
    process.env.UBSM_DOUBLE_REAP_DELAY_MS = '600000';
    writeFileSync(control, 'reap_delay_ms=0\n'); // again the control key wins: due now
    assert.is((await sdk.lookup('fin2')).code, UbsmCode.NOT_FOUND, 'the handler detached it at the next call');
    assert.equal(devNodes(devDir), []);
    const m = await sdk.map('fin2', BLOCK, RW);
    assert.is(m.code, UBSM_OK);
    const after = (await sdk.lookup('fin2')).info!.memIds;
    assert.is(after.filter((i) => before.includes(i)).length, 0, `new memids: ${after} vs ${before}`);
    assert.is(runConsumer(['--sdk-name', 'fin2', 'read', '0', '8']).json.text, 'survives');
    assert.is(await sdk.unmap(m.mapping!), UBSM_OK);
    assert.is(await sdk.deallocate('fin2'), UBSM_OK);
  } finally {
    delete process.env.UBSM_DOUBLE_REAP_DELAY_MS;
    unlinkSync(control);
  }
});

test('finalize drops this process mappings (the daemon sees the link drop as exit)', async () => {
  assert.is(await sdk.allocate('default', 'fin', 4 * MiB, 0o600, 0), UBSM_OK);
  assert.is((await sdk.map('fin', BLOCK, RW)).code, UBSM_OK);
  assert.is(await sdk.finalize(), UBSM_OK);
  assert.is((await sdk.lookup('fin')).code, UbsmCode.NET);
  assert.is(await sdk.initialize(), UBSM_OK);
  assert.is((await sdk.lookup('fin')).code, UbsmCode.NOT_FOUND);
  assert.equal(devNodes(devDir), []);
  assert.is(await sdk.deallocate('fin'), UBSM_OK);
  assert.is(await sdk.finalize(), UBSM_OK);
});

test.after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
});

test.run();
