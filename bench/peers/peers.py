"""Starting and stopping the peers of bench/compare.py: the Flask stack under
gunicorn, nginx serving brisk's own answer bytes with gzip_static, and
Datasette serving the same SQLite file read-only (`--immutable`).

All run pinned to CPU 0 (`taskset -c 0`), like brisk. Used as a module by
bench/compare.py; `python3 bench/peers/peers.py nginx --brisk URL`,
`python3 bench/peers/peers.py flask [--cache off]` and
`python3 bench/peers/peers.py datasette` start one by hand and print its
address (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))
import load  # noqa: E402  (bench/load.py: fetch, free_port, cpu_ticks, ...)

VENV = Path(os.environ.get("BRISK_PEERS_VENV", "/tmp/brisk-peers-venv"))
DATASETTE_VENV = Path(os.environ.get("BRISK_DATASETTE_VENV", "/tmp/brisk-datasette-venv"))
DATASETTE_METADATA = HERE / "datasette" / "metadata.yaml"
NGINX_TEMPLATE = HERE / "nginx" / "nginx.conf.in"
# Bodies under brisk's compression.min_bytes get no .gz, as brisk sends
# them uncompressed.
MIN_GZIP_BYTES = 1024


@dataclass
class Peer:
    """A running server: its top process (the CPU of its descendants is
    counted too) and base URL."""

    name: str
    process: subprocess.Popen
    base: str
    log: Path
    scratch: Path | None = None
    extra: dict = field(default_factory=dict)


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                for child in children:
                    found.append(int(child))
                    todo.append(int(child))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def tree_ticks(pid: int) -> int:
    """utime + stime of a process and all its live descendants, plus the
    cutime + cstime of the top process (children it already reaped)."""
    total = 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])
    except FileNotFoundError:
        return 0
    for child in descendants(pid):
        total += load.cpu_ticks(child)
    return total


def wait_ready(peer: Peer, path: str, timeout: float = 60) -> Peer:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with {peer.process.returncode}; see {peer.log}")
        try:
            if load.fetch(peer.base + path)[0] == 200:
                return peer
        except OSError:
            pass
        time.sleep(0.1)
    stop(peer)
    raise RuntimeError(f"{peer.name} not ready in {timeout} s; see {peer.log}")


def stop(peer: Peer) -> None:
    if peer.process.poll() is None:
        # nginx: SIGQUIT is its graceful stop; gunicorn: SIGTERM
        peer.process.send_signal(signal.SIGQUIT if peer.name == "nginx" else signal.SIGTERM)
        try:
            peer.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            peer.process.kill()
            peer.process.wait()
    if peer.scratch and peer.name in ("nginx", "datasette"):
        shutil.rmtree(peer.scratch, ignore_errors=True)


# ---------------------------------------------------------------- Flask


def ensure_venv() -> None:
    if not (VENV / "bin" / "gunicorn").exists():
        subprocess.run(["sh", str(HERE / "setup_flask.sh"), str(VENV)], check=True)


def start_flask(sqlite_file: str, cache: bool, log_dir: Path, workers: int = 2, threads: int = 0) -> Peer:
    """gunicorn with `workers` workers, pinned to CPU 0, serving
    bench/peers/flask_app.py over `sqlite_file`: sync workers (gunicorn's
    default: no keep-alive), or with `threads` > 0 gthread workers of that
    many threads each (keep-alive)."""
    ensure_venv()
    port = load.free_port()
    name = f"flask-cache-{'on' if cache else 'off'}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    command = [
        "taskset", "-c", "0", str(VENV / "bin" / "gunicorn"),
        "-w", str(workers), "-b", f"127.0.0.1:{port}",
        "--chdir", str(HERE), "flask_app:app",
    ]
    if threads:
        command[4:4] = ["-k", "gthread", "--threads", str(threads)]
    env = os.environ | {"FLASK_PEER_DB": str(sqlite_file), "FLASK_PEER_CACHE": "on" if cache else "off"}
    load.log("$ " + " ".join(command))
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return wait_ready(Peer(name, process, f"http://127.0.0.1:{port}", log_path), "/healthz")


# ---------------------------------------------------------------- nginx


def static_file(root: Path, path_and_query: str) -> Path:
    """Where nginx.conf.in's `try_files /q$uri/_$args` finds an answer."""
    parts = urllib.parse.urlsplit(path_and_query)
    return root / "q" / parts.path.lstrip("/") / f"_{parts.query}"


