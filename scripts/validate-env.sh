#!/usr/bin/env bash
# Checks the settings of a Docker deployment before `make up` / `make up-8gpu`:
#   scripts/validate-env.sh 1gpu|8gpu
# Reads .env (if any) over the environment's defaults, as docker compose does.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-1gpu}
errors=0
fail() { echo "  ✗ $*" >&2; errors=$((errors + 1)); }
ok() { echo "  ✓ $*"; }
warn() { echo "  ! $*"; }

if [ -f .env ]; then
  set -a; # shellcheck disable=SC1091
  . ./.env; set +a
  ok ".env found"
else
  warn "no .env: defaults are used (cp env.example .env to change them)"
fi

MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
MAX_WORKERS=${MAX_WORKERS:-128}
MAX_CONCURRENT_BATCHES=${MAX_CONCURRENT_BATCHES:-10}
PORT=${PORT:-5000}

[ -n "$MODEL" ] && ok "MODEL=$MODEL" || fail "MODEL is empty"
if [[ "$MAX_WORKERS" == auto || "$MAX_WORKERS" =~ ^[1-9][0-9]*$ ]]; then ok "MAX_WORKERS=$MAX_WORKERS"; else fail "MAX_WORKERS must be a positive integer or auto (got '$MAX_WORKERS')"; fi
[[ "$MAX_CONCURRENT_BATCHES" =~ ^[1-9][0-9]*$ ]] && ok "MAX_CONCURRENT_BATCHES=$MAX_CONCURRENT_BATCHES" || fail "MAX_CONCURRENT_BATCHES must be a positive integer"
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] && ok "PORT=$PORT" || fail "PORT must be 1–65535"

if command -v docker >/dev/null 2>&1; then
  docker compose version >/dev/null 2>&1 && ok "docker compose available" || fail "docker compose (v2) is missing"
else
  fail "docker is not installed"
fi

gpus_needed=1
[ "$mode" = 8gpu ] && gpus_needed=8
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  [ "$gpus" -ge "$gpus_needed" ] && ok "$gpus GPU(s) visible" || fail "$gpus GPU(s) visible, $gpus_needed needed"
else
  warn "nvidia-smi not found: cannot check for $gpus_needed GPU(s) (docker-compose-mock.yml needs none)"
fi

if [ "$mode" = 8gpu ]; then
  wc=$(sed -n 's/^[[:space:]]*worker_connections[[:space:]]*\([0-9]*\);.*/\1/p' nginx-8gpu.conf | head -1)
  if [ "$MAX_WORKERS" = auto ]; then
    warn "MAX_WORKERS=auto behind nginx measures nginx as one upstream; consider listing the eight servers in OPENAI_API_BASE instead"
  elif [ -n "$wc" ] && [ "$wc" -gt $((MAX_WORKERS * 2)) ]; then
    ok "nginx worker_connections $wc > 2 × MAX_WORKERS"
  else
    fail "nginx worker_connections (${wc:-?}) must exceed 2 × MAX_WORKERS ($MAX_WORKERS): one connection from BESH and one to vLLM per request"
  fi
fi

if [ "$errors" -gt 0 ]; then echo "$errors problem(s) found." >&2; exit 1; fi
echo "Environment OK for the $mode deployment."
