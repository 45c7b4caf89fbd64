// The agent's configuration file (JSON): defaults, validation, and the resolved Config type.
// Every problem is reported with its key path ("limits.maxShareBytes: ...") so that
// `nri-memshare check-config` can list them all at once instead of failing on the first.
import { realpathSync } from 'node:fs';
import { FileReadError, readRegularFileSync } from '../files/regular-file';
import { JsonSyntaxError, parseStrictJson } from '../files/strict-json';
import { basename, dirname, join, resolve } from 'node:path';
import {
  DEFAULT_CONFIG_PATH,
  DEFAULT_DECLARATIONS_DIR,
  DEFAULT_LIMITS,
  DEFAULT_SHARES_DIR,
  DEFAULT_STATE_DIR,
  DNS_LABEL_MAX,
  dnsLabelProblem,
  isObject,
  messageOf,
  type Limits,
} from '../model';
import { ConfigReader, describe } from '../config/reader';
import { isDurable, readBackendConfig, type BackendConfig } from '../backends';
import { DEFAULT_SOCKET } from '../nri';
import { DEFAULT_DRIVER_NAME } from '../dra/devices';
import { parseListenAddress } from './metrics-listener';
import { LOG_LEVELS, type LogLevel } from './logger';

export { DEFAULT_CONFIG_PATH };

export interface NriConfig {
  /** containerd's NRI socket */
  socket: string;
  /** plugin name; with index it forms the plugin id containerd shows ("50-memshare") */
  name: string;
  /** two digits; containerd orders plugins by it */
  index: string;
}

export type { BackendConfig };

export interface KubernetesConfig {
  /** path to a kubeconfig file; absent when inCluster */
  kubeconfig?: string;
  /** use the pod's service account (agent deployed as a pod) */
  inCluster: boolean;
  /** false: write no ShareMemory status entries (absent: true) */
  status?: boolean;
  /** false: record refused bindings as no Kubernetes Events (absent: true) */
  events?: boolean;
  /** this node's name in the cluster (absent: NODE_NAME, else the host name) */
  nodeName?: string;
}

export interface MetricsConfig {
  /** host:port to serve /metrics and /healthz on; "" disables the server */
  address: string;
}

export interface LogConfig {
  level: LogLevel;
}

export const LEDGER_SYNC_MODES = ['auto', 'always', 'never'] as const;
/**
 * When the ownership records are fdatasync'ed. "auto": only where the backend's memory outlives
 * the node's kernel (ubs). A local share and the containers bound to it end with the kernel, so
 * for them a record in the page cache is as durable as what it describes.
 */
export type LedgerSync = (typeof LEDGER_SYNC_MODES)[number];

export interface LedgerConfig {
  sync: LedgerSync;
}

/** The DRA front door (a kubelet plugin beside the NRI plugin); off unless enabled. */
export interface DraConfig {
  enabled: boolean;
  /** the name the agent registers with the kubelet and publishes ResourceSlices under */
  driverName: string;
  /** where the kubelet watches for plugin registration sockets (<driverName>-reg.sock) */
  registryDir: string;
  /** where the DRA service socket is served (dra.sock) */
  pluginDir: string;
  /** where a CDI spec per prepared claim is written; the runtime's cdi_spec_dirs must list it */
  cdiDir: string;
  /** the UB backend: the UB pool this node belongs to (its ResourceSlices span that pool's nodes) */
  ubPool: string;
}

export const DEFAULT_DRA_REGISTRY_DIR = '/var/lib/kubelet/plugins_registry';
export const DEFAULT_DRA_CDI_DIR = '/var/run/cdi';
/** The kubelet's convention for a plugin's own directory. */
export const draPluginDirOf = (driverName: string): string => `/var/lib/kubelet/plugins/${driverName}`;
/** The registration socket's file name (the kubelet ignores names starting with "."). */
export const draRegistrationSocketName = (driverName: string): string => `${driverName}-reg.sock`;
export const DRA_SOCKET_NAME = 'dra.sock';

export interface Config {
  nri: NriConfig;
  stateDir: string;
  sharesDir: string;
  declarationsDir: string;
  backend: BackendConfig;
  limits: Limits;
  /** absent: declarations come from declarationsDir only */
  kubernetes?: KubernetesConfig;
  metrics: MetricsConfig;
  log: LogConfig;
  ledger: LedgerConfig;
  dra: DraConfig;
}

