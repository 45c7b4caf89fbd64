#!/usr/bin/env bash
# Fetches what the end-to-end tests need, into a cache that survives runs (idempotent):
#   $CACHE/containerd-1.7/   containerd from Debian trixie (expected 1.7.24), unpacked
#   $CACHE/containerd-2.1/   containerd from Debian sid (expected 2.1.9), unpacked
#   $CACHE/cri-api/api.proto CRI v1 api.proto with the gogoproto lines removed
#   $CACHE/image/nri-memshare-test.tar   OCI image layout: static pause + static busybox
# apt runs on a private sources list and private state, never on the system's sources
# (apt-private.sh).
# Assumes root, gcc, and /bin/busybox (Debian busybox-static; test/all.sh installs it).
set -euo pipefail

CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
IMAGE_NAME=localhost/nri-memshare-test:1
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two runs at once must not unpack over each other

say() { echo "fetch-containerd: $*" >&2; }
loud() { echo "!!!!!!!! fetch-containerd: $* !!!!!!!!" >&2; }
die() { loud "$*"; exit 1; }

# shellcheck source=apt-private.sh
. "$HERE/apt-private.sh"

# fetch_containerd SUITE DIR EXPECTED_UPSTREAM
fetch_containerd() {
  local suite=$1 dir="$CACHE/$2" want=$3 deb have
  if [ -x "$dir/usr/bin/containerd" ] && [ -s "$dir/VERSION" ]; then
    say "cached $(cat "$dir/VERSION") in $dir"
  else
    deb=$(download "$suite" containerd)
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp"
    "$dir.tmp/usr/bin/containerd" --version >"$dir.tmp/VERSION"
    basename "$deb" >"$dir.tmp/DEB"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "unpacked $(cat "$dir/DEB") into $dir"
  fi
  for b in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$dir/usr/bin/$b" ] || { loud "$dir/usr/bin/$b missing"; exit 1; }
  done
  have=$(awk '{ print $3 }' "$dir/VERSION")
  case "$have" in
    "$want"|"$want"~*|"$want"+*|"$want"-*) say "containerd $have from $suite (expected $want): OK" ;;
    *) loud "containerd from $suite is $have, NOT the expected $want; tests will run against $have" ;;
  esac
}

fetch_cri_api() {
  local dir="$CACHE/cri-api" deb src
  [ -s "$dir/api.proto" ] && { say "cached CRI api.proto ($(cat "$dir/DEB"))"; return 0; }
  deb=$(download trixie golang-github-kubernetes-cri-api-dev)
  rm -rf "$dir" && mkdir -p "$dir/pkg"
  dpkg-deb -x "$deb" "$dir/pkg"
  src=$(find "$dir/pkg" -path '*/cri-api/pkg/apis/runtime/v1/api.proto' | head -n1)
  [ -n "$src" ] || { loud "runtime/v1/api.proto not in $deb"; exit 1; }
  # gogoproto annotations need gogo.proto to load; they carry nothing the wire format needs.
  grep -v gogoproto "$src" >"$dir/api.proto.tmp"
  mv "$dir/api.proto.tmp" "$dir/api.proto"
  basename "$deb" >"$dir/DEB"
  say "CRI api.proto from $(cat "$dir/DEB") -> $dir/api.proto"
}

# Applets the tests may call inside containers.
APPLETS="sh ash cat echo dd sleep ls mkdir touch grep df stat head tail wc rm mv cp ln true false
  test [ id env printf sync mount umount find sed awk tr cut du free ps kill date uname hostname
  readlink realpath dirname basename md5sum sha256sum seq xargs chmod chown sort uniq tee nproc"

build_image() {
  local dir="$CACHE/image" key work layer_sha diff_id cfg cfg_sha man man_sha
  command -v gcc >/dev/null || { loud "gcc missing (needed for the static pause program)"; exit 1; }
  [ -x /bin/busybox ] || { loud "/bin/busybox missing: apt-get install busybox-static"; exit 1; }
  key=$( { cat "$HERE/pause.c"; sha256sum /bin/busybox; echo "$APPLETS" "$IMAGE_NAME" v1; } | sha256sum | cut -c1-64)
  if [ -s "$dir/nri-memshare-test.tar" ] && [ "$(cat "$dir/KEY" 2>/dev/null)" = "$key" ]; then
    say "cached test image $IMAGE_NAME"; return 0
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  local root="$work/rootfs" oci="$work/oci"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,run,var,dev/shm} "$oci/blobs/sha256"
  chmod 1777 "$root/tmp"
  gcc -static -O2 -s -o "$root/pause" "$HERE/pause.c"
  cp /bin/busybox "$root/bin/busybox"
  for a in $APPLETS; do ln -s busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  # Reproducible layer: fixed order, times and owners.
  tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
  diff_id=$(sha256sum "$work/layer.tar" | cut -c1-64)
  gzip -n -9 "$work/layer.tar"
  layer_sha=$(sha256sum "$work/layer.tar.gz" | cut -c1-64)
  mv "$work/layer.tar.gz" "$oci/blobs/sha256/$layer_sha"
  cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/pause"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"nri-memshare test/harness/fetch-containerd.sh"}]}' "$diff_id")
  printf '%s' "$cfg" >"$work/config.json"
  cfg_sha=$(sha256sum "$work/config.json" | cut -c1-64)
  mv "$work/config.json" "$oci/blobs/sha256/$cfg_sha"
  man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "$cfg_sha" "$(stat -c %s "$oci/blobs/sha256/$cfg_sha")" "$layer_sha" "$(stat -c %s "$oci/blobs/sha256/$layer_sha")")
  printf '%s' "$man" >"$work/manifest.json"
  man_sha=$(sha256sum "$work/manifest.json" | cut -c1-64)
  local man_size; man_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$oci/blobs/sha256/$man_sha"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}' \
    "$man_sha" "$man_size" "$IMAGE_NAME" >"$oci/index.json"
  mkdir -p "$dir"
  tar -C "$oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$dir/nri-memshare-test.tar.tmp" .
  mv "$dir/nri-memshare-test.tar.tmp" "$dir/nri-memshare-test.tar"
  echo "$IMAGE_NAME" >"$dir/NAME"
  echo "$key" >"$dir/KEY"
  say "built test image $IMAGE_NAME -> $dir/nri-memshare-test.tar"
}

fetch_containerd trixie containerd-1.7 1.7.24
fetch_containerd sid containerd-2.1 2.1.9
fetch_cri_api
build_image
say "ready in $CACHE"
