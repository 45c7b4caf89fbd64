#!/usr/bin/env bash
# Fetches a second Node.js for the tests, Node 24 from Debian, into the cache (idempotent):
#   $CACHE/node-24/bin/node    the node to run (a link to usr/bin/node; prints v24.x)
#   $CACHE/node-24/usr/...     nodejs, libnode and every shared library they need, unpacked
#   $CACHE/node-24/VERSION     its `node --version`;  DEB: the nodejs .deb it came from
#   $CACHE/n24 -> node-24/builtins   short path of the JS files libnode reads at start
# The system's node (Debian 12 + the packages test/all.sh installs) stays untouched; this one is
# used only by test/all.sh, to run the same tests a second time under Node 24.
#
# How: Debian's nodejs is built against the suite's shared libraries (libnode, libuv, ICU,
# OpenSSL, brotli, c-ares, simdjson, ... and glibc 2.43, newer than Debian 12's 2.36). They are
# fetched with apt on a private sources list and private state (never the system's sources:
# apt-private.sh, shared with fetch-containerd.sh), unpacked with dpkg-deb -x, and the node
# binary is pointed at them with patchelf: its ELF interpreter becomes the unpacked ld.so and its
# RPATH the unpacked library directory. No LD_LIBRARY_PATH: that would leak into every process
# node starts (sh, runc, containerd, gcc) and give them a libc their loader cannot run.
# process.execPath is then this binary, so tests that start the agent with process.execPath run
# it under Node 24 too.
# Debian's libnode also reads three JS files at start from absolute paths (/usr/share/nodejs:
# undici, acorn, acorn-walk). Nothing may be written there, so those paths are replaced inside
# the unpacked libnode by equally long (NUL-padded) paths under $CACHE/n24, which must therefore
# be short: NRI_MEMSHARE_CACHE may be at most 31 characters (the default is 27).
# Needs root, apt, dpkg-deb, patchelf (test/all.sh installs it), perl.
set -euo pipefail

CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
MAJOR=24
SUITES="trixie sid" # the first of these whose nodejs is $MAJOR.x
DIR="$CACHE/node-$MAJOR"
SHORT="$CACHE/n$MAJOR"
KEY="v1 $MAJOR $DIR" # bump v1 when the way it is built changes
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two runs at once must not unpack over each other

say() { echo "fetch-node: $*" >&2; }
loud() { echo "!!!!!!!! fetch-node: $* !!!!!!!!" >&2; }
die() { loud "$*"; exit 1; }

# no dpkg status: the installed node must not count as a candidate
APT_PRIVATE_STATUS=/dev/null
# shellcheck source=apt-private.sh
. "$HERE/apt-private.sh"

# verify BIN: it runs, is $MAJOR.x, loads its built-in JS (fetch) and the project's koffi
verify() {
  local bin=$1 v out
  v=$("$bin" --version 2>&1) || die "$bin does not run: $v"
  case "$v" in v$MAJOR.*) ;; *) die "$bin --version printed '$v', not v$MAJOR.x" ;; esac
  [ -d "$REPO/node_modules/koffi" ] || die "$REPO/node_modules/koffi missing: run npm ci first"
  # shellcheck disable=SC2016
  out=$(cd "$REPO" && "$bin" -e '
    const k = require("koffi");
    const strlen = k.load("libc.so.6").func("size_t strlen(const char *)");
    if (strlen("memshare") !== 8) throw new Error("koffi call returned the wrong length");
    if (typeof fetch !== "function" || typeof require("node:repl").start !== "function") throw new Error("built-ins missing");
    console.log(`${process.version} koffi ${k.version} execPath ${process.execPath}`);' 2>&1) \
    || die "$bin cannot load koffi or its built-ins: $out"
  say "$out"
}

if [ -x "$DIR/bin/node" ] && [ "$(cat "$DIR/KEY" 2>/dev/null)" = "$KEY" ] && [ -e "$SHORT/u" ]; then
  say "cached $(cat "$DIR/VERSION") ($(cat "$DIR/DEB")) in $DIR"
  verify "$DIR/bin/node"
  exit 0
fi

