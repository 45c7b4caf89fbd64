// What the agent's metrics read at scrape time (bindings, the present shares' sizes and use, the
// releases waiting), and the listener that serves them when metrics.address is set.
import type { Backend } from '../backends/types';
import type { Ledger } from '../ledger';
import type { MemshareService } from '../memshare/service';
import type { MemshareMetrics } from './metrics';
import { startMetricsServer, type Health, type MetricsServer } from './metrics-listener';
import type { Logger } from './logger';
import type { DeclarationSources } from './declaration-sources';
import type { ClusterWriters } from '../cluster';

/** Fills the gauges that are read from the parts when Prometheus scrapes. */
export function collectFromParts(
  metrics: MemshareMetrics,
  parts: { ledger: Ledger; service: MemshareService; backend: Backend; sources: DeclarationSources; cluster: () => ClusterWriters | undefined },
): void {
  const { ledger, service, backend, sources } = parts;
  // the cluster writers count their failures; the counter follows their totals
  const seen = { status: 0, event: 0 };
  const follow = (kind: 'status' | 'event', total: number) => {
    if (total > seen[kind]) metrics.clusterWriteFailures.labels(kind).inc(total - seen[kind]);
    seen[kind] = total;
  };
  metrics.registry.onCollect(async () => {
    for (const s of sources.states()) metrics.declarationProblems.labels(s.kind).set(s.problems.length);
    const synced = sources.kubernetesLastSyncAt();
    if (synced !== undefined) metrics.kubernetesLastSync.set(synced / 1000);
    const cluster = parts.cluster();
    if (cluster) {
      follow('status', cluster.status?.stats.failures ?? 0);
      follow('event', cluster.events?.stats.failures ?? 0);
    }
    metrics.bindings.set(ledger.all().filter((r) => r.state === 'bound').length);
    metrics.shareSizeBytes.reset();
    metrics.shareUsedBytes.reset();
    for (const s of service.presentShares()) {
      const u = await backend.usage(s);
      if (!u) continue;
      metrics.shareSizeBytes.labels(s.namespace, s.name).set(u.sizeBytes);
      if (u.usedBytes !== null) metrics.shareUsedBytes.labels(s.namespace, s.name).set(u.usedBytes);
    }
    metrics.releasesPending.set(service.pendingReleases().length);
  });
}

/** Serves /metrics and /healthz on `address`; undefined when no address is configured. */
export async function listenForMetrics(
  address: string | undefined,
  metrics: MemshareMetrics,
  health: () => Health,
  log: Logger,
): Promise<MetricsServer | undefined> {
  if (!address) return undefined;
  const server = await startMetricsServer({
    address,
    registry: metrics.registry,
    health,
    onError: (err) => log.warn({ err: String(err) }, 'metrics: error'),
    onWarning: (msg, detail) => log.warn(detail, msg),
  });
  log.info({ address: server.address }, 'metrics: listening');
  return server;
}
