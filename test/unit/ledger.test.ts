import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, appendFileSync, existsSync, statSync, readdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger, decodeLines, encodeLine, type BindingRecord } from '../../plugin/ledger';
import { crc32 } from 'node:zlib';
import { crc32 as frameCrc32 } from '../../plugin/ledger/framing';
import { rejects } from '../support/util';
import { tempDirs } from '../support/cleanup';

// removed after the file's last test
const base = tempDirs(test, 'ledger-test-')();
let n = 0;
const freshDir = (): string => join(base, `d${++n}`);

function rec(container: string, share = 'data', ns = 'team-a', readOnly = false): BindingRecord {
  return {
    share: { namespace: ns, name: share },
    pod: { namespace: ns, name: `pod-${container}`, uid: `uid-${container}`, sandboxId: `sb-${container}` },
    container: { id: container, name: `ctr-${container}` },
    readOnly,
    state: 'bound',
    createdAt: 1000,
    updatedAt: 1000,
  };
}

const ids = (rs: readonly BindingRecord[]): string[] => rs.map((r) => `${r.container.id}:${r.share.namespace}/${r.share.name}`).sort();

test('a framed line is "<crc32 hex> <json>\\n" and decodes to its value, multi-byte text included', () => {
  const value = { pod: 'träger-é', n: 1, note: '日本' };
  const line = encodeLine(value);
  const json = JSON.stringify(value);
  assert.is(line.toString('utf8'), `${crc32(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}\n`);
  const d = decodeLines(Buffer.concat([line, encodeLine({ b: 2 })]), 'test');
  assert.equal(d.problems, []);
  assert.equal(d.values.map((v) => v.value), [value, { b: 2 }]);
});

test('the checksum is CRC-32 (IEEE) below and above the size where zlib takes over', () => {
  assert.is(frameCrc32(Buffer.from('123456789')), 0xcbf43926, 'the standard check value');
  for (const n of [0, 1, 300, 4095, 4096, 4097, 70_000]) {
    const buf = Buffer.alloc(n);
    for (let i = 0; i < n; i++) buf[i] = (i * 131 + 7) & 0xff;
    assert.is(frameCrc32(buf), crc32(buf), `${n} bytes`);
  }
  const big = { note: 'x'.repeat(10_000) };
  assert.equal(decodeLines(encodeLine(big), 'test').values.map((v) => v.value), [big]);
});

test('bind records are found by container, by share and in all()', async () => {
  const { ledger, warnings } = await Ledger.open(freshDir());
  assert.equal(warnings, []);
  const r = await ledger.bind(rec('c1', 'data'));
  assert.is(r.state, 'bound');
  await ledger.bind(rec('c1', 'logs'));
  await ledger.bind(rec('c2', 'data', 'team-a', true));
  assert.equal(ids(ledger.byContainer('c1')), ['c1:team-a/data', 'c1:team-a/logs']);
  assert.equal(ids(ledger.byShare('team-a', 'data')), ['c1:team-a/data', 'c2:team-a/data']);
  assert.equal(ledger.byShare('team-b', 'data'), []);
  assert.equal(ledger.byContainer('nope'), []);
  assert.is(ledger.all().length, 3);
  assert.is(ledger.byContainer('c2')[0].readOnly, true);
  assert.ok(Object.isFrozen(ledger.byContainer('c2')[0]), 'records handed out cannot be changed behind the ledger');
  await ledger.close();
});

test('records survive close and reopen, exactly as written', async () => {
  const dir = freshDir();
  const a = await Ledger.open(dir);
  const written = { ...rec('c1', 'data'), extra: 'not kept' } as BindingRecord;
  await a.ledger.bind(written);
  await a.ledger.bind(rec('c2', 'other', 'team-b'));
  await a.ledger.close();
  const b = await Ledger.open(dir);
  assert.equal(b.warnings, []);
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c2:team-b/other']);
  assert.equal({ ...b.ledger.byContainer('c1')[0] }, rec('c1', 'data'));
  await b.ledger.close();
});

