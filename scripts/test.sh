#!/usr/bin/env bash
# Installs what statefold needs, configures, builds and runs its tests.
#
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -L consumer, -R partitioner
#
# Environment:
#   BUILD_DIR         build folder (default: <repo>/build)
#   BUILD_TYPE        CMAKE_BUILD_TYPE (default: RelWithDebInfo)
#   JOBS              parallel build/test jobs (default: nproc)
#   CMAKE_ARGS        extra cmake configure arguments (word-split)
#   SKIP_PACKAGES=1   don't check/install the apt packages of scripts/packages.txt
#   SKIP_PLANTED=1    skip the planted-bug stage (scripts/planted_bugs.sh --quick); it is
#                     also skipped when ctest arguments are given
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build}
build_type=${BUILD_TYPE:-RelWithDebInfo}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
read -r -a extra_cmake_args <<<"${CMAKE_ARGS:-}"

declare -a summary=()
current_step=""
step_start=0
begin() { current_step=$1; step_start=$SECONDS; log "$1"; }
end()   { summary+=("$(printf '%-10s ok    %4ds' "$current_step" $((SECONDS - step_start)))"); current_step=""; }
print_summary() {
  local rc=$1
  echo
  echo "======================== statefold test summary ========================"
  local line
  for line in "${summary[@]}"; do echo "  $line"; done
  if [[ -n "$current_step" ]]; then
    printf '  %-10s FAILED %4ds\n' "$current_step" $((SECONDS - step_start))
  fi
  if [[ $rc -eq 0 ]]; then
    echo "  RESULT: PASS"
  else
    echo "  RESULT: FAIL (exit $rc)"
  fi
  echo "========================================================================"
}
trap 'print_summary $?' EXIT

# Show the tail of a step's log (and its error lines) when the step failed.
show_log() {
  local file=$1
  echo "---- errors in $file ----" >&2
  grep -E 'error:|Error|FAILED:|undefined reference' "$file" | head -n 30 | cut -c1-400 >&2 || true
  echo "---- last 60 lines of $file ----" >&2
  tail -n 60 "$file" | cut -c1-400 >&2
}

# 1. packages
if [[ "${SKIP_PACKAGES:-0}" != 1 ]]; then
  begin packages
  install_packages "$STATEFOLD_SCRIPTS_DIR/packages.txt"
  end
fi

mkdir -p "$build_dir"
logs="$build_dir/logs"
mkdir -p "$logs"

# 2. configure (Ninja when available; an existing build folder keeps its generator)
begin configure
cmake_args=(-S "$STATEFOLD_ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type")
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi
cmake_args+=("${extra_cmake_args[@]}")
if ! cmake "${cmake_args[@]}" >"$logs/configure.log" 2>&1; then
  show_log "$logs/configure.log"
  exit 1
fi
grep -E '^CMake Warning' "$logs/configure.log" >&2 || true
end

# 3. build
begin build
if ! cmake --build "$build_dir" -j "$jobs" >"$logs/build.log" 2>&1; then
  show_log "$logs/build.log"
  exit 1
fi
warnings=$(grep -c 'warning:' "$logs/build.log" || true)
[[ "$warnings" -eq 0 ]] || warn "build: $warnings compiler warning(s), see $logs/build.log"
end

# 4. test
begin test
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" "$@"
end
# The reliability figures the crash, log and checkpoint tests print (docs/reliability.md).
figures=$(grep -hE '^(crash points|shared-lane crash points|I/O-error points|kill -9 cycles|power-loss cycles|damaged files): ' \
            "$build_dir/Testing/Temporary/LastTest.log" 2>/dev/null || true)
if [[ -n "$figures" ]]; then
  echo
  echo "---- reliability figures (docs/reliability.md) ----"
  printf '%s\n' "$figures"
fi

# 5. planted bugs: the tests must catch each bug, a mutant (scripts/planted/*.patch) applied to
# a scratch copy of the tree in $build_dir/planted and built there, one at a time (just the test
# binaries needed; a few fast tests per bug; the table is in scripts/planted_bugs.sh, whose
# full mode is the long version). Not with a ctest
# selection (scripts/test.sh -R log_test): that asks for those tests only.
if [[ "${SKIP_PLANTED:-0}" != 1 && $# -eq 0 ]]; then
  begin planted
  BUILD_DIR="$build_dir/planted" JOBS="$jobs" bash "$STATEFOLD_SCRIPTS_DIR/planted_bugs.sh" --quick
  end
fi
