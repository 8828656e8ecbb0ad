#!/bin/sh
# Every benchmark of bench/README.md on a fixed snapshot of brisk, one after
# the other (one measurement at a time):
#
#   sh bench/run_all.sh [COMMIT]        # default: HEAD of this repository
#
# 1. clones this repository at COMMIT into /tmp/brisk-snap and builds it
#    (`cargo build --release`), and into /tmp/brisk-snap-bench with this
#    tree's benches/compression.rs, built with `cargo bench --no-run` (a
#    separate target, so the measured binary keeps `cargo build`'s features);
# 2. bench/payloads.py: the seven identity bodies, and the live check of the
#    background recompression of Q7 (br 5 -> br 11);
# 3. the compression table (benches/compression.rs, pinned to CPU 1);
# 4. bench/compare.py: brisk against nginx and Flask on SQLite;
# 5. bench/load.py --db postgres: brisk's cache hits on PostgreSQL;
# 6. bench/writes.py: writes, the read-mostly mix, outside writes.
#
# Each step waits for a 1-minute load average below 0.6 before measuring.
# Set STEPS to a subset, e.g. STEPS="compression compare".
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMMIT=$(git -C "$ROOT" rev-parse "${1:-HEAD}")
SNAP=/tmp/brisk-snap
BENCHSNAP=/tmp/brisk-snap-bench
STEPS=${STEPS:-"build payloads compression compare pg-hits writes"}
DATE=$(date +%Y-%m-%d)
cd "$ROOT"

has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
snapshot() {
    if [ ! -d "$1/.git" ]; then git clone -q "$ROOT" "$1"; fi
    git -C "$1" fetch -q "$ROOT" "$COMMIT" 2>/dev/null || true
    git -C "$1" checkout -q "$COMMIT"
}
quiet() { python3 -c 'import sys; sys.path.insert(0, "bench"); import load; print(load.wait_for_quiet(0.6, poll=3))'; }

if has build; then
    snapshot "$SNAP"
    (cd "$SNAP" && cargo build --release)
    snapshot "$BENCHSNAP"
    cp "$ROOT/benches/compression.rs" "$BENCHSNAP/benches/compression.rs"
    (cd "$BENCHSNAP" && cargo bench --bench compression --no-run)
fi
if has payloads; then
    python3 bench/payloads.py --source "$SNAP" --check-recompress | tee "bench/results/raw/recompress-check.md"
fi
if has compression; then
    LOAD=$(quiet)
    echo "load average before the compression bench: $LOAD" | tee bench/results/raw/compression-load.txt
    (cd "$BENCHSNAP" && COMPRESSION_BENCH_PAYLOADS="$ROOT/bench/payloads" \
        COMPRESSION_BENCH_OUT="$ROOT/bench/results/raw/compression-table.md" \
        taskset -c 1 cargo bench --bench compression)
fi
if has compare; then
    python3 bench/compare.py --source "$SNAP" --no-build
fi
if has pg-hits; then
    python3 bench/load.py --source "$SNAP" --no-build --db postgres --questions Q1,Q2,Q3,Q4,Q5,Q6,Q7 --tag pg-hits
fi
if has writes; then
    python3 bench/writes.py --source "$SNAP"
fi
echo "done: commit $COMMIT, results in bench/results/$DATE-*.md"
