// Issue 11 point 10: a late answer never leaves a container without its share. containerd gives a
// plugin 2 s per event; on a timeout it drops the plugin's connection and creates the container
// without the adjustment (NRI fails open), while the agent goes on to record the binding. The
// binding is made slow on purpose by stopping the agent (SIGSTOP) while CreateContainer is in
// flight: from containerd's side exactly a plugin whose answer comes after the deadline. The agent
// must notice, from the container's own mounts as the runtime reports them, and evict it.
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName } from '../harness';
import { Agent, SYNCED, waitUntil } from './agent';

const POD_KEY = 'memshare.nri.io/pod';

forEachContainerd('late answer', (test, env) => {
  let agent: Agent;

  test('the agent starts', async () => {
    agent = new Agent({ nriSocket: env.containerd.nriSocket });
    await agent.start();
  });

  test('a CreateContainer answered after containerd\'s deadline: the container is created without its share, and evicted', async () => {
    const ns = 'late';
    const share = uniqueName('s');
    await agent.declare(ns, share, '128Mi');
    const p = await env.cri.runPod({ name: uniqueName('late'), namespace: ns, annotations: { [POD_KEY]: share } });
    const pid = agent.proc!.child.pid!;
    const syncsBefore = agent.output().split('\n').filter((l) => SYNCED.test(l)).length;
    process.kill(pid, 'SIGSTOP');
    let id: string;
    const t0 = Date.now();
    try {
      // containerd waits out its request timeout, closes the plugin and goes on without it
      id = await env.cri.createContainer(p.id, p.config, { name: 'main' });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const waited = Date.now() - t0;
    assert.ok(waited >= 1900, `CreateContainer waited ${waited} ms: containerd did wait for the stopped agent`);
    // the agent answered into a closed connection and recorded the binding; it reconnects, and its
    // reconcile finds the container without the share's mount. A container only created already
    // has its init (runc waits in it for the start), so the eviction may come before the start:
    // the start then fails, which the kubelet handles as it does any failed start (it recreates).
    await agent.proc!.waitFor(SYNCED, syncsBefore + 1, 30000);
    let started = true;
    try {
      await env.cri.startContainer(id);
    } catch (err) {
      started = false;
      assert.match((err as Error).message, /cannot start a container that has stopped/);
    }
    let state = '';
    await waitUntil(async () => (state = (await env.cri.containerStatus(id)).state) === 'CONTAINER_EXITED', 30000, () =>
      `container ${id} is ${state}: it runs without /dev/shm/${share}, and the agent did not evict it.\nagent log tail:\n${agent.output().slice(-3000)}`);
    if (started) assert.is((await env.cri.containerStatus(id)).exit_code, 137, 'killed (SIGKILL) by the agent');
    const why = agent.output().split('\n').find((l) => l.includes(id) && /evict/i.test(l) && l.includes(share));
    assert.ok(why, `the agent logged why it evicted ${id}:\n${agent.output().slice(-3000)}`);
    // the kubelet's recreation gets the share: a new container in the same pod binds normally
    const again = await env.cri.runContainer(p, { name: 'main-2' });
    const m = await env.cri.execSync(again, ['/bin/sh', '-c', `grep -c ' /dev/shm/${share} ' /proc/self/mountinfo`], 20);
    assert.is(m.stdout.trim(), '1', 'the recreated container has its share');
  });

  test('cleanup', async () => {
    await env.cri.cleanupAll();
    await waitUntil(() => agent.status().shares.length === 0, 15000, () => `left: ${JSON.stringify(agent.status())}`);
    await agent.cleanup();
  });
});
