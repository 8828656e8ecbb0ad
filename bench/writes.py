#!/usr/bin/env python3
"""Writes through brisk, a read-mostly mix with its cache hit rate (one
instance, and two sharing Redis), and how fast a write made behind brisk's
back is noticed; on SQLite and PostgreSQL, each on a fresh copy of the demo
shop so the benchmark data stays untouched.

Parts (choose with --parts, default all):

- `throughput`: `BRISK_WRITES=true brisk serve` (CPU 0), wrk (CPU 1,
  `-t1 -c64 -d{duration}s --latency`): single-row `POST /v1/users` with
  unique emails (bench/wrk/post_users.lua), then `PATCH /v1/products/{id}`
  `{"stock": n}` with uniform random ids (bench/wrk/patch_products.lua).
  Requests/s, p50, p99, server CPU µs/request (brisk; on PostgreSQL also
  its backends), answers by status. A fresh brisk process per run.
- `mix`: 95% GETs of `/v1/products/{id}` and `/v1/products?page=N` (half
  each) and 5% `PATCH /v1/products/{id}`, ids and pages Zipf(s=1.1) over
  5000 products (bench/wrk/mix.lua), for --mix-duration (30 s): (i) one
  brisk with 64 connections; (ii) two brisk processes sharing Redis under
  a unique `BRISK_REDIS_PREFIX`, one wrk process per instance with 32
  connections each, both wrk on CPU 1, both brisk on CPU 0. The hit rate is
  counted by the Lua `response` callback from `cache;desc=` of
  Server-Timing, over every 2xx GET.
- `outside`: a row changed by another program, and the time until brisk
  serves the new value. SQLite: Python's sqlite3 updates `products.stock`
  of one product in the copy (default `changes.poll_ms` = 50); PostgreSQL:
  `brisk install-triggers`, then `psql -c UPDATE ...`. Before each trial
  the product is read twice (the second read must be a cache hit); the
  clock starts when the UPDATE has committed (sqlite3's commit() or psql
  has returned) and brisk is polled every 2 ms (from CPU 1, one keep-alive
  connection) until it answers the new stock. --trials (50) trials: median,
  p90, max.

Data: SQLite: a copy of target/bench/shop.db (sqlite3 backup API) in
/tmp/brisk-writes-<pid>/; PostgreSQL: a throwaway database
brisk_bench_writes_<pid> loaded with `brisk load-demo --scale 1 --seed 42`
and dropped at the end.

    python3 bench/writes.py --source /tmp/brisk-snap
    python3 bench/writes.py --source /tmp/brisk-snap --db postgres --parts mix,outside

Writes bench/results/<date>-writes.md (raw outputs in bench/results/raw/writes/).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "peers"))
import load  # noqa: E402
from peers import tree_ticks  # noqa: E402

WRK = BENCH / "wrk"
PID = os.getpid()
REPORT: list[str] = []


def note(text: str = "") -> None:
    print(text, flush=True)
    REPORT.append(text)


# ---------------------------------------------------------------- data


def sqlite_copy() -> str:
    directory = Path(f"/tmp/brisk-writes-{PID}")
    directory.mkdir(exist_ok=True)
    target = directory / "shop.db"
    source = sqlite3.connect(f"file:{load.prepare_sqlite()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    source.backup(copy)
    copy.execute("PRAGMA journal_mode=WAL")
    copy.close()
    source.close()
    return str(target)


def postgres_copy(admin_url: str) -> str:
    name = f"brisk_bench_writes_{PID}"
    load.psql(admin_url, f'DROP DATABASE IF EXISTS "{name}"')
    load.psql(admin_url, f'CREATE DATABASE "{name}"')
    url = load.with_database(admin_url, name)
    load.run([str(load.BRISK), "load-demo", "--db", url, "--scale", "1", "--seed", "42"], stdout=subprocess.DEVNULL)
    return url


def drop_postgres(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    load.psql(admin_url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    load.psql(admin_url, f'DROP DATABASE IF EXISTS "{name}"')
    load.log(f"dropped {name}")


def backends(url: str) -> list[int]:
    """PostgreSQL backends of brisk (application_name) on this database."""
    if not url.startswith("postgres"):
        return []
    name = url.rsplit("/", 1)[1]
    rows = load.psql(
        url, f"SELECT pid FROM pg_stat_activity WHERE application_name = 'brisk' AND datname = '{name}'"
    )
    return [int(p) for p in rows.split()]


# ---------------------------------------------------------------- wrk


def wrk(script: str, base: str, connections: int, duration: int, script_args: list[str]) -> list[str]:
    return [
        "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
        "-s", str(WRK / script), base, "--", *script_args,
    ]


def statuses(output: str) -> dict[int, int]:
    return {int(s): int(n) for s, n in re.findall(r"^status (\d+): (\d+)$", output, re.M)}


def measured(pids: list[int], url: str, commands: list[list[str]], label: str) -> tuple[list[str], dict]:
    """Runs the wrk commands at once; returns their outputs and the CPU
    seconds of the server processes and of brisk's PostgreSQL backends."""
    pg_before = {p: load.cpu_ticks(p) for p in backends(url)}
    before = [tree_ticks(p) for p in pids]
    for command in commands:
        load.log("$ " + shlex.join(command))
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = []
    for process in running:
        out, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"wrk failed: {err or out}")
        outputs.append(out)
    server = sum(tree_ticks(p) for p in pids) - sum(before)
    pg = sum(load.cpu_ticks(p) - pg_before.get(p, 0) for p in set(pg_before) | set(backends(url)))
    for i, (command, out) in enumerate(zip(commands, outputs)):
        (load.RAW / f"{label}-{i}.txt").write_text(shlex.join(command) + "\n\n" + out)
    return outputs, {"server_s": server / load.CLOCK_TICKS, "pg_s": pg / load.CLOCK_TICKS}


