// packaging/kubernetes/daemonset: the kustomize base and its overlays parse, and the DaemonSet carries
// what the agent needs and nothing more (docs/daemonset.md). test/e2e/daemonset.test.ts renders
// them with kubectl and runs the pod through CRI; this checks the files themselves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../plugin/agent/config';

const pkg = join(__dirname, '../../../packaging');
const dsDir = join(pkg, 'kubernetes', 'daemonset');
// YAML documents: their shape is what the assertions check
type Doc = Record<string, any>;

function docs(path: string): Doc[] {
  const all = parseAllDocuments(readFileSync(path, 'utf8'));
  for (const d of all) assert.equal(d.errors.map(String), [], `${path}: YAML errors`);
  return all.map((d) => d.toJS() as Doc);
}
const base = (f: string) => join(dsDir, 'base', f);
const daemonSet = (): Doc => docs(base('daemonset.yaml'))[0];
const json = (path: string): Doc => JSON.parse(readFileSync(path, 'utf8')) as Doc;

test('every kustomization names files that exist', () => {
  for (const dir of ['base', 'overlays/local', 'overlays/ubs']) {
    const [k] = docs(join(dsDir, dir, 'kustomization.yaml'));
    assert.is(k.kind, 'Kustomization', dir);
    const files = [...(k.resources ?? []), ...(k.patches ?? []).map((p: Doc) => p.path), ...(k.configMapGenerator ?? []).flatMap((g: Doc) => g.files)];
    assert.ok(files.length > 0, dir);
    for (const f of files) assert.ok(existsSync(join(dsDir, dir, f)), `${dir}: ${f} exists`);
  }
  const [b] = docs(base('kustomization.yaml'));
  assert.is(b.namespace, 'kube-system', 'system-node-critical pods are admitted in kube-system');
  assert.not.ok(b.resources.some((r: string) => r.includes('crd')), 'the CRD is not part of the install (deleting it would delete every ShareMemory)');
});