/** Whether the records must be fdatasync'ed before a change is acknowledged. */
export function ledgerSyncs(config: Pick<Config, 'ledger' | 'backend'>): boolean {
  return config.ledger.sync === 'always' || (config.ledger.sync === 'auto' && isDurable(config.backend));
}

export function defaultConfig(): Config {
  return {
    nri: { socket: DEFAULT_SOCKET, name: 'memshare', index: '50' },
    stateDir: DEFAULT_STATE_DIR,
    sharesDir: DEFAULT_SHARES_DIR,
    declarationsDir: DEFAULT_DECLARATIONS_DIR,
    backend: { kind: 'local' },
    limits: { ...DEFAULT_LIMITS },
    metrics: { address: '127.0.0.1:9464' },
    log: { level: 'info' },
    ledger: { sync: 'auto' },
    dra: defaultDraConfig(),
  };
}

function defaultDraConfig(): DraConfig {
  return {
    enabled: false,
    driverName: DEFAULT_DRIVER_NAME,
    registryDir: DEFAULT_DRA_REGISTRY_DIR,
    pluginDir: draPluginDirOf(DEFAULT_DRIVER_NAME),
    cdiDir: DEFAULT_DRA_CDI_DIR,
    ubPool: 'default',
  };
}

/**
 * The exit status of `run` when its config is refused: EX_CONFIG of sysexits.h, which systemd
 * names "CONFIG". The unit's RestartPreventExitStatus= lists it, so a config that cannot work
 * leaves the unit `failed` (where an operator and node monitoring see it) instead of restarting
 * into the same refusal forever. Every other start failure exits 1 and is restarted.
 */
export const EXIT_CONFIG = 78;

/** The file could not be used; `problems` lists every reason, each naming its key. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`config ${source}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`}`);
    this.name = 'ConfigError';
  }
}

const NAME_RE = /^[A-Za-z0-9_.+-]+$/;

function readNri(r: ConfigReader | undefined, def: NriConfig): NriConfig {
  if (!r) return def;
  const out: NriConfig = {
    socket: r.path_('socket', def.socket),
    name: r.string('name', def.name, (v) =>
      NAME_RE.test(v) ? undefined : `must be non-empty and use only letters, digits and _ . + -, got ${describe(v)}`),
    index: r.string('index', def.index, (v) =>
      /^[0-9]{2}$/.test(v) ? undefined : `must be exactly two digits as a string (e.g. "50"), got ${describe(v)}`),
  };
  r.done();
  return out;
}

function readLimits(r: ConfigReader | undefined): Limits {
  const def = DEFAULT_LIMITS;
  if (!r) return { ...def };
  const out: Limits = {
    minShareBytes: r.bytes('minShareBytes', def.minShareBytes),
    maxShareBytes: r.bytes('maxShareBytes', def.maxShareBytes),
    maxNodeBytes: r.bytes('maxNodeBytes', def.maxNodeBytes),
    maxNameLength: r.integer('maxNameLength', def.maxNameLength, 1, DNS_LABEL_MAX),
  };
  if (out.minShareBytes > out.maxShareBytes) {
    r.problem('minShareBytes', `must not exceed limits.maxShareBytes (${out.minShareBytes} > ${out.maxShareBytes})`);
  }
  if (out.maxShareBytes > out.maxNodeBytes) {
    r.problem('maxShareBytes', `must not exceed limits.maxNodeBytes (${out.maxShareBytes} > ${out.maxNodeBytes})`);
  }
  r.done();
  return out;
}

function readKubernetes(parent: ConfigReader): KubernetesConfig | undefined {
  if (parent.has('kubernetes') && parent.raw('kubernetes') === null) return undefined;
  const r = parent.object('kubernetes');
  if (!r) return undefined;
  const kubeconfig = r.has('kubeconfig') ? r.path_('kubeconfig', '') : undefined;
  const inCluster = r.boolean('inCluster', false);
  // the writers back to the cluster: only keys that are set appear (absent means on, from the host)
  const writers: Pick<KubernetesConfig, 'status' | 'events' | 'nodeName'> = {};
  if (r.has('status')) writers.status = r.boolean('status', true);
  if (r.has('events')) writers.events = r.boolean('events', true);
  if (r.has('nodeName')) {
    writers.nodeName = r.string('nodeName', '', (v) =>
      v.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v) ? undefined : `must be a node name (lowercase DNS subdomain, at most 253 characters), got ${describe(v)}`);
  }
  r.done();
  if (kubeconfig && inCluster) {
    parent.problem('kubernetes', 'set either kubeconfig or inCluster: true, not both');
    return undefined;
  }
  if (kubeconfig) return { kubeconfig, inCluster: false, ...writers };
  if (inCluster) return { inCluster: true, ...writers };
  if (!r.has('kubeconfig') && !r.has('inCluster')) {
    parent.problem('kubernetes', 'set kubeconfig (a path) or inCluster: true, or leave kubernetes out');
  }
  return undefined;
}

/** A unix socket path's most bytes (sun_path is 108 bytes with its terminating NUL). */
const SOCKET_PATH_MAX = 107;
/** resource.k8s.io's limit on a driver name (a DNS subdomain that short). */
const DRIVER_NAME_MAX = 63;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The dra section. DRA needs claims from the API server, so enabled without a kubernetes
 * section is refused naming both keys; the sockets' paths must fit a unix socket address.
 */
