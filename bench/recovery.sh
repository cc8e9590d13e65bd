#!/usr/bin/env bash
# Recovery and memory at N claims (default 1,000,000): load N claims with
# AssertBatch (500 per call, 4 clients), read the server's RSS, SIGKILL it,
# and time a restart until it answers (the WAL tail after LevelDB's last
# applied sequence is replayed); then delete the LevelDB index and time a
# restart that rebuilds it from the whole WAL (the restore path: what
# `stemedb restore` pays). 127.0.0.1 only; every step is bounded in time.
#   bench/recovery.sh [N]     (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${STM_BUILD_DIR:-build}
N=${1:-1000000}
BATCH=500
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d /tmp/stm-recovery.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log" "$DATA.load.json"' EXIT
CLI=("$BUILD/cli/stemedb" --server "127.0.0.1:$PORT")
start() { # sets PID and T (seconds until the server answered)
  local t0; t0=$(date +%s.%N)
  "$BUILD/service/stemedb-server" --data-dir "$DATA" --grpc-listen "127.0.0.1:$PORT" >>"$DATA.log" 2>&1 &
  PID=$!
  # A rebuild of N claims takes about N/10000 s: wait that long, plus 60 s.
  local until=$(( $(date +%s) + N / 5000 + 60 ))
  while [ "$(date +%s)" -lt "$until" ]; do
    "${CLI[@]}" --timeout-ms 1000 status >/dev/null 2>&1 && break
    sleep 0.01
  done
  T=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $t0))")
}
start
echo "loading $N claims ($BATCH per AssertBatch, 4 clients)..." >&2
T0=$(date +%s.%N)
"${CLI[@]}" --json bench assert --batch $BATCH --clients 4 --value-bytes 64 \
  --max-ops $((N / BATCH)) --duration $((N / 5000 > 900 ? N / 5000 : 900)) >"$DATA.load.json"
LOAD_S=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $T0))")
COUNT=$("${CLI[@]}" --json status | jq -r .assertion_count)
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
HWM_KB=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
echo "loaded $COUNT claims in $LOAD_S s; RSS $((RSS_KB / 1024)) MiB (peak $((HWM_KB / 1024)) MiB)" >&2
kill -9 $PID; wait $PID 2>/dev/null || true
start; T_KILL=$T
RSS_IDLE_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
kill $PID; wait $PID 2>/dev/null || true
WAL_MB=$(du -sm "$DATA/wal" | cut -f1); IDX_MB=$(du -sm "$DATA/index" | cut -f1)
rm -rf "$DATA/index"
start; T_REBUILD=$T
REPLAY=$(grep -o 'replayed [0-9]* records ([0-9]* claims) after sequence 0 in [0-9.]* ms' "$DATA.log" | tail -1)
kill $PID; wait $PID 2>/dev/null || true; PID=
echo "| claims | load | RSS after load (peak) | restart after SIGKILL | RSS after restart | index rebuild from the WAL | WAL / index on disk |"
echo "|---|---|---|---|---|---|---|"
echo "| $COUNT | ${LOAD_S} s ($(jq -r .records_per_s "$DATA.load.json") claims/s) | $((RSS_KB / 1024)) MiB ($((HWM_KB / 1024)) MiB) | ${T_KILL} s | $((RSS_IDLE_KB / 1024)) MiB | ${T_REBUILD} s ($REPLAY) | $WAL_MB / $IDX_MB MiB |"
