// The ClaimReader (plugin/dra/claims.ts) against answers written here the way the API server gives
// them (the same cases against the real server: test/e2e/dra-apiserver.test.ts): the allocation
// and its config read, the uid checked, the v1beta1 fallback on a server that does not serve v1,
// and each failure naming the claim and the reason.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createClaimReader, notAllocated, ClaimReadError } from '../../plugin/dra/claims';
import type { KubeRequest, KubeResponse } from '../../plugin/kube/request';
import { rejectionOf } from '../support/util';

const ref = { namespace: 'team-a', name: 'shared', uid: 'u-1' };
const claim = (status: Record<string, unknown> = {}, uid = 'u-1') => ({
  apiVersion: 'resource.k8s.io/v1',
  kind: 'ResourceClaim',
  metadata: { name: 'shared', namespace: 'team-a', uid },
  spec: { devices: { requests: [{ name: 'mem', exactly: { deviceClassName: 'memshare.nri.io' } }], config: [{ opaque: { driver: 'memshare.nri.io', parameters: { readOnly: false } } }] } },
  status,
});
const answer = (status: number, body: unknown): KubeResponse => ({ status, headers: {}, body: typeof body === 'string' ? body : JSON.stringify(body) });
const notFoundClaim = answer(404, { kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'resourceclaims.resource.k8s.io "shared" not found', details: { name: 'shared', group: 'resource.k8s.io', kind: 'resourceclaims' }, code: 404 });
const notServed = answer(404, { kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'the server could not find the requested resource', details: {}, code: 404 });

function fake(handler: (r: KubeRequest) => KubeResponse) {
  const paths: string[] = [];
  const send = async (r: KubeRequest) => {
    paths.push(r.path);
    return handler(r);
  };
  return { send, paths };
}

const rejects = (p: Promise<unknown>): Promise<ClaimReadError> => rejectionOf(p, ClaimReadError);

test('an allocated claim: results and the allocation config (class and claim) as the scheduler wrote them', async () => {
  const allocation = {
    devices: {
      results: [{ request: 'mem', driver: 'memshare.nri.io', pool: 'node-a', device: 'demo-1a2b3c4d', shareID: 'e6d4b1c2-0000-4000-8000-000000000001', consumedCapacity: { memory: '0' } }],
      config: [
        { source: 'FromClass', opaque: { driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig' } } },
        { source: 'FromClaim', requests: ['mem'], opaque: { driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } } },
      ],
    },
    nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a'] }] }] },
  };
  const f = fake(() => answer(200, claim({ allocation })));
  const view = await createClaimReader({ send: f.send }).read(ref);
  assert.equal(f.paths, ['/apis/resource.k8s.io/v1/namespaces/team-a/resourceclaims/shared']);
  assert.equal(view.results, [{ request: 'mem', driver: 'memshare.nri.io', pool: 'node-a', device: 'demo-1a2b3c4d', shareID: 'e6d4b1c2-0000-4000-8000-000000000001', consumedCapacity: { memory: '0' } }]);
  assert.equal(view.config, [
    { requests: [], driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig' } },
    { requests: ['mem'], driver: 'memshare.nri.io', parameters: { apiVersion: 'memshare.nri.io/v1alpha1', kind: 'ShareConfig', readOnly: true } },
  ]);
  assert.is(view.uid, 'u-1');
});

test('not allocated: results undefined, the spec config, and notAllocated() names the claim', async () => {
  const f = fake(() => answer(200, claim()));
  const view = await createClaimReader({ send: f.send }).read(ref);
  assert.is(view.results, undefined);
  assert.equal(view.config, [{ requests: [], driver: 'memshare.nri.io', parameters: { readOnly: false } }]);
  assert.match(notAllocated(view).message, /ResourceClaim team-a\/shared \(uid u-1\): not allocated/);
});

test('another uid under the same name is another claim', async () => {
  const f = fake(() => answer(200, claim({}, 'u-2')));
  const e = await rejects(createClaimReader({ send: f.send }).read(ref));
  assert.is(e.failure, 'uid-mismatch');
  assert.match(e.message, /ResourceClaim team-a\/shared \(uid u-1\): .*has uid u-2/);
});

test('404 naming the claim: not found, without trying another version', async () => {
  const f = fake(() => notFoundClaim);
  const e = await rejects(createClaimReader({ send: f.send }).read(ref));
  assert.is(e.failure, 'not-found');
  assert.match(e.message, /ResourceClaim team-a\/shared \(uid u-1\): not found \(404/);
  assert.is(f.paths.length, 1);
});

test('v1 not served (Kubernetes 1.32, 1.33): v1beta1 is read, and tried first from then on', async () => {
  const f = fake((r) => (r.path.includes('/v1/') ? notServed : answer(200, { ...claim({ allocation: { devices: { results: [{ request: 'mem', driver: 'memshare.nri.io', pool: 'node-a', device: 'd' }] } } }), apiVersion: 'resource.k8s.io/v1beta1' })));
  const reader = createClaimReader({ send: f.send });
  const view = await reader.read(ref);
  assert.equal(view.results?.map((r) => r.device), ['d']);
  await reader.read(ref);
  assert.equal(f.paths, [
    '/apis/resource.k8s.io/v1/namespaces/team-a/resourceclaims/shared',
    '/apis/resource.k8s.io/v1beta1/namespaces/team-a/resourceclaims/shared',
    '/apis/resource.k8s.io/v1beta1/namespaces/team-a/resourceclaims/shared',
  ]);
});

test('no version served: the error says DRA needs 1.32+', async () => {
  const f = fake(() => answer(404, '404 page not found'));
  const e = await rejects(createClaimReader({ send: f.send }).read(ref));
  assert.is(e.failure, 'no-api');
  assert.match(e.message, /serves no ResourceClaims \(tried resource\.k8s\.io\/v1, resource\.k8s\.io\/v1beta1/);
});

test('403 names the RBAC the agent needs; 5xx and a dead connection are unavailable; garbage is invalid', async () => {
  const forbidden = answer(403, { kind: 'Status', reason: 'Forbidden', message: 'resourceclaims.resource.k8s.io "shared" is forbidden: User "system:node:a" cannot get resource "resourceclaims"' });
  let e = await rejects(createClaimReader({ send: fake(() => forbidden).send }).read(ref));
  assert.is(e.failure, 'forbidden');
  assert.match(e.message, /cannot get resource.*get on resourceclaims in API group resource\.k8s\.io \(ClusterRole nri-memshare-dra/);
  e = await rejects(createClaimReader({ send: fake(() => answer(503, 'busy')).send }).read(ref));
  assert.is(e.failure, 'unavailable');
  e = await rejects(createClaimReader({ send: async () => { throw new Error('ECONNREFUSED'); } }).read(ref));
  assert.is(e.failure, 'unavailable');
  assert.match(e.message, /team-a\/shared.*ECONNREFUSED/);
  e = await rejects(createClaimReader({ send: fake(() => answer(200, claim({ allocation: { devices: { results: [{ request: 'mem' }] } } }))).send }).read(ref));
  assert.is(e.failure, 'invalid');
  assert.match(e.message, /status\.allocation\.devices\.results\[0\]\.driver is missing/);
});

test.run();
