// The set of declared shares the service sees, merged from sources (the declarations directory
// now; a Kubernetes watcher later). Listeners learn what was added, changed or removed.
import type { ShareDeclaration } from '../model/types';
import { shareKey } from '../model/names';

/** One difference between two declaration sets. `removed` carries the last declaration known. */
export type DeclarationChange =
  | { kind: 'added'; declaration: ShareDeclaration }
  | { kind: 'changed'; declaration: ShareDeclaration; previous: ShareDeclaration }
  | { kind: 'removed'; declaration: ShareDeclaration };

export type DeclarationChangeListener = (changes: readonly DeclarationChange[]) => void;

/** Something wrong with a source's input: a broken file, a duplicate, a missing directory. */
export interface DeclarationProblem {
  /** the source's name, e.g. "files:/etc/nri-memshare/shares.d" */
  source: string;
  /** names the file (or object), the field and the reason */
  message: string;
}

/**
 * A ShareMemory the cluster holds that this node refuses: valid for the CRD, but outside this
 * node's own limits (or past its budget of declarations). Pods the object grants are told why
 * ("declared but refused on this node"), and the node says so in the object's status.
 */
export interface RefusedDeclaration {
  namespace: string;
  name: string;
  /** the field and why, e.g. `spec.storage: "64Mi" is 64 MiB, outside the allowed range 128 MiB to 512 GiB` */
  reason: string;
  /** metadata.generation of the object judged; absent when the object did not say */
  generation?: number;
  /**
   * The other namespaces the object grants (allowed and read-only), as far as they could be read
   * and kept; absent: unknown, and only the owner's namespace learns of the refusal (anyone else
   * gets the answer for a share that does not exist: docs/security.md).
   */
  grants?: readonly string[];
}

/** A refusal appeared ('added'), changed, or went ('removed': fixed, declared elsewhere, or deleted). */
export type RefusalChangeListener = (share: { namespace: string; name: string }, kind: 'added' | 'changed' | 'removed') => void;

/** A provider of declarations. Within one source, namespace/name is unique. */
export interface DeclarationSource {
  readonly name: string;
  list(): ShareDeclaration[];
  errors(): DeclarationProblem[];
  /** called after the source's declarations changed; returns an unsubscribe function */
  onChange(listener: DeclarationChangeListener): () => void;
  /** sources that can tell a refused object from an absent one (Kubernetes) */
  refused?(namespace: string, name: string): RefusedDeclaration | undefined;
  refusals?(): RefusedDeclaration[];
  onRefusalChange?(listener: RefusalChangeListener): () => void;
}

/** What the memshare service reads: the merged, current declarations. */
export interface DeclarationStore {
  get(namespace: string, name: string): ShareDeclaration | undefined;
  list(): ShareDeclaration[];
  /** called with every non-empty set of changes; returns an unsubscribe function */
  onChange(listener: DeclarationChangeListener): () => void;
  errors(): DeclarationProblem[];
  /** the refusal of namespace/name when no source declares it and one refuses it */
  refused(namespace: string, name: string): RefusedDeclaration | undefined;
  /** every such refusal */
  refusals(): RefusedDeclaration[];
  /** called when a refusal appears, changes or goes; returns an unsubscribe function */
  onRefusalChange(listener: RefusalChangeListener): () => void;
}

export interface StoreOptions {
  /** where a throwing listener's error goes (default: process.emitWarning) */
  onListenerError?: (err: unknown) => void;
}

