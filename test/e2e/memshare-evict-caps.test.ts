// Issue 11 point 1: evictions work for containers of any user. The real agent runs with exactly
// the capability set of the shipped systemd unit (CapabilityBoundingSet and NoNewPrivileges read
// from systemd/nri-memshare.service, applied with setpriv), beside real containerd 1.7 and 2.1.
// A container running as a non-root uid, created while the agent was down, must be killed at the
// agent's reconcile. With CAP_KILL taken out of that set the same eviction fails, and the failure
// is loud: retried with backoff, logged at error level, counted in the metrics, and shown by
// `nri-memshare status` until the container is gone.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName, type RunningPod } from '../harness';
import { Agent, RECONCILED, waitUntil } from './agent';
import { unitSection } from '../support/unit-file';

const POD_KEY = 'memshare.nri.io/pod';
const USER = 4178;
const UNIT = join(__dirname, '..', '..', '..', 'systemd', 'nri-memshare.service');

/** Capability numbers (linux/capability.h) of the names a unit may list. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_DAC_READ_SEARCH: 2, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5,
  CAP_SETGID: 6, CAP_SETUID: 7, CAP_SETPCAP: 8, CAP_LINUX_IMMUTABLE: 9, CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_IPC_LOCK: 14, CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16, CAP_SYS_RAWIO: 17, CAP_SYS_CHROOT: 18, CAP_SYS_PTRACE: 19, CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21, CAP_SYS_BOOT: 22, CAP_SYS_NICE: 23, CAP_SYS_RESOURCE: 24, CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26, CAP_MKNOD: 27, CAP_LEASE: 28, CAP_AUDIT_WRITE: 29, CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31, CAP_MAC_OVERRIDE: 32, CAP_MAC_ADMIN: 33, CAP_SYSLOG: 34, CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36, CAP_AUDIT_READ: 37, CAP_PERFMON: 38, CAP_BPF: 39, CAP_CHECKPOINT_RESTORE: 40,
};

/** CapabilityBoundingSet (all its lines, an allow-list) and NoNewPrivileges of the unit's [Service]. */
function unitPrivileges(): { caps: string[]; noNewPrivs: boolean } {
  const service = unitSection(UNIT, 'Service');
  const caps = new Set<string>();
  for (const raw of service.get('CapabilityBoundingSet') ?? []) {
    const v = raw.trim();
    if (v.startsWith('~')) throw new Error('the unit uses a deny-list CapabilityBoundingSet; this test reads an allow-list');
    if (v === '') caps.clear();
    for (const c of v.split(/\s+/).filter(Boolean)) {
      if (!(c in CAP_NUMBERS)) throw new Error(`unknown capability ${c} in the unit`);
      caps.add(c);
    }
  }
  const noNewPrivs = /^(yes|true|1|on)$/.test((service.get('NoNewPrivileges') ?? []).at(-1)?.trim() ?? '');
  if (caps.size === 0) throw new Error(`no CapabilityBoundingSet in ${UNIT}`);
  return { caps: [...caps].sort(), noNewPrivs };
}

/** setpriv: bounding set = caps (as root, permitted and effective become exactly that at exec). */
function setprivLauncher(caps: string[], noNewPrivs: boolean): string[] {
  const list = caps.map((c) => `+${c.slice(4).toLowerCase()}`).join(',');
  return ['setpriv', `--bounding-set=-all,${list}`, '--inh-caps=-all', '--ambient-caps=-all', ...(noNewPrivs ? ['--no-new-privs'] : []), '--'];
}

const mask = (caps: string[]) => caps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c])), 0n);

/** The capability sets and no_new_privs of a running process. */
function processPrivileges(pid: number): { eff: bigint; prm: bigint; bnd: bigint; inh: bigint; amb: bigint; noNewPrivs: boolean; raw: string } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hex = (k: string) => BigInt(`0x${new RegExp(`^${k}:\\s*([0-9a-f]+)$`, 'm').exec(st)![1]}`);
  const raw = st.split('\n').filter((l) => /^(Cap|NoNewPrivs)/.test(l)).join(' ');
  return { eff: hex('CapEff'), prm: hex('CapPrm'), bnd: hex('CapBnd'), inh: hex('CapInh'), amb: hex('CapAmb'), noNewPrivs: /^NoNewPrivs:\s*1$/m.test(st), raw };
}

