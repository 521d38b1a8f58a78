"""The model card's figures (analytics/models/metrics.py) against hand computations: calibration
error and the reliability curve over quantile bins, deciles with lift and gain, the population
stability index and its bins, and ROC / PR AUC against scikit-learn and against their definitions.
No database.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from analytics.models import metrics as m

# Twenty rows, p = 0.025, 0.075, ..., 0.975 (in a shuffled order, so the functions must sort): the
# ten quantile bins are the pairs (k = 2b-2, 2b-1) with mean predicted 0.05, 0.15, ..., 0.95.
# Positives: none in bins 1, 2, 4, 5; one of two in bins 3 and 8; both in bins 6, 7, 9, 10.
_K = np.arange(20)
_P = 0.025 + 0.05 * _K
_Y = np.isin(_K, [4, 10, 11, 12, 13, 15, 16, 17, 18, 19]).astype(float)
_ORDER = np.random.default_rng(3).permutation(20)
P, Y = _P[_ORDER], _Y[_ORDER]


def test_reliability_bins_by_hand():
    curve = m.reliability(Y, P)
    assert [b["bin"] for b in curve] == list(range(1, 11))
    assert [b["count"] for b in curve] == [2] * 10
    assert [b["predicted"] for b in curve] == pytest.approx([0.05 + 0.1 * i for i in range(10)])
    assert [b["observed"] for b in curve] == [0, 0, 0.5, 0, 0, 1, 1, 0.5, 1, 1]


def test_expected_calibration_error_by_hand():
    # |predicted - observed| per bin: .05 .15 .25 .35 .45 .45 .35 .25 .15 .05, equal weights.
    assert m.expected_calibration_error(Y, P) == pytest.approx(0.25)
    # Two bins of unequal error: (0.1, 0.2 | 0.6, 0.9) against (0, 1 | 1, 1).
    assert m.expected_calibration_error(np.array([1, 0, 1, 1.0]), np.array([0.6, 0.1, 0.9, 0.2]),
                                        bins=2) == pytest.approx((0.35 * 2 + 0.25 * 2) / 4)
    # Perfect calibration within every bin gives 0.
    p = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 10)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(10 - k)] for k in (1, 3, 5, 7, 9)])
    assert m.expected_calibration_error(y, p, bins=5) == pytest.approx(0.0)


def test_reliability_bins_have_equal_counts_on_random_data():
    """Quantile bins: 10 bins of 100 rows on 1,000 rows, against pandas' rank-based quantiles."""
    rng = np.random.default_rng(0)
    p = rng.beta(1, 5, 1000)
    y = (rng.random(1000) < p).astype(float)
    curve = m.reliability(y, p)
    frame = pd.DataFrame({"y": y, "p": p})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), 10, labels=False)
    expected = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), count=("y", "size"))
    assert [b["count"] for b in curve] == [100] * 10
    assert [b["predicted"] for b in curve] == pytest.approx(expected["predicted"].tolist())
    assert [b["observed"] for b in curve] == pytest.approx(expected["observed"].tolist())
    ece = float((abs(expected["predicted"] - expected["observed"]) * expected["count"]).sum() / 1000)
    assert m.expected_calibration_error(y, p) == pytest.approx(ece)


def test_deciles_lift_and_gain_by_hand():
    d = m.deciles(Y, P)
    assert [x["decile"] for x in d] == list(range(1, 11))
    assert [x["count"] for x in d] == [2] * 10
    # Decile 1 is the highest p: bins 10, 9, ..., 1 of the reliability curve.
    assert [x["positives"] for x in d] == [2, 2, 1, 2, 2, 0, 0, 1, 0, 0]
    assert [x["rate"] for x in d] == [1, 1, 0.5, 1, 1, 0, 0, 0.5, 0, 0]
    assert [x["lift"] for x in d] == pytest.approx([2, 2, 1, 2, 2, 0, 0, 1, 0, 0])  # base rate 0.5
    assert [x["gain"] for x in d] == pytest.approx([0.2, 0.4, 0.5, 0.7, 0.9, 0.9, 0.9, 1.0, 1.0, 1.0])
    assert (d[0]["min_p"], d[0]["max_p"]) == pytest.approx((0.925, 0.975))
    assert (d[-1]["min_p"], d[-1]["max_p"]) == pytest.approx((0.025, 0.075))


def test_deciles_of_a_rare_outcome():
    """100 rows, 5 positives all among the 10 highest scores: lift 10 in decile 1, gain 1 from there."""
    p = np.linspace(0.99, 0.0, 100)
    y = np.zeros(100)
    y[[0, 2, 4, 6, 8]] = 1
    d = m.deciles(y, p)
    assert d[0]["lift"] == pytest.approx(0.5 / 0.05) and d[0]["rate"] == 0.5
    assert all(x["gain"] == 1.0 for x in d) and all(x["lift"] == 0 for x in d[1:])


