#!/usr/bin/env bash
# A throw-away systemd "node" on a machine whose PID 1 is not systemd: the real systemd of this
# machine (/lib/systemd/system, Debian 12: systemd 252) booted as PID 1 of its own pid, mount, uts,
# ipc, net and cgroup namespaces, on an overlay of / whose upper layer is a tmpfs, so nothing the
# node writes (units, rpm database, journal, /var/lib/containerd) reaches the host's disk.
#
# usage (as root):
#   test/harness/systemd-node.sh start DIR [VERSION]  boot a node in DIR (made if missing); VERSION
#                                                     (1.7 or 2.1, default 2.1) picks the containerd
#                                                     that /usr/local/bin/containerd links to.
#                                                     Prints the host pid of the node's systemd.
#   test/harness/systemd-node.sh exec DIR CMD...      run CMD inside the node (nsenter -a)
#   test/harness/systemd-node.sh containerd DIR VERSION   relink containerd to VERSION (then
#                                                     `systemctl restart containerd` in the node)
#   test/harness/systemd-node.sh stop DIR             power the node off (SIGKILL after 30 s),
#                                                     remove its cgroups and DIR
# With NMS_NODE_OWNER=PID, start also leaves a watcher that stops the node once PID is gone.
#
# The node boots nms-node.target (test/harness/systemd-node/): basic.target, journald and
# containerd.service, nothing of the host's multi-user.target. Units that would touch the host's
# kernel or clock (sysctl, modules, binfmt, timesyncd, ...) are masked in the overlay; /proc/sys and
# /sys are read-only as in systemd-nspawn. /dev is a private tmpfs with the usual nodes.
# containerd's binaries come from fetch-containerd.sh's cache (${NRI_MEMSHARE_CACHE}).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${NRI_MEMSHARE_CACHE:-/var/tmp/nri-memshare-cache}

