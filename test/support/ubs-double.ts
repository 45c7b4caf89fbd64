// The UB SDK double's world for unit tests (it stands in for libubsm_sdk and its daemon, see
// native/ubs/): the directories and /proc/devices file it reads, its environment, and
// ubsmd-standin listening on the daemon's socket. One setup for every unit test that uses it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface UbsDoubleWorld {
  /** the daemon's socket directory (MxmAgentIpcServer is in it) */
  daemonDir: string;
  /** where the double creates its device nodes */
  devDir: string;
  /** the double's state (shared by every process using it) */
  stateDir: string;
  /** a /proc/devices naming OBMM_SHMDEV with `major` */
  procDevices: string;
}

/** Makes the world under `root` and points the double at it through process.env. `out`: the built dist/native/ubs. */
export function ubsDoubleWorld(root: string, out: string, major: number, stateName = 'state'): UbsDoubleWorld {
  const daemonDir = join(root, 'matrix', 'memory');
  const devDir = join(root, 'dev');
  const stateDir = join(root, stateName);
  mkdirSync(devDir);
  mkdirSync(stateDir, { mode: 0o777 });
  const procDevices = join(root, 'proc-devices');
  writeFileSync(procDevices, `Character devices:\n  1 mem\n${major} OBMM_SHMDEV\n\nBlock devices:\n  7 loop\n`);
  Object.assign(process.env, {
    UBSM_DOUBLE_DIR: daemonDir,
    UBSM_DOUBLE_STATE: stateDir,
    UBSM_DOUBLE_DEV_DIR: devDir,
    UBSM_DOUBLE_OBMM: join(out, 'lib', 'libobmm.so.1'),
    UBSM_DOUBLE_MAJOR: String(major),
    UBSM_DOUBLE_NODE: 'local',
    HCOM_CONNECTION_RETRY_TIMES: '1',
    HCOM_CONNECTION_RETRY_INTERVAL_SEC: '1',
  });
  return { daemonDir, devDir, stateDir, procDevices };
}

/**
 * Starts ubsmd-standin on the world's daemon socket: the child at once (for the caller's
 * cleanup, also when it never listens) and a promise of its listening (its first output).
 */
export function startUbsStandin(out: string, world: Pick<UbsDoubleWorld, 'daemonDir'>): { child: ChildProcess; listening: Promise<void> } {
  const child = spawn(join(out, 'bin', 'ubsmd-standin'), [join(world.daemonDir, 'MxmAgentIpcServer'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`ubsmd-standin exited ${code}`)));
  });
  return { child, listening };
}
