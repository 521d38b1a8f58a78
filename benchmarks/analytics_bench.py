"""How long each analytics function behind the pages takes on 200,000 traders, on DuckDB and
PostgreSQL, next to the naive pull-rows-into-pandas approach.

    python benchmarks/analytics_bench.py --prepare             # seed both databases when missing, then run
    python benchmarks/analytics_bench.py --runs 5 --backends duckdb,postgres --only funnel
    python benchmarks/analytics_bench.py --naive-fetch read_sql    # naive side through pd.read_sql instead

Data: ``cli.py seed --traders 200000 --end 2026-12-01 --seed 7`` into ``data/bench/analytics.duckdb``
and the PostgreSQL database ``traderlens_analytics_bench`` (TRADERLENS_BENCH_DUCKDB and
TRADERLENS_BENCH_PG_URL override them). ``--prepare`` seeds a database that is missing or empty and
reuses one whose row counts are complete; without it a missing database is an error.

Each function is called directly (no Streamlit, so no application cache) with the arguments its
page uses, on a fresh engine per backend (the DuckDB file opened read-only). One warm-up call per
function and backend is made and not counted (it fills DuckDB's buffer pool and PostgreSQL's
shared buffers and the OS page cache as any running server would have them); then ``--runs``
timed calls, median reported. The naive version (benchmarks/naive_pandas.py) is what an analyst with
DuckDB would write: the rows fetched with DuckDB's own DataFrame export (the fastest transfer there
is; ``pd.read_sql`` through SQLAlchemy is several times slower and would flatter every ratio), then
pandas, in the same run; where it computes the same numbers the benchmark asserts they agree with
DuckDB's result; PostgreSQL's result is checked against DuckDB's too.

Prints a Markdown table and writes every run to benchmarks/results/analytics.json.

Targets: at most 0.5 s on DuckDB and 3 s on PostgreSQL per function; the naive approach at least
20x slower than DuckDB (the table says for each function whether it is).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks import naive_pandas as naive  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "analytics.json"
DUCKDB_PATH = Path(os.environ.get("TRADERLENS_BENCH_DUCKDB", ROOT / "data" / "bench" / "analytics.duckdb"))
PG_URL = os.environ.get("TRADERLENS_BENCH_PG_URL",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/traderlens_analytics_bench")
# Where benchmarks that write put their scratch copies of the DuckDB file.
SCRATCH = Path(os.environ.get("TRADERLENS_BENCH_SCRATCH", "/tmp"))
TRADERS = 200_000
SEED_ARGS = ["--traders", str(TRADERS), "--end", "2026-12-01", "--seed", "7"]
TARGET_DUCKDB_S = 0.5
TARGET_POSTGRES_S = 3.0
TARGET_RATIO = 20.0


# --------------------------------------------------------------------------------------------
# The databases
# --------------------------------------------------------------------------------------------

def remove_duckdb(path: Path) -> None:
    """A scratch DuckDB file with its write-ahead log and its writer mark."""
    for leftover in (path, Path(f"{path}.wal"), Path(f"{path}.writer.lock")):
        leftover.unlink(missing_ok=True)


def scratch_copy(backend: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """(URL of a scratch copy of the benchmark database named ``prefix_<random>``, a function that
    removes it), for benchmarks that write: the DuckDB file copied into SCRATCH, the PostgreSQL
    database cloned as a template."""
    if backend == "duckdb":
        path = SCRATCH / f"{prefix}_{uuid.uuid4().hex[:8]}.duckdb"
        shutil.copyfile(DUCKDB_PATH, path)
        return f"duckdb:///{path}", lambda: remove_duckdb(path)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(sa.make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    source = sa.make_url(PG_URL).database
    deadline = time.monotonic() + 1800
    while True:  # a template must have no other session: wait while another benchmark reads it
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
            break
        except sa.exc.OperationalError as exc:
            if "being accessed by other users" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(5)

    def drop() -> None:
        from connectors import database

        database.dispose_engines()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False), drop


def duckdb_url() -> str:
    return f"duckdb:///{DUCKDB_PATH}"


def open_engine(backend: str) -> sa.Engine:
    """A fresh engine (never the app's cached one); the DuckDB file read-only so readers can share it."""
    if backend == "duckdb":
        return sa.create_engine(duckdb_url(), connect_args={"read_only": True})
    return sa.create_engine(PG_URL)


def row_counts(engine: sa.Engine) -> dict[str, int] | None:
    """Row count per data table, or None when the schema is not there."""
    from connectors.schema import DATA_TABLES

    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in DATA_TABLES}
    except sa.exc.DBAPIError:
        return None


