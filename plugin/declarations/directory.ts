// Declarations from a directory of JSON/YAML files, kept current while running.
//
// Rules (also in README.md here):
// - Files ending in .json, .yaml, .yml are read; names starting with "." are skipped (editor
//   swap files, and the "..data" links of a Kubernetes ConfigMap volume).
// - A file is all or nothing: if any object in it is invalid, the file is broken. A broken file
//   keeps the declarations of its last good version (none if it never was good) and is reported,
//   so a half-written edit does not pull a share out from under running pods. Deleting the file
//   removes its declarations. A file with no objects at all counts as broken for the same reason
//   (an editor truncating before writing); delete it instead.
// - The same namespace/name in two places: the first by sorted path (then order in file) wins,
//   the other is reported.
// - A missing directory is reported and counts as empty; it is picked up once created.
// - Changes are seen through fs.watch (debounced) and, as a fallback for filesystems where watch
//   misses events, a periodic rescan.
// - No file can stall the agent (the files are input from whoever may write the directory):
//   only regular files are read, never opened blocking, never from /proc or /sys, at most
//   maxFileBytes of them (files/regular-file.ts); parsing has a budget (parse.ts). A FIFO, device
//   or dangling link in place of a file is reported and the file keeps its last good declarations.
// - What is kept of a file is its declarations and a digest of its bytes (to skip parsing it again
//   while unchanged), never its text; and the directory as a whole is capped (maxFiles, maxTotalBytes):
//   past either, the scan is refused with a problem naming the cap, and every file keeps the
//   declarations it had (many files just under the per-file limit crashed the agent, issue 22.2).
// - Scans are off the request path: the first one (in start(), before the agent serves) is
//   synchronous; later ones read through the thread pool and parse in a worker thread, and swap
//   the merged set in at the end, so a lookup never waits for a scan and never sees half of one.
import type * as Crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FileReadError, readRegularFile, readRegularFileSync } from '../files/regular-file';
import { DEFAULT_PARSE_BUDGET, parseDeclarationText, type ParseBudget } from './parse';
import type { ParseReply, ParseRequest } from './parse-worker';
import type { Limits, ShareDeclaration } from '../model/types';
import { messageOf } from '../model/errors';
import { shareKey } from '../model/names';
import { DeclarationError, validateShareMemory } from './sharememory';
import {
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  ListenerSet,
  diffDeclarations,
} from './store';

export const DECLARATION_EXTENSIONS = ['.json', '.yaml', '.yml'];
// node:crypto is loaded at the first file read: a node with no declaration files never loads it
let cryptoModule: typeof Crypto | undefined;
const digestOf = (bytes: Buffer): string => (cryptoModule ??= require('node:crypto') as typeof Crypto).createHash('sha256').update(bytes).digest('base64');
/** Most declaration files read in one scan: a directory of shares is a few files (or one per share). */
export const MAX_DECLARATION_FILES = 1000;
/**
 * Most bytes read in one scan, all files together: 8 MiB is some 8,000 plain declarations. What is
 * kept is their parsed form (a few hundred bytes each, more with long namespace lists), and a
 * scan holds one file's text at a time, so the agent's 128 MiB heap is never at stake.
 */
export const MAX_DECLARATION_BYTES = 8 * 1024 * 1024;

export interface DirectoryOptions {
  limits: Limits;
  /** periodic rescan as a fallback to fs.watch; 0 disables (default 5000) */
  rescanIntervalMs?: number;
  /** use fs.watch (default true); without it only the periodic rescan sees changes */
  watch?: boolean;
  /** wait this long after a watch event before scanning, to let writes settle (default 200) */
  debounceMs?: number;
  /** larger files are refused, counted on what is read (default 1 MiB) */
  maxFileBytes?: number;
  /** a scan of more files is refused, keeping the declarations loaded before (default MAX_DECLARATION_FILES) */
  maxFiles?: number;
  /** a scan reading more bytes in all is refused, keeping the declarations loaded before (default MAX_DECLARATION_BYTES) */
  maxTotalBytes?: number;
  /** the parser's budget per file (default DEFAULT_PARSE_BUDGET) */
  parseBudget?: Partial<ParseBudget>;
  /** a file whose parse takes longer than this in the worker is refused (default 10000 ms) */
  parseTimeoutMs?: number;
  /** where a throwing listener's error goes (default: process.emitWarning) */
  onListenerError?: (err: unknown) => void;
}

