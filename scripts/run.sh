#!/usr/bin/env bash
# Install dependencies, build, and start a node: stemedb-server (gRPC on
# 18182, data in ./data) and stemedb-gateway (HTTP on 18180) with no
# configuration. Returns once /v1/health answers; logs and pids in ./data.
# Stop with scripts/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
mkdir -p data
scripts/stop.sh >/dev/null 2>&1 || true
setsid build/service/stemedb-server >>data/server.log 2>&1 < /dev/null &
echo $! > data/server.pid
setsid build/gateway/stemedb-gateway >>data/gateway.log 2>&1 < /dev/null &
echo $! > data/gateway.pid
for _ in $(seq 1 200); do
  if curl -sf http://127.0.0.1:18180/v1/health >/dev/null; then
    echo "StemeDB is up: REST http://127.0.0.1:18180 (gateway), gRPC 127.0.0.1:18182 (server), data in ./data"
    curl -s http://127.0.0.1:18180/v1/health; echo
    exit 0
  fi
  sleep 0.1
done
echo "StemeDB did not become healthy; see data/server.log and data/gateway.log" >&2
tail -n 20 data/server.log data/gateway.log >&2
exit 1
