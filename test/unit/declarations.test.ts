import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DeclarationError,
  MemoryDeclarationSource,
  MergedDeclarationStore,
  validateShareMemory,
  type DeclarationChange,
} from '../../plugin/declarations';
import { DEFAULT_LIMITS, type ShareDeclaration } from '../../plugin/model/types';

const Mi = 1024 ** 2;
const Gi = 1024 ** 3;

// Overrides merge into metadata/spec when given as objects and replace them otherwise.
function obj(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { metadata, spec, ...top } = overrides;
  const merge = (base: Record<string, unknown>, key: string, v: unknown) =>
    !(key in overrides) ? base : typeof v === 'object' && v !== null ? { ...base, ...v } : v;
  return {
    apiVersion: 'resource.ubsvirt.huawei.com/v1',
    kind: 'ShareMemory',
    metadata: merge({ name: 'cache', namespace: 'team-a' }, 'metadata', metadata),
    spec: merge({ storage: '5120Mi' }, 'spec', spec),
    ...top,
  };
}

function invalid(o: unknown, field: string, reason: RegExp): DeclarationError {
  try {
    validateShareMemory(o, '/etc/shares.d/a.yaml', DEFAULT_LIMITS);
  } catch (e) {
    assert.instance(e, DeclarationError);
    const err = e as DeclarationError;
    assert.is(err.field, field);
    assert.match(err.reason, reason);
    assert.ok(err.message.startsWith('/etc/shares.d/a.yaml:'), `message names the file: ${err.message}`);
    if (field) assert.ok(err.message.includes(`${field}: `), `message names the field: ${err.message}`);
    return err;
  }
  throw new Error(`accepted: ${JSON.stringify(o)}`);
}

function decl(namespace: string, name: string, sizeBytes = 256 * Mi, allowedNamespaces: string[] = [], origin = 'mem'): ShareDeclaration {
  return { namespace, name, sizeBytes, allowedNamespaces, origin };
}

test('a valid ShareMemory becomes a declaration', () => {
  const d = validateShareMemory(obj({ spec: { allowedNamespaces: ['team-b', 'team-c', 'team-b'] } }), 'f.yaml', DEFAULT_LIMITS);
  assert.equal(d, { namespace: 'team-a', name: 'cache', sizeBytes: 5120 * Mi, allowedNamespaces: ['team-b', 'team-c'], origin: 'f.yaml' });
});

test('unknown fields, status and a numeric storage are tolerated', () => {
  const d = validateShareMemory(
    obj({ status: { phase: 'Bound' }, metadata: { labels: { a: 'b' }, uid: 'x' }, spec: { storage: 1073741824, future: true } }),
    'f',
    DEFAULT_LIMITS,
  );
  assert.is(d.sizeBytes, Gi);
  assert.equal(d.allowedNamespaces, []);
});

test('wrong apiVersion or kind is refused', () => {
  invalid(obj({ apiVersion: 'v1' }), 'apiVersion', /must be "resource\.ubsvirt\.huawei\.com\/v1", found "v1"/);
  invalid(obj({ apiVersion: undefined }), 'apiVersion', /found nothing/);
  invalid(obj({ kind: 'ConfigMap' }), 'kind', /must be "ShareMemory"/);
  invalid([obj()], '', /expected a ShareMemory object, found a list/);
  invalid('text', '', /found a string/);
});

test('metadata.name must be a DNS-1123 label of at most 47 characters', () => {
  invalid(obj({ metadata: { name: undefined } }), 'metadata.name', /is missing/);
  invalid(obj({ metadata: { name: 'Cache' } }), 'metadata.name', /not a DNS-1123 label/);
  invalid(obj({ metadata: { name: '../etc' } }), 'metadata.name', /not a DNS-1123 label/);
  invalid(obj({ metadata: { name: 'a'.repeat(48) } }), 'metadata.name', /48 characters long, at most 47/);
  invalid(obj({ metadata: { name: 7 } }), 'metadata.name', /must be a string/);
  assert.is(validateShareMemory(obj({ metadata: { name: 'a'.repeat(47) } }), 'f', DEFAULT_LIMITS).name.length, 47);
});

