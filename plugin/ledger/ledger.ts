// The durable ownership ledger. Every change is one checksummed line appended to a journal and
// written (and, with `sync`, on disk) before the caller's promise resolves; changes waiting
// while a write runs go out together in the next one (group commit). With `sync` the journal is
// opened O_DSYNC: a batch is one write(2) on the thread pool that returns once its bytes (and the
// file size) are on disk, as write + fdatasync did in two calls and two thread-pool hops. The
// journal is folded into a snapshot now and then (write temp, fsync, rename, fsync dir, then
// empty the journal).
// Snapshot and journal entries carry a sequence number, so a crash between the rename and the
// emptying replays nothing twice.
// Lookups use in-memory indexes by container and by share.
// Two kinds of holder: containers (bind/end, the NRI front door) and ResourceClaims (claim/unclaim,
// the DRA front door), each in its own entries and snapshot lines, so the records written before
// claims existed read back unchanged and ending a container never touches a claim.
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import * as native from '../../native';
import { isDnsLabel, messageOf, shareKey, wrapError } from '../model';
import { decodeLines, encodeLine } from './framing';
import {
  claimRecordProblem,
  freezeClaimRecord,
  freezeHeld,
  freezeRecord,
  heldProblem,
  recordProblem,
  type BindingRecord,
  type ClaimRecord,
  type HeldShare,
} from './record';

const JOURNAL = 'ledger.journal';
const SNAPSHOT = 'ledger.snapshot';
const SNAPSHOT_TMP = 'ledger.snapshot.tmp';
const LOCK = 'ledger.lock';
/** the journal's open flags with `sync`: appends that are on disk when write(2) returns */
const JOURNAL_SYNC_FLAGS = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_DSYNC;
const SNAPSHOT_KIND = 'nri-memshare-ledger-snapshot';

type JournalEntry =
  | { seq: number; op: 'bind'; rec: BindingRecord }
  | { seq: number; op: 'end'; containerId: string; reason: string; at: number }
  | { seq: number; op: 'hold'; held: HeldShare }
  | { seq: number; op: 'drop'; namespace: string; name: string }
  | { seq: number; op: 'claim'; rec: ClaimRecord }
  /** share set: only that share's holding ends; absent: all of the claim's */
  | { seq: number; op: 'unclaim'; uid: string; reason: string; at: number; share?: { namespace: string; name: string } };

interface SnapshotHeader {
  kind: typeof SNAPSHOT_KIND;
  version: 1;
  seq: number;
  count: number;
  /** held shares in the snapshot (absent in snapshots written before shares were recorded) */
  heldCount?: number;
  /** claim records in the snapshot (absent in snapshots written before claims were recorded) */
  claimCount?: number;
  writtenAt: number;
}

export interface LedgerOptions {
  /** fold the journal into the snapshot once it has this many entries (default 10,000) */
  compactAfterEntries?: number;
  /** ... or this many bytes (default 4 MiB) */
  compactAfterBytes?: number;
  /** told about failures of background compaction (the journal keeps working) */
  onError?: (err: Error) => void;
  /**
   * Each append on disk before resolving (default true): the journal is opened O_DSYNC, so the
   * append's write(2) is also its fdatasync. Without it a resolved change is in the kernel's page
   * cache: it survives any crash of the process, not a crash of the kernel. Snapshots are always
   * synced.
   */
  sync?: boolean;
}

export interface LedgerStats {
  bound: number;
  /** claim holdings (one per claim and share) */
  claimed: number;
  seq: number;
  journalEntries: number;
  journalBytes: number;
  compactions: number;
}

interface Pending {
  seq: number;
  line: Buffer;
  apply: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** set for binds, so end() knows a binding is on its way */
  bindOf?: string;
}

type Rec = Readonly<BindingRecord>;
type ClaimRec = Readonly<ClaimRecord>;

