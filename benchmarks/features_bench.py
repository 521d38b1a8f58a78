"""The feature snapshot at 200,000 traders: ``compute_features`` on DuckDB and PostgreSQL (medians of
--runs), beside the strongest simple alternative's floor, and the materialisation rules read.

    .venv/bin/python benchmarks/features_bench.py                 # both backends, 3 runs each
    .venv/bin/python benchmarks/features_bench.py --backends duckdb --runs 5

Databases: the 200,000-trader ones of benchmarks/analytics_bench.py (``--prepare`` there seeds them).
Targets (issue 12): at most 10 s on DuckDB and 30 s on PostgreSQL.

The alternative is pulling the raw rows into pandas and grouping there. Its floor is the fetch alone:
the columns the features need from trades, transactions and sessions, through DuckDB's own fast
fetch (``.df()``), which is as fast as rows reach pandas from any database; any pandas version costs
at least that, before a single groupby. The materialisation (``materialise_features``, the table the
rule segments filter on) writes into a copy of the DuckDB file, and into a PostgreSQL table
``trader_features`` of the bench database (derived; replaced on each run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from analytics.features import compute_features, materialise_features
from benchmarks.analytics_bench import DUCKDB_PATH, PG_URL
from connectors import database

RESULTS = Path(__file__).resolve().parent / "results" / "features.json"
AS_OF = date(2026, 12, 1)  # the day after the bench data's last day
TARGETS = {"duckdb": 10.0, "postgres": 30.0}
# table -> (its time column, the columns the features need)
RAW_COLUMNS = {
    "trades": ("opened_at", "trader_id, opened_at, closed_at, lots, notional_usd, profit_usd, commission_usd, "
                            "swap_usd, asset_class, symbol, leverage_used, channel"),
    "transactions": ("created_at", "trader_id, kind, status, amount_usd, created_at"),
    "sessions": ("started_at", "trader_id, started_at, duration_s, surface"),
}


def _times(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _engine(backend: str, path: Path | None = None) -> sa.Engine:
    if backend == "duckdb":
        return sa.create_engine(f"duckdb:///{path or DUCKDB_PATH}",
                                connect_args={"read_only": path is None})
    return sa.create_engine(PG_URL)


def _fetch_raw(engine: sa.Engine) -> int:
    """The raw rows the features need, into pandas through DuckDB's fast fetch; their number."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        return sum(len(raw.execute(f"SELECT {cols} FROM {table} WHERE {at} < DATE '{AS_OF}'").df())
                   for table, (at, cols) in RAW_COLUMNS.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        engine = _engine(backend)
        snapshot = compute_features(engine, as_of=AS_OF)  # warm-up, and the size
        runs = _times(lambda e=engine: compute_features(e, as_of=AS_OF), args.runs)
        row = {"traders": len(snapshot.frame), "features": len(snapshot.frame.columns) - 1,
               "compute_s": runs, "compute_median_s": statistics.median(runs), "target_s": TARGETS[backend]}
        if backend == "duckdb":
            rows = _fetch_raw(engine)
            fetch = _times(lambda e=engine: _fetch_raw(e), args.runs)
            row.update(raw_rows=rows, raw_fetch_median_s=statistics.median(fetch))
        engine.dispose()
        if backend == "duckdb":
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "copy.duckdb"
                shutil.copy(DUCKDB_PATH, copy)
                writer = _engine(backend, copy)
                row["materialise_s"] = _times(lambda w=writer: materialise_features(w, as_of=AS_OF), args.runs)
                writer.dispose()
        else:
            writer = _engine(backend)
            row["materialise_s"] = _times(lambda w=writer: materialise_features(w, as_of=AS_OF), args.runs)
            writer.dispose()
        row["materialise_median_s"] = statistics.median(row["materialise_s"])
        database.dispose_engines()
        results[backend] = row
        verdict = "within" if row["compute_median_s"] <= TARGETS[backend] else "OVER"
        extra = (f"; raw fetch alone {row['raw_fetch_median_s']:.2f} s for {row['raw_rows']:,} rows"
                 if "raw_fetch_median_s" in row else "")
        print(f"{backend}: {row['traders']:,} traders x {row['features']} features in "
              f"{row['compute_median_s']:.2f} s (median of {args.runs}; {verdict} the {TARGETS[backend]:.0f} s "
              f"target){extra}; materialised in {row['materialise_median_s']:.2f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
