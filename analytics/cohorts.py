"""Cohorts: retention matrices, LTV curves by FTD cohort, and early engagement against later retention.

Retention follows PostHog's semantics (docs/semantics.md, "Retention"):

- a cohort is the period (day, week, month) of a *start* event; *recurring* mode puts a trader in
  every period with a start event in the range, *first-time* mode only in the period of their
  first-ever start event (all history; absent when that lies before the range);
- column 0 is the cohort size whatever the return event; column k >= 1 counts cohort members with a
  *return* event in period cohort + k; returns in the cohort's own period or earlier never count,
  and return periods after the range's last period are padded with 0 (a square matrix), except
  periods that start after the newest day with data: those have not happened, and are empty;
- *cumulative* ("rolling") counts a member in column k when they returned in column k or later;
- without ``date_from`` the table has ``intervals`` rows ending with the period containing
  ``date_to``; with it, one row per period from ``date_from``'s to ``date_to``'s. ``date_to`` is
  snapped up to the end of its period, so events after it up to that end count.

Only "did trader X do E in period P" matters, so every query first reduces events to distinct
(trader, period) pairs in the database and joins those; nothing but aggregates reaches pandas.
Periods are compared as integer indices (days, weeks or months since 1970), which both backends
compute from a DATE cheaply and which make "k periods later" a subtraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.events import TRADING, activity_select, activity_spans, compute_data_span, event_select, first_deposits
from analytics.filters import DEFAULT_FILTER, TraderFilter
from analytics.periods import (
    PERIODS,
    Period,
    WeekStart,
    as_date,
    check_report_size,
    epoch_seconds,
    index_of,
    interval,
    midnight,
    period_index,
    start_of_index,
    truncate_date,
)
from analytics.reading import reading
from analytics.stats import relative_risk, wilson_interval
from connectors.schema import transactions

Mode = Literal["recurring", "first_time"]
LtvMetric = Literal["net_deposits", "deposits"]

# Days in one LTV age step. A calendar month varies in length; a fixed 30 days keeps every
# trader's "month 3" equally long.
AGE_DAYS: dict[str, int] = {"day": 1, "week": 7, "month": 30}
MAX_INTERVALS = 400
ALL_COHORTS = "All cohorts"


def _read(conn: Connection, query: sa.Executable) -> list[sa.Row]:
    return list(conn.execute(query).all())


# ---------------------------------------------------------------------------------------------
# Retention


@dataclass(frozen=True)
class RetentionSpec:
    """What a retention matrix measures (see the module docstring for the rules)."""

    start_event: str = "registered"
    return_event: str = "trade"
    period: Period = "week"
    intervals: int = 8
    mode: Mode = "recurring"
    cumulative: bool = False
    week_start: WeekStart = "monday"

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"unknown period {self.period!r}; use day, week or month")
        if self.mode not in ("recurring", "first_time"):
            raise ValueError(f"unknown mode {self.mode!r}; use recurring or first_time")
        if self.week_start not in ("monday", "sunday"):
            raise ValueError(f"unknown week start {self.week_start!r}; use monday or sunday")
        if not 1 <= self.intervals <= MAX_INTERVALS:
            raise ValueError(f"intervals must be between 1 and {MAX_INTERVALS}, not {self.intervals}")
        if not self.start_event or not self.return_event:
            raise ValueError("start and return events must be named")


@dataclass(frozen=True)
class CohortRate:
    """One cohort's figure in one column: ``retained`` of ``size`` traders, ``rate`` = retained / size."""

    cohort_start: date
    size: int
    retained: int
    rate: float


