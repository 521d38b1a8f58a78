"""Rollups: derived tables kept next to the raw ones so large aggregations stay fast.

``daily_activity`` holds one row per trader, event name and UTC day of the ``trader_events``
stream: how many events, their USD amount, and the first and last time that day. Retention,
lifecycle and activity KPIs only need "did trader X do E in period P", which this table answers
from about 5 M rows instead of 13 M raw events on a 200,000-trader broker (8.4 M trades become
1.4 M trader-days), the difference between seconds and sub-seconds on PostgreSQL.

The rollup is rebuilt by every seed and refreshed for the affected traders by every import, in
the same transaction as the write, so it never disagrees with the raw tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.schema import daily_activity, trader_events

# Above this many traders a full rebuild is cheaper than a long IN list.
PARTIAL_LIMIT = 5_000


def _rollup_select(trader_ids: list[int] | None = None) -> sa.Select:
    te = trader_events
    day = sa.cast(sa.func.date_trunc("day", te.c.occurred_at), sa.DateTime)
    query = (sa.select(te.c.trader_id, te.c.event, day.label("day"), sa.func.count().label("events"),
                       sa.func.sum(te.c.amount_usd).label("amount_usd"),
                       sa.func.min(te.c.occurred_at).label("first_at"),
                       sa.func.max(te.c.occurred_at).label("last_at"))
             .group_by(te.c.trader_id, te.c.event, day))
    if trader_ids is not None:
        query = query.where(te.c.trader_id.in_(trader_ids))
    return query


def refresh_daily_activity(conn: Connection, trader_ids: list[int] | None = None) -> None:
    """Rebuild ``daily_activity`` (all traders, or just ``trader_ids``) inside the open transaction."""
    cols = ["trader_id", "event", "day", "events", "amount_usd", "first_at", "last_at"]
    if trader_ids is not None and len(trader_ids) <= PARTIAL_LIMIT:
        ids = sorted({int(t) for t in trader_ids})
        if not ids:
            return
        conn.execute(daily_activity.delete().where(daily_activity.c.trader_id.in_(ids)))
        conn.execute(daily_activity.insert().from_select(cols, _rollup_select(ids)))
        return
    conn.execute(daily_activity.delete())
    conn.execute(daily_activity.insert().from_select(cols, _rollup_select()))
