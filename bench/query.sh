#!/usr/bin/env bash
# Query latency with N claims stored (default 1,000,000): a fresh
# stemedb-server on a free loopback port is loaded by bench/load_claims.py,
# then `stemedb bench query` asks for the 100-claim concept bench/q through
# each lens with one client (latency) and 4 clients (throughput).
#   bench/query.sh [N] [DURATION]      (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DURATION=${2:-5}
. bench/lib.sh
bench_init qbench
start_server
t0=$(date +%s)
/usr/bin/python3 bench/load_claims.py "127.0.0.1:$GP" "$N"
echo "loaded $N claims in $(( $(date +%s) - t0 )) s; $("$CLI" --server "127.0.0.1:$GP" --json status | jq -c '{assertion_count, last_sequence}')"
echo "| lens | clients | ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for lens in recency authority vote skeptic layered epoch; do
  for c in 1 4; do
    line=$("$CLI" --server "127.0.0.1:$GP" --json bench query --concept bench/q \
      --predicate p --lens "$lens" --clients "$c" --duration "$DURATION")
    echo "| $lens | $c | $(printf '%.0f' "$(echo "$line" | jq -r .ops_per_s)") | $(echo "$line" | jq -r .latency_ms.p50) | $(echo "$line" | jq -r .latency_ms.p99) |"
  done
done
