#!/usr/bin/env bash
# The aarch64 run (.ci/run step 3, after test/all.sh): the agent as an aarch64 process on this
# x86_64 host, under qemu-user, from the aarch64 RPM's payload. docs/aarch64.md says what it proves
# and what it cannot.
#   1. setup: qemu-user-static, gcc-aarch64-linux-gnu, Debian's arm64 nodejs and its libraries in a
#      sysroot in the cache, binfmt_misc (test/harness/fetch-arm64.sh); npm run build; the native/ubs
#      double, stand-in and consumer cross-built into dist/native/ubs-aarch64; the RPM built with
#      rpmbuild --target aarch64 and unpacked with rpm2cpio (its only ELF file must be koffi's
#      linux_arm64 module).
#   2. the unit suite under the arm64 node, in a copy of the tree whose dist/native/ubs is the arm64
#      build (the unit tests load the double from there), whose `gcc` is the aarch64 cross gcc (two
#      tests compile a library and load it) and whose `rpmbuild` builds for aarch64 (the packaging
#      test loads the RPM it builds); two files are left out (qemu fakes /proc/self/stat: unit_out
#      below). Then struct layouts, flag values and syscall numbers: aarch64 gcc's against the
#      binding's under the arm64 node.
#   3. the e2e files for local and UB shares (memshare-shares, memshare-release, ubs) and for
#      eviction with the unit's capabilities (memshare-evict-caps: pidfd_open, pidfd_send_signal) on containerd
#      1.7 and 2.1 (the real x86 containerd; NRI is a unix socket), with NRI_MEMSHARE_AGENT_ARCH=aarch64:
#      test/e2e/agent.ts starts the payload's agent under qemu with the arm64 double (its UB holder is
#      started by the agent through binfmt, arm64 too). Containers and their consumer stay x86.
#   4. proof: the emulated processes had the payload's linux_arm64 koffi.node and the arm64
#      libubsm_sdk.so mapped (NRI_MEMSHARE_ARCH_PROOF, recorded before each agent stop).
# Ends with one line: "N passed, N failed". ARCH64_E2E=FILTER... replaces the e2e file list,
# ARCH64_UNIT=FILTER... narrows the unit files (for a quick look; CI runs the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export NRI_MEMSHARE_CACHE=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}
. test/harness/tally.sh
started=$(date +%s)
say() { echo "arch64: $*"; }
loud() { echo "!!!!!!!! arch64: $* !!!!!!!!"; }

echo "======== aarch64 (qemu-user): setup ========"
# after test/all.sh (CI) node_modules is there; alone on a fresh clone, install it first
[ -d node_modules/koffi ] || npm ci --no-audit --no-fund --loglevel=error
bash test/harness/fetch-arm64.sh >/dev/null
ROOT="$NRI_MEMSHARE_CACHE/arm64/root"
QEMU=/usr/bin/qemu-aarch64-static
bash test/harness/fetch-containerd.sh
npm run build >/dev/null
NATIVE="$REPO/dist/native/ubs-aarch64"
bash native/ubs/build.sh "$NATIVE" aarch64

