// ResourceClaims as holders of shares in the memshare core (the DRA front door's half of the core):
// prepareClaim/unprepareClaim on a real ledger and the real local backend (real tmpfs mounts, run
// as root like the agent), beside containers bound through the annotation path.
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as native from '../../native';
import { unmountAndRemove } from '../support/mounts';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { LocalBackend } from '../../plugin/backends';
import { collectStatus, renderStatus } from '../../plugin/agent/status';
import { defaultConfig } from '../../plugin/agent/config';
import { DEFAULT_LIMITS, RefusalError, type ClaimInfo, type ContainerInfo, type PodInfo, type ShareDeclaration } from '../../plugin/model';

const MiB = 1024 * 1024;
const base = mkdtempSync(join(tmpdir(), 'memshare-claims-'));
let n = 0;

const decl = (namespace: string, name: string, o: Partial<ShareDeclaration> = {}): ShareDeclaration => ({
  namespace, name, sizeBytes: 128 * MiB, allowedNamespaces: [], origin: 'test', ...o,
});
const claim = (namespace: string, name: string): ClaimInfo => ({ namespace, name, uid: `0a1b2c3d-0000-4000-8000-${String(++n).padStart(12, '0')}` });
const pod = (namespace: string, annotations: Record<string, string>): PodInfo => ({ id: `sb-${++n}`, name: `pod-${n}`, namespace, uid: `uid-${n}`, annotations });
const ctr = (p: PodInfo, name = 'app'): ContainerInfo => ({ id: `ctr-${++n}`, podSandboxId: p.id, name, state: 'running' });
const mounted = (path: string): boolean => native.readMountInfo().some((m) => m.mountPoint === path);

async function agent(dir: string, decls: ShareDeclaration[], limits = DEFAULT_LIMITS) {
  const { ledger } = await Ledger.open(join(dir, 'state'));
  const source = new MemoryDeclarationSource('test', decls);
  const backend = new LocalBackend({ sharesDir: join(dir, 'shares'), stateDir: join(dir, 'state') });
  const events: string[] = [];
  const service = new MemshareService({
    backend, ledger, declarations: new MergedDeclarationStore([source]), limits,
    events: {
      claimed: (r) => events.push(`claimed ${r.claim.name} ${r.share.namespace}/${r.share.name}`),
      unclaimed: (r, why) => events.push(`unclaimed ${r.claim.name} ${r.share.namespace}/${r.share.name} (${why})`),
      released: (ns, name) => events.push(`released ${ns}/${name}`),
      refused: (reason) => events.push(`refused ${reason}`),
    },
  });
  await service.init();
  const close = async () => {
    service.close();
    await ledger.close();
  };
  return { dir, ledger, source, backend, service, events, close };
}

const fresh = () => mkdtempSync(join(base, 'a-'));

test('a prepared claim holds the share: mounted once, recorded, the injection the annotation path gives', async () => {
  const a = await agent(fresh(), [decl('team', 'cache')]);
  const c = claim('team', 'shared');
  const inj = await a.service.prepareClaim(c, [{ namespace: 'team', name: 'cache', readOnly: false }]);
  const hostPath = a.backend.pathOf('team', 'cache');
  assert.ok(mounted(hostPath), 'the tmpfs is mounted');
  assert.equal(inj.mounts, [{ destination: '/dev/shm/cache', type: 'bind', source: hostPath, options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] }]);
  // the same share bound through an annotation gives the same mount
  const p = pod('team', { 'memshare.nri.io/pod': 'cache' });
  const viaAnnotation = await a.service.createContainer(p, ctr(p));
  assert.equal(viaAnnotation?.mounts, inj.mounts, 'one injection for both front doors');
  assert.equal(a.ledger.byClaim(c.uid).map((r) => [r.claim, r.share, r.readOnly]), [[c, { namespace: 'team', name: 'cache' }, false]]);
  assert.equal(a.events.filter((e) => e.startsWith('claimed')), ['claimed shared team/cache']);
  await a.close();
});

