"""The lifecycle's derived figures (active traders, quick ratio), from hand-made per-period counts."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from analytics.lifecycle import compute_active, compute_quick_ratio, compute_quick_ratios

COUNTS = pd.DataFrame({
    "period_start": [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)],
    "new": [3, 1, 0], "returning": [0, 2, 1], "resurrecting": [0, 1, 0], "dormant": [0, -2, -1],
})


def test_active_traders_are_the_new_returning_and_resurrecting_ones():
    assert compute_active(COUNTS).tolist() == [3, 4, 1]


def test_each_periods_quick_ratio_is_gains_over_losses_and_nan_without_losses():
    ratios = compute_quick_ratios(COUNTS)
    assert math.isnan(ratios.iloc[0])  # nobody went dormant: no ratio, not infinity
    assert ratios.iloc[1:].tolist() == [1.0, 0.0]


def test_the_ranges_quick_ratio_pools_the_periods_rather_than_averaging_their_ratios():
    assert compute_quick_ratio(COUNTS) == 5 / 3  # (4 new + 1 resurrecting) / 3 dormant
    assert math.isnan(compute_quick_ratio(COUNTS.iloc[:1]))
    assert math.isnan(compute_quick_ratio(COUNTS.iloc[:0]))