interface FileState {
  /** a digest of the bytes last read (not the text: that is what ran the agent out of heap); undefined when it could not be read, so the next read is parsed */
  digest: string | undefined;
  /** the declarations of the last good version of the file */
  decls: ShareDeclaration[];
  /** why the current version is broken, if it is */
  error?: string;
}

type ProblemListener = (problem: DeclarationProblem) => void;

export class DeclarationsDirectory implements DeclarationSource {
  readonly name: string;
  private readonly limits: Limits;
  private readonly rescanIntervalMs: number;
  private readonly debounceMs: number;
  private readonly watch: boolean;
  private readonly maxFileBytes: number;
  private readonly maxFiles: number;
  private readonly maxTotalBytes: number;
  private readonly listeners: ListenerSet;
  private readonly problemListeners = new Set<ProblemListener>();
  private files = new Map<string, FileState>();
  private merged = new Map<string, ShareDeclaration>();
  private dirProblem: string | undefined;
  private duplicates: string[] = [];
  /** messages already passed to problem listeners, so a rescan does not repeat them */
  private reported = new Set<string>();
  private watcher: fs.FSWatcher | undefined;
  private watchedIno: number | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private interval: NodeJS.Timeout | undefined;
  private running = false;
  private readonly budget: ParseBudget;
  private readonly worker: ParseWorker;
  /** the scan in progress, and one queued behind it (shared by everyone asking meanwhile) */
  private active: Promise<unknown> = Promise.resolve();
  private queued: Promise<DeclarationChange[]> | undefined;

  constructor(readonly dir: string, options: DirectoryOptions) {
    this.name = `files:${dir}`;
    this.limits = options.limits;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 5000;
    this.debounceMs = options.debounceMs ?? 200;
    this.watch = options.watch ?? true;
    this.maxFileBytes = options.maxFileBytes ?? 1024 * 1024;
    this.maxFiles = options.maxFiles ?? MAX_DECLARATION_FILES;
    this.maxTotalBytes = options.maxTotalBytes ?? MAX_DECLARATION_BYTES;
    this.listeners = new ListenerSet(options.onListenerError);
    this.budget = { ...DEFAULT_PARSE_BUDGET, ...options.parseBudget };
    this.worker = new ParseWorker(options.parseTimeoutMs ?? 10000);
  }

  /**
   * Whether `dir` can be listed, by the same call and the same reading of its errors as the first
   * scan: check-config asks this, so it and `run` cannot disagree about the directory.
   */
  static check(dir: string): { problem: DirectoryListProblem; error: unknown } | undefined {
    try {
      fs.readdirSync(dir);
      return undefined;
    } catch (error) {
      return { problem: listProblem(error), error };
    }
  }

  /** Scan once now (synchronously: the agent serves nothing yet), then keep watching until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.scanSync();
    if (this.rescanIntervalMs > 0) {
      this.interval = setInterval(() => void this.rescan(), this.rescanIntervalMs);
      this.interval.unref();
    }
  }

  stop(): void {
    this.running = false;
    if (this.interval) clearInterval(this.interval);
    if (this.debounce) clearTimeout(this.debounce);
    this.interval = this.debounce = undefined;
    this.closeWatcher();
    this.worker.close();
  }

  list(): ShareDeclaration[] {
    return [...this.merged.values()];
  }

  get(namespace: string, name: string): ShareDeclaration | undefined {
    return this.merged.get(shareKey(namespace, name));
  }

  errors(): DeclarationProblem[] {
    return this.currentProblems().map((message) => ({ source: this.name, message }));
  }

  onChange(listener: DeclarationChangeListener): () => void {
    return this.listeners.add(listener);
  }

  /** Called once for each new problem (a file breaking, a duplicate, the directory missing). */
  onProblem(listener: ProblemListener): () => void {
    const entry: ProblemListener = (p) => listener(p);
    this.problemListeners.add(entry);
    return () => void this.problemListeners.delete(entry);
  }

