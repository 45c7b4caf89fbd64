// Issue 20: UB shares outlive the agent. Beside real containerd 1.7 and 2.1, the agent runs with the
// ubs backend over the C double of libubsm_sdk.so (it stands in for the vendor SDK, ubsmd, UBSE and
// obmm, which cannot run here; it detaches a share when its last local mapper dies, with the
// daemon's delayed-removal record and its 6017, and gives new memids on re-attach), and its UB
// holder process maps the node's shares. The applications run as uid 4178, as the vendor's pods do.
// What must hold: killing (SIGKILL, SIGTERM, a crash loop) or restarting the agent changes nothing
// for running containers: no eviction, the same memids, the data intact, no allocate/deallocate.
// When the holder itself dies the memids change: the containers are evicted, but the share and its
// data stay for the recreated containers.
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { forEachContainerd, selectedVersions, uniqueName, type E2eEnv, type RunningPod } from '../harness';
import { RECONCILED, waitUntil } from './agent';
import { DAEMON_GID, UBS_IMAGE, UbsNode, importUbsImage, parseConsumer, sdkNameOf, type ConsumerResult } from './ubs-env';

const POD_KEY = 'memshare.nri.io/pod';
const USER = 4178;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const version of selectedVersions()) {
  const node = new UbsNode();
  const cdi = version === '2.1';
  forEachContainerd('ubs holder', (test, env) => register(test, env, node, cdi), { versions: [version], ...(cdi ? { cdiSpecDirs: [node.cdiDir] } : {}) });
}

