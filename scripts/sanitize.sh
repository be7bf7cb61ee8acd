#!/usr/bin/env bash
# Builds statefold with sanitizers in separate build folders and runs its tests there.
#
#   scripts/sanitize.sh [asan|tsan|all] [ctest args...]     (default: asan)
#
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (leaks detected, UB fatal);
#         runs every test except the consumer and bench labels. scripts/ubsan.supp,
#         when present, is passed as UBSan suppressions (CAF-internal reports only),
#         scripts/lsan.supp as LSan suppressions (sanitizer-runtime allocations only).
#         Reports are written to <build>/logs/asan/report.<pid> (log_path), as for tsan.
#   tsan  ThreadSanitizer, against a CAF built with -fsanitize=thread. Debian's libcaf_core
#         is not instrumented (TSan would not see the synchronisation inside CAF's
#         mailboxes), so the first tsan run fetches the CAF 0.17.6 source (Debian's orig
#         tarball, sha256 checked, cached in <build>/caf-src), builds libcaf_core only
#         (no io/examples/tools/tests/OpenSSL/Python) with -fsanitize=thread -g -O1 and
#         installs it into <build>/caf-tsan (~6 min on 2 cores, once; reused while the
#         stamp file there matches). statefold is then configured against that prefix
#         and its binaries load the instrumented libcaf_core through their RPATH.
#         Runs the tests that have threads: engine_test, partition_actor_test,
#         readme_example_test, booking_e2e (with statefold-booking), log_test (segment
#         preparer) and partition_state_test. scripts/tsan.supp, when present, is passed
#         as suppressions (each entry justified there). Reports are written to
#         <build>/logs/tsan/report.<pid> (TSan log_path), so that those of child
#         processes whose stderr a test discards are counted too.
#         Needs curl or wget and the Debian mirror (or CAF_TSAN_TARBALL, see below).
#   all   asan, then tsan (tsan runs even when asan failed).
#
# Extra arguments are appended to the ctest command line (e.g. -R log_test, -V).
# A suite FAILs when configure, build or a test fails, or when a sanitizer report
# appears anywhere in the ctest log (also from child processes such as statefold-booking)
# or in its report folder (log_path).
#
# Environment:
#   BUILD_DIR        build folder for a single mode (default: <repo>/build-asan or build-tsan)
#   ASAN_BUILD_DIR   build folder of asan in mode all (default: <repo>/build-asan)
#   TSAN_BUILD_DIR   build folder of tsan in mode all (default: <repo>/build-tsan)
#   JOBS             parallel build/test jobs (default: 2)
#   CMAKE_ARGS       extra cmake configure arguments (word-split)
#   CAF_TSAN_TARBALL a local copy of actor-framework_0.17.6.orig.tar.gz to use instead of
#                    downloading it (its sha256 is checked all the same)
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
# Extra configure arguments of the suite being run (set by run_tsan), a function run
# after its build (name; empty: none) that fails the suite when it fails, and a folder the
# sanitizer writes its reports into (log_path; empty: reports go to stderr only).
declare -a suite_cmake_args=()
suite_check=
suite_report_dir=

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
  cmake_args+=("${suite_cmake_args[@]}" "${extra_cmake_args[@]}")
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
  if [[ -n "$suite_check" ]] && ! "$suite_check" "$dir"; then
    summary+=("$(printf '%-5s FAIL  post-build check %s failed  %4ds' "$name" "$suite_check" $((SECONDS - start)))")
    return 1
  fi

  log "$name: test (${env_vars[*]})"
  if [[ -n "$suite_report_dir" ]]; then
    rm -rf "$suite_report_dir"
    mkdir -p "$suite_report_dir"
  fi
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
  # Reports written through log_path: every process's, also those whose stderr a test
  # discards (booking_e2e sends its killed children's stderr to /dev/null).
  if [[ -n "$suite_report_dir" ]]; then
    local -a files=()
    # Files with a report in them: LSan also writes its "Suppressions used" summary there.
    mapfile -t files < <(find "$suite_report_dir" -type f -size +0 -print0 |
                           xargs -0 -r grep -lE "$sanitizer_pattern" | sort)
    if [[ ${#files[@]} -gt 0 ]]; then
      result=FAIL; detail+="; ${#files[@]} report file(s) in $suite_report_dir"
      local f
      for f in "${files[@]:0:3}"; do
        echo "---- $f (first 40 lines) ----" >&2
        head -n 40 "$f" | cut -c1-300 >&2
      done
    fi
  fi
  summary+=("$(printf '%-5s %s  %s  %4ds' "$name" "$result" "$detail" $((SECONDS - start)))")
  [[ $result == PASS ]]
}

run_asan() {
  local flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  # Reports go to logs/asan/report.<pid> (log_path), from every process the tests start:
  # booking_e2e drops its children's stderr.
  local suite_report_dir="$asan_dir/logs/asan"
  local ubsan_options=print_stacktrace=1:halt_on_error=1:log_path=$suite_report_dir/report
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
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$suite_report_dir/report" \
    "UBSAN_OPTIONS=$ubsan_options" "${lsan_env[@]}" \
    -- -LE "consumer|bench" "${ctest_extra[@]}"
}

# CAF 0.17.6 built with ThreadSanitizer, for the tsan suite. The source is Debian's orig
# tarball (the upstream release, unchanged); Debian 12's libcaf-dev is the same version.
caf_version=0.17.6
caf_tarball=actor-framework_${caf_version}.orig.tar.gz
caf_url=http://deb.debian.org/debian/pool/main/a/actor-framework/$caf_tarball
caf_sha256=e2bf5bd243f08bb7d8adde197cfe3e6d71314ed3378fe0692f8932f4c3b3928c
# -std=c++11 as Debian's build (CAF adds it when no -std is given); -O1 keeps stacks usable.
caf_tsan_flags="-std=c++11 -fsanitize=thread -g -O1 -fno-omit-frame-pointer"

# fetch_caf_tarball DEST: downloads (or copies CAF_TSAN_TARBALL) and checks the sha256.
fetch_caf_tarball() {
  local dest=$1
  if [[ -f "$dest" ]] && echo "$caf_sha256  $dest" | sha256sum --check --status; then
    return 0
  fi
  rm -f "$dest" "$dest.part"
  if [[ -n "${CAF_TSAN_TARBALL:-}" ]]; then
    log "tsan: CAF source from $CAF_TSAN_TARBALL"
    cp "$CAF_TSAN_TARBALL" "$dest.part"
  elif command -v curl >/dev/null 2>&1; then
    log "tsan: downloading $caf_url"
    curl -fsSL --retry 3 -o "$dest.part" "$caf_url" || { rm -f "$dest.part"; return 1; }
  elif command -v wget >/dev/null 2>&1; then
    log "tsan: downloading $caf_url"
    wget -q -O "$dest.part" "$caf_url" || { rm -f "$dest.part"; return 1; }
  else
    warn "neither curl nor wget found"; return 1
  fi
  if ! echo "$caf_sha256  $dest.part" | sha256sum --check --status; then
    warn "$caf_tarball: sha256 mismatch (expected $caf_sha256, got $(sha256sum "$dest.part" | cut -d' ' -f1))"
    rm -f "$dest.part"
    return 1
  fi
  mv "$dest.part" "$dest"
}

# build_caf_tsan BUILD_DIR: makes sure BUILD_DIR/caf-tsan holds a TSan-instrumented
# libcaf_core (built once; rebuilt when the stamp, i.e. version, flags or compiler, differs).
build_caf_tsan() {
  local dir=$1
  local src_cache="$dir/caf-src" build="$dir/caf-build" prefix="$dir/caf-tsan"
  local logs="$dir/logs" stamp_file="$dir/caf-tsan/statefold-caf.stamp"
  local stamp
  local cxx=${CXX:-c++}
  stamp="caf $caf_version sha256 $caf_sha256 flags '$caf_tsan_flags' cxx $("$cxx" -dumpfullversion 2>/dev/null || echo '?')"
  # Instrumented for real: it calls into the TSan runtime. (Not `nm | grep -q`: under
  # pipefail, nm's SIGPIPE when grep stops reading would fail the test.)
  local instrumented=0
  if [[ -f "$prefix/lib/libcaf_core.so" ]] &&
     grep -q __tsan_func_entry < <(nm -D "$prefix/lib/libcaf_core.so"); then
    instrumented=1
  fi
  if [[ $instrumented -eq 1 && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" \
        && -f "$prefix/include/caf/all.hpp" ]]; then
    log "tsan: instrumented CAF $caf_version found in $prefix"
    return 0
  fi
  local start=$SECONDS
  mkdir -p "$src_cache" "$logs"
  fetch_caf_tarball "$src_cache/$caf_tarball" || return 1
  rm -rf "$src_cache/actor-framework-$caf_version" "$build" "$prefix"
  tar -xzf "$src_cache/$caf_tarball" -C "$src_cache"
  log "tsan: building CAF $caf_version libcaf_core with -fsanitize=thread (log: $logs/caf-build.log)"
  {
    cmake -S "$src_cache/actor-framework-$caf_version" -B "$build" \
      $(command -v ninja >/dev/null 2>&1 && echo -G Ninja) \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS=$caf_tsan_flags" \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-g -O1" \
      -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
      -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
      "-DCMAKE_INSTALL_PREFIX=$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
      -DCAF_NO_IO=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_TOOLS=yes -DCAF_NO_UNIT_TESTS=yes \
      -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes -DCAF_NO_PYTHON=yes \
      -DCAF_LOG_LEVEL=QUIET \
    && cmake --build "$build" -j "$jobs" \
    && cmake --install "$build"
  } >"$logs/caf-build.log" 2>&1 || { show_log "$logs/caf-build.log"; return 1; }
  [[ -f "$prefix/lib/libcaf_core.so" ]] || { warn "no $prefix/lib/libcaf_core.so after the CAF build"; return 1; }
  printf '%s\n' "$stamp" >"$stamp_file"
  rm -rf "$build"  # objects only (~160 MB); the extracted source stays for the debug info
  log "tsan: CAF built and installed into $prefix in $((SECONDS - start))s"
}

# check_tsan_caf BUILD_DIR: every tsan test binary must load the instrumented libcaf_core.
check_tsan_caf() {
  local dir=$1 prefix="$1/caf-tsan" bin resolved ok=0
  for bin in "$dir/tests/engine_test" "$dir/tests/partition_actor_test" \
             "$dir/tests/readme_example_test" "$dir/apps/booking/statefold-booking"; do
    if [[ ! -x "$bin" ]]; then
      warn "$bin was not built"
      ok=1
      continue
    fi
    resolved=$(ldd "$bin" | awk '$1 ~ /^libcaf_core/ {print $3}')
    if [[ "$(realpath -m "$resolved")" != "$(realpath -m "$prefix/lib")"/* ]]; then
      warn "$bin loads libcaf_core from '${resolved:-nowhere}', not from $prefix/lib"
      ok=1
    fi
  done
  [[ $ok -eq 0 ]] && log "tsan: test binaries load libcaf_core from $prefix/lib"
  return $ok
}

run_tsan() {
  local start=$SECONDS
  if ! build_caf_tsan "$tsan_dir"; then
    summary+=("$(printf '%-5s FAIL  building the instrumented CAF failed (see %s)  %4ds' tsan "$tsan_dir/logs/caf-build.log" $((SECONDS - start)))")
    return 1
  fi
  local prefix="$tsan_dir/caf-tsan"
  # Reports go to logs/tsan/report.<pid> (log_path), from every process the tests start.
  local suite_report_dir="$tsan_dir/logs/tsan"
  local tsan_options=halt_on_error=1:second_deadlock_stack=1:history_size=4:log_path=$suite_report_dir/report
  if [[ -f "$tsan_supp" ]]; then
    tsan_options+=":suppressions=$tsan_supp"
    log "tsan: suppressions from $tsan_supp"
  fi
  # FindCAF.cmake's cache entries point at the prefix (given explicitly, so that a cache
  # made against /usr is overridden); CAF::io is not used by statefold.
  local -a suite_cmake_args=("-DCAF_ROOT=$prefix" "-DCAF_INCLUDE_DIR=$prefix/include"
    "-DCAF_CORE_LIBRARY=$prefix/lib/libcaf_core.so" "-DCAF_IO_LIBRARY=CAF_IO_LIBRARY-NOTFOUND")
  local suite_check=check_tsan_caf
  run_suite tsan "$tsan_dir" "-fsanitize=thread -fno-omit-frame-pointer" \
    "engine_test partition_actor_test readme_example_test booking_e2e_test statefold-booking log_test partition_state_test" \
    "TSAN_OPTIONS=$tsan_options" \
    -- -R "^(engine_test|partition_actor_test|readme_example_test|booking_e2e_test|log_test|log_fault_test|partition_state_test|incremental_checkpoint_test)\." "${ctest_extra[@]}"
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
