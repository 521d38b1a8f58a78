"""Saved segments as a filter, a breakdown and an event, on 200,000 traders: how long each reading takes
beside the same analysis without segments.

    python benchmarks/segment_filter_bench.py --prepare     # copy the analytics benchmark's databases, add segments
    python benchmarks/segment_filter_bench.py --runs 5 --backends duckdb,postgres

Data: a copy of benchmarks/analytics_bench.py's databases (``cli.py seed --traders 200000 --end 2026-12-01
--seed 7``): ``data/bench/segment_filter.duckdb`` and the PostgreSQL database ``traderlens_segment_filter_bench``
(TRADERLENS_SEGMENT_BENCH_DUCKDB and TRADERLENS_SEGMENT_BENCH_PG_URL override them), never the shared ones, so
the segments written here meet no other benchmark. ``--prepare`` copies them and writes three segments as a
refresh leaves them: "Every 10th" (20,000 traders), "Every 100th" (2,000) and "Every 7th" (28,571; 2,857 of them
in "Every 10th" too), each member entering on a day of the last 90 (spread by id), so the "entered segment"
events fall in the pages' periods.

Each function is called directly (no Streamlit cache), once to warm up and then ``--runs`` times; the median is
printed as a Markdown table with the matching reading without segments. Targets as for the analytics benchmark:
0.5 s on DuckDB and 3 s on PostgreSQL per function.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks import analytics_bench  # noqa: E402

DUCKDB_PATH = Path(os.environ.get("TRADERLENS_SEGMENT_BENCH_DUCKDB", ROOT / "data" / "bench" / "segment_filter.duckdb"))
PG_URL = os.environ.get("TRADERLENS_SEGMENT_BENCH_PG_URL",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/traderlens_segment_filter_bench")
SEGMENTS = {1: ("Every 10th", 10), 2: ("Every 100th", 100), 3: ("Every 7th", 7)}
TARGETS = {"duckdb": 0.5, "postgres": 3.0}


def open_engine(backend: str, *, write: bool = False) -> sa.Engine:
    if backend == "duckdb":
        return sa.create_engine(f"duckdb:///{DUCKDB_PATH}", connect_args={} if write else {"read_only": True})
    return sa.create_engine(PG_URL)


def copy_database(backend: str) -> None:
    """The analytics benchmark's database copied for this one (replacing an earlier copy)."""
    if backend == "duckdb":
        DUCKDB_PATH.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(analytics_bench.DUCKDB_PATH, DUCKDB_PATH)
        return
    source, target = sa.make_url(analytics_bench.PG_URL).database, sa.make_url(PG_URL).database
    admin = sa.create_engine(sa.make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target}"'))
        # A template copy needs the source to have no other sessions for its few seconds.
        conn.execute(sa.text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))
    admin.dispose()


def write_segments(backend: str) -> None:
    """The three segments of the module docstring, as a refresh leaves them (members and their 'entered' rows)."""
    from connectors import database, schema

    engine = open_engine(backend, write=True)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        ids = pd.Series(sorted(conn.execute(sa.select(schema.traders.c.trader_id)).scalars()), dtype="int64")
        end = conn.execute(sa.select(sa.func.max(schema.trades.c.opened_at))).scalar_one()
        for table in (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments):
            conn.execute(table.delete())
        now = datetime(end.year, end.month, end.day)
        database.bulk_insert(conn, schema.segments, pd.DataFrame({
            "segment_id": list(SEGMENTS), "name": [n for n, _ in SEGMENTS.values()], "kind": "list",
            "definition": "{}", "version": 1, "created_at": now, "created_by": "bench", "updated_at": now,
            "updated_by": "bench", "refreshed_at": now, "archived": False}))
        change_id = 0
        for segment_id, (_, every) in SEGMENTS.items():
            members = ids[ids % every == 0]
            entered = [now - timedelta(days=int(i % 90), hours=int(i % 24)) for i in members]
            database.bulk_insert(conn, schema.segment_members, pd.DataFrame(
                {"segment_id": segment_id, "trader_id": members.to_numpy(), "entered_at": entered}))
            database.bulk_insert(conn, schema.segment_changes, pd.DataFrame(
                {"change_id": range(change_id + 1, change_id + len(members) + 1), "segment_id": segment_id,
                 "trader_id": members.to_numpy(), "change": "entered", "changed_at": entered, "version": 1}))
            change_id += len(members)
    if backend == "postgres":
        # As autovacuum does soon after a large refresh. Without statistics PostgreSQL takes the freshly written
        # segment_changes for a few rows and probes it the wrong way: the lifecycle of "entered Every 10th" took
        # 8.7 s instead of 0.14 s.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in (schema.segments, schema.segment_members, schema.segment_changes):
                conn.execute(sa.text(f"ANALYZE {table.name}"))
    engine.dispose()
    database.dispose_engines()


