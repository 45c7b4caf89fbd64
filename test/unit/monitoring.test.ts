// The shipped alerts and dashboard (packaging/monitoring/) against what the agent really exports:
// the agent runs (fake runtime for containerd's NRI side, fake API server for the ShareMemory
// watch: neither is what is tested here), its /metrics is scraped, and every series the rules, the
// promtool tests and the dashboard name must be in that scrape, so a renamed metric fails here.
// Then `promtool test rules` (Debian's prometheus package, test/harness/fetch-promtool.sh) runs
// the rules on prometheus-rule.test.yaml.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { FakeRuntime } from '../support/fake-runtime';
import { FakeApiServer } from '../support/fake-apiserver';
import { kubeconfigText } from '../support/fake-apiserver-https';
import { startPlugin } from '../e2e/plugin-process';
import { AGENT_CLI } from '../support/agent-cli';
import { REFUSAL_REASONS } from '../../plugin/memshare/authorize';

const ROOT = join(__dirname, '..', '..', '..');
const MONITORING = join(ROOT, 'packaging', 'monitoring');
const CACHE = process.env.NRI_MEMSHARE_CACHE ?? '/var/tmp/nri-memshare-cache';
const PROMTOOL = join(CACHE, 'prometheus', 'usr', 'bin', 'promtool');

/** Series names (histograms by their base name too) and refusal reasons from one real scrape. */
let scraped: { names: Set<string>; text: string } | undefined;

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Metric names an expression uses (the agent's own families; `up` and `time` are Prometheus's). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:nri_memshare|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]);
}

test('a real scrape: the agent with a cluster, every series the alerts need present from the start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'monitoring-'));
  const rt = await FakeRuntime.start({ auto: { runtimeName: 'containerd', runtimeVersion: 'v2.1.9' } });
  const api = new FakeApiServer();
  await api.start();
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'kubeconfig'), kubeconfigText(api.url, '    {}\n', ''));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({
    nri: { socket: rt.path }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'),
    metrics: { address: '127.0.0.1:0' }, kubernetes: { kubeconfig: join(dir, 'kubeconfig'), status: false, events: false },
  }));
  const agent = startPlugin([AGENT_CLI, 'run', '--config', config]);
  try {
    await agent.waitFor(/"msg":"nri: synchronized"/, 1, 20000);
    const address = /"address":"([^"]+)","msg":"metrics: listening"/.exec(agent.output())?.[1];
    assert.ok(address, agent.output());
    let text = '';
    // the watch has answered once the last-sync gauge is there
    for (let i = 0; i < 100 && !/^nri_memshare_kubernetes_last_sync_timestamp_seconds /m.test(text); i++) {
      text = await fetchText(`http://${address}/metrics`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const names = new Set<string>();
    for (const line of text.split('\n')) {
      // a family with no series yet (share gauges on a node without shares) still has its TYPE line
      const t = /^# TYPE (\S+) /.exec(line);
      if (t) names.add(t[1]);
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/.exec(line);
      if (!m) continue;
      names.add(m[1]);
      names.add(m[1].replace(/_(bucket|sum|count)$/, ''));
    }
    scraped = { names, text };
    for (const n of ['process_cpu_seconds_total', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_eventloop_lag_p99_seconds',
      'nodejs_eventloop_lag_max_seconds', 'nri_memshare_declaration_problems', 'nri_memshare_kubernetes_last_sync_timestamp_seconds',
      'nri_memshare_cluster_write_failures_total', 'nri_memshare_evictions_total', 'nri_memshare_eviction_failures_total']) {
      assert.ok(names.has(n), `the agent exports ${n}`);
    }
    // every refusal reason at 0 from the start, so increase() sees the first refusal
    for (const r of REFUSAL_REASONS) assert.match(text, new RegExp(`^nri_memshare_refusals_total\\{reason="${r}"\\} 0$`, 'm'));
    for (const k of ['status', 'event']) assert.match(text, new RegExp(`^nri_memshare_cluster_write_failures_total\\{kind="${k}"\\} 0$`, 'm'));
    assert.match(text, /^nri_memshare_declaration_problems\{source="kubernetes"\} 0$/m);
    const synced = Number(/^nri_memshare_kubernetes_last_sync_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(Math.abs(synced - Date.now() / 1000) < 60, `last sync ${synced} is now`);
    assert.ok(Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1]) > 0);
  } finally {
    await agent.kill('SIGTERM');
    await rt.close();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every RefusalError reason in the code is in REFUSAL_REASONS', () => {
  const out = spawnSync('grep', ['-rhoE', "RefusalError\\([^;]*'([a-z-]+)'\\)", join(ROOT, 'plugin')], { encoding: 'utf8' }).stdout;
  const used = [...out.matchAll(/'([a-z-]+)'\)$/gm)].map((m) => m[1]);
  assert.ok(used.length >= 3, out);
  for (const r of used) assert.ok(REFUSAL_REASONS.includes(r), `reason ${r} is not in REFUSAL_REASONS`);
});

