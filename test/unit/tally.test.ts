// test/harness/tally.sh, the closing line's arithmetic that test/all.sh, test/arch64.sh and .ci/run
// share, run under the same bash options those scripts set (set -euo pipefail).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');

/** Runs a bash script after `set -euo pipefail; . test/harness/tally.sh`: its stdout and exit. */
function bash(script: string): { out: string; status: number | null } {
  const r = spawnSync('bash', ['-c', `set -euo pipefail; . test/harness/tally.sh; ${script}`], { cwd: root, encoding: 'utf8' });
  return { out: r.stdout.trim(), status: r.status };
}

const dir = mkdtempSync(join(tmpdir(), 'nrims-tally-'));
const log = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

test('sums the runs: passed, failed and skipped; skipped only when there were some', () => {
  assert.equal(bash('tally 0 "3 passed, 0 failed"; tally 0 "4 passed, 2 failed"; tally_line'), { out: '7 passed, 2 failed', status: 0 });
  assert.equal(bash('tally 0 "3 passed, 0 failed, 2 skipped"; tally 0 "1 passed, 0 failed"; tally_line'), { out: '4 passed, 0 failed, 2 skipped', status: 0 });
});

test('a run with no closing line, or a failed exit with nothing counted failed, counts as 1 failed', () => {
  assert.is(bash('tally 1 ""; tally_line').out, '0 passed, 1 failed');
  assert.is(bash('tally 1 "5 passed, 0 failed"; tally_line').out, '5 passed, 1 failed');
  assert.is(bash('tally 1 "5 passed, 3 failed"; tally_line').out, '5 passed, 3 failed');
});

test('closing_line: the last closing line of a log, only at a line start', () => {
  const p = log('two.log', 'x\n1 passed, 0 failed\n[node v24] 9 passed, 9 failed\n2 passed, 1 failed, 1 skipped\ny\n');
  assert.equal(bash(`closing_line ${p}`), { out: '2 passed, 1 failed, 1 skipped', status: 0 });
});

test('closing_line of a log without one is empty and does not end a script under set -e', () => {
  // the scripts take it as l=$(closing_line LOG) and then count the run as failed: they must get there
  const p = log('none.log', 'npm ERR! something broke\n');
  assert.equal(bash(`l=$(closing_line ${p}); tally 1 "$l"; tally_line`), { out: '0 passed, 1 failed', status: 0 });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
