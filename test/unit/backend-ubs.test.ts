// The UBS backend and the memshare service on top of it, through the C test double of
// libubsm_sdk.so (native/ubs/double: stands in for the vendor SDK, ubsmd, UBSE and the obmm
// driver, which cannot run here), loaded through the same koffi binding as production, with
// ubsmd-standin as the daemon's socket. Needs root (mknod in the double), which CI always is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Ledger } from '../../plugin/ledger';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { MemshareService } from '../../plugin/memshare/service';
import { RefusalError, DEFAULT_LIMITS, type ContainerInfo, type PodInfo, type ShareDeclaration } from '../../plugin/model';
import { UbsBackend, defaultUbsConfig, ubsConfigProblems, lookupProblem, parseShmdevMajor, readShmdevMajor, sdkNameOf, SDK_NAME_RE, cdiSpec, runtimeResolvesCdi, type UbsBackendConfig } from '../../plugin/backends/ubs';
import type { ShmemInfo, UbsSdk } from '../../native/ubs-sdk';
import { RetryableError } from '../../plugin/backends';
import { startUbsStandin, ubsDoubleWorld } from '../support/ubs-double';

const repo = join(__dirname, '..', '..', '..');
const out = join(repo, 'dist', 'native', 'ubs');
const libPath = join(out, 'lib', 'libubsm_sdk.so');
const consumer = join(out, 'bin', 'ubsm-consumer');
const MiB = 1 << 20;
const MAJOR = 509;

