#!/usr/bin/env bash
# Builds the agent's container image, offline and without any registry: an OCI image layout tar
# that `ctr -n k8s.io images import` loads on a node (packaging/kubernetes/daemonset/ runs it).
#
# usage: scripts/build-image.sh [--out FILE] [--name NAME] [--no-build]
#   --out FILE   where to write the tar (default dist/image/nri-memshare-<version>.oci.tar)
#   --name NAME  the image name recorded in it (default localhost/nri-memshare:<version>)
#   --no-build   use the existing dist/ (the test command has just built it)
#
# Two layers, so that an upgrade of the agent ships only the second:
# 1. base: Node.js and the shared libraries it links against, from Debian's own packages (nodejs
#    24 from the first of "trixie sid" that has it, the same Node the tests run as their second
#    Node), plus dash for the launcher; fetched through test/harness/apt-private.sh (a private
#    sources list on the mirror this machine already uses) and unpacked with dpkg-deb -x. Slow
#    the first time, then cached under $NRI_MEMSHARE_CACHE/agent-image/ (no network at all).
# 2. agent: what the RPM installs under /usr/lib/nri-memshare, by the same script as the spec's
#    %install (packaging/install-agent.sh) on this checkout's build (the bundled dist/agent/*.js,
#    package.json, the bundle's external modules with koffi's linux_x64 binary only), the license
#    texts, and the launcher /usr/bin/nri-memshare (packaging/nri-memshare.sh). /etc/nri-memshare/config.json is a link into config/, where the
#    DaemonSet mounts its ConfigMap, so `run` and `status` find the config at its usual path.
# Reproducible: sorted names, owner 0, fixed times; the same inputs give the same digests.
# Needs root (dpkg-deb -x keeps owners), apt, dpkg-deb, sha256sum, gzip, tar.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
MAJOR=24
SUITES="trixie sid"
BASE_KEY="v1 nodejs-$MAJOR dash" # bump when the base's recipe changes

say() { echo "build-image: $*" >&2; }
die() { echo "!!!!!!!! build-image: $* !!!!!!!!" >&2; exit 1; }

version=$(node -p 'require("./package.json").version')
out=dist/image/nri-memshare-$version.oci.tar
name=localhost/nri-memshare:$version
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ "$(dpkg --print-architecture)" = amd64 ] || die "builds the amd64 image only (this host is $(dpkg --print-architecture))"

mkdir -p "$CACHE/agent-image"
exec 9>"$CACHE/agent-image/.lock"
flock 9 # two builds at once must not write the cached base over each other

work=$(mktemp -d /tmp/nrims-build-image-XXXXXX)
trap 'rm -rf "$work"' EXIT

# layer DIR OUTNAME: a reproducible gzip layer of DIR; prints "<diff_id> <digest> <size>"
layer() {
  local dir=$1 o=$2
  tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$o.tar" .
  local diff
  diff=$(sha256sum "$o.tar" | cut -d' ' -f1)
  gzip -n -6 "$o.tar"
  echo "$diff $(sha256sum "$o.tar.gz" | cut -d' ' -f1) $(stat -c %s "$o.tar.gz")"
}

# ---- 1. base (cached) ----
base=$CACHE/agent-image/base
if [ -s "$base/layer.tar.gz" ] && [ "$(cat "$base/KEY" 2>/dev/null)" = "$BASE_KEY" ]; then
  say "base cached: $(cat "$base/NODE") from $(cat "$base/DEB") ($base)"
else
  t0=$(date +%s)
  APT_PRIVATE_STATUS=/dev/null # an installed package must not count as present
  # shellcheck source=../test/harness/apt-private.sh
  . "$REPO/test/harness/apt-private.sh"
  suite=
  for s in $SUITES; do
    apt_update "$s"
    case "$(candidate "$s" nodejs)" in "$MAJOR".*) suite=$s; break ;; esac
  done
  [ -n "$suite" ] || die "no nodejs $MAJOR.x in any of: $SUITES"
  pkgs=$(closure "$suite" nodejs)
  echo "$pkgs" | grep -qE '^libnode[0-9]+$' || die "apt-cache depends nodejs ($suite) gave no libnode"
  pkgs="$pkgs dash"
  mkdir -p "$work/base"
  say "downloading nodejs and its $(echo "$pkgs" | wc -w) packages from $suite"
  root=$work/base
  # merged /usr, as Debian lays it out: the ELF interpreter is /lib64/ld-linux-x86-64.so.2
  mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
  # shellcheck disable=SC2086
  unpack "$suite" "$root" $pkgs >"$work/PACKAGES"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/lintian" "$root/usr/include"
  [ -x "$root/usr/bin/node" ] && [ -x "$root/usr/bin/dash" ] || die "node or dash missing after unpacking"
  ln -sf dash "$root/usr/bin/sh"
  mkdir -p "$root/etc" "$root/tmp" "$root/dev" "$root/proc" "$root/sys" "$root/run" "$root/var/tmp"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  # the base must run node as it is (its own ld.so and libraries, no host path)
  nodever=$(chroot "$root" /usr/bin/node --version) || die "node does not run in the unpacked base"
  rm -rf "$base.tmp" && mkdir -p "$base.tmp"
  layer "$root" "$base.tmp/layer" >"$base.tmp/LAYER"
  grep '^nodejs_' "$work/PACKAGES" >"$base.tmp/DEB" || die "no nodejs .deb among the packages downloaded from $suite"
  echo "$nodever" >"$base.tmp/NODE"
  mv "$work/PACKAGES" "$base.tmp/PACKAGES"
  echo "$BASE_KEY" >"$base.tmp/KEY"
  rm -rf "$base" && mv "$base.tmp" "$base"
  rm -rf "$work/base"
  say "base built in $(($(date +%s) - t0)) s: node $nodever from $(cat "$base/DEB") ($suite), $(wc -l <"$base/PACKAGES") packages"
