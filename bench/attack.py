#!/usr/bin/env python3
"""The attack benchmark: the worst requests we know, replayed against a
release build at the same time as normal traffic, on SQLite and PostgreSQL.

For each database it starts `brisk serve` with its defaults (pinned to CPU 0;
everything else on CPU 1) over the demo shop at scale 1, and:

1. baseline: normal traffic alone for --duration seconds, two wrk processes:
   a cached URL (Q1, warmed up) and a cheap uncached one (a different
   `users` query every request);
2. attack: the same normal traffic while these run together:
   - the include bomb (`include=user.orders` 40 times over), 2,000 `[ne]`
     filters, a 25 KB bad `sort`, a `Content-Length: 10000000000` body;
   - 12 clients asking for huge answers
     (`products?limit=1000&include=order_items.order.order_items`);
   - 8 clients asking for an expensive embed and hanging up after 100 ms;
   - 16 clients paging deep through `order_items` sorted by an unindexed column;
   - 400 slowloris connections (headers dribbled in, or nothing at all;
     --slowloris 1500 fills the connection cap, and then every new
     connection, the other attackers' included, is answered 503);
   - 150 hits on Q7 with br (background recompression) and 5,400 distinct
     URLs asked with gzip and with br (the cache's byte bound);
3. SIGTERM while the attack is still in flight: how long until brisk exits.

It reports the server's peak RSS (VmHWM), p50/p99 of both normal URLs with
and without the attack, every status the attackers got, the 5xx the normal
traffic got, and the exit time. Then, apart, the memory the cache costs in
steady use: RSS after the same 5,400 distinct URLs with the cache off and
with `cache.max_bytes` = 16 MiB.

    python3 bench/attack.py                        # both databases
    python3 bench/attack.py --db sqlite --duration 10 --no-build

Writes bench/results/<date>-attack.md (raw wrk outputs in
bench/results/raw/attack/). Python 3.11, standard library only; wrk from
Debian (installed when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import load  # noqa: E402

RAW = BENCH / "results" / "raw" / "attack"
CACHED = "/v1/users?page=1&limit=10&fields=name,email"
# a different, cheap query every request: never a cache hit
UNCACHED_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local id = math.random(1, 10000)
  return wrk.format("GET", "/v1/users?limit=1&fields=id,name&id=" .. id .. "&country[ne]=Z" .. counter)
end
"""


class Rss:
    """Samples a process's resident memory until stopped."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.running = pid, 0, True
        self.peak_anon = 0
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid, "VmRSS"))
            self.peak_anon = max(self.peak_anon, rss_kib(self.pid, "RssAnon"))
            time.sleep(0.1)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return max(self.peak, rss_kib(self.pid, "VmHWM"))


def rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wrk(base: str, path: str | None, lua: str | None, duration: int, tag: str) -> subprocess.Popen:
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c4", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if lua:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(lua)
        command += ["-s", str(script), base]
    else:
        command += [base + path]
    out = open(RAW / f"{tag}.txt", "w")
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)


def wrk_result(tag: str) -> dict:
    text = (RAW / f"{tag}.txt").read_text()
    result = load.parse_wrk(text)
    non_2xx = 0
    for line in text.splitlines():
        if "Non-2xx or 3xx responses:" in line:
            non_2xx = int(line.split(":")[1])
    result["non_2xx"] = non_2xx
    return result


async def http(host: str, port: int, raw: bytes, read: bool = True, hang_up_after: float | None = None) -> int:
    """Sends a raw request; returns the status (0: none, -1: hung up by us)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError):
        return 0
    try:
        writer.write(raw)
        await writer.drain()
        if hang_up_after is not None:
            await asyncio.sleep(hang_up_after)
            return -1
        if not read:
            return 0
        line = await asyncio.wait_for(reader.readline(), 30)
        status = int(line.split()[1]) if line.startswith(b"HTTP/") else 0
        # read the rest so the server is not blocked writing
        while await asyncio.wait_for(reader.read(65536), 30):
            pass
        return status
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()


def get(path: str, encoding: str | None = None) -> bytes:
    extra = f"accept-encoding: {encoding}\r\n" if encoding else ""
    return f"GET {path} HTTP/1.1\r\nhost: bench\r\n{extra}connection: close\r\n\r\n".encode()


async def repeat(stop: asyncio.Event, statuses: Counter, name: str, make, **options) -> None:
    while not stop.is_set():
        status = await http(HOST, PORT, make(), **options)
        statuses[(name, status)] += 1


async def slowloris(stop: asyncio.Event, statuses: Counter, connections: int) -> None:
    async def one(i: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
        except OSError:
            statuses[("slowloris", "refused")] += 1
            return
        try:
            head = b"GET /v1/users HTTP/1.1\r\nhost: bench\r\n"
            for byte in head[: (i % 3) * 10]:
                if stop.is_set():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(2)
            # then nothing: wait to be closed
            data = await asyncio.wait_for(reader.read(1024), 120)
            statuses[("slowloris", "closed by server" if not data else data[:12].decode(errors="replace"))] += 1
        except (OSError, asyncio.TimeoutError):
            statuses[("slowloris", "still open or reset")] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))


