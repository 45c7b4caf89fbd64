// What `check-config` can tell of a ubs config beyond its keys: whether the SDK library loads with
// every function the agent binds (nothing is called in it, so the daemon is not contacted), whether
// the name secret file is usable, and whether the CDI directory is the agent's own.
import { loadUbsSdk } from '../../../native/ubs-sdk';
import { messageOf } from '../../model';
import { cdiDirProblem } from './cdi';
import type { UbsBackendConfig } from './config';
import { readNameSecret } from './naming';

/** Said by `run` (a log line) and `check-config` when no name secret is configured. */
export const NO_NAME_SECRET_WARNING =
  'backend.nameSecretFile is not set: SDK names are predictable (<namePrefix>.<namespace>.<share>), so any client of the UB memory pool can allocate a share\'s name first and keep its pods from binding it; give every node the same root-only file of random bytes (head -c 32 /dev/urandom)';

/** Problems in the "backend.<key>: reason" form of the config reader; [] when all is well. */
export function ubsConfigProblems(c: UbsBackendConfig): string[] {
  const problems: string[] = [];
  try {
    loadUbsSdk(c.sdkLibrary);
  } catch (err) {
    problems.push(`backend.sdkLibrary: ${messageOf(err)}`);
  }
  if (c.nameSecretFile !== undefined) {
    try {
      readNameSecret(c.nameSecretFile);
    } catch (err) {
      problems.push(`backend.nameSecretFile: ${messageOf(err)}`);
    }
  }
  const cdi = cdiDirProblem(c.cdiDir);
  if (cdi) problems.push(`backend.cdiDir: ${cdi}`);
  return problems;
}

/** What `run` starts with but warns of. */
export function ubsConfigWarnings(c: UbsBackendConfig): string[] {
  return c.nameSecretFile === undefined ? [NO_NAME_SECRET_WARNING] : [];
}