test('end ends all bindings of a container, returns them released, and is idempotent', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.bind(rec('c1', 'data'));
  await ledger.bind(rec('c1', 'logs'));
  await ledger.bind(rec('c2', 'data'));
  const ended = await ledger.end('c1', 'exited');
  assert.equal(ids(ended), ['c1:team-a/data', 'c1:team-a/logs']);
  assert.ok(ended.every((r) => r.state === 'released' && r.endReason === 'exited'));
  assert.equal(ledger.byContainer('c1'), []);
  assert.equal(ids(ledger.byShare('team-a', 'data')), ['c2:team-a/data']);
  assert.equal(ledger.byShare('team-a', 'logs'), []);
  const size = statSync(join(dir, 'ledger.journal')).size;
  assert.equal(await ledger.end('c1', 'again'), []);
  assert.equal(await ledger.end('never', 'x'), []);
  assert.is(statSync(join(dir, 'ledger.journal')).size, size, 'a no-op end writes nothing');
  await ledger.close();
  const b = await Ledger.open(dir);
  assert.equal(ids(b.ledger.all()), ['c2:team-a/data']);
  await b.ledger.close();
});

test('end right after a bind that is still being written ends it', async () => {
  const { ledger } = await Ledger.open(freshDir());
  const bound = ledger.bind(rec('c1'));
  const ended = ledger.end('c1', 'creation failed');
  await bound;
  assert.is((await ended).length, 1);
  assert.equal(ledger.all(), []);
  await ledger.close();
});

test('a malformed record is refused naming the problem', async () => {
  const { ledger } = await Ledger.open(freshDir());
  await rejects(ledger.bind({ ...rec('c1'), container: { id: '', name: 'x' } }), /container must have a non-empty string id/);
  await rejects(ledger.bind({ ...rec('c1'), readOnly: 'yes' } as unknown as BindingRecord), /readOnly must be a boolean/);
  await rejects(ledger.bind({ ...rec('c1'), state: 'released' }), /state "bound"/);
  assert.equal(ledger.all(), []);
  await ledger.close();
});

test('concurrent binds share fsyncs and all land, one journal line each', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await Promise.all(Array.from({ length: 200 }, (_, i) => ledger.bind(rec(`c${i}`))));
  assert.is(ledger.byShare('team-a', 'data').length, 200);
  await ledger.close();
  assert.is(readFileSync(join(dir, 'ledger.journal'), 'utf8').split('\n').filter(Boolean).length, 200);
  const b = await Ledger.open(dir);
  assert.is(b.ledger.all().length, 200);
  await b.ledger.close();
});

test('compact folds the journal into a snapshot; reopen gives the same state', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  for (let i = 0; i < 20; i++) await ledger.bind(rec(`c${i}`));
  for (let i = 0; i < 20; i += 2) await ledger.end(`c${i}`, 'exited');
  await ledger.compact();
  assert.is(statSync(join(dir, 'ledger.journal')).size, 0);
  assert.ok(existsSync(join(dir, 'ledger.snapshot')));
  await ledger.bind(rec('after'));
  await ledger.end('c1', 'exited');
  const before = ids(ledger.all());
  await ledger.close();
  const b = await Ledger.open(dir);
  assert.equal(b.warnings, []);
  assert.equal(ids(b.ledger.all()), before);
  assert.is(b.ledger.all().length, 10);
  await b.ledger.close();
});

test('compaction happens by itself after compactAfterEntries', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir, { compactAfterEntries: 10 });
  for (let i = 0; i < 25; i++) await ledger.bind(rec(`c${i}`));
  await ledger.close();
  const s = ledger.stats();
  assert.ok(s.compactions >= 2, `compactions ${s.compactions}`);
  assert.ok(s.journalEntries < 10);
  const b = await Ledger.open(dir);
  assert.is(b.ledger.all().length, 25);
  await b.ledger.close();
});

