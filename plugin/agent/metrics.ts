// A small Prometheus registry (text exposition format 0.0.4) and the HTTP server that serves it.
// Written by hand: the agent needs a handful of metrics, and observing one must stay cheap on the
// NRI request path, so children are looked up once and then updated with plain arithmetic.
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildInfo } from './build-info';

const PREFIX = 'nri_memshare_';
const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** `{a="x",b="y"}` for the given names and values, or '' when there are no labels. */
function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

/** Shared bookkeeping of a labelled metric: one child per distinct label-value tuple. */
abstract class Family<C> implements Metric {
  private readonly children = new Map<string, { values: string[]; child: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly labelNames: readonly string[],
  ) {
    if (!NAME_RE.test(name)) throw new Error(`metric name ${JSON.stringify(name)}: not a valid Prometheus name`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l === 'le') throw new Error(`metric ${name}: label ${JSON.stringify(l)} is not allowed`);
    }
  }

  protected abstract make(): C;
  protected abstract renderChild(out: string[], labels: readonly string[], child: C): void;

  /** The child for these label values; keep it to update it without a lookup. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`metric ${this.name}: expected ${this.labelNames.length} label value(s), got ${values.length}`);
    }
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      entry = { values: values.slice(), child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** Forget one child (e.g. the gauges of a share that was released). */
  remove(...values: string[]): void {
    this.children.delete(values.length === 1 ? values[0] : values.join('\u0000'));
  }

  /** Forget every child. */
  reset(): void {
    this.children.clear();
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    // an unlabelled metric is always shown, even before its first update
    if (this.labelNames.length === 0 && this.children.size === 0) this.labels();
    for (const { values, child } of this.children.values()) this.renderChild(out, values, child);
  }
}

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    if (!(by >= 0)) throw new Error(`counter increment must be >= 0, got ${by}`);
    this.value += by;
  }
}

export class Counter extends Family<CounterChild> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames);
  }
  protected make(): CounterChild {
    return new CounterChild();
  }
  protected renderChild(out: string[], labels: readonly string[], c: CounterChild): void {
    out.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(c.value)}`);
  }
  inc(by = 1): void {
    this.labels().inc(by);
  }
}

export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
}

export class Gauge extends Family<GaugeChild> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'gauge', labelNames);
  }
  protected make(): GaugeChild {
    return new GaugeChild();
  }
  protected renderChild(out: string[], labels: readonly string[], g: GaugeChild): void {
    out.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(g.value)}`);
  }
  set(v: number): void {
    this.labels().set(v);
  }
  inc(by = 1): void {
    this.labels().inc(by);
  }
  dec(by = 1): void {
    this.labels().dec(by);
  }
}

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

/** NRI events whose handling time is measured (label `event`). */
export type NriEventName =
  | 'Configure'
  | 'Synchronize'
  | 'RunPodSandbox'
  | 'StopPodSandbox'
  | 'RemovePodSandbox'
  | 'CreateContainer'
  | 'PostCreateContainer'
  | 'StartContainer'
  | 'PostStartContainer'
  | 'UpdateContainer'
  | 'PostUpdateContainer'
  | 'StopContainer'
  | 'RemoveContainer'
  | 'Shutdown';

/** The agent's metrics, all named nri_memshare_*. */
export interface MemshareMetrics {
  readonly registry: Registry;
  /** seconds spent handling one NRI event; label event */
  readonly requestDuration: Histogram;
  /** live container-to-share bindings on this node */
  readonly bindings: Gauge;
  /** size of each present share; labels namespace, share */
  readonly shareSizeBytes: Gauge;
  /** bytes used in each present share; labels namespace, share */
  readonly shareUsedBytes: Gauge;
  /** shares released by this node */
  readonly releases: Counter;
  /** attempts to release a share that failed (each retry counts) */
  readonly releaseFailures: Counter;
  /** shares whose release is failing and waits for a retry */
  readonly releasesPending: Gauge;
  /** bindings refused; label reason (RefusalError.reason) */
  readonly refusals: Counter;
  /** times the agent reconnected to containerd's NRI socket */
  readonly reconnects: Counter;
  /** 1 while the plugin is registered with containerd, else 0 */
  readonly pluginRegistered: Gauge;
  /** attempts to evict a container that failed (each retry counts) */
  readonly evictionFailures: Counter;
  /** containers whose eviction failed and is not resolved (killed, or the container gone) */
  readonly evictionsFailing: Gauge;
  /** 1, labelled with the package version and the NRI protocol version */
  readonly buildInfo: Gauge;
  /** cached histogram child for one event: the cheap path for the request handlers */
  timer(event: NriEventName): HistogramChild;
}