def start(database: str, url: str, label: str, env: dict[str, str]) -> load.Server:
    return load.start_server(database, url, label, {"BRISK_WRITES": "true"} | env)


# ---------------------------------------------------------------- parts


def throughput(database: str, url: str, args: argparse.Namespace) -> None:
    note(f"\n### Write throughput, {database}\n")
    note(
        "| write | load before | requests/s | p50 ms | p99 ms | brisk CPU µs/request "
        "| PostgreSQL backends CPU µs/request | answers by status | socket errors |"
    )
    note("|---|---:|---:|---:|---:|---:|---:|---|---|")
    cases = [
        ("POST /v1/users", "post_users.lua", [f"{PID}-{int(time.time())}"], False),
        ("PATCH /v1/products/{id}", "patch_products.lua", ["1", "5000", "42"], False),
    ]
    if database == "sqlite":
        cases.append(("PATCH /v1/products/{id}, change triggers", "patch_products.lua", ["1", "5000", "42"], True))
    for round_ in range(1, args.repeats + 1):
        for name, script, script_args, triggers in cases:
            if script == "post_users.lua":
                script_args = [f"{PID}-{round_}-{int(time.time())}"]
            if triggers:
                install_triggers(url, remove=False)
            server = start(database, url, f"throughput-{script}-{round_}", {})
            try:
                load.warm_up(server, "/v1/products/1", "", 50)
                load_before = load.wait_for_quiet(args.max_load, poll=3)
                outputs, cpu = measured(
                    [server.process.pid], url,
                    [wrk(script, server.base, args.connections, args.duration, script_args)],
                    f"{database}-{script}-{round_}",
                )
            finally:
                load.stop_server(server)
                if triggers:
                    install_triggers(url, remove=True)
            parsed = load.parse_wrk(outputs[0])
            per = 1e6 / max(parsed["requests"], 1)
            pg = f"{cpu['pg_s'] * per:.1f}" if database == "postgres" else "n/a (in process)"
            by_status = ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses(outputs[0]).items()))
            note(
                f"| {name} | {load_before:.2f} | {parsed['requests_per_s']:,.0f} | {parsed['p50_ms']:.2f} "
                f"| {parsed['p99_ms']:.2f} | {cpu['server_s'] * per:.1f} | {pg} | {by_status} "
                f"| {parsed['socket_errors'] or 'none'} |"
            )


def mix_counts(outputs: list[str]) -> dict[str, int]:
    total: dict[str, int] = {}
    for out in outputs:
        for kind, state, status, n in re.findall(r"^count (\w+) (\w+) (\d+) (\d+)$", out, re.M):
            key = f"{kind} {state} {status}"
            total[key] = total.get(key, 0) + int(n)
    return total


