// The process metrics every Prometheus client exports.
import { readdirSync, readFileSync } from 'node:fs';
import type { Registry } from './registry';

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
