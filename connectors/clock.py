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

        ``timezone(zone, timezone('UTC', ts))`` on both DuckDB (ICU) and PostgreSQL.
        """
        if self.is_utc:
            return column
        wall = sa.func.timezone(self.zone.key, sa.func.timezone("UTC", column))
        return sa.cast(wall + _interval(self.shift) if self.shift else wall, sa.DateTime)

    def utc(self, column: ColumnElement) -> ColumnElement:
        """The UTC instant (naive TIMESTAMP) of the local wall times in ``column`` (the inverse
        of :meth:`local`)."""
        if self.is_utc:
            return column
        wall = column - _interval(self.shift) if self.shift else column
        return sa.cast(sa.func.timezone("UTC", sa.func.timezone(self.zone.key, wall)), sa.DateTime)

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
    return sa.literal_column(f"INTERVAL '{int(shift.total_seconds())} seconds'")


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
