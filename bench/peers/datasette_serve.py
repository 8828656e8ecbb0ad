"""`datasette serve` with uvicorn's access log off, for bench/compare.py.

Datasette's own command line (datasette.cli), unchanged, except that the
`uvicorn.run` it calls gets `access_log=False`: `datasette serve` has no
option for that and logs a line per request to stdout, which brisk (no
request log), nginx (`access_log off`) and gunicorn (no access log by
default) do not do. Everything else (--immutable, --metadata, --setting,
the ASGI app, the SQL thread pool) is `datasette serve` as shipped.

    /tmp/brisk-datasette-venv/bin/python bench/peers/datasette_serve.py \
        serve --immutable target/bench/shop.db --port 8001
"""

import sys

import uvicorn
from datasette import cli

_run = uvicorn.run


def run_without_access_log(app, **kwargs):
    return _run(app, **{**kwargs, "access_log": False})


uvicorn.run = run_without_access_log

if __name__ == "__main__":
    sys.exit(cli.cli(sys.argv[1:], prog_name="datasette"))
