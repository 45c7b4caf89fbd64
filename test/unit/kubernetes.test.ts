// The Kubernetes declaration source against a fake kube-apiserver speaking the list+watch protocol.
// On the fake because these are faults a real API server cannot be made to produce on demand
// (ERROR events, oversize lines, 401/404 at chosen moments, bookmarks now); the behaviour a real
// server can show is proven in test/e2e/cluster-apiserver.test.ts (docs/cluster.md says which).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  KubernetesDeclarationSource,
  MemoryDeclarationSource,
  MergedDeclarationStore,
  type DeclarationChange,
  type DeclarationProblem,
  type SourceLog,
} from '../../plugin/declarations';
import { keptAliveRequests, kubeRequest, parseKubeconfig, type KubeCredentials } from '../../plugin/kube';
import { DEFAULT_LIMITS, type Limits } from '../../plugin/model/types';
import { FakeApiServer, selfSignedCert, shareMemory } from '../support/fake-apiserver';
import { SKIP_TLS_VERIFY, kubeconfigText, trustCert } from '../support/fake-apiserver-https';
import { cleanupsAfterEach, tempDirs } from '../support/cleanup';
import { waitFor, within } from '../support/util';

const Mi = 1024 ** 2;
const TOKEN = 'secret-token';

// credentials go only over verified https, so the fake API server serves https with this
// certificate and the kubeconfigs trust it (openssl is a test requirement: no silent skip)
const cert = selfSignedCert() ?? (assert.unreachable('openssl is needed to make the fake API server\'s certificate') as never);
const CA_LINE = trustCert(cert);
const kubeconfig = (server: string, user: string, cluster = CA_LINE): string => kubeconfigText(server, user, cluster);

const tokenCreds = (api: FakeApiServer, token = TOKEN, cluster = CA_LINE): KubeCredentials =>
  parseKubeconfig(kubeconfig(api.url, `    token: ${token}\n`, cluster), '/nonexistent/kubeconfig');

interface Harness {
  api: FakeApiServer;
  src: KubernetesDeclarationSource;
  changes: DeclarationChange[];
  problems: DeclarationProblem[];
}

const cleanups = cleanupsAfterEach(test);
const tempDir = tempDirs(test, 'memshare-kube-');

async function harness(
  prepare: (api: FakeApiServer) => void = () => undefined,
  opts: {
    credentials?: (api: FakeApiServer) => KubeCredentials;
    pageSize?: number;
    api?: FakeApiServer;
    watchTimeoutSeconds?: number;
    maxEventBytes?: number;
    maxObjectBytes?: number;
    maxKeptBytes?: number;
    log?: SourceLog;
    limits?: Limits;
  } = {},
): Promise<Harness> {
  const api = opts.api ?? new FakeApiServer({ token: TOKEN, tls: cert });
  await api.start();
  cleanups.push(() => api.stop());
  prepare(api);
  const changes: DeclarationChange[] = [];
  const problems: DeclarationProblem[] = [];
  const src = new KubernetesDeclarationSource({
    credentials: (opts.credentials ?? tokenCreds)(api),
    limits: opts.limits ?? DEFAULT_LIMITS,
    backoff: { initialMs: 5, maxMs: 40 },
    pageSize: opts.pageSize,
    watchTimeoutSeconds: opts.watchTimeoutSeconds,
    maxEventBytes: opts.maxEventBytes,
    maxObjectBytes: opts.maxObjectBytes,
    maxKeptBytes: opts.maxKeptBytes,
    log: opts.log,
    onProblem: (p) => problems.push(p),
  });
  src.onChange((c) => changes.push(...c));
  cleanups.push(() => src.stop());
  src.start();
  return { api, src, changes, problems };
}

const keys = (src: KubernetesDeclarationSource) => src.list().map((d) => `${d.namespace}/${d.name}:${d.sizeBytes / Mi}`).sort();
const lists = (api: FakeApiServer) => api.requests.filter((r) => r.query.watch === undefined);
const watches = (api: FakeApiServer) => api.requests.filter((r) => r.query.watch !== undefined);
const summary = (changes: DeclarationChange[]) => changes.map((c) => `${c.kind} ${c.declaration.namespace}/${c.declaration.name}`);

