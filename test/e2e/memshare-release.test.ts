// Issue "Ownership and release": the real agent beside real containerd 1.7 and 2.1 releases a
// share when its last holder ends, tolerates repeated removals, reports holders in `status`, and
// reconciles with the runtime after it was down (releases the gone, evicts the unserved).
import { spawnSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName, type RunningPod } from '../harness';
import { Agent, CLI, MiB, RECONCILED, SYNCED, waitUntil } from './agent';

const POD_KEY = 'memshare.nri.io/pod';
const sh = (script: string) => ['/bin/sh', '-c', script];

forEachContainerd('memshare release', (test, env) => {
  let agent: Agent;

  const pod = (ns: string, share: string, prefix = 'p'): Promise<RunningPod> =>
    env.cri.runPod({ name: uniqueName(prefix), namespace: ns, annotations: { [POD_KEY]: share } });
  // the image's /pause is the command: it exits at once on SIGTERM, so stops are quick
  const run = (p: RunningPod, name = 'main') => env.cri.runContainer(p, { name });
  const exec = (id: string, script: string) => env.cri.execSync(id, sh(script), 20);
  const holders = (ns: string, share: string) => agent.shareStatus(ns, share)?.holders.map((h) => h.container.id).sort() ?? [];

  test('the agent starts and synchronizes', async () => {
    agent = new Agent({ nriSocket: env.containerd.nriSocket });
    await agent.start();
    assert.match(agent.output(), SYNCED);
  });

  test('the last holder stopping unmounts the share; one of two stopping does not', async () => {
    const ns = 'rel';
    const share = uniqueName('s');
    await agent.declare(ns, share, '128Mi');
    const pa = await pod(ns, share);
    const pb = await pod(ns, share);
    const a = await run(pa);
    const b = await run(pb);
    assert.ok(agent.isMounted(ns, share));
    assert.equal(holders(ns, share), [a, b].sort());

    await env.cri.stopContainer(a, 5);
    // the agent has ended a's binding (its record) ...
    await waitUntil(() => holders(ns, share).length === 1, 15000, () => `a's binding did not end: ${JSON.stringify(agent.status())}`);
    assert.equal(holders(ns, share), [b]);
    // ... and the share stays for b, data and all
    assert.ok(agent.isMounted(ns, share), 'one of two holders stopping does not release');
    assert.is((await exec(b, `echo still > /dev/shm/${share}/f && cat /dev/shm/${share}/f`)).stdout.trim(), 'still');

    await env.cri.stopContainer(b, 5);
    await agent.waitMounted(ns, share, false);
    assert.equal(holders(ns, share), []);
    // the log line follows the unmount: wait for it (an emulated agent, test/arch64.sh, is slower to print it)
    await agent.proc!.waitFor(new RegExp(`"share":"${ns}/${share}","why":"last user ended[^"]*","msg":"share released"`), 1, 15000);

    // removals, repeated, and pod removal after its containers are gone: no agent errors
    await env.cri.removeContainer(a);
    await env.cri.removeContainer(b);
    await env.cri.removeContainer(a).catch(() => undefined); // the runtime may or may not say NotFound
    for (const p of [pa, pb]) {
      await env.cri.stopPod(p.id);
      await env.cri.removePod(p.id);
      await env.cri.stopPod(p.id).catch(() => undefined);
      await env.cri.removePod(p.id).catch(() => undefined);
    }
    assert.not.ok(agent.isMounted(ns, share));
    assert.equal(agent.errorLines(), [], 'no errors in the agent log');
    assert.not.match(agent.output(), /"level":"warn"/, 'no warnings either');
  });

  test('removing a pod with a live holder releases its share (RemovePodSandbox)', async () => {
    const ns = 'rel';
    const share = uniqueName('pod');
    await agent.declare(ns, share, '128Mi');
    const p = await pod(ns, share);
    await run(p);
    assert.ok(agent.isMounted(ns, share));
    await env.cri.stopPod(p.id);
    await env.cri.removePod(p.id);
    await agent.waitMounted(ns, share, false);
    assert.equal(holders(ns, share), []);
    await env.cri.removePod(p.id).catch(() => undefined);
    assert.equal(agent.errorLines(), []);
  });

  test('a container created but never started, then removed, releases its share', async () => {
    const ns = 'rel';
    const share = uniqueName('created');
    await agent.declare(ns, share, '128Mi');
    const p = await pod(ns, share);
    const id = await env.cri.createContainer(p.id, p.config, { name: 'main' });
    assert.is((await env.cri.containerStatus(id)).state, 'CONTAINER_CREATED');
    assert.ok(agent.isMounted(ns, share), 'the share is made present at creation');
    assert.equal(holders(ns, share), [id]);
    await env.cri.removeContainer(id);
    await agent.waitMounted(ns, share, false);
    assert.equal(holders(ns, share), []);
    assert.equal(agent.errorLines(), []);
  });

  test('status --json lists the share, its size, used bytes and holders; the table names it', async () => {
    const ns = 'stat';
    const share = uniqueName('st');
    await agent.declare(ns, share, '128Mi');
    const p = await pod(ns, share, 'statpod');
    const id = await run(p, 'worker');
    assert.is((await exec(id, `dd if=/dev/zero of=/dev/shm/${share}/data bs=1M count=3 2>/dev/null && echo ok`)).stdout.trim(), 'ok');

    const st = agent.shareStatus(ns, share);
    assert.ok(st, `share listed: ${JSON.stringify(agent.status())}`);
    assert.is(st!.present, true);
    assert.is(st!.location, agent.hostPath(ns, share));
    assert.is(st!.sizeBytes, 128 * MiB);
    assert.ok(st!.usedBytes !== null && st!.usedBytes >= 3 * MiB && st!.usedBytes < 4 * MiB, `usedBytes ${st!.usedBytes}`);
    assert.is(st!.holders.length, 1);
    const h = st!.holders[0];
    assert.equal(
      { ns: h.pod.namespace, pod: h.pod.name, uid: h.pod.uid, sandbox: h.pod.sandboxId, ctr: h.container.name, id: h.container.id, ro: h.readOnly },
      { ns, pod: p.config.metadata.name, uid: p.config.metadata.uid, sandbox: p.id, ctr: 'worker', id, ro: false },
    );

    const table = agent.statusTable();
    assert.match(table, `${ns}/${share}`);
    assert.match(table, '128 MiB');
    assert.match(table, `${ns}/${p.config.metadata.name}`);
    assert.match(table, `worker (${id.slice(0, 12)})`);

    // and check-config agrees with the file the agent runs on
    const cc = spawnSync(process.execPath, [CLI, 'check-config', '--config', agent.configPath], { encoding: 'utf8' });
    assert.is(cc.status, 0, cc.stderr);

    await env.cri.stopContainer(id, 5);
    await agent.waitMounted(ns, share, false);
    assert.is(agent.shareStatus(ns, share), undefined, 'a released share is no longer listed');
  });

  test('after a SIGKILL, a holder removed while the agent was down is released at restart', async () => {
    const ns = 'recon';
    const share = uniqueName('k');
    const kept = uniqueName('kept');
    await agent.declare(ns, share, '128Mi');
    await agent.declare(ns, kept, '128Mi');
    const victim = await run(await pod(ns, share));
    const survivor = await run(await pod(ns, kept));
    assert.equal(holders(ns, share), [victim]);

    await agent.stop('SIGKILL');
    await env.cri.stopContainer(victim, 5);
    await env.cri.removeContainer(victim);
    assert.ok(agent.isMounted(ns, share), 'nobody released it while the agent was down');
    assert.equal(holders(ns, share), [victim], 'the record still names the gone container');

    const before = agent.output().length;
    await agent.start();
    await agent.proc!.waitFor(RECONCILED, 1, 15000);
    await agent.waitMounted(ns, share, false);
    assert.equal(holders(ns, share), []);
    assert.is(agent.shareStatus(ns, share), undefined);
    // the other share, still held by a live container, is untouched
    assert.ok(agent.isMounted(ns, kept));
    assert.equal(holders(ns, kept), [survivor]);
    assert.is((await exec(survivor, `echo alive > /dev/shm/${kept}/f && cat /dev/shm/${kept}/f`)).stdout.trim(), 'alive');
    const rec = agent.logRecords().filter((r) => r.msg === 'reconciled with the runtime').pop();
    assert.ok(rec, agent.output().slice(before));
    assert.ok((rec!.ended as number) >= 1, `reconcile ended the gone binding: ${JSON.stringify(rec)}`);
    assert.equal(agent.errorLines(), []);
  });

  test('a container created while the agent was down (without its share) is evicted at restart', async () => {
    const ns = 'recon';
    const share = uniqueName('e');
    await agent.declare(ns, share, '128Mi');
    await agent.stop('SIGKILL');

    // NRI fails open: with no plugin the container starts, without the memory it asked for
    const p = await pod(ns, share, 'unserved');
    const id = await run(p);
    const m = await exec(id, `grep -q ' /dev/shm/${share} ' /proc/self/mountinfo && echo mounted || echo missing`);
    assert.is(m.stdout.trim(), 'missing');
    assert.is((await env.cri.containerStatus(id)).state, 'CONTAINER_RUNNING');

    await agent.start();
    await agent.proc!.waitFor(RECONCILED, 1, 15000);
    const rec = agent.proc!.output().split('\n').find((l) => l.includes('"msg":"reconciled with the runtime"'));
    assert.ok(rec && rec.includes(id), `the agent decided to evict ${id}: ${rec}`);
    // The agent asks for the eviction with an unsolicited UpdateContainers (evict list) after
    // Synchronize. KNOWN BUG (both versions): containerd's NRI adaptation passes only
    // req.Update of an unsolicited UpdateContainersRequest on to the runtime and drops req.Evict
    // without an error (containerd honours evictions only in CreateContainer/UpdateContainer
    // event responses), so the container keeps running without its memory. See the report.
    let state = '';
    try {
      await waitUntil(async () => (state = (await env.cri.containerStatus(id)).state) === 'CONTAINER_EXITED', 20000, () => `state ${state}`);
    } catch {
      const nriLog = env.containerd.logs().split('\n').filter((l) => /msg="[^"]*(plugin|evict|update)/i.test(l)).slice(-8).join('\n');
      assert.unreachable(
        `containerd ${env.version} did not evict ${id} within 20 s (CRI state ${state}). The agent sent UpdateContainers with ` +
          `evict=[${id.slice(0, 12)}] (its log: ${rec}); containerd's NRI adaptation drops the evict list of an unsolicited ` +
          `UpdateContainers (only Update is passed to the runtime), so no eviction happens.\ncontainerd NRI log:\n${nriLog}`,
      );
    }
    assert.equal(agent.errorLines(), []);
  });

  test('cleanup: pods removed while the agent runs leave no share mounted', async () => {
    await env.cri.cleanupAll();
    await waitUntil(() => agent.status().shares.length === 0, 15000, () => `left: ${JSON.stringify(agent.status())}`);
    assert.equal(agent.errorLines(), []);
    await agent.cleanup();
  });
});
