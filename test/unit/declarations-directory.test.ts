import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeclarationsDirectory, MergedDeclarationStore, type DeclarationChange, type DeclarationProblem } from '../../plugin/declarations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { spawnSync } from 'node:child_process';
import { FileReadError, readAtMostSync, readRegularFileSync } from '../../plugin/files/regular-file';
import { tempDirs } from '../support/cleanup';
import { waitFor } from '../support/util';

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

const tempDir = tempDirs(test, 'memshare-decl-');

const keys = (d: DeclarationsDirectory) => d.list().map((x) => `${x.namespace}/${x.name}`).sort();

test('loads JSON (object, array, List) and multi-document YAML; ignores other and hidden files', async () => {
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
  await d.rescan();
  assert.equal(d.errors(), []);
  assert.equal(keys(d), ['a/one', 'a/two', 'b/three', 'c/five', 'c/four', 'd/six']);
  const five = d.get('c', 'five')!;
  assert.is(five.sizeBytes, 1536 * Mi);
  assert.equal(five.allowedNamespaces, ['a', 'b']);
  assert.is(five.origin, path.join(dir, 'd.yaml'));
});

test('a broken file is reported with its path and does not disturb others', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'good.yaml'), yamlShare('a', 'good', '128Mi'));
  fs.writeFileSync(path.join(dir, 'bad-yaml.yaml'), 'apiVersion: [unclosed\n');
  fs.writeFileSync(path.join(dir, 'bad-json.json'), '{"kind": ');
  fs.writeFileSync(path.join(dir, 'bad-field.yaml'), `${yamlShare('a', 'fine', '128Mi')}---\n${yamlShare('a', 'tiny', '1Mi')}`);
  fs.writeFileSync(path.join(dir, 'empty.yaml'), '# nothing here\n');
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  const reported: DeclarationProblem[] = [];
  d.onProblem((p) => reported.push(p));
  await d.rescan();
  assert.equal(keys(d), ['a/good'], 'a file with any invalid object contributes nothing');
  const msgs = d.errors().map((e) => e.message);
  assert.is(msgs.length, 4);
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'bad-yaml.yaml')) && /not valid YAML/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'bad-json.json')) && /not valid JSON/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.includes('bad-field.yaml (object 2 of 2): ShareMemory a/tiny: spec.storage:')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith(path.join(dir, 'empty.yaml')) && /no ShareMemory objects/.test(m)), msgs.join('\n'));
  assert.is(reported.length, 4);
  await d.rescan();
  assert.is(reported.length, 4, 'the same problem is reported once, not on every scan');
});

test('the first file by sorted path wins a duplicate; the other is reported', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, '20-b.yaml'), yamlShare('a', 'x', '256Mi'));
  fs.writeFileSync(path.join(dir, '10-a.yaml'), yamlShare('a', 'x', '128Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  assert.is(d.get('a', 'x')?.sizeBytes, 128 * Mi);
  assert.is(d.get('a', 'x')?.origin, path.join(dir, '10-a.yaml'));
  const errs = d.errors();
  assert.is(errs.length, 1);
  assert.match(errs[0].message, /20-b\.yaml: ShareMemory a\/x: already declared in .*10-a\.yaml/);
  fs.unlinkSync(path.join(dir, '10-a.yaml'));
  const changes = await d.rescan();
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi, 'the duplicate takes over when the first goes');
  assert.is(changes[0]?.kind, 'changed');
  assert.equal(d.errors(), []);
});

test('a file that breaks keeps its last good declarations until fixed or deleted', async () => {
  const dir = tempDir();
  const file = path.join(dir, 's.yaml');
  fs.writeFileSync(file, yamlShare('a', 'x', '256Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  fs.writeFileSync(file, 'apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata:\n  name: x\n'); // half written
  assert.equal(await d.rescan(), []);
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi);
  assert.match(d.errors()[0].message, /metadata\.namespace: is missing \(keeping its last good version: a\/x\)/);
  fs.writeFileSync(file, ''); // truncated
  assert.equal(await d.rescan(), []);
  assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi);
  fs.writeFileSync(file, yamlShare('a', 'x', '512Mi'));
  assert.equal((await d.rescan()).map((c) => c.kind), ['changed']);
  assert.is(d.get('a', 'x')?.sizeBytes, 512 * Mi);
  assert.equal(d.errors(), []);
  fs.unlinkSync(file);
  assert.equal((await d.rescan()).map((c) => c.kind), ['removed']);
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
    await waitFor(() => d.get('a', 'x') !== undefined, 'the new directory is read', 10000);
    assert.equal(d.errors(), []);
  } finally {
    d.stop();
  }
});