def complete(counts: dict[str, int] | None) -> bool:
    """Seeded to the end: every trader and every table written (portal_events are written last)."""
    return bool(counts) and counts["traders"] == TRADERS and all(counts.values())


def ensure_postgres_database() -> bool:
    """Create the PostgreSQL database when it does not exist; True when it was created."""
    url = sa.make_url(PG_URL)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}).first():
                return False
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        admin.dispose()


def migrate(backend: str, *, seed: bool) -> None:
    """Bring the schema to the newest migration (rollup tables included): the analytics code
    expects it. A read-only DuckDB engine cannot migrate, so this opens a writable one briefly."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from connectors.database import MIGRATIONS_DIR, upgrade_schema

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    engine = open_engine(backend)
    try:
        with engine.connect() as conn:
            current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    if current == head:
        return
    if not seed:
        raise SystemExit(f"{backend}: schema at revision {current}, code expects {head}; run with --prepare")
    print(f"{backend}: migrating {current} -> {head} ...", file=sys.stderr)
    url = duckdb_url() if backend == "duckdb" else PG_URL
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    if backend == "postgres":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def analyze_unanalyzed() -> None:
    """ANALYZE PostgreSQL tables that hold rows but have never been analysed (a table a migration
    filled, such as daily_activity, has no planner statistics until autovacuum gets to it)."""
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        stale = conn.execute(sa.text(
            "SELECT relname FROM pg_stat_user_tables WHERE n_live_tup > 0 "
            "AND last_analyze IS NULL AND last_autoanalyze IS NULL")).scalars().all()
        for name in stale:
            print(f"postgres: ANALYZE {name} (no statistics yet)", file=sys.stderr)
            conn.execute(sa.text(f'ANALYZE "{name}"'))
    engine.dispose()


def prepare(backends: list[str], *, seed: bool) -> dict[str, dict[str, int]]:
    """Check (and with ``seed``, create) each backend's 200,000-trader database; return row counts."""
    found: dict[str, dict[str, int]] = {}
    for backend in backends:
        url = duckdb_url() if backend == "duckdb" else PG_URL
        if backend == "postgres" and seed:
            ensure_postgres_database()
        counts = None
        if backend == "duckdb" and not DUCKDB_PATH.exists():
            counts = None
        else:
            try:
                engine = open_engine(backend)
                counts = row_counts(engine)
                engine.dispose()
            except sa.exc.OperationalError as exc:
                if not seed:
                    raise SystemExit(f"{backend}: cannot open {url}: {str(exc).splitlines()[0]}") from None
        if complete(counts):
            migrate(backend, seed=seed)
            print(f"{backend}: reusing {sa.make_url(url).render_as_string(hide_password=True)} "
                  f"({sum(counts.values()):,} rows)", file=sys.stderr)
            found[backend] = counts
            continue
        if not seed:
            raise SystemExit(f"{backend}: {url} is missing or incomplete ({counts}); run with --prepare")
        replace = ["--replace"] if counts and any(counts.values()) else []
        print(f"{backend}: seeding {url} ({' '.join(SEED_ARGS + replace)}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "cli.py", "seed", *SEED_ARGS, *replace], cwd=ROOT, check=True,
                       env={**os.environ, "TRADERLENS_DB_URL": url})
        migrate(backend, seed=seed)
        engine = open_engine(backend)
        counts = row_counts(engine)
        engine.dispose()
        if not complete(counts):
            raise SystemExit(f"{backend}: seeding left incomplete row counts {counts}")
        found[backend] = counts
    if "postgres" in found:
        analyze_unanalyzed()
    if len(found) == 2 and found["duckdb"] != found["postgres"]:
        raise SystemExit(f"the two databases differ: duckdb {found['duckdb']} postgres {found['postgres']}")
    return found


# --------------------------------------------------------------------------------------------
# The cases: one per analytics call a page makes
# --------------------------------------------------------------------------------------------

class Missing(Exception):
    """The analytics function is not there (yet): the case is reported as skipped."""


def api(module: str, name: str):
    try:
        mod = importlib.import_module(f"analytics.{module}")
    except ImportError as exc:
        raise Missing(f"analytics.{module} not importable ({exc})") from None
    if not hasattr(mod, name):
        raise Missing(f"analytics.{module}.{name} missing")
    return getattr(mod, name)