/**
 * The process metrics every Prometheus client exports (same names and meaning), measured at
 * scrape time: resident memory, start time, open and maximum file descriptors.
 */
export function registerProcessMetrics(registry: Registry): void {
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const start = registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.');
  const openFds = registry.gauge('process_open_fds', 'Number of open file descriptors.');
  const maxFds = registry.gauge('process_max_fds', 'Maximum number of open file descriptors.');
  // process.uptime() counts from the process's start: fixed once, like /proc/self/stat's starttime
  start.set(Math.round(Date.now() - process.uptime() * 1000) / 1000);
  registry.onCollect(() => {
    rss.set(process.memoryUsage.rss());
    try {
      // the listing includes the descriptor readdir itself holds open while it reads
      openFds.set(readdirSync('/proc/self/fd').length - 1);
      const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      if (m) maxFds.set(m[1] === 'unlimited' ? Infinity : Number(m[1]));
    } catch {
      // not Linux (a developer's machine): the fd gauges stay 0
    }
  });
}

export function createMemshareMetrics(registry = new Registry()): MemshareMetrics {
  const requestDuration = registry.histogram(
    `${PREFIX}request_duration_seconds`, 'Time spent handling one NRI event.', ['event'], LATENCY_BUCKETS);
  const timers = new Map<NriEventName, HistogramChild>();
  registerProcessMetrics(registry);
  return {
    registry,
    requestDuration,
    bindings: registry.gauge(`${PREFIX}bindings`, 'Live container-to-share bindings on this node.'),
    shareSizeBytes: registry.gauge(`${PREFIX}share_size_bytes`, 'Size of each share present on this node.', ['namespace', 'share']),
    shareUsedBytes: registry.gauge(`${PREFIX}share_used_bytes`, 'Bytes in use in each share present on this node.', ['namespace', 'share']),
    releases: registry.counter(`${PREFIX}releases_total`, 'Shares released by this node.'),
    releaseFailures: registry.counter(`${PREFIX}release_failures_total`, 'Attempts to release a share that failed; each retry counts.'),
    releasesPending: registry.gauge(`${PREFIX}releases_pending`, 'Shares whose release failed and is retried in the background.'),
    refusals: registry.counter(`${PREFIX}refusals_total`, 'Bindings refused, by reason.', ['reason']),
    reconnects: registry.counter(`${PREFIX}reconnects_total`, "Reconnections to containerd's NRI socket."),
    pluginRegistered: registry.gauge(`${PREFIX}plugin_registered`, '1 while the plugin is registered with containerd.'),
    evictionFailures: registry.counter(`${PREFIX}eviction_failures_total`, 'Attempts to evict a container (kill its init) that failed; each retry counts.'),
    evictionsFailing: registry.gauge(`${PREFIX}evictions_failing`, 'Containers whose eviction failed and that still run without their shares.'),
    ...buildInfoGauge(registry),
    timer(event) {
      let t = timers.get(event);
      if (!t) {
        t = requestDuration.labels(event);
        timers.set(event, t);
      }
      return t;
    },
  };
}

