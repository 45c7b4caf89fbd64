// What the UB memory SDK lets a container's user do with a share, and the check that refuses a
// binding the SDK cannot honour before the application runs (README "UB memory nodes", "Access").
//
// The facts (docs/ubs-sdk.md A.5, B.1, B.2): ubsmd checks the share's mode on every map: owner bits
// if the caller's uid is the owner's, else group bits if its PRIMARY gid is the owner's gid, else
// other bits (x ignored, supplementary groups play no part); the requested prot must be covered
// (6011). The SDK then opens /dev/obmm_shmdev<memid> O_RDWR when the granted bits hold w, O_RDONLY
// otherwise, whatever prot the caller asked for. The agent's holder (root) allocates every share:
// owner uid 0, gid 0, mode backend.shareMode. A :ro binding gets 0444 device nodes, :rw 0666.
// So a :ro binding works only for a user granted read and not write (a user granted write fails to
// open the 0444 node, 6051, or, as root with CAP_DAC_OVERRIDE, opens it read-write), and a :rw
// binding only for a user granted read and write.
//
// NRI before 0.11 does not say the container's uid/gid; the OCI bundle does. The backend adds a
// createRuntime hook that runs `nri-memshare ubs-access-check --share SPEC ...`; runc gives it the
// container's state on stdin ({"bundle": dir, ...}); process.user in <bundle>/config.json is the
// user. A binding that cannot be honoured makes the hook exit 1 with one line on stderr, and runc
// fails the container's creation with it. Nothing here starts the agent's machinery: the hook runs
// for every start of a UB container.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '../../model/errors';

/** The CLI subcommand the hook runs. */
export const ACCESS_CHECK_COMMAND = 'ubs-access-check';
/** runc kills the hook and fails the container past this (node starts in about 0.1 s) */
export const ACCESS_CHECK_TIMEOUT_S = 10;

export type Access = 'ro' | 'rw';
export type ModeClass = 'owner' | 'group' | 'other';

/** One bound share as the hook is told it. */
export interface ShareAccess {
  /** "<namespace>/<share>" */
  share: string;
  sdkName: string;
  /** the share's mode (permission bits; x and the high bits are ignored) */
  mode: number;
  ownerUid: number;
  ownerGid: number;
  access: Access;
}

/** The mode class whose bits ubsmd applies to a caller (A.5). */
export function modeClass(uid: number, gid: number, ownerUid: number, ownerGid: number): ModeClass {
  if (uid === ownerUid) return 'owner';
  if (gid === ownerGid) return 'group';
  return 'other';
}

const SHIFT: Record<ModeClass, number> = { owner: 6, group: 3, other: 0 };

/** What the mode grants a class: read, write (the x bit is ignored). */
export function granted(mode: number, cls: ModeClass): { read: boolean; write: boolean } {
  const bits = (mode >> SHIFT[cls]) & 7;
  return { read: (bits & 4) !== 0, write: (bits & 2) !== 0 };
}

export const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

export interface AccessVerdict {
  ok: boolean;
  cls: ModeClass;
  read: boolean;
  write: boolean;
  /** what goes wrong in the SDK (undefined when ok) */
  reason?: string;
  /** a shareMode that would grant this class what the binding needs, the other classes unchanged */
  suggestedMode?: number;
}

