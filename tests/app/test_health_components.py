"""The small formatting rules of the data-health panels."""

from __future__ import annotations

import math

import pytest

from components.health import format_age, format_count, freshness_state


@pytest.mark.parametrize(("hours", "state"), [
    (None, "empty"), (math.nan, "empty"), (-1.0, "future"), (-0.05, "fresh"), (0.5, "fresh"),
    (24.0, "fresh"), (24.1, "stale"), (24 * 7, "stale"), (24 * 7 + 1, "old"),
])
def test_freshness_state_bands(hours, state):
    assert freshness_state(hours) == state


@pytest.mark.parametrize(("hours", "text"), [
    (None, ""), (0.2, "12 min ago"), (5.4, "5 h ago"), (47.0, "47 h ago"), (72.0, "3 d ago"),
    (-2.0, "in 2 h"),
])
def test_format_age(hours, text):
    assert format_age(hours) == text


@pytest.mark.parametrize(("n", "text"), [
    (0, "0"), (20_000, "20,000"), (788_180, "788,180"), (1_276_875, "1.28 M"),
    (2_500_000_000, "2.5 B"),
])
def test_format_count_stays_short(n, text):
    assert format_count(n) == text
