"""Reasons in plain language: one sentence per stored contribution, for marketers.

A reason says the trader's value, what is typical (the median of the model's training rows), and
what it does to the score with its size as an odds ratio: "Last login 23 days ago (typical: 2
days): raises churn risk (odds ×3.1)". The odds ratio is exp(contribution): contributions are in
calibrated log-odds, which add up, so the odds ratios of all features multiply to the trader's odds
against the base odds. Wording comes from the feature catalog (label, unit); a few features get
their own sentence (recency, trends, KYC).
"""

from __future__ import annotations

import math

from analytics.features import FEATURES_BY_NAME, KYC_STATE, KYC_STATES
from analytics.models.explain import Reason
from analytics.models.specs import ModelSpec

UNIT = "calibrated log-odds; odds × exp(contribution)"
_RECENCY = {"days_since_last_trade": ("Last trade", "Never traded"),
            "days_since_last_deposit": ("Last deposit", "Never deposited"),
            "days_since_last_login": ("Last login", "Never logged in")}
_TRENDS = {"trades_trend": "Trades", "sessions_trend": "Logins"}


def number(value: float | None, unit: str) -> str:
    """``value`` formatted for its unit (USD with $, ratios as %, days whole, counts with commas)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if unit == "USD":
        return f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "days":
        return f"{value:,.0f} day" + ("" if round(value) == 1 else "s")
    if unit == "seconds":
        return f"{value:,.0f} s" if value < 120 else (f"{value / 60:,.0f} min" if value < 7200 else
                                                      f"{value / 3600:,.1f} h")
    if unit == "x":
        return f"{value:,.1f}×"
    if unit == "flag":
        return "yes" if value >= 0.5 else "no"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def effect(spec: ModelSpec, contribution: float) -> str:
    """"raises churn risk (odds ×2.3)" for a positive contribution, the model's opposite for a negative."""
    words = spec.high_means if contribution >= 0 else spec.low_means
    ratio = math.exp(contribution)
    # Plain numbers at any size: ".2g" would print ×1.5e+02 past ×100.
    if ratio >= 10:
        return f"{words} (odds ×{ratio:,.0f})"
    return f"{words} (odds ×{ratio:.2g})" if ratio >= 0.001 else f"{words} (odds ×{ratio:.5f})"


def describe(reason: Reason, typical: float | None) -> str:
    """The part before the colon: the feature's value in words (and what is typical)."""
    name, value = reason.feature, reason.value
    if name == KYC_STATE:
        state = KYC_STATES[int(value)] if value is not None and 0 <= int(value) < len(KYC_STATES) else "unknown"
        return f"KYC status: {state}"
    if name == "kyc_approved":
        return "KYC approved" if value and value >= 0.5 else "KYC not approved"
    if name in _RECENCY:
        what, never = _RECENCY[name]
        if value is None:
            return never
        typ = "" if typical is None else f" (typical: {number(typical, 'days')})"
        when = "less than a day ago" if value < 1 else f"{number(value, 'days')} ago"
        return f"{what} {when}{typ}"
    if name in _TRENDS:
        if value is None:
            return f"{_TRENDS[name]}: no trend"
        change = math.exp(value) - 1  # of (count + 1) against the 30 days before
        if abs(change) < 0.05:
            return f"{_TRENDS[name]} steady on the 30 days before"
        way = "up" if change > 0 else "down"
        return f"{_TRENDS[name]} in the last 30 days {way} {abs(change):.0%} on the 30 days before"
    feature = FEATURES_BY_NAME.get(name)
    label, unit = (feature.label, feature.unit) if feature else (name.replace("_", " ").capitalize(), "")
    typ = "" if typical is None else f" (typical: {number(typical, unit)})"
    return f"{label}: {number(value, unit)}{typ}"


def reason_text(spec: ModelSpec, reason: Reason, medians: dict[str, float | None]) -> str:
    """The plain-language sentence for ``reason`` of a ``spec`` score (see the module docstring)."""
    return f"{describe(reason, medians.get(reason.feature))}: {effect(spec, reason.contribution)}"