test('a crash between snapshot rename and journal truncation replays nothing twice', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.bind(rec('c1'));
  await ledger.bind(rec('c2'));
  await ledger.end('c1', 'exited');
  const journal = join(dir, 'ledger.journal');
  copyFileSync(journal, `${journal}.old`);
  await ledger.compact();
  await ledger.close();
  copyFileSync(`${journal}.old`, journal); // as if the truncation never happened
  const b = await Ledger.open(dir);
  assert.equal(b.warnings, []);
  assert.equal(ids(b.ledger.all()), ['c2:team-a/data']);
  await b.ledger.bind(rec('c3'));
  await b.ledger.close();
  const c = await Ledger.open(dir);
  assert.equal(ids(c.ledger.all()), ['c2:team-a/data', 'c3:team-a/data']);
  await c.ledger.close();
});

test('a torn last line is reported and dropped, the file is cut back, nothing valid is lost', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.bind(rec('c1'));
  await ledger.bind(rec('c2'));
  await ledger.close();
  const journal = join(dir, 'ledger.journal');
  const good = statSync(journal).size;
  appendFileSync(journal, '1234abcd {"seq":3,"op":"bind","rec":{"sha'); // interrupted append
  const b = await Ledger.open(dir);
  assert.is(b.warnings.length, 1);
  assert.match(b.warnings[0], /incomplete/);
  assert.match(b.warnings[0], /ledger\.journal: line 3/);
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c2:team-a/data']);
  assert.is(statSync(journal).size, good);
  await b.ledger.bind(rec('c3'));
  await b.ledger.close();
  const c = await Ledger.open(dir);
  assert.equal(c.warnings, []);
  assert.is(c.ledger.all().length, 3);
  await c.ledger.close();
});

test('a damaged line in the middle is reported and skipped, the others kept, the journal saved', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  for (const c of ['c1', 'c2', 'c3']) await ledger.bind(rec(c));
  await ledger.close();
  const journal = join(dir, 'ledger.journal');
  const text = readFileSync(journal, 'utf8');
  const lines = text.split('\n');
  lines[1] = lines[1].replace('"c2"', '"cX"'); // same length, checksum no longer matches
  writeFileSync(journal, lines.join('\n'));
  const b = await Ledger.open(dir);
  assert.ok(b.warnings.some((w) => /line 2 .*checksum/.test(w)), b.warnings.join('\n'));
  assert.ok(b.warnings.some((w) => /saved as/.test(w)));
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c3:team-a/data']);
  assert.is(readdirSync(dir).filter((f) => f.startsWith('ledger.journal.damaged-')).length, 1);
  await b.ledger.close();
  const c = await Ledger.open(dir);
  assert.equal(c.warnings, [], 'the damage was compacted away and is not reported again');
  assert.equal(ids(c.ledger.all()), ['c1:team-a/data', 'c3:team-a/data']);
  await c.ledger.close();
});

test('a held share whose keepUntil is not an integer is refused by name (the same check reads the journal back); the rest is kept', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  const handle = { backend: 'ubs', namespace: 'team-a', name: 'data', sizeBytes: 1, requestedBytes: 1, data: {} };
  const err = await ledger.hold({ handle, keepUntil: 'soon' as unknown as number }).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? '', 'ledger: refusing a held share "team-a"/"data": keepUntil must be an integer');
  await ledger.hold({ handle: { ...handle, name: 'other' }, keepUntil: 1_900_000_000_000 });
  await ledger.close();
  const b = await Ledger.open(dir);
  assert.equal(b.warnings, []);
  assert.equal(b.ledger.held().map((h) => [h.handle.name, h.keepUntil]), [['other', 1_900_000_000_000]]);
  await b.ledger.close();
});

test('a damaged snapshot line loses only that record', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  for (const c of ['c1', 'c2', 'c3']) await ledger.bind(rec(c));
  await ledger.compact();
  await ledger.close();
  const snap = join(dir, 'ledger.snapshot');
  const buf = readFileSync(snap);
  const lines = buf.toString('utf8').split('\n');
  lines[2] = lines[2].replace('"c2"', '"cY"');
  writeFileSync(snap, lines.join('\n'));
  const b = await Ledger.open(dir);
  assert.ok(b.warnings.some((w) => /ledger\.snapshot: line 3 .*checksum/.test(w)), b.warnings.join('\n'));
  assert.ok(b.warnings.some((w) => /2 intact records of 3/.test(w)));
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c3:team-a/data']);
  await b.ledger.close();
});

