// The byte budget of the declarations kept from Kubernetes (plugin/declarations/kept-declarations.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeptDeclarations } from '../../plugin/declarations/kept-declarations';
import type { ShareDeclaration } from '../../plugin/model/types';

const decl = (name: string, grants: string[]): ShareDeclaration => ({
  namespace: 'ns',
  name,
  sizeBytes: 1 << 27,
  allowedNamespaces: grants,
  origin: 'kubernetes',
});
const names = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`.padEnd(63, 'x'));

test('a namespace name granted by many declarations is counted once; removing them all counts nothing', () => {
  const k = new KeptDeclarations(1 << 20);
  assert.is(k.set('ns/a', decl('a', names(100, 'g'))), true);
  const one = k.bytes;
  assert.is(k.set('ns/b', decl('b', names(100, 'g'))), true);
  const second = k.bytes - one;
  assert.ok(second < one / 3, `the second declaration with the same grants adds ${second} bytes, the first ${one}`);
  assert.is(k.set('ns/c', decl('c', names(100, 'other'))), true);
  assert.ok(k.bytes - one - second > second * 3, 'new names are counted');
  for (const key of ['ns/a', 'ns/b', 'ns/c']) assert.ok(k.delete(key));
  assert.is(k.bytes, 0);
  assert.is(k.size, 0);
});

test('past the budget set() refuses with what it would need and changes nothing; replacing frees the old', () => {
  const k = new KeptDeclarations(20_000);
  assert.is(k.set('ns/a', decl('a', names(100, 'a'))), true);
  const before = k.bytes;
  const r = k.set('ns/b', decl('b', names(100, 'b')));
  assert.type(r, 'number');
  assert.ok((r as number) > 20_000 - before, String(r));
  assert.is(k.size, 1);
  assert.is(k.bytes, before);
  assert.equal(k.get('ns/b'), undefined);
  // the same key with other grants fits: the old one's are freed
  assert.is(k.set('ns/a', decl('a', names(100, 'c'))), true);
  assert.ok(Math.abs(k.bytes - before) < 100, `${k.bytes} vs ${before}`);
  assert.equal(k.get('ns/a')?.allowedNamespaces, names(100, 'c'));
});

test('a relist reuses what the set before held, and lets go of that set once settled', () => {
  const old = new KeptDeclarations(1 << 20);
  old.set('ns/a', decl('a', names(10, 'g')));
  const next = new KeptDeclarations(1 << 20, old);
  const a = old.get('ns/a')!;
  assert.is(next.set('ns/a', decl('a', names(10, 'g')), a), true);
  assert.ok(next.get('ns/a') === a, 'the very object is kept');
  assert.is(next.bytes, old.bytes);
  next.settle();
  assert.is((next as unknown as { previous?: unknown }).previous, undefined);
});

test.run();
