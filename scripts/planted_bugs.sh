#!/usr/bin/env bash
# Test the tests: plant known bugs, one at a time, and show that the reliability harness catches
# each; print the score caught/planted.
#
#   scripts/planted_bugs.sh                    full: every bug, the whole harness (~15 min)
#   scripts/planted_bugs.sh dedup_off          full, just the bugs named
#   scripts/planted_bugs.sh --quick [bug...]   quick: the CI stage of scripts/test.sh
#
# The bugs are mutants: scripts/planted/<bug>.patch, each a small patch to the source. They are
# applied to a scratch copy of the tree (<build dir>/src, refreshed with rsync from the checkout
# at every run), built there and tested there, one at a time, then reverted. Nothing of them
# is in the checkout's sources, the production libraries or the installed headers: production
# code carries no test-only branch and no define can switch one on. A patch that no longer
# applies (the code it mutates changed) fails the run, naming it: regenerate it against the
# new code (the patch header says what the bug is).
#
# Full mode: the harness is every unit, crash and end-to-end test, built in full; it prints the
# (first few) tests that caught each bug.
#
# Quick mode: each bug is run against its own few fast tests only, the table `quick_map` below,
# and only the test binaries that hold them are built (`quick_targets`). The baseline (no bug)
# runs the union of the chosen tests and must pass; then each bug runs its tests, and EVERY
# test chosen for a bug must fail under it: a chosen test that stops catching its bug fails the
# stage (listed as PARTIAL or MISSED), so the table cannot rot silently. A chosen test that no
# longer exists fails the stage too. ccache, when installed, makes each mutant's rebuild (and
# the rebuild after its revert) cheap.
#
# How the quick table was chosen: the full mode was run (all unit/crash/e2e tests, per bug)
# and, for each bug, the catching tests were listed. From those, up to two per bug were taken,
# preferring deterministic tests (no timing, no random kill points), short ones, and tests from
# few, cheap binaries (log_test, partition_state_test, crash_point_test, partition_actor_test).
# ack_before_sync lives in the actors layer, so one actor-level binary (partition_actor_test,
# CAF's deterministic test coordinator) is unavoidable. When you add, rename or remove a test
# that the table names, or a bug, re-run the full mode and update the table (the stage tells
# you when needed).
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
          torn_tail_cut_without_sync record_of_wrong_partition dedup_tag_without_key_group
          checkpoint_position_taken_late unseal_before_checkpoint checkpoint_of_other_lane_trusted)

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
record_of_wrong_partition          partition_state_test.APartitionOtherThanZeroRecoversFromRecordsThatNameIt
dedup_tag_without_key_group        partition_state_test.DedupEntriesCarryTheKeyGroupOfTheirKeyThroughCheckpointAndReplay
checkpoint_position_taken_late     journal_lane_test.RecordsMadeDurableWhileACheckpointIsBuiltAreReplayedAfterIt
unseal_before_checkpoint           crash_point_test.EveryCrashPointOfASharedLaneWithReleaseAndReactivationLosesNothing
checkpoint_of_other_lane_trusted   journal_lane_test.ACheckpointNamingAnotherLaneIsSkippedNotTrusted
'
# The test binaries (CMake targets) that hold the tests above: log_fault_test is a suite of
# log_test.
quick_targets=(log_test partition_state_test crash_point_test partition_actor_test journal_lane_test)

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

patches=$STATEFOLD_SCRIPTS_DIR/planted
for bug in "${bugs[@]}"; do
  [[ -f "$patches/$bug.patch" ]] || die "no patch for planted bug $bug: $patches/$bug.patch"
done
command -v rsync >/dev/null 2>&1 || die "rsync is needed (Debian: rsync; scripts/packages.txt lists it)"
command -v patch >/dev/null 2>&1 || die "patch is needed (Debian: patch; scripts/packages.txt lists it)"

mkdir -p "$build_dir"
scratch=$build_dir/src
binary_dir=$build_dir/build
applied_marker=$build_dir/applied.patch
# A run interrupted with a mutant applied left it in the scratch copy: take it out first.
if [[ -f $applied_marker ]]; then
  patch -s -R -p1 -d "$scratch" <"$applied_marker" || die "cannot revert the leftover mutant in $scratch; remove $build_dir"
  rm -f "$applied_marker"
fi
log "copying the tree to $scratch"
# Content-compared, and without the original times: a file that changed gets a new time, so
# the scratch build recompiles it; an unchanged one keeps its objects.
rsync -rlp --checksum --delete --exclude=/build --exclude='/build-*' --exclude=/.git \
  "$STATEFOLD_ROOT/" "$scratch/"

