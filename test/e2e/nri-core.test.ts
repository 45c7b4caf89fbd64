// The NRI plugin core against a real containerd (1.7.24: NRI 0.6.1; 2.1.9: NRI 0.8.0), with the
// project's stub in a minimal fixture plugin (test/fixtures/echo-plugin.ts).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName } from '../harness';
import { startPlugin, type PluginProcess } from './plugin-process';

const fixture = join(__dirname, '..', 'fixtures', 'echo-plugin.js');
const SYNCED = /state synchronized/;

forEachContainerd('nri core', (test, env) => {
  let plugin: PluginProcess | undefined;

  test('the plugin registers and synchronizes', async () => {
    plugin = startPlugin([fixture, env.containerd.nriSocket, 'echo', '10']);
    await plugin.waitFor(SYNCED);
    assert.match(plugin.output(), /state registered/);
  });

  test('an annotated pod gets the bind mount, visible in the container', async () => {
    const cri = env.cri;
    const pod = await cri.runPod({ name: uniqueName('mnt'), annotations: { 'test.memshare/mount': 'hello' } });
    const id = await cri.runContainer(pod, { name: 'c', command: ['/bin/sleep', '300'] });
    const r = await cri.execSync(id, ['/bin/cat', '/proc/self/mountinfo']);
    assert.is(r.exitCode, 0);
    assert.match(r.stdout, / \/dev\/shm\/hello /);
    // and a pod without the annotation gets no such mount
    const plain = await cri.runPod({ name: uniqueName('plain') });
    const id2 = await cri.runContainer(plain, { name: 'c', command: ['/bin/sleep', '300'] });
    const r2 = await cri.execSync(id2, ['/bin/cat', '/proc/self/mountinfo']);
    assert.not.match(r2.stdout, /\/dev\/shm\/hello/);
  });

  test("a plugin error fails the container's creation with the plugin's message", async () => {
    const cri = env.cri;
    const message = `refused-by-plugin-${uniqueName('x')}`;
    const pod = await cri.runPod({ name: uniqueName('fail'), annotations: { 'test.memshare/fail': message } });
    let err: unknown;
    try {
      await cri.createContainer(pod.id, pod.config, { name: 'c', command: ['/bin/sleep', '300'] });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Error, 'CreateContainer must fail');
    assert.match((err as Error).message, message);
    // the plugin is still connected: the next creation is served
    const ok = await cri.runPod({ name: uniqueName('after'), annotations: { 'test.memshare/mount': 'after' } });
    const id = await cri.runContainer(ok, { name: 'c', command: ['/bin/sleep', '300'] });
    assert.match((await cri.execSync(id, ['/bin/cat', '/proc/self/mountinfo'])).stdout, /\/dev\/shm\/after /);
  });

  test('containerd restarts: the plugin re-registers by itself and keeps working', async () => {
    const before = plugin!.count(SYNCED);
    await env.containerd.restart();
    await plugin!.waitFor(SYNCED, before + 1, 30000);
    const cri = env.cri;
    const pod = await cri.runPod({ name: uniqueName('restart'), annotations: { 'test.memshare/mount': 'again' } });
    const id = await cri.runContainer(pod, { name: 'c', command: ['/bin/sleep', '300'] });
    assert.match((await cri.execSync(id, ['/bin/cat', '/proc/self/mountinfo'])).stdout, /\/dev\/shm\/again /);
  });

  test('pre-launched: containerd starts the plugin from its plugin dir with the socket on fd 3', async () => {
    const pluginDir = join(env.containerd.dir, 'nri', 'plugins');
    const exe = join(pluginDir, '20-pre');
    // the runtime passes only NRI_PLUGIN_* in the environment: no PATH, so absolute paths
    writeFileSync(exe, `#!/bin/sh\nexec ${process.execPath} ${fixture} unused-socket\n`, { mode: 0o755 });
    const before = plugin!.count(SYNCED);
    await env.containerd.restart();
    await plugin!.waitFor(SYNCED, before + 1, 30000);
    const cri = env.cri;
    const pod = await cri.runPod({ name: uniqueName('pre'), annotations: { 'test.memshare/mount.pre': 'prelaunched' } });
    const id = await cri.runContainer(pod, { name: 'c', command: ['/bin/sleep', '300'] });
    assert.match((await cri.execSync(id, ['/bin/cat', '/proc/self/mountinfo'])).stdout, / \/dev\/shm\/prelaunched /);
    rmSync(exe);
    const again = plugin!.count(SYNCED);
    await env.containerd.restart();
    await plugin!.waitFor(SYNCED, again + 1, 30000);
  });

  if (env.version === '2.1') {
    test('a Synchronize larger than 4 MiB (paged by the runtime) completes', async () => {
      const cri = env.cri;
      const pod = await cri.runPod({ name: uniqueName('big') });
      const big = 'x'.repeat(200 * 1024);
      for (let i = 0; i < 26; i++) {
        await cri.createContainer(pod.id, pod.config, { name: `c${i}`, command: ['/bin/sleep', '300'], annotations: { 'test.memshare/big': big } });
      }
      // a fresh plugin connection gets all of it (26 x 200 KiB > 4 MiB) in one paged Synchronize
      await plugin!.kill();
      plugin = startPlugin([fixture, env.containerd.nriSocket, 'echo', '10']);
      await plugin.waitFor(SYNCED, 1, 30000);
      const m = /state synchronized pods=(\d+) containers=(\d+) chunks=(\d+)/.exec(plugin.output());
      assert.ok(m, 'the plugin reports what it synchronized');
      assert.ok(Number(m![2]) >= 26, `all containers arrive (got ${m![2]})`);
      assert.ok(Number(m![3]) >= 2, `the runtime paged the sync (chunks=${m![3]})`);
      const p2 = await cri.runPod({ name: uniqueName('post-big'), annotations: { 'test.memshare/mount': 'big' } });
      const id = await cri.runContainer(p2, { name: 'c', command: ['/bin/sleep', '300'] });
      assert.match((await cri.execSync(id, ['/bin/cat', '/proc/self/mountinfo'])).stdout, /\/dev\/shm\/big /);
    });
  }

  test('stop the plugin', async () => {
    await plugin?.kill();
    assert.ok(plugin?.child.exitCode !== null || plugin?.child.signalCode !== null);
  });
});
