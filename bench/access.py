#!/usr/bin/env python3
"""What the access layer costs on a cache hit: server CPU per request for
one cached answer asked by callers without access settings (open), without
credentials once roles exist (anonymous), with an API key, with a JWT
(warm: verified once, then remembered), with a key under a local rate limit
and under a rate limit shared through Redis; nginx serving the same bytes
is the yardstick. One run, variants interleaved, a fresh brisk process per
measurement; ratios are taken within a round.

    python3 bench/access.py [--question Q2] [--encoding gzip] [--repeats 3]
        [--duration 8] [--redis redis://127.0.0.1:6379/0] [--no-build]

Writes bench/results/<date>-access[-tag].md. Needs wrk, nginx and
target/bench/shop.db (bench/run_all.sh makes it); the limits are set so
high that no request is refused (the cost of deciding is what is measured).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import load  # noqa: E402
import peers  # noqa: E402

PATHS = {
    "Q1": "/v1/users?page=1&limit=10&fields=name,email",
    "Q2": "/v1/products?page=2&limit=50&category=electronics&sort=price_asc",
    "Q5": "/v1/orders?page=1&limit=50&include=user,order_items.product",
}
SECRET = "bench secret of at least thirty-two bytes, no more"
VARIANTS = ["open", "anonymous", "key", "jwt", "key+limit", "key+limit+redis"]


@dataclass
class Run:
    variant: str
    round: int
    requests: int
    requests_per_s: float
    p99_ms: float
    cpu_us: float
    non_2xx: int
    load_before: float


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict) -> str:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def new_key() -> tuple[str, str]:
    out = subprocess.run([str(load.BRISK), "key", "new", "--role", "reader", "--name", "bench"],
                         capture_output=True, text=True, check=True).stdout
    key = re.search(r"^\s+(brisk_[0-9a-f]+)\s*$", out, re.M).group(1)
    digest = re.search(r'^sha256 = "([0-9a-f]{64})"', out, re.M).group(1)
    return key, digest


def config(variant: str, digest: str, redis: str, prefix: str) -> str:
    if variant == "open":
        return ""
    text = f'[roles.reader]\n[auth.keys.bench]\nrole = "reader"\nsha256 = "{digest}"\n'
    text += f'[auth.jwt]\nalgorithms = ["HS256"]\nsecret = "{SECRET}"\ndefault_role = "reader"\n'
    if "limit" in variant:
        text += "[rate_limit]\nrequests = 1000000000\nwindow_seconds = 60\n"
    if "redis" in variant:
        text = f'[redis]\nurl = "{redis}"\nprefix = "{prefix}"\n' + text
    return text


def headers(variant: str, key: str, token: str) -> list[str]:
    if variant in ("open", "anonymous"):
        return []
    credential = token if variant == "jwt" else key
    return [f"Authorization: Bearer {credential}"]


def start(config_text: str, label: str) -> tuple[subprocess.Popen, str, Path]:
    port = load.free_port()
    directory = Path(tempfile.mkdtemp(prefix="brisk-access-"))
    (directory / "brisk.toml").write_text(config_text)
    log_path = load.RAW / f"access-{label}.log"
    command = ["taskset", "-c", "0", str(load.BRISK), "serve", "--db", str(load.SQLITE_FILE),
               "--listen", f"127.0.0.1:{port}", "--config", str(directory / "brisk.toml")]
    with open(log_path, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"brisk exited with {process.returncode}; see {log_path}")
        try:
            if load.fetch(base + "/readyz")[0] == 200:
                return process, base, log_path
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"brisk did not become ready; see {log_path}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def warm(base: str, path: str, encoding: str, extra: list[str]) -> None:
    """Asks the URL until it is a hit with the variant's credentials."""
    command = ["curl", "-s", "-o", "/dev/null", "-D", "-", "-H", f"Accept-Encoding: {encoding}"]
    for header in extra:
        command += ["-H", header]
    for _ in range(20):
        out = subprocess.run(command + [base + path], capture_output=True, text=True).stdout
        if not out.startswith("HTTP/1.1 200"):
            raise RuntimeError(f"{base}{path} with {extra}: {out.splitlines()[:1]}")
        if "cache;desc=hit" in out:
            return
    raise RuntimeError(f"{path} never became a cache hit")


def measure(base: str, pid: int, path: str, encoding: str, extra: list[str], args, label: str) -> tuple[dict, float, float]:
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{args.duration}s", "--latency",
               "-H", f"Accept-Encoding: {encoding}"]
    for header in extra:
        command += ["-H", header]
    command.append(base + path)
    load_before = load.wait_for_quiet(args.max_load, poll=3)
    load.log(f"{label}: load {load_before:.2f}: $ {shlex.join(command)}")
    ticks0 = peers.tree_ticks(pid)
    output = load.run_wrk(command)
    ticks = peers.tree_ticks(pid) - ticks0
    (load.RAW / f"access-{label}.txt").write_text(shlex.join(command) + "\n\n" + output)
    parsed = load.parse_wrk(output)
    cpu_us = ticks / load.CLOCK_TICKS * 1e6 / max(parsed["requests"], 1)
    load.log(f"  {parsed['requests_per_s']:,.0f} req/s, {cpu_us:.1f} us CPU/req, non-2xx {parsed['non_2xx']}")
    return parsed, cpu_us, load_before