/** True if two declarations of one share are equal (origin included, so a move is a change). */
export function sameDeclaration(a: ShareDeclaration, b: ShareDeclaration): boolean {
  return (
    a.sizeBytes === b.sizeBytes &&
    a.origin === b.origin &&
    (a.allowExec ?? false) === (b.allowExec ?? false) &&
    sameList(a.allowedNamespaces, b.allowedNamespaces) &&
    sameList(a.readOnlyNamespaces ?? [], b.readOnlyNamespaces ?? [])
  );
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The changes that turn `before` into `after` (maps keyed by "namespace/name"). */
export function diffDeclarations(
  before: ReadonlyMap<string, ShareDeclaration>,
  after: ReadonlyMap<string, ShareDeclaration>,
): DeclarationChange[] {
  const changes: DeclarationChange[] = [];
  for (const [key, previous] of before) {
    const now = after.get(key);
    if (!now) changes.push({ kind: 'removed', declaration: previous });
    else if (!sameDeclaration(previous, now)) changes.push({ kind: 'changed', declaration: now, previous });
  }
  for (const [key, declaration] of after) {
    if (!before.has(key)) changes.push({ kind: 'added', declaration });
  }
  return changes;
}

/** Calls listeners one by one; a throwing listener neither stops the others nor the caller. */
export class ListenerSet {
  private readonly listeners = new Set<DeclarationChangeListener>();
  constructor(private readonly onError: (err: unknown) => void = defaultListenerError) {}

  add(listener: DeclarationChangeListener): () => void {
    // wrap so one function can be subscribed twice and unsubscribed independently
    const entry: DeclarationChangeListener = (c) => listener(c);
    this.listeners.add(entry);
    return () => void this.listeners.delete(entry);
  }

  emit(changes: readonly DeclarationChange[]): void {
    if (changes.length === 0) return;
    for (const l of [...this.listeners]) {
      try {
        l(changes);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}

function defaultListenerError(err: unknown): void {
  process.emitWarning(`declaration change listener failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
}

/**
 * Merges sources in the order given: when two sources declare the same namespace/name, the
 * earlier source wins and the clash is reported by errors().
 */
export class MergedDeclarationStore implements DeclarationStore {
  private readonly sources: DeclarationSource[] = [];
  private readonly unsubscribe: Array<() => void> = [];
  private readonly listeners: ListenerSet;
  private readonly refusalListeners = new Set<RefusalChangeListener>();
  private readonly onListenerError: (err: unknown) => void;
  private merged = new Map<string, ShareDeclaration>();
  private clashes: DeclarationProblem[] = [];

  constructor(sources: DeclarationSource[] = [], options: StoreOptions = {}) {
    this.listeners = new ListenerSet(options.onListenerError);
    this.onListenerError = options.onListenerError ?? defaultListenerError;
    for (const s of sources) this.addSource(s);
  }

  /** Add a source after the existing ones (lowest priority); its declarations count at once. */
  addSource(source: DeclarationSource): void {
    this.sources.push(source);
    this.unsubscribe.push(source.onChange(() => this.refresh()));
    if (source.onRefusalChange) {
      this.unsubscribe.push(source.onRefusalChange((share, kind) => {
        // a refusal of a share another source declares is not in force
        if (!this.merged.has(shareKey(share.namespace, share.name))) this.emitRefusal(share, kind);
      }));
    }
    this.refresh();
  }

  refused(namespace: string, name: string): RefusedDeclaration | undefined {
    if (this.merged.has(shareKey(namespace, name))) return undefined;
    for (const s of this.sources) {
      const r = s.refused?.(namespace, name);
      if (r) return r;
    }
    return undefined;
  }

  refusals(): RefusedDeclaration[] {
    const out = new Map<string, RefusedDeclaration>();
    for (const s of this.sources) {
      for (const r of s.refusals?.() ?? []) {
        const key = shareKey(r.namespace, r.name);
        if (!this.merged.has(key) && !out.has(key)) out.set(key, r);
      }
    }
    return [...out.values()];
  }

  onRefusalChange(listener: RefusalChangeListener): () => void {
    const entry: RefusalChangeListener = (s, k) => listener(s, k);
    this.refusalListeners.add(entry);
    return () => void this.refusalListeners.delete(entry);
  }

  private emitRefusal(share: { namespace: string; name: string }, kind: 'added' | 'changed' | 'removed'): void {
    for (const l of [...this.refusalListeners]) {
      try {
        l({ namespace: share.namespace, name: share.name }, kind);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  get(namespace: string, name: string): ShareDeclaration | undefined {
    return this.merged.get(shareKey(namespace, name));
  }

  list(): ShareDeclaration[] {
    return [...this.merged.values()];
  }

  onChange(listener: DeclarationChangeListener): () => void {
    return this.listeners.add(listener);
  }

  errors(): DeclarationProblem[] {
    return [...this.sources.flatMap((s) => s.errors()), ...this.clashes];
  }

  /** Recompute the merged view from the sources now; emits and returns the changes. */
  refresh(): DeclarationChange[] {
    const next = new Map<string, ShareDeclaration>();
    const clashes: DeclarationProblem[] = [];
    for (const source of this.sources) {
      for (const decl of source.list()) {
        const key = shareKey(decl.namespace, decl.name);
        const first = next.get(key);
        if (first) {
          clashes.push({
            source: source.name,
            message: `${decl.origin}: ShareMemory ${key}: also declared in ${first.origin}, which takes precedence; this one is ignored`,
          });
          continue;
        }
        next.set(key, decl);
      }
    }
    const changes = diffDeclarations(this.merged, next);
    this.merged = next;
    this.clashes = clashes;
    this.listeners.emit(changes);
    // a share declared here now hides a source's refusal of it, and one no longer declared shows it
    if (this.refusalListeners.size > 0) {
      for (const c of changes) {
        if (c.kind === 'changed') continue;
        const d = c.declaration;
        if (this.sources.some((s) => s.refused?.(d.namespace, d.name))) this.emitRefusal(d, c.kind === 'added' ? 'removed' : 'added');
      }
    }
    return changes;
  }

  /** Stop listening to the sources (does not stop the sources themselves). */
  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }
}
