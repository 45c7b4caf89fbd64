// The DRA front door's API-server side against Kubernetes' real API server code
// (test/harness/apiserver.ts: apiextensions-apiserver 1.36.4 over etcd, driven with kubectl 1.36.4).
// That server serves custom resources only, so ResourceSlice, ResourceClaim,
// ResourceClaimTemplate and DeviceClass are stand-in CRDs of the same group, version, kinds and
// scopes whose schemas follow k8s.io/api/resource/v1 with the real validation's checks that matter
// here (test/fixtures/kube/dra-standin-crds.yaml says which, and what a CRD cannot check).
// No scheduler and no kubelet run here: the test writes a claim's allocation the way the scheduler
// does (an update of the claim's status subresource with status.allocation and reservedFor) and
// asks for claims the way the kubelet names them (namespace, name, uid).
// The slice publisher runs against it as node-a with the real declaration store; node-b's slice is
// written by kubectl as another node's agent would.
// Needs no containerd, so it runs once per test run, not per containerd version.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startKubeApi, type KubeApi } from '../harness';
import { kubeRequest, loadKubeconfig } from '../../plugin/kube';
import { createClaimReader, ClaimReadError } from '../../plugin/dra/claims';
import type { KubeSend } from '../../plugin/dra/api';
import { createSlicePublisher, topologyFor, type SlicePublisherEvent } from '../../plugin/dra/slices';
import { deviceNameOf } from '../../plugin/dra/devices';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { DEFAULT_LIMITS, type ShareDeclaration } from '../../plugin/model';
import { rejectionOf } from '../support/util';

const REPO = join(__dirname, '..', '..', '..');
const CRDS = join(REPO, 'test', 'fixtures', 'kube', 'dra-standin-crds.yaml');
let api: KubeApi;
let send: KubeSend;

const rejects = (p: Promise<unknown>): Promise<ClaimReadError> => rejectionOf(p, ClaimReadError);

test('the stand-in resource.k8s.io/v1 CRDs are applied with kubectl and established', async () => {
  api = await startKubeApi();
  const credentials = loadKubeconfig(api.adminKubeconfig);
  send = (r) => kubeRequest(credentials, r);
  api.kubectlOk(['apply', '--validate=strict', '-f', CRDS]);
  api.kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', 'crd/resourceslices.resource.k8s.io', 'crd/resourceclaims.resource.k8s.io', 'crd/resourceclaimtemplates.resource.k8s.io', 'crd/deviceclasses.resource.k8s.io']);
  assert.match(api.kubectlOk(['api-resources', '--api-group=resource.k8s.io']), /resourceslices[\s\S]*false[\s\S]*ResourceSlice/);
});

