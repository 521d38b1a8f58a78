"""The naive way, as a yardstick: pull the rows an analysis needs into pandas and compute there.

DESIGN.md §2 forbids this in the app ("pull aggregates, not rows"); benchmarks/analytics_bench.py
times these straightforward pandas versions next to the pushed-down SQL of ``analytics/`` on the
same DuckDB file, so the ratio in its table says what the rule buys.

Every function takes a :class:`Source` (where rows come from and how they are fetched) and the
same arguments as its ``analytics`` counterpart, and returns the same numbers in a plain shape the
benchmark compares with the real result. The SQL here only selects and filters rows (WHERE on
event, kind, status and time): every GROUP BY, DISTINCT, window and join happens in pandas.

Semantics: KPIs, trends, breakdowns, retention, LTV, lifecycle and stages compute the same
numbers as the analytics modules (the benchmark asserts it). The funnel versions are simplified
where PostHog's per-attempt algorithm would need a per-trader loop: see each docstring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.filters import TraderFilter

EVERYONE_BUT_TEST = TraderFilter()
FETCH_MODES = ("read_sql", "duckdb-df")


@dataclass
class Source:
    """Where the naive code reads rows. ``fetch``: ``read_sql`` (pd.read_sql through SQLAlchemy,
    what a pandas user writes) or ``duckdb-df`` (DuckDB's own DataFrame export, the cheapest
    possible transfer, as a lower bound). Fetch time and fetched rows are accumulated."""

    engine: Engine
    fetch: str = "read_sql"
    fetch_s: float = 0.0
    rows: int = 0
    queries: list[str] = field(default_factory=list)

    def read(self, sql: str) -> pd.DataFrame:
        t0 = time.perf_counter()
        if self.fetch == "duckdb-df":
            with self.engine.connect() as conn:
                frame = conn.connection.driver_connection.execute(sql).df()
        else:
            frame = pd.read_sql(sa.text(sql), self.engine)
        self.fetch_s += time.perf_counter() - t0
        self.rows += len(frame)
        self.queries.append(" ".join(sql.split()))
        return frame


def _lit(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"
    return f"TIMESTAMP '{value:%Y-%m-%d} 00:00:00'"


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _in(values) -> str:
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + ")"


def kept_traders(src: Source, trader_filter: TraderFilter) -> pd.Index:
    """Trader ids passing the filter, from the whole traders (and accounts) table in pandas."""
    t = src.read("SELECT trader_id, is_test, country, acquisition_channel, affiliate_id, vip_tier FROM traders")
    keep = pd.Series(True, index=t.index)
    if not trader_filter.include_test:
        keep &= ~t["is_test"].astype(bool)
    if trader_filter.countries:
        keep &= t["country"].isin(trader_filter.countries)
    if trader_filter.channels:
        keep &= t["acquisition_channel"].isin(trader_filter.channels)
    if trader_filter.affiliates:
        keep &= t["affiliate_id"].isin(trader_filter.affiliates)
    if trader_filter.vip_tiers:
        tiers = t["vip_tier"].fillna("standard")
        keep &= tiers.isin(trader_filter.vip_tiers)
    if trader_filter.platforms:
        a = src.read("SELECT trader_id, platform FROM accounts")
        keep &= t["trader_id"].isin(a.loc[a["platform"].isin(trader_filter.platforms), "trader_id"])
    return pd.Index(t.loc[keep, "trader_id"])


def floor_period(ts: pd.Series, period: str, week_start: str = "monday") -> pd.Series:
    """Start of the day / week / month of each timestamp (datetime64 values)."""
    day = ts.dt.normalize()
    if period == "day":
        return day
    if period == "week":
        offset = day.dt.weekday if week_start == "monday" else (day.dt.weekday + 1) % 7
        return day - pd.to_timedelta(offset, unit="D")
    if period == "month":
        return day - pd.to_timedelta(day.dt.day - 1, unit="D")
    raise ValueError(period)


def _floor_date(day: date, period: str, week_start: str = "monday") -> date:
    return floor_period(pd.Series([pd.Timestamp(day)]), period, week_start).iloc[0].date()


def _step(p: pd.Series | pd.Timestamp, period: str, n: int = 1):
    if period == "day":
        return p + pd.Timedelta(days=n)
    if period == "week":
        return p + pd.Timedelta(weeks=n)
    return p + pd.DateOffset(months=n)


def _period_index(first: date, last: date, period: str) -> list[pd.Timestamp]:
    out = [pd.Timestamp(first)]
    while out[-1] < pd.Timestamp(last):
        out.append(_step(out[-1], period))
    return out


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------

def lifecycle(src: Source, *, event: str, period: str, date_from: date, date_to: date,
              new_basis: str = "first-activity", week_start: str = "monday",
              trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """New / returning / resurrecting / dormant per period, the rules of analytics.lifecycle.

    Pulls every ``event`` row up to the end of the range (the first-ever activity decides "new")."""
    first = _floor_date(date_from, period, week_start)
    last = _floor_date(date_to, period, week_start)
    look_back = _step(pd.Timestamp(first), period, -1)
    end = _step(pd.Timestamp(last), period, 1)
    keep = kept_traders(src, trader_filter)
    ev = src.read(f"SELECT trader_id, occurred_at FROM trader_events WHERE event = '{event}' "
                  f"AND occurred_at < {_lit(end.to_pydatetime())}")
    ev = ev[ev["trader_id"].isin(keep)]
    ev["p"] = floor_period(ev["occurred_at"], period, week_start)
    if new_basis == "registration":
        t = src.read("SELECT trader_id, registered_at, lead_at FROM traders")
        created = floor_period(t["registered_at"].fillna(t["lead_at"]), period, week_start)
        created.index = t["trader_id"]
    else:
        created = ev.groupby("trader_id")["p"].min()
    act = ev.loc[ev["p"] >= look_back, ["trader_id", "p"]].drop_duplicates().sort_values(["trader_id", "p"])
    g = act.groupby("trader_id")["p"]
    act["prev_p"] = g.shift(1)
    act["next_p"] = g.shift(-1)
    act["created_p"] = act["trader_id"].map(created)
    status = np.where(act["prev_p"].isna() & (act["created_p"] == act["p"]), "new",
                      np.where(act["prev_p"] == _step(act["p"], period, -1), "returning", "resurrecting"))
    act["status"] = status
    shown = act[act["p"] >= pd.Timestamp(first)]
    counts = shown.groupby(["p", "status"]).size().unstack(fill_value=0)
    gone = _step(act["p"], period, 1)
    dormant = act.loc[(act["next_p"].isna() | (act["next_p"] != gone)) & (gone >= pd.Timestamp(first))
                      & (gone < end)]
    dormant_counts = _step(dormant["p"], period, 1).value_counts()
    idx = pd.DatetimeIndex(_period_index(first, last, period))
    out = pd.DataFrame(index=idx)
    for s in ("new", "returning", "resurrecting"):
        out[s] = counts[s].reindex(idx, fill_value=0).astype("int64") if s in counts else 0
    out["dormant"] = -dormant_counts.reindex(idx, fill_value=0).astype("int64")
    out.index = [p.date() for p in idx]
    out.index.name = "period_start"
    return out.reset_index()
