#!/usr/bin/env python3
"""Load test: brisk answering the seven questions of the demo dataset.

Measures whole HTTP requests with wrk for the questions of
docs/dataset.md (Q1 to Q7, plus Q6c: the rows of Q6 by cursor) over
SQLite and PostgreSQL, the way the peers table in BENCHMARKS.md measured the peers: the
server pinned to CPU 0, `wrk -t1 -c64 -d10s --latency` pinned to CPU 1, the
demo shop at scale 1, seed 42, `Accept-Encoding: gzip` (Q7: `br, gzip`).

Usage, from the repository root:

    python3 bench/load.py                      # both databases, all questions
    python3 bench/load.py --db sqlite --questions Q1,Q3 --duration 5
    python3 bench/load.py --no-build --connections 32
    python3 bench/load.py --source /tmp/brisk-head   # build and measure another checkout
    python3 bench/load.py --server-env BRISK_CACHE_ENABLED=false --tag nocache

What it does:

1. installs wrk if missing (`apt-get install -y wrk`) and runs
   `cargo build --release` (skip with --no-build);
2. prepares the data: `target/bench/shop.db` and the PostgreSQL database
   `brisk_bench` (created with `brisk load-demo` when absent);
3. per database and question: starts `brisk serve` on a free port
   (taskset -c 0) and waits for /readyz (one server per question by
   default, see --server-per), warms up with --warmup requests from 8
   concurrent Python clients, waits until the 1-minute load average is
   below --max-load (default 0.6, polled every 15 s for up to 10 minutes),
   and measures one wrk run: requests/s, p50 and p99 from wrk's latency
   distribution, non-2xx responses, body bytes per response, and the
   server's CPU time per request (utime + stime of /proc/<pid>/stat over the
   run; for PostgreSQL also the CPU of brisk's backends);
4. prints a markdown table and writes it, with the command line, machine,
   commit and load averages, to bench/results/<date>-load.md; wrk's raw
   outputs and the server logs go to bench/results/raw/ (git-ignored).

Why a fresh server per question, warmed up without wrk: when wrk stops it
closes its connections with requests in flight, and brisk (seen at ae20993,
and at f1b0f78 with the response cache off) loses a SQLite pool connection
for every request cancelled that way (src/db/sqlite.rs `run`: the connection
is handed back only after the await), so after a wrk run or two SQLite
requests panic ("a permit guarantees an idle connection", 500). `--server-per database` keeps one
server for all questions, as soon as that is fixed (or to measure a warm
cache across questions).

Requires Python 3.11 (standard library only), taskset, psql for PostgreSQL,
and PostgreSQL at 127.0.0.1:5432 reachable as root (see --pg-url).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The brisk checkout that is built and measured (--source; default: this one).
SOURCE = ROOT
BRISK = SOURCE / "target" / "release" / "brisk"
SQLITE_FILE = ROOT / "target" / "bench" / "shop.db"
RESULTS = ROOT / "bench" / "results"
RAW = RESULTS / "raw"
SPREAD_LUA = ROOT / "bench" / "wrk" / "spread.lua"
SCALE, SEED = 1, 42
# Ids used by the spread questions: the users of the scale-1 shop.
SPREAD_IDS = (1, 10_000)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Question:
    id: str
    path: str  # may hold {id}, spread over SPREAD_IDS; Q6c's is found at run time
    encoding: str = "gzip"


QUESTIONS = [
    Question("Q1", "/v1/users?page=1&limit=10&fields=name,email"),
    Question("Q2", "/v1/products?page=2&limit=50&category=electronics&sort=price_asc"),
    Question("Q3", "/v1/users/{id}?fields=name,email,profile_picture"),
    Question("Q4", "/v1/users/{id}/orders?limit=20"),
    Question("Q5", "/v1/orders?limit=50&include=user,order_items.product"),
    Question("Q6", "/v1/orders?page=1801&limit=50"),
    # The same rows as Q6, by the cursor that page 1800 hands out.
    Question("Q6c", "/v1/orders?limit=50&cursor={cursor}"),
    Question("Q7", "/v1/products?limit=1000", encoding="br, gzip"),
]


@dataclass
class Result:
    question: str
    database: str
    load_before: float
    requests: int = 0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: str = ""
    server_cpu_us: float = 0.0
    db_cpu_us: float | None = None  # PostgreSQL backends serving brisk
    body_bytes: float = 0.0
    content_encoding: str = ""
    cache: str = ""  # what Server-Timing says after the warm-up


@dataclass
class Server:
    database: str  # "sqlite" or "postgres"
    url: str  # the --db argument
    process: subprocess.Popen
    base: str  # http://127.0.0.1:port
    log: Path


# ---------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[load.py {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    log("$ " + shlex.join(command))
    return subprocess.run(command, check=True, **kwargs)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet(max_load: float, poll: float = 15, limit: float = 600) -> float:
    """Waits until the 1-minute load average is below max_load; returns the
    figure seen when going ahead (after `limit` seconds it goes ahead anyway)."""
    started = time.monotonic()
    while True:
        load = load_average()
        if load < max_load:
            return load
        waited = time.monotonic() - started
        if waited >= limit:
            log(f"WARNING: load average still {load:.2f} after {waited:.0f} s; measuring anyway")
            return load
        log(f"load average {load:.2f} >= {max_load}; waiting ({waited:.0f} s so far)")
        time.sleep(poll)


def fetch(url: str, encoding: str | None = None) -> tuple[int, dict, bytes]:
    """One GET: status, headers (lower-case names), body as sent on the wire."""
    request = urllib.request.Request(url)
    if encoding:
        request.add_header("Accept-Encoding", encoding)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_commit() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=SOURCE, capture_output=True, text=True
    ).stdout.strip() or "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=SOURCE, capture_output=True, text=True
    ).stdout.rstrip("\n")
    if not dirty:
        return commit
    # Name the dirty tree too: a hash of the diff and of the untracked files.
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=SOURCE, capture_output=True).stdout
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=SOURCE, capture_output=True
    ).stdout
    digest = hashlib.sha256(diff)
    for name in sorted(untracked.split(b"\0")):
        if name and not name.startswith(b"bench/results/") and (SOURCE / name.decode()).is_file():
            digest.update(name + (SOURCE / name.decode()).read_bytes())
    paths = [line[3:] for line in dirty.splitlines()]
    listed = ", ".join(paths) if len(paths) <= 5 else f"{len(paths)} changed paths"
    return f"{commit}-dirty ({listed}; working tree sha256 {digest.hexdigest()[:12]})"


def binary_digest() -> str:
    """Names the binary under test, to notice a rebuild during the run."""
    return hashlib.sha256(BRISK.read_bytes()).hexdigest()[:12]


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs (nproc {os.cpu_count()}), {model}, Linux {platform.release()}"


# ---------------------------------------------------------------- setup


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    log("wrk is missing; installing it")
    try:
        run(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        run(["apt-get", "update"], stdout=subprocess.DEVNULL)
        run(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL)


def build() -> None:
    run(["cargo", "build", "--release"], cwd=SOURCE)


def psql(url: str, sql: str) -> str:
    return subprocess.run(
        ["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def prepare_sqlite() -> str:
    if not SQLITE_FILE.exists():
        SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
        run([str(BRISK), "load-demo", "--db", str(SQLITE_FILE), "--scale", str(SCALE), "--seed", str(SEED)])
    return str(SQLITE_FILE)


def prepare_postgres(url: str, admin_db: str) -> str:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    exists = psql(with_database(url, admin_db), f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists:
        log(f"creating PostgreSQL database {name}")
        psql(with_database(url, admin_db), f'CREATE DATABASE "{name}"')
    if psql(url, "SELECT to_regclass('public.orders') IS NOT NULL") != "t":
        run([str(BRISK), "load-demo", "--db", url, "--scale", str(SCALE), "--seed", str(SEED), "--force"])
    return url


# ---------------------------------------------------------------- server


def start_server(database: str, url: str, label: str, env: dict[str, str]) -> Server:
    port = free_port()
    RAW.mkdir(parents=True, exist_ok=True)
    log_path = RAW / f"{database}-{label}-server.log"
    command = ["taskset", "-c", "0", str(BRISK), "serve", "--db", url, "--listen", f"127.0.0.1:{port}"]
    log("$ " + shlex.join(command))
    with open(log_path, "wb") as out:
        # taskset execs brisk, so the pid is brisk's; its own session keeps a
        # Ctrl-C in the terminal from reaching it before we stop it.
        process = subprocess.Popen(
            command,
            cwd=SOURCE,
            env=os.environ | env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(database, url, process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"brisk exited with {process.returncode}; see {log_path}")
        try:
            if fetch(server.base + "/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"brisk did not become ready in 60 s; see {log_path}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)  # graceful shutdown
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    log(f"stopped the {server.database} server (exit {server.process.returncode})")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, all threads, in clock ticks (0 if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def backend_pids(server: Server) -> list[int]:
    """The PostgreSQL backends of brisk's pool (none for SQLite)."""
    if server.database != "postgres":
        return []
    rows = psql(server.url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'brisk'")
    return [int(pid) for pid in rows.split()]


# ---------------------------------------------------------------- questions


def resolve_path(server: Server, question: Question) -> str:
    """The path to load: Q6c's cursor comes from page 1800 of this server
    (cursors are signed with a secret made at start-up)."""
    if "{cursor}" not in question.path:
        return question.path
    status, _, body = fetch(server.base + "/v1/orders?page=1800&limit=50")
    cursor = json.loads(body)["meta"].get("next_cursor") if status == 200 else None
    if not cursor:
        raise RuntimeError(f"page 1800 gave status {status} and no meta.next_cursor")
    return question.path.replace("{cursor}", urllib.parse.quote(cursor, safe=""))


def sample_paths(path: str, count: int = 20) -> list[str]:
    if "{id}" not in path:
        return [path]
    ids = random.Random(SEED).sample(range(SPREAD_IDS[0], SPREAD_IDS[1] + 1), count)
    return [path.replace("{id}", str(i)) for i in ids]


def check_responses(server: Server, path: str, encoding: str) -> tuple[float, str]:
    """Fetches the question's URL (sampled ids if spread): mean body bytes on
    the wire and the Content-Encoding; warns about any non-2xx answer."""
    sizes, encodings = [], set()
    for sample in sample_paths(path):
        status, headers, body = fetch(server.base + sample, encoding)
        if not 200 <= status < 300:
            log(f"WARNING: {sample} answered {status}: {body[:300]!r}")
        sizes.append(len(body))
        encodings.add(headers.get("content-encoding", "identity"))
    return sum(sizes) / len(sizes), ",".join(sorted(encodings))


def warm_up(server: Server, path: str, encoding: str, requests: int, clients: int = 8) -> None:
    """Requests the question's URL from a few concurrent clients, every
    request read to the end (none cancelled, unlike a stopped wrk run)."""
    paths = sample_paths(path, count=min(requests, SPREAD_IDS[1])) if "{id}" in path else [path]
    urls = [server.base + paths[i % len(paths)] for i in range(requests)]
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(lambda url: fetch(url, encoding)[0], urls))
    failed = sum(1 for status in statuses if not 200 <= status < 300)
    if failed:
        log(f"WARNING: {failed} of {requests} warm-up requests were not 2xx")