const handle = (name: string, data: Record<string, string | number | number[]> = { sdkName: `nms.team-a.${name}`, memIds: [7, 90001] }) =>
  ({ backend: 'ubs', namespace: 'team-a', name, sizeBytes: 128 << 20, requestedBytes: 128 << 20, data });

test('held shares: recorded, replaced by a failing release, dropped; they survive reopen and compaction', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.hold({ handle: handle('a') });
  await ledger.hold({ handle: handle('b') });
  await ledger.hold({ handle: handle('b'), releasing: { attempts: 2, lastError: 'deallocate failed with 6017', retryable: true, since: 1, nextAttemptAt: 2 } });
  await ledger.drop('team-a', 'a');
  await ledger.drop('team-a', 'never-held'); // idempotent, no write
  await ledger.close();
  const b = await Ledger.open(dir);
  assert.equal(b.warnings, []);
  assert.equal(b.ledger.held().map((h) => [h.handle.name, h.releasing?.attempts]), [['b', 2]]);
  assert.equal(b.ledger.heldShare('team-a', 'b')!.handle.data.memIds, [7, 90001]);
  await b.ledger.compact();
  await b.ledger.close();
  const c = await Ledger.open(dir);
  assert.equal(c.ledger.held().map((h) => h.handle.name), ['b']);
  await c.ledger.close();
});

test('a malformed held share is refused at hold(); a well-framed bad hold line is skipped by line, the rest kept', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await rejects(ledger.hold({ handle: { ...handle('x'), sizeBytes: -0.5 } }), /refusing a held share .*sizeBytes and requestedBytes must be integers/);
  await rejects(ledger.hold({ handle: handle('y', { nested: { a: 1 } as unknown as number }) }), /handle\.data must be an object of strings/);
  await ledger.bind(rec('c1'));
  await ledger.close();
  // lines with valid checksums but hostile contents, between good ones
  const journal = join(dir, 'ledger.journal');
  appendFileSync(journal, encodeLine({ seq: 50, op: 'hold', held: { handle: { backend: 'ubs', namespace: 'team-a', name: 'z', sizeBytes: 'big', requestedBytes: 1, data: {} } } }));
  appendFileSync(journal, encodeLine({ seq: 51, op: 'drop', namespace: 7, name: null }));
  appendFileSync(journal, encodeLine({ seq: 52, op: 'hold', held: { handle: handle('ok') } }));
  appendFileSync(journal, encodeLine({ seq: 53, op: 'bind', rec: rec('c2') }));
  const b = await Ledger.open(dir);
  assert.ok(b.warnings.some((w) => /line 2: hold entry: handle\.sizeBytes and requestedBytes must be integers; skipped/.test(w)), b.warnings.join('\n'));
  assert.ok(b.warnings.some((w) => /line 3: drop entry: needs namespace and name; skipped/.test(w)), b.warnings.join('\n'));
  assert.equal(b.ledger.held().map((h) => h.handle.name), ['ok']);
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c2:team-a/data']);
  await b.ledger.close();
});