test('prepared twice gives the same answer and records once; after an agent restart (a new service over the same ledger) too', async () => {
  const dir = fresh();
  const a = await agent(dir, [decl('team', 'cache')]);
  const c = claim('team', 'twice');
  const refs = [{ namespace: 'team', name: 'cache', readOnly: true }];
  const first = await a.service.prepareClaim(c, refs);
  const second = await a.service.prepareClaim(c, refs);
  assert.equal(second, first);
  assert.is(a.events.filter((e) => e.startsWith('claimed')).length, 1, 'recorded once');
  writeFileSync(join(a.backend.pathOf('team', 'cache'), 'kept'), 'data');
  await a.close();

  const b = await agent(dir, [decl('team', 'cache')]);
  assert.equal(b.ledger.byClaim(c.uid).map((r) => r.readOnly), [true], 'the record survived the restart');
  // reconcile with no containers at all: a claim's holding is not a container's, it stays
  const report = await b.service.reconcile([], []);
  assert.equal(report.orphansReleased, []);
  assert.ok(mounted(b.backend.pathOf('team', 'cache')));
  const again = await b.service.prepareClaim(c, refs);
  assert.equal(again, first, 'the same answer after the restart');
  assert.is(readFileSync(join(b.backend.pathOf('team', 'cache'), 'kept'), 'utf8'), 'data', 'the same share, not a new one');
  assert.equal(b.events.filter((e) => e.startsWith('claimed')), [], 'nothing recorded again');
  await b.close();
});

test('after a node reboot (the tmpfs gone, the records kept) a claim prepared again gets its share made anew', async () => {
  const dir = fresh();
  const a = await agent(dir, [decl('team', 'boot')]);
  const c = claim('team', 'rebooted');
  const refs = [{ namespace: 'team', name: 'boot', readOnly: false }];
  const first = await a.service.prepareClaim(c, refs);
  await a.close();
  const path = a.backend.pathOf('team', 'boot');
  native.umount2(path, 0); // what a reboot does to a tmpfs
  const b = await agent(dir, [decl('team', 'boot')]);
  assert.equal(b.service.presentShares(), [], 'the record does not make it present');
  assert.equal(await b.service.prepareClaim(c, refs), first, 'the same answer');
  assert.ok(mounted(path), 'mounted again, not a bare directory handed out');
  assert.is(b.ledger.byClaim(c.uid).length, 1);
  await b.service.unprepareClaim(c.uid, 'unprepared');
  assert.not.ok(mounted(path));
  await b.close();
});

test('a share held through a claim and an annotation is one share with two holders: released only after both end, in either order', async () => {
  const a = await agent(fresh(), [decl('team', 'both'), decl('team', 'other')]);
  const path = a.backend.pathOf('team', 'both');
  // claim ends first
  const c = claim('team', 'c1');
  await a.service.prepareClaim(c, [{ namespace: 'team', name: 'both', readOnly: false }]);
  const p = pod('team', { 'memshare.nri.io/pod': 'both' });
  const k = ctr(p);
  await a.service.createContainer(p, k);
  assert.is(await a.service.unprepareClaim(c.uid, 'unprepared'), 1);
  assert.ok(mounted(path), 'the container still holds it');
  assert.is(await a.service.endContainer(k.id, 'container removed'), 1);
  assert.not.ok(mounted(path), 'released at its last holder');

  // container ends first; endPod, endContainer and reconcile leave the claim's holding alone
  const c2 = claim('team', 'c2');
  await a.service.prepareClaim(c2, [{ namespace: 'team', name: 'both', readOnly: false }]);
  const p2 = pod('team', { 'memshare.nri.io/pod': 'both' });
  const k2 = ctr(p2);
  await a.service.createContainer(p2, k2);
  await a.service.endPod(p2.id, 'pod removed');
  await a.service.endContainer(k2.id, 'again');
  await a.service.reconcile([], []);
  assert.ok(mounted(path), 'the claim still holds it');
  assert.is(a.ledger.byClaim(c2.uid).length, 1);
  await a.service.unprepareClaim(c2.uid, 'unprepared');
  assert.not.ok(mounted(path), 'released at the claim\'s unprepare');
  assert.is(a.events.filter((e) => e === 'released team/both').length, 2);
  await a.close();
});

