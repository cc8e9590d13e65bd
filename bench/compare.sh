#!/usr/bin/env bash
# Durable-write throughput of StemeDB against its references, measured on
# this machine in one run, printed as a table of ratios:
#
#   ours gRPC   stemedb bench assert (C, gRPC core), 64 clients, 200-byte values
#   etcd gRPC   the same load generator: stemedb bench etcd-put -> KV.Put
#   PostgreSQL  pgbench, one INSERT of a 200-byte row per transaction,
#               64 clients, fsync=on, synchronous_commit=on
#   ours REST   wrk -> stemedb-gateway POST /v1/assert (a unique body each)
#   etcd REST   wrk -> etcd's JSON gateway POST /v3/kv/put
#   batches     stemedb bench assert --batch 100 (16 in flight) vs raw
#               LevelDB synced WriteBatches of 100 (bench/leveldb_batch.c),
#               with sequential keys and with 32-byte hash keys
#
# Everything listens on 127.0.0.1 only, on free ports, in a temporary
# directory removed at exit; every load is bounded by DURATION seconds.
# Needs: etcd-server, postgresql (15), wrk, jq, a C compiler, libleveldb-dev
# (scripts/deps.sh --bench installs them; this script calls it).
#
#   bench/compare.sh [DURATION=5] [CLIENTS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
D=${1:-5}
C=${2:-64}
. bench/lib.sh
bench_init compare
chmod 755 "$W"
PGDATA=
cleanup() {
  [ -n "$PGDATA" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  stop_all
}
trap cleanup EXIT
log() { echo "compare: $*" >&2; }
scripts/deps.sh --bench >&2
PGBIN=/usr/lib/postgresql/15/bin
for t in etcd wrk jq cc "$PGBIN/pgbench"; do
  command -v "$t" >/dev/null || { echo "compare: $t missing (scripts/deps.sh)" >&2; exit 1; }
done

# --- StemeDB server and gateway, etcd ---------------------------------------------
start_stemedb
start_etcd

# --- PostgreSQL 15 -----------------------------------------------------------------
PP=$(port)
PGDATA=$W/pg
mkdir -p "$PGDATA" && chown postgres "$PGDATA"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w start -o \
  "-p $PP -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGDATA -c fsync=on -c synchronous_commit=on -c max_connections=$((C + 20))" >/dev/null
PSQL=(runuser -u postgres -- psql -q -h 127.0.0.1 -p "$PP" -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -c "CREATE TABLE claims (id text PRIMARY KEY, v text NOT NULL)"
echo "INSERT INTO claims VALUES (md5(random()::text || clock_timestamp()::text || :client_id), repeat('x', 200));" >"$W/insert.sql"
chmod 644 "$W/insert.sql"

# --- runs ------------------------------------------------------------------------
jqr() { jq -r "$1"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
SRV_PID=${PIDS[0]} GW_PID=${PIDS[1]} ETCD_PID=${PIDS[2]}
c0=$(cpu_s "$SRV_PID")
log "ours gRPC: stemedb bench assert, $C clients, $D s"
OURS=$("$CLI" --server "127.0.0.1:$GP" --json bench assert --clients "$C" --value-bytes 200 --duration "$D")
O_CPU=$(python3 -c "print($(cpu_s "$SRV_PID") - $c0)")
c0=$(cpu_s "$ETCD_PID")
log "etcd gRPC: stemedb bench etcd-put, $C clients, $D s"
ETCD=$("$CLI" --server "127.0.0.1:$EP" --json bench etcd-put --clients "$C" --value-bytes 200 --duration "$D")
E_CPU=$(python3 -c "print($(cpu_s "$ETCD_PID") - $c0)")
log "PostgreSQL: pgbench, $C clients, $D s"
PG_OUT=$(runuser -u postgres -- "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PP" -c "$C" -j 2 -T "$D" -f "$W/insert.sql" postgres 2>&1)
PG_TPS=$(echo "$PG_OUT" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
PG_LAT=$(echo "$PG_OUT" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
[ -n "$PG_TPS" ] || { echo "$PG_OUT" >&2; echo "compare: pgbench failed" >&2; exit 1; }

cat >"$W/ours.lua" <<'LUA'
local n = 0
local tag = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
request = function()
  n = n + 1
  local body = string.format('{"concept_path":"bench/rest/%s","predicate":"p","value":"%s-%d-%s"}',
                             tag, tag, n, string.rep("x", 160))
  return wrk.format("POST", "/v1/assert", {["Content-Type"] = "application/json"}, body)
end
LUA
cat >"$W/etcd.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- key "stm-bench", a 200-byte value (base64)
wrk.body = '{"key":"c3RtLWJlbmNo","value":"' .. string.rep("eHh4", 66) .. 'eHg="}'
LUA
wrk_rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p'; }
wrk_p99() { sed -n 's/^ *99% *\([0-9.]*[a-z]*\)/\1/p'; }
c0=$(python3 -c "print($(cpu_s "$SRV_PID") + $(cpu_s "$GW_PID"))")
log "ours REST: wrk -> stemedb-gateway, $C connections, $D s"
WO=$(wrk -t2 -c"$C" -d"${D}s" --latency -s "$W/ours.lua" "http://127.0.0.1:$HP/v1/assert")
WO_CPU=$(python3 -c "print($(cpu_s "$SRV_PID") + $(cpu_s "$GW_PID") - $c0)")
c0=$(cpu_s "$ETCD_PID")
log "etcd REST: wrk -> etcd JSON gateway, $C connections, $D s"
WE=$(wrk -t2 -c"$C" -d"${D}s" --latency -s "$W/etcd.lua" "http://127.0.0.1:$EP/v3/kv/put")
WE_CPU=$(python3 -c "print($(cpu_s "$ETCD_PID") - $c0)")
W_NON2XX_O=$(echo "$WO" | sed -n 's/^ *Non-2xx or 3xx responses: *//p'); W_NON2XX_E=$(echo "$WE" | sed -n 's/^ *Non-2xx or 3xx responses: *//p')

# 16 batches in flight: LevelDB's writer never waits for a network round
# trip, so ours gets enough calls in flight to keep its writer busy too.
log "batches of 100: stemedb bench assert --batch 100, 16 clients, $D s"
OB=$("$CLI" --server "127.0.0.1:$GP" --json bench assert --clients 16 --batch 100 --value-bytes 200 --duration "$D")
cc -O2 bench/leveldb_batch.c -lleveldb -o "$W/leveldb_batch"
log "batches of 100: raw LevelDB synced WriteBatch, sequential keys, $D s"
LB=$("$W/leveldb_batch" "$W/ldb" 100 200 "$D" seq)
log "batches of 100: raw LevelDB synced WriteBatch, 32-byte hash keys, $D s"
LBH=$("$W/leveldb_batch" "$W/ldbh" 100 200 "$D" hash)

# --- the table ---------------------------------------------------------------------
O_OPS=$(echo "$OURS" | jqr .ops_per_s); O_P99=$(echo "$OURS" | jqr .latency_ms.p99)
E_OPS=$(echo "$ETCD" | jqr .ops_per_s); E_P99=$(echo "$ETCD" | jqr .latency_ms.p99)
[ "$(echo "$OURS" | jqr .failed)" = 0 ] && [ "$(echo "$ETCD" | jqr .failed)" = 0 ] || log "WARNING: failed calls: ours $(echo "$OURS" | jqr .failed), etcd $(echo "$ETCD" | jqr .failed)"
[ -z "$W_NON2XX_O$W_NON2XX_E" ] || log "WARNING: non-2xx answers: ours ${W_NON2XX_O:-0}, etcd ${W_NON2XX_E:-0}"
WO_RPS=$(echo "$WO" | wrk_rps); WE_RPS=$(echo "$WE" | wrk_rps)
OB_RPS=$(echo "$OB" | jqr .records_per_s); LB_RPS=$(echo "$LB" | jqr .records_per_s); LBH_RPS=$(echo "$LBH" | jqr .records_per_s)
ratio() { python3 -c "print('%.2fx' % ($1 / $2))"; }
echo "Run $(date -u +%FT%TZ) on $(nproc) cores; $D s per load, $C clients; 200-byte values, every write fsync'd."
echo
echo "| workload | StemeDB | reference | ratio | target |"
echo "|---|---|---|---|---|"
echo "| durable single assert, gRPC, same C load generator | $O_OPS ops/s, p99 $O_P99 ms | etcd KV.Put $E_OPS ops/s, p99 $E_P99 ms | $(ratio "$O_OPS" "$E_OPS") | >= 3x |"
echo "| durable single assert vs PostgreSQL 15 pgbench INSERT | $O_OPS ops/s, p99 $O_P99 ms | $PG_TPS tps, mean $PG_LAT ms | $(ratio "$O_OPS" "$PG_TPS") | >= 3x |"
echo "| REST, wrk | $WO_RPS req/s, p99 $(echo "$WO" | wrk_p99) | etcd JSON gateway $WE_RPS req/s, p99 $(echo "$WE" | wrk_p99) | $(ratio "$WO_RPS" "$WE_RPS") | >= 3x |"
echo "| AssertBatch of 100 vs LevelDB synced batches of 100, sequential keys | $OB_RPS records/s | $LB_RPS records/s | $(ratio "$OB_RPS" "$LB_RPS") | >= 0.5x |"
echo "| AssertBatch of 100 vs LevelDB synced batches of 100, hash keys | $OB_RPS records/s | $LBH_RPS records/s | $(ratio "$OB_RPS" "$LBH_RPS") | >= 0.5x |"
# Server CPU per acknowledged write: what the servers cost, whatever the
# load generator sharing the cores could drive.
us_per() { python3 -c "print('%.1f' % ($1 * 1e6 / ($2 * $D)))"; }
echo
echo "| server CPU per durable write (user + system) | StemeDB | etcd | ratio (etcd / ours) |"
echo "|---|---|---|---|"
echo "| gRPC single assert / KV.Put | $(us_per "$O_CPU" "$O_OPS") us | $(us_per "$E_CPU" "$E_OPS") us | $(python3 -c "print('%.2fx' % (($E_CPU / $E_OPS) / ($O_CPU / $O_OPS)))") |"
echo "| REST (gateway + server) / JSON gateway | $(us_per "$WO_CPU" "$WO_RPS") us | $(us_per "$WE_CPU" "$WE_RPS") us | $(python3 -c "print('%.2fx' % (($WE_CPU / $WE_RPS) / ($WO_CPU / $WO_RPS)))") |"
