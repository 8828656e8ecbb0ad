#!/usr/bin/env python3
"""The identity bodies of Q1..Q7 for benches/compression.rs, and a live check
of brisk's background recompression of a hot entry.

Starts `brisk serve` from --source (default: this checkout) over
target/bench/shop.db on a free port (pinned to CPU 0), then:

1. writes the identity body of each question (Q3 and Q4 for user 123) to
   bench/payloads/Q1.json..Q7.json (git-ignored);
2. with --check-recompress: asks for Q7 with `Accept-Encoding: br` N times
   (default 150; brisk's `compression.recompress_after_hits` is 100), one
   request at a time, and records after each request the ETag's suffix and
   the body size; then waits up to 60 s for the ETag to end in `-br11`, and
   prints a markdown summary: the first and the 100th request, every request
   whose ETag suffix or size differs from the one before, and the last.

    python3 bench/payloads.py --source /tmp/brisk-snap
    python3 bench/payloads.py --source /tmp/brisk-snap --check-recompress
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import load  # noqa: E402

PAYLOADS = BENCH / "payloads"


def suffix(etag: str) -> str:
    match = re.search(r"-([a-z]+\d+)\"$", etag or "")
    return match.group(1) if match else "(identity)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=load.ROOT)
    parser.add_argument("--check-recompress", action="store_true")
    parser.add_argument("--requests", type=int, default=150)
    args = parser.parse_args()
    load.SOURCE = args.source.resolve()
    load.BRISK = load.SOURCE / "target" / "release" / "brisk"
    sqlite_file = load.prepare_sqlite()
    server = load.start_server("sqlite", sqlite_file, "payloads", {})
    try:
        PAYLOADS.mkdir(exist_ok=True)
        for question in load.QUESTIONS:
            if question.id == "Q6c":
                continue
            path = question.path.replace("{id}", "123")
            status, headers, body = load.fetch(server.base + path)
            if status != 200 or headers.get("content-encoding"):
                raise RuntimeError(f"{path}: {status} {headers.get('content-encoding')}")
            (PAYLOADS / f"{question.id}.json").write_bytes(body)
            load.log(f"{question.id}: {len(body):,} bytes <- {path}")
        if args.check_recompress:
            path = "/v1/products?limit=1000"
            seen = []
            t0 = time.monotonic()
            for i in range(1, args.requests + 1):
                status, headers, body = load.fetch(server.base + path, "br")
                seen.append((i, status, headers.get("content-encoding"), suffix(headers.get("etag")), len(body), time.monotonic() - t0))
            deadline = time.monotonic() + 60
            while seen[-1][3] != "br11" and time.monotonic() < deadline:
                time.sleep(0.5)
                status, headers, body = load.fetch(server.base + path, "br")
                seen.append((len(seen) + 1, status, headers.get("content-encoding"), suffix(headers.get("etag")), len(body), time.monotonic() - t0))
            changes = [seen[0]] + [s for prev, s in zip(seen, seen[1:]) if (s[3], s[4]) != (prev[3], prev[4])]
            print(f"commit {load.git_commit()}; Q7 `{path}` with `Accept-Encoding: br`, {len(seen)} requests in sequence\n")
            print("| request | s since the first | status | Content-Encoding | ETag suffix | body bytes |")
            print("|---:|---:|---:|---|---|---:|")
            rows = [seen[0]] + ([seen[99]] if len(seen) > 99 else []) + changes[1:]
            rows += [seen[-1]] if seen[-1] not in rows else []
            for s in sorted(set(rows)):
                print(f"| {s[0]} | {s[5]:.2f} | {s[1]} | {s[2]} | {s[3]} | {s[4]:,} |")
    finally:
        load.stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