@dataclass(frozen=True)
class RetentionResult:
    """A retention matrix.

    ``counts``: one row per cohort period, oldest first, columns ``cohort_start`` (datetime64, first
    day of the period), ``size`` (int, = column 0) and ``0 … intervals-1`` (int): traders of the
    cohort counted in that column. ``percentages``: the same frame with columns ``0 …`` as
    fractions of ``size`` (NaN for an empty cohort). ``last_period`` is the first day of the range's
    last period: cells beyond it are the padding zeros, not observed data. ``data_end`` is the newest
    day with data (None for an empty database): a cell whose period starts after it has not happened
    yet. Such cells hold 0 in both frames, as the query counted them; :meth:`elapsed` marks them, and
    :meth:`records`, :meth:`observed` and :meth:`average` leave them empty. A cell that has happened
    but whose period (cumulative: whose last counted period) ends after ``data_end`` is *unfinished*:
    its count can still rise; :meth:`complete` marks the finished ones, and :meth:`average` leaves
    the unfinished ones out unless asked.
    """

    spec: RetentionSpec
    counts: pd.DataFrame
    percentages: pd.DataFrame
    last_period: date
    data_end: date | None = None

    @property
    def columns(self) -> list[int]:
        return list(range(self.spec.intervals))

    def records(self) -> list[dict[str, Any]]:
        """[{cohort_start: date, size: int, values: [count of column 0 … N-1], complete: [bool …]}],
        oldest first; a column whose period has not happened yet is None in ``values`` and ``complete``
        (and ``size`` too when the cohort's own has not); ``complete`` is False for an unfinished cell
        (:meth:`complete`; column 0 False: the cohort's period is not over, its size can still grow)."""
        elapsed = self.elapsed().to_numpy()
        complete = self.complete().to_numpy()
        return [{"cohort_start": row.cohort_start.date(), "size": int(row.size) if done[0] else None,
                 "values": [int(v) if ok else None for v, ok in zip(row[2:], done, strict=True)],
                 "complete": [bool(c) if ok else None for c, ok in zip(final, done, strict=True)]}
                for row, done, final in zip(self.counts.itertuples(index=False), elapsed, complete, strict=True)]

    def _offsets(self) -> np.ndarray:
        """Period index of every cell: the cohort's index plus the column."""
        first = np.array([index_of(d.date(), self.spec.period, self.spec.week_start)
                          for d in self.counts["cohort_start"]], dtype=int)
        return first[:, None] + np.arange(self.spec.intervals)[None, :]

    def elapsed(self) -> pd.DataFrame:
        """Bool frame (rows as ``counts``, columns ``0 …``): True where the cell's period starts on or
        before ``data_end``; False where it has not happened yet (all True without ``data_end``)."""
        if self.data_end is None:
            mask = np.ones((len(self.counts), self.spec.intervals), dtype=bool)
        else:
            mask = self._offsets() <= index_of(self.data_end, self.spec.period, self.spec.week_start)
        return pd.DataFrame(mask, columns=self.columns, index=self.counts.index)

    def observed(self) -> pd.DataFrame:
        """Bool frame (rows as ``counts``, columns ``0 …``): True where the cell's period is in range and
        has happened (:meth:`elapsed`)."""
        last = index_of(self.last_period, self.spec.period, self.spec.week_start)
        return pd.DataFrame(self._offsets() <= last, columns=self.columns, index=self.counts.index) & self.elapsed()

    def complete(self) -> pd.DataFrame:
        """Bool frame (rows as ``counts``, columns ``0 …``): True where the cell's count is final, False
        where it is unfinished and can still rise because a period it counts ends after ``data_end``
        (all True without ``data_end``). Column 0 counts the cohort's own period (its size); column
        k >= 1 the period cohort + k, or, cumulative, every period from there to column N-1 within the
        range, so a cumulative row is final only once its last counted period is over. A period is
        over when its last day is on or before ``data_end``: the period holding the newest day with
        data is unfinished unless that day is its last. Cells that have not happened are False too."""
        shape = (len(self.counts), self.spec.intervals)
        if self.data_end is None:
            return pd.DataFrame(np.ones(shape, dtype=bool), columns=self.columns, index=self.counts.index)
        period, week_start = self.spec.period, self.spec.week_start
        # Periods with an index below this one have ended by the end of data_end.
        ended_before = index_of(self.data_end + timedelta(days=1), period, week_start)
        counted = self._offsets()  # the (last) period each cell counts
        if self.spec.cumulative and self.spec.intervals > 1:
            last = index_of(self.last_period, period, week_start)
            counted[:, 1:] = np.minimum(counted[:, -1:], last)
        return pd.DataFrame(counted < ended_before, columns=self.columns, index=self.counts.index)

    def unfinished(self) -> pd.DataFrame:
        """Bool frame: True where the cell is observed (:meth:`observed`) but not yet final (:meth:`complete`)."""
        return self.observed() & ~self.complete()

    def _counted(self, include_unfinished: bool) -> pd.DataFrame:
        """Bool frame: cells of a non-empty cohort that are observed and, unless ``include_unfinished``, final."""
        counted = self.observed() & (self.counts["size"] > 0).to_numpy()[:, None]
        return counted if include_unfinished else counted & self.complete()

    def extremes(self, k: int, *, include_unfinished: bool = False) -> tuple[CohortRate, CohortRate] | None:
        """(best, worst) cohort by its rate in column ``k``, over the cohorts :meth:`average` counts there
        (final cells only unless ``include_unfinished``); of equal rates the older cohort; None when no
        cohort has such a cell."""
        rows = np.flatnonzero(self._counted(include_unfinished)[k].to_numpy())
        if not len(rows):
            return None
        found = [CohortRate(self.counts["cohort_start"].iloc[i].date(), int(self.counts["size"].iloc[i]),
                            int(self.counts[k].iloc[i]), float(self.percentages[k].iloc[i])) for i in rows]
        return max(found, key=lambda c: c.rate), min(found, key=lambda c: c.rate)

    def average(self, *, include_unfinished: bool = False) -> pd.DataFrame:
        """The size-weighted average curve over cohorts whose cell is observed and, unless
        ``include_unfinished``, final (:meth:`complete`).

        Columns: ``interval`` (int), ``cohorts`` (int, cohorts contributing), ``size`` (int, their
        traders), ``retained`` (int), ``rate`` (float, retained / size; NaN without data).
        """
        observed = self._counted(include_unfinished)
        rows = []
        for k in self.columns:
            mask = observed[k]
            size = int(self.counts.loc[mask, "size"].sum())
            retained = int(self.counts.loc[mask, k].sum())
            rows.append({"interval": k, "cohorts": int(mask.sum()), "size": size, "retained": retained,
                         "rate": retained / size if size else math.nan})
        return pd.DataFrame(rows, columns=["interval", "cohorts", "size", "retained", "rate"])


