"""A funnel's numbers from the people who entered it: the step table (FunnelResult), time to
convert, who dropped off where, and conversion by entry period. Rates are fractions 0..1."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from analytics.events import compute_data_span
from analytics.filters import DEFAULT_FILTER, NO_SEGMENT, TraderFilter
from analytics.funnels.kernels import trends_pass
from analytics.funnels.people import Dropoffs, People, follow_people, list_dropoffs
from analytics.funnels.spec import OTHER, US, FunnelRejected, FunnelSpec, validate_spec
from analytics.funnels.stream import load_events
from analytics.periods import (
    DateRange,
    Period,
    WeekStart,
    check_report_size,
    count_periods,
    index_of,
    index_of_times,
    local_date,
    period_starts,
)
from analytics.reading import reading

STEP_COLUMNS = ["step", "event", "count", "conversion_rate", "conversion_from_previous", "drop_off",
                "average_time_to_convert_s", "median_time_to_convert_s"]
HISTOGRAM_COLUMNS = ["bin_start_s", "bin_end_s", "traders"]
TREND_COLUMNS = ["period_start", "reached_from_step_count", "reached_to_step_count", "conversion_rate"]


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
    _people: People | None = field(default=None, repr=False)

    @property
    def overall_conversion(self) -> float:
        """Traders who completed the last step as a fraction of those who did step 1 (0..1; NaN when
        nobody entered): the last step's ``conversion_rate``. A funnel with a breakdown has one per value."""
        if self.spec.breakdown is not None:
            raise ValueError("a funnel with a breakdown has one overall conversion per breakdown value")
        return float(self.steps["conversion_rate"].iloc[-1])



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
        gaps = (times[at, k] - times[at, k - 1]) / US
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


def _grouped_labels(spec: FunnelSpec, people: People) -> tuple[np.ndarray, tuple[str, ...]]:
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


def _segment_members(spec: FunnelSpec, people: People) -> dict[str, np.ndarray]:
    """A breakdown by segment: the ``breakdown_limit`` segments with the most traders at step 1 (then A-Z),
    then the traders in none of the segments (NO_SEGMENT), each as a mask over the people; a trader in two
    segments is in both."""
    assert people.groups is not None
    ranked = sorted((group for group in people.groups if group[1].any()), key=lambda g: (-int(g[1].sum()), g[0]))
    shown = dict(ranked[:spec.breakdown_limit])
    in_none = ~np.logical_or.reduce([inside for _, inside in people.groups]) if people.groups else (
        np.ones(len(people.trader_id), dtype=bool))
    if in_none.any():
        shown[NO_SEGMENT] = in_none
    return shown


def compute_funnel(engine: Engine, spec: FunnelSpec, *, date_range: DateRange | None = None,
                   trader_filter: TraderFilter = DEFAULT_FILTER) -> FunnelResult:
    """Conversion per step of ``spec`` for traders passing ``trader_filter``; every step event must fall in
    ``date_range`` (None: all time). Raises FunnelRejected for a funnel that cannot be computed."""
    people = follow_people(engine, spec, date_range, trader_filter)
    if people.labels is None:
        return FunnelResult(spec, _step_rows(spec, people.reached, people.times), (), people)
    if people.groups is not None:
        members = _segment_members(spec, people)
        values = tuple(members)
    else:
        group, values = _grouped_labels(spec, people)
        members = {value: group == g for g, value in enumerate(values)}
    blocks = []
    for value in values:
        at = members[value]
        block = _step_rows(spec, people.reached[at], people.times[at])
        block["breakdown_value"] = value
        blocks.append(block)
    steps = (pd.concat(blocks, ignore_index=True) if blocks
             else pd.DataFrame(columns=[*STEP_COLUMNS, "breakdown_value"]))
    return FunnelResult(spec, steps, values, people)


def _conversion_seconds(spec: FunnelSpec, people: People, from_step: int, to_step: int | None) -> np.ndarray:
    n = len(spec.steps)
    to_step = n if to_step is None else to_step
    if not 1 <= from_step < to_step <= n:
        raise FunnelRejected(f"Time to convert runs from one step to a later one, within steps 1 to {n} "
                             f"(got {from_step} to {to_step}).")
    at = people.reached >= to_step
    return (people.times[at, to_step - 1] - people.times[at, from_step - 1]) / US


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
    people = follow_people(engine, spec, date_range, trader_filter)
    return _histogram(_conversion_seconds(spec, people, from_step, to_step), bins)


def time_to_convert_of(result: FunnelResult, *, from_step: int = 1, to_step: int | None = None,
                       bins: int = 30) -> pd.DataFrame:
    """:func:`compute_time_to_convert` from a computed funnel (no second query)."""
    assert result._people is not None
    return _histogram(_conversion_seconds(result.spec, result._people, from_step, to_step), bins)


