// The set of metrics one endpoint serves, in registration order, and the collectors that
// refresh gauges just before a scrape.
import { Counter } from './counter';
import { Gauge } from './gauge';
import { Histogram } from './histogram';
import type { Metric } from './family';

/** Refreshes gauges just before a scrape (e.g. share usage, which costs a statfs per share). */
export type Collector = () => void | Promise<void>;

export class Registry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: Collector[] = [];

  register<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name}: registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.register(new Histogram(name, help, labelNames, buckets));
  }

  onCollect(c: Collector): void {
    this.collectors.push(c);
  }

  /** Runs the collectors (a failing one is reported, not fatal), then renders. */
  async collect(onError?: (err: unknown) => void): Promise<string> {
    for (const c of this.collectors) {
      try {
        await c();
      } catch (err) {
        onError?.(err);
      }
    }
    return this.render();
  }

  /** The exposition text of every metric, in registration order. */
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) m.render(out);
    return out.length ? `${out.join('\n')}\n` : '';
  }
}
