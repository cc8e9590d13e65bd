#!/usr/bin/env bash
# Run every test: install dependencies if missing, build with -Werror, run
# the CUnit suites and the integration tests (real server, gateway, Python
# grpcio, Node grpc-js, curl, crash) under CTest.
#   scripts/test.sh             normal build in ./build
#   scripts/test.sh --sanitize  ASan + UBSan (+ LeakSanitizer) in ./build-asan
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ "${1:-}" = "--sanitize" ]; then
  export STM_BUILD_DIR=build-asan STM_BUILD_TYPE=Debug
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/test/lsan.supp:print_suppressions=0
  scripts/build.sh -DSTM_SANITIZE=ON
else
  export STM_BUILD_DIR=build
  scripts/build.sh
fi
cd "$STM_BUILD_DIR"
# A test that fails is run once more on its own, after the others: the
# first failure's output stays above, and the rerun is announced, so a
# flaky test is visible without one timing fluke under load failing CI.
if ! ctest --output-on-failure --timeout 900 -j2; then
  echo "=== FLAKY? rerunning the failed tests once, alone ===" >&2
  ctest --rerun-failed --output-on-failure --timeout 900
fi
