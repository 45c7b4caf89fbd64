#!/usr/bin/env bash
# Builds the UBS test double and its programs: bash native/ubs/build.sh OUTDIR [TARGET]
#   OUTDIR/lib: libubsm_sdk.so (the double) + stand-ins libnuma.so.1 libhcom.so.0 libboundscheck.so libobmm.so.1
#   OUTDIR/bin: ubsm-consumer ubsmd-standin
#   TARGET: the machine to build for, x86_64 or aarch64 (default: this host's). Another machine than
#   the host's uses <target>-linux-gnu-gcc (Debian's gcc-aarch64-linux-gnu; test/harness/fetch-arm64.sh
#   installs it) unless CC is set; give it its own OUTDIR (test/arch64.sh: dist/native/ubs-aarch64).
#   OUTDIR/TARGET records what OUTDIR holds: a different TARGET or CC rebuilds everything.
# Idempotent and quick: a target is rebuilt only when a source or this script is newer.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: build.sh OUTDIR [x86_64|aarch64]}"
host="$(uname -m)"
target="${2:-$host}"
case "$target" in
  x86_64 | aarch64) ;;
  arm64) target=aarch64 ;;
  *) echo "build.sh: unknown target '$target' (x86_64 or aarch64)" >&2; exit 2 ;;
esac
if [[ "$target" == "$host" ]]; then CC="${CC:-gcc}"; else CC="${CC:-$target-linux-gnu-gcc}"; fi
command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (for $target: apt-get install gcc-${target/_/-}-linux-gnu)" >&2; exit 1; }
mkdir -p "$out/lib" "$out/bin"
out="$(cd "$out" && pwd)"
CFLAGS=(-O2 -Wall -Wextra -Werror -std=gnu11 -I"$here/include")
# a different target or compiler than the one OUTDIR was built with: start over
mark="$target $CC"
if [[ "$(cat "$out/TARGET" 2>/dev/null)" != "$mark" ]]; then
  rm -f "$out"/lib/* "$out"/bin/*
  echo "$mark" >"$out/TARGET"
fi

# stale TARGET SOURCES...: true when TARGET is missing or older than any source (or this script)
stale() { local t="$1"; shift; [[ ! -e "$t" ]] && return 0; local s; for s in "$@" "$here/build.sh" "$here/include/ubs_mem.h"; do [[ "$s" -nt "$t" ]] && return 0; done; return 1; }
# build TARGET CMD...: compile into a temp file then rename, so a failed build never leaves a half file
build() { local t="$1"; shift; "$@" -o "$t.tmp.$$" || { rm -f "$t.tmp.$$"; echo "build.sh: failed to build $t" >&2; exit 1; }; mv -f "$t.tmp.$$" "$t"; }

lib() { # lib FILE SONAME SOURCE
  if stale "$out/lib/$1" "$3"; then build "$out/lib/$1" "$CC" "${CFLAGS[@]}" -fPIC -shared -Wl,-soname,"$2" "$3"; fi
}
lib libnuma.so.1 libnuma.so.1 "$here/double/deps/numa.c"
lib libhcom.so.0 libhcom.so.0 "$here/double/deps/hcom.c"
lib libboundscheck.so libboundscheck.so "$here/double/deps/boundscheck.c"
lib libobmm.so.1 libobmm.so.1 "$here/double/deps/obmm.c"

# The double links the stand-ins by soname (DT_NEEDED), like the vendor SDK. RUNPATH $ORIGIN lets the host
# load it by absolute path (koffi) and find its siblings; containers get the files beside it, or LD_LIBRARY_PATH.
srcs=("$here"/double/*.c)
if stale "$out/lib/libubsm_sdk.so" "${srcs[@]}" "$out/lib/libnuma.so.1" "$out/lib/libhcom.so.0" "$out/lib/libboundscheck.so"; then
  build "$out/lib/libubsm_sdk.so" "$CC" "${CFLAGS[@]}" -fPIC -shared -fvisibility=hidden -Wl,-soname,libubsm_sdk.so \
    -Wl,--no-as-needed "${srcs[@]}" -L"$out/lib" -l:libnuma.so.1 -l:libhcom.so.0 -l:libboundscheck.so -ldl -lpthread \
    -Wl,-rpath,'$ORIGIN' -Wl,-z,defs
fi

# The consumer links the SDK dynamically; rpath $ORIGIN/../lib for runs from OUTDIR on the host.
if stale "$out/bin/ubsm-consumer" "$here/consumer/consumer.c" "$out/lib/libubsm_sdk.so"; then
  build "$out/bin/ubsm-consumer" "$CC" "${CFLAGS[@]}" "$here/consumer/consumer.c" -L"$out/lib" -lubsm_sdk \
    -Wl,-rpath,'$ORIGIN/../lib' -Wl,-rpath-link,"$out/lib"
fi
if stale "$out/bin/ubsmd-standin" "$here/standin/ubsmd-standin.c"; then
  build "$out/bin/ubsmd-standin" "$CC" "${CFLAGS[@]}" "$here/standin/ubsmd-standin.c"
fi

# what was built must be for TARGET (a CC for another machine would otherwise go unnoticed)
want=$([[ "$target" == aarch64 ]] && echo b7 || echo 3e) # ELF e_machine: EM_AARCH64 183, EM_X86_64 62
for f in "$out"/lib/* "$out"/bin/*; do
  m=$(od -An -tx1 -j18 -N1 "$f" | tr -d ' ')
  [[ "$m" == "$want" ]] || { echo "build.sh: $f is not an $target ELF file (e_machine 0x$m; CC=$CC)" >&2; exit 1; }
done
