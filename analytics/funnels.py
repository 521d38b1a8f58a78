"""Funnels over the unified event stream ``trader_events`` with PostHog's semantics.

The rules are the ones written down in ``reference/funnel_retention_semantics.md`` §1: ordered, strict
and unordered funnels; the conversion window runs from each attempt's step-1 event (inclusive); a
repeated step 1 restarts the attempt; one event advances an attempt by at most one step; ties at one
timestamp resolve by step order; exclusions; breakdowns with first/last-touch attribution; mean and
median time to convert; conversion trends by entry period; who dropped off where.

How a call runs:

1. One SQL query (SQLAlchemy Core, pushed down to DuckDB or PostgreSQL) selects only the events that
   can matter - every step or exclusion event inside the date range, for traders that pass the global
   filter - as compact columns: trader id, epoch microseconds and a bitmask of the steps and exclusions
   the event matches. The events come straight from the tables behind the ``trader_events`` view (the
   same definitions, checked by a test), because PostgreSQL cannot push a filter into that view and
   would read all of it on every call.
2. Where provably exact, rows are cut in SQL before they travel: for a step on trades or logins, only
   the first such event after each event of the previous step within the window (step 1: the first
   one plus the last one before each step-2 event); for strict funnels, only the unrelated events that
   can break a chain (see _event_queries).
3. A per-trader state machine walks the sorted arrays (numba-compiled when numba is installed) and
   returns, per trader, the furthest step of the kept attempt and that attempt's step times.
4. Counts, conversion times, breakdowns, histograms and trends are numpy aggregates of those arrays.
"""

from __future__ import annotations

import io
import numbers
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics.filters import STANDARD_TIER, TraderFilter
from analytics.periods import DateRange, Period, WeekStart, check_report_size, count_periods, step_period, truncate_date
from analytics.reading import reading
from connectors.errors import TraderLensError
from connectors.schema import (
    CORE_EVENTS,
    accounts,
    daily_activity,
    kyc_events,
    portal_events,
    sessions,
    traders,
    trades,
    transactions,
)

try:  # numba arrives with shap; without it the same kernels run as plain Python (slow but exact)
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn

Order = Literal["ordered", "strict", "unordered"]
Attribution = Literal["first_touch", "last_touch"]
BreakdownKind = Literal["trader", "event"]

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
WINDOW_UNITS: dict[str, int] = {
    "second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 7 * 86_400,
    "month": 31 * 86_400,  # a funnel "month" is 31 days, not a calendar month (spec §1.1)
}

# Trader attributes a funnel can be broken down by (platform comes from the trader's accounts).
TRADER_BREAKDOWNS: tuple[str, ...] = (
    "country", "acquisition_channel", "affiliate_id", "platform", "vip_tier", "kyc_status", "language",
    "campaign_source", "timezone",
)
_PROPERTY_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

STEP_COLUMNS = ["step", "event", "count", "conversion_rate", "conversion_from_previous", "drop_off",
                "average_time_to_convert_s", "median_time_to_convert_s"]
HISTOGRAM_COLUMNS = ["bin_start_s", "bin_end_s", "traders"]
TREND_COLUMNS = ["period_start", "reached_from_step_count", "reached_to_step_count", "conversion_rate"]
DROPOFF_COLUMNS = ["trader_id", "external_id", "country", "acquisition_channel", "reached_at"]