test('unprepare of an unknown claim, or twice, succeeds with nothing to do', async () => {
  const a = await agent(fresh(), [decl('team', 'cache')]);
  assert.is(await a.service.unprepareClaim('never-prepared-here', 'unprepared'), 0);
  const c = claim('team', 'once');
  await a.service.prepareClaim(c, [{ namespace: 'team', name: 'cache', readOnly: false }]);
  assert.is(await a.service.unprepareClaim(c.uid, 'unprepared'), 1);
  assert.is(await a.service.unprepareClaim(c.uid, 'unprepared'), 0);
  assert.equal(a.ledger.allClaims(), []);
  await a.close();
});

test('authorization is the annotation path\'s: the claim\'s namespace as the pod\'s; one answer outside the grants; read-only grants', async () => {
  const a = await agent(fresh(), [
    decl('owner', 'private'),
    decl('owner', 'shared', { allowedNamespaces: ['guest'] }),
    decl('owner', 'ro', { readOnlyNamespaces: ['guest'] }),
  ]);
  const g = claim('guest', 'g');
  const refused = async (ns: string, name: string, readOnly = false) =>
    a.service.prepareClaim(g, [{ namespace: ns, name, readOnly }]).then(() => undefined, (e: unknown) => e as RefusalError);
  const declared = await refused('owner', 'private');
  const missing = await refused('owner', 'nothing-here');
  assert.instance(declared, RefusalError);
  assert.instance(missing, RefusalError);
  assert.is(declared!.message.replaceAll('private', 'X'), missing!.message.replaceAll('nothing-here', 'X'), 'one answer whether declared or not');
  assert.match(declared!.message, /^ResourceClaim guest\/g: share "owner\/private": not granted to namespace "guest"/);
  assert.is(declared!.reason, 'forbidden-namespace');
  const rw = await refused('owner', 'ro');
  assert.is(rw?.reason, 'read-only-grant');
  assert.match(rw!.message, 'grants "guest" read-only access (spec.readOnlyNamespaces); bind it as "owner/ro:ro"', 'the core\'s default words');
  const told = await a.service.prepareClaim(g, [{ namespace: 'owner', name: 'ro', readOnly: false }], { readOnlyHow: 'ask the front door\'s way' }).then(() => undefined, (e: unknown) => e as RefusalError);
  assert.match(told!.message, 'read-only access (spec.readOnlyNamespaces); ask the front door\'s way');
  assert.is(await refused('owner', 'ro', true), undefined, 'read-only is granted');
  assert.is(await refused('owner', 'shared'), undefined, 'allowedNamespaces is granted');
  assert.equal(a.ledger.byClaim(g.uid).map((r) => `${r.share.name}:${r.readOnly}`).sort(), ['shared:false'],
    'each prepare holds what it asked for, the last one only');
  assert.ok(a.events.includes('refused forbidden-namespace') && a.events.includes('refused unknown-share'));
  await a.close();
});

test('a read-only claim mounts read-only; the same share read-write through another claim stays one mount', async () => {
  const a = await agent(fresh(), [decl('team', 'data')]);
  const ro = await a.service.prepareClaim(claim('team', 'reader'), [{ namespace: 'team', name: 'data', readOnly: true }]);
  const rw = await a.service.prepareClaim(claim('team', 'writer'), [{ namespace: 'team', name: 'data', readOnly: false }]);
  assert.ok(ro.mounts[0].options.includes('ro') && !ro.mounts[0].options.includes('rw'));
  assert.ok(rw.mounts[0].options.includes('rw'));
  assert.is(ro.mounts[0].source, rw.mounts[0].source);
  // two requests of one claim for the same share: one holding, read-write if either is
  const both = claim('team', 'both');
  await a.service.prepareClaim(both, [{ namespace: 'team', name: 'data', readOnly: true }, { namespace: 'team', name: 'data', readOnly: false }]);
  assert.equal(a.ledger.byClaim(both.uid).map((r) => r.readOnly), [false]);
  await a.close();
});

