// What an e2e test file imports: a real containerd per version, a CRI client, and the root rule.
import { suite } from 'uvu';
import { ContainerdInstance, ContainerdOptions, startContainerd } from './containerd';
import { CriClient } from './cri';
import { ContainerdVersion } from './paths';

export { startContainerd, mountsUnder, shimPids } from './containerd';
export type { ContainerdInstance, ContainerdOptions } from './containerd';
export * from './cri';
export { TEST_IMAGE, cacheDir, criProtoPath, imageTarPath, containerdBinDir, kubeToolsBinDir, kubeApiserverPath } from './paths';
export { startKubeApi, freePort, ADMIN_GROUP } from './apiserver';
export type { KubeApi, CommandResult } from './apiserver';
export type { ContainerdVersion } from './paths';
export { debug, step } from './debug';

export const ALL_VERSIONS: readonly ContainerdVersion[] = ['1.7', '2.1'];

/** Versions to test: NRI_MEMSHARE_CONTAINERD="1.7" or "2.1" or "1.7,2.1" (default both). */
export function selectedVersions(): ContainerdVersion[] {
  const raw = process.env.NRI_MEMSHARE_CONTAINERD;
  if (!raw) return [...ALL_VERSIONS];
  const picked = raw.split(',').map((s) => s.trim());
  const bad = picked.filter((v) => !(ALL_VERSIONS as readonly string[]).includes(v));
  if (bad.length) throw new Error(`NRI_MEMSHARE_CONTAINERD: unknown version(s) ${bad.join(', ')}`);
  return picked as ContainerdVersion[];
}

/**
 * true when the tests may run (we are root). Otherwise: under CI=true throws (a skipped e2e
 * suite must not pass CI), elsewhere prints a loud skip message and returns false.
 */
export function requireRoot(testName: string): boolean {
  if (process.getuid?.() === 0) return true;
  const msg = `${testName} needs root (it runs a real containerd)`;
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true, so this is a failure, not a skip`);
  process.stdout.write(`\n${'!'.repeat(78)}\n!!! SKIPPED: ${msg}. Run as root.\n${'!'.repeat(78)}\n\n`);
  return false;
}

export type E2eTest = (name: string, fn: () => unknown) => void;

export interface E2eEnv {
  readonly version: ContainerdVersion;
  /** The running instance (throws the start-up error if containerd failed to start). */
  readonly containerd: ContainerdInstance;
  readonly cri: CriClient;
  /** Hooks of the underlying uvu suite (before.each etc.), for files that need them. */
  readonly hooks: {
    beforeEach(fn: () => unknown): void;
    afterEach(fn: () => unknown): void;
  };
}

export type ForEachOptions = Omit<ContainerdOptions, 'version'> & { versions?: ContainerdVersion[] };

/**
 * Registers and runs one uvu suite per containerd version ("<name> [containerd 1.7]" ...), each
 * with its own containerd started before its first test and stopped after its last. `register`
 * is called once per version and declares the tests with `test(name, fn)`.
 * Not root: loud skip of every test (or, under CI=true, one failing test).
 */
export function forEachContainerd(
  name: string,
  register: (test: E2eTest, env: E2eEnv) => void,
  opts: ForEachOptions = {},
): void {
  const { versions, ...startOpts } = opts;
  let root: boolean;
  try {
    root = requireRoot(name);
  } catch (e) {
    const s = suite(name);
    s('requires root', () => {
      throw e;
    });
    s.run();
    return;
  }
  for (const version of versions ?? selectedVersions()) {
    const s = suite(`${name} [containerd ${version}]`);
    let inst: ContainerdInstance | undefined;
    let startError: unknown;
    const env: E2eEnv = {
      version,
      get containerd(): ContainerdInstance {
        if (!inst) throw startError ?? new Error(`containerd ${version} is not running`);
        return inst;
      },
      get cri(): CriClient {
        return env.containerd.cri;
      },
      hooks: {
        beforeEach: (fn) => s.before.each(async () => void (await fn())),
        afterEach: (fn) => s.after.each(async () => void (await fn())),
      },
    };
    if (root) {
      // A start failure is reported by every test of the suite instead of crashing uvu's runner.
      s.before(async () => {
        try {
          inst = await startContainerd({ ...startOpts, version });
          process.stdout.write(`  [harness] containerd ${inst.version} (${inst.deb}) in ${inst.dir}\n`);
        } catch (e) {
          startError = e;
        }
      });
      s.after(async () => {
        await inst?.stop();
        inst = undefined;
      });
    }
    const test: E2eTest = root ? (n, fn) => s(n, async () => void (await fn())) : () => s.skip();
    register(test, env);
    s.run();
  }
}
export { buildImage, importImage } from './image';
export type { ImageFile, ImageSpec } from './image';
