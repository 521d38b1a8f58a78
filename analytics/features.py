"""One point-in-time feature snapshot per trader: what segmentation, the models and Trader 360 read.

``compute_features(engine, as_of=T)`` describes every trader registered before ``T`` using only rows
timed strictly before ``T`` (docs/semantics.md, "Features"):

- Positions count from their opening (``opened_at < T``); realised P&L, win rate and holding time
  only from positions closed before ``T`` (a position still open at ``T`` has no outcome yet).
- Ledger entries count from ``created_at < T`` with their status as last imported (a deposit approved
  after ``T`` that was created before it counts as approved: the data keeps no status times).
- KYC state is the status of the trader's last KYC event before ``T`` (or "approved" when only the
  trader's ``kyc_approved_at`` says so, for imports without KYC events).
- Windows ("last 30 days") are whole local days ending the day before ``T``
  (``periods.midnight(day - n)``), and ``T`` itself is a local midnight: a date ``D`` means the
  start of ``D``, so the snapshot "as of 2026-12-01" holds everything up to 30 November.

Rates are over each trader's own **active span**: from their first activity (position opened,
approved deposit or login) to their last one before ``T``, at least 7 days. Most traders of a broker
are dormant at any moment; counts over the last 30 days would make them all alike, where a rate
over their own span still tells a scalper who stopped from an investor who stopped.

Per-trader aggregation runs in SQL, one GROUP BY per source table (trades, ledger, sessions, portal
events, KYC, accounts) joined on the trader; only the 50-odd numbers per trader come back, and
the ratios between them (rates, shares, trends) are computed on those columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics.events import compute_data_span
from analytics.filters import DEFAULT_FILTER, TraderFilter
from analytics.periods import epoch_seconds, interval, local_date, midnight
from analytics.reading import reading
from analytics.writing import writing
from connectors.columnar import fetch_frame
from connectors.database import bulk_insert
from connectors.errors import TraderLensError
from connectors.schema import (
    ASSET_CLASSES,
    accounts,
    kyc_events,
    portal_events,
    sessions,
    traders,
    trades,
    transactions,
)

MIN_SPAN_DAYS = 7
WINDOWS = (7, 30, 90)
# A position held under this long is a scalp (many brokers' scalping rules start at 60 s or less).
SHORT_HOLD_S = 60
DAYS_PER_MONTH = 30.4375
SNAPSHOT_TIMEOUT_S = 180


class BadAsOf(TraderLensError):
    """The snapshot date cannot be used (for example: before any data)."""


@dataclass(frozen=True)
class Feature:
    """One column of the snapshot: its name, a label for screens, its group, unit and meaning."""

    name: str
    label: str
    group: str
    unit: str
    description: str


def _f(name: str, label: str, group: str, unit: str, description: str) -> Feature:
    return Feature(name, label, group, unit, description)


_WINDOWED = tuple(
    _f(f"{what}_{n}d", f"{title} in the last {n} days", "trading", unit,
       f"{title} of positions opened in the {n} days before the snapshot.")
    for what, title, unit in (("trades", "Trades", "positions"), ("lots", "Lots", "lots"),
                              ("notional", "Notional volume", "USD"))
    for n in WINDOWS
)

FEATURES: tuple[Feature, ...] = (
    _f("trades_per_week", "Trades per week", "trading", "positions/week",
       "Positions opened per week of the trader's active span."),
    _f("lots_per_week", "Lots per week", "trading", "lots/week", "Lots opened per week of the active span."),
    _f("notional_per_week", "Notional per week", "trading", "USD/week",
       "Notional volume (USD) opened per week of the active span."),
    _f("trades_total", "Trades", "trading", "positions", "Positions opened before the snapshot."),
    *_WINDOWED,
    _f("deposits_count", "Deposits", "transactions", "deposits", "Approved deposits."),
    _f("deposits_per_month", "Deposits per month", "transactions", "deposits/month",
       "Approved deposits per month of the active span."),
    _f("deposits_usd", "Deposited", "transactions", "USD", "Approved deposits in USD."),
    _f("avg_deposit_usd", "Average deposit", "transactions", "USD", "Mean approved deposit in USD."),
    _f("withdrawals_count", "Withdrawals", "transactions", "withdrawals", "Approved withdrawals."),
    _f("withdrawals_per_month", "Withdrawals per month", "transactions", "withdrawals/month",
       "Approved withdrawals per month of the active span."),
    _f("withdrawals_usd", "Withdrawn", "transactions", "USD", "Approved withdrawals in USD."),
    _f("net_deposits_usd", "Net deposits", "transactions", "USD", "Approved deposits minus approved withdrawals."),
    _f("bonus_share", "Bonus share", "transactions", "ratio",
       "Bonus credited (approved, net of bonuses cancelled) as a share of approved deposits."),
    _f("declined_deposits", "Declined deposit attempts", "transactions", "attempts", "Deposits declined."),
    _f("declined_withdrawals_30d", "Declined withdrawals in the last 30 days", "transactions", "withdrawals",
       "Withdrawal requests declined in the 30 days before the snapshot (a client who cannot get money out "
       "is a client about to leave)."),
    _f("balance_usd", "Estimated balance", "transactions", "USD",
       "Approved deposits − approved withdrawals + net bonus + realised P&L: the account balance without "
       "the floating P&L of open positions."),
    _f("realised_pnl_usd", "Realised P&L", "profitability", "USD",
       "Client P&L (profit + commission + swap) of positions closed before the snapshot."),
    _f("win_rate", "Win rate", "profitability", "ratio", "Share of closed positions with a profit."),
    _f("pnl_to_deposits", "P&L against deposits", "profitability", "ratio",
       "Realised P&L divided by approved deposits."),
    _f("median_hold_s", "Median holding time", "holding", "seconds", "Median time a closed position was held."),
    _f("share_hold_under_60s", "Share held under 60 s", "holding", "ratio",
       f"Share of closed positions held under {SHORT_HOLD_S} seconds."),
    *(_f(f"share_{c}", f"Share of {c} trades", "asset_mix", "ratio",
         f"Share of opened positions in {c}.") for c in ASSET_CLASSES),
    _f("avg_leverage_used", "Average leverage used", "leverage", "x",
       "Mean effective leverage of opened positions (notional / equity)."),
    _f("account_leverage", "Account leverage", "leverage", "x", "Highest leverage of the trader's accounts."),
    _f("symbols_traded", "Instruments traded", "trading", "symbols", "Distinct symbols opened."),
    _f("share_expert_trades", "Share of automated trades", "trading", "ratio",
       "Share of positions opened by an expert advisor (algorithm)."),
    _f("sessions_per_week", "Logins per week", "sessions", "sessions/week",
       "Platform and portal sessions per week of the active span."),
    _f("sessions_30d", "Logins in the last 30 days", "sessions", "sessions",
       "Platform and portal sessions started in the 30 days before the snapshot."),
    _f("avg_session_min", "Average session length", "sessions", "minutes", "Mean session length."),
    _f("share_mobile_sessions", "Share of mobile sessions", "sessions", "ratio", "Share of sessions on mobile."),
    _f("portal_events_30d", "Portal events in the last 30 days", "sessions", "events",
       "Client-portal events in the 30 days before the snapshot."),
    _f("days_since_last_trade", "Days since last trade", "recency", "days",
       "Days from the last position opened or closed to the snapshot (empty: never traded)."),
    _f("days_since_last_deposit", "Days since last deposit", "recency", "days",
       "Days from the last approved deposit to the snapshot (empty: never deposited)."),
    _f("days_since_last_login", "Days since last login", "recency", "days",
       "Days from the last session to the snapshot (empty: never logged in)."),
    _f("tenure_days", "Tenure", "tenure", "days", "Days from registration to the snapshot."),
    _f("trades_trend", "Trades trend", "trends", "log ratio",
       "ln((trades in the last 30 days + 1) / (trades in the 30 days before + 1)): 0 steady, "
       "negative falling."),
    _f("sessions_trend", "Logins trend", "trends", "log ratio",
       "ln((sessions in the last 30 days + 1) / (sessions in the 30 days before + 1))."),
    _f("kyc_approved", "KYC approved", "kyc", "flag", "1 when KYC was approved before the snapshot."),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# The text column beside the numbers: the status of the last KYC event before the snapshot.
KYC_STATE = "kyc_state"
KYC_STATES = ("none", "submitted", "resubmission", "approved", "rejected")

# Behaviour first (the frequency and volume of trades and of money movements), then how the trader
# trades (holding time, instruments, leverage, automation), then engagement. Windowed counts and
# recency are left out: they describe when someone was active, not how, and would split each kind of
# trader into its active and dormant halves.
DEFAULT_CLUSTER_FEATURES: tuple[str, ...] = (
    "trades_per_week", "notional_per_week", "deposits_per_month", "avg_deposit_usd",
    "withdrawals_per_month", "median_hold_s", "share_hold_under_60s", "share_fx", "share_crypto",
    "share_indices", "share_commodities", "share_stocks", "avg_leverage_used", "share_expert_trades",
    "sessions_per_week",
)


@dataclass(frozen=True)
class FeatureSnapshot:
    """Every trader's features as of ``as_of`` (a naive UTC instant: a local midnight).

    ``frame``: one row per trader registered before ``as_of``, indexed by ``trader_id``; one float
    column per :data:`FEATURE_NAMES` (NaN where the feature has no value, e.g. a win rate without
    closed positions) and the text column ``kyc_state``.
    """

    as_of: datetime
    frame: pd.DataFrame

    @property
    def day(self) -> date:
        """The reporting zone's day the snapshot starts (data up to the day before)."""
        return local_date(self.as_of)


