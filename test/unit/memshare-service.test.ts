// The memshare service's decisions: bind, refuse, release, reconcile. Runs on a real ledger in a
// temp dir; the backend is an in-memory recorder standing in for the tmpfs backend (which has its
// own tests on real mounts, and the e2e tests run the two together).
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { memshareHandlers } from '../../plugin/nri-adapter/adapter';
import { ContainerState, type Container, type PodSandbox } from '../../plugin/nri';
import { DEFAULT_LIMITS, RefusalError, emptyInjection, type ContainerInfo, type PodInfo, type ShareDeclaration, type ShareHandle } from '../../plugin/model';
import { BackendDefaults, type BoundShare } from '../../plugin/backends';
import { tempDirs } from '../support/cleanup';
const tempDir = tempDirs(test, 'svc-test-');

const MiB = 1024 * 1024;

class RecordingBackend extends BackendDefaults {
  readonly kind = 'recording';
  readonly durable: boolean = false;
  mounted = new Map<string, number>();
  /** the allowExec each share was acquired for (as the local backend, which remounts on a change) */
  exec = new Map<string, boolean>();
  calls: string[] = [];
  failAcquire = false;
  async acquire(d: ShareDeclaration): Promise<ShareHandle> {
    this.calls.push(`acquire ${d.namespace}/${d.name}`);
    if (this.failAcquire) throw new Error('mount(2) failed: ENOMEM');
    this.mounted.set(`${d.namespace}/${d.name}`, d.sizeBytes);
    this.exec.set(`${d.namespace}/${d.name}`, d.allowExec === true);
    return handle(d.namespace, d.name, d.sizeBytes);
  }
  serves(h: ShareHandle, d: ShareDeclaration): boolean {
    const exec = this.exec.get(`${h.namespace}/${h.name}`);
    return super.serves(h, d) && (exec === undefined || exec === (d.allowExec === true));
  }
  locationOf(h: ShareHandle): string {
    return String(h.data.hostPath ?? '');
  }
  async release(h: ShareHandle): Promise<void> {
    this.calls.push(`release ${h.namespace}/${h.name}`);
    this.mounted.delete(`${h.namespace}/${h.name}`);
    this.exec.delete(`${h.namespace}/${h.name}`);
  }
  async present() {
    return [...this.mounted].map(([k, size]) => handle(k.split('/')[0], k.split('/')[1], size));
  }
  async usage(h: ShareHandle) {
    const s = this.mounted.get(`${h.namespace}/${h.name}`);
    return s === undefined ? undefined : { sizeBytes: s, usedBytes: 0 };
  }
  attach(shares: readonly BoundShare[]) {
    const inj = emptyInjection();
    for (const { handle: h, readOnly } of shares) inj.mounts.push({ destination: `/dev/shm/${h.name}`, type: 'bind', source: `/shares/${h.namespace}/${h.name}`, options: ['rbind', readOnly ? 'ro' : 'rw'] });
    return inj;
  }
}

const handle = (namespace: string, name: string, sizeBytes: number): ShareHandle =>
  ({ backend: 'recording', namespace, name, sizeBytes, requestedBytes: sizeBytes, data: { hostPath: `/shares/${namespace}/${name}` } });
/** what every handler gets from the stub */
const ctx = { signal: new AbortController().signal };

const decl = (namespace: string, name: string, sizeMiB = 128, allowedNamespaces: string[] = []): ShareDeclaration => ({
  namespace, name, sizeBytes: sizeMiB * MiB, allowedNamespaces, origin: 'test',
});
let seq = 0;
const pod = (namespace: string, annotations: Record<string, string>): PodInfo => ({ id: `sb-${++seq}`, name: `pod-${seq}`, namespace, uid: `uid-${seq}`, annotations });
const ctr = (p: PodInfo, name = 'app', state: ContainerInfo['state'] = 'created'): ContainerInfo => ({ id: `ctr-${++seq}`, podSandboxId: p.id, name, state });

