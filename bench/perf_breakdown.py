"""Where a server's CPU went, by stage: reads `perf report --no-children
--sort dso,symbol` output and sums the shares of the symbols each stage
owns (the first pattern that matches a symbol wins).

    perf record -F 999 -p <brisk pid> -o q5.data -- sleep 5 &  # while wrk runs
    perf report -i q5.data --no-children --sort dso,symbol --stdio \
        | python3 bench/perf_breakdown.py
"""

import re
import sys

STAGES = [
    ("compression", r"deflate|zlib|compare256|crc32|slide_hash|longest_match|ZSTD|zstd|Brotli|brotli"),
    ("SQLite", r"^sqlite3|btree|vdbe|Vdbe|Btree|getCellInfo|pcache|json[A-Z]"),
    ("decoding cells", r"db::sqlite::query|db::postgres|rusqlite|from_utf8|Utf8Chunks|tokio_postgres|postgres_types"),
    ("rendering JSON", r"brisk_query::rows|brisk_query::envelope|serde_json|write_json|zmij|fmt::|Display|pad_integral|to_string|ryu|itoa|keys_json|Related|join_values|hash|Hasher"),
    ("allocator", r"^_?mi_|malloc|free|realloc"),
    ("copying (memmove, memset)", r"memmove|memcpy|memset|clear_page"),
    ("kernel (network, scheduling)", r"\[k\]"),
]


def main() -> int:
    totals = {name: 0.0 for name, _ in STAGES}
    other = 0.0
    for line in sys.stdin:
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\[[.k]\])\s+(.*)", line)
        if not m:
            continue
        share, symbol = float(m.group(1)), f"{m.group(3)} {m.group(4).strip()}"
        for name, pattern in STAGES:
            if re.search(pattern, symbol.removeprefix("[.] ").removeprefix("[k] ") if name != "kernel (network, scheduling)" else symbol):
                totals[name] += share
                break
        else:
            other += share
    for name, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {share:.1f}% |")
    print(f"| other | {other:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