test('metadata.namespace is required and a DNS-1123 label of at most 63 characters', () => {
  invalid(obj({ metadata: { namespace: undefined } }), 'metadata.namespace', /is missing/);
  invalid(obj({ metadata: { namespace: 'a'.repeat(64) } }), 'metadata.namespace', /at most 63/);
  invalid(obj({ metadata: { namespace: 'team_a' } }), 'metadata.namespace', /not a DNS-1123 label/);
  invalid(obj({ metadata: null }), 'metadata', /must be an object/);
  assert.is(validateShareMemory(obj({ metadata: { namespace: 'n'.repeat(63) } }), 'f', DEFAULT_LIMITS).namespace.length, 63);
});

test('spec.storage must be a quantity within the limits', () => {
  invalid(obj({ spec: undefined }), 'spec', /is missing/);
  invalid(obj({ spec: { storage: undefined } }), 'spec.storage', /is missing/);
  invalid(obj({ spec: { storage: 'lots' } }), 'spec.storage', /not a Kubernetes quantity/);
  invalid(obj({ spec: { storage: '-1Gi' } }), 'spec.storage', /negative/);
  invalid(obj({ spec: { storage: true } }), 'spec.storage', /must be a quantity/);
  invalid(obj({ spec: { storage: '127Mi' } }), 'spec.storage', /127 MiB, outside the allowed range 128 MiB to 512 GiB/);
  invalid(obj({ spec: { storage: '513Gi' } }), 'spec.storage', /outside the allowed range/);
  assert.is(validateShareMemory(obj({ spec: { storage: '128Mi' } }), 'f', DEFAULT_LIMITS).sizeBytes, 128 * Mi);
  assert.is(validateShareMemory(obj({ spec: { storage: '512Gi' } }), 'f', DEFAULT_LIMITS).sizeBytes, 512 * Gi);
  const small = { ...DEFAULT_LIMITS, minShareBytes: 1, maxShareBytes: 10 * Mi };
  assert.is(validateShareMemory(obj({ spec: { storage: '1Mi' } }), 'f', small).sizeBytes, Mi);
});

test('the error names the object once its identity is known', () => {
  const err = invalid(obj({ spec: { storage: '1Ki' } }), 'spec.storage', /outside/);
  assert.match(err.message, /^\/etc\/shares\.d\/a\.yaml: ShareMemory team-a\/cache: spec\.storage: "1Ki"/);
});

