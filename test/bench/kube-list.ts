// ShareMemory objects of the largest size the CRD allows, listed by the agent's Kubernetes source
// in a process with the launcher's heap flags (issue 22.1): its RSS and heap after the first list of
// 10,000 and 100,000 of them. Run from bench.ts (`--only kube-list`), or alone:
//   node dist/test/bench/kube-list.js [--objects 10000,100000]
// The objects come from a generator standing in for the API server (test/support/sharememory-
// generator.ts): a real API server cannot hold 100,000 objects of some 290 KiB here (29 GB; etcd's
// default quota is 2 GiB, its largest 8 GiB), so the pages are made as they are sent. Each object:
// 256 allowedNamespaces and 256 readOnlyNamespaces of 63 characters (drawn from 5,000 names) and
// 256 KiB of annotations. Figures only; nothing is asserted here.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShareMemoryGenerator } from '../support/sharememory-generator';

const repo = join(__dirname, '..', '..', '..');

export interface KubeListFigures {
  objects: number;
  objectBytes: number;
  listedBytes: number;
  pages: number;
  listSeconds: number;
  declarationsKept: number;
  problems: number;
  heapUsedAfterGcMiB: number;
  rssAfterListMiB: number;
  peakRssMiB: number;
  launcherHeapMiB: number;
  survived: boolean;
  problem?: string;
}

function launcherFlags(): string[] {
  return readFileSync(join(repo, 'packaging', 'nri-memshare.sh'), 'utf8').match(/--max-[a-z-]+=\d+/g) ?? [];
}

async function one(count: number): Promise<KubeListFigures> {
  const gen = new ShareMemoryGenerator({ count });
  await gen.start();
  const flags = launcherFlags();
  const heap = Number(/--max-old-space-size=(\d+)/.exec(flags.join(' '))?.[1] ?? 0);
  try {
    const child = spawn(process.execPath, [...flags, '--expose-gc', join(__dirname, '..', 'support', 'kube-list-agent.js'), gen.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    let line: Record<string, unknown> = {};
    try {
      line = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    } catch {
      line = { ok: false, problem: `exited ${code}: ${err.slice(-300)}` };
    }
    return {
      objects: count,
      objectBytes: gen.object(1).length,
      listedBytes: gen.served.bytes,
      pages: gen.served.pages,
      listSeconds: Number(line.listMs ?? 0) / 1000,
      declarationsKept: Number(line.declarations ?? 0),
      problems: Number(line.problems ?? 0),
      heapUsedAfterGcMiB: Number(line.heapUsedMiB ?? 0),
      rssAfterListMiB: Number(line.rssMiB ?? 0),
      peakRssMiB: Number(line.maxRssMiB ?? 0),
      launcherHeapMiB: heap,
      survived: code === 0 && line.ok === true,
      ...(line.ok === true ? {} : { problem: String(line.problem) }),
    };
  } finally {
    await gen.stop();
  }
}

export async function benchKubeList(counts: number[]): Promise<KubeListFigures[]> {
  const out: KubeListFigures[] = [];
  for (const n of counts) {
    const f = await one(n);
    console.log(
      `kube-list: ${n} objects of ${f.objectBytes} bytes (${(f.listedBytes / 1e9).toFixed(1)} GB in ${f.pages} pages) listed in ${f.listSeconds.toFixed(1)} s: ` +
        `${f.declarationsKept} declarations kept, ${f.problems} problems; heap after GC ${f.heapUsedAfterGcMiB} MiB, RSS ${f.rssAfterListMiB} MiB (peak ${f.peakRssMiB} MiB), ` +
        `launcher heap ${f.launcherHeapMiB} MiB: ${f.survived ? 'survived' : `FAILED (${f.problem})`}`,
    );
    out.push(f);
  }
  return out;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const counts = (args.includes('--objects') ? args[args.indexOf('--objects') + 1] : '10000,100000').split(',').map(Number);
  benchKubeList(counts).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
