// The shipped DRA manifests (packaging/kubernetes/dra/) parse and reference each other and the
// code: the DeviceClass is the driver's name, every claim names it and selects with attributes the
// slice builder publishes, for the share the shipped ShareMemory example declares; the pods name
// claims that exist in their namespace; the read-only config is the driver's ShareConfig; the
// ClusterRole grants what the publisher and the claim reader use; the admission policy names the
// driver. (The real API server accepts the resource.k8s.io objects: test/e2e/dra-apiserver.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_DRIVER_NAME } from '../../plugin/dra/devices';
import { buildSlices } from '../../plugin/dra/slice-builder';
import { shareConfigProblem, SHARE_CONFIG_API_VERSION, SHARE_CONFIG_KIND } from '../../plugin/dra/driver';
import { validateShareMemory } from '../../plugin/declarations/sharememory';
import { DEFAULT_LIMITS } from '../../plugin/model';

const dir = join(__dirname, '../../../packaging/kubernetes');
// YAML documents: their shape is what the assertions check
type Doc = Record<string, any>;

function docs(file: string): Doc[] {
  const all = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
  for (const d of all) assert.equal(d.errors.map(String), [], `${file}: YAML errors`);
  return all.map((d) => d.toJS() as Doc);
}

const files = readdirSync(join(dir, 'dra')).filter((f) => f.endsWith('.yaml')).sort();
const all = files.flatMap((f) => docs(`dra/${f}`).map((d) => ({ file: f, d })));
const ofKind = (kind: string) => all.filter((x) => x.d.kind === kind).map((x) => x.d);

test('the files and their kinds', () => {
  assert.equal(files, ['admission-policy.yaml', 'deviceclass.yaml', 'example-claim-template.yaml', 'example-readonly-claim.yaml', 'example-shared-claim.yaml', 'rbac.yaml']);
  for (const { file, d } of all) assert.ok(d.apiVersion && d.kind && d.metadata?.name, `${file}: ${d.kind} ${d.metadata?.name}`);
});

test('the DeviceClass is the driver: its name and its selector', () => {
  const [dc] = ofKind('DeviceClass');
  assert.is(dc.apiVersion, 'resource.k8s.io/v1');
  assert.is(dc.metadata.name, DEFAULT_DRIVER_NAME);
  assert.equal(dc.spec.selectors, [{ cel: { expression: `device.driver == "${DEFAULT_DRIVER_NAME}"` } }]);
});

test("every claim names the class and selects the example share's device by the attributes the builder publishes", () => {
  const [sm] = docs('example-sharememory.yaml');
  const declaration = validateShareMemory(sm, 'example-sharememory.yaml', DEFAULT_LIMITS);
  const built = buildSlices({ driverName: DEFAULT_DRIVER_NAME, nodeName: 'n', backend: 'local', declarations: [declaration], limits: DEFAULT_LIMITS, topology: { kind: 'node' }, nodeLimit: 'none' });
  const device = built.slices[0].spec.devices?.[0];
  assert.ok(device);
  const specs = [...ofKind('ResourceClaim').map((c) => c.spec), ...ofKind('ResourceClaimTemplate').map((t) => t.spec.spec)];
  assert.is(specs.length, 3);
  for (const spec of specs) {
    for (const r of spec.devices.requests) {
      assert.is(r.exactly.deviceClassName, DEFAULT_DRIVER_NAME);
      assert.not.ok(r.exactly.capacity, 'no capacity request: the device\'s policy allows none');
      const expr: string = r.exactly.selectors[0].cel.expression;
      const terms = [...expr.matchAll(/device\.attributes\["([^"]+)"\]\.(\w+) == "([^"]*)"/g)];
      assert.is(terms.length, 2, expr);
      for (const [, domain, attr, value] of terms) {
        assert.is(domain, DEFAULT_DRIVER_NAME);
        assert.ok(attr in device.attributes, `attribute ${attr} is published`);
        assert.is(device.attributes[attr].string, value, `${attr} selects ${declaration.namespace}/${declaration.name}`);
      }
    }
  }
});

test('pods and Deployments name claims (or templates) of their namespace, and their containers name the pod claim', () => {
  const claims = new Set(ofKind('ResourceClaim').map((c) => `${c.metadata.namespace}/${c.metadata.name}`));
  const templates = new Set(ofKind('ResourceClaimTemplate').map((c) => `${c.metadata.namespace}/${c.metadata.name}`));
  const pods = [...ofKind('Deployment').map((d) => ({ ns: d.metadata.namespace, spec: d.spec.template.spec })), ...ofKind('Pod').map((p) => ({ ns: p.metadata.namespace, spec: p.spec }))];
  assert.is(pods.length, 4);
  for (const { ns, spec } of pods) {
    for (const rc of spec.resourceClaims) {
      if (rc.resourceClaimName) assert.ok(claims.has(`${ns}/${rc.resourceClaimName}`), rc.resourceClaimName);
      else assert.ok(templates.has(`${ns}/${rc.resourceClaimTemplateName}`), rc.resourceClaimTemplateName);
    }
    const names = spec.resourceClaims.map((rc: Doc) => rc.name);
    for (const c of spec.containers) for (const cl of c.resources.claims) assert.ok(names.includes(cl.name));
  }
  // the shared claim: two Deployments on one claim
  const shared = ofKind('Deployment').filter((d) => d.spec.template.spec.resourceClaims.some((rc: Doc) => rc.resourceClaimName === 'demo'));
  assert.is(shared.length, 2);
});

test("the read-only example's config is the driver's ShareConfig, readOnly true", () => {
  const ro = ofKind('ResourceClaim').find((c) => c.spec.devices.config);
  const [cfg] = ro?.spec.devices.config ?? [];
  assert.is(cfg.opaque.driver, DEFAULT_DRIVER_NAME);
  assert.equal(cfg.opaque.parameters, { apiVersion: SHARE_CONFIG_API_VERSION, kind: SHARE_CONFIG_KIND, readOnly: true });
  assert.is(shareConfigProblem(cfg.opaque.parameters), undefined);
  assert.equal(cfg.requests, [ro?.spec.devices.requests[0].name]);
});

test('the ClusterRole grants what the publisher and the claim reader use; the policy names the driver', () => {
  const [role] = ofKind('ClusterRole');
  const verbs = (res: string) => role.rules.filter((r: Doc) => r.apiGroups.includes('resource.k8s.io') && r.resources.includes(res)).flatMap((r: Doc) => r.verbs);
  for (const v of ['list', 'watch', 'create', 'patch', 'delete']) assert.ok(verbs('resourceslices').includes(v), v);
  assert.equal(verbs('resourceclaims'), ['get']);
  const [binding] = ofKind('ClusterRoleBinding');
  assert.is(binding.roleRef.name, role.metadata.name);
  const [policy] = ofKind('ValidatingAdmissionPolicy');
  const [pb] = ofKind('ValidatingAdmissionPolicyBinding');
  assert.is(pb.spec.policyName, policy.metadata.name);
  assert.ok(policy.spec.validations.some((v: Doc) => v.expression.includes(`== "${DEFAULT_DRIVER_NAME}"`)));
  assert.equal(policy.spec.matchConstraints.resourceRules[0].operations, ['CREATE', 'UPDATE', 'DELETE']);
});

test.run();