_US = 1_000_000
_PG_EPOCH_US = 946_684_800 * _US  # 2000-01-01, where PostgreSQL's binary timestamps start
DEFAULT_FILTER = TraderFilter()  # everyone but test accounts, as the global filter starts
_EXCLUSION_SHIFT = 32  # mask bits 0..31 are steps, bits 32.. are exclusions "before step i"
_TRIM_UNRELATED = True  # strict funnels fetch only the unrelated events that can break a chain (exact)


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
    """What to count. ``window_s`` <= 0 means the 14-day default (spec §1.1); at most MAX_WINDOW_S.

    ``breakdown`` is a trader attribute (``breakdown_kind="trader"``, one of TRADER_BREAKDOWNS) or a
    JSON key of portal-event properties (``"event"``); the top ``breakdown_limit`` values are kept
    and the rest is grouped as "Other". ``step_filters`` optionally narrows steps by an event property
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


@dataclass(frozen=True, eq=False)
class FunnelResult:
    """The funnel of ``spec``.

    ``steps`` has one row per step (one block of rows per breakdown value when a breakdown is asked,
    largest values first, "Other" last):

    - ``step`` (int, 1-based), ``event`` (str; "Completed N steps" for unordered funnels);
    - ``count`` (int): traders whose kept attempt reached the step;
    - ``conversion_rate`` (float 0..1): count / count of step 1 (step 1 is 1.0; NaN for every step when
      nobody entered: no rate exists);
    - ``conversion_from_previous`` (float 0..1): count / count of the previous step (0 when that is 0;
      step 1 is 1.0, NaN when nobody entered);
    - ``drop_off`` (int): max(previous count - count, 0);
    - ``average_time_to_convert_s`` / ``median_time_to_convert_s`` (float, NaN for step 1 and for steps
      nobody reached): seconds from the previous step, over conversions that took more than 0 s;
    - ``breakdown_value`` (str) when ``spec.breakdown`` is set.
    """

    spec: FunnelSpec
    steps: pd.DataFrame
    breakdown_values: tuple[str, ...] = ()
    _people: _People | None = field(default=None, repr=False)


def window_seconds(value: float, unit: str) -> int:
    """A conversion window of ``value`` ``unit``s in seconds (0 or less falls back to 14 days)."""
    if unit not in WINDOW_UNITS:
        raise FunnelRejected(f"unknown window unit {unit!r}; use one of {', '.join(WINDOW_UNITS)}")
    seconds = round(value * WINDOW_UNITS[unit])
    return seconds if seconds > 0 else DEFAULT_WINDOW_S


# --------------------------------------------------------------------------------------------------
# Per-trader state machines. Inputs are sorted by trader, time (and step order at equal times);
# ``starts`` holds each trader's first row and, last, the number of rows.
# --------------------------------------------------------------------------------------------------


@njit(cache=True)
def _ordered_advance(row, t, sm, xm, multiple, n, window, strict,
                     e_set, e_entry, e_excl, e_times, e_rows, best):
    """One event (or one step of an event at a mixed-step tie) applied to the attempts of one trader.

    ``e_*[k]`` is the latest attempt that reached step k (k = 0 is the current instant); ``best`` holds
    the kept attempt: [furthest step, entry time, excluded, step times...].
    """
    # Exclusions are looked at before steps, from the furthest "before step i" down.
    for i in range(n - 1, 0, -1):
        if (xm >> i) & 1 and e_set[i] and t - e_entry[i] <= window:
            reached_next = e_set[i + 1] and e_entry[i + 1] == e_entry[i]
            if not reached_next and not e_excl[i]:
                e_excl[i] = True
                if best[0] == i and t - best[1] <= window:
                    best[2] = 1
    # Steps from the highest candidate down, so one event moves an attempt by one step at most.
    for s in range(n, 0, -1):
        if (sm >> (s - 1)) & 1:
            p = s - 1
            if not e_set[p] or t - e_entry[p] > window:
                continue
            if e_set[s] and e_entry[s] == e_entry[p]:
                continue  # this attempt already reached step s
            if multiple:
                used = False
                for q in range(p):
                    if e_rows[p, q] == row:
                        used = True
                if used:
                    continue  # at a tie, one event cannot serve two steps of one attempt
            if not e_excl[p]:
                e_set[s] = True
                e_entry[s] = e_entry[p]
                e_excl[s] = False
                for q in range(p):
                    e_times[s, q] = e_times[p, q]
                    e_rows[s, q] = e_rows[p, q]
                e_times[s, p] = t
                e_rows[s, p] = row
            if s > best[0] or (s == best[0] and best[2] == 1):
                best[0] = s
                best[1] = e_entry[p]
                best[2] = 1 if e_excl[p] else 0
                for q in range(p):
                    best[3 + q] = e_times[p, q]
                best[3 + p] = t
    if strict and not multiple:
        # Strict: any step this event does not match loses its progress.
        for k in range(1, n + 1):
            if not (sm >> (k - 1)) & 1:
                e_set[k] = False
                e_excl[k] = False
                e_entry[k] = 0


@njit(cache=True)
def _ordered_pass(starts, ts, smask, xmask, n, window, strict):
    """Ordered and strict funnels. Returns (reached, times): reached = furthest step of the kept
    attempt (0: never entered, -1: removed by an exclusion), times[:, k] = its step-k time."""
    people = len(starts) - 1
    reached = np.zeros(people, np.int8)
    times = np.zeros((people, n), np.int64)
    e_set = np.zeros(n + 1, np.bool_)
    e_entry = np.zeros(n + 1, np.int64)
    e_excl = np.zeros(n + 1, np.bool_)
    e_times = np.zeros((n + 1, n), np.int64)
    e_rows = np.zeros((n + 1, n), np.int64)
    best = np.zeros(n + 3, np.int64)
    for person in range(people):
        a = starts[person]
        b = starts[person + 1]
        e_set[:] = False
        e_excl[:] = False
        e_entry[:] = 0
        best[:] = 0
        i = a
        while i < b:
            j = i + 1
            while j < b and ts[j] == ts[i]:
                j += 1
            e_set[0] = True
            e_entry[0] = ts[i]
            e_excl[0] = False
            if j - i == 1:
                _ordered_advance(i, ts[i], smask[i], xmask[i], False, n, window, strict,
                                 e_set, e_entry, e_excl, e_times, e_rows, best)
            else:
                same = True
                for k in range(i + 1, j):
                    if smask[k] != smask[i] or xmask[k] != xmask[i]:
                        same = False
                if same:
                    for k in range(i, j):
                        _ordered_advance(k, ts[k], smask[k], xmask[k], False, n, window, strict,
                                         e_set, e_entry, e_excl, e_times, e_rows, best)
                else:
                    # Different steps at one instant: each matched step in step order; exclusions and
                    # the strict reset are skipped here (spec §1.2.7).
                    for s in range(n):
                        for k in range(i, j):
                            if (smask[k] >> s) & 1:
                                _ordered_advance(k, ts[k], np.int64(1) << s, np.int64(0), True, n, window,
                                                 strict, e_set, e_entry, e_excl, e_times, e_rows, best)
            if e_set[n]:
                break  # the first full conversion ends the search
            i = j
        if best[2] == 1:
            reached[person] = -1
        else:
            reached[person] = best[0]
            for q in range(best[0]):
                times[person, q] = best[3 + q]
    return reached, times


@njit(cache=True)
def _unordered_pass(starts, ts, smask, xmask, n, window, max_rows):
    """Unordered funnels: step k = k distinct steps within one sliding window (spec §1.4).
    Returns (reached, times) like _ordered_pass; times are the sorted first occurrences."""
    people = len(starts) - 1
    reached = np.zeros(people, np.int8)
    times = np.zeros((people, n), np.int64)
    queue = np.zeros((n, max_rows + 1), np.int64)  # per step, the times collected (front = oldest)
    head = np.zeros(n, np.int64)
    tail = np.zeros(n, np.int64)
    best_times = np.zeros(n, np.int64)
    fronts = np.zeros(n, np.int64)
    for person in range(people):
        a = starts[person]
        b = starts[person + 1]
        head[:] = 0
        tail[:] = 0
        completed = 0
        best = 0
        for r in range(a, b):
            t = ts[r]
            # Drop collected events that fell out of the newest event's window (after recording the
            # progress they were part of).
            while True:
                oldest = -1
                for s in range(n):
                    if tail[s] > head[s] and (oldest < 0 or queue[s, head[s]] < queue[oldest, head[oldest]]):
                        oldest = s
                if oldest < 0:
                    break
                if completed < n and queue[oldest, head[oldest]] + window >= t:
                    break
                if completed > best:
                    best = completed
                    m = 0
                    for s in range(n):
                        if tail[s] > head[s]:
                            fronts[m] = queue[s, head[s]]
                            m += 1
                    best_times[:m] = np.sort(fronts[:m])
                head[oldest] += 1
                if head[oldest] == tail[oldest]:
                    completed -= 1
            if smask[r] == 0:
                if xmask[r] != 0:
                    # An exclusion wipes the progress (the trader stays in the funnel).
                    head[:] = 0
                    tail[:] = 0
                    completed = 0
            else:
                # The matched step whose latest collected event is oldest (an empty step first).
                pick = -1
                pick_t = np.int64(0)
                for s in range(n):
                    if (smask[r] >> s) & 1:
                        last = queue[s, tail[s] - 1] if tail[s] > head[s] else np.int64(0)
                        if pick < 0 or last < pick_t:
                            pick = s
                            pick_t = last
                if tail[pick] == head[pick]:
                    completed += 1
                    head[pick] = 0
                    tail[pick] = 0
                queue[pick, tail[pick]] = t
                tail[pick] += 1
            if best == n:
                break
            if r == b - 1 and completed > best:
                best = completed
                m = 0
                for s in range(n):
                    if tail[s] > head[s]:
                        fronts[m] = queue[s, head[s]]
                        m += 1
                best_times[:m] = np.sort(fronts[:m])
        reached[person] = best
        for q in range(best):
            times[person, q] = best_times[q]
    return reached, times


@njit(cache=True)
def _trends_pass(starts, ts, smask, xmask, period, n, window, strict, max_rows):
    """Funnel trends: per trader, one attempt per entry period (spec §1.8).

    Returns (person, period, converted) rows: a trader who entered in a period appears once for it,
    converted = 1 when an attempt from that period reached the last step.
    """
    total = len(ts)
    out_person = np.empty(total, np.int64)
    out_period = np.empty(total, np.int64)
    out_conv = np.empty(total, np.int8)
    count = 0
    cap = max_rows + 1
    slot_period = np.zeros(cap, np.int64)
    slot_alive = np.zeros(cap, np.bool_)
    e_set = np.zeros((cap, n + 1), np.bool_)
    e_ts = np.zeros((cap, n + 1), np.int64)
    e_excl = np.zeros((cap, n + 1), np.bool_)
    m_step = np.zeros(cap, np.int64)
    m_ts = np.zeros(cap, np.int64)
    m_excl = np.zeros(cap, np.int8)  # 0 not excluded, 1 partial, 2 full
    res_period = np.zeros(cap, np.int64)
    res_conv = np.zeros(cap, np.int8)
    for person in range(len(starts) - 1):
        a = starts[person]
        b = starts[person + 1]
        slots = 0
        results = 0
        for r in range(a, b):
            t = ts[r]
            sm = smask[r]
            xm = xmask[r]
            for i in range(n - 1, 0, -1):
                if (xm >> i) & 1:
                    s = i + 1
                    for k in range(slots):
                        if not slot_alive[k]:
                            continue
                        in_window = e_set[k, i] and t - e_ts[k, i] <= window
                        if in_window and not (e_set[k, s] and e_ts[k, s] == e_ts[k, i]) and not e_excl[k, i]:
                            e_excl[k, i] = True
                            if m_step[k] == i and t - m_ts[k] <= window:
                                m_excl[k] = 1
            for s in range(n, 0, -1):
                if not (sm >> (s - 1)) & 1:
                    continue
                if s == 1:
                    p = period[r]
                    done = False
                    for q in range(results):
                        if res_period[q] == p:
                            done = True
                    if done:
                        continue
                    slot = -1
                    for k in range(slots):
                        if slot_alive[k] and slot_period[k] == p:
                            slot = k
                    if slot < 0 or (m_step[slot] == 1 and m_excl[slot] != 0):
                        if slot < 0:
                            slot = slots
                            slots += 1
                        slot_alive[slot] = True
                        slot_period[slot] = p
                        e_set[slot, :] = False
                        e_excl[slot, :] = False
                        e_ts[slot, :] = 0
                        m_step[slot] = 1
                        m_ts[slot] = t
                        m_excl[slot] = 0
                    e_set[slot, 1] = True
                    e_ts[slot, 1] = t
                    e_excl[slot, 1] = False
                else:
                    prev = s - 1
                    for k in range(slots):
                        if not slot_alive[k]:
                            continue
                        if not e_set[k, prev] or t - e_ts[k, prev] > window:
                            continue
                        if e_set[k, s] and e_ts[k, s] == e_ts[k, prev]:
                            continue
                        prev_excl = e_excl[k, prev]
                        if not prev_excl:
                            e_set[k, s] = True
                            e_ts[k, s] = e_ts[k, prev]
                            e_excl[k, s] = False
                        if e_set[k, n]:
                            res_period[results] = slot_period[k]
                            res_conv[results] = 1
                            results += 1
                            slot_alive[k] = False
                        elif s > m_step[k] or (s == m_step[k] and m_excl[k] == 1):
                            m_step[k] = s
                            m_ts[k] = t
                            m_excl[k] = 2 if prev_excl else 0
            if strict:
                for k in range(slots):
                    if slot_alive[k]:
                        for i in range(1, n + 1):
                            if not (sm >> (i - 1)) & 1:
                                e_set[k, i] = False
                                e_excl[k, i] = False
                                e_ts[k, i] = 0
        fully_excluded = False
        for k in range(slots):
            if slot_alive[k] and m_excl[k] == 2:
                fully_excluded = True
        if not fully_excluded:
            for k in range(slots):
                if not slot_alive[k] or m_step[k] < 1 or m_excl[k] == 1:
                    continue
                done = False
                for q in range(results):
                    if res_period[q] == slot_period[k]:
                        done = True
                if not done:
                    res_period[results] = slot_period[k]
                    res_conv[results] = 0
                    results += 1
        for q in range(results):
            out_person[count] = person
            out_period[count] = res_period[q]
            out_conv[count] = res_conv[q]
            count += 1
    return out_person[:count], out_period[:count], out_conv[:count]


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def warm_kernels() -> None:
    """Load (or, on a new checkout, compile) the state-machine kernels with the argument types the
    funnels use, so the first funnel a server computes does not pay for it (1-2 s; 13 s to compile)."""
    none = np.zeros(0, np.int64)
    starts = np.zeros(1, np.int64)  # no trader
    for strict in (False, True):
        _ordered_pass(starts, none, none, none, 2, _US, strict)
        _trends_pass(starts, none, none, none, none, 2, _US, strict, 0)
    _unordered_pass(starts, none, none, none, 2, _US, 0)


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
        else:
            raise FunnelRejected(f"Unknown breakdown kind {spec.breakdown_kind!r}; use trader or event.")
        if spec.attribution not in ("first_touch", "last_touch"):
            raise FunnelRejected(f"Unknown attribution {spec.attribution!r}; use first_touch or last_touch.")
        if spec.breakdown_limit < 1:
            raise FunnelRejected("The breakdown must keep at least one value.")


# --------------------------------------------------------------------------------------------------
# Event rows in SQL: the tables behind the trader_events view, one branch per event source
# --------------------------------------------------------------------------------------------------

# Events with millions of rows (trades, logins); a step on them may be pre-reduced in SQL.
BULK_EVENTS: dict[str, tuple[sa.Column, sa.Column]] = {
    "trade": (trades.c.trader_id, trades.c.opened_at),
    "login": (sessions.c.trader_id, sessions.c.started_at),
}


def _core_source(name: str) -> sa.Select | None:
    """SELECT trader_id, occurred_at of core event ``name`` exactly as the trader_events view defines
    it (migration 0001), or None for a name only portal events can carry."""
    t, k = transactions.c, kyc_events.c
    if name == "lead_captured":
        return sa.select(traders.c.trader_id, traders.c.lead_at.label("occurred_at")).where(
            traders.c.lead_at.is_not(None))
    if name == "registered":
        return sa.select(traders.c.trader_id, traders.c.registered_at.label("occurred_at")).where(
            traders.c.registered_at.is_not(None))
    if name in ("kyc_submitted", "kyc_approved", "kyc_rejected"):
        status = (k.status.not_in(("approved", "rejected")) if name == "kyc_submitted"
                  else k.status == name.removeprefix("kyc_"))
        return sa.select(k.trader_id, k.occurred_at).where(status)
    if name in ("deposit", "withdrawal", "deposit_declined"):
        kind, status = {"deposit": ("deposit", "approved"), "withdrawal": ("withdrawal", "approved"),
                        "deposit_declined": ("deposit", "declined")}[name]
        return sa.select(t.trader_id, t.created_at.label("occurred_at")).where(t.kind == kind, t.status == status)
    if name == "ftd":
        # The first approved deposit ever (before any date filter), like the view's ROW_NUMBER() = 1.
        first = (sa.select(t.trader_id, sa.func.min(t.created_at).label("occurred_at"))
                 .where(t.kind == "deposit", t.status == "approved").group_by(t.trader_id).subquery("ftd"))
        return sa.select(first.c.trader_id, first.c.occurred_at)
    if name in BULK_EVENTS:
        trader_col, time_col = BULK_EVENTS[name]
        return sa.select(trader_col, time_col.label("occurred_at"))
    return None


def _in_range(select: sa.Select, date_range: DateRange | None) -> sa.Select:
    """``select`` (trader_id, occurred_at, ...) limited to the date range."""
    if date_range is None:
        return select
    return select.where(date_range.contains(select.selected_columns.occurred_at))


def _property_text(dialect: str, key: str) -> ColumnElement:
    """The JSON property ``key`` of a portal event as text (NULL when absent)."""
    if dialect == "duckdb":
        return sa.func.json_extract_string(portal_events.c.properties, f'$."{key}"')  # quoted: keys like $browser
    return sa.func.json_extract_path_text(sa.cast(portal_events.c.properties, sa.JSON), key)


def _epoch_us(dialect: str, column: ColumnElement) -> ColumnElement:
    """Microseconds since 1970 as BIGINT (exact: ties at one timestamp decide funnel outcomes)."""
    if dialect == "duckdb":
        return sa.func.epoch_us(column)
    return sa.cast(sa.extract("epoch", column) * _US, sa.BigInteger)


@dataclass(frozen=True)
class _Plan:
    """What the event query needs to know: the bit each step and exclusion sets in a row's mask."""

    spec: FunnelSpec
    step_bits: dict[int, tuple[str, StepFilter | None]]  # bit -> (event, filter)
    exclusion_bits: dict[int, tuple[str, ...]]  # bit -> events that set it

    @classmethod
    def of(cls, spec: FunnelSpec) -> _Plan:
        step_bits = {k: (name, spec.step_filter(k)) for k, name in enumerate(spec.steps)}
        exclusion_bits: dict[int, tuple[str, ...]] = {}
        for ex in spec.exclusions:
            # PostHog encodes "between step f and t" as one flag per step i in f+1..t: the attempt
            # has reached step i-1 but not step i.
            for i in range(ex.from_step + 1, ex.to_step + 1):
                exclusion_bits[_EXCLUSION_SHIFT + i] = (*exclusion_bits.get(_EXCLUSION_SHIFT + i, ()), ex.event)
        return cls(spec, step_bits, exclusion_bits)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.step_bits.values()} | {
            e for events in self.exclusion_bits.values() for e in events}

    def core_mask(self, name: str) -> int:
        """Mask of a core event (core events carry no properties, so filtered steps never match)."""
        mask = 0
        for bit, (event, flt) in self.step_bits.items():
            if event == name and flt is None:
                mask |= 1 << bit
        for bit, events in self.exclusion_bits.items():
            if name in events:
                mask |= 1 << bit
        return mask

    def portal_mask(self, dialect: str) -> ColumnElement:
        """SQL mask of a portal event row."""
        terms: list[ColumnElement] = []
        ev = portal_events.c.event
        for bit, (event, flt) in self.step_bits.items():
            cond = ev == event
            if flt is not None:
                cond = sa.and_(cond, _property_text(dialect, flt.key) == flt.value)
            terms.append(sa.case((cond, sa.literal(1 << bit, sa.BigInteger)), else_=sa.literal(0, sa.BigInteger)))
        for bit, events in self.exclusion_bits.items():
            terms.append(sa.case((ev.in_(events), sa.literal(1 << bit, sa.BigInteger)),
                                 else_=sa.literal(0, sa.BigInteger)))
        mask = terms[0]
        for term in terms[1:]:
            mask = mask + term  # each bit comes from exactly one term, so + is a bitwise OR
        return mask

    def unordered_reducible(self, *, trends: bool, prop_key: str | None) -> str | None:
        """The bulk event B of an unordered funnel most of whose rows can be left out without
        changing any result, or None. The other funnel events are the anchors.

        Why it is exact (spec §1.4's sliding window): progress is recorded just before the oldest
        collected event X is dropped, and then the queue holds the events from X to at most a
        window after X. With two or more steps collected an anchor is among them, and B's part is
        its earliest row at or after X: either X itself (a row with an anchor within a window
        after it) or the first row after an anchor. Rows of neither kind only ever sit in windows
        without an anchor, where at most one step is collected; progress 1 is recorded with the
        trader's first event, so B's first row is kept too. (Keeping more rows than these is
        harmless, which lets the SQL keep whole spans.) Checked equal to the full fetch on the
        200,000-trader benchmark data (benchmarks/README.md). Only when the other events are light
        (their spans are the anchors). Not for trends (one attempt per entry period) nor for
        breakdowns by event property.
        """
        if self.spec.order != "unordered" or trends or prop_key is not None:
            return None
        names = [name for name, _ in self.step_bits.values()]
        excluded = {e for events in self.exclusion_bits.values() for e in events}
        for name in BULK_EVENTS:
            others = [n for n in names if n != name]
            if (names.count(name) == 1 and others and not (set(others) | excluded) & set(BULK_EVENTS)
                    and self.spec.step_filter(names.index(name)) is None):
                return name
        return None

    def reducible_steps(self, *, trends: bool) -> dict[int, str]:
        """Steps on a bulk event whose rows can be pre-reduced in SQL without changing any result:
        ordered funnels without exclusions, the event used by that step only, its neighbour step
        light (or itself reduced) so that the anchors of the reduction are few."""
        spec = self.spec
        if spec.order != "ordered" or spec.exclusions:
            return {}
        names = [name for name, _ in self.step_bits.values()]
        bulk = [name in BULK_EVENTS for name in names]
        pure = [bulk[k] and names.count(names[k]) == 1 and spec.step_filter(k) is None for k in range(len(names))]
        reduced: dict[int, str] = {}
        # Step 1 is kept whole for trends: every entry period counts there.
        if pure[0] and not bulk[1] and not trends:
            reduced[0] = names[0]
        for k in range(1, len(names)):
            if pure[k] and (not bulk[k - 1] or (k - 1) in reduced):
                reduced[k] = names[k]
        return reduced