function register(test: (name: string, fn: () => unknown) => void, env: E2eEnv, node: UbsNode, cdi: boolean): void {
  const ns = 'team-hold';
  const agent = () => node.agent!;
  const spec = (command?: string[]) => ({
    name: 'app',
    image: UBS_IMAGE,
    runAsUser: USER,
    runAsGroup: USER,
    ...(cdi ? {} : { supplementalGroups: [DAEMON_GID] }),
    ...(command ? { command } : {}),
  });
  const consume = async (id: string, args: string[]): Promise<ConsumerResult> => {
    const r = await env.cri.execSync(id, ['/usr/local/bin/ubsm-consumer', ...args], 30);
    return parseConsumer(r.exitCode, r.stdout, r.stderr);
  };
  const holderSocket = () => join(agent().stateDir, 'ubs-holder.sock');
  const holderPid = (): number | undefined => {
    try {
      const out = execFileSync('pgrep', ['-f', `socket ${holderSocket()}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
      return out.length === 1 ? Number(out[0]) : undefined;
    } catch {
      return undefined;
    }
  };
  const memIdsOf = (share: string): number[] => {
    const s = agent().status().shares.find((x) => x.namespace === ns && x.name === share) as { handle?: { memIds?: number[] } } | undefined;
    return s?.handle?.memIds ?? [];
  };
  const evictions = () => agent().output().split('\n').filter((l) => /evict/i.test(l) && /"level":"(warn|error|info)"/.test(l) && /container/.test(l));
  const running = async (id: string) => (await env.cri.containerStatus(id)).state === 'CONTAINER_RUNNING';
  const restart = async (signal: NodeJS.Signals) => {
    await agent().stop(signal);
    await agent().start();
    await agent().proc!.waitFor(RECONCILED, 1, 20000);
    // the background restore has run once the holder answered; give it a moment to act
    await agent().proc!.waitFor(/ubs: connected to the UB memory daemon/, 1, 15000);
    await sleep(500);
  };

  let idle: { pod: RunningPod; ctr: string; share: string };
  let mapping: { pod: RunningPod; ctr: string; share: string };
  const data = new Map<string, string>();
  let memids = new Map<string, number[]>();

  test('UB node with a holder: two shares, one bound to an idle application, one to an application that keeps it mapped; data written as uid 4178', async () => {
    importUbsImage(env.containerd);
    await node.start();
    await node.startAgent(env.containerd.nriSocket);
    const pid = holderPid();
    assert.ok(pid && pid !== agent().proc!.child.pid, `the holder is a process of its own (${pid})`);
    for (const kind of ['idle', 'mapping'] as const) {
      const share = uniqueName(kind);
      await agent().declare(ns, share, '128Mi');
      const pod = await env.cri.runPod({ name: uniqueName(kind), namespace: ns, annotations: { [POD_KEY]: share } });
      // the mapping application holds the share mapped for the whole test; the idle one maps on demand
      const ctr = await env.cri.runContainer(pod, spec(kind === 'mapping' ? ['/usr/local/bin/ubsm-consumer', 'hold', share, '3600'] : undefined));
      const token = uniqueName(`${kind}-bytes`);
      // the mapping application's own mapping is read-write: its pid must not map twice
      const writer = kind === 'mapping' ? await env.cri.runContainer(pod, { ...spec(), name: 'writer' }) : ctr;
      const w = await consume(writer, ['write', share, '8192', token]);
      assert.is(w.status, 0, w.out);
      data.set(share, token);
      if (kind === 'idle') idle = { pod, ctr, share };
      else mapping = { pod, ctr, share };
    }
    memids = new Map([idle.share, mapping.share].map((s) => [s, memIdsOf(s)]));
    for (const [s, m] of memids) assert.ok(m.length === 1, `share ${s} has its memid on record: ${m}`);
    // with no application mapping the idle share, only the holder keeps it attached
    assert.is(node.maps(sdkNameOf(ns, idle.share)).length, 1, `one mapper of the idle share (the holder): ${node.maps().join(' ')}`);
  });

  const unchanged = async (what: string) => {
    for (const [s, m] of memids) assert.equal(memIdsOf(s), m, `${what}: share ${s} keeps its memids`);
    assert.equal(evictions(), [], `${what}: nobody evicted:\n${evictions().join('\n')}`);
    assert.ok(await running(idle.ctr), `${what}: the idle application still runs`);
    assert.ok(await running(mapping.ctr), `${what}: the mapping application still runs`);
    for (const s of [idle.share, mapping.share]) {
      const r = await consume(idle.share === s ? idle.ctr : mapping.ctr, ['read', s, '8192', String(data.get(s)!.length)]);
      assert.is(r.json.text, data.get(s), `${what}: share ${s} reads back what was written: ${r.out}`);
      assert.ok(node.shares().includes(sdkNameOf(ns, s)), `${what}: share ${s} is still allocated`);
    }
    assert.not.match(agent().output(), /"msg":"share released"/, `${what}: nothing released`);
  };

  test('the agent is SIGKILLed and started again: no eviction, the same memids, the bytes intact', async () => {
    const pid = holderPid();
    node.control('reap_delay_ms=3000\n'); // a dropped link would show as 6017 for 3 s
    await restart('SIGKILL');
    assert.is(holderPid(), pid, 'the same holder serves the new agent');
    await unchanged('after SIGKILL');
  });

  test('the agent is stopped with SIGTERM (every systemctl restart, every RPM upgrade) and started again: nothing changes', async () => {
    await restart('SIGTERM');
    assert.match(agent().output(), /ubs: holder found/);
    await unchanged('after SIGTERM');
  });

  test('a crash loop: 5 restarts in a minute, with SIGKILL; nothing changes', async () => {
    const started = Date.now();
    for (let i = 0; i < 5; i++) await restart('SIGKILL');
    assert.ok(Date.now() - started < 60_000, `5 restarts took ${Date.now() - started} ms`);
    await unchanged('after a crash loop');
    // the holder's own log: each share mapped once (at its first binding), never unmapped
    const hlog = readFileSync(join(agent().stateDir, 'ubs-holder.log'), 'utf8').split('\n');
    assert.is(hlog.filter((l) => /"msg":"mapped"/.test(l)).length, 2, `each share mapped once in all runs together:\n${hlog.join('\n')}`);
    assert.is(hlog.filter((l) => /"msg":"unmapped"/.test(l)).length, 0, 'never unmapped');
  });

  test('the holder is SIGKILLed while the agent runs: the idle share is detached (6017 meanwhile) and comes back with other memids, its application is evicted; the share and its bytes stay for the recreated one; the mapping application keeps running', async () => {
    const pid = holderPid()!;
    process.kill(pid, 'SIGKILL');
    await waitUntil(async () => !(await running(idle.ctr)), 30000, () => `the idle application evicted; agent log:\n${agent().output().slice(-4000)}`);
    assert.match(agent().output(), /the holder was replaced/);
    assert.match(agent().output(), /cannot restore share .* yet; retrying/, 'the 6017 of the delayed removal was waited out, not taken as a failure');
    const np = holderPid();
    assert.ok(np && np !== pid, 'a new holder');
    // the idle share had only the holder as its mapper: detached, re-attached with other memids
    assert.not.equal(memIdsOf(idle.share), memids.get(idle.share), 'the idle share got other memids');
    // the other share stayed attached through its application's own mapping: same memids, no eviction
    assert.equal(memIdsOf(mapping.share), memids.get(mapping.share), 'the mapped share kept its memids');
    assert.ok(await running(mapping.ctr), 'the mapping application was not evicted');
    await sleep(1500);
    for (const s of [idle.share, mapping.share]) assert.ok(node.shares().includes(sdkNameOf(ns, s)), `share ${s} is not deallocated`);
    assert.not.match(agent().output(), /"msg":"share released"/, 'an eviction is not a release');
    // status shows the new holder and the share kept for its evicted container's return
    const st0 = agent().status() as unknown as { holder: { running: boolean; pid: number; maps: string[] }; shares: Array<{ name: string; keptUntil: string | null }>; warnings: string[] };
    assert.is(st0.holder.running, true);
    assert.is(st0.holder.pid, np);
    assert.equal(st0.holder.maps.sort(), [sdkNameOf(ns, idle.share), sdkNameOf(ns, mapping.share)].sort());
    const kept = st0.shares.find((x) => x.name === idle.share)?.keptUntil;
    assert.ok(kept && Date.parse(kept) > Date.now() + 60_000, `status shows until when the share is kept: ${kept}`);
    assert.match(agent().statusTable(), /ub holder: running \(pid \d+/);
    // the kubelet recreates the container: it binds again and reads the old bytes
    const again = await env.cri.runContainer(idle.pod, { ...spec(), name: 'app-2' });
    const r = await consume(again, ['read', idle.share, '8192', String(data.get(idle.share)!.length)]);
    assert.is(r.json.text, data.get(idle.share), `the recreated container reads the data: ${r.out}`);
    const st = agent().status().shares.find((x) => x.name === idle.share);
    assert.ok(st && st.holders.length >= 1, 'bound again');
  });

  test('cleanup: the pods go, the shares are released and the holder lets go of them', async () => {
    node.control('');
    for (const p of [idle.pod, mapping.pod]) {
      await env.cri.stopPod(p.id);
      await env.cri.removePod(p.id);
    }
    for (const s of [idle.share, mapping.share]) {
      await waitUntil(() => !node.shares().includes(sdkNameOf(ns, s)), 20000, () => `share ${s} still allocated: ${node.shares().join(' ')}; log:\n${agent().output().slice(-3000)}`);
    }
    assert.equal(node.maps(), [], 'no mapping left in the double');
    assert.equal(agent().errorLines(), [], 'no errors in the agent log');
    assert.ok(existsSync(holderSocket()), 'the holder stays (idle) until it has been unused a while');
    await agent().cleanup();
    // the stand-in daemon and the node's dirs (the holder leaves once its socket is gone)
    await node.cleanup();
  });
}
