#!/usr/bin/env bash
# Builds the release source tarball nri-memshare-<version>.tar.gz that packaging/nri-memshare.spec
# turns into an RPM (rpmbuild -tb works on it directly: the spec is inside).
#
# usage: scripts/make-tarball.sh [--out DIR] [--no-build]
#   --out DIR    where to write the tarball and the versioned spec (default dist/release)
#   --no-build   use the existing dist/ (the test command has just built it)
#
# The tarball carries what runs on the node, not the TypeScript sources: the bundled agent
# (dist/agent, made by scripts/bundle.js), package.json (the CLI reads its version), the modules
# the bundle leaves outside (copied from the local tree, so no registry is needed; koffi trimmed
# to its Linux x64 and arm64 binaries), the systemd unit, the default config, the containerd
# snippet, the Kubernetes manifests, and LICENSE/README when the repo has them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=dist/release
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-tarball: unknown argument: $1" >&2; exit 2 ;;
  esac
done

name=nri-memshare
version=$(node -p 'require("./package.json").version')
case "$version" in
  *[!0-9A-Za-z._+~]*|"") echo "make-tarball: package.json version '$version' is not usable as an RPM version" >&2; exit 1 ;;
esac

if [ "$build" = 1 ]; then
  npx --no-install tsc -p tsconfig.json
  node scripts/bundle.js
fi
for f in dist/agent/nri-memshare.js dist/agent/parse-worker.js dist/agent/ubs-holder.js package.json node_modules systemd/$name.service packaging/config.json \
         packaging/$name.spec packaging/$name.sh packaging/$name.8 packaging/$name.bash-completion packaging/containerd/nri.toml packaging/kubernetes; do
  [ -e "$f" ] || { echo "make-tarball: $f is missing (build first, or the checkout is incomplete)" >&2; exit 1; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top=$stage/$name-$version
mkdir -p "$top/dist" "$top/node_modules" "$top/packaging"

# the bundled agent only: the rest of the project's code and pino are inside it
mkdir -p "$top/dist/agent"
cp -p dist/agent/nri-memshare.js dist/agent/parse-worker.js dist/agent/ubs-holder.js "$top/dist/agent/"
cp -p package.json "$top/"

# the modules the bundle loads from node_modules (scripts/bundle.js's `external`), with what they
# depend on, exactly as installed here (npm resolves the tree; we copy its members)
externals="koffi yaml"
# shellcheck disable=SC2086
npm ls $externals --omit=dev --all --parseable 2>/dev/null | while IFS= read -r p; do
  [ "$p" = "$root" ] && continue
  rel=${p#"$root"/}
  case "$rel" in node_modules/*) ;; *) continue ;; esac
  mkdir -p "$top/$(dirname "$rel")"
  [ -e "$top/$rel" ] || cp -a "$p" "$top/$rel"
done
[ -d "$top/node_modules/koffi" ] || { echo "make-tarball: production node_modules were not copied (npm ls failed?)" >&2; exit 1; }
# koffi: only the Linux glibc binaries for the two supported arches; no C sources
koffi=$top/node_modules/koffi
find "$koffi/build/koffi" -mindepth 1 -maxdepth 1 -type d ! -name linux_x64 ! -name linux_arm64 -exec rm -rf {} +
rm -rf "$koffi/src" "$koffi/vendor" "$koffi/lib" "$koffi/doc"
# only what runs: no type declarations (with @types/node, which protobufjs lists as a dependency,
# and its undici-types), source maps, tests, benchmarks, docs, hidden files (CI configs, git hooks),
# the libraries' own command-line tools, or yaml's browser build
find "$top/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
find "$top/node_modules" -depth -name '.*' -exec rm -rf {} +
# (only a package's own top-level folders: yaml's dist/doc, say, is code)
for pkg in "$top"/node_modules/* "$top"/node_modules/@*/*; do
  [ -d "$pkg" ] || continue
  for d in test tests __tests__ benchmarks bench docs doc example examples; do rm -rf "${pkg:?}/$d"; done
done
rm -rf "$top/node_modules/@types" "$top/node_modules/undici-types" "$top/node_modules/yaml/browser"
rm -f "$top/node_modules/yaml/bin.mjs"

mkdir -p "$top/systemd"
cp -p systemd/$name.service "$top/systemd/"
cp -p packaging/config.json packaging/$name.sh packaging/$name.8 packaging/$name.bash-completion "$top/packaging/"
cp -rp packaging/containerd packaging/kubernetes "$top/packaging/"
for f in LICENSE README.md; do [ -f "$f" ] && cp -p "$f" "$top/"; done
sed "s/@VERSION@/$version/g" packaging/$name.spec > "$top/$name.spec"

mkdir -p "$out"
tarball=$(cd "$out" && pwd)/$name-$version.tar.gz
# reproducible: sorted names, fixed owner and time
mtime=$(git log -1 --format=%cI 2>/dev/null || echo '2024-01-01T00:00:00Z')
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" \
    -cf - "$name-$version" | gzip -n -9 > "$tarball"
cp "$top/$name.spec" "$out/$name.spec"
echo "$tarball"
