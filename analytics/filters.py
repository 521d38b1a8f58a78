"""Which traders an analysis looks at: the global filters every page and report applies the same way.

A :class:`TraderFilter` turns into one SQL subquery of trader ids, so each analytics function
applies it with a single semi-join (``trader_id IN (...)``) inside its own query.

Saved segments (analytics.segments) take part through their current members (``segment_members``, as of
each segment's last refresh): :attr:`TraderFilter.segments` keeps the traders in *any* of the chosen
segments, and :meth:`TraderFilter.within` narrows a filter to one segment's members for a breakdown, where
a trader in two segments counts in both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from analytics.reading import reading
from connectors.schema import accounts, segment_members, segments, traders

# A trader without a VIP tier is shown and filtered as "standard".
STANDARD_TIER = "standard"
# A breakdown by segment shows the traders in none of the segments under this name.
NO_SEGMENT = "In no segment"
# Fields other than the attribute conditions: test accounts are decided on their own, and the stamp of
# the segments' freshness keeps nobody out.
_NOT_CONDITIONS = ("include_test", "segments_as_of")


@dataclass(frozen=True)
class TraderFilter:
    """Trader attributes to keep (an empty tuple keeps everyone). Test accounts are left out
    unless ``include_test``; a platform keeps traders with at least one account on it.

    ``segments`` (segment ids) keeps the current members of any of them; ``within_segment``, set by
    :meth:`within`, also requires membership of that one. ``segments_as_of`` is no condition: it is the
    newest refresh of the segments the view reads (see :meth:`FilterOptions.stamp`), part of the filter's
    identity so that a cached result computed on older membership is not served after a refresh.
    """

    countries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    affiliates: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    vip_tiers: tuple[str, ...] = ()
    include_test: bool = False
    segments: tuple[int, ...] = ()
    within_segment: int | None = None
    segments_as_of: datetime | None = None

    def is_everyone(self) -> bool:
        """True when the filter keeps every trader (test accounts included)."""
        return self.include_test and not any(getattr(self, f.name) not in (None, ())
                                             for f in fields(self) if f.name not in _NOT_CONDITIONS)

    def within(self, segment_id: int, refreshed_at: datetime | None = None) -> TraderFilter:
        """This filter narrowed to the current members of ``segment_id`` (a breakdown's group); its
        ``refreshed_at`` moves the stamp on when newer."""
        stamps = [s for s in (self.segments_as_of, refreshed_at) if s is not None]
        return replace(self, within_segment=int(segment_id), segments_as_of=max(stamps) if stamps else None)

    def conditions(self) -> list[ColumnElement[bool]]:
        """WHERE conditions over the ``traders`` table."""
        out: list[ColumnElement[bool]] = []
        if not self.include_test:
            out.append(traders.c.is_test.is_(sa.false()))
        if self.countries:
            out.append(traders.c.country.in_(self.countries))
        if self.channels:
            out.append(traders.c.acquisition_channel.in_(self.channels))
        if self.affiliates:
            out.append(traders.c.affiliate_id.in_(self.affiliates))
        if self.vip_tiers:
            named = [t for t in self.vip_tiers if t != STANDARD_TIER]
            tier = traders.c.vip_tier.in_(named) if named else sa.false()
            out.append(sa.or_(tier, traders.c.vip_tier.is_(None)) if STANDARD_TIER in self.vip_tiers else tier)
        if self.platforms:
            out.append(sa.exists().where(accounts.c.trader_id == traders.c.trader_id,
                                         accounts.c.platform.in_(self.platforms)))
        if self.segments:
            out.append(traders.c.trader_id.in_(_members_of(self.segments)))
        if self.within_segment is not None:
            out.append(traders.c.trader_id.in_(_members_of((self.within_segment,))))
        return out

    def trader_ids(self) -> sa.Select:
        """SELECT trader_id FROM traders WHERE <the filter>."""
        return sa.select(traders.c.trader_id).where(*self.conditions())

    def restrict(self, trader_id: ColumnElement) -> ColumnElement[bool]:
        """A condition keeping rows whose ``trader_id`` passes the filter."""
        if self.is_everyone():
            return sa.true()
        if not self.narrows():
            # Only the test accounts are left out: an anti-join against those few hundred ids is a
            # small hash table, where the IN below builds one of every other trader (200,000): a
            # 215,000-row funnel read went 14 -> 9 ms on DuckDB and 89 -> 61 ms on PostgreSQL (whose
            # NOT IN would be slower still, 106 ms). Equal results: every event table's trader_id is a
            # NOT NULL foreign key to traders, and is_test is NOT NULL.
            # (An alias: the outer query may read ``traders`` itself, which must stay correlated.)
            test = traders.alias("test_traders")
            return ~sa.exists().where(test.c.trader_id == trader_id, test.c.is_test.is_(sa.true())
                                      ).correlate_except(test)
        return trader_id.in_(self.trader_ids())

    def narrows(self) -> bool:
        """True when the filter keeps only some traders beyond leaving out test accounts.

        Aggregations over millions of rows use it to decide where to filter: early (on the raw
        rows) when the filter keeps a minority, late (on per-trader rows) when it only drops the
        few test accounts, where a semi-join per raw row would cost more than it saves.
        """
        return not replace(self, include_test=True).is_everyone()

    def restrict_early(self, trader_id: ColumnElement) -> ColumnElement[bool]:
        """:meth:`restrict` when the filter :meth:`narrows`, else no condition (see restrict_late)."""
        return self.restrict(trader_id) if self.narrows() else sa.true()

    def restrict_late(self, trader_id: ColumnElement) -> ColumnElement[bool]:
        """:meth:`restrict` when :meth:`restrict_early` did not apply it: on per-trader rows."""
        return sa.true() if self.narrows() else self.restrict(trader_id)


def _members_of(segment_ids: Iterable[int]) -> sa.Select:
    """SELECT trader_id: the current members of any of ``segment_ids``."""
    m = segment_members.c
    return sa.select(m.trader_id).where(m.segment_id.in_(sorted({int(s) for s in segment_ids})))


def segment_memberships() -> sa.Select:
    """SELECT ``trader_id``, ``segment_id``, ``segment``: one row per current member of each segment that
    is not archived (``segment`` is its name), for breakdowns by segment; a trader in two segments has two
    rows, and one in none has none (breakdowns show them as :data:`NO_SEGMENT`)."""
    m, s = segment_members.c, segments.c
    return (sa.select(m.trader_id, m.segment_id, s.name.label("segment"))
            .join_from(segment_members, segments, s.segment_id == m.segment_id)
            .where(s.archived.is_(sa.false())))


EVERYONE = TraderFilter(include_test=True)
# What every page and report starts from: everyone but test accounts.
DEFAULT_FILTER = TraderFilter()


@dataclass(frozen=True)
class SegmentOption:
    """A saved segment the filters can offer: its id, name and last refresh of membership (None: never)."""

    segment_id: int
    name: str
    refreshed_at: datetime | None


@dataclass(frozen=True)
class FilterOptions:
    """The values the global filters can offer, read from the data (sorted, no NULLs), and the saved
    segments that are not archived, by name."""

    countries: tuple[str, ...]
    channels: tuple[str, ...]
    affiliates: tuple[str, ...]
    platforms: tuple[str, ...]
    vip_tiers: tuple[str, ...]
    segments: tuple[SegmentOption, ...] = ()

    def segment(self, segment_id: int) -> SegmentOption | None:
        """The offered segment of that id, or None (archived or deleted since)."""
        return next((s for s in self.segments if s.segment_id == segment_id), None)

    def segment_named(self, name: str) -> SegmentOption | None:
        return next((s for s in self.segments if s.name == name), None)

    def stamp(self, trader_filter: TraderFilter, *, segment_ids: Iterable[int] = (),
              segment_names: Iterable[str] = ()) -> TraderFilter:
        """``trader_filter`` with ``segments_as_of`` moved on to the newest refresh of the segments a view
        reads: the filter's own, ``segment_ids`` and ``segment_names`` (a breakdown's, an "entered segment"
        event's); unchanged when none of them was ever refreshed."""
        ids = {*trader_filter.segments, *segment_ids}
        if trader_filter.within_segment is not None:
            ids.add(trader_filter.within_segment)
        names = set(segment_names)
        times = [s.refreshed_at for s in self.segments
                 if (s.segment_id in ids or s.name in names) and s.refreshed_at is not None]
        if trader_filter.segments_as_of is not None:
            times.append(trader_filter.segments_as_of)
        return replace(trader_filter, segments_as_of=max(times)) if times else trader_filter


def read_segment_options(conn: sa.Connection) -> tuple[SegmentOption, ...]:
    """The segments that are not archived, A-Z, on an open connection."""
    s = segments.c
    rows = conn.execute(sa.select(s.segment_id, s.name, s.refreshed_at)
                        .where(s.archived.is_(sa.false())).order_by(s.name, s.segment_id))
    return tuple(SegmentOption(int(r.segment_id), str(r.name), r.refreshed_at) for r in rows)


def compute_filter_options(engine: sa.Engine) -> FilterOptions:
    """Distinct countries, channels, affiliates, platforms and VIP tiers present in the data, and the saved
    segments that are not archived."""

    def distinct(column) -> tuple[str, ...]:
        return tuple(r[0] for r in conn.execute(
            sa.select(column).where(column.is_not(None)).distinct().order_by(column)))

    with reading(engine) as conn:
        tiers = distinct(traders.c.vip_tier)
        return FilterOptions(
            countries=distinct(traders.c.country),
            channels=distinct(traders.c.acquisition_channel),
            affiliates=distinct(traders.c.affiliate_id),
            platforms=distinct(accounts.c.platform),
            vip_tiers=(STANDARD_TIER, *tiers),
            segments=read_segment_options(conn),
        )
