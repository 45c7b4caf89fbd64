// Issue "Shares on a node": the real agent beside real containerd 1.7 and 2.1 binds declared
// tmpfs shares into containers from pod annotations, and refuses what it cannot honour.
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName, type RunningPod } from '../harness';
import { Agent, MiB, rejection, retry } from './agent';
import { waitFor } from '../support/util';

const POD_KEY = 'memshare.nri.io/pod';
const ctrKey = (name: string) => `memshare.nri.io/container.${name}`;
const sh = (script: string) => ['/bin/sh', '-c', script];

forEachContainerd('memshare shares', (test, env) => {
  let agent: Agent;

  const pod = (ns: string, annotations: Record<string, string>, prefix = 'p'): Promise<RunningPod> =>
    env.cri.runPod({ name: uniqueName(prefix), namespace: ns, annotations });
  // the image's /pause is the command: it exits at once on SIGTERM, so stops are quick
  const run = (p: RunningPod, name = 'main') => env.cri.runContainer(p, { name });
  const exec = (id: string, script: string) => env.cri.execSync(id, sh(script), 20);

  /** CreateContainer must fail; returns the CRI error, after checking no container was left. */
  const refused = async (p: RunningPod, name = 'main'): Promise<string> => {
    const err = await rejection(env.cri.createContainer(p.id, p.config, { name }), `CreateContainer in ${p.config.metadata.namespace}/${p.config.metadata.name}`);
    assert.equal(await env.cri.listContainers({ podId: p.id }), [], 'a refused container is never created');
    return err.message;
  };

  test('the agent starts and synchronizes', async () => {
    agent = new Agent({ nriSocket: env.containerd.nriSocket, limits: { maxShareBytes: '512Mi' } });
    await agent.start();
    assert.match(agent.output(), /"msg":"nri: synchronized"/);
  });

  test('two pods of a namespace bound to one share see each other\'s files; :ro reads but cannot write', async () => {
    const ns = 'team-a';
    const share = uniqueName('s');
    await agent.declare(ns, share, '128Mi'); // declared while the agent runs
    const a = await run(await pod(ns, { [POD_KEY]: share }, 'writer'));
    const b = await run(await pod(ns, { [POD_KEY]: share }, 'reader'));
    assert.ok(agent.isMounted(ns, share), `share mounted on the host at ${agent.hostPath(ns, share)}`);

    const token = uniqueName('hello');
    const w = await exec(a, `echo ${token} > /dev/shm/${share}/msg`);
    assert.is(w.exitCode, 0, `write: ${w.stderr}`);
    const r = await exec(b, `cat /dev/shm/${share}/msg`);
    assert.is(r.exitCode, 0, `read: ${r.stderr}`);
    assert.is(r.stdout.trim(), token);
    // and the other way round
    assert.is((await exec(b, `echo back > /dev/shm/${share}/reply`)).exitCode, 0);
    assert.is((await exec(a, `cat /dev/shm/${share}/reply`)).stdout.trim(), 'back');

    // read-only binding: reads, cannot write
    const ro = await run(await pod(ns, { [POD_KEY]: `${share}:ro` }, 'ro'));
    const rr = await exec(ro, `cat /dev/shm/${share}/msg`);
    assert.is(rr.exitCode, 0, `ro read: ${rr.stderr}`);
    assert.is(rr.stdout.trim(), token);
    const rw = await exec(ro, `echo nope > /dev/shm/${share}/ro-write`);
    assert.is.not(rw.exitCode, 0, 'a :ro container cannot write');
    assert.match(rw.stderr, 'Read-only file system');
    assert.is((await exec(a, `test -e /dev/shm/${share}/ro-write; echo $?`)).stdout.trim(), '1', 'nothing was written');
  });

  test('the share has its declared size in the container, and writing past it gives ENOSPC', async () => {
    const ns = 'team-a';
    const share = uniqueName('size');
    await agent.declare(ns, share, '128Mi');
    const id = await run(await pod(ns, { [POD_KEY]: share }));
    // -P: one line per filesystem, also with a source name longer than the column
    const df = await exec(id, `df -Pk /dev/shm/${share} | tail -n 1`);
    assert.is(df.exitCode, 0, df.stderr);
    const fields = df.stdout.trim().split(/\s+/);
    assert.match(fields[0], /^nri-memshare:[0-9a-f]{16}$/, `the agent's tmpfs, by its mount source: ${df.stdout}`);
    assert.is(Number(fields[1]) * 1024, 128 * MiB, `1K-blocks of ${df.stdout}`);
    assert.is(fields[5], `/dev/shm/${share}`);

    const dd = await exec(id, `dd if=/dev/zero of=/dev/shm/${share}/big bs=1M count=130`);
    assert.is.not(dd.exitCode, 0, 'dd past the size fails');
    assert.match(dd.stderr, 'No space left on device');
    const used = await exec(id, `wc -c < /dev/shm/${share}/big`);
    assert.ok(Number(used.stdout.trim()) <= 128 * MiB, `the file stops at the size (${used.stdout.trim()} bytes)`);
    // the container is still running: a full share is ENOSPC, not an eviction
    assert.is((await env.cri.containerStatus(id)).state, 'CONTAINER_RUNNING');
    assert.is((await exec(id, `rm /dev/shm/${share}/big && echo ok`)).stdout.trim(), 'ok');
  });

  test('another namespace is refused until allowedNamespaces lists it (picked up while running)', async () => {
    const owner = 'owner';
    const guest = 'guest';
    const share = uniqueName('x');
    await agent.declare(owner, share, '128Mi');
    const ownerCtr = await run(await pod(owner, { [POD_KEY]: share }));
    assert.is((await exec(ownerCtr, `echo from-owner > /dev/shm/${share}/f`)).exitCode, 0);

    const p = await pod(guest, { [POD_KEY]: `${owner}/${share}` });
    const msg = await refused(p);
    assert.match(msg, POD_KEY);
    assert.match(msg, `${owner}/${share}`);
    assert.match(msg, 'allowedNamespaces');
    assert.match(msg, `"${guest}"`);
    // a share the owner never declared reads the same: the guest learns no names of other namespaces
    const ghost = await refused(await pod(guest, { [POD_KEY]: `${owner}/${share}-none` }));
    assert.is(ghost.replaceAll(`${share}-none`, share), msg);
    // the operator's log keeps the difference (logged after the reply)
    await waitFor(() => agent.output().includes(`does not list \\"${guest}\\" in spec.allowedNamespaces`) && agent.output().includes(`not declared (no ShareMemory ${owner}/${share}-none on this node)`), 'the refusals in the log');

    // the owner lets the guest namespace in: no agent restart, the next creation is accepted
    agent.writeDeclaration(owner, share, '128Mi', [guest]);
    const id = await retry(() => env.cri.createContainer(p.id, p.config, { name: 'main' }), 20000);
    await env.cri.startContainer(id);
    const r = await exec(id, `cat /dev/shm/${share}/f`);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout.trim(), 'from-owner', 'the guest sees the owner\'s share, not a copy');
    // a third namespace is still refused
    const msg3 = await refused(await pod('stranger', { [POD_KEY]: `${owner}/${share}` }));
    assert.match(msg3, 'allowedNamespaces');
  });

  test('the container key overrides the pod key, and "-" opts a container out', async () => {
    const ns = 'team-b';
    const s1 = uniqueName('pod');
    const s2 = uniqueName('own');
    await agent.declare(ns, s1, '128Mi');
    await agent.declare(ns, s2, '128Mi');
    const p = await pod(ns, { [POD_KEY]: s1, [ctrKey('side')]: '-', [ctrKey('other')]: `${s2}:ro` });
    const main = await run(p, 'main');
    const side = await run(p, 'side');
    const other = await run(p, 'other');
    // bound = a mount at /dev/shm/<share> (containers of a pod share one /dev/shm tmpfs, so the
    // empty mount point directory runc makes for one container is visible in the others)
    const has = async (id: string, s: string) =>
      (await exec(id, `grep -q ' /dev/shm/${s} ' /proc/self/mountinfo && echo yes || echo no`)).stdout.trim();
    assert.is(await has(main, s1), 'yes', 'main gets the pod-level share');
    assert.is(await has(main, s2), 'no');
    assert.is(await has(side, s1), 'no', '"-": no share for side');
    assert.is(await has(side, s2), 'no');
    assert.is(await has(other, s1), 'no', 'the container key replaces the pod key');
    assert.is(await has(other, s2), 'yes');
    // and what main writes to the share is not reachable from side or other
    assert.is((await exec(main, `echo secret > /dev/shm/${s1}/f && echo ok`)).stdout.trim(), 'ok');
    assert.is((await exec(side, `cat /dev/shm/${s1}/f 2>/dev/null || echo absent`)).stdout.trim(), 'absent');
    assert.is((await exec(other, `cat /dev/shm/${s1}/f 2>/dev/null || echo absent`)).stdout.trim(), 'absent');
    const w = await exec(other, `echo x > /dev/shm/${s2}/f`);
    assert.match(w.stderr, 'Read-only file system', 'options of the container key apply');
    const holders = agent.shareStatus(ns, s1)!.holders.map((h) => h.container.name);
    assert.equal(holders, ['main'], 'only main holds the pod-level share');
  });

  test('refusals name the annotation and the reason in the CRI error; nothing is created', async () => {
    const ns = 'team-c';
    const cases: Array<{ value: string; expect: string[] }> = [
      { value: 'no-such-share', expect: ['"team-c/no-such-share"', 'not declared'] },
      { value: 'a,,b', expect: ['item 2', 'is empty'] },
      { value: 'Bad_Name', expect: ['"Bad_Name"', 'not a DNS-1123 label'] },
      { value: '../etc', expect: ['"../etc"', 'namespace ".."', 'not a DNS-1123 label'] },
      { value: 'x/../../etc', expect: ['more than one "/"'] },
      { value: 'ok:rx', expect: ['unknown option "rx"'] },
    ];
    for (const c of cases) {
      const msg = await refused(await pod(ns, { [POD_KEY]: c.value }));
      assert.match(msg, POD_KEY, `${c.value}: ${msg}`);
      for (const e of c.expect) assert.match(msg, e, `${c.value}: ${msg}`);
    }
    // the container key is named when it is the one that fails
    const msg = await refused(await pod(ns, { [POD_KEY]: 'no-such-share', [ctrKey('main')]: 'Bad_Name' }));
    assert.match(msg, ctrKey('main'));
    assert.match(msg, 'Bad_Name');

    // a declaration beyond limits.maxShareBytes (512Mi here) never becomes a declaration
    const big = uniqueName('big');
    const before = agent.proc!.count(/"msg":"declarations: problem"/);
    agent.writeDeclaration(ns, big, '1Gi');
    await agent.proc!.waitFor(/"msg":"declarations: problem"/, before + 1, 15000);
    const problem = agent.output().split('\n').filter((l) => l.includes('declarations: problem') && l.includes(big));
    assert.ok(problem.length > 0, 'the loader reports the file');
    assert.match(problem[0], 'outside the allowed range');
    const bigMsg = await refused(await pod(ns, { [POD_KEY]: big }));
    assert.match(bigMsg, `"${ns}/${big}"`);
    assert.match(bigMsg, 'not declared');
    assert.not.ok(agent.isMounted(ns, big));
  });

  test('a declaration removed while in use takes no new bindings; its holders keep it until they end', async () => {
    const ns = 'team-d';
    const share = uniqueName('gone');
    await agent.declare(ns, share, '128Mi');
    const holder = await run(await pod(ns, { [POD_KEY]: share }));
    assert.is((await exec(holder, `echo kept > /dev/shm/${share}/f`)).exitCode, 0);
    await agent.undeclare(ns, share);

    const msg = await refused(await pod(ns, { [POD_KEY]: share }));
    assert.match(msg, POD_KEY);
    assert.match(msg, `"${ns}/${share}"`);
    assert.match(msg, 'was removed');
    // the holder keeps it, mounted and writable
    assert.ok(agent.isMounted(ns, share));
    const r = await exec(holder, `cat /dev/shm/${share}/f && echo more >> /dev/shm/${share}/f && echo ok`);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /kept\nok/);
    // its last user ends: released
    await env.cri.stopContainer(holder, 5);
    await agent.waitMounted(ns, share, false);
    // declared again: bindable again, fresh
    await agent.declare(ns, share, '128Mi');
    const again = await run(await pod(ns, { [POD_KEY]: share }));
    assert.is((await exec(again, `ls -A /dev/shm/${share} | wc -l`)).stdout.trim(), '0', 'a released share comes back empty');
  });

  test('no errors in the agent log', async () => {
    assert.equal(agent.errorLines(), []);
    // clean up while the agent runs, so it releases what it holds
    await env.cri.cleanupAll();
    await agent.cleanup();
  });

  test('a node over limits.maxNodeBytes refuses a new share with the node-limit message', async () => {
    const limited = new Agent({ nriSocket: env.containerd.nriSocket, limits: { maxShareBytes: '256Mi', maxNodeBytes: '256Mi' } });
    try {
      await limited.start();
      const ns = 'team-e';
      const [n1, n2, n3] = [uniqueName('n1'), uniqueName('n2'), uniqueName('n3')];
      for (const s of [n1, n2, n3]) await limited.declare(ns, s, '128Mi');
      const c1 = await run(await pod(ns, { [POD_KEY]: n1 }));
      await run(await pod(ns, { [POD_KEY]: n2 }));
      const p3 = await pod(ns, { [POD_KEY]: n3 });
      const msg = await refused(p3);
      assert.match(msg, POD_KEY);
      assert.match(msg, `"${ns}/${n3}"`);
      assert.match(msg, 'which would bring all shares here to 384 MiB, more than the 256 MiB allowed');
      assert.not.ok(limited.isMounted(ns, n3));
      // a share already on the node costs nothing more: a second holder of n1 is accepted
      const c1b = await run(await pod(ns, { [POD_KEY]: n1 }));
      // and once n1 is released, n3 fits
      await env.cri.stopContainer(c1, 5);
      await env.cri.stopContainer(c1b, 5);
      await limited.waitMounted(ns, n1, false);
      const id3 = await env.cri.runContainer(p3, { name: 'main' });
      assert.is((await exec(id3, `test -d /dev/shm/${n3} && echo yes`)).stdout.trim(), 'yes');
      assert.equal(limited.errorLines(), []);
      await env.cri.cleanupAll();
    } finally {
      await limited.cleanup();
    }
  });
});
