// Stopping a container's init process safely: only a process whose cgroup names the container
// is signalled. Uses a real process placed in a real cgroup named like a container (root only).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Evictor, EVICTION_RETRY_DELAYS_MS, killContainerInit, type EvictionFailure, type KillOutcome } from '../../plugin/eviction/evictor';
import type { FailedEviction } from '../../plugin/agent/failed-evictions';
import { memshareHandlers } from '../../plugin/nri-adapter/adapter';
import type { MemshareService } from '../../plugin/memshare/service';
import { ContainerState, type Container, type PodSandbox } from '../../plugin/nri';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  if (process.env.CI === 'true') throw new Error('evict tests need root (they create a cgroup); CI=true: failing, not skipping');
  console.log('\n!!! SKIPPED: evict tests need root (they create a cgroup) !!!\n');
}

// cgroup v1 has a pids hierarchy; v2 is one tree
const cgroupRoot = existsSync('/sys/fs/cgroup/pids') ? '/sys/fs/cgroup/pids' : '/sys/fs/cgroup';

function sleeper() {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
  return { child, exited };
}

test('a pid of 0 is not signalled', () => {
  assert.is(killContainerInit('abc', 0), 'no-pid');
});

test('a process gone is reported as gone', async () => {
  const { child, exited } = sleeper();
  child.kill('SIGKILL');
  await exited;
  assert.is(killContainerInit('abc', child.pid!), 'gone');
});

if (isRoot) {
  test('a process of another cgroup is left alone', async () => {
    const { child, exited } = sleeper();
    assert.is(killContainerInit('0123456789abcdef'.repeat(4), child.pid!), 'not-this-container');
    assert.is(child.exitCode, null);
    child.kill('SIGKILL');
    await exited;
  });

  test("the container's init, in the container's cgroup, is killed", async () => {
    const id = `nri-memshare-test-${process.pid}-${'ab'.repeat(20)}`;
    const dir = join(cgroupRoot, id);
    mkdirSync(dir);
    const { child, exited } = sleeper();
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
      assert.is(killContainerInit(id, child.pid!), 'killed');
      assert.is(await exited, 'SIGKILL');
    } finally {
      child.kill('SIGKILL');
      await exited;
      rmdirSync(dir);
    }
  });
}

// ---- the Evictor: a failed kill is retried with backoff, bounded, and reported ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const eperm = () => Object.assign(new Error('pidfd_send_signal(pidfd 9) failed: EPERM: Operation not permitted'), { code: 'EPERM' });

/** An Evictor over a scripted kill: each call takes the next step (an outcome, or 'EPERM' to throw). */
function scripted(steps: Array<KillOutcome | 'EPERM'>, delays = [20, 40, 80]) {
  const calls: number[] = [];
  const failures: EvictionFailure[] = [];
  const outcomes: KillOutcome[] = [];
  const lists: FailedEviction[][] = [];
  const t0 = Date.now();
  const ev = new Evictor({
    retryDelaysMs: delays,
    kill: () => {
      calls.push(Date.now() - t0);
      const s = steps.shift() ?? 'EPERM';
      if (s === 'EPERM') throw eperm();
      return s;
    },
    onFailure: (f) => failures.push(f),
    onOutcome: (_id, _pid, o) => outcomes.push(o),
    onChange: (l) => lists.push(l),
  });
  return { ev, calls, failures, outcomes, lists };
}

test('the default backoff is 1 s, 2 s, 4 s, 8 s: five attempts in about 15 s', () => {
  assert.equal([...EVICTION_RETRY_DELAYS_MS], [1000, 2000, 4000, 8000]);
});

