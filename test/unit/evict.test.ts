// Stopping a container's init process safely: only a process whose cgroup names the container
// is signalled. Uses a real process placed in a real cgroup named like a container (root only).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killContainerInit } from '../../plugin/memshare/evict';

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

test.run();