test('ClaimReader: a claim allocated the way the scheduler writes it (status subresource) is read with its config', async () => {
  const claim = {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name: 'shared', namespace: 'team-a' },
    spec: {
      devices: {
        requests: [{ name: 'mem', exactly: { deviceClassName: 'memshare.nri.io', selectors: [{ cel: { expression: 'device.attributes["memshare.nri.io"].share == "demo"' } }] } }],
        config: [{ requests: ['mem'], opaque: { driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } } }],
      },
    },
  };
  const created = JSON.parse(api.kubectlOk(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(claim) })) as { metadata: { uid: string } };
  const ref = { namespace: 'team-a', name: 'shared', uid: created.metadata.uid };
  const reader = createClaimReader({ send });
  const before = await reader.read(ref);
  assert.is(before.results, undefined, 'not allocated yet');
  assert.equal(before.config.map((c) => c.requests), [['mem']]);

  // the scheduler: GET, set status.allocation (results, config copied from class and claim,
  // nodeSelector) and reservedFor, PUT .../status
  const current = JSON.parse(api.kubectlOk(['get', 'resourceclaim', '-n', 'team-a', 'shared', '-o', 'json'])) as Record<string, unknown>;
  current.status = {
    allocation: {
      devices: {
        results: [{ request: 'mem', driver: 'memshare.nri.io', pool: 'node-a', device: 'demo-1a2b3c4d', shareID: '6c1f0b1e-7d0e-4a57-9a43-3c2f3f0c9a11', consumedCapacity: { memory: '0' } }],
        config: [{ source: 'FromClaim', requests: ['mem'], opaque: { driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } } }],
      },
      nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a'] }] }] },
      allocationTimestamp: '2026-12-07T09:30:00Z',
    },
    reservedFor: [{ resource: 'pods', name: 'web-0', uid: 'p-1' }],
  };
  const put = await send({ method: 'PUT', path: '/apis/resource.k8s.io/v1/namespaces/team-a/resourceclaims/shared/status', body: JSON.stringify(current) });
  assert.is(put.status, 200, put.body);
  const view = await reader.read(ref);
  assert.equal(view.results, [{ request: 'mem', driver: 'memshare.nri.io', pool: 'node-a', device: 'demo-1a2b3c4d', shareID: '6c1f0b1e-7d0e-4a57-9a43-3c2f3f0c9a11', consumedCapacity: { memory: '0' } }]);
  assert.equal(view.config, [{ requests: ['mem'], driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } }]);

  // the claim deleted and made again under the same name: the kubelet's uid no longer matches
  api.kubectlOk(['delete', 'resourceclaim', '-n', 'team-a', 'shared']);
  api.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(claim) });
  const e = await rejects(reader.read(ref));
  assert.is(e.failure, 'uid-mismatch');
  assert.match(e.message, new RegExp(`ResourceClaim team-a/shared \\(uid ${ref.uid}\\): the claim of that name on the API server has uid`));
});

test('ClaimReader: a missing claim is a 404 naming it; a certificate outside the allowed groups gets 403 naming the RBAC', async () => {
  const reader = createClaimReader({ send });
  let e = await rejects(reader.read({ namespace: 'team-a', name: 'absent', uid: 'u-x' }));
  assert.is(e.failure, 'not-found');
  assert.match(e.message, /ResourceClaim team-a\/absent \(uid u-x\): not found \(404: resourceclaims\.resource\.k8s\.io "absent" not found\)/);
  const outsider = loadKubeconfig(api.kubeconfig('system:node:node-a', ['system:nodes']));
  e = await rejects(createClaimReader({ send: (r) => kubeRequest(outsider, r) }).read({ namespace: 'team-a', name: 'shared', uid: 'u-x' }));
  assert.is(e.failure, 'forbidden');
  assert.match(e.message, /HTTP 403: .*system:node:node-a.*get on resourceclaims in API group resource\.k8s\.io/);
});

test('ClaimReader: v1beta1 is not served by this server: listed first, the reader falls back to v1', async () => {
  const paths: string[] = [];
  const reader = createClaimReader({ send: (r) => (paths.push(r.path), send(r)), versions: ['v1beta1', 'v1'] });
  const e = await rejects(reader.read({ namespace: 'team-a', name: 'absent', uid: 'u-x' }));
  assert.is(e.failure, 'not-found');
  assert.equal(paths.map((p) => p.split('/')[3]), ['v1beta1', 'v1']);
});

const GiB = 1024 ** 3;
const decl = (namespace: string, name: string, sizeBytes = GiB): ShareDeclaration => ({ namespace, name, sizeBytes, allowedNamespaces: [], origin: 'test' });
interface Slice { metadata: { name: string; generation: number; managedFields: Array<{ manager: string }> }; spec: { nodeName?: string; pool: { name: string; generation: number; resourceSliceCount: number }; devices?: Array<{ name: string; capacity: { memory: { value: string } } }>; sharedCounters?: unknown[] } }
const slicesOf = (node: string): Slice[] =>
  (JSON.parse(api.kubectlOk(['get', 'resourceslices', '--field-selector', `spec.nodeName=${node}`, '--show-managed-fields', '-o', 'json'])) as { items: Slice[] }).items;