test('a kill that keeps failing is tried 1 + delays times with growing gaps, then listed as not retrying', async () => {
  const s = scripted([]);
  s.ev.evict('c1', 4242);
  assert.is(s.calls.length, 1, 'the first attempt is immediate');
  await sleep(20 + 40 + 80 + 100);
  assert.is(s.calls.length, 4, `attempts at ${s.calls.join(', ')} ms`);
  const gaps = s.calls.slice(1).map((t, i) => t - s.calls[i]);
  [20, 40, 80].forEach((want, i) => assert.ok(gaps[i] >= want - 2 && gaps[i] < want + 40, `gap ${i}: ${gaps[i]} ms, want ${want}`));
  assert.equal(s.failures.map((f) => [f.attempts, f.final, f.errno, f.retryInMs]), [[1, false, 'EPERM', 20], [2, false, 'EPERM', 40], [3, false, 'EPERM', 80], [4, true, 'EPERM', undefined]]);
  assert.ok(s.failures.every((f) => f.containerId === 'c1' && f.pid === 4242 && /EPERM/.test(f.lastError)));
  const [f] = s.ev.failing();
  assert.equal({ id: f.containerId, pid: f.pid, attempts: f.attempts, retrying: f.retrying }, { id: 'c1', pid: 4242, attempts: 4, retrying: false });
  assert.is(f.since, s.failures[0].since, 'since: the first failure');
  assert.equal(s.lists.map((l) => l.length), [1, 1, 1, 1], 'each failure reported the list');
  await sleep(150);
  assert.is(s.calls.length, 4, 'bounded: no attempt after the last');
});

test('a retry that succeeds ends the eviction and clears it from the list', async () => {
  const s = scripted(['EPERM', 'EPERM', 'killed']);
  s.ev.evict('c2', 100);
  await sleep(20 + 40 + 50);
  assert.is(s.calls.length, 3);
  assert.equal(s.outcomes, ['killed']);
  assert.equal(s.ev.failing(), []);
  assert.equal(s.lists.at(-1), [], 'the cleared list was reported');
  await sleep(120);
  assert.is(s.calls.length, 3, 'no more attempts');
});

test('a container found gone on a retry ends the retries', async () => {
  const s = scripted(['EPERM', 'gone']);
  s.ev.evict('c3', 100);
  await sleep(60);
  assert.equal(s.outcomes, ['gone']);
  assert.equal(s.ev.failing(), []);
  await sleep(150);
  assert.is(s.calls.length, 2);
});

test('a container that ends (forget) stops the retries and leaves the list', async () => {
  const s = scripted([]);
  s.ev.evict('c4', 100);
  s.ev.evict('c4', 100); // a second request while retries are scheduled starts no second series
  assert.is(s.calls.length, 1);
  s.ev.forget('c4');
  assert.equal(s.ev.failing(), []);
  assert.equal(s.lists.at(-1), []);
  await sleep(100);
  assert.is(s.calls.length, 1);
});

test("an earlier agent's failures are listed until a reconcile keeps or drops them", () => {
  const old: FailedEviction[] = [
    { containerId: 'gone', pid: 10, attempts: 5, lastError: 'EPERM', since: '2026-01-01T00:00:00.000Z', retrying: true },
    { containerId: 'kept', pid: 11, attempts: 5, lastError: 'EPERM', since: '2026-01-01T00:00:01.000Z', retrying: false },
  ];
  const lists: FailedEviction[][] = [];
  const ev = new Evictor({ initial: old, kill: () => 'killed', onChange: (l) => lists.push(l) });
  assert.equal(ev.failing().map((f) => [f.containerId, f.retrying]), [['gone', false], ['kept', false]], 'nobody retries them yet');
  ev.retain(new Set(['kept']));
  assert.equal(ev.failing().map((f) => f.containerId), ['kept']);
  assert.equal(lists.map((l) => l.map((f) => f.containerId)), [['kept']], 'the state file is rewritten at reconcile');
  ev.evict('kept', 11);
  assert.equal(ev.failing(), []);
});

// ---- through the NRI handlers (PluginDeps.kill) ----