def _near_rows(plan: _Plan, name: str, light_cte: sa.CTE, window: ColumnElement, date_range: DateRange | None,
               dialect: str) -> sa.Select:
    """The rows of bulk event ``name`` an unordered funnel needs (see _Plan.unordered_reducible).

    The other funnel events are the anchors. Kept, per trader: the rows from a window before the
    first anchor up to the last anchor; the first row after the last anchor (within a window), which
    with those stands for the first row at or after each anchor; and the trader's first row. The
    first row comes from the ``daily_activity`` rollup (the earliest time of the trader's first day
    with the event in the range, exact since ranges are whole days): a per-trader minimum over
    every raw row would cost as much as fetching them.
    """
    trader_col, time_col = BULK_EVENTS[name]
    in_range = [] if date_range is None else [date_range.contains(time_col)]
    span = (sa.select(light_cte.c.trader_id, (sa.func.min(light_cte.c.occurred_at) - window).label("lo"),
                      sa.func.max(light_cte.c.occurred_at).label("hi"))
            .group_by(light_cte.c.trader_id).cte("funnel_near_span"))
    da = daily_activity.c
    first = (sa.select(da.trader_id, sa.func.min(da.first_at).label("occurred_at"))
             .where(da.event == name, *([] if date_range is None else [date_range.contains(da.day)]))
             .group_by(da.trader_id).cte("funnel_near_first"))
    # Only traders with a row of B in the range have rows to keep.
    before = (sa.select(trader_col.label("trader_id"), time_col.label("occurred_at"))
              .join_from(trader_col.table, span, sa.and_(span.c.trader_id == trader_col, time_col >= span.c.lo,
                                                         time_col <= span.c.hi))
              .where(span.c.trader_id.in_(sa.select(first.c.trader_id)), *in_range))
    # The first row at or after an anchor t lies in [t, hi], which `before` keeps, or is the first row
    # after hi (then also within a window of hi, as t <= hi): one look per trader, from the last
    # anchor, stands for one per anchor.
    lasts = (sa.select(span.c.trader_id, span.c.hi).where(span.c.trader_id.in_(sa.select(first.c.trader_id)))
             .cte("funnel_near_last"))
    after_last = [trader_col == lasts.c.trader_id, time_col > lasts.c.hi, time_col <= lasts.c.hi + window]
    if dialect == "postgresql":
        # One index probe per trader into (trader_id, time).
        next_at = sa.select(sa.func.min(time_col)).where(*after_last, *in_range).scalar_subquery()
        # Materialised, or PostgreSQL inlines it and runs every probe twice (once for IS NOT NULL).
        probed = sa.select(lasts.c.trader_id, next_at.label("occurred_at")).cte("funnel_near_next").prefix_with(
            "MATERIALIZED")
    else:
        # DuckDB decorrelates the probe into a far slower plan; a join on the window and a GROUP BY
        # per trader is what its hash joins do well.
        probed = (sa.select(lasts.c.trader_id, sa.func.min(time_col).label("occurred_at"))
                  .join_from(lasts, trader_col.table, sa.and_(*after_last))
                  .where(*in_range)
                  .group_by(lasts.c.trader_id)
                  .cte("funnel_near_next"))
    singles = sa.union(sa.select(probed.c.trader_id, probed.c.occurred_at).where(probed.c.occurred_at.is_not(None)),
                       sa.select(first.c.trader_id, first.c.occurred_at)).subquery("funnel_near_singles")
    outside = (sa.select(singles.c.trader_id, singles.c.occurred_at)
               .select_from(singles.outerjoin(span, span.c.trader_id == singles.c.trader_id))
               .where(sa.or_(span.c.trader_id.is_(None), singles.c.occurred_at < span.c.lo,
                             singles.c.occurred_at > span.c.hi)))
    kept = sa.union_all(before, outside).subquery("funnel_near")
    mask = sa.literal(plan.core_mask(name), sa.BigInteger)
    return sa.select(kept.c.trader_id, kept.c.occurred_at, mask.label("mask"))