@dataclass
class Case:
    name: str                          # row label in the table
    call: str                          # the call, for the README
    real: Callable[[sa.Engine], object]
    naive: Callable[[naive.Source], object] | None = None
    compare: Callable[[object, object], None] | None = None   # raises AssertionError on disagreement
    same: Callable[[object, object], None] | None = None      # DuckDB vs PostgreSQL result
    note: str = ""
    load: list[float] = field(default_factory=list)  # 1-minute load average before and after
    runs: dict[str, list[dict]] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    skipped: str = ""


def build_cases(end: date) -> list[Case]:
    """Every analytics call behind the four pages, with the arguments the pages use.

    ``end`` is the newest day with data (the pages' periods end there): 2026-11-30 for the seed.
    """
    from analytics.filters import TraderFilter
    from analytics.periods import DateRange

    tf = TraderFilter()  # the pages' default: everyone but test accounts
    last_30 = DateRange(end - timedelta(days=29), end)
    last_90 = DateRange(end - timedelta(days=89), end)
    last_6m = DateRange(end - timedelta(days=181), end)
    last_12m = DateRange(end - timedelta(days=364), end)
    cases: list[Case] = []

    def add(name: str, call: str, real, naive_fn=None, compare=None, note: str = "") -> None:
        cases.append(Case(name, call, real, naive_fn, compare, same_result, note))

    # Overview -------------------------------------------------------------------------------
    add("kpis (last 30 days)", "compute_kpis(date_range=last 30 days)",
        lambda e: api("kpis", "compute_kpis")(e, date_range=last_30, trader_filter=tf),
        lambda s: naive.kpis(s, date_range=last_30, trader_filter=tf), compare_kpis)
    for metric in ("net_deposits", "registrations", "active_traders", "volume_usd"):
        add(f"kpi trend {metric} (weekly, 12 months)",
            f"compute_kpi_trend(metric={metric!r}, period='week', date_range=last 12 months)",
            lambda e, m=metric: api("kpis", "compute_kpi_trend")(e, metric=m, date_range=last_12m, period="week",
                                                                   trader_filter=tf),
            lambda s, m=metric: naive.kpi_trend(s, metric=m, date_range=last_12m, period="week", trader_filter=tf),
            compare_trend)
    add("breakdown by country (90 days)", "compute_breakdown(dimension='country', date_range=last 90 days, top=10)",
        lambda e: api("kpis", "compute_breakdown")(e, dimension="country", date_range=last_90, trader_filter=tf,
                                                   top=10),
        lambda s: naive.breakdown(s, dimension="country", date_range=last_90, trader_filter=tf, top=10),
        compare_breakdown)
    add("volume by asset class (90 days)", "compute_volume_by_asset_class(date_range=last 90 days)",
        lambda e: api("kpis", "compute_volume_by_asset_class")(e, date_range=last_90, trader_filter=tf),
        lambda s: naive.volume_by_asset_class(s, date_range=last_90, trader_filter=tf), compare_asset_classes)

    # Cohorts --------------------------------------------------------------------------------
    def retention(start: str, ret: str):
        def real(e):
            spec = api("cohorts", "RetentionSpec")(start_event=start, return_event=ret, period="week", intervals=8)
            # As the Cohorts page calls it: with the data's end it already has (the blank future cells).
            return api("cohorts", "compute_retention")(e, spec, date_to=end, trader_filter=tf, data_end=end)
        return real

    for start, ret in (("ftd", "trade"), ("registered", "login")):
        add(f"retention {start}→{ret} (weekly, 8 intervals)",
            f"compute_retention(RetentionSpec({start!r}, {ret!r}, period='week', intervals=8), date_to=end)",
            retention(start, ret),
            lambda s, a=start, b=ret: naive.retention(s, start_event=a, return_event=b, period="week", intervals=8,
                                                      date_to=end, trader_filter=tf),
            compare_retention)
    add("LTV (weekly, 12 ages, 12 months of FTDs)",
        "compute_ltv(period='week', ages=12, metric='net_deposits', date_from/to=last 12 months)",
        lambda e: api("cohorts", "compute_ltv")(e, period="week", ages=12, metric="net_deposits",
                                                date_from=last_12m.start, date_to=end, trader_filter=tf),
        lambda s: naive.ltv(s, period="week", ages=12, metric="net_deposits", date_from=last_12m.start,
                            date_to=end, trader_filter=tf),
        compare_ltv)
    add("engagement retention (≥10 logins in 30 d after FTD → trade days 90-120)",
        "compute_engagement_retention(threshold=10, first_days=30, retained 90-120, date_to=end)",
        lambda e: api("cohorts", "compute_engagement_retention")(e, date_to=end, trader_filter=tf),
        lambda s: naive.engagement_retention(s, date_to=end, trader_filter=tf), compare_engagement)

    # Funnels --------------------------------------------------------------------------------
    onboarding = ("registered", "kyc_approved", "ftd", "trade")
    deposit = ("deposit_page_view", "deposit")

    def spec(steps, window_s, order="ordered"):
        return api("funnels", "FunnelSpec")(steps=steps, window_s=window_s, order=order)

    add("funnel registered→kyc→ftd→trade (30 d window, 12 months)",
        "compute_funnel(FunnelSpec(4 steps, window 30 d), date_range=last 12 months)",
        lambda e: api("funnels", "compute_funnel")(e, spec(onboarding, 30 * 86400), date_range=last_12m,
                                                   trader_filter=tf),
        lambda s: naive.funnel(s, steps=onboarding, window_s=30 * 86400, date_range=last_12m, trader_filter=tf),
        compare_funnel)
    add("funnel deposit_page_view→deposit (1 h window, 12 months)",
        "compute_funnel(FunnelSpec(2 steps, window 1 h), date_range=last 12 months)",
        lambda e: api("funnels", "compute_funnel")(e, spec(deposit, 3600), date_range=last_12m, trader_filter=tf),
        lambda s: naive.funnel(s, steps=deposit, window_s=3600, date_range=last_12m, trader_filter=tf),
        compare_funnel)
    add("funnel deposit_page_view→deposit strict (1 h, 12 months)",
        "compute_funnel(FunnelSpec(2 steps, window 1 h, order='strict'), date_range=last 12 months)",
        lambda e: api("funnels", "compute_funnel")(e, spec(deposit, 3600, "strict"), date_range=last_12m,
                                                   trader_filter=tf),
        lambda s: naive.funnel(s, steps=deposit, window_s=3600, date_range=last_12m, trader_filter=tf,
                               order="strict"),
        compare_funnel_loose, note="naive strict funnel simplified (next event of the trader after the page "
                                   "view, ties by step order); compared within 2%")
    add("funnel 4 steps unordered (30 d, 12 months)",
        "compute_funnel(FunnelSpec(4 steps, window 30 d, order='unordered'), date_range=last 12 months)",
        lambda e: api("funnels", "compute_funnel")(e, spec(onboarding, 30 * 86400, "unordered"),
                                                   date_range=last_12m, trader_filter=tf),
        lambda s: naive.funnel(s, steps=onboarding, window_s=30 * 86400, date_range=last_12m, trader_filter=tf,
                               order="unordered"),
        compare_funnel_loose, note="naive unordered funnel simplified (distinct steps within the window after "
                                   "each trader's first step event); compared within 2%")
    add("funnel trends 4 steps (weekly, 12 months)",
        "compute_funnel_trends(FunnelSpec(4 steps, 30 d), period='week', date_range=last 12 months)",
        lambda e: api("funnels", "compute_funnel_trends")(e, spec(onboarding, 30 * 86400), period="week",
                                                          date_range=last_12m, trader_filter=tf),
        lambda s: naive.funnel_trends(s, steps=onboarding, window_s=30 * 86400, period="week",
                                      date_range=last_12m, trader_filter=tf),
        compare_funnel_trends)
    add("time to convert 4 steps (12 months)",
        "compute_time_to_convert(FunnelSpec(4 steps, 30 d), date_range=last 12 months, bins=30)",
        lambda e: api("funnels", "compute_time_to_convert")(e, spec(onboarding, 30 * 86400), date_range=last_12m,
                                                            trader_filter=tf),
        lambda s: naive.time_to_convert(s, steps=onboarding, window_s=30 * 86400, date_range=last_12m,
                                        trader_filter=tf),
        compare_time_to_convert)
    add("dropoffs after step 2 (12 months)",
        "compute_dropoffs(FunnelSpec(4 steps, 30 d), step=2, date_range=last 12 months)",
        lambda e: api("funnels", "compute_dropoffs")(e, spec(onboarding, 30 * 86400), step=2, date_range=last_12m,
                                                     trader_filter=tf),
        lambda s: naive.dropoffs(s, steps=onboarding, window_s=30 * 86400, step=2, date_range=last_12m,
                                 trader_filter=tf),
        compare_dropoffs)

    # Lifecycle ------------------------------------------------------------------------------
    add("lifecycle trade (weekly, 6 months)", "compute_lifecycle(event='trade', period='week', last 6 months)",
        lambda e: api("lifecycle", "compute_lifecycle")(e, event="trade", period="week", date_from=last_6m.start,
                                                        date_to=end, trader_filter=tf),
        lambda s: naive.lifecycle(s, event="trade", period="week", date_from=last_6m.start, date_to=end,
                                  trader_filter=tf),
        compare_frames)
    add("lifecycle login (daily, 30 days)", "compute_lifecycle(event='login', period='day', last 30 days)",
        lambda e: api("lifecycle", "compute_lifecycle")(e, event="login", period="day", date_from=last_30.start,
                                                        date_to=end, trader_filter=tf),
        lambda s: naive.lifecycle(s, event="login", period="day", date_from=last_30.start, date_to=end,
                                  trader_filter=tf),
        compare_frames)
    add("stage distribution (now)", "compute_stage_distribution(as_of=None, dormant_days=7, churn_days=30)",
        lambda e: api("lifecycle", "compute_stage_distribution")(e, dormant_days=7, churn_days=30, trader_filter=tf),
        lambda s: naive.stage_distribution(s, as_of=end, dormant_days=7, churn_days=30, trader_filter=tf),
        compare_stages)
    add("stage flows (90 days)", "compute_stage_flows(from_date=end-90 d, to_date=end, dormant 7, churn 30)",
        lambda e: api("lifecycle", "compute_stage_flows")(e, from_date=end - timedelta(days=90), to_date=end,
                                                          dormant_days=7, churn_days=30, trader_filter=tf),
        lambda s: naive.stage_flows(s, from_date=end - timedelta(days=90), to_date=end, dormant_days=7,
                                    churn_days=30, trader_filter=tf),
        compare_flows)
    return cases


