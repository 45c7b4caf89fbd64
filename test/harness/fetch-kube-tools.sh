#!/usr/bin/env bash
# Fetches and builds the Kubernetes parts the cluster tests run against, into the cache
# (idempotent; a cached run takes about a second):
#   $CACHE/kube-tools/bin/{etcd,etcdctl,kubectl}   Debian sid's etcd-server, etcd-client and
#                                                  kubectl (expected 1.36.4), unpacked, installed nowhere
#   $CACHE/kube-go/                                Debian sid's Go toolchain and the Go source
#                                                  packages the API server imports, unpacked
#   $CACHE/kube-apiserver/apiserver                Kubernetes' apiextensions-apiserver built from
#                                                  those sources with the project's own main
#                                                  (test/harness/apiserver/main.go: why, there)
#   $CACHE/kube-apiserver/gocache                  Go's build cache (a rebuild after main.go changes: seconds)
# The Go source packages are the ones listed in test/harness/apiserver/go-packages.txt: the
# owners of every directory `go list -deps` names for main.go (82 of the 315 golang-*-dev
# packages apt says k8s.io/apiextensions-apiserver depends on). If sid has moved and the list
# no longer covers an import, the whole apt closure is fetched instead and the missing import
# is named, so the list can be updated.
# apt runs on a private sources list and private state (apt-private.sh); no dpkg status, so a
# kubectl installed on the machine (another build, another version) is never the candidate.
# First build on 2 cores: minutes (docs/cluster.md has the measured times).
set -euo pipefail

CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=sid
KUBECTL_WANT=1.36.4
K8S_VERSION=v1.36.4 # what the server reports: kubectl refuses the packaged default (v0.0.0-master+$Format:%H$)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two runs at once must not unpack over each other

say() { echo "fetch-kube-tools: $*" >&2; }
loud() { echo "!!!!!!!! fetch-kube-tools: $* !!!!!!!!" >&2; }
die() { loud "$*"; exit 1; }

APT_PRIVATE_STATUS=/dev/null
# shellcheck source=apt-private.sh
. "$HERE/apt-private.sh"

# fetch_debs DIR PKG...: downloads the candidates from $SUITE and unpacks them into DIR
fetch_debs() {
  local dir=$1; shift
  apt_update "$SUITE"
  unpack "$SUITE" "$dir" "$@" >>"$dir/DEBS"
}

tools() {
  local dir="$CACHE/kube-tools" v
  if ! { [ -x "$dir/bin/kubectl" ] && [ -x "$dir/bin/etcd" ] && [ -x "$dir/bin/etcdctl" ] && [ -s "$dir/VERSION" ]; }; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin"
    fetch_debs "$dir.tmp" etcd-server etcd-client kubectl
    for b in etcd etcdctl kubectl; do
      [ -x "$dir.tmp/usr/bin/$b" ] || die "$b missing from the unpacked packages"
      ln -s "../usr/bin/$b" "$dir.tmp/bin/$b"
    done
    {
      echo "kubectl $("$dir.tmp/bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1)"
      echo "etcd $("$dir.tmp/bin/etcd" --version | awk '/etcd Version/ { print $3 }')"
    } >"$dir.tmp/VERSION"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "unpacked $(tr '\n' ' ' <"$dir/DEBS")into $dir"
  fi
  v=$(awk '$1 == "kubectl" { print $2 }' "$dir/VERSION")
  case "$v" in
    "v$KUBECTL_WANT"|"v$KUBECTL_WANT"[+-]*) say "kubectl $v, $(grep etcd "$dir/VERSION") (cached in $dir): OK" ;;
    *) loud "kubectl from $SUITE is $v, NOT the expected $KUBECTL_WANT; tests will run against $v" ;;
  esac
}

# go_env: the GOPATH-mode build environment, the way Debian builds its Go packages
go_env() {
  local g="$CACHE/kube-go"
  export GO111MODULE=off GOPATH="$CACHE/kube-apiserver/gopath:$g/usr/share/gocode" \
    GOROOT="$g/usr/lib/go-1.27" GOCACHE="$CACHE/kube-apiserver/gocache" GOTOOLCHAIN=local \
    GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOTELEMETRY=off
  export PATH="$GOROOT/bin:$PATH"
}

# missing_imports: what `go list -deps` cannot find for main.go (empty when the sources cover it)
missing_imports() {
  (cd "$HERE/apiserver" && go list -e -deps -f '{{with .Error}}{{.}}{{end}}' . 2>&1 | grep -v '^$' || true)
}

go_sources() {
  local dir="$CACHE/kube-go" key missing all
  key=$( { echo v1; cat "$HERE/apiserver/go-packages.txt"; } | sha256sum | cut -c1-16)
  if [ -x "$dir/usr/lib/go-1.27/bin/go" ] && [ "$(cat "$dir/KEY" 2>/dev/null)" = "$key" ]; then
    say "cached Go $("$dir/usr/lib/go-1.27/bin/go" env GOVERSION) and $(grep -vc "^#" "$HERE/apiserver/go-packages.txt") Go source packages in $dir"
    return 0
  fi
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  say "downloading the Go toolchain and $(grep -vc "^#" "$HERE/apiserver/go-packages.txt") Go source packages from $SUITE"
  # shellcheck disable=SC2046
  fetch_debs "$dir.tmp" golang-1.27-go golang-1.27-src $(grep -v '^#' "$HERE/apiserver/go-packages.txt")
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  [ -x "$dir/usr/lib/go-1.27/bin/go" ] || die "no go binary in golang-1.27-go from $SUITE (did sid move past Go 1.27?)"
  go_env
  missing=$(missing_imports)
  if [ -n "$missing" ]; then
    loud "test/harness/apiserver/go-packages.txt no longer covers the API server's imports in $SUITE:"
    echo "$missing" | head -n 20 >&2
    loud "fetching every golang-*-dev package k8s.io/apiextensions-apiserver depends on instead (about 270 MB)"
    all=$(closure "$SUITE" golang-k8s-apiextensions-apiserver-dev | grep -E '^golang-[a-z0-9.+-]*-dev$')
    # shellcheck disable=SC2086
    fetch_debs "$dir" $all
    missing=$(missing_imports)
    [ -z "$missing" ] || die "the API server's imports are not all packaged in $SUITE: $missing"
  fi
  echo "$key" >"$dir/KEY"
  say "unpacked Go $(go env GOVERSION) and its sources into $dir"
}

build() {
  local dir="$CACHE/kube-apiserver" key start
  go_env
  key=$( { echo v1 "$K8S_VERSION"; cat "$HERE/apiserver/main.go" "$CACHE/kube-go/DEBS"; } | sha256sum | cut -c1-16)
  if [ -x "$dir/apiserver" ] && [ "$(cat "$dir/KEY" 2>/dev/null)" = "$key" ]; then
    say "cached API server $dir/apiserver"
    return 0
  fi
  mkdir -p "$dir/gopath" "$GOCACHE"
  start=$(date +%s)
  say "building the API server (GOPATH mode, Go $(go env GOVERSION)); the first build takes minutes"
  (cd "$HERE/apiserver" && go build -trimpath -o "$dir/apiserver.tmp" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=$(echo "$K8S_VERSION" | sed -E 's/^v([0-9]+)\..*/\1/') \
      -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')" .) \
    || die "building the API server failed"
  mv "$dir/apiserver.tmp" "$dir/apiserver"
  echo "$key" >"$dir/KEY"
  say "built $dir/apiserver in $(($(date +%s) - start)) s"
}

tools
go_sources
build
say "ready in $CACHE"
