"""What the churn model must show on the simulator (issue 13, "What it must show"): out-of-time ROC AUC
at least 0.80, top-decile lift at least 3, calibration error at most 0.03, at least as good as its
baseline, the random-split figure beside it, and the simulator's true churn drivers
(connectors/simulator.py: losses, low engagement, inactivity, failed withdrawals, an empty
balance) among the top SHAP features, each pushing the score the way it pushes the hazard.

One simulated broker of 20,000 traders over 240 days (4 training snapshots, 30-day windows), DuckDB:
9 s to seed and 3.6 s to train on this 2-core machine when idle, 20 s and 6 s at load 4-7. Its
figures: out-of-time ROC AUC 0.974, PR AUC 0.925, top-decile lift 6.5, ECE 0.012; baseline ROC AUC
0.918; random split 0.968; drivers ranked 1 (inactivity), 3 (balance), 7 (losses), 10 (engagement).
Smaller brokers give noisier figures: at 12,000 traders the calibration error of one seed in six
reached 0.031 and the losses and engagement drivers fell below the top 10 for two seeds in six; at
20,000 traders seeds 1, 2, 3 and 7 all pass with ECE 0.009-0.021 and four drivers in the top 10.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from analytics.models.dataset import labelled_snapshot
from analytics.models.explain import contributions
from analytics.models.specs import CHURN
from analytics.models.training import train_model
from connectors import database
from connectors.simulator import SimulationConfig, seed_database

BROKER = SimulationConfig(traders=20_000, days=240, seed=7, end=date(2026, 11, 1))

# The simulator's churn drivers and the features that describe them.
DRIVERS: dict[str, tuple[str, ...]] = {
    "losses": ("pnl_to_deposits", "realised_pnl_usd"),
    "low_engagement": ("sessions_30d", "sessions_per_week", "sessions_trend"),
    "inactivity": ("days_since_last_login",),
    "empty_balance": ("balance_usd",),
    "failed_withdrawal": ("declined_withdrawals_30d",),
}


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """(TrainedModel, the labelled test snapshot) of churn on the simulated broker."""
    engine = database.get_engine(f"duckdb:///{tmp_path_factory.mktemp('quality') / 'quality.duckdb'}")
    database.upgrade_schema(engine)
    seed_database(engine, BROKER)
    model = train_model(engine, CHURN)
    test = labelled_snapshot(engine, CHURN, model.plan.test)
    yield model, test
    engine.dispose()
    database.dispose_engines()


def test_out_of_time_figures(churn):
    model, _ = churn
    assert len(model.plan.train) == 4 and model.counts["test_rows"] >= 1000
    t = model.test
    report = (f"out of time: ROC AUC {t.roc_auc:.3f}, PR AUC {t.pr_auc:.3f}, lift {t.top_decile_lift:.2f}, "
              f"ECE {t.ece:.4f}; baseline ROC AUC {model.baseline.roc_auc:.3f}; random split "
              f"{model.random_split.roc_auc:.3f}")
    assert t.roc_auc >= 0.80, report
    assert t.top_decile_lift >= 3, report
    assert t.ece <= 0.03, report
    assert t.roc_auc >= model.baseline.roc_auc and model.beats_baseline, report
    # Calibration did not cost ranking: Platt is monotone.
    assert t.roc_auc == pytest.approx(model.test_uncalibrated.roc_auc, abs=1e-12)


def test_random_split_figure_is_beside_it(churn):
    model, test = churn
    everything = model.counts["train_rows"] + model.counts["validation_rows"] + len(test.x)
    split = model.random_split
    assert split.rows == everything - int(everything * 0.8) and split.positives > 50
    assert 0.5 < split.roc_auc <= 1 and not math.isnan(split.pr_auc)


def _ranks(model) -> dict[str, int]:
    return {f: i for i, (f, _) in enumerate(model.summary.importance, start=1)}


def test_true_churn_drivers_rank_among_the_top_shap_features(churn):
    """Inactivity and an empty balance in the top 5 by mean |SHAP|, and at least three of the five
    drivers (through any feature that describes them) in the top 10. Failed withdrawals are rare
    (about 40 of 1,200 test traders have one), so their mean |SHAP| stays small whatever their effect."""
    model, _ = churn
    rank = _ranks(model)
    best = {driver: min(rank[f] for f in features) for driver, features in DRIVERS.items()}
    assert best["inactivity"] <= 5 and best["empty_balance"] <= 5, best
    assert sum(r <= 10 for r in best.values()) >= 3, best


def test_drivers_push_the_score_the_way_they_push_the_hazard(churn):
    """On the test snapshot, each driver's own SHAP contribution is higher, on average, for the
    traders the simulator's hazard term hits than for the others."""
    model, test = churn
    phi, _ = contributions(model.booster, test.x, model.calibration)
    columns = list(test.x.columns)
    hit = {
        "days_since_last_login": lambda v: v >= 7,  # no session in the last 7 days
        "balance_usd": lambda v: v < 10,  # an empty balance
        "pnl_to_deposits": lambda v: v < -0.5,  # lost more than half of what was deposited
        "sessions_30d": lambda v: v < 10,  # fewer than 10 sessions in 30 days
    }
    for feature, condition in hit.items():
        values = test.x[feature].to_numpy(dtype=float)
        mask = condition(values) & ~np.isnan(values)
        assert 30 <= mask.sum() <= len(mask) - 30, feature
        contribution = phi[:, columns.index(feature)]
        assert contribution[mask].mean() > contribution[~mask].mean(), feature
