// The CDI spec that gives UB containers the daemon's group. No NRI version can add supplemental
// groups, but CDI's containerEdits.additionalGids can, where containerd resolves NRI's
// CDI_devices (2.1 and later). One spec for the node: every UB container needs the same groups.
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeStateFile } from '../../files/state-file';

export const CDI_KIND = 'memshare.nri.io/ubs';
export const CDI_DEVICE = 'daemon-access';
export const CDI_DEVICE_NAME = `${CDI_KIND}=${CDI_DEVICE}`;
export const CDI_SPEC_FILE = 'memshare.nri.io-ubs.json';

/** The spec's JSON (cdiVersion 0.7.0: the first with additionalGids). */
export function cdiSpec(gids: readonly number[]): object {
  return {
    cdiVersion: '0.7.0',
    kind: CDI_KIND,
    devices: [
      {
        name: CDI_DEVICE,
        // an env edit too: a device with no edits at all is invalid in some CDI versions
        containerEdits: { env: ['MEMSHARE_UBS_DAEMON_ACCESS=1'], additionalGids: [...gids] },
      },
    ],
  };
}

/**
 * Why `dir` cannot take the spec, or undefined (also when it does not exist yet: the agent makes
 * it). The runtime gives containers what a spec there says: a directory someone else owns or may
 * write lets them add groups and devices to every container, and swap the agent's spec.
 */
export function cdiDirProblem(dir: string): string | undefined {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return `${JSON.stringify(dir)} is not a directory${st.isSymbolicLink() ? ' (a symbolic link)' : ''}`;
  if (st.uid !== 0) return `${JSON.stringify(dir)} must be owned by root, is owned by uid ${st.uid}`;
  if (st.mode & 0o022) return `${JSON.stringify(dir)} must not be writable by group or others, has mode 0${(st.mode & 0o777).toString(8)}`;
  return undefined;
}

/** Writes the spec atomically into `dir`; returns its path. Refuses a dir that is not root's alone. */
export function writeCdiSpec(dir: string, gids: readonly number[]): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const bad = cdiDirProblem(dir);
  if (bad) throw new Error(`cdiDir ${bad}`);
  const path = join(dir, CDI_SPEC_FILE);
  // exclusive temp file under a random name: a link planted in the directory is never followed
  writeStateFile(path, `${JSON.stringify(cdiSpec(gids), null, 2)}\n`, { mode: 0o644 });
  return path;
}

/**
 * Whether containerd resolves NRI's CDI_devices: 2.1 and later (wired, enable_cdi on by default).
 * 1.7.30+ wires it only with enable_cdi=true and fails creations without it, so "auto" leaves
 * every 1.7 alone; 2.0 ignores it.
 */
export function runtimeResolvesCdi(name: string, version: string): boolean {
  if (name !== 'containerd') return false;
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 2 || (major === 2 && minor >= 1);
}
