// The HTTP listener for /metrics and /healthz: two small GETs to a scraper, nothing more; bounded
// so that local clients cannot hold it (docs/security.md).
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from '../prometheus';

/** host and port of a metrics address: "127.0.0.1:9464", "[::1]:9464", "localhost:0". */
export function parseListenAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

export interface Health {
  ok: boolean;
  detail?: string;
}

/** Bounds of the listener: it serves two small GETs to a scraper, nothing more. */
export const METRICS_LIMITS = {
  /**
   * concurrent connections; a new one past the cap takes the slot of the oldest connection with
   * no request in progress (idle keep-alive, or still sending its headers), so connections held
   * open cannot keep a scrape or a health check out; only when every slot is answering a request
   * is the new one closed at once
   */
  maxConnections: 16,
  /** request line plus headers, bytes (Node's default is 16 KiB); more is answered 431 */
  maxHeaderBytes: 8 * 1024,
  /** until the headers are in */
  headersTimeoutMs: 5_000,
  /** until the whole request is in */
  requestTimeoutMs: 10_000,
  /** an idle keep-alive connection */
  keepAliveTimeoutMs: 5_000,
  /** any socket without traffic */
  idleTimeoutMs: 15_000,
} as const;

/** Whether a bound address is reachable only from this host (127.0.0.0/8, ::1, their v4-mapped forms). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  return a === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

export interface MetricsServer {
  /** the address actually bound, as host:port (port resolved when 0 was asked) */
  readonly address: string;
  readonly port: number;
  /** false when the bound address is reachable from other hosts */
  readonly loopback: boolean;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  address: string;
  registry: Registry;
  /** /healthz answers 200 when ok, 503 otherwise; always ok when absent */
  health?: () => Health;
  onError?: (err: unknown) => void;
  /** told once the server listens on an address other hosts can reach */
  onWarning?: (message: string, detail: Record<string, unknown>) => void;
}

/** Serves GET /metrics and GET /healthz on the address; resolves once listening. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const addr = parseListenAddress(opts.address);
  if (!addr) throw new Error(`metrics.address: ${JSON.stringify(opts.address)} is not host:port`);
  const L = METRICS_LIMITS;
  // node:http only where metrics are served: it costs start-up on a node that turns them off
  const http = await import('node:http');
  // every open connection, oldest first, with its requests in progress
  const open = new Map<Socket, { busy: number }>();
  const server = http.createServer({ maxHeaderSize: L.maxHeaderBytes, requestTimeout: L.requestTimeoutMs }, (req, res) => {
    const conn = open.get(req.socket);
    if (conn) {
      conn.busy += 1;
      res.once('close', () => (conn.busy -= 1));
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', Connection: 'close' }).end();
      return;
    }
    // no bodies: a GET with one is refused and the connection closed (its body is never read)
    if ((req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined) {
      res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end('request bodies are not accepted\n');
      return;
    }
    if (path === '/metrics') {
      opts.registry.collect(opts.onError).then(
        (body) => res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body),
        (err: unknown) => {
          opts.onError?.(err);
          res.writeHead(500).end();
        },
      );
    } else if (path === '/healthz') {
      const h = opts.health?.() ?? { ok: true };
      const body = h.detail ? `${h.ok ? 'ok' : 'unhealthy'}: ${h.detail}\n` : `${h.ok ? 'ok' : 'unhealthy'}\n`;
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
    }
  });
  server.on('connection', (socket: Socket) => {
    if (open.size >= L.maxConnections) {
      let idle: Socket | undefined;
      for (const [sock, c] of open) {
        if (c.busy === 0) {
          idle = sock;
          break;
        }
      }
      if (!idle) {
        socket.destroy();
        return;
      }
      open.delete(idle);
      idle.destroy();
    }
    open.set(socket, { busy: 0 });
    socket.once('close', () => open.delete(socket));
  });
  server.headersTimeout = L.headersTimeoutMs;
  server.keepAliveTimeout = L.keepAliveTimeoutMs;
  server.timeout = L.idleTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(new Error(`metrics.address ${opts.address}: cannot listen: ${err.message}`));
    server.once('error', fail);
    server.listen(addr.port, addr.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  if (opts.onError) server.on('error', opts.onError);
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const loopback = isLoopbackAddress(bound.address);
  if (!loopback) {
    opts.onWarning?.(
      `metrics: listening on ${host}:${bound.port}, reachable from other hosts; /metrics names namespaces and shares. Set metrics.address to 127.0.0.1:${bound.port} unless a remote scraper needs it, and firewall the port`,
      { address: `${host}:${bound.port}` },
    );
  }
  return {
    address: `${host}:${bound.port}`,
    port: bound.port,
    loopback,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
