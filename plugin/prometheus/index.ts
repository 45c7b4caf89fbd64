// A small Prometheus client, written for this project: one metric kind per file (as prom-client),
// the registry that renders them, the standard process metrics. It knows nothing of the agent.
export type { Metric } from './family';
export { Counter, CounterChild } from './counter';
export { Gauge, GaugeChild } from './gauge';
export { Histogram, HistogramChild, LATENCY_BUCKETS } from './histogram';
export { Registry, type Collector } from './registry';
export { registerProcessMetrics } from './process';
