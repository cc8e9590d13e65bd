#!/usr/bin/env bash
# systemd kit (issue 14): every unit and timer in deploy/systemd passes
# `systemd-analyze verify` and an offline security audit; the hardening the
# issue asks for is present; the dedicated user and directories come out of
# sysusers/tmpfiles; the server's WAL archive command, taken from its unit
# exactly as systemd would pass it, archives sealed segments of a real
# server; stemedb-backup and stemedb-verify work against a real server and
# stemedb-verify fails loudly on a corrupt, stale or missing backup.
#
# The units name /usr/local/bin and /usr/local/lib/stemedb, which do not
# exist here: verify copies with those paths pointed at this checkout.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
CLI_BIN=${STM_CLI_BIN:-$BUILD/cli/stemedb}
UNITS=$ROOT/deploy/systemd
WORK=$(mktemp -d /tmp/stm-ops-systemd-XXXXXX)
SRV_PID=
trap '[ -n "$SRV_PID" ] && kill -9 $SRV_PID 2>/dev/null; rm -rf "$WORK"' EXIT
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (Debian: systemd)"; exit 1; }

# --- systemd-analyze verify and security ------------------------------------
mkdir -p "$WORK/units" "$WORK/bin"
ln -s "$CLI_BIN" "$WORK/bin/stemedb"
for f in "$UNITS"/*.service "$UNITS"/*.timer; do
  sed -e "s#/usr/local/bin/stemedb-api#$ROOT/deploy/bin/stemedb-api#" \
      -e "s#/usr/local/lib/stemedb/stemedb-#$ROOT/deploy/backup/stemedb-#" \
      "$f" >"$WORK/units/$(basename "$f")"
done
check "deploy/systemd has the 5 services and 2 timers" 7 "$(ls "$WORK/units" | wc -l)"
out=$(systemd-analyze verify "$WORK"/units/* 2>&1); rc=$?
check "systemd-analyze verify: status" 0 "$rc"
check "systemd-analyze verify: no findings" "" "$out"
# The harness can fail: a unit whose ExecStart does not exist is reported.
sed 's#^ExecStart=.*#ExecStart=/nonexistent/stemedb-server#' "$WORK/units/stemedb-server.service" \
  >"$WORK/broken.service"
out=$(systemd-analyze verify "$WORK/broken.service" 2>&1)
contains "verify reports a missing ExecStart binary" "/nonexistent/stemedb-server" "$out"
# Exposure score 0 (locked down) .. 10 (unprotected); fail above 3.
out=$(systemd-analyze security --offline=yes --threshold=30 "$WORK"/units/*.service 2>&1); rc=$?
check "systemd-analyze security: every service at or below exposure 3.0" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | grep 'Overall'

# --- the hardening the issue names ------------------------------------------
has() { grep -qx "$2" "$UNITS/$1"; }
for u in stemedb-server stemedb-gateway stemedb-api stemedb-backup stemedb-verify; do
  for line in "User=stemedb" "NoNewPrivileges=yes" "ProtectSystem=strict" "CapabilityBoundingSet="; do
    if has "$u.service" "$line"; then ok "$u: $line"; else bad "$u: $line missing"; fi
  done
done
for u in stemedb-server stemedb-gateway; do
  if grep -q '^LimitNOFILE=[0-9]\{5,\}$' "$UNITS/$u.service"; then ok "$u: LimitNOFILE"; else bad "$u: LimitNOFILE"; fi
done
if grep -q '^ReadWritePaths=/data\( \|$\)' "$UNITS/stemedb-server.service"; then ok "server: /data writable"; else bad "server: ReadWritePaths=/data"; fi
if grep -q '^ReadWritePaths' "$UNITS/stemedb-gateway.service"; then bad "gateway must not write anywhere"; else ok "gateway: nothing writable"; fi
check "backup.timer runs the backup" stemedb-backup.service "$(sed -n 's/^Unit=//p' "$UNITS/stemedb-backup.timer")"
check "verify.timer runs the verification" stemedb-verify.service "$(sed -n 's/^Unit=//p' "$UNITS/stemedb-verify.timer")"
check "verify runs after the backup" "After=stemedb-backup.service" "$(grep '^After=' "$UNITS/stemedb-verify.service")"

# --- dedicated user and directories (into a temporary root) -----------------
mkdir -p "$WORK/root/etc"
systemd-sysusers --root="$WORK/root" "$UNITS/stemedb.sysusers" >/dev/null 2>&1
user=$(grep '^stemedb:' "$WORK/root/etc/passwd" 2>/dev/null)
uid=$(echo "$user" | cut -d: -f3)
if [ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$uid" -gt 0 ]; then ok "sysusers: system user stemedb (uid $uid)"; else bad "sysusers: stemedb user ($user)"; fi
check "sysusers: no login shell" /usr/sbin/nologin "$(echo "$user" | cut -d: -f7)"
systemd-tmpfiles --root="$WORK/root" --create "$UNITS/stemedb.tmpfiles" >/dev/null 2>&1
check "tmpfiles: /data is 0750, owned by stemedb" "750 $uid" "$(stat -c '%a %u' "$WORK/root/data" 2>/dev/null)"
check "tmpfiles: WAL archive dir is 0750, owned by stemedb" "750 $uid" \
  "$(stat -c '%a %u' "$WORK/root/srv/stemedb-wal-archive" 2>/dev/null)"

# --- WAL archival as the server unit configures it --------------------------
# systemd turns %% into %; the unit's archive directory becomes ours.
cmd=$(sed -n 's/^Environment="STEMEDB_WAL_ARCHIVE_COMMAND=\(.*\)"$/\1/p' "$UNITS/stemedb-server.service" |
  sed -e 's/%%/%/g' -e "s#/usr/local/lib/stemedb/#$ROOT/deploy/archive/#" -e "s#/srv/stemedb-wal-archive#$WORK/archive#")
contains "server unit: archive command takes %p and %f" "archive-to-dir.sh %p %f" "$cmd"
GRPC_PORT=$(free_port)
PATH="$(dirname "$SERVER_BIN"):$(dirname "$GATEWAY_BIN"):$PATH" \
  STEMEDB_WAL_ARCHIVE_COMMAND=$cmd STEMEDB_DATA_DIR=$WORK/data STEMEDB_GRPC_LISTEN=127.0.0.1:$GRPC_PORT \
  STEMEDB_WAL_SEGMENT_BYTES=65536 "$ROOT/deploy/bin/stemedb-api" server >"$WORK/server.log" 2>&1 &
SRV_PID=$!
cli() { "$CLI_BIN" --server "127.0.0.1:$GRPC_PORT" "$@"; }
for _ in $(seq 1 300); do cli status >/dev/null 2>&1 && break; sleep 0.05; done
cli status >/dev/null 2>&1 || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }
cli bench assert --clients 4 --max-ops 1500 --duration 20 >"$WORK/bench.log" 2>&1
check "bench wrote 1500 claims" 1500 "$(cli --json status | jq -r .assertion_count)"
for _ in $(seq 1 200); do [ "$(ls "$WORK/archive" 2>/dev/null | grep -c '\.zst$')" -ge 2 ] && break; sleep 0.05; done
n=$(ls "$WORK/archive" 2>/dev/null | grep -c '\.zst$')
if [ "$n" -ge 2 ]; then ok "sealed segments reached the archive ($n)"; else bad "archive holds $n segments; server log: $(tail -5 "$WORK/server.log")"; fi

# --- stemedb-backup / stemedb-verify against the running server -------------
export PATH="$WORK/bin:$PATH" STEMEDB_SERVER=127.0.0.1:$GRPC_PORT
export STEMEDB_BACKUP_DIR=$WORK/backups STEMEDB_BACKUP_TEXTFILE_DIR=$WORK/textfile STEMEDB_BACKUP_KEEP=2
mkdir -p "$WORK/backups" "$WORK/textfile"
# Two older backups: with KEEP=2 the oldest is pruned after the new one.
for old in 20200101T000000Z 20200102T000000Z; do : >"$WORK/backups/stemedb-$old.tar.zst"; done
out=$("$ROOT/deploy/backup/stemedb-backup" 2>&1); rc=$?
check "stemedb-backup exits 0" 0 "$rc"
newest=$(ls "$WORK/backups" | grep '^stemedb-.*\.tar\.zst$' | sort | tail -n1)
contains "stemedb-backup names the new backup" "$newest" "$out"
check "stemedb-backup keeps the newest 2" "stemedb-20200102T000000Z.tar.zst $newest" "$(ls "$WORK/backups" | sort | xargs)"
check "no partial file left" 0 "$(ls -A "$WORK/backups" | grep -c partial)"
verify() { "$ROOT/deploy/backup/stemedb-verify" 2>&1; }
metric() { sed -n "s/^$1 //p" "$WORK/textfile/stemedb_backup.prom"; }
out=$(verify); rc=$?
check "stemedb-verify: a good backup passes" 0 "$rc"
contains "stemedb-verify reports the claims" "1500 claims" "$out"
check "textfile: verify_ok 1" 1 "$(metric stemedb_backup_verify_ok)"
good_time=$(metric stemedb_backup_last_success_timestamp_seconds)
check "textfile: last success is the backup's mtime" "$(stat -c %Y "$WORK/backups/$newest")" "$good_time"
promtool check metrics <"$WORK/textfile/stemedb_backup.prom" >"$WORK/lint" 2>&1
check "textfile passes promtool check metrics (Debian: prometheus)" "0:" "$?:$(cat "$WORK/lint")"
# Corrupt the newest backup: loud failure, metric 0, last success kept.
cp "$WORK/backups/$newest" "$WORK/good.tar.zst"
size=$(stat -c %s "$WORK/good.tar.zst")
head -c $((size / 2)) "$WORK/good.tar.zst" >"$WORK/backups/$newest"
out=$(verify); rc=$?
check "stemedb-verify: a truncated backup fails" 1 "$rc"
contains "the failure is an error-priority journal line" "<3>stemedb-verify: FAILED: $WORK/backups/$newest" "$out"
check "textfile: verify_ok 0" 0 "$(metric stemedb_backup_verify_ok)"
check "textfile: last success kept" "$good_time" "$(metric stemedb_backup_last_success_timestamp_seconds)"
# Stale: a good backup that is two days old.
cp "$WORK/good.tar.zst" "$WORK/backups/$newest"
touch -d '2 days ago' "$WORK/backups/$newest"
out=$(verify); rc=$?
check "stemedb-verify: a 48 h old newest backup fails" 1 "$rc"
contains "it says how old" "h old (limit 26 h)" "$out"
# Missing.
rm -f "$WORK"/backups/*
out=$(verify); rc=$?
check "stemedb-verify: no backup at all fails" 1 "$rc"
contains "it says where it looked" "no backup (stemedb-*.tar.zst) in $WORK/backups" "$out"
# The server is down: the backup fails loudly and leaves nothing behind.
kill -TERM $SRV_PID; wait $SRV_PID; rc=$?; SRV_PID=
check "the server stopped cleanly on SIGTERM" 0 "$rc"
out=$("$ROOT/deploy/backup/stemedb-backup" 2>&1); rc=$?
check "stemedb-backup with the server down fails" 1 "$rc"
contains "it says so" "<3>stemedb-backup: FAILED: stemedb backup to" "$out"
check "and leaves no file" 0 "$(ls -A "$WORK/backups" | wc -l)"

echo "ops_systemd: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