test('DeclarationsDirectory.check reads the directory as a scan does: missing, not a directory, or fine', () => {
  const parent = tempDir();
  const file = path.join(parent, 'a-file');
  fs.writeFileSync(file, '');
  assert.is(DeclarationsDirectory.check(path.join(parent, 'shares.d'))?.problem, 'missing');
  assert.is(DeclarationsDirectory.check(file)?.problem, 'not-directory');
  assert.is(DeclarationsDirectory.check(path.join(file, 'below'))?.problem, 'not-directory');
  assert.is(DeclarationsDirectory.check(parent), undefined);
  // and a scan of each says the same
  for (const [dir, said] of [[path.join(parent, 'shares.d'), /does not exist/], [file, /is not a directory/]] as const) {
    const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0, watch: false });
    d.scanSync();
    assert.match(d.errors()[0]?.message ?? '', said);
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
    await waitFor(() => store.get('team-a', 'cache') !== undefined, 'add', 10000);
    assert.is(seen[0]?.kind, 'added');

    fs.writeFileSync(file, yamlShare('team-a', 'cache', '1Gi'));
    await waitFor(() => store.get('team-a', 'cache')?.sizeBytes === 1024 * Mi, 'change', 10000);
    assert.ok(seen.some((c) => c.kind === 'changed'));

    fs.writeFileSync(path.join(dir, 'broken.json'), '{ nope');
    await waitFor(() => store.errors().some((e) => e.message.includes('broken.json')), 'broken file reported', 10000);
    assert.ok(store.get('team-a', 'cache'), 'a broken neighbour does not disturb');

    fs.unlinkSync(file);
    await waitFor(() => store.get('team-a', 'cache') === undefined, 'removal', 10000);
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
    await waitFor(() => d.get('a', 'x') !== undefined, 'rescan', 10000);
  } finally {
    d.stop();
  }
});

// ---- no file can stall the agent (issue 11, point 5) ---------------------------------------------

const messages = (d: DeclarationsDirectory) => d.errors().map((e) => e.message);

test('a link to /proc/kmsg is refused without being read; the other files load', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'good.yaml'), yamlShare('a', 'good', '128Mi'));
  fs.symlinkSync('/proc/kmsg', path.join(dir, 'kmsg.yaml')); // a read would block (or eat the kernel's log)
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0, watch: false });
  d.start(); // the synchronous first scan
  try {
    assert.equal(keys(d), ['a/good']);
    assert.ok(messages(d).some((m) => m.startsWith(path.join(dir, 'kmsg.yaml')) && /is on proc/.test(m)), messages(d).join('\n'));
    await d.rescan(); // and the scan through the worker
    assert.equal(keys(d), ['a/good']);
    assert.ok(messages(d).some((m) => /kmsg\.yaml: is on proc/.test(m)), messages(d).join('\n'));
  } finally {
    d.stop();
  }
});

