"""Executive KPIs: acquisition, money, activity and risk for a date range against the previous one.

Every figure is aggregated in the database, for both periods at once. :func:`compute_kpis` runs
three statements: the data's time span (indexed min/max), one over traders and the payment ledger,
and one for trading, which reads the rollups kept current by seeding and imports
(connectors/rollups.py): trader-days from ``trading_days`` (every day a trader opened, closed or
held a position: the one meaning of trading, analytics.events.activity_select), deposit and login days from
``daily_activity``, and closed positions per trader and day from ``daily_trading`` (volume, P&L,
costs and the ESMA loss share), never the raw trades.
Every trading window is made of whole days (of the reporting time zone), so the daily grain is
exact. The definitions are
those of docs/semantics.md ("KPIs"); each :class:`Kpi` carries its own, so the Overview and the
CLI say the same thing.

Times are naive UTC; a :class:`DateRange` covers whole days, end inclusive. Money is USD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics.events import TRADING, ChurnActivity, activity_select, churn_activity, first_deposits, read_event_span
from analytics.filters import DEFAULT_FILTER, EVERYONE, NO_SEGMENT, STANDARD_TIER, TraderFilter, segment_memberships
from analytics.periods import (
    DateRange,
    Period,
    epoch_seconds,
    interval,
    midnight,
    period_start,
    period_starts,
    step_period,
)
from analytics.reading import reading
from connectors.schema import (
    Money,
    accounts,
    daily_activity,
    daily_trading,
    traders,
    transactions,
)

Unit = Literal["count", "usd", "pct", "hours"]
# Lots are no trend and no headline: a crypto lot is one coin, an FX lot 100,000 units, so a sum of
# lots across asset classes measures nothing. They are shown per asset class only
# (compute_volume_by_asset_class); the headline volume is notional.
TrendMetric = Literal[
    "registrations", "kyc_approvals", "ftds", "deposits", "withdrawals", "net_deposits", "depositors",
    "active_traders", "trades", "volume_usd", "client_pnl",
]
Dimension = Literal["country", "acquisition_channel", "affiliate_id", "platform", "vip_tier", "segment"]

TREND_METRICS: tuple[str, ...] = get_args(TrendMetric)
DIMENSIONS: tuple[str, ...] = get_args(Dimension)

FTD_WINDOWS = (7, 30)  # days for the cohort FTD conversion
REDEPOSIT_DAYS = 30
CHURN_DAYS = 30  # the activity gap that makes an active trader churned (the stages' default too)
ESMA_DAYS = 365  # the trailing 12 months of the ESMA loss disclosure
OTHER = "Other"


@dataclass(frozen=True)
class Kpi:
    """One headline figure for a period and the previous period of the same length.

    ``value``/``previous`` are None when the KPI cannot be computed (no mature cohort, no depositor).
    ``unit`` "pct" values are fractions (0.25 = 25%); "hours" are hours; "usd" is USD.
    """

    key: str
    label: str
    value: float | None
    previous: float | None
    unit: str
    definition: str
    higher_is_better: bool = True

    @property
    def change(self) -> float | None:
        """Relative change against the previous period (0.1 = +10%); None without a base."""
        if self.value is None or self.previous is None or self.previous == 0:
            return None
        return (self.value - self.previous) / abs(self.previous)


@dataclass(frozen=True)
class KpiSpec:
    label: str
    unit: Unit
    definition: str
    higher_is_better: bool = True


def _cohort_definition(window: int) -> str:
    return (f"Cohort-based: share of the traders who registered in the period that made their first approved "
            f"deposit (FTD) within {window} days of registering. Only registrations at least {window} days "
            f"before the end of the data count (younger ones could still convert), so the newest {window} days "
            f"of a period are left out; empty when no registration is that old.")


# The KPI catalogue in display order: key -> spec. compute_kpis returns KPIs in this order.
SPECS: dict[str, KpiSpec] = {
    "registrations": KpiSpec("Registrations", "count", "Traders who registered in the period."),
    "kyc_approvals": KpiSpec("KYC approvals", "count", "Traders whose KYC was first approved in the period."),
    "ftds": KpiSpec("FTDs", "count", "First-time depositors: traders whose first approved deposit (across all "
                                      "their accounts) fell in the period. A first deposit reversed or charged back "
                                      "later still counts, as affiliate and CPA reporting pays on it; the line under "
                                      "the tile says how many were."),
    "ftd_conversion_7d": KpiSpec("FTD conv. 7d", "pct", _cohort_definition(7)),
    "ftd_conversion_30d": KpiSpec("FTD conv. 30d", "pct", _cohort_definition(30)),
    "time_to_ftd": KpiSpec("Time to FTD", "hours",
                           "Median time from registration to the first approved deposit, over the traders whose "
                           "FTD fell in the period.", higher_is_better=False),
    "deposits": KpiSpec("Deposits", "usd", "Sum of approved deposits in the period, USD at transaction time. "
                                           "Declined, pending, reversed and charged-back deposits are excluded."),
    "withdrawals": KpiSpec("Withdrawals", "usd", "Sum of approved withdrawals in the period, USD. Declined, "
                                                 "pending and reversed withdrawals are excluded.",
                           higher_is_better=False),
    "net_deposits": KpiSpec("Net deposits", "usd",
                            "Approved deposits minus approved withdrawals in the period. Bonuses, bonus "
                            "cancellations, adjustments, fees and IB commissions are excluded."),
    "depositors": KpiSpec("Depositors", "count", "Traders with at least one approved deposit in the period."),
    "avg_deposit": KpiSpec("Per depositor", "usd", "Approved deposits divided by depositors in the period."),
    "redeposit_rate": KpiSpec("Redeposit 30d", "pct",
                              f"Share of the period's FTD traders who made another approved deposit within "
                              f"{REDEPOSIT_DAYS} days of their FTD. Only FTDs at least {REDEPOSIT_DAYS} days before "
                              f"the end of the data count."),
    "active_traders": KpiSpec("Active traders", "count",
                              "Traders who traded in the period: opened, closed or held a position (held: open at "
                              "some moment of it)."),
    "dau": KpiSpec("Daily active (avg)", "count",
                   "DAU: traders who opened, closed or held a position on a day, averaged over every day of the "
                   "period (days without trading count as zero)."),
    "wau": KpiSpec("Weekly active", "count",
                   "WAU as of the period end: traders who opened, closed or held a position in the last 7 days of "
                   "the period."),
    "mau": KpiSpec("Monthly active", "count",
                   "MAU as of the period end: traders who opened, closed or held a position in the last 30 days of "
                   "the period."),
    "trades": KpiSpec("Trades closed", "count", "Positions closed in the period."),
    # The definition names the configured churn activity: churn_definition() fills it in.
    "churn_rate": KpiSpec("Churn rate", "pct", "", higher_is_better=False),
    "volume_usd": KpiSpec("Volume (notional)", "usd",
                          "USD notional of the positions closed in the period, one side counted. Lots are shown per "
                          "asset class only: a lot is 100,000 units of an FX pair but one coin of a crypto, so lots "
                          "of different classes do not add up."),
    "client_pnl": KpiSpec("Client P&L", "usd",
                          "Closed client P&L: clients' realised result on positions closed in the period, profit + "
                          "commission + swap (commission and swap are negative when they cost the client). Up means "
                          "clients did better."),
    "broker_revenue": KpiSpec("Revenue (est.)", "usd",
                              "Broker revenue estimate: commissions paid by clients + net swap charged to clients on "
                              "positions closed in the period − bonuses granted (net of bonus cancellations). Excludes "
                              "spread markup and B-book trading P&L, which the data does not hold; shown only when "
                              "trades carry commission or swap."),
    "esma_loss_share": KpiSpec("Losing accounts", "pct",
                               f"ESMA disclosure figure: of the traders with trades closed in the {ESMA_DAYS} days to "
                               f"the period end, the share whose realised profit + commission + swap is below zero.",
                               higher_is_better=False),
    # Shown as a line under the FTD tile (NOTES), not as tiles of their own.
    "ftds_charged_back": KpiSpec("FTDs charged back", "count",
                                 "Of the period's FTDs, those whose first deposit was reversed or charged back since. "
                                 "They still count as FTDs; their money is out of deposits and net deposits.",
                                 higher_is_better=False),
    "ftds_charged_back_usd": KpiSpec("FTD amount charged back", "usd",
                                     "USD of the period's first deposits that were reversed or charged back since.",
                                     higher_is_better=False),
}
# KPIs shown as a line under another KPI's tile rather than as tiles: tile key -> (count, amount).
NOTES: dict[str, tuple[str, ...]] = {"ftds": ("ftds_charged_back", "ftds_charged_back_usd")}

# Tile groups of the Overview, six tiles at most so each fits one row.
GROUPS: dict[str, tuple[str, ...]] = {
    "Acquisition": ("registrations", "kyc_approvals", "ftds", "ftd_conversion_7d", "ftd_conversion_30d",
                    "time_to_ftd"),
    "Money": ("deposits", "withdrawals", "net_deposits", "depositors", "avg_deposit", "redeposit_rate"),
    "Activity": ("active_traders", "dau", "wau", "mau", "trades", "churn_rate"),
    "Trading and risk": ("volume_usd", "client_pnl", "broker_revenue", "esma_loss_share"),
}


def churn_definition(activity: ChurnActivity | None = None) -> str:
    """The churn rate's definition with the activity that keeps a trader (``activity``, default: the
    configured :func:`analytics.events.churn_activity`)."""
    activity = activity or churn_activity()
    return (f"Of the traders who traded (opened, closed or held a position) in the {CHURN_DAYS} days before the "
            f"period starts, the share with no activity in the last {CHURN_DAYS} days of the period (churned by "
            f"its end). Activity here is {activity.description} (TRADERLENS_CHURN_ACTIVITY={activity.name}).")


def _in(column: ColumnElement, start: datetime | date, end: datetime | date) -> ColumnElement[bool]:
    """``start <= column < end`` (timestamps) - the half-open form every window here uses."""
    return sa.and_(column >= start, column < end)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


def _approved(kind: str) -> ColumnElement[bool]:
    return sa.and_(transactions.c.kind == kind, transactions.c.status == "approved")


def _float(x: Any) -> float:
    return float(x) if x is not None else 0.0


def _ratio(num: Any, den: Any) -> float | None:
    return float(num) / float(den) if den else None


def _first_deposits(trader_filter: TraderFilter) -> sa.Subquery:
    """Per trader with an FTD (:func:`analytics.events.first_deposits`): ``ftd_at``, ``deposits_30d``,
    the approved deposits within 30 days of the FTD (the FTD included, even taken back), over the whole
    ledger, and ``taken_back_usd``, the FTD's amount when it was reversed or charged back (else NULL)."""
    # Each deposit beside its trader's FTD time, from one window: a join of the grouped FTDs back to the
    # ledger took over twice as long on PostgreSQL (0.22 s against 0.09 s, 200,000 traders).
    ranked = first_deposits(trader_filter, form="deposits").subquery("ranked_deposits")
    return (
        sa.select(ranked.c.trader_id, ranked.c.occurred_at.label("ftd_at"),
                  sa.func.count().filter(ranked.c.created_at <= ranked.c.occurred_at + interval(REDEPOSIT_DAYS))
                  .label("deposits_30d"),
                  sa.func.sum(ranked.c.amount_usd).filter(ranked.c.is_ftd, ranked.c.status != "approved")
                  .label("taken_back_usd"))
        .group_by(ranked.c.trader_id, ranked.c.occurred_at)
        .subquery("first_deposits")
    )