def distinct_urls(count: int) -> list[str]:
    urls = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            urls.append(f"/v1/users?page={i // 5 % 500 + 1}&limit=20")
        elif kind == 1:
            urls.append(f"/v1/users/{i % 10000 + 1}")
        elif kind == 2:
            urls.append(f"/v1/users/{i % 10000 + 1}/orders?limit=10")
        elif kind == 3:
            urls.append(f"/v1/orders?limit=50&page={i // 5 % 1800 + 1}&include=user")
        else:
            urls.append(f"/v1/products?limit=100&page={i // 5 % 50 + 1}")
    return urls


async def ask_all(
    urls: list[str], encodings: list[str], statuses: Counter, name: str, parallel: int = 8, stop: asyncio.Event | None = None
) -> None:
    queue = [(u, e) for u in urls for e in encodings]
    random.Random(7).shuffle(queue)

    async def worker() -> None:
        while queue and not (stop and stop.is_set()):
            url, encoding = queue.pop()
            statuses[(name, await http(HOST, PORT, get(url, encoding)))] += 1

    await asyncio.gather(*(worker() for _ in range(parallel)))


async def attack(stop: asyncio.Event, statuses: Counter, args_slowloris: int) -> None:
    bomb = "/v1/orders?include=" + ".".join(["user.orders"] * 40)
    filters = "/v1/users?" + "&".join(f"name[ne]=x{i}" for i in range(2000))
    bad_sort = "/v1/users?sort=" + ",".join(f"nope{i}" for i in range(2500))
    huge_body = (
        b"POST /v1/users HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"content-length: 10000000000\r\nconnection: close\r\n\r\n{}"
    )
    rng = random.Random(42)
    tasks = [
        repeat(stop, statuses, "include bomb", lambda: get(bomb)),
        repeat(stop, statuses, "2000 filters", lambda: get(filters)),
        repeat(stop, statuses, "25 KB sort", lambda: get(bad_sort)),
        repeat(stop, statuses, "10 GB Content-Length", lambda: huge_body),
    ]
    for _ in range(12):
        tasks.append(repeat(stop, statuses, "huge answers", lambda: get(
            f"/v1/products?limit=1000&id[gte]={rng.randint(1, 4000)}&include=order_items.order.order_items")))
    for _ in range(8):
        tasks.append(repeat(stop, statuses, "hang up after 100 ms", lambda: get(
            f"/v1/products?limit=1000&id[gte]={rng.randint(1, 4000)}&include=order_items.order.user"), hang_up_after=0.1))
    for _ in range(16):
        tasks.append(repeat(stop, statuses, "deep unindexed pages", lambda: get(
            f"/v1/order_items?sort=unit_price&limit=50&page={rng.randint(1, 2000)}")))
    tasks.append(slowloris(stop, statuses, args_slowloris))
    tasks.append(ask_all(["/v1/products?limit=1000"] * 150, ["br"], statuses, "Q7 br x150", 2, stop))
    tasks.append(ask_all(distinct_urls(5400), ["gzip", "br"], statuses, "5,400 distinct URLs", 8, stop))
    await asyncio.gather(*tasks)


def run_database(database: str, url: str, args: argparse.Namespace) -> dict:
    global HOST, PORT
    server = load.start_server(database, url, "attack", {})
    HOST, PORT = "127.0.0.1", int(server.base.rsplit(":", 1)[1])
    rss = Rss(server.process.pid)
    for _ in range(200):
        load.fetch(server.base + CACHED, "gzip")
    result = {"database": database}
    load.wait_for_quiet(args.max_load)
    for phase in ["baseline", "attack"]:
        cached = wrk(server.base, CACHED, None, args.duration, f"{database}-{phase}-cached")
        uncached = wrk(server.base, None, UNCACHED_LUA, args.duration, f"{database}-{phase}-uncached")
        statuses: Counter = Counter()
        if phase == "attack":
            stop = asyncio.Event()

            async def attack_then_stop() -> None:
                runner = asyncio.create_task(attack(stop, statuses, args.slowloris))
                await asyncio.sleep(args.duration + 2)
                # SIGTERM with the attack in flight; what the attackers get
                # once brisk is gone (connection refused) is not counted
                counted = Counter(statuses)
                started = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                exited = await asyncio.to_thread(server.process.wait, 60)
                result["sigterm_seconds"] = time.monotonic() - started
                result["exit_code"] = exited
                stop.set()
                try:
                    await asyncio.wait_for(runner, 10)
                except asyncio.TimeoutError:
                    runner.cancel()
                statuses.clear()
                statuses.update(counted)

            asyncio.run(attack_then_stop())
            result["statuses"] = statuses
        cached.wait()
        uncached.wait()
        result[phase] = {
            "cached": wrk_result(f"{database}-{phase}-cached"),
            "uncached": wrk_result(f"{database}-{phase}-uncached"),
        }
    result["peak_rss_mib"] = rss.stop() / 1024
    result["peak_anon_mib"] = rss.peak_anon / 1024
    return result


