#!/usr/bin/env bash
# Operations kit: the systemd units pass `systemd-analyze verify`, and the
# runbook's `stemedb-api` launcher starts a working node from a cluster.toml
# written as the runbook writes it, and stops it cleanly on SIGTERM.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh" # ROOT, BUILD (absolute: PATH needs it), the binaries
curl() { command curl --max-time 30 "$@"; }
WORK=$(mktemp -d /tmp/stm-deploy-XXXXXX)
trap '[ -n "${PID:-}" ] && kill -9 $PID 2>/dev/null; pkill -9 -f "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

# systemd units: verify copies whose ExecStart points at this checkout.
if command -v systemd-analyze >/dev/null; then
  mkdir "$WORK/units"
  for f in "$ROOT"/deploy/systemd/*.service; do
    sed "s#/usr/local/bin/stemedb-api#$ROOT/deploy/bin/stemedb-api#" "$f" >"$WORK/units/$(basename "$f")"
  done
  out=$(systemd-analyze verify "$WORK"/units/*.service 2>&1); rc=$?
  check "systemd units verify${out:+ ($out)}" 0 "$rc"
fi

RPC=$(free_port) BIND=$(free_port) HTTP=$(free_port)
cat >"$WORK/cluster.toml" <<TOML
[cluster]
enabled = true
node_id = "node1"
bind_addr = "127.0.0.1:$BIND" # Node1 IP
rpc_addr = "127.0.0.1:$RPC"
swim_addr = "127.0.0.1:$(free_port)"

# Seed nodes for discovery
seeds = [
  "127.0.0.1:$(free_port)", # Node2
]

[replication]
factor = 2 # Replicate each assertion to 2 nodes
TOML
PATH="$BUILD/service:$BUILD/gateway:$PATH" STEMEDB_CONFIG="$WORK/cluster.toml" \
  STEMEDB_DATA_DIR="$WORK/data" STEMEDB_HTTP_LISTEN="127.0.0.1:$HTTP" \
  "$ROOT/deploy/bin/stemedb-api" >"$WORK/api.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/v1/health")" = 200 ] && break
  kill -0 $PID 2>/dev/null || { echo "stemedb-api exited early:"; cat "$WORK/api.log"; break; }
  sleep 0.05
done
check "stemedb-api serves /v1/health" healthy "$(curl -s "http://127.0.0.1:$HTTP/v1/health" | jq -r .status)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP/v1/assert" \
  -H "Content-Type: application/json" -d '{"concept_path": "test/cluster", "predicate": "replicated", "value": true}')
check "assert through the launcher" 201 "$code"
check "gateway listens on cluster.toml's bind_addr" 1 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BIND/cluster/members" | grep -c '^[1-5]')"
check "node id comes from cluster.toml" node1 "$(curl -s "http://127.0.0.1:$HTTP/v1/health" | jq -r .node_id)"
kill -TERM $PID; wait $PID; rc=$?; PID=
check "stemedb-api exits 0 on SIGTERM" 0 "$rc"
echo "deploy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
