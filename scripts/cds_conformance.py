"""CDS Hooks 2.0 conformance table helper (docs/conformance/cds-hooks.md).

Reads the Inferno requirement sheet (Apache-2.0, inferno-framework/davinci-crd-test-kit)
and either prints a skeleton of the service-side table, or checks the document::

    python scripts/cds_conformance.py                 # skeleton to stdout
    python scripts/cds_conformance.py --check docs/conformance/cds-hooks.md

``--check`` verifies that every requirement binding the service has exactly one table
row, that the status column uses the four allowed values, and that every cited
``tests/...py::test_name`` still names a test function in that file. It exits 1 on a
problem. It uses only the standard library.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHEET = ROOT / "../shared/data/cds/inferno-requirements/cds-hooks_2.0_requirements.csv"
STATUSES = ("Met", "Partly met", "Not met", "Not applicable")
_ROW = re.compile(r"^\|\s*(\d+)\s*\|")
_TEST = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")


def load(sheet: Path) -> list[dict[str, str]]:
    """The sheet's rows."""
    with sheet.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def binds_service(row: dict[str, str]) -> bool:
    """True for actors ``Service`` and ``Client, Service``."""
    return "Service" in row["Actors*"]


def skeleton(rows: list[dict[str, str]]) -> str:
    """The table with empty paraphrase, status and evidence, then the actor counts."""
    lines = [
        "| ID | Verb | Actor | Spec § | Requirement (paraphrase) | Status | Evidence |",
        "|---:|---|---|---|---|---|---|",
    ]
    for row in rows:
        if binds_service(row):
            actor = "Both" if row["Actors*"] == "Client, Service" else "Service"
            anchor = row["URL*"].rsplit("#", 1)[-1]
            lines.append(
                f"| {row['ID*']} | {row['Conformance*']} | {actor} | "
                f"[{anchor}]({row['URL*']}) |  |  |  |"
            )
    lines.append("")
    for actor, count in sorted(Counter(row["Actors*"] for row in rows).items()):
        lines.append(f"- {actor}: {count}")
    lines.append(f"- total: {len(rows)}")
    return "\n".join(lines)


def check(rows: list[dict[str, str]], document: Path) -> list[str]:
    """Problems found in ``document`` (empty if none)."""
    problems: list[str] = []
    text = document.read_text(encoding="utf-8")
    seen: Counter[str] = Counter()
    for line in text.splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        seen[match.group(1)] += 1
        cells = [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[5] not in STATUSES:
            problems.append(f"row {match.group(1)}: unknown status {cells[5]!r}")
    expected = {row["ID*"] for row in rows if binds_service(row)}
    for missing in sorted(expected - set(seen), key=int):
        problems.append(f"requirement {missing} has no row")
    for extra in sorted(set(seen) - expected, key=int):
        problems.append(f"row {extra} is not a service-side requirement")
    for twice in sorted((i for i, n in seen.items() if n > 1), key=int):
        problems.append(f"requirement {twice} has {seen[twice]} rows")
    for path, name in sorted(set(_TEST.findall(text))):
        source = ROOT / path
        if not source.is_file():
            problems.append(f"{path}: no such file")
        elif not re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.M):
            problems.append(f"{path}::{name}: no such test")
    return problems


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", type=Path, default=SHEET)
    parser.add_argument("--check", type=Path, metavar="DOCUMENT")
    args = parser.parse_args()
    rows = load(args.sheet)
    if args.check is None:
        print(skeleton(rows))
        return 0
    problems = check(rows, args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
