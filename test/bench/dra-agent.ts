// The DRA front door's cost beside the annotation path's, in one run on real containerd 2.1 (CDI
// on) and Kubernetes' real API server code (stand-in resource.k8s.io/v1 CRDs), against the running
// agent with dra.enabled:
// - NodePrepareResources through the kubelet player (test/harness/kubelet-player.ts, gRPC over the
//   agent's DRA socket) of a new claim for a share already present (another claim holds it): the
//   claim read from the API server, the core's authorization and durable record, the CDI spec write;
//   and NodeUnprepareResources of it (the record ended, the spec removed; the share stays held);
// - claim-get: the GET of that claim alone, from this process with the agent's credentials and the
//   request function the agent's claim reader uses (kept-alive connections, plugin/kube/request.ts),
//   to see how much of a Prepare it is;
// - CreateContainer through CRI: an annotated pod's container binding the same share (the NRI path,
//   what the annotation door costs), a container given the claim's CDI device (the DRA path: the
//   agent is not asked, containerd applies the spec), and a plain container (neither).
// Modes interleave in rounds so the machine's drift hits them alike; containerd's root and state are
// on a tmpfs (as in containerd-latency.ts). Prints p50/p90/p99 and writes test/bench/results/dra-agent.json.
//
//   flock /tmp/nri-memshare-tests.lock node dist/test/bench/dra-agent.js [-n 200] [--rounds 8]
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startContainerd, startKubeApi, uniqueName, type ContainerdInstance, type KubeApi, type RunningPod } from '../harness';
import { KubeletPlayer, type PlayerPlugin } from '../harness/kubelet-player';
import { Agent } from '../e2e/agent';
import { loadKubeconfig } from '../../plugin/kube/kubeconfig';
import { keptAliveRequests, kubeRequest } from '../../plugin/kube/request';
import { DEFAULT_DRIVER_NAME, deviceNameOf } from '../../plugin/dra/devices';
import { mount, umount2, MNT_DETACH } from '../../native';
import { percentiles, fmt, round } from './stats';

const REPO = join(__dirname, '..', '..', '..');
const RESULTS = join(REPO, 'test', 'bench', 'results', 'dra-agent.json');
const args = process.argv.slice(2);
const N = Number(args.includes('-n') ? args[args.indexOf('-n') + 1] : 200);
const ROUNDS = Number(args.includes('--rounds') ? args[args.indexOf('--rounds') + 1] : 8);
const DRIVER = DEFAULT_DRIVER_NAME;
const NODE = 'bench-node';
const NS = 'bench';
const SHARE = 'hot';
const MODES = ['prepare', 'claim-get', 'unprepare', 'create-annotated', 'create-cdi', 'create-plain'] as const;
type Mode = (typeof MODES)[number];
type Doc = Record<string, any>;