def snapshot_time(engine: Engine, as_of: datetime | date | None) -> datetime:
    """The snapshot instant for ``as_of``: a date's local midnight, a datetime as given (naive UTC),
    or (None) the local midnight after the newest day with data."""
    if isinstance(as_of, datetime):
        return as_of.replace(tzinfo=None)
    if isinstance(as_of, date):
        return midnight(as_of)
    span = compute_data_span(engine)
    if span is None:
        raise BadAsOf("The database holds no events yet, so there is nothing to describe: import data or "
                      "run `python cli.py seed`.")
    return midnight(span.end + timedelta(days=1))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _sum_if(condition: ColumnElement[bool], value: ColumnElement) -> ColumnElement:
    return sa.func.sum(sa.case((condition, value), else_=0))


def _median(value: ColumnElement) -> ColumnElement:
    """The median of ``value`` (NULLs ignored) as an ordered-set aggregate both backends run."""
    return sa.func.percentile_cont(0.5).within_group(value)


TraderScope = Callable[[ColumnElement], ColumnElement[bool]]


def _aggregates(as_of: datetime, ids: TraderScope | None) -> list[sa.Subquery]:
    """The per-trader GROUP BYs, each a subquery with ``trader_id`` first (see the module docstring)."""
    day = local_date(as_of)
    since = {n: midnight(day - timedelta(days=n)) for n in (*WINDOWS, 60)}

    def scoped(table: sa.Table) -> list[ColumnElement[bool]]:
        return [] if ids is None else [ids(table.c.trader_id)]

    t = trades.c
    notional = sa.func.coalesce(t.notional_usd, 0)
    closed = t.closed_at < as_of
    windowed = []
    for n in WINDOWS:
        recent = t.opened_at >= since[n]
        windowed += [_count_if(recent).label(f"trades_{n}d"), _sum_if(recent, t.lots).label(f"lots_{n}d"),
                     _sum_if(recent, notional).label(f"notional_{n}d")]
    # One GROUP BY over the positions, the largest table by far: each further pass costs a full read
    # of it. Split into four (sums, windows, median, distinct symbols), PostgreSQL read it four times
    # and took twice as long on 8.5 million positions.
    trading = sa.select(
        t.trader_id,
        sa.func.count().label("trades_total"),
        sa.func.sum(t.lots).label("lots_total"),
        sa.func.sum(notional).label("notional_total"),
        *windowed,
        _count_if(sa.and_(t.opened_at >= since[60], t.opened_at < since[30])).label("trades_prev30"),
        sa.func.min(t.opened_at).label("first_trade_at"),
        sa.func.max(t.opened_at).label("last_open_at"),
        sa.func.max(sa.case((closed, t.closed_at))).label("last_close_at"),
        _count_if(closed).label("closed_count"),
        _sum_if(closed, t.profit_usd + t.commission_usd + t.swap_usd).label("realised_pnl_usd"),
        _count_if(sa.and_(closed, t.profit_usd > 0)).label("wins"),
        _median(sa.case((closed, epoch_seconds(t.closed_at - t.opened_at)))).label("median_hold_s"),
        _count_if(sa.and_(closed, t.closed_at < t.opened_at + interval(SHORT_HOLD_S, "seconds"))).label("short_holds"),
        *(_count_if(t.asset_class == c).label(f"n_{c}") for c in ASSET_CLASSES),
        sa.func.avg(t.leverage_used).label("avg_leverage_used"),
        sa.func.count(sa.distinct(t.symbol)).label("symbols_traded"),
        _count_if(t.channel == "expert").label("expert_trades"),
    ).where(t.opened_at < as_of, *scoped(trades)).group_by(t.trader_id).subquery("trading")

    x = transactions.c
    approved = x.status == "approved"
    deposit = sa.and_(x.kind == "deposit", approved)
    withdrawal = sa.and_(x.kind == "withdrawal", approved)
    bonus = sa.case((sa.and_(x.kind == "bonus", approved), x.amount_usd),
                    (sa.and_(x.kind == "bonus_cancel", approved), -sa.func.abs(x.amount_usd)), else_=0)
    ledger = sa.select(
        x.trader_id,
        _count_if(deposit).label("deposits_count"),
        _sum_if(deposit, x.amount_usd).label("deposits_usd"),
        sa.func.min(sa.case((deposit, x.created_at))).label("first_deposit_at"),
        sa.func.max(sa.case((deposit, x.created_at))).label("last_deposit_at"),
        _count_if(withdrawal).label("withdrawals_count"),
        _sum_if(withdrawal, x.amount_usd).label("withdrawals_usd"),
        sa.func.sum(bonus).label("bonus_usd"),
        _count_if(sa.and_(x.kind == "deposit", x.status == "declined")).label("declined_deposits"),
        _count_if(sa.and_(x.kind == "withdrawal", x.status == "declined", x.created_at >= since[30]))
        .label("declined_withdrawals_30d"),
    ).where(x.created_at < as_of, *scoped(transactions)).group_by(x.trader_id).subquery("ledger")

    s = sessions.c
    logins = sa.select(
        s.trader_id,
        sa.func.count().label("sessions_count"),
        sa.func.avg(s.duration_s).label("avg_session_s"),
        _count_if(s.surface == "mobile").label("mobile_sessions"),
        sa.func.min(s.started_at).label("first_login_at"),
        sa.func.max(s.started_at).label("last_login_at"),
        _count_if(s.started_at >= since[30]).label("sessions_30d"),
        _count_if(sa.and_(s.started_at >= since[60], s.started_at < since[30])).label("sessions_prev30"),
    ).where(s.started_at < as_of, *scoped(sessions)).group_by(s.trader_id).subquery("logins")

    p = portal_events.c
    portal = (sa.select(p.trader_id, sa.func.count().label("portal_events_30d"))
              .where(p.occurred_at >= since[30], p.occurred_at < as_of, *scoped(portal_events))
              .group_by(p.trader_id).subquery("portal"))

    k = kyc_events.c
    ranked = sa.select(
        k.trader_id, k.status,
        sa.func.row_number().over(partition_by=k.trader_id,
                                  order_by=(k.occurred_at.desc(), k.kyc_event_id.desc())).label("rn"),
        sa.func.max(sa.case((k.status == "approved", 1), else_=0)).over(partition_by=k.trader_id).label("ever"),
    ).where(k.occurred_at < as_of, *scoped(kyc_events)).subquery("kyc_ranked")
    kyc = (sa.select(ranked.c.trader_id, ranked.c.status.label("kyc_last_status"),
                     ranked.c.ever.label("kyc_ever_approved"))
           .where(ranked.c.rn == 1).subquery("kyc"))

    a = accounts.c
    leverage = (sa.select(a.trader_id, sa.func.max(a.leverage).label("account_leverage"))
                .where(a.opened_at < as_of, *scoped(accounts)).group_by(a.trader_id).subquery("leverage"))
    return [trading, ledger, logins, portal, kyc, leverage]


