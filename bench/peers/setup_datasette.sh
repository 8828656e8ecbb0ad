#!/bin/sh
# Creates the virtual environment of the Datasette peer from PyPI:
# datasette (with its own uvicorn/ASGI stack; no extra plugins). Idempotent.
#
#   sh bench/peers/setup_datasette.sh [VENV]   # default /tmp/brisk-datasette-venv
set -eu
VENV="${1:-/tmp/brisk-datasette-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check datasette
"$VENV/bin/pip" freeze --disable-pip-version-check | grep -i -E '^(datasette|uvicorn|h11|httptools|uvloop|pyyaml)==' || true