def _markers_by_bucket(source: str, anchors: sa.CTE, window: ColumnElement, window_s: int,
                       date_range: DateRange | None) -> sa.Select:
    """DuckDB, strict funnels: per step instant t of a trader, the rows of bulk event ``source`` that
    can break a chain: one at t itself (a tie) and the first one after t within the window.

    The join is an equality on (trader, bucket of window length): a row within the window of t lies
    in t's bucket or the next, so each instant meets a few rows of its trader instead of all of them
    (DuckDB's range joins would pair every instant with every row of the trader)."""
    trader_col, time_col = BULK_EVENTS[source]
    bucket_us = max(int(window_s), 1) * _US
    offsets = sa.union_all(*(
        sa.select(anchors.c.trader_id, anchors.c.occurred_at,
                  (sa.func.epoch_us(anchors.c.occurred_at).op("//")(bucket_us) + offset).label("bucket"))
        for offset in (0, 1))).subquery(f"funnel_buckets_{source}")
    nearest = (sa.select(offsets.c.trader_id, offsets.c.occurred_at,
                         sa.func.bool_or(time_col == offsets.c.occurred_at).label("tie"),
                         sa.func.min(time_col).filter(time_col > offsets.c.occurred_at).label("next_at"))
               .join_from(offsets, trader_col.table, sa.and_(
                   trader_col == offsets.c.trader_id,
                   sa.func.epoch_us(time_col).op("//")(bucket_us) == offsets.c.bucket,
                   time_col >= offsets.c.occurred_at, time_col <= offsets.c.occurred_at + window))
               .where(*([] if date_range is None else [date_range.contains(time_col)]))
               .group_by(offsets.c.trader_id, offsets.c.occurred_at)
               # Materialised: read twice below, and DuckDB would otherwise run the join twice.
               .cte(f"funnel_nearest_{source}").prefix_with("MATERIALIZED"))
    markers = sa.union_all(
        sa.select(nearest.c.trader_id, nearest.c.occurred_at).where(nearest.c.tie),
        sa.select(nearest.c.trader_id, nearest.c.next_at.label("occurred_at")).where(nearest.c.next_at.is_not(None)),
    ).subquery(f"funnel_markers_{source}")
    return sa.select(markers.c.trader_id, markers.c.occurred_at).distinct()