def features_query(as_of: datetime, *, trader_filter: TraderFilter = DEFAULT_FILTER,
                   trader_ids: Sequence[int] | None = None) -> sa.Select:
    """SELECT one row per trader registered before ``as_of`` (kept by the filter, or among ``trader_ids``):
    ``trader_id``, ``registered_at``, ``kyc_approved_at`` and every column of the per-source aggregates,
    NULL where the trader has no rows in a source."""
    ids = None if trader_ids is None else (lambda column: column.in_([int(i) for i in trader_ids]))
    parts = _aggregates(as_of, ids)
    tr = traders.c
    joined: sa.FromClause = traders
    columns: list[ColumnElement] = [tr.trader_id, tr.registered_at, tr.kyc_approved_at]
    for part in parts:
        joined = joined.outerjoin(part, part.c.trader_id == tr.trader_id)
        columns += [c for c in part.c if c.name != "trader_id"]
    where = [tr.registered_at < as_of, *trader_filter.conditions()]
    if ids is not None:
        where.append(ids(tr.trader_id))
    return sa.select(*columns).select_from(joined).where(*where).order_by(tr.trader_id)


def _days(later: pd.Series | datetime, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later) - pd.to_datetime(earlier)) / pd.Timedelta(days=1)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, NaN where den is 0 or missing."""
    den = den.astype(float)
    return num.astype(float) / den.where(den != 0)


def derive(raw: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The snapshot's columns (FEATURE_NAMES, then ``kyc_state``) from the per-trader aggregates of
    :func:`features_query`, indexed by trader_id."""
    r = raw.set_index("trader_id")
    counts = ["trades_total", "lots_total", "notional_total", "closed_count", "wins", "short_holds",
              "symbols_traded", "expert_trades", "trades_prev30", "deposits_count", "deposits_usd",
              "withdrawals_count", "withdrawals_usd", "bonus_usd", "declined_deposits", "declined_withdrawals_30d",
              "sessions_count",
              "mobile_sessions", "sessions_30d", "sessions_prev30", "portal_events_30d", "realised_pnl_usd",
              *(f"{w}_{n}d" for w in ("trades", "lots", "notional") for n in WINDOWS),
              *(f"n_{c}" for c in ASSET_CLASSES)]
    r[counts] = r[counts].astype(float).fillna(0.0)
    times = ["registered_at", "kyc_approved_at", "first_trade_at", "last_open_at", "last_close_at",
             "first_deposit_at", "last_deposit_at", "first_login_at", "last_login_at"]
    for column in times:
        r[column] = pd.to_datetime(r[column])
    last_trade = r[["last_open_at", "last_close_at"]].max(axis=1)
    first = r[["first_trade_at", "first_deposit_at", "first_login_at"]].min(axis=1)
    last = pd.concat([last_trade, r["last_deposit_at"], r["last_login_at"]], axis=1).max(axis=1)
    span_days = _days(last, first).clip(lower=MIN_SPAN_DAYS)
    # No activity at all: no span, and every rate is 0 (nothing happened), not unknown.
    weeks = (span_days / 7).fillna(np.inf)
    months = (span_days / DAYS_PER_MONTH).fillna(np.inf)

    out = pd.DataFrame(index=r.index)
    out["trades_per_week"] = r["trades_total"] / weeks
    out["lots_per_week"] = r["lots_total"] / weeks
    out["notional_per_week"] = r["notional_total"] / weeks
    out["trades_total"] = r["trades_total"]
    for what in ("trades", "lots", "notional"):
        for n in WINDOWS:
            out[f"{what}_{n}d"] = r[f"{what}_{n}d"]
    out["deposits_count"] = r["deposits_count"]
    out["deposits_per_month"] = r["deposits_count"] / months
    out["deposits_usd"] = r["deposits_usd"]
    out["avg_deposit_usd"] = _ratio(r["deposits_usd"], r["deposits_count"])
    out["withdrawals_count"] = r["withdrawals_count"]
    out["withdrawals_per_month"] = r["withdrawals_count"] / months
    out["withdrawals_usd"] = r["withdrawals_usd"]
    out["net_deposits_usd"] = r["deposits_usd"] - r["withdrawals_usd"]
    out["bonus_share"] = _ratio(r["bonus_usd"], r["deposits_usd"])
    out["declined_deposits"] = r["declined_deposits"]
    out["declined_withdrawals_30d"] = r["declined_withdrawals_30d"]
    out["balance_usd"] = r["deposits_usd"] - r["withdrawals_usd"] + r["bonus_usd"] + r["realised_pnl_usd"]
    out["realised_pnl_usd"] = r["realised_pnl_usd"]
    out["win_rate"] = _ratio(r["wins"], r["closed_count"])
    out["pnl_to_deposits"] = _ratio(r["realised_pnl_usd"], r["deposits_usd"])
    out["median_hold_s"] = r["median_hold_s"].astype(float)
    out["share_hold_under_60s"] = _ratio(r["short_holds"], r["closed_count"])
    for c in ASSET_CLASSES:
        out[f"share_{c}"] = _ratio(r[f"n_{c}"], r["trades_total"])
    out["avg_leverage_used"] = r["avg_leverage_used"].astype(float)
    out["account_leverage"] = r["account_leverage"].astype(float)
    out["symbols_traded"] = r["symbols_traded"]
    out["share_expert_trades"] = _ratio(r["expert_trades"], r["trades_total"])
    out["sessions_per_week"] = r["sessions_count"] / weeks
    out["sessions_30d"] = r["sessions_30d"]
    out["avg_session_min"] = r["avg_session_s"].astype(float) / 60
    out["share_mobile_sessions"] = _ratio(r["mobile_sessions"], r["sessions_count"])
    out["portal_events_30d"] = r["portal_events_30d"]
    out["days_since_last_trade"] = _days(as_of, last_trade)
    out["days_since_last_deposit"] = _days(as_of, r["last_deposit_at"])
    out["days_since_last_login"] = _days(as_of, r["last_login_at"])
    out["tenure_days"] = _days(as_of, r["registered_at"])
    out["trades_trend"] = np.log((r["trades_30d"] + 1) / (r["trades_prev30"] + 1))
    out["sessions_trend"] = np.log((r["sessions_30d"] + 1) / (r["sessions_prev30"] + 1))
    approved_before = r["kyc_approved_at"].notna() & (r["kyc_approved_at"] < as_of)
    out["kyc_approved"] = ((r["kyc_ever_approved"].fillna(0).astype(float) > 0) | approved_before).astype(float)
    state = r["kyc_last_status"].astype(object)
    out[KYC_STATE] = state.where(state.notna(), np.where(approved_before, "approved", "none")).astype(str)
    out.index.name = "trader_id"
    out[list(FEATURE_NAMES)] = out[list(FEATURE_NAMES)].astype(float)
    return out[[*FEATURE_NAMES, KYC_STATE]]


