// Issue 11 point 2: a share is reachable only through its holders. On the host, only root may
// reach <sharesDir>/<namespace>/<share>: an unprivileged user can neither list, read nor write it
// (nor fill it). A bound container, running as a non-root user, still uses the share. Shares are
// mounted noexec unless their declaration says spec.allowExec: true.
// Real agent, real containerd 1.7 and 2.1, real tmpfs.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { forEachContainerd, uniqueName, type RunningPod } from '../harness';
import { Agent } from './agent';

const POD_KEY = 'memshare.nri.io/pod';
const USER = 4178;
const NOBODY = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--'];
const sh = (script: string) => ['/bin/sh', '-c', script];

/** Runs `script` on the host as uid/gid 65534 with no groups. */
function asNobody(script: string): { status: number | null; out: string } {
  const [cmd, ...args] = [...NOBODY, '/bin/sh', '-c', script];
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The per-mount options of `dest` in the container's /proc/self/mountinfo line for it. */
function mountOptionsIn(mountinfo: string, dest: string): string[] {
  const line = mountinfo.split('\n').find((l) => l.split(' ')[4] === dest);
  assert.ok(line, `no mount at ${dest} in the container:\n${mountinfo}`);
  return line!.split(' ')[5].split(',');
}

forEachContainerd('memshare host access', (test, env) => {
  let agent: Agent;

  const pod = (ns: string, share: string, prefix = 'p'): Promise<RunningPod> =>
    env.cri.runPod({ name: uniqueName(prefix), namespace: ns, annotations: { [POD_KEY]: share } });
  // the container's user is not root: the share must be usable as that user
  const run = async (ns: string, share: string) => env.cri.runContainer(await pod(ns, share), { name: 'main', runAsUser: USER, runAsGroup: USER });
  const exec = (id: string, script: string) => env.cri.execSync(id, sh(script), 20);

  /** Declares a share with spec fields of our own (allowExec) and waits until the agent has it. */
  const declareSpec = async (ns: string, name: string, spec: Record<string, unknown>): Promise<void> => {
    const re = new RegExp(`"change":"(added|changed)","share":"${ns}/${name}"`);
    const before = agent.proc!.count(re);
    const obj = { apiVersion: 'resource.ubsvirt.huawei.com/v1', kind: 'ShareMemory', metadata: { name, namespace: ns }, spec };
    const tmp = join(agent.declarationsDir, `.${ns}-${name}.json.tmp`);
    writeFileSync(tmp, JSON.stringify(obj));
    renameSync(tmp, agent.declarationPath(ns, name));
    await agent.proc!.waitFor(re, before + 1, 15000);
  };

  test('the agent starts', async () => {
    agent = new Agent({ nriSocket: env.containerd.nriSocket });
    // The test's own directory is 0700; open it (and the sharesDir the harness made 0755) so that
    // only what the agent does to its directories stands between a host user and the shares.
    chmodSync(agent.dir, 0o755);
    chmodSync(agent.sharesDir, 0o755);
    assert.is(asNobody(`ls ${agent.sharesDir}`).status, 0, 'test premise: nobody can reach sharesDir before the agent runs');
    await agent.start();
  });

  test('an unprivileged host user cannot list, read or write a share; the bound container (uid 4178) can', async () => {
    const ns = 'team-a';
    const share = uniqueName('s');
    await agent.declare(ns, share, '128Mi');
    const id = await run(ns, share);
    const path = agent.hostPath(ns, share);
    assert.ok(agent.isMounted(ns, share));

    const w = await exec(id, `id -u && echo secret > /dev/shm/${share}/msg && cat /dev/shm/${share}/msg`);
    assert.is(w.exitCode, 0, `the container writes its share: ${w.stderr}`);
    assert.is(w.stdout, `${USER}\nsecret\n`);

    // the host side: closed to everyone but root
    assert.is(statSync(agent.sharesDir).mode & 0o777, 0o700, 'sharesDir is 0700');
    assert.is(statSync(join(agent.sharesDir, ns)).mode & 0o777, 0o700, 'the namespace directory is 0700');
    for (const [what, script] of [
      ['list sharesDir', `ls ${agent.sharesDir}`],
      ['list the namespace', `ls ${join(agent.sharesDir, ns)}`],
      ['list the share', `ls ${path}`],
      ['read a file of it', `cat ${path}/msg`],
      ['write into it', `echo evil > ${path}/evil`],
      ['fill it', `dd if=/dev/zero of=${path}/fill bs=1M count=8`],
      ['stat it', `stat ${path}`],
    ] as const) {
      const r = asNobody(script);
      assert.is.not(r.status, 0, `an unprivileged host user could ${what}: ${r.out}`);
      assert.match(r.out, /Permission denied/, `${what}: ${r.out}`);
    }
    assert.not.ok(existsSync(join(path, 'evil')), 'nothing was written');
    assert.not.ok(existsSync(join(path, 'fill')), 'nothing was filled');
    // root still reaches it (status, operators)
    assert.is(spawnSync('cat', [join(path, 'msg')], { encoding: 'utf8' }).stdout, 'secret\n');
  });

  test('a share is noexec by default: a program written there does not run', async () => {
    const ns = 'team-a';
    const share = uniqueName('nx');
    await agent.declare(ns, share, '128Mi');
    const id = await run(ns, share);
    const r = await exec(id, `printf '#!/bin/sh\\necho ran\\n' > /dev/shm/${share}/prog && chmod 755 /dev/shm/${share}/prog && /dev/shm/${share}/prog`);
    assert.is.not(r.exitCode, 0, `a program ran from a noexec share: ${r.stdout}`);
    assert.not.match(r.stdout, 'ran');
    assert.match(r.stderr, /Permission denied/);
    const mi = await exec(id, 'cat /proc/self/mountinfo');
    const opts = mountOptionsIn(mi.stdout, `/dev/shm/${share}`);
    for (const o of ['noexec', 'nosuid', 'nodev']) assert.ok(opts.includes(o), `${o} in ${opts.join(',')}`);
    // and on the host
    const host = spawnSync('findmnt', ['-n', '-o', 'OPTIONS', agent.hostPath(ns, share)], { encoding: 'utf8' }).stdout;
    for (const o of ['noexec', 'nosuid', 'nodev']) assert.match(host, o);
  });

  test('spec.allowExec: true lets the bound container run programs from the share', async () => {
    const ns = 'team-a';
    const share = uniqueName('ex');
    await declareSpec(ns, share, { storage: '128Mi', allowExec: true });
    const id = await run(ns, share);
    const r = await exec(id, `printf '#!/bin/sh\\necho ran\\n' > /dev/shm/${share}/prog && chmod 755 /dev/shm/${share}/prog && /dev/shm/${share}/prog`);
    assert.is(r.exitCode, 0, `exec from an allowExec share: ${r.stderr}`);
    assert.is(r.stdout, 'ran\n');
    const mi = await exec(id, 'cat /proc/self/mountinfo');
    const opts = mountOptionsIn(mi.stdout, `/dev/shm/${share}`);
    assert.not.ok(opts.includes('noexec'), opts.join(','));
    for (const o of ['nosuid', 'nodev']) assert.ok(opts.includes(o), `${o} in ${opts.join(',')}`);
    // the host side stays closed
    assert.is.not(asNobody(`ls ${agent.hostPath(ns, share)}`).status, 0);
  });

  test('no errors in the agent log', async () => {
    assert.equal(agent.errorLines(), []);
    await env.cri.cleanupAll();
    await agent.cleanup();
  });
});
