#!/usr/bin/env bash
# Disaster-recovery drill, end to end on this machine (127.0.0.1 only):
#
#   1. start a server with WAL archival (archive-to-dir.sh) and small
#      segments; write data set A;
#   2. take an online backup (stemedb backup) while set B is being written,
#      and verify it (stemedb verify);
#   3. finish B, note the recovery target (sequence and commit time), then
#      write set C (after the target) so the target's segment is sealed and
#      archived; wait until the archive holds every sealed segment;
#   4. disaster: SIGKILL the server and delete its data directory;
#   5. restore the backup plus the archived WAL to the target sequence
#      (point-in-time), start a server on it, and check that exactly A and B
#      are present and nothing of C; then the same to the target time;
#   6. restore "as late as possible" (no target) to measure what archival
#      loses: the claims of the open, unarchived segment.
#
# Prints RTO (seconds from starting the restore until the restored server
# is ready) and RPO (claims and seconds lost when restoring the latest
# state). Exit 0 only if every check passed.
#
#   deploy/dr/drill.sh [--claims N] [--bin-dir DIR] [--keep]
#   N: claims per set (default 1000): N - 20 written by `stemedb bench`
#   (counted), 20 named ones (checked one by one). DIR holds stemedb-server
#   and stemedb (default: ./build/service and ./build/cli, or
#   $STM_BUILD_DIR).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N=1000
NAMED=20
BUILD=${STM_BUILD_DIR:-$ROOT/build}
SERVER_BIN=${STM_SERVER_BIN:-$BUILD/service/stemedb-server}
CLI_BIN=${STM_CLI_BIN:-$BUILD/cli/stemedb}
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --claims) N=$2; shift 2 ;;
    --bin-dir) SERVER_BIN=$2/stemedb-server; CLI_BIN=$2/stemedb; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--claims N] [--bin-dir DIR] [--keep]" >&2; exit 2 ;;
  esac
done
W=$(mktemp -d /tmp/stemedb-drill.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  [ "$KEEP" = 1 ] && echo "drill: workspace kept in $W" || rm -rf "$W"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
cli() { timeout 60 "$CLI_BIN" --server "$ADDR" "$@"; }
log() { printf 'drill: %s\n' "$*"; }
die() { printf 'drill: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

start_server() { # DATA_DIR [extra args...]
  local dir=$1; shift
  "$SERVER_BIN" --data-dir "$dir" --grpc-listen "$ADDR" --node-id drill \
    --wal-segment-bytes 65536 "$@" >>"$W/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
    cli status >/dev/null 2>&1 && return 0
    kill -0 "$PID" 2>/dev/null || die "server exited; see $W/server.log"
    sleep 0.05
  done
  die "server not ready after 30 s"
}
stop_server() { kill "$PID"; wait "$PID" || true; PID=; }
status_field() { cli --json status | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

write_set() { # NAME: N - NAMED bench claims, then NAMED named ones
  cli bench assert --clients 8 --max-ops $((N - NAMED)) --duration 60 >/dev/null 2>&1
  seq 1 "$NAMED" | xargs -P 4 -I{} "$CLI_BIN" --server "$ADDR" --timeout-ms 30000 \
    assert "drill/$1/{}" v "$1-{}" --source drill://set >/dev/null
}
present() { # values of the named drill claims, sorted
  cli --json query drill --descendants --limit 10000 |
    python3 -c 'import json,sys; [print(r["value"]) for r in json.load(sys.stdin).get("results", [])]' | sort
}
expected() { for s in "$@"; do seq 1 "$NAMED" | sed "s/^/$s-/"; done | sort; }
archive_complete() { # every sealed segment has reached the archive
  local sealed; sealed=$(( $(ls "$W/data/wal" | grep -c '\.wal$') - 1 ))
  [ "$(ls "$W/archive" 2>/dev/null | grep -c '\.wal\.zst$')" -ge "$sealed" ]
}

log "workspace $W, $N claims per set, server on $ADDR"
start_server "$W/data" --wal-archive-command "$ROOT/deploy/archive/archive-to-dir.sh %p %f $W/archive"
write_set a
log "set A written"
write_set b & WB=$!
cli backup --out "$W/backup.tar.zst" 2>>"$W/backup-progress.log"
wait $WB
cli verify "$W/backup.tar.zst"
TARGET_SEQ=$(status_field last_sequence)
TARGET_TIME=$(( $(date +%s%N) ))
log "set B written; recovery target: sequence $TARGET_SEQ, time $TARGET_TIME"
write_set c
LAST_TIME=$(date +%s.%N)
log "set C written (after the target)"
for _ in $(seq 1 600); do archive_complete && break; sleep 0.05; done
archive_complete || die "WAL archive incomplete after 30 s"
LAST_SEQ=$(status_field last_sequence)
log "archive holds $(ls "$W/archive" | wc -l) segments; server at sequence $LAST_SEQ"

log "DISASTER: SIGKILL and rm -rf the data directory"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=
rm -rf "$W/data"

check_restored() { # LABEL
  local want; want=$(expected a b)
  local got; got=$(present)
  [ "$got" = "$want" ] || die "$1: the restored named claims differ from sets A+B: $(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"
  [ "$(status_field last_sequence)" = "$TARGET_SEQ" ] || die "$1: last sequence is not $TARGET_SEQ"
  [ "$(status_field assertion_count)" = "$((2 * N))" ] || die "$1: assertion count is not $((2 * N))"
  log "$1: exactly sets A and B present ($((2 * N)) claims), nothing of C"
}

T0=$(now)
cli restore "$W/backup.tar.zst" --data-dir "$W/data" --wal-archive "$W/archive" --to-sequence "$TARGET_SEQ"
start_server "$W/data"
T1=$(now)
check_restored "point-in-time restore to sequence $TARGET_SEQ"
stop_server
cli restore "$W/backup.tar.zst" --data-dir "$W/data" --wal-archive "$W/archive" --to-time "$TARGET_TIME" --force
start_server "$W/data"
check_restored "point-in-time restore to time $TARGET_TIME"
stop_server

cli restore "$W/backup.tar.zst" --data-dir "$W/latest" --wal-archive "$W/archive" | tee "$W/latest.txt"
start_server "$W/latest"
GOT_SEQ=$(status_field last_sequence)
stop_server
# The commit time of the last restored record, from restore's report.
GOT_TIME_NS=$(python3 -c '
import re, sys, calendar, time
m = re.search(r"committed (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z", open(sys.argv[1]).read())
print(calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(m.group(2)))' "$W/latest.txt")
RTO=$(python3 -c "print('%.2f' % ($T1 - $T0))")
RPO_S=$(python3 -c "print('%.2f' % max(0, $LAST_TIME - $GOT_TIME_NS / 1e9))")
echo "drill: OK"
echo "drill: RTO ${RTO} s (restore of backup + archived WAL to a point in time, until the server is ready)"
echo "drill: RPO $((LAST_SEQ - GOT_SEQ)) claims, ${RPO_S} s (latest restorable state: sequence $GOT_SEQ of $LAST_SEQ; the open WAL segment is not archived)"
