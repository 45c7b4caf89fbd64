#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the tests need on a fresh
# Debian 12 machine (as root), builds, and runs unit and end-to-end tests against real
# containerd 1.7.24 and 2.1.9. Ends with the line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export NRI_MEMSHARE_CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}

need=()
for p in runc busybox-static rpm rpmlint systemd iproute2 gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
bash test/harness/fetch-containerd.sh
npm test
