"""Snapshot the JSON of a fixed set of `cli.py report` runs, and compare two snapshots.

A refactor of the analytics must leave every reported number as it was. This runs the same reports
(funnels, retention, lifecycle, KPIs, in several variants) against one database and stores their
JSON output; `compare` then lists every report whose output differs between two snapshots.

    python benchmarks/report_snapshot.py save --db duckdb:////path/traderlens.duckdb --out before.json
    python benchmarks/report_snapshot.py compare before.json after.json

The dates are fixed, so a snapshot is only comparable with one of the same database (the demo is
`cli.py seed --traders 20000 --end 2026-12-01 --seed 7`; the benchmark database is
`benchmarks/analytics_bench.py --prepare`, 200,000 traders, same end and seed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPAN = ["--from", "2025-09-01", "--to", "2026-11-30"]
REPORTS: dict[str, list[str]] = {
    "funnel_onboarding": ["funnel", "--steps", "registered,kyc_submitted,kyc_approved,ftd,trade", "--window", "14d",
                          *SPAN],
    "funnel_strict": ["funnel", "--steps", "registered,kyc_submitted,kyc_approved", "--window", "7d", "--order",
                      "strict", *SPAN],
    "funnel_unordered": ["funnel", "--steps", "ftd,trade,login", "--window", "30d", "--order", "unordered", *SPAN],
    "funnel_by_country": ["funnel", "--steps", "registered,ftd", "--window", "30d", "--breakdown", "country", *SPAN],
    "funnel_excluding": ["funnel", "--steps", "registered,ftd,trade", "--window", "14d", "--exclude",
                         "withdrawal:1:2", *SPAN],
    "retention_ftd_trade_week": ["retention", "--start-event", "ftd", "--return-event", "trade", "--period", "week",
                                 "--intervals", "12", *SPAN],
    "retention_ftd_trade_month": ["retention", "--start-event", "ftd", "--return-event", "trade", "--period",
                                  "month", "--intervals", "8", *SPAN],
    "retention_registered_login_day_first_time": [
        "retention", "--start-event", "registered", "--return-event", "login", "--period", "day", "--intervals", "14",
        "--mode", "first-time", "--from", "2026-10-01", "--to", "2026-11-30"],
    "retention_deposit_cumulative": ["retention", "--start-event", "ftd", "--return-event", "deposit", "--period",
                                     "month", "--intervals", "6", "--cumulative", *SPAN],
    "lifecycle_trade_week": ["lifecycle", "--event", "trade", "--period", "week", *SPAN],
    "lifecycle_login_month_registration": ["lifecycle", "--event", "login", "--period", "month", "--new-basis",
                                           "registration", *SPAN],
    "kpis_30d": ["kpis", "--from", "2026-11-01", "--to", "2026-11-30"],
    "kpis_90d": ["kpis", "--from", "2026-09-02", "--to", "2026-11-30"],
    "kpis_year": ["kpis", "--from", "2025-12-01", "--to", "2026-11-30"],
}


def run_report(argv: list[str]) -> tuple[int, object, str, float]:
    """(exit code, parsed JSON output or None, stderr, seconds) of `cli.py report ARGV --format json`."""
    import cli

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["report", *argv, "--format", "json"])
    seconds = time.perf_counter() - started
    return code, (json.loads(out.getvalue()) if code == 0 else None), err.getvalue(), seconds


def save(db: str, out: Path) -> None:
    os.environ["TRADERLENS_DB_URL"] = db
    snapshot: dict[str, dict] = {}
    for name, argv in REPORTS.items():
        code, records, stderr, seconds = run_report(argv)
        snapshot[name] = {"argv": argv, "exit": code, "records": records, "stderr": stderr}
        print(f"{name:<45} exit {code}  {seconds:6.2f} s", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(snapshot, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def compare(before: Path, after: Path) -> int:
    """Print every report whose output differs; the exit code is the number of them."""
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differing = [name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
    for name in differing:
        print(f"DIFFERS: {name}")
    print(f"{len(set(a) | set(b)) - len(differing)} reports equal, {len(differing)} differ")
    return len(differing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save")
    s.add_argument("--db", required=True, help="database URL")
    s.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "save":
        save(args.db, args.out)
        return 0
    return min(compare(args.before, args.after), 125)


if __name__ == "__main__":
    sys.exit(main())