test('publisher: node-a publishes its shares, follows a declaration added, changed and removed, deletes its stale slice, leaves node-b alone', async () => {
  // another node's slice, as its agent wrote it
  api.kubectlOk(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceSlice', metadata: { name: 'memshare-nri-io-node-b-0' }, spec: { driver: 'memshare.nri.io', nodeName: 'node-b', pool: { name: 'node-b', generation: 3, resourceSliceCount: 1 }, devices: [{ name: deviceNameOf('team-a', 'demo') }] } }) });
  const nodeB = JSON.stringify(slicesOf('node-b'));

  const source = new MemoryDeclarationSource('test', [decl('team-a', 'demo')]);
  const store = new MergedDeclarationStore([source]);
  const events: SlicePublisherEvent[] = [];
  const publisher = createSlicePublisher({ send, nodeName: 'node-a', backend: 'local', store, limits: DEFAULT_LIMITS, debounceMs: 20, resyncMs: 0, onEvent: (e) => events.push(e) });
  const published = async (n: number) => {
    const end = Date.now() + 10000;
    while (events.filter((e) => e.kind === 'published').length < n) {
      if (Date.now() > end) throw new Error(`no publish ${n}: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  publisher.start();
  await published(1);
  let mine = slicesOf('node-a');
  assert.equal(mine.map((s) => s.metadata.name), ['memshare-nri-io-node-a-0', 'memshare-nri-io-node-a-1'], 'the counter slice and one device slice');
  assert.ok(mine[0].spec.sharedCounters && !mine[0].spec.devices, 'counters alone in their slice');
  assert.equal(mine[1].spec.devices?.map((d) => d.name), [deviceNameOf('team-a', 'demo')]);
  assert.ok(mine.every((s) => s.spec.pool.generation === 1 && s.spec.pool.resourceSliceCount === 2));
  assert.ok(mine[1].metadata.managedFields.some((m) => m.manager === 'nri-memshare-dra-node-a'), 'written by server-side apply as node-a\'s field manager');

  // changed: the size follows; added: 70 shares more, three device slices of at most 64 devices
  source.set([decl('team-a', 'demo', 2 * GiB), ...Array.from({ length: 70 }, (_, i) => decl('team-b', `s-${i}`))]);
  await published(2);
  mine = slicesOf('node-a');
  assert.equal(mine.map((s) => s.spec.devices?.length ?? 0), [0, 64, 7]);
  assert.ok(mine.every((s) => s.spec.pool.generation === 2 && s.spec.pool.resourceSliceCount === 3));
  const demo = mine.flatMap((s) => s.spec.devices ?? []).find((d) => d.name === deviceNameOf('team-a', 'demo'));
  assert.is(demo?.capacity.memory.value, String(2 * GiB));

  // removed: back to one share; the now stale third slice is deleted
  source.set([decl('team-b', 's-1')]);
  await published(3);
  mine = slicesOf('node-a');
  assert.equal(mine.map((s) => s.metadata.name), ['memshare-nri-io-node-a-0', 'memshare-nri-io-node-a-1']);
  assert.equal(mine[1].spec.devices?.map((d) => d.name), [deviceNameOf('team-b', 's-1')]);
  assert.ok(mine.every((s) => s.spec.pool.generation === 3 && s.spec.pool.resourceSliceCount === 2));
  assert.is(JSON.stringify(slicesOf('node-b')), nodeB, 'node-b\'s slice untouched (same resourceVersion)');

  // a restarted agent starts above the generation on the server, and writes once
  await publisher.stop();
  const again = createSlicePublisher({ send, nodeName: 'node-a', backend: 'local', store, limits: DEFAULT_LIMITS });
  await again.flush();
  assert.ok(slicesOf('node-a').every((s) => s.spec.pool.generation === 4));
  await again.flush();
  assert.is(again.stats().applies, 2, 'the second sync found everything in place');
  assert.equal(events.filter((e) => e.kind === 'failed'), []);
});

test('publisher: a UB pool spanning nodes: two nodes write the same slice under one field manager', async () => {
  const store = new MergedDeclarationStore([new MemoryDeclarationSource('test', [decl('team-a', 'demo')])]);
  const topology = topologyFor('ubs', 'pool-1');
  for (const node of ['node-a', 'node-b']) await createSlicePublisher({ send, nodeName: node, backend: 'ubs', store, limits: DEFAULT_LIMITS, topology }).flush();
  const all = (JSON.parse(api.kubectlOk(['get', 'resourceslices', '--show-managed-fields', '-o', 'json'])) as { items: Slice[] }).items.filter((s) => s.spec.pool.name === 'memshare-ub-pool-1');
  assert.is(all.length, 1);
  assert.is(all[0].spec.nodeName, undefined);
  assert.equal(all[0].metadata.managedFields.map((m) => m.manager), ['nri-memshare-dra-pool-memshare-ub-pool-1']);
  assert.is(all[0].spec.pool.generation, 2, 'each node\'s first sync writes once');
});

test("the server's validation refuses bad slices, naming the field", () => {
  const create = (name: string, spec: Record<string, unknown>) => api.kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceSlice', metadata: { name }, spec }) });
  const pool = { name: 'node-c', generation: 1, resourceSliceCount: 1 };
  const dev = (i: number) => ({ name: `d-${i}`, consumesCounters: [{ counterSet: 'node-memory', counters: { memory: { value: '1Gi' } } }] });
  const refused = (name: string, spec: Record<string, unknown>, re: RegExp) => {
    const r = create(name, spec);
    assert.is.not(r.status, 0, `${name} accepted`);
    assert.match(r.stderr, re, name);
  };
  refused('no-node', { driver: 'memshare.nri.io', pool, devices: [{ name: 'a' }] }, /exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required/);
  refused('two-nodes', { driver: 'memshare.nri.io', pool, nodeName: 'node-c', allNodes: true, devices: [{ name: 'a' }] }, /exactly one of/);
  refused('too-many', { driver: 'memshare.nri.io', pool, nodeName: 'node-c', devices: Array.from({ length: 129 }, (_, i) => ({ name: `d-${i}` })) }, /spec\.devices: Too many: 129: must have at most 128 items/);
  refused('too-many-counters', { driver: 'memshare.nri.io', pool, nodeName: 'node-c', devices: Array.from({ length: 65 }, (_, i) => dev(i)) }, /at most 64 devices when any device consumes counters/);
  refused('bad-device', { driver: 'memshare.nri.io', pool, nodeName: 'node-c', devices: [{ name: 'Demo_1' }] }, /spec\.devices\[0\]\.name: Invalid value: "Demo_1"/);
  refused('bad-driver', { driver: 'Memshare', pool, nodeName: 'node-c', devices: [{ name: 'a' }] }, /spec\.driver: Invalid value: "Memshare"/);
  refused('policy-needs-multi', { driver: 'memshare.nri.io', pool, nodeName: 'node-c', devices: [{ name: 'a', capacity: { memory: { value: '1Gi', requestPolicy: { default: '0', validRange: { min: '0' } } } } }] }, /requestPolicy needs allowMultipleAllocations/);
  refused('zero-count', { driver: 'memshare.nri.io', pool: { ...pool, resourceSliceCount: 0 }, nodeName: 'node-c', devices: [{ name: 'a' }] }, /spec\.pool\.resourceSliceCount: Invalid value: 0/);
});

test('the shipped DeviceClass and example claims and template (packaging/kubernetes/dra) are accepted with strict validation', () => {
  // Deployments and Pods need the core API this server lacks; the resource.k8s.io objects are applied
  const dir = join(REPO, 'packaging', 'kubernetes', 'dra');
  const objects = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as { apiVersion: string; kind: string }))
    .filter((o) => o.apiVersion.startsWith('resource.k8s.io/'));
  assert.equal(objects.map((o) => o.kind).sort(), ['DeviceClass', 'ResourceClaim', 'ResourceClaim', 'ResourceClaimTemplate']);
  const out = api.kubectlOk(['apply', '--validate=strict', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n---\n') });
  assert.match(out, /deviceclass\.resource\.k8s\.io\/memshare\.nri\.io created/);
  assert.match(out, /resourceclaimtemplate\.resource\.k8s\.io\/demo-share created/);
});

test('stop', async () => {
  await api.stop();
});

test.run();
