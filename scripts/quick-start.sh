#!/usr/bin/env bash
# Starts BESH in the background on $PORT. With no OPENAI_API_BASE set and nothing answering on
# :8000, it first starts the simulated inference server (`besh mock`) there and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-5000}
# Where the simulated inference server goes when none answers (the original's vLLM port).
MOCK_PORT=${MOCK_PORT:-8000}
DATA_DIR=${BESH_DATA_DIR:-./data}
mkdir -p "$DATA_DIR"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # url, seconds
  for _ in $(seq 1 "$(( $2 * 10 ))"); do
    if node -e "fetch('$1').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

if [ -f "$DATA_DIR/besh.pid" ] && kill -0 "$(cat "$DATA_DIR/besh.pid")" 2>/dev/null; then
  echo "BESH is already running (pid $(cat "$DATA_DIR/besh.pid")) on http://localhost:$PORT/ — 'make stop' stops it."
  exit 0
fi
if listening "$PORT"; then
  echo "Port $PORT is taken by another program; set PORT=… to use another one." >&2
  exit 1
fi

if [ -z "${OPENAI_API_BASE:-}" ] && ! listening "$MOCK_PORT"; then
  echo "No inference server answers on :$MOCK_PORT and OPENAI_API_BASE is unset: starting the simulated one (besh mock) there."
  nohup node dist/cli/main.js mock --port "$MOCK_PORT" --latency-ms 50 --per-token-ms 1 >"$DATA_DIR/mock.log" 2>&1 &
  echo $! >"$DATA_DIR/mock.pid"
  wait_for "http://127.0.0.1:$MOCK_PORT/health" 10 || { echo "besh mock did not start; see $DATA_DIR/mock.log" >&2; exit 1; }
fi
if [ -z "${OPENAI_API_BASE:-}" ] && [ "$MOCK_PORT" != 8000 ]; then export OPENAI_API_BASE="http://127.0.0.1:$MOCK_PORT/v1"; fi

HOST=${HOST:-0.0.0.0} PORT=$PORT BESH_DATA_DIR=$DATA_DIR nohup node dist/cli/main.js serve >>"$DATA_DIR/besh.log" 2>&1 &
echo $! >"$DATA_DIR/besh.pid"
if ! wait_for "http://127.0.0.1:$PORT/health" 20; then
  echo "BESH did not become healthy; last log lines:" >&2
  tail -n 20 "$DATA_DIR/besh.log" >&2
  exit 1
fi
echo "BESH is running: dashboard http://localhost:$PORT/ , API base URL http://localhost:$PORT/v1"
echo "Logs: make logs · Stop: make stop"
if node -e "fetch('http://127.0.0.1:$PORT/v1/me').then(r=>r.json()).then(b=>process.exit(b.auth==='open'?0:1),()=>process.exit(1))" 2>/dev/null; then
  echo "Warning: no API key is configured, so anyone who can reach port $PORT can read, cancel and delete"
  echo "every batch. Create one: node dist/cli/main.js keys create --project NAME --admin --data-dir $DATA_DIR"
fi