test('records read back with names that are not DNS labels, or sequence numbers without headroom, are skipped by line; the rest kept', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.bind(rec('c1'));
  await ledger.close();
  const journal = join(dir, 'ledger.journal');
  // well framed (valid checksums) but hostile: a path-like share name, an upper-case namespace,
  // a held share named "..", a sequence number at the end of the safe integers; good lines between
  appendFileSync(journal, encodeLine({ seq: 10, op: 'bind', rec: rec('c2', '../../etc') }));
  appendFileSync(journal, encodeLine({ seq: 11, op: 'bind', rec: rec('c3', 'data', 'Team_A') }));
  appendFileSync(journal, encodeLine({ seq: 12, op: 'bind', rec: rec('c4', 'ok') }));
  appendFileSync(journal, encodeLine({ seq: 13, op: 'hold', held: { handle: { ...handle('x'), name: '..' } } }));
  appendFileSync(journal, encodeLine({ seq: Number.MAX_SAFE_INTEGER - 1, op: 'bind', rec: rec('c5') }));
  appendFileSync(journal, encodeLine({ seq: 14, op: 'drop', namespace: 'team-a', name: 'a/b' }));
  appendFileSync(journal, encodeLine({ seq: 15, op: 'bind', rec: rec('c6') }));
  const b = await Ledger.open(dir);
  const w = b.warnings.join('\n');
  assert.match(w, /line 2: bind entry: record share name "\.\.\/\.\.\/etc" is not a DNS-1123 label.*; skipped/);
  assert.match(w, /line 3: bind entry: record share namespace "Team_A" is not a DNS-1123 label/);
  assert.match(w, /line 5: hold entry: handle name "\.\." is not a DNS-1123 label/);
  assert.match(w, /line 6: sequence number 9007199254740990 leaves no headroom/);
  assert.match(w, /line 7: drop entry: namespace and name must be DNS labels/);
  assert.equal(ids(b.ledger.all()), ['c1:team-a/data', 'c4:team-a/ok', 'c6:team-a/data']);
  // the ledger goes on counting from the last good sequence number, and the next write lands
  await b.ledger.bind(rec('c7'));
  await b.ledger.close();
  const c = await Ledger.open(dir);
  assert.equal(ids(c.ledger.all()), ['c1:team-a/data', 'c4:team-a/ok', 'c6:team-a/data', 'c7:team-a/data']);
  assert.is(c.ledger.stats().seq < 100, true, `sequence ${c.ledger.stats().seq} continues from the good entries`);
  await c.ledger.close();
  // a snapshot whose header claims a sequence number without headroom is not trusted to skip the journal
  const d = freshDir();
  const l = await Ledger.open(d);
  await l.ledger.bind(rec('s1'));
  await l.ledger.compact();
  await l.ledger.bind(rec('s2'));
  await l.ledger.close();
  const snap = join(d, 'ledger.snapshot');
  const lines = readFileSync(snap, 'utf8').split('\n');
  const header = JSON.parse(lines[0].slice(lines[0].indexOf(' ') + 1));
  writeFileSync(snap, [encodeLine({ ...header, seq: Number.MAX_SAFE_INTEGER }).toString().trimEnd(), ...lines.slice(1)].join('\n'));
  const e = await Ledger.open(d);
  assert.match(e.warnings.join('\n'), /ledger\.snapshot: line 1: sequence number 9007199254740991 leaves no headroom/);
  assert.equal(ids(e.ledger.all()), ['s1:team-a/data', 's2:team-a/data']);
  await e.ledger.close();
});

test('a second open of the same state dir is refused while the first holds it', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await rejects(Ledger.open(dir), /in use by another process/);
  await ledger.close();
  const again = await Ledger.open(dir);
  await again.ledger.close();
});

test('a closed ledger refuses writes and close is idempotent', async () => {
  const { ledger } = await Ledger.open(freshDir());
  const pending = ledger.bind(rec('c1'));
  await ledger.close();
  assert.is((await pending).container.id, 'c1', 'close waits for writes already queued');
  await rejects(ledger.bind(rec('c2')), /is closed/);
  await ledger.close();
});

// ---- what a change costs in syscalls (issue 20: a later UB binding's fdatasync) ----------------

