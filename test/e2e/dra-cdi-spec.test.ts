// The DRA driver's CDI specs against real containerd 1.7 and 2.1 (CDI enabled on a spec directory
// of the test's own): the driver prepares claims over the real core (real ledger, real tmpfs),
// writes their specs, and containers created with the returned CDI ids as the kubelet passes them
// (ContainerConfig.CDI_devices) get the share: two pods of one claim share bytes, a read-only
// claim's container cannot write, the claim's variable is set. The ResourceClaims come from a
// double standing in for the API server (the driver's reading of a real one is tested elsewhere);
// the gRPC path and the agent are test/e2e/dra.test.ts's.
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../native';
import { forEachContainerd, uniqueName } from '../harness';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { LocalBackend } from '../../plugin/backends';
import { MemshareDraDriver } from '../../plugin/dra/driver';
import { claimSpecFile } from '../../plugin/dra/cdi-spec';
import { deviceNameOf } from '../../plugin/dra/devices';
import type { ClaimReader, ClaimRef, ResourceClaimView } from '../../plugin/dra/types';
import { DEFAULT_LIMITS } from '../../plugin/model';

const DRIVER = 'memshare.nri.io';
const cdiDir = mkdtempSync('/tmp/nrims-dra-cdi-');
const work = mkdtempSync('/tmp/nrims-dra-cdi-work-');
process.on('exit', () => {
  for (const m of native.readMountInfo().reverse()) {
    if (m.mountPoint.startsWith(`${work}/`)) {
      try { native.umount2(m.mountPoint, native.MNT_DETACH); } catch { /* gone */ }
    }
  }
  rmSync(work, { recursive: true, force: true });
  rmSync(cdiDir, { recursive: true, force: true });
});

/** Stands in for the API server: allocated claims as the claim reader returns them. */
class Claims implements ClaimReader {
  readonly views = new Map<string, ResourceClaimView>();
  async read(r: ClaimRef): Promise<ResourceClaimView> {
    const v = this.views.get(r.uid);
    if (!v) throw new Error(`ResourceClaim ${r.namespace}/${r.name}: not found`);
    return v;
  }
}

let seq = 0;
const uid = () => `${(Date.now() % 0xffffffff).toString(16).padStart(8, '0')}-0000-4000-8000-${String(++seq).padStart(12, '0')}`;

forEachContainerd('DRA CDI specs', (test, env) => {
  test('containers given the prepared CDI ids get the claim\'s share: shared bytes, read-only enforced, the spec gone at unprepare', async () => {
    const dir = mkdtempSync(join(work, `${env.version}-`));
    const { ledger } = await Ledger.open(join(dir, 'state'));
    const declarations = new MergedDeclarationStore([new MemoryDeclarationSource('test', [
      { namespace: 'team', name: 'cache', sizeBytes: 128 << 20, allowedNamespaces: [], origin: 'test' },
    ])]);
    const backend = new LocalBackend({ sharesDir: join(dir, 'shares'), stateDir: join(dir, 'state') });
    const service = new MemshareService({ backend, ledger, declarations, limits: DEFAULT_LIMITS });
    await service.init();
    const claims = new Claims();
    const driver = new MemshareDraDriver({ driverName: DRIVER, reader: claims, service, declarations, cdiDir });
    const device = deviceNameOf('team', 'cache');
    const shared: ClaimRef = { namespace: 'team', name: 'shared', uid: uid() };
    const reader: ClaimRef = { namespace: 'team', name: 'reader', uid: uid() };
    claims.views.set(shared.uid, { ...shared, results: [{ request: 'shm', driver: DRIVER, pool: 'node', device }], config: [] });
    claims.views.set(reader.uid, {
      ...reader,
      results: [{ request: 'shm', driver: DRIVER, pool: 'node', device }],
      config: [{ requests: [], driver: DRIVER, parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } }],
    });
    const prepared = await driver.prepare([shared, reader]);
    const idsOf = (c: ClaimRef): string[] => {
      const r = prepared.get(c.uid)!;
      if ('error' in r) throw new Error(r.error);
      return r.devices.flatMap((d) => d.cdiDeviceIds);
    };

    const cri = env.cri;
    const podA = await cri.runPod({ name: uniqueName('dra-a'), namespace: 'team' });
    const podB = await cri.runPod({ name: uniqueName('dra-b'), namespace: 'team' });
    const a = await cri.runContainer(podA, { name: 'writer', command: ['/bin/sleep', '3600'], cdiDevices: idsOf(shared) });
    const b = await cri.runContainer(podB, { name: 'peer', command: ['/bin/sleep', '3600'], cdiDevices: idsOf(shared) });
    const r = await cri.runContainer(podB, { name: 'reader', command: ['/bin/sleep', '3600'], cdiDevices: idsOf(reader) });
    const sh = (id: string, script: string) => cri.execSync(id, ['sh', '-c', script]);

    const w = await sh(a, 'echo hello-from-a > /dev/shm/cache/x && cat /proc/self/mountinfo | grep " /dev/shm/cache "');
    assert.is(w.exitCode, 0, w.stderr);
    assert.match(w.stdout, /tmpfs/, 'the share is the tmpfs, bound in');
    assert.is((await sh(b, 'cat /dev/shm/cache/x')).stdout, 'hello-from-a\n', 'the other pod of the claim sees the bytes');
    assert.is((await sh(r, 'cat /dev/shm/cache/x')).stdout, 'hello-from-a\n', 'the read-only claim reads them');
    const ro = await sh(r, 'echo no > /dev/shm/cache/y');
    assert.is.not(ro.exitCode, 0);
    assert.match(ro.stderr, /Read-only file system/);
    assert.is((await sh(a, 'echo $MEMSHARE_DRA_CLAIM')).stdout, 'team/shared\n');
    assert.is(readFileSync(join(backend.pathOf('team', 'cache'), 'x'), 'utf8'), 'hello-from-a\n', 'the bytes are in the host\'s share');

    // the pods go, then the kubelet unprepares: the share goes with its last claim
    for (const p of [podA, podB]) {
      await cri.stopPod(p.id);
      await cri.removePod(p.id);
    }
    assert.equal(await driver.unprepare([shared, reader]), new Map([[shared.uid, undefined], [reader.uid, undefined]]));
    assert.not.ok(existsSync(join(cdiDir, claimSpecFile(shared.uid))));
    assert.not.ok(native.readMountInfo().some((m) => m.mountPoint === backend.pathOf('team', 'cache')), 'released');
    service.close();
    await ledger.close();
  });
}, { cdiSpecDirs: [cdiDir] });
