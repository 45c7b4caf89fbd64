// Evictions that failed and are not resolved yet (the container still runs without its shares),
// kept in a small file in the state directory so that `nri-memshare status`, which never asks the
// running agent, can show them. Written whole, atomically (temp file, then rename), mode 0600;
// removed when nothing is failing.
import { join } from 'node:path';
import type { FailedEviction } from '../eviction/evictor';
import { readStateFile, removeStateFile, writeStateFile } from '../files/state-file';

export type { FailedEviction };

export const FAILED_EVICTIONS_FILE = 'failed-evictions.json';

/** The file's path in `stateDir`. */
export function failedEvictionsPath(stateDir: string): string {
  return join(stateDir, FAILED_EVICTIONS_FILE);
}

/** Writes the list (or removes the file when it is empty). */
export function writeFailedEvictions(stateDir: string, list: readonly FailedEviction[]): void {
  const path = failedEvictionsPath(stateDir);
  if (list.length === 0) removeStateFile(path);
  else writeStateFile(path, `${JSON.stringify({ version: 1, failedEvictions: list }, null, 2)}\n`, { mode: 0o600, durable: true });
}

/**
 * The list in `stateDir` ([] when there is no file). A damaged file gives [] and a warning: the
 * agent rewrites it at its next change, and its own log has the failures.
 */
export function readFailedEvictions(stateDir: string): { failedEvictions: FailedEviction[]; warnings: string[] } {
  const path = failedEvictionsPath(stateDir);
  let text: string | undefined;
  try {
    text = readStateFile(path);
  } catch (err) {
    return { failedEvictions: [], warnings: [`${path}: cannot read the failed evictions (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  if (text === undefined) return { failedEvictions: [], warnings: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { failedEvictions: [], warnings: [`${path}: damaged (not JSON); the failed evictions are in the agent's log`] };
  }
  const list = (doc as { failedEvictions?: unknown } | null)?.failedEvictions;
  if (!Array.isArray(list)) return { failedEvictions: [], warnings: [`${path}: damaged (no failedEvictions list)`] };
  const out: FailedEviction[] = [];
  const warnings: string[] = [];
  list.forEach((e: unknown, i) => {
    const f = e as Partial<FailedEviction> | null;
    if (
      f && typeof f.containerId === 'string' && typeof f.pid === 'number' && typeof f.attempts === 'number' &&
      typeof f.lastError === 'string' && typeof f.since === 'string'
    ) {
      out.push({ containerId: f.containerId, pid: f.pid, attempts: f.attempts, lastError: f.lastError, since: f.since, retrying: f.retrying === true });
    } else warnings.push(`${path}: entry ${i + 1} is damaged; skipped`);
  });
  return { failedEvictions: out, warnings };
}

/**
 * The agent's writer of the file: the latest list only, written off the request path (one write
 * for a burst of changes); a failed write is logged and the next change tries again.
 */
export class FailedEvictionsFile {
  private toWrite: FailedEviction[] | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly onWriteError: (err: unknown) => void,
  ) {}

  record(failing: FailedEviction[]): void {
    const pending = this.toWrite !== undefined;
    this.toWrite = failing;
    if (pending) return;
    setImmediate(() => {
      const list = this.toWrite ?? [];
      this.toWrite = undefined;
      try {
        writeFailedEvictions(this.stateDir, list);
      } catch (err) {
        this.onWriteError(err);
      }
    });
  }
}
