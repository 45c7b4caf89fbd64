// Issue 24.1: the agent's container image (scripts/build-image.sh), run through CRI on real
// containerd 1.7 and 2.1 exactly as the kubelet runs the pod of packaging/kubernetes/daemonset
// (overlays/local, rendered by `kubectl kustomize`): the same host paths, mount propagation, host
// PID namespace, privilege, environment, config from the ConfigMap, resources, all read from the
// rendered manifest by kubelet-pod.ts.
// Stand-ins, as nothing else can run here:
// - for the kubelet: this test's CRI client with kubelet-pod.ts (RunPodSandbox, CreateContainer
//   with attempt+1 for a restart, StopContainer/StopPodSandbox/RemovePodSandbox for a deletion,
//   the readiness probe's GET);
// - for the API server: nothing answers at the KUBERNETES_SERVICE_HOST/PORT the pod gets (the
//   agent's inCluster watch keeps retrying, as while a real one is down), with a token and a CA
//   made here in the projected ServiceAccount volume; ShareMemory objects come from the node's
//   declarations directory, the manifest's hostPath /etc/nri-memshare/shares.d. (The real API
//   server of test/harness/apiserver.ts authenticates client certificates only, and inCluster
//   credentials are a bearer token.)
// - for systemd's shared root mount: the shares' host directory is made a shared mount (the
//   test machine's / is private; containerd refuses Bidirectional on a private mount).
// The manifest's host paths are used as they are (/run/nri-memshare, /var/lib/nri-memshare,
// /var/run/nri, /etc/nri-memshare/shares.d): the test refuses to start if one already holds
// something, and removes what it made.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, importImage, uniqueName, type CriClient, type RunningPod } from '../harness';
import { hostMountPoints, unmountUnder, waitUntil } from './agent';
import { criLogLines, findObject, kubeletPod, kustomize, type ApiStandIn, type DaemonSet, type K8sObject, type KubeletPod } from './kubelet-pod';

const REPO = join(__dirname, '..', '..', '..');
const POD_KEY = 'memshare.nri.io/pod';
const sh = (script: string) => ['/bin/sh', '-c', script];
const SYNCED = /"msg":"nri: synchronized"/;

// ---- the install, rendered; the image, built (its Debian base comes from the cache) ----
const objs: K8sObject[] = kustomize(join(REPO, 'packaging', 'kubernetes', 'daemonset', 'overlays', 'local'));
const ds = findObject<DaemonSet>(objs, 'DaemonSet', 'nri-memshare');
const configVolume = ds.spec.template.spec.volumes?.find((v) => v.configMap);
if (!configVolume?.configMap) throw new Error('the DaemonSet has no ConfigMap volume');
const config = JSON.parse(findObject<K8sObject & { data: Record<string, string> }>(objs, 'ConfigMap', configVolume.configMap.name).data['config.json']) as {
  nri: { socket: string };
  stateDir: string;
  sharesDir: string;
  declarationsDir: string;
};
const agentContainer = ds.spec.template.spec.containers[0];

/** The host path behind a path in the agent's container, through the manifest's mounts. */
function hostPathOf(containerPath: string): string {
  const vm = (agentContainer.volumeMounts ?? [])
    .filter((m) => containerPath === m.mountPath || containerPath.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const hp = vm && ds.spec.template.spec.volumes?.find((v) => v.name === vm.name)?.hostPath;
  if (!vm || !hp) throw new Error(`${containerPath}: no hostPath volume of the manifest holds it`);
  return hp.path + containerPath.slice(vm.mountPath.length);
}
const hostNriSocket = hostPathOf(config.nri.socket);
const hostShares = hostPathOf(config.sharesDir);
const hostState = hostPathOf(config.stateDir);
const hostDecl = hostPathOf(config.declarationsDir);
const sharesVolume = ds.spec.template.spec.volumes!.find(
  (v) => v.name === agentContainer.volumeMounts!.find((m) => m.mountPropagation === 'Bidirectional')?.name,
)!.hostPath!.path;

const work = mkdtempSync('/tmp/nrims-ds-');
const imageTar = join(work, 'image.oci.tar');
const made: string[] = []; // host directories this test created, topmost first (removed at the end)
for (const p of [sharesVolume, hostState, hostDecl, dirname(hostNriSocket)]) {
  if (existsSync(p) && readdirSync(p).length > 0) throw new Error(`${p} exists and is not empty: another nri-memshare on this machine? (the test uses the manifest's host paths)`);
  let top = p;
  while (!existsSync(dirname(top))) top = dirname(top);
  if (!existsSync(p)) made.push(top);
}
execFileSync('bash', [join(REPO, 'scripts', 'build-image.sh'), '--no-build', '--out', imageTar, '--name', agentContainer.image], { stdio: ['ignore', 'ignore', 'inherit'] });

// the API server stand-in: a port nobody listens on, a CA and a token of no use elsewhere
async function apiStandIn(): Promise<ApiStandIn> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=api-stand-in',
    '-keyout', join(work, 'ca.key'), '-out', join(work, 'ca.crt')], { stdio: 'ignore' });
  return { serviceHost: '127.0.0.1', servicePort: port, token: 'stand-in-token', caPem: readFileSync(join(work, 'ca.crt'), 'utf8') };
}

