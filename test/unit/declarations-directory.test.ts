import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeclarationsDirectory, MergedDeclarationStore, type DeclarationChange, type DeclarationProblem } from '../../plugin/declarations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';

const Mi = 1024 ** 2;

function yamlShare(namespace: string, name: string, storage: string, extra = ''): string {
  return `apiVersion: resource.ubsvirt.huawei.com/v1
kind: ShareMemory
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  storage: ${storage}
${extra}`;
}

function jsonShare(namespace: string, name: string, storage: string): Record<string, unknown> {
  return { apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name, namespace }, spec: { storage } };
}

const made: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memshare-decl-'));
  made.push(dir);
  return dir;
}
test.after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** Poll until `cond` holds; fails after a generous bound instead of asserting on timing. */
async function until(what: string, cond: () => boolean, boundMs = 10000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!cond()) {
    if (Date.now() > end) assert.unreachable(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const keys = (d: DeclarationsDirectory) => d.list().map((x) => `${x.namespace}/${x.name}`).sort();

test('loads JSON (object, array, List) and multi-document YAML; ignores other and hidden files', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(jsonShare('a', 'one', '128Mi')));
  fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify([jsonShare('a', 'two', '256Mi')]));
  fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ kind: 'List', items: [jsonShare('b', 'three', '1Gi')] }));
  fs.writeFileSync(path.join(dir, 'd.yaml'), `${yamlShare('c', 'four', '512Mi')}---\n${yamlShare('c', 'five', '1.5Gi', '  allowedNamespaces: [a, b]\n')}---\n`);
  fs.writeFileSync(path.join(dir, 'e.yml'), `kind: ShareMemoryList\nitems:\n- ${JSON.stringify(jsonShare('d', 'six', '128Mi'))}\n`);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a declaration');
  fs.writeFileSync(path.join(dir, '.swap.yaml'), 'garbage: [');
  fs.mkdirSync(path.join(dir, 'sub.yaml'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  d.rescan();
  assert.equal(d.errors(), []);
  assert.equal(keys(d), ['a/one', 'a/two', 'b/three', 'c/five', 'c/four', 'd/six']);
  const five = d.get('c', 'five')!;
  assert.is(five.sizeBytes, 1536 * Mi);
  assert.equal(five.allowedNamespaces, ['a', 'b']);
  assert.is(five.origin, path.join(dir, 'd.yaml'));
});

test('a broken file is reported with its path and does not disturb others', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'good.yaml'), yamlShare('a', 'good', '128Mi'));
  fs.writeFileSync(path.join(dir, 'bad-yaml.yaml'), 'apiVersion: [unclosed\n');
  fs.writeFileSync(path.join(dir, 'bad-json.json'), '{"kind": ');
  fs.writeFileSync(path.join(dir, 'bad-field.yaml'), `${yamlShare('a', 'fine', '128Mi')}---\n${yamlShare('a', 'tiny', '1Mi')}`);
  fs.writeFileSync(path.join(dir, 'empty.yaml'), '# nothing here\n');
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  const reported: DeclarationProblem[] = [];
  d.onProblem((p) => reported.push(p));
  d.rescan();
  assert.equal(keys(d), ['a/good'], 'a file with any invalid object contributes nothing');
  const msgs = d.errors().map((e) => e.message);
  assert.is(msgs.length, 4);
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'bad-yaml.yaml')) && /not valid YAML/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'bad-json.json')) && /not valid JSON/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.includes('bad-field.yaml (object 2 of 2): ShareMemory a/tiny: spec.storage:')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'empty.yaml')) && /no ShareMemory objects/.test(m)), msgs.join('\n'));
  assert.is(reported.length, 4);
  d.rescan();
  assert.is(reported.length, 4, 'the same problem is reported once, not on every scan');
});

