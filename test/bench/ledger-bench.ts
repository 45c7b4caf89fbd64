// Ledger benchmark: prints figures and writes them to test/bench/results/ledger.json.
// Never run by the test command; timings are measured here, not asserted anywhere.
//
//   node dist/test/bench/ledger-bench.js [--dir DIR] [-n 2000] [--records 10000]
//
// DIR defaults to a fresh directory under /var/tmp (a real disk: fdatasync costs what it costs
// there; on tmpfs it would be free and the figure meaningless).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { Ledger, type BindingRecord } from '../../plugin/ledger';
import { percentiles, fmt, round } from './stats';

const repo = resolve(__dirname, '..', '..', '..');
const resultsFile = join(repo, 'test', 'bench', 'results', 'ledger.json');
const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const N = Number(opt('-n', '2000'));
const RECORDS = Number(opt('--records', '10000'));
const parent = opt('--dir', '/var/tmp');

function rec(i: number): BindingRecord {
  const t = Date.now();
  return {
    share: { namespace: 'team-a', name: `share-${i % 50}` },
    pod: { namespace: 'team-a', name: `trainer-${i}`, uid: `7c1e0a52-3f1b-4f7e-9a3e-${String(i).padStart(12, '0')}`, sandboxId: `${'ab'.repeat(30)}${String(i).padStart(4, '0')}` },
    container: { id: `${'cd'.repeat(28)}${String(i).padStart(8, '0')}`, name: 'worker' },
    readOnly: i % 2 === 0,
    state: 'bound',
    createdAt: t,
    updatedAt: t,
  };
}

function fsType(dir: string): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(parent, 'ledger-bench-'));
  const results: Record<string, unknown> = {
    machine: { cpus: cpus().length, node: process.version, when: new Date().toISOString(), fs: fsType(dir) },
  };
  try {
    // 1. one write at a time, with an fdatasync each (ledger.sync "always") and without ("never")
    const oneAtATime = async (sync: boolean) => {
      const l = (await Ledger.open(join(dir, `seq-${sync}`), { compactAfterEntries: 1e9, compactAfterBytes: 1e12, sync })).ledger;
      for (let i = 0; i < 100; i++) await l.bind(rec(1e6 + i)); // warm-up
      const bindMs: number[] = [];
      for (let i = 0; i < N; i++) {
        const t = performance.now();
        await l.bind(rec(i));
        bindMs.push(performance.now() - t);
      }
      const endMs: number[] = [];
      for (let i = 0; i < N; i++) {
        const id = rec(i).container.id;
        const t = performance.now();
        await l.end(id, 'exited');
        endMs.push(performance.now() - t);
      }
      const label = sync ? 'synced each (O_DSYNC journal)' : 'no fdatasync';
      const out = { bind: percentiles(bindMs), end: percentiles(endMs) };
      console.log(`bind (one at a time, ${label}): ${fmt(out.bind)}`);
      console.log(`end  (one at a time, ${label}): ${fmt(out.end)}`);
      return { ledger: l, ...out };
    };
    const unsynced = await oneAtATime(false);
    await unsynced.ledger.close();
    const { ledger, bind, end } = await oneAtATime(true);

    // 2. 32 writers at once, fdatasync on: group commit shares each fdatasync
    const total = 5000;
    let next = 0;
    const t0 = performance.now();
    const concMs: number[] = [];
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < total) {
        const i = 2e6 + next++;
        const t = performance.now();
        await ledger.bind(rec(i));
        concMs.push(performance.now() - t);
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    const conc = percentiles(concMs);
    console.log(`bind (32 concurrent writers): ${round(total / secs, 0)} records/s, latency ${fmt(conc)}`);
    await ledger.close();

    // 3. open = read + check + replay + index RECORDS records, from the journal and from a snapshot
    const b = join(dir, 'replay');
    const w = await Ledger.open(b, { compactAfterEntries: 1e9, compactAfterBytes: 1e12 });
    const batch = 500;
    for (let i = 0; i < RECORDS; i += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, RECORDS - i) }, (_, k) => w.ledger.bind(rec(i + k))));
    }
    await w.ledger.close();
    const journalBytes = statSync(join(b, 'ledger.journal')).size;
    const openJournalMs: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const r = await Ledger.open(b, { compactAfterEntries: 1e9, compactAfterBytes: 1e12 });
      openJournalMs.push(performance.now() - t);
      if (r.ledger.all().length !== RECORDS) throw new Error(`replay found ${r.ledger.all().length} records, expected ${RECORDS}`);
      await r.ledger.close();
    }
    const c = await Ledger.open(b);
    const tc = performance.now();
    await c.ledger.compact();
    const compactMs = performance.now() - tc;
    await c.ledger.close();
    const snapshotBytes = statSync(join(b, 'ledger.snapshot')).size;
    const openSnapMs: number[] = [];
    let lookupNs = 0;
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const r = await Ledger.open(b);
      openSnapMs.push(performance.now() - t);
      if (r.ledger.all().length !== RECORDS) throw new Error(`snapshot load found ${r.ledger.all().length} records, expected ${RECORDS}`);
      if (k === 0) {
        const tl = process.hrtime.bigint();
        for (let i = 0; i < RECORDS; i++) if (r.ledger.byContainer(rec(i).container.id).length !== 1) throw new Error('lookup failed');
        lookupNs = Number(process.hrtime.bigint() - tl) / RECORDS;
      }
      await r.ledger.close();
    }
    const oj = percentiles(openJournalMs);
    const os = percentiles(openSnapMs);
    console.log(`open ${RECORDS} records from the journal (${round(journalBytes / 1e6, 2)} MB): ${fmt(oj)}`);
    console.log(`compact ${RECORDS} records into a snapshot: ${round(compactMs)} ms`);
    console.log(`open ${RECORDS} records from the snapshot (${round(snapshotBytes / 1e6, 2)} MB): ${fmt(os)}`);
    console.log(`byContainer lookup: ${round(lookupNs, 0)} ns (incl. building the id)`);

    Object.assign(results, {
      bindOneAtATimeMs: bind,
      endOneAtATimeMs: end,
      bindOneAtATimeNoSyncMs: unsynced.bind,
      endOneAtATimeNoSyncMs: unsynced.end,
      bind32ConcurrentMs: conc,
      bind32ConcurrentPerSecond: round(total / secs, 0),
      records: RECORDS,
      openFromJournalMs: oj,
      journalBytes,
      compactMs: round(compactMs),
      openFromSnapshotMs: os,
      snapshotBytes,
      byContainerLookupNs: round(lookupNs, 0),
    });
    mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`written to ${resultsFile}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
