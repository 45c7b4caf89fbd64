// The DRA front door end to end, on real containerd 1.7 and 2.1 with CDI on, the real agent (its
// DRA door enabled), and Kubernetes' real API server code (test/harness/apiserver.ts) serving
// ResourceClaim, ResourceSlice and DeviceClass as stand-in CRDs whose schemas follow
// k8s.io/api/resource/v1 (test/fixtures/kube/dra-standin-crds.yaml).
// Two stand-ins, named:
// - the scheduler: no scheduler runs here, so the test writes each claim's allocation the way the
//   scheduler does (GET the claim, set status.allocation {devices.results, nodeSelector} and
//   reservedFor, PUT .../status), naming the share's device from the ResourceSlice the agent
//   published for this node (plugin/dra/devices.ts names it). It checks neither the slice's
//   counters (the node limit) nor the class's selectors: the driver's own checks are tested;
// - the kubelet: test/harness/kubelet-player.ts speaks the kubelet's side of the real protocol
//   (registration through the registry socket, GetInfo, NotifyRegistrationStatus, then
//   NodePrepareResources / NodeUnprepareResources over gRPC); the test then makes the CRI calls
//   the kubelet makes, RunPodSandbox and CreateContainer with the returned CDI ids in
//   ContainerConfig.CDI_devices, and unprepares after the pod is removed, as the kubelet does.
// On 2.1 also the UB backend (ubs-env.ts: the SDK double and the daemon stand-in in place of the
// vendor's SDK and daemon) with its injection delivered through the claim's CDI spec.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, selectedVersions, startKubeApi, uniqueName, type KubeApi, type RunningPod } from '../harness';
import { KubeletPlayer, type PlayerPlugin, type PrepareAnswer } from '../harness/kubelet-player';
import { Agent, waitUntil, retry } from './agent';
import { DAEMON_GID, UBS_IMAGE, UbsNode, importUbsImage, ociSpec, parseConsumer } from './ubs-env';
import { DEFAULT_DRIVER_NAME, deviceNameOf } from '../../plugin/dra/devices';
import { UB_POOL_LABEL } from '../../plugin/dra/slices';
import type { ClaimRef } from '../../plugin/dra/types';

const REPO = join(__dirname, '..', '..', '..');
const CRDS = join(REPO, 'test', 'fixtures', 'kube', 'dra-standin-crds.yaml');
const SHAREMEMORY_CRD = join(REPO, 'packaging', 'kubernetes', 'crd-sharememory.yaml');
const DRIVER = DEFAULT_DRIVER_NAME;
const NODE = 'dra-node';
const POD_KEY = 'memshare.nri.io/pod';
type Doc = Record<string, any>;

/** The labels of the test's node: it is in the UB pool "default" (memshare.nri.io/ub-pool). */
const NODE_LABELS: Record<string, string> = { [UB_POOL_LABEL]: 'default' };

/** Whether a slice's node selection takes this node (its nodeName, or a nodeSelector term of In/Exists expressions). */
function sliceReachesNode(spec: Doc): boolean {
  if (spec.nodeName !== undefined) return spec.nodeName === NODE;
  if (spec.allNodes === true) return true;
  const terms = (spec.nodeSelector?.nodeSelectorTerms ?? []) as Doc[];
  return terms.some((t) => ((t.matchExpressions ?? []) as Doc[]).every((e) =>
    e.operator === 'Exists' ? e.key in NODE_LABELS : e.operator === 'In' && (e.values as string[]).includes(NODE_LABELS[e.key as string] as string)));
}

/**
 * The device the scheduler would allocate for a share: from the published ResourceSlices that
 * reach this node (its own pool, or on UB the pool spanning the UB pool's nodes).
 */
async function publishedDevice(api: KubeApi, agent: Agent, shareNs: string, share: string): Promise<{ pool: string; device: string }> {
  const want = deviceNameOf(shareNs, share);
  let found: { pool: string; device: string } | undefined;
  await waitUntil(() => {
    const list = JSON.parse(api.kubectlOk(['get', 'resourceslices', '-o', 'json', `--field-selector=spec.driver=${DRIVER}`])) as Doc;
    for (const sl of (list.items as Doc[]).filter((x) => sliceReachesNode(x.spec as Doc))) {
      const d = (sl.spec.devices as Doc[] | undefined)?.find((x) => x.name === want);
      if (d) found = { pool: sl.spec.pool.name as string, device: d.name as string };
    }
    return found !== undefined;
  }, 15000, () => `share ${shareNs}/${share} (device ${want}) not in this node's ResourceSlices; agent log tail:\n${agent.output().slice(-1500)}`);
  return found!;
}

