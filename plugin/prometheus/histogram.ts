// A histogram: observations counted into buckets, with their sum and count.
import { Family, formatValue, labelText } from './family';

export class HistogramChild {
  /** per-bucket (non-cumulative) counts; the last slot is +Inf */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: Float64Array) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i] += 1;
    this.sum += v;
    this.count += 1;
  }
  /** Starts a timer; calling the result observes the seconds elapsed. */
  startTimer(): () => number {
    const t0 = process.hrtime.bigint();
    return () => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      this.observe(s);
      return s;
    };
  }
}

/** Default latency buckets in seconds: NRI calls are expected well under containerd's 2 s timeout. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5];

export class Histogram extends Family<HistogramChild> {
  private readonly bounds: Float64Array;
  constructor(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = LATENCY_BUCKETS) {
    super(name, help, 'histogram', labelNames);
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        throw new Error(`metric ${name}: buckets must be finite and strictly increasing`);
      }
    }
    this.bounds = Float64Array.from(buckets);
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.bounds);
  }
  protected renderChild(out: string[], labels: readonly string[], h: HistogramChild): void {
    let cumulative = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += h.counts[i];
      const le = i < this.bounds.length ? formatValue(this.bounds[i]) : '+Inf';
      out.push(`${this.name}_bucket${labelText(this.labelNames, labels, `le="${le}"`)} ${cumulative}`);
    }
    const l = labelText(this.labelNames, labels);
    out.push(`${this.name}_sum${l} ${formatValue(h.sum)}`, `${this.name}_count${l} ${h.count}`);
  }
  observe(v: number): void {
    this.labels().observe(v);
  }
}
