"""Each model's population at a snapshot time T and its outcome in [T, T + horizon), in SQL.

T is a local midnight (a snapshot time of :func:`analytics.features.snapshot_time`); windows move
by whole local days (``periods.midnight``), so "30 days" is 30 calendar days of the reporting zone
across a change of clocks.

- **churn**: population, traders with a position opened or closed in [T − 30 d, T); outcome, no
  position opened or closed, no approved deposit and no session started in [T, T + 30 d). This is
  complete disengagement: stricter than the churn KPI (a trader who still logs in can be reached).
- **deposit**: population, traders with an approved deposit created before T; outcome, an approved
  deposit created in [T, T + 7 d).
- **ftd**: population, traders registered before T whose first deposit
  (:func:`connectors.schema.first_deposits`) is not before T; outcome, the first deposit in
  [T, T + 14 d).

Statuses are as last imported (the ledger keeps no status history), so a deposit approved today
counts as approved at any time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from analytics.models.specs import ModelSpec
from analytics.periods import local_date, midnight
from connectors.schema import first_deposits, sessions, traders, trades, transactions

CHURN_LOOKBACK_DAYS = 30


def shift(at: datetime, days: int) -> datetime:
    """The local midnight ``days`` whole local days after the local midnight ``at``."""
    return midnight(local_date(at) + timedelta(days=days))


def _traded(since: datetime, until: datetime) -> sa.Select:
    """trader_id of every trader with a position opened or closed in [since, until)."""
    t = trades.c
    opened = sa.select(t.trader_id).where(t.opened_at >= since, t.opened_at < until)
    closed = sa.select(t.trader_id).where(t.closed_at >= since, t.closed_at < until)
    return sa.union(opened, closed)


def _deposited(since: datetime | None, until: datetime) -> sa.Select:
    """trader_id of every trader with an approved deposit created in [since, until)."""
    x = transactions.c
    where = [x.kind == "deposit", x.status == "approved", x.created_at < until]
    if since is not None:
        where.append(x.created_at >= since)
    return sa.select(x.trader_id).where(*where).distinct()


def _logged_in(since: datetime, until: datetime) -> sa.Select:
    s = sessions.c
    return sa.select(s.trader_id).where(s.started_at >= since, s.started_at < until).distinct()


def population(spec: ModelSpec, at: datetime) -> sa.Select:
    """trader_id of each trader the model scores at ``at`` (no order; test accounts included:
    callers keep the traders of their own feature snapshot)."""
    registered = sa.select(traders.c.trader_id).where(traders.c.registered_at < at)
    if spec.name == "churn":
        return _traded(shift(at, -CHURN_LOOKBACK_DAYS), at)
    if spec.name == "deposit":
        return _deposited(None, at)
    ftd = first_deposits().subquery("ftd")
    return registered.where(~sa.exists().where(ftd.c.trader_id == traders.c.trader_id,
                                               ftd.c.occurred_at < at))


def labelled(spec: ModelSpec, at: datetime) -> sa.Select:
    """trader_id and ``label`` (1 when the outcome happened in [at, at + horizon)) for the model's
    population at ``at``. The caller makes sure the window has ended before the data does."""
    end = shift(at, spec.horizon_days)
    pop = population(spec, at).subquery("population")
    if spec.name == "churn":
        active = sa.union(_traded(at, end), _deposited(at, end), _logged_in(at, end)).subquery("active_after")
        hit = sa.exists().where(active.c.trader_id == pop.c.trader_id)
        label = sa.case((hit, 0), else_=1)
    elif spec.name == "deposit":
        after = _deposited(at, end).subquery("deposited_after")
        label = sa.case((sa.exists().where(after.c.trader_id == pop.c.trader_id), 1), else_=0)
    else:
        ftd = first_deposits().subquery("ftd_after")
        hit = sa.exists().where(ftd.c.trader_id == pop.c.trader_id, ftd.c.occurred_at >= at, ftd.c.occurred_at < end)
        label = sa.case((hit, 1), else_=0)
    return sa.select(pop.c.trader_id, label.label("label"))
