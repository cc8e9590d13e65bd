# lab.sh - helpers the runbooks source (`. docs/operations/runbooks/lab.sh`
# from the repository's top directory). They run a node the way the
# runbooks' systemd lines do on a real host, but as plain background
# processes, so that every runbook can be run as written on one machine
# with loopback addresses (127.0.0.11, .12, ...: Linux routes all of
# 127.0.0.0/8 to lo). test/integration/test_runbooks.py runs them so.
#
# Needs stemedb-server, stemedb-gateway and stemedb on PATH (e.g.
# PATH=$PWD/build/service:$PWD/build/gateway:$PWD/build/cli:$PATH), curl, jq.
#
#   start_node ID IP [SERVER FLAGS...]  server + gateway of one node, wait until
#                                       /v1/health answers 200 (server SERVING)
#   stop_node ID [SIGNAL]               TERM (clean: a clustered node leaves) or KILL
#   cluster_toml ID IP SEED_IP...       print the node's cluster.toml
#   wait_for DESCRIPTION COMMAND [S]    poll COMMAND every 0.5 s, at most S s (60)
#   under_replicated IP...              shards with fewer than $FACTOR full copies
#   read_everywhere HASHFILE IP...      every hash readable through every node

# Where each node keeps its config, data, logs and pid files. On a real
# host: /etc/stemedb/cluster.toml and /var/lib/stemedb (deploy/systemd).
export STEMEDB_HOME=${STEMEDB_HOME:-$HOME/stemedb-lab}
# Copies of each claim ([replication] factor).
export FACTOR=${FACTOR:-2}
# Extra [cluster] keys, one per line. Empty: the production SWIM timings
# (a dead node is DOWN after about 10 s). The test sets short ones.
export SWIM_TUNING=${SWIM_TUNING:-}
# Extra gateway flags (word-split), e.g. --server-ca for a TLS server.
export GATEWAY_FLAGS=${GATEWAY_FLAGS:-}

wait_for() {
  local what=$1 cmd=$2 limit=${3:-60} i
  for i in $(seq $((limit * 2))); do
    if eval "$cmd" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "timed out after ${limit} s waiting for: $what" >&2
  return 1
}

cluster_toml() {
  local id=$1 ip=$2 s sep=""; shift 2
  printf '[cluster]\nenabled = true\nnode_id = "%s"\n' "$id"
  printf 'bind_addr = "%s:18181"\nrpc_addr = "%s:18182"\nswim_addr = "%s:18183"\n' "$ip" "$ip" "$ip"
  printf '# Seed nodes for discovery\nseeds = ['
  for s in "$@"; do printf '%s"%s:18183"' "$sep" "$s"; sep=", "; done
  printf ']\n'
  [ -n "$SWIM_TUNING" ] && printf '%s\n' "$SWIM_TUNING"
  printf '\n[replication]\nfactor = %s\n' "$FACTOR"
}

start_node() {
  local id=$1 ip=$2 dir=$STEMEDB_HOME/$1; shift 2
  mkdir -p "$dir/data"
  stemedb-server --data-dir "$dir/data" "$@" >>"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  stemedb-gateway --http-listen "$ip:18180" --cluster-listen "$ip:18181" \
                  --server "$ip:18182" $GATEWAY_FLAGS >>"$dir/gateway.log" 2>&1 </dev/null &
  echo $! >"$dir/gateway.pid"
  if ! wait_for "$id ready on $ip" \
       "curl -sf http://$ip:18180/v1/health && curl -s -o /dev/null http://$ip:18181/cluster/members"; then
    tail -n 20 "$dir/server.log" "$dir/gateway.log" >&2
    return 1
  fi
  echo "$id up on $ip"
}

stop_node() {
  local id=$1 sig=${2:-TERM} dir=$STEMEDB_HOME/$1 p pid
  for p in gateway server; do
    [ -f "$dir/$p.pid" ] || continue
    pid=$(cat "$dir/$p.pid")
    kill -CONT "$pid" 2>/dev/null || true
    kill -"$sig" "$pid" 2>/dev/null || true
    wait_for "$id $p (pid $pid) to exit" "! kill -0 $pid" 40 || return 1
    rm -f "$dir/$p.pid"
  done
  echo "$id stopped ($sig)"
}

under_replicated() {
  local ip
  for ip in "$@"; do curl -sf "http://$ip:18181/cluster/shards"; done |
    jq -s --argjson f "$FACTOR" '[.[].shards[]] | group_by(.id)
      | map((map(.assertion_count) | max) as $m
            | select($m > 0 and ([.[] | select(.assertion_count == $m)] | length) < $f))
      | length'
}

read_everywhere() {
  local file=$1 ip h n=0; shift
  for ip in "$@"; do
    while read -r h; do
      stemedb --server "$ip:18182" get "$h" >/dev/null || { echo "$h not readable on $ip" >&2; return 1; }
      n=$((n + 1))
    done <"$file"
  done
  echo "$n reads ok"
}