def mix(database: str, url: str, args: argparse.Namespace) -> None:
    note(f"\n### Read-mostly mix, {database}: 95% GET (product by id, product page), 5% PATCH, Zipf s=1.1 over 5000\n")
    note(
        "| setup | load before | requests/s (sum) | p50 ms | p99 ms | GETs 2xx | hit | miss | shared | other states "
        "| hit rate | writes (2xx) | non-2xx | brisk CPU µs/request | PostgreSQL CPU µs/request |"
    )
    note("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    script_args = ["5000", "1.1", "42", "0.05"]
    setups = ["one instance", "two instances + Redis"]
    if database == "sqlite":
        setups.append("two instances + Redis + change triggers")
    for setup in setups:
        servers = []
        prefix = f"brisk-bench-{PID}-{database}"
        triggers = setup.endswith("change triggers")
        try:
            if triggers:
                install_triggers(url, remove=False)
            if setup == "one instance":
                servers.append(start(database, url, "mix-one", {}))
                commands = [wrk("mix.lua", servers[0].base, args.connections, args.mix_duration, script_args)]
            else:
                env = {
                    "BRISK_REDIS_URL": args.redis_url,
                    "BRISK_REDIS_PREFIX": prefix,
                    "BRISK_CURSOR_SECRET": f"bench-{PID}",
                }
                servers.append(start(database, url, "mix-a", env))
                servers.append(start(database, url, "mix-b", env))
                half = args.connections // 2
                commands = [
                    wrk("mix.lua", servers[0].base, half, args.mix_duration, script_args),
                    # the second wrk draws other ids (another seed)
                    wrk("mix.lua", servers[1].base, half, args.mix_duration, ["5000", "1.1", "43", "0.05"]),
                ]
            load_before = load.wait_for_quiet(args.max_load, poll=3)
            outputs, cpu = measured(
                [s.process.pid for s in servers], url, commands, f"{database}-mix-{len(servers)}"
            )
        finally:
            for server in servers:
                load.stop_server(server)
            if setup != "one instance":
                clear_redis(args.redis_url, prefix)
            if triggers:
                install_triggers(url, remove=True)
        parsed = [load.parse_wrk(o) for o in outputs]
        requests = sum(p["requests"] for p in parsed)
        counts = mix_counts(outputs)
        gets = {k: v for k, v in counts.items() if k.startswith("get ") and k.endswith(" 200")}
        get_total = sum(gets.values())
        hit = gets.get("get hit 200", 0)
        miss = gets.get("get miss 200", 0)
        shared = gets.get("get shared 200", 0)
        others = {k.split()[1]: v for k, v in gets.items() if k.split()[1] not in ("hit", "miss", "shared")}
        writes = sum(v for k, v in counts.items() if k.startswith("other none 2"))
        non_2xx = sum(v for k, v in counts.items() if not k.split()[2].startswith("2"))
        per = 1e6 / max(requests, 1)
        pg = f"{cpu['pg_s'] * per:.1f}" if database == "postgres" else "n/a"
        p50 = "/".join(f"{p['p50_ms']:.2f}" for p in parsed)
        p99 = "/".join(f"{p['p99_ms']:.2f}" for p in parsed)
        note(
            f"| {setup} | {load_before:.2f} | {sum(p['requests_per_s'] for p in parsed):,.0f} | {p50} | {p99} "
            f"| {get_total:,} | {hit:,} | {miss:,} | {shared:,} | {', '.join(f'{k}: {v:,}' for k, v in others.items()) or 'none'} "
            f"| {100 * hit / max(get_total, 1):.1f}% | {writes:,} | {non_2xx:,} | {cpu['server_s'] * per:.1f} | {pg} |"
        )
        bad = {k: v for k, v in counts.items() if not k.split()[2].startswith("2")}
        if bad:
            note(f"\n  non-2xx answers ({setup}): {bad}\n")


def install_triggers(url: str, remove: bool) -> None:
    load.run([str(load.BRISK), "install-triggers", "--db", url] + (["--remove"] if remove else []),
             stdout=subprocess.DEVNULL)


def clear_redis(redis_url: str, prefix: str) -> None:
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    keys = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "--scan", "--pattern", f"{prefix}*"], capture_output=True, text=True
    ).stdout.split()
    for start_ in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-h", host, "-p", port, "DEL", *keys[start_ : start_ + 500]], capture_output=True)
    load.log(f"removed {len(keys)} Redis keys under {prefix}")


def outside(database: str, url: str, args: argparse.Namespace) -> None:
    note(f"\n### A write made behind brisk's back, {database}\n")
    for triggers in ([False, True] if database == "sqlite" else [True]):
        outside_trials(database, url, args, triggers)


