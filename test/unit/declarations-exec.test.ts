// spec.allowExec of a ShareMemory (issue 11 point 2): absent means noexec, as every declaration
// written before the field meant; a change of it is a change of the declaration.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeclarationError, MemoryDeclarationSource, MergedDeclarationStore, sameDeclaration, validateShareMemory } from '../../plugin/declarations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';

const sm = (spec: Record<string, unknown>) => ({
  apiVersion: 'resource.ubsvirt.huawei.com/v1',
  kind: 'ShareMemory',
  metadata: { name: 'code', namespace: 'team-a' },
  spec: { storage: '128Mi', ...spec },
});

test('allowExec: absent, null or false means noexec; only true allows exec', () => {
  for (const spec of [{}, { allowExec: null }, { allowExec: false }]) {
    assert.not.ok(validateShareMemory(sm(spec), 'f', DEFAULT_LIMITS).allowExec, JSON.stringify(spec));
  }
  assert.is(validateShareMemory(sm({ allowExec: true }), 'f', DEFAULT_LIMITS).allowExec, true);
});

test('allowExec that is not a boolean is refused, naming the field', () => {
  for (const [v, found] of [['true', '"true"'], [1, 'a number'], [['x'], 'a list']] as const) {
    try {
      validateShareMemory(sm({ allowExec: v }), '/etc/shares.d/a.yaml', DEFAULT_LIMITS);
      assert.unreachable(`accepted allowExec ${JSON.stringify(v)}`);
    } catch (e) {
      assert.instance(e, DeclarationError);
      const err = e as DeclarationError;
      assert.is(err.field, 'spec.allowExec');
      assert.is(err.message, `/etc/shares.d/a.yaml: ShareMemory team-a/code: spec.allowExec: must be true or false, found ${found}`);
    }
  }
});

test('turning allowExec on or off is a change of the declaration', () => {
  const off = validateShareMemory(sm({}), 'f', DEFAULT_LIMITS);
  const on = validateShareMemory(sm({ allowExec: true }), 'f', DEFAULT_LIMITS);
  assert.not.ok(sameDeclaration(off, on));
  assert.ok(sameDeclaration(off, { ...off, allowExec: undefined }), 'absent and false mean the same');
  const src = new MemoryDeclarationSource('test');
  const store = new MergedDeclarationStore([src]);
  const kinds: string[] = [];
  store.onChange((cs) => kinds.push(...cs.map((c) => c.kind)));
  src.set([off]);
  src.set([on]);
  assert.equal(kinds, ['added', 'changed']);
  assert.is(store.get('team-a', 'code')?.allowExec, true);
});

test.run();
