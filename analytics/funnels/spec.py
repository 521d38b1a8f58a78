"""What a funnel counts (FunnelSpec and its parts), the limits on it, and the check that refuses a
funnel that cannot be computed, in plain words (FunnelRejected)."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Literal

from connectors.errors import TraderLensError

Order = Literal["ordered", "strict", "unordered"]
Attribution = Literal["first_touch", "last_touch"]
BreakdownKind = Literal["trader", "event", "segment"]

ORDERS: tuple[str, ...] = ("ordered", "strict", "unordered")
DEFAULT_WINDOW_S = 14 * 86_400
# Five years. A longer window would count nothing more on any broker's history we expect, and the
# bound keeps the window in microseconds far inside the kernels' int64.
MAX_WINDOW_DAYS = 1_830
MAX_WINDOW_S = MAX_WINDOW_DAYS * 86_400
MAX_STEPS = 20
DEFAULT_BREAKDOWN_LIMIT = 25
OTHER = "Other"
NONE_VALUE = "(none)"
# ``FunnelSpec(breakdown=SEGMENT_BREAKDOWN, breakdown_kind="segment")``: one block per saved segment.
SEGMENT_BREAKDOWN = "segment"
WINDOW_UNITS: dict[str, int] = {
    "second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 7 * 86_400,
    "month": 31 * 86_400,  # a funnel "month" is 31 days, not a calendar month
}

# Trader attributes a funnel can be broken down by (platform comes from the trader's accounts).
TRADER_BREAKDOWNS: tuple[str, ...] = (
    "country", "acquisition_channel", "affiliate_id", "platform", "vip_tier", "kyc_status", "language",
    "campaign_source", "timezone",
)
_PROPERTY_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

US = 1_000_000  # times travel as epoch microseconds: exact, since ties at one instant decide outcomes


class FunnelRejected(TraderLensError, ValueError):
    """A funnel definition that cannot be computed; the message says why in plain words.

    A TraderLensError (one clear message for the user) and, as before, a ValueError."""


@dataclass(frozen=True)
class Exclusion:
    """Traders who do ``event`` between step ``from_step`` and step ``to_step`` (0-based) are excluded."""

    event: str
    from_step: int
    to_step: int


@dataclass(frozen=True)
class StepFilter:
    """A step matches only events whose JSON property ``key`` equals ``value`` (portal events)."""

    key: str
    value: str


@dataclass(frozen=True)
class FunnelSpec:
    """What to count. ``window_s`` <= 0 means the 14-day default; at most MAX_WINDOW_S.

    ``breakdown`` is a trader attribute (``breakdown_kind="trader"``, one of TRADER_BREAKDOWNS) or a
    JSON key of portal-event properties (``"event"``); the top ``breakdown_limit`` values are kept
    and the rest is grouped as "Other". With ``breakdown_kind="segment"`` (``breakdown`` is
    SEGMENT_BREAKDOWN) each saved segment that is not archived is a block of its current members, the
    ``breakdown_limit`` with the most traders at step 1, and then the traders in none of them; a trader in
    two segments counts in both, so the blocks can add up to more than the funnel.
    ``step_filters`` optionally narrows steps by an event property
    (aligned with ``steps``; missing entries mean no filter).
    """

    steps: tuple[str, ...]
    window_s: int = DEFAULT_WINDOW_S
    order: Order = "ordered"
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: str | None = None
    breakdown_kind: BreakdownKind = "trader"
    attribution: Attribution = "first_touch"
    breakdown_limit: int = DEFAULT_BREAKDOWN_LIMIT
    step_filters: tuple[StepFilter | None, ...] = ()

    def __post_init__(self) -> None:
        # Lists from callers become tuples so a spec stays hashable (it is a cache key in the UI).
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "exclusions", tuple(self.exclusions))
        object.__setattr__(self, "step_filters", tuple(self.step_filters))

    @property
    def effective_window_s(self) -> int:
        return int(self.window_s) if self.window_s and self.window_s > 0 else DEFAULT_WINDOW_S

    def step_filter(self, index: int) -> StepFilter | None:
        return self.step_filters[index] if index < len(self.step_filters) else None


def window_seconds(value: float, unit: str) -> int:
    """A conversion window of ``value`` ``unit``s in seconds (0 or less falls back to 14 days)."""
    if unit not in WINDOW_UNITS:
        raise FunnelRejected(f"unknown window unit {unit!r}; use one of {', '.join(WINDOW_UNITS)}")
    seconds = round(value * WINDOW_UNITS[unit])
    return seconds if seconds > 0 else DEFAULT_WINDOW_S



def validate_spec(spec: FunnelSpec) -> None:
    """Raise FunnelRejected, in plain words, for a funnel that cannot be computed."""
    n = len(spec.steps)
    if n < 2:
        raise FunnelRejected("A funnel needs at least two steps.")
    if n > MAX_STEPS:
        raise FunnelRejected(f"A funnel can have at most {MAX_STEPS} steps (this one has {n}).")
    if any(not isinstance(s, str) or not s.strip() for s in spec.steps):
        raise FunnelRejected("Every funnel step needs an event name.")
    if spec.order not in ORDERS:
        raise FunnelRejected(f"Unknown step order {spec.order!r}; use ordered, strict or unordered.")
    # NaN fails the comparison too; a bool is not a window.
    if (not isinstance(spec.window_s, numbers.Real) or isinstance(spec.window_s, bool)
            or not spec.window_s <= MAX_WINDOW_S):
        raise FunnelRejected(f"The conversion window can be at most {MAX_WINDOW_DAYS:,} days (five years), "
                             f"not {spec.window_s!r} seconds.")
    for ex in spec.exclusions:
        if not ex.event:
            raise FunnelRejected("An exclusion needs an event name.")
        if ex.from_step < 0 or ex.from_step >= ex.to_step:
            raise FunnelRejected(f"Exclusion of {ex.event!r}: the range must run from an earlier step to a later "
                                 f"one (got steps {ex.from_step + 1} to {ex.to_step + 1}).")
        if ex.to_step > n - 1:
            raise FunnelRejected(f"Exclusion of {ex.event!r}: step {ex.to_step + 1} is beyond the last step "
                                 f"({n}).")
        if spec.order == "unordered" and (ex.from_step != 0 or ex.to_step != n - 1):
            raise FunnelRejected("In an unordered funnel an exclusion must span the whole funnel "
                                 f"(steps 1 to {n}).")
    for f in spec.step_filters:
        if f is not None and not _PROPERTY_KEY.match(f.key):
            raise FunnelRejected(f"{f.key!r} is not a property name (letters, digits, _ and $).")
    if spec.breakdown is not None:
        if spec.breakdown_kind == "trader":
            if spec.breakdown not in TRADER_BREAKDOWNS:
                raise FunnelRejected(f"Cannot break down by {spec.breakdown!r}; trader attributes are "
                                     f"{', '.join(TRADER_BREAKDOWNS)}.")
        elif spec.breakdown_kind == "event":
            if not _PROPERTY_KEY.match(spec.breakdown):
                raise FunnelRejected(f"{spec.breakdown!r} is not an event property name.")
        elif spec.breakdown_kind == "segment":
            if spec.breakdown != SEGMENT_BREAKDOWN:
                raise FunnelRejected(f"A breakdown by segment is named {SEGMENT_BREAKDOWN!r}, not {spec.breakdown!r}.")
        else:
            raise FunnelRejected(f"Unknown breakdown kind {spec.breakdown_kind!r}; use trader, event or segment.")
        if spec.attribution not in ("first_touch", "last_touch"):
            raise FunnelRejected(f"Unknown attribution {spec.attribution!r}; use first_touch or last_touch.")
        if spec.breakdown_limit < 1:
            raise FunnelRejected("The breakdown must keep at least one value.")