async function metric(address: string, name: string): Promise<number | undefined> {
  const body = await (await fetch(`http://${address}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : undefined;
}

const unit = unitPrivileges();
const haveSetpriv = spawnSync('sh', ['-c', 'command -v setpriv']).status === 0;
if (!haveSetpriv) throw new Error('setpriv (util-linux) is needed to run the agent with the unit\'s capabilities');

forEachContainerd('eviction with the unit\'s capabilities', (test, env) => {
  /**
   * An agent under `caps`, checked to hold exactly those; a share declared; the agent killed; a
   * container of uid 4178 created and started without it (NRI fails open); the agent started again.
   */
  async function containerCreatedWhileAgentDown(caps: string[], ns: string, opts: { metrics?: boolean } = {}) {
    const agent = new Agent({ nriSocket: env.containerd.nriSocket, launcher: setprivLauncher(caps, unit.noNewPrivs), metricsAddress: opts.metrics ? '127.0.0.1:0' : undefined });
    await agent.start();
    const pid = agent.proc!.child.pid!;
    const priv = processPrivileges(pid);
    process.stdout.write(`  [caps] agent pid ${pid} with ${caps.join(' ')}: ${priv.raw}\n`);
    const want = mask(caps);
    assert.is(priv.eff.toString(16), want.toString(16), `CapEff of the agent: ${priv.raw}`);
    assert.is(priv.prm.toString(16), want.toString(16), 'CapPrm');
    assert.is(priv.bnd.toString(16), want.toString(16), 'CapBnd');
    assert.is(priv.inh, 0n, 'CapInh');
    assert.is(priv.amb, 0n, 'CapAmb');
    assert.is(priv.noNewPrivs, unit.noNewPrivs, 'NoNewPrivs');
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), 'nri-memshare.js', 'the pid is the agent itself (setpriv exec\'d it)');

    const share = uniqueName('u');
    await agent.declare(ns, share, '128Mi');
    await agent.stop('SIGKILL');

    const pod: RunningPod = await env.cri.runPod({ name: uniqueName('nonroot'), namespace: ns, annotations: { [POD_KEY]: share } });
    const id = await env.cri.runContainer(pod, { name: 'main', runAsUser: USER, runAsGroup: USER });
    // the container's init really runs as the user, and without the share
    const uid = await env.cri.execSync(id, ['/bin/sh', '-c', "id -u; grep '^Uid:' /proc/1/status; grep -c \" /dev/shm/" + share + " \" /proc/self/mountinfo || true"], 20);
    const [idU, uidLine, mounted] = uid.stdout.trim().split('\n');
    assert.is(idU, String(USER), uid.stdout + uid.stderr);
    assert.equal(uidLine.split(/\s+/).slice(1), [String(USER), String(USER), String(USER), String(USER)], `init's uids: ${uidLine}`);
    assert.is(mounted, '0', 'the container runs without its share');
    assert.is((await env.cri.containerStatus(id)).state, 'CONTAINER_RUNNING');

    const before = agent.output().length;
    await agent.start();
    await agent.proc!.waitFor(RECONCILED, 1, 15000);
    const rec = agent.output().slice(before).split('\n').find((l) => l.includes('"msg":"reconciled with the runtime"'));
    assert.ok(rec && rec.includes(id), `the agent decided to evict ${id}: ${rec}`);
    return { agent, id, pod };
  }

  test('with exactly the unit\'s capabilities, a container of uid 4178 created while the agent was down is killed at reconcile', async () => {
    const { agent, id } = await containerCreatedWhileAgentDown(unit.caps, 'caps');
    try {
      let state = '';
      await waitUntil(async () => (state = (await env.cri.containerStatus(id)).state) === 'CONTAINER_EXITED', 20000, () =>
        `container ${id} was not evicted (CRI state ${state}); agent errors:\n${agent.errorLines().join('\n')}`);
      const st = await env.cri.containerStatus(id);
      assert.is(st.exit_code, 137, `killed by SIGKILL: ${JSON.stringify({ exit: st.exit_code, reason: st.reason })}`);
      assert.ok(
        agent.logRecords().some((r) => r.containerId === id && r.outcome === 'killed'),
        `the agent logged the kill:\n${agent.output().slice(-2000)}`,
      );
      assert.equal(agent.errorLines(), [], 'no errors');
      assert.equal(agent.status().failedEvictions, []);
    } finally {
      await env.cri.cleanupAll().catch(() => undefined);
      await agent.cleanup();
    }
  });

  test('without CAP_KILL the eviction fails with EPERM and is loud: retried, logged, counted, in status', async () => {
    assert.ok(unit.caps.includes('CAP_KILL'), `the unit grants CAP_KILL (it has ${unit.caps.join(' ')})`);
    const caps = unit.caps.filter((c) => c !== 'CAP_KILL');
    const { agent, id } = await containerCreatedWhileAgentDown(caps, 'nokill', { metrics: true });
    try {
      const GAVE_UP = /"msg":"eviction failed for good[^"]*"/;
      await agent.proc!.waitFor(GAVE_UP, 1, 40000);
      const fails = agent.logRecords().filter((r) => r.level === 'error' && r.containerId === id);
      process.stdout.write(`  [retry] attempts at ${fails.map((r) => r.time).join(', ')}\n`);
      // every attempt: error level, with the container id, its pid and the errno
      assert.is(fails.length, 5, `five attempts logged:\n${fails.map((f) => JSON.stringify(f)).join('\n')}`);
      for (const f of fails) {
        assert.is(f.errno, 'EPERM', JSON.stringify(f));
        assert.ok(typeof f.pid === 'number' && f.pid > 1, JSON.stringify(f));
      }
      // backoff 1 s, 2 s, 4 s, 8 s between attempts
      const t = fails.map((f) => Date.parse(f.time as string));
      const gaps = t.slice(1).map((x, i) => x - t[i]);
      process.stdout.write(`  [retry] gaps ${gaps.join(' ms, ')} ms\n`);
      // the backoff's floor only: a loaded machine delays timers, never hastens them (no timed upper bound)
      [1000, 2000, 4000, 8000].forEach((want, i) => assert.ok(gaps[i] >= want - 50, `gap ${i + 1}: ${gaps[i]} ms, want at least ${want}`));

      // the container still runs: the capability is what matters
      assert.is((await env.cri.containerStatus(id)).state, 'CONTAINER_RUNNING');

      const pid = fails[0].pid as number;
      const st = agent.status();
      assert.is(st.failedEvictions.length, 1, JSON.stringify(st));
      const fe = st.failedEvictions[0];
      assert.equal({ id: fe.containerId, pid: fe.pid, attempts: fe.attempts, retrying: fe.retrying }, { id, pid, attempts: 5, retrying: false });
      assert.match(fe.lastError, 'EPERM');
      assert.ok(Math.abs(Date.parse(fe.since) - t[0]) < 1000, `since ${fe.since} is the first failure (${fails[0].time})`);
      // status read it from the state directory: a file only root can read
      const file = join(agent.stateDir, 'failed-evictions.json');
      assert.is((statSync(file).mode & 0o777).toString(8), '600');
      const table = agent.statusTable();
      assert.match(table, /failed evictions/i);
      assert.match(table, id.slice(0, 12));
      assert.match(table, 'EPERM');

      // the running agent's (each start binds a new port)
      const address = (agent.logRecords().filter((r) => r.msg === 'metrics: listening').pop()?.address as string) ?? '';
      assert.ok(address, 'metrics address logged');
      assert.is(await metric(address, 'nri_memshare_eviction_failures_total'), 5);
      assert.is(await metric(address, 'nri_memshare_evictions_failing'), 1);

      // the container gone (stopped by the runtime): the failure is cleared everywhere
      await env.cri.stopContainer(id, 0);
      await waitUntil(() => agent.status().failedEvictions.length === 0, 15000, () => `still listed: ${JSON.stringify(agent.status().failedEvictions)}`);
      assert.not.match(agent.statusTable(), /failed evictions/i);
      assert.not.ok(existsSync(file), 'the file goes with the last failure');
      assert.is(await metric(address, 'nri_memshare_evictions_failing'), 0);
      assert.is(await metric(address, 'nri_memshare_eviction_failures_total'), 5, 'the counter keeps its count');
    } finally {
      await env.cri.cleanupAll().catch(() => undefined);
      await agent.cleanup();
    }
  });
});
