"""When an analysis looks: date ranges, periods (day, week, month) and their arithmetic, in Python
and in SQL. Every analysis does its period arithmetic here.

The SQL here is the portable subset DuckDB and PostgreSQL share: ``date_trunc`` (weeks start on
Monday in both), ``date_part``, ``EXTRACT(EPOCH FROM ...)`` and ``INTERVAL`` literals.

Periods are also numbered (:func:`period_index`): whole days, weeks or months since 1970, which
both backends compute from a timestamp cheaply and which make "k periods later" a subtraction.

Days, weeks and months are the reporting time zone's (connectors.clock, TRADERLENS_REPORTING_TZ;
UTC by default). Stored times are UTC instants, so a boundary is the UTC instant of a local
midnight (:func:`midnight`) and a period is found from an instant's local wall time
(:func:`period_start`, :func:`period_index`, :func:`index_of_times`). Durations ("within 7 days of
registering", a funnel's conversion window) are elapsed time and need no zone. A day boundary
moved by whole days is computed on dates, then turned into an instant (``midnight(day - n)``), never
as ``instant - timedelta(days=n)``, which is an hour off across a daylight-saving change.

Also the size limits every period-based analysis shares (:func:`check_report_size`), so a page
and the command line refuse the same requests with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors.clock import reporting_zone
from connectors.errors import TraderLensError

Period = Literal["day", "week", "month"]
WeekStart = Literal["monday", "sunday"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

# Days an analysis may name. Python's dates end at 9999-12-31 (one day or month later overflows)
# and pandas' nanosecond timestamps span 1677-2262; a broker's data lies well inside these.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)
# Rows of a period-based report (lifecycle periods, retention cohorts, funnel trend periods):
# ten years of days. Lifecycle sends one VALUES row (3 bind parameters) per period to the database,
# and PostgreSQL takes at most 65,535 parameters per statement.
MAX_PERIODS = 3_660
# Cells of a retention matrix (cohorts x intervals): the 18-month demo by day with the pages' 60
# intervals is 33,000; this is over seven times that.
MAX_CELLS = 250_000
PERIOD_ADJECTIVES: dict[str, str] = {"day": "daily", "week": "weekly", "month": "monthly"}
EPOCH = date(1970, 1, 1)
# 1970-01-01 was a Thursday: weeks are counted from the Monday (or Sunday) before it.
WEEK_ORIGIN: dict[str, date] = {"monday": date(1969, 12, 29), "sunday": date(1969, 12, 28)}
INTERVAL_UNITS = ("seconds", "days")


class ReportTooLarge(TraderLensError):
    """A period-based analysis over more periods or cells than :data:`MAX_PERIODS` / :data:`MAX_CELLS`."""


@dataclass(frozen=True)
class DateRange:
    """Whole days of the reporting time zone from ``start`` to ``end``, both inclusive."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date range ends ({self.end}) before it starts ({self.start})")

    @property
    def start_ts(self) -> datetime:
        return midnight(self.start)

    @property
    def end_ts(self) -> datetime:
        """The first instant after the range (exclusive bound, a UTC instant like ``start_ts``)."""
        return midnight(self.end + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The range of the same length that ends the day before this one starts."""
        return DateRange(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def contains(self, column: ColumnElement) -> ColumnElement[bool]:
        """``start_ts <= column < end_ts`` for a column of UTC instants (raw times or rollup days)."""
        return sa.and_(column >= self.start_ts, column < self.end_ts)


def period_start(column: ColumnElement, period: Period, week_start: WeekStart = "monday") -> ColumnElement:
    """The start of the local day, week or month the instants of ``column`` fall in (a TIMESTAMP of
    local wall time: a label for the period, not an instant)."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use day, week or month")
    column = reporting_zone().local(column)
    if period == "week" and week_start == "sunday":
        # date_trunc weeks start on Monday; shifting by a day makes them start on Sunday.
        one_day = interval(1)
        return sa.cast(sa.func.date_trunc("week", column + one_day) - one_day, sa.DateTime)
    return sa.cast(sa.func.date_trunc(period, column), sa.DateTime)