fi
read -r base_diff base_digest base_size <"$base/LAYER"

# ---- 2. the agent, as the RPM installs it ----
# packaging/install-agent.sh, as packaging/nri-memshare.spec's %install runs it for x86_64, on this
# checkout's build (the RPM's %build runs the same `npm run build` steps from its sources)
if [ "$build" = 1 ]; then npm run build >/dev/null; fi
for f in dist/agent/nri-memshare.js dist/agent/parse-worker.js dist/agent/ubs-holder.js dist/agent/grpc-js.js dist/agent/meta.json; do
  [ -f "$f" ] || die "$f is missing (build first: npm ci && npm run build)"
done
app=$work/app
lib=$app/usr/lib/nri-memshare
mkdir -p "$app/usr/bin" "$app/etc/nri-memshare/config" "$app/etc/nri-memshare/shares.d" \
  "$app/var/lib/nri-memshare" "$app/run/nri-memshare/shares" "$app/usr/share/licenses/nri-memshare"
bash packaging/install-agent.sh "$lib" linux_x64 || die "packaging/install-agent.sh failed"
# every shipped package's license text, and the project's
(cd "$app/usr/share/licenses/nri-memshare" && node "$REPO/scripts/bundled-packages.js" install-licenses node_modules-licenses)
[ -f LICENSE ] && install -m 0644 LICENSE "$app/usr/share/licenses/nri-memshare/"
install -m 0755 packaging/nri-memshare.sh "$app/usr/bin/nri-memshare"
ln -s config/config.json "$app/etc/nri-memshare/config.json"
# the default config the RPM ships, for a plain `ctr run` without a ConfigMap
install -m 0644 packaging/config.json "$app/etc/nri-memshare/config/config.json"
chmod 0700 "$app/var/lib/nri-memshare"
read -r app_diff app_digest app_size < <(layer "$app" "$work/app-layer")

# ---- OCI layout ----
oci=$work/oci
mkdir -p "$oci/blobs/sha256"
cp "$base/layer.tar.gz" "$oci/blobs/sha256/$base_digest"
mv "$work/app-layer.tar.gz" "$oci/blobs/sha256/$app_digest"
created=$(git log -1 --format=%cI 2>/dev/null | sed 's/+00:00$/Z/' || true)
[ -n "$created" ] || created=1970-01-01T00:00:00Z
config=$(printf '{"architecture":"amd64","os":"linux","created":"%s","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin","NODE_ENV=production","MALLOC_ARENA_MAX=2","UV_THREADPOOL_SIZE=8"],"Entrypoint":["/usr/bin/nri-memshare"],"Cmd":["run","--config","/etc/nri-memshare/config.json"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"nri-memshare","org.opencontainers.image.version":"%s","org.opencontainers.image.base.name":"debian nodejs %s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"history":[{"created":"%s","created_by":"scripts/build-image.sh: Debian %s and its libraries, dash"},{"created":"%s","created_by":"scripts/build-image.sh: the agent as the RPM installs it"}]}' \
  "$created" "$version" "$(cat "$base/NODE")" "$base_diff" "$app_diff" "$created" "$(cat "$base/DEB")" "$created")
config_digest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$oci/blobs/sha256/$config_digest"
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$config_digest" "${#config}" "$base_digest" "$base_size" "$app_digest" "$app_size")
manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" >"$oci/blobs/sha256/$manifest_digest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "${#manifest}" "$name" "${name##*:}" >"$oci/index.json"
mkdir -p "$(dirname "$out")"
tar -C "$oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
say "$name: $out ($(($(stat -c %s "$out") / 1024)) KiB; layers: base $((base_size / 1024)) KiB, agent $((app_size / 1024)) KiB; manifest sha256:$manifest_digest)"
echo "$out"
