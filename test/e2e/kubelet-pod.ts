// Stands in for the kubelet: turns the pod template of a rendered DaemonSet (the output of
// `kubectl kustomize`) into the CRI RunPodSandbox and CreateContainer requests the kubelet sends for
// it, and makes the volumes ready on the host as the kubelet does (hostPath by its type, a
// ConfigMap's keys as files, the ServiceAccount's projected token). Everything comes from the
// manifest: a field it does not know how to translate is an error, never dropped, so a manifest
// change the test cannot honour fails the test instead of being skipped silently.
// Left out, as they do not reach the agent: the pod's cgroup parent (the harness's containerd runs
// pods at the top), /etc/hosts and /etc/resolv.conf management, probes' timing (the test calls the
// readiness probe itself, see readinessUrl).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseQuantityBytes } from '../../plugin/model/quantity';
import type { ContainerConfig, CriMount, MountPropagation, NamespaceOption, PodSandboxConfig } from '../harness';
import { kubeToolsBinDir } from '../harness';

// manifest objects: only the fields read here are typed; the rest are checked against KNOWN_*
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}
interface VolumeMount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string; subPath?: string }
interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[]; drop?: string[] }; runAsUser?: number; runAsGroup?: number };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: { httpGet?: { host?: string; port: number; path?: string } };
  terminationMessagePath?: string;
  [k: string]: unknown;
}
interface Volume { name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string; optional?: boolean } }
export interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  hostPID?: boolean;
  hostNetwork?: boolean;
  hostIPC?: boolean;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  [k: string]: unknown;
}
export interface DaemonSet extends K8sObject {
  spec: { template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}

const KNOWN_POD = new Set(['containers', 'volumes', 'hostPID', 'hostNetwork', 'hostIPC', 'serviceAccountName', 'automountServiceAccountToken',
  'priorityClassName', 'tolerations', 'terminationGracePeriodSeconds', 'dnsPolicy', 'nodeSelector']);
const KNOWN_CONTAINER = new Set(['name', 'image', 'imagePullPolicy', 'command', 'args', 'workingDir', 'env', 'volumeMounts', 'securityContext',
  'resources', 'readinessProbe', 'terminationMessagePath']);

/** kubectl, as test/harness/fetch-kube-tools.sh unpacks it into the cache. */
export function kubectl(): string {
  const k = join(kubeToolsBinDir(), 'kubectl');
  if (!existsSync(k)) throw new Error(`${k} is missing: run "bash test/harness/fetch-kube-tools.sh" first`);
  return k;
}

/** `kubectl kustomize DIR`, as parsed objects. */
export function kustomize(dir: string): K8sObject[] {
  const out = execFileSync(kubectl(), ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(out).map((d) => {
    if (d.errors.length) throw new Error(`kubectl kustomize ${dir}: ${d.errors.map(String).join('; ')}`);
    return d.toJS() as K8sObject;
  });
}

export function findObject<T extends K8sObject>(objs: K8sObject[], kind: string, name?: string): T {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`rendered manifest: ${found.length} ${kind}${name ? ` named ${name}` : ''} (expected exactly one)`);
  return found[0] as T;
}

/** What the API server would give the pod: the in-cluster service env and the token's contents. */
export interface ApiStandIn {
  /** KUBERNETES_SERVICE_HOST / _PORT as the kubelet sets them in every container */
  serviceHost: string;
  servicePort: number;
  token: string;
  caPem: string;
}

export interface KubeletPod {
  sandbox: PodSandboxConfig;
  /** one CreateContainer config per attempt (the kubelet bumps attempt on every restart) */
  container(attempt: number): ContainerConfig;
  /** the container's log file of that attempt, as the kubelet asks containerd to write it */
  logPath(attempt: number): string;
  /** the readiness probe's URL (httpGet), if the container has one */
  readinessUrl?: string;
}

const PROPAGATION: Record<string, MountPropagation> = {
  None: 'PROPAGATION_PRIVATE',
  HostToContainer: 'PROPAGATION_HOST_TO_CONTAINER',
  Bidirectional: 'PROPAGATION_BIDIRECTIONAL',
};

/** kubelet's milli-CPU to cgroup v1 shares (at least 2). */
function cpuShares(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const milli = q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000;
  if (!Number.isFinite(milli)) throw new Error(`cpu quantity ${JSON.stringify(q)}: not understood`);
  return Math.max(2, Math.floor((milli * 1024) / 1000));
}

/**
 * Prepares the pod of `ds` on this host the way the kubelet does, under `kubeletDir` (its
 * /var/lib/kubelet and /var/log/pods), with ConfigMaps from `objs`.
 */
export function kubeletPod(ds: DaemonSet, objs: K8sObject[], api: ApiStandIn, kubeletDir: string): KubeletPod {
  const pod = ds.spec.template.spec;
  for (const k of Object.keys(pod)) if (!KNOWN_POD.has(k)) throw new Error(`pod spec field ${k}: the kubelet stand-in does not translate it`);
  if (pod.containers.length !== 1) throw new Error(`the kubelet stand-in runs one container, the pod has ${pod.containers.length}`);
  const c = pod.containers[0];
  for (const k of Object.keys(c)) if (!KNOWN_CONTAINER.has(k)) throw new Error(`container field ${k}: the kubelet stand-in does not translate it`);
  const ns = ds.metadata.namespace ?? 'default';
  const name = `${ds.metadata.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
  const uid = randomBytes(16).toString('hex');
  const podDir = join(kubeletDir, 'pods', uid);
  const logDir = join(kubeletDir, 'log', `${ns}_${name}_${uid}`);
  mkdirSync(podDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });

  const nsOpts: NamespaceOption = {
    network: pod.hostNetwork ? 'NODE' : 'POD',
    pid: pod.hostPID ? 'NODE' : 'CONTAINER',
    ipc: pod.hostIPC ? 'NODE' : 'POD',
  };
  const privileged = c.securityContext?.privileged === true;
  const sandbox: PodSandboxConfig = {
    metadata: { name, uid, namespace: ns, attempt: 0 },
    hostname: '',
    log_directory: logDir,
    labels: { ...(ds.spec.template.metadata?.labels ?? {}), 'io.kubernetes.pod.name': name, 'io.kubernetes.pod.namespace': ns, 'io.kubernetes.pod.uid': uid },
    annotations: { ...(ds.spec.template.metadata?.annotations ?? {}) },
    linux: { cgroup_parent: '', security_context: { namespace_options: nsOpts, privileged } },
  };

  // volumes, made ready on the host
  const volumes = new Map<string, string>();
  for (const v of pod.volumes ?? []) {
    if (v.hostPath) {
      const t = v.hostPath.type ?? '';
      if (t === 'DirectoryOrCreate') mkdirSync(v.hostPath.path, { recursive: true, mode: 0o755 });
      else if (t === 'Directory') {
        if (!existsSync(v.hostPath.path) || !statSync(v.hostPath.path).isDirectory()) throw new Error(`volume ${v.name}: hostPath ${v.hostPath.path} is not a directory (type Directory)`);
      } else if (t !== '') throw new Error(`volume ${v.name}: hostPath type ${t} is not translated`);
      volumes.set(v.name, v.hostPath.path);
    } else if (v.configMap) {
      const cm = findObject<K8sObject & { data?: Record<string, string> }>(objs, 'ConfigMap', v.configMap.name);
      const dir = join(podDir, 'volumes', 'configmap', v.name);
      mkdirSync(dir, { recursive: true });
      for (const [k, val] of Object.entries(cm.data ?? {})) writeFileSync(join(dir, k), val);
      volumes.set(v.name, dir);
    } else {
      throw new Error(`volume ${v.name}: only hostPath and configMap volumes are translated`);
    }
  }
  const mounts: CriMount[] = [];
  for (const m of c.volumeMounts ?? []) {
    if (m.subPath) throw new Error(`volumeMount ${m.name}: subPath is not translated`);
    const host = volumes.get(m.name);
    if (!host) throw new Error(`volumeMount ${m.name}: no such volume`);
    const propagation = PROPAGATION[m.mountPropagation ?? 'None'];
    if (!propagation) throw new Error(`volumeMount ${m.name}: mountPropagation ${m.mountPropagation} unknown`);
    mounts.push({ container_path: m.mountPath, host_path: host, readonly: m.readOnly === true, propagation });
  }
  // the ServiceAccount's token, projected (automountServiceAccountToken defaults to true)
  if (pod.automountServiceAccountToken !== false) {
    const sa = join(podDir, 'volumes', 'projected', 'kube-api-access');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), api.token);
    writeFileSync(join(sa, 'ca.crt'), api.caPem);
    writeFileSync(join(sa, 'namespace'), ns);
    mounts.push({ container_path: '/var/run/secrets/kubernetes.io/serviceaccount', host_path: sa, readonly: true, propagation: 'PROPAGATION_PRIVATE' });
  }

  const envs = [
    ...(c.env ?? []).map((e) => {
      if (e.value !== undefined) return { key: e.name, value: e.value };
      if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') return { key: e.name, value: hostname() };
      throw new Error(`env ${e.name}: only values and fieldRef spec.nodeName are translated`);
    }),
    // what the kubelet adds to every container for the default "kubernetes" Service
    { key: 'KUBERNETES_SERVICE_HOST', value: api.serviceHost },
    { key: 'KUBERNETES_SERVICE_PORT', value: String(api.servicePort) },
    { key: 'KUBERNETES_SERVICE_PORT_HTTPS', value: String(api.servicePort) },
  ];
  const sc = c.securityContext ?? {};
  // kubelet: a system-node-critical pod gets the guaranteed class's OOM score adjustment
  const oomScoreAdj = pod.priorityClassName === 'system-node-critical' ? -997 : undefined;
  const memLimit = c.resources?.limits?.memory;
  const container = (attempt: number): ContainerConfig => {
    // the termination message file, one per attempt, as the kubelet mounts it
    const termDir = join(podDir, 'containers', c.name);
    mkdirSync(termDir, { recursive: true });
    const term = join(termDir, `${attempt}-termination-log`);
    writeFileSync(term, '');
    const cfg: ContainerConfig = {
      metadata: { name: c.name, attempt },
      image: { image: c.image },
      command: c.command ?? [],
      args: c.args ?? [],
      working_dir: c.workingDir ?? '',
      envs,
      mounts: [...mounts, { container_path: c.terminationMessagePath ?? '/dev/termination-log', host_path: term, readonly: false, propagation: 'PROPAGATION_PRIVATE' }],
      labels: { 'io.kubernetes.container.name': c.name, 'io.kubernetes.pod.name': name, 'io.kubernetes.pod.namespace': ns, 'io.kubernetes.pod.uid': uid },
      annotations: { 'io.kubernetes.container.restartCount': String(attempt) },
      log_path: `${c.name}/${attempt}.log`,
      linux: {
        security_context: {
          namespace_options: nsOpts,
          privileged,
          capabilities: { add_capabilities: sc.capabilities?.add ?? [], drop_capabilities: sc.capabilities?.drop ?? [] },
        },
        resources: {
          cpu_shares: cpuShares(c.resources?.requests?.cpu),
          memory_limit_in_bytes: memLimit === undefined ? undefined : parseQuantityBytes(memLimit),
          oom_score_adj: oomScoreAdj,
        },
      },
    };
    if (sc.runAsUser !== undefined) cfg.linux.security_context.run_as_user = { value: sc.runAsUser };
    if (sc.runAsGroup !== undefined) cfg.linux.security_context.run_as_group = { value: sc.runAsGroup };
    return cfg;
  };
  const probe = c.readinessProbe?.httpGet;
  return {
    sandbox,
    container,
    logPath: (attempt) => join(logDir, c.name, `${attempt}.log`),
    readinessUrl: probe ? `http://${probe.host ?? '127.0.0.1'}:${probe.port}${probe.path ?? '/'}` : undefined,
  };
}

/** The lines a container printed, from its CRI log file ("<time> <stream> <F|P> <text>" per line). */
export function criLogLines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(3).join(' '));
}
