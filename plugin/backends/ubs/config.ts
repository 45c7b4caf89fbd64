// backend.* for kind "ubs": every path, library, group and budget the UBS backend uses, defaulting
// to the vendor's pod recipe (ubs-test's matrixshm pods; see README "UB memory nodes").
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { isObject, type MountSpec } from '../../model';
import { describe, type ConfigReader } from '../../config/reader';
import { namePrefixProblem } from './naming';

export const UBS_KIND = 'ubs';
/** Where the SDK looks for its daemon's socket: compiled into libubsm_sdk.so. */
export const SDK_SOCKET_DIR = '/run/matrix/memory';

export interface PathPair {
  host: string;
  container: string;
}

export const CDI_MODES = ['auto', 'always', 'never'] as const;

export interface UbsBackendConfig {
  kind: typeof UBS_KIND;
  /** the SDK the agent loads */
  sdkLibrary: string;
  /** the SDK's directory, bound read-only into containers */
  sdkDir: PathPair;
  /** libraries the SDK needs, bound read-only (libobmm.so.1 must be at /usr/lib64 exactly) */
  libraries: PathPair[];
  /** the host directory bound at /run/matrix/memory: ubsmd's own, or a proxy's (e.g. /run/memory) */
  socketDir: string;
  region: string;
  namePrefix: string;
  /**
   * a root-only file with the cluster's name secret (the same on every node): keyed into every SDK
   * name so that no one else can tell a name in advance and allocate it first; absent: names are
   * predictable (./naming.ts)
   */
  nameSecretFile?: string;
  /** the mode shares are allocated with; the daemon checks it on every map */
  shareMode: number;
  flags: number;
  /** mode the agent gives the host's device nodes of its shares (containers get their own) */
  hostDeviceMode: number;
  /** groups that may reach the daemon (names or gids), added to containers through CDI */
  groups: Array<string | number>;
  cdi: (typeof CDI_MODES)[number];
  cdiDir: string;
  /** environment every UB container gets (besides LD_LIBRARY_PATH and the share names) */
  env: Record<string, string>;
  /** more mounts every UB container gets */
  mounts: MountSpec[];
  /** how long a binding waits for the SDK inside a CreateContainer (ms) */
  budgetMs: number;
  procDevices: string;
  hostDevDir: string;
  /**
   * true: the SDK link and the mappings live in the UB holder, a process that outlives the agent
   * (restarts and upgrades change nothing for running containers); false: in the agent itself
   */
  holder: boolean;
  /**
   * how long a share whose holders were evicted for stale device numbers (the holder or the daemon
   * restarted) is kept with no binding, for the kubelet's recreated containers (s)
   */
  staleGraceSeconds: number;
  /**
   * the agent's CLI as runc can run it on this host (absolute path first, then fixed arguments):
   * every UB container gets it as a createRuntime hook, `<accessCheck...> ubs-access-check --share ...`,
   * which refuses bindings the SDK cannot honour for the container's uid/gid (./access.ts)
   */
  accessCheck: string[];
}

const VENDOR_LIBRARIES = [
  '/usr/lib64/libobmm.so.1',
  '/usr/lib64/libobmm.so.1.0.1',
  '/usr/lib64/libnuma.so.1',
  '/usr/lib64/libnuma.so.1.0.0',
  '/usr/lib64/libhcom.so.0',
  '/usr/lib64/libhcom.so.0.0.1',
  '/usr/lib64/libboundscheck.so',
];

export function defaultUbsConfig(): UbsBackendConfig {
  return {
    kind: UBS_KIND,
    sdkLibrary: '/usr/local/ubs_mem/lib/libubsm_sdk.so',
    sdkDir: { host: '/usr/local/ubs_mem', container: '/host/usr/local/ubs_mem' },
    libraries: VENDOR_LIBRARIES.map((p) => ({ host: p, container: p })),
    socketDir: SDK_SOCKET_DIR,
    region: 'default',
    namePrefix: 'nms',
    shareMode: 0o666,
    flags: 0,
    hostDeviceMode: 0o600,
    groups: ['ubsmd'],
    cdi: 'auto',
    cdiDir: '/var/run/cdi',
    // the vendor's advice: fail a lost daemon link in about 3 s, not 31 s
    env: { HCOM_CONNECTION_RETRY_TIMES: '2' },
    mounts: [],
    budgetMs: 1000,
    procDevices: '/proc/devices',
    hostDevDir: '/dev',
    holder: true,
    staleGraceSeconds: 600,
    accessCheck: ['/usr/bin/nri-memshare'],
  };
}

const absolute = (v: string) => (isAbsolute(v) && !v.split('/').includes('..') ? undefined : `must be an absolute path without "..", got ${describe(v)}`);

/** A path inside a container that a bind mount may cover: not the container's root. */
const containerPath = (v: string) => absolute(v) ?? (v.split('/').every((c) => c === '') ? `must not be "/": the mount would cover the container's whole root` : undefined);

