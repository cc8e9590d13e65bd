#!/usr/bin/env bash
# Durable single-assert throughput at 1, 16 and 64 clients over gRPC against
# a fresh stemedb-server on a free loopback port, with the ratio that shows
# group commit (64 clients / 1 client). Bounded: DURATION seconds per step.
#   bench/assert.sh [DURATION]      (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${STM_BUILD_DIR:-build}
DURATION=${1:-10}
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d /tmp/stm-bench-XXXXXX)
"$BUILD/service/stemedb-server" --data-dir "$DATA" --grpc-listen "127.0.0.1:$PORT" 2>"$DATA.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 1 100); do "$BUILD/cli/stemedb" --server "127.0.0.1:$PORT" status >/dev/null 2>&1 && break; sleep 0.1; done
echo "| clients | ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
declare -A OPS
for c in 1 16 64; do
  line=$("$BUILD/cli/stemedb" --server "127.0.0.1:$PORT" --json bench assert --clients "$c" --duration "$DURATION")
  ops=$(echo "$line" | jq -r '.ops_per_s')
  OPS[$c]=$ops
  echo "| $c | $(printf '%.0f' "$ops") | $(echo "$line" | jq -r '.latency_ms.p50') | $(echo "$line" | jq -r '.latency_ms.p99') |"
done
echo
awk -v a="${OPS[64]}" -v b="${OPS[1]}" 'BEGIN { printf "group commit: 64 clients / 1 client = %.1fx\n", a / b }'
