#!/usr/bin/env python3
"""What type handling costs on the cache-off path: two builds of brisk (A,
B) serving Chinook (tests/fixtures/chinook) on SQLite and PostgreSQL, with
the response cache off, asked `InvoiceLine` with `include=Track.Album`
(100 lines, two embed levels), interleaved A, B, B, A, ... in one run.

    python3 bench/chinook_types.py --a /tmp/brisk-before --b /tmp/brisk-after

Each checkout must hold target/release/brisk (built unless --no-build).
The server runs on CPU 0 and wrk (-t1) on CPU 1, as in bench/load.py,
whose helpers this uses. Writes bench/results/<date>-chinook-types.md.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

FIXTURES = load.ROOT / "tests" / "fixtures" / "chinook"
POSTGRES_DB = "brisk_bench_chinook"
PATHS = {
    "sqlite": "/v1/InvoiceLine?include=Track.Album&limit=100&sort=-InvoiceLineId",
    "postgres": "/v1/invoice_line?include=track.album&limit=100&sort=-invoice_line_id",
}


def prepare_postgres(admin_url: str) -> str:
    url = load.with_database(admin_url, POSTGRES_DB)
    load.psql(admin_url, f'DROP DATABASE IF EXISTS "{POSTGRES_DB}"')
    load.psql(admin_url, f'CREATE DATABASE "{POSTGRES_DB}"')
    script = (FIXTURES / "Chinook_PostgreSql.sql").read_text()
    body = "\n".join(
        line
        for line in script.splitlines()
        if not line.startswith(("DROP DATABASE", "CREATE DATABASE", "\\c "))
    )
    subprocess.run(
        ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=body, text=True, check=True, capture_output=True
    )
    load.psql(url, "ANALYZE")
    return url


def measure(side: Path, database: str, url: str, args: argparse.Namespace) -> dict:
    load.SOURCE, load.BRISK = side, side / "target" / "release" / "brisk"
    server = load.start_server(database, url, side.name, {"BRISK_CACHE_ENABLED": "false"})
    try:
        path = PATHS[database]
        status, _, body = load.fetch(server.base + path)
        if status != 200:
            raise RuntimeError(f"{side}: {path} answered {status}: {body[:300]!r}")
        load.warm_up(server, path, "identity", args.warmup)
        load.wait_for_quiet(args.max_load)
        command = load.wrk_command(server, path, "identity", args.duration, args.connections)
        load.log("$ " + shlex.join(command))
        before = load.cpu_ticks(server.process.pid)
        output = load.run_wrk(command)
        ticks = load.cpu_ticks(server.process.pid) - before
        parsed = load.parse_wrk(output)
        parsed["cpu_us"] = ticks * 1e6 / load.CLOCK_TICKS / max(parsed["requests"], 1)
        parsed["bytes"] = len(body)
        return parsed
    finally:
        load.stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--b", type=Path, required=True, help="the checkout under test")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    started = datetime.datetime.now()
    load.ensure_wrk()
    if not args.no_build:
        for side in (args.a, args.b):
            subprocess.run(["cargo", "build", "--release"], cwd=side, check=True)
    load.RAW = load.RESULTS / "raw" / "chinook-types"
    databases = {}
    for database in args.db.split(","):
        if database == "sqlite":
            # a copy: brisk may switch the file to WAL, which writes beside it
            copy = load.ROOT / "target" / "bench" / "chinook.sqlite"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FIXTURES / "Chinook_Sqlite.sqlite", copy)
            databases[database] = str(copy)
        else:
            databases[database] = prepare_postgres(args.postgres_url)
    rows = []
    for database, url in databases.items():
        runs: dict[str, list[dict]] = {"A": [], "B": []}
        for round_ in range(args.repeats):
            order = [("A", args.a), ("B", args.b)]
            if round_ % 2:
                order.reverse()
            for label, side in order:
                runs[label].append(measure(side, database, url, args))
        ratios = [b["requests_per_s"] / a["requests_per_s"] for a, b in zip(runs["A"], runs["B"])]
        cpu_ratios = [b["cpu_us"] / a["cpu_us"] for a, b in zip(runs["A"], runs["B"])]
        median = lambda label, key: statistics.median(r[key] for r in runs[label])  # noqa: E731
        rows.append(
            f"| {database} | {median('A', 'requests_per_s'):,.0f} | {median('B', 'requests_per_s'):,.0f} "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) "
            f"| {median('A', 'cpu_us'):,.0f} | {median('B', 'cpu_us'):,.0f} | {statistics.median(cpu_ratios):.2f} "
            f"| {runs['A'][0]['bytes']:,} / {runs['B'][0]['bytes']:,} |"
        )
    commit = lambda side: subprocess.run(  # noqa: E731
        ["git", "-C", str(side), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report = "\n".join(
        [
            f"# Chinook, type handling on the cache-off path, {started:%Y-%m-%d %H:%M}",
            "",
            f"- command: `python3 bench/chinook_types.py {shlex.join(sys.argv[1:])}`",
            f"- A: {args.a} ({commit(args.a)}), B: {args.b} ({commit(args.b)}); {load.machine()}",
            f"- `BRISK_CACHE_ENABLED=false`; server on CPU 0, wrk -t1 -c{args.connections} -d{args.duration}s on CPU 1, "
            f"no Accept-Encoding; {args.repeats} rounds, A and B alternating first",
            f"- SQLite `{PATHS['sqlite']}`, PostgreSQL `{PATHS['postgres']}`",
            "",
            "| database | A req/s | B req/s | B ÷ A (min–max) | A CPU µs/req | B CPU µs/req | B ÷ A CPU | bytes A / B |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    out = load.RESULTS / f"{started:%Y-%m-%d}-chinook-types.md"
    out.write_text(report)
    print(report)
    load.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
