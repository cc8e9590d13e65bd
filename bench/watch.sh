#!/usr/bin/env bash
# Change-feed latency against etcd's Watch, in one run on this machine:
# starts, on free 127.0.0.1 ports in a temporary directory, stemedb-server,
# stemedb-gateway and etcd (Debian etcd-server), then runs
# `stemedb bench watch` (one write at a time; write -> event and
# ack -> event, p50/p99, over gRPC Watch, the gateway's WebSocket and
# etcd's Watch). Bounded by COUNT writes per transport.
#   bench/watch.sh [COUNT=3000] [--json]      (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-3000}
JSON=${2:-}
command -v etcd >/dev/null || { echo "watch.sh: etcd missing (scripts/deps.sh --bench)" >&2; exit 1; }
. bench/lib.sh
bench_init watch-bench
start_stemedb
start_etcd
"$CLI" --server "127.0.0.1:$GP" ${JSON:+--json} bench watch --count "$COUNT" \
  --gateway "127.0.0.1:$HP" --etcd "127.0.0.1:$EP"
