#!/usr/bin/env python3
"""Load comparison on SQLite: brisk (cache hits, and cache off) against
nginx serving brisk's bytes (gzip_static), the Flask stack (cache off
and on) and, when asked for, Datasette, question by question, interleaved,
with and without gzip.

For each question Q1..Q7, in one run:

- brisk-hit: `brisk serve` with its defaults (response cache on), warmed up
  so every URL of the run is cached in the coding asked for;
- brisk-nocache: the same with `BRISK_CACHE_ENABLED=false`;
- nginx: brisk's own identity bytes as static files, each with a .gz made
  by `gzip -6` (bench/peers/nginx/nginx.conf.in, gzip_static on);
- flask-off / flask-on: bench/peers/flask_app.py under gunicorn (2 sync
  workers), Flask-Caching NullCache / SimpleCache, Flask-Compress;
- datasette (only with --systems ...,datasette): `datasette serve --immutable`
  over the same file (bench/peers/peers.py start_datasette), asked each
  question by its own URL (peers.DATASETTE_QUESTIONS: table URLs, or the
  canned queries of bench/peers/datasette/metadata.yaml for Q5 and Q6).
  Before measuring, its rows are checked against brisk's answers (the same
  rows and, on brisk's columns, the same values), or the run stops.

Every server is pinned to CPU 0, wrk (`-t1 -c64 --latency --timeout 10s`)
to CPU 1; before every measured run the script waits for the 1-minute load
average to fall below --max-load. Each (question, Accept-Encoding) cell is
measured once per round; round 1 measures every system with
`Accept-Encoding: gzip` and without the header, rounds 2..--repeats measure
the key systems (brisk-hit, nginx, brisk-nocache, flask-off) again with
gzip, in a rotated order, so the key ratios get a median and a spread.

brisk runs from a fresh process for every measured run (started, warmed up,
measured, stopped): at f34d00c a wrk run that stops with requests in
flight loses SQLite pool connections (see bench/README.md), which would
turn the next run's database work into 500s.

Q3 and Q4 spread their ids over 1..--spread-high (default 2000) for every
system (bench/wrk/spread.lua, seeded), because nginx only has files for
the ids fetched from brisk beforehand.

Server CPU per request = the CPU time (utime + stime, /proc) of the server's
whole process tree (brisk; gunicorn master and workers; nginx master and
worker) over the run / requests. "other CPU %" is the machine's busy time
during the run that was neither the server nor wrk, as a share of both CPUs:
a disturbed run shows there.

Usage (from the repository root; --source is the fixed snapshot):

    python3 bench/compare.py --source /tmp/brisk-snap
    python3 bench/compare.py --source /tmp/brisk-snap --questions Q1,Q7 --duration 5 --repeats 3

Writes bench/results/<date>-compare.md (and raw wrk outputs and a JSON of
every run under bench/results/raw/compare/).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "peers"))
import load  # noqa: E402
import peers  # noqa: E402

SYSTEMS = ["brisk-hit", "nginx", "brisk-nocache", "flask-off", "flask-on", "datasette"]
# Measured unless --systems says otherwise (datasette is asked for by name).
DEFAULT_SYSTEMS = ["brisk-hit", "nginx", "brisk-nocache", "flask-off", "flask-on"]
# Measured again in rounds 2..--repeats (when selected).
KEY_SYSTEMS = ["brisk-hit", "nginx", "brisk-nocache", "flask-off", "datasette"]
QUESTIONS = {q.id: q.path for q in load.QUESTIONS if q.id != "Q6c"}
# Column name -> Accept-Encoding header (None: no header at all).
ENCODINGS = {"gzip": "gzip", "none": None}


@dataclass
class Run:
    question: str
    system: str
    encoding: str
    round: int
    load_before: float
    requests: int = 0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: str = ""
    server_cpu_us: float = 0.0
    wrk_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0
    body_bytes: float = 0.0
    content_encoding: str = ""
    cache: str = ""


def busy_jiffies() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spread_paths(template: str, high: int) -> list[str]:
    if "{id}" not in template:
        return [template]
    return [template.replace("{id}", str(i)) for i in range(1, high + 1)]


def sample_ids(high: int, count: int = 20) -> list[int]:
    import random

    return random.Random(load.SEED).sample(range(1, high + 1), count)


def sample(template: str, high: int, count: int = 20) -> list[str]:
    """The question's URL, or for a spread one (`{id}`) the URLs of the same
    `count` seeded ids whatever the system's template."""
    if "{id}" not in template:
        return [template]
    return [template.replace("{id}", str(i)) for i in sample_ids(high, count)]