test('the alert rules, their promtool tests and the dashboard name only series the agent exports', () => {
  assert.ok(scraped, 'the scrape above ran');
  const rule = parse(readFileSync(join(MONITORING, 'prometheus-rule.yaml'), 'utf8')) as { kind: string; spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> } };
  assert.is(rule.kind, 'PrometheusRule');
  const missing: string[] = [];
  const check = (where: string, expr: string) => {
    for (const n of metricsIn(expr)) if (!scraped!.names.has(n)) missing.push(`${where}: ${n}`);
  };
  const alerts = rule.spec.groups.flatMap((g) => g.rules);
  for (const r of alerts) check(`alert ${r.alert}`, r.expr);
  const tests = parse(readFileSync(join(MONITORING, 'prometheus-rule.test.yaml'), 'utf8')) as { tests: Array<{ input_series: Array<{ series: string }> }> };
  for (const t of tests.tests) for (const s of t.input_series) check('promtool test input', s.series);
  const dash = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
  for (const p of dash.panels) for (const t of p.targets) check(`panel ${p.title}`, t.expr);
  assert.equal(missing, []);
  // what the issue asks alerts for
  for (const a of ['NriMemshareAgentDown', 'NriMemshareNotRegistered', 'NriMemshareRefusals', 'NriMemshareReleasesPending', 'NriMemshareShareNearlyFull',
    'NriMemshareDeclarationProblems', 'NriMemshareKubernetesWatchStale', 'NriMemshareClusterWritesFailing', 'NriMemshareEvictionsFailing']) {
    assert.ok(alerts.some((r) => r.alert === a), `alert ${a}`);
  }
  // and the check would catch a renamed metric
  check('probe', 'nri_memshare_renamed_total');
  assert.equal(missing, ['probe: nri_memshare_renamed_total']);
});

test('promtool test rules passes on the shipped rules', () => {
  if (!existsSync(PROMTOOL)) {
    const msg = `SKIPPED: ${PROMTOOL} missing (bash test/harness/fetch-promtool.sh); the alert rules were NOT run`;
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'promtool-'));
  try {
    const rule = parse(readFileSync(join(MONITORING, 'prometheus-rule.yaml'), 'utf8')) as { spec: { groups: unknown[] } };
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
    copyFileSync(join(MONITORING, 'prometheus-rule.test.yaml'), join(dir, 'prometheus-rule.test.yaml'));
    const c = spawnSync(PROMTOOL, ['check', 'rules', 'rules.yaml'], { cwd: dir, encoding: 'utf8' });
    assert.is(c.status, 0, c.stdout + c.stderr);
    const r = spawnSync(PROMTOOL, ['test', 'rules', 'prometheus-rule.test.yaml'], { cwd: dir, encoding: 'utf8' });
    process.stdout.write(`\n  promtool test rules: ${r.stdout.trim().split('\n').pop()}\n`);
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