async function setup(decls: ShareDeclaration[], limits = DEFAULT_LIMITS) {
  const dir = tempDir();
  const { ledger } = await Ledger.open(dir);
  const source = new MemoryDeclarationSource('test', decls);
  const store = new MergedDeclarationStore([source]);
  const backend = new RecordingBackend();
  const released: string[] = [];
  const refused: string[] = [];
  const told: Array<{ message: string; operatorDetail?: string }> = [];
  const service = new MemshareService({
    backend, ledger, declarations: store, limits,
    events: { released: (ns, n) => released.push(`${ns}/${n}`), refused: (r, message, _s, operatorDetail) => (refused.push(r), told.push({ message, operatorDetail })) },
  });
  await service.init();
  const done = () => ledger.close();
  return { dir, ledger, source, backend, service, released, refused, told, done };
}

test('a bound container gets the mount, the share is acquired once and recorded', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const a = ctr(p, 'a');
  const b = ctr(p, 'b');
  const inj = await s.service.createContainer(p, a);
  await s.service.createContainer(p, b);
  assert.equal(inj?.mounts.map((m) => m.destination), ['/dev/shm/cache']);
  assert.equal(s.backend.calls, ['acquire team/cache']);
  assert.is(s.ledger.byShare('team', 'cache').length, 2);
  assert.is(s.ledger.byContainer(a.id)[0].pod.sandboxId, p.id);
  await s.done();
});

test('a changed allowExec acquires the share again for the next binding (the local backend remounts); the same one does not', async () => {
  const s = await setup([decl('team', 'tools')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'tools' });
  await s.service.createContainer(p, ctr(p, 'a'));
  await s.service.createContainer(p, ctr(p, 'b'));
  assert.equal(s.backend.calls, ['acquire team/tools']);
  s.source.set([{ ...decl('team', 'tools'), allowExec: true }]);
  await s.service.createContainer(p, ctr(p, 'c'));
  await s.service.createContainer(p, ctr(p, 'd'));
  assert.equal(s.backend.calls, ['acquire team/tools', 'acquire team/tools'], 'once for the change, not for every binding');
  assert.is(s.ledger.byShare('team', 'tools').length, 4);
  await s.done();
});

test('a backend failure refuses the binding with the backend\'s error as the refusal\'s cause (kept for the log)', async () => {
  const s = await setup([decl('team', 'cache')]);
  s.backend.failAcquire = true;
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const err = await s.service.createContainer(p, ctr(p)).then(() => undefined, (e: unknown) => e);
  assert.instance(err, RefusalError);
  assert.is((err as RefusalError).reason, 'backend');
  assert.match((err as Error).message, /mount\(2\) failed: ENOMEM/);
  assert.instance((err as Error).cause, Error, 'the backend\'s error is kept, not dropped');
  assert.is(((err as Error).cause as Error).message, 'mount(2) failed: ENOMEM');
  await s.done();
});

test('a container without the annotation gets nothing and no record', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', {});
  assert.is(await s.service.createContainer(p, ctr(p)), undefined);
  assert.is(s.ledger.all().length, 0);
  await s.done();
});

test('the share is released only when its last binding ends; ending twice is harmless', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const a = ctr(p, 'a');
  const b = ctr(p, 'b');
  await s.service.createContainer(p, a);
  await s.service.createContainer(p, b);
  await s.service.endContainer(a.id, 'stopped');
  assert.ok(s.backend.mounted.has('team/cache'), 'still held by b');
  await s.service.endContainer(a.id, 'removed');
  await s.service.endContainer(b.id, 'stopped');
  assert.not.ok(s.backend.mounted.has('team/cache'));
  assert.equal(s.released, ['team/cache']);
  assert.is(await s.service.endContainer(b.id, 'removed'), 0);
  await s.done();
});

test('removing the pod ends all its containers', async () => {
  const s = await setup([decl('team', 'x'), decl('team', 'y')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'x,y:ro' });
  await s.service.createContainer(p, ctr(p, 'a'));
  await s.service.createContainer(p, ctr(p, 'b'));
  assert.is(await s.service.endPod(p.id, 'pod removed'), 4);
  assert.is(s.backend.mounted.size, 0);
  assert.is(await s.service.endPod(p.id, 'pod removed'), 0);
  await s.done();
});