/**
 * The options a configured mount may carry: a bind, read-only or writable (the operator's choice of
 * directory), propagation that sends nothing back to the host, and the restrictions. Anything else
 * escalates: shared propagation lets a container's mounts reach the host, suid/dev/exec undo the
 * restrictions every other mount of the agent's has; unknown words are refused rather than guessed.
 */
export const SAFE_MOUNT_OPTIONS: ReadonlySet<string> = new Set(['bind', 'rbind', 'ro', 'rw', 'nosuid', 'nodev', 'noexec', 'private', 'rprivate', 'slave', 'rslave']);

/** Environment names a config may not set: the dynamic loader's, and the ones the agent sets itself. */
function envNameProblem(name: string): string | undefined {
  if (name.startsWith('LD_')) return `${describe(name)}: the dynamic loader's variables (LD_*) are not set through the config (the agent sets LD_LIBRARY_PATH itself)`;
  if (name.startsWith('MEMSHARE_')) return `${describe(name)}: MEMSHARE_* variables (${SHARES_ENV_NAME} and the CDI one) are the agent's own`;
  return undefined;
}
/** The variable that tells the application its shares' SDK names (backend.ts sets it). */
const SHARES_ENV_NAME = 'MEMSHARE_UBS_SHARES';

function pathPair(r: ConfigReader, k: string, v: unknown): PathPair | undefined {
  if (typeof v === 'string') {
    const why = containerPath(v);
    if (why) return void r.problem(k, why);
    return { host: v, container: v };
  }
  if (isObject(v) && typeof v.host === 'string' && typeof v.container === 'string') {
    const why = absolute(v.host) ?? containerPath(v.container);
    if (why) return void r.problem(k, why);
    if (Object.keys(v).some((x) => x !== 'host' && x !== 'container')) return void r.problem(k, 'takes only "host" and "container"');
    return { host: v.host, container: v.container };
  }
  return void r.problem(k, `must be a path or {"host": path, "container": path}, got ${describe(v)}`);
}

function mode(r: ConfigReader, k: string, def: number, problem?: (n: number) => string | undefined): number {
  const octal = (v: unknown) => (typeof v === 'string' && /^0?[0-7]{3}$/.test(v) ? parseInt(v, 8) : undefined);
  return r.parsed(k, def, 'an octal mode as a string such as "0660"', octal, problem);
}

/** Only root opens a share's host device nodes (containers get nodes of their own). */
const hostModeProblem = (n: number) => (n & 0o077 ? `must grant nothing to group and others (only root opens the host's nodes; containers get their own), got "0${n.toString(8)}"` : undefined);

/** Why a configured mount is refused, or undefined. */
function mountProblem(m: Record<string, unknown>): string | undefined {
  if (typeof m.source !== 'string' || typeof m.destination !== 'string') return 'must have a "source" and a "destination" path';
  const src = absolute(m.source);
  if (src) return `source ${src}`;
  const dst = containerPath(m.destination);
  if (dst) return `destination ${dst}`;
  if (Object.keys(m).some((k) => k !== 'source' && k !== 'destination' && k !== 'options')) return 'takes only "source", "destination" and "options"';
  if (m.options === undefined) return undefined;
  if (!Array.isArray(m.options) || !m.options.every((o) => typeof o === 'string')) return 'options must be an array of strings';
  const bad = m.options.filter((o) => !SAFE_MOUNT_OPTIONS.has(o as string));
  if (bad.length) return `options ${bad.map((o) => describe(o)).join(', ')} are not allowed (only ${[...SAFE_MOUNT_OPTIONS].join(', ')}: no shared propagation, suid, dev or exec)`;
  return undefined;
}

/** procDevices must be a regular file (a FIFO there would block the first acquire); absent is fine until then. */
function procDevicesProblem(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return `${describe(path)} is not a regular file`;
  } catch {
    // not there (yet): the first acquire says so
  }
  return undefined;
}

