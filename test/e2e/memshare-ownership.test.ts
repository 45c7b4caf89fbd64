// Issue 11 point 4: reconcile releases only what the agent made. A tmpfs somebody else mounted
// under sharesDir, where a share of the agent could be, survives the agent's reconcile (and is
// logged once); the agent's own orphan is still released. A second agent pointed at the same
// sharesDir with another stateDir refuses to start and names the agent holding it.
// Real agent, real containerd 1.7 and 2.1, real tmpfs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName } from '../harness';
import { Agent, CLI, RECONCILED } from './agent';
import * as native from '../../native';

const POD_KEY = 'memshare.nri.io/pod';

forEachContainerd('memshare ownership', (test, env) => {
  let agent: Agent;
  let foreign: string;

  test('a foreign tmpfs under sharesDir survives reconcile; the agent\'s own orphan does not', async () => {
    agent = new Agent({ nriSocket: env.containerd.nriSocket });
    // somebody else's tmpfs exactly where a share team-x/foreign would be
    foreign = join(agent.sharesDir, 'team-x', 'foreign');
    mkdirSync(foreign, { recursive: true });
    native.mount('tmpfs', foreign, 'tmpfs', native.MS_NOSUID | native.MS_NODEV, 'size=1048576');
    writeFileSync(join(foreign, 'theirs'), 'keep me');

    await agent.start();
    // an orphan of the agent's own: acquired for a container that is gone by the next start
    const ns = 'team-a';
    const share = uniqueName('own');
    await agent.declare(ns, share, '128Mi');
    const p = await env.cri.runPod({ name: uniqueName('p'), namespace: ns, annotations: { [POD_KEY]: share } });
    const id = await env.cri.runContainer(p, { name: 'main' });
    assert.ok(agent.isMounted(ns, share));
    await agent.stop('SIGKILL');
    await env.cri.stopContainer(id, 5);
    await env.cri.removeContainer(id);

    await agent.start(); // a fresh process: its reconcile finds the orphan and the foreign tmpfs
    await agent.proc!.waitFor(RECONCILED, 1, 30000);
    await agent.waitMounted(ns, share, false); // its own share, with no user left: released

    assert.ok(agent.isMounted('team-x', 'foreign'), `the foreign tmpfs at ${foreign} was unmounted; log:\n${agent.output().slice(-3000)}`);
    assert.is(readFileSync(join(foreign, 'theirs'), 'utf8'), 'keep me');
    const mentions = agent.logRecords().filter((r) => typeof r.msg === 'string' && r.msg.includes(foreign) && /not made by this agent/.test(r.msg));
    assert.ok(mentions.length >= 1, 'the foreign tmpfs is logged');
    // status does not count it as a share
    assert.not.ok(agent.status().shares.some((s) => s.namespace === 'team-x'), 'status lists the foreign tmpfs as a share');
  });

  test('a second agent on the same sharesDir (another stateDir) refuses to start and names the holder', async () => {
    const dir = realpathSync(mkdtempSync('/tmp/nrims-second-'));
    try {
      const cfg = JSON.parse(readFileSync(agent.configPath, 'utf8')) as Record<string, unknown>;
      cfg.stateDir = join(dir, 'state');
      cfg.nri = { socket: env.containerd.nriSocket, name: 'memshare2', index: '51' };
      const path = join(dir, 'config.json');
      writeFileSync(path, JSON.stringify(cfg));
      // it must exit by itself; the timeout only keeps a hung agent from hanging the suite
      const r = spawnSync(process.execPath, [CLI, 'run', '--config', path], { encoding: 'utf8', timeout: 60000 });
      const out = `${r.stdout}${r.stderr}`;
      assert.is(r.signal, null, `the second agent did not exit by itself:\n${out}`);
      assert.is(r.status, 1, out);
      assert.match(out, `sharesDir ${agent.sharesDir}`);
      assert.match(out, 'in use by another agent');
      assert.match(out, `pid ${agent.proc!.child.pid}`);
      assert.match(out, `stateDir ${agent.stateDir}`);
      assert.not.match(out, 'nri-memshare started');
      // the first agent is unaffected
      assert.equal(agent.errorLines(), []);
      assert.ok(agent.isMounted('team-x', 'foreign'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('cleanup', async () => {
    await env.cri.cleanupAll();
    await agent.cleanup(); // also unmounts the foreign tmpfs
  });
});