def _event_queries(plan: _Plan, dialect: str, date_range: DateRange | None, trader_filter: TraderFilter, *,
                   prop_key: str | None, trends: bool) -> list[sa.Select]:
    """The events the funnel looks at as one or more SELECT trader_id, us, mask[, prop] whose rows
    together are the events (unsorted). More than one only for strict funnels on PostgreSQL, whose
    trade and login markers are index probes that :func:`_load_events` runs side by side.

    ``mask`` bits 0..n-1: steps matched; bits 32+i: exclusions "between step i-1 and i". Strict funnels
    also get the trader's unrelated events that can break a chain (mask 0).
    """
    spec = plan.spec
    strict = spec.order == "strict"
    reduced = plan.reducible_steps(trends=trends)
    near_only = plan.unordered_reducible(trends=trends, prop_key=prop_key)
    # A literal interval: DuckDB has no make_interval() for a bound timedelta, and a constant lets both
    # planners use it like any other literal.
    window = sa.literal_column(f"INTERVAL '{int(spec.effective_window_s)} seconds'")
    core_names = [name for name in CORE_EVENTS if strict or name in plan.names]

    def shaped(select: sa.Select, mask: ColumnElement | int, prop: ColumnElement | None) -> sa.Select:
        mask_col = sa.literal(mask, sa.BigInteger) if isinstance(mask, int) else mask
        cols = [select.selected_columns.trader_id, select.selected_columns.occurred_at, mask_col.label("mask")]
        if prop_key is not None:
            cols.append((prop if prop is not None else sa.null()).label("prop"))
        return select.with_only_columns(*cols)

    light: list[sa.Select] = []
    # Strict funnels: (rows matching nothing, their core event name or "portal"/"portal+props").
    unrelated: list[tuple[sa.Select, str]] = []
    for name in core_names:
        if name in reduced.values() or name == near_only:
            continue
        mask = plan.core_mask(name)
        source = _core_source(name)
        assert source is not None
        if mask:
            light.append(shaped(_in_range(source, date_range), mask, None))
        elif strict:
            unrelated.append((shaped(_in_range(source, date_range), 0, None), name))
    portal = sa.select(portal_events.c.trader_id, portal_events.c.occurred_at)
    if not strict:
        portal = portal.where(portal_events.c.event.in_(sorted(plan.names)))
    portal_mask = plan.portal_mask(dialect)
    portal = shaped(_in_range(portal, date_range), portal_mask,
                    _property_text(dialect, prop_key) if prop_key else None)
    if strict:
        unrelated.append((portal.where(portal_mask == 0), "portal+props" if prop_key else "portal"))
        portal = portal.where(portal_mask != 0)
    elif any(flt is not None for _, flt in plan.step_bits.values()):
        portal = portal.where(portal_mask != 0)  # a filtered step can leave portal rows matching nothing
    light.append(portal)
    light_cte = sa.union_all(*light).cte("funnel_light")
    extra: list[sa.Select] = []
    separate: list[sa.Select] = []  # rows that are better fetched by a statement of their own
    if unrelated:
        # Strict funnels. An unrelated event only matters (a) at the instant of a step or exclusion event,
        # where it makes the tie "mixed", or (b) as the first one after such an event, where it breaks the
        # chain - and only within the window of it, since every attempt started at or before it. So
        # trades and logins are fetched as those markers only; the lighter sources inside each trader's
        # span of step events (PostgreSQL: whole); portal events whole when a breakdown reads
        # properties from every event.
        span = (sa.select(light_cte.c.trader_id, sa.func.min(light_cte.c.occurred_at).label("lo"),
                          sa.func.max(light_cte.c.occurred_at).label("hi"))
                .group_by(light_cte.c.trader_id).cte("funnel_span"))
        anchors = sa.select(light_cte.c.trader_id, light_cte.c.occurred_at)
        if dialect == "postgresql":
            # Probed in index order, so that consecutive probes read neighbouring index pages: twice as
            # fast as in the hash order a DISTINCT leaves (216,000 trade probes: 0.7 s against 0.3 s).
            # Not de-duplicated: a repeated instant costs one more probe, the DISTINCT of the markers
            # below removes its rows, and de-duplicating every instant cost more (0.14 s).
            anchors = anchors.order_by(light_cte.c.trader_id, light_cte.c.occurred_at)
        else:
            anchors = anchors.distinct()
        anchors = anchors.cte("funnel_instants")
        for select, source in unrelated:
            if source == "portal+props" or not _TRIM_UNRELATED:
                extra.append(select)
            elif source in BULK_EVENTS and dialect == "postgresql":
                # Index probes on (trader_id, time); DuckDB would unnest these into a join of every
                # step event with every trade of the trader, so it takes the span below instead.
                trader_col, time_col = BULK_EVENTS[source]
                in_range = [] if date_range is None else [date_range.contains(time_col)]
                # One probe per instant for the first one at or after it; only when that one is at the
                # instant itself (a tie) does a second probe look for the first one after it.
                at_or_after = sa.select(sa.func.min(time_col)).where(
                    trader_col == anchors.c.trader_id, time_col >= anchors.c.occurred_at,
                    time_col <= anchors.c.occurred_at + window, *in_range).scalar_subquery()
                probe = sa.select(anchors.c.trader_id, anchors.c.occurred_at,
                                  at_or_after.label("first_at")).cte(f"funnel_probe_{source}")
                after = sa.select(sa.func.min(time_col)).where(
                    trader_col == probe.c.trader_id, time_col > probe.c.occurred_at,
                    time_col <= probe.c.occurred_at + window, *in_range).scalar_subquery()
                markers = sa.union_all(
                    sa.select(probe.c.trader_id, probe.c.first_at.label("occurred_at")),
                    sa.select(probe.c.trader_id,
                              sa.case((probe.c.first_at == probe.c.occurred_at, after)).label("occurred_at")),
                ).subquery()
                separate.append(shaped(sa.select(markers.c.trader_id, markers.c.occurred_at)
                                       .where(markers.c.occurred_at.is_not(None)).distinct(), 0, None))
            elif source in BULK_EVENTS:
                extra.append(shaped(_markers_by_bucket(source, anchors, window, spec.effective_window_s,
                                                       date_range), 0, None))
            elif dialect == "postgresql":
                # The light sources whole: a few hundred thousand rows at most, fetched in one scan
                # each, where a join on each trader's span runs as one index probe per trader
                # (PostgreSQL cannot estimate the span CTE and picks nested loops: ~0.35 s each
                # for 60,000 traders against ~0.05 s for the scan).
                extra.append(select)
            else:
                rows = select.subquery()
                extra.append(sa.select(rows).join(span, sa.and_(
                    span.c.trader_id == rows.c.trader_id, rows.c.occurred_at >= span.c.lo,
                    rows.c.occurred_at <= span.c.hi)))

    if near_only is not None:
        extra.append(_near_rows(plan, near_only, light_cte, window, date_range, dialect))
    if strict:
        # The trader filter on the step events alone. The unrelated events (most rows) of a trader
        # without step events change nothing (collapse_unrelated drops them), so neither they nor
        # the markers above need the semi-join (0.2 s over a million rows on PostgreSQL).
        parts: list[sa.Select] = [sa.select(light_cte).where(trader_filter.restrict(light_cte.c.trader_id)), *extra]
    else:
        parts = [sa.select(light_cte), *extra]
    reduced_ctes: dict[int, sa.CTE] = {}
    for k in sorted(reduced):
        trader_col, time_col = BULK_EVENTS[reduced[k]]
        in_range = [] if date_range is None else [date_range.contains(time_col)]

        def anchors_of(step: int) -> sa.Subquery:
            anchor = sa.select(light_cte.c.trader_id, light_cte.c.occurred_at).where(
                light_cte.c.mask.op("&")(1 << step) != 0)
            if step in reduced_ctes:
                prev = reduced_ctes[step]
                anchor = sa.union_all(anchor, sa.select(prev.c.trader_id, prev.c.occurred_at))
            return anchor.subquery()

        if k == 0:
            # Step 1: the trader's first event (the attempt kept when nothing follows) and the last one
            # at or before each step-2 event within the window (the only one that step can use).
            a = anchors_of(1)
            last = (sa.select(sa.func.max(time_col)).where(
                trader_col == a.c.trader_id, time_col <= a.c.occurred_at, time_col >= a.c.occurred_at - window,
                *in_range).scalar_subquery())
            first = sa.select(trader_col.label("trader_id"), sa.func.min(time_col).label("occurred_at")).where(
                trader_filter.restrict(trader_col), *in_range).group_by(trader_col)
            candidates = sa.union_all(first, sa.select(a.c.trader_id, last.label("occurred_at")))
        else:
            # Step k: only the first such event at or after each event of step k-1, within the window
            # of that event (a later one can only repeat what the first did, or be too late).
            a = anchors_of(k - 1)
            nxt = (sa.select(sa.func.min(time_col)).where(
                trader_col == a.c.trader_id, time_col >= a.c.occurred_at, time_col <= a.c.occurred_at + window,
                *in_range).scalar_subquery())
            candidates = sa.select(a.c.trader_id, nxt.label("occurred_at"))
        # Materialised, or PostgreSQL inlines it and runs every probe twice (once for IS NOT NULL).
        probed = candidates.cte(f"funnel_probe_{k}").prefix_with("MATERIALIZED")
        cte = (sa.select(probed.c.trader_id, probed.c.occurred_at)
               .where(probed.c.occurred_at.is_not(None)).distinct().cte(f"funnel_bulk_{k}"))
        reduced_ctes[k] = cte
        cols = [cte.c.trader_id, cte.c.occurred_at, sa.literal(plan.core_mask(reduced[k]), sa.BigInteger).label("mask")]
        if prop_key is not None:
            cols.append(sa.null().label("prop"))
        parts.append(sa.select(*cols))

    def output(rows: sa.Subquery | sa.CTE) -> sa.Select:
        # Every number as BIGINT: PostgreSQL hands the rows over as fixed-width binary COPY (see _fetch).
        # There a timestamp travels as stored, an int64 of microseconds since 2000 that _copy_bigints
        # shifts to 1970 (it knows the column by its DateTime type): exact, and 0.2 s per million rows
        # cheaper than EXTRACT's numeric arithmetic. Results with a text column (CSV) need the number.
        # DuckDB hands every column over as a numpy array as it is: no casts, and the timestamp as
        # stored, datetime64[us] that _fetch views as int64 (1.5 ms of a 9 ms, 215,000-row read).
        as_stored = dialect == "duckdb" or (dialect == "postgresql" and prop_key is None)
        us = sa.type_coerce(rows.c.occurred_at, sa.DateTime) if as_stored else _epoch_us(dialect, rows.c.occurred_at)

        def bigint(col: ColumnElement) -> ColumnElement:
            return col if dialect == "duckdb" else sa.cast(col, sa.BigInteger)

        out = [bigint(rows.c.trader_id).label("trader_id"), us.label("us"), bigint(rows.c.mask).label("mask")]
        if prop_key is not None:
            out.append(rows.c.prop)
        if strict:
            return sa.select(*out)  # filtered with the step events (parts[0])
        # The trader filter once, on the rows that remain: one semi-join instead of one per source (half
        # the time on PostgreSQL). Other traders' rows only ever add work, never change a trader's result.
        return sa.select(*out).where(trader_filter.restrict(rows.c.trader_id))

    main = output(sa.union_all(*parts).subquery("funnel_rows") if len(parts) > 1 else light_cte)
    return [main, *(output(part.subquery("funnel_rows")) for part in separate)]


# --------------------------------------------------------------------------------------------------
# Running the query and the state machines
# --------------------------------------------------------------------------------------------------


def _unmasked(col: np.ndarray, *, nulls: bool = False) -> np.ndarray:
    """A DuckDB column without its NULL mask: NULL becomes None (object columns, or ``nulls``) or 0."""
    if not isinstance(col, np.ma.MaskedArray):
        return np.asarray(col, dtype=object) if nulls else np.asarray(col)
    missing = np.ma.getmaskarray(col)
    if nulls or col.dtype == object:
        out = np.asarray(col.data, dtype=object).copy()
        out[missing] = None  # .filled(None) would fill with numpy's default "?", not None
        return out
    return col.filled(0)


def _fetch(conn: Connection, stmt: sa.Select, columns: list[str]) -> dict[str, np.ndarray]:
    """Run ``stmt`` and return its columns as numpy arrays, without a Python object per row where the
    driver allows: DuckDB hands numpy arrays over; PostgreSQL streams BIGINT-only results as binary
    COPY, several times faster than building a tuple per row."""
    if conn.dialect.name == "duckdb":
        raw = conn.execute(stmt).cursor.fetchnumpy()
        out = {name: _unmasked(raw[name]) for name in columns}
        for name in columns:
            if _is_timestamp(stmt, name):  # epoch microseconds
                out[name] = out[name].astype("datetime64[us]", copy=False).view(np.int64)
            elif out[name].dtype.kind in "iu":
                out[name] = out[name].astype(np.int64, copy=False)
        return out
    if "prop" in columns:  # text: CSV (the property is the last column)
        return dict(zip(columns, _copy_csv(conn, stmt, integers=len(columns) - 1), strict=True))
    copied = _copy_bigints(conn, stmt, columns)
    if copied is None:  # not the fixed binary layout after all: one tuple per row
        rows = conn.execute(stmt).fetchall()
        copied = {name: (np.array([r[i] for r in rows], dtype="datetime64[us]").astype(np.int64)
                         if _is_timestamp(stmt, name) else np.array([r[i] for r in rows], dtype=np.int64))
                  for i, name in enumerate(columns)}
    return copied