def _ledger_query(periods: Mapping[str, DateRange], trader_filter: TraderFilter,
                  data_end: datetime | None) -> sa.Select:
    """One row: acquisition and money figures for each period, columns suffixed ``_<period>``."""
    dep = _first_deposits(EVERYONE)  # joined to the filtered traders below
    reg, ftd_at = traders.c.registered_at, dep.c.ftd_at
    # Without data nothing is mature; a far-past cutoff keeps the SQL uniform.
    end = data_end or datetime(1970, 1, 1)
    people_cols: list[ColumnElement] = []
    money_cols: list[ColumnElement] = []
    for name, rng in periods.items():
        in_reg, in_ftd = rng.contains(reg), rng.contains(ftd_at)
        people_cols += [
            sa.func.count().filter(in_reg).label(f"registrations_{name}"),
            sa.func.count().filter(rng.contains(traders.c.kyc_approved_at)).label(f"kyc_approvals_{name}"),
            sa.func.count().filter(in_ftd).label(f"ftds_{name}"),
            sa.func.count().filter(in_ftd, dep.c.taken_back_usd.is_not(None)).label(f"ftds_charged_back_{name}"),
            sa.func.sum(dep.c.taken_back_usd).filter(in_ftd).label(f"ftds_charged_back_usd_{name}"),
            sa.func.percentile_cont(0.5).within_group(
                sa.case((in_ftd, epoch_seconds(ftd_at) - epoch_seconds(reg)))).label(f"ttf_s_{name}"),
        ]
        for w in FTD_WINDOWS:
            mature = sa.and_(in_reg, reg <= end - timedelta(days=w))
            people_cols += [
                sa.func.count().filter(mature).label(f"cohort{w}_{name}"),
                sa.func.count().filter(mature, ftd_at <= reg + interval(w)).label(f"converted{w}_{name}"),
            ]
        ftd_mature = sa.and_(in_ftd, ftd_at <= end - timedelta(days=REDEPOSIT_DAYS))
        people_cols += [
            sa.func.count().filter(ftd_mature).label(f"redeposit_base_{name}"),
            sa.func.count().filter(ftd_mature, dep.c.deposits_30d >= 2).label(f"redeposited_{name}"),
        ]
        in_txn = rng.contains(transactions.c.created_at)
        amount = sa.func.abs(transactions.c.amount_usd)
        money_cols += [
            sa.func.sum(amount).filter(in_txn, _approved("deposit")).label(f"deposits_{name}"),
            sa.func.sum(amount).filter(in_txn, _approved("withdrawal")).label(f"withdrawals_{name}"),
            sa.func.count(sa.distinct(transactions.c.trader_id)).filter(in_txn, _approved("deposit"))
            .label(f"depositors_{name}"),
            sa.func.sum(amount).filter(in_txn, _approved("bonus")).label(f"bonus_{name}"),
            sa.func.sum(amount).filter(in_txn, _approved("bonus_cancel")).label(f"bonus_cancel_{name}"),
        ]
    people = (
        sa.select(*people_cols)
        .select_from(traders.outerjoin(dep, dep.c.trader_id == traders.c.trader_id))
        .where(*trader_filter.conditions())
        .subquery("people")
    )
    first = min(r.start_ts for r in periods.values())
    last = max(r.end_ts for r in periods.values())
    money = (
        sa.select(*money_cols)
        .where(_in(transactions.c.created_at, first, last), trader_filter.restrict(transactions.c.trader_id))
        .subquery("money")
    )
    return sa.select(people, money).select_from(people.join(money, sa.true()))


