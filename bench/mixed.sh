#!/usr/bin/env bash
# Mixed load, 90 % reads / 10 % durable writes by clients in flight: a fresh
# stemedb-server on a free loopback port is seeded with 100 claims under
# bench/mix, then `stemedb bench query` (recency, CLIENTS*9/10 clients) and
# `stemedb bench assert` (the other tenth) run at the same time for
# DURATION seconds. Prints both halves; the read/write split of completed
# calls follows from the rates.
#   bench/mixed.sh [CLIENTS=64] [DURATION=10]   (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-64}
D=${2:-10}
R=$(( C * 9 / 10 )); WR=$(( C - R ))
. bench/lib.sh
bench_init mixed
start_server
CLI=("$CLI" --server "127.0.0.1:$GP")
for i in $(seq 1 100); do echo "$i"; done | xargs -P 4 -I{} "${CLI[@]}" assert bench/mix p "seed-{}" --source "bench://s{}" >/dev/null
"${CLI[@]}" --json bench query --concept bench/mix --predicate p --lens recency --clients "$R" --duration "$D" >"$W/q.json" &
Q=$!
"${CLI[@]}" --json bench assert --clients "$WR" --value-bytes 200 --duration "$D" >"$W/w.json"
wait $Q
row() { jq -r '"\(.ops_per_s) | \(.latency_ms.p50) | \(.latency_ms.p99)"' "$1"; }
echo "| part | clients | ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
echo "| Query (recency, 100 claims in the concept) | $R | $(row "$W/q.json") |"
echo "| durable Assert | $WR | $(row "$W/w.json") |"
python3 -c "
import json; q=json.load(open('$W/q.json'))['ops_per_s']; w=json.load(open('$W/w.json'))['ops_per_s']
print('reads %.1f %% of completed calls, %.0f calls/s in total' % (100*q/(q+w), q+w))"
