// Issue 22.2: many declaration files, each under the 1 MiB per-file limit, crashed the agent (every
// file's text was kept: 130 files of just under 1 MiB are past the launcher's 128 MiB heap), at start
// and at the next rescan, a crash loop under Restart=on-failure. Now a file is kept as its
// declarations and a digest, and the directory is capped in files and bytes with a problem that
// keeps the last good declarations. The directory runs in a child with the launcher's heap flags.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DeclarationsDirectory, MAX_DECLARATION_BYTES, MAX_DECLARATION_FILES } from '../../plugin/declarations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { cleanupsAfterEach } from '../support/cleanup';

const repo = join(__dirname, '..', '..', '..');
const cleanups = cleanupsAfterEach(test);

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'decl-heap-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const share = (ns: string, name: string) =>
  `apiVersion: resource.ubsvirt.huawei.com/v1\nkind: ShareMemory\nmetadata: {namespace: ${ns}, name: ${name}}\nspec: {storage: 128Mi}\n`;

interface Line {
  declarations: string[];
  problems: string[];
  heapUsedMiB: number;
}

test('130 files of just under 1 MiB: the agent stays up, reports the cap and keeps its last good declarations', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'good.yaml'), share('ns', 'a'));
  const flags = readFileSync(join(repo, 'packaging', 'nri-memshare.sh'), 'utf8').match(/--max-[a-z-]+=\d+/g) ?? [];
  assert.ok(flags.some((f) => f.startsWith('--max-old-space-size=')), 'the launcher sets the heap size');
  const child = spawn(process.execPath, [...flags, '--expose-gc', join(__dirname, '..', 'support', 'declarations-dir-agent.js'), dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: Line[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(JSON.parse(l) as Line);
    waiters.shift()?.();
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const nextLine = (n: number) =>
    Promise.race([
      new Promise<void>((r) => (lines.length >= n ? r() : waiters.push(r))),
      exited.then((c) => assert.unreachable(`the directory's process exited (${c}): ${stderr.slice(-1500)}`)),
    ]);
  await nextLine(1);
  assert.equal(lines[0].declarations, ['ns/a']);

  // each file: one valid declaration and comments up to just under 1 MiB
  const pad = `#${'x'.repeat(1022)}\n`.repeat(1023);
  for (let i = 0; i < 130; i++) writeFileSync(join(dir, `big-${String(i).padStart(3, '0')}.yaml`), share('ns', `b${i}`) + pad);
  child.stdin.write('rescan\n');
  await nextLine(2);
  assert.equal(lines[1].declarations, ['ns/a'], 'the last good declarations are kept');
  assert.ok(
    lines[1].problems.some((m) => m === `${dir}: its declaration files hold more than the ${MAX_DECLARATION_BYTES} bytes read in all (over the limit at big-008.yaml); every file keeps the declarations loaded before (remove or shrink files)`),
    lines[1].problems.join('\n'),
  );
  // back under the cap: read again
  for (let i = 8; i < 130; i++) rmSync(join(dir, `big-${String(i).padStart(3, '0')}.yaml`));
  child.stdin.write('rescan\n');
  await nextLine(3);
  assert.is(lines[2].declarations.length, 9, lines[2].problems.join('\n'));
  assert.equal(lines[2].problems, []);
  child.stdin.end();
  assert.is(await exited, 0);
});

test('more files than the cap: reported by count, the declarations loaded before kept', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'a.yaml'), share('ns', 'a'));
  const d = new DeclarationsDirectory(dir, { limits: DEFAULT_LIMITS, watch: false, rescanIntervalMs: 0 });
  cleanups.push(() => d.stop());
  d.start();
  for (let i = 0; i < MAX_DECLARATION_FILES; i++) writeFileSync(join(dir, `s${i}.yaml`), share('ns', `s${i}`));
  d.scanSync();
  assert.equal(d.list().map((x) => x.name), ['a']);
  assert.equal(d.errors().map((p) => p.message), [
    `${dir}: holds ${MAX_DECLARATION_FILES + 1} declaration files, more than the ${MAX_DECLARATION_FILES} read; nothing in it is read again and every file keeps the declarations loaded before (merge declarations into fewer files)`,
  ]);
  rmSync(join(dir, 's0.yaml'));
  d.scanSync();
  assert.is(d.list().length, MAX_DECLARATION_FILES);
  assert.equal(d.errors(), []);
});

test.run();
