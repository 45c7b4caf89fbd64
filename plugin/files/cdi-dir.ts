// The directory of CDI specs the runtime reads (/var/run/cdi): the agent writes its specs there
// (the UB backend's daemon-access spec, the DRA driver's spec per claim), always through here.
// The runtime gives containers what a spec there says, so the directory must be root's alone.
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeStateFile, writeStateFile } from './state-file';

/**
 * Why `dir` cannot take the agent's specs, or undefined (also when it does not exist yet: the
 * agent makes it). A directory someone else owns or may write lets them add groups and devices to
 * every container, and swap the agent's specs.
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

/**
 * Writes a spec (its JSON object) atomically as `dir`/`fileName`; returns its path. Makes `dir`
 * when missing; refuses one that is not root's alone (the error names it).
 */
export function writeCdiSpecFile(dir: string, fileName: string, spec: object): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const bad = cdiDirProblem(dir);
  if (bad) throw new Error(`cdiDir ${bad}`);
  const path = join(dir, fileName);
  // exclusive temp file under a random name: a link planted in the directory is never followed
  writeStateFile(path, `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o644 });
  return path;
}

/** Removes `dir`/`fileName`; nothing there is fine. */
export function removeCdiSpecFile(dir: string, fileName: string): void {
  removeStateFile(join(dir, fileName));
}
