#!/usr/bin/env bash
# Test the tests: build with the planted bugs compiled in (runtime/include/statefold/planted.hpp),
# run the reliability harness once with no bug (it must pass), then once per planted bug (it
# must fail), and print the score caught/planted.
#
#   scripts/planted_bugs.sh                    full: every bug, the whole harness (~10 min)
#   scripts/planted_bugs.sh dedup_off          full, just the bugs named
#   scripts/planted_bugs.sh --quick [bug...]   quick: the CI stage of scripts/test.sh (3.5 min
#                                              from clean on 2 busy shared cores, 2 CPU-minutes)
#
# Full mode: the harness is every unit, crash and end-to-end test, built in full in
# <repo>/build-planted; it prints the (first few) tests that caught each bug.
#
# Quick mode: each bug is run against its own few fast tests only, the table `quick_map` below,
# and only the test binaries that hold them are built (`quick_targets`), by default in
# <repo>/build/planted. The baseline (no bug) runs the union of the chosen tests and must pass;
# then each bug runs its tests, and EVERY test chosen for a bug must fail under it: a chosen
# test that stops catching its bug fails the stage (listed as PARTIAL or MISSED), so the table
# cannot rot silently. A chosen test that no longer exists fails the stage too.
#
# How the quick table was chosen: the full mode was run once (all 127 unit/crash/e2e tests,
# per bug; commit 9d65017) and, for each bug, the catching tests were listed. From those, up
# to two per bug were taken, preferring (1) deterministic tests (no timing, no random kill
# points: the torture runs and the engine's threaded tests were left out), (2) short ones
# (each chosen test takes < 0.5 s, except the crash-point enumerations, ~4 s each), (3) tests from
# few, cheap binaries: everything lives in log_test, partition_state_test, crash_point_test
# and partition_actor_test; the engine, booking and torture binaries, the slowest to compile,
# are not needed. ack_before_sync lives in the actors layer, so one actor-level binary
# (partition_actor_test, CAF's deterministic test coordinator) is unavoidable. Where two
# different layers catch a bug, one test of each was preferred. torn_tail_cut_without_sync has
# a single catcher in the whole harness. When you add, rename or remove a test that the table
# names, or a bug, re-run the full mode and update the table (the stage tells you when needed).
#
# Temporary directories go to /dev/shm when it exists: the fault-injecting file system, not
# the device, decides what a simulated crash keeps, so the score does not depend on it, and
# the runs are much faster. (The normal test run, scripts/test.sh, uses the real disk.)
#
# Environment: BUILD_DIR (default <repo>/build-planted, or <repo>/build/planted with --quick),
# JOBS.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

all_bugs=(ack_before_sync dedup_off checkpoint_renamed_before_sync segment_created_without_dir_sync
          fsync_retried_after_eio offset_committed_before_durable segment_deleted_before_checkpoint
          torn_tail_cut_without_sync)

# Quick mode: bug -> the ctest names (gtest Suite.Test) that must each fail with that bug
# planted. A line that starts with a blank continues the bug above.
quick_map='
ack_before_sync                    partition_actor_test.AckWaitsForTheFlushedMessage
                                   partition_actor_test.DuplicateIsAnsweredOnlyWhenTheOriginalIsDurable
dedup_off                          partition_state_test.DuplicatesAreAnsweredAndNotLoggedBeforeAndAfterRestart
                                   partition_actor_test.DuplicateIsAnsweredOnlyWhenTheOriginalIsDurable
checkpoint_renamed_before_sync     crash_point_test.EveryCrashPointInBothFlavoursRecoversEveryAcknowledgedEvent
                                   crash_point_test.EveryIoErrorPointLosesNothingAcknowledged
segment_created_without_dir_sync   log_fault_test.PowerLossKeepsEverySyncedRecordAndTornTailsAreCut
                                   partition_state_test.PowerLossLosesNothingThatWasReportedDurable
