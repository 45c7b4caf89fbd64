// The real API server of the cluster tests (test/harness/apiserver.ts): Kubernetes'
// apiextensions-apiserver from Debian's sources with the project's main, over etcd. kubectl finds
// its groups (discovery is on), the shipped ShareMemory CRD is established, a certificate outside
// system:masters is forbidden, the server comes back after a restart with its objects, and
// stop() leaves no process and no file.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startKubeApi, type KubeApi } from '../harness';

const REPO = join(__dirname, '..', '..', '..');
const CRD = join(REPO, 'packaging', 'kubernetes', 'crd-sharememory.yaml');
let api: KubeApi;

test('etcd and the server start; kubectl sees the server as Kubernetes v1.36.4', async () => {
  api = await startKubeApi();
  const v = JSON.parse(api.kubectlOk(['version', '-o', 'json'])) as { serverVersion: { gitVersion: string } };
  assert.is(v.serverVersion.gitVersion, 'v1.36.4');
  assert.match(api.kubectlOk(['api-resources']), /customresourcedefinitions/);
});

test('the shipped CRD is applied with kubectl and established; smv objects are served', () => {
  assert.match(api.kubectlOk(['apply', '-f', CRD]), /sharememories\.resource\.ubsvirt\.huawei\.com (created|configured)/);
  api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/sharememories.resource.ubsvirt.huawei.com']);
  api.kubectlOk(['apply', '-f', '-'], { input: 'apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata: {name: smoke, namespace: team-a}\nspec: {storage: 128Mi}\n' });
  const got = JSON.parse(api.kubectlOk(['get', 'smv', '-n', 'team-a', 'smoke', '-o', 'json'])) as { spec: { storage: string } };
  assert.is(got.spec.storage, '128Mi');
});

test("the CRD's admission checks: the real server refuses each bad ShareMemory naming the field", () => {
  const create = (name: string, spec: Record<string, unknown>) =>
    api.kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name, namespace: 'team-a' }, spec }) });
  const refused = (name: string, spec: Record<string, unknown>, re: RegExp) => {
    const r = create(name, spec);
    assert.is.not(r.status, 0, `${name} accepted`);
    assert.match(r.stderr, re, name);
  };
  const range = /spec\.storage: Invalid value: .*must be from 128Mi to 512Gi/;
  refused('small', { storage: '64Mi' }, range);
  refused('big', { storage: '513Gi' }, range);
  refused('small-int', { storage: 1024 }, range);
  refused('big-int', { storage: 549755813889 }, range);
  refused('both', { storage: '1Gi', allowedNamespaces: ['b', 'c'], readOnlyNamespaces: ['d', 'c'] }, /spec\.readOnlyNamespaces: Invalid value: .*not in both/);
  const many = Array.from({ length: 257 }, (_, i) => `ns-${i}`);
  refused('many', { storage: '1Gi', allowedNamespaces: many }, /spec\.allowedNamespaces: Too many: 257: must have at most 256 items/);
  refused('many-ro', { storage: '1Gi', readOnlyNamespaces: many }, /spec\.readOnlyNamespaces: Too many: 257: must have at most 256 items/);
  refused('long', { storage: '1Gi', readOnlyNamespaces: ['x'.repeat(64)] }, /spec\.readOnlyNamespaces\[0\]: Too long: may not be (more|longer) than 63/);
  // the bounds themselves and the lists side by side pass
  for (const [name, spec] of [
    ['min', { storage: '128Mi' }], ['max', { storage: '512Gi' }], ['min-int', { storage: 134217728 }],
    ['lists', { storage: '1Gi', allowedNamespaces: many.slice(0, 256), readOnlyNamespaces: ['other'] }],
  ] as Array<[string, Record<string, unknown>]>) {
    const r = create(name, spec);
    assert.is(r.status, 0, `${name}: ${r.stderr}`);
  }
});

test('a client certificate outside system:masters is authenticated but forbidden (403)', () => {
  const other = api.kubeconfig('someone', ['team-a-admins']);
  const r = api.kubectl(['get', 'smv', '-A'], { kubeconfig: other });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /Forbidden|forbidden/);
  assert.match(r.stderr, /User "someone"/, 'the certificate was read (CN is the user)');
});

test('a restarted server serves the stored objects again', async () => {
  await api.restartServer();
  assert.match(api.kubectlOk(['get', 'smv', '-n', 'team-a', '-o', 'name']), /sharememory\.resource\.ubsvirt\.huawei\.com\/smoke/);
});

test('stop() ends both processes and removes the directory', async () => {
  const dir = api.dir;
  const pids = api.pids();
  assert.is(pids.length, 2);
  await api.stop();
  for (const pid of pids) assert.not.ok(existsSync(`/proc/${pid}`), `process ${pid} gone`);
  assert.not.ok(existsSync(dir));
  assert.not.ok(existsSync(join(dir, 'etcd')));
});

test.run();