log "building the baseline in $binary_dir"
generator=()
if [[ ! -f "$binary_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# Unoptimised and without debug info: this build exists to be compiled again and again (each
# mutant and its revert), and compiles about twice as fast so; the chosen tests stay fast.
cmake -S "$scratch" -B "$binary_dir" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS=-O0 -DSTATEFOLD_BUILD_BENCH=OFF >"$build_dir/configure.log" 2>&1 ||
  { tail -n 30 "$build_dir/configure.log"; die "configure failed"; }
targets=()
if [[ $quick -eq 1 ]]; then
  targets=(--target "${quick_targets[@]}")
  log "building only: ${quick_targets[*]}"
fi
build() {  # build <label> [target...]: the given targets, else all of `targets`
  local label=$1
  shift
  local -a these=("${targets[@]}")
  [[ $# -eq 0 ]] || these=(--target "$@")
  cmake --build "$binary_dir" -j"$jobs" "${these[@]}" >"$build_dir/build.log" 2>&1 ||
    { grep -E 'error' "$build_dir/build.log" | head -n 20; die "build $label failed, see $build_dir/build.log"; }
}
# The test binary (CMake target) of a chosen test: its suite's name, except the log_test
# binary's second suite.
binary_of() {
  local suite=${1%%.*}
  case $suite in
    log_fault_test) echo log_test ;;
    *) echo "$suite" ;;
  esac
}
build baseline
build_seconds=$SECONDS
log "configured and built in ${build_seconds}s"

tmp_root=/dev/shm
[[ -d $tmp_root && -w $tmp_root ]] || tmp_root=${TMPDIR:-/tmp}

# plant <bug> / unplant <bug>: apply or revert the mutant in the scratch copy, and rebuild.
# In quick mode only the binaries of the bug's own tests are rebuilt.
plant() {
  patch -s -p1 --dry-run -d "$scratch" <"$patches/$1.patch" >/dev/null 2>&1 ||
    die "$patches/$1.patch no longer applies to the code: regenerate it (see its header)"
  patch -s -p1 -d "$scratch" <"$patches/$1.patch"
  cp "$patches/$1.patch" "$applied_marker"
  if [[ $quick -eq 1 ]]; then
    local -a mine
    read -r -a mine <<<"${tests_of[$1]}"
    # shellcheck disable=SC2046  # one word per binary
    build "with $1" $(for t in "${mine[@]}"; do binary_of "$t"; done | sort -u)
  else
    build "with $1"
  fi
}
unplant() {
  patch -s -R -p1 -d "$scratch" <"$patches/$1.patch"
  rm -f "$applied_marker"
}

# harness [ctest args...]: runs the tests of the scratch build; prints the failing tests, one
# a line; returns ctest's status.
harness() {
  local tmp out rc=0
  tmp=$(mktemp -d "$tmp_root/statefold-planted-XXXXXX")
  out=$(cd "$binary_dir" && TMPDIR="$tmp" ctest -j"$jobs" --timeout 300 --no-tests=error "$@" 2>&1) || rc=$?
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
  if ! failing=$(harness -L 'unit|crash|e2e'); then
    die "the harness fails without any planted bug: $(head -n 6 <<<"$failing" | paste -sd, -)"
  fi
  printf '\n%-36s %-8s %s\n' "planted bug" "result" "caught by"
  for bug in "${bugs[@]}"; do
    plant "$bug"
    if failing=$(harness -L 'unit|crash|e2e'); then
      printf '%-36s %-8s %s\n' "$bug" "MISSED" "-"
    else
      printf '%-36s %-8s %s\n' "$bug" "caught" "$(head -n 6 <<<"$failing" | paste -sd, -)"
      caught=$((caught + 1))
    fi
    unplant "$bug"
  done
else
  # The union of the chosen tests must exist in the build (a renamed test, or a binary missing
  # from quick_targets, would otherwise just not run).
  mapfile -t union < <(for bug in "${bugs[@]}"; do tr ' ' '\n' <<<"${tests_of[$bug]}"; done | sort -u)
  listed=$(cd "$binary_dir" && ctest -N | sed -nE 's/^\s*Test\s+#[0-9]+: //p')
  for t in "${union[@]}"; do
    grep -qxF "$t" <<<"$listed" ||
      die "quick_map names test $t, which $binary_dir does not have (renamed or removed? its binary not in quick_targets?); see the header of $0"
  done

  log "baseline (no bug planted): the ${#union[@]} chosen tests must pass"
  if ! failing=$(harness -R "$(exact_regex "${union[@]}")"); then
    die "the chosen tests fail without any planted bug: $(paste -sd, - <<<"$failing")"
  fi
  printf '\n%-36s %-8s %s\n' "planted bug" "result" "caught by (every chosen test must fail)"
  for bug in "${bugs[@]}"; do
    read -r -a chosen <<<"${tests_of[$bug]}"
    plant "$bug"
    failing=$(harness -R "$(exact_regex "${chosen[@]}")") || true
    unplant "$bug"
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
echo "planted bugs caught: $caught/${#bugs[@]} (baseline build ${build_seconds}s, mutants built and run in $((SECONDS - build_seconds))s)"
if [[ $caught -ne ${#bugs[@]} ]]; then
  [[ $quick -eq 0 ]] ||
    warn "a chosen test no longer catches its bug: fix the test, or re-run the full mode ($0) and update quick_map in $0"
  exit 1
fi