test('the initial list populates the declarations; ready() resolves after it', async () => {
  const { api, src, changes } = await harness((api) => {
    api.share('team-a', 'one', '128Mi');
    api.share('team-b', 'two', '1Gi', ['team-a', 'team-c']);
  });
  await within(src.ready(), 'ready');
  assert.equal(keys(src), ['team-a/one:128', 'team-b/two:1024']);
  const two = src.list().find((d) => d.name === 'two')!;
  assert.equal(two.allowedNamespaces, ['team-a', 'team-c']);
  assert.is(two.origin, 'kubernetes:team-b/two');
  assert.equal(summary(changes).sort(), ['added team-a/one', 'added team-b/two']);
  assert.equal(src.errors(), []);
  const first = api.requests[0];
  assert.is(first.path, '/apis/resource.ubsvirt.huawei.com/v1/sharememories');
  assert.is(first.authorization, `Bearer ${TOKEN}`);
  assert.is(src.resourceVersion, api.resourceVersion);
});

test('a paged list follows continue tokens and gets every object', async () => {
  const { api, src } = await harness((api) => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) api.share('ns', n, '256Mi');
  }, { pageSize: 2 });
  await within(src.ready(), 'ready');
  assert.equal(keys(src), ['ns/a:256', 'ns/b:256', 'ns/c:256', 'ns/d:256', 'ns/e:256']);
  const l = lists(api);
  assert.is(l.length, 3);
  assert.is(l[0].query.limit, '2');
  assert.is(l[0].query.continue, undefined);
  assert.ok(l[1].query.continue && l[2].query.continue);
});

test('watch: ADDED, MODIFIED and DELETED update the declarations and tell listeners', async () => {
  const { api, src, changes } = await harness((api) => api.share('ns', 'keep', '128Mi'));
  await within(src.ready(), 'ready');
  const listRv = src.resourceVersion;
  assert.ok(listRv);
  await waitFor(() => api.watchCount === 1, 'a watch');
  const w = watches(api)[0];
  assert.is(w.query.watch, '1');
  assert.is(w.query.resourceVersion, listRv);
  assert.is(w.query.allowWatchBookmarks, 'true');
  assert.ok(Number(w.query.timeoutSeconds) > 0);
  changes.length = 0;

  api.share('ns', 'new', '256Mi');
  await waitFor(() => src.list().length === 2, 'ADDED');
  api.share('ns', 'new', '512Mi', ['other']);
  await waitFor(() => keys(src).includes('ns/new:512'), 'MODIFIED');
  api.apply({ ...shareMemory('ns', 'keep', '128Mi'), status: { phase: 'Bound' } }); // no change we use
  api.delete('ns', 'new');
  await waitFor(() => src.list().length === 1, 'DELETED');
  assert.equal(summary(changes), ['added ns/new', 'changed ns/new', 'removed ns/new']);
  const changed = changes[1] as Extract<DeclarationChange, { kind: 'changed' }>;
  assert.is(changed.previous.sizeBytes, 256 * Mi);
  assert.equal(changed.declaration.allowedNamespaces, ['other']);
  assert.is(src.resourceVersion, api.resourceVersion);
  assert.is(lists(api).length, 1, 'no re-list');
});