def _trading_query(periods: Mapping[str, DateRange], trader_filter: TraderFilter,
                   churn: ChurnActivity) -> sa.Select:
    """One row: activity, churn, closed-position and ESMA figures per period (``<name>_<period>``),
    from the rollups only; ``churn`` says which activity besides trading keeps a trader."""
    activity = _activity_totals(periods, trader_filter, churn)
    closed = _closed_totals(periods, trader_filter)
    esma = _esma_totals(periods, trader_filter)
    return sa.select(activity, closed, esma).select_from(
        activity.join(closed, sa.true()).join(esma, sa.true()))


def _trader_days(start: datetime, until: datetime, trader_filter: TraderFilter) -> sa.Subquery:
    """(``trader_id``, ``day``): each day from ``start`` to ``until`` (midnights, exclusive) on which a
    trader traded, once: opened, closed or held a position (the ``trading_days`` rollup, read as
    :func:`analytics.events.activity_select` defines trading).

    The filter is applied here only when it keeps a minority (:meth:`TraderFilter.restrict_early`);
    callers apply ``restrict_late`` once per trader.
    """
    days = activity_select(TRADING).subquery("trading_activity")
    return (sa.select(days.c.trader_id, days.c.occurred_at.label("day"))
            .where(_in(days.c.occurred_at, start, until), trader_filter.restrict_early(days.c.trader_id))
            .subquery("trader_days"))


