"""Write (or check) the component table of docs/architecture.md from the components' manifests.

Usage: python scripts/components.py [--check] [--doc PATH]   (from the repository root)

The table sits between `<!-- components:begin -->` and `<!-- components:end -->`; everything else in the file is
left as it is. With --check nothing is written: the exit status is 1 when the table is not what the manifests
(citybrain/<name>/manifest.py) say, with a diff.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from citybrain.components import markdown_table  # noqa: E402

BEGIN = "<!-- components:begin -->"
END = "<!-- components:end -->"
DOC = ROOT / "docs" / "architecture.md"


def with_table(text: str, table: str) -> str:
    """Return the document with the text between the markers replaced by the table."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"the markers {BEGIN} … {END} are missing")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the table is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document holding the table")
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    wanted = with_table(text, markdown_table())
    if wanted == text:
        print(f"{args.doc.name}: the component table matches the manifests")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), wanted.splitlines(True),
                                                   f"{args.doc.name} (as it is)", f"{args.doc.name} (from the manifests)"))
        print(f"{args.doc.name}: the component table is stale: run python scripts/components.py", file=sys.stderr)
        return 1
    args.doc.write_text(wanted, encoding="utf-8")
    print(f"{args.doc.name}: component table written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
