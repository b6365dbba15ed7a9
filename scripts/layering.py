"""Print how citybrain's parts are joined: cross-feature imports, import cycles, untyped service lookups.

A service lookup is untyped when it goes around the typed ports (`rt.services[…]`, a dictionary of Any) or
when the port it reads is declared `Port[Any]` in citybrain/ports.py.

Usage: python scripts/layering.py [--list]   (from the repository root)

A feature (situation, rules, cases, …) may import the platform floor (runtime, commands, model, store,
bus, …) but no other feature: features talk through commands and bus events. Imports under
`if TYPE_CHECKING:` and inside functions count too (they are couplings all the same).
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "citybrain"
FEATURES = {"situation", "rules", "detect", "risk", "alerts", "cases", "open311", "modes", "plans", "dispatch",
            "drill", "federation", "trust", "ledger", "ngsi", "mqtt", "indicators", "demo", "dashboard", "ops",
            "ingest"}
FRONT_DOORS = {"api", "cli"}  # may import features: they mount them
LOOKUP = re.compile(r"services(\[|\.get\(|\.setdefault\()")
UNTYPED_PORT = re.compile(r"^\s+(\w+): Port\[Any\]", re.M)


def part_of(module: str) -> str:
    """Return the top-level part of a dotted citybrain module name ('citybrain.cases.desk' -> 'cases')."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else ""


def imports(path: Path) -> list[str]:
    """Return every citybrain module a file imports (anywhere in it)."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("citybrain")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("citybrain"):
            out.append(node.module)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    """Print the three counts (and, with --list, every offending line)."""
    show = "--list" in sys.argv
    cross: list[str] = []
    graph: dict[str, set[str]] = defaultdict(set)
    lookups: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        mine = part_of(module)
        for target in imports(path):
            theirs = part_of(target)
            if theirs and theirs != mine:
                graph[mine].add(theirs)
                if mine in FEATURES and theirs in FEATURES:
                    cross.append(f"{rel}: imports {target}")
                if mine not in FEATURES and mine not in FRONT_DOORS and theirs in FEATURES:
                    cross.append(f"{rel}: (floor) imports feature {target}")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if LOOKUP.search(line):
                lookups.append(f"{rel}:{n}: {line.strip()}")
    untyped = UNTYPED_PORT.findall((ROOT / "ports.py").read_text())
    if untyped:
        use = re.compile(r"ports\.(%s)\b|Ports\.(%s)\b" % ("|".join(untyped), "|".join(untyped)))
        for path in sorted(ROOT.rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if use.search(line) and path.name != "ports.py":
                    lookups.append(f"{path.relative_to(ROOT.parent)}:{n}: {line.strip()} (port typed Any)")
    found = cycles(graph)
    print(f"cross-feature imports: {len(cross)}")
    print(f"import cycles between parts: {len(found)}")
    print(f"untyped service lookups: {len(lookups)}")
    if show:
        for line in cross:
            print("  import", line)
        for comp in found:
            print("  cycle", " <-> ".join(comp))
        for line in lookups:
            print("  lookup", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