def _activity_totals(periods: Mapping[str, DateRange], trader_filter: TraderFilter,
                     churn: ChurnActivity) -> sa.Subquery:
    """Active traders, trader-days, WAU, MAU and churn per period (trader-days: :func:`_trader_days`)."""
    until = max(r.end_ts for r in periods.values())
    active_from = midnight(min(r.start for r in periods.values()) - timedelta(days=CHURN_DAYS))
    da = daily_activity.c
    td = _trader_days(active_from, until, trader_filter).c

    def on_days(first: date, last: date) -> ColumnElement[int]:
        return sa.func.max(_flag(_in(td.day, midnight(first), midnight(last + timedelta(days=1)))))

    activity_cols: list[ColumnElement] = [td.trader_id]
    for name, rng in periods.items():
        activity_cols += [
            on_days(rng.start, rng.end).label(f"active_{name}"),
            sa.func.count().filter(rng.contains(td.day)).label(f"trader_days_{name}"),
            on_days(rng.end - timedelta(days=6), rng.end).label(f"wau_{name}"),
            on_days(rng.end - timedelta(days=CHURN_DAYS - 1), rng.end).label(f"mau_{name}"),
            on_days(rng.start - timedelta(days=CHURN_DAYS), rng.start - timedelta(days=1)).label(f"before_{name}"),
        ]
    activity = (sa.select(*activity_cols).group_by(td.trader_id).having(trader_filter.restrict_late(td.trader_id))
                .subquery("activity"))
    act = activity.c

    # The churn activity besides trading (an approved deposit; with "any" a login too) in the last
    # 30 days of a period keeps a trader who stopped trading from counting as churned (rollup days
    # are whole reporting days, like the windows).
    def last_days(rng: DateRange) -> datetime:  # the first instant of the period's last CHURN_DAYS days
        return midnight(rng.end - timedelta(days=CHURN_DAYS - 1))

    recent_from = min(last_days(r) for r in periods.values())
    recent = (
        sa.select(da.trader_id, *(sa.func.max(_flag(_in(da.day, last_days(rng), rng.end_ts)))
                                  .label(f"recent_{name}") for name, rng in periods.items()))
        .where(da.event.in_(churn.events), _in(da.day, recent_from, until))
        .group_by(da.trader_id)
        .subquery("recent")
    )
    totals: list[ColumnElement] = []
    for name in periods:
        totals += [sa.func.sum(act[f"{c}_{name}"]).label(f"{c}_{name}")
                   for c in ("active", "trader_days", "wau", "mau", "before")]
        totals.append(sa.func.count().filter(act[f"before_{name}"] == 1, act[f"mau_{name}"] == 0,
                                             sa.func.coalesce(recent.c[f"recent_{name}"], 0) == 0)
                      .label(f"churned_{name}"))
    return (sa.select(*totals)
            .select_from(activity.outerjoin(recent, recent.c.trader_id == act.trader_id))
            .subquery("activity_totals"))


def _closed_totals(periods: Mapping[str, DateRange], trader_filter: TraderFilter) -> sa.Subquery:
    """Positions closed in each period: count, lots, notional, client P&L, commission, swap and how
    many carry commission or swap, summed over ``daily_trading`` (its ``day`` is the close day;
    every window here is made of whole reporting-zone days)."""
    dt = daily_trading.c
    measures: dict[str, ColumnElement] = {
        "closed": dt.closed, "costed": dt.costed, "lots": dt.lots, "notional": dt.notional_usd,
        "commission": dt.commission_usd, "swap": dt.swap_usd, "pnl": dt.client_pnl_usd}
    first = min(r.start_ts for r in periods.values())
    last = max(r.end_ts for r in periods.values())
    return (sa.select(*(sa.func.sum(expr).filter(rng.contains(dt.day)).label(f"{key}_{name}")
                        for name, rng in periods.items() for key, expr in measures.items()))
            .where(_in(dt.day, first, last), trader_filter.restrict(dt.trader_id))
            .subquery("closed_totals"))


