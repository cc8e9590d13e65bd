# Shared by the benchmark scripts: a temporary directory removed at exit
# with every process they started, free loopback ports, bounded readiness
# polls, and starting StemeDB (server, gateway) and etcd the same way
# everywhere. Source it from the checkout's root, then call bench_init.

BUILD=${STM_BUILD_DIR:-build}
CLI="$BUILD/cli/stemedb"
PIDS=()

# Stop every process in PIDS (SIGTERM, then wait) and remove W.
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}

# bench_init NAME: W becomes a fresh /tmp/stm-NAME.XXXXXX, and stop_all
# runs at exit (a script with more to undo sets its own trap that calls it).
bench_init() {
  W=$(mktemp -d "/tmp/stm-$1.XXXXXX")
  trap stop_all EXIT
}

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # WHAT CMD...: poll (bounded, 30 s) until CMD succeeds
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): $what did not come up" >&2; exit 1
}

# A fresh stemedb-server on 127.0.0.1:$GP with its data in $W/stm; sets GP
# and appends its PID to PIDS.
start_server() {
  GP=$(port)
  "$BUILD/service/stemedb-server" --data-dir "$W/stm" --grpc-listen "127.0.0.1:$GP" >"$W/stm.log" 2>&1 &
  PIDS+=($!)
  wait_for stemedb-server "$CLI" --server "127.0.0.1:$GP" status
}

# start_server plus its gateway on $HP (cluster port $CP); sets GP, HP, CP
# and appends both PIDs to PIDS (server first).
start_stemedb() {
  start_server
  HP=$(port); CP=$(port)
  "$BUILD/gateway/stemedb-gateway" --server "127.0.0.1:$GP" --http-listen "127.0.0.1:$HP" \
    --cluster-listen "127.0.0.1:$CP" >"$W/gw.log" 2>&1 &
  PIDS+=($!)
  wait_for stemedb-gateway curl -sf "http://127.0.0.1:$HP/v1/health"
}

# etcd (Debian etcd-server) with its client API on 127.0.0.1:$EP; sets EP
# and appends its PID to PIDS.
start_etcd() {
  EP=$(port); local peer; peer=$(port)
  etcd --name ref --data-dir "$W/etcd" \
    --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "ref=http://127.0.0.1:$peer" --quota-backend-bytes=8589934592 >"$W/etcd.log" 2>&1 &
  PIDS+=($!)
  wait_for etcd curl -sf "http://127.0.0.1:$EP/health"
}
