// Memory backends behind one interface (./types): local (tmpfs on this node) and ubs (the UB
// memory pool through the ubs-mem SDK). Each is a self-contained module with its kind, its own
// config keys, its factory, what `status` shows of it and what `check-config` checks of it; this
// registry is the only place that lists them.
import { describe, type ConfigReader } from '../config/reader';
import { LOCAL_DURABLE, LOCAL_KIND, createLocalBackend, inspectLocal, readLocalConfig, type LocalBackendConfig, type LocalTopLevel } from './local';
import { UBS_DURABLE, UBS_KIND, UbsBackend, inspectUbs, readUbsConfig, ubsConfigProblems, ubsConfigWarnings, type UbsBackendConfig } from './ubs';
import type { Backend, BackendEnv, BackendInspection } from './types';

export type BackendConfig = LocalBackendConfig | UbsBackendConfig;

/**
 * The settings of backends that the config file keeps at its top level, where the files written
 * so far have them (each backend reads only its own).
 */
export type TopLevelSettings = LocalTopLevel;

interface BackendModule<C extends BackendConfig> {
  /** whether its memory outlives the node's kernel (the ledger then fdatasyncs) */
  durable: boolean;
  readConfig(r: ConfigReader): C;
  create(config: C, env: BackendEnv, top: TopLevelSettings): Backend;
  /** what `status` shows of it, without the agent; `holdsShares`: the records hold shares */
  inspect(config: C, env: Pick<BackendEnv, 'stateDir'>, top: TopLevelSettings, holdsShares: boolean): Promise<BackendInspection>;
  /** what `check-config` finds wrong beyond the keys ("backend.<key>: reason"), and what it warns of */
  check(config: C): BackendCheck;
}

const modules: { [K in BackendConfig['kind']]: BackendModule<Extract<BackendConfig, { kind: K }>> } = {
  [LOCAL_KIND]: { durable: LOCAL_DURABLE, readConfig: readLocalConfig, create: createLocalBackend, inspect: inspectLocal, check: () => ({ problems: [], warnings: [] }) },
  [UBS_KIND]: { durable: UBS_DURABLE, readConfig: readUbsConfig, create: (c, env) => new UbsBackend(c, env), inspect: (c, env, _top, holds) => inspectUbs(c, env, holds), check: (c) => ({ problems: ubsConfigProblems(c), warnings: ubsConfigWarnings(c) }) },
};

export const BACKEND_KINDS = Object.keys(modules) as Array<BackendConfig['kind']>;

const isKind = (k: unknown): k is BackendConfig['kind'] => typeof k === 'string' && Object.prototype.hasOwnProperty.call(modules, k);

const moduleOf = (config: BackendConfig) => modules[config.kind] as BackendModule<BackendConfig>;

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
export function createBackend(config: BackendConfig, env: BackendEnv, top: TopLevelSettings): Backend {
  return moduleOf(config).create(config, env, top);
}

/** What `status` shows of the configured backend, read without the agent. */
export function inspectBackend(config: BackendConfig, env: Pick<BackendEnv, 'stateDir'>, top: TopLevelSettings, holdsShares: boolean): Promise<BackendInspection> {
  return moduleOf(config).inspect(config, env, top, holdsShares);
}

/** What `check-config` finds wrong with the configured backend beyond its keys: `run` refuses problems. */
export interface BackendCheck {
  problems: string[];
  warnings: string[];
}

/** What `check-config` finds wrong with the configured backend beyond its keys. */
export function checkBackendConfig(config: BackendConfig): BackendCheck {
  return moduleOf(config).check(config);
}

export { LocalBackend, CONTAINER_SHM_DIR, DEFAULT_SHARES_DIR, MOUNT_SOURCE_PREFIX, SHARES_LOCK_FILE, hostPathOf, mountSourceFor, type LocalBackendOptions, type LocalShareHandle, type MountOps } from './local';
export { UbsBackend, HOLDER_SOCKET, probeHolder, type HolderHello, type UbsBackendConfig } from './ubs';
export { BackendDefaults, RetryableError, type Backend, type BackendEnv, type BackendInspection, type BoundShare, type HelperStatus, type RuntimeInfo } from './types';
