// The DRA door's work behind the transport: MemshareDraDriver.prepare/unprepare over the real core
// (real ledger with its O_DSYNC journal as the agent runs it, the local backend on real tmpfs),
// beside the NRI door's MemshareService.createContainer/endContainer on the same core, interleaved
// in one run. Two cases each: a share already present on the node (a record, the CDI spec written),
// and a share made for the binding (mount + record, and unmount at the end). The ResourceClaim is
// read from an in-memory reader, not an API server: a real Prepare adds that GET (and the gRPC
// round trip of dra-grpc.ts). Prints the figures and writes test/bench/results/dra-prepare.json
// (committed); never run by the test command, asserts nothing.
//
//   flock /tmp/nri-memshare-tests.lock node dist/test/bench/dra-prepare.js [-n 300]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readMountInfo, umount2, MNT_DETACH } from '../../native';
import { MemoryDeclarationSource, MergedDeclarationStore } from '../../plugin/declarations';
import { Ledger } from '../../plugin/ledger';
import { MemshareService } from '../../plugin/memshare/service';
import { LocalBackend } from '../../plugin/backends';
import { MemshareDraDriver } from '../../plugin/dra/driver';
import { deviceNameOf } from '../../plugin/dra/devices';
import type { ClaimRef, ResourceClaimView } from '../../plugin/dra/types';
import { DEFAULT_LIMITS, type ShareDeclaration } from '../../plugin/model';
import { percentiles, round, type Percentiles } from './stats';

const repo = resolve(__dirname, '..', '..', '..');
const resultsFile = join(repo, 'test', 'bench', 'results', 'dra-prepare.json');
const DRIVER = 'memshare.nri.io';
const args = process.argv.slice(2);
const N = args.includes('-n') ? Number(args[args.indexOf('-n') + 1]) : 300;

const decl = (name: string): ShareDeclaration => ({ namespace: 'bench', name, sizeBytes: 128 << 20, allowedNamespaces: [], origin: 'bench' });
const us = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1000;
const ms = (p: Percentiles) => ({ n: p.n, p50: round(p.p50 / 1000), p90: round(p.p90 / 1000), p99: round(p.p99 / 1000) });

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dra-prepare-bench-'));
  const { ledger } = await Ledger.open(join(dir, 'state'), { sync: true });
  const declarations = new MergedDeclarationStore([new MemoryDeclarationSource('bench', [decl('hot'), decl('cold')])]);
  const backend = new LocalBackend({ sharesDir: join(dir, 'shares'), stateDir: join(dir, 'state') });
  const service = new MemshareService({ backend, ledger, declarations, limits: DEFAULT_LIMITS });
  await service.init();
  const views = new Map<string, ResourceClaimView>();
  const driver = new MemshareDraDriver({ driverName: DRIVER, reader: { read: async (r) => views.get(r.uid)! }, service, declarations, cdiDir: join(dir, 'cdi') });
  let seq = 0;
  const claimOf = (share: string): ClaimRef => {
    const c = { namespace: 'bench', name: `c${++seq}`, uid: `${(++seq).toString(16).padStart(8, '0')}-0000-4000-8000-000000000000` };
    views.set(c.uid, { ...c, results: [{ request: 'shm', driver: DRIVER, pool: 'node', device: deviceNameOf('bench', share) }], config: [] });
    return c;
  };
  const podOf = (share: string) => ({ id: `sb${++seq}`, name: `p${seq}`, namespace: 'bench', uid: `u${seq}`, annotations: { 'memshare.nri.io/pod': share } });

  // keeps "hot" present throughout
  const pin = claimOf('hot');
  await driver.prepare([pin]);

  const t: Record<string, number[]> = { prepareHot: [], unprepareHot: [], createHot: [], endHot: [], prepareCold: [], unprepareCold: [], createCold: [], endCold: [] };
  for (let i = 0; i < N + 20; i++) {
    const keep = i >= 20; // the first rounds warm the JIT
    for (const [share, suffix] of [['hot', 'Hot'], ['cold', 'Cold']] as const) {
      const c = claimOf(share);
      let t0 = process.hrtime.bigint();
      const r = (await driver.prepare([c])).get(c.uid)!;
      const prep = us(t0);
      if ('error' in r) throw new Error(r.error);
      t0 = process.hrtime.bigint();
      await driver.unprepare([c]);
      const unprep = us(t0);
      const p = podOf(share);
      const ctr = { id: `ctr${++seq}`, podSandboxId: p.id, name: 'app', state: 'created' as const };
      t0 = process.hrtime.bigint();
      await service.createContainer(p, ctr);
      const create = us(t0);
      t0 = process.hrtime.bigint();
      await service.endContainer(ctr.id, 'bench');
      const end = us(t0);
      if (!keep) continue;
      t[`prepare${suffix}`].push(prep);
      t[`unprepare${suffix}`].push(unprep);
      t[`create${suffix}`].push(create);
      t[`end${suffix}`].push(end);
    }
  }
  await driver.unprepare([pin]);
  service.close();
  await ledger.close();
  for (const m of readMountInfo().reverse()) if (m.mountPoint.startsWith(`${dir}/`)) umount2(m.mountPoint, MNT_DETACH);
  rmSync(dir, { recursive: true, force: true });

  const figures: Record<string, ReturnType<typeof ms>> = {};
  for (const [k, xs] of Object.entries(t)) figures[k] = ms(percentiles(xs));
  const label: Record<string, string> = {
    prepareHot: 'DRA prepare, share present (record + CDI spec)',
    unprepareHot: 'DRA unprepare, share stays',
    createHot: 'NRI createContainer, share present (record)',
    endHot: 'NRI endContainer, share stays',
    prepareCold: 'DRA prepare, share made (mount + record + spec)',
    unprepareCold: 'DRA unprepare, share released (unmount)',
    createCold: 'NRI createContainer, share made (mount + record)',
    endCold: 'NRI endContainer, share released (unmount)',
  };
  for (const [k, f] of Object.entries(figures)) console.log(`${label[k].padEnd(52)} p50 ${f.p50} ms  p90 ${f.p90} ms  p99 ${f.p99} ms  (n=${f.n})`);
  mkdirSync(join(repo, 'test', 'bench', 'results'), { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify({
    what: 'the DRA driver and the NRI path over the same core (real ledger with O_DSYNC, local tmpfs), interleaved; claims from memory (no API server), no transport; ms',
    machine: { cpus: require('node:os').cpus().length, node: process.version, when: new Date().toISOString() },
    labels: label,
    figures,
  }, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
