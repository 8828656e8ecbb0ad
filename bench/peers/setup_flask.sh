#!/bin/sh
# Creates the virtual environment of the Flask peer (bench/peers/flask_app.py)
# from PyPI: Flask, Flask-Caching, Flask-Compress (with its brotli/zstd
# extras as it pulls them in) and gunicorn. Idempotent.
#
#   sh bench/peers/setup_flask.sh [VENV]      # default /tmp/brisk-peers-venv
set -eu
VENV="${1:-/tmp/brisk-peers-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    flask flask-caching flask-compress gunicorn
"$VENV/bin/pip" freeze --disable-pip-version-check | grep -i -E '^(flask|flask-caching|flask-compress|gunicorn|werkzeug|brotli|zstandard)==' || true
