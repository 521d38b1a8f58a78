"""Explanations of analytics/models (explain.py, reasons.py, the card's figures of training.py) on a
model trained by the protocol on a small simulated broker (DuckDB: the computations do not touch
the database once the rows are read).

- Contributions plus base equal the model's margin, and with the Platt calibration the calibrated
  log-odds, for every explained row (1e-3, the issue's bound).
- XGBoost's pred_contribs agree with shap.TreeExplainer; with device="cuda" the same numbers come
  from the GPU where one is usable, and from the CPU (with XGBoost's warning) where it is not.
- The stored form (top reasons + rest + base) adds up to the probability and survives JSON.
- The card: calibration fitted on the calibration half, out-of-time figures on the other half,
  the random split on 20% of all rows, the global SHAP summary.
- Reason sentences a marketer reads.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from datetime import date

import numpy as np
import pandas as pd
import pytest
import shap
import xgboost as xgb

from analytics.models import dataset, explain
from analytics.models import metrics as m
from analytics.models.dataset import half, labelled_snapshot, scoring_snapshot
from analytics.models.explain import Calibration, Explanation, Reason, contributions, margins, top_reasons
from analytics.models.reasons import reason_text
from analytics.models.specs import CHURN, DEPOSIT, FTD
from analytics.models.training import SUMMARY_FEATURES, fit_platt, train_model
from connectors import database
from connectors.simulator import SimulationConfig, seed_database

BROKER = SimulationConfig(traders=4_000, days=160, seed=5, end=date(2026, 11, 1))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(engine, TrainedModel, scoring snapshot at the cut-off, labelled test snapshot) of churn."""
    engine = database.get_engine(f"duckdb:///{tmp_path_factory.mktemp('explain') / 'explain.duckdb'}")
    database.upgrade_schema(engine)
    seed_database(engine, BROKER)
    model = train_model(engine, CHURN, train_snapshots=1)
    scored = scoring_snapshot(engine, CHURN, model.plan.cutoff)
    test = labelled_snapshot(engine, CHURN, model.plan.test)
    yield engine, model, scored, test
    engine.dispose()
    database.dispose_engines()


def _rows(trained) -> pd.DataFrame:
    """Every row explained: the traders scored at the cut-off and those of the newest labelled snapshot."""
    _, _, scored, test = trained
    return pd.concat([scored.x, test.x])


# ---- additivity ---------------------------------------------------------------------------------


def test_contributions_plus_base_equal_the_margin_for_every_row(trained):
    _, model, _, _ = trained
    x = _rows(trained)
    assert len(x) > 500 and x.isna().any().any()  # missing values take the trees' default branches
    margin = margins(model.booster, x)
    phi, base = contributions(model.booster, x)
    assert phi.shape == (len(x), len(dataset.MODEL_FEATURES)) and base.shape == (len(x),)
    assert np.abs(base + phi.sum(axis=1) - margin).max() <= 1e-3
    # Calibrated: the same contributions times the Platt slope, and the shown probability exactly.
    cal = model.calibration
    phi_c, base_c = contributions(model.booster, x, cal)
    assert np.abs(base_c + phi_c.sum(axis=1) - cal.log_odds(margin)).max() <= 1e-3
    assert np.abs(1 / (1 + np.exp(-(base_c + phi_c.sum(axis=1)))) - cal.probability(margin)).max() <= 1e-4
    np.testing.assert_allclose(phi_c, phi * cal.slope, rtol=1e-12)
    np.testing.assert_allclose(base_c, base * cal.slope + cal.intercept, rtol=1e-12)