def _is_timestamp(stmt: sa.Select, name: str) -> bool:
    """Whether column ``name`` of ``stmt`` arrives as a timestamp (the event times, see _event_queries'
    output), which _fetch turns into epoch microseconds."""
    return isinstance(stmt.selected_columns[name].type, sa.DateTime)


def _copy_bigints(conn: Connection, stmt: sa.Select, columns: list[str]) -> dict[str, np.ndarray] | None:
    """PostgreSQL: the NOT NULL BIGINT or TIMESTAMP columns of ``stmt`` through COPY ... (FORMAT binary),
    timestamps as epoch microseconds; None when the stream is not the fixed layout expected (then the
    caller fetches rows)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()
    try:
        sql = cursor.mogrify(str(compiled), compiled.params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT binary)", buffer)
    finally:
        cursor.close()
    data = buffer.getbuffer()
    # Header: 11-byte signature, int32 flags, int32 extension length; trailer: int16 -1.
    start = 19 + int.from_bytes(data[15:19], "big")
    layout = [("fields", ">i2")]
    for name in columns:
        layout += [(f"{name}_len", ">i4"), (name, ">i8")]
    body = data[start:len(data) - 2]
    if len(body) % np.dtype(layout).itemsize:
        return None
    records = np.frombuffer(body, dtype=layout)
    if len(records) and ((records["fields"] != len(columns)).any()
                         or any((records[f"{name}_len"] != 8).any() for name in columns)):
        return None
    out = {name: records[name].astype(np.int64) for name in columns}
    for name in columns:
        if _is_timestamp(stmt, name):
            out[name] += _PG_EPOCH_US  # binary timestamps count from 2000-01-01
    return out


class _Events:
    """The fetched events of one funnel, sorted by trader, time and mask; ``starts`` bounds each trader."""

    def __init__(self, data: dict[str, np.ndarray], *, ties: bool = True) -> None:
        """``ties=False`` leaves the events of one instant in any order (see _load_events)."""
        trader = np.asarray(data["trader_id"], dtype=np.int64)  # no copy when already int64
        us = np.asarray(data["us"], dtype=np.int64)
        mask = np.asarray(data["mask"], dtype=np.int64)
        smask = mask & ((1 << _EXCLUSION_SHIFT) - 1)
        xmask = mask >> _EXCLUSION_SHIFT
        order = _sort_order(trader, us, _tie_rank(smask, xmask) if ties else None)
        self.trader = trader[order]
        self.us = us[order]
        self.smask = smask[order]
        self.xmask = xmask[order]
        self.prop = data["prop"][order] if "prop" in data else None
        self._bounds()

    def _bounds(self) -> None:
        first = (np.flatnonzero(np.r_[True, self.trader[1:] != self.trader[:-1]]) if len(self.trader)
                 else np.zeros(0, np.int64))
        self.starts = np.r_[first, len(self.trader)].astype(np.int64)
        self.people = self.trader[first]

    @property
    def max_rows(self) -> int:
        return int(np.diff(self.starts).max()) if len(self.starts) > 1 else 0

    def collapse_unrelated(self) -> None:
        """Strict funnels: drop unrelated events that cannot change an outcome.

        An unrelated event matters only (a) at an instant that also has step events, where it makes
        the tie "mixed" (one such event is enough), or (b) at an instant without step events between
        two step events of the trader, where it resets the progress (a run of such instants resets
        once). Before a trader's first and after their last step event it does nothing.
        """
        if not len(self.us):
            return
        related = (self.smask | self.xmask) != 0
        new_instant = np.r_[True, (self.trader[1:] != self.trader[:-1]) | (self.us[1:] != self.us[:-1])]
        instant = np.cumsum(new_instant) - 1
        instant_related = np.zeros(instant[-1] + 1, bool)
        np.logical_or.at(instant_related, instant, related)
        person = np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))
        seq = np.arange(len(self.us))
        first_related = np.full(len(self.starts) - 1, len(self.us))
        last_related = np.full(len(self.starts) - 1, -1)
        np.minimum.at(first_related, person[related], seq[related])
        np.maximum.at(last_related, person[related], seq[related])
        keep = related.copy()
        mixer = ~related & instant_related[instant]
        first_mixer = mixer & np.r_[True, ~mixer[:-1] | (instant[1:] != instant[:-1])]
        keep |= first_mixer
        alone = ~related & ~instant_related[instant] & (seq > first_related[person]) & (seq < last_related[person])
        keep |= alone & ~np.r_[False, alone[:-1] & (person[1:] == person[:-1])]
        self._take(keep)

    def _take(self, keep: np.ndarray) -> None:
        self.trader = self.trader[keep]
        self.us = self.us[keep]
        self.smask = self.smask[keep]
        self.xmask = self.xmask[keep]
        if self.prop is not None:
            self.prop = self.prop[keep]
        self._bounds()


def _lowest_bit(x: np.ndarray) -> np.ndarray:
    """Index of the lowest set bit of each positive value (exact: a power of two is exact in float64)."""
    return np.log2((x & -x).astype(np.float64)).astype(np.int64)


def _tie_rank(smask: np.ndarray, xmask: np.ndarray) -> np.ndarray:
    """Order of events at one instant: lower steps first, then exclusions, then unrelated events.
    (Ordered and strict funnels group an instant anyway; unordered funnels and trends take events one
    by one, so the order must be fixed.)"""
    tie = np.full(len(smask), 63, np.int64)
    steps = smask != 0
    tie[steps] = _lowest_bit(smask[steps])
    exclusions = ~steps & (xmask != 0)
    tie[exclusions] = 32 + _lowest_bit(xmask[exclusions])
    return tie


def _sort_order(trader: np.ndarray, us: np.ndarray, tie: np.ndarray | None) -> np.ndarray:
    """Permutation sorting by (trader, time, tie), or by (trader, time) without ``tie``: one int64 key
    when they fit in 63 bits (ten times faster than a lexsort), else a lexsort."""
    if not len(us):
        return np.zeros(0, np.int64)
    low, high = int(us.min()), int(us.max())
    present = np.zeros(int(trader.max()) + 1, bool) if trader.min() >= 0 else None
    if present is not None and len(present) <= 4 * len(trader) + 1_000_000:
        present[trader] = True
        rank = (np.cumsum(present) - 1)[trader]
        rank_bits = max(1, int(rank.max()).bit_length())
        tie_bits = 6 if tie is not None else 0
        unit = 1
        if rank_bits + max(1, (high - low).bit_length()) + tie_bits > 63:
            # Too many bits in microseconds (over about a year of 200,000 traders): in whole seconds or
            # milliseconds when every time is one (checked only here: 0.6 ms per 200,000 rows).
            unit = _US if not (us % _US).any() else (1000 if not (us % 1000).any() else 1)
        time_bits = max(1, ((high - low) // unit).bit_length())
        if rank_bits + time_bits + tie_bits <= 63:
            key = (rank << (time_bits + tie_bits)) | (((us - low) // unit if unit > 1 else us - low) << tie_bits)
            return np.argsort(key | tie if tie is not None else key, kind="stable")
    return np.lexsort((tie, us, trader) if tie is not None else (us, trader))


@dataclass(frozen=True, eq=False)
class _People:
    """Traders who entered the funnel: ids (sorted), furthest step of the kept attempt (1..n), that
    attempt's step times (epoch microseconds, one column per step) and breakdown labels."""

    trader_id: np.ndarray
    reached: np.ndarray
    times: np.ndarray
    labels: np.ndarray | None


def _load_events(conn: Connection, spec: FunnelSpec, date_range: DateRange | None, trader_filter: TraderFilter,
                 *, trends: bool = False) -> _Events:
    plan = _Plan.of(spec)
    prop_key = spec.breakdown if spec.breakdown and spec.breakdown_kind == "event" else None
    first, *rest = _event_queries(plan, conn.dialect.name, date_range, trader_filter, prop_key=prop_key,
                                  trends=trends)
    columns = ["trader_id", "us", "mask", *(["prop"] if prop_key else [])]
    # The order of events at one instant matters to unordered funnels and trends (they take events
    # one by one) and to a property breakdown (its first or last event that has one); ordered funnels
    # take an instant's events together (_ordered_pass), so they skip ranking the ties (2 ms of a
    # 30 ms two-step funnel over 215,000 events on DuckDB).
    ties = trends or spec.order != "ordered" or prop_key is not None
    if not rest:
        return _Events(_fetch(conn, first, columns), ties=ties)

    def fetch_apart(stmt: sa.Select) -> dict[str, np.ndarray]:
        with reading(conn.engine) as other:
            return _fetch(other, stmt, columns)

    # Each statement on its own connection, so PostgreSQL runs the index probes of each on its own
    # backend (2 cores here: 4.4-5.5 s as one statement).
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        futures = [pool.submit(fetch_apart, stmt) for stmt in rest]
        parts = [_fetch(conn, first, columns), *(future.result() for future in futures)]
    return _Events({name: np.concatenate([part[name] for part in parts]) for name in columns}, ties=ties)


