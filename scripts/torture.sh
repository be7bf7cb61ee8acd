#!/usr/bin/env bash
# The long reliability run: random kill -9 cycles and simulated power-loss cycles (two workers
# each, one per core, on their own directories), with the RELIABILITY.md oracle after every
# cycle; then the crash-point enumeration and the I/O-error sweep once. Prints a progress line
# every 30 s and the figures that docs/reliability.md reports.
#
#   scripts/torture.sh --minutes N                 (default 10 minutes per mode)
#   scripts/torture.sh --kill-minutes K --powerloss-minutes P
#
# Environment: BUILD_DIR (default <repo>/build), SKIP_PACKAGES=1, DATA (scratch, default a
# temporary directory on the disk under test).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

kill_minutes=10
power_minutes=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) kill_minutes=$2; power_minutes=$2; shift 2 ;;
    --kill-minutes) kill_minutes=$2; shift 2 ;;
    --powerloss-minutes) power_minutes=$2; shift 2 ;;
    *) die "usage: scripts/torture.sh [--minutes N | --kill-minutes K --powerloss-minutes P]" ;;
  esac
done
build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build}
[[ "${SKIP_PACKAGES:-0}" == 1 ]] || install_packages "$STATEFOLD_SCRIPTS_DIR/packages.txt"

generator=()
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target statefold-torture crash_point_test >/dev/null

data=${DATA:-$(mktemp -d "$STATEFOLD_ROOT/torture-XXXXXX")}
trap 'rm -rf "$data"' EXIT
torture="$build_dir/tests/crash/statefold-torture"

log "kill -9 cycles for $kill_minutes min (2 workers)"
"$torture" kill --dir "$data/kill" --seconds $((kill_minutes * 60)) --workers 2 --seed "$RANDOM"
log "power-loss cycles for $power_minutes min (2 workers)"
"$torture" powerloss --dir "$data/power" --seconds $((power_minutes * 60)) --workers 2 --seed "$RANDOM"
log "crash-point enumeration and I/O-error sweep"
"$build_dir/tests/crash/crash_point_test" | grep -E 'crash points|I/O-error points|PASSED|FAILED'
