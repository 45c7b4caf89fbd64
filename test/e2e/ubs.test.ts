// Issue 10 section 7: the UB memory backend end to end, beside real containerd 1.7 and 2.1. The agent
// runs with backend kind "ubs" over the C double of libubsm_sdk.so (native/ubs), ubsmd-standin as the
// daemon's socket, and containers of a glibc image run ubsm-consumer as uid 4178 through what the
// agent injected: device nodes, the SDK and its libraries, the socket dir, the environment, and on 2.1
// the daemon's group through CDI (on 1.7 the pod carries it as supplementalGroups, as the README says).
// The access model: a createRuntime hook (the agent's CLI, ubs-access-check) refuses at start the
// bindings the SDK cannot honour for the container's uid/gid; uid 0 and 4178, :ro and :rw, under
// shareMode 0666, 0644, 0444 and 0664 (uid 4178 with primary gid 0: the group class).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { forEachContainerd, selectedVersions, uniqueName, type E2eEnv, type RunningPod } from '../harness';
import { CLI, rejection, waitUntil } from './agent';
import { BLOCK, DAEMON_GID, NATIVE, UBS_IMAGE, UbsNode, SDK_LIB, importUbsImage, ociSpec, parseConsumer, type ConsumerResult } from './ubs-env';
import { join } from 'node:path';

