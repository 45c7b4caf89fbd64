// A declaration source held in memory: for tests, and for callers that build declarations
// themselves (e.g. a Kubernetes watcher can feed one).
import type { ShareDeclaration } from '../model/types';
import { shareKey } from '../model/names';
import {
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  ListenerSet,
  diffDeclarations,
} from './store';

export class MemoryDeclarationSource implements DeclarationSource {
  private decls = new Map<string, ShareDeclaration>();
  private problems: DeclarationProblem[] = [];
  private readonly listeners: ListenerSet;

  constructor(readonly name: string, initial: ShareDeclaration[] = [], onListenerError?: (err: unknown) => void) {
    this.listeners = new ListenerSet(onListenerError);
    this.decls = toMap(initial);
  }

  list(): ShareDeclaration[] {
    return [...this.decls.values()];
  }

  errors(): DeclarationProblem[] {
    return [...this.problems];
  }

  onChange(listener: DeclarationChangeListener): () => void {
    return this.listeners.add(listener);
  }

  /** Replace the whole set (later duplicates of a namespace/name are dropped); emits the changes. */
  set(decls: ShareDeclaration[], problems: string[] = []): DeclarationChange[] {
    const next = toMap(decls);
    const changes = diffDeclarations(this.decls, next);
    this.decls = next;
    this.problems = problems.map((message) => ({ source: this.name, message }));
    this.listeners.emit(changes);
    return changes;
  }
}

function toMap(decls: ShareDeclaration[]): Map<string, ShareDeclaration> {
  const m = new Map<string, ShareDeclaration>();
  for (const d of decls) {
    const key = shareKey(d.namespace, d.name);
    if (!m.has(key)) m.set(key, d);
  }
  return m;
}
