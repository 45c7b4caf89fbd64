// What check-config adds to the config's own validation: the files and libraries the config names,
// opened as `run` would open them (kubeconfig and the files it points to, the declarations
// directory, a UB backend's SDK library), so that "ok" means `run` gets past its start.
import { existsSync } from 'node:fs';
import { checkBackendConfig } from '../backends';
import { cdiDirProblem } from '../files/cdi-dir';
import { DeclarationsDirectory } from '../declarations/directory';
import { messageOf } from '../model';
import type { Config } from './config';

export interface ConfigFileCheck {
  /** what `run` would refuse: check-config exits non-zero */
  problems: string[];
  /** what `run` starts with but reports (e.g. no declarations directory yet) */
  warnings: string[];
}

export async function checkConfigFiles(config: Config): Promise<ConfigFileCheck> {
  const out: ConfigFileCheck = { problems: [], warnings: [] };
  checkDeclarationsDir(config.declarationsDir, out);
  if (config.kubernetes) {
    const { loadKubeCredentials } = await import('../kube/kubeconfig');
    try {
      // run's own loader: it reads the kubeconfig, then the token, CA and client certificate files it
      // names; what run warns about at start (TLS verification off, plain http) is a warning here too
      const creds = loadKubeCredentials(config.kubernetes);
      if (creds.transportWarning) out.warnings.push(creds.transportWarning);
    } catch (err) {
      const where = config.kubernetes.inCluster ? 'kubernetes.inCluster' : 'kubernetes.kubeconfig';
      out.problems.push(`${where}: ${messageOf(err)}`);
    }
  }
  if (config.dra.enabled) checkDra(config.dra, out);
  const backend = checkBackendConfig(config.backend);
  out.problems.push(...backend.problems);
  out.warnings.push(...backend.warnings);
  return out;
}

function checkDeclarationsDir(dir: string, out: ConfigFileCheck): void {
  const found = DeclarationsDirectory.check(dir);
  if (!found) return;
  const where = `declarationsDir: ${JSON.stringify(dir)}`;
  if (found.problem === 'missing') out.warnings.push(`${where} does not exist; no shares are declared from files until it is created`);
  else if (found.problem === 'not-directory') out.problems.push(`${where} is not a directory`);
  else out.problems.push(`${where} cannot be read: ${(found.error as NodeJS.ErrnoException).code ?? messageOf(found.error)}`);
}

/** The DRA door's directories: the CDI specs' must be root's alone (the runtime applies what they say). */
function checkDra(dra: Config['dra'], out: ConfigFileCheck): void {
  const cdi = cdiDirProblem(dra.cdiDir);
  if (cdi) out.problems.push(`dra.cdiDir: ${cdi} (the runtime gives containers what the CDI specs there say)`);
  if (!existsSync(dra.registryDir)) {
    out.warnings.push(`dra.registryDir: ${JSON.stringify(dra.registryDir)} does not exist; the kubelet makes it: is a kubelet running on this node, with this directory?`);
  }
}