if (!existsSync(libPath) || !existsSync(consumer)) {
  const r = spawnSync('bash', [join(repo, 'native', 'ubs', 'build.sh'), out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native/ubs/build.sh failed: ${r.stderr}`);
}

const root = mkdtempSync(join(tmpdir(), 'backend-ubs-'));
const { daemonDir, devDir, stateDir, procDevices } = ubsDoubleWorld(root, out, MAJOR);
const control = join(stateDir, 'control');
const children: ChildProcess[] = [];
let standin: ChildProcess | undefined;

function startStandin(): Promise<void> {
  const { child, listening } = startUbsStandin(out, { daemonDir });
  children.push(child);
  standin = child;
  return listening;
}

function config(over: Partial<UbsBackendConfig> = {}): UbsBackendConfig {
  // holder: false (the SDK in this process) unless a test is about the holder process
  return { ...defaultUbsConfig(), sdkLibrary: libPath, procDevices, hostDevDir: devDir, groups: [4177], cdiDir: join(root, 'cdi'), budgetMs: 300, holder: false, ...over };
}

const decl = (namespace: string, name: string, sizeMiB = 128): ShareDeclaration => ({ namespace, name, sizeBytes: sizeMiB * MiB, allowedNamespaces: [], origin: 'test' });
let seq = 0;
const pod = (namespace: string, refs: string): PodInfo => ({ id: `sb-${++seq}`, name: `pod-${seq}`, namespace, uid: `uid-${seq}`, annotations: { 'memshare.nri.io/pod': refs } });
const ctr = (p: PodInfo): ContainerInfo => ({ id: `ctr-${++seq}`, podSandboxId: p.id, name: 'app', state: 'created' });

function consumerInfo(sdkName: string, node = 'local'): { status: number | null; json: Record<string, unknown> } {
  const r = spawnSync(consumer, ['--sdk-name', sdkName, 'info'], { env: { ...process.env, UBSM_DOUBLE_NODE: node }, encoding: 'utf8', timeout: 20000 });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout.trim().split('\n')[0]);
  } catch {
    json = { raw: r.stdout + r.stderr };
  }
  return { status: r.status, json };
}

async function ready(b: UbsBackend): Promise<void> {
  b.start();
  for (let i = 0; i < 200 && b.unavailable(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.is(b.unavailable(), undefined, 'the SDK connected to the stand-in daemon');
}

async function service(b: UbsBackend, decls: ShareDeclaration[]) {
  const dir = mkdtempSync(join(root, 'ledger-'));
  const { ledger } = await Ledger.open(dir);
  const svc = new MemshareService({ backend: b, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('t', decls)]), limits: DEFAULT_LIMITS, abandonedGraceMs: 60_000, releaseRetryMs: 50 });
  await svc.init();
  return { svc, ledger, dir };
}

test('SDK names: deterministic, within the SDK rules, collision-free for long names', () => {
  assert.is(sdkNameOf('nms', 'team-a', 'cache'), 'nms.team-a.cache');
  const longNs = 'n'.repeat(63);
  const a = sdkNameOf('nms', longNs, 'cache-one');
  const b = sdkNameOf('nms', longNs, 'cache-two');
  for (const n of [a, b]) {
    assert.ok(SDK_NAME_RE.test(n), n);
    assert.ok(n.length <= 47, `${n} is ${n.length} long`);
    assert.ok(n.includes(':'), 'a long name is hashed');
  }
  assert.is.not(a, b);
  assert.is(sdkNameOf('nms', longNs, 'cache-one'), a, 'same input, same name');
});

test('the OBMM_SHMDEV major is read from /proc/devices, and its absence is named', () => {
  assert.is(parseShmdevMajor(readFileSync(procDevices, 'utf8')), MAJOR);
  assert.is(parseShmdevMajor('Character devices:\n  1 mem\n\nBlock devices:\n509 OBMM_SHMDEV\n'), undefined, 'a block device of that name does not count');
});

test('CDI: the spec adds the groups; auto means containerd >= 2.1', () => {
  assert.equal((cdiSpec([4177]) as { devices: Array<{ containerEdits: { additionalGids: number[] } }> }).devices[0].containerEdits.additionalGids, [4177]);
  assert.ok(runtimeResolvesCdi('containerd', 'v2.1.9'));
  assert.not.ok(runtimeResolvesCdi('containerd', '1.7.24'));
  assert.not.ok(runtimeResolvesCdi('containerd', 'v2.0.5'));
});

test('broken input is refused with its reason: /proc/devices, runtime versions, lookup answers', () => {
  assert.throws(() => readShmdevMajor(join(root, 'no-proc-devices')), /cannot read .*no-proc-devices for the OBMM_SHMDEV device major/);
  const noObmm = join(root, 'proc-devices-plain');
  writeFileSync(noObmm, 'Character devices:\n  1 mem\nBlock devices:\n');
  assert.throws(() => readShmdevMajor(noObmm), /has no OBMM_SHMDEV character device: is the obmm kernel module loaded\?/);
  assert.is(parseShmdevMajor('\u0000\u0001garbage\n509'), undefined);
  for (const v of ['', 'garbage', '2', 'vx.y']) assert.not.ok(runtimeResolvesCdi('containerd', v), v);
  assert.not.ok(runtimeResolvesCdi('cri-o', 'v1.30.0'));
  assert.is(lookupProblem(256 * MiB, 128 * MiB, [7, 90001]), undefined);
  assert.match(lookupProblem(256 * MiB, 128 * MiB, [0, 5]) ?? '', /memid 0, which is not a device minor/);
  assert.match(lookupProblem(128 * MiB, 128 * MiB, [2 ** 20]) ?? '', /memid 1048576/);
  assert.match(lookupProblem(256 * MiB, 128 * MiB, [5, 5]) ?? '', /the same memid twice/);
  assert.match(lookupProblem(256 * MiB, 128 * MiB, [5]) ?? '', /1 memids for 268435456 bytes/);
  assert.match(lookupProblem(0, 128 * MiB, [5]) ?? '', /size 0/);
  assert.match(lookupProblem(128 * MiB, 128 * MiB, []) ?? '', /no memids/);
});

test('an SDK whose lookup answers nonsense: the binding is refused naming it, nothing is kept or leaked', async () => {
  // stands in for a broken SDK build or daemon: answers in the ABI's shapes with impossible values
  const calls: string[] = [];
  const mapping = { name: 'nms.team.odd', lengthBytes: 128 * MiB };
  const info: ShmemInfo = { name: 'nms.team.odd', sizeBytes: 128 * MiB, memNum: 1, unitBytes: 128 * MiB, memIds: [2 ** 40] };
  const broken: UbsSdk = {
    libraryPath: '/broken/libubsm_sdk.so',
    initialize: async () => 0,
    finalize: async () => 0,
    allocate: async (_r, n) => (calls.push(`allocate ${n}`), 0),
    deallocate: async (n) => (calls.push(`deallocate ${n}`), 0),
    map: async (n) => (calls.push(`map ${n}`), { code: 0, mapping }),
    unmap: async (m) => (calls.push(`unmap ${m.name}`), 0),
    lookup: async () => ({ code: 0, info }),
    listLookup: async () => ({ code: 0, shares: [{ name: 'nms.team.odd', sizeBytes: 128 * MiB }] }),
  };
  const b = new UbsBackend(config(), { stateDir: '' }, broken);
  await ready(b);
  const { svc, ledger } = await service(b, [decl('team', 'odd')]);
  const p = pod('team', 'odd');
  const t0 = Date.now();
  const err = await svc.createContainer(p, ctr(p), Date.now() + 2000).then(() => undefined, (e: Error) => e);
  assert.ok(Date.now() - t0 < 1000, 'refused at once');
  assert.instance(err, RefusalError);
  assert.match(err!.message, /UB share team\/odd \(SDK name nms\.team\.odd\): lookup returned memid 1099511627776, which is not a device minor/);
  assert.equal(calls, ['allocate nms.team.odd', 'map nms.team.odd', 'unmap nms.team.odd', 'deallocate nms.team.odd'], 'mapped and allocated by this call, so both are undone');
  assert.equal(ledger.all(), []);
  assert.equal(ledger.held(), []);
});

test('a missing SDK library is an error naming its path', () => {
  assert.throws(() => new UbsBackend(config({ sdkLibrary: join(root, 'nope', 'libubsm_sdk.so') }), { stateDir: '' }), /nope\/libubsm_sdk\.so/);
});

test('check-config\'s library check: a library that loads is no problem; missing, truncated or symbol-less ones are named', () => {
  assert.equal(ubsConfigProblems(config()), []);
  const missing = join(root, 'nope', 'libubsm_sdk.so');
  const trunc = join(root, 'trunc.so');
  writeFileSync(trunc, readFileSync(libPath).subarray(0, 4096));
  const src = join(root, 'nosdk.c');
  writeFileSync(src, 'int not_the_sdk(void) { return 0; }\n');
  const nosdk = join(root, 'libnosdk.so');
  assert.is(spawnSync('gcc', ['-shared', '-fPIC', '-o', nosdk, src]).status, 0);
  for (const [p, why] of [[missing, 'No such file'], [trunc, 'truncated'], [nosdk, 'symbol ubsmem_initialize']]) {
    const problems = ubsConfigProblems(config({ sdkLibrary: p }));
    assert.is(problems.length, 1, JSON.stringify(problems));
    assert.match(problems[0], `backend.sdkLibrary: cannot load the UB memory SDK ${p}: `);
    assert.match(problems[0], why);
  }
});

test('until the daemon answers, UB bindings are refused with the reason; then they work', async () => {
  const b = new UbsBackend(config(), { stateDir: '' });
  b.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.match(b.unavailable() ?? '', /not connected to its daemon/);
  const { svc } = await service(b, [decl('team', 'early')]);
  const p = pod('team', 'early');
  const err = await svc.createContainer(p, ctr(p)).then(() => undefined, (e: Error) => e);
  assert.instance(err, RefusalError);
  assert.match(err!.message, /memshare\.nri\.io\/pod: UB shares cannot be bound yet/);
  await startStandin();
  // initialize retries with backoff (1 s, 2 s...)
  for (let i = 0; i < 100 && b.unavailable(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(b.unavailable(), undefined);
});

test('first binding allocates, maps and looks up; the container gets exactly its devices, mounts and env', async () => {
  const b = new UbsBackend(config(), { stateDir: '' });
  await ready(b);
  b.setRuntime({ name: 'containerd', version: 'v2.1.9' });
  const { svc, ledger } = await service(b, [decl('team', 'big', 200), decl('team', 'other')]);
  const p = pod('team', 'big');
  const c = ctr(p);
  const inj = await svc.createContainer(p, c);
  assert.ok(inj);
  const held = ledger.heldShare('team', 'big');
  assert.ok(held, 'the handle is recorded');
  const data = held!.handle.data as { sdkName: string; memIds: number[]; major: number };
  assert.is(data.sdkName, 'nms.team.big');
  assert.is(held!.handle.sizeBytes, 256 * MiB, '200 MiB rounds to 4 MiB, then to the 128 MiB block: the real size is reported');
  assert.is(data.memIds.length, 2);
  assert.is(data.major, MAJOR);
  assert.equal(inj!.devices.map((d) => [d.path, d.type, d.major, d.minor, d.fileMode]), data.memIds.map((m) => [`/dev/obmm_shmdev${m}`, 'c', MAJOR, m, 0o666]));
  assert.ok(inj!.mounts.some((m) => m.destination === '/run/matrix/memory' && m.options.includes('ro')));
  assert.ok(inj!.mounts.some((m) => m.destination === '/usr/lib64/libobmm.so.1'));
  assert.ok(inj!.mounts.some((m) => m.destination === '/host/usr/local/ubs_mem' && m.options.includes('ro')));
  assert.equal(inj!.env.find((e) => e.key === 'MEMSHARE_UBS_SHARES'), { key: 'MEMSHARE_UBS_SHARES', value: 'big=nms.team.big' });
  assert.equal(inj!.env.find((e) => e.key === 'LD_LIBRARY_PATH'), { key: 'LD_LIBRARY_PATH', value: '/usr/lib64/:/host/usr/local/ubs_mem/lib/' });
  assert.equal(inj!.cdiDevices, ['memshare.nri.io/ubs=daemon-access']);
  assert.ok(existsSync(join(root, 'cdi', 'memshare.nri.io-ubs.json')));
  // the host's nodes are root's only; containers get their own
  for (const m of data.memIds) assert.is(statSync(join(devDir, `obmm_shmdev${m}`)).mode & 0o777, 0o600);
  // another share is not touched, and nothing of it reaches this container
  assert.is(ledger.heldShare('team', 'other'), undefined);
  // a second container of the same share: no new allocation, the same devices, :ro nodes read-only
  const p2 = pod('team', 'big:ro');
  const inj2 = await svc.createContainer(p2, ctr(p2));
  assert.equal(inj2!.devices.map((d) => [d.minor, d.fileMode]), data.memIds.map((m) => [m, 0o444]));
  await svc.endPod(p.id, 'test');
  assert.is(consumerInfo('nms.team.big').status, 0, 'still attached while the :ro container holds it');
  await svc.endPod(p2.id, 'test');
  assert.is(ledger.heldShare('team', 'big'), undefined, 'released: the record goes');
  const after = consumerInfo('nms.team.big');
  assert.is(after.json.code, 6020, `deallocated in the pool: ${JSON.stringify(after.json)}`);
});

test('in use on another node (6024) is not an error; busy (6017) is retried in the background, durably', async () => {
  const b = new UbsBackend(config(), { stateDir: '' });
  await ready(b);
  const { svc, ledger } = await service(b, [decl('team', 'wide'), decl('team', 'busy')]);
  const p = pod('team', 'wide');
  await svc.createContainer(p, ctr(p));
  const other = spawn(consumer, ['--sdk-name', 'nms.team.wide', 'hold', '30'], { env: { ...process.env, UBSM_DOUBLE_NODE: 'other' }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(other);
  await new Promise((r) => other.stdout!.once('data', r));
  await svc.endPod(p.id, 'test');
  assert.is(ledger.heldShare('team', 'wide'), undefined, 'this node let go without an error');
  other.kill('SIGKILL');
  await new Promise((r) => other.once('exit', r));

  const q = pod('team', 'busy');
  await svc.createContainer(q, ctr(q));
  writeFileSync(control, 'fail.deallocate=6017\nfail.deallocate.count=2\n');
  await svc.endPod(q.id, 'test');
  const pending = ledger.heldShare('team', 'busy');
  assert.ok(pending?.releasing, 'the failing release is recorded');
  assert.is(pending!.releasing!.retryable, true);
  assert.match(pending!.releasing!.lastError, /deallocate failed with 6017 UBSM_ERR_BUSY/);
  assert.is(svc.pendingReleases().length, 1);
  for (let i = 0; i < 100 && ledger.heldShare('team', 'busy'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(ledger.heldShare('team', 'busy'), undefined, 'retried with backoff until the daemon let it go');
  assert.is(consumerInfo('nms.team.busy').json.code, 6020);
  rmSync(control, { force: true });
});

test('an SDK error fails the binding with its reason; a slow SDK is refused within the budget, then the retry binds', async () => {
  const b = new UbsBackend(config({ budgetMs: 300 }), { stateDir: '' });
  await ready(b);
  const { svc, ledger } = await service(b, [decl('team', 'full'), decl('team', 'slow')]);
  writeFileSync(control, 'fail.allocate=6022\n');
  const p = pod('team', 'full');
  const err = await svc.createContainer(p, ctr(p)).then(() => undefined, (e: Error) => e);
  assert.instance(err, RefusalError);
  assert.match(err!.message, /UB share team\/full \(SDK name nms\.team\.full\): allocate failed with 6022 UBSM_ERR_MALLOC_FAIL/);
  assert.equal(ledger.all(), [], 'nothing recorded');

  writeFileSync(control, 'delay_ms=700\n');
  const q = pod('team', 'slow');
  const c1 = ctr(q);
  const slow = await svc.createContainer(q, c1, Date.now() + 2000).then(() => undefined, (e: Error) => e);
  assert.instance(slow, RefusalError);
  assert.match(slow!.message, /UB share team\/slow is still being attached on this node .*the kubelet will retry/);
  // refused while the SDK calls (700 ms each) still run: the answer did not wait for them
  const recorded = () => ((ledger.heldShare('team', 'slow')?.handle.data.memIds as unknown[] | undefined) ?? []).length > 0;
  assert.not.ok(recorded(), 'refused before the acquire finished');
  assert.equal(ledger.byContainer(c1.id), [], 'the refused container holds nothing');
  rmSync(control, { force: true });
  // the acquire went on; the kubelet's retry finds it done (or waits for it within the budget)
  // the outcome, not an intent recorded before the call: it has the memids
  for (let i = 0; i < 100 && !recorded(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(recorded(), 'the late outcome was recorded');
  const c2 = ctr(q);
  const inj = await svc.createContainer(q, c2, Date.now() + 2000);
  assert.ok(inj && inj.devices.length === 1);
  await svc.endPod(q.id, 'test');
});

function consumerRun(args: string[]): Record<string, unknown> {
  const r = spawnSync(consumer, args, { env: process.env, encoding: 'utf8', timeout: 20000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n')[0]) as Record<string, unknown>;
  } catch {
    return { raw: r.stdout + r.stderr };
  }
}

const alivePid = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('the UB holder: the agent restarts and the share stays attached (same memids, same bytes, no eviction); the holder dies: evicted, kept for the grace period, bound again with its data', async () => {
  const hstate = mkdtempSync(join(root, 'holder-'));
  const env = { stateDir: hstate };
  const b1 = new UbsBackend(config({ holder: true, staleGraceSeconds: 30 }), env);
  await ready(b1);
  const s1 = await service(b1, [decl('team', 'kept')]);
  const p = pod('team', 'kept');
  const c = ctr(p);
  await s1.svc.createContainer(p, c);
  const before = (s1.ledger.heldShare('team', 'kept')!.handle.data.memIds as number[]).slice();
  const holderPid = b1.holder()!.pid;
  assert.ok(holderPid !== process.pid && alivePid(holderPid), 'the mapping lives in a process of its own');
  assert.equal((await b1.holderNow())!.held.map((h) => h.name), ['nms.team.kept']);
  assert.equal(consumerRun(['--sdk-name', 'nms.team.kept', 'write', '0', 'before-restart']).ok, true);

  // the agent stops (or dies: the holder never hears from it again); the holder goes on
  await s1.ledger.close();
  await b1.close();
  assert.ok(alivePid(holderPid), 'the holder outlives the agent');
  assert.is(consumerInfo('nms.team.kept').status, 0, 'still attached on this node with no agent running');

  const b2 = new UbsBackend(config({ holder: true, staleGraceSeconds: 30 }), env);
  await ready(b2);
  assert.is(b2.holder()!.pid, holderPid, 'the new agent found the same holder');
  const { ledger } = await Ledger.open(s1.dir);
  const evicted: string[] = [];
  const svc2 = new MemshareService({ backend: b2, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('t', [decl('team', 'kept')])]), limits: DEFAULT_LIMITS, releaseRetryMs: 50 });
  svc2.onEvict((id) => evicted.push(id));
  await svc2.init();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(ledger.heldShare('team', 'kept')!.handle.data.memIds, before, 'the same memids after the agent restart');
  assert.equal(evicted, [], 'nobody evicted');
  const read1 = consumerRun(['--sdk-name', 'nms.team.kept', 'read', '0', '14']);
  assert.is(read1.text, 'before-restart', `the bytes are intact: ${JSON.stringify(read1)}`);

  // the holder dies: its mappings end, the daemon detaches the share; the agent notices, maps it
  // again in a new holder (other memids) and evicts the container, but does not release the share
  process.kill(holderPid, 'SIGKILL');
  for (let i = 0; i < 200 && !evicted.length; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(evicted, [c.id], 'the container with the stale device numbers is evicted');
  const held = ledger.heldShare('team', 'kept')!;
  assert.not.equal(held.handle.data.memIds, before, 'the re-attach gave other memids');
  assert.ok(held.keepUntil !== undefined && held.keepUntil > Date.now() + 20_000, `kept for the grace period: ${held.keepUntil}`);
  assert.ok(b2.holder()!.pid !== holderPid && alivePid(b2.holder()!.pid), 'a new holder maps it');
  // the evicted container ends: an eviction is not a release
  await svc2.endContainer(c.id, 'container stopped');
  assert.ok(ledger.heldShare('team', 'kept'), 'still held with no binding (grace period)');
  assert.ok(svc2.keptUntil('team', 'kept'), 'status can show until when');
  // the kubelet's recreated container binds it again and reads what was written before
  const p2 = pod('team', 'kept');
  const c2 = ctr(p2);
  const inj = await svc2.createContainer(p2, c2);
  assert.equal(inj!.devices.map((d) => d.minor), held.handle.data.memIds);
  const read2 = consumerRun(['--sdk-name', 'nms.team.kept', 'read', '0', '14']);
  assert.is(read2.text, 'before-restart', `the data survived the holder's death: ${JSON.stringify(read2)}`);
  await svc2.endContainer(c2.id, 'test');
  // the grace period still runs: ask the holder to go, records stay
  await b2.stopHolder();
  await b2.close();
  await ledger.close();
});

test('after an agent restart without a holder, a recorded share is mapped again; new memids evict its containers', async () => {
  const b1 = new UbsBackend(config(), { stateDir: '' });
  await ready(b1);
  const s1 = await service(b1, [decl('team', 'again')]);
  const p = pod('team', 'again');
  const c = ctr(p);
  await s1.svc.createContainer(p, c);
  const before = (s1.ledger.heldShare('team', 'again')!.handle.data.memIds as number[]).slice();
  // the agent dies: its mapping with it (the double sees the link and the map lock go)
  const dead = spawnSync(process.execPath, ['-e', `
    const { loadUbsSdk } = require(${JSON.stringify(join(repo, 'dist', 'native', 'ubs-sdk.js'))});
    const sdk = loadUbsSdk(${JSON.stringify(libPath)});
    (async () => { await sdk.initialize(); const r = await sdk.lookup('nms.team.again'); console.log(r.code); })();`], { encoding: 'utf8' });
  assert.is(dead.stdout.trim(), '0', 'attached while the first agent maps it');
  await s1.ledger.close();
  await b1.close();
  const b2 = new UbsBackend(config(), { stateDir: '' });
  await ready(b2);
  const { ledger } = await Ledger.open(s1.dir);
  const evicted: string[] = [];
  const svc2 = new MemshareService({ backend: b2, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('t', [decl('team', 'again')])]), limits: DEFAULT_LIMITS });
  svc2.onEvict((id) => evicted.push(id));
  await svc2.init();
  for (let i = 0; i < 100 && !evicted.length; i++) await new Promise((r) => setTimeout(r, 30));
  const after = ledger.heldShare('team', 'again')!.handle.data.memIds as number[];
  assert.not.equal(after, before, 'the re-attach gave other memids');
  assert.equal(evicted, [c.id], 'the container with the old device numbers is evicted');
  await svc2.endContainer(c.id, 'test');
  // an eviction is not a release: kept for the recreated container (staleGraceSeconds)
  const kept = ledger.heldShare('team', 'again');
  assert.ok(kept?.keepUntil && kept.keepUntil > Date.now(), 'kept with no binding for the grace period');
  assert.is(consumerInfo('nms.team.again').status, 0, 'still attached on this node');
});