test('the node limit counts shares held by claims and by containers alike; a refused claim holds nothing', async () => {
  const limits = { ...DEFAULT_LIMITS, maxNodeBytes: 256 * MiB };
  const a = await agent(fresh(), [decl('team', 'one'), decl('team', 'two'), decl('team', 'three')], limits);
  await a.service.prepareClaim(claim('team', 'c1'), [{ namespace: 'team', name: 'one', readOnly: false }]);
  const p = pod('team', { 'memshare.nri.io/pod': 'two' });
  await a.service.createContainer(p, ctr(p));
  const c3 = claim('team', 'c3');
  const err = await a.service.prepareClaim(c3, [{ namespace: 'team', name: 'three', readOnly: false }]).then(() => undefined, (e: unknown) => e as RefusalError);
  assert.instance(err, RefusalError);
  assert.is(err!.reason, 'node-limit');
  assert.match(err!.message, /^ResourceClaim team\/c3: share "team\/three": needs 128 MiB more on this node/);
  assert.equal(a.ledger.byClaim(c3.uid), []);
  assert.not.ok(mounted(a.backend.pathOf('team', 'three')));
  // a share present already costs nothing more
  await a.service.prepareClaim(c3, [{ namespace: 'team', name: 'one', readOnly: false }]);
  await a.close();
});

test('a claim keeps a share whose declaration went; a new claim of it is refused; a failing second share undoes only what that prepare made', async () => {
  const a = await agent(fresh(), [decl('team', 'kept'), decl('team', 'big', { sizeBytes: 64 * MiB })]);
  const c = claim('team', 'keeper');
  const refs = [{ namespace: 'team', name: 'kept', readOnly: false }];
  const first = await a.service.prepareClaim(c, refs);
  a.source.set([decl('team', 'big', { sizeBytes: 64 * MiB })]);
  assert.equal(await a.service.prepareClaim(c, refs), first, 'prepared again: still its holding');
  const other = await a.service.prepareClaim(claim('team', 'late'), refs).then(() => undefined, (e: unknown) => e as RefusalError);
  assert.is(other?.reason, 'declaration-removed');
  // asking for one more share that cannot be had (under the size limit): the first holding stays
  const err = await a.service.prepareClaim(c, [...refs, { namespace: 'team', name: 'big', readOnly: false }]).then(() => undefined, (e: unknown) => e as RefusalError);
  assert.is(err?.reason, 'size-limit');
  assert.equal(a.ledger.byClaim(c.uid).map((r) => r.share.name), ['kept']);
  assert.ok(mounted(a.backend.pathOf('team', 'kept')));
  await a.close();
});

test('a claim prepared again without a share it held lets that share go', async () => {
  const a = await agent(fresh(), [decl('team', 'x'), decl('team', 'y')]);
  const c = claim('team', 'moved');
  await a.service.prepareClaim(c, [{ namespace: 'team', name: 'x', readOnly: false }, { namespace: 'team', name: 'y', readOnly: false }]);
  const inj = await a.service.prepareClaim(c, [{ namespace: 'team', name: 'y', readOnly: false }]);
  assert.equal(inj.mounts.map((m) => m.destination), ['/dev/shm/y']);
  assert.equal(a.ledger.byClaim(c.uid).map((r) => r.share.name), ['y']);
  assert.not.ok(mounted(a.backend.pathOf('team', 'x')), 'x released');
  await a.close();
});

test('status shows a claim as a holder, beside containers (text and --json)', async () => {
  const dir = fresh();
  const a = await agent(dir, [decl('team', 'seen')]);
  const c = claim('team', 'visible');
  await a.service.prepareClaim(c, [{ namespace: 'team', name: 'seen', readOnly: true }]);
  const p = pod('team', { 'memshare.nri.io/pod': 'seen' });
  await a.service.createContainer(p, ctr(p, 'web'));
  const config = { ...defaultConfig(), stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares') };
  const st = await collectStatus(config);
  const s = st.shares.find((x) => x.name === 'seen')!;
  assert.is(s.holders.length, 1);
  assert.equal(s.claims.map((x) => [x.claim, x.readOnly]), [[c, true]]);
  assert.not.ok(st.warnings.some((w) => w.includes('no record explains')), st.warnings.join('\n'));
  const text = renderStatus(st);
  assert.match(text, `claim team/visible (${c.uid})`);
  assert.match(text, /team\/seen\s+128 MiB\s+\S+( \S+)?\s+2\s/, text);
  await a.close();
});

test.after(() => unmountAndRemove(base));

test.run();
