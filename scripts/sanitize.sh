#!/usr/bin/env bash
# Builds statefold with sanitizers in separate build folders and runs its tests there.
#
#   scripts/sanitize.sh [asan|tsan|all] [ctest args...]     (default: asan)
#
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (leaks detected, UB fatal);
#         runs every test except the consumer and bench labels. scripts/ubsan.supp,
#         when present, is passed as UBSan suppressions (CAF-internal reports only),
#         scripts/lsan.supp as LSan suppressions (sanitizer-runtime allocations only).
#   tsan  ThreadSanitizer. NOT TRUSTWORTHY with Debian's CAF: libcaf_core is not built with
#         -fsanitize=thread, so TSan cannot see the synchronisation inside CAF's mailboxes
#         and reports every hand-off through a message as a race (hundreds of reports in
#         engine_test). A real verdict needs CAF 0.17.6 rebuilt with -fsanitize=thread.
#         Builds and runs only the actor layer and booking tests
#         (engine_test, partition_actor_test, booking_e2e). scripts/tsan.supp, when
#         present, is passed as suppressions: it may only hold entries for frames
#         entirely inside the (uninstrumented) Debian CAF library.
#   all   asan, then tsan (tsan runs even when asan failed).
#
# Extra arguments are appended to the ctest command line (e.g. -R log_test, -V).
# A suite FAILs when configure, build or a test fails, or when a sanitizer report
# appears anywhere in the ctest log (also from child processes such as statefold-booking).
#
# Environment:
#   BUILD_DIR        build folder for a single mode (default: <repo>/build-asan or build-tsan)
#   ASAN_BUILD_DIR   build folder of asan in mode all (default: <repo>/build-asan)
#   TSAN_BUILD_DIR   build folder of tsan in mode all (default: <repo>/build-tsan)
#   JOBS             parallel build/test jobs (default: 2)
#   CMAKE_ARGS       extra cmake configure arguments (word-split)
# The packages are not installed here: run scripts/test.sh once first if they are missing.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

mode=asan
if [[ $# -gt 0 ]]; then
  case "$1" in
    asan|tsan|all) mode=$1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) ;;  # no mode given: everything is ctest arguments
    *) usage >&2; die "unknown mode '$1' (expected asan, tsan or all)" ;;
  esac
fi
ctest_extra=("$@")

jobs=${JOBS:-2}
read -r -a extra_cmake_args <<<"${CMAKE_ARGS:-}"
tsan_supp="$STATEFOLD_SCRIPTS_DIR/tsan.supp"
ubsan_supp="$STATEFOLD_SCRIPTS_DIR/ubsan.supp"
lsan_supp="$STATEFOLD_SCRIPTS_DIR/lsan.supp"

if [[ "$mode" == all && -n "${BUILD_DIR:-}" ]]; then
  die "BUILD_DIR applies to a single mode; with 'all' use ASAN_BUILD_DIR / TSAN_BUILD_DIR"
fi
asan_dir=${BUILD_DIR:-${ASAN_BUILD_DIR:-$STATEFOLD_ROOT/build-asan}}
tsan_dir=${BUILD_DIR:-${TSAN_BUILD_DIR:-$STATEFOLD_ROOT/build-tsan}}

# Lines that begin a sanitizer report (ASan, LSan, UBSan, TSan).
sanitizer_pattern='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |WARNING: ThreadSanitizer|ThreadSanitizer: (reported|FATAL)|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer)'

declare -a summary=()
overall=0

show_log() {
  local file=$1
  echo "---- errors in $file ----" >&2
  grep -E 'error:|Error|FAILED:|undefined reference' "$file" | head -n 30 | cut -c1-400 >&2 || true
  echo "---- last 40 lines of $file ----" >&2
  tail -n 40 "$file" | cut -c1-400 >&2
}

