import { LocalBackend } from '../backends';
import type { Backend } from '../memshare/types';
import type { Config } from './config';

/** The backend the config asks for. */
export function createBackend(config: Config): Backend {
  if (config.backend.kind === 'local') return new LocalBackend({ sharesDir: config.sharesDir });
  throw new Error(`backend.kind "${config.backend.kind}": this build has no UBS SDK binding yet; use "local"`);
}
