#!/bin/sh
# WAL archive command: upload one compressed sealed segment to S3 (or any
# S3-compatible store) with the aws CLI.
#
#   stemedb-server --wal-archive-command \
#     '/usr/local/lib/stemedb/archive-to-s3.sh %p %f s3://bucket/stemedb/node-1'
#
# Needs `aws` on PATH with credentials from its usual sources (instance
# role, AWS_PROFILE, ...); AWS_ENDPOINT_URL selects a non-AWS endpoint.
# An existing object with the same name is left alone when its size
# matches (a retry after the server crashed before noting success) and is
# an error otherwise. Exit 0 only after the upload succeeded; the server
# retries with backoff on anything else and keeps the segment meanwhile.
# Restore: `aws s3 sync s3://bucket/stemedb/node-1 DIR` then
# `stemedb restore BACKUP --data-dir D --wal-archive DIR`.
set -eu
src=$1 name=$2 url=${3%/}
command -v aws >/dev/null || { echo "archive-to-s3: aws CLI not found" >&2; exit 1; }
size=$(stat -c %s "$src")
if existing=$(aws s3api head-object --bucket "$(echo "$url" | sed 's|^s3://||; s|/.*||')" \
      --key "$(echo "$url/$name" | sed 's|^s3://[^/]*/||')" \
      --query ContentLength --output text 2>/dev/null); then
  [ "$existing" = "$size" ] && exit 0
  echo "archive-to-s3: $url/$name exists with $existing bytes, not $size" >&2
  exit 1
fi
aws s3 cp --only-show-errors "$src" "$url/$name"