def period_index(ts: ColumnElement, period: Period, week_start: WeekStart = "monday") -> ColumnElement[int]:
    """Whole periods from 1970 to the period ``ts`` falls in: days, weeks (from ``week_start``) or months.

    Double arithmetic on purpose: date_part is a double on PostgreSQL, and EXTRACT or a decimal
    literal would make the expression NUMERIC there, several times slower over millions of rows.
    ``ts`` holds UTC instants; the period is the reporting time zone's.
    """
    ts = reporting_zone().local(ts)
    if period == "month":
        year, month = (sa.func.date_part(sa.literal_column(f"'{part}'"), ts) for part in ("year", "month"))
        return sa.cast(year * 12 + month - 1, sa.Integer)
    days = sa.cast(ts, sa.Date) - sa.literal_column("DATE '1970-01-01'")
    if period == "day":
        return sa.cast(days, sa.Integer)
    if period != "week":
        raise ValueError(f"unknown period {period!r}; use day, week or month")
    shift = (EPOCH - WEEK_ORIGIN[week_start]).days
    return sa.cast(sa.func.floor(sa.cast(days + shift, sa.Double) / sa.literal_column("7.0")), sa.Integer)


def index_of(day: date, period: Period, week_start: WeekStart = "monday") -> int:
    """:func:`period_index` on the Python side."""
    if period == "month":
        return day.year * 12 + day.month - 1
    if period == "day":
        return (day - EPOCH).days
    return (day - WEEK_ORIGIN[week_start]).days // 7


def index_of_times(us: np.ndarray, period: Period, week_start: WeekStart = "monday") -> np.ndarray:
    """:func:`index_of` of many instants at once, given as int64 microseconds since 1970 (UTC); the
    periods are the reporting time zone's."""
    us = reporting_zone().local_us(us)
    days = us // 86_400_000_000  # floor division: instants before 1970 fall in earlier periods too
    if period == "day":
        return days
    if period == "week":
        return (days + (EPOCH - WEEK_ORIGIN[week_start]).days) // 7
    if period == "month":
        return us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) + index_of(EPOCH, "month")
    raise ValueError(f"unknown period {period!r}; use day, week or month")


