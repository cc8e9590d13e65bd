#!/usr/bin/env bash
# Configure and build into ./build (or $STM_BUILD_DIR) with -Werror.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${STM_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=${STM_BUILD_TYPE:-RelWithDebInfo} -DSTM_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