def retention_layout(spec: RetentionSpec, date_from: date | None, date_to: date) -> tuple[int, int]:
    """(first, last) cohort period index of the table."""
    date_to = as_date(date_to)
    date_from = as_date(date_from) if date_from is not None else None
    last = index_of(date_to, spec.period, spec.week_start)
    if date_from is None:
        return last - spec.intervals + 1, last
    if date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    return index_of(date_from, spec.period, spec.week_start), last


def compute_retention(engine: Engine, spec: RetentionSpec, *, date_from: date | None = None, date_to: date,
                      trader_filter: TraderFilter = DEFAULT_FILTER, data_end: date | None = None) -> RetentionResult:
    """The retention matrix of ``spec`` over the range (see the module docstring for the rules).

    ``data_end`` is the newest day with data, which marks the periods that have not happened yet;
    read from the database (its data span) unless the caller has it.
    Raises :class:`analytics.periods.ReportTooLarge` beyond the shared limits on cohorts and cells.
    """
    period, week_start, n = spec.period, spec.week_start, spec.intervals
    first, last = retention_layout(spec, date_from, date_to)
    check_report_size(last - first + 1, period=period, what="cohorts", columns=n, column_name="intervals")
    lo = midnight(start_of_index(first, period, week_start))
    hi = midnight(start_of_index(last + 1, period, week_start))  # date_to snapped up to its period's end

    # "Did the trader do it in period P": for trade, every day a position was opened, closed or held.
    starts_src = activity_select(spec.start_event).subquery("start_events")
    if spec.mode == "recurring":
        cohort = period_index(starts_src.c.occurred_at, period, week_start)
        starts = (sa.select(starts_src.c.trader_id, cohort.label("cohort"))
                  .where(starts_src.c.occurred_at >= lo, starts_src.c.occurred_at < hi,
                         trader_filter.restrict(starts_src.c.trader_id))
                  .group_by(starts_src.c.trader_id, cohort))
    else:
        # The first-ever start event over all history; the range only decides who is shown.
        first_at = sa.func.min(starts_src.c.occurred_at)
        firsts = (sa.select(starts_src.c.trader_id, first_at.label("first_at"))
                  .where(trader_filter.restrict(starts_src.c.trader_id))
                  .group_by(starts_src.c.trader_id)
                  .having(first_at >= lo, first_at < hi)).subquery("firsts")
        starts = sa.select(firsts.c.trader_id, period_index(firsts.c.first_at, period, week_start).label("cohort"))
    starts = starts.cte("starts")
    # Column 0: the cohort sizes, whatever the return event.
    query = sa.select(starts.c.cohort, sa.literal(0).label("k"), sa.func.count().label("n")).group_by(starts.c.cohort)

    if n > 1:
        if spec.mode == "recurring" and spec.return_event == spec.start_event:
            # "Did X again": the return pairs are the start pairs, already grouped once.
            returns = sa.select(starts.c.trader_id, starts.c.cohort.label("p")).subquery("returns")
        else:
            ret_src = activity_select(spec.return_event).subquery("return_events")
            ret_period = period_index(ret_src.c.occurred_at, period, week_start)
            # A return only counts after some cohort's period, so nothing before the second period
            # matters; only cohort members' returns are grouped.
            returns = (sa.select(ret_src.c.trader_id, ret_period.label("p"))
                       .where(ret_src.c.occurred_at >= midnight(start_of_index(first + 1, period, week_start)),
                              ret_src.c.occurred_at < hi,
                              ret_src.c.trader_id.in_(sa.select(starts.c.trader_id)))
                       .group_by(ret_src.c.trader_id, ret_period)).subquery("returns")
        k = (returns.c.p - starts.c.cohort).label("k")
        pairs = (sa.select(starts.c.trader_id, starts.c.cohort, k)
                 .join_from(starts, returns, returns.c.trader_id == starts.c.trader_id)
                 .where(returns.c.p > starts.c.cohort, returns.c.p < starts.c.cohort + n)).subquery("pairs")
        if spec.cumulative:
            # A member counts in every column up to their latest return: count members by that column.
            latest = sa.select(pairs.c.cohort, sa.func.max(pairs.c.k).label("k")).group_by(
                pairs.c.trader_id, pairs.c.cohort).subquery("latest")
            cells = sa.select(latest.c.cohort, latest.c.k, sa.func.count()).group_by(latest.c.cohort, latest.c.k)
        else:
            cells = sa.select(pairs.c.cohort, pairs.c.k, sa.func.count()).group_by(pairs.c.cohort, pairs.c.k)
        query = sa.union_all(query, cells)

    with reading(engine) as conn:
        result_rows = _read(conn, query)

    rows = last - first + 1
    matrix = np.zeros((rows, n), dtype=np.int64)
    for cohort_idx, col, count in result_rows:
        matrix[int(cohort_idx) - first, int(col)] = int(count)
    if spec.cumulative and n > 1:
        # Latest-return histogram → "returned in column k or later": a reverse cumulative sum.
        matrix[:, 1:] = np.cumsum(matrix[:, :0:-1], axis=1)[:, ::-1]

    starts_dates = pd.to_datetime([start_of_index(first + i, period, week_start) for i in range(rows)])
    counts = pd.DataFrame(matrix, columns=list(range(n)))
    counts.insert(0, "size", matrix[:, 0].copy())
    counts.insert(0, "cohort_start", starts_dates)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(matrix[:, :1] > 0, matrix / np.maximum(matrix[:, :1], 1), np.nan)
    percentages = pd.DataFrame(fractions, columns=list(range(n)))
    percentages.insert(0, "size", matrix[:, 0].copy())
    percentages.insert(0, "cohort_start", starts_dates)
    if data_end is None:
        span = compute_data_span(engine)
        data_end = span.end if span else None
    return RetentionResult(spec=spec, counts=counts, percentages=percentages,
                           last_period=start_of_index(last, period, week_start),
                           data_end=as_date(data_end) if data_end is not None else None)


