#!/usr/bin/env bash
# Prepares the aarch64 test run (test/arch64.sh) on this x86_64 host (idempotent):
#   qemu-user-static, gcc-aarch64-linux-gnu   installed with apt if missing (like test/all.sh)
#   $CACHE/arm64/root/          the sysroot: Debian's arm64 nodejs (>= 20) and every arm64 library it
#                               links against, unpacked with dpkg-deb -x (never installed)
#   $CACHE/arm64/root/usr/bin/node   the arm64 node; run it as: qemu-aarch64-static -L ROOT ROOT/usr/bin/node
#   $CACHE/arm64/VERSION, DEB   its `node --version`, the nodejs .deb it came from
#   binfmt_misc                 an aarch64 handler (Debian's own qemu-aarch64 entry, from
#                               /usr/lib/binfmt.d/qemu-aarch64.conf) registered with the kernel if
#                               none is: the agent starts its UB holder, and the test runner its test
#                               files, with process.execPath, i.e. the arm64 node, so an emulated
#                               process must be able to exec an arm64 binary
# Prints `ROOT=<sysroot>` last on stdout.
#
# Why a sysroot and -L (QEMU_LD_PREFIX) rather than fetch-node.sh's patchelf: under qemu-user the
# guest's opens of absolute paths are looked up under the prefix first, so the arm64 ld.so, libc,
# libnode and libnode's /usr/share/nodejs JS files all come from ROOT, unmodified. The prefix holds
# only /usr (and /lib links), never /tmp, /run, /var or /proc, so the agent's own paths are the host's.
# QEMU_LD_PREFIX is passed in the environment too, which reaches the processes the guest starts
# through binfmt (the holder, test files).
# apt runs on a private sources list and private state ($CACHE/apt/<suite>-arm64), never on the
# system's sources (apt-private.sh's mirror()).
set -euo pipefail

CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
MIN_MAJOR=20
SUITES="trixie sid" # the first of these whose arm64 nodejs is >= $MIN_MAJOR
DIR="$CACHE/arm64"
ROOT="$DIR/root"
KEY="v1 $MIN_MAJOR $ROOT" # bump v1 when the way it is built changes
QEMU=/usr/bin/qemu-aarch64-static
mkdir -p "$CACHE"

say() { echo "fetch-arm64: $*" >&2; }
loud() { echo "!!!!!!!! fetch-arm64: $* !!!!!!!!" >&2; }
die() { loud "$*"; exit 1; }

# host packages: the emulator, the cross compiler, rpmbuild, rpm2cpio and rpmlint (test/all.sh's way)
need=()
for p in qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc libc6-dev rpm rpm2cpio cpio rpmlint; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
[ -x "$QEMU" ] || die "$QEMU missing after installing qemu-user-static"