test('refusals name the annotation and the share, and leave nothing behind', async () => {
  const s = await setup([decl('team', 'cache'), decl('other', 'private'), decl('other', 'open', 128, ['team'])]);
  const cases: Array<[Record<string, string>, RegExp, string]> = [
    [{ 'memshare.nri.io/pod': 'nope' }, /memshare\.nri\.io\/pod.*team\/nope.*not declared/, 'unknown-share'],
    [{ 'memshare.nri.io/pod': 'other/private' }, /other\/private.*allowedNamespaces/, 'forbidden-namespace'],
    [{ 'memshare.nri.io/pod': 'other/nothing' }, /other\/nothing.*not granted to namespace "team"/, 'unknown-share'],
    [{ 'memshare.nri.io/pod': '../etc' }, /memshare\.nri\.io\/pod/, 'syntax'],
    [{ 'memshare.nri.io/container.app': 'cache,,x' }, /memshare\.nri\.io\/container\.app/, 'syntax'],
  ];
  for (const [ann, msg, reason] of cases) {
    const p = pod('team', ann);
    const c = ctr(p);
    const err = await s.service.createContainer(p, c).then(() => undefined, (e: unknown) => e);
    assert.instance(err, RefusalError, JSON.stringify(ann));
    assert.match((err as Error).message, msg);
    assert.is((err as RefusalError).reason, reason);
    assert.is(s.ledger.byContainer(c.id).length, 0);
  }
  assert.is(s.backend.mounted.size, 0);
  const p = pod('team', { 'memshare.nri.io/pod': 'other/open' });
  assert.ok(await s.service.createContainer(p, ctr(p)), 'allowedNamespaces lets team in');
  await s.done();
});

test("a refusal outside the share's grants tells the pod one thing and the operator's event the difference", async () => {
  const s = await setup([decl('other', 'private')]);
  const answers: string[] = [];
  for (const share of ['other/private', 'other/nothing']) {
    const p = pod('team', { 'memshare.nri.io/pod': share });
    const err = await s.service.createContainer(p, ctr(p)).then(() => undefined, (e: unknown) => e);
    answers.push((err as Error).message.replaceAll(share, 'SHARE'));
  }
  assert.is(answers[0], answers[1]);
  assert.equal(s.refused, ['forbidden-namespace', 'unknown-share']);
  assert.equal(s.told.map((t) => t.message.replace(/other\/\w+/g, 'SHARE')), [answers[0], answers[0]]);
  assert.match(s.told[0].operatorDetail ?? '', 'does not list "team"');
  assert.match(s.told[1].operatorDetail ?? '', 'not declared');
  await s.done();
});

test('a backend failure after a first share was bound undoes the whole container', async () => {
  const s = await setup([decl('team', 'a'), decl('team', 'b')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'a,b' });
  const c = ctr(p);
  const orig = s.backend.acquire.bind(s.backend);
  s.backend.acquire = async (d) => {
    if (d.name === 'b') throw new Error('mount(2) failed: ENOMEM');
    return orig(d);
  };
  const err = await s.service.createContainer(p, c).then(() => undefined, (e: unknown) => e);
  assert.instance(err, RefusalError);
  assert.match((err as Error).message, /ENOMEM/);
  assert.is(s.ledger.byContainer(c.id).length, 0);
  assert.not.ok(s.backend.mounted.has('team/a'), 'share a released again');
  await s.done();
});

test('node limit: a new share beyond maxNodeBytes is refused, a present one is not', async () => {
  const s = await setup([decl('team', 'a'), decl('team', 'b'), decl('team', 'c')], { ...DEFAULT_LIMITS, maxNodeBytes: 256 * MiB });
  const bind = (share: string) => {
    const p = pod('team', { 'memshare.nri.io/pod': share });
    return s.service.createContainer(p, ctr(p));
  };
  await bind('a');
  await bind('b');
  const err = await bind('c').then(() => undefined, (e: unknown) => e);
  assert.instance(err, RefusalError);
  assert.is((err as RefusalError).reason, 'node-limit');
  assert.ok(await bind('a'), 'a is present: binding it costs nothing new');
  await s.done();
});