/** Allocates `name` in the pool as someone else would: uid 1000 (primary gid 0, which reaches the daemon's socket). */
function squat(name: string, sizeBytes: number, mode: string): void {
  chmodSync(root, 0o711); // (mkdtemp's 0700 keeps uid 1000 from the daemon's socket below it)
  const r = spawnSync(consumer, ['allocate', name, String(sizeBytes), mode], { uid: 1000, gid: 0, env: process.env, encoding: 'utf8', timeout: 20000 });
  assert.is(r.status, 0, `the squatter allocated ${name}: ${r.stdout}${r.stderr}`);
}

test('issue 22.3: a name someone else allocated first is refused as taken (mode 0600, a smaller size, or another creator), not adopted', async () => {
  const b = new UbsBackend(config(), { stateDir: '' });
  await ready(b);
  const { svc } = await service(b, [decl('team', 'sq-closed'), decl('team', 'sq-small', 256), decl('team', 'sq-open')]);
  squat('nms.team.sq-closed', 128 * MiB, '0600');
  squat('nms.team.sq-small', 128 * MiB, '0666');
  squat('nms.team.sq-open', 128 * MiB, '0666');
  for (const [share, why] of [['sq-closed', /the agent may not map it/], ['sq-small', /its size is 134217728 bytes, an agent makes 268435456 bytes or more/], ['sq-open', /made by uid 1000 gid 0/]] as const) {
    const p = pod('team', share);
    const err = await svc.createContainer(p, ctr(p)).then(() => undefined, (e: Error) => e);
    assert.instance(err, RefusalError, share);
    assert.match(err!.message, `its SDK name nms.team.${share} is taken by someone else in the UB memory pool`);
    assert.match(err!.message, why);
  }
  // nothing of the squatter's was mapped and kept here, and its shares are still its own
  assert.is(consumerInfo('nms.team.sq-open').json.code, 6020, 'not attached on this node any more');
});

