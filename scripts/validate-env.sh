#!/usr/bin/env bash
# Checks the settings of a Docker deployment before `make up` / `make up-8gpu` / `make up-cluster`:
#   scripts/validate-env.sh 1gpu|8gpu|cluster
# Reads .env (if any) over the environment's defaults, as docker compose does.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-1gpu}
case "$mode" in 1gpu | 8gpu | cluster) ;; *) echo "usage: $0 1gpu|8gpu|cluster" >&2; exit 2 ;; esac
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
if [ "$mode" = cluster ]; then
  : # the cluster sends to OPENAI_API_BASE (default: its own mock); it needs no GPU here
elif command -v nvidia-smi >/dev/null 2>&1; then
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

if [ "$mode" = cluster ]; then
  # What docker-compose-cluster.yml interpolates, with its defaults.
  defaults=0
  AWS_ACCESS_KEY_ID_SET=${AWS_ACCESS_KEY_ID+set}
  AWS_SECRET_ACCESS_KEY_SET=${AWS_SECRET_ACCESS_KEY+set}
  [ -z "${POSTGRES_PASSWORD:-}" ] && defaults=1
  [ -z "${AWS_ACCESS_KEY_ID:-}" ] && defaults=1
  [ -z "${AWS_SECRET_ACCESS_KEY:-}" ] && defaults=1
  POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-besh-change-me}
  AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-besh}
  AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-besh-secret-change-me}
  AWS_REGION=${AWS_REGION:-us-east-1}

  # The password is put into BESH_DATABASE_URL as is: only characters a URL carries unescaped.
  if [[ "$POSTGRES_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]]; then ok "POSTGRES_PASSWORD set (URL-safe)"; else fail "POSTGRES_PASSWORD may only use letters, digits and - . _ ~ (it goes into postgres://besh:PASSWORD@postgres:5432/besh)"; fi
  if [ "$AWS_ACCESS_KEY_ID_SET" != "$AWS_SECRET_ACCESS_KEY_SET" ]; then
    fail "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (for the defaults)"
  fi
  # They are MinIO's root user too: MinIO wants a user of >= 3 and a password of >= 8 characters.
  [ "${#AWS_ACCESS_KEY_ID}" -ge 3 ] && ok "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" || fail "AWS_ACCESS_KEY_ID needs at least 3 characters (MinIO's root user)"
  [ "${#AWS_SECRET_ACCESS_KEY}" -ge 8 ] && ok "AWS_SECRET_ACCESS_KEY set" || fail "AWS_SECRET_ACCESS_KEY needs at least 8 characters (MinIO's root password)"
  [[ "$AWS_REGION" =~ ^[a-z0-9-]+$ ]] && ok "AWS_REGION=$AWS_REGION" || fail "AWS_REGION must look like us-east-1 (got '$AWS_REGION')"
  [ "$defaults" = 1 ] && warn "default passwords in use (POSTGRES_PASSWORD / AWS_*): fine on a laptop, set your own in .env anywhere else"

  # When set (e.g. for `besh keys create` run from this machine against the cluster), they must
  # name what a cluster shares: a PostgreSQL database and an S3 bucket, not SQLite or a directory.
  if [ -n "${BESH_DATABASE_URL:-}" ]; then
    if [[ "$BESH_DATABASE_URL" =~ ^postgres(ql)?://[^/@]+(@[^/]+)?/[^/?]+([?].*)?$ ]]; then ok "BESH_DATABASE_URL is a PostgreSQL URL"
    elif [[ "$BESH_DATABASE_URL" == sqlite:* ]]; then fail "BESH_DATABASE_URL=sqlite:… cannot be shared by replicas: a cluster needs postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    else fail "BESH_DATABASE_URL must look like postgres://USER:PASSWORD@HOST:PORT/DATABASE (got '$BESH_DATABASE_URL')"; fi
  fi
  if [ -n "${BESH_BLOB_URL:-}" ]; then
    if [[ "$BESH_BLOB_URL" =~ ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$ ]]; then ok "BESH_BLOB_URL is an S3 URL"
    elif [[ "$BESH_BLOB_URL" == file:* ]]; then fail "BESH_BLOB_URL=file:… is one machine's directory: a cluster needs s3://BUCKET/PREFIX"
    else fail "BESH_BLOB_URL must look like s3://BUCKET/PREFIX with a valid bucket name (got '$BESH_BLOB_URL')"; fi
  fi
  if [ -n "${BESH_DATABASE_URL:-}${BESH_BLOB_URL:-}" ]; then
    warn "docker-compose-cluster.yml's replicas use its own postgres and minio; BESH_DATABASE_URL / BESH_BLOB_URL here serve besh commands run on this machine"
  fi
  if [ -n "${AWS_ENDPOINT_URL:-}" ] && ! [[ "$AWS_ENDPOINT_URL" =~ ^https?://[^/]+ ]]; then fail "AWS_ENDPOINT_URL must be an http(s) URL (got '$AWS_ENDPOINT_URL')"; fi
  if [ -n "${OPENAI_API_BASE:-}" ]; then
    if [[ "$OPENAI_API_BASE" =~ //(localhost|127\.0\.0\.1)[:/] ]]; then
      fail "OPENAI_API_BASE=$OPENAI_API_BASE: inside a container localhost is the container itself; use a name or address the replicas can reach (or leave it unset for the cluster's mock)"
    else ok "OPENAI_API_BASE=$OPENAI_API_BASE"; fi
  else
    warn "OPENAI_API_BASE unset: the replicas send to the cluster's simulated inference server (mock)"
  fi

  # nginx-cluster.conf: the upload limit follows BESH_MAX_FILE_BYTES, the replicas are the compose services.
  max_file=${BESH_MAX_FILE_BYTES:-536870912}
  body_mb=$(sed -n 's/^[[:space:]]*client_max_body_size[[:space:]]*\([0-9]*\)m;.*/\1/p' nginx-cluster.conf | sort -n | tail -1)
  if [ -n "$body_mb" ] && [ $((body_mb * 1024 * 1024)) -ge "$max_file" ]; then ok "nginx client_max_body_size ${body_mb}m >= BESH_MAX_FILE_BYTES ($max_file)"
  else fail "nginx-cluster.conf's client_max_body_size (${body_mb:-?}m) is below BESH_MAX_FILE_BYTES ($max_file): raise it for /v1/files"; fi
  for r in besh-1 besh-2 besh-3; do
    grep -Eq "^[[:space:]]*server $r:5000 " nginx-cluster.conf || fail "nginx-cluster.conf does not list the replica $r:5000"
  done
fi

if [ "$errors" -gt 0 ]; then echo "$errors problem(s) found." >&2; exit 1; fi
echo "Environment OK for the $mode deployment."