W=$(mktemp -d /tmp/nrims-arch64-XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W" # the unit tests run the consumer as other users, from the tree copy below
say "building the aarch64 RPM (rpmbuild --target aarch64)"
bash scripts/make-tarball.sh --no-build --out "$W/release" >/dev/null
version=$(node -p 'require("./package.json").version')
rpmbuild --quiet --nodeps --target aarch64 --define "_topdir $W/rpmbuild" -tb "$W/release/nri-memshare-$version.tar.gz" >"$W/rpmbuild.log" 2>&1 \
  || { cat "$W/rpmbuild.log"; loud "rpmbuild --target aarch64 failed"; exit 1; }
RPM=$(ls "$W"/rpmbuild/RPMS/aarch64/nri-memshare-*.aarch64.rpm)
[ "$(rpm -qp --qf '%{ARCH}' "$RPM")" = aarch64 ] || { loud "$RPM is not an aarch64 package"; exit 1; }
PAYLOAD="$W/payload"
mkdir -p "$PAYLOAD" && (cd "$PAYLOAD" && rpm2cpio "$RPM" | cpio -idm --quiet)
elves=$(cd "$PAYLOAD" && find . -type f -exec sh -c 'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
[ "$elves" = ./usr/lib/nri-memshare/node_modules/koffi/build/koffi/linux_arm64/koffi.node ] \
  || { loud "the aarch64 RPM's ELF files are not exactly koffi's linux_arm64 module: $elves"; exit 1; }
say "$(basename "$RPM"): payload in $PAYLOAD, its ELF file: $elves"
echo "======== aarch64: setup done in $(($(date +%s) - started)) s ========"

# qemu-user 7.2 leaves statx's stx_mnt_id out: tests that need the kernel's unique mount id skip
export NRI_MEMSHARE_EMULATED=qemu-user
results=()
# run NAME CMD...: runs the test runner, lines prefixed with NAME; its closing line into results
run() {
  local name=$1 log rc line t0
  shift
  log=$(mktemp)
  t0=$(date +%s)
  echo
  echo "======== aarch64: $name ========"
  set +e
  "$@" 2>&1 | tee "$log" | sed -u "s/^/[aarch64 $name] /"
  rc=${PIPESTATUS[0]}
  set -e
  line=$(closing_line "$log")
  results+=("$name|$rc|$line|$(($(date +%s) - t0))")
  rm -f "$log"
}

# 2. the unit suite under the arm64 node, in a tree whose native build is the arm64 one
TREE="$W/tree"
mkdir -p "$TREE" "$W/bin"
for e in "$REPO"/* "$REPO"/.[!.]*; do
  [ -e "$e" ] || continue
  # .git too: the packaging test makes its Source0 from what git tracks (make-tarball.sh)
  case "$(basename "$e")" in dist) ;; *) ln -s "$e" "$TREE/$(basename "$e")" ;; esac
done
mkdir -p "$TREE/dist/native"
for e in "$REPO"/dist/*; do
  case "$(basename "$e")" in native | release) ;; *) cp -a "$e" "$TREE/dist/" ;; esac
done
for e in "$REPO"/dist/native/*; do
  case "$(basename "$e")" in ubs | ubs-aarch64) ;; *) cp -a "$e" "$TREE/dist/native/" ;; esac
done
cp -a "$NATIVE" "$TREE/dist/native/ubs"
printf '#!/bin/sh\nexec aarch64-linux-gnu-gcc "$@"\n' >"$W/bin/gcc" && chmod +x "$W/bin/gcc"
# rpmbuild as on an aarch64 build host: the packaging test loads the RPM it builds with this node
cat >"$W/bin/rpmbuild" <<'SH'
#!/bin/sh
case " $* " in *" --target "* | *" --target="*) exec /usr/bin/rpmbuild "$@" ;; esac
exec /usr/bin/rpmbuild --target aarch64 "$@"
SH
chmod +x "$W/bin/rpmbuild"
# Left out: files with a test that reads what qemu-user 7.2 fakes in /proc/self/stat, not what an
# aarch64 kernel gives (docs/aarch64.md): every other unit file runs.
declare -A unit_out=(
  [status-agent.test.js]="the agent's start time: qemu computes /proc/self/stat's starttime itself, one clock tick off the kernel's now and then, so status (reading the kernel's) calls the agent gone"
  [status-exit.test.js]="the agent's start time, as status-agent.test.js: the test records its own pid's starttime from /proc/self/stat (qemu's), status compares the kernel's /proc/<pid>/stat and calls the agent gone (exit 3 instead of 0)"
  [metrics-listener.test.js]="process RSS: qemu reports 0 in /proc/self/stat, so the scrape's rss check fails"
)
unit=()
for f in "$TREE"/dist/test/unit/*.test.js; do
  b=$(basename "$f")
  if [ -n "${unit_out[$b]:-}" ]; then loud "unit file left out under emulation: $b: ${unit_out[$b]}"; continue; fi
  # ARCH64_UNIT=FILTER...: only the unit files whose names contain one of them
  if [ -n "${ARCH64_UNIT:-}" ] && ! grep -qF -f <(tr ' ' '\n' <<<"$ARCH64_UNIT") <<<"$b"; then continue; fi
  unit+=("$b")
done
run "unit suite (arm64 node $(QEMU_LD_PREFIX=$ROOT $QEMU -L "$ROOT" "$ROOT/usr/bin/node" --version))" \
  env -C "$TREE" PATH="$W/bin:$PATH" QEMU_LD_PREFIX="$ROOT" "$QEMU" -L "$ROOT" "$ROOT/usr/bin/node" dist/test/run.js unit "${unit[@]}"

# 2b. struct layouts, koffi's (arm64 node) against aarch64 gcc's: the SDK binding's (ubs_mem.h) and
# native/libc.ts's statfs and statx buffers
cat >"$W/layout.c" <<'C'
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include "ubs_mem.h"
#define K(c) printf("\"%s\":%ld,", #c, (long)(c))
#define S(t) printf("\"%s\":%zu,", #t, sizeof(t))
#define O(t, f) printf("\"%s.%s\":%zu,", #t, #f, offsetof(t, f))
int main(void) {
    printf("{");
    S(ubsmem_options_t); S(ubsmem_region_node_desc_t); S(ubsmem_region_attributes_t); S(ubsmem_shmem_desc_t); S(ubsmem_shmem_info_t);
    O(ubsmem_region_node_desc_t, affinity); O(ubsmem_region_attributes_t, hosts); O(ubsmem_shmem_desc_t, size);
    O(ubsmem_shmem_info_t, size); O(ubsmem_shmem_info_t, mem_num); O(ubsmem_shmem_info_t, mem_unit_size); O(ubsmem_shmem_info_t, mem_id_list);
    /* native/libc.ts's structs too: statfs(2) and statx(2) buffers */
    S(struct statfs); O(struct statfs, f_bsize); O(struct statfs, f_frsize); O(struct statfs, f_flags);
    S(struct statx); O(struct statx, stx_attributes); O(struct statx, stx_mode); O(struct statx, stx_attributes_mask); O(struct statx, stx_dev_minor);
    /* flag values and syscall numbers native/libc.ts passes */
    K(MS_RDONLY); K(MS_NOSUID); K(MS_NODEV); K(MS_NOEXEC); K(MS_REMOUNT); K(MS_BIND); K(MS_REC); K(MS_PRIVATE);
    K(MNT_FORCE); K(MNT_DETACH); K(UMOUNT_NOFOLLOW); K(LOCK_SH); K(LOCK_EX); K(LOCK_NB); K(LOCK_UN); K(TMPFS_MAGIC);
    K(AT_FDCWD); K(AT_SYMLINK_NOFOLLOW); K(STATX_BASIC_STATS); K(STATX_ATTR_MOUNT_ROOT); K(SYS_pidfd_open); K(SYS_pidfd_send_signal);
    K(AF_UNIX); K(SOCK_DGRAM); K(SOCK_CLOEXEC); K(SOCK_NONBLOCK); K(MSG_DONTWAIT); K(MSG_NOSIGNAL);
    printf("\"mode_t\":%zu,\"off_t\":%zu,\"size_t\":%zu,\"bool\":%zu}\n", sizeof(mode_t), sizeof(off_t), sizeof(size_t), sizeof(bool));
    return 0;
}
C
aarch64-linux-gnu-gcc -O2 -Wall -Werror -Inative/ubs/include -o "$W/layout" "$W/layout.c"
cat >"$W/layout.js" <<'JS'
const k = require(require.resolve('koffi', { paths: [process.argv[4]] }));
const { ubsStructs: t } = require(process.argv[2]);
// native/libc.ts registers its struct types on first use
const libc = require(require('node:path').join(require('node:path').dirname(process.argv[2]), 'libc.js'));
libc.statfs('/');
const c = JSON.parse(process.argv[3]);
const mine = {
  ubsmem_options_t: k.sizeof(t.options), ubsmem_region_node_desc_t: k.sizeof(t.regionNodeDesc),
  ubsmem_region_attributes_t: k.sizeof(t.regionAttributes), ubsmem_shmem_desc_t: k.sizeof(t.shmemDesc),
  ubsmem_shmem_info_t: k.sizeof(t.shmemInfo),
  'ubsmem_region_node_desc_t.affinity': k.offsetof(t.regionNodeDesc, 'affinity'),
  'ubsmem_region_attributes_t.hosts': k.offsetof(t.regionAttributes, 'hosts'),
  'ubsmem_shmem_desc_t.size': k.offsetof(t.shmemDesc, 'size'), 'ubsmem_shmem_info_t.size': k.offsetof(t.shmemInfo, 'size'),
  'ubsmem_shmem_info_t.mem_num': k.offsetof(t.shmemInfo, 'mem_num'), 'ubsmem_shmem_info_t.mem_unit_size': k.offsetof(t.shmemInfo, 'mem_unit_size'),
  'ubsmem_shmem_info_t.mem_id_list': k.offsetof(t.shmemInfo, 'mem_id_list'),
  'struct statfs': k.sizeof('nri_memshare_statfs'), 'struct statfs.f_bsize': k.offsetof('nri_memshare_statfs', 'f_bsize'),
  'struct statfs.f_frsize': k.offsetof('nri_memshare_statfs', 'f_frsize'), 'struct statfs.f_flags': k.offsetof('nri_memshare_statfs', 'f_flags'),
  'struct statx': k.sizeof('nri_memshare_statx'), 'struct statx.stx_attributes': k.offsetof('nri_memshare_statx', 'stx_attributes'),
  'struct statx.stx_mode': k.offsetof('nri_memshare_statx', 'stx_mode'), 'struct statx.stx_attributes_mask': k.offsetof('nri_memshare_statx', 'stx_attributes_mask'),
  // stx_devs is rdev major, rdev minor, dev major, dev minor (4 bytes each)
  'struct statx.stx_dev_minor': k.offsetof('nri_memshare_statx', 'stx_devs') + 12,
  ...Object.fromEntries(Object.entries(libc).filter(([n, v]) => /^(MS|MNT|UMOUNT|LOCK|TMPFS)_/.test(n) && typeof v === 'number')),
  // the module's private constants, as native/libc.ts has them
  AT_FDCWD: -100, AT_SYMLINK_NOFOLLOW: 0x100, STATX_BASIC_STATS: 0x7ff, STATX_ATTR_MOUNT_ROOT: 0x2000, SYS_pidfd_open: 434, SYS_pidfd_send_signal: 424,
  AF_UNIX: 1, SOCK_DGRAM: 2, SOCK_CLOEXEC: 0o2000000, SOCK_NONBLOCK: 0o4000, MSG_DONTWAIT: 0x40, MSG_NOSIGNAL: 0x4000,
  // the binding's argument types: mode_t as uint32_t, off_t as int64_t, size_t, bool
  mode_t: 4, off_t: 8, size_t: k.sizeof('size_t'), bool: k.sizeof('bool'),
};
let p = 0, f = 0;
for (const [key, want] of Object.entries(c)) {
  const ok = mine[key] === want;
  console.error(`[aarch64 layout] ${ok ? 'ok' : 'FAILED'}: ${key}: aarch64 gcc ${want}, arm64 node + koffi ${mine[key]}`);
  ok ? p++ : f++;
}
console.log(`${process.arch === 'arm64' ? p : 0} passed, ${process.arch === 'arm64' ? f : f + 1} failed`);
JS
echo
echo "======== aarch64: struct layouts, SDK and libc (aarch64 gcc vs koffi under the arm64 node) ========"
layout_c=$(QEMU_LD_PREFIX="$ROOT" "$QEMU" -L "$ROOT" "$W/layout")
# the checks go to stderr (this run's output), the closing line to stdout
layout_line=$(cd "$TREE" && QEMU_LD_PREFIX="$ROOT" "$QEMU" -L "$ROOT" "$ROOT/usr/bin/node" "$W/layout.js" "$TREE/dist/native/ubs-sdk.js" "$layout_c" "$TREE") || layout_line="0 passed, 1 failed"
results+=("struct layouts|0|$layout_line|0")

# 3. e2e with the aarch64 agent from the RPM's payload, on containerd 1.7 and 2.1
PROOF="$W/proof.jsonl"
: >"$PROOF"
read -r -a e2e <<<"${ARCH64_E2E:-memshare-shares memshare-release memshare-evict-caps ubs.test}"
run "e2e ${e2e[*]} (aarch64 agent)" \
  env NRI_MEMSHARE_AGENT_ARCH=aarch64 NRI_MEMSHARE_AGENT_PAYLOAD="$PAYLOAD" NRI_MEMSHARE_ARM64_ROOT="$ROOT" \
  NRI_MEMSHARE_AGENT_NATIVE="$NATIVE" NRI_MEMSHARE_ARCH_PROOF="$PROOF" node dist/test/run.js e2e "${e2e[@]}"

# 4. what the emulated processes (agent, holder) had mapped
echo
echo "======== aarch64: proof ($(wc -l <"$PROOF") process snapshots) ========"
koffi_arm="$PAYLOAD/usr/lib/nri-memshare/node_modules/koffi/build/koffi/linux_arm64/koffi.node"
ubs_run=$(printf '%s\n' "${e2e[@]}" | grep -c ubs || true)
proof_line=$(node - "$PROOF" "$koffi_arm" "$NATIVE/lib/libubsm_sdk.so" "$REPO/dist/native/ubs/" "$ubs_run" <<'JS'
const [file, koffiArm, sdkArm, hostNative, ubsRun] = process.argv.slice(2);
const snaps = require('node:fs').readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const objs = snaps.flatMap((s) => s.objects);
const x86 = [...new Set(objs.filter((o) => /linux_x64|x86_64-linux-gnu/.test(o) || o.startsWith(hostNative)))];
const checks = [
  ['the agent ran koffi\'s arm64 module from the RPM payload', objs.includes(koffiArm), koffiArm],
  // (only when a ubs e2e file ran: ARCH64_E2E may leave them out)
  ...(ubsRun !== '0' ? [['the UB holder (arm64, started by the agent) loaded the arm64 double of libubsm_sdk.so', snaps.some((s) => /ubs-holder\.js/.test(s.cmd) && s.objects.includes(sdkArm)), sdkArm]] : []),
  ['no emulated process had an x86 object mapped', x86.length === 0, x86.join(' ') || 'none'],
];
let p = 0, f = 0;
for (const [what, ok, detail] of checks) {
  console.error(`[aarch64 proof] ${ok ? 'ok' : 'FAILED'}: ${what} (${detail})`);
  ok ? p++ : f++;
}
console.log(`${p} passed, ${f} failed`);
JS
) || proof_line="0 passed, 1 failed"
results+=("proof|0|$proof_line|0")

echo
for r in "${results[@]}"; do
  IFS='|' read -r name rc line secs <<<"$r"
  if [ -z "$line" ]; then
    echo "aarch64 $name: the runner printed no closing line (exit $rc, ${secs}s): counted as 1 failed"
  else
    echo "aarch64 $name: $line (${secs}s)"
  fi
  tally "$rc" "$line"
done
echo "aarch64 run took $(($(date +%s) - started)) s"
tally_line
[ "$tally_failed" = 0 ]