test('the DaemonSet: host PID, privileged only for Bidirectional, priority, resources, node name, its ServiceAccount', () => {
  const ds = daemonSet();
  assert.is(ds.kind, 'DaemonSet');
  const pod = ds.spec.template.spec;
  assert.is(pod.hostPID, true, 'evictions signal containers by host pid');
  assert.is(pod.priorityClassName, 'system-node-critical');
  assert.is(pod.serviceAccountName, 'nri-memshare');
  assert.equal(Object.keys(ds.spec.selector.matchLabels).every((k) => ds.spec.template.metadata.labels[k] === ds.spec.selector.matchLabels[k]), true);
  assert.is(pod.containers.length, 1);
  const c = pod.containers[0];
  const bidi = c.volumeMounts.filter((m: Doc) => m.mountPropagation === 'Bidirectional');
  assert.is(bidi.length, 1, 'one Bidirectional mount: the shares');
  // the API refuses Bidirectional in a container that is not privileged
  assert.is(c.securityContext.privileged, true);
  assert.equal(c.env.find((e: Doc) => e.name === 'NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'requests and a memory limit');
  assert.is(c.resources.limits.cpu, undefined, 'no CPU limit (throttling delays CreateContainer)');
  assert.equal(c.args, ['run', '--config', '/etc/nri-memshare/config.json']);
  assert.is(c.readinessProbe.httpGet.path, '/healthz');

  const [sa, ...rest] = docs(base('rbac.yaml'));
  assert.is(sa.kind, 'ServiceAccount');
  assert.is(sa.metadata.name, pod.serviceAccountName);
  for (const b of rest.filter((d) => d.kind === 'ClusterRoleBinding')) {
    assert.equal(b.subjects, [{ kind: 'ServiceAccount', name: 'nri-memshare', namespace: 'kube-system' }], `${b.metadata.name}: the ServiceAccount only`);
  }
});

test('the ClusterRoles are those of packaging/kubernetes/rbac.yaml, rule for rule', () => {
  const roles = (ds: Doc[]) => Object.fromEntries(ds.filter((d) => d.kind === 'ClusterRole').map((d) => [d.metadata.name, d.rules]));
  const mine = roles(docs(base('rbac.yaml')));
  assert.equal(mine, roles(docs(join(pkg, 'kubernetes', 'rbac.yaml'))));
  assert.equal(Object.keys(mine).sort(), ['nri-memshare-events', 'nri-memshare-status', 'nri-memshare-watcher']);
});

test('the config: the RPM\'s with inCluster, accepted by the agent; its paths are the host\'s, mounted where they are', () => {
  const cfg = json(base('config.json'));
  const { kubernetes, ...rest } = cfg;
  assert.equal(rest, json(join(pkg, 'config.json')), 'the RPM\'s default config, key for key');
  assert.equal(kubernetes, { inCluster: true });
  const parsed = parseConfig(cfg, 'base/config.json');
  assert.equal(parsed.problems, []);

  const ds = daemonSet();
  const pod = ds.spec.template.spec;
  const mounts: Doc[] = pod.containers[0].volumeMounts;
  const hostPathOf = (name: string) => pod.volumes.find((v: Doc) => v.name === name)?.hostPath?.path;
  const mountOf = (p: string) => mounts.filter((m) => p === m.mountPath || p.startsWith(`${m.mountPath}/`)).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  for (const key of ['stateDir', 'sharesDir', 'declarationsDir']) {
    const m = mountOf(cfg[key]);
    assert.ok(m, `${key} ${cfg[key]} is on a mount`);
    assert.is(hostPathOf(m.name), m.mountPath, `${key}: host path and container path are the same`);
  }
  const nri = mountOf(cfg.nri.socket);
  assert.is(hostPathOf(nri.name), nri.mountPath, 'the NRI socket\'s directory');
  assert.is(mountOf(cfg.sharesDir).mountPropagation, 'Bidirectional', 'the shares reach the host');
  assert.is(mountOf(cfg.declarationsDir).readOnly, true);
  // nothing more: the four host directories and the ConfigMap
  assert.equal(pod.volumes.map((v: Doc) => v.name).sort(), ['config', 'declarations', 'nri', 'shares', 'state']);
  const cm = pod.volumes.find((v: Doc) => v.name === 'config');
  assert.is(cm.configMap.name, 'nri-memshare-config');
  assert.is(mounts.find((m) => m.name === 'config')?.mountPath, '/etc/nri-memshare/config', 'where the image links /etc/nri-memshare/config.json');
});

test('the UB overlay: the base config with the ubs backend, accepted by the agent, its host paths mounted', () => {
  const ubs = json(join(dsDir, 'overlays', 'ubs', 'config.json'));
  const { backend, ...rest } = ubs;
  const { backend: _b, ...baseRest } = json(base('config.json'));
  assert.equal(rest, baseRest, 'only the backend differs from the base');
  assert.is(backend.kind, 'ubs');
  assert.equal(parseConfig(ubs, 'overlays/ubs/config.json').problems, []);
  const [patch] = docs(join(dsDir, 'overlays', 'ubs', 'ubs-mounts.yaml'));
  const spec = patch.spec.template.spec;
  const mounts: Doc[] = spec.containers[0].volumeMounts;
  const sdkDir = backend.sdkLibrary.split('/lib/')[0];
  for (const p of [sdkDir, backend.socketDir, backend.cdiDir]) {
    const m = mounts.find((x) => x.mountPath === p);
    assert.ok(m, `${p} is mounted`);
    assert.is(spec.volumes.find((v: Doc) => v.name === m!.name).hostPath.path, p, `${p}: the host's`);
  }
  const dev = mounts.find((m) => m.mountPath === backend.hostDevDir);
  assert.is(spec.volumes.find((v: Doc) => v.name === dev!.name).hostPath.path, '/dev');
});

test.run();