def cache_state(server: Server, path: str, encoding: str) -> str:
    """Cache hits among the sampled URLs right after the warm-up, from the
    `cache;desc=...` entry of Server-Timing."""
    states = []
    for sample in sample_paths(path):
        timing = fetch(server.base + sample, encoding)[1].get("server-timing", "")
        match = re.search(r"cache;desc=(\w+)", timing)
        states.append(match.group(1) if match else "none")
    if len(set(states)) == 1:
        return states[0]
    return f"{states.count('hit')}/{len(states)} hit"


def wrk_command(server: Server, path: str, encoding: str, duration: int, connections: int) -> list[str]:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    command += ["-H", f"Accept-Encoding: {encoding}"]
    if "{id}" in path:
        low, high = SPREAD_IDS
        return command + ["-s", str(SPREAD_LUA), server.base, "--", path, str(low), str(high), str(SEED)]
    return command + [server.base + path]


def run_wrk(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> dict:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        return float(match.group(1)) * UNITS_MS[match.group(2)] if match else float("nan")

    requests = re.search(r"^\s*(\d+) requests in", output, re.M)
    rate = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors:\s*(.+)", output)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "requests_per_s": float(rate.group(1)) if rate else 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sockets.group(1).strip() if sockets else "",
    }


def run_question(server: Server, question: Question, args: argparse.Namespace) -> Result:
    """Checks and warms up, waits for a quiet machine, then one measured
    wrk run with the server's CPU over it."""
    path = resolve_path(server, question)
    body_bytes, encoding = check_responses(server, path, question.encoding)
    warm_up(server, path, question.encoding, args.warmup)
    cache = cache_state(server, path, question.encoding)
    load = wait_for_quiet(args.max_load)
    log(f"{question.id} on {server.database}: load average {load:.2f}")
    command = wrk_command(server, path, question.encoding, args.duration, args.connections)
    log("$ " + shlex.join(command))
    backends = backend_pids(server)
    server_before = cpu_ticks(server.process.pid)
    db_before = {pid: cpu_ticks(pid) for pid in backends}
    output = run_wrk(command)
    server_ticks = cpu_ticks(server.process.pid) - server_before
    # Backends that appeared during the run count from zero.
    backends = set(backends) | set(backend_pids(server))
    db_ticks = sum(cpu_ticks(pid) - db_before.get(pid, 0) for pid in backends)
    (RAW / f"{server.database}-{question.id}.txt").write_text(shlex.join(command) + "\n\n" + output)

    parsed = parse_wrk(output)
    result = Result(
        question.id, server.database, load, body_bytes=body_bytes, content_encoding=encoding, cache=cache, **parsed
    )
    per_request = 1e6 / CLOCK_TICKS / max(result.requests, 1)
    result.server_cpu_us = server_ticks * per_request
    if server.database == "postgres":
        result.db_cpu_us = db_ticks * per_request
    if result.non_2xx or result.socket_errors not in ("", "connect 0, read 0, write 0, timeout 0"):
        log(f"WARNING: {question.id} on {server.database}: {result.non_2xx} non-2xx, socket errors: {result.socket_errors or 'none'}")
    log(
        f"{question.id} {server.database}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, {result.server_cpu_us:.0f} us CPU/request"
    )
    return result