  /**
   * Read the directory now, off the event loop; resolves with the changes (also emitted). A call
   * during a scan queues one more scan after it (shared by all callers meanwhile), so a change
   * made during a scan is never missed.
   */
  rescan(): Promise<DeclarationChange[]> {
    if (this.queued) return this.queued;
    const run = async (): Promise<DeclarationChange[]> => {
      await this.active;
      this.queued = undefined;
      const scan = this.scanAsync();
      this.active = scan.catch(() => undefined);
      return scan;
    };
    this.queued = run();
    return this.queued;
  }

  /** The same, synchronous and in this thread: for the first scan, before any lookup is served. */
  scanSync(): DeclarationChange[] {
    return runSync(this.scan({
      list: (dir) => fs.readdirSync(dir),
      read: (file) => readRegularFileSync(file, this.maxFileBytes),
      parse: (file, text) => parseDeclarationText(file, text, this.budget),
    }));
  }

  private scanAsync(): Promise<DeclarationChange[]> {
    return runAsync(this.scan({
      list: (dir) => fs.promises.readdir(dir),
      read: (file) => readRegularFile(file, this.maxFileBytes),
      parse: (file, text) => this.worker.parse({ file, text, budget: this.budget }),
    }));
  }

  /** One scan, written once for both readers: each I/O step is yielded, and the driver (runSync, runAsync) hands back its result. */
  private *scan(reader: ScanReader): Generator<unknown, DeclarationChange[], unknown> {
    let listed: ListResult;
    try {
      listed = { entries: yield* step(reader.list(this.dir)) };
    } catch (err) {
      listed = { error: err ?? new Error('readdir failed') };
    }
    const names = this.readDir(listed);
    if (names !== undefined && names.length > this.maxFiles) {
      this.dirProblem = `${this.dir}: holds ${names.length} declaration files, more than the ${this.maxFiles} read; nothing in it is read again and every file keeps the declarations loaded before (merge declarations into fewer files)`;
      return this.finishScan();
    }
    if (names !== undefined) {
      const next = new Map<string, FileState>();
      let total = 0;
      for (const name of names) {
        const file = path.join(this.dir, name);
        const prev = this.files.get(file);
        let state: FileState | undefined;
        try {
          const bytes = yield* step(reader.read(file));
          total += bytes.length;
          if (total > this.maxTotalBytes) {
            this.dirProblem = `${this.dir}: its declaration files hold more than the ${this.maxTotalBytes} bytes read in all (over the limit at ${name}); every file keeps the declarations loaded before (remove or shrink files)`;
            return this.finishScan();
          }
          const digest = digestOf(bytes);
          if (prev && prev.digest === digest) {
            state = prev;
          } else {
            try {
              state = { digest, decls: this.validate(file, yield* step(reader.parse(file, bytes.toString('utf8')))) };
            } catch (e) {
              state = this.parseFailed(file, prev, digest, e);
            }
          }
        } catch (err) {
          state = this.unread(file, prev, err);
        }
        if (state) next.set(file, state);
      }
      this.files = next;
    }
    return this.finishScan();
  }

  private finishScan(): DeclarationChange[] {
    const changes = this.merge();
    this.reportNewProblems();
    this.listeners.emit(changes);
    if (this.running && this.watch) this.ensureWatcher();
    return changes;
  }

