// A small seeded PRNG (mulberry32): the same seed replays the same choices (timings still vary).
export interface Rng {
  readonly seed: number;
  /** [0, 1) */
  next(): number;
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
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

/** CHAOS_SEED from the environment, else a fresh random seed. */
export function chooseSeed(explicit?: number): number {
  if (explicit !== undefined && Number.isFinite(explicit)) return explicit >>> 0;
  const env = process.env.CHAOS_SEED;
  if (env && env.trim() !== '') {
    const n = Number(env);
    if (!Number.isFinite(n)) throw new Error(`CHAOS_SEED must be a number, got ${JSON.stringify(env)}`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}
