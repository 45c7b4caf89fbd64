// The DRA driver (plugin/dra/driver.ts) over the real core: a real ledger, the real local backend
// (real tmpfs, as root like the agent) and, for the UB backend, the SDK's C test double. The
// ClaimReader is a double standing in for the API server (it returns the ResourceClaim views the
// reader of plugin/dra/claims.ts makes of a real server's objects; that path is tested against a
// real API server in test/e2e). CDI specs are checked as files in a temp cdiDir.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as native from '../../native';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { LocalBackend, type Backend } from '../../plugin/backends';
import { UbsBackend, defaultUbsConfig } from '../../plugin/backends/ubs';
import { MemshareDraDriver, shareConfigProblem } from '../../plugin/dra/driver';
import { CLAIM_CDI_KIND, CLAIM_CDI_VERSION, claimSpecFile, type CdiSpec } from '../../plugin/dra/cdi-spec';
import { deviceNameOf } from '../../plugin/dra/devices';
import type { AllocationResult, ClaimReader, ClaimRef, OpaqueConfig, ResourceClaimView } from '../../plugin/dra/types';
import { DEFAULT_LIMITS, type ShareDeclaration } from '../../plugin/model';
import { startUbsStandin, ubsDoubleWorld } from '../support/ubs-double';

const MiB = 1024 * 1024;
const DRIVER = 'memshare.nri.io';
const base = mkdtempSync(join(tmpdir(), 'dra-driver-'));
let n = 0;

const decl = (namespace: string, name: string, o: Partial<ShareDeclaration> = {}): ShareDeclaration => ({
  namespace, name, sizeBytes: 128 * MiB, allowedNamespaces: [], origin: 'test', ...o,
});
const ref = (namespace: string, name: string): ClaimRef => ({ namespace, name, uid: `${(++n).toString(16).padStart(8, '0')}-1111-4222-8333-444455556666` });
const result = (share: { namespace: string; name: string }, request = 'shm', driver = DRIVER): AllocationResult =>
  ({ request, driver, pool: 'node-1', device: deviceNameOf(share.namespace, share.name) });
const shareConfig = (readOnly: boolean, requests: string[] = [], extra: Record<string, unknown> = {}): OpaqueConfig =>
  ({ requests, driver: DRIVER, parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly, ...extra } });

/** Stands in for the API server: the claims as the claim reader returns them. */
class ClaimsDouble implements ClaimReader {
  readonly claims = new Map<string, ResourceClaimView>();
  reads = 0;
  put(r: ClaimRef, results: AllocationResult[] | undefined, config: OpaqueConfig[] = [], uid = r.uid): void {
    this.claims.set(`${r.namespace}/${r.name}`, { namespace: r.namespace, name: r.name, uid, results, config });
  }
  async read(r: ClaimRef): Promise<ResourceClaimView> {
    this.reads++;
    const c = this.claims.get(`${r.namespace}/${r.name}`);
    if (!c) throw new Error(`ResourceClaim ${r.namespace}/${r.name} (uid ${r.uid}): not found`);
    return c;
  }
}

async function node(dir: string, decls: ShareDeclaration[], o: { limits?: typeof DEFAULT_LIMITS; backend?: Backend; claims?: ClaimsDouble } = {}) {
  mkdirSync(dir, { recursive: true });
  const { ledger } = await Ledger.open(join(dir, 'state'));
  const source = new MemoryDeclarationSource('test', decls);
  const declarations = new MergedDeclarationStore([source]);
  const backend = o.backend ?? new LocalBackend({ sharesDir: join(dir, 'shares'), stateDir: join(dir, 'state') });
  const service = new MemshareService({ backend, ledger, declarations, limits: o.limits ?? DEFAULT_LIMITS });
  await service.init();
  const claims = o.claims ?? new ClaimsDouble();
  const cdiDir = join(dir, 'cdi');
  const driver = new MemshareDraDriver({ driverName: DRIVER, reader: claims, service, declarations, cdiDir });
  const spec = (uid: string): CdiSpec => JSON.parse(readFileSync(join(cdiDir, claimSpecFile(uid)), 'utf8')) as CdiSpec;
  const close = async () => {
    service.close();
    await ledger.close();
  };
  return { dir, ledger, source, backend, service, claims, driver, cdiDir, spec, close };
}