test('an invalid object is reported and left out; the others are unaffected', async () => {
  const { api, src, problems, changes } = await harness((api) => {
    api.share('ns', 'good', '128Mi');
    api.share('ns', 'tiny', '1Ki');
  });
  await within(src.ready(), 'ready');
  assert.equal(keys(src), ['ns/good:128']);
  let errs = src.errors().map((e) => e.message);
  assert.is(errs.length, 1);
  assert.match(errs[0], 'kubernetes:ns/tiny');
  assert.match(errs[0], 'spec.storage');
  assert.is(problems.length, 1);

  // through the watch: a broken one arrives next to a good one
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.apply({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'nospec', namespace: 'ns' } });
  api.share('ns', 'good2', '1Gi');
  await waitFor(() => src.list().length === 2, 'good2');
  errs = src.errors().map((e) => e.message);
  assert.is(errs.length, 2);
  assert.ok(errs.some((m) => m.includes('kubernetes:ns/nospec') && m.includes('spec: is missing')), errs.join('\n'));

  // fixed: the problem goes and the share comes
  api.share('ns', 'tiny', '128Mi');
  await waitFor(() => keys(src).includes('ns/tiny:128'), 'tiny fixed');
  assert.is(src.errors().length, 1);
  // a good one turning bad is left out (removed) and reported
  changes.length = 0;
  api.share('ns', 'good', '1Pi');
  await waitFor(() => !keys(src).includes('ns/good:128'), 'good turned bad');
  assert.equal(summary(changes), ['removed ns/good']);
  assert.ok(src.errors().some((e) => e.message.includes('kubernetes:ns/good') && e.message.includes('outside the allowed range')));
  // deleting an invalid object clears its problem
  api.delete('ns', 'nospec');
  api.delete('ns', 'good');
  await waitFor(() => src.errors().length === 0, 'problems cleared');
  assert.equal(keys(src), ['ns/good2:1024', 'ns/tiny:128']);
});

test('a dropped watch resumes from the last resourceVersion without losing events', async () => {
  const { api, src, changes } = await harness((api) => {
    api.share('ns', 'stay', '128Mi');
    api.share('ns', 'change', '128Mi');
    api.share('ns', 'go', '128Mi');
  });
  await within(src.ready(), 'ready');
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.share('ns', 'seen', '128Mi');
  await waitFor(() => src.list().length === 4, 'seen');
  const rvBefore = src.resourceVersion;
  changes.length = 0;

  api.holdWatches();
  api.endWatches();
  await waitFor(() => api.heldCount === 1, 'the client to watch again');
  // events while the client is away
  api.share('ns', 'added-away', '256Mi');
  api.share('ns', 'change', '512Mi');
  api.delete('ns', 'go');
  api.releaseWatches();
  await waitFor(() => src.resourceVersion === api.resourceVersion, 'caught up');

  const again = watches(api).at(-1)!;
  assert.is(again.query.resourceVersion, rvBefore);
  assert.is(lists(api).length, 1, 'resumed without a re-list');
  assert.equal(keys(src), ['ns/added-away:256', 'ns/change:512', 'ns/seen:128', 'ns/stay:128']);
  assert.equal(summary(changes), ['added ns/added-away', 'changed ns/change', 'removed ns/go']);
});

test('a watch ended by timeoutSeconds is watched again from the last resourceVersion', async () => {
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'), { watchTimeoutSeconds: 1 });
  await within(src.ready(), 'ready');
  await waitFor(() => watches(api).length >= 2, 'the server to end the first watch and the client to watch again');
  api.share('ns', 'b', '128Mi');
  await waitFor(() => src.list().length === 2, 'event on the second watch');
  assert.is(watches(api)[1].query.resourceVersion, watches(api)[0].query.resourceVersion);
  assert.is(lists(api).length, 1);
});

test('bookmarks advance the resourceVersion, so a resume after compaction needs no re-list', async () => {
  const { api, src, problems } = await harness((api) => api.share('ns', 'a', '128Mi'));
  await within(src.ready(), 'ready');
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.otherWrites(10);
  api.bookmark();
  await waitFor(() => src.resourceVersion === api.resourceVersion, 'the bookmark');
  assert.equal(problems, [], 'a bookmark is not an error');
  assert.is(watches(api).length, 1, 'the stream stays open after a bookmark');
  api.compact();
  api.endWatches();
  await waitFor(() => watches(api).length === 2 && api.watchCount === 1, 'watching again');
  assert.is(watches(api)[1].query.resourceVersion, api.resourceVersion);
  assert.is(lists(api).length, 1, 'no 410, no re-list');
});