# --------------------------------------------------------------------------------------------
# Comparing results
# --------------------------------------------------------------------------------------------

def frames_of(result) -> dict[str, pd.DataFrame]:
    """Any analytics result as named DataFrames: a frame, a list of dataclasses, or a dataclass
    whose DataFrame fields become frames and whose scalar fields one more row."""
    import dataclasses

    if isinstance(result, pd.DataFrame):
        return {"": result}
    if isinstance(result, list):
        return {"": pd.DataFrame([dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in result])}
    if dataclasses.is_dataclass(result):
        out, scalars = {}, {}
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if isinstance(value, pd.DataFrame):
                out[f.name] = value
            elif isinstance(value, int | float | str | bool | date | None):
                scalars[f.name] = value
        if scalars:
            out["scalars"] = pd.DataFrame([scalars])
        return out
    return {"": pd.DataFrame({"value": [result]})}


def assert_frames_close(a: pd.DataFrame, b: pd.DataFrame, what: str = "", rtol: float = 1e-6) -> None:
    assert list(a.columns) == list(b.columns), f"{what} columns {list(a.columns)} != {list(b.columns)}"
    assert len(a) == len(b), f"{what} {len(a)} rows != {len(b)} rows"
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(x):
            xf, yf = x.astype("float64").to_numpy(), y.astype("float64").to_numpy()
            close = (abs(xf - yf) <= rtol * abs(yf) + 1e-6) | (pd.isna(xf) & pd.isna(yf))
            if not close.all():
                i = int((~close).argmax())
                raise AssertionError(f"{what}{col}[{i}]: {xf[i]} != {yf[i]}")
        else:
            xs, ys = [_norm(v) for v in x], [_norm(v) for v in y]
            for i, (u, w) in enumerate(zip(xs, ys, strict=True)):
                if u != w:
                    raise AssertionError(f"{what}{col}[{i}]: {x.iloc[i]!r} != {y.iloc[i]!r}")


