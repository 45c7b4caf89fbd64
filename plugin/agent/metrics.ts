// The agent's metrics, all named nri_memshare_* (plus the standard process metrics), on the
// project's small Prometheus client (plugin/prometheus/).
import { Registry, registerProcessMetrics, LATENCY_BUCKETS, type Counter, type Gauge, type Histogram, type HistogramChild } from '../prometheus';
import { REFUSAL_REASONS } from '../memshare/authorize';
import { buildInfo } from './build-info';

const PREFIX = 'nri_memshare_';

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
  /** containers evicted (their init killed) */
  readonly evictions: Counter;
  /** problems each declaration source reports now (broken files, invalid objects, a failing watch) */
  readonly declarationProblems: Gauge;
  /** when the Kubernetes ShareMemory list last succeeded or its watch last delivered (s since epoch) */
  readonly kubernetesLastSync: Gauge;
  /** writes to the cluster that failed: ShareMemory status entries and refusal Events */
  readonly clusterWriteFailures: Counter;
  /** 1, labelled with the package version and the NRI protocol version */
  readonly buildInfo: Gauge;
  /** cached histogram child for one event: the cheap path for the request handlers */
  timer(event: NriEventName): HistogramChild;
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
    refusals: refusalCounter(registry),
    reconnects: registry.counter(`${PREFIX}reconnects_total`, "Reconnections to containerd's NRI socket."),
    pluginRegistered: registry.gauge(`${PREFIX}plugin_registered`, '1 while the plugin is registered with containerd.'),
    evictionFailures: registry.counter(`${PREFIX}eviction_failures_total`, 'Attempts to evict a container (kill its init) that failed; each retry counts.'),
    evictionsFailing: registry.gauge(`${PREFIX}evictions_failing`, 'Containers whose eviction failed and that still run without their shares.'),
    evictions: atZero(registry.counter(`${PREFIX}evictions_total`, 'Containers evicted (their init killed) because they ran without their shares, or with stale ones.'), [[]]),
    declarationProblems: registry.gauge(`${PREFIX}declaration_problems`, 'Problems a declaration source reports now: broken files, invalid objects, a failing watch.', ['source']),
    kubernetesLastSync: registry.gauge(`${PREFIX}kubernetes_last_sync_timestamp_seconds`, 'When the ShareMemory list last succeeded or its watch last delivered an event (seconds since epoch); absent without Kubernetes.'),
    clusterWriteFailures: atZero(registry.counter(`${PREFIX}cluster_write_failures_total`, 'Writes to the API server that failed, by kind: status (ShareMemory status entries), event (refusal Events).', ['kind']), [['status'], ['event']]),
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

/** A counter whose series exist at 0 from the start, so that `increase()` sees their first count. */
function atZero(c: Counter, series: ReadonlyArray<readonly string[]>): Counter {
  for (const labels of series) c.labels(...labels).inc(0);
  return c;
}

/** nri_memshare_refusals_total{reason}, every reason's series at 0 from the start. */
function refusalCounter(registry: Registry): Counter {
  return atZero(registry.counter(`${PREFIX}refusals_total`, 'Bindings refused, by reason.', ['reason']), REFUSAL_REASONS.map((r) => [r]));
}

/** nri_memshare_build_info{version,nri_version} 1: joins any series with the agent's build. */
function buildInfoGauge(registry: Registry): { buildInfo: Gauge } {
  const b = buildInfo();
  const g = registry.gauge(`${PREFIX}build_info`, 'Always 1; the labels say which build of the agent runs and the NRI protocol it speaks.', ['version', 'nri_version']);
  g.labels(b.version, b.nriVersion).set(1);
  return { buildInfo: g };
}