# binfmt_misc: an aarch64 handler, or register Debian's (the kernel's table, not a file on disk)
binfmt() {
  local bm=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  if [ ! -e "$bm/register" ]; then
    mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || die "cannot mount binfmt_misc on $bm (an emulated agent could not start its holder)"
  fi
  [ "$(cat "$bm/status" 2>/dev/null)" = enabled ] || echo 1 >"$bm/status" || die "binfmt_misc is disabled and cannot be enabled"
  local e
  for e in "$bm"/*; do
    case "$(basename "$e")" in register | status) continue ;; esac
    # an enabled handler for the aarch64 ELF magic (e_machine 0xb7) is enough, whoever registered it
    if grep -qx enabled "$e" 2>/dev/null && grep -q '^magic 7f454c460201010000000000000000000200b700' "$e"; then
      say "binfmt: aarch64 handled by $(basename "$e") ($(sed -n 's/^interpreter //p' "$e"))"
      return 0
    fi
  done
  [ -s "$conf" ] || die "$conf missing (qemu-user-static installs it)"
  local interp
  interp=$(awk -F: '{ print $7 }' "$conf")
  [ -x "$interp" ] || die "$conf names $interp, which is not there"
  cat "$conf" >"$bm/register" || die "could not register $conf with binfmt_misc"
  say "binfmt: registered qemu-aarch64 ($interp)"
}
binfmt

# A process started with an empty environment (runc runs the agent's createRuntime hook so) has no
# QEMU_LD_PREFIX, and qemu cannot find the arm64 ld.so. So one more handler, registered after
# Debian's (the kernel tries the newest first): a small x86 program that sets QEMU_LD_PREFIX to
# this sysroot when it is unset, then runs Debian's handler with the same arguments. Kept in the
# cache; the kernel opens it at registration (flag F). Gone at reboot, like every binfmt entry.
prefix_handler() {
  local bm=/proc/sys/fs/binfmt_misc name=nri-memshare-aarch64 conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  local bin="$CACHE/arm64-binfmt/prefix" src="$CACHE/arm64-binfmt/prefix.c" interp magic mask
  interp=$(awk -F: '{ print $7 }' "$conf")
  magic=$(awk -F: '{ print $5 }' "$conf")
  mask=$(awk -F: '{ print $6 }' "$conf")
  if [ -e "$bm/$name" ] && grep -qx enabled "$bm/$name" && [ -x "$bin" ]; then return 0; fi
  mkdir -p "$CACHE/arm64-binfmt"
  cat >"$src" <<C
#include <stdlib.h>
#include <unistd.h>
/* binfmt_misc handler (flags PF): argv = this, the binary's path, its argv[0], its arguments */
int main(int argc, char **argv) {
    (void)argc;
    setenv("QEMU_LD_PREFIX", "$ROOT", 0);
    argv[0] = "$interp";
    execv(argv[0], argv);
    return 127;
}
C
  gcc -O2 -Wall -Werror -o "$bin.tmp" "$src" && mv -f "$bin.tmp" "$bin" || die "cannot build $bin"
  [ ! -e "$bm/$name" ] || echo -1 >"$bm/$name" # a stale entry (its file was replaced): drop it
  echo ":$name:M::$magic:$mask:$bin:PF" >"$bm/register" || die "could not register $name with binfmt_misc"
  say "binfmt: registered $name ($bin: QEMU_LD_PREFIX=$ROOT when unset, then $interp)"
}
prefix_handler

