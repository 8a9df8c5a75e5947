#!/usr/bin/env bash
# Stops what quick-start started (by the PIDs it recorded), BESH first so it settles in-flight work.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${BESH_DATA_DIR:-./data}
for name in besh mock; do
  pidfile="$DATA_DIR/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
