// The metrics listener stays small (a connection cap where new connections win over idle ones, 8 KiB of headers, no bodies, timeouts, a
// warning beyond loopback), and the scrape carries the process metrics and build info an
// operator expects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { Registry } from '../../plugin/prometheus';
import { createMemshareMetrics } from '../../plugin/agent/metrics';
import { isLoopbackAddress, startMetricsServer, METRICS_LIMITS, type MetricsServer } from '../../plugin/agent/metrics-listener';
import { packageVersion, NRI_PROTOCOL_VERSION } from '../../plugin/agent/build-info';
import { within } from '../support/util';

const servers: MetricsServer[] = [];
const sockets: Socket[] = [];
test.after.each(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function server(address = '127.0.0.1:0', warnings?: string[]): Promise<MetricsServer> {
  const m = createMemshareMetrics();
  const s = await startMetricsServer({ address, registry: m.registry, onWarning: (msg) => warnings?.push(msg) });
  servers.push(s);
  return s;
}

/** A raw connection: what the server sent, and whether it closed the connection. */
function raw(port: number): { socket: Socket; data: () => string; closed: Promise<void>; connected: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let data = '';
  socket.on('data', (b: Buffer) => (data += b.toString('latin1')));
  socket.on('error', () => {});
  return {
    socket,
    data: () => data,
    closed: new Promise((r) => socket.once('close', () => r())),
    connected: new Promise((r) => socket.once('connect', () => r())),
  };
}

/** Sends one request on a kept-alive connection and waits for its whole response. */
async function exchange(c: ReturnType<typeof raw>, request: string): Promise<string> {
  const before = c.data().length;
  c.socket.write(request);
  await within(new Promise<void>((resolve) => {
    const check = () => {
      const d = c.data().slice(before);
      const head = d.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(d);
      const whole = len ? d.length >= head + 4 + Number(len[1]) : d.endsWith('\r\n0\r\n\r\n'); // Content-Length or chunked
      if (head >= 0 && whole) {
        c.socket.off('data', check);
        resolve();
      }
    };
    c.socket.on('data', check);
    check();
  }), 'a response');
  return c.data().slice(before);
}

const GET = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';

test(`at most ${METRICS_LIMITS.maxConnections} connections at once; one more takes the slot of the oldest idle one`, async () => {
  const s = await server();
  const held = [];
  for (let i = 0; i < METRICS_LIMITS.maxConnections; i++) {
    const c = raw(s.port);
    // answered: the server has accepted it, and keeps it open (keep-alive)
    assert.match(await exchange(c, GET), /^HTTP\/1\.1 200 /);
    held.push(c);
  }
  // issue 22.6: idle connections held open must not keep a health check out
  const extra = raw(s.port);
  await extra.connected;
  assert.match(await exchange(extra, GET), /^HTTP\/1\.1 200 /, 'the new connection is answered');
  await within(held[0].closed, 'the oldest idle connection is closed for it');
  // the others still work: the cap holds, only one gave way
  for (const c of held.slice(1)) assert.match(await exchange(c, GET), /^HTTP\/1\.1 200 /);
  assert.is(held[0].socket.destroyed, true);
});

test(`${METRICS_LIMITS.maxConnections} connections trickling their headers do not keep out a scrape and a health check`, async () => {
  const s = await server();
  const slow = [];
  for (let i = 0; i < METRICS_LIMITS.maxConnections; i++) {
    const c = raw(s.port);
    await c.connected;
    c.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: '); // and never the rest
    slow.push(c);
  }
  // before the fix the server closed these at once, unanswered, until Node's 30 s header sweep
  const scrape = raw(s.port);
  const metrics = await exchange(scrape, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(metrics, /^HTTP\/1\.1 200 /);
  assert.match(metrics, /nri_memshare_build_info/);
  const health = raw(s.port);
  assert.match(await exchange(health, GET), /^HTTP\/1\.1 200 /);
  await within(Promise.all([slow[0].closed, slow[1].closed]), 'the two oldest slow connections are closed');
  assert.is(slow[2].socket.destroyed, false, 'no more than needed were closed');
});

test('a connection past the cap is closed unanswered only while every slot answers a request', async () => {
  const m = createMemshareMetrics();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let scraping = 0;
  m.registry.onCollect(() => {
    scraping += 1;
    return gate; // every scrape waits: all slots busy
  });
  const s = await startMetricsServer({ address: '127.0.0.1:0', registry: m.registry });
  servers.push(s);
  const busy = [];
  for (let i = 0; i < METRICS_LIMITS.maxConnections; i++) {
    const c = raw(s.port);
    await c.connected;
    c.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    busy.push(c);
  }
  await within((async () => {
    while (scraping < METRICS_LIMITS.maxConnections) await new Promise((r) => setTimeout(r, 10));
  })(), 'every slot answering a scrape');
  const extra = raw(s.port);
  extra.socket.write(GET);
  await within(extra.closed, 'the connection over the cap is closed');
  const refused = extra.data() === '';
  assert.ok(refused, 'nothing was answered on the connection over the cap');
  release();
  for (const c of busy) assert.match(await exchange(c, ''), /^HTTP\/1\.1 200 /);
});

test('headers over 8 KiB are refused with 431; a body is refused with 413 and the connection closed', async () => {
  const s = await server();
  const big = raw(s.port);
  big.socket.write(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(9 * 1024)}\r\n\r\n`);
  await within(big.closed, 'closed after 431');
  assert.match(big.data(), /^HTTP\/1\.1 431 /);

  const fits = raw(s.port);
  assert.match(await exchange(fits, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(7 * 1024)}\r\n\r\n`), /^HTTP\/1\.1 200 /, '7 KiB of headers is fine');

  const body = raw(s.port);
  body.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
  await within(body.closed, 'closed after 413');
  assert.match(body.data(), /^HTTP\/1\.1 413 /);

  const chunked = raw(s.port);
  chunked.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  await within(chunked.closed, 'closed after 413');
  assert.match(chunked.data(), /^HTTP\/1\.1 413 /);
});

