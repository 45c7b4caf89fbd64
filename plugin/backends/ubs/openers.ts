// Which processes hold a share's host device nodes open or mapped. The pool gives a share's nodes
// the share's mode when it attaches them to this node (UBSE chowns and chmods them right after the
// import, inside the holder's map call: docs/ubs-sdk.md B.2), so with the usual 0666 any host user
// may open them until the agent's chmod to hostDeviceMode, and a descriptor or mapping made in that
// window survives the chmod. The agent cannot keep UBSE from opening the window; it looks, after
// its chmod, for anyone who got in (before any container is given the share).
import { readdirSync, readFileSync, statSync } from 'node:fs';

/** glibc's dev_t encoding of a device number (what stat's rdev holds). */
export function devNumber(major: number, minor: number): number {
  return (major & 0xfff) * 2 ** 8 + (minor & 0xff) + (minor & ~0xff) * 2 ** 12 + Math.floor(major / 0x1000) * 2 ** 32;
}

/**
 * The pids, other than `except`, with a descriptor on one of the character devices `rdevs`, or a
 * mapping of a file named like one of `names` (a mapping outlives its descriptor). `proc`: the
 * proc filesystem's root. Processes that go away meanwhile are skipped; `unreadable` counts those
 * whose descriptors the agent may not see (another user's, without CAP_SYS_PTRACE).
 */
export function openersOf(rdevs: ReadonlySet<number>, names: readonly string[], except: ReadonlySet<number>, proc = '/proc'): { pids: number[]; unreadable: number } {
  const found = { pids: [] as number[], unreadable: 0 };
  let pids: string[];
  try {
    pids = readdirSync(proc);
  } catch {
    return found;
  }
  for (const p of pids) {
    if (!/^\d+$/.test(p) || except.has(Number(p))) continue;
    const fd = holdsFd(`${proc}/${p}/fd`, rdevs);
    if (fd === 'unreadable') found.unreadable++;
    if (fd === true || mapsName(`${proc}/${p}/maps`, names)) found.pids.push(Number(p));
  }
  return found;
}

function holdsFd(dir: string, rdevs: ReadonlySet<number>): boolean | 'unreadable' {
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? 'unreadable' : false;
  }
  for (const fd of fds) {
    try {
      const st = statSync(`${dir}/${fd}`);
      if (st.isCharacterDevice() && rdevs.has(st.rdev)) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

function mapsName(path: string, names: readonly string[]): boolean {
  if (names.length === 0) return false;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  return names.some((n) => text.includes(`/${n}\n`) || text.includes(`/${n} (deleted)\n`));
}