def outside_trials(database: str, url: str, args: argparse.Namespace, triggers: bool) -> None:
    product = 42
    path = f"/v1/products/{product}?fields=stock"
    if triggers:
        install_triggers(url, remove=False)
    server = start(database, url, "outside", {})
    os.sched_setaffinity(0, {1})
    delays, hits_before, polls = [], 0, []
    try:
        host, port = server.base.rsplit("//", 1)[1].split(":")
        connection = http.client.HTTPConnection(host, int(port))

        def get() -> tuple[int, str]:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            timing = response.getheader("server-timing", "")
            return json.loads(body)["data"]["stock"], timing

        writer = sqlite3.connect(url, isolation_level=None) if database == "sqlite" else None
        load_before = load.wait_for_quiet(args.max_load, poll=3)
        for trial in range(args.trials):
            get()
            current, timing = get()
            hits_before += "cache;desc=hit" in timing
            new = 100_000 + trial if current != 100_000 + trial else 200_000 + trial
            sql = f"UPDATE products SET stock = {new} WHERE id = {product}"
            if writer is not None:
                writer.execute(sql)  # autocommit: committed when execute returns
            else:
                subprocess.run(["psql", url, "-X", "-q", "-c", sql], check=True, capture_output=True)
            committed = time.monotonic()
            count = 0
            while True:
                count += 1
                stock, _ = get()
                if stock == new:
                    delays.append((time.monotonic() - committed) * 1000)
                    polls.append(count)
                    break
                if time.monotonic() - committed > 10:
                    delays.append(float("inf"))
                    break
                time.sleep(0.002)
            time.sleep(0.05 + (trial % 5) * 0.013)  # desynchronise from the poll interval
        connection.close()
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count())))
        load.stop_server(server)
        if triggers:
            install_triggers(url, remove=True)
    delays.sort()
    how = (
        "Python sqlite3 (autocommit UPDATE), brisk's default changes.poll_ms = 50, "
        + ("after `brisk install-triggers` (change log)" if triggers else "no triggers (PRAGMA data_version)")
        if database == "sqlite"
        else "`psql -c UPDATE ...` after `brisk install-triggers` (LISTEN/NOTIFY)"
    )
    note(f"{how}; load before {load_before:.2f}; {args.trials} trials on `{path}`; "
         f"the read before each write was a cache hit in {hits_before}/{args.trials} trials.\n")
    note("| trials | median ms | p90 ms | max ms | min ms | polls until new value (median) |")
    note("|---:|---:|---:|---:|---:|---:|")
    p90 = delays[min(len(delays) - 1, int(round(0.9 * (len(delays) - 1))))]
    note(
        f"| {len(delays)} | {statistics.median(delays):.1f} | {p90:.1f} | {max(delays):.1f} | {min(delays):.1f} "
        f"| {statistics.median(polls) if polls else 0:.0f} |"
    )


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=load.ROOT)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--parts", default="throughput,mix,outside")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--mix-duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="throughput runs per write")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--max-load", type=float, default=0.6)
    parser.add_argument("--pg-admin-url", default="postgres://root@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    load.SOURCE = args.source.resolve()
    load.BRISK = load.SOURCE / "target" / "release" / "brisk"
    load.RAW = load.RESULTS / "raw" / ("writes" + ("-" + args.tag if args.tag else ""))
    load.RAW.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load.ensure_wrk()
    started = datetime.datetime.now()
    databases = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    for database in databases:
        url = postgres_copy(args.pg_admin_url) if database == "postgres" else sqlite_copy()
        try:
            for part in parts:
                {"throughput": throughput, "mix": mix, "outside": outside}[part](database, url, args)
        finally:
            if database == "postgres":
                drop_postgres(args.pg_admin_url, url)
            else:
                shutil.rmtree(Path(url).parent, ignore_errors=True)
    header = f"""# brisk writes, read-mostly mix and outside writes, {started:%Y-%m-%d %H:%M}

- command: `{shlex.join(['python3'] + sys.argv)}`
- machine: {load.machine()}
- brisk: {load.BRISK}, commit {load.git_commit()}
- setup: brisk pinned to CPU 0 with `BRISK_WRITES=true` (two instances: both on CPU 0), wrk pinned to
  CPU 1 (`-t1 -c{args.connections} --latency --timeout 10s`; two wrk processes of {args.connections // 2}
  connections for two instances); PostgreSQL not pinned. Waited for a 1-minute load average below
  {args.max_load} before each run ("load before"). Data: a copy of the demo shop (scale 1, seed 42) per
  database (SQLite: /tmp/brisk-writes-<pid>/shop.db; PostgreSQL: brisk_bench_writes_<pid>, dropped after).
"""
    load.RESULTS.mkdir(parents=True, exist_ok=True)
    path = load.RESULTS / f"{started:%Y-%m-%d}-writes{'-' + args.tag if args.tag else ''}.md"
    path.write_text(header + "\n".join(REPORT) + "\n")
    load.log(f"wrote {path.relative_to(load.ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