for (const asHttp of [false, true]) {
  test(`410 Gone (${asHttp ? 'HTTP status' : 'ERROR event'}) re-lists and reconciles: objects deleted while away disappear`, async () => {
    const { api, src, changes } = await harness((api) => {
      api.share('ns', 'stay', '128Mi');
      api.share('ns', 'deleted-away', '128Mi');
    });
    api.goneAsHttpStatus = asHttp;
    await within(src.ready(), 'ready');
    await waitFor(() => api.watchCount === 1, 'a watch');
    changes.length = 0;
    api.holdWatches();
    api.endWatches();
    await waitFor(() => api.heldCount === 1, 'the client to watch again');
    api.delete('ns', 'deleted-away');
    api.share('ns', 'added-away', '256Mi');
    api.share('ns', 'stay', '1Gi');
    api.compact(); // the events above are gone from history: the client's resourceVersion is too old
    api.releaseWatches();
    await waitFor(() => lists(api).length === 2, 'a re-list');
    await waitFor(() => api.watchCount === 1, 'watching after the re-list');
    assert.equal(keys(src), ['ns/added-away:256', 'ns/stay:1024']);
    assert.equal(summary(changes).sort(), ['added ns/added-away', 'changed ns/stay', 'removed ns/deleted-away']);
    assert.is(watches(api).at(-1)!.query.resourceVersion, api.resourceVersion);
    assert.equal(src.errors(), []);
  });
}

test('the API server going away keeps the declarations; the source recovers when it is back', async () => {
  const { api, src, problems } = await harness((api) => {
    api.share('ns', 'a', '128Mi');
    api.share('ns', 'b', '128Mi');
  });
  await within(src.ready(), 'ready');
  await waitFor(() => api.watchCount === 1, 'a watch');
  await api.stop();
  await waitFor(() => src.errors().length > 0, 'a connection problem');
  assert.not.ok(src.connected);
  assert.equal(keys(src), ['ns/a:128', 'ns/b:128'], 'last known declarations kept');
  const msg = src.errors()[0].message;
  assert.match(msg, api.url);
  assert.match(msg, 'keeping the last 2 known declaration(s)');
  assert.ok(problems.some((p) => p.message === msg), 'the problem was reported through onProblem');
  // changes while the server is down (e.g. etcd was written by another apiserver)
  api.delete('ns', 'a');
  api.share('ns', 'c', '256Mi');
  await api.start();
  await waitFor(() => keys(src).join() === 'ns/b:128,ns/c:256', 'recovered');
  await waitFor(() => src.errors().length === 0 && src.connected, 'problem cleared');
});

test('401: a clear error naming the credentials; retries, and recovers once the token is accepted', async () => {
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'), { credentials: (api) => tokenCreds(api, 'old-token') });
  let ready = false;
  void src.ready().then(() => (ready = true));
  await waitFor(() => src.errors().length > 0, 'a problem');
  const msg = src.errors()[0].message;
  assert.match(msg, '401 Unauthorized');
  assert.match(msg, 'kubeconfig /nonexistent/kubeconfig (context test)');
  assert.is(ready, false);
  assert.equal(src.list(), []);
  const before = api.requests.length;
  await waitFor(() => api.requests.length > before, 'a retry');
  api.token = 'old-token';
  await within(src.ready(), 'ready after the token is accepted');
  assert.equal(keys(src), ['ns/a:128']);
  assert.equal(src.errors(), []);
});

test('403: the error names the RBAC needed (get, list, watch on sharememories)', async () => {
  const { api, src } = await harness((api) => {
    api.forbidden = true;
  });
  await waitFor(() => src.errors().length > 0, 'a problem');
  const msg = src.errors()[0].message;
  assert.match(msg, '403 Forbidden');
  assert.match(msg, 'get, list and watch on sharememories');
  assert.match(msg, 'resource.ubsvirt.huawei.com');
  assert.match(msg, 'rbac.yaml');
  api.forbidden = false;
  await within(src.ready(), 'ready once allowed');
});