test('a warning when metrics listen beyond loopback, none on loopback', async () => {
  const quiet: string[] = [];
  const lo = await server('127.0.0.1:0', quiet);
  assert.ok(lo.loopback);
  assert.equal(quiet, []);
  const loud: string[] = [];
  const any = await server('0.0.0.0:0', loud);
  assert.not.ok(any.loopback);
  assert.is(loud.length, 1);
  assert.match(loud[0], /^metrics: listening on 0\.0\.0\.0:\d+, reachable from other hosts; .*Set metrics\.address to 127\.0\.0\.1:\d+/);
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopbackAddress(a), a);
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1']) assert.not.ok(isLoopbackAddress(a), a);
});

test('the scrape has process metrics and build info', async () => {
  const m = createMemshareMetrics(new Registry());
  const text = await m.registry.collect();
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} missing:\n${text}`);
    return Number(line.slice(name.length + 1));
  };
  const rss = value('process_resident_memory_bytes');
  assert.ok(rss > 10 * 1024 * 1024 && rss === Math.floor(rss), `rss ${rss}`);
  const start = value('process_start_time_seconds');
  assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600, `start ${start}`);
  const fds = value('process_open_fds');
  // the count of this process's descriptors, as /proc shows them (minus readdir's own)
  assert.is(fds, readdirSync('/proc/self/fd').length - 1);
  assert.ok(value('process_max_fds') >= fds);
  assert.ok(text.includes('# TYPE process_open_fds gauge\n'));
  const version = packageVersion();
  assert.is.not(version, 'unknown');
  assert.ok(text.includes(`nri_memshare_build_info{version="${version}",nri_version="${NRI_PROTOCOL_VERSION}"} 1\n`), text);
});

test.run();