/**
 * A ResourceClaim asking for one device of the driver's class, allocated as the scheduler does:
 * the device this node publishes for the share, written into status.allocation by a PUT of the
 * status subresource. The scheduler would also check the slice's counters (the node limit) and
 * the class's selectors; this stand-in does not, so the driver's own checks are what is tested.
 */
async function allocate(api: KubeApi, agent: Agent, share: string, claimNs: string, shareNs: string): Promise<ClaimRef> {
  const { pool, device } = await publishedDevice(api, agent, shareNs, share);
  const name = uniqueName('claim');
  const claim = {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name, namespace: claimNs },
    spec: { devices: { requests: [{ name: 'mem', exactly: { deviceClassName: DRIVER } }] } },
  };
  const created = JSON.parse(api.kubectlOk(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(claim) })) as Doc;
  created.status = {
    allocation: {
      devices: { results: [{ request: 'mem', driver: DRIVER, pool, device, shareID: randomUUID() }] },
      nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [NODE] }] }] },
      allocationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    },
    reservedFor: [{ resource: 'pods', name: uniqueName('pod'), uid: randomUUID() }],
  };
  api.kubectlOk(['replace', '--subresource=status', '-f', '-'], { input: JSON.stringify(created) });
  return { namespace: claimNs, name, uid: created.metadata.uid as string };
}

const parseConsumerOf = (r: { exitCode: number; stdout: string; stderr: string }) => parseConsumer(r.exitCode, r.stdout, r.stderr);

// CDI specs land in a directory of the test's own, named in containerd's config at start
const cdiDir = mkdtempSync('/tmp/nrims-dra-cdi-');
process.on('exit', () => rmSync(cdiDir, { recursive: true, force: true }));

