"""The reporting time zone: whose days, weeks and months every report counts in.

The database holds every time as a naive UTC instant. Brokers close their books on their own
day (server time, often GMT+2/+3, or the New York 17:00 close of the FX market), so a deposit at
23:30 in New York on 30 November belongs to November for a New York desk although it is
1 December in UTC. ``TRADERLENS_REPORTING_TZ`` names that day:

- an IANA zone name: ``UTC`` (the default), ``Europe/Nicosia``, ``America/New_York``;
- optionally followed by a shift of the day's start, ``+HH:MM`` or ``-HH:MM``:
  ``America/New_York+07:00`` is the FX trading day, which starts at 17:00 in New York (the
  usual "GMT+2, GMT+3 in the northern summer" server time, following US daylight saving).

The rule everything follows: every time in the database, raw or rolled up, is a UTC instant. A
day boundary is the UTC instant of the local midnight (:meth:`ReportingZone.to_utc`), and a
period is found by converting an instant to local wall time first (:meth:`ReportingZone.local`).
In UTC every conversion is the identity and costs nothing.

Connectors hold this (not analytics) because the rollups bucket by it too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from connectors.errors import TraderLensError

ENV = "TRADERLENS_REPORTING_TZ"
DEFAULT = "UTC"
_SPEC = re.compile(r"^(?P<zone>[A-Za-z][A-Za-z0-9_+\-/]*?)(?:(?P<sign>[+-])(?P<h>\d{2}):(?P<m>\d{2}))?$")


class BadTimeZone(TraderLensError):
    """``TRADERLENS_REPORTING_TZ`` does not name a time zone."""


@dataclass(frozen=True)
class ReportingZone:
    """A reporting time zone: an IANA ``zone`` and the ``shift`` of its day's start (usually 0)."""

    name: str
    zone: ZoneInfo
    shift: timedelta = timedelta(0)

    @property
    def is_utc(self) -> bool:
        """True when local time is UTC (every conversion is skipped)."""
        return self.zone.key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/UCT", "UCT", "Zulu") and not self.shift

    # ---- SQL --------------------------------------------------------------------------------

    def local(self, column: ColumnElement) -> ColumnElement:
        """The local wall time (naive TIMESTAMP) of the UTC instants in ``column``.

        Within :data:`TABLE_YEARS` the zone's offsets are a table of transitions known here, so
        the conversion is ``column + offset`` with the offset picked by a binary tree of CASE
        comparisons (about five per row): 0.22 s on 5 M rows where DuckDB's ICU ``timezone()``
        took 1.98 s, and no slower than PostgreSQL's. Outside, ``timezone(zone, timezone('UTC',
        ts))``, which both backends have.
        """
        if self.is_utc:
            return column
        bounds, offsets = _transitions(self.zone.key)
        shifted = [o + self.shift for o in offsets]
        table = column + _offset_tree(column, bounds, shifted)
        wall = sa.func.timezone(self.zone.key, sa.func.timezone("UTC", column))
        exact = wall + _interval(self.shift) if self.shift else wall
        return sa.cast(sa.case((_in_table(column), table), else_=exact), sa.DateTime)

    def utc(self, column: ColumnElement) -> ColumnElement:
        """The UTC instant (naive TIMESTAMP) of the local wall times in ``column`` (the inverse
        of :meth:`local`, like :meth:`to_utc`: a wall time that happens twice is the first, one
        skipped by a change to summer time takes the offset before it)."""
        if self.is_utc:
            return column
        bounds, offsets = _transitions(self.zone.key)
        shifted = [o + self.shift for o in offsets]
        # A wall time before T + max(offset before, offset after) is read with the offset before T.
        walls = [t + max(a, b) for t, a, b in zip(bounds, shifted, shifted[1:], strict=False)]
        table = column - _offset_tree(column, walls, shifted)
        return sa.cast(sa.case((_in_table(column), table), else_=self._exact_utc(column)), sa.DateTime)

    def day_start(self, column: ColumnElement) -> ColumnElement:
        """The UTC instant of the local midnight that starts the day of each instant in ``column``
        (how the rollups key their days).

        With the database's own time zone functions rather than :meth:`local` and :meth:`utc`:
        their CASE trees nested in each other are thousands of nodes, which took DuckDB a minute
        to plan; the rollups are rebuilt once per change of zone, and this costs only run time.
        """
        if self.is_utc:
            return sa.cast(sa.func.date_trunc("day", column), sa.DateTime)
        wall = sa.func.timezone(self.zone.key, sa.func.timezone("UTC", column))
        local = wall + _interval(self.shift) if self.shift else wall
        return sa.cast(self._exact_utc(sa.cast(sa.func.date_trunc("day", local), sa.DateTime)), sa.DateTime)

    def _exact_utc(self, column: ColumnElement) -> ColumnElement:
        wall = column - _interval(self.shift) if self.shift else column
        return sa.func.timezone("UTC", sa.func.timezone(self.zone.key, wall))

    # ---- Python -----------------------------------------------------------------------------

    def to_utc(self, local: datetime) -> datetime:
        """The naive UTC instant of a naive local wall time (a local midnight, usually)."""
        if self.is_utc:
            return local
        wall = (local - self.shift).replace(tzinfo=self.zone)
        return wall.astimezone(UTC).replace(tzinfo=None)

    def to_local(self, instant: datetime) -> datetime:
        """The naive local wall time of a naive UTC instant."""
        if self.is_utc:
            return instant
        wall = instant.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None)
        return wall + self.shift

    def local_us(self, us: np.ndarray) -> np.ndarray:
        """:meth:`to_local` of many instants given as int64 microseconds since 1970 (UTC)."""
        if self.is_utc or len(us) == 0:
            return us
        utc = pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")
        wall = utc.tz_convert(self.zone.key).tz_localize(None).as_unit("us")
        return wall.asi8 + int(self.shift / timedelta(microseconds=1))

    def describe(self, at: datetime | None = None) -> str:
        """How pages and reports name the zone: "UTC", "America/New_York (UTC-05:00)"."""
        if self.is_utc:
            return "UTC"
        instant = at or datetime.now(UTC).replace(tzinfo=None)
        offset = self.to_local(instant) - instant
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        return f"{self.name} (UTC{sign}{minutes // 60:02d}:{minutes % 60:02d})"


