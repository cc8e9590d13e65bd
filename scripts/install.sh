#!/usr/bin/env bash
# Install a built StemeDB on this host the way the runbook expects:
# binaries and the stemedb-api launcher in /usr/local/bin, systemd units
# (stemedb-api = server + gateway), user stemedb, data in /data, config in
# /etc/stemedb. Then: systemctl start stemedb-api.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/service/stemedb-server ] || scripts/build.sh
cmake --install build --prefix /usr/local
install -m 0644 deploy/systemd/*.service deploy/systemd/*.timer /etc/systemd/system/
install -D -m 0644 deploy/systemd/stemedb.sysusers /usr/lib/sysusers.d/stemedb.conf
install -D -m 0644 deploy/systemd/stemedb.tmpfiles /usr/lib/tmpfiles.d/stemedb.conf
# The user and directories come from the sysusers/tmpfiles files above;
# useradd/install -d are the fallback where systemd's tools are absent.
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers stemedb.conf
else
  id stemedb >/dev/null 2>&1 || useradd --system --home-dir /data --shell /usr/sbin/nologin stemedb
fi
if command -v systemd-tmpfiles >/dev/null; then
  systemd-tmpfiles --create stemedb.conf
else
  install -d -o stemedb -g stemedb /data
fi
install -d /etc/stemedb
[ -f /etc/stemedb/stemedb.env ] || install -m 0644 deploy/stemedb.env.example /etc/stemedb/stemedb.env
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed; start with: systemctl enable --now stemedb-api"
else
  echo "installed; systemd is not running here: start with /usr/local/bin/stemedb-api"
fi
