// Extra test images, built on the fly from host files (one gzip layer, OCI layout tar), for tests
// that need more than the static busybox image of fetch-containerd.sh: e.g. glibc's loader and libc
// for a dynamically linked program. Import with importImage(containerd, tar).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ContainerdInstance } from './containerd';

export interface ImageFile {
  /** host file (copied, symlinks followed) */
  src: string;
  /** absolute path in the image */
  dest: string;
}

export interface ImageSpec {
  /** e.g. localhost/nri-memshare-ubs:1 */
  name: string;
  files: ImageFile[];
  /** absolute path in the image -> link target */
  symlinks?: Record<string, string>;
  /** image Cmd (default ["/pause"]) */
  cmd?: string[];
  /** empty directories to make (besides /dev /proc /sys /tmp /etc /run /var /dev/shm) */
  dirs?: string[];
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Builds the image as an OCI layout tar at `tarPath` (overwritten). */
export function buildImage(spec: ImageSpec, tarPath: string): string {
  const work = mkdtempSync('/tmp/nrims-image-');
  try {
    const root = join(work, 'rootfs');
    const oci = join(work, 'oci');
    for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'run', 'var', 'dev/shm', ...(spec.dirs ?? []).map((x) => x.replace(/^\//, ''))]) {
      mkdirSync(join(root, d), { recursive: true });
    }
    mkdirSync(join(oci, 'blobs', 'sha256'), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    for (const f of spec.files) {
      const to = join(root, f.dest);
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(f.src, to);
      chmodSync(to, statSync(f.src).mode & 0o7777);
    }
    for (const [at, target] of Object.entries(spec.symlinks ?? {})) {
      const to = join(root, at);
      mkdirSync(dirname(to), { recursive: true });
      rmSync(to, { force: true });
      symlinkSync(target, to);
    }
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const layerTar = join(work, 'layer.tar');
    execFileSync('tar', ['-C', root, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', layerTar, '.']);
    const diffId = sha(readFileSync(layerTar));
    execFileSync('gzip', ['-n', '-1', layerTar]);
    const layer = readFileSync(`${layerTar}.gz`);
    const layerSha = sha(layer);
    writeFileSync(join(oci, 'blobs', 'sha256', layerSha), layer);
    const cfg = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin:/usr/local/bin'], Cmd: spec.cmd ?? ['/pause'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: 'nri-memshare test/harness/image.ts' }],
    });
    const cfgSha = sha(cfg);
    writeFileSync(join(oci, 'blobs', 'sha256', cfgSha), cfg);
    const man = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${cfgSha}`, size: Buffer.byteLength(cfg) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${layerSha}`, size: layer.length }],
    });
    const manSha = sha(man);
    writeFileSync(join(oci, 'blobs', 'sha256', manSha), man);
    writeFileSync(join(oci, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const ref = spec.name.split(':').pop() ?? 'latest';
    writeFileSync(
      join(oci, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: `sha256:${manSha}`,
            size: Buffer.byteLength(man),
            platform: { architecture: 'amd64', os: 'linux' },
            annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': ref },
          },
        ],
      }),
    );
    mkdirSync(dirname(tarPath), { recursive: true });
    execFileSync('tar', ['-C', oci, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', `${tarPath}.tmp`, '.']);
    renameSync(`${tarPath}.tmp`, tarPath);
    return tarPath;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Imports an OCI layout tar into a test containerd (native snapshotter, as the harness image). */
export function importImage(containerd: ContainerdInstance, tarPath: string): void {
  const local = containerd.version.startsWith('1.') ? [] : ['--local'];
  containerd.ctr(['images', 'import', ...local, '--snapshotter', 'native', tarPath]);
}