# ---------------------------------------------------------------------------------------------
# LTV


LTV_COLUMNS = ["cohort", "cohort_start", "cohort_size", "age", "value_usd", "value_per_trader"]


def _ftd_per_trader(trader_filter: TraderFilter) -> sa.Select:
    """SELECT trader_id, ftd_at: each kept trader's FTD (:func:`analytics.events.first_deposits`), grouped by
    trader, so HAVING conditions on ``selected_columns.ftd_at`` select FTDs by time."""
    first = first_deposits(trader_filter)
    c = first.selected_columns
    return first.with_only_columns(c.trader_id, c.occurred_at.label("ftd_at"))


def compute_ltv(engine: Engine, *, period: Period = "month", ages: int = 6, metric: LtvMetric = "net_deposits",
                date_from: date | None = None, date_to: date, trader_filter: TraderFilter = DEFAULT_FILTER,
                age_unit: Period | None = None, week_start: WeekStart = "monday") -> pd.DataFrame:
    """Cumulative money per trader by age since FTD, per FTD cohort and for all cohorts together.

    Cohorts are the periods of traders' FTDs from ``date_from``'s period (all history when None) to
    ``date_to``. Age ``a`` (unit ``age_unit``, default ``period``: 1, 7 or 30 days) covers money
    from the FTD up to (a+1) units after it. ``metric`` "net_deposits" is approved deposits minus
    approved withdrawals (bonuses, adjustments, fees, declined and pending entries excluded);
    "deposits" is approved deposits only (the MT5 "Lifetime Value" report). Nothing after
    ``date_to`` is used, and a cohort shows an age only once every member has lived through it
    (its period end + (a+1) units <= the end of ``date_to``); the "All cohorts" curve pools the
    cohorts shown at each age, weighted by their sizes.

    Returns columns ``cohort`` (str: "2026-03-02" or "All cohorts"), ``cohort_start`` (datetime64, NaT
    for all cohorts), ``cohort_size`` (int), ``age`` (int, 0 … ages-1), ``value_usd`` (float, the
    cumulative total) and ``value_per_trader`` (float), cohorts oldest first, "All cohorts" last.
    """
    if period not in PERIODS or (age_unit is not None and age_unit not in PERIODS):
        raise ValueError("period and age_unit must be day, week or month")
    if ages < 1:
        raise ValueError("ages must be at least 1")
    if metric not in ("net_deposits", "deposits"):
        raise ValueError(f"unknown metric {metric!r}; use net_deposits or deposits")
    unit_days = AGE_DAYS[age_unit or period]
    date_to = as_date(date_to)
    date_from = as_date(date_from) if date_from is not None else None
    obs_end = midnight(date_to + timedelta(days=1))
    lo = midnight(truncate_date(date_from, period, week_start)) if date_from else None

    ftd = _ftd_per_trader(trader_filter)
    if lo is not None:
        ftd = ftd.having(ftd.selected_columns.ftd_at >= lo)
    # Materialised: read twice by the one statement below (sizes and money), computed once.
    ftd = ftd.having(ftd.selected_columns.ftd_at < obs_end).cte("ftd").prefix_with("MATERIALIZED")
    cohort = period_index(ftd.c.ftd_at, period, week_start).label("cohort")
    # Cohort sizes as rows with age -1, beside the money rows: one statement, one pass for the FTDs.
    sizes = sa.select(cohort, sa.literal(-1).label("age"), sa.cast(sa.func.count(), sa.Double).label("usd")
                      ).group_by(cohort)

    t = transactions
    kinds = ("deposit", "withdrawal") if metric == "net_deposits" else ("deposit",)
    # Withdrawals are stored positive (the kind carries the direction); abs() also tolerates a
    # source that signs them.
    signed = sa.case((t.c.kind == "withdrawal", -sa.func.abs(t.c.amount_usd)), else_=t.c.amount_usd)
    age = sa.cast(sa.func.floor(epoch_seconds(t.c.created_at - ftd.c.ftd_at) / (unit_days * 86400.0)),
                  sa.Integer).label("age")
    money = (sa.select(cohort, age, sa.func.sum(sa.cast(signed, sa.Double)).label("usd"))
             .join_from(ftd, t, t.c.trader_id == ftd.c.trader_id)
             .where(t.c.status == "approved", t.c.kind.in_(kinds), t.c.created_at >= ftd.c.ftd_at,
                    t.c.created_at < obs_end, t.c.created_at < ftd.c.ftd_at + interval(ages * unit_days))
             .group_by(cohort, age))

    with reading(engine) as conn:
        rows = _read(conn, sa.union_all(sizes, money))
    size_rows = [(c, usd) for c, a, usd in rows if a == -1]
    money_rows = [(c, a, usd) for c, a, usd in rows if a != -1]
    if not size_rows:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in zip(
            LTV_COLUMNS, ["object", "datetime64[us]", "int64", "int64", "float64", "float64"], strict=True)})

    cohorts = sorted(int(c) for c, _ in size_rows)
    size_of = {int(c): int(s) for c, s in size_rows}
    totals = np.zeros((len(cohorts), ages))
    pos = {c: i for i, c in enumerate(cohorts)}
    for c, a, usd in money_rows:
        totals[pos[int(c)], int(a)] += float(usd or 0.0)
    cumulative = np.cumsum(totals, axis=1)

    records = []
    pooled_size = np.zeros(ages, dtype=np.int64)
    pooled_value = np.zeros(ages)
    for c in cohorts:
        start = start_of_index(c, period, week_start)
        members_until = min(midnight(start_of_index(c + 1, period, week_start)), obs_end)
        for a in range(ages):
            if members_until + timedelta(days=(a + 1) * unit_days) > obs_end:
                break
            value = cumulative[pos[c], a]
            records.append({"cohort": start.isoformat(), "cohort_start": pd.Timestamp(start),
                            "cohort_size": size_of[c], "age": a, "value_usd": value,
                            "value_per_trader": value / size_of[c]})
            pooled_size[a] += size_of[c]
            pooled_value[a] += value
    for a in range(ages):
        if pooled_size[a]:
            records.append({"cohort": ALL_COHORTS, "cohort_start": pd.NaT, "cohort_size": int(pooled_size[a]),
                            "age": a, "value_usd": pooled_value[a],
                            "value_per_trader": pooled_value[a] / pooled_size[a]})
    frame = pd.DataFrame.from_records(records, columns=LTV_COLUMNS)
    frame["cohort_start"] = pd.to_datetime(frame["cohort_start"])
    return frame


