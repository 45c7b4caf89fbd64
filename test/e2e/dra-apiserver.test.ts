// The DRA front door's API-server side against Kubernetes' real API server code
// (test/harness/apiserver.ts: apiextensions-apiserver 1.36.4 over etcd, driven with kubectl 1.36.4).
// That server serves custom resources only, so ResourceSlice, ResourceClaim,
// ResourceClaimTemplate and DeviceClass are stand-in CRDs of the same group, version, kinds and
// scopes whose schemas follow k8s.io/api/resource/v1 with the real validation's checks that matter
// here (test/fixtures/kube/dra-standin-crds.yaml says which, and what a CRD cannot check).
// No scheduler and no kubelet run here: the test writes a claim's allocation the way the scheduler
// does (an update of the claim's status subresource with status.allocation and reservedFor) and
// asks for claims the way the kubelet names them (namespace, name, uid).
// Needs no containerd, so it runs once per test run, not per containerd version.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startKubeApi, type KubeApi } from '../harness';
import { kubeRequest, loadKubeconfig } from '../../plugin/kube';
import { createClaimReader, ClaimReadError } from '../../plugin/dra/claims';
import type { KubeSend } from '../../plugin/dra/api';

const REPO = join(__dirname, '..', '..', '..');
const CRDS = join(REPO, 'test', 'fixtures', 'kube', 'dra-standin-crds.yaml');
let api: KubeApi;
let send: KubeSend;

async function rejects(p: Promise<unknown>): Promise<ClaimReadError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ClaimReadError);
    return e as ClaimReadError;
  }
  throw new Error('expected a rejection');
}

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

test('stop', async () => {
  await api.stop();
});

test.run();