export class Ledger {
  private readonly byContainerId = new Map<string, Map<string, Rec>>();
  private readonly byShareKey = new Map<string, Map<string, Rec>>();
  private readonly pendingBinds = new Map<string, number>();
  private readonly heldByKey = new Map<string, Readonly<HeldShare>>();
  /** claim holdings by claim uid, then share key; and by share key, then claim uid */
  private readonly byClaimUid = new Map<string, Map<string, ClaimRec>>();
  private readonly claimsByShareKey = new Map<string, Map<string, ClaimRec>>();
  private queue: Pending[] = [];
  private compactWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private pumping: Promise<void> | undefined;
  /** last sequence number handed out (queued entries included) */
  private seq = 0;
  /** last sequence number on disk and applied in memory: what a snapshot covers */
  private appliedSeq = 0;
  private journalBytes = 0;
  private journalEntries = 0;
  private compactions = 0;
  private nextAutoCompactEntries: number;
  private nextAutoCompactBytes: number;
  private broken: Error | undefined;
  private closed = false;
  private journalFd = -1;
  private lockFd = -1;
  private readonly compactAfterEntries: number;
  private readonly compactAfterBytes: number;
  private readonly sync: boolean;

  private constructor(
    readonly stateDir: string,
    private readonly options: LedgerOptions,
  ) {
    this.compactAfterEntries = options.compactAfterEntries ?? 10_000;
    this.compactAfterBytes = options.compactAfterBytes ?? 4 * 1024 * 1024;
    this.sync = options.sync ?? true;
    this.nextAutoCompactEntries = this.compactAfterEntries;
    this.nextAutoCompactBytes = this.compactAfterBytes;
  }

  /**
   * Opens (creating if needed) the ledger in `stateDir`, holding an exclusive lock on it.
   * Damaged or incomplete lines are skipped and described in `warnings`; every intact record is
   * kept. A damaged journal is saved beside it for inspection and compacted away.
   */
  static async open(stateDir: string, options: LedgerOptions = {}): Promise<{ ledger: Ledger; warnings: string[] }> {
    const l = new Ledger(stateDir, options);
    const warnings: string[] = [];
    try {
      l.lock();
      const damaged = l.load(warnings);
      if (damaged) {
        const saved = join(stateDir, `${JOURNAL}.damaged-${Date.now()}`);
        fs.copyFileSync(join(stateDir, JOURNAL), saved);
        warnings.push(`ledger ${stateDir}: the damaged journal was saved as ${saved} and compacted into a new snapshot`);
        await l.compact();
      }
    } catch (err) {
      l.closeFds();
      throw err;
    }
    return { ledger: l, warnings };
  }

  /** Records a binding; resolves once it is on disk. Replaces a binding of the same container and share. */
  bind(rec: BindingRecord): Promise<Rec> {
    const problem = recordProblem(rec);
    if (problem) return Promise.reject(new Error(`ledger: refusing a record for container ${JSON.stringify(rec?.container?.id)}: ${problem}`));
    if (rec.state !== 'bound') return Promise.reject(new Error(`ledger: bind() takes a record in state "bound", got "${rec.state}"`));
    const r = freezeRecord(rec);
    return this.enqueue({ seq: 0, op: 'bind', rec: r }, () => this.applyBind(r), r.container.id) as Promise<Rec>;
  }

  /**
   * Ends every binding of a container; resolves once that is on disk, with the records it ended
   * (state "released"). Idempotent: a container with nothing bound costs no write and gives [].
   */
  end(containerId: string, reason: string): Promise<Rec[]> {
    if (!this.byContainerId.has(containerId) && !this.pendingBinds.has(containerId)) return Promise.resolve([]);
    const at = Date.now();
    return this.enqueue({ seq: 0, op: 'end', containerId, reason, at }, () => this.applyEnd(containerId, reason, at)) as Promise<Rec[]>;
  }

  /**
   * Records that this node holds a share through a backend (its handle), or the state of its
   * failing release; replaces what was recorded for the share. Resolves once it is on disk.
   */
  hold(held: HeldShare): Promise<Readonly<HeldShare>> {
    const problem = heldProblem(held);
    if (problem) return Promise.reject(new Error(`ledger: refusing a held share ${JSON.stringify(held?.handle?.namespace)}/${JSON.stringify(held?.handle?.name)}: ${problem}`));
    const h = freezeHeld(held);
    return this.enqueue({ seq: 0, op: 'hold', held: h }, () => this.applyHold(h)) as Promise<Readonly<HeldShare>>;
  }