def _esma_totals(periods: Mapping[str, DateRange], trader_filter: TraderFilter) -> sa.Subquery:
    """The ESMA figures per period: traders with positions closed in the 12 months to the period
    end (``esma_base_<period>``) and how many of them have a negative client P&L over those
    months (``esma_losing_<period>``). One pass over ``daily_trading``, grouped by trader.

    NUMERIC sums stay exact, so the sign test is exact at zero. The client P&L is stored summed
    in the rollup: adding profit, commission and swap per row here cost about as much as the scan.
    """
    dt = daily_trading.c
    years = {name: (midnight(rng.end - timedelta(days=ESMA_DAYS - 1)), rng.end_ts) for name, rng in periods.items()}
    per_trader_cols: list[ColumnElement] = []
    for name, window in years.items():
        inside = _in(dt.day, *window)
        # A daily_trading row exists only for a day with a position closed.
        per_trader_cols += [sa.func.count().filter(inside).label(f"rows_{name}"),
                            sa.func.sum(dt.client_pnl_usd).filter(inside).label(f"pnl_{name}")]
    per_trader = (
        sa.select(*per_trader_cols)
        .where(_in(dt.day, min(a for a, _ in years.values()), max(b for _, b in years.values())),
               trader_filter.restrict_early(dt.trader_id))
        .group_by(dt.trader_id)
        .having(trader_filter.restrict_late(dt.trader_id))
        .subquery("esma_per_trader")
    )
    pt = per_trader.c
    totals: list[ColumnElement] = []
    for name in periods:
        traded = pt[f"rows_{name}"] > 0
        totals += [sa.func.count().filter(traded).label(f"esma_base_{name}"),
                   sa.func.count().filter(traded, pt[f"pnl_{name}"] < 0).label(f"esma_losing_{name}")]
    return sa.select(*totals).subquery("esma_totals")


def compute_kpis(engine: Engine, *, date_range: DateRange, trader_filter: TraderFilter = DEFAULT_FILTER) -> list[Kpi]:
    """Every KPI of :data:`SPECS` for ``date_range`` and ``date_range.previous()``, in display order.

    Every ``previous`` is None when the previous period ends before the data begins: zero
    registrations before a broker's first day are no basis for a comparison. ``broker_revenue`` is
    left out when no trade of either period carries commission or swap (its estimate would be
    bonuses alone). See each Kpi's ``definition``.
    """
    periods = {"cur": date_range, "prev": date_range.previous()}
    churn = churn_activity()
    with reading(engine) as conn:
        span = read_event_span(conn)
        data_start, data_end = (span.first_at, span.last_at) if span else (None, None)
        ledger = conn.execute(_ledger_query(periods, trader_filter, data_end)).one()._mapping
        trading = conn.execute(_trading_query(periods, trader_filter, churn)).one()._mapping
    values = {name: _period_values(ledger, trading, name, rng.days) for name, rng in periods.items()}
    if data_start is None or periods["prev"].end_ts <= data_start:
        values["prev"] = dict.fromkeys(values["prev"])
    has_costs = any(trading[f"costed_{name}"] for name in periods)
    return [
        Kpi(key, spec.label, values["cur"][key], values["prev"][key], spec.unit,
            churn_definition(churn) if key == "churn_rate" else spec.definition, spec.higher_is_better)
        for key, spec in SPECS.items()
        if key != "broker_revenue" or has_costs
    ]


def _period_values(ledger: Mapping[str, Any], trading: Mapping[str, Any], name: str, days: int
                   ) -> dict[str, float | None]:
    def get(row: Mapping[str, Any], column: str) -> float:
        return _float(row[f"{column}_{name}"])

    def usd(column: str) -> float:
        return round(_float(trading[f"{column}_{name}"]), 2)

    deposits, withdrawals = get(ledger, "deposits"), get(ledger, "withdrawals")
    depositors = get(ledger, "depositors")
    ttf = ledger[f"ttf_s_{name}"]
    bonuses = get(ledger, "bonus") - get(ledger, "bonus_cancel")
    costed = get(trading, "costed")
    return {
        "registrations": get(ledger, "registrations"),
        "kyc_approvals": get(ledger, "kyc_approvals"),
        "ftds": get(ledger, "ftds"),
        "ftds_charged_back": get(ledger, "ftds_charged_back"),
        "ftds_charged_back_usd": round(get(ledger, "ftds_charged_back_usd"), 2),
        **{f"ftd_conversion_{w}d": _ratio(ledger[f"converted{w}_{name}"], ledger[f"cohort{w}_{name}"])
           for w in FTD_WINDOWS},
        "time_to_ftd": float(ttf) / 3600 if ttf is not None else None,
        "deposits": deposits,
        "withdrawals": withdrawals,
        "net_deposits": deposits - withdrawals,
        "depositors": depositors,
        "avg_deposit": _ratio(deposits, depositors),
        "redeposit_rate": _ratio(ledger[f"redeposited_{name}"], ledger[f"redeposit_base_{name}"]),
        "active_traders": get(trading, "active"),
        "dau": get(trading, "trader_days") / days,
        "wau": get(trading, "wau"),
        "mau": get(trading, "mau"),
        "trades": get(trading, "closed"),
        "volume_usd": usd("notional"),
        "client_pnl": usd("pnl"),
        # Commission and swap are signed from the client's side: negative is what the broker earns.
        "broker_revenue": (-usd("commission") - usd("swap") - bonuses) if costed else None,
        "esma_loss_share": _ratio(trading[f"esma_losing_{name}"], trading[f"esma_base_{name}"]),
        "churn_rate": _ratio(trading[f"churned_{name}"], trading[f"before_{name}"]),
    }