forEachContainerd('DRA front door', (test, env) => {
  let api: KubeApi;
  let agent: Agent;
  let player: KubeletPlayer;
  let kubeletDir: string;
  const ns = 'team-d';

  /** the agent, its DRA door on, as node NODE with a client certificate of the allowed group */
  function draAgent(): Agent {
    const a = new Agent({ nriSocket: env.containerd.nriSocket, metricsAddress: '127.0.0.1:0', limits: { minShareBytes: '1Mi', maxShareBytes: '64Mi', maxNodeBytes: '64Mi' } });
    const config = JSON.parse(readFileSync(a.configPath, 'utf8')) as Doc;
    config.kubernetes = { kubeconfig: api.kubeconfig(`system:node:${NODE}`, ['system:masters', 'system:nodes']), nodeName: NODE, status: false, events: false };
    config.dra = {
      enabled: true,
      registryDir: join(kubeletDir, 'plugins_registry'),
      pluginDir: join(kubeletDir, 'plugins', DRIVER),
      cdiDir,
    };
    writeFileSync(a.configPath, JSON.stringify(config, null, 2));
    return a;
  }

  const allocatedClaim = (share: string, claimNs = ns, shareNs = claimNs) => allocate(api, agent, share, claimNs, shareNs);

  async function plugin(): Promise<PlayerPlugin> {
    return player.plugin(DRIVER, 20000);
  }

  async function prepareOne(ref: { namespace: string; name: string; uid: string }): Promise<PrepareAnswer> {
    const answers = await (await plugin()).prepare([ref]);
    assert.equal(Object.keys(answers), [ref.uid], 'one answer, keyed by the claim uid');
    return answers[ref.uid];
  }

  function cdiIds(a: PrepareAnswer): string[] {
    assert.is(a.error, '', `Prepare failed: ${a.error}`);
    const ids = a.devices.flatMap((d) => d.cdiDeviceIds);
    assert.ok(ids.length > 0, `CDI ids: ${JSON.stringify(a)}`);
    return ids;
  }

  /** RunPodSandbox and CreateContainer/StartContainer with the claim's CDI devices, as the kubelet does. */
  async function podWithClaim(ids: string[], podNs = ns): Promise<{ pod: RunningPod; id: string }> {
    const pod = await env.cri.runPod({ name: uniqueName('dra'), namespace: podNs });
    const id = await env.cri.runContainer(pod, { name: 'main', command: ['/bin/sleep', '3600'], cdiDevices: ids });
    return { pod, id };
  }

  async function removePod(pod: RunningPod): Promise<void> {
    await env.cri.stopPod(pod.id);
    await env.cri.removePod(pod.id);
  }

  test('the agent serves the DRA door: the kubelet player registers it through the registry socket', async () => {
    kubeletDir = mkdtempSync('/tmp/nrims-kubelet-');
    mkdirSync(join(kubeletDir, 'plugins_registry'));
    api = await startKubeApi();
    api.kubectlOk(['apply', '-f', CRDS, '-f', SHAREMEMORY_CRD]);
    api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/resourceclaims.resource.k8s.io', 'crd/resourceslices.resource.k8s.io', 'crd/sharememories.resource.ubsvirt.huawei.com']);
    player = await KubeletPlayer.start({ registryDir: join(kubeletDir, 'plugins_registry') });
    agent = draAgent();
    await agent.start();
    const p = await plugin();
    assert.is(p.service, 'v1.DRAPlugin', 'a 1.34+ kubelet picks v1');
    assert.is(p.endpoint, join(kubeletDir, 'plugins', DRIVER, 'dra.sock'));
    await waitUntil(() => /"msg":"dra: registered with the kubelet"/.test(agent.output()), 10000, () => `no registration in the log:\n${agent.output().slice(-2000)}`);
    // readiness as monitoring sees it
    const address = /"address":"([^"]+)","msg":"metrics: listening"/.exec(agent.output())?.[1];
    assert.ok(address, 'the metrics address is logged');
    const text = await (await fetch(`http://${address}/metrics`)).text();
    assert.match(text, /^nri_memshare_dra_registered 1$/m);
    // and as the node admin sees it (agent-state.json is rewritten every 5 s at the latest)
    const want = `dra: registered with the kubelet as ${DRIVER}, serving ${p.endpoint}`;
    await waitUntil(() => agent.statusTable().includes(want), 10000, () => `status lacks "${want}":\n${agent.statusTable()}`);
    const st = agent.status();
    assert.equal(st.agent.running && st.agent.dra, { driverName: DRIVER, registration: 'registered', registrationSocket: join(kubeletDir, 'plugins_registry', `${DRIVER}-reg.sock`), endpoint: p.endpoint, lastError: null });
  });

  test('two pods through one claim share bytes; Unprepare after both pods are gone releases the share', async () => {
    const share = uniqueName('s');
    await agent.declare(ns, share, '8Mi');
    const ref = await allocatedClaim(share);
    const ids = cdiIds(await prepareOne(ref));
    assert.ok(agent.isMounted(ns, share), 'Prepare made the share present');
    const a = await podWithClaim(ids);
    const b = await podWithClaim(ids);
    const w = await env.cri.execSync(a.id, ['sh', '-c', `echo from-a > /dev/shm/${share}/f`]);
    assert.is(w.exitCode, 0, w.stderr);
    const r = await env.cri.execSync(b.id, ['cat', `/dev/shm/${share}/f`]);
    assert.is(r.stdout, 'from-a\n', `pod b reads pod a's bytes: ${r.stderr}`);
    const df = await env.cri.execSync(b.id, ['df', '-k', `/dev/shm/${share}`]);
    assert.match(df.stdout, /\s8192\s/, `an 8 MiB tmpfs: ${df.stdout}`);
    await removePod(a.pod);
    await removePod(b.pod);
    assert.ok(agent.isMounted(ns, share), 'the claim still holds it with no pod left');
    const un = await (await plugin()).unprepare([ref]);
    assert.equal(un, { [ref.uid]: '' });
    await agent.waitMounted(ns, share, false);
  });

  test('Prepare twice gives the same answer; Unprepare of an unknown claim succeeds', async () => {
    const share = uniqueName('twice');
    await agent.declare(ns, share, '4Mi');
    const ref = await allocatedClaim(share);
    const first = await prepareOne(ref);
    const second = await prepareOne(ref);
    assert.equal(second, first, 'idempotent');
    cdiIds(first);
    const unknown = { namespace: ns, name: 'never-prepared', uid: randomUUID() };
    assert.equal(await (await plugin()).unprepare([unknown]), { [unknown.uid]: '' });
    assert.equal(await (await plugin()).unprepare([ref]), { [ref.uid]: '' });
    assert.equal(await (await plugin()).unprepare([ref]), { [ref.uid]: '' }, 'unprepared again: nothing to do');
    await agent.waitMounted(ns, share, false);
  });

  test('a claim for a share its namespace may not use gets a per-claim error; the other claim of the call is prepared', async () => {
    const closed = uniqueName('closed');
    const open = uniqueName('open');
    await agent.declare(ns, closed, '4Mi', ['team-other']);
    await agent.declare(ns, open, '4Mi', ['team-x']);
    const refused = await allocatedClaim(closed, 'team-x', ns);
    const fine = await allocatedClaim(open, 'team-x', ns);
    const answers = await (await plugin()).prepare([refused, fine]);
    assert.equal(Object.keys(answers).sort(), [refused.uid, fine.uid].sort());
    assert.match(answers[refused.uid].error, new RegExp(`team-x/${refused.name}`), 'the error names the claim');
    assert.match(answers[refused.uid].error, /namespace|allowed/i);
    assert.equal(answers[refused.uid].devices, []);
    cdiIds(answers[fine.uid]);
    assert.not.ok(agent.isMounted(ns, closed), 'nothing made for the refused claim');
    assert.equal(await (await plugin()).unprepare([refused, fine]), { [refused.uid]: '', [fine.uid]: '' });
  });

  test('the node limit reached: the claim that would pass it gets an error, nothing runs without its share', async () => {
    const big = uniqueName('big');
    const more = uniqueName('more');
    await agent.declare(ns, big, '48Mi');
    await agent.declare(ns, more, '32Mi');
    const held = await allocatedClaim(big);
    cdiIds(await prepareOne(held));
    const over = await allocatedClaim(more);
    const a = await prepareOne(over);
    assert.match(a.error, new RegExp(`ResourceClaim ${ns}/${over.name}: .*more than the 64 MiB allowed`), `refused at the node limit, naming the claim: ${JSON.stringify(a)}`);
    assert.equal(a.devices, []);
    assert.not.ok(agent.isMounted(ns, more));
    assert.equal(await (await plugin()).unprepare([held, over]), { [held.uid]: '', [over.uid]: '' });
    await agent.waitMounted(ns, big, false);
  });

  test('one share held by a claim and by an annotated pod: released only after both let go', async () => {
    const share = uniqueName('both');
    await agent.declare(ns, share, '4Mi');
    const ref = await allocatedClaim(share);
    const ids = cdiIds(await prepareOne(ref));
    const viaClaim = await podWithClaim(ids);
    const annotated = await env.cri.runPod({ name: uniqueName('ann'), namespace: ns, annotations: { [POD_KEY]: share } });
    const c = await env.cri.runContainer(annotated, { name: 'main', command: ['/bin/sleep', '3600'] });
    const st = agent.shareStatus(ns, share);
    assert.equal([st?.holders.length, st?.claims.map((x) => x.claim.uid)], [1, [ref.uid]], 'status: one container and one claim hold it');
    assert.is((await env.cri.execSync(viaClaim.id, ['sh', '-c', `echo shared > /dev/shm/${share}/g`])).exitCode, 0);
    assert.is((await env.cri.execSync(c, ['cat', `/dev/shm/${share}/g`])).stdout, 'shared\n', 'one share, two doors');
    await removePod(viaClaim.pod);
    assert.equal(await (await plugin()).unprepare([ref]), { [ref.uid]: '' });
    assert.ok(agent.isMounted(ns, share), 'the annotated pod still holds it');
    assert.is((await env.cri.execSync(c, ['cat', `/dev/shm/${share}/g`])).stdout, 'shared\n');
    await removePod(annotated);
    await agent.waitMounted(ns, share, false);
  });

  test('the agent killed between Prepare and CreateContainer: the container gets its share, the claim record survives reconcile', async () => {
    const share = uniqueName('kill');
    await agent.declare(ns, share, '4Mi');
    const ref = await allocatedClaim(share);
    const before = await prepareOne(ref);
    const ids = cdiIds(before);
    await agent.stop('SIGKILL');
    const a = await podWithClaim(ids);
    assert.is((await env.cri.execSync(a.id, ['sh', '-c', `echo kept > /dev/shm/${share}/h && cat /dev/shm/${share}/h`])).stdout, 'kept\n', 'the share through CDI with the agent down');
    await agent.start();
    await waitUntil(() => /"msg":"reconciled with the runtime"/.test(agent.proc!.output()), 20000, () => `no reconcile:\n${agent.output().slice(-2000)}`);
    assert.ok(agent.isMounted(ns, share), 'reconcile kept the claim\'s share');
    assert.equal(agent.shareStatus(ns, share)?.claims.map((x) => x.claim.uid), [ref.uid], 'the claim record survived the kill and the reconcile');
    const again = await retry(() => prepareOne(ref).then((x) => (x.error ? Promise.reject(new Error(x.error)) : x)), 20000);
    assert.equal(again, before, 'prepared again after the restart: the same answer from the record');
    await removePod(a.pod);
    assert.equal(await (await plugin()).unprepare([ref]), { [ref.uid]: '' });
    await agent.waitMounted(ns, share, false);
  });

  test('the agent down while a pod starts: Prepare fails and is retried, nothing runs without its share; it succeeds once the agent is back', async () => {
    const share = uniqueName('down');
    await agent.declare(ns, share, '4Mi');
    const ref = await allocatedClaim(share);
    await agent.stop('SIGTERM');
    await waitUntil(() => !player.registered(DRIVER), 10000, () => 'the registration socket stayed after an orderly stop');
    // the kubelet's Prepare finds no plugin (or one that does not answer): it retries and starts no container
    const failed = await player.plugin(DRIVER, 1000).then((p) => p.prepare([ref], 2000)).then(() => 'answered', (e: unknown) => String(e));
    assert.match(failed, /did not register|UNAVAILABLE|No connection|DEADLINE/i);
    assert.not.ok(agent.isMounted(ns, share), 'no share made while the agent is down');
    await agent.start();
    const answer = await retry(() => prepareOne(ref).then((x) => (x.error ? Promise.reject(new Error(x.error)) : x)), 20000);
    const a = await podWithClaim(cdiIds(answer));
    const df = await env.cri.execSync(a.id, ['df', '-k', `/dev/shm/${share}`]);
    assert.match(df.stdout, /\s4096\s/, `the pod runs with its share: ${df.stdout}`);
    await removePod(a.pod);
    assert.equal(await (await plugin()).unprepare([ref]), { [ref.uid]: '' });
    await agent.waitMounted(ns, share, false);
  });

  test('cleanup', async () => {
    player?.close();
    await agent?.cleanup();
    await api?.stop();
    if (kubeletDir) rmSync(kubeletDir, { recursive: true, force: true });
    assert.equal(agent.errorLines(), [], 'no errors in the agent log');
    assert.not.ok(existsSync(join(kubeletDir, 'plugins_registry')), 'the kubelet dir removed');
  });
}, { cdiSpecDirs: [cdiDir] });

