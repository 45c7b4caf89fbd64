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
import { defaultConfig } from '../../plugin/agent/config';
import { statusApplyBody, statusPath } from '../../plugin/cluster/apply';

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
    assert.is(spec.properties[list].maxItems, 256, list);
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

test('RBAC: one ClusterRole per feature, each with exactly what that feature uses, bound to the same subjects', () => {
  const all = docs('rbac.yaml');
  const roles = new Map(all.filter((d) => d.kind === 'ClusterRole').map((d) => [d.metadata.name as string, d.rules as Doc[]]));
  const sa = all.find((d) => d.kind === 'ServiceAccount');
  assert.ok(sa);
  assert.equal([...roles.keys()].sort(), ['nri-memshare-events', 'nri-memshare-status', 'nri-memshare-watcher']);
  assert.equal(roles.get('nri-memshare-watcher'), [{ apiGroups: ['resource.ubsvirt.huawei.com'], resources: ['sharememories'], verbs: ['get', 'list', 'watch'] }]);
  // the status writer patches /status only (server-side apply); it never creates, updates or deletes
  assert.equal(roles.get('nri-memshare-status'), [{ apiGroups: ['resource.ubsvirt.huawei.com'], resources: ['sharememories/status'], verbs: ['patch'] }]);
  // refusal Events: created, then their series patched; never read, listed or deleted
  assert.equal(roles.get('nri-memshare-events'), [{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] }]);
  const bindings = all.filter((d) => d.kind === 'ClusterRoleBinding');
  assert.equal(bindings.map((b) => b.roleRef.name).sort(), [...roles.keys()].sort(), 'every role bound once');
  for (const b of bindings) {
    assert.equal(b.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: b.metadata.name });
    assert.ok(b.subjects.some((s: Doc) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name && s.namespace === sa.metadata.namespace), b.metadata.name);
    assert.ok(b.subjects.some((s: Doc) => s.kind === 'Group' && s.name === 'system:nodes'), b.metadata.name);
  }
  assert.not.ok(all.some((d) => d.kind === 'Role' || d.kind === 'RoleBinding'), 'nothing namespaced besides the ServiceAccount');
});

test('the RBAC grants cover every request the cluster writers make, and no more', () => {
  // the paths and verbs of plugin/cluster, as the API server's authorizer sees them
  const rules = docs('rbac.yaml').filter((d) => d.kind === 'ClusterRole').flatMap((d) => d.rules as Doc[]);
  const allowed = (group: string, resource: string, verb: string) =>
    rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
  const path = statusPath({ namespace: 'team-a', name: 'demo' });
  assert.match(path, /^\/apis\/resource\.ubsvirt\.huawei\.com\/v1\/namespaces\/team-a\/sharememories\/demo\/status$/);
  assert.ok(allowed('resource.ubsvirt.huawei.com', 'sharememories/status', 'patch'));
  assert.not.ok(allowed('resource.ubsvirt.huawei.com', 'sharememories', 'patch'), 'the main resource stays read-only');
  assert.ok(allowed('events.k8s.io', 'events', 'create') && allowed('events.k8s.io', 'events', 'patch'));
  assert.not.ok(allowed('', 'events', 'create'), 'core v1 events are not used');
  for (const verb of ['update', 'delete', 'deletecollection', '*']) {
    assert.not.ok(rules.some((r) => r.verbs.includes(verb)), `no ${verb}`);
  }
  assert.not.ok(rules.some((r) => r.resources.includes('*') || r.apiGroups.includes('*')), 'no wildcards');
});

test('the CRD has the status subresource, status.nodes a map list keyed by nodeName, and the printer columns', () => {
  const [crd] = docs('crd-sharememory.yaml');
  const v = crd.spec.versions[0];
  assert.equal(v.subresources, { status: {} });
  const st = v.schema.openAPIV3Schema.properties.status;
  assert.is(st['x-kubernetes-preserve-unknown-fields'], undefined, 'status has a schema, not free form');
  const nodes = st.properties.nodes;
  assert.is(nodes['x-kubernetes-list-type'], 'map');
  assert.equal(nodes['x-kubernetes-list-map-keys'], ['nodeName']);
  assert.equal(nodes.items.required, ['nodeName'], 'a map key must be required');
  // what the writer sends is what the schema has
  const body = statusApplyBody('node-1', { namespace: 'a', name: 'b' }, { holders: 2, bytesUsed: 10, sizeInForce: 134217728, since: '2026-01-01T00:00:00Z', backend: 'local' }, { reason: 'spec.storage: too small', observedGeneration: 3 });
  const sent = (body.status as Doc);
  assert.equal(Object.keys(sent).sort(), ['holdersByNode', 'nodeNames', 'nodes', 'refusedBy']);
  assert.equal(Object.keys(sent.nodes[0]).sort(), ['backend', 'bytesUsed', 'holders', 'nodeName', 'observedGeneration', 'refused', 'since', 'sizeInForce']);
  for (const k of Object.keys(sent)) assert.ok(st.properties[k], `status.${k} in the schema`);
  for (const k of Object.keys(sent.nodes[0])) assert.ok(nodes.items.properties[k], `status.nodes[].${k} in the schema`);
  for (const k of ['nodeNames', 'holdersByNode', 'refusedBy']) assert.is(st.properties[k]['x-kubernetes-list-type'], 'set', k);
  // a refusal's reason fits (the agent cuts it at 512 characters)
  assert.ok(nodes.items.properties.refused.maxLength >= 512);
  const cols = v.additionalPrinterColumns.map((c: Doc) => [c.name, c.jsonPath]);
  assert.equal(cols.filter((c: string[]) => !['Allowed-Namespaces', 'Read-Only-Namespaces'].includes(c[0])), [
    ['Size', '.spec.storage'], ['Nodes', '.status.nodeNames'], ['Holders', '.status.holdersByNode'], ['Refused-By', '.status.refusedBy'], ['Age', '.metadata.creationTimestamp'],
  ]);
  // a column shows the first JSONPath match only: none may select into a list's elements
  for (const c of v.additionalPrinterColumns) assert.not.match(c.jsonPath, /\[/, c.name);
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
