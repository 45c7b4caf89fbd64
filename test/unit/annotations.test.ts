import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  POD_ANNOTATION,
  containerAnnotation,
  parseBinding,
  parseRefs,
  unknownAnnotationKeys,
} from '../../plugin/memshare/annotations';
import { RefusalError } from '../../plugin/model/types';

const CTR = 'memshare.nri.io/container.app';

function refused(annotations: Record<string, string>, key: string, pattern: RegExp, container = 'app'): RefusalError {
  try {
    parseBinding(annotations, 'team-a', container);
  } catch (e) {
    assert.instance(e, RefusalError);
    const err = e as RefusalError;
    assert.is(err.reason, 'syntax');
    assert.ok(err.message.startsWith(`${key}: `), `message starts with the key: ${err.message}`);
    assert.match(err.message, pattern);
    return err;
  }
  throw new Error(`accepted: ${JSON.stringify(annotations)}`);
}

test('no annotation, or an empty pod value, binds nothing', () => {
  assert.equal(parseBinding({}, 'team-a', 'app'), { annotation: '', refs: [] });
  assert.equal(parseBinding({ other: 'x' }, 'team-a', 'app').refs, []);
  assert.equal(parseBinding({ [POD_ANNOTATION]: '' }, 'team-a', 'app'), { annotation: POD_ANNOTATION, refs: [] });
  assert.equal(parseBinding({ [POD_ANNOTATION]: '   ' }, 'team-a', 'app').refs, []);
});

test('plain names are in the pod namespace; namespace/name and options parse', () => {
  const b = parseBinding({ [POD_ANNOTATION]: ' cache , team-b/model:ro,logs:rw ' }, 'team-a', 'app');
  assert.is(b.annotation, POD_ANNOTATION);
  assert.equal(b.refs, [
    { namespace: 'team-a', name: 'cache', readOnly: false },
    { namespace: 'team-b', name: 'model', readOnly: true },
    { namespace: 'team-a', name: 'logs', readOnly: false },
  ]);
});

test('the container key wins over the pod key; "-" opts the container out', () => {
  const ann = { [POD_ANNOTATION]: 'cache', [CTR]: 'model:ro', 'memshare.nri.io/container.side': '-' };
  assert.equal(parseBinding(ann, 'team-a', 'app'), { annotation: CTR, refs: [{ namespace: 'team-a', name: 'model', readOnly: true }] });
  assert.equal(parseBinding(ann, 'team-a', 'side'), { annotation: 'memshare.nri.io/container.side', refs: [] });
  assert.equal(parseBinding(ann, 'team-a', 'other').refs, [{ namespace: 'team-a', name: 'cache', readOnly: false }]);
  assert.is(containerAnnotation('app'), CTR);
});

test('an empty container value counts as absent: the pod value applies', () => {
  const b = parseBinding({ [POD_ANNOTATION]: 'cache', [CTR]: ' ' }, 'team-a', 'app');
  assert.is(b.annotation, POD_ANNOTATION);
  assert.is(b.refs.length, 1);
});

test('a bad container value is refused even if the pod value is fine, naming the container key', () => {
  refused({ [POD_ANNOTATION]: 'cache', [CTR]: 'Cache' }, CTR, /item "Cache": share name "Cache" is not a DNS-1123 label/);
});

test('empty items are refused', () => {
  refused({ [POD_ANNOTATION]: 'a,,b' }, POD_ANNOTATION, /item 2: is empty/);
  refused({ [POD_ANNOTATION]: 'a,' }, POD_ANNOTATION, /item 2: is empty/);
  refused({ [POD_ANNOTATION]: ':ro' }, POD_ANNOTATION, /share name "" is empty/);
  refused({ [POD_ANNOTATION]: 'team-b/' }, POD_ANNOTATION, /share name "" is empty/);
  refused({ [POD_ANNOTATION]: '/cache' }, POD_ANNOTATION, /namespace "" is empty/);
});

