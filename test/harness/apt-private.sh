# shellcheck shell=bash
# apt on a private sources list and private state under $CACHE/apt/SUITE, never on the system's
# sources: sourced by fetch-containerd.sh, fetch-node.sh, fetch-kube-tools.sh, fetch-promtool.sh,
# fetch-arm64.sh and scripts/build-image.sh.
# The sourcing script sets CACHE and defines say MESSAGE and die MESSAGE (prints and exits 1).
# APT_PRIVATE_STATUS=FILE, if set, replaces the dpkg status (fetch-node.sh: /dev/null, so the
# installed node does not count as a candidate).
# APT_PRIVATE_ARCH=ARCH, if set, makes it apt for ARCH packages only, its state under
# $CACHE/apt/SUITE-ARCH (fetch-arm64.sh: arm64).

# The Debian mirror this machine already uses (never written into the repo).
mirror() {
  awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
    /etc/apt/sources.list.d/debian.sources
}

# apt with a private sources list, lists, cache and no system preferences.
# usage: apt_private SUITE apt-get|apt-cache ARGS...
apt_private() {
  local suite=$1 tool=$2; shift 2
  local d="$CACHE/apt/$suite${APT_PRIVATE_ARCH:+-$APT_PRIVATE_ARCH}"
  local opts=()
  [ -z "${APT_PRIVATE_STATUS:-}" ] || opts+=(-o Dir::State::status="$APT_PRIVATE_STATUS")
  [ -z "${APT_PRIVATE_ARCH:-}" ] || opts+=(-o APT::Architecture="$APT_PRIVATE_ARCH" -o APT::Architectures::="$APT_PRIVATE_ARCH")
  "$tool" -q -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$d/empty" "${opts[@]}" \
    -o APT::Sandbox::User=root "$@"
}

# Once per run and suite ($$ is the sourcing script's pid, also inside $(...) subshells).
apt_update() {
  local suite=$1 d="$CACHE/apt/$1${APT_PRIVATE_ARCH:+-$APT_PRIVATE_ARCH}" m
  [ "$(cat "$d/UPDATED" 2>/dev/null)" = "$$" ] && return 0
  m=$(mirror)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/empty"
  echo "deb [${APT_PRIVATE_ARCH:+arch=$APT_PRIVATE_ARCH }signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m $suite main" >"$d/sources.list"
  say "apt-get update ($suite${APT_PRIVATE_ARCH:+ $APT_PRIVATE_ARCH}, private lists)"
  apt_private "$suite" apt-get update -qq >/dev/null || die "apt-get update of $suite${APT_PRIVATE_ARCH:+ ($APT_PRIVATE_ARCH)} failed"
  echo "$$" >"$d/UPDATED"
}

# candidate SUITE PKG: the version apt would take from SUITE ("(none)" or empty if none)
candidate() { apt_private "$1" apt-cache policy "$2" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }

# download SUITE PKG: downloads the candidate of PKG from SUITE into $CACHE/debs (kept there);
# prints the .deb's path. Used as deb=$(download ...): its die ends the $(...), and the assignment
# fails with it.
download() {
  local suite=$1 pkg=$2 ver
  apt_update "$suite"
  ver=$(candidate "$suite" "$pkg")
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "$pkg not found in $suite"
  mkdir -p "$CACHE/debs"
  (cd "$CACHE/debs" && apt_private "$suite" apt-get download -qq "$pkg=$ver" >/dev/null) || die "apt-get download $pkg=$ver from $suite failed"
  ls -t "$CACHE/debs/${pkg}_"*.deb | head -n1
}

# closure SUITE PKG: PKG and every package it depends on, transitively, a name a line (virtual
# packages and recommends left out; an ":ARCH" of APT_PRIVATE_ARCH taken off)
closure() {
  apt_private "$1" apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$2" 2>/dev/null \
    | grep -E "^[a-z0-9][a-z0-9.+-]*${APT_PRIVATE_ARCH:+(:$APT_PRIVATE_ARCH)?}\$" | sed -E 's/:[a-z0-9]+$//' | sort -u
}

# unpack SUITE DIR PKG...: downloads the candidates from SUITE and unpacks each into DIR (dpkg-deb
# -x: files only, no maintainer scripts, installed nowhere); prints the .deb file names, a line each.
# Not inside $(...): a failure must end the sourcing script. The .debs go in a scratch directory.
unpack() {
  local suite=$1 dir=$2 debs deb; shift 2
  mkdir -p "$CACHE/apt"
  debs=$(mktemp -d "$CACHE/apt/debs-XXXXXX")
  # shellcheck disable=SC2068
  (cd "$debs" && apt_private "$suite" apt-get download -qq $@ >/dev/null) || { rm -rf "$debs"; die "apt-get download from $suite failed: $*"; }
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$dir" || { rm -rf "$debs"; die "dpkg-deb -x $(basename "$deb") into $dir failed"; }
  done
  (cd "$debs" && ls)
  rm -rf "$debs"
}
