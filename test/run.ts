// Runs every test file in its own Node process (a crash in one cannot hide the others), reads
// uvu's totals from each and prints one closing line: "N passed, N failed".
// usage: node dist/test/run.js [unit|e2e|FILTER...]
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = __dirname;
const groups = ['unit', 'e2e'];
const args = process.argv.slice(2);
const chosenGroups = args.filter((a) => groups.includes(a));
const filters = args.filter((a) => !groups.includes(a));

const files: string[] = [];
for (const g of chosenGroups.length ? chosenGroups : groups) {
  const dir = join(root, g);
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.test.js')) continue;
    if (filters.length && !filters.some((x) => f.includes(x))) continue;
    files.push(join(dir, f));
  }
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0;
let failed = 0;
let skipped = 0;
const failures: string[] = [];
for (const file of files) {
  const started = Date.now();
  process.stdout.write(`\n=== ${file.slice(root.length + 1)}\n`);
  const r = spawnSync(process.execPath, ['--enable-source-maps', file], {
    stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    maxBuffer: 256 * 1024 * 1024,
    // a hung file must not hang the whole run (CI has 90 minutes for everything)
    timeout: Number(process.env.TEST_FILE_TIMEOUT_MS ?? 15 * 60 * 1000),
    killSignal: 'SIGKILL',
  });
  if (r.error) process.stdout.write(`!!! ${file}: ${r.error.message}\n`);
  const out = strip(r.stdout ?? '');
  process.stdout.write(out);
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const sk = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    failed += 1; // the file died before uvu could report: count it, never hide it
    failures.push(`${file} (exit ${r.status ?? r.signal}, no uvu totals)`);
    continue;
  }
  passed += ok;
  skipped += sk;
  // uvu's Total excludes skipped tests; a non-zero exit with every test passed still counts as one failure
  const bad = Math.max(0, total - ok) + (r.status !== 0 && total === ok ? 1 : 0);
  failed += bad;
  if (bad > 0) failures.push(`${file} (${bad} failed, exit ${r.status})`);
  process.stdout.write(`--- ${secs}s\n`);
}
if (failures.length) process.stdout.write(`\nFAILED:\n  ${failures.join('\n  ')}\n`);
if (skipped) process.stdout.write(`\nWARNING: ${skipped} test(s) SKIPPED (see above for why)\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