async function main(): Promise<void> {
  const base = mkdtempSync('/var/tmp/bench-dra-');
  mount('tmpfs', base, 'tmpfs', 0, 'size=2g,mode=0755');
  const cdiDir = join(base, 'cdi');
  mkdirSync(cdiDir, { mode: 0o755 });
  const kubeletDir = join(base, 'kubelet');
  mkdirSync(join(kubeletDir, 'plugins_registry'), { recursive: true });
  let inst: ContainerdInstance | undefined;
  let api: KubeApi | undefined;
  let agent: Agent | undefined;
  let player: KubeletPlayer | undefined;
  try {
    inst = await startContainerd({ version: '2.1', baseDir: base, cdiSpecDirs: [cdiDir] });
    api = await startKubeApi();
    api.kubectlOk(['apply', '-f', join(REPO, 'test', 'fixtures', 'kube', 'dra-standin-crds.yaml'), '-f', join(REPO, 'packaging', 'kubernetes', 'crd-sharememory.yaml')]);
    api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/resourceclaims.resource.k8s.io', 'crd/resourceslices.resource.k8s.io']);
    const admin = loadKubeconfig(api.adminKubeconfig);
    const send = (method: 'POST' | 'PUT', path: string, body: Doc) => kubeRequest(admin, { method, path, body: JSON.stringify(body) });
    const nodeKubeconfig = api.kubeconfig(`system:node:${NODE}`, ['system:masters']);
    const nodeCreds = loadKubeconfig(nodeKubeconfig);

    agent = new Agent({ nriSocket: inst.nriSocket });
    const config = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Doc;
    config.kubernetes = { kubeconfig: nodeKubeconfig, nodeName: NODE, status: false, events: false };
    config.dra = { enabled: true, registryDir: join(kubeletDir, 'plugins_registry'), pluginDir: join(kubeletDir, 'plugins', DRIVER), cdiDir };
    writeFileSync(agent.configPath, JSON.stringify(config, null, 2));
    player = await KubeletPlayer.start({ registryDir: join(kubeletDir, 'plugins_registry') });
    await agent.start();
    await agent.declare(NS, SHARE, '128Mi');
    const plugin: PlayerPlugin = await player.plugin(DRIVER, 20000);

    /** a claim allocated as the scheduler writes it (not timed) */
    const newClaim = async () => {
      const name = uniqueName('c');
      const res = await send('POST', `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims`, {
        apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim', metadata: { name, namespace: NS },
        spec: { devices: { requests: [{ name: 'mem', exactly: { deviceClassName: DRIVER } }] } },
      });
      if (res.status !== 201) throw new Error(`create claim: ${res.status} ${res.body}`);
      const obj = JSON.parse(res.body) as Doc;
      obj.status = {
        allocation: {
          devices: { results: [{ request: 'mem', driver: DRIVER, pool: NODE, device: deviceNameOf(NS, SHARE), shareID: randomUUID() }] },
          nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [NODE] }] }] },
        },
        reservedFor: [{ resource: 'pods', name: uniqueName('p'), uid: randomUUID() }],
      };
      const put = await send('PUT', `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${name}/status`, obj);
      if (put.status !== 200) throw new Error(`allocate claim: ${put.status} ${put.body}`);
      return { namespace: NS, name, uid: obj.metadata.uid as string };
    };
    const timed = async <T>(f: () => Promise<T>): Promise<[number, T]> => {
      const t = performance.now();
      const v = await f();
      return [performance.now() - t, v];
    };

    // the holder claim keeps the share present; its CDI ids serve the create-cdi mode
    const holder = await newClaim();
    const held = (await plugin.prepare([holder]))[holder.uid];
    if (held.error) throw new Error(`holder claim: ${held.error}`);
    const cdiIds = held.devices.flatMap((d) => d.cdiDeviceIds);
    const cri = inst.cri;
    const podAnnotated: RunningPod = await cri.runPod({ name: uniqueName('ann'), namespace: NS, annotations: { 'memshare.nri.io/pod': SHARE } });
    const podCdi: RunningPod = await cri.runPod({ name: uniqueName('cdi'), namespace: NS });
    const podPlain: RunningPod = await cri.runPod({ name: uniqueName('plain'), namespace: NS });
    const create = async (pod: RunningPod, name: string, cdi?: string[]) => {
      const [ms, id] = await timed(() => cri.createContainer(pod.id, pod.config, { name, command: ['/bin/sleep', '300'], ...(cdi ? { cdiDevices: cdi } : {}) }));
      await cri.removeContainer(id);
      return ms;
    };

    const claimRequests = keptAliveRequests(nodeCreds);
    const samples = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
    const perRound = Math.ceil(N / ROUNDS);
    let k = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < perRound; i++, k++) {
        const ref = await newClaim();
        const [p, ans] = await timed(() => plugin.prepare([ref]));
        if (ans[ref.uid].error) throw new Error(`prepare: ${ans[ref.uid].error}`);
        samples.prepare.push(p);
        const [g, got] = await timed(() => claimRequests.send({ method: 'GET', path: `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${ref.name}` }));
        if (got.status !== 200) throw new Error(`get claim: ${got.status}`);
        samples['claim-get'].push(g);
        const [u, un] = await timed(() => plugin.unprepare([ref]));
        if (un[ref.uid]) throw new Error(`unprepare: ${un[ref.uid]}`);
        samples.unprepare.push(u);
        samples['create-annotated'].push(await create(podAnnotated, `a${k}`));
        samples['create-cdi'].push(await create(podCdi, `d${k}`, cdiIds));
        samples['create-plain'].push(await create(podPlain, `n${k}`));
      }
    }

    const out: Doc = { containerd: inst.version, n: samples.prepare.length, rounds: ROUNDS, machine: { cpus: cpus().length, node: process.version, when: new Date().toISOString() } };
    console.log(`\nDRA front door beside the annotation path, containerd ${inst.version}, ${samples.prepare.length} per mode in ${ROUNDS} interleaved rounds`);
    for (const m of MODES) {
      const p = percentiles(samples[m]);
      console.log(`  ${m.padEnd(17)} ${fmt(p)}`);
      out[m] = { p50Ms: round(p.p50), p90Ms: round(p.p90), p99Ms: round(p.p99) };
    }
    const plain = percentiles(samples['create-plain']);
    const ann = percentiles(samples['create-annotated']);
    const cdi = percentiles(samples['create-cdi']);
    out.annotationAddedMs = { p50: round(ann.p50 - plain.p50), p99: round(ann.p99 - plain.p99) };
    out.cdiAddedMs = { p50: round(cdi.p50 - plain.p50), p99: round(cdi.p99 - plain.p99) };
    console.log(`  the annotation path adds to CreateContainer p50 ${out.annotationAddedMs.p50} ms, p99 ${out.annotationAddedMs.p99} ms; the CDI device (claim prepared before) adds p50 ${out.cdiAddedMs.p50} ms, p99 ${out.cdiAddedMs.p99} ms`);
    mkdirSync(join(REPO, 'test', 'bench', 'results'), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`  written to ${RESULTS}`);
    claimRequests.close();
    await plugin.unprepare([holder]);
  } finally {
    player?.close();
    await agent?.cleanup();
    await inst?.stop();
    await api?.stop();
    umount2(base, MNT_DETACH);
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