test('404: the CRD is not installed; keeps retrying and starts once it is', async () => {
  const { api, src } = await harness((api) => {
    api.crdInstalled = false;
    api.share('ns', 'a', '128Mi');
  });
  await waitFor(() => src.errors().length > 0, 'a problem');
  const msg = src.errors()[0].message;
  assert.match(msg, 'CustomResourceDefinition');
  assert.match(msg, 'not installed');
  assert.match(msg, 'crd-sharememory.yaml');
  const before = lists(api).length;
  await waitFor(() => lists(api).length > before + 1, 'retries');
  api.crdInstalled = true;
  await within(src.ready(), 'ready once the CRD is there');
  assert.equal(keys(src), ['ns/a:128']);
});

test('a rotated token file is read again on reconnect', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'token'), 'first\n');
  const { api, src } = await harness(
    (api) => {
      api.token = 'first';
      api.share('ns', 'a', '128Mi');
    },
    { credentials: (api) => parseKubeconfig(kubeconfig(api.url, '    tokenFile: token\n'), path.join(dir, 'kubeconfig')) },
  );
  await within(src.ready(), 'ready');
  await waitFor(() => api.watchCount === 1, 'a watch');
  fs.writeFileSync(path.join(dir, 'token'), 'second\n');
  api.token = 'second';
  api.endWatches();
  api.share('ns', 'b', '128Mi');
  await waitFor(() => src.list().length === 2, 'event seen with the new token');
  assert.is(api.requests.at(-1)!.authorization, 'Bearer second');
  assert.ok(api.requests.every((r) => r.status !== 401), 'no request was refused');
});

test('stop() ends the watch; ready() rejects when stopped before the first list', async () => {
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'));
  await within(src.ready(), 'ready');
  await waitFor(() => api.watchCount === 1, 'a watch');
  await within(src.stop(), 'stop');
  await waitFor(() => api.watchCount === 0, 'the watch closed');
  assert.equal(keys(src), ['ns/a:128'], 'declarations still readable');

  const h2 = await harness((api) => {
    api.crdInstalled = false;
  });
  await waitFor(() => h2.src.errors().length > 0, 'a problem');
  await within(h2.src.stop(), 'stop');
  let rejected: unknown;
  await h2.src.ready().catch((e) => (rejected = e));
  assert.instance(rejected, Error);
  assert.match(String(rejected), 'stopped before the first list');
});

test('feeds a MergedDeclarationStore like any source', async () => {
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'));
  const store = new MergedDeclarationStore();
  const seen: DeclarationChange[] = [];
  store.onChange((c) => seen.push(...c));
  store.addSource(src);
  await within(src.ready(), 'ready');
  assert.is(store.get('ns', 'a')?.sizeBytes, 128 * Mi);
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.share('ns', 'b', '256Mi');
  await waitFor(() => store.get('ns', 'b') !== undefined, 'store sees b');
  assert.equal(summary(seen), ['added ns/a', 'added ns/b']);
  store.close();
});

