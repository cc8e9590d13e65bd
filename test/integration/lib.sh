# Shared by the shell integration tests: where the binaries are, result
# counting, free ports and a server + gateway stack. Source it after
# `set -u`.

# The checkout and the build: STM_BUILD_DIR (CTest passes it absolute; a
# relative one is taken from the checkout's root) or ./build.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${STM_BUILD_DIR:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER_BIN=${STM_SERVER_BIN:-$BUILD/service/stemedb-server}
GATEWAY_BIN=${STM_GATEWAY_BIN:-$BUILD/gateway/stemedb-gateway}

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}
contains() { # contains NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) ok "$1" ;; *) bad "$1 ('$2' not in '$3')" ;; esac
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The server and a gateway in front of it on free loopback ports, in WORK
# (a fresh /tmp/stm-NAME-XXXXXX removed at exit, both processes killed).
# start_stack NAME sets WORK, GRPC_PORT, HTTP_PORT, CLUSTER_PORT, SRV_PID and
# GW_PID, and returns once the gateway reports healthy.
start_stack() {
  WORK=$(mktemp -d "/tmp/stm-$1-XXXXXX")
  GRPC_PORT=$(free_port) HTTP_PORT=$(free_port) CLUSTER_PORT=$(free_port)
  trap stop_stack EXIT
  start_server
  "$GATEWAY_BIN" --http-listen "127.0.0.1:$HTTP_PORT" --cluster-listen "127.0.0.1:$CLUSTER_PORT" \
    --server "127.0.0.1:$GRPC_PORT" >>"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  wait_healthy
}
stop_stack() {
  [ -n "${GW_PID:-}" ] && kill -9 "$GW_PID" 2>/dev/null
  [ -n "${SRV_PID:-}" ] && kill -9 "$SRV_PID" 2>/dev/null
  rm -rf "$WORK"
}
# (Re)start the server of the stack on its port and data directory.
start_server() {
  "$SERVER_BIN" --data-dir "$WORK/data" --grpc-listen "127.0.0.1:$GRPC_PORT" >>"$WORK/server.log" 2>&1 &
  SRV_PID=$!
}
wait_healthy() { # readiness: poll (bounded) until the gateway reports healthy
  for _ in $(seq 1 300); do
    [ "$(command curl --max-time 30 -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/v1/health")" = 200 ] && return 0
    sleep 0.05
  done
  echo "server/gateway did not become healthy"; cat "$WORK"/*.log; exit 1
}
