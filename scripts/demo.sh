#!/usr/bin/env bash
# The booking demo: installs what is missing, builds in Release, runs statefold-booking on its
# generated workload into its default data directory (./statefold-data), then shows a booking.
#
#   scripts/demo.sh [extra arguments for `statefold-booking run`, e.g. --events 5000000]
#
# Run it twice: the second run finds every event already applied (duplicates), recovering
# the state from the checkpoints the first run left behind.
#
# Environment: BUILD_DIR (default <repo>/build-release), SKIP_PACKAGES=1, JOBS.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$STATEFOLD_ROOT"

build_dir=${BUILD_DIR:-$STATEFOLD_ROOT/build-release}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [[ "${SKIP_PACKAGES:-0}" != 1 ]]; then
  install_packages "$STATEFOLD_SCRIPTS_DIR/packages.txt"
fi

log "building statefold-booking (Release) in $build_dir"
generator=()
if [[ ! -f "$build_dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
cmake -S "$STATEFOLD_ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${generator[@]}" \
  -DSTATEFOLD_BUILD_TESTS=OFF -DSTATEFOLD_BUILD_BENCH=OFF >"$build_dir.configure.log" 2>&1 ||
  { tail -n 40 "$build_dir.configure.log"; die "configure failed"; }
cmake --build "$build_dir" -j"$jobs" --target statefold-booking statefold-inspect >"$build_dir.build.log" 2>&1 ||
  { grep -E 'error' "$build_dir.build.log" | head -n 20; die "build failed (log: $build_dir.build.log)"; }

booking="$build_dir/apps/booking/statefold-booking"
inspect="$build_dir/apps/inspect/statefold-inspect"

log "statefold-booking run  (data directory: ./statefold-data)"
"$booking" run "$@"

log "statefold-booking get B100007"
"$booking" get B100007

log "statefold-inspect verify ./statefold-data"
"$inspect" verify ./statefold-data

log "done. Try: $booking export | head, or run this script again (every event is a duplicate now)."
