// The declarations a Kubernetes source keeps, within a byte budget. Tenants create ShareMemory
// objects in their own namespaces, as many and as large as the API server allows; every node's
// agent keeps what they declare. So what is kept is counted, and past the budget an object is left
// out (reported by name) instead of the agent running out of heap.
//
// Namespace names are interned: a cluster's objects grant the same namespaces over and over, and
// each distinct name is then stored (and counted) once. What is counted is an estimate of V8's
// memory for the kept data: per declaration a fixed part, its own strings and one pointer per
// grant; per distinct namespace name, the string and its pool entry.
import type { ShareDeclaration } from '../model/types';

/** Default budget: the launcher gives the agent a 128 MiB heap, and a relist holds two sets for a moment. */
export const MAX_KEPT_DECLARATION_BYTES = 32 * 1024 * 1024;

// the object, its map entry and key, and the arrays' headers
const DECLARATION_OVERHEAD = 320;
const POINTER = 8;
// a string's header, and the pool's Map entry with its record
const STRING_OVERHEAD = 24;
const POOL_ENTRY = 80;

const stringBytes = (s: string) => STRING_OVERHEAD + s.length * (/[^\x00-\xff]/.test(s) ? 2 : 1);

interface Pooled {
  value: string;
  refs: number;
}

export class KeptDeclarations {
  private readonly decls = new Map<string, ShareDeclaration>();
  private readonly pool = new Map<string, Pooled>();
  private used = 0;

  constructor(
    readonly maxBytes: number,
    /** the set this one replaces (a relist): its strings are reused, not stored twice */
    private previous?: KeptDeclarations,
  ) {}

  /** Lets go of the set this one replaced (else every relist would keep the one before alive). */
  settle(): void {
    this.previous = undefined;
  }

  get size(): number {
    return this.decls.size;
  }

  /** The estimated bytes kept. */
  get bytes(): number {
    return this.used;
  }

  get(key: string): ShareDeclaration | undefined {
    return this.decls.get(key);
  }

  values(): IterableIterator<ShareDeclaration> {
    return this.decls.values();
  }

  map(): ReadonlyMap<string, ShareDeclaration> {
    return this.decls;
  }

  /**
   * Keeps `d` under `key` (replacing what was there), or returns how many bytes it would take when
   * that is past the budget (nothing is changed then). `reuse` is kept instead of `d` when given
   * (the same declaration already held elsewhere).
   */
  set(key: string, d: ShareDeclaration, reuse?: ShareDeclaration): true | number {
    const old = this.decls.get(key);
    const need = this.costOf(d);
    const freed = old ? this.freedBy(old, d) : 0;
    if (this.used - freed + need > this.maxBytes) return need;
    if (old) this.release(old);
    const kept = reuse ?? this.intern(d);
    if (reuse) this.hold(reuse);
    this.decls.set(key, kept);
    this.used += this.ownCost(kept);
    return true;
  }

  delete(key: string): boolean {
    const old = this.decls.get(key);
    if (!old) return false;
    this.release(old);
    this.decls.delete(key);
    return true;
  }

  /** What keeping d would add: its own part, and namespace names not pooled yet. */
  private costOf(d: ShareDeclaration): number {
    let n = this.ownCost(d);
    for (const ns of grants(d)) if (!this.pool.has(ns)) n += stringBytes(ns) + POOL_ENTRY;
    return n;
  }

  /** What replacing `old` by `d` gives back: old's own part, and names only old held. */
  private freedBy(old: ShareDeclaration, d: ShareDeclaration): number {
    let n = this.ownCost(old);
    const kept = new Set(grants(d));
    for (const ns of grants(old)) if (this.pool.get(ns)?.refs === 1 && !kept.has(ns)) n += stringBytes(ns) + POOL_ENTRY;
    return n;
  }

  private ownCost(d: ShareDeclaration): number {
    return DECLARATION_OVERHEAD + stringBytes(d.namespace) + stringBytes(d.name) + stringBytes(d.origin) + POINTER * grants(d).length;
  }

  private intern(d: ShareDeclaration): ShareDeclaration {
    const out: ShareDeclaration = { ...d, allowedNamespaces: d.allowedNamespaces.map((ns) => this.ref(ns)) };
    if (d.readOnlyNamespaces) out.readOnlyNamespaces = d.readOnlyNamespaces.map((ns) => this.ref(ns));
    return out;
  }

  private hold(d: ShareDeclaration): void {
    for (const ns of grants(d)) this.ref(ns);
  }

  private ref(ns: string): string {
    let p = this.pool.get(ns);
    if (!p) {
      p = { value: this.previous?.pool.get(ns)?.value ?? ns, refs: 0 };
      this.pool.set(ns, p);
      this.used += stringBytes(ns) + POOL_ENTRY;
    }
    p.refs++;
    return p.value;
  }

  private release(d: ShareDeclaration): void {
    this.used -= this.ownCost(d);
    for (const ns of grants(d)) {
      const p = this.pool.get(ns);
      if (p && --p.refs === 0) {
        this.pool.delete(ns);
        this.used -= stringBytes(ns) + POOL_ENTRY;
      }
    }
  }
}

function grants(d: ShareDeclaration): string[] {
  return d.readOnlyNamespaces ? [...d.allowedNamespaces, ...d.readOnlyNamespaces] : d.allowedNamespaces;
}