def compute_features(engine: Engine, *, as_of: datetime | date | None = None,
                     trader_ids: Sequence[int] | None = None,
                     trader_filter: TraderFilter = DEFAULT_FILTER) -> FeatureSnapshot:
    """Every kept trader's features as of ``as_of`` (see the module docstring and :class:`FeatureSnapshot`).

    ``as_of``: a date (its local midnight), a naive UTC datetime, or None for the local midnight after
    the newest day with data. ``trader_ids`` restricts the snapshot to those traders (one trader's
    page reads only their rows). Raises :class:`BadAsOf` for an empty database with ``as_of=None``.
    """
    at = snapshot_time(engine, as_of)
    query = features_query(at, trader_filter=trader_filter, trader_ids=trader_ids)
    # A batch read of every position and ledger entry, not a page's query: 15-25 s on PostgreSQL at
    # 200,000 traders, so the pages' 30 s limit would leave no room on a busy server.
    with reading(engine, timeout_s=SNAPSHOT_TIMEOUT_S) as conn:
        raw = fetch_frame(conn, query)
    return FeatureSnapshot(at, derive(raw, at))


# ---------------------------------------------------------------------------------------------
# The materialised snapshot: the latest one, kept in a derived table rules can filter on in SQL.

FEATURE_TABLE = "trader_features"
_feature_metadata = sa.MetaData()
_feature_table = sa.Table(
    FEATURE_TABLE, _feature_metadata,
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
    *(sa.Column(name, sa.Double) for name in FEATURE_NAMES),
    sa.Column(KYC_STATE, sa.String(16)),
)