def spread(values: list[float], digits: int = 1) -> str:
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--question", default="Q2", choices=sorted(PATHS))
    parser.add_argument("--encoding", default="gzip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    started = datetime.datetime.now()
    load.ensure_wrk()
    if not args.no_build:
        load.build()
    load.RAW.mkdir(parents=True, exist_ok=True)
    load.prepare_sqlite()
    path = PATHS[args.question]
    key, digest = new_key()
    token = hs256({"sub": "bench", "role": "reader", "exp": int(time.time()) + 86400})
    prefix = f"brisk-bench-{os.getpid()}"

    # nginx gets brisk's identity bytes of the URL
    process, base, _ = start("", "fetch")
    try:
        status, _, body = load.fetch(base + path)
        assert status == 200, status
    finally:
        stop(process)
    nginx = peers.start_nginx({path: body}, load.RAW)

    runs: list[Run] = []
    try:
        for round_ in range(1, args.repeats + 1):
            order = VARIANTS[round_ - 1:] + VARIANTS[:round_ - 1] + ["nginx"]
            for variant in order:
                label = f"{variant}-{round_}"
                extra = headers(variant, key, token) if variant != "nginx" else []
                if variant == "nginx":
                    parsed, cpu, before = measure(nginx.base, nginx.process.pid, path, args.encoding, [], args, label)
                else:
                    process, base, _ = start(config(variant, digest, args.redis, prefix), label)
                    try:
                        warm(base, path, args.encoding, extra)
                        parsed, cpu, before = measure(base, process.pid, path, args.encoding, extra, args, label)
                    finally:
                        stop(process)
                runs.append(Run(variant, round_, parsed["requests"], parsed["requests_per_s"], parsed["p99_ms"], cpu, parsed["non_2xx"], before))
    finally:
        peers.stop(nginx)

    def of(variant: str) -> list[Run]:
        return [r for r in runs if r.variant == variant]

    def ratio(variant: str, to: str) -> list[float]:
        out = []
        for round_ in range(1, args.repeats + 1):
            a = [r.cpu_us for r in runs if r.variant == variant and r.round == round_]
            b = [r.cpu_us for r in runs if r.variant == to and r.round == round_]
            if a and b and b[0] > 0:
                out.append(a[0] / b[0])
        return out

    lines = [
        f"# The access layer on cache hits, {started:%Y-%m-%d %H:%M}",
        "",
        f"- command: `python3 bench/access.py {shlex.join(sys.argv[1:])}`",
        f"- machine: {load.machine()}",
        f"- brisk: {load.BRISK}, commit {load.git_commit()}",
        f"- question: {args.question} `{path}`, `Accept-Encoding: {args.encoding}`, {len(body):,} identity bytes; every request a cache hit",
        f"- setup: server pinned to CPU 0, `wrk -t1 -c64 -d{args.duration}s` on CPU 1; a fresh brisk per run; "
        f"{args.repeats} rounds, variants in a rotating order; CPU µs/req = utime + stime of the server over the run / requests",
        "- variants: open (no access settings); anonymous (roles configured, no credentials); key (API key, "
        "`Authorization: Bearer`); jwt (HS256, verified once then remembered); key+limit (a local GCRA limit no request reaches); "
        "key+limit+redis (the same limit shared through Redis: one script call per request)",
        "",
        "| variant | req/s | p99 ms | CPU µs/req | ÷ open (CPU) | ÷ anonymous (CPU) | ÷ nginx (CPU) | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS + ["nginx"]:
        rs = of(variant)
        lines.append(
            f"| {variant} | {spread([r.requests_per_s for r in rs], 0)} | {spread([r.p99_ms for r in rs], 2)} | "
            f"{spread([r.cpu_us for r in rs])} | {spread(ratio(variant, 'open'), 2)} | "
            f"{spread(ratio(variant, 'anonymous'), 2)} | "
            f"{spread(ratio(variant, 'nginx'), 2)} | {sum(r.non_2xx for r in rs)} |"
        )
    lines += ["", "Runs:", "", "| variant | round | load before | requests | req/s | CPU µs/req |", "|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.variant} | {r.round} | {r.load_before:.2f} | {r.requests:,} | {r.requests_per_s:,.0f} | {r.cpu_us:.1f} |")
    name = f"{started:%Y-%m-%d}-access{'-' + args.tag if args.tag else ''}.md"
    report = load.RESULTS / name
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    load.log(f"wrote {report.relative_to(load.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
