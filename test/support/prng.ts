// The tests' one seeded PRNG (mulberry32): the same seed replays the same choices and bytes
// (timings still vary). Fuzz, mux and ttrpc tests draw bytes from it, chaos its choices.
export interface Rng {
  readonly seed: number;
  /** [0, 1) */
  next(): number;
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  /** n random bytes */
  bytes(n: number): Buffer;
  /** picks a key by weight; weights <= 0 are never picked; undefined when all are */
  weighted<K extends string>(w: Record<K, number>): K | undefined;
}

export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed: seed >>> 0,
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
    weighted(w) {
      const entries = (Object.entries(w) as Array<[string, number]>).filter(([, v]) => v > 0);
      const total = entries.reduce((s, [, v]) => s + v, 0);
      if (total <= 0) return undefined;
      let r = next() * total;
      for (const [k, v] of entries) {
        r -= v;
        if (r < 0) return k as never;
      }
      return entries[entries.length - 1][0] as never;
    },
  };
}
