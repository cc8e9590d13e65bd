#!/bin/sh
# WAL archive command: copy one compressed sealed segment into a directory
# (a mounted volume, NFS, ...), durably and without ever overwriting a
# different file of the same name.
#
#   stemedb-server --wal-archive-command \
#     '/usr/local/lib/stemedb/archive-to-dir.sh %p %f /srv/stemedb-wal-archive'
#
# %p is the path of the .zst the server wrote, %f its file name. Exit 0
# only once the copy is complete and fsync'd; the server retries otherwise.
set -eu
src=$1 name=$2 dir=$3
mkdir -p "$dir"
dst=$dir/$name
if [ -e "$dst" ]; then
  # Archived before (e.g. the server crashed before noting it): fine if
  # identical, an error if not - never replace archived history.
  cmp -s "$src" "$dst" && exit 0
  echo "archive-to-dir: $dst exists with different content" >&2
  exit 1
fi
tmp=$dir/.$name.tmp.$$
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
sync "$tmp"
mv "$tmp" "$dst"
sync "$dir"