/** Whether the SDK will honour `s` for a process of uid/gid (primary), and why not. */
export function checkAccess(s: ShareAccess, uid: number, gid: number): AccessVerdict {
  const cls = modeClass(uid, gid, s.ownerUid, s.ownerGid);
  const g = granted(s.mode, cls);
  const base = { cls, read: g.read, write: g.write };
  const r = 4 << SHIFT[cls];
  const w = 2 << SHIFT[cls];
  const mode = s.mode & 0o777;
  if (!g.read) {
    return { ...base, ok: false, reason: 'the SDK refuses every map of it (6011)', suggestedMode: s.access === 'ro' ? (mode | r) & ~w : mode | r | w };
  }
  if (s.access === 'ro' && g.write) {
    const reason =
      uid === 0
        ? 'the SDK opens its device nodes read-write, and root (CAP_DAC_OVERRIDE) would write through the read-only binding'
        : 'the SDK opens its read-only (0444) device nodes for writing and every map fails (6051)';
    return { ...base, ok: false, reason, suggestedMode: mode & ~w };
  }
  if (s.access === 'rw' && !g.write) {
    return { ...base, ok: false, reason: 'the SDK refuses a writable map (6011)', suggestedMode: mode | w };
  }
  return { ...base, ok: true };
}

const CLASS_WORDS: Record<ModeClass, string> = {
  owner: 'as the share\'s owner (its uid is the owner\'s)',
  group: 'through its group bits (its primary gid is the owner\'s)',
  other: 'through its "other" bits',
};

const grantWords = (v: { read: boolean; write: boolean }): string => (v.read ? (v.write ? 'read-write' : 'read only') : 'no read access');

/** The one line the hook prints for a refused binding: who, which share, why, what to do. */
export function refusalMessage(s: ShareAccess, uid: number, gid: number, v: AccessVerdict): string {
  const binding = s.access === 'ro' ? 'read-only (:ro)' : 'read-write (:rw)';
  const todo: string[] = [];
  if (s.access === 'ro') {
    todo.push(uid === 0 && v.cls === 'owner' ? 'run the container as a non-root user whose class the mode grants read only' : 'run the container as a uid or primary gid the mode grants read only');
    if (v.read && v.write) todo.push('bind the share :rw');
  } else {
    todo.push('run the container as a uid or primary gid the mode grants read-write');
    if (v.read && !v.write) todo.push('bind the share :ro');
  }
  if (v.suggestedMode !== undefined) todo.push(`set backend.shareMode so that the ${v.cls} class gets ${s.access === 'ro' ? 'read only' : 'read-write'} (e.g. "${octal(v.suggestedMode)}"; it applies to shares allocated after the change)`);
  return (
    `nri-memshare: UB share ${s.share} (SDK name ${s.sdkName}) cannot be bound ${binding} to this container: ` +
    `it runs as uid ${uid} gid ${gid}, and the share's mode ${octal(s.mode)} (owner uid ${s.ownerUid} gid ${s.ownerGid}) ` +
    `grants it ${grantWords(v)} ${CLASS_WORDS[v.cls]}, so ${v.reason}. To fix: ${todo.join(', or ')}`
  );
}

// ---- the hook's arguments: one --share SPEC per bound share

/** "team/a,sdk=nms.team.a,mode=0666,owner=0:0,access=ro": DNS names and SDK names hold no "," or "=". */
export function formatShareArg(s: ShareAccess): string {
  return `${s.share},sdk=${s.sdkName},mode=${octal(s.mode)},owner=${s.ownerUid}:${s.ownerGid},access=${s.access}`;
}

const ID = /^(0|[1-9]\d{0,9})$/;

export function parseShareArg(arg: string): ShareAccess {
  const [share, ...fields] = arg.split(',');
  const kv = new Map<string, string>();
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new Error(`--share ${JSON.stringify(arg)}: ${JSON.stringify(f)} is not key=value`);
    kv.set(f.slice(0, eq), f.slice(eq + 1));
  }
  const need = (k: string): string => {
    const v = kv.get(k);
    if (v === undefined || v === '') throw new Error(`--share ${JSON.stringify(arg)}: no ${k}=`);
    return v;
  };
  if (!share || !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(share)) throw new Error(`--share ${JSON.stringify(arg)}: must start with <namespace>/<share>`);
  const mode = need('mode');
  if (!/^0?[0-7]{3}$/.test(mode)) throw new Error(`--share ${JSON.stringify(arg)}: mode ${JSON.stringify(mode)} is not an octal mode`);
  const owner = /^(\d+):(\d+)$/.exec(need('owner'));
  if (!owner || !ID.test(owner[1]) || !ID.test(owner[2])) throw new Error(`--share ${JSON.stringify(arg)}: owner must be <uid>:<gid>`);
  const access = need('access');
  if (access !== 'ro' && access !== 'rw') throw new Error(`--share ${JSON.stringify(arg)}: access must be ro or rw`);
  for (const k of kv.keys()) if (!['sdk', 'mode', 'owner', 'access'].includes(k)) throw new Error(`--share ${JSON.stringify(arg)}: unknown key ${k}`);
  return { share, sdkName: need('sdk'), mode: parseInt(mode, 8), ownerUid: Number(owner[1]), ownerGid: Number(owner[2]), access };
}

