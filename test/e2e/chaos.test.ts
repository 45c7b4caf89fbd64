// The chaos test, short form: pod churn against a real containerd while the agent is SIGKILLed
// at random moments (>= 100 kills in all) and containerd restarts a few times; no share may leak,
// vanish under a running container, or be missing from one (see test/chaos/chaos.ts for the
// invariants). Seeded: the seed is printed, CHAOS_SEED=<n> replays the choices.
// UB mode (backend ubs over the SDK double) too, 30 kills per version aimed at attach and release
// (the SDK calls run in the UB holder, which outlives the kills), and a share no application maps
// whose bytes and memids must survive every kill.
// Long form: node dist/test/chaos/run.js --kills N --version 1.7|2.1 [--backend ubs] [--seed S] [--save].
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { requireRoot, selectedVersions, type ContainerdVersion } from '../harness';
import { runChaos, summary, type ChaosResult } from '../chaos/chaos';

// kills per version: 100 on 2.1 (the current runtime) and fewer on 1.7, inside ~4 minutes together
const PLAN: Record<ContainerdVersion, { kills: number; restarts: number }> = {
  '2.1': { kills: 100, restarts: 3 },
  '1.7': { kills: 40, restarts: 2 },
};

const test = suite('chaos: agent SIGKILLs and containerd restarts under pod churn');
const results: ChaosResult[] = [];
const root = (() => {
  try {
    return requireRoot('chaos');
  } catch (e) {
    test('requires root', () => {
      throw e;
    });
    return undefined;
  }
})();

if (root) {
  const versions = selectedVersions();
  for (const version of versions) {
    // run alone (NRI_MEMSHARE_CONTAINERD=1.7), a version carries the whole 100 kills
    const plan = versions.length === 1 ? { ...PLAN[version], kills: Math.max(100, PLAN[version].kills) } : PLAN[version];
    test(`containerd ${version}: ${plan.kills} agent kills, ${plan.restarts} containerd restarts, no leak`, async () => {
      const r = await runChaos({ version, kills: plan.kills, containerdRestarts: plan.restarts, durationLimitMs: 4 * 60_000, log: (l) => process.stdout.write(`  ${l}\n`) });
      results.push(r);
      process.stdout.write(`  ${summary(r)}\n`);
      assert.not.ok(r.timedOut, `the kill loop hit its duration limit after ${r.counts.kills} kills`);
      assert.is(r.counts.kills, plan.kills);
      assert.ok(r.counts.containers > 0 && r.counts.pods > 0, 'the churn created pods and containers');
      assert.ok(r.counts.mountChecks > 0 && r.counts.markerChecks > 0, 'the invariants were sampled');
      assert.equal(r.violations, [], `violations (agent log: ${r.agentLog ?? '-'})`);
    });
  }
  // UB mode: the agent on the ubs backend over the SDK double, kills aimed at attach and release;
  // 30 kills per version (each restart evicts every bound container: the churn is slower)
  for (const version of versions) {
    const kills = 30;
    test(`UB mode, containerd ${version}: ${kills} agent kills during attach and release, no share left in the double, no stale device numbers`, async () => {
      const r = await runChaos({ version, backend: 'ubs', kills, containerdRestarts: 1, durationLimitMs: 2.5 * 60_000, log: (l) => process.stdout.write(`  ${l}\n`) });
      process.stdout.write(`  ${summary(r)}\n`);
      const c = r.counts;
      process.stdout.write(
        `  UB chaos counts, containerd ${version}: kills ${c.kills} (during attach ${c.killsDuringAttach}, during release ${c.killsDuringRelease}), ` +
          `shares in the double that no container holds: ${r.violations.filter((v) => v.includes('no container on record holds')).length}, ` +
          `after removing every pod: ${c.ubSharesLeft} shares, ${c.ubMapsLeft} maps; running with stale device numbers at the end: ${c.staleRunningAtEnd} ` +
          `(stale seen along the way ${c.staleSeen}, evictions ${c.evictions})\n`,
      );
      assert.not.ok(r.timedOut, `the kill loop hit its duration limit after ${c.kills} kills`);
      assert.is(c.kills, kills);
      assert.ok(c.containers > 0 && c.pods > 0, 'the churn created pods and containers');
      assert.ok(c.deviceChecks > 0 && c.hostChecks > 0, 'the device numbers were sampled');
      assert.ok(c.killsDuringAttach + c.killsDuringRelease > 0, 'some kills landed inside an SDK call');
      assert.is(c.lastAttachKill, 1, 'the last kill landed between allocate and map');
      assert.is(c.keptDataChecks, 1, 'the keeper share, mapped by no application, kept its bytes and memids through every kill');
      assert.is(c.ubSharesLeft, 0, 'no share left in the double');
      assert.is(c.ubMapsLeft, 0, 'no mapping left in the double');
      assert.is(c.staleRunningAtEnd, 0, 'no container running with stale device numbers');
      assert.equal(r.violations, [], `violations (agent log: ${r.agentLog ?? '-'})`);
    });
  }
  test('in all: at least 100 kills, no violation', () => {
    const kills = results.reduce((n, r) => n + r.counts.kills, 0); // the local-backend runs
    const sum = (k: keyof ChaosResult['counts']) => results.reduce((n, r) => n + r.counts[k], 0);
    process.stdout.write(
      `  chaos totals: kills ${kills}, containerd restarts ${sum('containerdRestarts')}, pods ${sum('pods')}, containers ${sum('containers')}, ` +
        `evictions ${sum('evictions')}, leaks found ${sum('leaks')}, violations ${results.reduce((n, r) => n + r.violations.length, 0)}\n`,
    );
    assert.ok(kills >= 100, `${kills} kills in all`);
    assert.is(results.reduce((n, r) => n + r.violations.length, 0), 0);
  });
}
test.run();