// The UB backend's injection through the claim's CDI spec, on containerd 2.1 only (1.7 takes no
// groups through NRI; the UB files say why): the UB node of ubs-env.ts (the SDK double, the daemon
// stand-in, the glibc image), the agent on the ubs backend with its DRA door on, the claim's CDI
// spec carrying what the annotation path injects (device nodes, libraries, socket, environment,
// the daemon's group through the backend's own CDI device).
if (selectedVersions().includes('2.1')) {
  const ub = new UbsNode();
  forEachContainerd('DRA front door, UB backend', (test, env) => {
    let api: KubeApi;
    let player: KubeletPlayer;
    let kubeletDir: string;
    const ns = 'team-dub';
    const agent = () => ub.agent!;

    test('the UB node\'s agent serves the DRA door', async () => {
      importUbsImage(env.containerd);
      await ub.start();
      kubeletDir = mkdtempSync('/tmp/nrims-kubelet-');
      mkdirSync(join(kubeletDir, 'plugins_registry'));
      api = await startKubeApi();
      api.kubectlOk(['apply', '-f', CRDS, '-f', SHAREMEMORY_CRD]);
      api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/resourceclaims.resource.k8s.io', 'crd/resourceslices.resource.k8s.io', 'crd/sharememories.resource.ubsvirt.huawei.com']);
      player = await KubeletPlayer.start({ registryDir: join(kubeletDir, 'plugins_registry') });
      const a = ub.makeAgent(env.containerd.nriSocket);
      const config = JSON.parse(readFileSync(a.configPath, 'utf8')) as Doc;
      config.kubernetes = { kubeconfig: api.kubeconfig(`system:node:${NODE}`, ['system:masters']), nodeName: NODE, status: false, events: false };
      config.dra = { enabled: true, registryDir: join(kubeletDir, 'plugins_registry'), pluginDir: join(kubeletDir, 'plugins', DRIVER), cdiDir: ub.cdiDir };
      writeFileSync(a.configPath, JSON.stringify(config, null, 2));
      ub.agent = a;
      await a.start();
      await a.proc!.waitFor(/ubs: connected to the UB memory daemon/, 1, 15000);
      await player.plugin(DRIVER, 20000);
    });

    test('a claim for a UB share: the container gets the share\'s device nodes, libraries, socket, environment and the daemon group through CDI', async () => {
      const share = uniqueName('ub');
      await agent().declare(ns, share, '128Mi');
      const ref = await allocate(api, agent(), share, ns, ns);
      const answer = (await (await player.plugin(DRIVER)).prepare([ref]))[ref.uid];
      assert.is(answer.error, '', answer.error);
      const ids = answer.devices.flatMap((d) => d.cdiDeviceIds);
      const sdk = `nms.${ns}.${share}`;
      const info = ub.consumer(['--sdk-name', sdk, 'info']);
      assert.is(info.status, 0, `Prepare allocated the share in the pool: ${info.out}`);
      const memids = info.json.memids as number[];
      const pod = await env.cri.runPod({ name: uniqueName('dub'), namespace: ns });
      const id = await env.cri.runContainer(pod, { name: 'main', image: UBS_IMAGE, runAsUser: 4178, runAsGroup: 4178, cdiDevices: ids });
      const s = ociSpec(env.containerd, id);
      assert.equal((s.linux.devices ?? []).filter((d) => d.major === ub.major).map((d) => [d.path, d.minor]).sort(), memids.map((m) => [`/dev/obmm_shmdev${m}`, m]).sort(), 'one device node per memid');
      const envs = new Map(s.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      assert.is(envs.get('MEMSHARE_UBS_SHARES'), `${share}=${sdk}`);
      assert.is(envs.get('MEMSHARE_UBS_DAEMON_ACCESS'), '1', 'the backend\'s CDI device for the daemon group');
      assert.ok(s.process.user.additionalGids?.includes(DAEMON_GID), `daemon gid: ${JSON.stringify(s.process.user)}`);
      assert.ok(s.mounts.some((m) => m.destination === '/run/matrix/memory' && m.source === ub.socketDir), 'the daemon socket dir');
      const w = parseConsumerOf(await env.cri.execSync(id, ['/usr/local/bin/ubsm-consumer', 'write', share, '0', 'via-claim'], 30));
      assert.is(w.status, 0, `the container maps and writes its share: ${w.out}`);
      const rd = ub.consumer(['--sdk-name', sdk, 'read', '0', '9']);
      assert.match(rd.out, /via-claim/, `the bytes are in the pool: ${rd.out}`);
      await env.cri.stopPod(pod.id);
      await env.cri.removePod(pod.id);
      assert.equal(await (await player.plugin(DRIVER)).unprepare([ref]), { [ref.uid]: '' });
      await waitUntil(() => !ub.shares().includes(sdk), 15000, () => `share ${sdk} still in the pool after Unprepare; agent log tail:\n${agent().output().slice(-2000)}`);
    });

    test('cleanup', async () => {
      player?.close();
      assert.equal(agent().errorLines(), [], 'no errors in the agent log');
      assert.equal(ub.shares(), [], 'no share left in the pool');
      await ub.cleanup();
      await api?.stop();
      if (kubeletDir) rmSync(kubeletDir, { recursive: true, force: true });
    });
  }, { versions: ['2.1'], cdiSpecDirs: [ub.cdiDir] });
}