def test_platt_calibration_keeps_contributions_additive():
    """Platt on the margin, fitted on synthetic margins of known slope and intercept: recovered, and
    a · φ with base a · base + b still sums to the calibrated log-odds of every row."""
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 100_000)
    y = (rng.random(len(margin)) < 1 / (1 + np.exp(-(0.6 * margin - 0.8)))).astype(int)
    cal = fit_platt(margin, y)
    assert cal.slope == pytest.approx(0.6, abs=0.02) and cal.intercept == pytest.approx(-0.8, abs=0.02)
    x = pd.DataFrame(rng.normal(size=(2_000, 4)), columns=list("abcd"))
    target = (x["a"] + x["b"] * x["c"] + rng.normal(size=len(x)) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x.to_numpy(dtype=np.float32), label=target, feature_names=list(x.columns)), 30)
    phi, base = contributions(booster, x, cal)
    np.testing.assert_allclose(base + phi.sum(axis=1), cal.log_odds(margins(booster, x)), atol=1e-4)
    assert Calibration(1.0, 0.0).probability(np.array([0.0]))[0] == 0.5


# ---- SHAP: the package, the GPU ----------------------------------------------------------------


def test_pred_contribs_agree_with_shap_tree_explainer(trained):
    """XGBoost's TreeSHAP (what scoring stores, and what runs on a GPU) against shap 0.50+'s
    TreeExplainer on the trained booster (xgboost 3.2 needs shap 0.50 or newer)."""
    assert tuple(int(p) for p in shap.__version__.split(".")[:2]) >= (0, 50)
    _, model, _, _ = trained
    x = _rows(trained)
    phi, base = contributions(model.booster, x)
    explainer = shap.TreeExplainer(model.booster)
    values = explainer.shap_values(x)
    assert values.shape == phi.shape
    assert np.abs(values - phi).max() <= 1e-4
    assert float(np.ravel(explainer.expected_value)[0]) == pytest.approx(base[0], abs=1e-4)
    assert np.ptp(base) == 0  # one base value for every row