def _trend_query(metric: str, date_range: DateRange, period: Period, trader_filter: TraderFilter) -> sa.Select:
    """Rows (``period_start``, ``value``) of a trend metric, for the periods with anything in them."""
    if metric == "active_traders":
        # Traded in the period (opened, closed or held): each trader once per bucket of their trading days.
        days = _trader_days(date_range.start_ts, date_range.end_ts, trader_filter)
        bucket = period_start(days.c.day, period).label("period_start")
        pairs = (sa.select(bucket, days.c.trader_id).group_by(bucket, days.c.trader_id)
                 .having(trader_filter.restrict_late(days.c.trader_id)).subquery("active_pairs"))
        return (sa.select(pairs.c.period_start, sa.func.count().label("value"))
                .group_by(pairs.c.period_start))
    source, at, aggregate, conditions = _trend_source(metric, trader_filter)
    bucket = period_start(at, period).label("period_start")
    return (sa.select(bucket, aggregate.label("value")).select_from(source)
            .where(date_range.contains(at), *conditions).group_by(bucket))


def _trend_source(metric: str, trader_filter: TraderFilter
                  ) -> tuple[sa.FromClause, ColumnElement, ColumnElement, list[ColumnElement[bool]]]:
    """(FROM, time column, value aggregate, extra WHERE conditions) of a trend metric other than
    active traders."""
    if metric in ("registrations", "kyc_approvals"):
        col = traders.c.registered_at if metric == "registrations" else traders.c.kyc_approved_at
        return traders, col, sa.func.count(), list(trader_filter.conditions())
    if metric == "ftds":
        dep = _first_deposits(trader_filter)
        return dep, dep.c.ftd_at, sa.func.count(), []
    restrict_txn = trader_filter.restrict(transactions.c.trader_id)
    amount = sa.func.abs(transactions.c.amount_usd)
    if metric in ("deposits", "withdrawals", "net_deposits", "depositors"):
        aggregate = {
            "deposits": sa.func.sum(amount).filter(_approved("deposit")),
            "withdrawals": sa.func.sum(amount).filter(_approved("withdrawal")),
            "net_deposits": sa.func.sum(sa.case((transactions.c.kind == "withdrawal", -amount), else_=amount))
            .filter(transactions.c.status == "approved"),
            "depositors": sa.func.count(sa.distinct(transactions.c.trader_id)).filter(_approved("deposit")),
        }[metric]
        kinds = ("deposit",) if metric in ("deposits", "depositors") else ("deposit", "withdrawal")
        return transactions, transactions.c.created_at, aggregate, [transactions.c.kind.in_(kinds), restrict_txn]
    dt = daily_trading.c
    aggregate = {
        "trades": sa.func.sum(dt.closed),
        "volume_usd": sa.func.sum(dt.notional_usd),
        "client_pnl": sa.func.sum(dt.client_pnl_usd),
    }.get(metric)
    if aggregate is None:
        raise ValueError(f"unknown trend metric {metric!r}; use one of {', '.join(TREND_METRICS)}")
    # Close days: day, week and month buckets and the range's bounds are all whole days.
    return daily_trading, dt.day, aggregate, [trader_filter.restrict(dt.trader_id)]


def compute_kpi_trend(engine: Engine, *, metric: str, date_range: DateRange, period: Period,
                      trader_filter: TraderFilter = DEFAULT_FILTER) -> pd.DataFrame:
    """``metric`` per day, week (Monday start) or month of ``date_range``.

    Columns: ``period_start`` (datetime64, the period's first day, even when the range starts
    later), ``value`` (float; 0 for periods without events), ``partial`` (bool: the period reaches
    outside the range, so it only counts the part inside). Metrics are :data:`TREND_METRICS`;
    flows are timed like the KPIs (money by transaction time, volume/P&L/trades by close time,
    active traders by the days they opened, closed or held a position).
    """
    query = _trend_query(metric, date_range, period, trader_filter)
    with reading(engine) as conn:
        rows = {pd.Timestamp(r.period_start): _float(r.value) for r in conn.execute(query)}
    firsts = period_starts(date_range, period)
    starts = [pd.Timestamp(s) for s in firsts]
    partial = [first < date_range.start or step_period(first, period) > date_range.end + timedelta(days=1)
               for first in firsts]
    return pd.DataFrame({"period_start": pd.to_datetime(pd.Series(starts, dtype="datetime64[us]")),
                         "value": [rows.get(s, 0.0) for s in starts], "partial": partial},
                        columns=["period_start", "value", "partial"])


