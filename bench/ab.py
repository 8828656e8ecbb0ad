#!/usr/bin/env python3
"""A/B load comparison of two brisk builds in one run, on SQLite.

Shows whether a change (B) makes brisk slower than a baseline (A). For each
question and Accept-Encoding (gzip, none), over --repeats rounds, it measures
with bench/compare.py's machinery (a fresh brisk per run pinned to CPU 0,
warm-up, `wrk -t1 -c64 --latency --timeout 10s` on CPU 1 after waiting for
the 1-minute load average to fall below --max-load, CPU of the server's
process tree per request):

    first-hit, nginx, second-hit, first-nocache, second-nocache

where first/second is A/B in odd rounds and B/A in even rounds; brisk-hit is
the default config warmed up to cache hits, brisk-nocache has
BRISK_CACHE_ENABLED=false, nginx is compare.py's yardstick (A's identity
bytes as static files, gzip_static). Every B/A ratio is taken within a round
(A and B measured next to each other), then median (min-max).

Usage, from the repository root (A and B: clones of fixed commits):

    python3 bench/ab.py --a /tmp/brisk-base --b /tmp/brisk-head
    python3 bench/ab.py --a /tmp/brisk-base --b /tmp/brisk-head --questions Q1,Q7 --duration 5 --repeats 3

Writes bench/results/<date>-ab-<tag>.md and raw wrk outputs under
bench/results/raw/ab-<tag>/ (A/, B/, nginx at the top, runs.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "peers"))
import compare  # noqa: E402
import load  # noqa: E402
import peers  # noqa: E402

DEFAULT_QUESTIONS = "Q1,Q2,Q5,Q7"
OTHER_CPU_PCT = 10  # a run with more of other processes' CPU is noted as disturbed
CLEAN_SOCKETS = ("", "connect 0, read 0, write 0, timeout 0")
# (row label, system, wrk/CPU attribute, divided by nginx's figure of the round)
METRICS = [
    ("hit CPU µs/req", "brisk-hit", "server_cpu_us", False),
    ("hit ÷ nginx CPU/req", "brisk-hit", "server_cpu_us", True),
    ("nocache req/s", "brisk-nocache", "requests_per_s", False),
    ("nocache CPU µs/req", "brisk-nocache", "server_cpu_us", False),
]


@dataclass
class Side:
    name: str  # "A" or "B"
    source: Path
    label: str = ""
    commit: str = ""  # short commit, "-dirty (...)" when the tree is not clean
    binary: str = ""  # sha256 prefix of target/release/brisk


def use(side: Side | None, raw: Path) -> None:
    """Points load.py's globals at one checkout (None: the peers)."""
    if side is not None:
        load.SOURCE, load.BRISK = side.source, side.source / "target" / "release" / "brisk"
    load.RAW = raw / side.name if side is not None else raw
    load.RAW.mkdir(parents=True, exist_ok=True)


def clean_environment() -> None:
    """brisk refuses unknown BRISK_* variables (even the bench's own
    BRISK_PEERS_VENV), and a shared CARGO_TARGET_DIR would mix the builds."""
    for name in [n for n in os.environ if n.startswith("BRISK_") or n == "CARGO_TARGET_DIR"]:
        load.log(f"unsetting {name} for the builds and servers")
        del os.environ[name]


def by_round(runs: list[compare.Run], qid: str, side: str, system: str, column: str, attr: str, vs_nginx: bool) -> dict[int, float]:
    values = {r.round: getattr(r, attr) for r in compare.cells(runs, qid, f"{side}-{system}", column)}
    if vs_nginx:
        nginx = {r.round: getattr(r, attr) for r in compare.cells(runs, qid, "nginx", column)}
        values = {k: v / nginx[k] for k, v in values.items() if nginx.get(k)}
    return values


