// The agent's log names whose container a binding, its end, a refusal and an eviction are about
// (issue 24.3): pod as namespace/name, the container's name and id, and the share(s); bindings and
// their ends at info. The agent runs as a process against the fake runtime (the NRI protocol as
// containerd speaks it), with a tmpfs share on the local backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRuntime, container, pod } from '../support/fake-runtime';
import { startPlugin } from '../e2e/plugin-process';
import { AGENT_CLI } from '../support/agent-cli';
import { Event } from '../../plugin/nri/api';

const isRoot = process.getuid?.() === 0;

interface Line { level: string; msg: string; [k: string]: unknown }

test('bound, unbound, refused and evicting lines name the pod, the container and the share', async () => {
  if (!isRoot) {
    const msg = 'SKIPPED: not root (the local backend mounts tmpfs); the agent\'s log lines were NOT checked';
    if (process.env.CI === 'true') assert.unreachable(msg);
    console.log(`\n!!!!! ${msg} !!!!!\n`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'agent-logs-'));
  const rt = await FakeRuntime.start();
  const agent = (() => {
    for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'shares.d', 'filed.json'), JSON.stringify({ apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name: 'filed', namespace: 'default' }, spec: { storage: '128Mi' } }));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ nri: { socket: rt.path }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'), metrics: { address: '' } }));
    return startPlugin([AGENT_CLI, 'run', '--config', config]);
  })();
  try {
    const conn = await rt.conn(0, 20000);
    await conn.registered.promise;
    await conn.configure({ runtimeName: 'containerd', runtimeVersion: 'v2.1.9' });
    // at reconcile: a running container that asks for the share but never got it (created while
    // no agent was there) is evicted
    const podE = pod('e', { 'memshare.nri.io/pod': 'filed' });
    await conn.synchronize([podE], [{ ...container('ce', 'e', 'late'), state: 2 }]);
    const podA = pod('a', { 'memshare.nri.io/pod': 'filed' });
    const ctrA = container('ca', 'a', 'writer');
    // the declarations directory is scanned in a worker: the share is declared once it has been read
    for (let i = 0; ; i++) {
      try {
        await conn.createContainer(podA, ctrA);
        break;
      } catch (err) {
        if (i >= 100 || !/not declared/.test(String(err))) throw new Error(`${String(err)}\n${agent.output().split("\n").filter((l) => !l.includes("unknown-share")).join("\n")}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const podB = pod('b', { 'memshare.nri.io/pod': 'nope' });
    await conn.createContainer(podB, container('cb', 'b', 'asker')).catch(() => undefined); // refused
    await conn.stateChange(Event.REMOVE_CONTAINER, podA, ctrA);
    await agent.waitFor(/"msg":"share released"/, 1, 15000);

    const lines = agent.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
    const one = (msg: string | RegExp) => {
      const found = lines.filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
      assert.is(found.length, 1, `one "${msg}" line: ${JSON.stringify(found)}\n${agent.output().slice(-3000)}`);
      return found[0];
    };
    const bound = one('bound');
    assert.equal([bound.level, bound.pod, bound.container, bound.containerId, bound.share, bound.readOnly], ['info', 'default/pod-a', 'writer', 'ca', 'default/filed', false]);
    const unbound = one('unbound');
    assert.equal([unbound.level, unbound.pod, unbound.container, unbound.containerId, unbound.share], ['info', 'default/pod-a', 'writer', 'ca', 'default/filed']);
    assert.match(String(unbound.why), /removed/);
    const refused = lines.find((l) => l.reason === 'unknown-share' && l.pod === 'default/pod-b');
    assert.ok(refused, agent.output().slice(-3000));
    assert.equal([refused.level, refused.pod, refused.container, refused.containerId, refused.shares], ['warn', 'default/pod-b', 'asker', 'cb', ['default/nope']]);
    const evicting = one(/^evicting: memshare: created without its shared memory/);
    assert.equal([evicting.level, evicting.pod, evicting.container, evicting.containerId, evicting.shares], ['warn', 'default/pod-e', 'late', 'ce', ['default/filed']]);
    const released = one('share released');
    assert.equal([released.level, released.share], ['info', 'default/filed']);
  } finally {
    await agent.kill('SIGTERM');
    await rt.close();
    // a share left mounted by a failed run must not stay behind
    spawnSync('sh', ['-c', `grep -o ' ${join(dir, 'shares')}[^ ]*' /proc/self/mounts | xargs -r -n1 umount -l`]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
