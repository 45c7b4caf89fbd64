import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { POD_ANNOTATION } from '../../plugin/memshare/annotations';
import { type AuthorizeRequest, authorize } from '../../plugin/memshare/authorize';
import { DEFAULT_LIMITS, RefusalError, type ShareDeclaration, type ShareRef } from '../../plugin/model/types';

const Mi = 1024 ** 2;
const Gi = 1024 ** 3;

function decl(namespace: string, name: string, sizeBytes = 256 * Mi, allowedNamespaces: string[] = []): ShareDeclaration {
  return { namespace, name, sizeBytes, allowedNamespaces, origin: 'test' };
}

const store = new MergedDeclarationStore([
  new MemoryDeclarationSource('test', [
    decl('team-a', 'cache', 1 * Gi),
    decl('team-b', 'model', 2 * Gi, ['team-a']),
    decl('team-b', 'private', 2 * Gi),
    decl('team-a', 'huge', 300 * Gi),
    decl('team-a', 'huge2', 300 * Gi),
  ]),
]);

function ref(namespace: string, name: string, readOnly = false): ShareRef {
  return { namespace, name, readOnly };
}

function req(refs: ShareRef[], over: Partial<AuthorizeRequest> = {}): AuthorizeRequest {
  return {
    annotation: POD_ANNOTATION,
    refs,
    podNamespace: 'team-a',
    store,
    limits: DEFAULT_LIMITS,
    isPresent: () => false,
    nodeBytesInUse: 0,
    ...over,
  };
}

function refused(r: AuthorizeRequest, reason: string, message: RegExp | string): void {
  try {
    authorize(r);
  } catch (e) {
    assert.instance(e, RefusalError);
    const err = e as RefusalError;
    assert.is(err.reason, reason);
    if (typeof message === 'string') assert.is(err.message, message);
    else assert.match(err.message, message);
    return;
  }
  assert.unreachable('authorized');
}

test('own and shared-with shares resolve to their declarations, in order', () => {
  const out = authorize(req([ref('team-a', 'cache'), ref('team-b', 'model', true)]));
  assert.equal(out.map((o) => [o.ref.name, o.ref.readOnly, o.declaration.sizeBytes]), [['cache', false, 1 * Gi], ['model', true, 2 * Gi]]);
  assert.equal(authorize(req([])), []);
});

test('an undeclared share is refused with the annotation, the share and the reason', () => {
  refused(
    req([ref('team-a', 'cache'), ref('team-a', 'nope')]),
    'unknown-share',
    'memshare.nri.io/pod: share "team-a/nope": not declared (no ShareMemory team-a/nope on this node)',
  );
});

test('a removed declaration whose share is still present says so', () => {
  refused(req([ref('team-a', 'gone')], { isPresent: (ns, n) => ns === 'team-a' && n === 'gone' }), 'declaration-removed', /share "team-a\/gone": its ShareMemory team-a\/gone was removed; it takes no new bindings/);
});

test("another tenant's share is refused unless it lists the pod namespace", () => {
  refused(
    req([ref('team-b', 'private')]),
    'forbidden-namespace',
    'memshare.nri.io/pod: share "team-b/private": not granted to namespace "team-a" (no ShareMemory team-b/private on this node lists "team-a" in spec.allowedNamespaces or spec.readOnlyNamespaces)',
  );
  refused(req([ref('team-b', 'model')], { podNamespace: 'team-c' }), 'forbidden-namespace', /"team-c"/);
  assert.is(authorize(req([ref('team-b', 'model')])).length, 1);
});

/** The refusal of a request, for comparing two answers. */
function refusalOf(r: AuthorizeRequest): RefusalError {
  try {
    authorize(r);
  } catch (e) {
    assert.instance(e, RefusalError);
    return e as RefusalError;
  }
  assert.unreachable('authorized');
  throw new Error('unreachable');
}

test("outside a share's grants, a pod gets one answer whether the share is declared, removed or never was; the operator's detail and reason differ", () => {
  const removed = { isPresent: (ns: string, n: string) => ns === 'team-b' && n === 'private' };
  const declared = refusalOf(req([ref('team-b', 'private')]));
  const gone = refusalOf(req([ref('team-b', 'private')], { store: new MergedDeclarationStore([]), ...removed }));
  const never = refusalOf(req([ref('team-b', 'private')], { store: new MergedDeclarationStore([]) }));
  assert.is(gone.message, declared.message, 'removed and declared read the same to the pod');
  assert.is(never.message, declared.message, 'never declared and declared read the same to the pod');
  // read-only bindings too: a ":ro" ref must not probe either
  assert.is(refusalOf(req([ref('team-b', 'private', true)])).message, refusalOf(req([ref('team-b', 'ghost', true)])).message.replace(/ghost/g, 'private'));
  assert.equal([declared.reason, gone.reason, never.reason], ['forbidden-namespace', 'declaration-removed', 'unknown-share']);
  assert.match(declared.operatorDetail ?? '', 'belongs to namespace "team-b" and its ShareMemory does not list "team-a" in spec.allowedNamespaces');
  assert.match(gone.operatorDetail ?? '', 'its ShareMemory team-b/private was removed');
  assert.match(never.operatorDetail ?? '', 'not declared (no ShareMemory team-b/private on this node)');
  // within its own namespace a pod still learns which: those names are its own
  assert.is(refusalOf(req([ref('team-a', 'nope')])).operatorDetail, undefined);
});

