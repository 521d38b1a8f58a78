"""Prove that the retention reports changed only where a period had not happened yet.

Retention cells whose period starts after the newest day with data used to be reported as 0; they
are now null. This runs the retention reports of `report_snapshot.py` on a database and checks them
against a snapshot saved before that change, cell by cell:

- cohorts, sizes and every other cell are unchanged;
- every cell that differs was 0 before, is null now, and its period starts after the data's last day;
- every cell whose period starts after the data's last day is null now (none was missed).

    python benchmarks/retention_blanks.py --db duckdb:////path/demo.duckdb \
        [--before benchmarks/results/reports_demo_before.json]

Exit code 0 when all holds, 1 with the offending cells listed otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.periods import step_period  # noqa: E402
from benchmarks.report_snapshot import REPORTS, run_report  # noqa: E402


@dataclass(frozen=True)
class Blanks:
    """What one retention report's comparison found: ``cells`` in all, ``blanked`` (0 → null after the
    data's end) and ``problems`` (one line per cell that breaks the rule; empty when it holds)."""

    cells: int
    blanked: int
    problems: tuple[str, ...]


def _option(argv: list[str], flag: str, default: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv else default


def check_blanks(argv: list[str], before: list[dict], after: list[dict], data_end: date) -> Blanks:
    """Compare one retention report's records before and after (see the module docstring for the rule)."""
    period, week_start = _option(argv, "--period", "week"), _option(argv, "--week-start", "monday")
    problems: list[str] = []
    if [(r["cohort_start"], r["size"]) for r in before] != [(r["cohort_start"], r["size"]) for r in after]:
        return Blanks(0, 0, ("cohorts or sizes differ",))
    cells = blanked = 0
    for old, new in zip(before, after, strict=True):
        start = date.fromisoformat(old["cohort_start"])
        for k, (was, now) in enumerate(zip(old["values"], new["values"], strict=True)):
            cells += 1
            future = step_period(start, period, k, week_start) > data_end
            where = f"cohort {start} column {k}"
            if future and now is not None:
                problems.append(f"{where}: its period starts after {data_end} but it is {now!r}, not null")
            elif was != now and not (future and was == 0 and now is None):
                problems.append(f"{where}: {was!r} before, {now!r} now")
            blanked += was != now
    return Blanks(cells, blanked, tuple(problems))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="database URL (the one the snapshot was saved from)")
    parser.add_argument("--before", type=Path, default=ROOT / "benchmarks/results/reports_demo_before.json")
    args = parser.parse_args()
    os.environ["TRADERLENS_DB_URL"] = args.db
    from analytics.events import compute_data_span
    from connectors.database import get_engine

    span = compute_data_span(get_engine())
    if span is None:
        print("the database holds no events", file=sys.stderr)
        return 1
    snapshot = json.loads(args.before.read_text())
    failed = False
    for name, argv in REPORTS.items():
        if argv[0] != "retention":
            continue
        code, records, _, _ = run_report(argv)
        if code != 0 or snapshot[name]["exit"] != 0:
            print(f"{name}: exit {code} now, {snapshot[name]['exit']} before")
            failed = True
            continue
        found = check_blanks(argv, snapshot[name]["records"], records, span.end)
        print(f"{name:<45} {found.cells:5,} cells, {found.blanked:4,} were 0 and are null "
              f"(after {span.end}), {len(found.problems)} problems")
        for line in found.problems[:20]:
            print(f"    {line}")
        failed |= bool(found.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