def start_of_index(index: int, period: Period, week_start: WeekStart = "monday") -> date:
    """The first day of the period with this :func:`period_index`."""
    if period == "month":
        return date(index // 12, index % 12 + 1, 1)
    if period == "day":
        return EPOCH + timedelta(days=index)
    return WEEK_ORIGIN[week_start] + timedelta(weeks=index)


def interval(n: int, unit: str = "days") -> ColumnElement:
    """An SQL ``INTERVAL 'n days'`` (or seconds) literal both backends parse.

    A literal rather than a bound parameter: DuckDB has no make_interval() for a bound value, and a
    constant lets both planners treat it like any other. ``n`` is always made an int here, so no
    text reaches the SQL.
    """
    if unit not in INTERVAL_UNITS:
        raise ValueError(f"unknown interval unit {unit!r}; use {' or '.join(INTERVAL_UNITS)}")
    return sa.literal_column(f"INTERVAL '{int(n)} {unit}'")


def as_date(day: date) -> date:
    """A date from a date, datetime or pandas Timestamp: the time of day plays no part in a range."""
    return day.date() if isinstance(day, datetime) else day


def midnight(day: date) -> datetime:
    """The first instant of the reporting time zone's ``day``, as a naive UTC instant."""
    return reporting_zone().to_utc(datetime.combine(day, datetime.min.time()))


def local_time(column: ColumnElement) -> ColumnElement:
    """The reporting time zone's wall time (naive TIMESTAMP) of a column of UTC instants."""
    return reporting_zone().local(column)


def local_date(instant: datetime) -> date:
    """The reporting time zone's day a naive UTC instant falls on."""
    return reporting_zone().to_local(instant).date()


def epoch_seconds(column: ColumnElement) -> ColumnElement[float]:
    """Seconds since 1970-01-01 of a timestamp, or the length of an interval, as a float."""
    return sa.cast(sa.extract("epoch", column), sa.Double)


def step_period(start: date, period: Period, n: int = 1, week_start: WeekStart = "monday") -> date:
    """The start of the period ``n`` periods after the one containing ``start`` (Python side)."""
    first = truncate_date(start, period, week_start)
    if period == "day":
        return first + timedelta(days=n)
    if period == "week":
        return first + timedelta(weeks=n)
    month = first.month - 1 + n
    return date(first.year + month // 12, month % 12 + 1, 1)


def truncate_date(day: date, period: Period, week_start: WeekStart = "monday") -> date:
    """The start of the period containing ``day`` (Python side, same rules as :func:`period_start`)."""
    if period == "day":
        return day
    if period == "week":
        offset = day.weekday() if week_start == "monday" else (day.weekday() + 1) % 7
        return day - timedelta(days=offset)
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}; use day, week or month")


def period_starts(date_range: DateRange, period: Period, week_start: WeekStart = "monday") -> list[date]:
    """The start of every day, week or month that overlaps ``date_range``, oldest first."""
    out, current = [], truncate_date(date_range.start, period, week_start)
    while current <= date_range.end:
        out.append(current)
        current = step_period(current, period, 1, week_start)
    return out


def add_months(day: date, n: int) -> date:
    """``day`` moved by ``n`` calendar months (negative: back), on the month's last day when the
    target month is shorter (2026-03-31 minus one month is 2026-02-28)."""
    month = day.month - 1 + n
    year, month = day.year + month // 12, month % 12 + 1
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def comparison_range(date_range: DateRange, period: Period) -> tuple[DateRange, int]:
    """The range to draw as "previous" on a trend by ``period``, and how many periods back it lies.

    It is ``date_range`` moved back by as many whole days, weeks or months as the range spans, so
    previous periods line up one-to-one with the current ones (``step_period(p, period, n)`` maps
    a previous period start onto the current one). For days this is ``date_range.previous()``.
    """
    n = len(period_starts(date_range, period))
    if period == "day":
        return date_range.previous(), n
    if period == "week":
        return DateRange(date_range.start - timedelta(weeks=n), date_range.end - timedelta(weeks=n)), n
    return DateRange(add_months(date_range.start, -n), add_months(date_range.end, -n)), n


def count_periods(start: date, end: date, period: Period, week_start: WeekStart = "monday") -> int:
    """Periods from the one containing ``start`` to the one containing ``end``, both included (0 if
    ``end`` is before ``start``'s period)."""
    first, last = truncate_date(start, period, week_start), truncate_date(end, period, week_start)
    if period == "month":
        n = (last.year - first.year) * 12 + last.month - first.month
    else:
        n = (last - first).days // (7 if period == "week" else 1)
    return max(n + 1, 0)


def check_report_size(periods: int, *, period: Period, what: str, columns: int = 1, column_name: str = "") -> None:
    """Raise :class:`ReportTooLarge` when ``periods`` rows (of ``columns`` each) exceed the limits.

    ``what`` names the rows ("cohorts", "periods"), ``column_name`` the columns ("intervals") of a
    two-dimensional result; the message says which limit was hit and what to change.
    """
    rows = f"{periods:,} {PERIOD_ADJECTIVES.get(period, period)} {what}"
    if periods > MAX_PERIODS:
        raise ReportTooLarge(f"{rows} is more than the limit of {MAX_PERIODS:,}: shorten the date range "
                             "or use a longer period")
    if periods * columns > MAX_CELLS:
        raise ReportTooLarge(f"{rows} x {columns:,} {column_name} = {periods * columns:,} cells is more than the "
                             f"limit of {MAX_CELLS:,}: shorten the date range, use a longer period or fewer "
                             f"{column_name}")