def answer_rows(system: str, body: bytes) -> list[dict]:
    """The rows of an answer: brisk's `data` (a list, or one object),
    Datasette's `rows`."""
    document = json.loads(body)
    if system == "datasette":
        return document["rows"]
    data = document["data"]
    return data if isinstance(data, list) else [data]


@dataclass
class RowCheck:
    question: str
    system: str
    urls: int
    brisk_rows: int
    peer_rows: int
    same: bool
    extra_columns: str
    problem: str = ""


def check_rows(qid: str, system: str, brisk_base: str, brisk_template: str, base: str, template: str, high: int) -> RowCheck:
    """Fetches the question (the 20 sampled ids when spread) from brisk and
    from the peer: both must answer 200 with the same rows in the same
    order, equal on brisk's columns (the peer may add columns: Datasette's
    `_col` always adds the primary key)."""
    pairs = list(zip(sample(brisk_template, high), sample(template, high)))
    brisk_count = peer_count = 0
    extra: set[str] = set()
    problems = []
    for brisk_path, path in pairs:
        status_b, _, body_b = load.fetch(brisk_base + brisk_path)
        status_p, _, body_p = load.fetch(base + path)
        if status_b != 200 or status_p != 200:
            problems.append(f"{brisk_path} -> {status_b}, {path} -> {status_p}: {body_p[:200]!r}")
            continue
        rows_b, rows_p = answer_rows("brisk", body_b), answer_rows(system, body_p)
        brisk_count += len(rows_b)
        peer_count += len(rows_p)
        for row_b, row_p in zip(rows_b, rows_p):
            extra |= set(row_p) - set(row_b)
            if any(key not in row_p or row_p[key] != value for key, value in row_b.items()):
                problems.append(f"{path}: a row differs from brisk's: {json.dumps(row_p)[:200]}")
                break
        if len(rows_b) != len(rows_p):
            problems.append(f"{path}: {len(rows_p)} rows, brisk {len(rows_b)}")
    return RowCheck(
        qid, system, len(pairs), brisk_count, peer_count, not problems, ",".join(sorted(extra)), "; ".join(problems[:3])
    )


def warm_up(base: str, paths: list[str], encoding: str | None, requests: int, seconds: float = 4.0) -> int:
    """Requests the paths (all of them when spread, else `requests` times)
    from 8 clients, every answer read to the end; stops early after
    `seconds` for slow servers. Returns the non-2xx count."""
    urls = [base + p for p in paths] if len(paths) > 1 else [base + paths[0]] * requests
    deadline = time.monotonic() + seconds if len(paths) == 1 else float("inf")

    def one(url: str) -> int:
        if time.monotonic() > deadline:
            return 200
        return load.fetch(url, encoding)[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, urls))
    return sum(1 for s in statuses if not 200 <= s < 300)


def check(base: str, paths: list[str], encoding: str | None) -> tuple[float, str, str, list[int]]:
    sizes, codings, caches, bad = [], set(), [], []
    for p in paths:
        status, headers, body = load.fetch(base + p, encoding)
        if not 200 <= status < 300:
            bad.append(status)
        sizes.append(len(body))
        codings.add(headers.get("content-encoding", "identity"))
        m = re.search(r"cache;desc=(\w+)", headers.get("server-timing", ""))
        if m:
            caches.append(m.group(1))
    cache = ""
    if caches:
        cache = caches[0] if len(set(caches)) == 1 else f"{caches.count('hit')}/{len(caches)} hit"
    return sum(sizes) / len(sizes), ",".join(sorted(codings)), cache, bad


def wrk_command(base: str, template: str, encoding: str | None, args: argparse.Namespace) -> list[str]:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s"]
    command += ["--latency", "--timeout", "10s"]
    if encoding:
        command += ["-H", f"Accept-Encoding: {encoding}"]
    if "{id}" in template:
        return command + ["-s", str(load.SPREAD_LUA), base, "--", template, "1", str(args.spread_high), str(load.SEED)]
    return command + [base + template]


