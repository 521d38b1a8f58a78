"""When an analysis looks: date ranges, their comparison period, and period truncation in SQL.

The SQL here is the portable subset DuckDB and PostgreSQL share: ``date_trunc`` (weeks start on
Monday in both), ``EXTRACT(EPOCH FROM ...)`` and ``INTERVAL`` literals.

Also the size limits every period-based analysis shares (:func:`check_report_size`), so a page
and the command line refuse the same requests with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from analytics.reading import reading
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


class ReportTooLarge(TraderLensError):
    """A period-based analysis over more periods or cells than :data:`MAX_PERIODS` / :data:`MAX_CELLS`."""


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days from ``start`` to ``end``, both inclusive."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date range ends ({self.end}) before it starts ({self.start})")

    @property
    def start_ts(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time())

    @property
    def end_ts(self) -> datetime:
        """The first instant after the range (exclusive bound)."""
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time())

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The range of the same length that ends the day before this one starts."""
        return DateRange(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def contains(self, column: ColumnElement) -> ColumnElement[bool]:
        """``start_ts <= column < end_ts``."""
        return sa.and_(column >= self.start_ts, column < self.end_ts)


def period_start(column: ColumnElement, period: Period, week_start: WeekStart = "monday") -> ColumnElement:
    """The start of the day, week or month ``column`` falls in (a TIMESTAMP)."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use day, week or month")
    if period == "week" and week_start == "sunday":
        # date_trunc weeks start on Monday; shifting by a day makes them start on Sunday.
        one_day = sa.literal_column("INTERVAL '1 day'")
        return sa.cast(sa.func.date_trunc("week", column + one_day) - one_day, sa.DateTime)
    return sa.cast(sa.func.date_trunc(period, column), sa.DateTime)


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


def compute_data_span(engine: sa.Engine) -> DateRange | None:
    """The first and last UTC day with any event in ``trader_events``; None for an empty database.

    Reads min/max of each base table's time column instead of the view: PostgreSQL would scan
    every branch of the view's UNION ALL (seconds on a large broker), while most of these columns
    are indexed.
    """
    from connectors.schema import kyc_events, portal_events, sessions, traders, trades, transactions

    t = transactions.c
    in_view = sa.or_(sa.and_(t.kind.in_(("deposit", "withdrawal")), t.status == "approved"),
                     sa.and_(t.kind == "deposit", t.status == "declined"))  # as the view selects them
    sources = [(traders.c.lead_at, None), (traders.c.registered_at, None), (kyc_events.c.occurred_at, None),
               (t.created_at, in_view), (trades.c.opened_at, None), (sessions.c.started_at, None),
               (portal_events.c.occurred_at, None)]
    firsts, lasts = [], []
    with reading(engine) as conn:
        for column, condition in sources:
            query = sa.select(sa.func.min(column), sa.func.max(column))
            first, last = conn.execute(query if condition is None else query.where(condition)).one()
            if first is not None:
                firsts.append(first)
                lasts.append(last)
    if not firsts:
        return None
    return DateRange(min(firsts).date(), max(lasts).date())
