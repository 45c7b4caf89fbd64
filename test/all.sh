#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the tests need on a fresh
# Debian 12 machine (as root), builds, and runs the unit and end-to-end tests (against real
# containerd 1.7.24 and 2.1.9) twice: under the system's Node 20 and under Node 24 (fetched from
# Debian by test/harness/fetch-node.sh into the cache). The build output is the same JS; the
# tests start the agent with process.execPath, so the agent runs under the Node that runs the
# tests. Each run's lines are prefixed with its Node version; the run ends with one line
# summing both: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export NRI_MEMSHARE_CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
. test/harness/tally.sh

need=()
for p in runc busybox-static rpm rpmlint systemd iproute2 gcc libc6-dev patchelf openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
bash test/harness/fetch-containerd.sh
# etcd, kubectl and Kubernetes' API server built from Debian's Go sources (first build: minutes)
bash test/harness/fetch-kube-tools.sh
# promtool (Debian's prometheus package, unpacked into the cache) for the alert-rule tests
bash test/harness/fetch-promtool.sh >/dev/null
# no Node 24, no test run: fetch-node.sh fails loudly, never skips (also outside CI)
bash test/harness/fetch-node.sh
npm run build
# the agent's container image (its Debian base is fetched once, then cached); the DaemonSet e2e
# test builds it again from this build, in seconds
bash scripts/build-image.sh --no-build >/dev/null

# run_tests NODE: the whole suite under NODE, lines prefixed; leaves its closing line in $last
last=
run_tests() {
  local node=$1 v log rc
  v=$("$node" --version)
  log=$(mktemp)
  echo
  echo "======== Node $v ($node) ========"
  set +e
  "$node" dist/test/run.js 2>&1 | tee "$log" | sed -u "s/^/[node $v] /"
  rc=${PIPESTATUS[0]}
  set -e
  last="$v $rc $(closing_line "$log")"
  rm -f "$log"
}

runs=()
run_tests "$(command -v node)"; runs+=("$last")
run_tests "$NRI_MEMSHARE_CACHE/node-24/bin/node"; runs+=("$last")

echo
for r in "${runs[@]}"; do
  read -r v rc line <<<"$r"
  if [ -z "$line" ]; then
    echo "Node $v: the runner printed no closing line (exit $rc): counted as 1 failed"
  else
    echo "Node $v: $line"
  fi
  tally "$rc" "$line"
done
tally_line
[ "$tally_failed" = 0 ]
