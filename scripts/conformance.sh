#!/usr/bin/env bash
# Fuzzes every operation of brisk's own OpenAPI document with schemathesis
# (PyPI), writes on, on SQLite and on PostgreSQL: no 5xx, every answer as
# documented (status, content type, headers, body schema).
#   scripts/conformance.sh [examples per operation, default 40] [sqlite|postgres|both, default both]
# PostgreSQL: a throwaway database on postgres://root@127.0.0.1:5432 (TEST_POSTGRES_URL's server).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
which=${2:-both}
venv=/tmp/brisk-schemathesis
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'schemathesis==4.*'; }
cargo build -q
work=$(mktemp -d)
pg_admin=${TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}
pg_db=brisk_conformance_$$
cleanup() {
  kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true
  psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fuzz() { # $1: database URL
  ./target/debug/brisk load-demo --db "$1" --scale 0.02 --force >/dev/null 2>&1
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BRISK_WRITES=true ./target/debug/brisk serve --db "$1" --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  "$venv/bin/st" run "http://127.0.0.1:$port/v1/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
    --max-examples "$examples" --workers 2 --phases fuzzing,stateful
  kill "$(cat "$work/pid")"
}

if [ "$which" != postgres ]; then
  echo "== SQLite"
  fuzz "$work/shop.db"
fi
if [ "$which" != sqlite ]; then
  echo "== PostgreSQL"
  psql "$pg_admin" -qc "CREATE DATABASE $pg_db" >/dev/null
  fuzz "${pg_admin%/*}/$pg_db"
fi
