"""What a reporting time zone other than UTC costs: the rollup rebuild it triggers and the main
analyses, in UTC against America/New_York, on one database (medians of --runs).

    .venv/bin/python benchmarks/reporting_zone_bench.py --url duckdb:////tmp/tz_bench.duckdb --traders 20000

Seeds the database first when it is empty (the demo's size by default). In UTC every conversion
is skipped, so the UTC column is what the app did before the setting existed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from analytics.cohorts import RetentionSpec, compute_retention
from analytics.events import compute_data_span
from analytics.funnels import FunnelSpec, compute_funnel_trends
from analytics.kpis import compute_kpi_trend, compute_kpis
from analytics.lifecycle import compute_lifecycle, compute_stage_distribution
from analytics.periods import DateRange
from connectors import clock, database, schema
from connectors.simulator import SimulationConfig, seed_database

ZONES = ("UTC", "America/New_York")


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--traders", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    engine = database.get_engine(args.url)
    database.upgrade_schema(engine)
    with engine.connect() as conn:
        empty = not conn.execute(sa.select(sa.func.count()).select_from(schema.traders)).scalar_one()
    if empty:
        seed_database(engine, SimulationConfig(traders=args.traders, days=540, seed=7, end=date(2026, 11, 30)))
    results: dict[str, dict[str, float]] = {}
    for name in ZONES:
        os.environ[clock.ENV] = name
        start = time.perf_counter()
        database.upgrade_schema(engine)  # rebuilds the rollups for the zone
        rebuild = time.perf_counter() - start
        span = compute_data_span(engine)
        rng = DateRange(span.end - timedelta(days=29), span.end)
        year = DateRange(span.end - timedelta(days=364), span.end)
        cases: dict[str, Callable[[], object]] = {
            "kpis (30 days)": lambda rng=rng: compute_kpis(engine, date_range=rng),
            "deposits trend by day (1 year)": lambda y=year: compute_kpi_trend(
                engine, metric="deposits", date_range=y, period="day"),
            "active traders by week (1 year)": lambda y=year: compute_kpi_trend(
                engine, metric="active_traders", date_range=y, period="week"),
            "retention weekly, 12 intervals": lambda s=span: compute_retention(
                engine, RetentionSpec(intervals=12), date_from=s.end - timedelta(days=180), date_to=s.end,
                data_end=s.end),
            "lifecycle weekly (1 year)": lambda y=year: compute_lifecycle(
                engine, period="week", date_from=y.start, date_to=y.end),
            "stages today": lambda s=span: compute_stage_distribution(engine, as_of=s.end),
            "funnel trends registered->ftd by week": lambda: compute_funnel_trends(
                engine, FunnelSpec(steps=("registered", "ftd")), period="week"),
        }
        results[name] = {"rollup rebuild": rebuild, **{k: _median(fn, args.runs) for k, fn in cases.items()}}
    print(f"{'':42}" + "".join(f"{z:>18}" for z in ZONES) + f"{'ratio':>8}")
    for key in results[ZONES[0]]:
        a, b = results[ZONES[0]][key], results[ZONES[1]][key]
        print(f"{key:42}" + f"{a:>17.3f}s{b:>17.3f}s{b / a:>8.2f}")
    os.environ.pop(clock.ENV, None)
    database.upgrade_schema(engine)  # leave it in UTC
    return 0


if __name__ == "__main__":
    sys.exit(main())