DIMENSION_LABELS: dict[str, str] = {
    "country": "Country", "acquisition_channel": "Acquisition channel", "affiliate_id": "Affiliate (IB)",
    "platform": "Platform", "vip_tier": "VIP tier", "segment": "Segment",
}
# What a missing attribute is shown as.
MISSING_LABELS: dict[str, str] = {
    "country": "Unknown", "acquisition_channel": "Unknown", "affiliate_id": "No affiliate",
    "platform": "No account", "vip_tier": STANDARD_TIER, "segment": NO_SEGMENT,
}
BREAKDOWN_COLUMNS = ["value", "registrations", "ftds", "cohort_registrations", "cohort_ftds", "ftd_conversion",
                     "deposits", "withdrawals", "net_deposits", "active_traders", "volume_usd"]
BREAKDOWN_WINDOW = 7  # days of the cohort FTD conversion in breakdowns


def _dimension(dimension: str, trader_filter: TraderFilter) -> sa.Subquery:
    """``trader_id``, ``registered_at`` and the dimension's ``value`` of the filtered traders."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; use one of {', '.join(DIMENSIONS)}")
    missing = sa.literal(MISSING_LABELS[dimension])
    if dimension == "segment":
        # One row per segment a trader is in (counted in each), or one NO_SEGMENT row.
        member = segment_memberships().subquery("memberships")
        return (sa.select(traders.c.trader_id, traders.c.registered_at,
                          sa.func.coalesce(member.c.segment, missing).label("value"))
                .select_from(traders.outerjoin(member, member.c.trader_id == traders.c.trader_id))
                .where(*trader_filter.conditions()).subquery("dim"))
    if dimension != "platform":
        return (sa.select(traders.c.trader_id, traders.c.registered_at,
                          sa.func.coalesce(traders.c[dimension], missing).label("value"))
                .where(*trader_filter.conditions()).subquery("dim"))
    # A trader's platform is the one of their first live account (demo only when they have no live one).
    ranked = sa.select(
        accounts.c.trader_id, accounts.c.platform,
        sa.func.row_number().over(partition_by=accounts.c.trader_id,
                                  order_by=(accounts.c.is_demo, accounts.c.opened_at, accounts.c.account_id))
        .label("rn"),
    ).subquery("ranked_accounts")
    primary = sa.select(ranked.c.trader_id, ranked.c.platform).where(ranked.c.rn == 1).subquery("primary_account")
    return (sa.select(traders.c.trader_id, traders.c.registered_at,
                      sa.func.coalesce(primary.c.platform, missing).label("value"))
            .select_from(traders.outerjoin(primary, primary.c.trader_id == traders.c.trader_id))
            .where(*trader_filter.conditions()).subquery("dim"))


def compute_breakdown(engine: Engine, *, dimension: str, date_range: DateRange,
                      trader_filter: TraderFilter = DEFAULT_FILTER, top: int = 10,
                      rank_by: str = "deposits") -> pd.DataFrame:
    """Headline figures for ``date_range`` per value of a trader attribute: the ``top`` values by
    ``rank_by`` (any numeric column), then the rest summed as "Other".

    ``platform`` is the platform of a trader's first live account, so each trader (and all their
    trading) counts once. ``segment`` is each saved segment that is not archived (current members): a
    trader in two segments counts in both, and every segment is shown (no "Other", whose sum would count
    such traders twice). Missing values show as :data:`MISSING_LABELS`.

    Columns: ``value`` (str), ``registrations``, ``ftds``, ``cohort_registrations`` and
    ``cohort_ftds`` (registrations at least 7 days before the data end, and those of them with an
    FTD within 7 days), ``ftd_conversion`` (cohort_ftds / cohort_registrations, NaN without a
    mature cohort), ``deposits``, ``withdrawals``, ``net_deposits`` (USD), ``active_traders``
    (opened, closed or held a position), ``volume_usd`` (notional of trades closed in the range). Sorted by
    ``rank_by`` descending, "Other" last.
    """
    dim = _dimension(dimension, trader_filter)
    dep = _first_deposits(EVERYONE)  # the joins below keep the filtered traders only
    amount = sa.func.abs(transactions.c.amount_usd)
    money = (
        sa.select(transactions.c.trader_id,
                  sa.func.sum(amount).filter(transactions.c.kind == "deposit").label("deposits"),
                  sa.func.sum(amount).filter(transactions.c.kind == "withdrawal").label("withdrawals"))
        .where(date_range.contains(transactions.c.created_at), transactions.c.status == "approved",
               transactions.c.kind.in_(("deposit", "withdrawal")))
        .group_by(transactions.c.trader_id).subquery("money")
    )
    # Active: traded in the range (opened, closed or held: trader-days), volume: closed in the range.
    days = _trader_days(date_range.start_ts, date_range.end_ts, EVERYONE)
    volume = (sa.select(daily_trading.c.trader_id, daily_trading.c.notional_usd)
              .where(date_range.contains(daily_trading.c.day)))
    active = sa.select(days.c.trader_id, sa.literal(None, Money).label("notional_usd"))
    both = sa.union_all(active, volume).subquery("trading_rows")
    trading = (sa.select(both.c.trader_id, sa.func.sum(both.c.notional_usd).label("volume_usd"))
               .group_by(both.c.trader_id).subquery("trading"))
    reg, ftd_at = dim.c.registered_at, dep.c.ftd_at
    with reading(engine) as conn:
        span = read_event_span(conn)
        data_end = span.last_at if span else datetime(1970, 1, 1)
        mature = sa.and_(date_range.contains(reg), reg <= data_end - timedelta(days=BREAKDOWN_WINDOW))
        query = (
            sa.select(
                dim.c.value,
                sa.func.count().filter(date_range.contains(reg)).label("registrations"),
                sa.func.count().filter(date_range.contains(ftd_at)).label("ftds"),
                sa.func.count().filter(mature).label("cohort_registrations"),
                sa.func.count().filter(mature, ftd_at <= reg + interval(BREAKDOWN_WINDOW)).label("cohort_ftds"),
                sa.func.sum(money.c.deposits).label("deposits"),
                sa.func.sum(money.c.withdrawals).label("withdrawals"),
                sa.func.count(trading.c.trader_id).label("active_traders"),
                sa.func.sum(trading.c.volume_usd).label("volume_usd"),
            )
            .select_from(
                dim.outerjoin(dep, dep.c.trader_id == dim.c.trader_id)
                .outerjoin(money, money.c.trader_id == dim.c.trader_id)
                .outerjoin(trading, trading.c.trader_id == dim.c.trader_id))
            .group_by(dim.c.value)
        )
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=[c for c in BREAKDOWN_COLUMNS if c not in ("ftd_conversion", "net_deposits")])
    return _top_and_other(frame, top=max(top, len(frame)) if dimension == "segment" else top, rank_by=rank_by)


def _top_and_other(frame: pd.DataFrame, *, top: int, rank_by: str) -> pd.DataFrame:
    numeric = [c for c in frame.columns if c != "value"]
    frame[numeric] = frame[numeric].astype("float64").fillna(0.0)
    frame["value"] = frame["value"].astype(str)
    frame["net_deposits"] = frame["deposits"] - frame["withdrawals"]
    # Groups with nothing in the range (e.g. a country whose traders all registered earlier and
    # did nothing) would only pad the chart.
    frame = frame[(frame[numeric] != 0).any(axis=1)]
    if rank_by not in frame.columns or rank_by == "value":
        raise ValueError(f"cannot rank a breakdown by {rank_by!r}")
    frame = frame.sort_values([rank_by, "registrations", "value"], ascending=[False, False, True], kind="stable")
    if len(frame) > top:
        rest = frame.iloc[top:][[*numeric, "net_deposits"]].sum()
        frame = pd.concat([frame.iloc[:top], pd.DataFrame([{"value": OTHER, **rest.to_dict()}])], ignore_index=True)
    frame = frame.reset_index(drop=True)
    frame["ftd_conversion"] = (frame["cohort_ftds"] / frame["cohort_registrations"].where(
        frame["cohort_registrations"] > 0))
    return frame[BREAKDOWN_COLUMNS]


VOLUME_COLUMNS = ["asset_class", "trades", "lots", "notional_usd", "client_pnl"]


def compute_volume_by_asset_class(engine: Engine, *, date_range: DateRange,
                                  trader_filter: TraderFilter = DEFAULT_FILTER) -> pd.DataFrame:
    """Trading on positions closed in ``date_range`` per asset class, largest notional first.

    Columns: ``asset_class`` (str; "other" when unknown), ``trades`` (int), ``lots``,
    ``notional_usd``, ``client_pnl`` (profit + commission + swap, USD) as floats.
    """
    dt = daily_trading.c
    asset = sa.func.coalesce(dt.asset_class, "other").label("asset_class")
    query = (
        sa.select(asset, sa.func.sum(dt.closed).label("trades"), sa.func.sum(dt.lots).label("lots"),
                  sa.func.sum(dt.notional_usd).label("notional_usd"),
                  sa.func.sum(dt.client_pnl_usd).label("client_pnl"))
        .where(date_range.contains(dt.day), trader_filter.restrict(dt.trader_id))
        .group_by(asset)
    )
    with reading(engine) as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=VOLUME_COLUMNS)
    frame["asset_class"] = frame["asset_class"].astype(str)
    frame["trades"] = frame["trades"].astype("int64")
    for col in ("lots", "notional_usd", "client_pnl"):
        frame[col] = frame[col].astype("float64").fillna(0.0)
    return frame.sort_values(["notional_usd", "asset_class"], ascending=[False, True], kind="stable",
                             ignore_index=True)