const fresh = () => mkdtempSync(join(base, 'n-'));
const mounted = (path: string): boolean => native.readMountInfo().some((m) => m.mountPoint === path);
const devicesOf = (r: unknown) => (r as { devices: Array<{ requestNames: string[]; poolName: string; deviceName: string; cdiDeviceIds: string[] }> }).devices;
const errorOf = (r: unknown) => (r as { error?: string }).error;

test('prepare: the device\'s share is prepared, its CDI spec written, its CDI id answered; unprepare removes both', async () => {
  const s = await node(fresh(), [decl('team', 'cache')]);
  const c = ref('team', 'shared');
  s.claims.put(c, [result({ namespace: 'team', name: 'cache' })]);
  const answer = await s.driver.prepare([c]);
  const dev = deviceNameOf('team', 'cache');
  assert.equal(devicesOf(answer.get(c.uid)), [{ requestNames: ['shm'], poolName: 'node-1', deviceName: dev, cdiDeviceIds: [`memshare.nri.io/claim=${c.uid}-${dev}`] }]);
  const hostPath = (s.backend as LocalBackend).pathOf('team', 'cache');
  assert.ok(mounted(hostPath));
  const spec = s.spec(c.uid);
  assert.is(spec.cdiVersion, CLAIM_CDI_VERSION);
  assert.is(spec.kind, CLAIM_CDI_KIND);
  assert.equal(spec.devices, [{ name: `${c.uid}-${dev}`, containerEdits: { env: ['MEMSHARE_DRA_CLAIM=team/shared'] } }]);
  assert.equal(spec.containerEdits, {
    mounts: [{ hostPath, containerPath: '/dev/shm/cache', type: 'bind', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] }],
  });
  assert.equal(await s.driver.unprepare([c]), new Map([[c.uid, undefined]]));
  assert.not.ok(existsSync(join(s.cdiDir, claimSpecFile(c.uid))), 'spec removed');
  assert.not.ok(mounted(hostPath), 'released at its last holder');
  await s.close();
});

test('prepared twice, and again after an agent restart: the same answer; a spec gone meanwhile is written again', async () => {
  const dir = fresh();
  const claims = new ClaimsDouble();
  const s = await node(dir, [decl('team', 'cache')], { claims });
  const c = ref('team', 'again');
  claims.put(c, [result({ namespace: 'team', name: 'cache' })], [shareConfig(true)]);
  const first = await s.driver.prepare([c]);
  const spec = readFileSync(join(s.cdiDir, claimSpecFile(c.uid)), 'utf8');
  assert.equal(await s.driver.prepare([c]), first);
  assert.is(s.ledger.byClaim(c.uid).length, 1);
  await s.close();
  unlinkSync(join(dir, 'cdi', claimSpecFile(c.uid)));

  const t = await node(dir, [decl('team', 'cache')], { claims });
  assert.equal(await t.driver.prepare([c]), first, 'the same CDI ids after the restart');
  assert.is(readFileSync(join(t.cdiDir, claimSpecFile(c.uid)), 'utf8'), spec, 'the same spec, written again');
  assert.equal(t.ledger.byClaim(c.uid).map((r) => r.readOnly), [true]);
  await t.driver.unprepare([c]);
  await t.close();
});

test('unprepare of a claim never prepared here, or twice, succeeds', async () => {
  const s = await node(fresh(), [decl('team', 'cache')]);
  const c = ref('team', 'ghost');
  assert.equal(await s.driver.unprepare([c, { ...c, uid: '../../etc' }]), new Map([[c.uid, undefined], ['../../etc', undefined]]));
  assert.is(s.claims.reads, 0, 'unprepare needs no API server');
  await s.close();
});

