"""Starting and stopping the peers of bench/compare.py: the Flask stack under
gunicorn, and nginx serving brisk's own answer bytes with gzip_static.

Both run pinned to CPU 0 (`taskset -c 0`), like brisk. Used as a module by
bench/compare.py; `python3 bench/peers/peers.py nginx --source DIR` and
`python3 bench/peers/peers.py flask [--cache off]` start one by hand and
print its address (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
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
    if peer.scratch and peer.name == "nginx":
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", choices=["flask", "nginx"])
    parser.add_argument("--cache", choices=["on", "off"], default="on", help="Flask-Caching on or off")
    parser.add_argument("--db", default=str(load.SQLITE_FILE))
    parser.add_argument("--brisk", default="", help="nginx: a running brisk to copy the seven answers from")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.peer == "flask":
        peer = start_flask(args.db, args.cache == "on", Path("/tmp"))
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
