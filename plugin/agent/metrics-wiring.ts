// What the agent's metrics read at scrape time (bindings, the present shares' sizes and use, the
// releases waiting), and the listener that serves them when metrics.address is set.
import type { Backend } from '../backends/types';
import type { Ledger } from '../ledger';
import type { MemshareService } from '../memshare/service';
import type { MemshareMetrics } from './metrics';
import { startMetricsServer, type Health, type MetricsServer } from './metrics-listener';
import type { Logger } from './logger';

/** Fills the gauges that are read from the parts when Prometheus scrapes. */
export function collectFromParts(metrics: MemshareMetrics, parts: { ledger: Ledger; service: MemshareService; backend: Backend }): void {
  const { ledger, service, backend } = parts;
  metrics.registry.onCollect(async () => {
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