def steady_memory(database: str, url: str, cache_env: dict[str, str]) -> float:
    global HOST, PORT
    server = load.start_server(database, url, "steady", cache_env)
    HOST, PORT = "127.0.0.1", int(server.base.rsplit(":", 1)[1])
    statuses: Counter = Counter()
    asyncio.run(ask_all(distinct_urls(5400), ["gzip", "br"], statuses, "steady"))
    time.sleep(1)
    rss = rss_kib(server.process.pid, "RssAnon") / 1024
    load.stop_server(server)
    return rss


def report(results: list[dict], steady: dict, args: argparse.Namespace, started: datetime.datetime) -> str:
    lines = [
        f"# Attack benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"- command: `python3 {' '.join(sys.argv)}`",
        f"- brisk commit {load.git_commit()}, release build; {load.machine()}",
        f"- server pinned to CPU 0 with its defaults (cache.max_bytes 256 MiB); wrk (2 x `-t1 -c4 -d{args.duration}s`) and the attackers on CPU 1",
        "",
        "| database | peak RSS, of it anonymous (MiB) | cached p50 / p99 ms, alone | under attack | uncached p50 / p99 ms, alone | under attack | normal traffic 5xx (alone / attack) | SIGTERM to exit (s), exit code |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        def ms(phase: str, which: str) -> str:
            w = r[phase][which]
            return f"{w.get('p50_ms', 0):.2f} / {w.get('p99_ms', 0):.2f}"

        lines.append(
            f"| {r['database']} | {r['peak_rss_mib']:.0f}, {r['peak_anon_mib']:.0f} | {ms('baseline', 'cached')} | {ms('attack', 'cached')} "
            f"| {ms('baseline', 'uncached')} | {ms('attack', 'uncached')} "
            f"| {r['baseline']['cached']['non_2xx'] + r['baseline']['uncached']['non_2xx']} / "
            f"{r['attack']['cached']['non_2xx'] + r['attack']['uncached']['non_2xx']} "
            f"| {r.get('sigterm_seconds', float('nan')):.2f}, {r.get('exit_code')} |"
        )
    lines += ["", "What the attackers got (status: count; 0 = no answer before the connection closed, -1 = we hung up):", ""]
    for r in results:
        by_attack: dict[str, list[str]] = {}
        for (name, status), count in sorted(r["statuses"].items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            by_attack.setdefault(name, []).append(f"{status}: {count}")
        lines.append(f"**{r['database']}**")
        lines.append("")
        for name, counts in by_attack.items():
            lines.append(f"- {name}: {', '.join(counts)}")
        lines.append("")
    if steady:
        lines += ["Memory in steady use (anonymous RSS, without the mapped files, after 5,400 distinct URLs, each with gzip and with br):", ""]
        lines += ["| database | cache off | cache.max_bytes 16 MiB | difference |", "|---|---:|---:|---:|"]
        for database, (off, on) in steady.items():
            lines.append(f"| {database} | {off:.0f} MiB | {on:.0f} MiB | {on - off:+.0f} MiB |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-steady", action="store_true", help="skip the steady-memory runs")
    parser.add_argument(
        "--slowloris",
        type=int,
        default=400,
        help="slow connections (default 400, under http.max_connections = 512, so that the other attacks get in; "
        "past the cap every new connection is answered 503)",
    )
    parser.add_argument("--pg-url", default="postgres://root@127.0.0.1:5432/brisk_bench")
    parser.add_argument("--pg-admin-db", default="test")
    args = parser.parse_args()
    started = datetime.datetime.now()
    # 1,500 slowloris sockets and the rest need more than the usual 1,024 files
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    RAW.mkdir(parents=True, exist_ok=True)
    load.RAW = RAW
    load.ensure_wrk()
    if not args.no_build:
        load.build()
    databases = []
    if args.db in ("sqlite", "both"):
        databases.append(("sqlite", load.prepare_sqlite()))
    if args.db in ("postgres", "both"):
        databases.append(("postgres", load.prepare_postgres(args.pg_url, args.pg_admin_db)))
    results, steady = [], {}
    for database, url in databases:
        load.log(f"=== {database}: baseline, then attack")
        results.append(run_database(database, url, args))
        if not args.no_steady:
            off = steady_memory(database, url, {"BRISK_CACHE_ENABLED": "false"})
            on = steady_memory(database, url, {"BRISK_CACHE_MAX_BYTES": str(16 * 1024 * 1024)})
            steady[database] = (off, on)
    text = report(results, steady, args, started)
    out = BENCH / "results" / f"{started:%Y-%m-%d}-attack.md"
    out.write_text(text)
    print(text)
    load.log(f"wrote {out}")
    return 0


HOST, PORT = "127.0.0.1", 0

if __name__ == "__main__":
    sys.exit(main())