  /** Candidate file names, sorted; undefined if the directory could not be read (keep state). */
  private readDir(listed: ListResult): string[] | undefined {
    if ('error' in listed) {
      const e = listed.error;
      switch (listProblem(e)) {
        case 'missing':
          this.dirProblem = `${this.dir}: declarations directory does not exist; no shares are declared until it is created`;
          return [];
        case 'not-directory':
          this.dirProblem = `${this.dir}: declarations directory is not a directory; no shares are declared from it`;
          return [];
        case 'unreadable':
          // EACCES, EIO...: possibly passing; keep what was loaded rather than dropping shares
          this.dirProblem = `${this.dir}: cannot read declarations directory (${messageOf(e)}); keeping the declarations loaded before`;
          return undefined;
      }
    }
    this.dirProblem = undefined;
    return listed.entries
      .filter((n) => !n.startsWith('.') && DECLARATION_EXTENSIONS.includes(path.extname(n).toLowerCase()))
      .sort();
  }

  /** A file that could not be read: gone, ignored (a directory), or broken keeping its last good version. */
  private unread(file: string, prev: FileState | undefined, err: unknown): FileState | undefined {
    if (err instanceof FileReadError) {
      if (err.refusal === 'missing') return undefined; // removed (also while scanning)
      if (err.refusal === 'not-regular' && isDirectory(file)) return undefined; // "x.yaml/" is not a file
    }
    const reason = err instanceof FileReadError ? err.message : `${file}: cannot read (${messageOf(err)})`;
    return { digest: undefined, decls: prev?.decls ?? [], error: `${reason}${keptText(prev)}` };
  }

  private parseFailed(file: string, prev: FileState | undefined, digest: string, e: unknown): FileState {
    const reason = e instanceof DeclarationError ? e.message : `${file}: ${messageOf(e)}`;
    return { digest, decls: prev?.decls ?? [], error: `${reason}${keptText(prev)}` };
  }

  private validate(file: string, objects: unknown[]): ShareDeclaration[] {
    if (objects.length === 0) {
      throw new DeclarationError(file, '', 'contains no ShareMemory objects (delete the file to remove its declarations)');
    }
    return objects.map((obj, i) => {
      const where = objects.length > 1 ? `${file} (object ${i + 1} of ${objects.length})` : file;
      return { ...validateShareMemory(obj, where, this.limits), origin: file };
    });
  }

  private merge(): DeclarationChange[] {
    const next = new Map<string, ShareDeclaration>();
    const duplicates: string[] = [];
    for (const file of [...this.files.keys()].sort()) {
      for (const decl of this.files.get(file)!.decls) {
        const key = shareKey(decl.namespace, decl.name);
        const first = next.get(key);
        if (first) {
          duplicates.push(`${file}: ShareMemory ${key}: already declared in ${first.origin}; this one is ignored`);
        } else {
          next.set(key, decl);
        }
      }
    }
    const changes = diffDeclarations(this.merged, next);
    this.merged = next;
    this.duplicates = duplicates;
    return changes;
  }

  private currentProblems(): string[] {
    const fileErrors = [...this.files.values()].flatMap((f) => (f.error ? [f.error] : []));
    return [...(this.dirProblem ? [this.dirProblem] : []), ...fileErrors, ...this.duplicates];
  }

  private reportNewProblems(): void {
    const now = new Set(this.currentProblems());
    for (const message of now) {
      if (this.reported.has(message)) continue;
      for (const l of [...this.problemListeners]) {
        try {
          l({ source: this.name, message });
        } catch {
          // a failing problem listener must not stop the scan
        }
      }
    }
    this.reported = now; // a problem that goes away and comes back is reported again
  }

  private scheduleScan(): void {
    if (!this.running) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.rescan();
    }, this.debounceMs);
    this.debounce.unref();
  }

  /** Watch the directory if it exists; re-watch if it was replaced (removed and created again). */
  private ensureWatcher(): void {
    let ino: number | undefined;
    try {
      const st = fs.statSync(this.dir);
      ino = st.isDirectory() ? st.ino : undefined;
    } catch {
      ino = undefined;
    }
    if (this.watcher && ino === this.watchedIno) return;
    this.closeWatcher();
    if (ino === undefined) return;
    try {
      const w = fs.watch(this.dir, { persistent: false }, () => this.scheduleScan());
      w.on('error', () => {
        // e.g. the directory was removed; the periodic rescan re-attaches
        if (this.watcher === w) this.closeWatcher();
        this.scheduleScan();
      });
      this.watcher = w;
      this.watchedIno = ino;
    } catch {
      // watch not possible (inotify limits...): the periodic rescan still works
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.watchedIno = undefined;
  }
}

