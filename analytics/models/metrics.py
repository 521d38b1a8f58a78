"""The figures of a model card, from outcomes ``y`` (0/1) and probabilities ``p``.

- ROC AUC and PR AUC (average precision): ranking; PR AUC matters for rare outcomes.
- Brier score: mean squared error of the probabilities (lower is better).
- Expected calibration error (ECE): over 10 quantile bins (equal counts) of ``p``, the mean of
  |mean predicted − observed rate| weighted by bin size. A model whose "78%" comes true 78% of the
  time has ECE near 0.
- Reliability curve: those bins' mean predicted probability, observed rate and count.
- Lift and cumulative gain by decile of ``p`` (decile 1 = the highest 10%): lift = the decile's
  positive rate / the overall rate; gain = share of all positives in deciles 1..k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

BINS = 10


@dataclass(frozen=True)
class Metrics:
    """One model's figures on one slice of rows (see the module docstring)."""

    rows: int
    positives: int
    positive_rate: float
    mean_predicted: float
    roc_auc: float
    pr_auc: float
    brier: float
    log_loss: float
    ece: float
    top_decile_lift: float
    top_decile_precision: float
    reliability: list[dict]
    deciles: list[dict]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Metrics:
        return cls(**data)


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> list[dict]:
    """Quantile bins of ``p``: [{"bin", "predicted", "observed", "count"}] in rising ``p``."""
    order = np.argsort(p, kind="stable")
    out = []
    for i, chunk in enumerate(np.array_split(order, bins), start=1):
        if len(chunk):
            out.append({"bin": i, "predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean()),
                        "count": len(chunk)})
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> float:
    """ECE over quantile bins (see the module docstring)."""
    curve = reliability(y, p, bins)
    n = sum(b["count"] for b in curve)
    return float(sum(abs(b["predicted"] - b["observed"]) * b["count"] for b in curve) / n)


def deciles(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Deciles by ``p`` (1 = highest): [{"decile", "count", "positives", "rate", "lift", "gain",
    "min_p", "max_p"}]. Ties are broken by row order, so deciles have equal counts."""
    order = np.argsort(-p, kind="stable")
    base = y.mean() if len(y) else 0.0
    total = max(int(y.sum()), 1)
    out, cumulative = [], 0
    for d, chunk in enumerate(np.array_split(order, BINS), start=1):
        positives = int(y[chunk].sum())
        cumulative += positives
        rate = positives / len(chunk) if len(chunk) else 0.0
        out.append({"decile": d, "count": len(chunk), "positives": positives, "rate": rate,
                    "lift": rate / base if base else 0.0, "gain": cumulative / total,
                    "min_p": float(p[chunk].min()) if len(chunk) else 0.0,
                    "max_p": float(p[chunk].max()) if len(chunk) else 0.0})
    return out


def evaluate(y, p) -> Metrics:
    """Every figure of :class:`Metrics` for outcomes ``y`` and probabilities ``p``."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    d = deciles(y, p)
    return Metrics(
        rows=len(y), positives=int(y.sum()), positive_rate=float(y.mean()), mean_predicted=float(p.mean()),
        roc_auc=float(roc_auc_score(y, p)) if both else float("nan"),
        pr_auc=float(average_precision_score(y, p)) if both else float("nan"),
        brier=float(brier_score_loss(y, p)), log_loss=float(log_loss(y, p, labels=[0, 1])),
        ece=expected_calibration_error(y, p), top_decile_lift=d[0]["lift"], top_decile_precision=d[0]["rate"],
        reliability=reliability(y, p), deciles=d)


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of ``values`` in the bins cut at ``edges`` (inner edges), then the share of NaN."""
    values = np.asarray(values, dtype=float)
    nan = np.isnan(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), values[~nan], side="right"),
                         minlength=len(edges) + 1)
    return np.append(counts, nan.sum()).astype(float) / max(len(values), 1)


def psi(expected_shares, actual_shares) -> float:
    """Population stability index between two sets of bin shares (:func:`bin_shares`). Each share
    is floored at 0.0001 so an empty bin stays finite. Past 0.2 the population has shifted."""
    e = np.maximum(np.asarray(expected_shares, dtype=float), 1e-4)
    a = np.maximum(np.asarray(actual_shares, dtype=float), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner bin edges at the deciles of ``values`` (NaN ignored, duplicates dropped)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return np.array([])
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
