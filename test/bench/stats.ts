/** Percentiles of a sample, in the sample's unit. */
export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
}

export function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

export function fmt(p: Percentiles, unit = 'ms'): string {
  return `p50 ${round(p.p50)} ${unit}  p90 ${round(p.p90)} ${unit}  p99 ${round(p.p99)} ${unit}  (n=${p.n})`;
}
