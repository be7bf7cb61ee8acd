#!/usr/bin/env bash
# Builds and runs tests/consumer against statefold, as a downstream project would.
#
#   run_consumer_test.sh <statefold-source-dir> <statefold-build-dir> <mode>
#
#   mode find_package:  cmake --install <build-dir> into a temporary prefix, then
#                       configure the consumer with CMAKE_PREFIX_PATH=<prefix>.
#   mode subdirectory:  configure the consumer with add_subdirectory(<source-dir>).
#
# It builds and runs four programs: main.cpp (an engine: open, submit, get, close, reopen),
# stores_main.cpp (statefold::stores: a stateless consumer over a private redis-server),
# http_main.cpp (statefold::http: an engine's /metrics over a socket), and
# the example test of docs/testing.md, taken from the document itself (statefold::testing).
#
# Exits non-zero on any failure. Works in a mktemp -d folder, removed on exit
# (kept when KEEP_CONSUMER_WORKDIR=1, for debugging).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <statefold-source-dir> <statefold-build-dir> <find_package|subdirectory>" >&2
  exit 2
fi
src_dir=$(cd "$1" && pwd)
build_dir=$2
mode=$3
consumer_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "$mode" in
  find_package|subdirectory) ;;
  *) echo "run_consumer_test: unknown mode '$mode'" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/statefold-consumer.XXXXXX")
cleanup() {
  if [[ "${KEEP_CONSUMER_WORKDIR:-0}" == 1 ]]; then
    echo "run_consumer_test: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
jobs=$(nproc 2>/dev/null || echo 2)

# Run a step quietly; show its log only when it fails.
step() {
  local name=$1; shift
  local log="$work/$name.log"
  if ! "$@" >"$log" 2>&1; then
    echo "run_consumer_test [$mode]: step '$name' failed: $*" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
}

# The first C++ block of docs/testing.md: the test kit's example, compiled as the document shows it.
example="$work/wallet_test.cpp"
awk '/^```cpp$/ {inside=1; next} /^```$/ && inside {exit} inside' "$src_dir/docs/testing.md" >"$example"
[[ -s "$example" ]] || { echo "run_consumer_test: no C++ block in docs/testing.md" >&2; exit 1; }

cmake_args=(-S "$consumer_dir" -B "$work/build" "${generator[@]}"
            -DCMAKE_BUILD_TYPE=Release -DSTATEFOLD_CONSUMER_MODE="$mode"
            -DSTATEFOLD_TESTING_EXAMPLE="$example")
if [[ "$mode" == find_package ]]; then
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    echo "run_consumer_test: '$build_dir' is not a configured statefold build dir" >&2
    exit 2
  fi
  prefix="$work/prefix"
  step install cmake --install "$build_dir" --prefix "$prefix"
  if [[ ! -f "$prefix/lib/cmake/statefold/statefoldConfig.cmake" ]] &&
     ! compgen -G "$prefix/lib*/cmake/statefold/statefoldConfig.cmake" >/dev/null; then
    echo "run_consumer_test: install did not produce statefoldConfig.cmake" >&2
    exit 1
  fi
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix")
else
  cmake_args+=(-DSTATEFOLD_SOURCE_DIR="$src_dir")
fi

step configure cmake "${cmake_args[@]}"
step build cmake --build "$work/build" -j "$jobs"
step run "$work/build/statefold_consumer"
step stores "$work/build/statefold_stores_consumer"
step http "$work/build/statefold_http_consumer"
step example "$work/build/wallet_test"
echo "run_consumer_test [$mode]: OK"