def write_static(root: Path, bodies: dict[str, bytes]) -> dict[str, int]:
    """Writes each identity body, and a .gz of it made by `gzip -6 -n -k`
    for bodies of at least MIN_GZIP_BYTES. Returns the counts."""
    to_gzip = []
    for path_and_query, body in bodies.items():
        target = static_file(root, path_and_query)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        if len(body) >= MIN_GZIP_BYTES:
            to_gzip.append(str(target))
    for start in range(0, len(to_gzip), 500):
        subprocess.run(["gzip", "-6", "-n", "-k", "-f", *to_gzip[start : start + 500]], check=True)
    return {"files": len(bodies), "gz": len(to_gzip)}


def start_nginx(bodies: dict[str, bytes], log_dir: Path) -> Peer:
    """nginx (one worker, pinned to CPU 0) over a scratch directory holding
    `bodies` ({path?query: identity bytes}) and their .gz files."""
    if not shutil.which("nginx"):
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=True)
    scratch = Path(f"/tmp/brisk-nginx-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "tmp").mkdir(parents=True)
    root = scratch / "root"
    counts = write_static(root, bodies)
    port = load.free_port()
    config = NGINX_TEMPLATE.read_text()
    config = config.replace("@PREFIX@", str(scratch)).replace("@ROOT@", str(root)).replace("@PORT@", str(port))
    (scratch / "nginx.conf").write_text(config)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "nginx.log"
    command = ["taskset", "-c", "0", "nginx", "-p", str(scratch), "-c", str(scratch / "nginx.conf")]
    load.log("$ " + " ".join(command) + f"  ({counts['files']} files, {counts['gz']} .gz)")
    with open(log_path, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peer = Peer("nginx", process, f"http://127.0.0.1:{port}", log_path, scratch, counts)
    return wait_ready(peer, "/healthz")


# ---------------------------------------------------------------- Datasette

# `datasette serve` settings (all others are Datasette's defaults: 3 SQL
# threads, facets and suggestions allowed, default_cache_ttl 5 s, ...).
# sql_time_limit_ms: the default 1 s would cancel a query that waits long
# enough under 64 connections (Q5, Q7); 20 s is above wrk's --timeout.
# max_returned_rows: 1000 (also the default) so Q7 returns its 1000 rows
# in one page (_size may not exceed it).
DATASETTE_SETTINGS = {"sql_time_limit_ms": "20000", "max_returned_rows": "1000"}
# Table URLs: rows as objects with Datasette's envelope (`rows`, `next`,
# `next_url`, ...), the closest to brisk's {data, meta, links}; _nocount and
# _nofacet skip the count(*) and the facet suggestions (a dozen queries on a
# first page) that brisk's answer has no counterpart for.
_OBJECTS = "_shape=objects&_nocount=1&_nofacet=1"
# Question -> Datasette path ({id}: spread like brisk's; {next}: the `next`
# token of the same URL without `_next`, fetched when the server starts).
# Q5 and Q6 are the canned queries of datasette/metadata.yaml.
DATASETTE_QUESTIONS = {
    "Q1": f"/shop/users.json?_col=name&_col=email&_size=10&{_OBJECTS}",
    "Q2": f"/shop/products.json?category=electronics&_sort=price&_size=50&{_OBJECTS}&_next={{next}}",
    "Q3": f"/shop/users.json?id={{id}}&_col=name&_col=email&_col=profile_picture&{_OBJECTS}",
    "Q4": f"/shop/orders.json?user_id={{id}}&_size=20&{_OBJECTS}",
    "Q5": "/shop/q5_orders_with_user_items_products.json?_shape=objects&_json=user&_json=order_items",
    "Q6": "/shop/q6_orders_offset_90000.json?_shape=objects",
    "Q7": f"/shop/products.json?_size=1000&{_OBJECTS}",
}


def ensure_datasette_venv() -> None:
    if not (DATASETTE_VENV / "bin" / "datasette").exists():
        subprocess.run(["sh", str(HERE / "setup_datasette.sh"), str(DATASETTE_VENV)], check=True)


def datasette_versions() -> str:
    """datasette, uvicorn and SQLite versions of the venv, for reports."""
    script = (
        "import datasette.version, uvicorn, sqlite3, json; print(json.dumps(["
        "datasette.version.__version__, uvicorn.__version__, sqlite3.sqlite_version]))"
    )
    done = subprocess.run([str(DATASETTE_VENV / "bin" / "python"), "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        return "datasette (version unknown)"
    datasette, uvicorn, sqlite = json.loads(done.stdout)
    return f"datasette=={datasette}, uvicorn=={uvicorn} (h11), SQLite {sqlite}"


def start_datasette(sqlite_file: str, log_dir: Path, access_log: bool = False) -> Peer:
    """`datasette serve --immutable FILE --metadata datasette/metadata.yaml`,
    one process pinned to CPU 0, with DATASETTE_SETTINGS. The database must
    be named `shop` (the metadata's and the URLs' name): another file name
    is served through a symlink called shop.db. By default through
    datasette_serve.py, which is `datasette serve` with uvicorn's per-request
    access log off (the other servers keep none); access_log=True runs the
    `datasette` command itself."""
    ensure_datasette_venv()
    scratch = Path(f"/tmp/brisk-datasette-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    database = Path(sqlite_file).resolve()
    if database.stem != "shop":
        (scratch / "shop.db").symlink_to(database)
        database = scratch / "shop.db"
    port = load.free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "datasette.log"
    if access_log:
        program = [str(DATASETTE_VENV / "bin" / "datasette")]
    else:
        program = [str(DATASETTE_VENV / "bin" / "python"), str(HERE / "datasette_serve.py")]
    command = ["taskset", "-c", "0", *program, "serve", "--immutable", str(database)]
    command += ["--metadata", str(DATASETTE_METADATA), "--host", "127.0.0.1", "--port", str(port)]
    for name, value in DATASETTE_SETTINGS.items():
        command += ["--setting", name, value]
    load.log("$ " + " ".join(command))
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            command, cwd=scratch, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    peer = Peer("datasette", process, f"http://127.0.0.1:{port}", log_path, scratch)
    peer.extra = {"access_log": access_log}
    return wait_ready(peer, "/-/versions.json")


def datasette_paths(base: str, questions: list[str] | None = None) -> dict[str, str]:
    """DATASETTE_QUESTIONS with `{next}` resolved against the running
    Datasette at `base` (Q2: the token page 1 hands out, as a user paging
    through would follow it)."""
    paths = {}
    for qid, template in DATASETTE_QUESTIONS.items():
        if questions is not None and qid not in questions:
            continue
        if "{next}" in template:
            first = template.replace("&_next={next}", "")
            status, _, body = load.fetch(base + first)
            token = json.loads(body).get("next") if status == 200 else None
            if not token:
                raise RuntimeError(f"datasette: {first} gave status {status} and no `next` token")
            template = template.replace("{next}", urllib.parse.quote(str(token), safe="~"))
        paths[qid] = template
    return paths


def datasette_rows(body: bytes) -> list[dict]:
    return json.loads(body)["rows"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", choices=["flask", "nginx", "datasette"])
    parser.add_argument("--cache", choices=["on", "off"], default="on", help="Flask-Caching on or off")
    parser.add_argument("--db", default=str(load.SQLITE_FILE))
    parser.add_argument("--brisk", default="", help="nginx: a running brisk to copy the seven answers from")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.peer == "flask":
        peer = start_flask(args.db, args.cache == "on", Path("/tmp"))
    elif args.peer == "datasette":
        peer = start_datasette(args.db, Path("/tmp"))
        for qid, path in datasette_paths(peer.base).items():
            print(f"{qid} {peer.base}{path.replace('{id}', '123')}", flush=True)
    else:
        if not args.brisk:
            parser.error("nginx needs --brisk http://127.0.0.1:PORT")
        paths = [q.path.replace("{id}", "123") for q in load.QUESTIONS if "{cursor}" not in q.path]
        peer = start_nginx({p: load.fetch(args.brisk + p)[2] for p in paths}, Path("/tmp"))
    print(peer.base, flush=True)
    try:
        peer.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