test('a removed declaration takes no new bindings and is released when its last user ends', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const a = ctr(p);
  await s.service.createContainer(p, a);
  s.source.set([]);
  const p2 = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const err = await s.service.createContainer(p2, ctr(p2)).then(() => undefined, (e: unknown) => e);
  assert.is((err as RefusalError).reason, 'declaration-removed');
  assert.ok(s.backend.mounted.has('team/cache'), 'the current user keeps it');
  await s.service.endContainer(a.id, 'stopped');
  assert.not.ok(s.backend.mounted.has('team/cache'));
  await s.done();
});

test('reconcile: gone containers end, orphan mounts are released, unbound live containers are evicted', async () => {
  const s = await setup([decl('team', 'kept'), decl('team', 'stale'), decl('team', 'orphan')]);
  const live = pod('team', { 'memshare.nri.io/pod': 'kept' });
  const liveCtr = ctr(live, 'app', 'running');
  await s.service.createContainer(live, liveCtr);
  const gone = pod('team', { 'memshare.nri.io/pod': 'stale' });
  const goneCtr = ctr(gone);
  await s.service.createContainer(gone, goneCtr);
  s.backend.mounted.set('team/orphan', 128 * MiB); // mounted, but no record explains it
  const late = pod('team', { 'memshare.nri.io/pod': 'kept' });
  const lateCtr = ctr(late, 'app', 'running'); // created while the agent was down: no binding
  const stopped = ctr(live, 'old', 'stopped');
  const report = await s.service.reconcile([live, late], [liveCtr, lateCtr, stopped]);
  assert.is(report.ended, 1);
  assert.equal(report.orphansReleased, ['team/orphan']);
  assert.equal(report.evict.map((e) => e.containerId), [lateCtr.id]);
  assert.match(report.evict[0].reason, /team\/kept/);
  assert.ok(s.backend.mounted.has('team/kept'));
  assert.not.ok(s.backend.mounted.has('team/stale'));
  assert.is(s.ledger.byContainer(goneCtr.id).length, 0);
  await s.done();
});

test('reconcile: a recorded binding whose mount never reached the container is evicted', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const withMount = { ...ctr(p, 'a', 'running'), mounts: ['/proc', '/dev/shm', '/dev/shm/cache'] };
  const without = { ...ctr(p, 'b', 'running'), mounts: ['/proc', '/dev/shm'] }; // agent died before answering
  const unknown = { ...ctr(p, 'c', 'running'), mounts: [] }; // runtime did not report mounts: no judgement
  for (const c of [withMount, without, unknown]) await s.service.createContainer(p, c);
  const report = await s.service.reconcile([p], [withMount, without, unknown]);
  assert.equal(report.evict.map((e) => e.containerId), [without.id]);
  assert.match(report.evict[0].reason, /team\/cache/);
  await s.done();
});