/** nri_memshare_build_info{version,nri_version} 1: joins any series with the agent's build. */
function buildInfoGauge(registry: Registry): { buildInfo: Gauge } {
  const b = buildInfo();
  const g = registry.gauge(`${PREFIX}build_info`, 'Always 1; the labels say which build of the agent runs and the NRI protocol it speaks.', ['version', 'nri_version']);
  g.labels(b.version, b.nriVersion).set(1);
  return { buildInfo: g };
}

/** host and port of a metrics address: "127.0.0.1:9464", "[::1]:9464", "localhost:0". */
export function parseListenAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

export interface Health {
  ok: boolean;
  detail?: string;
}

/** Bounds of the listener: it serves two small GETs to a scraper, nothing more. */
export const METRICS_LIMITS = {
  /** concurrent connections; more are closed at once */
  maxConnections: 16,
  /** request line plus headers, bytes (Node's default is 16 KiB); more is answered 431 */
  maxHeaderBytes: 8 * 1024,
  /** until the headers are in */
  headersTimeoutMs: 5_000,
  /** until the whole request is in */
  requestTimeoutMs: 10_000,
  /** an idle keep-alive connection */
  keepAliveTimeoutMs: 5_000,
  /** any socket without traffic */
  idleTimeoutMs: 15_000,
} as const;

/** Whether a bound address is reachable only from this host (127.0.0.0/8, ::1, their v4-mapped forms). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  return a === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

export interface MetricsServer {
  /** the address actually bound, as host:port (port resolved when 0 was asked) */
  readonly address: string;
  readonly port: number;
  /** false when the bound address is reachable from other hosts */
  readonly loopback: boolean;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  address: string;
  registry: Registry;
  /** /healthz answers 200 when ok, 503 otherwise; always ok when absent */
  health?: () => Health;
  onError?: (err: unknown) => void;
  /** told once the server listens on an address other hosts can reach */
  onWarning?: (message: string, detail: Record<string, unknown>) => void;
}

/** Serves GET /metrics and GET /healthz on the address; resolves once listening. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const addr = parseListenAddress(opts.address);
  if (!addr) throw new Error(`metrics.address: ${JSON.stringify(opts.address)} is not host:port`);
  const L = METRICS_LIMITS;
  // node:http only where metrics are served: it costs start-up on a node that turns them off
  const http = await import('node:http');
  const server = http.createServer({ maxHeaderSize: L.maxHeaderBytes, requestTimeout: L.requestTimeoutMs }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', Connection: 'close' }).end();
      return;
    }
    // no bodies: a GET with one is refused and the connection closed (its body is never read)
    if ((req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined) {
      res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end('request bodies are not accepted\n');
      return;
    }
    if (path === '/metrics') {
      opts.registry.collect(opts.onError).then(
        (body) => res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body),
        (err: unknown) => {
          opts.onError?.(err);
          res.writeHead(500).end();
        },
      );
    } else if (path === '/healthz') {
      const h = opts.health?.() ?? { ok: true };
      const body = h.detail ? `${h.ok ? 'ok' : 'unhealthy'}: ${h.detail}\n` : `${h.ok ? 'ok' : 'unhealthy'}\n`;
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
    }
  });
  server.maxConnections = L.maxConnections;
  server.headersTimeout = L.headersTimeoutMs;
  server.keepAliveTimeout = L.keepAliveTimeoutMs;
  server.timeout = L.idleTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(new Error(`metrics.address ${opts.address}: cannot listen: ${err.message}`));
    server.once('error', fail);
    server.listen(addr.port, addr.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  if (opts.onError) server.on('error', opts.onError);
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const loopback = isLoopbackAddress(bound.address);
  if (!loopback) {
    opts.onWarning?.(
      `metrics: listening on ${host}:${bound.port}, reachable from other hosts; /metrics names namespaces and shares. Set metrics.address to 127.0.0.1:${bound.port} unless a remote scraper needs it, and firewall the port`,
      { address: `${host}:${bound.port}` },
    );
  }
  return {
    address: `${host}:${bound.port}`,
    port: bound.port,
    loopback,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
