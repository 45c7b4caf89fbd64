// JSON-lines logger on stdout; under systemd, journald stores each line as one entry.
import pino from 'pino';

export type Logger = pino.Logger;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level: LogLevel;
  /** stream to write to; stdout when absent (tests pass their own to read the lines back) */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: { name: 'nri-memshare' }, // no pid/hostname: journald already records both
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) }, // "info", not 30: readable in journalctl
  };
  // sync stdout: a crash must not lose the lines that explain it
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}
