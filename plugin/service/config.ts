// The agent's configuration file (JSON): defaults, validation, and the resolved Config type.
// Every problem is reported with its key path ("limits.maxShareBytes: ...") so that
// `nri-memshare check-config` can list them all at once instead of failing on the first.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { DEFAULT_LIMITS, type Limits } from '../memshare/types';
import { parseQuantityBytes } from '../declarations/quantity';
import { parseListenAddress } from './metrics';
import { LOG_LEVELS, type LogLevel } from './logger';

export const DEFAULT_CONFIG_PATH = '/etc/nri-memshare/config.json';

export interface NriConfig {
  /** containerd's NRI socket */
  socket: string;
  /** plugin name; with index it forms the plugin id containerd shows ("50-memshare") */
  name: string;
  /** two digits; containerd orders plugins by it */
  index: string;
}

export interface LocalBackendConfig {
  kind: 'local';
}

/** UBS backend settings; only the well-known keys are typed and checked for now. */
export interface UbsBackendConfig {
  kind: 'ubs';
  /** path to libubsm_sdk.so */
  sdkLibrary?: string;
  /** extra mounts every bound container gets (SDK libraries, daemon socket dir) */
  mounts?: unknown[];
  /** extra environment every bound container gets */
  env?: Record<string, string>;
  [key: string]: unknown;
}

export type BackendConfig = LocalBackendConfig | UbsBackendConfig;

export interface KubernetesConfig {
  /** path to a kubeconfig file; absent when inCluster */
  kubeconfig?: string;
  /** use the pod's service account (agent deployed as a pod) */
  inCluster: boolean;
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
}

/** Whether the records must be fdatasync'ed before a change is acknowledged. */
export function ledgerSyncs(config: Pick<Config, 'ledger' | 'backend'>): boolean {
  return config.ledger.sync === 'always' || (config.ledger.sync === 'auto' && config.backend.kind !== 'local');
}

export function defaultConfig(): Config {
  return {
    nri: { socket: '/var/run/nri/nri.sock', name: 'memshare', index: '50' },
    stateDir: '/var/lib/nri-memshare',
    sharesDir: '/run/nri-memshare/shares',
    declarationsDir: '/etc/nri-memshare/shares.d',
    backend: { kind: 'local' },
    limits: { ...DEFAULT_LIMITS },
    metrics: { address: '127.0.0.1:9464' },
    log: { level: 'info' },
    ledger: { sync: 'auto' },
  };
}

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

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Collects problems while reading one object; keys it never asked about are reported as unknown. */
class Reader {
  private readonly seen = new Set<string>();
  constructor(
    private readonly obj: Obj,
    private readonly path: string,
    private readonly problems: string[],
  ) {}

  key(k: string): string {
    return this.path ? `${this.path}.${k}` : k;
  }

  problem(k: string, msg: string): void {
    this.problems.push(`${this.key(k)}: ${msg}`);
  }

  has(k: string): boolean {
    this.seen.add(k);
    return Object.prototype.hasOwnProperty.call(this.obj, k);
  }

  /** every key present, read or not */
  keys(): string[] {
    return Object.keys(this.obj);
  }

  raw(k: string): unknown {
    return this.has(k) ? this.obj[k] : undefined;
  }

  string(k: string, def: string, check?: (v: string) => string | undefined): string {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    if (typeof v !== 'string') {
      this.problem(k, `must be a string, got ${describe(v)}`);
      return def;
    }
    const why = check?.(v);
    if (why) {
      this.problem(k, why);
      return def;
    }
    return v;
  }

  /** One of a fixed set of strings. */
  oneOf<T extends string>(k: string, def: T, allowed: readonly T[]): T {
    return this.string(k, def, (v) =>
      (allowed as readonly string[]).includes(v) ? undefined : `must be one of ${allowed.join(', ')}, got ${describe(v)}`) as T;
  }

  path_(k: string, def: string): string {
    return this.string(k, def, (v) => (isAbsolute(v) ? undefined : `must be an absolute path, got ${describe(v)}`));
  }