def _interval(shift: timedelta) -> ColumnElement:
    # A literal both backends parse; the value is an int made here, so no text reaches the SQL.
    # Literals rather than bound parameters: the same expression in SELECT and GROUP BY must be
    # the same text for PostgreSQL.
    return sa.literal_column(f"INTERVAL '{int(shift.total_seconds())} seconds'")


def _timestamp(at: datetime) -> ColumnElement:
    return sa.literal_column(f"TIMESTAMP '{at:%Y-%m-%d %H:%M:%S}'")


# The years whose offsets :meth:`ReportingZone.local` reads from a table instead of the database's
# time zone functions: the last eight and the next three, where nearly every query looks. Each
# year adds two CASE nodes (a daylight-saving zone changes twice a year) to every conversion in
# the SQL: with 70 years, planning alone made a retention matrix 15 times slower on DuckDB (0.50 s
# against 0.03 s in UTC); with these eleven it runs as fast as in UTC
# (benchmarks/reporting_zone_bench.py). Older times are converted exactly all the same, only slower.
TABLE_YEARS = (datetime.now(UTC).year - 8, datetime.now(UTC).year + 4)


def _in_table(column: ColumnElement) -> ColumnElement[bool]:
    first, end = (datetime(year, 1, 1) for year in TABLE_YEARS)
    return sa.and_(column >= _timestamp(first), column < _timestamp(end))


def _offset_tree(column: ColumnElement, bounds: list[datetime], offsets: list[timedelta]) -> ColumnElement:
    """The offset of ``column``: ``offsets[i]`` between ``bounds[i-1]`` and ``bounds[i]`` (one more
    offset than bounds), as nested CASEs that halve the candidates at each level."""
    if not bounds:
        return _interval(offsets[0])
    mid = len(bounds) // 2
    return sa.case((column < _timestamp(bounds[mid]), _offset_tree(column, bounds[:mid], offsets[:mid + 1])),
                   else_=_offset_tree(column, bounds[mid + 1:], offsets[mid + 1:]))


@lru_cache(maxsize=16)
def _transitions(key: str) -> tuple[list[datetime], list[timedelta]]:
    """(the UTC instants within :data:`TABLE_YEARS` at which zone ``key`` changes its offset, the
    offset before the first, between each two and after the last). Found a day at a time, then to
    the minute by halving: about 26,000 look-ups, once per zone and process."""
    zone = ZoneInfo(key)

    def offset(at: datetime) -> timedelta:
        return at.replace(tzinfo=UTC).astimezone(zone).utcoffset() or timedelta(0)

    bounds: list[datetime] = []
    at, end = (datetime(year, 1, 1) for year in TABLE_YEARS)
    offsets = [offset(at)]
    while at < end:
        step = at + timedelta(days=1)
        if offset(step) != offsets[-1]:
            lo, hi = at, step  # offset(lo) is the old one, offset(hi) the new
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == offsets[-1] else (lo, mid)
            bounds.append(hi.replace(second=0, microsecond=0))
            offsets.append(offset(step))
        at = step
    return bounds, offsets


@lru_cache(maxsize=16)
def parse_zone(spec: str) -> ReportingZone:
    """A :class:`ReportingZone` from ``Zone/Name`` or ``Zone/Name+HH:MM``; :class:`BadTimeZone`
    with the reason otherwise."""
    text = spec.strip()
    match = _SPEC.match(text)
    usage = ("use an IANA time zone name such as UTC, Europe/Nicosia or America/New_York, optionally "
             "with the start of the day shifted, as in America/New_York+07:00 (the FX day that starts "
             "at 17:00 in New York)")
    if not match:
        raise BadTimeZone(f"{ENV}={spec[:80]!r} is not a time zone: {usage}")
    try:
        zone = ZoneInfo(match["zone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTimeZone(f"{ENV}={spec[:80]!r}: there is no time zone named {match['zone']!r}; {usage}") from None
    shift = timedelta(0)
    if match["sign"]:
        hours, minutes = int(match["h"]), int(match["m"])
        if hours > 23 or minutes > 59:
            raise BadTimeZone(f"{ENV}={spec[:80]!r}: the shift must be under 24 hours; {usage}")
        shift = timedelta(hours=hours, minutes=minutes) * (-1 if match["sign"] == "-" else 1)
    return ReportingZone(text, zone, shift)


def reporting_zone() -> ReportingZone:
    """The configured reporting time zone (``TRADERLENS_REPORTING_TZ``, UTC when unset or empty)."""
    return parse_zone(os.environ.get(ENV, "").strip() or DEFAULT)