def feature_table() -> sa.Table:
    """The ``trader_features`` table: the latest materialised snapshot, one row per trader
    (trader_id, as_of, computed_at, every feature, kyc_state). Derived: written only by
    :func:`materialise_features`, and absent until the first run."""
    return _feature_table


@dataclass(frozen=True)
class MaterialisedSnapshot:
    """What :func:`materialise_features` wrote: the snapshot's time, its row count and when it ran."""

    as_of: datetime
    traders: int
    computed_at: datetime


def materialise_features(engine: Engine, *, as_of: datetime | date | None = None,
                         now: datetime | None = None) -> MaterialisedSnapshot:
    """Compute the snapshot and replace the ``trader_features`` table with it, in one transaction
    (a reader sees the old snapshot or the new one, never half). ``engine`` must be able to write."""
    snapshot = compute_features(engine, as_of=as_of, trader_filter=TraderFilter(include_test=True))
    computed_at = (now or datetime.now(UTC).replace(tzinfo=None)).replace(microsecond=0)
    frame = snapshot.frame.reset_index()
    frame.insert(1, "as_of", snapshot.as_of)
    frame.insert(2, "computed_at", computed_at)
    frame = frame[[c.name for c in _feature_table.columns]]
    with writing(engine) as conn:
        _replace_if_outdated(conn)
        _feature_metadata.create_all(conn, checkfirst=True)
        conn.execute(_feature_table.delete())
        bulk_insert(conn, _feature_table, frame)
    return MaterialisedSnapshot(snapshot.as_of, len(frame), computed_at)


