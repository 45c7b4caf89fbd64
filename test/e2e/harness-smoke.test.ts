// The harness itself against real containerd 1.7 and 2.1: NRI on, a host-network pod and a
// container that can exec, CRI errors surface with their text, CDI devices reach the container
// (the CRI field as today's kubelet passes them, the older annotation form, and both together), nothing left behind.
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriError, forEachContainerd, mountsUnder, shimPids, uniqueName } from '../harness';

// CDI specs are read from a directory of the test's own, named in containerd's config at start
const cdiDir = mkdtempSync('/tmp/nrims-smoke-cdi-');
process.on('exit', () => rmSync(cdiDir, { recursive: true, force: true }));

forEachContainerd('harness smoke', (test, env) => {
  test('containerd runs the expected version with NRI enabled', async () => {
    const c = env.containerd;
    process.stdout.write(`  [smoke] containerd ${c.version} from ${c.deb}\n`);
    // Debian may move on (fetch-containerd.sh says so loudly); the major version must hold.
    assert.is(c.version.split('.')[0], env.version.split('.')[0], `containerd ${c.version} for ${env.version}`);
    if (!c.version.startsWith(`${env.version}.`)) process.stdout.write(`  !!! containerd ${c.version}, not ${env.version}.x\n`);
    await c.waitForLog(/Registered namespace \\?"k8s.io\\?" with NRI/, 1000);
    assert.ok(existsSync(c.nriSocket), `NRI socket ${c.nriSocket} missing`);
  });

  test('CRI answers and the test image is present', async () => {
    const v = await env.cri.version();
    assert.is(v.runtime_name, 'containerd');
    assert.ok((await env.cri.listImages()).includes('localhost/nri-memshare-test:1'));
  });

  test('host-network pod + container: exec sees /dev/shm; then all of it is removed', async () => {
    const cri = env.cri;
    const pod = await cri.runPod({ name: uniqueName('smoke'), namespace: 'smoke' });
    const id = await cri.runContainer(pod, { name: 'main', command: ['/bin/sleep', '3600'] });
    assert.is((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');

    const r = await cri.execSync(id, ['cat', '/proc/self/mountinfo']);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, / \/dev\/shm /);
    const fail = await cri.execSync(id, ['sh', '-c', 'echo oops >&2; exit 3']);
    assert.equal([fail.exitCode, fail.stderr], [3, 'oops\n']);

    assert.equal((await cri.listContainers({ podId: pod.id })).map((c) => c.id), [id]);
    await cri.stopContainer(id);
    assert.is((await cri.containerStatus(id)).state, 'CONTAINER_EXITED');
    await cri.removeContainer(id);
    await cri.stopPod(pod.id);
    await cri.removePod(pod.id);
    assert.equal(await cri.listPods(), []);
    assert.equal(await cri.listContainers(), []);
    assert.equal(shimPids(env.containerd.criAddress), [], 'shims left after the pod was removed');
  });

  test('CDI: devices in ContainerConfig.CDI_devices are applied, so are the annotation form\'s, and both together', async () => {
    const cri = env.cri;
    // written after containerd started, as a DRA driver writes one at Prepare
    const kind = `smoke.nri-memshare.io/dev${env.version.replace('.', '')}`;
    writeFileSync(join(cdiDir, `smoke-${env.version}.json`), JSON.stringify({
      cdiVersion: '0.5.0',
      kind,
      devices: ['one', 'two'].map((name) => ({ name, containerEdits: { env: [`SMOKE_CDI_${name.toUpperCase()}=${name}`] } })),
    }));
    const envOf = async (id: string) => (await cri.execSync(id, ['env'])).stdout.split('\n').filter((l) => l.startsWith('SMOKE_CDI_')).sort();
    const pod = await cri.runPod({ name: uniqueName('smoke-cdi'), namespace: 'smoke' });
    const field = await cri.runContainer(pod, { name: 'field', command: ['/bin/sleep', '3600'], cdiDevices: [`${kind}=one`] });
    assert.equal(await envOf(field), ['SMOKE_CDI_ONE=one'], 'the CRI field');
    const annotation = await cri.runContainer(pod, { name: 'annotation', command: ['/bin/sleep', '3600'], cdiAnnotation: { key: 'smoke_x', devices: [`${kind}=two`] } });
    assert.equal(await envOf(annotation), ['SMOKE_CDI_TWO=two'], 'the annotation form, without the field');
    const both = await cri.runContainer(pod, { name: 'both', command: ['/bin/sleep', '3600'], cdiDevices: [`${kind}=one`], cdiAnnotation: { key: 'smoke_x', devices: [`${kind}=two`] } });
    assert.equal(await envOf(both), ['SMOKE_CDI_ONE=one', 'SMOKE_CDI_TWO=two'], 'both forms together: containerd applies the devices of both');
    const unknown = await cri.createContainer(pod.id, pod.config, { name: 'unknown', cdiDevices: [`${kind}=three`] }).then(() => 'created', (e: unknown) => String(e));
    assert.match(unknown, /CreateContainer.*three/, 'an unknown CDI device fails CreateContainer');
    await cri.stopPod(pod.id);
    await cri.removePod(pod.id);
  });

  test('CRI errors carry the gRPC message', async () => {
    try {
      await env.cri.containerStatus('no-such-container');
      assert.unreachable('ContainerStatus of an unknown id succeeded');
    } catch (e) {
      assert.instance(e, CriError);
      assert.match((e as Error).message, /ContainerStatus.*no-such-container/);
    }
  });

  test('restart keeps running containers; stop leaves no process and no mount', async () => {
    const c = env.containerd;
    const cri = env.cri;
    const pod = await cri.runPod({ name: uniqueName('smoke-restart'), namespace: 'smoke' });
    const id = await cri.runContainer(pod, { name: 'main' }); // the image's own /pause
    const before = c.pid;
    await c.restart();
    assert.is.not(c.pid, before);
    assert.is((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');
    assert.is((await cri.execSync(id, ['echo', 'still here'])).stdout, 'still here\n');

    // stop() itself must clean up a pod that is still running.
    assert.ok(shimPids(c.criAddress).length > 0, 'expected a shim for the running pod');
    assert.ok(mountsUnder(c.dir).length > 0, 'expected mounts of the running pod');
    await c.stop();
    assert.is(c.pid, undefined);
    assert.equal(shimPids(c.criAddress), []);
    assert.equal(mountsUnder(c.dir), []);
    assert.not.ok(existsSync(c.dir), `${c.dir} still exists`);
  });
}, { cdiSpecDirs: [cdiDir] });