  /**
   * Records that a ResourceClaim holds a share; resolves once it is on disk. Replaces the claim's
   * record of the same share.
   */
  claim(rec: ClaimRecord): Promise<ClaimRec> {
    const problem = claimRecordProblem(rec);
    if (problem) return Promise.reject(new Error(`ledger: refusing a record for claim ${JSON.stringify(rec?.claim?.uid)}: ${problem}`));
    const r = freezeClaimRecord(rec);
    return this.enqueue({ seq: 0, op: 'claim', rec: r }, () => this.applyClaim(r), claimPending(r.claim.uid)) as Promise<ClaimRec>;
  }

  /**
   * Ends a claim's holdings (of `share` only, when given); resolves once that is on disk, with the
   * records it ended. Idempotent: a claim holding nothing costs no write and gives [].
   */
  unclaim(uid: string, reason: string, share?: { namespace: string; name: string }): Promise<ClaimRec[]> {
    if (!this.byClaimUid.has(uid) && !this.pendingBinds.has(claimPending(uid))) return Promise.resolve([]);
    const at = Date.now();
    const sh = share ? { namespace: share.namespace, name: share.name } : undefined;
    return this.enqueue({ seq: 0, op: 'unclaim', uid, reason, at, ...(sh ? { share: sh } : {}) }, () => this.applyUnclaim(uid, sh)) as Promise<ClaimRec[]>;
  }

  /** The holdings of a claim, by its uid. */
  byClaim(uid: string): ClaimRec[] {
    const m = this.byClaimUid.get(uid);
    return m ? [...m.values()] : [];
  }

  /** The claims holding a share. */
  claimsByShare(namespace: string, name: string): ClaimRec[] {
    const m = this.claimsByShareKey.get(shareKey(namespace, name));
    return m ? [...m.values()] : [];
  }

  /** Every claim holding. */
  allClaims(): ClaimRec[] {
    const out: ClaimRec[] = [];
    for (const m of this.byClaimUid.values()) out.push(...m.values());
    return out;
  }

  /** Records that this node no longer holds a share; idempotent (nothing recorded: no write). */
  drop(namespace: string, name: string): Promise<void> {
    if (!this.heldByKey.has(shareKey(namespace, name))) return Promise.resolve();
    return this.enqueue({ seq: 0, op: 'drop', namespace, name }, () => void this.heldByKey.delete(shareKey(namespace, name))) as Promise<void>;
  }

  /** The share recorded as held, if any. */
  heldShare(namespace: string, name: string): Readonly<HeldShare> | undefined {
    return this.heldByKey.get(shareKey(namespace, name));
  }

  /** Every share recorded as held. */
  held(): Array<Readonly<HeldShare>> {
    return [...this.heldByKey.values()];
  }

  /** The bindings of a container (all in state "bound"). */
  byContainer(containerId: string): Rec[] {
    const m = this.byContainerId.get(containerId);
    return m ? [...m.values()] : [];
  }

  /** The bindings of a share (all in state "bound"). */
  byShare(namespace: string, name: string): Rec[] {
    const m = this.byShareKey.get(shareKey(namespace, name));
    return m ? [...m.values()] : [];
  }

  /** Every binding (all in state "bound"). */
  all(): Rec[] {
    const out: Rec[] = [];
    for (const m of this.byContainerId.values()) out.push(...m.values());
    return out;
  }

  stats(): LedgerStats {
    let bound = 0;
    for (const m of this.byContainerId.values()) bound += m.size;
    let claimed = 0;
    for (const m of this.byClaimUid.values()) claimed += m.size;
    return { bound, claimed, seq: this.appliedSeq, journalEntries: this.journalEntries, journalBytes: this.journalBytes, compactions: this.compactions };
  }