def problems(runs: list[compare.Run], qid: str, system: str, column: str, vs_nginx: bool, max_load: float) -> str:
    """Non-2xx and socket errors in bold, also misses after the warm-up and
    differing bodies; runs measured above --max-load or disturbed."""
    names = [f"A-{system}", f"B-{system}"] + (["nginx"] if vs_nginx else [])
    found = []
    for r in (r for name in names for r in compare.cells(runs, qid, name, column)):
        who = f"{r.system.split('-')[0]} r{r.round}"
        if r.non_2xx or r.socket_errors not in CLEAN_SOCKETS:
            found.append(f"**{who}: {r.non_2xx} non-2xx, sockets {r.socket_errors or 'ok'}**")
        if r.system.endswith("hit") and r.cache != "hit":
            found.append(f"**{who}: cache {r.cache or 'unknown'}, not hit**")
        if r.load_before >= max_load:
            found.append(f"{who}: load {r.load_before:.2f}")
        if r.other_cpu_pct > OTHER_CPU_PCT:
            found.append(f"{who}: other CPU {r.other_cpu_pct:.0f}%")
    # Identity bodies must match; compressed ones vary a little (the background
    # recompression at higher levels after 100 hits, the random cursor secret).
    sizes = [r.body_bytes for name in names[:2] for r in compare.cells(runs, qid, name, column)]
    if sizes and max(sizes) > min(sizes) * (1 if column == "none" else 1.02):
        found.append(f"**body bytes differ: {min(sizes):,.0f} to {max(sizes):,.0f}**")
    return "; ".join(found) or "ok"


