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
  api.kubectlOk(['apply', '-f', '-'], { input: 'apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata: {name: smoke, namespace: team-a}\nspec: {storage: 64Mi}\n' });
  const got = JSON.parse(api.kubectlOk(['get', 'smv', '-n', 'team-a', 'smoke', '-o', 'json'])) as { spec: { storage: string } };
  assert.is(got.spec.storage, '64Mi');
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