# run_suite NAME BUILD_DIR SANITIZE_FLAGS "BUILD TARGETS (empty: all)" ENV... -- CTEST ARGS...
run_suite() {
  local name=$1 dir=$2 flags=$3 targets=$4
  shift 4
  local -a env_vars=() ctest_args=()
  while [[ $# -gt 0 && "$1" != -- ]]; do env_vars+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  ctest_args=("$@")

  local start=$SECONDS logs="$dir/logs"
  mkdir -p "$logs"
  log "$name: configure ($dir)"
  local -a cmake_args=(-S "$STATEFOLD_ROOT" -B "$dir"
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
    "-DCMAKE_CXX_FLAGS=$flags"
    "-DCMAKE_EXE_LINKER_FLAGS=$flags"
    "-DCMAKE_SHARED_LINKER_FLAGS=$flags"
    -DSTATEFOLD_BUILD_BENCH=OFF)
  if [[ ! -f "$dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
    cmake_args+=(-G Ninja)
  fi
  cmake_args+=("${extra_cmake_args[@]}")
  if ! cmake "${cmake_args[@]}" >"$logs/configure.log" 2>&1; then
    show_log "$logs/configure.log"
    summary+=("$(printf '%-5s FAIL  configure failed, see %s  %4ds' "$name" "$logs/configure.log" $((SECONDS - start)))")
    return 1
  fi

  log "$name: build${targets:+ ($targets)}"
  local -a build_args=(--build "$dir" -j "$jobs")
  # shellcheck disable=SC2206  # targets are plain target names
  [[ -n "$targets" ]] && build_args+=(--target $targets)
  if ! cmake "${build_args[@]}" >"$logs/build.log" 2>&1; then
    show_log "$logs/build.log"
    summary+=("$(printf '%-5s FAIL  build failed, see %s  %4ds' "$name" "$logs/build.log" $((SECONDS - start)))")
    return 1
  fi

  log "$name: test (${env_vars[*]})"
  local rc=0
  env "${env_vars[@]}" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" \
    "${ctest_args[@]}" 2>&1 | tee "$logs/ctest.log" || rc=$?   # pipefail: ctest's status

  # Reports can come from processes whose failure a test does not turn into a test
  # failure (e.g. a child process): look for them in the full ctest log too.
  local reports=0 last="$dir/Testing/Temporary/LastTest.log"
  if [[ -f "$last" ]]; then
    reports=$(grep -cE "$sanitizer_pattern" "$last" || true)
  fi
  local result=PASS detail="tests passed, no sanitizer reports"
  if [[ $rc -ne 0 ]]; then
    result=FAIL; detail="ctest exit $rc"
  fi
  if [[ $reports -gt 0 ]]; then
    result=FAIL; detail+="; $reports sanitizer report line(s) in $last"
    echo "---- sanitizer report lines ($last) ----" >&2
    grep -nE "$sanitizer_pattern" "$last" | head -n 20 | cut -c1-300 >&2 || true
  fi
  summary+=("$(printf '%-5s %s  %s  %4ds' "$name" "$result" "$detail" $((SECONDS - start)))")
  [[ $result == PASS ]]
}

run_asan() {
  local flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  local ubsan_options=print_stacktrace=1:halt_on_error=1
  if [[ -f "$ubsan_supp" ]]; then
    # UBSan applies suppressions to recoverable checks only. The 'null' check is made
    # recoverable so that scripts/ubsan.supp can silence the CAF-internal report;
    # halt_on_error=1 still stops at every null report that is not suppressed.
    flags+=" -fsanitize-recover=null"
    ubsan_options+=":suppressions=$ubsan_supp"
    log "asan: UBSan suppressions from $ubsan_supp (CAF-internal frames only)"
  fi
  local -a lsan_env=()
  if [[ -f "$lsan_supp" ]]; then
    lsan_env=("LSAN_OPTIONS=suppressions=$lsan_supp")
    log "asan: LSan suppressions from $lsan_supp (sanitizer-runtime allocations only)"
  fi
  run_suite asan "$asan_dir" "$flags" "" \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    "UBSAN_OPTIONS=$ubsan_options" "${lsan_env[@]}" \
    -- -LE "consumer|bench" "${ctest_extra[@]}"
}

run_tsan() {
  local tsan_options=halt_on_error=1:second_deadlock_stack=1
  if [[ -f "$tsan_supp" ]]; then
    tsan_options+=":suppressions=$tsan_supp"
    log "tsan: suppressions from $tsan_supp (CAF-internal frames only)"
  fi
  run_suite tsan "$tsan_dir" "-fsanitize=thread -fno-omit-frame-pointer" \
    "engine_test partition_actor_test booking_e2e_test statefold-booking" \
    "TSAN_OPTIONS=$tsan_options" \
    -- -R "engine_test|partition_actor_test|booking_e2e" "${ctest_extra[@]}"
}

print_summary() {
  echo
  echo "===================== statefold sanitizer summary ====================="
  local line
  for line in "${summary[@]}"; do echo "  $line"; done
  if [[ $overall -eq 0 ]]; then echo "  RESULT: PASS"; else echo "  RESULT: FAIL"; fi
  echo "======================================================================="
}

case "$mode" in
  asan) run_asan || overall=1 ;;
  tsan) run_tsan || overall=1 ;;
  all)  run_asan || overall=1
        run_tsan || overall=1 ;;
esac
print_summary
exit "$overall"
