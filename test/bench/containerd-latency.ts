// Added CreateContainer latency on real containerd, through CRI: the agent versus none, and the
// agent's first binding of a share (a tmpfs mount) versus later bindings (the share already there).
// Modes interleave in rounds so drift of this noisy machine hits them all alike. containerd's own
// root and state live on a tmpfs here: on this VM's disk its metadata fsyncs alone scatter
// CreateContainer over tens of ms and would drown the plugin's share; the agent's records stay
// on the disk. The agent runs its default config (ledger.sync "auto": no fdatasync for local
// shares); one more mode runs it with ledger.sync "always", as a UBS node would.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd, uniqueName, type ContainerdVersion, type RunningPod, type CriClient } from '../harness';
import { startPlugin, type PluginProcess } from '../e2e/plugin-process';
import type { LedgerSync } from '../../plugin/agent/config';
import { percentiles, fmt, round } from './stats';
import { unmountUnder } from './bench';
import { mount, umount2, MNT_DETACH } from '../../native';

type MakeConfig = (dir: string, nriSocket: string, shares: Array<{ ns: string; name: string; size: string }>, ledgerSync?: LedgerSync) => string;
type AgentCmd = (cfg: string) => string[];

const MODES = ['none', 'agent-unannotated', 'agent-later-binding', 'agent-first-binding', 'agent-later-binding-fdatasync'] as const;
type Mode = (typeof MODES)[number];

async function timedCreate(cri: CriClient, pod: RunningPod, name: string): Promise<number> {
  const t = performance.now();
  const id = await cri.createContainer(pod.id, pod.config, { name, command: ['/bin/sleep', '300'] });
  const ms = performance.now() - t;
  await cri.removeContainer(id);
  return ms;
}

export async function benchContainerd(n: number, makeConfig: MakeConfig, agentCmd: AgentCmd, rounds = 8): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const base = mkdtempSync('/var/tmp/bench-containerd-');
  mount('tmpfs', base, 'tmpfs', 0, 'size=2g,mode=0755');
  const perRound = Math.ceil(n / rounds);
  for (const version of ['1.7', '2.1'] as ContainerdVersion[]) {
    const inst = await startContainerd({ version, baseDir: base });
    const dir = mkdtempSync(join(tmpdir(), `bench-agent-${version}-`));
    let agent: PluginProcess | undefined;
    try {
      const firstShares = Array.from({ length: rounds * perRound }, (_, i) => ({ ns: 'default', name: `first-${i}`, size: '128Mi' }));
      const shares = [{ ns: 'default', name: 'hot', size: '128Mi' }, ...firstShares];
      const cfg = makeConfig(dir, inst.nriSocket, shares);
      const cfgSynced = makeConfig(dir, inst.nriSocket, shares, 'always');
      const cri = inst.cri;
      const firstAnn: Record<string, string> = {};
      firstShares.forEach((s, i) => (firstAnn[`memshare.nri.io/container.f${i}`] = s.name));
      const podPlain = await cri.runPod({ name: uniqueName('plain') });
      const podHot = await cri.runPod({ name: uniqueName('hot'), annotations: { 'memshare.nri.io/pod': 'hot' } });
      const podFirst = await cri.runPod({ name: uniqueName('first'), annotations: firstAnn });
      const startAgent = async (config = cfg) => {
        const a = startPlugin(agentCmd(config).slice(1));
        await a.waitFor(/nri: synchronized/, 1, 30000);
        return a;
      };
      // a holder keeps "hot" mounted, so later bindings find it present
      agent = await startAgent();
      await cri.createContainer(podHot.id, podHot.config, { name: 'holder', command: ['/bin/sleep', '300'] });
      const samples = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
      // per round, each mode's median minus none's: drift between rounds cancels out
      const roundAdded = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
      let first = 0;
      for (let r = 0; r < rounds; r++) {
        const start = Object.fromEntries(MODES.map((m) => [m, samples[m].length])) as Record<Mode, number>;
        await agent?.kill();
        agent = undefined;
        for (let i = 0; i < perRound; i++) samples.none.push(await timedCreate(cri, podHot, `n${r}-${i}`));
        agent = await startAgent();
        for (let i = 0; i < perRound; i++) {
          samples['agent-unannotated'].push(await timedCreate(cri, podPlain, `u${r}-${i}`));
          samples['agent-later-binding'].push(await timedCreate(cri, podHot, `l${r}-${i}`));
          samples['agent-first-binding'].push(await timedCreate(cri, podFirst, `f${first++}`));
        }
        await agent.kill();
        agent = await startAgent(cfgSynced);
        for (let i = 0; i < perRound; i++) samples['agent-later-binding-fdatasync'].push(await timedCreate(cri, podHot, `s${r}-${i}`));
        const median = (m: Mode) => percentiles(samples[m].slice(start[m])).p50;
        for (const m of MODES) roundAdded[m].push(median(m) - median('none'));
      }
      const none = percentiles(samples.none);
      const v: Record<string, unknown> = { containerd: inst.version, containersPerMode: samples.none.length, rounds };
      console.log(`\ncontainerd ${inst.version}: CreateContainer through CRI, ${samples.none.length} per mode, ${rounds} interleaved rounds`);
      for (const mode of MODES) {
        const p = percentiles(samples[mode]);
        const added = { p50: round(p.p50 - none.p50), p90: round(p.p90 - none.p90), p99: round(p.p99 - none.p99) };
        const perRound = percentiles(roundAdded[mode]);
        const perRoundP50 = round(perRound.p50);
        // the estimate's spread: the interquartile range of the per-round figures
        const sorted = [...roundAdded[mode]].sort((a, b) => a - b);
        const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))];
        const iqr = round(q(0.75) - q(0.25));
        console.log(`  ${mode.padEnd(29)} ${fmt(p)}${mode === 'none' ? '' : `   added: p50 ${added.p50} ms, p90 ${added.p90} ms, p99 ${added.p99} ms; median of per-round p50s ${perRoundP50} ms (IQR over rounds ${iqr} ms)`}`);
        v[mode] = {
          totalMs: { p50: round(p.p50), p90: round(p.p90), p99: round(p.p99) },
          ...(mode === 'none' ? {} : { addedMs: added, addedP50MedianOverRoundsMs: perRoundP50, addedP50IqrOverRoundsMs: iqr, addedP50PerRoundMs: roundAdded[mode].map((x) => round(x)) }),
        };
      }
      out[version] = v;
    } finally {
      await agent?.kill();
      await inst.stop();
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  umount2(base, MNT_DETACH);
  rmSync(base, { recursive: true, force: true });
  return out;
}
