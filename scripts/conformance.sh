#!/usr/bin/env bash
# Fuzzes every operation of brisk's own OpenAPI document with schemathesis
# (PyPI), writes on, with all its checks and phases (settings in
# scripts/schemathesis.toml, and scripts/schemathesis_hooks.py for the
# refusals OpenAPI cannot state): no 5xx, every answer as documented
# (status, content type, headers, body schema), valid requests accepted and
# invalid ones refused. The SQLite and PostgreSQL runs go side by side.
#   scripts/conformance.sh [examples per operation, default 40] [sqlite|postgres|both, default both] [demo|chinook|both, default both]
# PostgreSQL: throwaway databases on postgres://root@127.0.0.1:5432 (TEST_POSTGRES_URL's server).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
which=${2:-both}
datasets=${3:-both}
venv=/tmp/brisk-schemathesis
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv" || { apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
cargo build -q
work=$(mktemp -d)
pg_admin=${TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}
chinook=tests/fixtures/chinook
cleanup() {
  for pid in "$work"/*/pid; do kill "$(cat "$pid" 2>/dev/null)" 2>/dev/null || true; done
  for db in "$work"/*/pg_db; do psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $(cat "$db")" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

load() { # $1: demo|chinook, $2: sqlite|postgres, $3: the run's directory; prints the database URL
  local dir=$3 pg_db="brisk_conformance_$$_$1"
  case "$1-$2" in
    demo-sqlite)
      ./target/debug/brisk load-demo --db "$dir/shop.db" --scale 0.02 --force >/dev/null 2>&1
      echo "$dir/shop.db" ;;
    chinook-sqlite)
      cp "$chinook/Chinook_Sqlite.sqlite" "$dir/chinook.sqlite" && chmod u+w "$dir/chinook.sqlite"
      echo "$dir/chinook.sqlite" ;;
    demo-postgres)
      echo "$pg_db" >"$dir/pg_db"
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" >/dev/null
      ./target/debug/brisk load-demo --db "${pg_admin%/*}/$pg_db" --scale 0.02 --force >/dev/null 2>&1
      echo "${pg_admin%/*}/$pg_db" ;;
    chinook-postgres)
      echo "$pg_db" >"$dir/pg_db"
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" >/dev/null
      sed '/^DROP DATABASE/d; /^CREATE DATABASE/d; /^\\c /d' "$chinook/Chinook_PostgreSql.sql" \
        | psql -q -v ON_ERROR_STOP=1 "${pg_admin%/*}/$pg_db" >/dev/null
      echo "${pg_admin%/*}/$pg_db" ;;
  esac
}

fuzz() { # $1: demo|chinook, $2: sqlite|postgres; fails if schemathesis finds anything
  echo "== $1 on $2"
  local dir="$work/$1-$2" url port status=0
  mkdir -p "$dir"
  url=$(load "$1" "$2" "$dir")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Limits that OpenAPI cannot state (how many filters one request holds,
  # how many rows an answer with its embeds holds) are raised for the run;
  # the server's own tests hold it to them.
  BRISK_WRITES=true BRISK_LIMITS_MAX_FILTERS=10000 BRISK_LIMITS_MAX_ANSWER_ROWS=1000000 \
    ./target/debug/brisk serve --db "$url" --listen "127.0.0.1:$port" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=scripts \
  "$venv/bin/st" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
    --checks all --max-examples "$examples" --workers 1 \
    --phases examples,coverage,fuzzing,stateful || status=1
  kill "$(cat "$dir/pid")"
  return $status
}

lane() { # every chosen dataset on database $1, one after the other
  local status=0
  for dataset in demo chinook; do
    [ "$datasets" = both ] || [ "$datasets" = "$dataset" ] || continue
    fuzz "$dataset" "$1" || status=1
  done
  return $status
}

lanes=()
for database in sqlite postgres; do
  [ "$which" = both ] || [ "$which" = "$database" ] || continue
  lane "$database" >"$work/$database.out" 2>&1 &
  lanes+=("$database:$!")
done
status=0
for entry in "${lanes[@]}"; do
  database=${entry%%:*}
  wait "${entry#*:}" || status=1
  cat "$work/$database.out"
done
echo "conformance: $([ $status = 0 ] && echo 'nothing found' || echo 'FAILURES above')"
exit $status