def _event_labels(events: _Events, attribution: Attribution) -> np.ndarray:
    """Per trader of ``events``: the property on their first (or last) event that has one (spec §1.7)."""
    labels = np.full(len(events.people), None, dtype=object)
    if events.prop is None or not len(events.prop):
        return labels
    has = np.flatnonzero(np.array([v is not None for v in events.prop], dtype=bool))
    if not len(has):
        return labels
    person = np.searchsorted(events.starts, has, side="right") - 1
    if attribution == "last_touch":
        has, person = has[::-1], person[::-1]
    uniq, first = np.unique(person, return_index=True)
    labels[uniq] = events.prop[has[first]]
    return labels


def _lookup(conn: Connection, stmt: sa.Select, trader_ids: np.ndarray) -> list[np.ndarray]:
    """Values of ``stmt`` (first column trader_id, then value columns) for each of ``trader_ids``;
    None where a trader has no row."""
    if conn.dialect.name == "postgresql":
        columns = _copy_csv(conn, stmt)
    else:
        columns = [_unmasked(col, nulls=i > 0) for i, col in enumerate(conn.execute(stmt).cursor.fetchnumpy().values())]
    ids = np.asarray(columns[0], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    out = [np.full(len(trader_ids), None, dtype=object) for _ in columns[1:]]
    if len(ids) and len(trader_ids):
        pos = np.clip(np.searchsorted(ids, trader_ids), 0, len(ids) - 1)
        found = ids[pos] == trader_ids
        for target, column in zip(out, columns[1:], strict=True):
            target[found] = column[order][pos[found]]
    return out


def _copy_csv(conn: Connection, stmt: sa.Select, integers: int = 1) -> list[np.ndarray]:
    """PostgreSQL: ``stmt`` (``integers`` BIGINT columns, then text columns) through COPY ... CSV, parsed
    by pyarrow: a few times faster than a tuple per row. NULL stays None, an empty string stays ''."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    names = [f"c{i}" for i in range(len(stmt.selected_columns))]
    cursor = conn.connection.driver_connection.cursor()
    try:
        sql = cursor.mogrify(str(compiled), compiled.params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    if not buffer.getbuffer().nbytes:
        return [np.zeros(0, np.int64) if i < integers else np.zeros(0, object) for i in range(len(names))]
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer, read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.int64() if i < integers else pa.string() for i, name in enumerate(names)},
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    return [np.asarray(table.column(i).to_numpy(zero_copy_only=False), dtype=np.int64 if i < integers else object)
            for i in range(len(names))]


def _trader_labels(conn: Connection, attribute: str, attribution: Attribution, trader_ids: np.ndarray,
                   trader_filter: TraderFilter) -> np.ndarray:
    """Per trader id: the trader attribute (platform: of the first or last account opened)."""
    if attribute == "platform":
        ranked = sa.select(
            accounts.c.trader_id, accounts.c.platform.label("value"),
            sa.func.row_number().over(
                partition_by=accounts.c.trader_id,
                order_by=(accounts.c.opened_at.desc(), accounts.c.account_id.desc()) if attribution == "last_touch"
                else (accounts.c.opened_at, accounts.c.account_id)).label("rn"),
        ).where(trader_filter.restrict(accounts.c.trader_id)).subquery()
        stmt = sa.select(ranked.c.trader_id, ranked.c.value).where(ranked.c.rn == 1)
    else:
        stmt = sa.select(traders.c.trader_id, traders.c[attribute].label("value")).where(
            trader_filter.restrict(traders.c.trader_id))
    (labels,) = _lookup(conn, stmt, trader_ids)
    if attribute == "vip_tier":
        labels[labels == None] = STANDARD_TIER  # noqa: E711 - elementwise on an object array
    return labels


def _people(engine: Engine, spec: FunnelSpec, date_range: DateRange | None, trader_filter: TraderFilter) -> _People:
    """Run the funnel for every trader; keep those who entered it."""
    validate_spec(spec)
    n = len(spec.steps)
    window = spec.effective_window_s * _US
    with reading(engine) as conn:
        events = _load_events(conn, spec, date_range, trader_filter)
        # Event-property labels look at every fetched event, so they are taken before the collapse.
        label_people = events.people
        labels = _event_labels(events, spec.attribution) if spec.breakdown_kind == "event" and spec.breakdown else None
        if spec.order == "strict":
            events.collapse_unrelated()
        if spec.order == "unordered":
            reached, times = _unordered_pass(events.starts, events.us, events.smask, events.xmask, n, window,
                                             events.max_rows)
        else:
            reached, times = _ordered_pass(events.starts, events.us, events.smask, events.xmask, n, window,
                                           spec.order == "strict")
        entered = reached > 0
        trader_id = events.people[entered]
        if spec.breakdown and spec.breakdown_kind == "trader":
            labels = _trader_labels(conn, spec.breakdown, spec.attribution, trader_id, trader_filter)
        elif labels is not None:
            labels = labels[np.searchsorted(label_people, trader_id)]
    if labels is not None:
        labels = np.array([NONE_VALUE if v is None else str(v) for v in labels], dtype=object)
    return _People(trader_id, reached[entered].astype(np.int64), times[entered], labels)


# --------------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------------


def _step_names(spec: FunnelSpec) -> list[str]:
    if spec.order == "unordered":
        return [f"Completed {k} step{'s' if k > 1 else ''}" for k in range(1, len(spec.steps) + 1)]
    return list(spec.steps)


def _step_rows(spec: FunnelSpec, reached: np.ndarray, times: np.ndarray) -> pd.DataFrame:
    """The per-step table (FunnelResult.steps columns) of one group of traders."""
    n = len(spec.steps)
    counts = np.array([int((reached >= k).sum()) for k in range(1, n + 1)], dtype=np.int64)
    avg = np.full(n, np.nan)
    med = np.full(n, np.nan)
    for k in range(1, n):
        at = reached >= k + 1
        gaps = (times[at, k] - times[at, k - 1]) / _US
        gaps = gaps[gaps > 0]  # same-instant conversions count as converted but not in the times
        if len(gaps):
            avg[k] = float(gaps.mean())
            med[k] = float(np.median(gaps))
    first = counts[0]
    # Nobody entered: a share of zero traders is undefined, not 100% (nor 0%).
    rate = counts / first if first > 0 else np.full(n, np.nan)
    prev = np.r_[counts[0], counts[:-1]]
    from_prev = np.where(prev > 0, counts / np.maximum(prev, 1), 0.0)
    from_prev[0] = rate[0]
    drop = np.maximum(prev - counts, 0)
    return pd.DataFrame({
        "step": np.arange(1, n + 1, dtype=np.int64), "event": _step_names(spec), "count": counts,
        "conversion_rate": rate.astype(float), "conversion_from_previous": from_prev.astype(float),
        "drop_off": drop.astype(np.int64), "average_time_to_convert_s": avg, "median_time_to_convert_s": med,
    }, columns=STEP_COLUMNS)


def _grouped_labels(spec: FunnelSpec, people: _People) -> tuple[np.ndarray, tuple[str, ...]]:
    """Breakdown group per trader: the top values (most traders at step 1, then by name) and "Other"
    for the rest. Returns (group index per trader, values in display order)."""
    assert people.labels is not None
    codes, uniques = pd.factorize(people.labels)  # integer codes: no string comparisons per value
    counts = np.bincount(codes, minlength=len(uniques))
    ranked = sorted(range(len(uniques)), key=lambda i: (-counts[i], uniques[i]))
    top = ranked[:spec.breakdown_limit]
    group = np.full(len(uniques), len(top), np.int64)  # beyond the top: "Other"
    group[top] = np.arange(len(top))
    values = tuple(str(uniques[i]) for i in top)
    return group[codes], (*values, OTHER) if len(ranked) > len(top) else values


def compute_funnel(engine: Engine, spec: FunnelSpec, *, date_range: DateRange | None = None,
                   trader_filter: TraderFilter = DEFAULT_FILTER) -> FunnelResult:
    """Conversion per step of ``spec`` for traders passing ``trader_filter``; every step event must fall in
    ``date_range`` (None: all time). Raises FunnelRejected for a funnel that cannot be computed."""
    people = _people(engine, spec, date_range, trader_filter)
    if people.labels is None:
        return FunnelResult(spec, _step_rows(spec, people.reached, people.times), (), people)
    group, values = _grouped_labels(spec, people)
    blocks = []
    for g, value in enumerate(values):
        at = group == g
        block = _step_rows(spec, people.reached[at], people.times[at])
        block["breakdown_value"] = value
        blocks.append(block)
    steps = (pd.concat(blocks, ignore_index=True) if blocks
             else pd.DataFrame(columns=[*STEP_COLUMNS, "breakdown_value"]))
    return FunnelResult(spec, steps, values, people)


def _conversion_seconds(spec: FunnelSpec, people: _People, from_step: int, to_step: int | None) -> np.ndarray:
    n = len(spec.steps)
    to_step = n if to_step is None else to_step
    if not 1 <= from_step < to_step <= n:
        raise FunnelRejected(f"Time to convert runs from one step to a later one, within steps 1 to {n} "
                             f"(got {from_step} to {to_step}).")
    at = people.reached >= to_step
    return (people.times[at, to_step - 1] - people.times[at, from_step - 1]) / _US


def _histogram(seconds: np.ndarray, bins: int) -> pd.DataFrame:
    """Pre-binned histogram of conversion times: equal-width bins from the fastest to the slowest."""
    if not len(seconds):
        frame = pd.DataFrame(columns=HISTOGRAM_COLUMNS).astype(
            {"bin_start_s": float, "bin_end_s": float, "traders": np.int64})
    else:
        bins = max(1, min(int(bins), 90))
        low, high = float(np.floor(seconds.min())), float(np.ceil(seconds.max()))
        width = float(np.ceil((high - low) / bins)) or 60.0  # all equal: one-minute bins
        index = np.minimum(((seconds - low) // width).astype(np.int64), bins - 1)
        counts = np.bincount(index, minlength=bins)
        starts = low + width * np.arange(bins)
        frame = pd.DataFrame({"bin_start_s": starts, "bin_end_s": starts + width, "traders": counts.astype(np.int64)})
    frame.attrs.update({
        "traders": len(seconds),
        "average_s": float(seconds.mean()) if len(seconds) else None,
        "median_s": float(np.median(seconds)) if len(seconds) else None,
    })
    return frame


def compute_time_to_convert(engine: Engine, spec: FunnelSpec, *, date_range: DateRange | None = None,
                            trader_filter: TraderFilter = DEFAULT_FILTER, from_step: int = 1,
                            to_step: int | None = None, bins: int = 30) -> pd.DataFrame:
    """Histogram of per-trader conversion times from ``from_step`` to ``to_step`` (1-based; default the
    last step) of the kept attempt, zero-second conversions included.

    Columns ``bin_start_s``, ``bin_end_s`` (float seconds, bins of equal width) and ``traders`` (int);
    ``attrs`` carries ``traders`` (how many converted), ``average_s`` and ``median_s`` (None if nobody).
    """
    people = _people(engine, spec, date_range, trader_filter)
    return _histogram(_conversion_seconds(spec, people, from_step, to_step), bins)


def time_to_convert_of(result: FunnelResult, *, from_step: int = 1, to_step: int | None = None,
                       bins: int = 30) -> pd.DataFrame:
    """:func:`compute_time_to_convert` from a computed funnel (no second query)."""
    assert result._people is not None
    return _histogram(_conversion_seconds(result.spec, result._people, from_step, to_step), bins)


def _dropoff_frame(conn: Connection, spec: FunnelSpec, people: _People, step: int,
                   trader_filter: TraderFilter) -> pd.DataFrame:
    n = len(spec.steps)
    if not 1 <= step < n:
        raise FunnelRejected(f"Drop-offs are between steps: pick a step from 1 to {n - 1}.")
    at = people.reached == step
    ids = people.trader_id[at]
    reached_at = pd.to_datetime(people.times[at, step - 1], unit="us")
    frame = pd.DataFrame({"trader_id": ids, "reached_at": reached_at})
    if spec.breakdown:
        assert people.labels is not None
        frame["breakdown_value"] = people.labels[at]
    # Bounded by the droppers' id range: ids follow capture order, so the droppers of a recent
    # range are a narrow band of the table (exact either way; _lookup matches by id).
    bounds = [traders.c.trader_id.between(int(ids.min()), int(ids.max()))] if len(ids) else [sa.false()]
    external_id, country, channel = _lookup(conn, sa.select(
        traders.c.trader_id, traders.c.external_id, traders.c.country, traders.c.acquisition_channel,
    ).where(trader_filter.restrict(traders.c.trader_id), *bounds), ids)
    frame = frame.assign(external_id=external_id, country=country, acquisition_channel=channel)
    extra = ["breakdown_value"] if spec.breakdown else []
    frame = frame[[*DROPOFF_COLUMNS, *extra]]
    return frame.sort_values(["reached_at", "trader_id"], ascending=[False, True], ignore_index=True)


def compute_dropoffs(engine: Engine, spec: FunnelSpec, *, step: int, date_range: DateRange | None = None,
                     trader_filter: TraderFilter = DEFAULT_FILTER) -> pd.DataFrame:
    """Traders whose kept attempt reached ``step`` (1-based) but not the next one, most recent first.

    Columns ``trader_id`` (int), ``external_id``, ``country``, ``acquisition_channel`` (str),
    ``reached_at`` (naive UTC datetime of their step-``step`` event), plus ``breakdown_value`` when the
    spec has a breakdown.
    """
    people = _people(engine, spec, date_range, trader_filter)
    with reading(engine) as conn:
        return _dropoff_frame(conn, spec, people, step, trader_filter)


def dropoffs_of(engine: Engine, result: FunnelResult, *, step: int,
                trader_filter: TraderFilter = DEFAULT_FILTER) -> pd.DataFrame:
    """:func:`compute_dropoffs` from a computed funnel (only the trader details are queried)."""
    assert result._people is not None
    with reading(engine) as conn:
        return _dropoff_frame(conn, result.spec, result._people, step, trader_filter)


def _period_keys(us: np.ndarray, period: Period, week_start: WeekStart) -> np.ndarray:
    """Start of the day/week/month of each epoch-microsecond time, as days since 1970 (months: months)."""
    days = us // (86_400 * _US)
    if period == "day":
        return days
    if period == "week":
        # 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) % 7.
        offset = (days + 3) % 7 if week_start == "monday" else (days + 4) % 7
        return days - offset
    if period == "month":
        return us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    raise FunnelRejected(f"Unknown period {period!r}; use day, week or month.")


def _key_of(day: date, period: Period) -> int:
    if period == "month":
        return (day.year - 1970) * 12 + day.month - 1
    return (day - date(1970, 1, 1)).days


def compute_funnel_trends(engine: Engine, spec: FunnelSpec, *, period: Period = "week",
                          date_range: DateRange | None = None, trader_filter: TraderFilter = DEFAULT_FILTER,
                          week_start: WeekStart = "monday") -> pd.DataFrame:
    """Conversion by entry period (spec §1.8): traders are counted in the period of each step-1 event
    that started an attempt; two runs in one period count once.

    One row per period of the date range (zeros where nobody entered): ``period_start`` (datetime),
    ``reached_from_step_count`` (entered), ``reached_to_step_count`` (completed the last step within
    the window of that entry), ``conversion_rate`` (percent, 2 decimals). Raises
    :class:`analytics.periods.ReportTooLarge` beyond the shared limit on periods.
    """
    validate_spec(spec)
    if spec.order == "unordered":
        raise FunnelRejected("Conversion trends need an ordered or strict funnel.")
    if period not in ("day", "week", "month"):
        raise FunnelRejected(f"Unknown period {period!r}; use day, week or month.")
    n = len(spec.steps)
    with reading(engine) as conn:
        events = _load_events(conn, spec, date_range, trader_filter, trends=True)
    if spec.order == "strict":
        events.collapse_unrelated()
    keys = _period_keys(events.us, period, week_start)
    _, key, converted = _trends_pass(events.starts, events.us, events.smask, events.xmask, keys, n,
                                          spec.effective_window_s * _US, spec.order == "strict", events.max_rows)
    if date_range is not None:
        first, last = date_range.start, date_range.end
    elif len(key):
        entries = events.us[(events.smask & 1) != 0]
        first = pd.Timestamp(int(entries.min()), unit="us").date()
        last = pd.Timestamp(int(entries.max()), unit="us").date()
    else:
        return pd.DataFrame(columns=TREND_COLUMNS)
    check_report_size(count_periods(first, last, period, week_start), period=period, what="periods")
    starts: list[date] = []
    current = truncate_date(first, period, week_start)
    while current <= last:
        starts.append(current)
        current = step_period(current, period, 1, week_start)
    period_keys = np.array([_key_of(d, period) for d in starts], dtype=np.int64)
    slot = np.searchsorted(period_keys, key)
    inside = (slot < len(period_keys)) & (period_keys[np.minimum(slot, len(period_keys) - 1)] == key)
    entered = np.bincount(slot[inside], minlength=len(starts)).astype(np.int64)
    done = np.bincount(slot[inside], weights=converted[inside], minlength=len(starts)).astype(np.int64)
    rate = np.where(entered > 0, np.round(100.0 * done / np.maximum(entered, 1), 2), 0.0)
    return pd.DataFrame({"period_start": pd.to_datetime(starts), "reached_from_step_count": entered,
                         "reached_to_step_count": done, "conversion_rate": rate}, columns=TREND_COLUMNS)


def list_event_names(engine: Engine) -> list[str]:
    """Event names present in ``trader_events``: core events in funnel order, then portal events A-Z."""
    names: list[str] = []
    with reading(engine) as conn:
        for name in CORE_EVENTS:
            source = _core_source("deposit" if name == "ftd" else name)  # an FTD exists iff a deposit does
            assert source is not None
            if conn.execute(source.limit(1)).first() is not None:
                names.append(name)
        portal = conn.execute(sa.select(portal_events.c.event).distinct().order_by(portal_events.c.event)).scalars()
        names.extend(p for p in portal if p not in names)
    return names