def _roc_auc_by_pairs(y: np.ndarray, p: np.ndarray) -> float:
    """The probability a positive outscores a negative (ties count half): the Mann-Whitney U."""
    pos, neg = p[y == 1], p[y == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def _average_precision_by_steps(y: np.ndarray, p: np.ndarray) -> float:
    """Σ (recall_k − recall_{k−1}) · precision_k over the rows by falling p (no ties)."""
    order = np.argsort(-p)
    hits = np.cumsum(y[order])
    precision = hits / np.arange(1, len(y) + 1)
    return float((precision * y[order]).sum() / y.sum())


def test_ranking_figures_against_sklearn_and_their_definitions():
    rng = np.random.default_rng(1)
    p = rng.random(400)
    y = (rng.random(400) < p ** 2).astype(float)
    figures = m.evaluate(y, p)
    assert figures.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert figures.roc_auc == pytest.approx(_roc_auc_by_pairs(y, p), abs=1e-12)
    assert figures.pr_auc == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert figures.pr_auc == pytest.approx(_average_precision_by_steps(y, p), abs=1e-12)
    assert figures.brier == pytest.approx(brier_score_loss(y, p)) == pytest.approx(np.mean((p - y) ** 2))
    assert figures.log_loss == pytest.approx(log_loss(y, p))
    assert (figures.rows, figures.positives) == (400, int(y.sum()))
    assert figures.positive_rate == pytest.approx(y.mean()) and figures.mean_predicted == pytest.approx(p.mean())
    assert figures.ece == pytest.approx(m.expected_calibration_error(y, p))
    assert figures.top_decile_lift == pytest.approx(figures.deciles[0]["lift"])
    assert figures.top_decile_precision == pytest.approx(y[np.argsort(-p)[:40]].mean())
    # Tied scores count half, as the definition says.
    ties = m.evaluate(np.array([1, 0, 1, 0.0]), np.array([0.5, 0.5, 0.9, 0.1]))
    assert ties.roc_auc == pytest.approx(_roc_auc_by_pairs(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.9, 0.1])))
    assert ties.roc_auc == pytest.approx(0.875)


def test_one_outcome_only_has_no_ranking_figures_but_the_rest():
    figures = m.evaluate(np.zeros(30), np.linspace(0.01, 0.3, 30))
    assert math.isnan(figures.roc_auc) and math.isnan(figures.pr_auc)
    assert figures.positives == 0 and figures.brier == pytest.approx(np.mean(np.linspace(0.01, 0.3, 30) ** 2))
    assert [d["gain"] for d in figures.deciles] == [0.0] * 10


def test_metrics_survive_json():
    figures = m.evaluate(Y, P)
    assert m.Metrics.from_json(figures.to_json()) == figures


def test_bin_shares_edges_and_missing_values():
    # Inner edges 2 and 3.5: bins (<2), [2, 3.5), (>=3.5), then the share of NaN. A value on an edge
    # goes to the bin above it.
    shares = m.bin_shares(np.array([1, 2, 3, 4, np.nan]), np.array([2, 3.5]))
    assert shares.tolist() == pytest.approx([0.2, 0.4, 0.2, 0.2])
    assert m.bin_shares(np.array([]), np.array([1.0])).tolist() == [0, 0, 0]


def test_quantile_edges_are_the_deciles_without_duplicates():
    assert m.quantile_edges(np.arange(1001.0)).tolist() == pytest.approx([100, 200, 300, 400, 500, 600, 700, 800, 900])
    assert m.quantile_edges(np.r_[np.full(50, 3.0), np.nan]).tolist() == [3.0]
    assert m.quantile_edges(np.array([np.nan, np.nan])).tolist() == []
    values = np.random.default_rng(2).lognormal(size=5000)
    shares = m.bin_shares(values, m.quantile_edges(values))
    assert shares[:-1] == pytest.approx([0.1] * 10, abs=1e-3) and shares[-1] == 0


def test_psi_by_hand():
    assert m.psi([0.5, 0.5, 0], [0.25, 0.75, 0]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # An empty expected bin is floored at 0.0001, so a new bin gives a large but finite PSI.
    assert m.psi([0.5, 0.5, 0], [0.5, 0.4, 0.1]) == pytest.approx(
        -0.1 * math.log(0.8) + (0.1 - 1e-4) * math.log(0.1 / 1e-4))
    assert m.psi([0.1] * 10, [0.1] * 10) == 0.0
    # The same distribution drawn twice: near 0; shifted by one standard deviation: past the 0.2 alert.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=20_000), rng.normal(size=20_000)
    edges = m.quantile_edges(a)
    assert m.psi(m.bin_shares(a, edges), m.bin_shares(b, edges)) < 0.01
    assert m.psi(m.bin_shares(a, edges), m.bin_shares(b + 1, edges)) > 0.2
