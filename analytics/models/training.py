"""Training one model by the protocol of :mod:`.dataset`, with everything its card shows.

1. XGBoost (``binary:logistic``, no class reweighting: a reweighted model's probabilities overstate
   the outcome) on the stacked training snapshots, early stopping on the validation snapshot.
2. Platt calibration on the margin, fitted on the calibration half of the test snapshot: a 1-D
   logistic regression ``logit(p) = a · margin + b``. It keeps SHAP contributions additive (a
   calibrated contribution is ``a · φ``); isotonic calibration would not, so it is not used.
3. Out-of-time figures on the other half (:class:`.metrics.Metrics`), before and after calibration.
4. A baseline beside it: logistic regression on the model's recency / frequency / monetary columns
   (:attr:`.specs.ModelSpec.baseline_features`), trained on the same rows, calibrated and evaluated
   on the same halves.
5. The random-split comparison: the same XGBoost on the same rows shuffled (60% train, 20% early
   stopping, 20% evaluation), to show how much a random split flatters a model.
6. A global SHAP summary on a sample of the test snapshot (at least :data:`SUMMARY_ROWS` rows when it
   has them): mean |contribution| per feature, and the (value, contribution) points of the top
   features for the beeswarm and dependence plots.
7. The drift reference: decile edges and shares of the top features and of the score on the
   training rows, which :mod:`.scoring` compares each scoring run against.

Model size: at most :data:`MAX_TREES` trees of depth :data:`MAX_DEPTH`; TreeSHAP's cost grows with
trees × leaves × depth², and scoring stores every trader's contributions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sqlalchemy.engine import Engine

from analytics.models import metrics as m
from analytics.models.dataset import (
    MODEL_FEATURES,
    TRAIN_SNAPSHOTS,
    Progress,
    SnapshotPlan,
    TrainingData,
    plan_snapshots,
    training_data,
)
from analytics.models.explain import Calibration, configured_device, contributions, margins
from analytics.models.specs import ModelSpec

MAX_TREES = 300
MAX_DEPTH = 4
XGB_PARAMS: dict = {
    "objective": "binary:logistic", "tree_method": "hist", "n_estimators": MAX_TREES, "learning_rate": 0.08,
    "max_depth": MAX_DEPTH, "min_child_weight": 10, "subsample": 0.8, "colsample_bytree": 0.8,
    "reg_lambda": 5.0, "eval_metric": "logloss", "early_stopping_rounds": 30, "n_jobs": 2, "random_state": 0,
}
SUMMARY_ROWS = 5_000
SUMMARY_FEATURES = 12
DRIFT_FEATURES = 10


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def baseline_model() -> object:
    """Logistic regression on signed-log, standardised columns (missing values: the median)."""
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         FunctionTransformer(_signed_log1p), StandardScaler(),
                         LogisticRegression(max_iter=2000))


def fit_platt(margin: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling of ``margin`` against outcomes ``y`` (an almost unregularised 1-D logistic fit)."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(margin, dtype=float).reshape(-1, 1), y)
    return Calibration(float(lr.coef_[0, 0]), float(lr.intercept_[0]))


@dataclass(frozen=True)
class GlobalSummary:
    """Mean |SHAP| per feature (``importance``, largest first, calibrated log-odds) over ``rows`` rows,
    and for the top features their values and contributions on those rows (``points``)."""

    rows: int
    importance: list[tuple[str, float]]
    points: dict[str, dict[str, list]]

    def to_json(self) -> dict:
        return {"rows": self.rows, "importance": self.importance, "points": self.points}

    @classmethod
    def from_json(cls, data: dict) -> GlobalSummary:
        return cls(int(data["rows"]), [(f, float(v)) for f, v in data["importance"]], data["points"])


def global_summary(booster: xgb.Booster, calibration: Calibration, x: pd.DataFrame, *, seed: int = 0) -> GlobalSummary:
    """The :class:`GlobalSummary` of ``x`` (a sample of :data:`SUMMARY_ROWS` rows past that size)."""
    if len(x) > SUMMARY_ROWS:
        x = x.iloc[np.sort(np.random.default_rng(seed).choice(len(x), SUMMARY_ROWS, replace=False))]
    phi, _ = contributions(booster, x, calibration)
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    importance = [(x.columns[j], float(mean_abs[j])) for j in order]
    points = {}
    for j in order[:SUMMARY_FEATURES]:
        values = x.iloc[:, j].to_numpy(dtype=float)
        points[x.columns[j]] = {"value": [None if np.isnan(v) else float(f"{v:.5g}") for v in values],
                                "shap": [float(f"{c:.4g}") for c in phi[:, j]]}
    return GlobalSummary(len(x), importance, points)


def drift_reference(x: pd.DataFrame, scores: np.ndarray, features: list[str]) -> dict:
    """Decile edges and shares of ``features`` of ``x`` and of ``scores``: what later scorings are
    compared against ({"features": {name: {"edges", "shares"}}, "score": {...}})."""
    def ref(values: np.ndarray) -> dict:
        edges = m.quantile_edges(values)
        return {"edges": edges.tolist(), "shares": m.bin_shares(values, edges).tolist()}
    return {"features": {f: ref(x[f].to_numpy(dtype=float)) for f in features}, "score": ref(scores)}


@dataclass
class TrainedModel:
    """A trained, calibrated, evaluated model and every figure of its card (not yet saved)."""

    spec: ModelSpec
    plan: SnapshotPlan
    params: dict
    booster: xgb.Booster
    calibration: Calibration
    best_iteration: int
    test: m.Metrics
    test_uncalibrated: m.Metrics
    baseline: m.Metrics
    random_split: m.Metrics
    counts: dict
    summary: GlobalSummary
    reference: dict
    medians: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool:
        """At least as good as the baseline on the out-of-time half: ROC AUC and PR AUC."""
        return self.test.roc_auc >= self.baseline.roc_auc and self.test.pr_auc >= self.baseline.pr_auc


def _xgb(params: dict) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(**params)


def _fit(params: dict, x: pd.DataFrame, y: pd.Series, x_valid: pd.DataFrame, y_valid: pd.Series) -> xgb.Booster:
    model = _xgb(params).fit(x, y, eval_set=[(x_valid, y_valid)], verbose=False)
    booster = model.get_booster()
    # Keep the trees up to the best round only: the stored model is exactly what was validated.
    return booster[: model.best_iteration + 1]


def _random_split(params: dict, data: TrainingData, seed: int) -> m.Metrics:
    x = pd.concat([data.train_x, data.validation.x, data.calibration.x, data.test.x])
    y = pd.concat([data.train_y, data.validation.y, data.calibration.y, data.test.y])
    order = np.random.default_rng(seed).permutation(len(x))
    a, b = int(len(x) * 0.6), int(len(x) * 0.8)
    tr, va, te = order[:a], order[a:b], order[b:]
    booster = _fit(params, x.iloc[tr], y.iloc[tr], x.iloc[va], y.iloc[va])
    p = 1 / (1 + np.exp(-margins(booster, x.iloc[te])))
    return m.evaluate(y.iloc[te].to_numpy(), p)


def _baseline(spec: ModelSpec, data: TrainingData) -> m.Metrics:
    cols = list(spec.baseline_features)
    model = baseline_model().fit(data.train_x[cols].to_numpy(dtype=float), data.train_y.to_numpy())
    cal = fit_platt(model.decision_function(data.calibration.x[cols].to_numpy(dtype=float)),
                    data.calibration.y.to_numpy())
    p = cal.probability(model.decision_function(data.test.x[cols].to_numpy(dtype=float)))
    return m.evaluate(data.test.y.to_numpy(), p)


def train_model(engine: Engine, spec: ModelSpec, *, as_of: date | datetime | None = None,
                train_snapshots: int = TRAIN_SNAPSHOTS, params: dict | None = None,
                progress: Progress | None = None, seed: int = 0) -> TrainedModel:
    """Train ``spec`` with data before ``as_of`` (see the module docstring). Raises
    :class:`.dataset.NotEnoughHistory` when the data cannot carry the protocol."""
    say = progress or (lambda fraction, message: None)
    params = {**XGB_PARAMS, **(params or {}), "random_state": seed}
    device = configured_device()
    if device is not None:
        params["device"] = device
    timings: dict[str, float] = {}
    started = time.perf_counter()
    plan = plan_snapshots(engine, spec, as_of=as_of, train_snapshots=train_snapshots)
    data = training_data(engine, spec, plan, progress=say, seed=seed)
    timings["data_s"] = time.perf_counter() - started

    say(0.55, f"Training XGBoost on {len(data.train_x):,} rows")
    t = time.perf_counter()
    booster = _fit(params, data.train_x, data.train_y, data.validation.x, data.validation.y)
    timings["fit_s"] = time.perf_counter() - t

    say(0.7, "Calibrating and evaluating out of time")
    calibration = fit_platt(margins(booster, data.calibration.x), data.calibration.y.to_numpy())
    test_margin = margins(booster, data.test.x)
    y_test = data.test.y.to_numpy()
    test = m.evaluate(y_test, calibration.probability(test_margin))
    uncalibrated = m.evaluate(y_test, 1 / (1 + np.exp(-test_margin)))
    baseline = _baseline(spec, data)

    say(0.78, "Random-split comparison")
    t = time.perf_counter()
    random_split = _random_split(params, data, seed)
    timings["random_split_s"] = time.perf_counter() - t

    say(0.9, "Global SHAP summary and drift reference")
    t = time.perf_counter()
    recent = pd.concat([data.calibration.x, data.test.x])
    summary = global_summary(booster, calibration, recent, seed=seed)
    top = [f for f, _ in summary.importance[:DRIFT_FEATURES]]
    reference = drift_reference(data.train_x, calibration.probability(margins(booster, data.train_x)), top)
    timings["summary_s"] = time.perf_counter() - t
    medians = {f: (None if np.isnan(v) else float(v))
               for f, v in data.train_x.median(numeric_only=True).items()}
    counts = {"train_rows": len(data.train_x), "train_rows_before_sampling": int(data.sampled_from),
              "train_positive_rate": float(data.train_y.mean()), "validation_rows": len(data.validation),
              "validation_positive_rate": float(data.validation.y.mean()),
              "calibration_rows": len(data.calibration), "test_rows": len(data.test),
              "features": len(MODEL_FEATURES)}
    timings["total_s"] = time.perf_counter() - started
    say(1.0, "Trained")
    return TrainedModel(spec, plan, {k: v for k, v in params.items() if k != "n_jobs"}, booster, calibration,
                        int(booster.num_boosted_rounds()) - 1, test, uncalibrated, baseline, random_split,
                        counts, summary, reference, medians, timings)
