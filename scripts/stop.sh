#!/usr/bin/env bash
# Stop the node started by scripts/run.sh (SIGTERM: clean shutdown).
cd "$(dirname "$0")/.."
for p in gateway server; do
  if [ -f data/$p.pid ]; then
    pid=$(cat data/$p.pid)
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f data/$p.pid
  fi
done