def _observed_until(engine: Engine, date_range: DateRange | None, data_end: date | None) -> datetime | None:
    """The first instant a funnel over ``date_range`` does not look at: the end of the range or of the
    newest day with data (``data_end``, read when not given), whichever is earlier; None without data."""
    if data_end is None:
        span = compute_data_span(engine)
        data_end = span.end if span else None
    if data_end is None:
        return None
    end = data_end if date_range is None else min(date_range.end, data_end)
    return DateRange(end, end).end_ts


def compute_dropoffs(engine: Engine, spec: FunnelSpec, *, step: int, date_range: DateRange | None = None,
                     trader_filter: TraderFilter = DEFAULT_FILTER, data_end: date | None = None) -> Dropoffs:
    """Traders whose kept attempt reached ``step`` (1-based) but not the next one, most recent first, each
    "dropped" (their window closed within what the funnel saw) or "in_window" (it had not: they can still
    convert), with their contact details and consents (:class:`analytics.funnels.people.Dropoffs`).

    ``data_end`` is the newest day with data; read from the database unless the caller has it.
    """
    people = follow_people(engine, spec, date_range, trader_filter)
    until = _observed_until(engine, date_range, data_end)
    with reading(engine) as conn:
        return list_dropoffs(conn, spec, people, step, trader_filter, date_range, until)


def dropoffs_of(engine: Engine, result: FunnelResult, *, step: int, trader_filter: TraderFilter = DEFAULT_FILTER,
                date_range: DateRange | None = None, data_end: date | None = None) -> Dropoffs:
    """:func:`compute_dropoffs` from a computed funnel (only the trader details are queried); ``date_range``
    must be the funnel's."""
    assert result._people is not None
    until = _observed_until(engine, date_range, data_end)
    with reading(engine) as conn:
        return list_dropoffs(conn, result.spec, result._people, step, trader_filter, date_range, until)


def compute_funnel_trends(engine: Engine, spec: FunnelSpec, *, period: Period = "week",
                          date_range: DateRange | None = None, trader_filter: TraderFilter = DEFAULT_FILTER,
                          week_start: WeekStart = "monday") -> pd.DataFrame:
    """Conversion by entry period: traders are counted in the period of each step-1 event
    that started an attempt; two runs in one period count once.

    One row per period of the date range (zeros where nobody entered): ``period_start`` (datetime),
    ``reached_from_step_count`` (entered), ``reached_to_step_count`` (completed the last step within
    the window of that entry), ``conversion_rate`` (float 0..1, completed / entered; 0 where nobody
    entered), a fraction like FunnelResult's rates. Raises
    :class:`analytics.periods.ReportTooLarge` beyond the shared limit on periods.
    """
    validate_spec(spec)
    if spec.order == "unordered":
        raise FunnelRejected("Conversion trends need an ordered or strict funnel.")
    if period not in ("day", "week", "month"):
        raise FunnelRejected(f"Unknown period {period!r}; use day, week or month.")
    n = len(spec.steps)
    with reading(engine) as conn:
        events = load_events(conn, spec, date_range, trader_filter, trends=True)
    if spec.order == "strict":
        events.collapse_unrelated()
    keys = index_of_times(events.us, period, week_start)
    _, key, converted = trends_pass(events.starts, events.us, events.smask, events.xmask, keys, n,
                                    spec.effective_window_s * US, spec.order == "strict", events.max_rows)
    if date_range is not None:
        first, last = date_range.start, date_range.end
    elif len(key):
        entries = events.us[(events.smask & 1) != 0]
        first = local_date(pd.Timestamp(int(entries.min()), unit="us").to_pydatetime())
        last = local_date(pd.Timestamp(int(entries.max()), unit="us").to_pydatetime())
    else:
        return pd.DataFrame(columns=TREND_COLUMNS)
    check_report_size(count_periods(first, last, period, week_start), period=period, what="periods")
    starts = period_starts(DateRange(first, last), period, week_start)
    period_keys = np.array([index_of(d, period, week_start) for d in starts], dtype=np.int64)
    slot = np.searchsorted(period_keys, key)
    inside = (slot < len(period_keys)) & (period_keys[np.minimum(slot, len(period_keys) - 1)] == key)
    entered = np.bincount(slot[inside], minlength=len(starts)).astype(np.int64)
    done = np.bincount(slot[inside], weights=converted[inside], minlength=len(starts)).astype(np.int64)
    rate = np.where(entered > 0, done / np.maximum(entered, 1), 0.0)
    return pd.DataFrame({"period_start": pd.to_datetime(starts), "reached_from_step_count": entered,
                         "reached_to_step_count": done, "conversion_rate": rate}, columns=TREND_COLUMNS)

