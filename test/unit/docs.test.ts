// The documentation keeps up with the code: the README's test command is what CI runs, every
// config key (with its default) is in docs/configuration.md, every metric in docs/operations.md.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultConfig } from '../../plugin/agent/config';
import { createMemshareMetrics } from '../../plugin/agent/metrics';

const root = join(__dirname, '..', '..', '..');
const read = (rel: string) => readFileSync(join(root, rel), 'utf8');

/** The fenced code blocks of a markdown section (from its heading to the next heading of its level). */
function sectionCodeLines(md: string, heading: string): string[] {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  assert.ok(start >= 0, `README has no "${heading}" heading`);
  const level = heading.match(/^#+/)![0].length;
  const out: string[] = [];
  let inCode = false;
  for (const l of lines.slice(start + 1)) {
    const h = /^(#+) /.exec(l);
    if (!inCode && h && h[1].length <= level) break;
    if (l.trim().startsWith('```')) {
      inCode = !inCode;
      continue;
    }
    if (inCode && l.trim() && !l.trim().startsWith('#')) out.push(l.trim());
  }
  return out;
}

/** Dotted paths of every leaf of an object: nri.socket, limits.maxShareBytes, ... */
function leaves(obj: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(...leaves(v as Record<string, unknown>, key));
    else out.push([key, v]);
  }
  return out;
}

test("the README's quick start is exactly the demo and the test command, the first two steps .ci/run runs", () => {
  const ci = read('.ci/run');
  // the scripts .ci/run runs, in order: the README's two commands, then the aarch64 run (docs/aarch64.md)
  const steps = ci.split('\n').map((l) => /^\s*(?:exec\s+)?bash\s+(\S+)/.exec(l)?.[1]).filter((x): x is string => !!x);
  assert.equal(steps, ['scripts/demo.sh', 'test/all.sh', 'test/arch64.sh']);
  const quick = sectionCodeLines(read('README.md'), '## Quick start');
  assert.equal(quick, ['bash scripts/demo.sh', 'bash test/all.sh']);
  for (const f of ['scripts/demo.sh', 'test/all.sh', 'test/arch64.sh']) assert.ok(existsSync(join(root, f)), `${f} is missing`);
});

test('every config key of defaultConfig() is in docs/configuration.md with its default', () => {
  const doc = read('docs/configuration.md');
  const rows = doc.split('\n').filter((l) => l.startsWith('|'));
  const keys = leaves(defaultConfig() as unknown as Record<string, unknown>);
  assert.ok(keys.length >= 12, `expected at least 12 config keys, found ${keys.length}`);
  for (const [key, value] of keys) {
    const row = rows.find((r) => r.includes(`\`${key}\``));
    assert.ok(row, `docs/configuration.md does not document \`${key}\``);
    assert.ok(row!.includes(String(value)), `docs/configuration.md: the row of \`${key}\` does not show its default ${String(value)}`);
  }
  // the optional key that defaultConfig() leaves out
  for (const key of ['kubernetes.kubeconfig', 'kubernetes.inCluster']) assert.ok(doc.includes(`\`${key}\``), `${key} undocumented`);
});

test('the README config table names every top-level key', () => {
  const readme = read('README.md');
  for (const [key] of leaves(defaultConfig() as unknown as Record<string, unknown>)) {
    assert.ok(readme.includes(`\`${key}\``), `README.md does not mention \`${key}\``);
  }
});

test('every metric is in docs/operations.md', () => {
  const doc = read('docs/operations.md');
  const names = createMemshareMetrics()
    .registry.render()
    .split('\n')
    .map((l) => /^# TYPE (\S+) /.exec(l)?.[1])
    .filter((x): x is string => !!x);
  assert.ok(names.length >= 8, `expected at least 8 metrics, found ${names.length}`);
  for (const name of names) assert.ok(doc.includes(`\`${name}\``), `docs/operations.md does not document \`${name}\``);
});

test('every refusal reason is in docs/operations.md', () => {
  const doc = read('docs/operations.md');
  const src = read('plugin/memshare/authorize.ts');
  const union = /export type RefusalReason =([^;]+);/.exec(src)?.[1] ?? '';
  const reasons = [...union.matchAll(/'([a-z-]+)'/g)].map((m) => m[1]);
  assert.ok(reasons.length >= 6, 'could not read RefusalReason from authorize.ts');
  for (const r of [...reasons, 'backend']) assert.ok(doc.includes(`| \`${r}\` |`), `docs/operations.md has no row for refusal reason ${r}`);
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsIn(md: string): Set<string> {
  const out = new Set<string>();
  let inCode = false;
  for (const l of md.split('\n')) {
    if (l.trim().startsWith('```')) inCode = !inCode;
    const h = !inCode && /^#{1,6} (.+)$/.exec(l);
    if (h) out.add(anchorOf(h[1]));
  }
  return out;
}

test('the docs link only to files and headings that exist', () => {
  const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const broken: string[] = [];
  for (const rel of docs) {
    const md = read(rel);
    const base = join(root, rel, '..');
    for (const m of md.matchAll(/\]\(([^)#\s]*)(#[^)\s]*)?\)/g)) {
      const [target, fragment] = [m[1], m[2]];
      if (/^[a-z]+:/.test(target)) continue;
      const file = target ? join(base, target) : join(root, rel);
      if (!existsSync(file)) {
        broken.push(`${rel} links to ${target}, which does not exist`);
        continue;
      }
      if (fragment && file.endsWith('.md') && !anchorsIn(readFileSync(file, 'utf8')).has(fragment.slice(1))) {
        broken.push(`${rel} links to ${target || rel}${fragment}, which has no such heading`);
      }
    }
  }
  assert.equal(broken, []);
});

test('the man page lists every command, option and exit status of status', () => {
  const man = read('packaging/nri-memshare.8');
  for (const cmd of ['run', 'status', 'check-config', 'version', 'help']) assert.match(man, new RegExp(`^\\.BI? ${cmd}\\b`, 'm'), `man page: ${cmd}`);
  for (const opt of ['config', 'json', 'log\\\\-level', 'socket', 'help', 'version']) assert.match(man, new RegExp(`\\\\-\\\\-${opt}\\b`), `man page: --${opt}`);
  assert.match(man, /\\-V\b/);
  const exit = man.slice(man.indexOf('.SH EXIT STATUS'), man.indexOf('.SH SEE ALSO'));
  for (const code of ['0', '1', '2', '3', '4']) assert.match(exit, new RegExp(`^\\.B ${code}$`, 'm'), `man page: status exit ${code}`);
  // the declarations directory is read with and without a cluster, as the README says
  assert.match(man, /declarations directory, which is read with or without a cluster/);
});

test.run();