const POD_KEY = 'memshare.nri.io/pod';
const USER = 4178;
const sdkNameOf = (ns: string, share: string) => `nms.${ns}.${share}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const version of selectedVersions()) {
  // made before containerd starts: 2.1's config names its CDI dir
  const node = new UbsNode();
  const cdi = version === '2.1';
  forEachContainerd(
    'ubs backend',
    (test, env) => registerUbsTests(test, env, node, cdi),
    { versions: [version], ...(cdi ? { cdiSpecDirs: [node.cdiDir] } : {}) },
  );
}

function registerUbsTests(test: (name: string, fn: () => unknown) => void, env: E2eEnv, node: UbsNode, cdi: boolean): void {
  const ns = 'team-ub';
  const pod = (annotations: Record<string, string>, prefix = 'ub'): Promise<RunningPod> =>
    env.cri.runPod({ name: uniqueName(prefix), namespace: ns, annotations });
  const spec = (name = 'main') => ({
    name,
    image: UBS_IMAGE,
    runAsUser: USER,
    runAsGroup: USER,
    // containerd 1.7 (NRI 0.6.1) cannot add groups: the operator puts the daemon group on the pod
    ...(cdi ? {} : { supplementalGroups: [DAEMON_GID] }),
  });
  const run = (p: RunningPod, name = 'main') => env.cri.runContainer(p, spec(name));
  const exec = (id: string, script: string) => env.cri.execSync(id, ['/bin/sh', '-c', script], 30);
  const consume = async (id: string, args: string[]): Promise<ConsumerResult> => {
    const r = await env.cri.execSync(id, ['/usr/local/bin/ubsm-consumer', ...args], 30);
    return parseConsumer(r.exitCode, r.stdout, r.stderr);
  };
  const removePod = async (p: RunningPod) => {
    await env.cri.stopPod(p.id);
    await env.cri.removePod(p.id);
  };
  const agent = () => node.agent!;
  /** waits until the agent has released the share: nothing of it left in the double */
  const waitGone = (sdk: string) =>
    waitUntil(() => !node.shares().includes(sdk) && node.maps(sdk).length === 0, 15000, () =>
      `share ${sdk} still in the double: shares ${node.shares().join(' ')}, maps ${node.maps(sdk).join(' ')}; agent log tail:\n${agent().output().slice(-3000)}`);
  const declare = async (share: string, storage = '128Mi') => agent().declare(ns, share, storage);

  test('UB node: stand-in daemon, agent with the ubs backend, the glibc image', async () => {
    importUbsImage(env.containerd);
    await node.start();
    await node.startAgent(env.containerd.nriSocket);
    assert.match(agent().output(), /ubs: connected to the UB memory daemon/);
    const cc = spawnSync(process.execPath, [CLI, 'check-config', '--config', agent().configPath], { encoding: 'utf8' });
    assert.is(cc.status, 0, `check-config loads the library: ${cc.stdout}${cc.stderr}`);
    if (cdi) assert.match(agent().output(), /ubs: CDI spec for the daemon group written/);
    else assert.not.match(agent().output(), /CDI spec for the daemon group written/);
  });

  test('a bound pod gets exactly its injection set (runtime spec and inside); another share\'s nodes are not there', async () => {
    const share = uniqueName('inj');
    const other = uniqueName('oth');
    await declare(share, '256Mi'); // two blocks: two device nodes
    await declare(other, '128Mi');
    const sdk = sdkNameOf(ns, share);
    const osdk = sdkNameOf(ns, other);
    // the other share exists on the node too (bound by another pod)
    const po = await pod({ [POD_KEY]: other }, 'oth');
    await run(po);
    const p = await pod({ [POD_KEY]: share });
    const id = await run(p);

    const info = node.consumer(['--sdk-name', sdk, 'info']);
    assert.is(info.status, 0, info.out);
    const memids = (info.json.memids as number[]).slice().sort((a, b) => a - b);
    assert.is(memids.length, 2, `256Mi = 2 blocks of 128 MiB: ${info.out}`);
    assert.is(info.json.size, 2 * BLOCK);
    const oinfo = node.consumer(['--sdk-name', osdk, 'info']);
    assert.is(oinfo.status, 0, oinfo.out);
    const omemids = oinfo.json.memids as number[];
    assert.is(omemids.length, 1);

    // --- the runtime spec containerd wrote
    const s = ociSpec(env.containerd, id);
    const devs = (s.linux.devices ?? []).filter((d) => d.path.startsWith('/dev/obmm_shmdev'));
    assert.equal(
      devs.map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid })).sort((a, b) => a.minor - b.minor),
      memids.map((m) => ({ path: `/dev/obmm_shmdev${m}`, type: 'c', major: node.major, minor: m, fileMode: 0o666, uid: 0, gid: 0 })),
      'one device per memid, major from /proc/devices, minor = memid',
    );
    const allowed = (s.linux.resources?.devices ?? []).filter((r) => r.allow && r.major === node.major);
    assert.equal(allowed.map((r) => r.minor).sort((a, b) => a! - b!), memids, 'a devices-cgroup rule per node, and only those');
    assert.not.ok(s.mounts.some((m) => m.source === '/dev' || m.source === node.devDir), 'never the host\'s /dev (or the node\'s device dir)');
    assert.equal((s.linux.devices ?? []).filter((d) => d.major === node.major).length, memids.length, 'no other UB device in the spec');
    const mount = (dest: string) => s.mounts.find((m) => m.destination === dest);
    const ro = (dest: string) => {
      const m = mount(dest);
      assert.ok(m, `mount ${dest} in the spec`);
      assert.ok(m!.options?.includes('ro'), `${dest} read-only: ${m!.options}`);
      return m!;
    };
    assert.is(ro('/host/usr/local/ubs_mem').source, node.sdkDir);
    for (const l of ['libobmm.so.1', 'libnuma.so.1', 'libhcom.so.0', 'libboundscheck.so']) assert.is(ro(`/usr/lib64/${l}`).source, join(NATIVE, 'lib', l));
    const sockMount = ro('/run/matrix/memory');
    assert.is(sockMount.source, node.socketDir);
    assert.ok(sockMount.options?.includes('noexec'));
    const st = mount('/run/ubsm-double');
    assert.is(st?.source, node.stateDir);
    assert.ok(st?.options?.includes('rw'));
    const envs = new Map(s.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    assert.is(envs.get('LD_LIBRARY_PATH'), '/usr/lib64/:/host/usr/local/ubs_mem/lib/');
    assert.is(envs.get('HCOM_CONNECTION_RETRY_TIMES'), '1');
    assert.is(envs.get('UBSM_DOUBLE_STATE'), '/run/ubsm-double');
    assert.is(envs.get('MEMSHARE_UBS_SHARES'), `${share}=${sdk}`);
    assert.is(s.process.user.uid, USER);
    assert.ok(s.process.user.additionalGids?.includes(DAEMON_GID), `daemon gid in additionalGids: ${JSON.stringify(s.process.user)}`);
    // the access check: one createRuntime hook, the agent's CLI (backend.accessCheck) with the binding
    assert.equal(
      (s.hooks?.createRuntime ?? []).map((h) => ({ path: h.path, args: h.args, timeout: h.timeout })),
      [{ path: node.accessCheck, args: [node.accessCheck, 'ubs-access-check', '--share', `${ns}/${share},sdk=${sdk},mode=0666,owner=0:0,access=rw`], timeout: 10 }],
      `hooks: ${JSON.stringify(s.hooks)}`,
    );
    if (cdi) assert.is(envs.get('MEMSHARE_UBS_DAEMON_ACCESS'), '1', 'the CDI device was applied');
    else assert.is(envs.get('MEMSHARE_UBS_DAEMON_ACCESS'), undefined, 'no CDI on 1.7');

    // --- inside the container
    const stat = await exec(id, 'stat -c "%n %t %T %u %g %a" /dev/obmm_shmdev*');
    assert.is(stat.exitCode, 0, stat.stderr);
    const want = memids.map((m) => `/dev/obmm_shmdev${m} ${node.major.toString(16)} ${m.toString(16)} 0 0 666`).sort();
    assert.equal(stat.stdout.trim().split('\n').sort(), want, 'device nodes: hex major/minor, root-owned, 0666; none of the other share');
    for (const m of omemids) {
      const t = await exec(id, `test -e /dev/obmm_shmdev${m} && echo present || echo absent`);
      assert.is(t.stdout.trim(), 'absent', `node ${m} of ${other} is not in this container`);
    }
    const mounts = (await exec(id, 'cat /proc/self/mounts')).stdout;
    const line = (dest: string) => mounts.split('\n').find((l) => l.split(' ')[1] === dest);
    for (const d of ['/host/usr/local/ubs_mem', '/usr/lib64/libobmm.so.1', '/usr/lib64/libnuma.so.1', '/usr/lib64/libhcom.so.0', '/usr/lib64/libboundscheck.so', '/run/matrix/memory']) {
      const l = line(d);
      assert.ok(l, `${d} mounted in the container:\n${mounts}`);
      assert.match(l!.split(' ')[3], /(^|,)ro(,|$)/, `${d} read-only: ${l}`);
    }
    assert.match(line('/run/matrix/memory')!.split(' ')[3], 'noexec');
    assert.match(line('/run/ubsm-double')!.split(' ')[3], /(^|,)rw(,|$)/);
    const e = (await exec(id, 'env')).stdout;
    assert.match(e, `MEMSHARE_UBS_SHARES=${share}=${sdk}\n`);
    assert.match(e, 'LD_LIBRARY_PATH=/usr/lib64/:/host/usr/local/ubs_mem/lib/\n');
    assert.match(e, 'HCOM_CONNECTION_RETRY_TIMES=1\n');
    const groups = (await exec(id, 'grep -E "^(Uid|Gid|Groups):" /proc/1/status')).stdout;
    assert.match(groups, new RegExp(`^Uid:\\s+${USER}\\s`, 'm'));
    assert.match(groups, new RegExp(`^Groups:.*\\b${DAEMON_GID}\\b`, 'm'), `daemon group ${cdi ? 'through CDI' : 'from supplementalGroups'}:\n${groups}`);
    // a pod bound to no share gets none of it
    const plain = await pod({}, 'plain');
    const pid = await run(plain);
    const ps = ociSpec(env.containerd, pid);
    assert.equal((ps.linux.devices ?? []).filter((d) => d.major === node.major), [], 'an unbound pod: no UB devices');
    assert.not.ok(ps.mounts.some((m) => m.destination === '/run/matrix/memory' || m.destination === '/host/usr/local/ubs_mem'), 'an unbound pod: no SDK, no socket dir');
    assert.not.ok(ps.process.env.some((e) => e.startsWith('MEMSHARE_UBS_SHARES=')));
    assert.equal(ps.hooks?.createRuntime ?? [], [], 'an unbound pod: no access-check hook');
    assert.is((await exec(pid, 'ls /dev | grep -c obmm_shmdev || true')).stdout.trim(), '0');
    await removePod(plain);
    // and the set is enough: the consumer maps the share through it
    const w = await consume(id, ['write', share, '0', 'probe']);
    assert.is(w.status, 0, w.out);
    await removePod(p);
    await removePod(po);
    await waitGone(sdk);
    await waitGone(osdk);
  });

  test('two pods exchange data through the consumer', async () => {
    const share = uniqueName('xchg');
    await declare(share);
    const sdk = sdkNameOf(ns, share);
    const pa = await pod({ [POD_KEY]: share }, 'wr');
    const pb = await pod({ [POD_KEY]: share }, 'rd');
    const a = await run(pa);
    const b = await run(pb);
    const token = uniqueName('bytes');
    const w = await consume(a, ['write', share, '4096', token]);
    assert.is(w.status, 0, w.out);
    const rd = await consume(b, ['read', share, '4096', String(token.length)]);
    assert.is(rd.status, 0, rd.out);
    assert.is(rd.json.text, token, 'pod B reads what pod A wrote');
    for (const p of [pa, pb]) await removePod(p);
    await waitGone(sdk);
  });

  test('the last exit unmaps and deallocates in the double', async () => {
    const share = uniqueName('last');
    await declare(share);
    const sdk = sdkNameOf(ns, share);
    const pa = await pod({ [POD_KEY]: share }, 'a');
    const pb = await pod({ [POD_KEY]: share }, 'b');
    await run(pa);
    await run(pb);
    assert.ok(node.shares().includes(sdk), 'allocated');
    assert.ok(node.maps(sdk).length >= 1, 'mapped by the agent');
    assert.ok(node.devNodes().length >= 1, 'attached: host device nodes');
    await removePod(pa);
    await sleep(1000);
    assert.ok(node.shares().includes(sdk), 'one holder left: still allocated');
    assert.ok(node.maps(sdk).length >= 1, 'still mapped by the agent');
    await removePod(pb);
    await waitGone(sdk);
    const info = node.consumer(['--sdk-name', sdk, 'info']);
    assert.is(info.json.code, 6020, `gone in the double: ${info.out}`);
    assert.equal(node.devNodes(), [], 'detached: no host device nodes left');
    assert.is(agent().shareStatus(ns, share), undefined, 'status: no share');
  });

  test('6024 from another node is not an error; that node deletes the share when it lets go', async () => {
    const share = uniqueName('far');
    await declare(share);
    const sdk = sdkNameOf(ns, share);
    const p = await pod({ [POD_KEY]: share });
    const id = await run(p);
    assert.is((await consume(id, ['write', share, '0', 'kept'])).status, 0);
    const far = await node.hold(sdk, 60, 'other');
    assert.is(far.line.ok, true, JSON.stringify(far.line));
    const before = agent().proc!.count(/still in use on another node/);
    await removePod(p);
    await agent().proc!.waitFor(/still in use on another node/, before + 1, 15000);
    const logLine = agent().output().split('\n').find((l) => l.includes('still in use on another node') && l.includes(sdk));
    assert.ok(logLine, 'the log names the share');
    assert.match(logLine!, /"level":"info"/);
    await waitUntil(() => node.maps(sdk).every((m) => m.includes('@other@')), 10000, () => `agent still maps: ${node.maps(sdk)}`);
    assert.ok(node.shares().includes(sdk), 'the share still exists: the other node uses it');
    const st = agent().status();
    assert.is(st.shares.find((s) => s.name === share), undefined, `no failing release in status: ${JSON.stringify(st)}`);
    assert.equal(st.warnings.filter((w) => w.includes(share)), []);
    assert.equal(agent().errorLines(), []);
    // the other node still reads what the pod wrote, then lets go and deletes it
    const rd = node.consumer(['--sdk-name', sdk, 'read', '0', '4'], 'other');
    assert.is(rd.json.text, 'kept', rd.out);
    assert.is(await node.stopHolder(far.child), 0);
    const del = node.consumer(['deallocate', sdk], 'other');
    assert.is(del.status, 0, del.out);
    await waitGone(sdk);
  });

  test('a slow SDK (5 s per call): CreateContainer fails fast with the message, the kubelet-style retry succeeds', async () => {
    const share = uniqueName('slow');
    await declare(share);
    const sdk = sdkNameOf(ns, share);
    const p = await pod({ [POD_KEY]: share });
    node.control('delay_ms=5000\n');
    let elapsed = 0;
    try {
      const t0 = Date.now();
      const err = await rejection(env.cri.createContainer(p.id, p.config, spec()), 'CreateContainer with a slow SDK');
      elapsed = Date.now() - t0;
      process.stdout.write(`  [ubs] containerd ${env.version}: CreateContainer refused after ${elapsed} ms (budget 1000 ms)\n`);
      // refused (not created): the answer came inside containerd's 2 s deadline, or containerd
      // would have failed open and created the container without the share
      assert.match(err.message, `UB share ${ns}/${share} is still being attached`);
      assert.match(err.message, 'the kubelet will retry');
      assert.equal(await env.cri.listContainers({ podId: p.id }), [], 'nothing created');
    } finally {
      node.control('');
    }
    await sleep(6000);
    const t1 = Date.now();
    const id = await env.cri.createContainer(p.id, p.config, spec());
    process.stdout.write(`  [ubs] containerd ${env.version}: retry CreateContainer took ${Date.now() - t1} ms\n`);
    await env.cri.startContainer(id);
    const w = await consume(id, ['write', share, '0', 'late']);
    assert.is(w.status, 0, w.out);
    await removePod(p);
    await waitGone(sdk);
  });

  test('an SDK error during a binding fails that container\'s creation with the SDK\'s reason', async () => {
    const share = uniqueName('err');
    await declare(share);
    const sdk = sdkNameOf(ns, share);
    const p = await pod({ [POD_KEY]: share });
    node.control('fail.allocate=6022\n');
    try {
      const err = await rejection(env.cri.createContainer(p.id, p.config, spec()), 'CreateContainer with allocate failing');
      assert.match(err.message, '6022');
      assert.match(err.message, 'UBSM_ERR_MALLOC_FAIL');
      assert.match(err.message, `${ns}/${share}`);
      assert.match(err.message, 'allocate');
      assert.equal(await env.cri.listContainers({ podId: p.id }), []);
    } finally {
      node.control('');
    }
    assert.not.ok(node.shares().includes(sdk), 'nothing allocated');
    // the SDK recovers: the next attempt binds
    const id = await env.cri.createContainer(p.id, p.config, spec());
    await env.cri.startContainer(id);
    await removePod(p);
    await waitGone(sdk);
  });

  test('security: a container bound to A that reaches the daemon cannot open B\'s memory (its own mknod of B\'s node: EPERM); A\'s own node opens', async () => {
    const a = uniqueName('seca');
    const b = uniqueName('secb');
    await declare(a);
    await declare(b);
    const asdk = sdkNameOf(ns, a);
    const bsdk = sdkNameOf(ns, b);
    // B's pod (the usual non-root user) holds B and writes into it
    const pb = await pod({ [POD_KEY]: b }, 'secb');
    const bid = await run(pb);
    const token = uniqueName('secret');
    assert.is((await consume(bid, ['write', b, '0', token])).status, 0);
    // A's container runs as root with the runtime's default capabilities (CAP_MKNOD, CAP_DAC_OVERRIDE):
    // the strongest container the model has to hold, short of privileged
    const pa = await pod({ [POD_KEY]: a }, 'seca');
    const aid = await env.cri.runContainer(pa, { name: 'main', image: UBS_IMAGE });
    const caps = (await exec(aid, 'grep CapEff /proc/self/status')).stdout;
    const capEff = BigInt(`0x${caps.trim().split(/\s+/)[1]}`);
    assert.ok((capEff >> 27n) & 1n, `CAP_MKNOD in the container: ${caps}`);

    const bInfo = node.consumer(['--sdk-name', bsdk, 'info']);
    const aInfo = node.consumer(['--sdk-name', asdk, 'info']);
    assert.is(bInfo.status, 0, bInfo.out);
    assert.is(aInfo.status, 0, aInfo.out);
    const bMemid = (bInfo.json.memids as number[])[0];
    const aMemid = (aInfo.json.memids as number[])[0];
    const bNode = `/dev/obmm_shmdev${bMemid}`;
    const aNode = `/dev/obmm_shmdev${aMemid}`;
    assert.is((await exec(aid, `test -e ${bNode} && echo present || echo absent`)).stdout.trim(), 'absent', 'B\'s node is not given to A');

    // A makes B's node itself; the runtime's devices cgroup admits only A's major:minor pairs
    const mk = await exec(aid, `busybox mknod ${bNode} c ${node.major} ${bMemid} && busybox chmod 0666 ${bNode} && echo made`);
    assert.is(mk.stdout.trim(), 'made', `root in the container can mknod: ${mk.stdout}${mk.stderr}`);
    const openB = await exec(aid, `cat ${bNode}; echo x > ${bNode}`);
    assert.match(openB.stderr, `can't open '${bNode}': Operation not permitted`, `read open of B's node: EPERM:\n${openB.stderr}`);
    assert.match(openB.stderr, `can't create ${bNode}: Operation not permitted`, `write open of B's node: EPERM:\n${openB.stderr}`);
    // A's own node passes DAC and the devices cgroup; ENXIO is the stand-in major having no driver
    const openA = await exec(aid, `cat ${aNode}`);
    assert.match(openA.stderr, `can't open '${aNode}': No such device or address`, `A's node is admitted:\n${openA.stderr}`);
    // through the SDK: the daemon lets root map B by name (mode check passes), the device open does not
    const mapB = await consume(aid, ['--sdk-name', bsdk, 'write', '0', 'stolen']);
    assert.is(mapB.json.code, 6051, `mapping B from A fails at the device open: ${mapB.out}`);
    assert.match(mapB.out, 'Operation not permitted');
    const mapA = await consume(aid, ['write', a, '0', 'mine']);
    assert.is(mapA.status, 0, `A maps its own share: ${mapA.out}`);
    const still = await consume(bid, ['read', b, '0', String(token.length)]);
    assert.is(still.json.text, token, 'B\'s bytes unchanged');
    process.stdout.write(`  [ubs] containerd ${env.version}: open of another share's node from a bound root container -> ${openB.stderr.trim().split('\n')[0]}\n`);

    // the socket directory is read-only: root in A cannot replace or add to what other containers connect to
    const sock = await exec(aid, 'busybox rm -f /run/matrix/memory/MxmAgentIpcServer; echo x > /run/matrix/memory/planted');
    assert.match(sock.stderr, 'Read-only file system', sock.stderr);
    assert.ok(existsSync(join(node.socketDir, 'MxmAgentIpcServer')), 'the daemon socket is still there');
    assert.not.ok(existsSync(join(node.socketDir, 'planted')));
    // deallocate: the daemon wants the owner's uid and gid (the agent: 0, 0), and refuses while mapped
    const delUser = await consume(bid, ['deallocate', bsdk]);
    assert.is(delUser.json.code, 6011, `uid ${USER} cannot deallocate the agent's share: ${delUser.out}`);
    const delRoot = await consume(aid, ['deallocate', bsdk]);
    assert.is(delRoot.json.code, 6024, `uid 0 cannot while the agent maps it: ${delRoot.out}`);
    assert.ok(node.shares().includes(bsdk), 'B still exists');
    // what nri-memshare cannot stop: a container with the socket allocates shares of its own
    const rogue = `rogue.${uniqueName('x')}`;
    const al = await consume(bid, ['allocate', rogue, String(BLOCK), '0600']);
    assert.is(al.status, 0, `the daemon's quota applies, not nri-memshare's: ${al.out}`);
    assert.is((await consume(bid, ['deallocate', rogue])).status, 0);

    // the share as the agent made it: mode shareMode, owner root; the host's nodes 0600 root
    const rec = readFileSync(join(node.stateDir, 'shares', bsdk), 'utf8');
    assert.match(rec, /^mode=666$/m, rec);
    assert.match(rec, /^uid=0$/m, rec);
    assert.match(rec, /^gid=0$/m, rec);
    for (const m of [...(aInfo.json.memids as number[]), ...(bInfo.json.memids as number[])]) {
      const host = join(node.devDir, `obmm_shmdev${m}`);
      const st = statSync(host);
      assert.is(st.mode & 0o7777, 0o600, `host node ${host}`);
      assert.is(st.uid, 0);
      const r = spawnSync('setpriv', ['--reuid', String(USER), '--regid', String(USER), '--clear-groups', 'cat', host], { encoding: 'utf8' });
      assert.match(r.stderr, 'Permission denied', `a host user cannot open it: ${r.stderr}`);
    }
    await removePod(pa);
    await removePod(pb);
    await waitGone(asdk);
    await waitGone(bsdk);
  });

  // README "UB memory nodes", "Access by uid and binding": the SDK opens the device nodes from the
  // bits the share's mode grants the user (owner 0:0, the agent's holder), so the agent's
  // createRuntime hook refuses at start what the SDK cannot honour, and what it lets through works.
  test('access model: uid 0 and 4178, :ro and :rw, shareMode 0666, 0644, 0444 and 0664 (gid 0 writers): map, read, write, or the refusal at start with its message', async () => {
    type Case = { uid: number; gid: number; access: 'ro' | 'rw'; ok: boolean };
    const c = (uid: number, access: 'ro' | 'rw', ok: boolean, gid = uid): Case => ({ uid, gid, access, ok });
    // rw first: the readers then find the writer's bytes
    const table: Array<[string, Case[]]> = [
      ['0666', [c(0, 'rw', true), c(USER, 'rw', true), c(0, 'ro', false), c(USER, 'ro', false)]],
      ['0644', [c(0, 'rw', true), c(USER, 'rw', false), c(0, 'ro', false), c(USER, 'ro', true)]],
      ['0444', [c(0, 'rw', false), c(USER, 'rw', false), c(0, 'ro', true), c(USER, 'ro', true)]],
      // non-root writers and readers of one share: the writers' primary gid is the owner's (0)
      ['0664', [c(USER, 'rw', true, 0), c(USER, 'rw', false), c(USER, 'ro', true), c(USER, 'ro', false, 0)]],
    ];
    let changed = false;
    try {
      for (const [mode, cases] of table) {
        if (mode !== '0666') {
          await node.restartAgent({ shareMode: mode });
          changed = true;
        }
        const share = uniqueName(`acc${mode.slice(1)}`);
        await declare(share);
        const sdk = sdkNameOf(ns, share);
        const token = uniqueName('tok');
        let written = false;
        const pods: RunningPod[] = [];
        for (const k of cases) {
          const label = `uid ${k.uid} gid ${k.gid} :${k.access} under shareMode ${mode}`;
          const p = await pod({ [POD_KEY]: k.access === 'ro' ? `${share}:ro` : share }, `acc${k.uid}${k.access}`);
          pods.push(p);
          // root: the runtime's default capabilities (CAP_DAC_OVERRIDE); 4178: the usual UB pod
          const cspec = k.uid === 0 ? { name: 'main', image: UBS_IMAGE } : { ...spec(), runAsGroup: k.gid };
          const id = await env.cri.createContainer(p.id, p.config, cspec);
          if (!k.ok) {
            const err = await rejection(env.cri.startContainer(id), `StartContainer, ${label}`);
            const binding = k.access === 'ro' ? 'read-only (:ro)' : 'read-write (:rw)';
            assert.match(
              err.message,
              `nri-memshare: UB share ${ns}/${share} (SDK name ${sdk}) cannot be bound ${binding} to this container: it runs as uid ${k.uid} gid ${k.gid}, and the share's mode ${mode} (owner uid 0 gid 0) grants it `,
              `${label}: ${err.message}`,
            );
            assert.match(err.message, '. To fix: ', err.message);
            // what the kubelet reads back: the container exited at start, the reason and the message
            const st = await env.cri.containerStatus(id);
            assert.is(st.state, 'CONTAINER_EXITED', `${label}: ${JSON.stringify(st)}`);
            assert.is(st.reason, 'StartError', JSON.stringify(st));
            assert.is(Number(st.exit_code), 128, JSON.stringify(st));
            assert.match(st.message, `nri-memshare: UB share ${ns}/${share}`, st.message);
            process.stdout.write(`  [ubs] containerd ${env.version}: ${label}: StartContainer -> ${err.message}\n`);
            process.stdout.write(`  [ubs] containerd ${env.version}: ${label}: ContainerStatus -> state ${st.state}, reason ${st.reason}, exit ${st.exit_code}, message ${st.message}\n`);
            continue;
          }
          await env.cri.startContainer(id);
          const ids = (await exec(id, 'id -u; id -g')).stdout.trim().split('\n');
          assert.equal(ids, [String(k.uid), String(k.gid)], `${label}: the container's user`);
          const perm = (await exec(id, 'stat -c %a /dev/obmm_shmdev*')).stdout.trim();
          assert.is(perm, k.access === 'ro' ? '444' : '666', `${label}: device node mode`);
          if (k.access === 'rw') {
            const w = await consume(id, ['write', share, '0', token]);
            assert.is(w.status, 0, `${label}: write: ${w.out}`);
            written = true;
            const r = await consume(id, ['read', share, '0', String(token.length)]);
            assert.is(r.json.text, token, `${label}: read back: ${r.out}`);
            continue;
          }
          const r = await consume(id, ['read', `${share}:ro`, '0', String(token.length)]);
          assert.is(r.status, 0, `${label}: read: ${r.out}`);
          if (written) assert.is(r.json.text, token, `${label}: reads the writer's bytes`);
          const w = await consume(id, ['write', `${share}:ro`, '0', 'nope']);
          assert.is(w.json.code, 6011, `${label}: a writable map is refused by the daemon (mode): ${w.out}`);
          const m = await consume(id, ['map-ro', `${share}:ro`]);
          assert.is(m.json.writeFaulted, true, `${label}: a read-only map cannot write: ${m.out}`);
          // by hand, past the SDK: a non-root user cannot open the 0444 node for writing; root can
          // (CAP_DAC_OVERRIDE, and NRI 0.6/0.8 always write the devices-cgroup rule as "rw"); ENXIO is
          // the stand-in major having no driver, i.e. the open got past both checks
          const byHand = await exec(id, 'for n in /dev/obmm_shmdev*; do echo x > $n; done');
          if (k.uid === 0) {
            assert.match(byHand.stderr, 'No such device or address', `${label}: root opens the node for writing: ${byHand.stderr}`);
            const rules = (ociSpec(env.containerd, id).linux.resources?.devices ?? []).filter((x) => x.allow && x.major === node.major);
            assert.ok(rules.length > 0 && rules.every((x) => x.access === 'rw'), JSON.stringify(rules));
            process.stdout.write(`  [ubs] containerd ${env.version}: ${label}: open of a 0444 node for writing by hand -> ${byHand.stderr.trim().split('\n')[0]} (documented limit)\n`);
          } else assert.match(byHand.stderr, 'Permission denied', `${label}: ${byHand.stderr}`);
        }
        // nothing written through a :ro binding
        if (written) {
          const check = node.consumer(['--sdk-name', sdk, 'read', '0', String(token.length)]);
          assert.is(check.json.text, token, check.out);
        }
        for (const p of pods) await removePod(p);
        await waitGone(sdk);
      }
    } finally {
      if (changed) await node.restartAgent({ shareMode: '0666' });
    }
  });

  if (!cdi) {
    test('security (containerd 1.7): without the daemon group a bound container cannot reach the socket (6015)', async () => {
      const share = uniqueName('nogrp');
      await declare(share);
      const sdk = sdkNameOf(ns, share);
      const p = await pod({ [POD_KEY]: share }, 'nogrp');
      const id = await env.cri.runContainer(p, { name: 'main', image: UBS_IMAGE, runAsUser: USER, runAsGroup: USER });
      const groups = (await exec(id, 'grep ^Groups: /proc/self/status')).stdout;
      assert.not.match(groups, String(DAEMON_GID), groups);
      const w = await consume(id, ['write', share, '0', 'x']);
      assert.is(w.json.code, 6015, `initialize fails: the socket is 0660 root:${DAEMON_GID}: ${w.out}`);
      await removePod(p);
      await waitGone(sdk);
    });
  }

  test('no errors in the agent log; everything cleaned up', async () => {
    assert.equal(agent().errorLines(), []);
    await env.cri.cleanupAll();
    await sleep(500);
    assert.equal(node.shares(), [], 'no share left in the double');
    assert.equal(node.maps(), [], 'nothing mapped');
    await node.cleanup();
  });

  /** `run` with this sdkLibrary: it must end by itself, non-zero, saying why and naming the path. */
  const runWithLibrary = (sdkLibrary: string): { status: number | null; out: string } => {
    const a = node.makeAgent(env.containerd.nriSocket, { sdkLibrary });
    try {
      const r = spawnSync(process.execPath, [CLI, 'run', '--config', a.configPath], { encoding: 'utf8', timeout: 20000 });
      assert.is(r.signal, null, `exits by itself (not killed by the 20 s guard): ${r.stdout}${r.stderr}`);
      assert.is.not(r.status, 0, `exit code: ${r.status}`);
      const out = `${r.stdout}${r.stderr}`;
      assert.match(out, `cannot load the UB memory SDK ${sdkLibrary}: `, 'names the path');
      // check-config says the same before anyone runs it
      const cc = spawnSync(process.execPath, [CLI, 'check-config', '--config', a.configPath], { encoding: 'utf8', timeout: 20000 });
      assert.is(cc.status, 1, `check-config: ${cc.stdout}${cc.stderr}`);
      assert.match(cc.stderr, `${a.configPath}: backend.sdkLibrary: cannot load the UB memory SDK ${sdkLibrary}: `);
      return { status: r.status, out };
    } finally {
      a.cleanupSync();
    }
  };

  test('a missing SDK library: the agent exits non-zero naming the path', async () => {
    const missing = join(node.dir, 'nope', 'libubsm_sdk.so');
    runWithLibrary(missing);
  });

  test('an SDK library that is not a shared object (text, truncated ELF): the agent exits non-zero naming the path and the reason', async () => {
    const dir = mkdtempSync('/tmp/nrims-badlib-');
    try {
      const text = join(dir, 'libubsm_sdk.so');
      writeFileSync(text, 'this is a text file, not an ELF shared object\n'.repeat(20));
      const r1 = runWithLibrary(text);
      // the loader's reason (dlerror), not only "cannot load"
      assert.match(r1.out, 'not an ELF file', r1.out);
      const trunc = join(dir, 'truncated.so');
      writeFileSync(trunc, readFileSync(SDK_LIB).subarray(0, 4096));
      const r2 = runWithLibrary(trunc);
      // glibc's loader would map past the end and die of SIGBUS: no message, a signal
      assert.match(r2.out, 'truncated: 4096 bytes, but its segments need', r2.out);
      process.stdout.write(`  [ubs] containerd ${env.version}: text file -> ${firstLine(r1.out, text)}\n  [ubs] truncated ELF -> ${firstLine(r2.out, trunc)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a library that loads but lacks the SDK\'s symbols: the agent exits non-zero naming the path and the symbol', async () => {
    const dir = mkdtempSync('/tmp/nrims-badlib-');
    try {
      const src = join(dir, 'empty.c');
      writeFileSync(src, 'int not_the_sdk(void) { return 0; }\n');
      const empty = join(dir, 'libempty.so');
      execFileSync('gcc', ['-shared', '-fPIC', '-o', empty, src]);
      const r1 = runWithLibrary(empty);
      assert.match(r1.out, /symbol ubsmem_\w+/, `names the missing symbol: ${r1.out}`);
      // a library with all but the last function the agent binds: still refused, naming that one
      const part = join(dir, 'part.c');
      writeFileSync(part, ['ubsmem_initialize', 'ubsmem_finalize', 'ubsmem_shmem_allocate', 'ubsmem_shmem_deallocate', 'ubsmem_shmem_map', 'ubsmem_shmem_unmap', 'ubsmem_shmem_lookup'].map((f) => `int ${f}(void) { return 0; }\n`).join(''));
      const partial = join(dir, 'libpartial.so');
      execFileSync('gcc', ['-shared', '-fPIC', '-o', partial, part]);
      const r2 = runWithLibrary(partial);
      assert.match(r2.out, 'symbol ubsmem_shmem_list_lookup', r2.out);
      process.stdout.write(`  [ubs] containerd ${env.version}: no SDK symbols -> ${firstLine(r1.out, empty)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const firstLine = (out: string, needle: string) => out.split('\n').find((l) => l.includes(needle))?.trim() ?? out.trim();
