#!/usr/bin/env bash
# Build every libFuzzer target with clang + ASan/UBSan into build-fuzz (or
# $STM_BUILD_DIR) and run each for N seconds (default 15) from its seed
# corpus; fails when any target crashes, leaks or times out.
#   scripts/fuzz.sh          short run, as CI does (9 targets x 15 s)
#   scripts/fuzz.sh 3600     long run: an hour per target
# Crash inputs land in build-fuzz/test/fuzz/artifacts/; rerun one with
#   build-fuzz/test/.../fuzz_<name> <crash file>
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-15}
BUILD=${STM_BUILD_DIR:-build-fuzz}
CC=${CC:-clang}
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug \
  -DSTM_WERROR=ON -DSTM_SANITIZE=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link \
  -DSTM_FUZZ=ON -DSTM_FUZZ_SECONDS="$SECONDS_EACH" >/dev/null
TARGETS=(fuzz_gateway_request fuzz_proto_requests fuzz_backup_segment
  fuzz_backup_manifest fuzz_tar_reader fuzz_claim_decode fuzz_wal_record
  fuzz_toml fuzz_swim_decode)
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD" && ctest -L "^fuzz$" --output-on-failure