fsync_retried_after_eio            log_fault_test.EioOnFdatasyncFailsTheWriterForGood
                                   partition_state_test.EioOnFdatasyncFailsThePartitionUntilReopened
offset_committed_before_durable    crash_point_test.EveryCrashPointInBothFlavoursRecoversEveryAcknowledgedEvent
                                   crash_point_test.EveryIoErrorPointLosesNothingAcknowledged
segment_deleted_before_checkpoint  partition_state_test.PointInTimeCutBelowACheckpointDropsThatCheckpoint
                                   crash_point_test.EveryCrashPointInBothFlavoursRecoversEveryAcknowledgedEvent
torn_tail_cut_without_sync         log_fault_test.TornTailCutIsDurableBeforeANewSegmentFollowsIt
'
# The test binaries (CMake targets) that hold the tests above: log_fault_test is a suite of
# log_test.
quick_targets=(log_test partition_state_test crash_point_test partition_actor_test)

quick=0
bugs=()
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg (see --help)" ;;
    *) [[ " ${all_bugs[*]} " == *" $arg "* ]] || die "unknown planted bug '$arg'; known: ${all_bugs[*]}"
       bugs+=("$arg") ;;
  esac
done
[[ ${#bugs[@]} -gt 0 ]] || bugs=("${all_bugs[@]}")

if [[ $quick -eq 1 ]]; then
  build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build/planted}
else
  build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build-planted}
fi
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# Quick mode: the tests of each bug, from the table.
declare -A tests_of=()
if [[ $quick -eq 1 ]]; then
  current=""
  while IFS= read -r line; do
    [[ -n "${line//[[:space:]]/}" ]] || continue
    read -r -a words <<<"$line"
    if [[ $line == [[:space:]]* ]]; then
      [[ ${#words[@]} -eq 1 && -n $current ]] || die "quick_map: bad continuation line: $line"
      tests_of[$current]+=" ${words[0]}"
    else
      [[ ${#words[@]} -eq 2 ]] || die "quick_map: bad line: $line"
      current=${words[0]}
      tests_of[$current]=${words[1]}
    fi
  done < <(printf '%s\n' "$quick_map")
  for bug in "${all_bugs[@]}"; do
    [[ -n "${tests_of[$bug]:-}" ]] || die "quick_map has no tests for planted bug $bug"
  done
fi

# An anchored ctest -R regex matching exactly the given test names.
exact_regex() {
  local names
  # shellcheck disable=SC2016  # a literal sed expression
  names=$(printf '%s\n' "$@" | sed 's/[.[\*^$()+?{|]/\\&/g' | paste -sd'|' -)
  printf '^(%s)$' "$names"
}

mkdir -p "$(dirname "$build_dir")"
log "building with planted bugs in $build_dir"
generator=()
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTATEFOLD_PLANTED_BUGS=ON -DSTATEFOLD_BUILD_BENCH=OFF >"$build_dir.configure.log" 2>&1 ||
  { tail -n 30 "$build_dir.configure.log"; die "configure failed"; }
targets=()
if [[ $quick -eq 1 ]]; then
  targets=(--target "${quick_targets[@]}")
  log "building only: ${quick_targets[*]}"
fi
cmake --build "$build_dir" -j"$jobs" "${targets[@]}" >"$build_dir.build.log" 2>&1 ||
  { grep -E 'error' "$build_dir.build.log" | head -n 20; die "build failed, see $build_dir.build.log"; }
build_seconds=$SECONDS
log "configured and built in ${build_seconds}s"

tmp_root=/dev/shm
[[ -d $tmp_root && -w $tmp_root ]] || tmp_root=${TMPDIR:-/tmp}

# harness <bug> [ctest args...]: runs the tests with STATEFOLD_PLANT=<bug> (empty: none);
# prints the failing tests, one a line; returns ctest's status.
harness() {
  local bug=$1 tmp out rc=0
  shift
  tmp=$(mktemp -d "$tmp_root/statefold-planted-XXXXXX")
  out=$(cd "$build_dir" && STATEFOLD_PLANT="$bug" TMPDIR="$tmp" \
        ctest -j"$jobs" --timeout 300 --no-tests=error "$@" 2>&1) || rc=$?
  rm -rf "$tmp"
  # Only the list under "The following tests FAILED:" (ctest lists skipped tests the same
  # way elsewhere, and a skipped test has not caught anything).
  sed -n '/^The following tests FAILED:/,$p' <<<"$out" | grep -E '^\s+[0-9]+ - ' |
    grep -vE '\((Skipped|Disabled)\)$' | sed -E 's/^\s+[0-9]+ - //; s/ \(.*//' | sort -u || true
  return $rc
}

caught=0
if [[ $quick -eq 0 ]]; then
  log "baseline (no bug planted): the harness must pass"
  if ! failing=$(harness "" -L 'unit|crash|e2e'); then
    die "the harness fails without any planted bug: $(head -n 6 <<<"$failing" | paste -sd, -)"
  fi
  printf '\n%-36s %-8s %s\n' "planted bug" "result" "caught by"
  for bug in "${bugs[@]}"; do
    if failing=$(harness "$bug" -L 'unit|crash|e2e'); then
      printf '%-36s %-8s %s\n' "$bug" "MISSED" "-"
    else
      printf '%-36s %-8s %s\n' "$bug" "caught" "$(head -n 6 <<<"$failing" | paste -sd, -)"
      caught=$((caught + 1))
    fi
  done
else
  # The union of the chosen tests must exist in the build (a renamed test, or a binary missing
  # from quick_targets, would otherwise just not run).
  mapfile -t union < <(for bug in "${bugs[@]}"; do tr ' ' '\n' <<<"${tests_of[$bug]}"; done | sort -u)
  listed=$(cd "$build_dir" && ctest -N | sed -nE 's/^\s*Test\s+#[0-9]+: //p')
  for t in "${union[@]}"; do
    grep -qxF "$t" <<<"$listed" ||
      die "quick_map names test $t, which $build_dir does not have (renamed or removed? its binary not in quick_targets?); see the header of $0"
  done

  log "baseline (no bug planted): the ${#union[@]} chosen tests must pass"
  if ! failing=$(harness "" -R "$(exact_regex "${union[@]}")"); then
    die "the chosen tests fail without any planted bug: $(paste -sd, - <<<"$failing")"
  fi
  printf '\n%-36s %-8s %s\n' "planted bug" "result" "caught by (every chosen test must fail)"
  for bug in "${bugs[@]}"; do
    read -r -a chosen <<<"${tests_of[$bug]}"
    failing=$(harness "$bug" -R "$(exact_regex "${chosen[@]}")") || true
    missed=()
    for t in "${chosen[@]}"; do grep -qxF "$t" <<<"$failing" || missed+=("$t"); done
    if [[ ${#missed[@]} -eq 0 ]]; then
      printf '%-36s %-8s %s\n' "$bug" "caught" "$(paste -sd, - <<<"$failing")"
      caught=$((caught + 1))
    elif [[ ${#missed[@]} -lt ${#chosen[@]} ]]; then
      printf '%-36s %-8s %s\n' "$bug" "PARTIAL" "$(paste -sd, - <<<"$failing"); NOT caught by: $(IFS=,; echo "${missed[*]}")"
    else
      printf '%-36s %-8s %s\n' "$bug" "MISSED" "NOT caught by: $(IFS=,; echo "${missed[*]}")"
    fi
  done
fi
echo
echo "planted bugs caught: $caught/${#bugs[@]} (build ${build_seconds}s, runs $((SECONDS - build_seconds))s)"
if [[ $caught -ne ${#bugs[@]} ]]; then
  [[ $quick -eq 0 ]] ||
    warn "a chosen test no longer catches its bug: fix the test, or re-run the full mode ($0) and update quick_map in $0"
  exit 1
fi
