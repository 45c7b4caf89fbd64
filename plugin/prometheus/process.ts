// The process metrics every Prometheus client exports, and Node.js's heap and event-loop delay.
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Registry } from './registry';

/**
 * The process metrics every Prometheus client exports (same names and meaning), measured at
 * scrape time: resident memory, CPU time, start time, open and maximum file descriptors; and
 * Node.js's heap and event-loop delay under prom-client's names.
 */
export function registerProcessMetrics(registry: Registry): void {
  const cpu = registry.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
  const heapUsed = registry.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.');
  const heapTotal = registry.gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.');
  const lagP99 = registry.gauge('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the event loop delay since the last scrape, in seconds.');
  const lagMax = registry.gauge('nodejs_eventloop_lag_max_seconds', 'The largest event loop delay since the last scrape, in seconds.');
  // sampled by libuv's timer every 20 ms; read and reset at each scrape
  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  let cpuSeen = 0;
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const start = registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.');
  const openFds = registry.gauge('process_open_fds', 'Number of open file descriptors.');
  const maxFds = registry.gauge('process_max_fds', 'Maximum number of open file descriptors.');
  // process.uptime() counts from the process's start: fixed once, like /proc/self/stat's starttime
  start.set(Math.round(Date.now() - process.uptime() * 1000) / 1000);
  registry.onCollect(() => {
    rss.set(process.memoryUsage.rss());
    const u = process.cpuUsage();
    const cpuNow = (u.user + u.system) / 1e6;
    cpu.inc(Math.max(0, cpuNow - cpuSeen));
    cpuSeen = cpuNow;
    const heap = process.memoryUsage();
    heapUsed.set(heap.heapUsed);
    heapTotal.set(heap.heapTotal);
    // (no sample yet: 0, not the histogram's NaN)
    lagP99.set(delay.count ? delay.percentile(99) / 1e9 : 0);
    lagMax.set(delay.count ? delay.max / 1e9 : 0);
    delay.reset();
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
