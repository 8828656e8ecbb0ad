#!/usr/bin/env python3
"""How PostgreSQL runs one embed level, by how its key list is bound.

brisk fetches an embedded relation with one statement per level, for all
the parent rows' keys at once, bound as one text parameter (an array
literal). This times that statement on the demo shop (scale 1, database
brisk_bench, as bench/load.py makes it) for the `order_items` of the first
N orders, under a custom plan (what a prepared statement gets for its first
runs, and whenever PostgreSQL finds it cheaper) and a generic one:

- before: `order_id = ANY($1::int4[])`, the text cast inside ANY;
- after:  `order_id = ANY(ARRAY(SELECT unnest($1::int4[])))`, brisk's form;
- typed:  `order_id = ANY($1)` with $1 a real int8[] parameter (a reference).

    python3 bench/embed_binding.py [--ids 60000] [--timeout 60]
"""

import argparse
import re
import subprocess

VARIANTS = {
    "before": ("text", 'WHERE t0."order_id" = ANY($1::"pg_catalog"."int4"[])'),
    "after": ("text", 'WHERE t0."order_id" = ANY(ARRAY(SELECT unnest($1::"pg_catalog"."int4"[])))'),
    "typed": ("int8[]", 'WHERE t0."order_id" = ANY($1)'),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, default=60000)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per statement")
    parser.add_argument("--url", default="postgres://root@127.0.0.1:5432/brisk_bench")
    args = parser.parse_args()
    ids = "{" + ",".join(str(i) for i in range(1, args.ids + 1)) + "}"
    for plans, (name, (param, where)) in [(p, v) for p in ("custom", "generic") for v in VARIANTS.items()]:
        script = f"""SET plan_cache_mode = force_{plans}_plan;
SET statement_timeout = '{args.timeout}s';
PREPARE q({param}) AS SELECT t0."id", t0."order_id", t0."product_id", t0."quantity",
  t0."unit_price"::text FROM "order_items" t0 {where} ORDER BY t0."id";
\\timing on
EXECUTE q('{ids}') \\g /dev/null
EXECUTE q('{ids}') \\g /dev/null
"""
        out = subprocess.run(["psql", args.url, "-X", "-q"], input=script, text=True, capture_output=True)
        times = re.findall(r"Time: ([0-9.]+) ms", out.stdout + out.stderr)[-2:]
        error = "canceled after the timeout" if "canceling statement" in out.stderr else ""
        print(f"{plans:7} plan, {name:7} {args.ids} keys: {' / '.join(t + ' ms' for t in times)} {error}")


if __name__ == "__main__":
    main()