def _norm(v):
    if v is None or (not isinstance(v, list | tuple | dict) and not hasattr(v, "tolist") and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "tolist"):
        return repr(v.tolist())
    return v


def same_result(a, b) -> None:
    """DuckDB and PostgreSQL give the same result (numbers to 1e-6 relative)."""
    fa, fb = frames_of(a), frames_of(b)
    assert fa.keys() == fb.keys(), f"parts {list(fa)} != {list(fb)}"
    for k in fa:
        assert_frames_close(fa[k], fb[k], f"{k}." if k else "")


def compare_frames(real: pd.DataFrame, naive_frame: pd.DataFrame) -> None:
    assert_frames_close(real[list(naive_frame.columns)], naive_frame)


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) and \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    return abs(float(a) - float(b)) <= 1e-6 * abs(float(b)) + 1e-6


def compare_kpis(real: list, naive_values: dict[str, tuple]) -> None:
    """Every KPI the naive side computes: value and previous, to 1e-6 relative."""
    seen = 0
    for kpi in real:
        if kpi.key not in naive_values:
            continue
        seen += 1
        value, previous = naive_values[kpi.key]
        assert _close(kpi.value, value), f"{kpi.key}: {kpi.value} != {value}"
        assert _close(kpi.previous, previous), f"{kpi.key} (previous): {kpi.previous} != {previous}"
    assert seen == len(real), f"only {seen} of {len(real)} KPIs compared"