test("an object this node's limits refuse is kept as a refusal (reason, generation, grants), told to listeners, and cleared when fixed or deleted", async () => {
  // this node takes 256Mi..1Gi; the CRD (the defaults) would admit 128Mi
  const limits = { ...DEFAULT_LIMITS, minShareBytes: 256 * Mi, maxShareBytes: 1024 * Mi };
  const { api, src } = await harness((api) => {
    api.share('ns', 'small', '128Mi', ['team-x', 'Not_A_Namespace']);
    api.share('ns', 'ok', '256Mi');
  }, { limits });
  const told: string[] = [];
  src.onRefusalChange((s, kind) => told.push(`${kind} ${s.namespace}/${s.name}`));
  await within(src.ready(), 'ready');
  assert.equal(src.refused('ns', 'small'), {
    namespace: 'ns', name: 'small', generation: 1, grants: ['team-x'],
    reason: 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 1 GiB',
  });
  assert.is(src.refused('ns', 'ok'), undefined, 'a declared share is no refusal');
  assert.is(src.refused('ns', 'never'), undefined);
  assert.equal(told, ['added ns/small']);
  // through the watch: a new generation still refused is a changed refusal; a good one turning bad is one
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.share('ns', 'small', '64Mi', ['team-x', 'team-y']);
  await waitFor(() => src.refused('ns', 'small')?.generation === 2, 'generation 2 judged');
  assert.equal(src.refused('ns', 'small')?.grants, ['team-x', 'team-y']);
  assert.match(src.refused('ns', 'small')!.reason, /"64Mi" is 64 MiB/);
  api.share('ns', 'ok', '2Gi');
  await waitFor(() => src.refused('ns', 'ok') !== undefined, 'ok turned refused');
  assert.is(src.list().length, 0);
  // fixed (a new generation): the refusal goes and the declaration comes; deleted: it goes
  api.share('ns', 'small', '512Mi', ['team-x']);
  await waitFor(() => src.refused('ns', 'small') === undefined, 'fixed');
  assert.equal(keys(src), ['ns/small:512']);
  api.delete('ns', 'ok');
  await waitFor(() => src.refusals().length === 0, 'deleted');
  assert.equal(told, ['added ns/small', 'changed ns/small', 'added ns/ok', 'removed ns/small', 'removed ns/ok']);
  // a relist (410) judges again: refusals found and gone while away are told too
  api.share('ns', 'fixed-away', '1Pi');
  await waitFor(() => src.refused('ns', 'fixed-away') !== undefined, 'refused');
  told.length = 0;
  api.holdWatches();
  api.endWatches();
  await waitFor(() => api.heldCount === 1, 'the client to watch again');
  api.share('ns', 'fixed-away', '512Mi');
  api.share('ns', 'new-away', '1Pi');
  api.compact();
  api.releaseWatches();
  await waitFor(() => lists(api).length === 2, 'a re-list');
  await waitFor(() => src.refused('ns', 'new-away') !== undefined, 'the re-list judged');
  assert.equal(src.refusals().map((r) => `${r.name}@${r.generation}`), ['new-away@1']);
  assert.equal(told.sort(), ['added ns/new-away', 'removed ns/fixed-away']);
});

