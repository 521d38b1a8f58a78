"""Intervals for proportions (analytics.stats) against scipy and published values."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analytics.stats import Estimate, proportion_difference, relative_risk, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (2, 3), (5, 10), (10, 10), (37, 412), (999, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson_interval(k, n)
    assert got.value == k / n
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_interval_by_hand_and_at_the_edges():
    # 2 of 3: centre (2/3 + z²/6) / (1 + z²/3), half z·sqrt(2/27 + z²/36) / (1 + z²/3).
    z = 1.959963984540054
    denom = 1 + z * z / 3
    centre, half = (2 / 3 + z * z / 6) / denom, z * math.sqrt(2 / 27 + z * z / 36) / denom
    assert wilson_interval(2, 3) == Estimate(2 / 3, centre - half, centre + half)
    assert (wilson_interval(2, 3).low, wilson_interval(2, 3).high) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert wilson_interval(0, 10).low == 0 and wilson_interval(10, 10).high == pytest.approx(1, abs=1e-15)
    assert all(math.isnan(x) for x in (wilson_interval(0, 0).value, wilson_interval(0, 0).low,
                                       wilson_interval(0, 0).high))
    wide = wilson_interval(2, 3, z=2.5758293035489)  # 99%
    assert wide.low < wilson_interval(2, 3).low and wide.high > wilson_interval(2, 3).high


@pytest.mark.parametrize(("a", "n1", "c", "n2"), [(3, 4, 1, 5), (30, 100, 20, 100), (7, 412, 21, 398), (4, 4, 2, 9)])
def test_relative_risk_matches_scipy_katz_interval(a, n1, c, n2):
    want = stats.contingency.relative_risk(a, n1, c, n2)
    ci = want.confidence_interval(confidence_level=0.95)
    got = relative_risk(a, n1, c, n2)
    assert got.value == pytest.approx(want.relative_risk, rel=1e-12)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_relative_risk_by_hand_and_where_undefined():
    se = math.sqrt(1 / 3 - 1 / 4 + 1 / 1 - 1 / 5)
    got = relative_risk(3, 4, 1, 5)
    assert got.value == pytest.approx(3.75)
    assert (got.low, got.high) == pytest.approx((3.75 * math.exp(-1.959964 * se), 3.75 * math.exp(1.959964 * se)),
                                                rel=1e-6)
    for undefined in (relative_risk(3, 4, 0, 5), relative_risk(0, 0, 1, 5), relative_risk(1, 4, 0, 0)):
        assert all(math.isnan(x) for x in (undefined.value, undefined.low, undefined.high))
    zero = relative_risk(0, 4, 1, 5)
    assert zero.value == 0 and math.isnan(zero.low) and math.isnan(zero.high)


# Newcombe (1998), "Interval estimation for the difference between independent proportions", Statistics
# in Medicine 17:873-890, Table II, method 10 (the hybrid score interval), to four decimals.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
]


@pytest.mark.parametrize(("counts", "interval"), NEWCOMBE_TABLE_II)
def test_proportion_difference_matches_newcombes_published_intervals(counts, interval):
    a, n1, c, n2 = counts
    got = proportion_difference(a, n1, c, n2)
    assert got.value == pytest.approx(a / n1 - c / n2)
    assert (got.low, got.high) == pytest.approx(interval, abs=5e-5)


def test_proportion_difference_is_built_from_the_two_wilson_intervals():
    one, two = wilson_interval(30, 200), wilson_interval(18, 190)
    got = proportion_difference(30, 200, 18, 190)
    d = 30 / 200 - 18 / 190
    assert (got.value, got.low, got.high) == pytest.approx((
        d, d - math.hypot(one.value - one.low, two.high - two.value),
        d + math.hypot(one.high - one.value, two.value - two.low)), abs=1e-15)
    swapped = proportion_difference(18, 190, 30, 200)  # the same interval, mirrored
    assert (swapped.value, swapped.low, swapped.high) == pytest.approx((-got.value, -got.high, -got.low))
    assert all(math.isnan(x) for x in (proportion_difference(0, 0, 1, 5).value, proportion_difference(1, 5, 0, 0).low))


def test_counts_that_cannot_be_a_proportion_are_refused():
    for bad in ((5, 4), (-1, 4), (0, -1)):
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(*bad)
    with pytest.raises(ValueError):
        relative_risk(3, 2, 1, 5)
    with pytest.raises(ValueError):
        proportion_difference(1, 5, 6, 5)