command -v patchelf >/dev/null || die "patchelf missing: apt-get install patchelf"
command -v perl >/dev/null || die "perl missing"
[ ${#CACHE} -le 31 ] || die "NRI_MEMSHARE_CACHE=$CACHE is too long (at most 31 characters; see the top of $0)"

suite=
for s in $SUITES; do
  apt_update "$s"
  ver=$(candidate "$s" nodejs)
  say "nodejs in $s: ${ver:-(none)}"
  case "$ver" in "$MAJOR".*) suite=$s; break ;; esac
done
[ -n "$suite" ] || die "no nodejs $MAJOR.x in any of: $SUITES"

# nodejs and everything it depends on, transitively (virtual packages left out)
pkgs=$(closure "$suite" nodejs)
echo "$pkgs" | grep -qx nodejs || die "apt-cache depends nodejs ($suite) gave no package list"
echo "$pkgs" | grep -qE '^libnode[0-9]+$' || die "no libnode in nodejs's dependencies ($suite)"

work="$DIR.tmp"
rm -rf "$work" && mkdir -p "$work/builtins"
say "downloading nodejs $ver from $suite and $(echo "$pkgs" | wc -l) packages in all"
# shellcheck disable=SC2086
unpack "$suite" "$work" $pkgs >"$work/DEBS"
grep '^nodejs_' "$work/DEBS" >"$work/DEB" || die "no nodejs .deb among the packages downloaded from $suite"
rm -rf "$work/DEBS" "$work/usr/share/doc" "$work/usr/share/man" "$work/usr/share/locale"

lib="$work/usr/lib/x86_64-linux-gnu"
libnode=$(ls "$lib"/libnode.so.* 2>/dev/null | head -n1)
[ -x "$work/usr/bin/node" ] && [ -n "$libnode" ] && [ -e "$lib/ld-linux-x86-64.so.2" ] \
  || die "nodejs, libnode or ld.so missing after unpacking"

# the JS files libnode loads from /usr/share/nodejs at start: copied under short names, and the
# paths inside libnode rewritten to $SHORT/<name> (same length, NUL-padded)
declare -A builtin=([u]=undici/undici-fetch.js [a]=acorn/dist/acorn.js [w]=acorn-walk/dist/walk.js)
subst=
for n in "${!builtin[@]}"; do
  f="$work/usr/share/nodejs/${builtin[$n]}"
  [ -s "$f" ] || die "$f missing (which package moved it?)"
  cp "$f" "$work/builtins/$n"
  subst+="/usr/share/nodejs/${builtin[$n]}=$SHORT/$n;"
done
SUBST=$subst perl -0777 -pi -e '
  for my $pair (split /;/, $ENV{SUBST}) {
    my ($o, $n) = split /=/, $pair;
    die "$n is longer than $o\n" if length($n) > length($o);
    my $r = $n . ("\0" x (length($o) - length($n)));
    my $c = s/\Q$o\E\0/$r\0/g;
    die "$o not found in libnode\n" unless $c;
  }' "$libnode" || die "could not rewrite the built-in paths in $libnode"
left=$(strings -n 8 "$libnode" | grep -c '^/usr/share/nodejs/' || true)
[ "$left" = 0 ] || die "$libnode still names $left path(s) under /usr/share/nodejs: $(strings -n 8 "$libnode" | grep '^/usr/share/nodejs/' | tr '\n' ' ')"

# the final paths (patchelf writes them into the binary; the directory moves into place below)
patchelf --set-interpreter "$DIR/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
  --force-rpath --set-rpath "$DIR/usr/lib/x86_64-linux-gnu" "$work/usr/bin/node" \
  || die "patchelf failed on $work/usr/bin/node"
mkdir -p "$work/bin"
ln -s ../usr/bin/node "$work/bin/node"

rm -rf "$DIR" "$SHORT" && mv "$work" "$DIR"
ln -s "node-$MAJOR/builtins" "$SHORT"
"$DIR/bin/node" --version >"$DIR/VERSION" 2>&1 || die "$DIR/bin/node does not run: $(cat "$DIR/VERSION")"
verify "$DIR/bin/node"
echo "$KEY" >"$DIR/KEY"
say "unpacked $(cat "$DIR/DEB") from $suite into $DIR: node $(cat "$DIR/VERSION")"