test('spec.readOnlyNamespaces: read-only grants beside spec.allowedNamespaces; a namespace in one list only, never the owner', () => {
  const d = validateShareMemory(obj({ spec: { allowedNamespaces: ['team-b'], readOnlyNamespaces: ['team-c', 'team-d', 'team-c'] } }), 'f.yaml', DEFAULT_LIMITS);
  assert.equal(d.allowedNamespaces, ['team-b']);
  assert.equal(d.readOnlyNamespaces, ['team-c', 'team-d']);
  // old declarations keep their meaning: no read-only list, nothing added
  assert.is(validateShareMemory(obj({ spec: { allowedNamespaces: ['team-b'] } }), 'f.yaml', DEFAULT_LIMITS).readOnlyNamespaces, undefined);
  invalid(obj({ spec: { allowedNamespaces: ['team-b'], readOnlyNamespaces: ['team-b'] } }), 'spec.readOnlyNamespaces[0]', /"team-b" is also in spec\.allowedNamespaces/);
  invalid(obj({ spec: { readOnlyNamespaces: ['team-a'] } }), 'spec.readOnlyNamespaces[0]', /the share's own namespace, which always has read-write access/);
  invalid(obj({ spec: { readOnlyNamespaces: ['*'] } }), 'spec.readOnlyNamespaces[0]', /wildcards are not supported/);
  invalid(obj({ spec: { readOnlyNamespaces: 'team-b' } }), 'spec.readOnlyNamespaces', /must be a list/);
  invalid(obj({ spec: { readOnlyNamespaces: ['Team'] } }), 'spec.readOnlyNamespaces[0]', /not a DNS-1123 label/);
});

test('spec.allowedNamespaces must list DNS-1123 labels, no wildcard', () => {
  invalid(obj({ spec: { allowedNamespaces: 'team-b' } }), 'spec.allowedNamespaces', /must be a list/);
  invalid(obj({ spec: { allowedNamespaces: ['team-b', '*'] } }), 'spec.allowedNamespaces[1]', /wildcards are not supported/);
  invalid(obj({ spec: { allowedNamespaces: ['Team'] } }), 'spec.allowedNamespaces[0]', /not a DNS-1123 label/);
  invalid(obj({ spec: { allowedNamespaces: [3] } }), 'spec.allowedNamespaces[0]', /must be a string/);
  invalid(obj({ spec: { allowedNamespaces: Array.from({ length: 1025 }, (_, i) => `n${i}`) } }), 'spec.allowedNamespaces', /at most 1024/);
  assert.equal(validateShareMemory(obj({ spec: { allowedNamespaces: null } }), 'f', DEFAULT_LIMITS).allowedNamespaces, []);
});

test('store merges sources; the earlier source wins and the clash is reported', () => {
  const files = new MemoryDeclarationSource('files', [decl('a', 'x', 256 * Mi, [], 'a.yaml')]);
  const kube = new MemoryDeclarationSource('kubernetes', [decl('a', 'x', 512 * Mi, [], 'kubernetes'), decl('b', 'y')]);
  const store = new MergedDeclarationStore([files, kube]);
  assert.is(store.get('a', 'x')?.sizeBytes, 256 * Mi);
  assert.is(store.get('b', 'y')?.name, 'y');
  assert.is(store.get('b', 'x'), undefined);
  assert.is(store.list().length, 2);
  const errs = store.errors();
  assert.is(errs.length, 1);
  assert.is(errs[0].source, 'kubernetes');
  assert.match(errs[0].message, /kubernetes: ShareMemory a\/x: also declared in a\.yaml/);
});

test('store listeners get added, changed and removed', () => {
  const src = new MemoryDeclarationSource('files', [decl('a', 'x'), decl('a', 'gone')]);
  const store = new MergedDeclarationStore([src]);
  const seen: DeclarationChange[][] = [];
  const off = store.onChange((c) => seen.push([...c]));
  src.set([decl('a', 'x', 512 * Mi), decl('a', 'new')]);
  assert.is(seen.length, 1);
  const byKind = Object.fromEntries(seen[0].map((c) => [c.kind, c]));
  assert.is(byKind.changed.declaration.sizeBytes, 512 * Mi);
  assert.is(byKind.changed.kind === 'changed' && byKind.changed.previous.sizeBytes, 256 * Mi);
  assert.is(byKind.removed.declaration.name, 'gone');
  assert.is(byKind.added.declaration.name, 'new');
  assert.is(store.get('a', 'gone'), undefined);

  src.set([decl('a', 'x', 512 * Mi), decl('a', 'new')]); // nothing changed: no call
  assert.is(seen.length, 1);
  off();
  src.set([]);
  assert.is(seen.length, 1);
  assert.is(store.list().length, 0);
});

test('a throwing listener does not stop the others', () => {
  const src = new MemoryDeclarationSource('files');
  const failures: unknown[] = [];
  const store = new MergedDeclarationStore([src], { onListenerError: (e) => failures.push(e) });
  let called = 0;
  store.onChange(() => {
    throw new Error('boom');
  });
  store.onChange(() => called++);
  src.set([decl('a', 'x')]);
  assert.is(called, 1);
  assert.is(failures.length, 1);
});

test('a source added later counts at once, after the earlier ones', () => {
  const store = new MergedDeclarationStore([new MemoryDeclarationSource('files', [decl('a', 'x', 256 * Mi)])]);
  const seen: DeclarationChange[] = [];
  store.onChange((c) => seen.push(...c));
  store.addSource(new MemoryDeclarationSource('kubernetes', [decl('a', 'x', 512 * Mi), decl('c', 'z')]));
  assert.is(store.get('a', 'x')?.sizeBytes, 256 * Mi);
  assert.equal(seen.map((c) => `${c.kind} ${c.declaration.namespace}/${c.declaration.name}`), ['added c/z']);
  store.close();
});

test.run();