test('issue 22.3: a name an agent made (root, shareMode, the size it asks for) is adopted: another node binds it', async () => {
  const b = new UbsBackend(config(), { stateDir: '' });
  await ready(b);
  const { svc } = await service(b, [decl('team', 'made-here')]);
  const r = spawnSync(consumer, ['allocate', 'nms.team.made-here', String(128 * MiB), '0666'], { env: process.env, encoding: 'utf8', timeout: 20000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  const p = pod('team', 'made-here');
  assert.ok(await svc.createContainer(p, ctr(p)));
});

test('issue 22.3: with backend.nameSecretFile every name is keyed by the secret: unpredictable, stable, the same on every node', async () => {
  const secretFile = join(root, 'name-secret');
  writeFileSync(secretFile, 'a cluster secret of enough bytes', { mode: 0o600 });
  const b1 = new UbsBackend(config({ nameSecretFile: secretFile }), { stateDir: '' });
  const b2 = new UbsBackend(config({ nameSecretFile: secretFile }), { stateDir: '' });
  const name = b1.sdkName('team', 'cache');
  assert.match(name, SDK_NAME_RE);
  assert.match(name, /^nms\.team\.cache:[a-z2-7]{16}$/);
  assert.is.not(name, sdkNameOf('nms', 'team', 'cache'), 'not the predictable name');
  assert.is(b2.sdkName('team', 'cache'), name, 'another agent with the same secret (a restart, another node) makes the same name');
  writeFileSync(secretFile, 'another cluster secret, enough bytes', { mode: 0o600 });
  assert.is.not(new UbsBackend(config({ nameSecretFile: secretFile }), { stateDir: '' }).sdkName('team', 'cache'), name, 'another secret, another name');
  // unset: the agent says names are predictable
  const warned: string[] = [];
  void new UbsBackend(config(), { stateDir: '', warn: (m) => warned.push(m) });
  assert.ok(warned.some((m) => /backend\.nameSecretFile is not set: SDK names are predictable/.test(m)), warned.join('\n'));
  // a secret others can read, or too short, is refused by name (run and check-config alike)
  const { chownSync } = await import('node:fs');
  chmodSync(secretFile, 0o644);
  assert.throws(() => new UbsBackend(config({ nameSecretFile: secretFile }), { stateDir: '' }), /backend\.nameSecretFile: .*name-secret: must be readable by root only/);
  assert.match(ubsConfigProblems(config({ nameSecretFile: secretFile })).join('\n'), /backend\.nameSecretFile: .*must be readable by root only/);
  chmodSync(secretFile, 0o600);
  chownSync(secretFile, 1000, 0);
  assert.match(ubsConfigProblems(config({ nameSecretFile: secretFile })).join('\n'), /backend\.nameSecretFile: .*must be owned by root/);
  chownSync(secretFile, 0, 0);
  writeFileSync(secretFile, 'short');
  assert.match(ubsConfigProblems(config({ nameSecretFile: secretFile })).join('\n'), /backend\.nameSecretFile: .*at least 16 bytes/);
});

test('issue 22.9: a FIFO swapped in at procDevices after the config check is refused at once, not read with a blocking read', () => {
  const fifo = join(root, 'devices-fifo');
  spawnSync('mkfifo', [fifo]);
  assert.throws(() => readShmdevMajor(fifo), /cannot read .*devices-fifo for the OBMM_SHMDEV device major: not a regular file/);
});

test('issue 22.4: a process that opened a share\'s host device nodes before the agent closed them is found, and the share is refused', async () => {
  // what the agent looks for, on the real /proc: a child holding a character device open
  const { openSync, closeSync, symlinkSync } = await import('node:fs');
  const { openersOf, devNumber } = await import('../../plugin/backends/ubs/openers');
  const fd = openSync('/dev/zero', 'r');
  const holder = spawn('sleep', ['30'], { stdio: [fd, 'ignore', 'ignore'] });
  closeSync(fd);
  children.push(holder);
  await new Promise((r) => holder.once('spawn', r));
  const zero = statSync('/dev/zero').rdev;
  assert.is(devNumber(1, 5), zero, 'device numbers encoded as stat reports them (1:5 is /dev/zero)');
  assert.ok(openersOf(new Set([zero]), [], new Set([process.pid])).pids.includes(holder.pid!), 'the child holding /dev/zero is found');
  assert.not.ok(openersOf(new Set([zero]), [], new Set([process.pid, holder.pid!])).pids.includes(holder.pid!), 'except the pids named');
  holder.kill('SIGKILL');
  // the backend: /proc stands in as a directory whose process 4242 holds every node of devDir (the
  // double's nodes have no driver, so no real process can open one; its fd entries are what
  // /proc/<pid>/fd shows: links that stat as the opened devices)
  const fakeProc = join(root, 'fake-proc');
  mkdirSync(join(fakeProc, '4242'), { recursive: true });
  symlinkSync(devDir, join(fakeProc, '4242', 'fd'));
  const b = new UbsBackend(config(), { stateDir: '' }, undefined, fakeProc);
  await ready(b);
  const { svc, ledger } = await service(b, [decl('team', 'peeked')]);
  const p = pod('team', 'peeked');
  const err = await svc.createContainer(p, ctr(p)).then(() => undefined, (e: Error) => e);
  assert.instance(err, RefusalError);
  assert.match(err!.message, /UB share team\/peeked \(SDK name nms\.team\.peeked\): its host device nodes were opened by pid 4242 while the pool had them at the share's mode/);
  assert.is(ledger.heldShare('team', 'peeked'), undefined, 'nothing kept');
  assert.is(consumerInfo('nms.team.peeked').json.code, 6020, 'made by this call: given back to the pool');
});

test('issue 22.5: a cdiDir that is not root\'s alone is refused (check-config) and gets no spec (run)', async () => {
  const dir = join(root, 'cdi-open');
  mkdirSync(dir, { mode: 0o777 });
  const { chownSync } = await import('node:fs');
  chmodSync(dir, 0o777);
  assert.match(ubsConfigProblems(config({ cdiDir: dir })).join('\n'), /backend\.cdiDir: .*must not be writable by group or others, has mode 0777/);
  const warned: string[] = [];
  const b = new UbsBackend(config({ cdiDir: dir }), { stateDir: '', warn: (m, d) => warned.push(`${m} ${JSON.stringify(d)}`) });
  b.setRuntime({ name: 'containerd', version: 'v2.1.9' });
  assert.not.ok(existsSync(join(dir, 'memshare.nri.io-ubs.json')), 'no spec written there');
  assert.ok(warned.some((w) => /cannot write the CDI spec/.test(w) && /must not be writable/.test(w)), warned.join('\n'));
  chmodSync(dir, 0o755);
  chownSync(dir, 1000, 1000);
  assert.match(ubsConfigProblems(config({ cdiDir: dir })).join('\n'), /backend\.cdiDir: .*must be owned by root, is owned by uid 1000/);
  chownSync(dir, 0, 0);
  assert.equal(ubsConfigProblems(config({ cdiDir: dir })), []);
});

test.after(() => {
  for (const ch of children) ch.kill('SIGKILL');
  // holders started by these tests (their socket is under root)
  spawnSync('pkill', ['-KILL', '-f', `socket ${root}/`]);
  void standin;
  rmSync(root, { recursive: true, force: true });
});

void RetryableError;
test.run();
