#!/usr/bin/env bash
# Test the tests: build with the planted bugs compiled in (runtime/include/statefold/planted.hpp),
# run the reliability harness once with no bug (it must pass), then once per planted bug (it
# must fail), and print the score caught/planted.
#
#   scripts/planted_bugs.sh            every bug
#   scripts/planted_bugs.sh dedup_off  just the ones named
#
# The harness here is every unit, crash and end-to-end test. Temporary directories go to
# /dev/shm when it exists: the fault-injecting file system, not the device, decides what a
# simulated crash keeps, so the score does not depend on it, and the runs are much faster.
# (The normal test run, scripts/test.sh, uses the real disk.)
#
# Environment: BUILD_DIR (default <repo>/build-planted), JOBS.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build-planted}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
all_bugs=(ack_before_sync dedup_off checkpoint_renamed_before_sync segment_created_without_dir_sync
          fsync_retried_after_eio offset_committed_before_durable segment_deleted_before_checkpoint
          torn_tail_cut_without_sync)
bugs=("${@:-${all_bugs[@]}}")
[[ $# -gt 0 ]] || bugs=("${all_bugs[@]}")

log "building with planted bugs in $build_dir"
generator=()
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTATEFOLD_PLANTED_BUGS=ON -DSTATEFOLD_BUILD_BENCH=OFF >"$build_dir.configure.log" 2>&1 ||
  { tail -n 30 "$build_dir.configure.log"; die "configure failed"; }
cmake --build "$build_dir" -j"$jobs" >"$build_dir.build.log" 2>&1 ||
  { grep -E 'error' "$build_dir.build.log" | head -n 20; die "build failed"; }

tmp_root=/dev/shm
[[ -d $tmp_root && -w $tmp_root ]] || tmp_root=${TMPDIR:-/tmp}

# Runs the harness with STATEFOLD_PLANT=$1 (empty: none); prints the failing tests.
harness() {
  local tmp
  tmp=$(mktemp -d "$tmp_root/statefold-planted-XXXXXX")
  local out rc=0
  out=$(cd "$build_dir" && STATEFOLD_PLANT="$1" TMPDIR="$tmp" \
        ctest -j"$jobs" -L 'unit|crash|e2e' --timeout 300 2>&1) || rc=$?
  rm -rf "$tmp"
  grep -E '^\s+[0-9]+ - ' <<<"$out" | sed -E 's/^\s+[0-9]+ - //; s/ \(.*//' | sort -u | head -n 6 | paste -sd, - || true
  return $rc
}

log "baseline (no bug planted): the harness must pass"
if ! failing=$(harness ""); then
  die "the harness fails without any planted bug: $failing"
fi

caught=0
printf '\n%-36s %-8s %s\n' "planted bug" "result" "caught by"
for bug in "${bugs[@]}"; do
  if failing=$(harness "$bug"); then
    printf '%-36s %-8s %s\n' "$bug" "MISSED" "-"
  else
    printf '%-36s %-8s %s\n' "$bug" "caught" "$failing"
    caught=$((caught + 1))
  fi
done
echo
echo "planted bugs caught: $caught/${#bugs[@]}"
[[ $caught -eq ${#bugs[@]} ]]