class Systems:
    """The servers of one comparison: persistent peers, brisk per run."""

    def __init__(self, args: argparse.Namespace, sqlite_file: str):
        self.args = args
        self.sqlite_file = sqlite_file
        self.peers: dict[str, peers.Peer] = {}
        # Per system, the path (template) it is asked each question by;
        # brisk's URLs unless a system has its own (datasette).
        self.paths: dict[str, dict[str, str]] = {}
        self.row_checks: list[RowCheck] = []

    def template(self, system: str, qid: str) -> str:
        return self.paths.get(system, QUESTIONS).get(qid, QUESTIONS[qid])

    def start_peers(self) -> None:
        systems = self.args.systems
        if "datasette" in systems:
            peer = peers.start_datasette(self.sqlite_file, load.RAW, access_log=self.args.datasette_access_log)
            self.peers["datasette"] = peer
            self.paths["datasette"] = peers.datasette_paths(peer.base, self.args.selected)
        bodies = {}
        if "nginx" in systems or "datasette" in systems:
            # nginx gets brisk's identity bytes of every URL the run asks
            # for; Datasette's rows are checked against brisk's.
            server = load.start_server("sqlite", self.sqlite_file, "fetch", {})
            try:
                if "nginx" in systems:
                    for qid in self.args.selected:
                        for path in spread_paths(QUESTIONS[qid], self.args.spread_high):
                            status, headers, body = load.fetch(server.base + path)
                            if status != 200:
                                raise RuntimeError(f"brisk answered {status} to {path}")
                            bodies[path] = body
                if "datasette" in systems:
                    self.check_datasette(server.base)
            finally:
                load.stop_server(server)
        if "nginx" in systems:
            self.peers["nginx"] = peers.start_nginx(bodies, load.RAW)
        threads = self.args.flask_threads
        for name, cache in (("flask-off", False), ("flask-on", True)):
            if name in systems:
                self.peers[name] = peers.start_flask(self.sqlite_file, cache, load.RAW, threads=threads)

    def check_datasette(self, brisk_base: str) -> None:
        base = self.peers["datasette"].base
        for qid in self.args.selected:
            check = check_rows(
                qid, "datasette", brisk_base, QUESTIONS[qid], base, self.template("datasette", qid), self.args.spread_high
            )
            self.row_checks.append(check)
            load.log(
                f"row check {qid}: brisk {check.brisk_rows} rows, datasette {check.peer_rows} rows"
                f" ({check.urls} URL{'s' if check.urls > 1 else ''})"
                f"{', datasette adds ' + check.extra_columns if check.extra_columns else ''}"
                f": {'same rows' if check.same else 'DIFFERENT: ' + check.problem}"
                f"  datasette: {self.template('datasette', qid)}"
            )
        bad = [c.question for c in self.row_checks if not c.same]
        if bad and not self.args.allow_row_mismatch:
            raise RuntimeError(f"datasette's rows differ from brisk's for {bad} (see above; --allow-row-mismatch)")

    def stop_peers(self) -> None:
        for peer in self.peers.values():
            peers.stop(peer)

    def measure(self, qid: str, system: str, column: str, round_: int) -> Run:
        args = self.args
        template = self.template(system, qid)
        encoding = ENCODINGS[column]
        paths = spread_paths(template, args.spread_high)
        server = None
        if system.startswith("brisk"):
            env = {"BRISK_CACHE_ENABLED": "false"} if system == "brisk-nocache" else {}
            server = load.start_server("sqlite", self.sqlite_file, f"{qid}-{system}-{column}-{round_}", env)
            base, pid = server.base, server.process.pid
        else:
            peer = self.peers[system]
            base, pid = peer.base, peer.process.pid
        try:
            failed = warm_up(base, paths, encoding, args.warmup)
            if failed:
                load.log(f"WARNING: {qid} {system} {column}: {failed} warm-up answers were not 2xx")
            body_bytes, coding, cache, bad = check(base, sample(template, args.spread_high), encoding)
            if bad:
                load.log(f"WARNING: {qid} {system} {column}: sampled URLs answered {bad}")
            load_before = load.wait_for_quiet(args.max_load, poll=3)
            command = wrk_command(base, template, encoding, args)
            load.log(f"{qid} {system} {column} round {round_}: load {load_before:.2f}: $ {shlex.join(command)}")
            ticks0, busy0, wrk0, t0 = peers.tree_ticks(pid), busy_jiffies(), children_cpu(), time.monotonic()
            output = load.run_wrk(command)
            elapsed = time.monotonic() - t0
            ticks = peers.tree_ticks(pid) - ticks0
            busy = busy_jiffies() - busy0
            wrk_cpu = children_cpu() - wrk0
        finally:
            if server is not None:
                load.stop_server(server)
        (load.RAW / f"{qid}-{system}-{column}-{round_}.txt").write_text(shlex.join(command) + "\n\n" + output)
        parsed = load.parse_wrk(output)
        run = Run(qid, system, column, round_, load_before, body_bytes=body_bytes, content_encoding=coding, cache=cache, **parsed)
        tck = load.CLOCK_TICKS
        run.server_cpu_us = ticks / tck * 1e6 / max(run.requests, 1)
        run.wrk_cpu_pct = 100 * wrk_cpu / elapsed
        other = busy / tck - ticks / tck - wrk_cpu
        run.other_cpu_pct = max(0.0, 100 * other / (elapsed * os.cpu_count()))
        if run.non_2xx or run.socket_errors not in ("", "connect 0, read 0, write 0, timeout 0"):
            load.log(f"WARNING: {qid} {system} {column}: {run.non_2xx} non-2xx, socket errors {run.socket_errors}")
        load.log(
            f"  {run.requests_per_s:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
            f"{run.server_cpu_us:.1f} us CPU/req, other CPU {run.other_cpu_pct:.0f}%"
        )
        return run