function readDra(parent: ConfigReader, kube: KubernetesConfig | undefined): DraConfig {
  const def = defaultDraConfig();
  const r = parent.object('dra');
  if (!r) return def;
  const enabled = r.boolean('enabled', def.enabled);
  const driverName = r.string('driverName', def.driverName, (v) =>
    v.length <= DRIVER_NAME_MAX && DNS_SUBDOMAIN_RE.test(v)
      ? undefined
      : `must be a DRA driver name: a lowercase DNS subdomain of at most ${DRIVER_NAME_MAX} characters (e.g. "memshare.example.com"), got ${describe(v)}`);
  const out: DraConfig = {
    enabled,
    driverName,
    registryDir: r.path_('registryDir', def.registryDir),
    pluginDir: r.path_('pluginDir', draPluginDirOf(driverName)),
    cdiDir: r.path_('cdiDir', def.cdiDir),
    // a label value (memshare.nri.io/ub-pool=<ubPool> selects the pool's nodes) and part of the pool's name
    ubPool: r.string('ubPool', def.ubPool, (v) => { const bad = dnsLabelProblem(v); return bad ? `${describe(v)} ${bad}` : undefined; }),
  };
  r.done();
  const sockets: Array<[keyof DraConfig, string]> = [
    ['registryDir', join(out.registryDir, draRegistrationSocketName(out.driverName))],
    ['pluginDir', join(out.pluginDir, DRA_SOCKET_NAME)],
  ];
  for (const [key, path] of sockets) {
    if (Buffer.byteLength(path) > SOCKET_PATH_MAX) {
      r.problem(key, `the socket ${JSON.stringify(path)} would be ${Buffer.byteLength(path)} bytes long; a unix socket path has at most ${SOCKET_PATH_MAX}`);
    }
  }
  // a kubernetes section that is there but bad has its own problem already
  const kubeNamed = kube !== undefined || (parent.has('kubernetes') && parent.raw('kubernetes') !== null);
  if (enabled && !kubeNamed) {
    r.problem('enabled', 'DRA reads ResourceClaims from the API server: set kubernetes.kubeconfig or kubernetes.inCluster too');
  }
  return out;
}

/**
 * Directories that are the system's, never the agent's own: the agent mounts shares two levels
 * below sharesDir and unmounts there at reconcile, and keeps its records in stateDir.
 */
const SYSTEM_DIRS = new Set([
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt', '/opt',
  '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var',
  '/usr/bin', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/sbin', '/usr/share',
  '/var/cache', '/var/lib', '/var/log', '/var/run', '/var/spool', '/var/tmp',
  '/run/lock', '/run/user', '/run/containerd', '/var/lib/containerd', '/var/lib/kubelet', '/etc/kubernetes',
]);
/** Kernel filesystems: no directory inside them is the agent's. */
const KERNEL_TREES = ['/proc', '/sys', '/dev'];

/** The path with every symlink of its existing part resolved (/var/run/x -> /run/x). */
function canonical(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(canonical(parent), basename(abs));
  }
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);

/** Why `path` cannot be the agent's `key` directory, or undefined. */
function systemDirProblem(path: string): string | undefined {
  const real = canonical(path);
  const shown = real === resolve(path) ? JSON.stringify(path) : `${JSON.stringify(path)} (${real})`;
  const tree = KERNEL_TREES.find((t) => inside(real, t));
  if (tree) return `${shown} is inside ${tree}, a kernel filesystem; use a directory of the agent's own`;
  if (SYSTEM_DIRS.has(real)) return `${shown} is a system directory; use a directory of the agent's own`;
  return undefined;
}

