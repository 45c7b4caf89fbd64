// Memory backends behind one interface (./types): local (tmpfs on this node) and ubs (the UB
// memory pool through the ubs-mem SDK). Each is a self-contained module with its kind, its own
// config keys and its factory; this registry is the only place that lists them.
import { describe, type ConfigReader } from '../config/reader';
import { LOCAL_KIND, LocalBackend, readLocalConfig, type LocalBackendConfig } from './local';
import { UBS_KIND, UbsBackend, readUbsConfig, type UbsBackendConfig } from './ubs';
import type { Backend } from './types';

export type BackendConfig = LocalBackendConfig | UbsBackendConfig;

/** What every backend may use from the agent's config and services. */
export interface BackendEnv {
  sharesDir: string;
  stateDir: string;
  /** told about things worth a log line (the backend never logs itself) */
  warn?(msg: string, detail?: object): void;
  info?(msg: string, detail?: object): void;
}

interface BackendModule<C extends BackendConfig> {
  /** whether its memory outlives the node's kernel (the ledger then fdatasyncs) */
  durable: boolean;
  readConfig(r: ConfigReader): C;
  create(config: C, env: BackendEnv): Backend;
}

const modules: { [K in BackendConfig['kind']]: BackendModule<Extract<BackendConfig, { kind: K }>> } = {
  [LOCAL_KIND]: { durable: false, readConfig: readLocalConfig, create: (_c, env) => new LocalBackend({ sharesDir: env.sharesDir, stateDir: env.stateDir, warn: env.warn }) },
  [UBS_KIND]: { durable: true, readConfig: readUbsConfig, create: (c, env) => new UbsBackend(c, env) },
};

export const BACKEND_KINDS = Object.keys(modules) as Array<BackendConfig['kind']>;

const isKind = (k: unknown): k is BackendConfig['kind'] => typeof k === 'string' && Object.prototype.hasOwnProperty.call(modules, k);

/** Reads the config's "backend" object (absent: local); problems go to the reader. */
export function readBackendConfig(r: ConfigReader | undefined): BackendConfig {
  if (!r) return { kind: LOCAL_KIND };
  const kind = r.raw('kind');
  if (!isKind(kind)) {
    r.problem('kind', `must be ${BACKEND_KINDS.map((k) => `"${k}"`).join(' or ')}, got ${kind === undefined ? 'nothing' : describe(kind)}`);
    return { kind: LOCAL_KIND };
  }
  return (modules[kind] as BackendModule<BackendConfig>).readConfig(r);
}

/** Whether the configured backend's memory outlives the node's kernel. */
export function isDurable(config: BackendConfig): boolean {
  return modules[config.kind].durable;
}

/** The backend the config asks for. Throws (naming the cause) when it cannot be made. */
export function createBackend(config: BackendConfig, env: BackendEnv): Backend {
  return (modules[config.kind] as BackendModule<BackendConfig>).create(config, env);
}

export { LocalBackend, CONTAINER_SHM_DIR, DEFAULT_SHARES_DIR, MOUNT_SOURCE_PREFIX, SHARES_LOCK_FILE, hostPathOf, mountSourceFor, type LocalBackendOptions, type LocalShareHandle, type MountOps } from './local';
export { UbsBackend, HOLDER_SOCKET, probeHolder, type HolderHello, type UbsBackendConfig } from './ubs';
export { RetryableError, type AttachTarget, type Backend, type BoundShare, type RuntimeInfo } from './types';