# ---------------------------------------------------------------- report


def cells(runs: list[Run], qid: str, system: str, column: str) -> list[Run]:
    return [r for r in runs if r.question == qid and r.system == system and r.encoding == column]


def fmt_many(values: list[float], digits: int = 0, thousands: bool = True) -> str:
    if not values:
        return "–"
    spec = f"{{:,.{digits}f}}" if thousands else f"{{:.{digits}f}}"
    median = statistics.median(values)
    if len(values) == 1:
        return spec.format(median)
    return f"{spec.format(median)} ({spec.format(min(values))}–{spec.format(max(values))})"


def results_table(runs: list[Run], questions: list[str]) -> str:
    lines = [
        "| question | system | gzip: req/s | p50 ms | p99 ms | CPU µs/req | bytes | "
        "no Accept-Encoding: req/s | p50 ms | p99 ms | CPU µs/req | bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for qid in questions:
        for system in SYSTEMS:
            if not any(cells(runs, qid, system, c) for c in ENCODINGS):
                continue
            row = [qid, system]
            for column in ENCODINGS:
                rs = cells(runs, qid, system, column)
                row += [
                    fmt_many([r.requests_per_s for r in rs]),
                    fmt_many([r.p50_ms for r in rs], 2),
                    fmt_many([r.p99_ms for r in rs], 2),
                    fmt_many([r.server_cpu_us for r in rs], 1),
                    f"{rs[0].body_bytes:,.0f}" if rs else "–",
                ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def paired(runs: list[Run], qid: str, a: str, b: str, column: str, attr: str) -> list[float]:
    """a/b per round (the two were measured in the same round)."""
    out = []
    for ra in cells(runs, qid, a, column):
        for rb in cells(runs, qid, b, column):
            if ra.round == rb.round and getattr(rb, attr) > 0:
                out.append(getattr(ra, attr) / getattr(rb, attr))
    return out


def ratios_table(runs: list[Run], questions: list[str]) -> str:
    datasette = any(r.system == "datasette" for r in runs)
    lines = [
        "| question | Accept-Encoding | brisk-hit CPU/req ÷ nginx CPU/req | brisk-hit req/s ÷ nginx req/s "
        "| brisk-nocache req/s ÷ flask-off req/s | brisk-hit req/s ÷ flask-on req/s | brisk-hit p99 ms |"
        + (" brisk-nocache req/s ÷ datasette req/s | datasette CPU/req ÷ brisk-nocache CPU/req |" if datasette else ""),
        "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if datasette else ""),
    ]
    for qid in questions:
        for column in ENCODINGS:
            hits = cells(runs, qid, "brisk-hit", column)
            line = (
                f"| {qid} | {column} "
                f"| {fmt_many(paired(runs, qid, 'brisk-hit', 'nginx', column, 'server_cpu_us'), 2, False)} "
                f"| {fmt_many(paired(runs, qid, 'brisk-hit', 'nginx', column, 'requests_per_s'), 2, False)} "
                f"| {fmt_many(paired(runs, qid, 'brisk-nocache', 'flask-off', column, 'requests_per_s'), 1, False)} "
                f"| {fmt_many(paired(runs, qid, 'brisk-hit', 'flask-on', column, 'requests_per_s'), 1, False)} "
                f"| {fmt_many([r.p99_ms for r in hits], 2)} |"
            )
            if datasette:
                line += (
                    f" {fmt_many(paired(runs, qid, 'brisk-nocache', 'datasette', column, 'requests_per_s'), 1, False)} "
                    f"| {fmt_many(paired(runs, qid, 'datasette', 'brisk-nocache', column, 'server_cpu_us'), 1, False)} |"
                )
            lines.append(line)
    return "\n".join(lines)


def row_checks_table(checks: list[RowCheck], systems: "Systems") -> str:
    lines = [
        "| question | brisk URL | datasette URL | URLs | brisk rows | datasette rows | same rows | datasette adds |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for c in checks:
        same = "yes" if c.same else f"**no**: {c.problem}"
        lines.append(
            f"| {c.question} | `{QUESTIONS[c.question]}` | `{systems.template(c.system, c.question)}` | {c.urls} "
            f"| {c.brisk_rows:,} | {c.peer_rows:,} | {same} | {c.extra_columns or '–'} |"
        )
    return "\n".join(lines)


def details_table(runs: list[Run]) -> str:
    lines = [
        "| question | system | Accept-Encoding | round | load before | requests | non-2xx | socket errors "
        "| wrk CPU % | other CPU % | Content-Encoding | cache |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.question} | {r.system} | {r.encoding} | {r.round} | {r.load_before:.2f} | {r.requests:,} "
            f"| {r.non_2xx} | {r.socket_errors or 'none'} | {r.wrk_cpu_pct:.0f} | {r.other_cpu_pct:.0f} "
            f"| {r.content_encoding} | {r.cache or '–'} |"
        )
    return "\n".join(lines)


def commit_of(source: Path) -> str:
    saved = load.SOURCE
    load.SOURCE = source
    try:
        return load.git_commit()
    finally:
        load.SOURCE = saved


def write_report(runs: list[Run], args: argparse.Namespace, started: datetime.datetime, extra: dict, systems: "Systems") -> Path:
    questions = [q for q in args.selected if any(r.question == q for r in runs)]
    loads = [r.load_before for r in runs]
    names = {"nginx": "nginx", "flask-off": "Flask", "flask-on": "Flask", "datasette": "Datasette"}
    against = list(dict.fromkeys(names[s] for s in args.systems if s in names)) or ["itself"]
    title = "brisk against " + (", ".join(against[:-1]) + " and " + against[-1] if len(against) > 1 else against[0])
    datasette = ""
    if systems.row_checks:
        datasette = f"""
Datasette's rows against brisk's (checked before measuring; Q3/Q4: the same 20 sampled ids on both):

{row_checks_table(systems.row_checks, systems)}
"""
    text = f"""# {title} on SQLite, {started:%Y-%m-%d %H:%M}

- command: `{shlex.join(['python3'] + sys.argv)}`
- machine: {load.machine()}
- brisk: {load.BRISK}, commit {commit_of(load.SOURCE)}
- peers: {extra.get('peers', '')}
- data: {load.SQLITE_FILE} (demo shop scale {load.SCALE}, seed {load.SEED})
- setup: every server pinned to CPU 0, `wrk -t1 -c{args.connections} -d{args.duration}s --latency --timeout 10s`
  pinned to CPU 1; a fresh brisk process for every brisk run; warm-up before every run
  ({args.warmup} requests from 8 clients, at most 4 s; for Q3/Q4 every id once). Q3 and Q4 spread ids
  over 1..{args.spread_high} for every system (nginx has files for those ids only).
  Round 1 measures every system ({', '.join(args.systems)}) with `Accept-Encoding: gzip` and without the header;
  rounds 2..{args.repeats} repeat the key systems with gzip. A cell measured more than once shows
  the median and (min–max); ratios are taken within a round, then the median and (min–max).
- load average (1 min) before the runs: min {min(loads):.2f}, median {statistics.median(loads):.2f}, max {max(loads):.2f}
  (waited for < {args.max_load} before each run; per-run figures in the details).
- server CPU µs/req: utime + stime of the server's process tree over the run / requests (10 ms ticks).

{results_table(runs, questions)}

Ratios:

{ratios_table(runs, questions)}

Details:

{details_table(runs)}
{datasette}
URLs: {'; '.join(f'{q} `{QUESTIONS[q]}`' for q in questions)}
"""
    load.RESULTS.mkdir(parents=True, exist_ok=True)
    path = load.RESULTS / f"{started:%Y-%m-%d}-compare{'-' + args.tag if args.tag else ''}.md"
    path.write_text(text)
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=load.ROOT, help="the brisk checkout to build and measure")
    parser.add_argument("--questions", default=",".join(QUESTIONS))
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the key systems (default 3)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--spread-high", type=int, default=2000)
    parser.add_argument("--max-load", type=float, default=0.6)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--systems", default=",".join(DEFAULT_SYSTEMS),
        help=f"a subset of {','.join(SYSTEMS)} (default {','.join(DEFAULT_SYSTEMS)})",
    )
    parser.add_argument(
        "--datasette-access-log", action="store_true",
        help="run the `datasette` command itself, which logs every request (default: its access log off)",
    )
    parser.add_argument(
        "--allow-row-mismatch", action="store_true",
        help="measure Datasette even when its rows differ from brisk's",
    )
    parser.add_argument(
        "--flask-threads", type=int, default=0,
        help="run gunicorn with gthread workers of this many threads (keep-alive) instead of sync workers",
    )
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if set(args.systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(set(args.systems) - set(SYSTEMS))}")
    args.selected = [q.strip() for q in args.questions.split(",") if q.strip()]
    unknown = set(args.selected) - set(QUESTIONS)
    if unknown:
        parser.error(f"unknown questions {sorted(unknown)}")
    return args


def main() -> int:
    args = parse_args()
    load.SOURCE = args.source.resolve()
    load.BRISK = load.SOURCE / "target" / "release" / "brisk"
    load.RAW = load.RESULTS / "raw" / ("compare" + ("-" + args.tag if args.tag else ""))
    load.RAW.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load.ensure_wrk()
    if not args.no_build:
        load.build()
    sqlite_file = load.prepare_sqlite()
    systems = Systems(args, sqlite_file)
    runs: list[Run] = []
    raw_json = load.RAW / "runs.json"
    try:
        systems.start_peers()
        described = []
        if any(s.startswith("flask") for s in args.systems):
            versions = subprocess.run(
                [str(peers.VENV / "bin" / "pip"), "freeze", "--disable-pip-version-check"], capture_output=True, text=True
            ).stdout
            wanted = ("flask==", "flask-caching==", "flask-compress==", "gunicorn==", "werkzeug==", "brotli==")
            pins = ", ".join(line for line in versions.splitlines() if line.lower().startswith(wanted))
            workers = f"gthread, {args.flask_threads} threads per worker" if args.flask_threads else "sync"
            described.append(f"{pins}; gunicorn -w 2 ({workers} workers)")
        if "nginx" in systems.peers:
            nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
            described.append(f"{nginx_version} ({systems.peers['nginx'].extra})")
        if "datasette" in systems.peers:
            settings = " ".join(f"--setting {k} {v}" for k, v in peers.DATASETTE_SETTINGS.items())
            log_note = "access log on (`datasette serve`)" if args.datasette_access_log else (
                "access log off (bench/peers/datasette_serve.py)"
            )
            described.append(
                f"{peers.datasette_versions()}: `datasette serve --immutable shop.db --metadata "
                f"bench/peers/datasette/metadata.yaml {settings}`, one process, {log_note}; never compresses"
            )
        extra = {"peers": "; ".join(described) or "none"}
        for qid in args.selected:
            for round_ in range(1, args.repeats + 1):
                order = [s for s in (SYSTEMS if round_ == 1 else KEY_SYSTEMS) if s in args.systems]
                if not order:
                    continue
                shift = (round_ - 1) % len(order)
                order = order[shift:] + order[:shift]
                columns = list(ENCODINGS) if round_ == 1 else ["gzip"]
                for column in columns:
                    for system in order:
                        runs.append(systems.measure(qid, system, column, round_))
                        raw_json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
            path = write_report(runs, args, started, extra, systems)
    finally:
        systems.stop_peers()
    print(results_table(runs, args.selected))
    print()
    print(ratios_table(runs, args.selected))
    load.log(f"wrote {path.relative_to(load.ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
