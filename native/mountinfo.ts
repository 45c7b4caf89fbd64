// Reads /proc/<pid>/mountinfo (proc(5)). Plain text parsing, no native calls.
import { readFileSync } from 'node:fs';

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** "major:minor" of the filesystem */
  device: string;
  /** root of the mount inside its filesystem */
  root: string;
  mountPoint: string;
  /** per-mount options, e.g. ["rw", "nosuid", "nodev"] */
  mountOptions: string[];
  /** optional fields, e.g. ["shared:12"] */
  propagation: string[];
  fsType: string;
  source: string;
  /** per-superblock options, e.g. ["rw", "size=131072k", "mode=1777"] */
  superOptions: string[];
}

// The kernel escapes space, tab, newline and backslash in paths as \ooo.
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text; malformed lines are skipped (the kernel does not write any). */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) continue;
    out.push({
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2],
      root: unescape(f[3]),
      mountPoint: unescape(f[4]),
      mountOptions: f[5].split(','),
      propagation: f.slice(6, sep),
      fsType: f[sep + 1],
      source: unescape(f[sep + 2]),
      superOptions: f[sep + 3].split(','),
    });
  }
  return out;
}

/** The mounts of this process's mount namespace. */
export function readMountInfo(path = '/proc/self/mountinfo'): MountInfo[] {
  return parseMountInfo(readFileSync(path, 'utf8'));
}

/**
 * The mount a path lookup of `mountPoint` reaches: of the mounts there, the one nothing else at
 * that point is stacked on (a mount over a mount has the lower one as its parent). undefined when
 * nothing is mounted there.
 */
export function topMountAt(mounts: readonly MountInfo[], mountPoint: string): MountInfo | undefined {
  const here = mounts.filter((m) => m.mountPoint === mountPoint);
  return here.find((m) => !here.some((o) => o.parentId === m.mountId)) ?? here.at(-1);
}
