#!/usr/bin/env bash
# Builds the two sources of the RPM (packaging/nri-memshare.spec) and the spec itself:
#   nri-memshare-<version>.tar.gz         Source0: the project's sources (what git tracks for the
#                                         agent: plugin/, native/*.ts, proto/, the build scripts,
#                                         systemd/, packaging/, docs/, README, LICENSE) + the spec
#   nri-memshare-<version>-vendor.tar.gz  Source1: the vendored node_modules the build needs and
#                                         nothing more (the agent's dependencies, @grpc/grpc-js
#                                         with its own, typescript,
#                                         esbuild, protobufjs, @types/node), copied from this tree
#   nri-memshare.spec                     the spec with @VERSION@, @LICENSE@ and @BUNDLED_PROVIDES@
#                                         filled in from package.json and scripts/bundled-packages.js
# The RPM's %build compiles the agent from them with no network; `rpmbuild -ts` makes the SRPM an
# offline build system rebuilds, `rpmbuild -tb` (both tarballs in one directory) the binary RPM.
#
# usage: scripts/make-tarball.sh [--out DIR] [--no-build]
#   --out DIR    where to write the tarballs and the versioned spec (default dist/release)
#   --no-build   use the existing dist/ (the test command has just built it)
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist/release
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-tarball: unknown argument: $1" >&2; exit 2 ;;
  esac
done

name=nri-memshare
version=$(node -p 'require("./package.json").version')
case "$version" in
  *[!0-9A-Za-z._+~]*|"") echo "make-tarball: package.json version '$version' is not usable as an RPM version" >&2; exit 1 ;;
esac

if [ "$build" = 1 ]; then
  node proto/gen-codecs.js
  npx --no-install tsc -p tsconfig.json
  node scripts/bundle.js
fi
# the bundle's metafile says which packages it holds (the spec's Provides and License come from it)
for f in dist/agent/meta.json node_modules/koffi package-lock.json; do
  [ -e "$f" ] || { echo "make-tarball: $f is missing (build first: npm ci && npm run build)" >&2; exit 1; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top=$stage/$name-$version
mkdir -p "$top"

# Source0: tracked files only, as they are in the work tree (no build output, nothing untracked)
git ls-files -z -- package.json package-lock.json tsconfig.json plugin native proto systemd packaging docs \
    scripts/bundle.js scripts/bundle-assert.js scripts/bundle-no-proto-loader.js scripts/bundled-packages.js README.md LICENSE \
  | while IFS= read -r -d '' f; do
      case "$f" in
        native/ubs/*) continue ;;              # the UB SDK double is for tests, not the package
        packaging/$name.spec) continue ;;      # the filled-in spec goes at the top (rpmbuild -t takes one)
      esac
      [ -e "$f" ] || continue                      # deleted in the work tree, not yet committed
      mkdir -p "$top/$(dirname "$f")"
      cp -p "$f" "$top/$f"
    done
[ -f "$top/plugin/cli.ts" ] || { echo "make-tarball: git ls-files found no sources (not a git checkout?)" >&2; exit 1; }
provides=$(node scripts/bundled-packages.js provides)
license=$(node scripts/bundled-packages.js license)
awk -v version="$version" -v license="$license" -v provides="$provides" '
  { gsub(/@VERSION@/, version); gsub(/@LICENSE@/, license) }
  /^@BUNDLED_PROVIDES@$/ { print provides; next }
  { print }' packaging/$name.spec > "$top/$name.spec"
grep -q '@[A-Z_]*@' "$top/$name.spec" && { echo "make-tarball: a placeholder is left in the spec" >&2; exit 1; }

# Source1: the vendored modules, unpacked by %prep beside the sources (node_modules/...)
vend=$stage/vendor
mkdir -p "$vend"
node scripts/bundled-packages.js closure koffi pino yaml @grpc/grpc-js typescript esbuild protobufjs @types/node | while IFS= read -r p; do
  mkdir -p "$vend/$(dirname "$p")"
  cp -a "$p" "$vend/$p"
done
# koffi: only the Linux glibc binaries of the two supported arches, not its C sources and other
# platforms' builds (the RPM keeps the target's one)
koffi=$vend/node_modules/koffi
find "$koffi/build/koffi" -mindepth 1 -maxdepth 1 -type d ! -name linux_x64 ! -name linux_arm64 -exec rm -rf {} +
rm -rf "$koffi/src" "$koffi/vendor" "$koffi/lib" "$koffi/doc"
find "$vend/node_modules" -depth -name '.*' -exec rm -rf {} +

mkdir -p "$out"
out=$(cd "$out" && pwd)
# reproducible: sorted names, fixed owner and time
mtime=$(git log -1 --format=%cI 2>/dev/null || echo '2024-01-01T00:00:00Z')
pack() { tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -cf - "$2" | gzip -n -9 > "$3"; }
pack "$stage" "$name-$version" "$out/$name-$version.tar.gz"
pack "$vend" node_modules "$out/$name-$version-vendor.tar.gz"
cp "$top/$name.spec" "$out/$name.spec"
echo "$out/$name-$version.tar.gz"