test('a store shows a refusal only while no source declares the share, and says when that flips', async () => {
  const limits = { ...DEFAULT_LIMITS, minShareBytes: 256 * Mi };
  const { api, src } = await harness((api) => api.share('ns', 'x', '128Mi'), { limits });
  const files = new MemoryDeclarationSource('files');
  const store = new MergedDeclarationStore([files]);
  store.addSource(src);
  const told: string[] = [];
  store.onRefusalChange((s, kind) => told.push(`${kind} ${s.namespace}/${s.name}`));
  await within(src.ready(), 'ready');
  assert.is(store.refused('ns', 'x')?.reason, 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 512 GiB');
  assert.equal(store.refusals().map((r) => r.name), ['x']);
  files.set([{ namespace: 'ns', name: 'x', sizeBytes: 256 * Mi, allowedNamespaces: [], origin: 'files' }]);
  assert.is(store.refused('ns', 'x'), undefined, 'the file declares it: no refusal in force');
  assert.equal(store.refusals(), []);
  files.set([]);
  assert.ok(store.refused('ns', 'x'));
  assert.equal(told, ['added ns/x', 'removed ns/x', 'added ns/x']);
  await waitFor(() => api.watchCount === 1, 'a watch');
  api.delete('ns', 'x');
  await waitFor(() => told.length === 4, 'deleted');
  assert.equal(told[3], 'removed ns/x');
  store.close();
});

test('https: certificate-authority-data is trusted; an unknown certificate is refused with the reason', async () => {
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'));
  await within(src.ready(), 'ready over https');
  assert.equal(keys(src), ['ns/a:128']);
  assert.equal(src.security, { server: api.url, transport: 'verified', tlsVerified: true });

  const untrusted = new KubernetesDeclarationSource({
    credentials: tokenCreds(api, TOKEN, ''),
    limits: DEFAULT_LIMITS,
    backoff: { initialMs: 5, maxMs: 40 },
  }).start();
  cleanups.push(() => untrusted.stop());
  await waitFor(() => untrusted.errors().length > 0, 'a TLS problem');
  assert.match(untrusted.errors()[0].message, /certificate/i);
  assert.equal(untrusted.list(), []);
});

test('keptAliveRequests: requests one after another share one TLS connection; kubeRequest opens one each', async () => {
  const api = new FakeApiServer({ token: TOKEN, tls: cert });
  await api.start();
  cleanups.push(() => api.stop());
  const creds = tokenCreds(api);
  const list = { method: 'GET', path: '/apis/resource.ubsvirt.huawei.com/v1/sharememories' } as const;
  for (let i = 0; i < 3; i++) assert.is((await kubeRequest(creds, list)).status, 200);
  assert.is(api.connectionsAccepted, 3, 'kubeRequest: a connection per request');
  const kept = keptAliveRequests(creds);
  for (let i = 0; i < 3; i++) assert.is((await kept.send(list)).status, 200);
  assert.is(api.connectionsAccepted, 4, 'kept alive: one connection for three requests');
  kept.close();
});

// ---- hostile or broken servers, and unverified ones (issue 11, point 6) ---------------------------

test('a watch line longer than the cap is cut off with an error; the watch reconnects and goes on', async () => {
  const { api, src, problems } = await harness((api) => api.share('ns', 'a', '128Mi'), { maxEventBytes: 1024 * 1024 });
  await within(src.ready(), 'first list');
  await waitFor(() => api.watchCount === 1, 'a watch');
  const before = watches(api).length;
  // 3 MiB without a newline, in 64 KiB writes: the client must stop at 1 MiB, not buffer it all
  const chunk = Buffer.alloc(64 * 1024, 'x');
  for (let i = 0; i < 48 && api.watchCount > 0; i++) api.writeRawToWatches(chunk);
  await waitFor(() => problems.some((p) => /longer than 1048576 bytes without a newline/.test(p.message)), 'the cut-off is reported');
  assert.match(problems.find((p) => /longer than/.test(p.message))!.message, /^kubernetes https:\/\/127\.0\.0\.1:\d+: watch: an event is longer than 1048576 bytes without a newline .*the watch reconnects; keeping the last 1 known declaration\(s\) and retrying$/);
  assert.equal(keys(src), ['ns/a:128'], 'declarations kept');
  await waitFor(() => watches(api).length > before && api.watchCount === 1, 'a new watch');
  api.share('ns', 'b', '256Mi');
  await waitFor(() => src.list().length === 2, 'events flow again');
  assert.equal(keys(src), ['ns/a:128', 'ns/b:256']);
});

test('a page has no size cap: an object larger than the cap is left out by name, the rest of the page lists', async () => {
  const fill = (api: FakeApiServer) => {
    for (let i = 0; i < 40; i++) api.share('ns', `s${i}`, '128Mi');
    const big = shareMemory('ns', 'huge', '128Mi');
    big.metadata.annotations = { filler: 'x'.repeat(20 * 1024) };
    api.apply(big);
  };
  // the page (all 41 objects, some 30 KiB) is larger than an object may be: it still lists
  const { src, problems } = await harness(fill, { maxObjectBytes: 8 * 1024, pageSize: 0 });
  await within(src.ready(), 'the list');
  assert.is(src.list().length, 40);
  const huge = problems.map((p) => p.message).filter((m) => m.startsWith('kubernetes:ns/huge: '));
  assert.is(huge.length, 1, problems.map((p) => p.message).join('\n'));
  const m = /^kubernetes:ns\/huge: the object is larger than the 8192 bytes a ShareMemory may be here \((\d+) bytes or more\); this object is ignored$/.exec(huge[0]);
  assert.ok(m && Number(m[1]) > 20 * 1024, huge[0]);
  assert.ok(src.errors().some((p) => p.message.startsWith('kubernetes:ns/huge: the object is larger than')), 'listed in errors()');
});

test('past the byte budget objects are left out by name, never the agent; deleting others makes room at the next list', async () => {
  // each declaration grants 100 distinct namespaces of 40 characters: about 17 KiB counted
  const grants = (i: number) => Array.from({ length: 100 }, (_, j) => `n${String(i).padStart(3, '0')}-${String(j).padStart(3, '0')}-${'x'.repeat(32)}`);
  const fill = (api: FakeApiServer) => {
    for (let i = 0; i < 10; i++) api.share('ns', `s${i}`, '128Mi', grants(i));
  };
  const { api, src, problems } = await harness(fill, { maxKeptBytes: 64 * 1024, pageSize: 3 });
  await within(src.ready(), 'the list');
  const kept = src.list().length;
  assert.ok(kept >= 2 && kept < 10, `kept ${kept}`);
  const leftOut = problems.filter((p) => /: left out: the \d+ ShareMemory declaration\(s\) kept from Kubernetes take \d+ of the 65536 bytes this agent keeps/.test(p.message));
  assert.is(leftOut.length, 10 - kept, problems.map((p) => p.message).join('\n'));
  assert.ok(leftOut.every((p) => /^kubernetes:ns\/s\d: left out/.test(p.message)));
  // an object added over the watch past the budget is left out too
  api.share('ns', 'late', '128Mi', grants(99));
  await waitFor(() => problems.some((p) => p.message.startsWith('kubernetes:ns/late: left out')), 'late left out');
  assert.is(src.list().length, kept);
  // a refusal like any other: the pods it grants are told, and the node's status says so
  const late = src.refused('ns', 'late')!;
  assert.is(late.reason, "left out: this node's agent keeps at most 65536 bytes of ShareMemory declarations and they are full; taken when there is room");
  assert.equal([late.generation, late.grants?.length], [1, 100]);
  assert.is(src.refusals().length, 11 - kept);
  // room is made: the next list (after this watch ends) takes the left-out objects
  for (let i = 0; i < 10; i++) api.delete('ns', `s${i}`);
  await waitFor(() => src.list().length === 0, 'deletions seen');
  api.endWatches();
  await waitFor(() => src.list().length === 1, 'the left-out object kept at the next list');
  assert.equal(src.list().map((d) => d.name), ['late']);
  assert.ok(!src.errors().some((p) => p.message.includes('left out')), 'no left-out problem stays');
});

test('a token over http:// is refused before anything is sent', async () => {
  const api = new FakeApiServer({ token: TOKEN });
  await api.start();
  cleanups.push(() => api.stop());
  assert.throws(
    () => parseKubeconfig(kubeconfig(api.url, `    token: ${TOKEN}\n`, ''), '/etc/k/config'),
    (e: unknown) => e instanceof Error && e.message.startsWith(`kubeconfig /etc/k/config: clusters[name=c].cluster.server: ${api.url} is plain http: the token of users[name=u].user would cross the network`),
  );
  assert.is(api.requests.length, 0);
});

test('insecure-skip-tls-verify: connects, warns loudly once at start, and says so in security', async () => {
  const warnings: Array<{ detail: object; msg: string }> = [];
  const log: SourceLog = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (detail, msg) => warnings.push({ detail, msg: msg ?? '' }) };
  const { api, src } = await harness((api) => api.share('ns', 'a', '128Mi'), {
    credentials: (api) => tokenCreds(api, TOKEN, SKIP_TLS_VERIFY),
    log,
  });
  await within(src.ready(), 'ready without verification');
  const sec = src.security;
  assert.is(sec.transport, 'unverified-tls');
  assert.is(sec.tlsVerified, false);
  assert.is(sec.server, api.url);
  assert.match(sec.warning ?? '', /^clusters\[name=c\]\.cluster\.insecure-skip-tls-verify is true: the API server's certificate is not checked/);
  const loud = warnings.filter((w) => /NOT verified/.test(w.msg));
  assert.is(loud.length, 1);
  assert.equal(loud[0].detail, { source: 'kubernetes', server: api.url, transport: 'unverified-tls', problem: sec.warning });
});

test.run();