test('unknown options are refused', () => {
  refused({ [POD_ANNOTATION]: 'cache:RO' }, POD_ANNOTATION, /item "cache:RO": unknown option "RO" after ":" \(allowed: "ro", "rw"\)/);
  refused({ [POD_ANNOTATION]: 'cache:ro:rw' }, POD_ANNOTATION, /unknown option "ro:rw"/);
  refused({ [POD_ANNOTATION]: 'cache:' }, POD_ANNOTATION, /unknown option ""/);
  refused({ [POD_ANNOTATION]: 'cache:exec' }, POD_ANNOTATION, /unknown option "exec"/);
});

test('path tricks and non-labels never get through', () => {
  const bad = ['..', '.', '../etc', '/etc/passwd', 'a/b/c', 'team-a/../x', 'ca\u0000che', 'Cache', 'ca_che', '-cache', 'cache-',
    'ca che', 'ca.che', 'café', '~root', '*', 'team-a/*', 'x'.repeat(48), `${'n'.repeat(64)}/x`];
  for (const item of bad) {
    const err = refused({ [POD_ANNOTATION]: item }, POD_ANNOTATION, /./);
    assert.ok(err.message.includes(JSON.stringify(item.slice(0, 80)).slice(0, -1)), `names the item: ${err.message}`);
  }
  refused({ [POD_ANNOTATION]: 'a/b/c' }, POD_ANNOTATION, /more than one "\/"/);
  refused({ [POD_ANNOTATION]: 'x'.repeat(48) }, POD_ANNOTATION, /48 characters long, at most 47/);
  assert.is(parseBinding({ [POD_ANNOTATION]: 'x'.repeat(47) }, 'team-a', 'app').refs[0].name.length, 47);
  assert.is(parseBinding({ [POD_ANNOTATION]: `${'n'.repeat(63)}/x` }, 'team-a', 'app').refs[0].namespace.length, 63);
});

test('control characters are escaped in messages', () => {
  const err = refused({ [POD_ANNOTATION]: 'a\nb' }, POD_ANNOTATION, /item "a\\nb"/);
  assert.not.ok(err.message.includes('\n'));
});

test('the same share twice is refused, whatever the options or spelling', () => {
  refused({ [POD_ANNOTATION]: 'cache,cache' }, POD_ANNOTATION, /share "team-a\/cache" is listed more than once/);
  refused({ [POD_ANNOTATION]: 'cache:ro, team-a/cache' }, POD_ANNOTATION, /item "team-a\/cache": share "team-a\/cache" is listed more than once/);
  assert.is(parseBinding({ [POD_ANNOTATION]: 'cache, team-b/cache' }, 'team-a', 'app').refs.length, 2);
});

test('at most 16 refs, and a bounded value length', () => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`).join(',');
  assert.is(parseBinding({ [POD_ANNOTATION]: names(16) }, 'team-a', 'app').refs.length, 16);
  refused({ [POD_ANNOTATION]: names(17) }, POD_ANNOTATION, /lists 17 shares, at most 16 allowed/);
  refused({ [POD_ANNOTATION]: 'a'.repeat(5000) }, POD_ANNOTATION, /value: is 5000 characters long, at most 4096/);
  assert.is(parseRefs(POD_ANNOTATION, names(3), 'team-a', { maxRefs: 3 }).length, 3);
});

test('maxNameLength follows the configured limit', () => {
  assert.throws(() => parseRefs(POD_ANNOTATION, 'abcdef', 'team-a', { maxNameLength: 5 }), /at most 5 allowed/);
});

test('a pod namespace that is not a label is refused rather than used in a path', () => {
  assert.throws(() => parseBinding({ [POD_ANNOTATION]: 'cache' }, '../x', 'app'), /pod namespace "\.\.\/x"/);
});

test('unknownAnnotationKeys finds likely typos only', () => {
  const keys = unknownAnnotationKeys({
    [POD_ANNOTATION]: 'a',
    [CTR]: 'b',
    'memshare.nri.io/containers.app': 'c',
    'memshare.nri.io/container.': 'd',
    'example.com/x': 'e',
  });
  assert.equal(keys.sort(), ['memshare.nri.io/container.', 'memshare.nri.io/containers.app']);
});

test.run();
