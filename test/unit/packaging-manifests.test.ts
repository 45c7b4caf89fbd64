// The shipped Kubernetes manifests and containerd snippet say what the product contract says,
// and the examples are accepted by the agent's own validators.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { validateShareMemory } from '../../plugin/declarations/sharememory';
import { parseBinding } from '../../plugin/memshare/annotations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { defaultConfig } from '../../plugin/service/config';

const dir = join(__dirname, '../../../packaging');
// YAML documents: their shape is what the assertions check
type Doc = Record<string, any>;

function docs(file: string): Doc[] {
  const all = parseAllDocuments(readFileSync(join(dir, 'kubernetes', file), 'utf8'));
  for (const d of all) assert.equal(d.errors.map(String), [], `${file}: YAML errors`);
  return all.map((d) => d.toJS() as Doc);
}

test('the CRD defines ShareMemory as in the product contract', () => {
  const [crd] = docs('crd-sharememory.yaml');
  assert.is(crd.apiVersion, 'apiextensions.k8s.io/v1');
  assert.is(crd.kind, 'CustomResourceDefinition');
  assert.is(crd.metadata.name, 'sharememories.resource.ubsvirt.huawei.com');
  assert.is(crd.spec.group, 'resource.ubsvirt.huawei.com');
  assert.is(crd.spec.scope, 'Namespaced');
  assert.is(crd.spec.names.kind, 'ShareMemory');
  assert.is(crd.spec.names.plural, 'sharememories');
  assert.equal(crd.spec.names.shortNames, ['smv']);
  assert.is(crd.spec.versions.length, 1);
  const v = crd.spec.versions[0];
  assert.is(v.name, 'v1');
  assert.ok(v.served && v.storage);
  const spec = v.schema.openAPIV3Schema.properties.spec;
  assert.equal(spec.required, ['storage']);
  // int-or-string with the quantity pattern, as Kubernetes' own quantities (the files accept both too)
  const storage = spec.properties.storage;
  assert.equal(storage.anyOf, [{ type: 'integer' }, { type: 'string' }]);
  assert.is(storage['x-kubernetes-int-or-string'], true);
  assert.is(storage.type, undefined, 'no type beside anyOf in a structural schema');
  for (const list of ['allowedNamespaces', 'readOnlyNamespaces']) {
    assert.is(spec.properties[list].type, 'array', list);
    assert.is(spec.properties[list]['x-kubernetes-list-type'], 'set', `${list} declares its list type`);
    assert.is(spec.properties[list].items.type, 'string', list);
    assert.is(spec.properties[list].maxItems, 1024, list);
  }
  assert.is(spec.properties.allowExec.type, 'boolean');
});

test('the CRD storage pattern accepts quantities and rejects junk', () => {
  const [crd] = docs('crd-sharememory.yaml');
  const re = new RegExp(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.storage.pattern);
  for (const ok of ['5120Mi', '1Gi', '512Gi', '134217728', '1.5Gi', '500M', '1e9']) assert.ok(re.test(ok), ok);
  for (const bad of ['', '5 Gi', 'lots', '-1Gi', '5GB', '/etc/passwd']) assert.not.ok(re.test(bad), bad);
});

test('what the CRD admits for spec.storage, the agent accepts: an integer of bytes or a quantity string', () => {
  const sm = (storage: unknown) => ({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'x', namespace: 'team-a' }, spec: { storage } });
  assert.is(validateShareMemory(sm(268435456), 'int', DEFAULT_LIMITS).sizeBytes, 256 * 2 ** 20);
  assert.is(validateShareMemory(sm('256Mi'), 'string', DEFAULT_LIMITS).sizeBytes, 256 * 2 ** 20);
});

test('RBAC lets the watcher get, list and watch sharememories cluster-wide, nothing more', () => {
  const all = docs('rbac.yaml');
  const role = all.find((d) => d.kind === 'ClusterRole');
  const binding = all.find((d) => d.kind === 'ClusterRoleBinding');
  const sa = all.find((d) => d.kind === 'ServiceAccount');
  assert.ok(role && binding && sa);
  assert.equal(role.rules, [{ apiGroups: ['resource.ubsvirt.huawei.com'], resources: ['sharememories'], verbs: ['get', 'list', 'watch'] }]);
  assert.equal(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  assert.ok(binding.subjects.some((s: Doc) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name && s.namespace === sa.metadata.namespace));
});

test('the example ShareMemory passes the agent validation', () => {
  const [sm] = docs('example-sharememory.yaml');
  const decl = validateShareMemory(sm, 'example-sharememory.yaml', DEFAULT_LIMITS);
  assert.is(decl.namespace, 'team-a');
  assert.is(decl.name, 'demo');
  assert.is(decl.sizeBytes, 5120 * 2 ** 20);
  assert.equal(decl.allowedNamespaces, ['team-b']);
});

test('the example pod binds the example share, read-only for the reader', () => {
  const [pod] = docs('example-pod.yaml');
  const ann = pod.metadata.annotations as Record<string, string>;
  const ns = pod.metadata.namespace as string;
  const names = (pod.spec.containers as Doc[]).map((c) => c.name as string);
  assert.equal(names, ['writer', 'reader']);
  assert.equal(parseBinding(ann, ns, 'writer').refs, [{ namespace: 'team-a', name: 'demo', readOnly: false }]);
  assert.equal(parseBinding(ann, ns, 'reader').refs, [{ namespace: 'team-a', name: 'demo', readOnly: true }]);
});

test('the containerd snippet enables NRI on the socket the default config uses', () => {
  const toml = readFileSync(join(dir, 'containerd/nri.toml'), 'utf8');
  const lines = toml.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.ok(lines.includes('version = 2'));
  assert.ok(lines.includes('[plugins."io.containerd.nri.v1.nri"]'));
  assert.ok(lines.includes('disable = false'));
  assert.ok(lines.includes('disable_connections = false'));
  assert.ok(lines.includes(`socket_path = "${defaultConfig().nri.socket}"`));
  assert.ok(toml.includes('imports'), 'says how to import it');
  const tables = lines.filter((l) => l.startsWith('['));
  assert.equal(tables, ['[plugins."io.containerd.nri.v1.nri"]'], 'touches nothing but NRI');
});

test.run();