test('each claim gets its own answer: not allocated, another uid, an unknown device, another driver\'s devices', async () => {
  const s = await node(fresh(), [decl('team', 'cache')]);
  const pending = ref('team', 'pending');
  s.claims.put(pending, undefined);
  const replaced = ref('team', 'replaced');
  s.claims.put(replaced, [result({ namespace: 'team', name: 'cache' })], [], 'ffffffff-0000-4000-8000-000000000000');
  const stale = ref('team', 'stale');
  s.claims.put(stale, [{ request: 'shm', driver: DRIVER, pool: 'node-1', device: 'gone-0badc0de' }]);
  const foreign = ref('team', 'gpu');
  s.claims.put(foreign, [result({ namespace: 'team', name: 'cache' }, 'gpu', 'gpu.example.com')]);
  const good = ref('team', 'good');
  s.claims.put(good, [result({ namespace: 'team', name: 'cache' })]);
  const missing = ref('team', 'missing');
  const answer = await s.driver.prepare([pending, replaced, stale, foreign, good, missing]);
  assert.is(answer.size, 6);
  assert.match(errorOf(answer.get(pending.uid))!, `ResourceClaim team/pending (uid ${pending.uid}) is not allocated`);
  assert.match(errorOf(answer.get(replaced.uid))!, 'has uid ffffffff-0000-4000-8000-000000000000 now: it is another claim');
  assert.match(errorOf(answer.get(stale.uid))!, 'allocated device "gone-0badc0de" (pool "node-1") is no share declared on this node');
  assert.equal(devicesOf(answer.get(foreign.uid)), [], 'nothing of ours to prepare');
  assert.not.ok(existsSync(join(s.cdiDir, claimSpecFile(foreign.uid))));
  assert.is(devicesOf(answer.get(good.uid)).length, 1);
  assert.match(errorOf(answer.get(missing.uid))!, 'not found');
  assert.equal(s.ledger.allClaims().map((r) => r.claim.name), ['good'], 'only the good claim holds anything');
  await s.close();
});

test('read-only from the opaque config, per request, a later config overriding an earlier one', async () => {
  const s = await node(fresh(), [decl('team', 'a'), decl('team', 'b')]);
  const c = ref('team', 'mixed');
  s.claims.put(c, [result({ namespace: 'team', name: 'a' }, 'reader'), result({ namespace: 'team', name: 'b' }, 'writer')], [
    shareConfig(true), // the class's: all read-only
    shareConfig(false, ['writer']), // the claim's: this request read-write
    { requests: [], driver: 'gpu.example.com', parameters: { anything: 1 } }, // another driver's: not ours to read
  ]);
  const answer = await s.driver.prepare([c]);
  assert.is(devicesOf(answer.get(c.uid)).length, 2);
  assert.equal(s.ledger.byClaim(c.uid).map((r) => `${r.share.name}:${r.readOnly ? 'ro' : 'rw'}`).sort(), ['a:ro', 'b:rw']);
  const mounts = s.spec(c.uid).containerEdits.mounts!;
  assert.ok(mounts.find((m) => m.containerPath === '/dev/shm/a')!.options.includes('ro'));
  assert.ok(mounts.find((m) => m.containerPath === '/dev/shm/b')!.options.includes('rw'));
  assert.is(s.spec(c.uid).devices.length, 2);
  await s.driver.unprepare([c]);
  await s.close();
});

