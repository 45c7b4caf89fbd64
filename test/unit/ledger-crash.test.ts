// SIGKILL at random moments must never lose an acknowledged change nor corrupt the ledger, with
// each append fdatasync'ed and without (then an acknowledged change lives in the page cache,
// which a killed process does not take with it). The same file is the child: with
// LEDGER_CRASH_CHILD set it writes forever and prints what was acknowledged; the parent kills
// it, reopens the ledger and checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { Ledger, type BindingRecord } from '../../plugin/ledger';
import { tempDirs } from '../support/cleanup';

function rec(container: string, share: string): BindingRecord {
  return {
    share: { namespace: 'team-a', name: share },
    pod: { namespace: 'team-a', name: 'p', uid: 'u', sandboxId: 's' },
    container: { id: container, name: 'c' },
    readOnly: false,
    state: 'bound',
    createdAt: 1,
    updatedAt: 1,
  };
}

async function child(dir: string, run: string, sync: boolean): Promise<void> {
  // small compaction threshold so kills also land inside compactions
  const { ledger } = await Ledger.open(dir, { compactAfterEntries: 40, sync });
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) {
    const id = `${run}-${i}`;
    // several writers at once, so kills also land inside group commits
    await Promise.all([
      ledger.bind(rec(id, 'a')).then(() => process.stdout.write(`bound ${id}\n`)),
      ledger.bind(rec(`${id}x`, 'b')).then(() => process.stdout.write(`bound ${id}x\n`)),
    ]);
    if (i % 3 === 0) {
      process.stdout.write(`ending ${id}\n`);
      await ledger.end(id, 'test');
      process.stdout.write(`ended ${id}\n`);
    }
  }
}

if (process.env.LEDGER_CRASH_CHILD) {
  void child(process.env.LEDGER_CRASH_DIR!, process.env.LEDGER_CRASH_CHILD, process.env.LEDGER_CRASH_SYNC === '1');
} else {
  const tempDir = tempDirs(test, 'ledger-crash-');
  const ROUNDS = 25;

  function runAndKill(run: string, dir: string, sync: boolean): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [__filename], {
        env: { ...process.env, LEDGER_CRASH_CHILD: run, LEDGER_CRASH_DIR: dir, LEDGER_CRASH_SYNC: sync ? '1' : '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      p.stdout.setEncoding('utf8');
      p.stdout.on('data', (d: string) => {
        const first = out.length === 0;
        out += d;
        // kill at a random moment once it writes: 0..150 ms after it is ready
        if (first) setTimeout(() => p.kill('SIGKILL'), Math.random() * 150);
      });
      p.on('error', reject);
      p.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') return reject(new Error(`child ${run} ended with ${code ?? signal} before it was killed`));
        // only whole lines count: a line cut by the kill was never fully acknowledged
        const lines = out.split('\n');
        lines.pop();
        resolve(lines);
      });
    });
  }

  for (const sync of [true, false]) test(`${ROUNDS} SIGKILLs at random moments lose no acknowledged change (${sync ? 'fdatasync each append' : 'no fdatasync'})`, async () => {
    const dir = tempDir();
    const mustHave = new Set<string>();
    const mustNotHave = new Set<string>();
    let acked = 0;
    let tornTails = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const lines = await runAndKill(`r${r}`, dir, sync);
      const ending = new Set<string>();
      for (const l of lines) {
        const [what, id] = l.split(' ');
        if (what === 'bound') { mustHave.add(id); acked++; }
        else if (what === 'ending') ending.add(id);
        else if (what === 'ended') { mustHave.delete(id); mustNotHave.add(id); }
      }
      // an end that was started but not acknowledged may or may not have happened
      for (const id of ending) if (!mustNotHave.has(id)) mustHave.delete(id);

      const { ledger, warnings } = await Ledger.open(dir);
      for (const w of warnings) {
        assert.match(w, /incomplete/, `only an interrupted last append may be found, got: ${w}`);
        tornTails++;
      }
      for (const id of mustHave) assert.is(ledger.byContainer(id).length, 1, `acknowledged binding ${id} is missing after round ${r}`);
      for (const id of mustNotHave) assert.is(ledger.byContainer(id).length, 0, `acknowledged end of ${id} was undone after round ${r}`);
      await ledger.close();
    }
    assert.ok(acked > ROUNDS, `the children acknowledged only ${acked} binds; the test proved little`);
    console.log(`  ${ROUNDS} kills, ${acked} acknowledged binds checked, ${mustNotHave.size} acknowledged ends, ${tornTails} torn tails repaired`);
  });

  test.run();
}