test('records survive a restart of the service (reopened ledger) and reconcile keeps live holders', async () => {
  const s = await setup([decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const c = ctr(p, 'app', 'running');
  await s.service.createContainer(p, c);
  await s.ledger.close();
  const { ledger } = await Ledger.open(s.dir);
  const service = new MemshareService({ backend: s.backend, ledger, declarations: new MergedDeclarationStore([s.source]), limits: DEFAULT_LIMITS });
  await service.init();
  const report = await service.reconcile([p], [c]);
  assert.is(report.ended, 0);
  assert.is(report.evict.length, 0);
  assert.ok(s.backend.mounted.has('team/cache'));
  assert.is(ledger.byContainer(c.id).length, 1);
  await ledger.close();
});

// NRI shapes for the handlers
const nriPod = (p: PodInfo): PodSandbox => ({ ...p, labels: {}, runtimeHandler: '', pid: 0, ips: [] });
const nriCtr = (c: ContainerInfo, state: ContainerState, pid: number): Container => ({
  id: c.id, podSandboxId: c.podSandboxId, name: c.name, state, labels: {}, annotations: {}, args: [], env: [], mounts: [], pid,
});

test('a container the agent never saw is evicted when it starts without its shares; others are left alone', async () => {
  const s = await setup([decl('team', 'cache')]);
  const killed: string[] = [];
  const h = memshareHandlers({ service: s.service, kill: (id) => (killed.push(id), 'killed') });
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const seen = ctr(p, 'seen');
  await h.createContainer!(nriPod(p), nriCtr(seen, ContainerState.CREATED, 0), ctx);
  // created after one agent died and started after the next one synchronized: no CreateContainer, not in the sync
  const gap = ctr(p, 'gap');
  const optedOut = ctr(pod('team', { 'memshare.nri.io/pod': 'cache', 'memshare.nri.io/container.plain': '-' }), 'plain');
  const plainPod = pod('team', {});
  const plain = ctr(plainPod, 'plain');
  await h.postStartContainer!(nriPod(p), nriCtr(seen, ContainerState.RUNNING, 4242), ctx);
  await h.postStartContainer!(nriPod(p), nriCtr(gap, ContainerState.RUNNING, 4343), ctx);
  await h.postStartContainer!(nriPod(plainPod), nriCtr(plain, ContainerState.RUNNING, 4444), ctx);
  await h.postStartContainer!(nriPod(pod('team', { 'memshare.nri.io/pod': 'cache', 'memshare.nri.io/container.plain': '-' })), nriCtr(optedOut, ContainerState.RUNNING, 4545), ctx);
  assert.equal(killed, [gap.id]);
  assert.match(s.service.evictionReason(p, gap) ?? '', /created without its shared memory \(team\/cache\)/);
  assert.is(s.service.evictionReason(p, seen), undefined);
  await s.done();
});

test('a bound container whose mounts lack its share at PostStartContainer (the answer came too late) is evicted; one that has it is not', async () => {
  const s = await setup([decl('team', 'cache')]);
  const killed: string[] = [];
  const h = memshareHandlers({ service: s.service, kill: (id) => (killed.push(id), 'killed') });
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const late = ctr(p, 'late');
  const served = ctr(p, 'served');
  await h.createContainer!(nriPod(p), nriCtr(late, ContainerState.CREATED, 0), ctx);
  await h.createContainer!(nriPod(p), nriCtr(served, ContainerState.CREATED, 0), ctx);
  assert.is(s.ledger.byContainer(late.id).length, 1, 'the late binding is on record');
  // as the runtime reports them: containerd gave up waiting and created "late" without the adjustment
  const base = ['/proc', '/dev', '/dev/pts', '/dev/shm', '/sys'];
  const withMounts = (c: Container, dests: string[]): Container => ({ ...c, mounts: dests.map((destination) => ({ destination, type: 'bind', source: '/x', options: [] })) });
  await h.postStartContainer!(nriPod(p), withMounts(nriCtr(late, ContainerState.RUNNING, 5151), base), ctx);
  await h.postStartContainer!(nriPod(p), withMounts(nriCtr(served, ContainerState.RUNNING, 5252), [...base, '/dev/shm/cache']), ctx);
  assert.equal(killed, [late.id]);
  assert.match(s.service.evictionReason(p, { ...late, mounts: base }) ?? '', /recorded as bound to team\/cache \(\/dev\/shm\/cache not among its mounts\).*did not reach the runtime in time/);
  // the same check at reconcile (the agent reconnects after containerd dropped it)
  const report = await s.service.reconcile([p], [{ ...late, state: 'running', pid: 5151, mounts: base }, { ...served, state: 'running', pid: 5252, mounts: [...base, '/dev/shm/cache'] }]);
  assert.equal(report.evict.map((e) => e.containerId), [late.id]);
  await s.done();
});

/** A backend whose shares outlive the agent (as UB's do), with per-run device numbers. */
class DurableBackend extends RecordingBackend {
  readonly durable = true;
  gen = 1;
  /** acquires wait for this when set */
  gate?: Promise<void>;
  /** restores of these share names wait for `gate` */
  slowRestore = new Set<string>();
  async acquire(d: ShareDeclaration): Promise<ShareHandle> {
    if (this.gate) await this.gate;
    const h = await super.acquire(d);
    return { ...h, data: { ...h.data, memIds: [this.gen * 100] } };
  }
  async restore(h: ShareHandle): Promise<ShareHandle> {
    this.calls.push(`restore ${h.namespace}/${h.name}`);
    if (this.slowRestore.has(h.name) && this.gate) await this.gate;
    return { ...h, data: { ...h.data, memIds: [this.gen * 100] } };
  }
  attach(shares: readonly BoundShare[]) {
    const inj = super.attach(shares);
    for (const { handle: h } of shares) inj.env.push({ key: `MEMIDS_${h.name}`, value: String(h.data.memIds) });
    return inj;
  }
}

async function durableSetup(dir: string, backend: DurableBackend, decls: ShareDeclaration[]) {
  const { ledger } = await Ledger.open(dir);
  const service = new MemshareService({ backend, ledger, declarations: new MergedDeclarationStore([new MemoryDeclarationSource('test', decls)]), limits: DEFAULT_LIMITS });
  await service.init();
  return { ledger, service };
}

test('a durable share is on record (by name) before the backend makes it, and the record goes if making it fails', async () => {
  const dir = tempDir();
  const backend = new DurableBackend();
  let open!: () => void;
  backend.gate = new Promise((r) => (open = r));
  const { ledger, service } = await durableSetup(dir, backend, [decl('team', 'cache')]);
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const binding = service.createContainer(p, ctr(p));
  await new Promise((r) => setTimeout(r, 50));
  // what an agent killed now leaves on disk: the share it was making, for the next reconcile
  assert.equal(Ledger.read(dir).held.map((h) => `${h.handle.namespace}/${h.handle.name}`), ['team/cache']);
  open();
  await binding;
  assert.equal(Ledger.read(dir).held.map((h) => h.handle.data.memIds), [[100]], 'then the real handle');
  // a failing make leaves nothing recorded
  backend.gate = undefined;
  backend.failAcquire = true;
  const q = pod('team', { 'memshare.nri.io/pod': 'other' });
  await service.createContainer(q, ctr(q)).catch(() => undefined);
  await ledger.close();
});

test('after a restart, a binding made before the background restore reached its share restores it first (never the last run\'s device numbers)', async () => {
  const dir = tempDir();
  const backend = new DurableBackend();
  const decls = [decl('team', 'alpha'), decl('team', 'beta')];
  const first = await durableSetup(dir, backend, decls);
  const pa = pod('team', { 'memshare.nri.io/pod': 'alpha' });
  const pb = pod('team', { 'memshare.nri.io/pod': 'beta' });
  await first.service.createContainer(pa, ctr(pa));
  await first.service.createContainer(pb, ctr(pb));
  await first.ledger.close();
  // the next run: the pool hands out other device numbers; alpha's restore (first in line) is slow
  backend.gen = 2;
  let open!: () => void;
  backend.gate = new Promise((r) => (open = r));
  backend.slowRestore.add('alpha');
  const second = await durableSetup(dir, backend, decls);
  const pb2 = pod('team', { 'memshare.nri.io/pod': 'beta' });
  const inj = await second.service.createContainer(pb2, ctr(pb2));
  assert.equal(inj?.env.find((e) => e.key === 'MEMIDS_beta')?.value, '200', `this run's device numbers: ${JSON.stringify(inj?.env)}`);
  assert.ok(backend.calls.includes('restore team/beta'), backend.calls.join(', '));
  open();
  await new Promise((r) => setTimeout(r, 50));
  assert.is(backend.calls.filter((c) => c === 'restore team/beta').length, 1, 'restored once, not again by the background pass');
  await second.ledger.close();
});

test.run();
