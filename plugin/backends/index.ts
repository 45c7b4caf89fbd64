// Memory backends: make a share present on the node and take it away again. Each implements the
// Backend interface of ../memshare/types; a new backend (e.g. UBS) is one more file here plus a
// case in createBackend.
import type { Backend } from '../memshare/types';
import { LocalBackend, type LocalBackendOptions } from './local';

export { LocalBackend, DEFAULT_SHARES_DIR, CONTAINER_SHM_DIR, type LocalBackendOptions, type MountOps } from './local';

/** The backend section of the config file, as far as this folder knows it. */
export type BackendConfig = { kind: 'local' } | { kind: string; [key: string]: unknown };

/** Builds the configured backend; throws naming the kind when it is not implemented. */
export function createBackend(config: BackendConfig, options: LocalBackendOptions = {}): Backend {
  switch (config.kind) {
    case 'local':
      return new LocalBackend(options);
    default:
      throw new Error(`backend kind ${JSON.stringify(config.kind)} is not implemented (available: "local")`);
  }
}