test('a file replaced by a FIFO or a dangling link is reported and keeps its last good declarations', async () => {
  const dir = tempDir();
  const fifo = path.join(dir, 'fifo.yaml');
  const link = path.join(dir, 'link.yaml');
  fs.writeFileSync(fifo, yamlShare('a', 'f', '128Mi'));
  fs.writeFileSync(link, yamlShare('a', 'l', '128Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  assert.equal(keys(d), ['a/f', 'a/l']);
  fs.unlinkSync(fifo);
  const r = spawnSync('mkfifo', [fifo]);
  assert.is(r.status, 0, 'mkfifo');
  fs.unlinkSync(link);
  fs.symlinkSync(path.join(dir, 'gone.yaml'), link);
  assert.equal(await d.rescan(), [], 'nothing removed: a FIFO never opened, a link to nothing is not a deletion');
  assert.equal(keys(d), ['a/f', 'a/l']);
  const m = messages(d);
  assert.ok(m.some((x) => x.startsWith(`${fifo}: is a FIFO, not a regular file`) && x.includes('keeping its last good version: a/f')), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith(`${link}: is a symbolic link to nothing`) && x.includes('keeping its last good version: a/l')), m.join('\n'));
  fs.unlinkSync(fifo);
  fs.unlinkSync(link);
  assert.equal((await d.rescan()).map((c) => c.kind), ['removed', 'removed'], 'deleting them removes them');
});

test('an 80,000-key YAML file is refused by the parse budget', async () => {
  const dir = tempDir();
  const many = Array.from({ length: 80000 }, (_, i) => `  k${i}: 1\n`).join('');
  fs.writeFileSync(path.join(dir, 'many.yaml'), yamlShare('a', 'many', '128Mi', many));
  fs.writeFileSync(path.join(dir, 'deep.json'), `${'['.repeat(5000)}${']'.repeat(5000)}`);
  fs.writeFileSync(path.join(dir, 'deep.yaml'), `${'- '.repeat(5000)}x\n`);
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  assert.equal(keys(d), []);
  const m = messages(d);
  assert.ok(m.some((x) => x.startsWith(path.join(dir, 'many.yaml')) && /more than 50000 YAML tokens/.test(x)), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith(path.join(dir, 'deep.json')) && /nested deeper than 32 levels/.test(x)), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith(path.join(dir, 'deep.yaml')) && /nested deeper than 32 levels/.test(x)), m.join('\n'));
});

test('YAML 1.2 only: a %YAML 1.1 header (merge keys, yes/no booleans) or any other version is refused, naming the file and the line', async () => {
  const dir = tempDir();
  // under 1.1, "<<: *big" would pull fields from elsewhere and "allowExec: yes" would be true
  const tricks = '  <<: *big\n  allowExec: yes\n';
  const share = (name: string) => yamlShare('a', name, '128Mi', tricks).replace(`name: ${name}\n`, `name: ${name}\n  labels: &big {team: x}\n`);
  fs.writeFileSync(path.join(dir, 'v11.yaml'), `%YAML 1.1\n---\n${share('old')}`);
  fs.writeFileSync(path.join(dir, 'v13.yaml'), `%YAML 1.3\n---\n${share('new')}`);
  fs.writeFileSync(path.join(dir, 'second.yaml'), `%YAML 1.2\n---\n${yamlShare('a', 'first', '128Mi')}...\n%YAML 1.1\n---\n${share('second')}`);
  fs.writeFileSync(path.join(dir, 'v12.yaml'), `%YAML 1.2\n---\n${yamlShare('a', 'plain', '128Mi')}`);
  fs.writeFileSync(path.join(dir, 'none.yaml'), share('bare'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  assert.equal(keys(d), ['a/plain'], 'only the 1.2 file without tricks loads');
  const m = messages(d);
  const refusal = (file: string, line: number, version: string) =>
    `${path.join(dir, file)}: not valid YAML at line ${line}, column 1: a %YAML ${version} directive: only YAML 1.2 is accepted (1.1 turns on merge keys and yes/no booleans)`;
  assert.ok(m.includes(refusal('v11.yaml', 1, '1.1')), m.join('\n'));
  assert.ok(m.includes(refusal('v13.yaml', 1, '1.3')), m.join('\n'));
  assert.ok(m.includes(refusal('second.yaml', 11, '1.1')), m.join('\n'));
  // without a header it is YAML 1.2: "yes" is a string and "<<" an ordinary key
  assert.ok(m.some((x) => x.startsWith(path.join(dir, 'none.yaml')) && /allowExec/.test(x)), m.join('\n'));
});

test('duplicate keys are refused in JSON as in YAML, with line and column', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'dup.json'), '{"apiVersion": "resource.ubsvirt.huawei.com/v1", "kind": "ShareMemory",\n "metadata": {"name": "x", "namespace": "a"},\n "spec": {"storage": "128Mi", "storage": "512Gi"}}');
  fs.writeFileSync(path.join(dir, 'dup.yaml'), yamlShare('a', 'y', '128Mi', '  storage: 512Gi\n'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  assert.equal(keys(d), []);
  const m = messages(d);
  assert.ok(m.includes(`${path.join(dir, 'dup.json')}: not valid JSON at line 3, column 31: duplicate key (each key may appear once in an object)`), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith(`${path.join(dir, 'dup.yaml')}: not valid YAML at line 8, column 3: duplicate key`)), m.join('\n'));
});