test('the first file by sorted path wins a duplicate; the other is reported', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, '20-b.yaml'), yamlShare('a', 'x', '256Mi'));
  fs.writeFileSync(path.join(dir, '10-a.yaml'), yamlShare('a', 'x', '128Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  d.rescan();
  assert.is(d.get('a', 'x')?.sizeBytes, 128 * Mi);
  assert.is(d.get('a', 'x')?.origin, path.join(dir, '10-a.yaml'));
  const errs = d.errors();
  assert.is(errs.length, 1);
  assert.match(errs[0].message, /20-b\.yaml: ShareMemory a\/x: already declared in .*10-a\.yaml/);
  fs.unlinkSync(path.join(dir, '10-a.yaml'));
  const changes = d.rescan();
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi, 'the duplicate takes over when the first goes');
  assert.is(changes[0]?.kind, 'changed');
  assert.equal(d.errors(), []);
});

test('a file that breaks keeps its last good declarations until fixed or deleted', () => {
  const dir = tempDir();
  const file = path.join(dir, 's.yaml');
  fs.writeFileSync(file, yamlShare('a', 'x', '256Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  d.rescan();
  fs.writeFileSync(file, 'apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata:\n  name: x\n'); // half written
  assert.equal(d.rescan(), []);
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi);
  assert.match(d.errors()[0].message, /metadata\.namespace: is missing \(keeping its last good version: a\/x\)/);
  fs.writeFileSync(file, ''); // truncated
  assert.equal(d.rescan(), []);
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi);
  fs.writeFileSync(file, yamlShare('a', 'x', '512Mi'));
  assert.equal(d.rescan().map((c) => c.kind), ['changed']);
  assert.is(d.get('a', 'x')?.sizeBytes, 512 * Mi);
  assert.equal(d.errors(), []);
  fs.unlinkSync(file);
  assert.equal(d.rescan().map((c) => c.kind), ['removed']);
  assert.equal(d.list(), []);
});

test('a missing directory is reported, counts as empty, and is picked up when created', async () => {
  const parent = tempDir();
  const dir = path.join(parent, 'shares.d');
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 50, debounceMs: 10 });
  d.start();
  try {
    assert.equal(d.list(), []);
    assert.match(d.errors()[0]?.message ?? '', /shares\.d: declarations directory does not exist/);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'a.yaml'), yamlShare('a', 'x', '128Mi'));
    await until('the new directory is read', () => d.get('a', 'x') !== undefined);
    assert.equal(d.errors(), []);
  } finally {
    d.stop();
  }
});

test('watching: add, change, removal and a broken file take effect without restart', async () => {
  const dir = tempDir();
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 60000, debounceMs: 20 });
  const store = new MergedDeclarationStore([d]);
  const seen: DeclarationChange[] = [];
  store.onChange((c) => seen.push(...c));
  d.start();
  try {
    const file = path.join(dir, 'team-a.yaml');
    fs.writeFileSync(file, yamlShare('team-a', 'cache', '128Mi'));
    await until('add', () => store.get('team-a', 'cache') !== undefined);
    assert.is(seen[0]?.kind, 'added');

    fs.writeFileSync(file, yamlShare('team-a', 'cache', '1Gi'));
    await until('change', () => store.get('team-a', 'cache')?.sizeBytes === 1024 * Mi);
    assert.ok(seen.some((c) => c.kind === 'changed'));

    fs.writeFileSync(path.join(dir, 'broken.json'), '{ nope');
    await until('broken file reported', () => store.errors().some((e) => e.message.includes('broken.json')));
    assert.ok(store.get('team-a', 'cache'), 'a broken neighbour does not disturb');

    fs.unlinkSync(file);
    await until('removal', () => store.get('team-a', 'cache') === undefined);
    const removed = seen.find((c) => c.kind === 'removed');
    assert.is(removed?.declaration.name, 'cache');
  } finally {
    d.stop();
    store.close();
  }
});

test('the periodic rescan alone picks up changes', async () => {
  const dir = tempDir();
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 30, watch: false });
  d.start();
  try {
    fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(jsonShare('a', 'x', '128Mi')));
    await until('rescan', () => d.get('a', 'x') !== undefined);
  } finally {
    d.stop();
  }
});

test.run();