def compare_retention(real, naive_counts: pd.DataFrame) -> None:
    assert_frames_close(real.counts.set_axis([str(c) for c in real.counts.columns], axis=1),
                        naive_counts.set_axis([str(c) for c in naive_counts.columns], axis=1))


def compare_engagement(real, naive_values: dict) -> None:
    assert_frames_close(real.buckets[["traders", "retained"]].astype("int64"), naive_values["buckets"], "buckets.")
    for key in ("n_high", "n_low", "retained_high", "retained_low"):
        assert getattr(real, key) == naive_values[key], f"{key}: {getattr(real, key)} != {naive_values[key]}"


def compare_funnel(real, naive_steps: pd.DataFrame) -> None:
    assert_frames_close(real.steps[list(naive_steps.columns)], naive_steps, "steps.")


def compare_funnel_loose(real, naive_steps: pd.DataFrame) -> None:
    """Step counts within 2% (the naive strict and unordered versions are simplified)."""
    for k, (a, b) in enumerate(zip(real.steps["count"], naive_steps["count"], strict=True), start=1):
        assert abs(a - b) <= 0.02 * max(a, b), f"step {k}: {a} != {b} (more than 2% apart)"


def compare_time_to_convert(real: pd.DataFrame, naive_hist: pd.DataFrame) -> None:
    assert_frames_close(real, naive_hist, "histogram.")
    for key in ("traders", "average_s", "median_s"):
        assert _close(real.attrs[key], naive_hist.attrs[key]), f"{key}: {real.attrs[key]} != {naive_hist.attrs[key]}"


def compare_dropoffs(real, naive_frame: pd.DataFrame) -> None:
    assert_frames_close(real.people[["trader_id", "reached_at"]], naive_frame)


compare_trend = compare_breakdown = compare_asset_classes = compare_ltv = compare_funnel_trends = compare_frames
compare_stages = compare_flows = compare_frames


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_case(case: Case, engines: dict[str, sa.Engine], runs: dict[str, int], fetch: str, warmup: bool,
             naive_runs: int) -> None:
    results: dict[str, object] = {}
    for backend, engine in engines.items():
        try:
            if warmup:
                case.real(engine)
            times = []
            for i in range(runs.get(backend, runs["duckdb"])):
                seconds, out = timed(lambda e=engine: case.real(e))
                times.append({"run": i + 1, "seconds": round(seconds, 4)})
            results[backend] = out
            case.runs[backend] = times
            print(f"  {backend:8} median {statistics.median(t['seconds'] for t in times):8.3f}s "
                  "(" + ", ".join(f"{t['seconds']:.3f}" for t in times) + ")", file=sys.stderr)
        except Missing:
            raise
        except Exception as exc:
            case.checks[backend] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"  {backend:8} ERROR {case.checks[backend]}", file=sys.stderr)
            traceback.print_exc(limit=3)
    if case.naive is not None and "duckdb" in engines:
        times = []
        out = None
        try:
            for i in range(naive_runs):
                src = naive.Source(engines["duckdb"], fetch=fetch)
                seconds, out = timed(lambda s=src: case.naive(s))
                times.append({"run": i + 1, "seconds": round(seconds, 4), "fetch_s": round(src.fetch_s, 4),
                              "compute_s": round(seconds - src.fetch_s, 4), "rows_fetched": src.rows})
            case.runs["naive"] = times
            print(f"  naive    median {statistics.median(t['seconds'] for t in times):8.3f}s "
                  f"(fetch {statistics.median(t['fetch_s'] for t in times):.3f}s of it, "
                  f"{times[-1]['rows_fetched']:,} rows)", file=sys.stderr)
        except Exception as exc:
            case.checks["naive"] = f"error: {type(exc).__name__}: {exc}"
            print(f"  naive    ERROR {case.checks['naive']}", file=sys.stderr)
            traceback.print_exc(limit=5)
            out = None
        if out is not None and "duckdb" in results and case.compare is not None:
            try:
                case.compare(results["duckdb"], out)
                case.checks["naive_vs_duckdb"] = "agree"
            except AssertionError as exc:
                case.checks["naive_vs_duckdb"] = f"DIFFER: {exc}"
        elif out is not None and case.compare is None:
            case.checks["naive_vs_duckdb"] = "not compared"
    if "duckdb" in results and "postgres" in results and case.same is not None:
        try:
            case.same(results["duckdb"], results["postgres"])
            case.checks["postgres_vs_duckdb"] = "agree"
        except AssertionError as exc:
            case.checks["postgres_vs_duckdb"] = f"DIFFER: {exc}"
    for k, v in case.checks.items():
        if v not in ("agree", "not compared"):
            print(f"  check {k}: {v}", file=sys.stderr)


