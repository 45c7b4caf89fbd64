#!/usr/bin/env bash
# nri-memshare demo: on a fresh Debian 12 machine, as root, shows the whole job end to end:
# a private containerd with NRI, the agent beside it, two pods sharing memory through one
# declared share, `nri-memshare status`, and the share released when both pods are gone.
#
# usage: bash scripts/demo.sh [--containerd 2.1|1.7] [--reinstall]
#   --containerd V  which containerd to run: 2.1 (default, 2.1.9) or 1.7 (1.7.24)
#   --reinstall     run `npm ci` even when node_modules already matches package.json
#
# It installs what it needs (apt: runc busybox-static, and gcc when missing; npm ci), builds
# with `npm run build` (the same build the tests run),
# fetches containerd into ${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache} (test/harness/
# fetch-containerd.sh, private apt lists; the system's apt sources are not touched), then runs
# the demo (test/demo/demo.ts). Everything it starts runs from a temp dir and is stopped and
# removed at the end, also on failure or Ctrl-C. Exit 0 on success.
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.1
reinstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --containerd) version=${2:-}; shift 2 || shift ;;
    --containerd=*) version=${1#*=}; shift ;;
    --reinstall) reinstall=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$version" in
  1.7|2.1) ;;
  *) echo "demo: --containerd must be 1.7 or 2.1, got '$version'" >&2; exit 2 ;;
esac

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
say() { printf '   %s\n' "$*"; }
die() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  exit 1
}

bold "nri-memshare demo (containerd $version)"
say "Shared memory for Kubernetes containers through containerd's NRI, shown with a real containerd."

# ---- prerequisites ----
[ "$(id -u)" = 0 ] || die "run it as root (it starts containerd and mounts tmpfs): sudo bash scripts/demo.sh"
[ -r /etc/debian_version ] || say "note: this is not Debian; the script expects Debian 12 and may not work here"
command -v node >/dev/null && command -v npm >/dev/null ||
  die "Node.js 20 or newer (with npm) is needed; Debian 12's own nodejs is 18: install Node.js 20+ first"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old: 20 or newer is needed"

echo
bold "== Setup: system packages, node modules, build, containerd"
need=()
for p in runc busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
# fetch-containerd.sh compiles the test image's pause program statically
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
else
  say "system packages: runc, busybox-static and gcc are installed"
fi

if [ "$reinstall" = 1 ] || ! npm ls --all >/dev/null 2>&1; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
else
  say "node_modules matches package.json (npm ci skipped; --reinstall forces it)"
fi
# the one build command the tests use too (codecs, tsc, the agent bundle, the SDK double):
# the demo runs the bundled agent, so a tsc-only build would leave it missing
say "npm run build"
npm run build --silent || die "the build (npm run build) failed"
say "bash test/harness/fetch-containerd.sh"
bash test/harness/fetch-containerd.sh || die "fetching containerd failed (see the messages above)"

# ---- the demo, in a work dir that is always cleaned up ----
WORK=$(mktemp -d /tmp/nri-memshare-demo.XXXXXX)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # the demo stops what it started; this is the safety net for a crash or Ctrl-C
  if [ -s "$WORK/agent.pid" ]; then
    pid=$(cat "$WORK/agent.pid")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "agent/nri-memshare.js run --config $WORK/"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$WORK"
  if [ "$rc" -ne 0 ]; then
    printf '\ndemo: FAILED (exit %s); everything it started has been stopped and removed.\n' "$rc" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

node dist/test/demo/demo.js --containerd "$version" --workdir "$WORK"
