// Claim records in the ledger (the DRA front door's holders): durable through the journal and a
// snapshot, kept apart from container records, and a ledger written before claims existed reads
// back unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger, encodeLine, type BindingRecord, type ClaimRecord } from '../../plugin/ledger';
import { tempDirs } from '../support/cleanup';

const base = tempDirs(test, 'ledger-claims-')();
let n = 0;
const freshDir = (): string => join(base, `d${++n}`);

const claimRec = (uid: string, share = 'data', readOnly = false): ClaimRecord => ({
  share: { namespace: 'team', name: share },
  claim: { namespace: 'team', name: `claim-${uid}`, uid },
  readOnly,
  createdAt: 1000,
});
const bindRec = (container: string, share = 'data'): BindingRecord => ({
  share: { namespace: 'team', name: share },
  pod: { namespace: 'team', name: 'p', uid: 'u', sandboxId: 'sb' },
  container: { id: container, name: 'c' },
  readOnly: false,
  state: 'bound',
  createdAt: 1000,
  updatedAt: 1000,
});
const keys = (rs: readonly ClaimRecord[]): string[] => rs.map((r) => `${r.claim.uid}:${r.share.name}:${r.readOnly ? 'ro' : 'rw'}`).sort();

test('claims are found by uid, by share and in allClaims(), apart from container bindings; unclaim ends one share or all', async () => {
  const { ledger } = await Ledger.open(freshDir());
  await ledger.claim(claimRec('u1', 'data'));
  await ledger.claim(claimRec('u1', 'logs'));
  await ledger.claim(claimRec('u2', 'data', true));
  await ledger.bind(bindRec('u1', 'data')); // a container whose id happens to be a claim's uid
  assert.equal(keys(ledger.byClaim('u1')), ['u1:data:rw', 'u1:logs:rw']);
  assert.equal(keys(ledger.claimsByShare('team', 'data')), ['u1:data:rw', 'u2:data:ro']);
  assert.is(ledger.byShare('team', 'data').length, 1, 'container bindings are their own');
  assert.equal(keys(await ledger.unclaim('u1', 'moved', { namespace: 'team', name: 'logs' })), ['u1:logs:rw']);
  assert.equal(keys(ledger.byClaim('u1')), ['u1:data:rw']);
  assert.equal(await ledger.end('u2', 'a container id, not a claim'), []);
  assert.equal(keys(await ledger.unclaim('u2', 'unprepared')), ['u2:data:ro']);
  assert.equal(await ledger.unclaim('u2', 'again'), [], 'idempotent');
  assert.is(ledger.byContainer('u1').length, 1, 'unclaim never ends a container binding');
  assert.is(ledger.stats().claimed, 1);
  await ledger.close();
});

test('claims survive a reopen from the journal and from a snapshot (compaction), and status reads them', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  await ledger.claim(claimRec('u1', 'a'));
  await ledger.claim(claimRec('u2', 'b', true));
  await ledger.unclaim('u1', 'unprepared');
  await ledger.claim(claimRec('u3', 'a'));
  await ledger.close();
  let r = await Ledger.open(dir);
  assert.equal(r.warnings, []);
  assert.equal(keys(r.ledger.allClaims()), ['u2:b:ro', 'u3:a:rw'], 'replayed from the journal');
  await r.ledger.compact();
  await r.ledger.claim(claimRec('u4', 'c'));
  await r.ledger.close();
  const snap = readFileSync(join(dir, 'ledger.snapshot'), 'utf8');
  assert.match(snap, '"claimCount":2');
  r = await Ledger.open(dir);
  assert.equal(r.warnings, []);
  assert.equal(keys(r.ledger.allClaims()), ['u2:b:ro', 'u3:a:rw', 'u4:c:rw'], 'snapshot, then journal');
  await r.ledger.close();
  assert.equal(keys(Ledger.read(dir).claims), ['u2:b:ro', 'u3:a:rw', 'u4:c:rw']);
});

test('a ledger written before claims existed (no claim lines, no claimCount) reads back with its records and no warning', async () => {
  const dir = freshDir();
  mkdirSync(dir, { recursive: true });
  // the snapshot and journal exactly as the previous format wrote them
  const header = { kind: 'nri-memshare-ledger-snapshot', version: 1, seq: 2, count: 1, heldCount: 0, writtenAt: 1 };
  writeFileSync(join(dir, 'ledger.snapshot'), Buffer.concat([encodeLine(header), encodeLine({ rec: bindRec('old') })]));
  writeFileSync(join(dir, 'ledger.journal'), encodeLine({ seq: 3, op: 'bind', rec: bindRec('newer', 'other') }));
  const { ledger, warnings } = await Ledger.open(dir);
  assert.equal(warnings, []);
  assert.equal(ledger.all().map((r) => r.container.id).sort(), ['newer', 'old']);
  assert.equal(ledger.allClaims(), []);
  await ledger.compact();
  await ledger.close();
  const snap = readFileSync(join(dir, 'ledger.snapshot'), 'utf8');
  assert.not.match(snap, 'claimCount', 'a snapshot without claims is written as before');
});

test('bad claim records are refused before writing, and damaged ones on disk are skipped naming the line', async () => {
  const dir = freshDir();
  const { ledger } = await Ledger.open(dir);
  const bad = { ...claimRec('u1'), share: { namespace: 'team', name: '../x' } };
  await ledger.claim(bad).then(() => assert.unreachable('accepted'), (e: Error) => assert.match(e.message, /claim "u1".*share name/));
  await ledger.claim({ ...claimRec(''), claim: { namespace: 'team', name: 'c', uid: '' } }).then(() => assert.unreachable('accepted'), (e: Error) => assert.match(e.message, /uid/));
  await ledger.claim(claimRec('good'));
  await ledger.close();
  writeFileSync(join(dir, 'ledger.journal'), Buffer.concat([readFileSync(join(dir, 'ledger.journal')), encodeLine({ seq: 9, op: 'unclaim', uid: 'good' })]));
  const r = await Ledger.open(dir);
  assert.ok(r.warnings.some((w) => /line 2: unclaim entry: needs uid, reason and at/.test(w)), r.warnings.join('\n'));
  assert.equal(keys(r.ledger.allClaims()), ['good:data:rw'], 'the damaged end is skipped, the record kept');
  await r.ledger.close();
});

test.run();