# ---------------------------------------------------------------------------------------------
# Early engagement vs. later retention


BUCKET_COLUMNS = ["bucket", "low", "high", "traders", "retained", "rate", "rate_low", "rate_high"]


@dataclass(frozen=True)
class EngagementResult:
    """Retention by early-session bucket and the relative risk of the "≥ threshold" group.

    ``buckets``: one row per session bucket, columns ``bucket`` (str label, "0-2", "20+"), ``low``
    and ``high`` (int session bounds, ``high`` NaN for the open bucket), ``traders`` (int),
    ``retained`` (int), ``rate`` (float) and ``rate_low`` / ``rate_high`` (95% Wilson interval).
    ``rr`` = P(retained | sessions ≥ threshold) / P(retained | sessions < threshold) with a 95%
    Katz log interval (NaN when a group is empty or has no retained trader); ``n_high`` /
    ``n_low`` and ``retained_high`` / ``retained_low`` are the two groups' sizes and successes.
    ``cutoff`` is the last FTD time that was eligible (FTD + retained_to_day days <= data end).
    """

    buckets: pd.DataFrame
    rr: float
    rr_low: float
    rr_high: float
    n_high: int
    n_low: int
    retained_high: int
    retained_low: int
    threshold: int
    first_days: int
    retained_from_day: int
    retained_to_day: int
    activity: str
    session_event: str
    cutoff: datetime | None

    @property
    def rate_high(self) -> float:
        return self.retained_high / self.n_high if self.n_high else math.nan

    @property
    def rate_low(self) -> float:
        return self.retained_low / self.n_low if self.n_low else math.nan

    def definition(self) -> str:
        """The measurement in plain words, for a caption next to the numbers."""
        kept = ("trading (a position opened, closed or held)" if self.activity == TRADING
                else f"at least one {self.activity} event")
        return (f"FTD traders whose day {self.retained_to_day} after FTD is within the data, bucketed by "
                f"{self.session_event} events in days 0–{self.first_days - 1} after FTD; retained = {kept} "
                f"in days {self.retained_from_day}–{self.retained_to_day - 1} after FTD. "
                "A correlation, not a cause: traders who log in more differ in many other ways.")


