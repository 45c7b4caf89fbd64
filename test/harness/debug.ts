// Step timings for the harness, printed only when NRI_MEMSHARE_DEBUG is set.
const enabled = (): boolean => !!process.env.NRI_MEMSHARE_DEBUG;

export function debug(msg: string): void {
  if (enabled()) process.stderr.write(`[harness] ${msg}\n`);
}

/** Runs fn and logs how long it took (also when it throws). */
export async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  if (!enabled()) return fn();
  const t0 = process.hrtime.bigint();
  try {
    return await fn();
  } finally {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    debug(`${label}: ${ms.toFixed(0)} ms`);
  }
}