  boolean(k: string, def: boolean): boolean {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    if (typeof v !== 'boolean') {
      this.problem(k, `must be true or false, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  /** A positive byte count: a number, or a Kubernetes quantity string such as "512Gi". */
  bytes(k: string, def: number): number {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v <= 0) {
        this.problem(k, `must be a positive integer number of bytes or a quantity like "512Gi", got ${describe(v)}`);
        return def;
      }
      return v;
    }
    if (typeof v === 'string') {
      try {
        const n = parseQuantityBytes(v);
        if (n > 0) return n;
        this.problem(k, `must be more than 0 bytes, got ${describe(v)}`);
      } catch (err) {
        this.problem(k, (err as Error).message);
      }
      return def;
    }
    this.problem(k, `must be a positive integer number of bytes or a quantity like "512Gi", got ${describe(v)}`);
    return def;
  }

  integer(k: string, def: number, min: number, max: number): number {
    if (!this.has(k)) return def;
    const v = this.obj[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem(k, `must be an integer from ${min} to ${max}, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  /** A nested object; undefined (and a problem) when present but not an object. */
  object(k: string): Reader | undefined {
    if (!this.has(k)) return undefined;
    const v = this.obj[k];
    if (!isObject(v)) {
      this.problem(k, `must be an object, got ${describe(v)}`);
      return undefined;
    }
    return new Reader(v, this.key(k), this.problems);
  }

  /** Report every key that was not read. */
  done(): void {
    for (const k of Object.keys(this.obj)) {
      if (!this.seen.has(k)) this.problems.push(`${this.key(k)}: unknown key`);
    }
  }
}

const NAME_RE = /^[A-Za-z0-9_.+-]+$/;
// A DNS-1123 label, the longest share name any Kubernetes object could have.
const MAX_DNS_LABEL = 63;

function readNri(r: Reader | undefined, def: NriConfig): NriConfig {
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

function readBackend(parent: Reader): BackendConfig {
  const r = parent.object('backend');
  if (!r) return { kind: 'local' };
  const kind = r.raw('kind');
  if (kind === 'local') {
    r.done();
    return { kind: 'local' };
  }
  if (kind !== 'ubs') {
    r.problem('kind', `must be "local" or "ubs", got ${kind === undefined ? 'nothing' : describe(kind)}`);
    return { kind: 'local' };
  }
  // free-form for now: the UBS backend owns the meaning of its keys; check only the shapes we know
  const out: UbsBackendConfig = { kind: 'ubs' };
  for (const k of r.keys()) {
    if (k === 'kind') continue;
    out[k] = r.raw(k);
  }
  if (r.has('sdkLibrary')) out.sdkLibrary = r.path_('sdkLibrary', '');
  if (r.has('mounts') && !Array.isArray(out.mounts)) r.problem('mounts', `must be an array, got ${describe(out.mounts)}`);
  if (r.has('env')) {
    const env = out.env as unknown;
    if (!isObject(env) || Object.values(env).some((v) => typeof v !== 'string')) {
      r.problem('env', 'must be an object of string values');
    }
  }
  return out;
}

function readLimits(r: Reader | undefined): Limits {
  const def = DEFAULT_LIMITS;
  if (!r) return { ...def };
  const out: Limits = {
    minShareBytes: r.bytes('minShareBytes', def.minShareBytes),
    maxShareBytes: r.bytes('maxShareBytes', def.maxShareBytes),
    maxNodeBytes: r.bytes('maxNodeBytes', def.maxNodeBytes),
    maxNameLength: r.integer('maxNameLength', def.maxNameLength, 1, MAX_DNS_LABEL),
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

function readKubernetes(parent: Reader): KubernetesConfig | undefined {
  if (parent.has('kubernetes') && parent.raw('kubernetes') === null) return undefined;
  const r = parent.object('kubernetes');
  if (!r) return undefined;
  const kubeconfig = r.has('kubeconfig') ? r.path_('kubeconfig', '') : undefined;
  const inCluster = r.boolean('inCluster', false);
  r.done();
  if (kubeconfig && inCluster) {
    parent.problem('kubernetes', 'set either kubeconfig or inCluster: true, not both');
    return undefined;
  }
  if (kubeconfig) return { kubeconfig, inCluster: false };
  if (inCluster) return { inCluster: true };
  if (!r.has('kubeconfig') && !r.has('inCluster')) {
    parent.problem('kubernetes', 'set kubeconfig (a path) or inCluster: true, or leave kubernetes out');
  }
  return undefined;
}

/** Validate a parsed JSON value; the config is always complete (defaults stand in for bad values). */
export function parseConfig(obj: unknown, source: string): { config: Config; problems: string[] } {
  const problems: string[] = [];
  const def = defaultConfig();
  if (!isObject(obj)) {
    return { config: def, problems: [`(top level): must be a JSON object, got ${describe(obj)} in ${source}`] };
  }
  const r = new Reader(obj, '', problems);
  const config: Config = {
    nri: readNri(r.object('nri'), def.nri),
    stateDir: r.path_('stateDir', def.stateDir),
    sharesDir: r.path_('sharesDir', def.sharesDir),
    declarationsDir: r.path_('declarationsDir', def.declarationsDir),
    backend: readBackend(r),
    limits: readLimits(r.object('limits')),
    metrics: def.metrics,
    log: def.log,
    ledger: def.ledger,
  };
  const kube = readKubernetes(r);
  if (kube) config.kubernetes = kube;

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

/** Read and validate a file; problems instead of exceptions. A missing default file means defaults. */
function readConfigFile(path: string): { config: Config; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === DEFAULT_CONFIG_PATH) return { config: defaultConfig(), problems: [] };
    return { config: defaultConfig(), problems: [`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`] };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return { config: defaultConfig(), problems: [`${path} is not valid JSON: ${(err as Error).message}`] };
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
