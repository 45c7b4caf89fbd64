// Unit tests on real mounts (tmpfs, binds): they need root, and must leave nothing mounted.
import { rmSync } from 'node:fs';
import * as native from '../../native';

/** true as root; otherwise a loud skip of the test `name`, or under CI=true a failure (nothing skips there). */
export function needRoot(name: string): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${name}: needs root, and CI=true forbids skipping`);
  console.log(`\n!!!!! SKIPPED (not root): ${name} !!!!!\n`);
  return false;
}

/** Detaches every mount below `base`, the latest first, then removes it: even after a test failed half-way. */
export function unmountAndRemove(base: string): void {
  for (const m of native.readMountInfo().reverse()) {
    if (m.mountPoint.startsWith(`${base}/`)) {
      try {
        native.umount2(m.mountPoint, native.MNT_DETACH);
      } catch {
        // already gone
      }
    }
  }
  rmSync(base, { recursive: true, force: true });
}
