"""How long rule segments take on 200,000 traders: the live count and sample of an unsaved rule (the
Rule builder's answer to every change) and the refresh of a saved rule segment, on DuckDB and
PostgreSQL.

    python benchmarks/segments_bench.py                      # both backends, 5 timed runs each
    python benchmarks/segments_bench.py --backends duckdb --runs 7

Data: the 200,000-trader benchmark databases of benchmarks/analytics_bench.py
(``data/bench/analytics.duckdb`` and ``traderlens_analytics_bench``; TRADERLENS_BENCH_DUCKDB and
TRADERLENS_BENCH_PG_URL override them). They are never written: the DuckDB file is copied to a
scratch file and the PostgreSQL database cloned (CREATE DATABASE ... TEMPLATE) into a scratch
database, dropped at the end. In the scratch copy the feature snapshot is materialised (timed too)
and a six-cluster clustering run is written (trader_id modulo 6), so every kind of field is there.

Each rule is previewed once untimed (the buffer pool and caches warm, as in a running app), then
``--runs`` times; the median is reported. A refresh is timed three ways: the first one (every
member enters), one with nothing changed, and one after the definition changed (a version whose
members differ by a few thousand traders).

Targets (issue 12): the live count under 1 s on DuckDB and 3 s on PostgreSQL; refreshing a rule
segment under 1 s on DuckDB and 3 s on PostgreSQL. Prints a Markdown table and writes the runs to
benchmarks/results/segments.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from analytics import reading as reading_module  # noqa: E402
from analytics import segments as seg  # noqa: E402
from analytics.features import materialise_features  # noqa: E402
from benchmarks.analytics_bench import scratch_copy  # noqa: E402
from connectors import database, schema  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "segments.json"
TARGETS = {"duckdb": 1.0, "postgres": 3.0}
RUN_ID = 900_001


def cond(field: str, op: str, value=None) -> dict:
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


RULES: dict[str, dict] = {
    "attributes": {"combine": "and", "items": [
        cond("trader.country", "in", ["DE", "GB", "FR", "ES", "IT"]), cond("trader.platform", "=", "MT5"),
        cond("trader.consent_email", "=", True)]},
    "features": {"combine": "and", "items": [
        cond("feature.trades_per_week", ">", 5), cond("feature.deposits_usd", ">=", 1000)]},
    "stage": {"combine": "and", "items": [
        cond("lifecycle.stage", "in", ["dormant", "churned"]), cond("feature.net_deposits_usd", ">", 500)]},
    "cluster": {"combine": "or", "items": [
        cond(f"cluster.{RUN_ID}", "in", [1, 2]), cond("trader.vip_tier", "!=", "standard")]},
    "everything": {"combine": "and", "items": [
        cond("trader.registered_at", "between", ["2025-06-01", "2026-10-31"]),
        {"combine": "or", "items": [cond("lifecycle.stage", "=", "active"),
                                    cond("feature.days_since_last_trade", "<=", 14)]},
        cond(f"cluster.{RUN_ID}", "!=", 0), cond("trader.platform", "!=", "MT4"),
        cond("feature.avg_deposit_usd", "between", [100, 50_000])]},
}
# The definition the "changed" refresh moves the "everything" segment to.
CHANGED = {**RULES["everything"], "items": [*RULES["everything"]["items"][:-1],
                                            cond("feature.avg_deposit_usd", "between", [150, 50_000])]}


def prepare(engine: sa.Engine) -> dict:
    """Migrate, materialise the features (timed) and write a clustering run."""
    database.upgrade_schema(engine)
    started = time.perf_counter()
    # Preparation, not what is measured here: the snapshot's own target (30 s on PostgreSQL) is
    # benchmarks/features_bench.py's; a busy machine must not stop this run at the 30 s read limit.
    defaults = reading_module.reading.__wrapped__.__kwdefaults__
    saved = defaults["timeout_s"]
    defaults["timeout_s"] = 600
    try:
        snapshot = materialise_features(engine)
    finally:
        defaults["timeout_s"] = saved
    features_s = time.perf_counter() - started
    with engine.begin() as conn:
        for table in (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments):
            conn.execute(table.delete())
        conn.execute(schema.cluster_assignments.delete().where(schema.cluster_assignments.c.run_id == RUN_ID))
        conn.execute(schema.clustering_runs.delete().where(schema.clustering_runs.c.run_id == RUN_ID))
        conn.execute(schema.clustering_runs.insert().values(
            run_id=RUN_ID, name="bench", created_at=datetime(2026, 12, 1), created_by="bench",
            as_of=snapshot.as_of, algorithm="kmeans", k=6, seed=0, features="[]",
            clusters=json.dumps([{"cluster": c, "name": f"C{c}", "size": 0} for c in range(6)])))
        t = schema.traders.c
        conn.execute(schema.cluster_assignments.insert().from_select(
            ["run_id", "trader_id", "cluster"],
            sa.select(sa.literal(RUN_ID, sa.BigInteger), t.trader_id, sa.cast(t.trader_id % 6, sa.Integer))))
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))
    return {"features_materialise_s": round(features_s, 2), "traders": snapshot.traders}


def timed(fn, runs: int) -> tuple[float, list[float], object]:
    fn()  # warm-up, not counted
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, out


def bench(backend: str, runs: int) -> list[dict]:
    url, remove = scratch_copy(backend, "segments_bench")
    rows: list[dict] = []
    try:
        engine = database.get_engine(url)
        info = prepare(engine)
        print(f"{backend}: {info['traders']:,} traders, features materialised in {info['features_materialise_s']} s",
              flush=True)
        rows.append({"backend": backend, "what": "materialise features", "median_s": info["features_materialise_s"],
                     "runs": [info["features_materialise_s"]], "members": info["traders"]})
        for name, rule in RULES.items():
            median, times, preview = timed(lambda rule=rule: seg.preview_rule(engine, rule), runs)
            rows.append({"backend": backend, "what": f"preview: {name}", "median_s": median, "runs": times,
                         "members": preview.count})
            print(f"  preview {name}: {median:.3f} s ({preview.count:,} of {preview.population:,})", flush=True)
        for name, rule in RULES.items():
            started = time.perf_counter()
            created = seg.create_segment(engine, name=f"bench {name}", kind="rules", definition=rule)
            first = time.perf_counter() - started
            size = len(seg.member_ids(engine, created.segment_id))
            rows.append({"backend": backend, "what": f"create + first refresh: {name}", "median_s": first,
                         "runs": [first], "members": size})
            median, times, result = timed(lambda s=created.segment_id: seg.refresh_segment(engine, s), runs)
            rows.append({"backend": backend, "what": f"refresh, nothing changed: {name}", "median_s": median,
                         "runs": times, "members": result.size})
            print(f"  refresh {name}: first {first:.3f} s, unchanged {median:.3f} s ({result.size:,} members)",
                  flush=True)
        changed_times, moved = [], 0
        for i in range(runs):
            definition = CHANGED if i % 2 == 0 else RULES["everything"]
            started = time.perf_counter()
            seg.update_segment(engine, "bench everything", definition=definition)
            changed_times.append(time.perf_counter() - started)
            moved = seg.list_segments(engine).set_index("name").loc["bench everything", "size"]
        rows.append({"backend": backend, "what": "update + refresh, definition changed: everything",
                     "median_s": statistics.median(changed_times), "runs": changed_times, "members": int(moved)})
        print(f"  update+refresh everything: {statistics.median(changed_times):.3f} s", flush=True)
        median, times, frame = timed(lambda: seg.export_members(engine, "bench everything"), runs)
        rows.append({"backend": backend, "what": "export members: everything", "median_s": median, "runs": times,
                     "members": len(frame)})
    finally:
        database.dispose_engines()
        remove()
    for row in rows:
        row["target_s"] = TARGETS[backend] if row["what"].startswith(("preview", "refresh", "update")) else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        rows += bench(backend, args.runs)
    print("\n| backend | what | members | median s | target s | within |\n|---|---|---:|---:|---:|---|")
    for r in rows:
        target = r["target_s"]
        within = "" if target is None else ("yes" if r["median_s"] <= target else "NO")
        print(f"| {r['backend']} | {r['what']} | {r['members']:,} | {r['median_s']:.3f} | "
              f"{'' if target is None else target} | {within} |")
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    previous.append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                     "machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg(), "rows": rows})
    RESULTS.write_text(json.dumps(previous, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
