"""How good the churn, deposit and FTD models are on the simulator, out of time: every figure of the
model card beside the baseline and a random split, and where the simulator's true churn drivers rank
among the SHAP features.

    .venv/bin/python benchmarks/models_quality.py                     # the 200,000-trader DuckDB bench database
    .venv/bin/python benchmarks/models_quality.py --url duckdb:///data/traderlens.duckdb   # the demo
    .venv/bin/python benchmarks/models_quality.py --models churn --as-of 2026-10-01

Nothing is saved and nothing is tuned here: ``train_model`` with its defaults, as ``cli.py train``
runs it. The database is opened read-only. The true drivers come from the simulator's truth table
(schema ``simulator_truth``), which application code never reads: a benchmark may.

Issue 13's bar on the out-of-time slice: churn ROC AUC >= 0.80, top-decile lift >= 3, ECE <= 0.03
after calibration, XGBoost at least as good as the baseline, the true drivers among the top SHAP
features. Writes benchmarks/results/models_quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from analytics.models.specs import MODELS, model_spec  # noqa: E402
from analytics.models.training import train_model  # noqa: E402
from benchmarks.analytics_bench import DUCKDB_PATH  # noqa: E402
from connectors import database  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "models_quality.json"
# Each true driver of the simulator's churn hazard (connectors/simulator.py) and the features that
# measure it.
DRIVERS: dict[str, tuple[str, ...]] = {
    "inactivity": ("days_since_last_login", "sessions_30d", "sessions_trend"),
    "empty_balance": ("balance_usd",),
    "losses": ("pnl_to_deposits", "realised_pnl_usd", "win_rate"),
    "low_engagement": ("sessions_per_week", "sessions_30d", "avg_session_min"),
    "failed_withdrawal": ("declined_withdrawals_30d",),
}


def driver_ranks(importance: list[tuple[str, float]]) -> dict[str, int]:
    """Each driver's best rank (1 = the most important feature) among its features."""
    rank = {name: i for i, (name, _) in enumerate(importance, start=1)}
    return {d: min(rank.get(f, len(rank) + 1) for f in features) for d, features in DRIVERS.items()}


def truth_drivers(engine: sa.Engine) -> dict[str, int]:
    """How many simulated traders churned of each driver (the truth table), {} without one."""
    with engine.connect() as conn:
        try:
            rows = conn.execute(sa.text("SELECT churn_driver, count(*) FROM simulator_truth.traders "
                                        "WHERE churn_driver IS NOT NULL GROUP BY churn_driver")).all()
        except sa.exc.DBAPIError:
            return {}
    return {str(d): int(n) for d, n in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=f"duckdb:///{DUCKDB_PATH}")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    engine = database.get_engine(args.url, read_only=True)
    out = {"url": database.redact(args.url), "as_of": str(args.as_of), "models": {}}
    header = ("| model | rows (train / test) | positive | ROC AUC | PR AUC | Brier | ECE before → after | "
              "top-decile lift | baseline ROC / PR AUC / lift | random split ROC AUC | train s |")
    lines = [header, "|" + "---|" * 11]
    for name in args.models:
        started = time.perf_counter()
        tm = train_model(engine, model_spec(name), as_of=args.as_of)
        seconds = time.perf_counter() - started
        t, u, b, r = tm.test, tm.test_uncalibrated, tm.baseline, tm.random_split
        entry = {"plan": tm.plan.to_json(), "counts": tm.counts, "test": t.to_json(), "uncalibrated_ece": u.ece,
                 "baseline": b.to_json(), "random_split": r.to_json(), "beats_baseline": tm.beats_baseline,
                 "trees": tm.best_iteration + 1, "seconds": seconds,
                 "top_features": [[f, round(v, 4)] for f, v in tm.summary.importance[:15]]}
        lines.append(f"| {name} | {tm.counts['train_rows']:,} / {t.rows:,} | {t.positive_rate:.1%} | "
                     f"{t.roc_auc:.3f} | {t.pr_auc:.3f} | {t.brier:.4f} | {u.ece:.4f} → {t.ece:.4f} | "
                     f"{t.top_decile_lift:.2f} | {b.roc_auc:.3f} / {b.pr_auc:.3f} / {b.top_decile_lift:.2f} | "
                     f"{r.roc_auc:.3f} | {seconds:.0f} |")
        if name == "churn":
            entry["driver_ranks"] = driver_ranks(tm.summary.importance)
            entry["truth_churned_by_driver"] = truth_drivers(engine)
        out["models"][name] = entry
    print("\n".join(lines))
    for name, entry in out["models"].items():
        print(f"\n{name}: top SHAP features: " + ", ".join(f for f, _ in entry["top_features"][:10]))
        if "driver_ranks" in entry:
            print("true churn drivers, best rank of their features: "
                  + ", ".join(f"{d} {r}" for d, r in sorted(entry["driver_ranks"].items(), key=lambda x: x[1])))
            if entry["truth_churned_by_driver"]:
                print("churned traders by true driver (truth table): " + ", ".join(
                    f"{d} {n:,}" for d, n in sorted(entry["truth_churned_by_driver"].items(), key=lambda x: -x[1])))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