/** Reads backend.* for kind "ubs"; every problem names its key. */
export function readUbsConfig(r: ConfigReader): UbsBackendConfig {
  const def = defaultUbsConfig();
  r.has('kind');
  const out: UbsBackendConfig = {
    ...def,
    sdkLibrary: r.string('sdkLibrary', def.sdkLibrary, absolute),
    socketDir: r.string('socketDir', def.socketDir, absolute),
    region: r.string('region', def.region, (v) => (v.length >= 1 && v.length <= 47 ? undefined : 'must be 1 to 47 characters')),
    namePrefix: r.string('namePrefix', def.namePrefix, namePrefixProblem),
    ...(r.has('nameSecretFile') ? { nameSecretFile: r.string('nameSecretFile', '', absolute) } : {}),
    shareMode: mode(r, 'shareMode', def.shareMode),
    hostDeviceMode: mode(r, 'hostDeviceMode', def.hostDeviceMode, hostModeProblem),
    flags: r.integer('flags', def.flags, 0, 0x3f),
    cdi: r.oneOf('cdi', def.cdi, CDI_MODES),
    cdiDir: r.string('cdiDir', def.cdiDir, absolute),
    budgetMs: r.integer('budgetMs', def.budgetMs, 50, 60_000),
    procDevices: r.string('procDevices', def.procDevices, (v) => absolute(v) ?? procDevicesProblem(v)),
    hostDevDir: r.string('hostDevDir', def.hostDevDir, absolute),
    holder: r.boolean('holder', def.holder),
    staleGraceSeconds: r.integer('staleGraceSeconds', def.staleGraceSeconds, 0, 7 * 24 * 3600),
  };
  if (r.has('sdkDir')) out.sdkDir = pathPair(r, 'sdkDir', r.raw('sdkDir')) ?? def.sdkDir;
  if (r.has('libraries')) {
    const v = r.raw('libraries');
    if (!Array.isArray(v)) r.problem('libraries', `must be an array of paths or {"host", "container"} pairs, got ${describe(v)}`);
    else out.libraries = v.map((x, i) => pathPair(r, `libraries[${i}]`, x)).filter((x): x is PathPair => x !== undefined);
  }
  if (r.has('groups')) {
    const v = r.raw('groups');
    if (!Array.isArray(v) || !v.every((g) => (typeof g === 'string' && /^[a-z_][a-z0-9_-]*\$?$/.test(g)) || (Number.isInteger(g) && g >= 0 && g < 2 ** 32))) {
      r.problem('groups', `must be an array of group names or numeric gids, got ${describe(v)}`);
    } else if (v.some((g) => g === 0 || g === 'root')) {
      // every UB container gets these groups: root's group would open root-group files to it
      r.problem('groups', `must not name group 0 (root): every UB container would get it, got ${describe(v)}`);
    } else out.groups = v as Array<string | number>;
  }
  if (r.has('env')) {
    const v = r.raw('env');
    if (!isObject(v) || !Object.entries(v).every(([k, x]) => typeof x === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))) {
      r.problem('env', 'must be an object of string values, keyed by variable names');
    } else {
      const bad = Object.entries(v as Record<string, string>).map(([k, x]) => envNameProblem(k) ?? (x.includes('\0') ? `${describe(k)}: its value holds a NUL character` : undefined)).filter((x) => x !== undefined);
      if (bad.length) r.problem('env', bad.join('; '));
      else out.env = { ...def.env, ...(v as Record<string, string>) };
    }
  }
  if (r.has('accessCheck')) {
    const v = r.raw('accessCheck');
    if (!Array.isArray(v) || v.length === 0 || v.length > 16 || !v.every((x) => typeof x === 'string' && x !== '' && !x.includes('\0'))) {
      r.problem('accessCheck', `must be an array of 1 to 16 non-empty strings (an executable's absolute path, then its arguments), got ${describe(v)}`);
    } else {
      const why = absolute(v[0] as string);
      if (why) r.problem('accessCheck', `the executable (its first element) ${why}`);
      else out.accessCheck = [...(v as string[])];
    }
  }
  if (r.has('mounts')) {
    const v = r.raw('mounts');
    if (!Array.isArray(v) || !v.every(isObject)) r.problem('mounts', 'must be an array of {"source": path, "destination": path, "options": [..]}');
    else {
      const bad = v.map((m, i) => [i, mountProblem(m)] as const).filter(([, why]) => why !== undefined);
      for (const [i, why] of bad) r.problem(`mounts[${i}]`, why as string);
      if (!bad.length) {
        out.mounts = v.map((m): MountSpec => ({ source: m.source as string, destination: m.destination as string, type: 'bind', options: (m.options as string[] | undefined) ?? ['rbind', 'rprivate', 'ro', 'nosuid', 'nodev'] }));
      }
    }
  }
  r.done();
  return out;
}

/** The numeric gids of configured groups: names resolved through the host's group file. */
export function resolveGroups(groups: ReadonlyArray<string | number>, groupFile = '/etc/group'): { gids: number[]; missing: string[] } {
  const names = new Map<string, number>();
  if (groups.some((g) => typeof g === 'string')) {
    let text = '';
    try {
      text = readFileSync(groupFile, 'utf8');
    } catch {
      // no group file: every name is missing
    }
    for (const line of text.split('\n')) {
      const [name, , gid] = line.split(':');
      if (name && gid && /^\d+$/.test(gid)) names.set(name, Number(gid));
    }
  }
  const gids: number[] = [];
  const missing: string[] = [];
  for (const g of groups) {
    if (typeof g === 'number') gids.push(g);
    else if (names.has(g)) gids.push(names.get(g) as number);
    else missing.push(g);
  }
  return { gids: [...new Set(gids)], missing };
}
