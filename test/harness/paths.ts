// Where fetch-containerd.sh leaves its artefacts; one place so the script and the TS agree.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type ContainerdVersion = '1.7' | '2.1';

export const TEST_IMAGE = 'localhost/nri-memshare-test:1';

export function cacheDir(): string {
  return process.env.NRI_MEMSHARE_CACHE || '/var/tmp/nri-memshare-cache';
}

/** Folder holding usr/bin/{containerd,ctr,containerd-shim-runc-v2} of one version. */
export function containerdBinDir(version: ContainerdVersion): string {
  return join(cacheDir(), `containerd-${version}`, 'usr', 'bin');
}

export function criProtoPath(): string {
  return join(cacheDir(), 'cri-api', 'api.proto');
}

export function imageTarPath(): string {
  return join(cacheDir(), 'image', 'nri-memshare-test.tar');
}

/** Throws a message that says how to fix it when the cache is not there yet. */
export function assertFetched(version: ContainerdVersion): void {
  const missing = [join(containerdBinDir(version), 'containerd'), criProtoPath(), imageTarPath()].filter(
    (p) => !existsSync(p),
  );
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: run "bash test/harness/fetch-containerd.sh" first`);
  }
}

/** The .deb the binaries came from, e.g. containerd_1.7.24~ds1-6+deb13u1_amd64.deb. */
export function containerdDeb(version: ContainerdVersion): string {
  try {
    return readFileSync(join(cacheDir(), `containerd-${version}`, 'DEB'), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Folder of fetch-kube-tools.sh's etcd, etcdctl and kubectl. */
export function kubeToolsBinDir(): string {
  return join(cacheDir(), 'kube-tools', 'bin');
}

/** The API server fetch-kube-tools.sh builds (Kubernetes' apiextensions-apiserver, the project's main). */
export function kubeApiserverPath(): string {
  return join(cacheDir(), 'kube-apiserver', 'apiserver');
}

/** Throws a message that says how to fix it when the Kubernetes parts are not built yet. */
export function assertKubeFetched(): void {
  const missing = [kubeApiserverPath(), ...['etcd', 'etcdctl', 'kubectl'].map((b) => join(kubeToolsBinDir(), b))].filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: run "bash test/harness/fetch-kube-tools.sh" first`);
}
