import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import { Registry } from '../../plugin/prometheus';
import { createMemshareMetrics } from '../../plugin/agent/metrics';
import { parseListenAddress, startMetricsServer } from '../../plugin/agent/metrics-listener';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('counter with labels renders HELP, TYPE and one line per label set', () => {
  const r = new Registry();
  const c = r.counter('x_total', 'Things.', ['reason']);
  c.labels('quota').inc();
  c.labels('quota').inc(2);
  c.labels('denied').inc();
  const text = r.render();
  assert.ok(text.includes('# HELP x_total Things.\n# TYPE x_total counter\n'));
  assert.ok(text.includes('x_total{reason="quota"} 3\n'));
  assert.ok(text.includes('x_total{reason="denied"} 1\n'));
  assert.throws(() => c.labels('a').inc(-1), /increment/);
});

test('label values are escaped', () => {
  const r = new Registry();
  r.gauge('g', 'G.', ['v']).labels('a"b\\c\nd').set(1);
  assert.ok(r.render().includes('g{v="a\\"b\\\\c\\nd"} 1\n'), r.render());
});

test('unlabelled metrics appear at 0 before their first update', () => {
  const r = new Registry();
  r.counter('c_total', 'C.');
  r.gauge('g', 'G.');
  assert.ok(r.render().includes('\nc_total 0\n'));
  assert.ok(r.render().includes('\ng 0\n'));
});

test('gauge set/inc/dec and remove of a child', () => {
  const r = new Registry();
  const g = r.gauge('share_bytes', 'B.', ['namespace', 'share']);
  g.labels('ns', 'a').set(100);
  g.labels('ns', 'a').inc(5);
  g.labels('ns', 'a').dec(2);
  g.labels('ns', 'b').set(7);
  assert.ok(r.render().includes('share_bytes{namespace="ns",share="a"} 103\n'));
  g.remove('ns', 'a');
  assert.not.ok(r.render().includes('share="a"'));
  assert.ok(r.render().includes('share_bytes{namespace="ns",share="b"} 7\n'));
  assert.throws(() => g.labels('only-one'), /expected 2 label/);
});

test('histogram buckets are cumulative and end with +Inf, sum and count', () => {
  const r = new Registry();
  const h = r.histogram('lat_seconds', 'L.', ['event'], [0.1, 1]);
  const c = h.labels('CreateContainer');
  c.observe(0.05);
  c.observe(0.1); // on the boundary: le is inclusive
  c.observe(0.5);
  c.observe(3);
  const t = r.render();
  assert.ok(t.includes('lat_seconds_bucket{event="CreateContainer",le="0.1"} 2\n'), t);
  assert.ok(t.includes('lat_seconds_bucket{event="CreateContainer",le="1"} 3\n'), t);
  assert.ok(t.includes('lat_seconds_bucket{event="CreateContainer",le="+Inf"} 4\n'), t);
  assert.ok(t.includes('lat_seconds_sum{event="CreateContainer"} 3.65\n'), t);
  assert.ok(t.includes('lat_seconds_count{event="CreateContainer"} 4\n'), t);
  assert.throws(() => r.histogram('bad', 'B.', [], [1, 1]), /strictly increasing/);
});

test('invalid names and duplicate registration are refused', () => {
  const r = new Registry();
  assert.throws(() => r.counter('bad-name', 'x'), /not a valid Prometheus name/);
  assert.throws(() => r.histogram('h', 'x', ['le']), /label "le"/);
  r.gauge('dup', 'x');
  assert.throws(() => r.gauge('dup', 'x'), /registered twice/);
});

test('memshare metrics have the product names', () => {
  const m = createMemshareMetrics();
  m.timer('CreateContainer').observe(0.002);
  assert.is(m.timer('CreateContainer'), m.timer('CreateContainer'), 'the child is cached');
  m.bindings.set(3);
  m.shareSizeBytes.labels('default', 's1').set(134217728);
  m.shareUsedBytes.labels('default', 's1').set(4096);
  m.releases.inc();
  m.refusals.labels('quota').inc();
  m.reconnects.inc();
  m.pluginRegistered.set(1);
  const t = m.registry.render();
  for (const line of [
    'nri_memshare_request_duration_seconds_count{event="CreateContainer"} 1',
    'nri_memshare_bindings 3',
    'nri_memshare_share_size_bytes{namespace="default",share="s1"} 134217728',
    'nri_memshare_share_used_bytes{namespace="default",share="s1"} 4096',
    'nri_memshare_releases_total 1',
    'nri_memshare_refusals_total{reason="quota"} 1',
    'nri_memshare_reconnects_total 1',
    'nri_memshare_plugin_registered 1',
  ]) {
    assert.ok(t.includes(`${line}\n`), `missing: ${line}\n${t}`);
  }
});

test('a million observations on a cached child are all counted (its cost is the benchmark\'s business)', () => {
  const m = createMemshareMetrics();
  const h = m.timer('StartContainer');
  for (let i = 0; i < 1_000_000; i++) h.observe((i % 1000) / 1e4);
  assert.is(h.count, 1_000_000);
  assert.is(m.timer('StartContainer'), h, 'the same child, not a new one per call');
});

test('parseListenAddress', () => {
  assert.equal(parseListenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.equal(parseListenAddress('[::1]:9464'), { host: '::1', port: 9464 });
  assert.equal(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  assert.is(parseListenAddress('9464'), undefined);
  assert.is(parseListenAddress('host:70000'), undefined);
  assert.is(parseListenAddress(':9464'), undefined);
});

test('server serves /metrics after collectors ran, /healthz, and 404', async () => {
  const m = createMemshareMetrics();
  let healthy = true;
  m.registry.onCollect(() => m.shareUsedBytes.labels('ns', 'late').set(42));
  m.registry.onCollect(() => {
    throw new Error('collector broke');
  });
  const errors: unknown[] = [];
  const srv = await startMetricsServer({
    address: '127.0.0.1:0',
    registry: m.registry,
    health: () => ({ ok: healthy, detail: healthy ? undefined : 'not registered' }),
    onError: (e) => errors.push(e),
  });
  try {
    assert.ok(srv.port > 0);
    assert.is(srv.address, `127.0.0.1:${srv.port}`);
    const met = await get(srv.port, '/metrics');
    assert.is(met.status, 200);
    assert.ok(met.type.startsWith('text/plain; version=0.0.4'));
    assert.ok(met.body.includes('nri_memshare_share_used_bytes{namespace="ns",share="late"} 42\n'));
    assert.is(errors.length, 1, 'a failing collector is reported and does not break the scrape');
    const ok = await get(srv.port, '/healthz');
    assert.is(ok.status, 200);
    healthy = false;
    const bad = await get(srv.port, '/healthz');
    assert.is(bad.status, 503);
    assert.ok(bad.body.includes('not registered'));
    assert.is((await get(srv.port, '/nope')).status, 404);
    assert.is((await get(srv.port, '/metrics', 'POST')).status, 405);
  } finally {
    await srv.close();
  }
});

test('server reports a port in use naming metrics.address', async () => {
  const r = new Registry();
  const a = await startMetricsServer({ address: '127.0.0.1:0', registry: r });
  try {
    let msg = '';
    try {
      await startMetricsServer({ address: a.address, registry: r });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, /metrics\.address .*cannot listen/);
  } finally {
    await a.close();
  }
  let msg2 = '';
  try {
    await startMetricsServer({ address: 'nonsense', registry: r });
  } catch (e) {
    msg2 = (e as Error).message;
  }
  assert.match(msg2, /metrics\.address: "nonsense" is not host:port/);
});

test.run();