let sharedBind = false;
/** containerd accepts Bidirectional only on a shared mount: make the volume's directory one (systemd's / is). */
function ensureSharedMount(): void {
  execFileSync('mkdir', ['-p', sharesVolume]);
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === sharesVolume);
  if (line && / shared:\d+/.test(line.split(' - ')[0])) return;
  execFileSync('mount', ['--bind', sharesVolume, sharesVolume]);
  execFileSync('mount', ['--make-shared', sharesVolume]);
  sharedBind = true;
}

function cleanupHost(): void {
  unmountUnder(hostShares);
  if (sharedBind) {
    try {
      execFileSync('umount', ['-l', sharesVolume], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    sharedBind = false;
  }
  for (const p of made) rmSync(p, { recursive: true, force: true });
  // state and declarations of a suite must not reach the next one
  for (const p of [hostState, hostDecl]) if (existsSync(p)) for (const e of readdirSync(p)) rmSync(join(p, e), { recursive: true, force: true });
}
process.on('exit', () => {
  try {
    cleanupHost();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

const isMounted = (ns: string, share: string) => hostMountPoints().includes(join(hostShares, ns, share));

/** Writes a ShareMemory file into the node's declarations directory (atomically, as the agent reads it). */
function declare(ns: string, name: string, storage: string): void {
  const obj = { apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name, namespace: ns }, spec: { storage } };
  const tmp = join(hostDecl, `.${ns}-${name}.tmp`);
  writeFileSync(tmp, JSON.stringify(obj));
  renameSync(tmp, join(hostDecl, `${ns}-${name}.json`));
}

/** The agent pod as the kubelet runs it, with its container's attempts. */
class AgentPod {
  pod!: RunningPod;
  containerId = '';
  attempt = -1;
  constructor(
    private readonly cri: CriClient,
    readonly kp: KubeletPod,
  ) {}

  async start(): Promise<void> {
    this.pod = await this.cri.runPodSandbox(this.kp.sandbox);
    await this.startContainer();
  }

  /** a new attempt of the agent container (the kubelet's restart), started and synchronized */
  async startContainer(): Promise<void> {
    this.attempt += 1;
    this.containerId = await this.cri.createContainerFrom(this.pod, this.kp.container(this.attempt));
    await this.cri.startContainer(this.containerId);
    await this.waitLog(SYNCED, 1);
  }

  log(attempt = this.attempt): string[] {
    return criLogLines(this.kp.logPath(attempt));
  }

  async waitLog(re: RegExp, times = 1, timeoutMs = 30000): Promise<void> {
    await waitUntil(() => this.log().filter((l) => re.test(l)).length >= times, timeoutMs, () =>
      `agent (attempt ${this.attempt}) did not log ${re} ${times}x in ${timeoutMs} ms; its log:\n${this.log().slice(-30).join('\n')}`);
  }

  /** `nri-memshare status --json` in the agent's container, as an operator runs it with kubectl exec */
  async status(): Promise<{ shares: Array<{ namespace: string; name: string; holders: Array<{ container: { id: string } }> }> }> {
    const r = await this.cri.execSync(this.containerId, ['nri-memshare', 'status', '--json'], 20);
    assert.is(r.exitCode, 0, `status --json in the agent container: ${r.stderr}`);
    return JSON.parse(r.stdout) as { shares: Array<{ namespace: string; name: string; holders: Array<{ container: { id: string } }> }> };
  }

  async holders(ns: string, share: string): Promise<string[]> {
    return ((await this.status()).shares.find((s) => s.namespace === ns && s.name === share)?.holders ?? []).map((h) => h.container.id).sort();
  }

  /** the agent's process, seen from the host */
  hostPid(): number {
    for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        if (cmd.some((a) => a.endsWith('/usr/lib/nri-memshare/dist/agent/nri-memshare.js')) && cmd.includes('run')) return Number(d);
      } catch {
        // gone
      }
    }
    throw new Error('no containerized agent process found on the host');
  }

  /** the kubelet deleting the pod: stop the container with the pod's grace period, stop and remove the sandbox */
  async remove(): Promise<void> {
    const grace = (ds.spec.template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
    await this.cri.stopContainer(this.containerId, grace);
    await this.cri.stopPod(this.pod.id);
    await this.cri.removePod(this.pod.id);
  }
}

forEachContainerd(
  'daemonset',
  (test, env) => {
    let api: ApiStandIn;
    let agent: AgentPod;
    const kubeletDir = join(work, `kubelet-${env.version}`);
    const newAgentPod = () => new AgentPod(env.cri, kubeletPod(ds, objs, api, kubeletDir));
    /** a share declared on the node (128Mi), once the agent has taken it in */
    const declared = async (ns: string, prefix: string) => {
      const share = uniqueName(prefix);
      declare(ns, share, '128Mi');
      await agent.waitLog(new RegExp(`"change":"added","share":"${ns}/${share}"`));
      return share;
    };
    /** a pod annotated with the share and its running container "main" */
    const app = async (ns: string, share: string) => {
      const pod = await env.cri.runPod({ name: uniqueName('app'), namespace: ns, annotations: { [POD_KEY]: share } });
      return { pod, id: await env.cri.runContainer(pod, { name: 'main' }) };
    };
    const removePods = async (...pods: RunningPod[]) => {
      for (const p of pods) {
        await env.cri.stopPod(p.id);
        await env.cri.removePod(p.id);
      }
    };
    const exec = async (id: string, script: string) => (await env.cri.execSync(id, sh(script), 20)).stdout.trim();

    test('the DaemonSet pod runs the image as the manifest says and the agent registers', async () => {
      assert.is(hostShares, config.sharesDir, 'sharesDir is the same path in the container and on the host (containerd binds it by its host path)');
      assert.is(hostNriSocket, env.containerd.nriSocket);
      ensureSharedMount();
      api = await apiStandIn();
      importImage(env.containerd, imageTar);
      agent = newAgentPod();
      await agent.start();
      // the readiness probe, as the kubelet calls it
      assert.ok(agent.kp.readinessUrl, 'the manifest has a readiness probe');
      const res = await fetch(agent.kp.readinessUrl!);
      assert.is(res.status, 200, `readiness ${agent.kp.readinessUrl}: ${await res.text()}`);
      // host PID namespace, a mount namespace of its own, the unit's capabilities, its node name
      const pid = agent.hostPid();
      assert.is(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync('/proc/self/ns/pid'), 'hostPID: the agent sees host pids');
      assert.is.not(readlinkSync(`/proc/${pid}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'), 'it runs in a container');
      const capEff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
      for (const [cap, bit] of [['CAP_CHOWN', 0], ['CAP_DAC_OVERRIDE', 1], ['CAP_FOWNER', 3], ['CAP_KILL', 5], ['CAP_SYS_ADMIN', 21]] as const) {
        assert.ok((capEff >> BigInt(bit)) & 1n, `${cap} in the agent's effective set`);
      }
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      assert.ok(environ.some((e) => e.startsWith('NODE_NAME=') && e.length > 'NODE_NAME='.length), 'NODE_NAME from the downward API');
    });

    test('annotated pods get and release a share through the containerized agent', async () => {
      const ns = 'ds-a';
      const share = await declared(ns, 's');
      const { pod: pa, id: a } = await app(ns, share);
      const { pod: pb, id: b } = await app(ns, share);
      // the tmpfs the agent mounted inside its container is on the host (Bidirectional)
      assert.ok(isMounted(ns, share), `${join(hostShares, ns, share)} is a mount point on the host`);
      assert.is(await exec(a, `echo from-a > /dev/shm/${share}/msg && echo ok`), 'ok');
      assert.is(await exec(b, `cat /dev/shm/${share}/msg`), 'from-a');
      assert.equal(await agent.holders(ns, share), [a, b].sort());
      await env.cri.stopContainer(a, 1);
      await waitUntil(async () => (await agent.holders(ns, share)).length === 1, 15000, () => 'a still holds the share');
      assert.ok(isMounted(ns, share), 'one of two holders gone: the share stays');
      await env.cri.stopContainer(b, 1);
      await waitUntil(() => !isMounted(ns, share), 15000, () => `share still mounted after its last holder; agent log:\n${agent.log().slice(-20).join('\n')}`);
      await agent.waitLog(new RegExp(`"share":"${ns}/${share}".*"msg":"share released"`));
      await removePods(pa, pb);
    });

    test('a restart of the agent container loses nothing', async () => {
      const ns = 'ds-r';
      const share = await declared(ns, 's');
      const { pod: pc, id: c } = await app(ns, share);
      assert.is(await exec(c, `echo before > /dev/shm/${share}/msg && echo ok`), 'ok');

      // the container dies (SIGKILL, as the OOM killer or a crash); the kubelet starts attempt 1
      await env.cri.stopContainer(agent.containerId, 0);
      assert.ok(isMounted(ns, share), 'the share stays mounted on the host while the agent is down');
      assert.is(await exec(c, `cat /dev/shm/${share}/msg`), 'before');
      // a pod created while the agent is away runs without its share: the restarted agent evicts it
      const { pod: pe, id: e } = await app(ns, share);
      const old = agent.containerId;
      await agent.startContainer();
      await env.cri.removeContainer(old);
      await waitUntil(async () => (await env.cri.containerStatus(e)).state === 'CONTAINER_EXITED', 15000, () =>
        `the container created while the agent was down was not evicted; agent log:\n${agent.log().slice(-20).join('\n')}`);

      assert.ok(isMounted(ns, share));
      assert.equal(await agent.holders(ns, share), [c], 'the binding recorded before the restart is still there');
      const { pod: pd, id: d } = await app(ns, share);
      assert.is(await exec(d, `cat /dev/shm/${share}/msg`), 'before', 'a new pod after the restart sees the same share, data and all');
      // the kubelet recreates the evicted container (its next attempt): now with its share
      const e1 = await env.cri.createContainer(pe.id, pe.config, { name: 'main', attempt: 1 });
      await env.cri.startContainer(e1);
      assert.is(await exec(e1, `cat /dev/shm/${share}/msg`), 'before');

      for (const id of [c, d, e1]) await env.cri.stopContainer(id, 1);
      await waitUntil(() => !isMounted(ns, share), 15000, () => `share not released after its holders ended; agent log:\n${agent.log().slice(-20).join('\n')}`);
      await removePods(pc, pd, pe);
    });

    test('the agent pod removed for good: a share in use stays, the next agent releases it once unused', async () => {
      const ns = 'ds-u';
      const held = await declared(ns, 'held');
      const { pod: pf, id: f } = await app(ns, held);
      assert.is(await exec(f, `echo kept > /dev/shm/${held}/msg && echo ok`), 'ok');

      await agent.remove();
      assert.equal((await env.cri.listPods()).filter((p) => p.id === agent.pod.id), [], 'the agent pod is gone');
      assert.ok(isMounted(ns, held), 'removing the agent pod does not take a share from the container holding it');
      assert.is(await exec(f, `cat /dev/shm/${held}/msg`), 'kept');
      assert.ok(readdirSync(hostState).length > 0, 'the records stay on the node');

      // its holder ends while no agent runs: nothing releases it yet ...
      await env.cri.stopContainer(f, 1);
      assert.ok(isMounted(ns, held));
      // ... the agent installed again finds it unused and releases it
      agent = newAgentPod();
      await agent.start();
      await waitUntil(() => !isMounted(ns, held), 15000, () => `share not released by the new agent; its log:\n${agent.log().slice(-20).join('\n')}`);
      await removePods(pf);
      await agent.remove();
      assert.not.ok(agent.log().some((l) => /"level":"(error|fatal)"/.test(l)), `no errors in the agent log:\n${agent.log().join('\n')}`);
      cleanupHost();
    });
  },
  { nriSocket: hostNriSocket },
);
