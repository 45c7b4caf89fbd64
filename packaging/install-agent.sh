#!/usr/bin/env bash
# Installs the agent under its application directory (/usr/lib/nri-memshare) from a built source
# tree: the one set of steps behind both the RPM (packaging/nri-memshare.spec's %install) and the
# container image (scripts/build-image.sh), so the two ship the same files.
# usage (in the source tree, after the build): bash packaging/install-agent.sh APPDIR KOFFI_ARCH
#   APPDIR      where /usr/lib/nri-memshare is (under the RPM's buildroot or the image's root)
#   KOFFI_ARCH  the one koffi binary kept (linux_x64 or linux_arm64): the only ELF file shipped
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 APPDIR KOFFI_ARCH" >&2; exit 2; }
app=$1 koffi_arch=$2

install -d "$app/dist/agent"
install -m 0644 dist/agent/nri-memshare.js dist/agent/parse-worker.js dist/agent/ubs-holder.js dist/agent/grpc-js.js "$app/dist/agent/"
install -m 0644 package.json "$app/"
# the modules the bundle leaves outside (koffi, yaml) with what they depend on, from the lockfile
for m in $(node scripts/bundled-packages.js runtime-modules); do
  install -d "$app/$(dirname "$m")"
  cp -a "$m" "$app/$m"
done
koffi=$app/node_modules/koffi
find "$koffi/build/koffi" -mindepth 1 -maxdepth 1 -type d ! -name "$koffi_arch" -exec rm -rf {} +
[ -f "$koffi/build/koffi/$koffi_arch/koffi.node" ] || { echo "install-agent: koffi's $koffi_arch binary is missing from node_modules" >&2; exit 1; }
# only what runs: not koffi's C sources (the RPM's Source1 leaves them out already, a developer's
# node_modules has them), no type declarations, source maps, hidden files, tests, docs, the
# libraries' command-line tools or yaml's browser build
rm -rf "$koffi/src" "$koffi/vendor" "$koffi/lib" "$koffi/doc"
find "$app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
find "$app/node_modules" -depth -name '.*' -exec rm -rf {} +
for pkg in "$app"/node_modules/* "$app"/node_modules/@*/*; do
  [ -d "$pkg" ] || continue
  for d in test tests __tests__ benchmarks bench docs doc example examples; do rm -rf "${pkg:?}/$d"; done
done
rm -rf "$app/node_modules/yaml/browser" "$app/node_modules/yaml/bin.mjs"

# the wrapper runs the CLI with the system's node: its "#!/usr/bin/env node" line (for npm's bin)
# is blanked, so that no file claims an interpreter found through env (line numbers unchanged)
sed -i '1s|^#!.*$||' "$app/dist/agent/nri-memshare.js"
chmod 0644 "$app"/dist/agent/*.js
