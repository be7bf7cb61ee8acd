#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang 14, ASan + UBSan, CRC checks bypassed
# with STATEFOLD_FUZZING) and runs each for a while.
#
#   scripts/fuzz.sh [--minutes N] [target...]
#
#   --minutes N   run time per target (default 1; fractions allowed, e.g. 0.5)
#   target        fuzz_log_reader, fuzz_checkpoint, fuzz_event (default: all three)
#
# Each target runs single-process on a working copy of its seed corpus
# (build-fuzz/corpus/<target>, seeded from tests/fuzz/corpus/<target>; new units accumulate
# there across runs, the checked-in seeds are never touched), with -rss_limit_mb=2048,
# -malloc_limit_mb=512 (a single allocation above 512 MB is a finding: no unbounded
# allocation), -timeout=30 per input and the target's -max_len. Findings (crash-*, leak-*,
# timeout-*, oom-* files) go to build-fuzz/findings/<target>/, logs to build-fuzz/logs/.
# Prints executions, exec/s, new corpus units and findings per target; exits 1 on any finding.
# Reproduce a finding with: build-fuzz/<target> build-fuzz/findings/<target>/crash-...
#
# Environment:
#   BUILD_DIR         build folder (default: <repo>/build-fuzz)
#   JOBS              parallel build jobs (default: 2)
#   SKIP_PACKAGES=1   don't check/install the apt packages of tests/fuzz/packages.txt
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

all_targets=(fuzz_log_reader fuzz_checkpoint fuzz_event)
# Largest input per target: a log directory image of a few small segments; a checkpoint
# with a few hundred entities; one event (envelope, JSON line or binary codec).
declare -A max_len=([fuzz_log_reader]=65536 [fuzz_checkpoint]=16384 [fuzz_event]=4096)

minutes=1
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) [[ $# -ge 2 ]] || die "--minutes needs a value"; minutes=$2; shift 2 ;;
    --minutes=*) minutes=${1#--minutes=}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [[ -n "${max_len[$1]:-}" ]] || die "unknown target '$1' (known: ${all_targets[*]})"
       targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes wants a number, got '$minutes'"
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60 + 0.5); print (s < 1 ? 1 : s) }')

build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build-fuzz}
jobs=${JOBS:-2}
fuzz_src=$STATEFOLD_ROOT/tests/fuzz

# 1. packages
if [[ "${SKIP_PACKAGES:-0}" != 1 ]]; then
  install_packages "$fuzz_src/packages.txt"
fi

# 2. build
mkdir -p "$build_dir/logs"
log "build: $build_dir"
cmake_args=(-S "$fuzz_src" -B "$build_dir" -DCMAKE_CXX_COMPILER=clang++-14)
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi
if ! cmake "${cmake_args[@]}" >"$build_dir/logs/configure.log" 2>&1; then
  tail -n 40 "$build_dir/logs/configure.log" >&2
  die "configure failed, see $build_dir/logs/configure.log"
fi
if ! cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}" >"$build_dir/logs/build.log" 2>&1; then
  grep -E 'error:|undefined reference' "$build_dir/logs/build.log" | head -n 30 >&2 || true
  tail -n 30 "$build_dir/logs/build.log" >&2
  die "build failed, see $build_dir/logs/build.log"
fi

# 3. run
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
scratch=$(mktemp -d /dev/shm/statefold-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT

declare -a summary=()
findings_total=0
for t in "${targets[@]}"; do
  corpus=$build_dir/corpus/$t
  findings=$build_dir/findings/$t
  logf=$build_dir/logs/$t.log
  mkdir -p "$corpus"
  rm -rf "$findings"
  mkdir -p "$findings"
  # Working copy: add the checked-in seeds (never overwriting the accumulated units).
  if [[ -d "$fuzz_src/corpus/$t" ]]; then
    cp -n "$fuzz_src/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  fi
  units_before=$(find "$corpus" -maxdepth 1 -type f | wc -l)
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=30
        -max_len="${max_len[$t]}" -print_final_stats=1 -artifact_prefix="$findings/")
  [[ -f "$fuzz_src/dict/$t.dict" ]] && args+=(-dict="$fuzz_src/dict/$t.dict")

  log "$t: ${seconds}s, max_len ${max_len[$t]}, corpus $corpus ($units_before units)"
  start=$SECONDS
  rc=0
  env ASAN_OPTIONS=detect_leaks=1:symbolize=1:detect_stack_use_after_return=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:symbolize=1 \
      ${symbolizer:+ASAN_SYMBOLIZER_PATH=$symbolizer} \
      STATEFOLD_FUZZ_TMP="$scratch" \
      "$build_dir/$t" "${args[@]}" "$corpus" >"$logf" 2>&1 || rc=$?
  elapsed=$((SECONDS - start))

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -n 1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logf" | tail -n 1)
  if [[ -z "$execs" ]]; then  # killed before the final stats: take the last status line
    execs=$(grep -oE '^#[0-9]+' "$logf" | tail -n 1 | tr -d '#' || true)
    execs=${execs:-0}
    eps=$(( elapsed > 0 ? execs / elapsed : execs ))
  fi
  units_after=$(find "$corpus" -maxdepth 1 -type f | wc -l)
  mapfile -t found < <(find "$findings" -maxdepth 1 -type f \
                         \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error: |FUZZ FINDING' "$logf" || true)
  n=${#found[@]}
  # An interrupt (SIGINT: libFuzzer exits 72 after "run interrupted") ends a run early; it is
  # not a finding. A failed run without an artifact otherwise is (e.g. a report outside an input).
  if [[ $rc -eq 72 && $reports -eq 0 ]] && grep -q 'libFuzzer: run interrupted' "$logf"; then
    warn "$t: interrupted after ${elapsed}s"
    rc=0
  fi
  if [[ $n -eq 0 && ( $rc -ne 0 || $reports -gt 0 ) ]]; then n=1; found=("(no artifact: exit $rc, see $logf)"); fi
  findings_total=$((findings_total + n))
  summary+=("$(printf '%-16s execs %10s  exec/s %6s  new units %5d  findings %d  %4ds' \
                "$t" "$execs" "${eps:-?}" $((units_after - units_before)) "$n" "$elapsed")")
  for f in "${found[@]}"; do
    summary+=("    finding: $f")
    line=$(grep -m1 -E 'FUZZ FINDING|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error: ' "$logf" || true)
    [[ -n "$line" ]] && summary+=("      ${line:0:200}")
  done
  if [[ $n -gt 0 ]]; then
    warn "$t: $n finding(s); log: $logf"
    grep -m1 -A25 -E 'FUZZ FINDING|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error: ' "$logf" >&2 || true
  fi
done

echo
echo "======================== statefold fuzz summary ========================"
for line in "${summary[@]}"; do echo "  $line"; done
if [[ $findings_total -eq 0 ]]; then
  echo "  RESULT: PASS (no findings)"
else
  echo "  RESULT: FAIL ($findings_total finding(s); reproduce: $build_dir/<target> <file>)"
fi
echo "========================================================================"
[[ $findings_total -eq 0 ]]
