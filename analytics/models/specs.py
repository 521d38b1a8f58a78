"""The three models: who each scores, what it predicts and over which horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectors.errors import TraderLensError


class UnknownModel(TraderLensError):
    """A model name that is not churn, deposit or ftd."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: ``name``, a title, the population it scores, the outcome it predicts within
    ``horizon_days`` of the snapshot, what a high score means, and the RFM columns of its baseline."""

    name: str
    title: str
    population: str
    outcome: str
    horizon_days: int
    high_means: str
    low_means: str
    baseline_features: tuple[str, ...]

    @property
    def question(self) -> str:
        """The sentence a probability answers, e.g. "Churn within 30 days"."""
        return f"{self.outcome} within {self.horizon_days} days"


CHURN = ModelSpec(
    name="churn", title="Churn", horizon_days=30,
    population="Active traders: a position opened or closed in the 30 days before the snapshot.",
    outcome="No trade opened or closed, no approved deposit and no login",
    high_means="raises churn risk", low_means="lowers churn risk",
    baseline_features=("days_since_last_trade", "trades_30d", "trades_per_week", "deposits_usd"),
)
DEPOSIT = ModelSpec(
    name="deposit", title="Deposit", horizon_days=7,
    population="Funded traders: an approved deposit before the snapshot.",
    outcome="An approved deposit",
    high_means="raises the chance of a deposit", low_means="lowers the chance of a deposit",
    baseline_features=("days_since_last_deposit", "deposits_count", "deposits_per_month", "deposits_usd"),
)
FTD = ModelSpec(
    name="ftd", title="First deposit", horizon_days=14,
    population="Registered traders without a deposit before the snapshot.",
    outcome="A first deposit",
    high_means="raises the chance of a first deposit", low_means="lowers the chance of a first deposit",
    baseline_features=("tenure_days", "days_since_last_login", "sessions_30d", "sessions_per_week"),
)
MODELS: dict[str, ModelSpec] = {m.name: m for m in (CHURN, DEPOSIT, FTD)}


def model_spec(name: str) -> ModelSpec:
    """The spec called ``name``; :class:`UnknownModel` names the choices otherwise."""
    try:
        return MODELS[str(name).strip().lower()]
    except KeyError:
        raise UnknownModel(f"Unknown model {name!r}: choose one of {', '.join(MODELS)}.") from None


# Probability bands (name, label, lower bound): fixed cut-offs, so "high" means the same to every
# model and in every segment rule.
BANDS: tuple[tuple[str, str, float], ...] = (
    ("low", "Low (under 10%)", 0.0), ("medium", "Medium (10–30%)", 0.10),
    ("high", "High (30–60%)", 0.30), ("very_high", "Very high (60% or more)", 0.60))
BAND_NAMES = tuple(b[0] for b in BANDS)
BAND_LABELS = {b[0]: b[1] for b in BANDS}


def band_of(p: np.ndarray) -> np.ndarray:
    """Each probability's band name (:data:`BANDS`)."""
    cuts = np.array([b[2] for b in BANDS[1:]])
    return np.array(BAND_NAMES, dtype=object)[np.searchsorted(cuts, np.asarray(p, dtype=float), side="right")]