/** sharesDir and stateDir: each the agent's own, neither inside the other. */
function checkAgentDirs(r: ConfigReader, config: Config): void {
  let bad = false;
  for (const key of ['sharesDir', 'stateDir'] as const) {
    if (!r.has(key)) continue; // the defaults are fine
    const p = systemDirProblem(config[key]);
    if (p) {
      r.problem(key, `${p} (the agent ${key === 'sharesDir' ? 'mounts shares below it and unmounts them there' : 'keeps its records and lock there'})`);
      bad = true;
    }
  }
  if (bad) return;
  const shares = canonical(config.sharesDir);
  const state = canonical(config.stateDir);
  if (inside(shares, state)) {
    r.problem('sharesDir', `${JSON.stringify(config.sharesDir)} is ${shares === state ? 'the same directory as' : 'inside'} stateDir ${JSON.stringify(config.stateDir)}; they must be separate, neither inside the other`);
  } else if (inside(state, shares)) {
    r.problem('stateDir', `${JSON.stringify(config.stateDir)} is inside sharesDir ${JSON.stringify(config.sharesDir)}; they must be separate, neither inside the other`);
  }
}

/** Validate a parsed JSON value; the config is always complete (defaults stand in for bad values). */
export function parseConfig(obj: unknown, source: string): { config: Config; problems: string[] } {
  const problems: string[] = [];
  const def = defaultConfig();
  if (!isObject(obj)) {
    return { config: def, problems: [`(top level): must be a JSON object, got ${describe(obj)} in ${source}`] };
  }
  const r = new ConfigReader(obj, '', problems);
  const config: Config = {
    nri: readNri(r.object('nri'), def.nri),
    stateDir: r.path_('stateDir', def.stateDir),
    sharesDir: r.path_('sharesDir', def.sharesDir),
    declarationsDir: r.path_('declarationsDir', def.declarationsDir),
    backend: readBackendConfig(r.object('backend')),
    limits: readLimits(r.object('limits')),
    metrics: def.metrics,
    log: def.log,
    ledger: def.ledger,
    dra: def.dra,
  };
  checkAgentDirs(r, config);
  const kube = readKubernetes(r);
  if (kube) config.kubernetes = kube;
  config.dra = readDra(r, kube);

  const m = r.object('metrics');
  if (m) {
    config.metrics = {
      address: m.string('address', def.metrics.address, (v) =>
        v === '' || parseListenAddress(v) ? undefined : `must be host:port (e.g. "127.0.0.1:9464") or "" to disable, got ${describe(v)}`),
    };
    m.done();
  }
  const l = r.object('log');
  if (l) {
    config.log = { level: l.oneOf('level', def.log.level, LOG_LEVELS) };
    l.done();
  }
  const lg = r.object('ledger');
  if (lg) {
    config.ledger = { sync: lg.oneOf('sync', def.ledger.sync, LEDGER_SYNC_MODES) };
    lg.done();
  }
  r.done();
  return { config, problems };
}

/** Most bytes of a config file: a real one is a few hundred. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Read and validate a file; problems instead of exceptions. A missing default file means defaults.
 * A regular file only (a FIFO or a device would block or never end), and no problem quotes its
 * bytes: pointed at /etc/shadow, the message says where the JSON breaks, not what is there.
 */
function readConfigFile(path: string): { config: Config; problems: string[] } {
  let text: string;
  try {
    text = readRegularFileSync(path, MAX_CONFIG_BYTES).toString('utf8');
  } catch (err) {
    if (err instanceof FileReadError && err.refusal === 'missing' && path === DEFAULT_CONFIG_PATH) return { config: defaultConfig(), problems: [] };
    return { config: defaultConfig(), problems: [`cannot read ${path}: ${err instanceof FileReadError && err.refusal === 'missing' ? 'no such file' : messageOf(err).replace(`${path}: `, '')}`] };
  }
  let obj: unknown;
  try {
    obj = parseStrictJson(text);
  } catch (err) {
    return { config: defaultConfig(), problems: [`${path} is not valid JSON: ${err instanceof JsonSyntaxError ? err.message : 'unreadable'}`] };
  }
  return parseConfig(obj, path);
}

/** The config in the file, or a ConfigError listing every problem. */
export function loadConfig(path: string = DEFAULT_CONFIG_PATH): Config {
  const { config, problems } = readConfigFile(path);
  if (problems.length) throw new ConfigError(path, problems);
  return config;
}

/** Every problem in the file, each naming its key; empty when the file is good. */
export function checkConfig(path: string = DEFAULT_CONFIG_PATH): string[] {
  return readConfigFile(path).problems;
}
