#!/usr/bin/env bash
# Durable single-assert throughput at 1, 16 and 64 clients over gRPC against
# a fresh stemedb-server on a free loopback port, with the ratio that shows
# group commit (64 clients / 1 client). Bounded: DURATION seconds per step.
#   bench/assert.sh [DURATION]      (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
. bench/lib.sh
bench_init bench
start_server
echo "| clients | ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
declare -A OPS
for c in 1 16 64; do
  line=$("$CLI" --server "127.0.0.1:$GP" --json bench assert --clients "$c" --duration "$DURATION")
  ops=$(echo "$line" | jq -r '.ops_per_s')
  OPS[$c]=$ops
  echo "| $c | $(printf '%.0f' "$ops") | $(echo "$line" | jq -r '.latency_ms.p50') | $(echo "$line" | jq -r '.latency_ms.p99') |"
done
echo
awk -v a="${OPS[64]}" -v b="${OPS[1]}" 'BEGIN { printf "group commit: 64 clients / 1 client = %.1fx\n", a / b }'