test('a share the cluster declares but this node refuses: the pods it grants are told why; any other pod gets the answer for a share that never was', () => {
  const reason = 'spec.storage: "128Mi" is 128 MiB, outside the allowed range 256 MiB to 512 GiB';
  const refusedHere = (grants?: string[]): AuthorizeRequest['store'] => ({
    get: () => undefined,
    refused: (ns, name) => (ns === 'team-b' && name === 'small' ? { namespace: ns, name, reason, generation: 3, ...(grants ? { grants } : {}) } : undefined),
  });
  const rstore = refusedHere(['team-a', 'team-ro']);
  // the owner's pods and the granted namespaces' pods: the distinct text, with the node's reason
  const text = `memshare.nri.io/pod: share "team-b/small": declared but refused on this node: ${reason}`;
  refused(req([ref('team-b', 'small')], { store: rstore, podNamespace: 'team-b' }), 'declaration-refused', text);
  refused(req([ref('team-b', 'small')], { store: rstore }), 'declaration-refused', text);
  refused(req([ref('team-b', 'small', true)], { store: rstore, podNamespace: 'team-ro' }), 'declaration-refused', text);
  refused(req([ref('team-b', 'small')], { store: rstore, isPresent: () => true }), 'declaration-refused', `${text} (current users keep it until they end)`);
  // outside the grants: word for word what a share that never existed gets; the log keeps the difference
  const outside = refusalOf(req([ref('team-b', 'small')], { store: rstore, podNamespace: 'team-c' }));
  const never = refusalOf(req([ref('team-b', 'small')], { store: new MergedDeclarationStore([]), podNamespace: 'team-c' }));
  assert.is(outside.message, never.message);
  assert.is(outside.reason, 'declaration-refused');
  assert.match(outside.operatorDetail ?? '', `declared but refused on this node: ${reason}; "team-c" is not among the namespaces it grants`);
  // grants unknown (not kept): only the owner's pods are told
  refused(req([ref('team-b', 'small')], { store: refusedHere(), podNamespace: 'team-b' }), 'declaration-refused', text);
  assert.is(refusalOf(req([ref('team-b', 'small')], { store: refusedHere() })).message, refusalOf(req([ref('team-b', 'small')], { store: new MergedDeclarationStore([]) })).message);
  // a share declared here (another source) wins over a refusal: the store never gives both
  assert.is(authorize(req([ref('team-a', 'cache')], { store: { get: (ns, n) => store.get(ns, n), refused: () => assert.unreachable('a declared share is not looked up as refused') as never } })).length, 1);
});

test('spec.readOnlyNamespaces: a namespace granted read-only binds with ":ro" only; read-write grants and other namespaces unchanged', () => {
  const grants = new MergedDeclarationStore([
    new MemoryDeclarationSource('test', [{ ...decl('team-b', 'feed', 1 * Gi, ['team-rw']), readOnlyNamespaces: ['team-a'] }]),
  ]);
  assert.is(authorize(req([ref('team-b', 'feed', true)], { store: grants })).length, 1, 'read-only grant, read-only binding');
  refused(
    req([ref('team-b', 'feed')], { store: grants }),
    'read-only-grant',
    'memshare.nri.io/pod: share "team-b/feed": belongs to namespace "team-b", whose ShareMemory grants "team-a" read-only access (spec.readOnlyNamespaces); bind it as "team-b/feed:ro"',
  );
  assert.is(authorize(req([ref('team-b', 'feed')], { store: grants, podNamespace: 'team-rw' })).length, 1, 'allowedNamespaces still grants read-write');
  assert.is(authorize(req([ref('team-b', 'feed', true)], { store: grants, podNamespace: 'team-rw' })).length, 1);
  assert.is(authorize(req([ref('team-b', 'feed')], { store: grants, podNamespace: 'team-b' })).length, 1, 'the owner writes');
  refused(req([ref('team-b', 'feed', true)], { store: grants, podNamespace: 'team-c' }), 'forbidden-namespace', /not granted to namespace "team-c"/);
});

test('the annotation key in messages is the one the refs came from', () => {
  refused(req([ref('team-a', 'nope')], { annotation: 'memshare.nri.io/container.app' }), 'unknown-share', /^memshare\.nri\.io\/container\.app: share "team-a\/nope"/);
});

test('a declared size outside the current limits is refused', () => {
  const limits = { ...DEFAULT_LIMITS, maxShareBytes: 512 * Mi };
  refused(req([ref('team-a', 'cache')], { limits }), 'size-limit', /share "team-a\/cache": declared size 1 GiB is outside the allowed range 128 MiB to 512 MiB/);
  // even when the share is already present: the limit applies to new bindings
  refused(req([ref('team-a', 'cache')], { limits, isPresent: () => true }), 'size-limit', /declared size/);
});

test('the node limit counts shares not yet present, including earlier refs of the same container', () => {
  assert.is(authorize(req([ref('team-a', 'huge')], { nodeBytesInUse: 212 * Gi })).length, 1);
  refused(
    req([ref('team-a', 'huge')], { nodeBytesInUse: 212 * Gi + 1 }),
    'node-limit',
    /share "team-a\/huge": needs 300 GiB more on this node, which would bring all shares here to .* more than the 512 GiB allowed/,
  );
  refused(req([ref('team-a', 'huge'), ref('team-a', 'huge2')]), 'node-limit', /share "team-a\/huge2": .*600 GiB/);
  // a present share costs nothing new
  const present = (_: string, n: string) => n === 'huge';
  assert.is(authorize(req([ref('team-a', 'huge')], { isPresent: present, nodeBytesInUse: 500 * Gi })).length, 1);
  assert.is(authorize(req([ref('team-a', 'huge'), ref('team-a', 'cache')], { isPresent: present, nodeBytesInUse: 300 * Gi })).length, 2);
});

test.run();