def cases(end: date) -> list[tuple[str, Callable[[sa.Engine], object], Callable[[sa.Engine], object]]]:
    """(name, the reading with segments, the same reading without) for each page's use of segments."""
    from analytics import cohorts, events, filters, funnels, kpis, lifecycle
    from analytics.periods import DateRange

    everyone = filters.TraderFilter()
    large = filters.TraderFilter(segments=(1,))
    last_30, last_90 = DateRange(end - timedelta(days=29), end), DateRange(end - timedelta(days=89), end)
    onboarding = ("registered", "kyc_approved", "ftd", "trade")
    weekly = cohorts.RetentionSpec(start_event="ftd", return_event="trade", period="week", intervals=8)
    entered = cohorts.RetentionSpec(start_event="segment:Every 10th", return_event="trade", period="week", intervals=8)
    return [
        ("filter options (with 3 segments)", filters.compute_filter_options, filters.compute_filter_options),
        ("event names (with 3 segment events)", events.list_event_names, events.list_event_names),
        ("kpis, last 30 days, filter: Every 10th",
         lambda e: kpis.compute_kpis(e, date_range=last_30, trader_filter=large),
         lambda e: kpis.compute_kpis(e, date_range=last_30, trader_filter=everyone)),
        ("breakdown by segment (90 days) vs by country",
         lambda e: kpis.compute_breakdown(e, dimension="segment", date_range=last_90, trader_filter=everyone),
         lambda e: kpis.compute_breakdown(e, dimension="country", date_range=last_90, trader_filter=everyone)),
        ("funnel 4 steps (30 d, 90 days), breakdown by segment vs none",
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(onboarding, 30 * 86400, breakdown="segment",
                                                                breakdown_kind="segment"), date_range=last_90),
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(onboarding, 30 * 86400), date_range=last_90)),
        ("funnel entered Every 10th → trade (14 d, 90 days) vs registered → trade",
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(("segment:Every 10th", "trade")), date_range=last_90),
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(("registered", "trade")), date_range=last_90)),
        ("funnel 4 steps, filter: Every 10th vs everyone",
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(onboarding, 30 * 86400), date_range=last_90,
                                          trader_filter=large),
         lambda e: funnels.compute_funnel(e, funnels.FunnelSpec(onboarding, 30 * 86400), date_range=last_90)),
        ("retention entered Every 10th → trade (weekly) vs ftd → trade",
         lambda e: cohorts.compute_retention(e, entered, date_to=end, data_end=end),
         lambda e: cohorts.compute_retention(e, weekly, date_to=end, data_end=end)),
        ("retention ftd → trade within Every 10th vs everyone",
         lambda e: cohorts.compute_retention(e, weekly, date_to=end, data_end=end, trader_filter=everyone.within(1)),
         lambda e: cohorts.compute_retention(e, weekly, date_to=end, data_end=end)),
        ("lifecycle of entered Every 10th (weekly, 90 days) vs of trade",
         lambda e: lifecycle.compute_lifecycle(e, event="segment:Every 10th", date_from=last_90.start, date_to=end),
         lambda e: lifecycle.compute_lifecycle(e, event="trade", date_from=last_90.start, date_to=end)),
        ("stage distribution within Every 10th vs everyone",
         lambda e: lifecycle.compute_stage_distribution(e, as_of=end, trader_filter=everyone.within(1)),
         lambda e: lifecycle.compute_stage_distribution(e, as_of=end)),
    ]


def timed(call: Callable[[sa.Engine], object], engine: sa.Engine, runs: int) -> float:
    call(engine)  # warm-up, not counted
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call(engine)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--prepare", action="store_true", help="copy the analytics benchmark's databases first")
    parser.add_argument("--only", help="run cases whose name contains this")
    args = parser.parse_args()
    from analytics.events import compute_data_span

    print("| backend | reading | with segments (s) | without (s) | within target |")
    print("| --- | --- | ---: | ---: | --- |")
    for backend in args.backends.split(","):
        if args.prepare:
            copy_database(backend)
            write_segments(backend)
        engine = open_engine(backend)
        span = compute_data_span(engine)
        if span is None:
            print(f"{backend}: no data; run with --prepare", file=sys.stderr)
            return 1
        for name, with_segments, without in cases(span.end):
            if args.only and args.only not in name:
                continue
            a, b = timed(with_segments, engine, args.runs), timed(without, engine, args.runs)
            print(f"| {backend} | {name} | {a:.3f} | {b:.3f} | {'yes' if a <= TARGETS[backend] else 'NO'} |",
                  flush=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