/** Counts the ledger's file calls while `fn` runs: thread-pool writes, inline writes, fdatasyncs. */
async function counting<T>(fn: () => Promise<T>): Promise<{ value: T; write: number; writeSync: number; fdatasync: number; order: string[] }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs') & Record<string, unknown>;
  const saved = { write: fs.write, writeSync: fs.writeSync, fdatasync: fs.fdatasync };
  const c = { write: 0, writeSync: 0, fdatasync: 0, order: [] as string[] };
  fs.write = ((...a: unknown[]) => {
    c.write++;
    c.order.push('write');
    const cb = a[a.length - 1] as (...r: unknown[]) => void;
    a[a.length - 1] = (...r: unknown[]) => (c.order.push('written'), cb(...r));
    (saved.write as (...x: unknown[]) => void)(...a);
  }) as typeof fs.write;
  fs.writeSync = ((...a: unknown[]) => (c.writeSync++, c.order.push('writeSync'), (saved.writeSync as (...x: unknown[]) => number)(...a))) as typeof fs.writeSync;
  fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    c.fdatasync++;
    c.order.push('fdatasync');
    saved.fdatasync(fd, (e) => (c.order.push('synced'), cb(e)));
  }) as typeof fs.fdatasync;
  try {
    const value = await fn();
    c.order.push('resolved');
    return { value, ...c };
  } finally {
    Object.assign(fs, saved);
  }
}

/** The open flags of a ledger's journal, from /proc/self/fdinfo. */
function journalFlags(ledger: Ledger): number {
  const fd = (ledger as unknown as { journalFd: number }).journalFd;
  return parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
}

test('with sync, one binding is one write on an O_DSYNC journal: one syscall and one thread-pool hop, resolved after it', async () => {
  const { ledger } = await Ledger.open(freshDir(), { sync: true });
  const { constants } = await import('node:fs');
  assert.ok(journalFlags(ledger) & constants.O_DSYNC, 'the journal is opened O_DSYNC: each write(2) returns once it is on disk');
  await ledger.bind(rec('warm'));
  const b = await counting(() => ledger.bind(rec('c1')));
  assert.is(b.write, 1, 'one write per record');
  assert.is(b.fdatasync, 0, 'no separate fdatasync: before, each record made two thread-pool hops (write, then fdatasync)');
  assert.is(b.writeSync, 0, 'nothing written on the event loop');
  assert.equal(b.order, ['write', 'written', 'resolved'], 'on disk (the O_DSYNC write returned) before bind() resolves');
  const e = await counting(() => ledger.end('c1', 'exited'));
  assert.equal([e.write, e.fdatasync, e.writeSync], [1, 0, 0], 'an end record: the same');
  await ledger.close();
});

test('without sync, a binding costs no fdatasync and no thread-pool hop, and the journal is not O_DSYNC', async () => {
  const { ledger } = await Ledger.open(freshDir(), { sync: false });
  const { constants } = await import('node:fs');
  assert.not.ok(journalFlags(ledger) & constants.O_DSYNC);
  const b = await counting(() => ledger.bind(rec('c1')));
  assert.equal([b.fdatasync, b.write], [0, 0]);
  assert.ok(b.writeSync >= 1);
  await ledger.close();
});

test('with sync, 32 concurrent bindings share synced writes (group commit): at most 2, every line on disk', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir, { sync: true });
  const b = await counting(() => Promise.all(Array.from({ length: 32 }, (_, i) => ledger.bind(rec(`c${i}`)))));
  assert.ok(b.write <= 2, `${b.write} synced writes for 32 records`);
  assert.is(b.fdatasync, 0);
  await ledger.close();
  assert.is(readFileSync(join(dir, 'ledger.journal'), 'utf8').split('\n').filter(Boolean).length, 32);
});

test('with sync, a hold and the binding queued behind it go out in order: the hold line first, both on disk before either resolves', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir, { sync: true });
  await ledger.bind(rec('warm')); // so that the next two queue behind nothing and go out together
  const handle = { backend: 'ubs', namespace: 'team-a', name: 'data', sizeBytes: 1 << 27, requestedBytes: 1 << 27, data: { memIds: [1, 2] } };
  const b = await counting(() => Promise.all([ledger.hold({ handle }), ledger.bind(rec('c1'))]));
  assert.is(b.write, 1, 'one synced write for both (queued together)');
  assert.equal(b.order, ['write', 'written', 'resolved']);
  await ledger.close();
  const ops = readFileSync(join(dir, 'ledger.journal'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l.slice(9)) as { op: string }).op);
  assert.equal(ops, ['bind', 'hold', 'bind']);
});


test.run();
