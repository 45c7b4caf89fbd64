// JSON-lines logger on stdout; under systemd, journald stores each line as one entry. When stdout
// is the journal stream, each line starts with an sd-daemon priority prefix ("<4>" for a warning),
// which journald (SyslogLevelPrefix=, on by default) turns into the entry's PRIORITY and strips, so
// `journalctl -p warning` shows exactly the warnings and worse.
import { fstatSync } from 'node:fs';
import pino from 'pino';

export type Logger = pino.Logger;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level: LogLevel;
  /** stream to write to; stdout when absent (tests pass their own to read the lines back) */
  destination?: pino.DestinationStream;
  /**
   * prefix lines with sd-daemon priorities; by default only when stdout is the journal stream
   * (JOURNAL_STREAM names stdout's device and inode)
   */
  journal?: boolean;
}

/** syslog priority of each pino level: trace/debug → 7 debug, info → 6, warn → 4, error → 3, fatal → 2 crit. */
export function syslogPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2;
  if (pinoLevel >= 50) return 3;
  if (pinoLevel >= 40) return 4;
  if (pinoLevel >= 30) return 6;
  return 7;
}

/**
 * Whether file descriptor `fd` is the stream systemd connected to journald: JOURNAL_STREAM is
 * "<st_dev>:<st_ino>" of that stream (systemd.exec(5)); a redirected stdout no longer matches.
 */
export function isJournalStream(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

// pino sets `lastLevel` on a destination that carries this symbol, just before each write
const PINO_METADATA: unique symbol = Symbol.for('pino.metadata') as never;

/** A destination that puts "<N>" before each line, N the priority of the line's level. */
class PriorityPrefixed {
  readonly [PINO_METADATA] = true;
  lastLevel = 30;
  constructor(private readonly inner: pino.DestinationStream) {}
  write(line: string): void {
    this.inner.write(`<${syslogPriority(this.lastLevel)}>${line}`);
  }
}

// keys every line has, and the bindings of child loggers. pino writes a child's bindings and a
// call's fields side by side, so the same key could appear twice; here bindings travel through
// pino's mixin instead, and any key already taken gets a "_" appended, so no key appears twice.
const OWN_KEYS = new Set(['level', 'time', 'name', 'msg']);
const BINDINGS = Symbol('nri-memshare.bindings');
type WithBindings = { [BINDINGS]?: Record<string, unknown> };

function mergeFields(into: Record<string, unknown>, from: object): Record<string, unknown> {
  for (const [k, v] of Object.entries(from)) {
    let key = k;
    while (OWN_KEYS.has(key) || Object.prototype.hasOwnProperty.call(into, key)) key += '_';
    into[key] = v;
  }
  return into;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    // no pid/hostname (journald records both); `name` comes with the level below, so that every
    // other key goes through mergeFields
    base: null,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label, name: 'nri-memshare' }), // "info", not 30: readable in journalctl
    },
    mixin: (_obj, _level, logger) => (logger as WithBindings)[BINDINGS] ?? {},
    mixinMergeStrategy: (fields, bindings) => mergeFields(mergeFields({}, bindings), fields),
  };
  // sync stdout: a crash must not lose the lines that explain it
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: true });
  const journal = opts.journal ?? (opts.destination === undefined && isJournalStream());
  const logger = pino(options, journal ? new PriorityPrefixed(dest) : dest);
  const childOf = logger.child;
  const withMergedBindings = function (this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions): unknown {
    const child = Reflect.apply(childOf, this, [{}, childOptions]) as WithBindings;
    child[BINDINGS] = mergeFields(mergeFields({}, (this as WithBindings)[BINDINGS] ?? {}), bindings);
    return child;
  };
  logger.child = withMergedBindings as unknown as Logger['child'];
  return logger;
}