def ab_table(runs: list[compare.Run], questions: list[str], sides: list[Side], max_load: float) -> str:
    a, b = sides
    lines = [
        f"| question | Accept-Encoding | metric | A {a.label} | B {b.label} | B/A | problems |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for qid in questions:
        for column in compare.ENCODINGS:
            if not compare.cells(runs, qid, "A-brisk-hit", column) and not compare.cells(runs, qid, "A-brisk-nocache", column):
                continue
            for label, system, attr, vs_nginx in METRICS:
                va = by_round(runs, qid, "A", system, column, attr, vs_nginx)
                vb = by_round(runs, qid, "B", system, column, attr, vs_nginx)
                ratio = [vb[k] / va[k] for k in vb if va.get(k)]
                digits = 2 if vs_nginx else (0 if attr == "requests_per_s" else 1)
                lines.append(
                    f"| {qid} | {column} | {label} | {compare.fmt_many(list(va.values()), digits)} "
                    f"| {compare.fmt_many(list(vb.values()), digits)} | {compare.fmt_many(ratio, 3, False)} "
                    f"| {problems(runs, qid, system, column, vs_nginx, max_load)} |"
                )
    return "\n".join(lines)


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{model.group(1) if model else 'unknown CPU'}, nproc {nproc} ({load.machine()})"


def write_report(runs, args, sides: list[Side], started: datetime.datetime, nginx: str) -> Path:
    loads = [r.load_before for r in runs] or [float("nan")]
    bad = [r for r in runs if r.non_2xx or r.socket_errors not in CLEAN_SOCKETS]
    warning = f"\n**WARNING: {len(bad)} runs had non-2xx answers or socket errors; see the problems column.**\n" if bad else ""
    side_lines = "\n".join(
        f"- {s.name}: {s.source}, commit {s.commit}, target/release/brisk sha256 {s.binary}"
        + (" (the same binary as A)" if s.name == "B" and s.binary == sides[0].binary else "")
        for s in sides
    )
    text = f"""# brisk A/B: {sides[0].label} against {sides[1].label}, {started:%Y-%m-%d %H:%M}
{warning}
- command: `{shlex.join(['python3'] + sys.argv)}`
- machine: {machine()}
{side_lines}
- data: {load.SQLITE_FILE} (demo shop scale {load.SCALE}, seed {load.SEED}); yardstick: {nginx}
- setup: every server pinned to CPU 0, `wrk -t1 -c{args.connections} -d{args.duration}s --latency --timeout 10s`
  on CPU 1; a fresh brisk process per run, warmed up ({args.warmup} requests from 8 clients, Q3/Q4 every
  id of 1..{args.spread_high} once); per question, round and Accept-Encoding the order is
  first-hit, nginx, second-hit, first-nocache, second-nocache, first = A in odd rounds, B in even ones;
  {args.repeats} rounds. Server CPU µs/req = utime + stime of the server's process tree over the run / requests.
- load average (1 min) before the runs: min {min(loads):.2f}, median {statistics.median(loads):.2f},
  max {max(loads):.2f} (waited for < {args.max_load}, at most 10 minutes, before each run).
- cells: median (min–max) over the rounds; B/A is taken within each round, then median (min–max).
  B/A above 1 means B costs more CPU per request (or, for req/s, serves more). hit ÷ nginx uses the
  nginx run of the same round, so its B/A equals the hit CPU B/A.

{ab_table(runs, args.selected, sides, args.max_load)}

Details:

{compare.details_table(runs)}

URLs: {'; '.join(f'{q} `{compare.QUESTIONS[q]}`' for q in args.selected)}
"""
    load.RESULTS.mkdir(parents=True, exist_ok=True)
    path = load.RESULTS / f"{started:%Y-%m-%d}-ab-{args.tag}.md"
    path.write_text(text)
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--b", type=Path, required=True, help="the checkout under test")
    parser.add_argument("--label-a", default="")
    parser.add_argument("--label-b", default="")
    parser.add_argument("--questions", default=DEFAULT_QUESTIONS, help="from " + ",".join(compare.QUESTIONS))
    parser.add_argument("--encodings", default="gzip,none", help="gzip,none (none: no Accept-Encoding header)")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--spread-high", type=int, default=2000, help="Q3/Q4 ids 1..N (nginx has files for those)")
    parser.add_argument("--max-load", type=float, default=0.6)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--tag", default="", help="default: <label A>-<label B>")
    args = parser.parse_args()
    args.selected = [q.strip() for q in args.questions.split(",") if q.strip()]
    args.columns = [c.strip() for c in args.encodings.split(",") if c.strip()]
    if set(args.selected) - set(compare.QUESTIONS):
        parser.error(f"unknown questions {sorted(set(args.selected) - set(compare.QUESTIONS))}")
    if not args.columns or set(args.columns) - set(compare.ENCODINGS):
        parser.error("--encodings takes gzip, none or both")
    args.systems, args.flask_threads = ["nginx"], 0  # what compare.Systems reads
    return args


def main() -> int:
    args = parse_args()
    started = datetime.datetime.now()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    clean_environment()
    sides = [Side("A", args.a.resolve(), args.label_a), Side("B", args.b.resolve(), args.label_b)]
    for side in sides:
        short = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=side.source, capture_output=True, text=True, check=True)
        side.label = side.label or short.stdout.strip()
        side.commit = compare.commit_of(side.source)
    args.tag = args.tag or re.sub(r"[^\w.-]", "_", f"{sides[0].label}-{sides[1].label}")
    raw = load.RESULTS / "raw" / f"ab-{args.tag}"
    load.ensure_wrk()
    for side in sides:
        use(side, raw)
        if not args.no_build and not (side.name == "B" and side.source == sides[0].source):
            load.build()
        side.binary = load.binary_digest()
    use(sides[0], raw)
    sqlite_file = load.prepare_sqlite()  # with A's brisk when missing
    systems = compare.Systems(args, sqlite_file)
    runs: list[compare.Run] = []
    try:
        use(None, raw)
        systems.start_peers()  # nginx over A's identity bytes of every URL of the run
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        nginx = f"{version}, gzip_static, {systems.peers['nginx'].extra}"
        for qid in args.selected:
            for round_ in range(1, args.repeats + 1):
                first, second = sides if round_ % 2 else sides[::-1]
                order = [(first, "brisk-hit"), (None, "nginx"), (second, "brisk-hit"),
                         (first, "brisk-nocache"), (second, "brisk-nocache")]
                for column in args.columns:
                    for side, system in order:
                        use(side, raw)
                        load.log(f"--- {qid} {column} round {round_}: {side.name + ' ' if side else ''}{system}")
                        run = systems.measure(qid, system, column, round_)
                        if side is not None:
                            run.system = f"{side.name}-{system}"
                        runs.append(run)
                        (raw / "runs.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
            write_report(runs, args, sides, started, nginx)
    finally:
        systems.stop_peers()
    for side in sides:
        use(side, raw)
        if load.binary_digest() != side.binary:
            load.log(f"WARNING: {load.BRISK} changed during the run; the {side.name} results mix binaries")
            side.binary += f", CHANGED during the run to {load.binary_digest()}: results mix binaries"
    path = write_report(runs, args, sides, started, nginx)
    print(ab_table(runs, args.selected, sides, args.max_load))
    load.log(f"wrote {path.relative_to(load.ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
