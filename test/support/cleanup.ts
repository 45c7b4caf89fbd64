// What a test file starts (servers, agents, temp dirs) and must undo however a test ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';

/** A list to push undo steps onto; after each test of `suite` they run, the last pushed first. */
export function cleanupsAfterEach(suite: Test): Array<() => unknown> {
  const cleanups: Array<() => unknown> = [];
  suite.after.each(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}

/** A maker of fresh temp dirs named `prefix`..., all removed after the last test of `suite`. */
export function tempDirs(suite: Test, prefix: string): () => string {
  const made: string[] = [];
  suite.after(() => {
    for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    made.push(d);
    return d;
  };
}