test('a malformed opaque config is refused naming the entry and the field or kind', async () => {
  assert.match(shareConfigProblem({ apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readonly: true })!, 'unknown field "readonly"');
  assert.match(shareConfigProblem({ apiVersion: 'memshare.nri.io/v1alpha1', kind: 'GpuConfig' })!, 'kind "GpuConfig" is unknown');
  assert.match(shareConfigProblem({ kind: 'ShareConfig' })!, 'apiVersion is missing');
  assert.match(shareConfigProblem({ apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: 'yes' })!, 'readOnly must be true or false');
  assert.match(shareConfigProblem('readOnly')!, 'parameters must be an object');
  assert.is(shareConfigProblem({ apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig' }), undefined);
  const s = await node(fresh(), [decl('team', 'cache')]);
  const c = ref('team', 'typo');
  s.claims.put(c, [result({ namespace: 'team', name: 'cache' })], [shareConfig(true, [], { readonly: true })]);
  const err = errorOf((await s.driver.prepare([c])).get(c.uid));
  assert.match(err!, `ResourceClaim team/typo (uid ${c.uid}): config[0] (opaque, driver memshare.nri.io): unknown field "readonly"`);
  assert.equal(s.ledger.allClaims(), []);
  await s.close();
});

test('authorization as the annotation path: another namespace\'s share, the node limit', async () => {
  const limits = { ...DEFAULT_LIMITS, maxNodeBytes: 128 * MiB };
  const s = await node(fresh(), [decl('owner', 'private'), decl('guest', 'one'), decl('guest', 'two')], { limits });
  const c = ref('guest', 'peek');
  s.claims.put(c, [result({ namespace: 'owner', name: 'private' })]);
  assert.match(errorOf((await s.driver.prepare([c])).get(c.uid))!, /^ResourceClaim guest\/peek: share "owner\/private": not granted to namespace "guest"/);
  const rw = ref('guest', 'rw');
  s.source.set([decl('owner', 'private', { readOnlyNamespaces: ['guest'] }), decl('guest', 'one'), decl('guest', 'two')]);
  s.claims.put(rw, [result({ namespace: 'owner', name: 'private' })]);
  assert.match(errorOf((await s.driver.prepare([rw])).get(rw.uid))!,
    'read-only access (spec.readOnlyNamespaces); ask for it read-only: an opaque config for driver memshare.nri.io in the claim, parameters {apiVersion: "memshare.nri.io/v1alpha1", kind: "ShareConfig", readOnly: true}');
  const one = ref('guest', 'one');
  s.claims.put(one, [result({ namespace: 'guest', name: 'one' })]);
  assert.is(devicesOf((await s.driver.prepare([one])).get(one.uid)).length, 1);
  const two = ref('guest', 'two');
  s.claims.put(two, [result({ namespace: 'guest', name: 'two' })]);
  assert.match(errorOf((await s.driver.prepare([two])).get(two.uid))!, 'more than the 128 MiB allowed');
  assert.not.ok(existsSync(join(s.cdiDir, claimSpecFile(two.uid))), 'no spec for a refused claim');
  await s.driver.unprepare([one]);
  await s.close();
});

test('a cdiDir that is not root\'s alone gets no spec: the claim\'s answer says why', async () => {
  const s = await node(fresh(), [decl('team', 'cache')]);
  mkdirSync(s.cdiDir, { mode: 0o777 });
  chmodSync(s.cdiDir, 0o777);
  const c = ref('team', 'open');
  s.claims.put(c, [result({ namespace: 'team', name: 'cache' })]);
  assert.match(errorOf((await s.driver.prepare([c])).get(c.uid))!, /cannot write its CDI spec: cdiDir .* must not be writable by group or others, has mode 0777/);
  assert.equal(s.ledger.allClaims(), [], 'a claim without an answer keeps nothing');
  assert.not.ok(mounted((s.backend as LocalBackend).pathOf('team', 'cache')), 'and its share is released');
  await s.close();
});

// ---- the UB backend, through the SDK's C test double (as test/unit/backend-ubs.test.ts) ----------

const repo = join(__dirname, '..', '..', '..');
const ubsOut = join(repo, 'dist', 'native', 'ubs');
const children: ChildProcess[] = [];

test('UB: the spec carries the devices, libraries, socket, environment and access hook of the annotation path; the daemon group as an extra CDI id', async () => {
  const root = mkdtempSync(join(base, 'ubs-'));
  const { devDir, procDevices, daemonDir } = ubsDoubleWorld(root, ubsOut, 509, 'double');
  const standin = startUbsStandin(ubsOut, { daemonDir });
  children.push(standin.child);
  await standin.listening;
  const cdiDir = join(root, 'cdi-ubs');
  const b = new UbsBackend({ ...defaultUbsConfig(), sdkLibrary: join(ubsOut, 'lib', 'libubsm_sdk.so'), procDevices, hostDevDir: devDir, groups: [4177], cdiDir, budgetMs: 5000, holder: false }, { stateDir: '' });
  b.start();
  for (let i = 0; i < 200 && b.unavailable(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.is(b.unavailable(), undefined, 'the SDK connected to the stand-in daemon');
  b.setRuntime({ name: 'containerd', version: 'v2.1.9' });

  const s = await node(join(root, 'node'), [decl('team', 'big')], { backend: b });
  // the annotation path's injection for the same share, to compare with
  const pod = { id: 'sb-ubs', name: 'p', namespace: 'team', uid: 'u', annotations: { 'memshare.nri.io/pod': 'big:ro' } };
  const viaAnnotation = (await s.service.createContainer(pod, { id: 'ctr-ubs', podSandboxId: 'sb-ubs', name: 'app', state: 'created' }))!;
  const c = ref('team', 'ub');
  s.claims.put(c, [result({ namespace: 'team', name: 'big' })], [shareConfig(true)]);
  const answer = await s.driver.prepare([c]);
  const dev = deviceNameOf('team', 'big');
  assert.equal(devicesOf(answer.get(c.uid))[0].cdiDeviceIds, [`memshare.nri.io/claim=${c.uid}-${dev}`, 'memshare.nri.io/ubs=daemon-access'],
    'the daemon group through the UB backend\'s own spec, named beside the claim\'s device');
  assert.ok(existsSync(join(cdiDir, 'memshare.nri.io-ubs.json')));
  const edits = s.spec(c.uid).containerEdits;
  assert.equal(edits.deviceNodes, viaAnnotation.devices.map((d) => ({ path: d.path, type: 'c', major: 509, minor: d.minor, fileMode: 0o444, uid: 0, gid: 0 })));
  assert.ok(edits.deviceNodes!.length > 0);
  assert.equal(edits.mounts, viaAnnotation.mounts.map((m) => ({ hostPath: m.source, containerPath: m.destination, type: m.type, options: m.options })));
  assert.ok(edits.mounts!.some((m) => m.containerPath === '/run/matrix/memory' && m.options.includes('ro')));
  assert.equal(edits.env, viaAnnotation.env.map((e) => `${e.key}=${e.value}`));
  assert.ok(edits.env!.includes('MEMSHARE_UBS_SHARES=big=nms.team.big'));
  const hook = viaAnnotation.createRuntimeHooks![0];
  assert.equal(edits.hooks, [{ hookName: 'createRuntime', path: hook.path, args: hook.args, env: hook.env, timeout: hook.timeout }]);
  assert.ok(hook.args.includes('--share'));
  // one share, two holders: the claim's unprepare leaves it to the container
  await s.driver.unprepare([c]);
  assert.ok(s.ledger.heldShare('team', 'big'), 'the container still holds it');
  await s.service.endPod('sb-ubs', 'test');
  assert.is(s.ledger.heldShare('team', 'big'), undefined, 'released at its last holder');
  await s.close();
  await b.close();
});

test.after(() => {
  for (const ch of children) ch.kill('SIGKILL');
  for (const m of native.readMountInfo().reverse()) {
    if (m.mountPoint.startsWith(`${base}/`)) {
      try { native.umount2(m.mountPoint, native.MNT_DETACH); } catch { /* already gone */ }
    }
  }
  rmSync(base, { recursive: true, force: true });
});

test.run();
