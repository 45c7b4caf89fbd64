// The CDI spec that gives UB containers the daemon's group. No NRI version can add supplemental
// groups, but CDI's containerEdits.additionalGids can, where containerd resolves NRI's
// CDI_devices (2.1 and later). One spec for the node: every UB container needs the same groups.
import { writeCdiSpecFile } from '../../files/cdi-dir';

// the directory check is shared with the DRA driver's specs (and config checks import it from here)
export { cdiDirProblem } from '../../files/cdi-dir';

export const CDI_KIND = 'memshare.nri.io/ubs';
export const CDI_DEVICE = 'daemon-access';
export const CDI_DEVICE_NAME = `${CDI_KIND}=${CDI_DEVICE}`;
export const CDI_SPEC_FILE = 'memshare.nri.io-ubs.json';

/** The spec's JSON (cdiVersion 0.7.0: the first with additionalGids). */
export function cdiSpec(gids: readonly number[]): object {
  return {
    cdiVersion: '0.7.0',
    kind: CDI_KIND,
    devices: [
      {
        name: CDI_DEVICE,
        // an env edit too: a device with no edits at all is invalid in some CDI versions
        containerEdits: { env: ['MEMSHARE_UBS_DAEMON_ACCESS=1'], additionalGids: [...gids] },
      },
    ],
  };
}

/** Writes the spec atomically into `dir`; returns its path. Refuses a dir that is not root's alone. */
export function writeCdiSpec(dir: string, gids: readonly number[]): string {
  return writeCdiSpecFile(dir, CDI_SPEC_FILE, cdiSpec(gids));
}

/**
 * Whether containerd resolves NRI's CDI_devices: 2.1 and later (wired, enable_cdi on by default).
 * 1.7.30+ wires it only with enable_cdi=true and fails creations without it, so "auto" leaves
 * every 1.7 alone; 2.0 ignores it.
 */
export function runtimeResolvesCdi(name: string, version: string): boolean {
  if (name !== 'containerd') return false;
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 2 || (major === 2 && minor >= 1);
}
