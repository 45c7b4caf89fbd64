// Issue 22.1: ShareMemory objects made as large as the CRD allows must not run the agent out of
// heap. The agent's Kubernetes source runs in a child with the launcher's own heap flags (read
// from packaging/nri-memshare.sh) against a generator standing in for an API server (it writes
// pages as it makes them; see test/support/sharememory-generator.ts). 400 objects of some 290 KiB
// are one page of 113 MiB at the agent's page size of 500: before the page was read as one string,
// refused past 64 MiB, and the raw items of all pages were kept until the whole list was validated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShareMemoryGenerator } from '../support/sharememory-generator';
import { cleanupsAfterEach } from '../support/cleanup';

const repo = join(__dirname, '..', '..', '..');
const cleanups = cleanupsAfterEach(test);

/** The V8 flags the launcher starts the agent with. */
export function launcherHeapFlags(): string[] {
  const sh = readFileSync(join(repo, 'packaging', 'nri-memshare.sh'), 'utf8');
  const flags = sh.match(/--max-[a-z-]+=\d+/g) ?? [];
  assert.ok(flags.some((f) => f.startsWith('--max-old-space-size=')), 'the launcher sets the heap size');
  return flags;
}

function runAgentList(url: string): Promise<{ code: number | null; signal: string | null; line: Record<string, unknown>; stderr: string }> {
  const child = spawn(process.execPath, [...launcherHeapFlags(), '--expose-gc', join(__dirname, '..', 'support', 'kube-list-agent.js'), url], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => void child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      let line: Record<string, unknown> = {};
      try {
        line = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      } catch {
        /* no line: it died */
      }
      resolve({ code, signal, line, stderr: err.slice(-2000) });
    }),
  );
}

test('400 objects of the largest size the CRD allows (one 113 MiB page) are all kept within the launcher heap', async () => {
  const gen = new ShareMemoryGenerator({ count: 400 });
  await gen.start();
  cleanups.push(() => gen.stop());
  const r = await runAgentList(gen.url);
  assert.is(r.code, 0, `the agent's source exited ${r.code ?? r.signal}: ${JSON.stringify(r.line)} ${r.stderr}`);
  assert.is(r.line.ok, true);
  assert.is(r.line.declarations, 400, JSON.stringify(r.line));
  assert.is(r.line.problems, 0, JSON.stringify(r.line));
  assert.is(gen.served.pages, 1, 'one page');
  assert.ok(gen.served.bytes > 64 * 1024 * 1024, `the page is larger than the old 64 MiB cap (${gen.served.bytes} bytes)`);
});

test.run();
