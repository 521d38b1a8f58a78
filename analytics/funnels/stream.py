"""A funnel's events in memory: fetched as numpy columns (connectors.columnar), sorted by trader,
time and tie order, and - for strict funnels - cut down to the events that can change an outcome.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import TraderFilter
from analytics.funnels.sources import EXCLUSION_SHIFT, EventPlan, event_queries
from analytics.funnels.spec import US, FunnelSpec
from analytics.periods import DateRange
from analytics.reading import reading
from connectors.columnar import fetch_columns


class EventStream:
    """The fetched events of one funnel, sorted by trader, time and mask; ``starts`` bounds each trader."""

    def __init__(self, data: dict[str, np.ndarray], *, ties: bool = True) -> None:
        """``ties=False`` leaves the events of one instant in any order (see load_events)."""
        trader = np.asarray(data["trader_id"], dtype=np.int64)  # no copy when already int64
        us = np.asarray(data["us"], dtype=np.int64)
        mask = np.asarray(data["mask"], dtype=np.int64)
        smask = mask & ((1 << EXCLUSION_SHIFT) - 1)
        xmask = mask >> EXCLUSION_SHIFT
        order = sort_order(trader, us, _tie_rank(smask, xmask) if ties else None)
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


def sort_order(trader: np.ndarray, us: np.ndarray, tie: np.ndarray | None) -> np.ndarray:
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
            unit = US if not (us % US).any() else (1000 if not (us % 1000).any() else 1)
        time_bits = max(1, ((high - low) // unit).bit_length())
        if rank_bits + time_bits + tie_bits <= 63:
            key = (rank << (time_bits + tie_bits)) | (((us - low) // unit if unit > 1 else us - low) << tie_bits)
            return np.argsort(key | tie if tie is not None else key, kind="stable")
    return np.lexsort((tie, us, trader) if tie is not None else (us, trader))


def load_events(conn: Connection, spec: FunnelSpec, date_range: DateRange | None, trader_filter: TraderFilter,
                *, trends: bool = False) -> EventStream:
    """The events of ``spec`` (sources.event_queries) fetched on ``conn`` and sorted; ``trends``: for
    conversion by entry period, whose step 1 is never pre-reduced."""
    plan = EventPlan.of(spec)
    prop_key = spec.breakdown if spec.breakdown and spec.breakdown_kind == "event" else None
    first, *rest = event_queries(plan, conn.dialect.name, date_range, trader_filter, prop_key=prop_key,
                                 trends=trends)
    columns = ["trader_id", "us", "mask", *(["prop"] if prop_key else [])]
    # The order of events at one instant matters to unordered funnels and trends (they take events
    # one by one) and to a property breakdown (its first or last event that has one); ordered funnels
    # take an instant's events together (kernels.ordered_pass), so they skip ranking the ties (2 ms of a
    # 30 ms two-step funnel over 215,000 events on DuckDB).
    ties = trends or spec.order != "ordered" or prop_key is not None
    if not rest:
        return EventStream(fetch_columns(conn, first), ties=ties)

    def fetch_apart(stmt: sa.Select) -> dict[str, np.ndarray]:
        with reading(conn.engine) as other:
            return fetch_columns(other, stmt)

    # Each statement on its own connection, so PostgreSQL runs the index probes of each on its own
    # backend (2 cores here: 4.4-5.5 s as one statement).
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        futures = [pool.submit(fetch_apart, stmt) for stmt in rest]
        parts = [fetch_columns(conn, first), *(future.result() for future in futures)]
    return EventStream({name: np.concatenate([part[name] for part in parts]) for name in columns}, ties=ties)