/** The I/O of one scan: synchronous (the first scan), or through the thread pool and the parse worker. */
interface ScanReader {
  list(dir: string): string[] | Promise<string[]>;
  read(file: string): Buffer | Promise<Buffer>;
  parse(file: string, text: string): unknown[] | Promise<unknown[]>;
}

type ListResult = { entries: string[] } | { error: unknown };

/** One I/O step of a scan: yields the reader's answer (a value or a promise), gets it back settled. */
function* step<T>(answer: T | Promise<T>): Generator<T | Promise<T>, T, unknown> {
  return (yield answer) as T; // the drivers send back what was yielded, awaited
}

function runSync<R>(scan: Generator<unknown, R, unknown>): R {
  let r = scan.next();
  while (!r.done) {
    // a synchronous reader never answers with a promise; going on without awaiting it would be wrong
    if (r.value instanceof Promise) throw new Error('a synchronous scan was answered with a promise');
    r = scan.next(r.value);
  }
  return r.value;
}

async function runAsync<R>(scan: Generator<unknown, R, unknown>): Promise<R> {
  let r = scan.next();
  while (!r.done) {
    let settled: { value: unknown } | { error: unknown };
    try {
      settled = { value: await r.value };
    } catch (error) {
      settled = { error };
    }
    // a rejection is thrown where the scan yielded, into its own try/catch
    r = 'error' in settled ? scan.throw(settled.error) : scan.next(settled.value);
  }
  return r.value;
}

/** What a failed listing of the declarations directory means. */
export type DirectoryListProblem = 'missing' | 'not-directory' | 'unreadable';

function listProblem(e: unknown): DirectoryListProblem {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' ? 'missing' : code === 'ENOTDIR' ? 'not-directory' : 'unreadable';
}

function keptText(prev: FileState | undefined): string {
  return prev?.decls.length ? ` (keeping its last good version: ${prev.decls.map((d) => shareKey(d.namespace, d.name)).join(', ')})` : '';
}

function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/**
 * One worker thread that parses files, started on first use and not keeping the process alive.
 * A parse that does not answer within timeoutMs ends the worker (a new one starts for the next
 * file) and the file is refused: the budget should make that impossible, this is the backstop.
 */
class ParseWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { file: string; resolve: (v: unknown[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly timeoutMs: number) {}

  parse(req: Omit<ParseRequest, 'id'>): Promise<unknown[]> {
    const worker = this.ensure();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.failAll(new Error(`parsing did not finish within ${this.timeoutMs} ms; the file is refused`)), this.timeoutMs);
      timer.unref();
      this.pending.set(id, { file: req.file, resolve, reject, timer });
      worker.ref(); // a parse being awaited keeps the process alive; an idle worker does not
      worker.postMessage({ id, ...req } satisfies ParseRequest);
    });
  }

  close(): void {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the declarations directory was stopped'));
    if (w) void w.terminate();
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'parse-worker.js'));
    w.on('message', (reply: ParseReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) w.unref();
      clearTimeout(p.timer);
      if ('objects' in reply) p.resolve(reply.objects);
      else if ('origin' in reply.error) p.reject(new DeclarationError(reply.error.origin, reply.error.field, reply.error.reason));
      else p.reject(new Error(reply.error.message));
    });
    const gone = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      this.failAll(err);
    };
    w.on('error', (err) => gone(new Error(`the parse worker failed: ${err.message}`, { cause: err })));
    w.on('exit', (code) => gone(new Error(`the parse worker exited (code ${code})`)));
    w.unref(); // after the listeners: adding a 'message' listener refs the worker again
    this.worker = w;
    return w;
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
    if (this.worker) {
      const w = this.worker;
      this.worker = undefined;
      void w.terminate();
    }
  }
}