def _current_columns(conn) -> bool:
    """Whether the existing ``trader_features`` table has this version's columns. (Read from an empty
    SELECT: duckdb-engine's inspector cannot list a table's columns.)"""
    found = list(conn.execute(sa.select(sa.text("*")).select_from(sa.table(FEATURE_TABLE)).limit(0)).keys())
    return found == [c.name for c in _feature_table.columns]


def _replace_if_outdated(conn) -> None:
    """Drop a ``trader_features`` table written by a version with other features (it is derived, and
    is rebuilt in the same transaction)."""
    if sa.inspect(conn).has_table(FEATURE_TABLE) and not _current_columns(conn):
        _feature_table.drop(conn)


def materialised_snapshot(engine: Engine) -> MaterialisedSnapshot | None:
    """The snapshot in ``trader_features`` (its as-of, size and when it was computed), None when there is none."""
    with reading(engine) as conn:
        if not sa.inspect(conn).has_table(FEATURE_TABLE):
            return None
        if not _current_columns(conn):
            return None  # written by a version with other features: recomputed by ensure_features
        f = _feature_table.c
        row = conn.execute(sa.select(sa.func.max(f.as_of), sa.func.count(), sa.func.max(f.computed_at))).one()
    return None if row[1] == 0 else MaterialisedSnapshot(row[0], int(row[1]), row[2])


def ensure_features(engine: Engine, *, now: datetime | None = None) -> tuple[MaterialisedSnapshot, bool]:
    """The materialised snapshot, recomputed first when it is missing or stale: its as-of is not the
    current one (a new day of data) or an import finished after it was computed. (snapshot, whether it
    was recomputed). ``engine`` must be able to write; an empty database raises :class:`BadAsOf`."""
    from connectors.schema import imports

    current = materialised_snapshot(engine)
    if current is not None:
        with reading(engine) as conn:
            last_import = conn.execute(sa.select(sa.func.max(imports.c.imported_at))).scalar()
        fresh = current.as_of == snapshot_time(engine, None) and (last_import is None
                                                                   or last_import <= current.computed_at)
        if fresh:
            return current, False
    return materialise_features(engine, now=now), True
