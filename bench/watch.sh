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
BUILD=${STM_BUILD_DIR:-build}
COUNT=${1:-3000}
JSON=${2:-}
command -v etcd >/dev/null || { echo "watch.sh: etcd missing (scripts/deps.sh --bench)" >&2; exit 1; }
W=$(mktemp -d /tmp/stm-watch-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # WHAT CMD...: poll (bounded) until CMD succeeds
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "watch.sh: $what did not come up" >&2; exit 1
}
CLI="$BUILD/cli/stemedb"
GP=$(port); HP=$(port); CP=$(port); EP=$(port); EPP=$(port)
"$BUILD/service/stemedb-server" --data-dir "$W/stm" --grpc-listen "127.0.0.1:$GP" >"$W/stm.log" 2>&1 &
PIDS+=($!)
wait_for stemedb-server "$CLI" --server "127.0.0.1:$GP" status
"$BUILD/gateway/stemedb-gateway" --server "127.0.0.1:$GP" --http-listen "127.0.0.1:$HP" \
  --cluster-listen "127.0.0.1:$CP" >"$W/gw.log" 2>&1 &
PIDS+=($!)
wait_for stemedb-gateway curl -sf "http://127.0.0.1:$HP/v1/health"
etcd --name ref --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
  --listen-peer-urls "http://127.0.0.1:$EPP" --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
  --initial-cluster "ref=http://127.0.0.1:$EPP" --quota-backend-bytes=8589934592 >"$W/etcd.log" 2>&1 &
PIDS+=($!)
wait_for etcd curl -sf "http://127.0.0.1:$EP/health"
"$CLI" --server "127.0.0.1:$GP" ${JSON:+--json} bench watch --count "$COUNT" \
  --gateway "127.0.0.1:$HP" --etcd "127.0.0.1:$EP"
