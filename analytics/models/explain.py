"""SHAP contributions of a model's predictions, and the reasons a marketer reads.

Contributions are XGBoost's own TreeSHAP (``Booster.predict(pred_contribs=True)``: exactly what
``shap.TreeExplainer`` returns for these models, computed by the same C++ code, on a GPU when the
booster's device is ``cuda``). They are in the model's margin (log-odds); with the Platt calibration
``logit(p) = a · margin + b`` a calibrated contribution is ``a · φ`` and the base ``a · base + b``,
so base + contributions = the calibrated log-odds of the shown probability, exactly.

A trader's stored explanation is the base, the :data:`TOP_REASONS` largest contributions by size
(feature, value, contribution) and the sum of all the others, so the stored parts still add up.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from connectors.errors import TraderLensError

TOP_REASONS = 8
DEVICE_ENV = "TRADERLENS_MODEL_DEVICE"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class BadDevice(TraderLensError):
    """TRADERLENS_MODEL_DEVICE (or --device) is not cpu, cuda or cuda:N."""


def configured_device(device: str | None = None) -> str | None:
    """``device``, else TRADERLENS_MODEL_DEVICE, else None (XGBoost's default, the CPU): where
    training and the SHAP contributions run. ``cuda`` needs XGBoost's CUDA build (`make run
    XGBOOST=gpu`) and a GPU; the values are the same."""
    value = (device or os.environ.get(DEVICE_ENV, "")).strip().lower()
    if not value:
        return None
    if not _DEVICE.fullmatch(value):
        raise BadDevice(f"{DEVICE_ENV} (or --device) must be cpu, cuda or cuda:N; got {value!r}.")
    return value


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the margin: ``logit(p) = slope · margin + intercept``."""

    slope: float
    intercept: float

    def probability(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(margin, dtype=float) + self.intercept)))

    def log_odds(self, margin: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(margin, dtype=float) + self.intercept


def dmatrix(x: pd.DataFrame) -> xgb.DMatrix:
    return xgb.DMatrix(x.to_numpy(dtype=np.float32), feature_names=list(x.columns), missing=np.nan)


def margins(booster: xgb.Booster, x: pd.DataFrame) -> np.ndarray:
    """The raw model output (log-odds) for each row of ``x``."""
    return booster.predict(dmatrix(x), output_margin=True, validate_features=False)


def contributions(booster: xgb.Booster, x: pd.DataFrame, calibration: Calibration | None = None,
                  *, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(contributions n × features, base n): SHAP values of each row in log-odds, calibrated when
    ``calibration`` is given; base + row sum = the row's (calibrated) log-odds. ``device``
    ("cpu" or "cuda") overrides the booster's own for this computation."""
    device = configured_device(device)
    if device is not None:
        booster = booster.copy()
        booster.set_param({"device": device})
    if not len(x):  # XGBoost returns a flat empty array for no rows
        return np.zeros((0, x.shape[1])), np.zeros(0)
    raw = booster.predict(dmatrix(x), pred_contribs=True, validate_features=False)
    phi, base = raw[:, :-1].astype(float), raw[:, -1].astype(float)
    if calibration is not None:
        phi = phi * calibration.slope
        base = base * calibration.slope + calibration.intercept
    return phi, base


@dataclass(frozen=True)
class Reason:
    """One feature's part in a trader's score: its value and its contribution (calibrated log-odds)."""

    feature: str
    value: float | None
    contribution: float

    @property
    def odds_ratio(self) -> float:
        """exp(contribution): how many times this feature multiplies the odds."""
        return math.exp(self.contribution)


@dataclass(frozen=True)
class Explanation:
    """A trader's stored explanation: base + Σ reasons + rest = log-odds of ``probability``."""

    base: float
    reasons: tuple[Reason, ...]
    rest: float
    rest_count: int

    @property
    def log_odds(self) -> float:
        return self.base + sum(r.contribution for r in self.reasons) + self.rest

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.log_odds))

    def to_json(self) -> dict:
        return {"base": self.base, "rest": self.rest, "rest_count": self.rest_count,
                "reasons": [[r.feature, r.value, r.contribution] for r in self.reasons]}

    @classmethod
    def from_json(cls, data: dict) -> Explanation:
        return cls(float(data["base"]), tuple(Reason(f, v, float(c)) for f, v, c in data["reasons"]),
                   float(data["rest"]), int(data["rest_count"]))


def top_reasons(phi: np.ndarray, base: np.ndarray, values: pd.DataFrame, k: int = TOP_REASONS) -> list[Explanation]:
    """Each row's :class:`Explanation` with its ``k`` largest contributions by size (largest first).
    Parts are rounded to 6 decimals for storage; the rest absorbs the rounding, so they add up."""
    names = list(values.columns)
    k = min(k, phi.shape[1])
    top = np.argsort(-np.abs(phi), axis=1, kind="stable")[:, :k]
    picked = np.round(np.take_along_axis(phi, top, axis=1), 6)
    bases = np.round(base, 6)
    rests = (base + phi.sum(axis=1)) - bases - picked.sum(axis=1)
    vals = np.round(np.take_along_axis(values.to_numpy(dtype=float), top, axis=1), 6)
    out = []
    for i in range(len(phi)):
        reasons = tuple(Reason(names[j], None if math.isnan(v) else float(v), float(c))
                        for j, v, c in zip(top[i], vals[i], picked[i], strict=True))
        out.append(Explanation(float(bases[i]), reasons, float(rests[i]), phi.shape[1] - k))
    return out