# ---------------------------------------------------------------- report


def results_table(results: list[Result]) -> str:
    lines = [
        "| question | database | requests/s | p50 ms | p99 ms | server CPU µs/request | bytes/response |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.question} | {r.database} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.server_cpu_us:.1f} | {r.body_bytes:,.0f} |"
        )
    return "\n".join(lines)


def details_table(results: list[Result]) -> str:
    lines = [
        "| question | database | load avg before | requests | non-2xx | socket errors "
        "| PostgreSQL backend CPU µs/request | Content-Encoding | cache after warm-up |",
        "|---|---|---:|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        db_cpu = "n/a (in process)" if r.db_cpu_us is None else f"{r.db_cpu_us:.1f}"
        lines.append(
            f"| {r.question} | {r.database} | {r.load_before:.2f} | {r.requests:,} | {r.non_2xx} "
            f"| {r.socket_errors or 'none'} | {db_cpu} | {r.content_encoding} | {r.cache} |"
        )
    return "\n".join(lines)


def write_report(results: list[Result], args: argparse.Namespace, started: datetime.datetime) -> Path:
    urls = "\n".join(f"- {q.id}: `{q.path}` (Accept-Encoding: {q.encoding})" for q in QUESTIONS)
    text = f"""# brisk load test, {started:%Y-%m-%d %H:%M}

- command: `{shlex.join([sys.executable.rsplit('/', 1)[-1]] + sys.argv)}`
- machine: {machine()}
- brisk: {BRISK} (sha256 {args.binary}), commit {args.commit} (when the run started)
- server environment: {' '.join(f'{k}={v}' for k, v in args.env.items()) or '(unchanged)'}
- setup: demo shop scale {SCALE}, seed {SEED}; `brisk serve` pinned to CPU 0;
  `wrk -t1 -c{args.connections} -d{args.duration}s --latency` pinned to CPU 1 after
  {args.warmup} warm-up requests (8 concurrent clients); one server per {args.server_per};
  PostgreSQL (127.0.0.1:5432) not pinned. Spread questions ask
  for random ids in {SPREAD_IDS[0]}..{SPREAD_IDS[1]} (bench/wrk/spread.lua).
- server CPU: utime + stime of the brisk process over the run / requests.
  "cache after warm-up": the `cache;desc=` of Server-Timing on the sampled URLs
  once warmed up (brisk's default config: response cache on).
  bytes/response: body bytes on the wire (mean of 20 sampled ids for spread
  questions).

{results_table(results)}

Details (load average: the 1-minute figure of /proc/loadavg before the run):

{details_table(results)}

URLs:

{urls}

Raw wrk outputs: bench/results/raw/ (not committed).
"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started:%Y-%m-%d}-load{'-' + args.tag if args.tag else ''}.md"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--questions", default=",".join(q.id for q in QUESTIONS), help="e.g. Q1,Q3,Q6c")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests before each run (default 200)")
    parser.add_argument(
        "--server-per",
        choices=["question", "database"],
        default="question",
        help="start a fresh server for every question (default) or once per database",
    )
    parser.add_argument("--max-load", type=float, default=0.6, help="wait for a 1-minute load below this")
    parser.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for brisk serve, e.g. BRISK_CACHE_ENABLED=false (repeatable)",
    )
    parser.add_argument("--tag", default="", help="names this run: bench/results/<date>-load-<tag>.md, raw/<tag>/")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="the brisk checkout to build and measure (default: this repository)",
    )
    parser.add_argument("--pg-url", default="postgres://root@127.0.0.1:5432/brisk_bench")
    parser.add_argument("--pg-admin-db", default="test", help="database to connect to for CREATE DATABASE")
    args = parser.parse_args()
    wanted = [q.strip() for q in args.questions.split(",") if q.strip()]
    unknown = set(wanted) - {q.id for q in QUESTIONS}
    if unknown:
        parser.error(f"unknown questions {sorted(unknown)}; choose from {[q.id for q in QUESTIONS]}")
    args.selected = [q for q in QUESTIONS if q.id in wanted]
    try:
        args.env = dict(item.split("=", 1) for item in args.server_env)
    except ValueError:
        parser.error("--server-env takes KEY=VALUE")
    return args


def main() -> int:
    args = parse_args()
    global SOURCE, BRISK, RAW
    SOURCE = args.source.resolve()
    BRISK = SOURCE / "target" / "release" / "brisk"
    if args.tag:
        RAW = RAW / args.tag
    started = datetime.datetime.now()
    # SIGTERM unwinds like Ctrl-C, so the server is stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    if not args.no_build:
        build()
    args.commit, args.binary = git_commit(), binary_digest()
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[Result] = []
    for database in databases:
        url = prepare_sqlite() if database == "sqlite" else prepare_postgres(args.pg_url, args.pg_admin_db)
        server = None
        try:
            for question in args.selected:
                if server is None or args.server_per == "question":
                    if server is not None:
                        stop_server(server)
                    label = question.id if args.server_per == "question" else "all"
                    server = start_server(database, url, label, args.env)
                results.append(run_question(server, question, args))
        finally:
            if server is not None:
                stop_server(server)
    if binary_digest() != args.binary:
        log(f"WARNING: {BRISK} changed during the run; the results mix binaries (measure a fixed --source)")
        args.binary += f", CHANGED during the run to {binary_digest()}: results mix binaries"
    print(results_table(results))
    print()
    print(details_table(results))
    path = write_report(results, args, started)
    log(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