die() { echo "systemd-node: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

node_pid() {
  local pid
  pid=$(cat "$dir/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] || return 1
  echo "$pid"
}

# the node's cgroup below this process's own cgroup, in the two hierarchies systemd uses here
# (hybrid: the named v1 hierarchy name=systemd, and cgroup2 at unified/)
cgroup_dirs() {
  local id=$1 line path
  line=$(grep -E '^[0-9]+:name=systemd:' /proc/self/cgroup) || die "no name=systemd cgroup hierarchy"
  path=${line#*:name=systemd:}
  echo "/sys/fs/cgroup/systemd${path%/}/$id"
  line=$(grep -E '^0::' /proc/self/cgroup) || die "no cgroup2 hierarchy"
  path=${line#0::}
  echo "/sys/fs/cgroup/unified${path%/}/$id"
  # the v1 controllers (runc needs cpu, memory, devices, ... to start a pod's containers in the
  # node), each where the host mounts it
  v1_controllers | while IFS=' ' read -r c path; do echo "/sys/fs/cgroup/$c${path%/}/$id"; done
}

# "controller path" of each v1 controller hierarchy of this process mounted on the host
v1_controllers() {
  local line c path
  while IFS= read -r line; do
    c=${line#*:}; path=${c#*:}; c=${c%%:*}
    case "$c" in ''|name=*) continue ;; esac
    [ -d "/sys/fs/cgroup/$c" ] && echo "$c $path"
  done < /proc/self/cgroup
}

link_containerd() {
  # $1: the node's root as seen from here; $2: version
  local root=$1 v=$2 bin="$cache/containerd-$2/usr/bin"
  [ -x "$bin/containerd" ] || die "no containerd $v in $bin: run test/harness/fetch-containerd.sh"
  mkdir -p "$root/usr/local/bin"
  for b in containerd containerd-shim-runc-v2 ctr; do
    ln -sfn "$bin/$b" "$root/usr/local/bin/$b"
  done
}

# Runs inside the new namespaces, as their PID 1, before it becomes systemd.
stage2() {
  local hostpid L R u
  # this proc is still the host's: the pid field is our pid there
  read -r hostpid _ < /proc/self/stat
  echo "$hostpid" > "$dir/pid"
  mount --make-rprivate /
  L=$dir/layers
  mkdir -p "$L"
  mount -t tmpfs -o mode=0755 nms-node-layers "$L"
  mkdir "$L/upper" "$L/work" "$L/root"
  mount -t overlay nms-node-root -o "lowerdir=/,upperdir=$L/upper,workdir=$L/work" "$L/root"
  R=$L/root

  mount -t proc proc "$R/proc"
  mount --bind "$R/proc/sys" "$R/proc/sys"
  mount -o remount,bind,ro "$R/proc/sys"
  mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
  mount -o remount,bind,ro "$R/proc/sysrq-trigger"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
  mount -t tmpfs -o mode=0755,nosuid,nodev,noexec nms-node-cgroup "$R/sys/fs/cgroup"
  mkdir "$R/sys/fs/cgroup/systemd" "$R/sys/fs/cgroup/unified"
  mount -t cgroup -o none,name=systemd,nosuid,nodev,noexec cgroup "$R/sys/fs/cgroup/systemd"
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup/unified"
  local c
  while IFS=' ' read -r c _; do
    mkdir -p "$R/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c,nosuid,nodev,noexec" cgroup "$R/sys/fs/cgroup/$c"
  done < "$dir/v1-controllers"

  mount -t tmpfs -o mode=0755,nosuid nms-node-dev "$R/dev"
  mknod -m 666 "$R/dev/null" c 1 3
  mknod -m 666 "$R/dev/zero" c 1 5
  mknod -m 666 "$R/dev/full" c 1 7
  mknod -m 666 "$R/dev/random" c 1 8
  mknod -m 666 "$R/dev/urandom" c 1 9
  mknod -m 666 "$R/dev/tty" c 5 0
  # the console: a file of the harness's, so the node's boot messages can be read from the host
  touch "$R/dev/console"
  mount --bind "$dir/console.log" "$R/dev/console"
  mkdir -m 755 "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev nms-node-shm "$R/dev/shm"
  ln -s /proc/self/fd "$R/dev/fd"
  ln -s /proc/self/fd/0 "$R/dev/stdin"
  ln -s /proc/self/fd/1 "$R/dev/stdout"
  ln -s /proc/self/fd/2 "$R/dev/stderr"
  mount -t tmpfs -o mode=0755,nosuid,nodev nms-node-run "$R/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev nms-node-tmp "$R/tmp"

  # the node's configuration, in the overlay only
  u=$R/etc/systemd/system
  cp "$here/systemd-node/nms-node.target" "$here/systemd-node/containerd.service" "$u/"
  # nothing of the host's own boot: its wants of sysinit.target, multi-user.target, timers
  rm -rf "$u"/*.wants
  for m in systemd-sysctl.service systemd-modules-load.service kmod-static-nodes.service \
           systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
           systemd-timesyncd.service systemd-random-seed.service systemd-pstore.service \
           systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
           systemd-hwdb-update.service systemd-firstboot.service systemd-machine-id-commit.service \
           systemd-repart.service systemd-remount-fs.service systemd-fsck-root.service \
           systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-update-utmp.service \
           dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
           sys-fs-fuse-connections.mount tmp.mount swap.target cryptsetup.target veritysetup.target \
           integritysetup.target systemd-ask-password-console.path systemd-ask-password-wall.path \
           getty.target console-getty.service systemd-logind.service dbus.service dbus.socket \
           timers.target apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
           fstrim.timer man-db.timer systemd-tmpfiles-clean.timer; do
    ln -sfn /dev/null "$u/$m"
  done
  mkdir -p "$R/etc/containerd/conf.d"
  cat > "$R/etc/containerd/config.toml" <<'TOML'
# the test node's containerd: what the nri-memshare package asks for is added as a file in conf.d
# (its containerd/nri.toml), the rest is what this VM needs (test/harness/containerd.ts)
version = 2
imports = ["/etc/containerd/conf.d/*.toml"]

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
TOML
  link_containerd "$R" "${version:-2.1}"
  echo "nms-node" > "$R/etc/hostname"

  cd "$R"
  mkdir -p oldroot
  pivot_root . oldroot
  cd /
  umount -l /oldroot
  rmdir /oldroot
  exec env -i container=nri-memshare-test-node TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=nms-node.target --show-status=no </dev/null >/dev/console 2>&1
}

case "$cmd" in
  start)
    version=${3:-2.1}
    node_pid >/dev/null && die "a node already runs in $dir (pid $(node_pid))"
    mkdir -p "$dir"
    : > "$dir/console.log"
    rm -f "$dir/pid"
    id=nms-node-$(basename "$dir")
    v1_controllers > "$dir/v1-controllers"
    mapfile -t cgs < <(cgroup_dirs "$id")
    printf '%s\n' "${cgs[@]}" > "$dir/cgroups"
    for cg in "${cgs[@]}"; do mkdir -p "$cg"; done
    export dir version here cache
    export -f stage2 link_containerd die
    # stage 1: into the node's cgroups, then the new namespaces; stage 2 becomes systemd
    setsid bash -c '
      for cg in "$@"; do echo $$ > "$cg/cgroup.procs"; done
      exec unshare --fork --pid --mount --uts --ipc --net --cgroup --propagation private \
        bash -c "hostname nms-node; stage2"
    ' stage1 "${cgs[@]}" </dev/null >>"$dir/console.log" 2>&1 &
    for _ in $(seq 1 300); do
      if pid=$(node_pid); then
        if [ -n "${NMS_NODE_OWNER:-}" ]; then
          # the node must not outlive its test, even one killed with SIGKILL: a watcher stops it
          # when the owner process is gone (and ends by itself once DIR is gone)
          setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
                          [ -d "$2" ] && exec bash "$3" stop "$2"' watcher "$NMS_NODE_OWNER" "$dir" "$0" \
            </dev/null >>"$dir/console.log" 2>&1 &
        fi
        echo "$pid"
        exit 0
      fi
      sleep 0.1
    done
    echo "systemd-node: the node did not come up; its console:" >&2
    cat "$dir/console.log" >&2
    exit 1
    ;;
  exec)
    pid=$(node_pid) || die "no node runs in $dir"
    shift 2
    exec nsenter -t "$pid" -a -- "$@"
    ;;
  containerd)
    pid=$(node_pid) || die "no node runs in $dir"
    link_containerd "/proc/$pid/root" "${3:?version}"
    ;;
  stop)
    if pid=$(node_pid); then
      # SIGRTMIN+4: systemd's "poweroff" signal; in a container its PID 1 then exits
      kill -s RTMIN+4 "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then
        echo "systemd-node: the node did not power off within 30 s; SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      fi
    fi
    # the node's cgroups, deepest first (systemd made slices and scopes below them)
    # (the kernel kills the rest of the pid namespace when its PID 1 exits; their cgroups stay
    # busy until they are gone, so this is retried for up to 10 s)
    if [ -f "$dir/cgroups" ]; then
      for _ in $(seq 1 100); do
        left=0
        while IFS= read -r cg; do
          [ -d "$cg" ] || continue
          find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
          [ -d "$cg" ] && left=1
        done < "$dir/cgroups"
        [ "$left" = 0 ] && break
        sleep 0.1
      done
      [ "$left" = 0 ] || echo "systemd-node: could not remove the node's cgroups: $(tr '\n' ' ' < "$dir/cgroups")" >&2
    fi
    rm -rf "$dir"
    ;;
  *) die "unknown command $cmd" ;;
esac