def wait_for_quiet(max_load: float, max_wait_s: float = 180) -> float:
    """Wait (up to ``max_wait_s``) until the 1-minute load average is below ``max_load``: other
    work on a 2-core machine would be timed too. Returns the load average when starting."""
    deadline = time.monotonic() + max_wait_s
    while max_load > 0 and os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    return round(os.getloadavg()[0], 2)


def median(case: Case, key: str) -> float | None:
    times = case.runs.get(key)
    return statistics.median(t["seconds"] for t in times) if times else None


def naive_compute(case: Case) -> float | None:
    times = case.runs.get("naive")
    return statistics.median(t["compute_s"] for t in times) if times else None


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def verdict(case: Case) -> str:
    d, p, n = median(case, "duckdb"), median(case, "postgres"), median(case, "naive")
    parts = []
    if d is not None:
        parts.append("DuckDB yes" if d <= TARGET_DUCKDB_S else "DuckDB **no**")
    if p is not None:
        parts.append("PG yes" if p <= TARGET_POSTGRES_S else "PG **no**")
    if n is not None and d:
        parts.append("ratio yes" if n / d >= TARGET_RATIO else "ratio **no**")
    return ", ".join(parts) or "-"


def table(cases: list[Case]) -> str:
    lines = ["| function | DuckDB median s | PostgreSQL median s | naive: DuckDB fetch + pandas, median s | "
             "naive/DuckDB | naive pandas work alone (no fetch) s | targets met (DuckDB ≤ 0.5 s, PG ≤ 3 s, "
             "ratio ≥ 20) | naive = real? |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for c in cases:
        if c.skipped:
            lines.append(f"| {c.name} | - | - | - | - | - | skipped: {c.skipped} | - |")
            continue
        d, p, n = median(c, "duckdb"), median(c, "postgres"), median(c, "naive")
        ratio = f"{n / d:.0f}×" if (n and d) else "-"
        check = c.checks.get("naive_vs_duckdb", "-")
        if c.checks.get("postgres_vs_duckdb", "agree") != "agree":
            check += "; PG differs"
        check = "agree" if check == "agree" else check.split(":")[0]
        lines.append(f"| {c.name} | {fmt(d)} | {fmt(p)} | {fmt(n)} | {ratio} | {fmt(naive_compute(c))} | "
                     f"{verdict(c)} | {check} |")
    return "\n".join(lines)


def write_results(args, cases, counts, span, started, measured, backends) -> None:
    import duckdb

    versions = {"python": platform.python_version(), "duckdb": duckdb.__version__, "pandas": pd.__version__,
                "sqlalchemy": sa.__version__}
    if "postgres" in backends:
        eng = open_engine("postgres")
        with eng.connect() as conn:
            versions["postgresql"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
        eng.dispose()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured_at": started, "cores": os.cpu_count(), "machine": platform.machine(),
        "versions": versions, "traders": TRADERS, "rows": counts.get("duckdb") or next(iter(counts.values())),
        "data_end": span.end.isoformat(), "warmup": not args.no_warmup, "naive_fetch": args.naive_fetch,
        "runs_per_function": {"duckdb": args.runs, "postgres": args.postgres_runs or args.runs,
                              "naive": args.naive_runs},
        "git": measured,
        "targets": {"duckdb_s": TARGET_DUCKDB_S, "postgres_s": TARGET_POSTGRES_S, "naive_ratio": TARGET_RATIO},
        "functions": [{"name": c.name, "call": c.call, "note": c.note, "skipped": c.skipped or None,
                       "median_s": {k: median(c, k) for k in c.runs},
                       "naive_over_duckdb": (round(median(c, "naive") / median(c, "duckdb"), 1)
                                             if median(c, "naive") and median(c, "duckdb") else None),
                       "checks": c.checks, "load_average_before_after": c.load, "runs": c.runs} for c in cases],
    }, indent=1, default=str))


