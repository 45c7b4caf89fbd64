// One HTTP(S) request to the Kubernetes API server, with node:http(s) only. Every caller (the
// ShareMemory list and watch, the status and Event writers) goes through `sendRequest`, so the
// timeout, the TLS material and the error wording are written once.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConnection, KubeCredentials } from './kubeconfig';

/** The largest whole answer `kubeRequest` reads (the writers' answers are a few KiB; a list is read with list.ts). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** below the server's base path, e.g. /apis/events.k8s.io/v1/namespaces/NS/events */
  path: string;
  query?: URLSearchParams;
  contentType?: string;
  body?: string;
  /** no response (headers) within this fails (default 30000 ms) */
  timeoutMs?: number;
}

export interface KubeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A body larger than the cap: the request fails naming it. */
export class BodyTooLargeError extends Error {}

/** "ECONNREFUSED connect ECONNREFUSED ..." style: the errno code once, then the message. */
export function describeRequestError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const msg = err instanceof Error ? err.message : String(err);
  return `${code && !msg.includes(code) ? `${code} ` : ''}${msg}`;
}

/**
 * Sends one request and resolves with the response as soon as its headers arrive (any HTTP
 * status); rejects with the socket's error, or when no response came within the timeout.
 * `onRequest` sees the request, so a caller can destroy it to stop (a watch's stop()). Credentials
 * that cannot be read throw synchronously.
 */
export function sendRequest(
  credentials: KubeCredentials,
  r: KubeRequest,
  onRequest?: (req: http.ClientRequest) => void,
  agent?: http.Agent,
): Promise<http.IncomingMessage> {
  const timeoutMs = r.timeoutMs ?? 30000;
  // rotating tokens and certificates: read now (a failure throws here, before any promise)
  const conn = credentials.connection();
  const base = conn.server.pathname.replace(/\/+$/, '');
  const qs = r.query?.toString();
  const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'nri-memshare', ...conn.headers };
  if (r.body !== undefined) {
    headers['Content-Type'] = r.contentType ?? 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(r.body));
  }
  return new Promise((resolve, reject) => {
    const req = openRequest(conn, r.method, `${base}${r.path}${qs ? `?${qs}` : ''}`, headers, agent);
    onRequest?.(req);
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(r.body);
  });
}

/** The whole body, at most maxBytes; a failure rejects with a plain Error (the caller names the server). */
export function readBody(res: http.IncomingMessage, timeoutMs: number, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const tooLarge = () => {
      clearTimeout(timer);
      reject(new BodyTooLargeError(`the response is larger than the ${maxBytes} bytes allowed`));
      res.destroy();
    };
    const timer = setTimeout(() => res.destroy(new Error(`the response did not complete within ${timeoutMs} ms`)), timeoutMs);
    // a declared length over the cap fails before any of it is read
    if (Number(res.headers['content-length']) > maxBytes) return tooLarge();
    res.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxBytes) return tooLarge();
      chunks.push(c);
    });
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`reading the response: ${err.message}`));
    });
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.complete) reject(new Error('the connection closed before the response was complete'));
    });
  });
}

/**
 * One request and its whole answer (at most MAX_RESPONSE_BYTES), for the writers beside the
 * watch (plugin/cluster: status, Events). Any HTTP status resolves; no answer rejects with an
 * Error naming the server and the request (cause set).
 */
export async function kubeRequest(credentials: KubeCredentials, r: KubeRequest, agent?: http.Agent): Promise<KubeResponse> {
  const timeoutMs = r.timeoutMs ?? 30000;
  const where = `kubernetes ${credentials.server.origin}: ${r.method} ${r.path}`;
  try {
    const res = await sendRequest(credentials, { ...r, timeoutMs }, undefined, agent);
    const body = await readBody(res, timeoutMs, MAX_RESPONSE_BYTES);
    return { status: res.statusCode ?? 0, headers: res.headers, body };
  } catch (err) {
    throw new Error(`${where}: ${describeRequestError(err)}`, { cause: err });
  }
}

/**
 * `kubeRequest` over connections kept open between requests, for a caller on a request path (the
 * DRA door reads a claim in each Prepare: a TLS handshake per read was most of its time). The
 * agent keys its connections by the TLS material too, so rotated credentials get new ones.
 * close() ends the idle connections.
 */
export function keptAliveRequests(credentials: KubeCredentials): { send(r: KubeRequest): Promise<KubeResponse>; close(): void } {
  const agent = new (credentials.server.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 4 });
  return { send: (r) => kubeRequest(credentials, r, agent), close: () => agent.destroy() };
}

/** One request to the API server with this connection's TLS material; by default one connection per request. */
function openRequest(conn: KubeConnection, method: string, path: string, headers: Record<string, string>, agent?: http.Agent): http.ClientRequest {
  const opts: https.RequestOptions = {
    protocol: conn.server.protocol,
    hostname: conn.server.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: conn.server.port || (conn.server.protocol === 'https:' ? 443 : 80),
    path,
    method,
    headers,
    agent: agent ?? false, // by default one connection per request: a watch holds its own, and stop() ends it
  };
  if (conn.server.protocol === 'https:') {
    Object.assign(opts, {
      ca: conn.tls.ca,
      cert: conn.tls.cert,
      key: conn.tls.key,
      rejectUnauthorized: conn.tls.rejectUnauthorized,
      servername: conn.tls.servername,
    });
  }
  return (conn.server.protocol === 'https:' ? https : http).request(opts);
}

/** A failure talking to the API server, with a message meant for the operator. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    /** the server's Retry-After, in ms (0: none) */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** A 410 Gone: the resourceVersion (or continue token) is too old; list again. */
export class GoneError extends Error {}
