# Sourced by test/all.sh, test/arch64.sh and .ci/run: they each sum several test runs into one
# closing line, "N passed, N failed" (", N skipped" only when some were), read the same way here.

# closing_line LOG: the last closing line a run wrote into LOG; empty when it wrote none, and then
# still a success, so that l=$(closing_line LOG) under set -e and pipefail goes on to count it failed
closing_line() { grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1 || true; }

tally_passed=0 tally_failed=0 tally_skipped=0
# tally RC LINE: adds one run's closing line. No line counts as 1 failed, and so does a run that
# exited non-zero with nothing counted failed (no test files, say): a failure is never hidden.
tally() {
  local rc=$1 line=$2 p f s
  if [ -z "$line" ]; then
    tally_failed=$((tally_failed + 1))
    return
  fi
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
  [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
  tally_passed=$((tally_passed + p)) tally_failed=$((tally_failed + f)) tally_skipped=$((tally_skipped + ${s:-0}))
}

# tally_line: the closing line of everything tallied
tally_line() {
  local tail=
  [ "$tally_skipped" = 0 ] || tail=", $tally_skipped skipped"
  echo "$tally_passed passed, $tally_failed failed$tail"
}
