// The body of a watch (GET ...?watch=1): newline-delimited JSON events {type, object}, read as
// they arrive. Each byte is looked at once for a newline and a line is decoded whole (a character
// split across chunks stays whole); a line longer than the cap ends the stream, so a broken or
// hostile server (or a proxy in between) cannot make the reader hold more than that.
import type * as http from 'node:http';
import { KubeApiError } from './request';

export interface WatchEvent {
  type: string;
  object: unknown;
}

/** How a stream ended: the server closed it ('ended'), closed it at once and empty ('idle'), or a 410 ('gone'). */
export type WatchOutcome = 'ended' | 'idle' | 'gone';

export interface WatchStreamOptions {
  /** "kubernetes https://host:6443", the start of every message */
  where: string;
  /** what the watch asked of the server; a stream silent 30 s beyond it is a half-open connection */
  timeoutSeconds: number;
  /** a longer event line ends the stream with an error */
  maxEventBytes: number;
  /** when the request was sent: a stream closed empty within 1 s of it is 'idle' */
  startedAt: number;
  /** true once the watcher was stopped: the close that follows is no error */
  stopped(): boolean;
  /** applies one event; 'gone' or an Error ends the stream */
  onEvent(ev: WatchEvent): 'gone' | Error | undefined;
}

/** Reads one watch response to its end; rejects with a KubeApiError naming the server. */
export function readWatchStream(res: http.IncomingMessage, opts: WatchStreamOptions): Promise<WatchOutcome> {
  return new Promise((resolve, reject) => {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let events = 0;
    let settled = false;
    const guard = setTimeout(() => {
      finish(new KubeApiError(`${opts.where}: watch: the stream outlived timeoutSeconds=${opts.timeoutSeconds} by 30 s; reconnecting`));
    }, opts.timeoutSeconds * 1000 + 30000);
    const finish = (outcome: WatchOutcome | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      pending = [];
      res.removeAllListeners('data');
      if (outcome !== 'ended' && outcome !== 'idle') res.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const tooLong = () =>
      finish(
        new KubeApiError(
          `${opts.where}: watch: an event is longer than ${opts.maxEventBytes} bytes without a newline (no ShareMemory is that large); the stream is cut off and the watch reconnects`,
        ),
      );
    const onLine = (line: string) => {
      line = line.trim();
      if (!line) return;
      events++;
      let ev: WatchEvent;
      try {
        ev = JSON.parse(line) as WatchEvent;
      } catch {
        finish(new KubeApiError(`${opts.where}: watch: event ${events} is not JSON (${Buffer.byteLength(line)} bytes); reconnecting`));
        return;
      }
      const r = opts.onEvent(ev);
      if (r) finish(r);
    };
    res.on('data', (chunk: Buffer) => {
      let start = 0;
      let nl: number;
      while (!settled && (nl = chunk.indexOf(0x0a, start)) >= 0) {
        const part = chunk.subarray(start, nl);
        if (pendingBytes + part.length > opts.maxEventBytes) return tooLong();
        const line = pendingBytes ? Buffer.concat([...pending, part], pendingBytes + part.length) : part;
        pending = [];
        pendingBytes = 0;
        onLine(line.toString('utf8'));
        start = nl + 1;
      }
      if (settled || start >= chunk.length) return;
      const rest = chunk.subarray(start);
      if (pendingBytes + rest.length > opts.maxEventBytes) return tooLong();
      pending.push(rest);
      pendingBytes += rest.length;
    });
    res.on('end', () => {
      if (opts.stopped()) return finish('ended');
      const idle = events === 0 && Date.now() - opts.startedAt < 1000;
      finish(idle ? 'idle' : 'ended');
    });
    res.on('error', (err) => finish(new KubeApiError(`${opts.where}: watch: ${err.message}`)));
    res.on('close', () => finish(opts.stopped() ? 'ended' : new KubeApiError(`${opts.where}: watch: the connection closed mid-stream`)));
  });
}
