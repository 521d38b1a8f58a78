"""Intervals for proportions: one rate, the ratio of two rates, the difference of two rates.

Each function takes counts (successes and group sizes), not rates, and returns an :class:`Estimate`:
the point estimate and a two-sided interval at the normal quantile ``z`` (1.96 for 95%). Where an
estimate or a bound is undefined (an empty group, a ratio over zero) it is NaN, never a made-up
number, so a page shows "—" and a report ``null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The 97.5% quantile of the standard normal distribution: a two-sided 95% interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval; ``low <= value <= high`` whenever all three are defined."""

    value: float
    low: float
    high: float


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, not {successes} of {n}")


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Estimate:
    """The rate ``successes / n`` with its Wilson score interval; all NaN for ``n = 0``.

    With p = successes / n: centre = (p + z²/2n) / (1 + z²/n), half-width =
    z · sqrt(p(1 − p)/n + z²/4n²) / (1 + z²/n). Unlike the Wald interval p ± z·sqrt(p(1 − p)/n) it
    stays inside [0, 1] and does not collapse to a point at 0 or n successes.
    """
    _check_counts(successes, n)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def relative_risk(a: int, n1: int, c: int, n2: int, z: float = Z_95) -> Estimate:
    """The ratio (a/n1) / (c/n2) of two rates with the Katz log interval.

    exp(ln RR ± z · sqrt(1/a − 1/n1 + 1/c − 1/n2)). The ratio is NaN when a group is empty or the
    second has no success (c = 0); with a = 0 the ratio is 0 and the interval NaN (ln 0 is undefined).
    """
    _check_counts(a, n1)
    _check_counts(c, n2)
    if n1 == 0 or n2 == 0 or c == 0:
        return Estimate(math.nan, math.nan, math.nan)
    rr = (a / n1) / (c / n2)
    if a == 0:
        return Estimate(rr, math.nan, math.nan)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    return Estimate(rr, math.exp(math.log(rr) - z * se), math.exp(math.log(rr) + z * se))


def proportion_difference(a: int, n1: int, c: int, n2: int, z: float = Z_95) -> Estimate:
    """The difference a/n1 − c/n2 of two independent rates with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: with d = p1 − p2 and the Wilson intervals (l1, u1) and (l2, u2) of
    the two rates, low = d − sqrt((p1 − l1)² + (u2 − p2)²) and high = d + sqrt((u1 − p1)² + (p2 − l2)²).
    It keeps within [−1, 1] and behaves at rates of 0 or 1, where the Wald interval does not. All
    NaN when a group is empty. (Campaign lift: treatment rate minus control rate.)
    """
    one, two = wilson_interval(a, n1, z), wilson_interval(c, n2, z)
    if n1 == 0 or n2 == 0:
        return Estimate(math.nan, math.nan, math.nan)
    d = one.value - two.value
    low = d - math.sqrt((one.value - one.low) ** 2 + (two.high - two.value) ** 2)
    high = d + math.sqrt((one.high - one.value) ** 2 + (two.value - two.low) ** 2)
    return Estimate(d, low, high)