# verify: the arm64 node runs under qemu, is >= MIN_MAJOR, is really aarch64, loads koffi's arm64
# build and calls libc through it, and can start itself again (binfmt)
verify() {
  local out
  [ -d "$REPO/node_modules/koffi/build/koffi/linux_arm64" ] || die "$REPO/node_modules/koffi has no linux_arm64 build: run npm ci first"
  # shellcheck disable=SC2016
  out=$(cd "$REPO" && QEMU_LD_PREFIX="$ROOT" "$QEMU" -L "$ROOT" "$ROOT/usr/bin/node" -e '
    if (process.arch !== "arm64") throw new Error(`process.arch is ${process.arch}`);
    const major = Number(process.versions.node.split(".")[0]);
    if (major < Number(process.argv[1])) throw new Error(`node ${process.version} is older than ${process.argv[1]}`);
    const k = require("koffi");
    const strlen = k.load("libc.so.6").func("size_t strlen(const char *)");
    if (strlen("memshare") !== 8) throw new Error("koffi call returned the wrong length");
    const r = require("node:child_process").spawnSync(process.execPath, ["-p", "process.arch"], { encoding: "utf8" });
    if (r.error || r.stdout.trim() !== "arm64") throw new Error(`an emulated node cannot start ${process.execPath} again (binfmt): ${r.error ?? r.stdout + r.stderr}`);
    const e = require("node:child_process").spawnSync(process.execPath, ["-p", "process.arch"], { encoding: "utf8", env: {} });
    if (e.error || e.stdout.trim() !== "arm64") throw new Error(`an emulated node cannot start ${process.execPath} with an empty environment (binfmt prefix handler): ${e.error ?? e.stdout + e.stderr}`);
    console.log(`${process.version} ${process.arch} koffi ${k.version} execPath ${process.execPath}`);' "$MIN_MAJOR" 2>&1) \
    || die "the arm64 node does not work under qemu: $out"
  say "$out"
}

if [ -x "$ROOT/usr/bin/node" ] && [ "$(cat "$DIR/KEY" 2>/dev/null)" = "$KEY" ]; then
  say "cached $(cat "$DIR/VERSION") ($(cat "$DIR/DEB")) in $ROOT"
  verify
  echo "ROOT=$ROOT"
  exit 0
fi

exec 9>"$CACHE/.lock-arm64"
flock 9 # two runs at once must not unpack over each other

# a private apt for arm64 packages only: its own sources, lists and cache ($CACHE/apt/SUITE-arm64)
APT_PRIVATE_STATUS=/dev/null APT_PRIVATE_ARCH=arm64
# shellcheck source=apt-private.sh
. "$HERE/apt-private.sh"

suite=
for s in $SUITES; do
  apt_update "$s"
  ver=$(candidate "$s" nodejs)
  say "arm64 nodejs in $s: ${ver:-(none)}"
  major=${ver%%.*}
  major=${major#*:}
  if [ -n "$ver" ] && [ "$ver" != "(none)" ] && [ "$major" -ge "$MIN_MAJOR" ] 2>/dev/null; then suite=$s; break; fi
done
[ -n "$suite" ] || die "no arm64 nodejs >= $MIN_MAJOR in any of: $SUITES"

pkgs=$(closure "$suite" nodejs)
echo "$pkgs" | grep -qx nodejs || die "apt-cache depends nodejs ($suite arm64) gave no package list"
echo "$pkgs" | grep -qx libc6 || die "no libc6 in nodejs's dependencies ($suite arm64)"

work="$DIR.tmp"
rm -rf "$work" && mkdir -p "$work/root"
say "downloading arm64 nodejs $ver from $suite and $(echo "$pkgs" | wc -l) packages in all"
# shellcheck disable=SC2086
unpack "$suite" "$work/root" $pkgs >"$work/DEBS"
grep '^nodejs_' "$work/DEBS" >"$work/DEB" || die "no nodejs .deb among the packages downloaded from $suite"
rm -rf "$work/DEBS" "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/share/locale"
# only /usr and the merged-/usr links may be in the prefix: anything else (etc, var, run, tmp)
# would shadow the host's paths for the emulated agent
for e in "$work"/root/*; do
  case "$(basename "$e")" in usr | lib | bin | sbin | lib64) ;; *) rm -rf "$e" ;; esac
done
# merged /usr: the packages ship /usr/lib only; the ELF interpreter is /lib/ld-linux-aarch64.so.1
for l in lib bin sbin; do [ -e "$work/root/$l" ] || [ ! -d "$work/root/usr/$l" ] || ln -s "usr/$l" "$work/root/$l"; done
[ -e "$work/root/lib/ld-linux-aarch64.so.1" ] || die "the arm64 ld.so is missing after unpacking"
[ -x "$work/root/usr/bin/node" ] || die "usr/bin/node missing after unpacking"

rm -rf "$DIR" && mkdir -p "$DIR" && mv "$work/root" "$ROOT" && mv "$work/DEB" "$DIR/DEB" && rm -rf "$work"
QEMU_LD_PREFIX="$ROOT" "$QEMU" -L "$ROOT" "$ROOT/usr/bin/node" --version >"$DIR/VERSION" 2>&1 \
  || die "the arm64 node does not run: $(cat "$DIR/VERSION")"
verify
echo "$KEY" >"$DIR/KEY"
say "unpacked $(cat "$DIR/DEB") from $suite into $ROOT: node $(cat "$DIR/VERSION")"
echo "ROOT=$ROOT"
