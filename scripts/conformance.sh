#!/usr/bin/env bash
# Fuzzes every operation of brisk's own OpenAPI document with schemathesis
# (PyPI), writes on: no 5xx, every answer as documented (status, content
# type, headers, body schema).
#   scripts/conformance.sh [examples per operation, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
venv=/tmp/brisk-schemathesis
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'schemathesis==4.*'; }
cargo build -q
work=$(mktemp -d)
trap 'kill $(cat "$work/pid") 2>/dev/null; rm -rf "$work"' EXIT
./target/debug/brisk load-demo --db "$work/shop.db" --scale 0.02 >/dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BRISK_WRITES=true ./target/debug/brisk serve --db "$work/shop.db" --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
"$venv/bin/st" run "http://127.0.0.1:$port/v1/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
  --max-examples "$examples" --workers 2 --phases fuzzing,stateful
