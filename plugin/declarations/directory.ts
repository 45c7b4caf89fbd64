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
//   misses events, a periodic rescan. Scans are synchronous: the directory is small, and a scan
//   never interleaves with a lookup.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Limits, ShareDeclaration } from '../model/types';
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

export interface DirectoryOptions {
  limits: Limits;
  /** periodic rescan as a fallback to fs.watch; 0 disables (default 5000) */
  rescanIntervalMs?: number;
  /** use fs.watch (default true); without it only the periodic rescan sees changes */
  watch?: boolean;
  /** wait this long after a watch event before scanning, to let writes settle (default 200) */
  debounceMs?: number;
  /** larger files are refused (default 1 MiB) */
  maxFileBytes?: number;
  /** where a throwing listener's error goes (default: process.emitWarning) */
  onListenerError?: (err: unknown) => void;
}

interface FileState {
  /** the text last read; undefined when it could not be read, so the next read is parsed */
  content: string | undefined;
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

  constructor(readonly dir: string, options: DirectoryOptions) {
    this.name = `files:${dir}`;
    this.limits = options.limits;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 5000;
    this.debounceMs = options.debounceMs ?? 200;
    this.watch = options.watch ?? true;
    this.maxFileBytes = options.maxFileBytes ?? 1024 * 1024;
    this.listeners = new ListenerSet(options.onListenerError);
  }

  /** Scan once now, then keep watching until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.rescan();
    if (this.rescanIntervalMs > 0) {
      this.interval = setInterval(() => this.rescan(), this.rescanIntervalMs);
      this.interval.unref();
    }
  }

  stop(): void {
    this.running = false;
    if (this.interval) clearInterval(this.interval);
    if (this.debounce) clearTimeout(this.debounce);
    this.interval = this.debounce = undefined;
    this.closeWatcher();
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

  /** Read the directory now; emits and returns the changes. */
  rescan(): DeclarationChange[] {
    const names = this.readDir();
    if (names !== undefined) {
      const next = new Map<string, FileState>();
      for (const name of names) {
        const file = path.join(this.dir, name);
        const state = this.loadFile(file, this.files.get(file));
        if (state) next.set(file, state);
      }
      this.files = next;
    }
    const changes = this.merge();
    this.reportNewProblems();
    this.listeners.emit(changes);
    if (this.running && this.watch) this.ensureWatcher();
    return changes;
  }

  /** Candidate file names, sorted; undefined if the directory could not be read (keep state). */
  private readDir(): string[] | undefined {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        this.dirProblem = `${this.dir}: declarations directory does not exist; no shares are declared until it is created`;
        return [];
      }
      if (code === 'ENOTDIR') {
        this.dirProblem = `${this.dir}: declarations directory is not a directory; no shares are declared from it`;
        return [];
      }
      // EACCES, EIO...: possibly passing; keep what was loaded rather than dropping shares
      this.dirProblem = `${this.dir}: cannot read declarations directory (${errText(e)}); keeping the declarations loaded before`;
      return undefined;
    }
    this.dirProblem = undefined;
    return entries
      .filter((n) => !n.startsWith('.') && DECLARATION_EXTENSIONS.includes(path.extname(n).toLowerCase()))
      .sort();
  }

  /** The new state of one file, or undefined if it is gone or not a regular file. */
  private loadFile(file: string, prev: FileState | undefined): FileState | undefined {
    const broken = (error: string): FileState => ({ content: undefined, decls: prev?.decls ?? [], error });
    let content: string;
    try {
      const st = fs.statSync(file);
      if (!st.isFile()) return undefined;
      if (st.size > this.maxFileBytes) {
        return broken(`${file}: file is ${st.size} bytes, larger than the ${this.maxFileBytes} bytes allowed`);
      }
      content = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // removed while scanning
      return broken(`${file}: cannot read (${errText(e)})`);
    }
    if (prev && prev.content === content) return prev;
    try {
      return { content, decls: this.parseFile(file, content) };
    } catch (e) {
      const reason = e instanceof DeclarationError ? e.message : `${file}: ${errText(e)}`;
      const kept = prev?.decls.length ? ` (keeping its last good version: ${prev.decls.map((d) => shareKey(d.namespace, d.name)).join(', ')})` : '';
      return { content, decls: prev?.decls ?? [], error: `${reason}${kept}` };
    }
  }

  private parseFile(file: string, content: string): ShareDeclaration[] {
    const objects = file.endsWith('.json') ? parseJson(file, content) : parseYaml(file, content);
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
      this.rescan();
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

/** One object, an array of objects, or a List ({"kind": "...List", "items": [...]}). */
function unwrapList(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) return o.items;
  }
  return [v];
}

function parseJson(file: string, content: string): unknown[] {
  if (content.trim() === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(content);
  } catch (e) {
    throw new DeclarationError(file, '', `not valid JSON: ${errText(e)}`);
  }
  return unwrapList(v);
}

function parseYaml(file: string, content: string): unknown[] {
  const docs = parseAllDocuments(content);
  if (!Array.isArray(docs)) return []; // an empty stream
  const out: unknown[] = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      const where = docs.length > 1 ? ` (document ${i + 1})` : '';
      throw new DeclarationError(file, '', `not valid YAML${where}: ${doc.errors[0].message.split('\n')[0]}`);
    }
    const v: unknown = doc.toJS({ maxAliasCount: 100 });
    if (v !== null && v !== undefined) out.push(...unwrapList(v)); // "---" with nothing after it
  });
  return out;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
