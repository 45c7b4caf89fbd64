#!/usr/bin/env bash
# Fetches promtool (Debian's prometheus package) for the alert-rule tests, into the cache, unpacked
# with dpkg-deb -x and installed nowhere (idempotent). Prints the path of promtool.
#   $CACHE/prometheus/usr/bin/promtool
# apt runs on a private sources list and private state, never on the system's (apt-private.sh).
set -euo pipefail

CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${NRI_MEMSHARE_PROMETHEUS_SUITE:-bookworm}
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-prometheus"
flock 9

say() { echo "fetch-promtool: $*" >&2; }
loud() { echo "!!!!!!!! fetch-promtool: $* !!!!!!!!" >&2; }
die() { loud "$*"; exit 1; }

# shellcheck source=apt-private.sh
. "$HERE/apt-private.sh"

dir=$CACHE/prometheus
if [ -x "$dir/usr/bin/promtool" ] && [ -s "$dir/DEB" ]; then
  say "cached $(cat "$dir/DEB") in $dir"
else
  deb=$(download "$SUITE" prometheus)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg-deb -x "$deb" "$dir.tmp"
  basename "$deb" >"$dir.tmp/DEB"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  say "unpacked $(cat "$dir/DEB") into $dir"
fi
"$dir/usr/bin/promtool" --version >/dev/null 2>&1 || die "$dir/usr/bin/promtool does not run"
echo "$dir/usr/bin/promtool"
