# shellcheck shell=bash
# apt on a private sources list and private state under $CACHE/apt/SUITE, never on the system's
# sources: sourced by fetch-containerd.sh and fetch-node.sh.
# The sourcing script sets CACHE and defines say MESSAGE and die MESSAGE (prints and exits 1).
# APT_PRIVATE_STATUS=FILE, if set, replaces the dpkg status (fetch-node.sh: /dev/null, so the
# installed node does not count as a candidate).

# The Debian mirror this machine already uses (never written into the repo).
mirror() {
  awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
    /etc/apt/sources.list.d/debian.sources
}

# apt with a private sources list, lists, cache and no system preferences.
# usage: apt_private SUITE apt-get|apt-cache ARGS...
apt_private() {
  local suite=$1 tool=$2; shift 2
  local d="$CACHE/apt/$suite"
  local status=()
  [ -z "${APT_PRIVATE_STATUS:-}" ] || status=(-o Dir::State::status="$APT_PRIVATE_STATUS")
  "$tool" -q -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$d/empty" "${status[@]}" \
    -o APT::Sandbox::User=root "$@"
}

# Once per run and suite ($$ is the sourcing script's pid, also inside $(...) subshells).
apt_update() {
  local suite=$1 d="$CACHE/apt/$1" m
  [ "$(cat "$d/UPDATED" 2>/dev/null)" = "$$" ] && return 0
  m=$(mirror)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/empty"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m $suite main" >"$d/sources.list"
  say "apt-get update ($suite, private lists)"
  apt_private "$suite" apt-get update -qq >/dev/null || die "apt-get update of $suite failed"
  echo "$$" >"$d/UPDATED"
}

# candidate SUITE PKG: the version apt would take from SUITE ("(none)" or empty if none)
candidate() { apt_private "$1" apt-cache policy "$2" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
