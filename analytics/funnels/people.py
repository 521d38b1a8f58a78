"""Who entered a funnel and how far they got: the events run through the state machines, one kept
attempt per trader, and the breakdown label of each trader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.filters import STANDARD_TIER, TraderFilter
from analytics.funnels.kernels import ordered_pass, unordered_pass
from analytics.funnels.spec import NONE_VALUE, US, Attribution, FunnelSpec, validate_spec
from analytics.funnels.stream import EventStream, load_events
from analytics.periods import DateRange
from analytics.reading import reading
from connectors.columnar import fetch_columns
from connectors.schema import accounts, traders


@dataclass(frozen=True, eq=False)
class People:
    """Traders who entered the funnel: ids (sorted), furthest step of the kept attempt (1..n), that
    attempt's step times (epoch microseconds, one column per step) and breakdown labels."""

    trader_id: np.ndarray
    reached: np.ndarray
    times: np.ndarray
    labels: np.ndarray | None


def _event_labels(events: EventStream, attribution: Attribution) -> np.ndarray:
    """Per trader of ``events``: the property on their first (or last) event that has one."""
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


def lookup(conn: Connection, stmt: sa.Select, trader_ids: np.ndarray) -> list[np.ndarray]:
    """Values of ``stmt`` (first column trader_id, then value columns) for each of ``trader_ids``;
    None where a trader has no row."""
    columns = list(fetch_columns(conn, stmt).values())
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
    (labels,) = lookup(conn, stmt, trader_ids)
    if attribute == "vip_tier":
        labels[labels == None] = STANDARD_TIER  # noqa: E711 - elementwise on an object array
    return labels


def follow_people(engine: Engine, spec: FunnelSpec, date_range: DateRange | None,
                  trader_filter: TraderFilter) -> People:
    """Run the funnel for every trader; keep those who entered it."""
    validate_spec(spec)
    n = len(spec.steps)
    window = spec.effective_window_s * US
    with reading(engine) as conn:
        events = load_events(conn, spec, date_range, trader_filter)
        # Event-property labels look at every fetched event, so they are taken before the collapse.
        label_people = events.people
        labels = _event_labels(events, spec.attribution) if spec.breakdown_kind == "event" and spec.breakdown else None
        if spec.order == "strict":
            events.collapse_unrelated()
        if spec.order == "unordered":
            reached, times = unordered_pass(events.starts, events.us, events.smask, events.xmask, n, window,
                                            events.max_rows)
        else:
            reached, times = ordered_pass(events.starts, events.us, events.smask, events.xmask, n, window,
                                          spec.order == "strict")
        entered = reached > 0
        trader_id = events.people[entered]
        if spec.breakdown and spec.breakdown_kind == "trader":
            labels = _trader_labels(conn, spec.breakdown, spec.attribution, trader_id, trader_filter)
        elif labels is not None:
            labels = labels[np.searchsorted(label_people, trader_id)]
    if labels is not None:
        labels = np.array([NONE_VALUE if v is None else str(v) for v in labels], dtype=object)
    return People(trader_id, reached[entered].astype(np.int64), times[entered], labels)