// ---- the hook itself

export interface HookResult {
  /** 0 every binding can be honoured; 1 refused (or the user could not be read); 2 bad arguments */
  code: number;
  /** one line for stderr, without the newline */
  message?: string;
}

/** The container's uid and primary gid from the OCI state on stdin and its bundle's config.json. */
export function containerUser(stateJson: string, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): { uid: number; gid: number; id: string } {
  let state: { bundle?: unknown; id?: unknown };
  try {
    state = JSON.parse(stateJson) as typeof state;
  } catch {
    throw new Error('the container state on stdin is not JSON (is this run as an OCI createRuntime hook?)');
  }
  if (typeof state?.bundle !== 'string' || !state.bundle.startsWith('/')) throw new Error('the container state on stdin has no absolute "bundle"');
  const path = join(state.bundle, 'config.json');
  let spec: { process?: { user?: { uid?: unknown; gid?: unknown } } };
  try {
    spec = JSON.parse(readFile(path)) as typeof spec;
  } catch (err) {
    throw new Error(`cannot read the container's user from ${path}: ${messageOf(err)}`);
  }
  const user = spec?.process?.user ?? {};
  // OCI: uid and gid are required on Linux; runc runs a missing one as 0
  const num = (v: unknown, what: string): number => {
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** 32) throw new Error(`${path}: process.user.${what} is not a uid/gid: ${JSON.stringify(v)}`);
    return v;
  };
  return { uid: num(user.uid, 'uid'), gid: num(user.gid, 'gid'), id: typeof state.id === 'string' ? state.id : '' };
}

/** `ubs-access-check --share SPEC ...` with the state JSON runc writes on stdin. */
export function runAccessCheck(args: readonly string[], stdin: string, readFile?: (p: string) => string): HookResult {
  const shares: ShareAccess[] = [];
  try {
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === '--share') {
        const v = args[++i];
        if (v === undefined) throw new Error('--share needs a value');
        shares.push(parseShareArg(v));
      } else if (a.startsWith('--share=')) shares.push(parseShareArg(a.slice('--share='.length)));
      else throw new Error(`unknown argument ${JSON.stringify(a)}`);
    }
    if (!shares.length) throw new Error('no --share');
  } catch (err) {
    return { code: 2, message: `nri-memshare ubs-access-check: ${messageOf(err)}` };
  }
  let user: { uid: number; gid: number };
  try {
    user = containerUser(stdin, readFile);
  } catch (err) {
    // fail closed: a binding nobody checked may be one that writes through :ro
    return { code: 1, message: `nri-memshare: cannot check the UB share bindings of this container: ${messageOf(err)}` };
  }
  const refused = shares.map((s) => ({ s, v: checkAccess(s, user.uid, user.gid) })).filter((x) => !x.v.ok);
  if (!refused.length) return { code: 0 };
  const [first, ...more] = refused;
  let message = refusalMessage(first.s, user.uid, user.gid, first.v);
  if (more.length) message += `. Also refused: ${more.map((x) => `${x.s.share} (:${x.s.access}: the mode grants ${grantWords(x.v)})`).join(', ')}`;
  return { code: 1, message };
}