  /** Folds the journal into a fresh snapshot; resolves once both are on disk. */
  compact(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise<void>((resolve, reject) => {
      this.compactWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * The records as they are on disk, without taking the lock or repairing anything: for
   * `nri-memshare status` beside a running agent. A line being appended right now reads as torn.
   */
  static read(stateDir: string): { records: Rec[]; claims: ClaimRec[]; held: Array<Readonly<HeldShare>>; warnings: string[] } {
    const l = new Ledger(stateDir, {});
    const warnings: string[] = [];
    l.load(warnings, true);
    return { records: l.all(), claims: l.allClaims(), held: l.held(), warnings };
  }

  /** Waits for queued writes, then closes the files and drops the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.pumping) await this.pumping;
    this.closeFds();
  }

  // ---- loading ---------------------------------------------------------------------------------

  private lock(): void {
    if (!fs.existsSync(this.stateDir)) {
      fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
      fsyncDir(dirname(this.stateDir)); // so the directory itself survives a power cut
    }
    const path = join(this.stateDir, LOCK);
    let fd: number | undefined;
    try {
      fd = native.tryLockFile(path);
    } catch (err) {
      throw wrapError(`ledger ${this.stateDir}: cannot lock ${path}`, err);
    }
    if (fd === undefined) throw new Error(`ledger ${this.stateDir} is in use by another process (${path} is locked)`);
    this.lockFd = fd;
  }

  /** Loads snapshot and journal; returns true if the journal had damage beyond a torn tail. */
  private load(warnings: string[], readOnly = false): boolean {
    if (!readOnly) fs.rmSync(join(this.stateDir, SNAPSHOT_TMP), { force: true }); // an interrupted compaction
    const snapSeq = this.loadSnapshot(warnings);
    this.seq = snapSeq;

    const path = join(this.stateDir, JOURNAL);
    let data: Buffer;
    try {
      data = fs.readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrapError(`ledger ${this.stateDir}: cannot read ${path}`, err);
      data = Buffer.alloc(0);
    }
    const dec = decodeLines(data, path);
    warnings.push(...dec.problems);
    let damaged = dec.problems.length > (dec.tornTail ? 1 : 0);
    for (const { value, line } of dec.values) {
      const problem = entryProblem(value);
      if (problem) {
        warnings.push(`${path}: line ${line}: ${problem}; skipped`);
        damaged = true;
        continue;
      }
      const e = value as JournalEntry;
      if (e.seq <= snapSeq) continue; // already in the snapshot
      if (e.op === 'bind') this.applyBind(freezeRecord(e.rec));
      else if (e.op === 'end') this.applyEnd(e.containerId, e.reason, e.at);
      else if (e.op === 'hold') this.applyHold(freezeHeld(e.held));
      else if (e.op === 'claim') this.applyClaim(freezeClaimRecord(e.rec));
      else if (e.op === 'unclaim') this.applyUnclaim(e.uid, e.share);
      else this.heldByKey.delete(shareKey(e.namespace, e.name));
      if (e.seq > this.seq) this.seq = e.seq;
    }
    if (readOnly) return damaged;
    if (dec.tornTail) {
      // cut the partial line off, or the next append would be glued to it
      const fd = fs.openSync(path, 'r+');
      try {
        fs.ftruncateSync(fd, dec.completeBytes);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.appliedSeq = this.seq;
    const existed = data.length > 0 || fs.existsSync(path);
    // O_DSYNC: every write returns once it is on disk (synchronized I/O data integrity), one
    // syscall instead of write + fdatasync
    this.journalFd = fs.openSync(path, this.sync ? JOURNAL_SYNC_FLAGS : 'a', 0o600);
    if (!existed) fsyncDir(this.stateDir);
    this.journalBytes = dec.completeBytes;
    this.journalEntries = dec.values.length;
    return damaged;
  }

  /** Loads the snapshot's records; returns the sequence number it covers (0 if none). */
  private loadSnapshot(warnings: string[]): number {
    const path = join(this.stateDir, SNAPSHOT);
    let data: Buffer;
    try {
      data = fs.readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw wrapError(`ledger ${this.stateDir}: cannot read ${path}`, err);
    }
    const dec = decodeLines(data, path);
    warnings.push(...dec.problems);
    let header: SnapshotHeader | undefined;
    let count = 0;
    let heldCount = 0;
    let claimCount = 0;
    for (const { value, line } of dec.values) {
      if (line === 1 && isHeader(value)) {
        if (value.seq <= MAX_SEQ) header = value;
        else warnings.push(`${path}: line 1: sequence number ${value.seq} leaves no headroom (at most ${MAX_SEQ}); header ignored`);
        continue;
      }
      const held = (value as { held?: unknown } | null)?.held;
      if (held !== undefined) {
        const hp = heldProblem(held);
        if (hp) warnings.push(`${path}: line ${line}: not a held share (${hp}); skipped`);
        else {
          this.applyHold(freezeHeld(held as HeldShare));
          heldCount++;
        }
        continue;
      }
      const claim = (value as { claim?: unknown } | null)?.claim;
      if (claim !== undefined) {
        const cp = claimRecordProblem(claim);
        if (cp) warnings.push(`${path}: line ${line}: not a claim record (${cp}); skipped`);
        else {
          this.applyClaim(freezeClaimRecord(claim as ClaimRecord));
          claimCount++;
        }
        continue;
      }
      const rec = (value as { rec?: unknown } | null)?.rec;
      const problem = recordProblem(rec);
      if (problem || (rec as BindingRecord).state !== 'bound') {
        warnings.push(`${path}: line ${line}: not a bound record (${problem ?? 'state is not "bound"'}); skipped`);
        continue;
      }
      this.applyBind(freezeRecord(rec as BindingRecord));
      count++;
    }
    if (!header) {
      // without the sequence number, replay the whole journal: binds and ends are idempotent
      warnings.push(`${path}: header missing or damaged; replaying the whole journal over it`);
      return 0;
    }
    if (count !== header.count) warnings.push(`${path}: holds ${count} intact records of ${header.count} written`);
    if (header.heldCount !== undefined && heldCount !== header.heldCount) warnings.push(`${path}: holds ${heldCount} intact held shares of ${header.heldCount} written`);
    if ((header.claimCount ?? 0) !== claimCount) warnings.push(`${path}: holds ${claimCount} intact claim records of ${header.claimCount ?? 0} written`);
    return header.seq;
  }

  // ---- in-memory state -------------------------------------------------------------------------

  private applyBind(r: Rec): Rec {
    const sk = shareKey(r.share.namespace, r.share.name);
    let c = this.byContainerId.get(r.container.id);
    if (!c) this.byContainerId.set(r.container.id, (c = new Map()));
    c.set(sk, r);
    let s = this.byShareKey.get(sk);
    if (!s) this.byShareKey.set(sk, (s = new Map()));
    s.set(r.container.id, r);
    return r;
  }

  private applyHold(h: Readonly<HeldShare>): Readonly<HeldShare> {
    this.heldByKey.set(shareKey(h.handle.namespace, h.handle.name), h);
    return h;
  }

  private applyClaim(r: ClaimRec): ClaimRec {
    const sk = shareKey(r.share.namespace, r.share.name);
    let c = this.byClaimUid.get(r.claim.uid);
    if (!c) this.byClaimUid.set(r.claim.uid, (c = new Map()));
    c.set(sk, r);
    let s = this.claimsByShareKey.get(sk);
    if (!s) this.claimsByShareKey.set(sk, (s = new Map()));
    s.set(r.claim.uid, r);
    return r;
  }

  private applyUnclaim(uid: string, share: { namespace: string; name: string } | undefined): ClaimRec[] {
    const c = this.byClaimUid.get(uid);
    if (!c) return [];
    const ended: ClaimRec[] = [];
    for (const [sk, r] of c) {
      if (share && sk !== shareKey(share.namespace, share.name)) continue;
      c.delete(sk);
      const s = this.claimsByShareKey.get(sk);
      s?.delete(uid);
      if (s && s.size === 0) this.claimsByShareKey.delete(sk);
      ended.push(r);
    }
    if (c.size === 0) this.byClaimUid.delete(uid);
    return ended;
  }

  private applyEnd(containerId: string, reason: string, at: number): Rec[] {
    const c = this.byContainerId.get(containerId);
    if (!c) return [];
    this.byContainerId.delete(containerId);
    const ended: Rec[] = [];
    for (const [sk, r] of c) {
      const s = this.byShareKey.get(sk);
      s?.delete(containerId);
      if (s && s.size === 0) this.byShareKey.delete(sk);
      ended.push(freezeRecord({ ...r, state: 'released', updatedAt: at, endReason: reason }));
    }
    return ended;
  }

  // ---- writing ---------------------------------------------------------------------------------

  private enqueue(entry: JournalEntry, apply: () => unknown, bindOf?: string): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.broken) return Promise.reject(this.broken);
    entry.seq = ++this.seq;
    const line = encodeLine(entry);
    if (bindOf !== undefined) this.pendingBinds.set(bindOf, (this.pendingBinds.get(bindOf) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      this.queue.push({ seq: entry.seq, line, apply, resolve, reject, bindOf });
      this.kick();
    });
  }

  private kick(): void {
    if (!this.pumping) this.pumping = this.pump();
  }

  // The only place that touches the files after open: one batch or one compaction at a time.
  private async pump(): Promise<void> {
    try {
      for (;;) {
        // compaction first: under steady load the queue is never empty
        if (this.compactWaiters.length || this.wantsAutoCompaction()) {
          await this.runCompaction();
        } else if (this.queue.length) {
          const batch = this.queue;
          this.queue = [];
          await this.writeBatch(batch);
        } else {
          break;
        }
      }
    } finally {
      this.pumping = undefined;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const buf = batch.length === 1 ? batch[0].line : Buffer.concat(batch.map((p) => p.line));
    let failure: Error | undefined = this.broken;
    if (!failure) {
      try {
        if (this.sync) {
          // O_DSYNC journal: durable when the write returns (one thread-pool hop, not two)
          await writeAll(this.journalFd, buf);
        } else {
          // a page-cache write of a few hundred bytes: cheaper inline than a thread-pool hop
          writeAllSync(this.journalFd, buf);
        }
      } catch (err) {
        failure = wrapError(`ledger ${this.stateDir}: cannot append to ${join(this.stateDir, JOURNAL)}`, err);
        try {
          fs.ftruncateSync(this.journalFd, this.journalBytes); // drop a partial append
        } catch (err2) {
          this.broken = new Error(`ledger ${this.stateDir}: journal unusable after a failed append (${failure.message}) and a failed repair: ${messageOf(err2)}`);
        }
      }
    }
    if (!failure) {
      this.journalBytes += buf.length;
      this.journalEntries += batch.length;
    }
    for (const p of batch) {
      if (p.bindOf !== undefined) {
        const n = (this.pendingBinds.get(p.bindOf) ?? 1) - 1;
        if (n > 0) this.pendingBinds.set(p.bindOf, n);
        else this.pendingBinds.delete(p.bindOf);
      }
      if (failure) p.reject(failure);
      else {
        this.appliedSeq = p.seq;
        p.resolve(p.apply());
      }
    }
  }

  private wantsAutoCompaction(): boolean {
    if (this.broken || this.closed) return false;
    return this.journalEntries >= this.nextAutoCompactEntries || this.journalBytes >= this.nextAutoCompactBytes;
  }

  private async runCompaction(): Promise<void> {
    const waiters = this.compactWaiters;
    this.compactWaiters = [];
    try {
      if (this.broken) throw this.broken;
      await this.writeSnapshot();
      this.nextAutoCompactEntries = this.compactAfterEntries;
      this.nextAutoCompactBytes = this.compactAfterBytes;
      for (const w of waiters) w.resolve();
    } catch (e) {
      const err = new Error(`ledger ${this.stateDir}: compaction failed: ${messageOf(e)}`);
      // try again only after as much more journal again, not in a tight loop
      this.nextAutoCompactEntries = this.journalEntries + this.compactAfterEntries;
      this.nextAutoCompactBytes = this.journalBytes + this.compactAfterBytes;
      if (waiters.length) for (const w of waiters) w.reject(err);
      else this.options.onError?.(err);
    }
  }

  private async writeSnapshot(): Promise<void> {
    const records = this.all();
    // appliedSeq, not seq: entries still queued must replay from the journal after this
    const held = this.held();
    const claims = this.allClaims();
    const header: SnapshotHeader = { kind: SNAPSHOT_KIND, version: 1, seq: this.appliedSeq, count: records.length, heldCount: held.length, writtenAt: Date.now() };
    // only when there are some: a snapshot without claims stays byte-for-byte what it was
    if (claims.length) header.claimCount = claims.length;
    const lines = [encodeLine(header)];
    for (const h of held) lines.push(encodeLine({ held: h }));
    for (const rec of records) lines.push(encodeLine({ rec }));
    for (const claim of claims) lines.push(encodeLine({ claim }));
    const tmp = join(this.stateDir, SNAPSHOT_TMP);
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(Buffer.concat(lines));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, join(this.stateDir, SNAPSHOT));
    await fsyncDirAsync(this.stateDir);
    // Only now may the journal go; had we crashed before this, the sequence numbers make the
    // old entries no-ops on replay.
    await ftruncate(this.journalFd, 0);
    await fdatasync(this.journalFd);
    this.journalBytes = 0;
    this.journalEntries = 0;
    this.compactions++;
  }

  private closeFds(): void {
    for (const fd of [this.journalFd, this.lockFd]) if (fd >= 0) fs.closeSync(fd);
    this.journalFd = -1;
    this.lockFd = -1;
  }

  private closedError(): Error {
    return new Error(`ledger ${this.stateDir} is closed`);
  }
}

/** pendingBinds' key for a claim: a NUL no container id has keeps the two kinds of holder apart */
const claimPending = (uid: string): string => `\u0000claim ${uid}`;

/**
 * The largest sequence number accepted from disk: 2^32 below the last safe integer, so that a
 * ledger read back can go on counting for billions of entries without losing precision.
 */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER - 2 ** 32;

function isHeader(v: unknown): v is SnapshotHeader {
  const h = v as SnapshotHeader | null;
  return typeof h === 'object' && h !== null && h.kind === SNAPSHOT_KIND && Number.isSafeInteger(h.seq) && Number.isSafeInteger(h.count);
}

function entryProblem(v: unknown): string | undefined {
  const e = v as Partial<JournalEntry> & Record<string, unknown>;
  if (typeof e !== 'object' || e === null) return 'entry is not an object';
  if (!Number.isSafeInteger(e.seq) || (e.seq as number) <= 0) return 'entry has no valid sequence number';
  if ((e.seq as number) > MAX_SEQ) return `sequence number ${e.seq} leaves no headroom (at most ${MAX_SEQ})`;
  if (e.op === 'bind') {
    const p = recordProblem(e.rec);
    if (p) return `bind entry: record ${p}`;
    return (e.rec as BindingRecord).state === 'bound' ? undefined : 'bind entry: record is not in state "bound"';
  }
  if (e.op === 'end') {
    if (typeof e.containerId !== 'string' || typeof e.reason !== 'string' || !Number.isFinite(e.at)) return 'end entry: needs containerId, reason and at';
    return undefined;
  }
  if (e.op === 'hold') {
    const p = heldProblem(e.held);
    return p ? `hold entry: ${p}` : undefined;
  }
  if (e.op === 'drop') {
    if (typeof e.namespace !== 'string' || typeof e.name !== 'string') return 'drop entry: needs namespace and name';
    if (!isDnsLabel(e.namespace) || !isDnsLabel(e.name)) return 'drop entry: namespace and name must be DNS labels';
    return undefined;
  }
  if (e.op === 'claim') {
    const p = claimRecordProblem(e.rec);
    return p ? `claim entry: record ${p}` : undefined;
  }
  if (e.op === 'unclaim') {
    if (typeof e.uid !== 'string' || !e.uid || typeof e.reason !== 'string' || !Number.isFinite(e.at)) return 'unclaim entry: needs uid, reason and at';
    const sh = e.share as { namespace?: unknown; name?: unknown } | undefined;
    if (sh !== undefined && (typeof sh !== 'object' || sh === null || typeof sh.namespace !== 'string' || typeof sh.name !== 'string')) return 'unclaim entry: share needs namespace and name';
    return undefined;
  }
  return `unknown operation ${JSON.stringify(e.op)}`;
}

function writeAllSync(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off, null);
}

function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number): void => {
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
        if (err) return reject(err);
        if (off + n < buf.length) return step(off + n);
        resolve();
      });
    };
    step(0);
  });
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function ftruncate(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
