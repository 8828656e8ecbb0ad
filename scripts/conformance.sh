#!/usr/bin/env bash
# Fuzzes every operation of brisk's own OpenAPI document with schemathesis
# (PyPI), writes on, with all its checks and phases (settings in
# scripts/schemathesis.toml): no 5xx, every answer as documented (status,
# content type, headers, body schema), valid requests accepted and invalid
# ones refused.
#   scripts/conformance.sh [examples per operation, default 40] [sqlite|postgres|both, default both] [demo|chinook|both, default both]
# PostgreSQL: a throwaway database on postgres://root@127.0.0.1:5432 (TEST_POSTGRES_URL's server).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
which=${2:-both}
datasets=${3:-both}
venv=/tmp/brisk-schemathesis
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'schemathesis==4.*'; }
cargo build -q
work=$(mktemp -d)
pg_admin=${TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}
pg_db=brisk_conformance_$$
chinook=tests/fixtures/chinook
status=0
cleanup() {
  kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true
  psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

load() { # $1: demo|chinook, $2: sqlite|postgres; prints the database URL
  case "$1-$2" in
    demo-sqlite)
      ./target/debug/brisk load-demo --db "$work/shop.db" --scale 0.02 --force >/dev/null 2>&1
      echo "$work/shop.db" ;;
    chinook-sqlite)
      cp "$chinook/Chinook_Sqlite.sqlite" "$work/chinook.sqlite" && chmod u+w "$work/chinook.sqlite"
      echo "$work/chinook.sqlite" ;;
    demo-postgres)
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" >/dev/null
      ./target/debug/brisk load-demo --db "${pg_admin%/*}/$pg_db" --scale 0.02 --force >/dev/null 2>&1
      echo "${pg_admin%/*}/$pg_db" ;;
    chinook-postgres)
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" >/dev/null
      sed '/^DROP DATABASE/d; /^CREATE DATABASE/d; /^\\c /d' "$chinook/Chinook_PostgreSql.sql" \
        | psql -q -v ON_ERROR_STOP=1 "${pg_admin%/*}/$pg_db" >/dev/null
      echo "${pg_admin%/*}/$pg_db" ;;
  esac
}

fuzz() { # $1: demo|chinook, $2: sqlite|postgres
  echo "== $1 on $2"
  local url port
  url=$(load "$1" "$2")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Limits that OpenAPI cannot state (how many filters one request holds,
  # how many rows an answer with its embeds holds) are raised for the run;
  # the server's own tests hold it to them.
  BRISK_WRITES=true BRISK_LIMITS_MAX_FILTERS=10000 BRISK_LIMITS_MAX_ANSWER_ROWS=1000000 \
    ./target/debug/brisk serve --db "$url" --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=scripts \
  "$venv/bin/st" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
    --checks all --max-examples "$examples" --workers 1 \
    --phases examples,coverage,fuzzing,stateful || status=1
  kill "$(cat "$work/pid")"
}

for dataset in demo chinook; do
  [ "$datasets" = both ] || [ "$datasets" = "$dataset" ] || continue
  for database in sqlite postgres; do
    [ "$which" = both ] || [ "$which" = "$database" ] || continue
    fuzz "$dataset" "$database"
  done
done
exit $status
