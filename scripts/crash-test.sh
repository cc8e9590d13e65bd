#!/usr/bin/env bash
# The full process-level crash test: concurrent durable load (single
# asserts and batches of 10 from 8 clients) + SIGKILL + restart, ROUNDS
# times (default 50), checking after every restart that each acknowledged
# claim reads back byte for byte and nothing unacknowledged is half there.
# CI runs the same test with 10 rounds (ctest -R integration_crash).
#   scripts/crash-test.sh [ROUNDS]        uses ./build (or $STM_BUILD_DIR)
#   STM_TEST_SEED=N scripts/crash-test.sh replays the kill points of a run
set -euo pipefail
cd "$(dirname "$0")/.."
export STM_BUILD_DIR=$(cd "${STM_BUILD_DIR:-build}" && pwd)
export STM_CRASH_ROUNDS=${1:-50}
[ -x "$STM_BUILD_DIR/service/stemedb-server" ] || scripts/build.sh
exec timeout 1800 /usr/bin/python3 test/integration/test_crash.py
