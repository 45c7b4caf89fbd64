// Loads koffi's prebuilt native module for this platform directly. koffi's own index.js first
// loads its build tooling (node:https, tls, crypto, zlib: for downloading prebuilds), which costs
// the agent start-up time and RSS for nothing at run time (docs/performance.md). The native module
// is the whole API the project uses; index.js adds only deprecated aliases. Where the prebuilt
// file is not found (another layout, a musl build), the package entry is used as before.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as KoffiModule from 'koffi';

export type Koffi = typeof KoffiModule;

let loaded: Koffi | undefined;

export function loadKoffi(): Koffi {
  if (loaded) return loaded;
  let file: string | undefined;
  try {
    const pkgDir = dirname(require.resolve('koffi/package.json'));
    const candidate = join(pkgDir, 'build', 'koffi', `${process.platform}_${process.arch}`, 'koffi.node');
    if (existsSync(candidate)) file = candidate;
  } catch {
    // no package.json to resolve: fall back to the package entry below
  }
  loaded = (file ? require(file) : require('koffi')) as Koffi;
  return loaded;
}