def _bucket_edges(edges: tuple[int, ...], threshold: int) -> list[int]:
    # The headline split must fall on a bucket edge, or one bucket would straddle both groups.
    return sorted({0, threshold, *(e for e in edges if e >= 0)})


def compute_engagement_retention(
    engine: Engine, *, threshold: int = 10, first_days: int = 30, retained_from_day: int = 90,
    retained_to_day: int = 120, activity: str = "trade", session_event: str = "login", date_to: date | None = None,
    trader_filter: TraderFilter = DEFAULT_FILTER, bucket_edges: tuple[int, ...] = (0, 3, 6, 10, 20),
) -> EngagementResult:
    """Do traders with many sessions early on stay longer? (the "10+ sessions → 3× retention" claim)

    Population: traders whose FTD (first approved deposit) is at least ``retained_to_day`` days before
    the data end (the end of ``date_to``, else of the newest event), so the whole retention window
    is observed for everyone. Sessions = ``session_event`` events in [FTD, FTD + ``first_days`` days).
    Retained = any ``activity`` in [FTD + ``retained_from_day`` days, FTD + ``retained_to_day``
    days): for trade, a position opened, closed or held then (:func:`analytics.events.activity_spans`).
    Buckets start at ``bucket_edges`` (plus 0 and ``threshold``).
    """
    if not 0 <= retained_from_day < retained_to_day or first_days < 1 or threshold < 1:
        raise ValueError("need first_days >= 1, threshold >= 1 and 0 <= retained_from_day < retained_to_day")
    if date_to is None:
        span = compute_data_span(engine)
        date_to = span.end if span else None
    else:
        date_to = as_date(date_to)
    edges = _bucket_edges(bucket_edges, threshold)
    if date_to is None:
        cutoff = None
        counts: list[sa.Row] = []
    else:
        cutoff = midnight(date_to + timedelta(days=1)) - timedelta(days=retained_to_day)
        ftd = _ftd_per_trader(trader_filter)
        ftd = ftd.having(ftd.selected_columns.ftd_at <= cutoff).cte("ftd")
        sess_src = event_select(session_event).subquery("session_events")
        # An inner join bounded by the last possible window end, then zeros for traders without
        # sessions: PostgreSQL runs this as one parallel hash join instead of an index probe and a heap
        # fetch per session (its visibility map is often unset after bulk loads).
        early = (sa.select(ftd.c.trader_id, sa.func.count().label("sessions"))
                 .join_from(ftd, sess_src, sess_src.c.trader_id == ftd.c.trader_id)
                 .where(sess_src.c.occurred_at >= ftd.c.ftd_at,
                        sess_src.c.occurred_at < ftd.c.ftd_at + interval(first_days),
                        sess_src.c.occurred_at < cutoff + timedelta(days=first_days))
                 .group_by(ftd.c.trader_id)).subquery("early")
        # Active at some moment of the window: for trade, a position opened, closed or held in it.
        act_src = activity_spans(activity).subquery("activity_events")
        window = (act_src.c.started_at < ftd.c.ftd_at + interval(retained_to_day),
                  act_src.c.ended_at >= ftd.c.ftd_at + interval(retained_from_day))
        if engine.dialect.name == "postgresql":
            # EXISTS stops at the first activity in the window: one index probe per trader instead of
            # a heap fetch per activity row.
            came_back = sa.exists(sa.select(act_src.c.trader_id).where(
                act_src.c.trader_id == ftd.c.trader_id, *window))
            retained = sa.case((came_back, 1), else_=0)
            base = sa.select(ftd.c.trader_id).select_from(ftd)
        else:
            # DuckDB decorrelates EXISTS into a slower mark join; a hash join and DISTINCT is faster.
            kept = (sa.select(ftd.c.trader_id).join_from(ftd, act_src, act_src.c.trader_id == ftd.c.trader_id)
                    .where(*window).distinct()).subquery("kept")
            retained = sa.case((kept.c.trader_id.is_not(None), 1), else_=0)
            base = sa.select(ftd.c.trader_id).join_from(ftd, kept, kept.c.trader_id == ftd.c.trader_id, isouter=True)
        per_trader = (base.add_columns(sa.func.coalesce(early.c.sessions, 0).label("sessions"),
                                       retained.label("retained"))
                      .join(early, early.c.trader_id == ftd.c.trader_id, isouter=True)).subquery("per_trader")
        query = (sa.select(per_trader.c.sessions, per_trader.c.retained, sa.func.count().label("n"))
                 .group_by(per_trader.c.sessions, per_trader.c.retained))
        with reading(engine) as conn:
            counts = _read(conn, query)

    per_session = pd.DataFrame([(int(s), int(r), int(n)) for s, r, n in counts],
                               columns=["sessions", "retained", "n"])
    rows = []
    for i, low in enumerate(edges):
        high = edges[i + 1] - 1 if i + 1 < len(edges) else None
        sel = per_session[(per_session["sessions"] >= low)
                          & ((per_session["sessions"] <= high) if high is not None else True)]
        n = int(sel["n"].sum())
        kept = int(sel.loc[sel["retained"] == 1, "n"].sum())
        rate = wilson_interval(kept, n)
        label = f"{low}+" if high is None else (str(low) if high == low else f"{low}-{high}")
        rows.append({"bucket": label, "low": low, "high": math.nan if high is None else high, "traders": n,
                     "retained": kept, "rate": rate.value, "rate_low": rate.low, "rate_high": rate.high})
    buckets = pd.DataFrame(rows, columns=BUCKET_COLUMNS)

    high_group = per_session[per_session["sessions"] >= threshold]
    low_group = per_session[per_session["sessions"] < threshold]
    n_high, n_low = int(high_group["n"].sum()), int(low_group["n"].sum())
    r_high = int(high_group.loc[high_group["retained"] == 1, "n"].sum())
    r_low = int(low_group.loc[low_group["retained"] == 1, "n"].sum())
    rr = relative_risk(r_high, n_high, r_low, n_low)
    return EngagementResult(
        buckets=buckets, rr=rr.value, rr_low=rr.low, rr_high=rr.high, n_high=n_high, n_low=n_low,
        retained_high=r_high, retained_low=r_low, threshold=threshold, first_days=first_days,
        retained_from_day=retained_from_day, retained_to_day=retained_to_day, activity=activity,
        session_event=session_event, cutoff=cutoff)