/** A service that asks reconcile to evict `evict`; every other method is a no-op. */
function fakeService(evict: string[]): MemshareService {
  const impl: Record<string, unknown> = {
    reconcile: async () => ({ ended: 0, orphansReleased: 0, evict: evict.map((containerId) => ({ containerId, reason: 'no binding' })) }),
    evictionReason: () => undefined,
    endContainer: async () => undefined,
    endPod: async () => undefined,
  };
  return new Proxy(impl, { get: (t, k: string) => (k in t ? t[k] : () => undefined) }) as unknown as MemshareService;
}
const pod0: PodSandbox = { id: 'pod', name: 'p', namespace: 'ns', uid: 'u', annotations: {}, labels: {}, runtimeHandler: '', pid: 0, ips: [] } as unknown as PodSandbox;
const ctr0 = (id: string, pid: number): Container =>
  ({ id, podSandboxId: 'pod', name: 'main', state: ContainerState.RUNNING, labels: {}, annotations: {}, args: [], env: [], mounts: [], pid }) as unknown as Container;

test('handlers: an eviction at reconcile that fails is retried and reported, and ends when the container stops', async () => {
  const attempts: Array<[string, number]> = [];
  const failed: EvictionFailure[] = [];
  const lists: FailedEviction[][] = [];
  const errors: string[] = [];
  const h = memshareHandlers({
    service: fakeService(['victim']),
    kill: (id, pid) => {
      attempts.push([id, pid]);
      throw eperm();
    },
    evictionRetryDelaysMs: [30, 30, 30, 30],
    onEvictionFailed: (f) => failed.push(f),
    onFailedEvictions: (l) => lists.push(l),
    onError: (what) => errors.push(what),
  });
  const call = h as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  await call.synchronize([pod0], [ctr0('victim', 777)], {});
  assert.equal(attempts, [['victim', 777]]);
  await sleep(45);
  assert.is(attempts.length, 2, 'retried');
  assert.equal(failed.map((f) => [f.containerId, f.pid, f.errno, f.attempts]), [['victim', 777, 'EPERM', 1], ['victim', 777, 'EPERM', 2]]);
  assert.equal(lists.at(-1)?.map((f) => f.containerId), ['victim']);
  await call.stopContainer(pod0, ctr0('victim', 777), {});
  assert.equal(lists.at(-1), [], 'the container stopped: no longer failing');
  await sleep(80);
  assert.is(attempts.length, 2, 'and no more attempts');
  assert.equal(errors, []);
});

test('handlers: without onEvictionFailed a failure still reaches onError', async () => {
  const errors: string[] = [];
  const h = memshareHandlers({
    service: fakeService(['victim']),
    kill: () => {
      throw eperm();
    },
    evictionRetryDelaysMs: [],
    onError: (what) => errors.push(what),
  });
  await (h as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).synchronize([pod0], [ctr0('victim', 778)], {});
  assert.equal(errors, ['evicting container victim (pid 778)']);
});

test('handlers: a container found stale before the runtime\'s Synchronize (a UB share restored at start with new memids) is evicted right after it, with the pid it reports', async () => {
  let stale: ((id: string, reason: string) => void) | undefined;
  const svc = fakeService([]);
  (svc as unknown as { onEvict: unknown }).onEvict = undefined;
  const impl = new Proxy({}, {
    get: (_t, k: string) => (k === 'onEvict' ? (l: (id: string, r: string) => void) => (stale = l) : (svc as unknown as Record<string, unknown>)[k]),
  }) as unknown as MemshareService;
  const kills: Array<[string, number]> = [];
  const h = memshareHandlers({ service: impl, kill: (id, pid) => (kills.push([id, pid]), 'killed'), evictionRetryDelaysMs: [] });
  assert.ok(stale, 'the handlers listen for stale containers');
  // the restore runs at start, before Synchronize: no pid is known yet
  stale!('runs-stale', 'memids changed');
  stale!('gone-meanwhile', 'memids changed');
  assert.equal(kills, [], 'nothing can be killed before the runtime said which containers run');
  await (h as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).synchronize([pod0], [ctr0('runs-stale', 901), ctr0('unrelated', 902)], {});
  assert.equal(kills, [['runs-stale', 901]], 'evicted right after Synchronize; a container gone meanwhile needs nothing');
});

test.run();
