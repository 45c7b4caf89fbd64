// The long form of the chaos test, as a script:
//   node dist/test/chaos/run.js [--kills N] [--version 1.7|2.1] [--backend local|ubs] [--restarts N] [--seed S] [--limit-min M] [--save]
// Prints the counts and every violation; --save writes them into test/chaos/results.json (keyed by
// containerd version, and backend for ubs). Exit status 1 when a violation was found. Needs root (a real containerd).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runChaos, summary, type ChaosBackend, type ChaosResult } from './chaos';
import type { ContainerdVersion } from '../harness';

interface Args {
  kills: number;
  versions: ContainerdVersion[];
  restarts?: number;
  seed?: number;
  limitMin: number;
  save: boolean;
  backend: ChaosBackend;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { kills: 500, versions: ['2.1'], limitMin: 60, save: false, backend: 'local' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const num = (): number => {
      const s = v();
      const n = Number(s);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${k}: not a number: ${s}`);
      return n;
    };
    switch (k) {
      case '--kills': a.kills = num(); break;
      case '--restarts': a.restarts = num(); break;
      case '--seed': a.seed = num(); break;
      case '--limit-min': a.limitMin = num(); break;
      case '--save': a.save = true; break;
      case '--backend': {
        const b = v();
        if (b !== 'local' && b !== 'ubs') throw new Error(`--backend must be local or ubs, got ${b}`);
        a.backend = b;
        break;
      }
      case '--version': {
        const s = v();
        const vs = s === 'all' ? ['1.7', '2.1'] : s.split(',');
        for (const x of vs) if (x !== '1.7' && x !== '2.1') throw new Error(`--version must be 1.7, 2.1 or all, got ${s}`);
        a.versions = vs as ContainerdVersion[];
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write('usage: node dist/test/chaos/run.js [--kills N] [--version 1.7|2.1|all] [--backend local|ubs] [--restarts N] [--seed S] [--limit-min M] [--save]\n');
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        throw new Error(`unknown argument ${k} (see --help)`);
    }
  }
  return a;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the chaos test runs a real containerd: run it as root');
  const args = parseArgs(process.argv.slice(2));
  const results: ChaosResult[] = [];
  for (const version of args.versions) {
    const r = await runChaos({
      version,
      backend: args.backend,
      kills: args.kills,
      containerdRestarts: args.restarts ?? Math.max(3, Math.round(args.kills / 100)),
      seed: args.seed,
      durationLimitMs: args.limitMin * 60_000,
    });
    results.push(r);
    process.stdout.write(`\nRESULT ${summary(r)}\n`);
    for (const v of r.violations) process.stdout.write(`  VIOLATION ${v}\n`);
    if (Object.keys(r.createFailureKinds).length) {
      process.stdout.write('  CreateContainer failures:\n');
      for (const [k, n] of Object.entries(r.createFailureKinds).sort((x, y) => y[1] - x[1])) process.stdout.write(`    ${n} x ${k}\n`);
    }
    if (r.agentLog) process.stdout.write(`  agent log kept at ${r.agentLog}\n`);
  }
  if (args.save) {
    // the source tree's file, not dist's: dist/test/chaos -> test/chaos
    const file = join(__dirname, '..', '..', '..', 'test', 'chaos', 'results.json');
    const all = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
    for (const r of results) {
      all[`containerd-${r.version}${r.backend === 'ubs' ? '-ubs' : ''}`] = {
        date: new Date().toISOString(),
        containerd: r.containerdVersion,
        seed: r.seed,
        durationSec: Math.round(r.durationMs / 1000),
        timedOut: r.timedOut,
        counts: r.counts,
        violations: r.violations,
        createFailureKinds: r.createFailureKinds,
      };
    }
    writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
    process.stdout.write(`saved to ${file}\n`);
  }
  process.exitCode = results.some((r) => r.violations.length || r.timedOut) ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`chaos: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(2);
});
