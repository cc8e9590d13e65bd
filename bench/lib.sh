# Shared by the benchmark scripts that run several servers side by side:
# free loopback ports, bounded readiness polls, and starting StemeDB
# (server + gateway) and etcd the same way everywhere. Source it after
# setting W (a temporary directory), BUILD, CLI and PIDS=().

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # WHAT CMD...: poll (bounded, 30 s) until CMD succeeds
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): $what did not come up" >&2; exit 1
}

# stemedb-server on 127.0.0.1:$GP and its gateway on $HP (cluster port $CP);
# sets GP, HP, CP and appends both PIDs to PIDS (server first).
start_stemedb() {
  GP=$(port); HP=$(port); CP=$(port)
  "$BUILD/service/stemedb-server" --data-dir "$W/stm" --grpc-listen "127.0.0.1:$GP" >"$W/stm.log" 2>&1 &
  PIDS+=($!)
  wait_for stemedb-server "$CLI" --server "127.0.0.1:$GP" status
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