test('parse errors name file, line, column and reason, never the content', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'a.json'), 'root:x:0:0:SECRET-HASH:/root:/bin/bash\n');
  fs.writeFileSync(path.join(dir, 'b.json'), '{"kind": "ShareMemory",\n  SECRET-HASH}');
  fs.writeFileSync(path.join(dir, 'c.yaml'), 'a: *SECRET-ANCHOR\n');
  fs.writeFileSync(path.join(dir, 'd.yaml'), 'key: [SECRET-HASH\n');
  fs.writeFileSync(path.join(dir, 'e.yaml'), '!SECRET-TAG {a: 1}\n');
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0 });
  await d.rescan();
  const m = messages(d);
  assert.is(m.length, 5, m.join('\n'));
  for (const x of m) assert.not.match(x, /SECRET/, x);
  assert.ok(m.includes(`${path.join(dir, 'a.json')}: not valid JSON at line 1, column 1: expected a value, found a letter`), m.join('\n'));
  assert.ok(m.includes(`${path.join(dir, 'b.json')}: not valid JSON at line 2, column 3: expected a key in double quotes, found a letter`), m.join('\n'));
  assert.ok(m.includes(`${path.join(dir, 'c.yaml')}: not valid YAML: an alias refers to an anchor not defined before it`), m.join('\n'));
  assert.ok(m.includes(`${path.join(dir, 'd.yaml')}: not valid YAML at line 2, column 1: bad indent`), m.join('\n'));
});

test('the byte limit is on what is read: a file whose stat size is 0 is cut off', () => {
  // /proc/self/status says 0 bytes and has more: reading it through its descriptor must stop
  const fd = fs.openSync('/proc/self/status', 'r');
  try {
    assert.is(fs.fstatSync(fd).size, 0);
    assert.throws(() => readAtMostSync('/proc/self/status', fd, 100), (e: unknown) => e instanceof FileReadError && e.refusal === 'too-large');
  } finally {
    fs.closeSync(fd);
  }
  // and the directory never reads /proc at all
  assert.throws(() => readRegularFileSync('/proc/self/status', 1 << 20), (e: unknown) => e instanceof FileReadError && e.refusal === 'pseudo-filesystem');
});

test('a file over maxFileBytes is refused, keeping its last good version', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'a.yaml');
  fs.writeFileSync(file, yamlShare('a', 'x', '128Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0, maxFileBytes: 4096 });
  await d.rescan();
  fs.writeFileSync(file, `${yamlShare('a', 'x', '256Mi')}# ${'x'.repeat(5000)}\n`);
  await d.rescan();
  assert.is(d.get('a', 'x')?.sizeBytes, 128 * Mi);
  assert.ok(messages(d).some((x) => x.startsWith(`${file}: is larger than the 4096 bytes allowed`)), messages(d).join('\n'));
});

test('a scan is off the request path: lookups during it answer at once from the last complete scan', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'a.yaml');
  fs.writeFileSync(file, yamlShare('a', 'x', '128Mi'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, rescanIntervalMs: 0, watch: false });
  d.start();
  try {
    fs.writeFileSync(file, yamlShare('a', 'x', '256Mi'));
    let during: number | undefined;
    let ticks = 0;
    let done = false;
    const tick = () => {
      if (done) return;
      ticks++;
      if (during === undefined) during = d.get('a', 'x')?.sizeBytes;
      setImmediate(tick);
    };
    setImmediate(tick);
    const scan = d.rescan();
    await scan;
    done = true;
    assert.ok(ticks > 0, 'the event loop turned while the scan ran');
    assert.is(during, 128 * Mi, 'a lookup during the scan sees the last complete scan');
    assert.is(d.get('a', 'x')?.sizeBytes, 256 * Mi);
  } finally {
    d.stop();
  }
});

test.run();
