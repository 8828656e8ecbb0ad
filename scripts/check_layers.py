#!/usr/bin/env python3
"""Checks that the server's modules (src/*) import only modules of lower
layers, so the request path reads top to bottom and no import loop can form.

The layers, lowest first, are the ones ARCHITECTURE.md's Invariants name.
A module counts as imported when its code names `crate::<module>` (doc
comments and test modules are not counted). A new module must be given a
layer here. Exits 1, naming each import that goes sideways or up.

    python3 scripts/check_layers.py
"""

import re
import sys
from pathlib import Path

LAYERS = [
    ["encoding", "versions", "dataset", "gate", "metrics", "auth"],
    ["config", "conditional"],
    ["db", "cluster", "roles"],
    ["error", "validators", "changes", "telemetry", "rate_limit"],
    ["cache", "server", "access"],
    ["state", "respond", "openapi"],
    ["read", "write"],
    ["pipeline"],
    ["routes"],
    ["front"],
    ["app"],
    ["cli"],
]
ROOTS = {"lib", "main"}

SRC = Path(__file__).resolve().parent.parent / "src"


def imports(path: Path) -> set[str]:
    text = path.read_text().split("#[cfg(test)]")[0]
    code = "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))
    names = set(re.findall(r"crate::([a-z_]+)", code))
    for group in re.findall(r"use crate::\{([^}]*)\}", code):
        names |= {item.strip().split("::")[0] for item in group.split(",") if item.strip()}
    return names


def main() -> int:
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    problems = []
    for path in sorted(SRC.rglob("*.rs")):
        module = path.relative_to(SRC).parts[0].removesuffix(".rs")
        if module in ROOTS:
            continue
        if module not in layer_of:
            problems.append(f"src/{module}: not in any layer of scripts/check_layers.py")
            continue
        for imported in sorted(imports(path) - {module}):
            if imported not in layer_of:
                continue
            if layer_of[imported] >= layer_of[module]:
                problems.append(
                    f"{path.relative_to(SRC.parent)}: {module} (layer {layer_of[module]}) "
                    f"imports {imported} (layer {layer_of[imported]})"
                )
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"layers hold: {len(layer_of)} modules, every import goes down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
