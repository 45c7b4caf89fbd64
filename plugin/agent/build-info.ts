// What this build is: the package version (read from package.json beside the compiled code) and
// the NRI protocol it speaks. Shown by `nri-memshare version`, the build-info metric and status.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The newest NRI protocol the plugin speaks (proto/nri.proto follows containerd/nri v0.6 to v0.12). */
export const NRI_PROTOCOL_VERSION = 'v0.12';

let cached: string | undefined;

/** The package version, e.g. "0.1.0"; "unknown" when package.json cannot be read. */
export function packageVersion(): string {
  if (cached) return cached;
  // dist/plugin/agent/ in the tree and /usr/lib/nri-memshare/dist/plugin/agent/ when installed
  for (const up of [join('..', '..', '..'), join('..', '..')]) {
    try {
      const v = (JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as { name?: string; version?: unknown });
      if (v.name === 'nri-memshare' && typeof v.version === 'string') return (cached = v.version);
    } catch {
      // try the next candidate
    }
  }
  return (cached = 'unknown');
}

export interface BuildInfo {
  version: string;
  nriVersion: string;
  node: string;
}

export function buildInfo(): BuildInfo {
  return { version: packageVersion(), nriVersion: NRI_PROTOCOL_VERSION, node: process.version };
}