def explain_slowest(case: Case, url: str, top: int = 1) -> str:
    """Run ``case`` once on PostgreSQL capturing each statement's time, then EXPLAIN (ANALYZE,
    BUFFERS) the slowest ``top`` statements (after replaying the SET statements the call made)."""
    engine = sa.create_engine(url)
    seen: list[tuple[float, str, object]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info["t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, parameters, context, executemany):
        seen.append((time.perf_counter() - conn.info.pop("t0"), statement, parameters))

    case.real(engine)
    sets = [stmt.replace("SET LOCAL", "SET") for _, stmt, _ in seen if stmt.lstrip().upper().startswith("SET")]
    out = []
    queries = [q for q in seen if q[1].lstrip().upper().startswith(("SELECT", "WITH"))]
    for seconds, statement, parameters in sorted(queries, key=lambda s: -s[0])[:top]:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for stmt in sets:
                cur.execute(stmt)
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters or None)
            plan = "\n".join(r[0] for r in cur.fetchall())
        finally:
            raw.close()
        out.append(f"-- {case.name}: slowest statement {seconds:.2f}s of {len(seen)} (COPY fetches not seen)\n"
                   f"{statement}\n{plan}")
    engine.dispose()
    return "\n\n".join(out)


def git_state() -> dict:
    """The commit measured, and analytics/ files that differed from it (others work in the tree)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_analytics": git("status", "--porcelain", "analytics/").splitlines()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--only", action="append", help="run cases whose name contains this (repeatable)")
    parser.add_argument("--prepare", action="store_true", help="seed a missing or empty database first")
    parser.add_argument("--postgres-runs", type=int, default=None,
                        help="timed runs on PostgreSQL (default: --runs)")
    parser.add_argument("--naive-runs", type=int, default=3,
                        help="timed runs of each naive version (default 3: they take 1-90 s each)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pandas versions")
    parser.add_argument("--no-warmup", action="store_true", help="count the first call too")
    parser.add_argument("--naive-fetch", choices=naive.FETCH_MODES, default="duckdb-df",
                        help="how the naive side reads rows: DuckDB's DataFrame export (default) or pd.read_sql")
    parser.add_argument("--max-load", type=float, default=2.5,
                        help="before each function wait (up to 3 min) for the 1-minute load average to fall "
                             "below this; 0 disables")
    parser.add_argument("--explain", action="store_true",
                        help="instead of timing: EXPLAIN ANALYZE each function's slowest PostgreSQL statement")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    counts = prepare(backends, seed=args.prepare)

    engines = {b: open_engine(b) for b in backends}
    from analytics.events import compute_data_span

    span = compute_data_span(engines[backends[0]])
    cases = build_cases(span.end)
    if args.only:
        cases = [c for c in cases if any(o.lower() in c.name.lower() for o in args.only)]
    if args.explain:
        for case in cases:
            try:
                print(explain_slowest(case, PG_URL) + "\n")
            except Missing as exc:
                print(f"-- {case.name}: skipped ({exc})\n")
        return 0
    started = time.strftime("%Y-%m-%d %H:%M")
    measured = git_state()  # analytics modules are imported when their first function runs
    for case in cases:
        print(f"{case.name}: {case.call}", file=sys.stderr)
        if args.no_naive:
            case.naive = None
        case.load.append(wait_for_quiet(args.max_load))
        try:
            run_case(case, engines, {"duckdb": args.runs, "postgres": args.postgres_runs or args.runs},
                     args.naive_fetch, not args.no_warmup, args.naive_runs)
        except Missing as exc:
            case.skipped = str(exc)
            print(f"  skipped: {exc}", file=sys.stderr)
        case.load.append(round(os.getloadavg()[0], 2))
        print(f"  load average {case.load[0]} before, {case.load[1]} after", file=sys.stderr)
        write_results(args, cases, counts, span, started, measured, backends)  # survives an interruption
    for engine in engines.values():
        engine.dispose()
    write_results(args, cases, counts, span, started, measured, backends)
    print(table(cases))
    notes = [c for c in cases if c.note and not c.skipped]
    if notes:
        print()
        for c in notes:
            print(f"- {c.name}: {c.note}")
    bad = [c.name for c in cases if any(v.startswith(("DIFFER", "error")) for v in c.checks.values())]
    if bad:
        print(f"\nresults disagree or failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