def _cuda_unusable() -> str | None:
    """None when XGBoost computes on a CUDA device here, else why it cannot. With device="cuda", a
    build without CUDA (the xgboost-cpu package installed by default) and a CUDA build on a machine
    without a visible GPU both warn and compute on the CPU: the device a booster ends up with says
    which happened."""
    if not xgb.build_info().get("USE_CUDA"):
        return "this XGBoost build has no CUDA support (xgboost-cpu; `make XGBOOST=gpu` installs the CUDA build)"
    probe = xgb.train({"max_depth": 1}, xgb.DMatrix(np.arange(8.0).reshape(4, 2), label=[0, 1, 0, 1]), 1)
    probe.set_param({"device": "cuda"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe.predict(xgb.DMatrix(np.zeros((1, 2))), pred_contribs=True)
    device = json.loads(probe.save_config())["learner"]["generic_param"]["device"]
    return None if device.startswith("cuda") else f"no usable CUDA device (XGBoost fell back to {device!r})"


CUDA_UNUSABLE = _cuda_unusable()


@pytest.mark.skipif(CUDA_UNUSABLE is not None, reason=f"device='cuda' not testable here: {CUDA_UNUSABLE}")
def test_cuda_contributions_match_the_cpu(trained):
    _, model, _, _ = trained
    x = _rows(trained)
    cpu_phi, cpu_base = contributions(model.booster, x, model.calibration, device="cpu")
    gpu_phi, gpu_base = contributions(model.booster, x, model.calibration, device="cuda")
    assert np.abs(gpu_phi - cpu_phi).max() <= 1e-4 and np.abs(gpu_base - cpu_base).max() <= 1e-4


@pytest.mark.skipif(CUDA_UNUSABLE is None, reason="a CUDA device is usable: test_cuda_contributions_match_the_cpu runs")
def test_cuda_without_a_gpu_computes_the_same_on_the_cpu(trained):
    """A broker who sets device="cuda" on a server without a GPU still gets every score and reason
    (XGBoost warns and uses the CPU), and the trained booster itself stays on the CPU."""
    _, model, _, _ = trained
    x = _rows(trained)
    cpu = contributions(model.booster, x, model.calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost: "Device is changed from GPU to CPU ..."
        cuda = contributions(model.booster, x, model.calibration, device="cuda")
    assert np.array_equal(cuda[0], cpu[0]) and np.array_equal(cuda[1], cpu[1])
    assert json.loads(model.booster.save_config())["learner"]["generic_param"]["device"] == "cpu"


# ---- the stored explanation --------------------------------------------------------------------


def test_stored_explanations_add_up_to_the_probability(trained):
    _, model, scored, _ = trained
    x = scored.x
    phi, base = contributions(model.booster, x, model.calibration)
    probability = model.calibration.probability(margins(model.booster, x))
    stored = top_reasons(phi, base, x)
    assert len(stored) == len(x)
    names = list(x.columns)
    values = x.to_numpy(dtype=float)
    for i, e in enumerate(stored):
        assert e.probability == pytest.approx(probability[i], abs=1e-6)
        assert e.log_odds == pytest.approx(base[i] + phi[i].sum(), abs=1e-9)
        assert len(e.reasons) == explain.TOP_REASONS and e.rest_count == len(names) - explain.TOP_REASONS
        sizes = [abs(r.contribution) for r in e.reasons]
        assert sizes == sorted(sizes, reverse=True)
        chosen = [names.index(r.feature) for r in e.reasons]
        others = np.delete(np.abs(phi[i]), chosen)
        assert min(np.abs(phi[i, chosen])) >= others.max()  # the largest contributions are the ones kept
        assert e.rest == pytest.approx(np.delete(phi[i], chosen).sum(), abs=1e-5)
        for r, j in zip(e.reasons, chosen, strict=True):
            assert r.contribution == pytest.approx(phi[i, j], abs=1e-6)
            assert (r.value is None) if math.isnan(values[i, j]) else r.value == pytest.approx(values[i, j], abs=1e-6)
        again = Explanation.from_json(json.loads(json.dumps(e.to_json())))
        assert again == e and again.probability == e.probability


def test_fewer_features_than_reasons_keep_them_all():
    phi = np.array([[0.5, -0.25]])
    e = top_reasons(phi, np.array([-1.0]), pd.DataFrame({"a": [1.0], "b": [np.nan]}))[0]
    assert [(r.feature, r.value, r.contribution) for r in e.reasons] == [("a", 1.0, 0.5), ("b", None, -0.25)]
    assert (e.rest, e.rest_count, e.log_odds) == (0.0, 0, -0.75)


# ---- the card's figures ------------------------------------------------------------------------


def test_card_figures_come_from_the_halves_of_the_newest_snapshot(trained):
    """Platt fitted on the calibration half of the test snapshot; the out-of-time figures (before and
    after calibration) on the other half; the random split evaluated on 20% of every row."""
    _, model, _, test = trained
    cal_rows = half(test.x.index)
    cal_x, cal_y = test.x[cal_rows], test.y[cal_rows].to_numpy()
    test_x, test_y = test.x[~cal_rows], test.y[~cal_rows].to_numpy()
    assert model.counts["calibration_rows"] == len(cal_x) and model.counts["test_rows"] == len(test_x)
    refit = fit_platt(margins(model.booster, cal_x), cal_y)
    assert (refit.slope, refit.intercept) == pytest.approx((model.calibration.slope, model.calibration.intercept))
    margin = margins(model.booster, test_x)
    assert model.test == m.evaluate(test_y, model.calibration.probability(margin))
    assert model.test_uncalibrated == m.evaluate(test_y, 1 / (1 + np.exp(-margin)))
    assert model.baseline.rows == model.test.rows == len(test_x)
    everything = model.counts["train_rows"] + model.counts["validation_rows"] + len(test.x)
    assert model.random_split.rows == everything - int(everything * 0.8)
    assert not math.isnan(model.random_split.roc_auc)
    # The halves are a fixed split of the trader ids: the same from run to run, about half each.
    assert half(pd.Index([1, 2, 3, 10**9])).tolist() == half(pd.Index([1, 2, 3, 10**9])).tolist()
    assert 0.4 < cal_rows.mean() < 0.6


def test_global_summary_is_the_mean_size_of_the_calibrated_contributions(trained):
    _, model, _, test = trained
    # The summary's rows: the newest labelled snapshot (both halves), all of it below 5,000 rows.
    assert model.summary.rows == len(test.x)
    phi, _ = contributions(model.booster, test.x, model.calibration)
    mean_abs = dict(zip(test.x.columns, np.abs(phi).mean(axis=0), strict=True))
    importance = model.summary.importance
    assert [v for _, v in importance] == sorted((v for _, v in importance), reverse=True)
    assert {f: v for f, v in importance} == pytest.approx(mean_abs)
    top = [f for f, _ in importance[:SUMMARY_FEATURES]]
    assert list(model.summary.points) == top
    for f in top:
        points = model.summary.points[f]
        assert len(points["value"]) == len(points["shap"]) == len(test.x)
        assert float(np.mean(np.abs(points["shap"]))) == pytest.approx(mean_abs[f], rel=1e-3)


# ---- reasons in words ----------------------------------------------------------------------------


def _odds(text: str) -> float:
    return float(re.search(r"odds ×([0-9.,]+)\)", text).group(1).replace(",", ""))


def test_reason_sentences():
    medians = {"days_since_last_login": 2.0, "balance_usd": 1250.0, "win_rate": 0.5, "realised_pnl_usd": -40.0}
    assert reason_text(CHURN, Reason("days_since_last_login", 23.0, math.log(3.1)), medians) == \
        "Last login 23 days ago (typical: 2 days): raises churn risk (odds ×3.1)"
    assert reason_text(CHURN, Reason("days_since_last_login", 1.0, -0.3), medians) == \
        "Last login 1 day ago (typical: 2 days): lowers churn risk (odds ×0.74)"
    assert reason_text(CHURN, Reason("days_since_last_deposit", None, -0.7), medians) == \
        "Never deposited: lowers churn risk (odds ×0.5)"
    assert reason_text(CHURN, Reason("balance_usd", 4.0, 1.0), medians) == \
        "Estimated balance: $4 (typical: $1,250): raises churn risk (odds ×2.7)"
    assert reason_text(CHURN, Reason("realised_pnl_usd", -1234.4, 0.2), medians).startswith(
        "Realised P&L: -$1,234 (typical: -$40): raises churn risk")
    assert reason_text(CHURN, Reason("win_rate", 0.25, 0.1), medians).startswith("Win rate: 25% (typical: 50%): ")
    assert reason_text(CHURN, Reason("trades_trend", math.log(4 / 43), 0.6), medians).startswith(
        "Trades in the last 30 days down 91% on the 30 days before: raises churn risk")
    assert reason_text(CHURN, Reason("sessions_trend", 0.01, 0.0), {}).startswith(
        "Logins steady on the 30 days before: ")
    assert reason_text(CHURN, Reason("kyc_state", 4.0, 0.2), {}).startswith("KYC status: rejected: ")
    assert reason_text(CHURN, Reason("kyc_approved", 1.0, -0.2), {}).startswith("KYC approved: lowers churn risk")
    assert reason_text(DEPOSIT, Reason("deposits_count", 3.0, 0.4), {}) == \
        "Deposits: 3: raises the chance of a deposit (odds ×1.5)"
    assert reason_text(FTD, Reason("sessions_30d", 0.0, -1.0), {"sessions_30d": 4.0}) == \
        "Logins in the last 30 days: 0 (typical: 4): lowers the chance of a first deposit (odds ×0.37)"


def test_large_effects_read_as_plain_numbers():
    """A strong reason reads as a number a marketer knows, not in scientific notation. (On the
    simulator's churn model the largest single effect is about ×29, exp(3.35); a contribution past
    ln 100 = 4.6, for another broker's data or model, gave "odds ×1.5e+02".)"""
    for contribution in (4.0, 5.0, 7.0, -5.0):
        text = reason_text(CHURN, Reason("days_since_last_login", 40.0, contribution), {})
        assert "e+" not in text and "e-" not in text, text
        assert _odds(text) == pytest.approx(math.exp(contribution), rel=0.1), text
