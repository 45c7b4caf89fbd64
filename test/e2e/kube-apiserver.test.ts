// The real API server of the cluster tests (test/harness/apiserver.ts): Kubernetes'
// apiextensions-apiserver from Debian's sources with the project's main, over etcd. kubectl finds
// its groups (discovery is on), the shipped ShareMemory CRD is established, a certificate outside
// system:masters is forbidden, the server comes back after a restart with its objects, the
// agent's watch takes a BOOKMARK and resumes from it after a restart without listing again, and
// stop() leaves no process and no file.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startKubeApi, type KubeApi } from '../harness';
import { KubernetesDeclarationSource } from '../../plugin/declarations/kubernetes';
import { parseKubeconfig, sendRequest } from '../../plugin/kube';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import type { Log } from '../../plugin/log/log';

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

test("the watch takes the real server's BOOKMARK and resumes from its resourceVersion after a restart, without a list", async () => {
  // The agent's own watch (the daemon runs this class) with a short timeoutSeconds: the server
  // sends a bookmark 2 s before a watch's deadline (else once a minute), so one comes in seconds.
  const lines: Array<{ msg: string; detail: Record<string, unknown> }> = [];
  const keep = (detail: object, msg?: string): void => void lines.push({ msg: msg ?? '', detail: detail as Record<string, unknown> });
  const log: Log = { debug: keep, info: keep, warn: keep, error: keep };
  const lists = () => lines.filter((l) => l.msg === 'kubernetes: listed ShareMemory objects');
  const src = new KubernetesDeclarationSource({
    credentials: parseKubeconfig(readFileSync(api.adminKubeconfig, 'utf8'), api.adminKubeconfig),
    limits: DEFAULT_LIMITS, watchTimeoutSeconds: 4, backoff: { initialMs: 200, maxMs: 1000 }, log,
  });
  const changes: string[] = [];
  src.onChange((cs) => changes.push(...cs.map((c) => `${c.kind} ${c.declaration.namespace}/${c.declaration.name}`)));
  const until = async (what: string, ok: () => boolean, ms = 20000): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`${what} within ${ms} ms; rv ${src.resourceVersion}, log: ${JSON.stringify(lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    src.start();
    await src.ready();
    const listedRv = src.resourceVersion!;
    changes.length = 0; // the first list's additions
    assert.is(lists().length, 1);
    assert.is(lists()[0].detail.resourceVersion, listedRv, 'the list line names the resourceVersion listed');
    // writes elsewhere in the cluster move etcd's revision past every ShareMemory's; a client's
    // consistent list makes the server's watch cache catch up with etcd (a progress request), and
    // the next bookmark carries that revision
    api.etcdctl(['put', '/nms-test/elsewhere/a', '1']);
    api.etcdctl(['put', '/nms-test/elsewhere/b', '1']);
    const rev = api.etcdRevision();
    assert.ok(rev > Number(listedRv), `etcd revision ${rev} past the listed ${listedRv}`);
    api.kubectlOk(['get', 'smv', '-A']);
    await until(`a bookmark with resourceVersion ${rev}`, () => src.resourceVersion === String(rev));
    // no ShareMemory event came and no list: only a bookmark moves the resourceVersion so
    assert.equal(changes, [], 'no declaration changed');
    assert.is(lists().length, 1, 'still one list');

    await api.restartServer();
    await until('the watch connected again', () => lines.some((l) => l.msg === 'kubernetes: connected again'));
    const again = lines.find((l) => l.msg === 'kubernetes: connected again')!;
    assert.is(again.detail.resourceVersion, String(rev), "the watch resumed from the bookmark's resourceVersion");
    api.kubectlOk(['apply', '-f', '-'], { input: 'apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata: {name: after-bookmark, namespace: team-b}\nspec: {storage: 128Mi}\n' });
    await until('the object created after the restart declared', () => changes.includes('added team-b/after-bookmark'));
    // a 410 would have meant a list (the source answers every 410 with one), so one list is also "no 410"
    assert.is(lists().length, 1, `no list after the restart: ${JSON.stringify(lists())}`);

    // what the bookmark spared: the restarted server's watch cache starts at etcd's revision, so a
    // watch from the listed resourceVersion (the agent's without bookmarks) is too old: 410 and a list
    const q = new URLSearchParams({ watch: '1', resourceVersion: listedRv, allowWatchBookmarks: 'true', timeoutSeconds: '1' });
    const credentials = parseKubeconfig(readFileSync(api.adminKubeconfig, 'utf8'), api.adminKubeconfig);
    const res = await sendRequest(credentials, { method: 'GET', path: '/apis/resource.ubsvirt.huawei.com/v1/sharememories', query: q, timeoutMs: 10000 });
    let body = '';
    for await (const chunk of res) body += String(chunk);
    assert.ok(res.statusCode === 410 || /"type":"ERROR".*"code":410/.test(body), `a watch from ${listedRv}: ${res.statusCode} ${body.slice(0, 300)}`);
  } finally {
    await src.stop();
  }
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
