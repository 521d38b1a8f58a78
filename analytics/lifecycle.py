"""Lifecycle: new / returning / resurrecting / dormant traders per period, and each trader's stage.

Two views of the same question, "where is each trader in their life with us":

- :func:`compute_lifecycle` is PostHog's lifecycle insight (docs/semantics.md, "Lifecycle") over
  any event of ``trader_events``: per period, how many traders were new, returning,
  resurrecting, and how many went dormant (a negative count).
- :func:`compute_stage_distribution` and :func:`compute_stage_flows` place every trader on the
  stage ladder (lead → registered → KYC approved → FTD → active → dormant → churned
  → reactivated) as of a day, and count the moves between two days.

Everything is aggregated in SQL on both backends; only per-period or per-stage counts come back.

Lifecycle rules, as built (one rule per bullet):

- Events are read from one period before ``date_from``'s period up to the end of ``date_to``'s
  period; each trader's events become the sorted list of their active periods. They come from the
  ``daily_activity`` rollup (one row per trader, event and day; for ``trade`` the
  ``trading_days`` rollup: every day a position was opened, closed or held): periods are whole days
  (of the reporting time zone),
  weeks or months, so "active in P" is the same question asked of a few rows per trader instead of
  every raw event.
- For the first active period found, ``prev`` is the trader's "created" period; later periods use
  the previous active period. **new**: ``prev == P``; **returning**: ``P - 1 == prev`` and P is not
  the first active period found; **resurrecting**: anything else (including an unknown created
  period, or one after the first activity).
- **dormant** is counted at ``P + 1`` for every active P whose next period is not active: once per
  gap, reported negative, dropped when ``P + 1`` lies outside the reported periods.
- The reported periods run from ``start(date_from)`` to ``start(date_to)``, zero-filled; week and
  month ranges snap to period starts (a Monday week containing 01-14 starts on 01-12).
- "created" (``new_basis``):
  ``"first-activity"`` (TraderLens default): the period of the trader's first-ever event of the
  chosen kind, so every trader is new exactly once, in the period they first did it.
  ``"registration"`` (PostHog compatibility): the period of ``registered_at``; a lead who never
  registered is created at ``lead_at`` (PostHog creates the person when first seen, which for us is
  the lead capture). A trader registered before the first activity is therefore "resurrecting" on
  it, never new; one with neither date is never new.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics.events import activity_days, churn_activity, compute_data_span
from analytics.filters import DEFAULT_FILTER, TraderFilter
from analytics.periods import (
    Period,
    WeekStart,
    check_report_size,
    count_periods,
    index_of,
    interval,
    local_date,
    local_time,
    midnight,
    period_index,
    period_start,
    start_of_index,
    step_period,
    truncate_date,
)
from analytics.reading import reading
from connectors.schema import daily_activity, daily_trading, trader_firsts, traders

NewBasis = Literal["first-activity", "registration"]
NEW_BASES: tuple[NewBasis, ...] = ("first-activity", "registration")
STATUSES = ("new", "returning", "resurrecting", "dormant")
LIFECYCLE_COLUMNS = ["period_start", *STATUSES]

# The ladder's order (docs/semantics.md, "Trader stages"); reactivated closes the loop after churned.
STAGES = ("lead", "registered", "kyc_approved", "ftd", "active", "dormant", "churned", "reactivated")
STAGE_LABELS = {
    "lead": "Lead", "registered": "Registered", "kyc_approved": "KYC approved", "ftd": "FTD",
    "active": "Active", "dormant": "Dormant", "churned": "Churned", "reactivated": "Reactivated",
    "not_captured": "Not yet captured",
}
# Flows start here for traders who were not yet a lead on the first day.
NOT_CAPTURED = "not_captured"
ACTIVE_WINDOW_DAYS = 30  # "active" = traded in the last 30 days (as the MAU counts it)
DEFAULT_DORMANT_DAYS = 7
DEFAULT_CHURN_DAYS = 30
CHURN_DAY_CHOICES = (30, 60, 90)

STAGE_COLUMNS = ["stage", "traders", "share", "vip_traders"]
FLOW_COLUMNS = ["from_stage", "to_stage", "traders"]

_BITS = 62  # periods per BIGINT mask (bit 63 is the sign)


def compute_lifecycle(
    engine: Engine,
    *,
    event: str = "trade",
    period: Period = "week",
    date_from: date,
    date_to: date,
    new_basis: NewBasis = "first-activity",
    week_start: WeekStart = "monday",
    trader_filter: TraderFilter = DEFAULT_FILTER,
) -> pd.DataFrame:
    """New / returning / resurrecting / dormant traders per period for one activity event.

    Returns one row per period from ``start(date_from)`` to ``start(date_to)`` (zero-filled):
    ``period_start`` (date), ``new``, ``returning``, ``resurrecting`` (int >= 0) and ``dormant``
    (int <= 0), each a count of distinct traders. The rules are in the module docstring;
    ``trader_filter`` keeps everyone but test accounts by default, as everywhere in TraderLens.
    Raises :class:`analytics.periods.ReportTooLarge` beyond the shared limit on periods.
    """
    if date_to < date_from:
        raise ValueError(f"date_to ({date_to}) is before date_from ({date_from})")
    if new_basis not in NEW_BASES:
        raise ValueError(f"unknown new_basis {new_basis!r}; use first-activity or registration")
    check_report_size(count_periods(date_from, date_to, period, week_start), period=period, what="periods")
    first = truncate_date(date_from, period, week_start)
    look_back = step_period(first, period, -1, week_start)
    end = step_period(truncate_date(date_to, period, week_start), period, 1, week_start)  # exclusive
    # Periods are small integers: 0 is the look-back period, 1 the first reported one.
    base = index_of(look_back, period, week_start)
    count = index_of(end, period, week_start) - base
    occurrences = _active_days(event).subquery("occurrences")
    occurred_at = occurrences.c.occurred_at
    i = period_index(occurred_at, period, week_start) - base

    # One bit per active period and trader, ORed together in one GROUP BY trader_id. This is the
    # spec's "sorted active periods" without sorting millions of (trader, period) pairs: grouping
    # by trader alone is a small, well-estimated hash aggregate that PostgreSQL runs in parallel.
    words = range(-(-count // _BITS))
    one = sa.cast(sa.literal(1), sa.BigInteger)
    if len(words) == 1:
        bits = [sa.func.bit_or(one.op("<<")(i)).label("m0")]
    else:
        bits = [sa.func.bit_or(sa.case((sa.and_(i >= w * _BITS, i < (w + 1) * _BITS),
                                        one.op("<<")(i - w * _BITS)))).label(f"m{w}") for w in words]
    masks = (
        sa.select(occurrences.c.trader_id, *bits)
        .where(occurred_at >= midnight(look_back), occurred_at < midnight(end),
               trader_filter.restrict_early(occurrences.c.trader_id))
        .group_by(occurrences.c.trader_id)
        .having(trader_filter.restrict_late(occurrences.c.trader_id))
        .subquery("masks")
    )
    slots = sa.values(sa.column("i", sa.Integer), sa.column("w", sa.Integer), sa.column("s", sa.Integer),
                      name="slots").data([(n, n // _BITS, n % _BITS) for n in range(count)])
    word = masks.c.m0 if len(words) == 1 else sa.case(*((slots.c.w == w, masks.c[f"m{w}"]) for w in words))
    activity = (
        sa.select(masks.c.trader_id, slots.c.i)
        .select_from(masks.join(slots, sa.true()))
        .where(word.op(">>")(slots.c.s).op("&")(one) == 1)
        .subquery("activity")
    )
    window = {"partition_by": activity.c.trader_id, "order_by": activity.c.i}
    neighbours = sa.select(
        activity.c.trader_id, activity.c.i,
        sa.func.lag(activity.c.i).over(**window).label("prev_i"),
        sa.func.lead(activity.c.i).over(**window).label("next_i"),
    ).cte("neighbours")
    nb = neighbours.c
    if new_basis == "registration":
        created_at = sa.func.coalesce(traders.c.registered_at, traders.c.lead_at)
        created_i = (sa.select(period_index(created_at, period, week_start) - base)
                     .where(traders.c.trader_id == nb.trader_id).scalar_subquery())
        first_is_new = created_i == nb.i
    else:
        # Created = the period of the first-ever event. For the first active period found that is
        # the same as "no event before the look-back period": one index probe per trader.
        earlier = _active_days(event).subquery("earlier")
        first_is_new = sa.not_(sa.exists().where(earlier.c.trader_id == nb.trader_id,
                                                 earlier.c.occurred_at < midnight(look_back)))
    status = sa.case(
        # Nested so the created-period test only runs on each trader's first active period.
        (nb.prev_i.is_(None), sa.case((first_is_new, "new"), else_="resurrecting")),
        (nb.prev_i == nb.i - 1, "returning"),
        else_="resurrecting",
    )
    active_rows = sa.select(nb.i.label("i"), status.label("status")).where(nb.i >= 1)
    dormant_rows = sa.select((nb.i + 1).label("i"), sa.literal("dormant").label("status")).where(
        sa.or_(nb.next_i.is_(None), nb.next_i != nb.i + 1), nb.i + 1 < count)
    rows = sa.union_all(active_rows, dormant_rows).subquery("statuses")
    counts = sa.select(rows.c.i, rows.c.status, sa.func.count()).group_by(rows.c.i, rows.c.status)

    with reading(engine) as conn:
        found = conn.execute(counts).all()
    table = pd.DataFrame(0, index=pd.RangeIndex(1, count), columns=list(STATUSES), dtype="int64")
    for n, status_name, traders_n in found:
        table.loc[n, status_name] = traders_n
    table["dormant"] = -table["dormant"]
    table.insert(0, "period_start", [start_of_index(base + n, period, week_start) for n in table.index])
    return table.reset_index(drop=True)[LIFECYCLE_COLUMNS]


def _active_days(event: str) -> sa.Select:
    """``trader_id`` and ``occurred_at`` (a day's start) of every day a trader did ``event``: for
    ``trade``, every day they opened, closed or held a position (:func:`analytics.events.activity_days`)."""
    return activity_days(event)


def _check_thresholds(dormant_days: int, churn_days: int) -> None:
    if not 1 <= dormant_days < churn_days:
        raise ValueError(f"need 1 <= dormant_days ({dormant_days}) < churn_days ({churn_days})")
    if churn_days < ACTIVE_WINDOW_DAYS:
        # A churn gap then fits inside the active window, which the single-pass reactivation
        # test below does not look for.
        raise ValueError(f"churn_days ({churn_days}) must be at least {ACTIVE_WINDOW_DAYS}")


def _partials(days: list[date], churn_days: int, trader_filter: TraderFilter) -> sa.Subquery:
    """Per-trader facts behind the stage, stacked from the firsts and one GROUP BY per source
    (MIN/MAX over a trader's rows gives the facts over all sources).

    What keeps a trader alive: trades (the interval a position was open) and the instants of the
    churn activity setting (:func:`analytics.events.churn_activity`: approved deposits, and with
    "any" logins too), the activity the churn KPI counts. Columns: trader_id; first_trade,
    first_deposit, first_any (all history); and per day i, from recent rows only: last_any_i,
    last_trade_i (latest activity by the end of the day), before_i (latest activity before the
    day's active window), back_i (first activity inside it).

    Read from the rollups, exactly: the firsts from ``trader_firsts``; for the recent facts every
    bound is a local midnight, so a ``daily_activity``
    row (one trader, event and day) lies wholly before or after it, and a ``daily_trading`` row
    (positions closed on one day) holds the earliest opening and the latest close, which is all
    the interval tests need (see the comments below). Positions are assumed closed no earlier
    than opened, which the importers enforce.

    "Recent" starts ``churn_days`` before the earliest active window: an older activity can only
    mean churned, dormant or "gap long enough", whatever its exact time, so :func:`_staged` reads a
    missing recent value that way and the per-day expressions run on a fraction of the rows.
    """
    def _no_time() -> ColumnElement:
        return sa.cast(sa.null(), sa.DateTime)  # typed: PostgreSQL reads a bare NULL column as text

    horizon = midnight(min(days) - timedelta(days=ACTIVE_WINDOW_DAYS - 1 + churn_days))
    da, dt = daily_activity.c, daily_trading.c
    per_day = [f"{name}_{i}" for i in range(len(days)) for name in ("last_any", "last_trade", "before", "back")]
    # All-history firsts: one row per trader from the trader_firsts rollup. The caller joins the
    # result to the filtered traders; filtering here too only pays when the filter keeps a minority.
    tf = trader_firsts.c
    selects = [sa.select(tf.trader_id, tf.first_trade_at.label("first_trade"),
                         tf.first_deposit_at.label("first_deposit"),
                         sa.func.least(tf.first_trade_at, tf.first_deposit_at, tf.first_login_at).label("first_any"),
                         *(_no_time().label(c) for c in per_day))
               .where(trader_filter.restrict_early(tf.trader_id))]
    for kind in ("trade", *churn_activity().events):
        if kind == "trade":
            trader_id, day, where = dt.trader_id, dt.day, sa.true()
            first_at, last_at = dt.first_opened_at, dt.last_closed_at
        else:
            trader_id, day, where = da.trader_id, da.day, da.event == kind
            first_at, last_at = da.first_at, da.last_at
        keep = trader_filter.restrict_early(trader_id)
        recent = [trader_id.label("trader_id"), *(_no_time().label(c) for c in ("first_trade", "first_deposit",
                                                                              "first_any"))]
        for end, window in map(_day_bounds, days):
            if kind != "trade":  # instants: a day's rows lie wholly before or after each bound
                last = sa.func.max(sa.case((day < end, last_at)))
                before = sa.func.max(sa.case((day < window, last_at)))
                back = sa.func.min(sa.case((sa.and_(day >= window, day < end), first_at)))
            else:
                # Positions closed on ``day``. Closed before the bound: their latest close counts.
                # Closed after it: one of them opened before the bound was still open at it.
                # Inside the window (closed on or after its first day) and opened by the end: the
                # earliest such opening, or the window's start for one opened earlier.
                last = sa.func.max(sa.case((day < end, last_at), (first_at < end, end)))
                before = sa.func.max(sa.case((day < window, last_at), (first_at < window, window)))
                back = sa.func.min(sa.case((sa.and_(day >= window, first_at < end),
                                            sa.func.greatest(first_at, window))))
            recent += [last, last if kind == "trade" else _no_time(), before, back]
        selects.append(sa.select(*recent[:4], *(c.label(n) for c, n in zip(recent[4:], per_day, strict=True)))
                       .where(where, keep, day >= horizon).group_by(trader_id))
    return sa.union_all(*selects).subquery("partials")


def _staged(days: list[date], dormant_days: int, churn_days: int, trader_filter: TraderFilter) -> sa.Subquery:
    """Every trader kept by the filter with their stage at the end of each of ``days``.

    Columns: trader_id, is_vip (bool), stage_0, stage_1, ... (one per day; NULL when the trader
    was not captured yet). "N days without activity" counts whole days: last activity on day
    D - 7 is 7 days before D.
    """
    parts = _partials(days, churn_days, trader_filter).c
    facts = [sa.func.min(parts[name]).label(name) for name in ("first_trade", "first_deposit", "first_any")]
    for i in range(len(days)):
        facts += [sa.func.max(parts[f"last_any_{i}"]).label(f"last_any_{i}"),
                  sa.func.max(parts[f"last_trade_{i}"]).label(f"last_trade_{i}"),
                  sa.func.max(parts[f"before_{i}"]).label(f"before_{i}"),
                  sa.func.min(parts[f"back_{i}"]).label(f"back_{i}")]
    per_trader = sa.select(parts.trader_id, *facts).group_by(parts.trader_id).subquery("per_trader")
    a, t = per_trader.c, traders.c
    churn = interval(churn_days)
    stages = []
    for i, day in enumerate(days):
        end, window = _day_bounds(day)
        before, back = a[f"before_{i}"], a[f"back_{i}"]
        last_any, last_trade = a[f"last_any_{i}"], a[f"last_trade_{i}"]
        # NULL recent facts mean "only older activity" (see _partials): as good as long ago.
        # Churned on the day before the comeback: (back - 1) - before >= churn_days, in whole days;
        # and active before the gap (a trade before the window).
        came_back = sa.and_(a.first_trade < window,
                            sa.or_(before.is_(None), local_time(before) < period_start(back, "day") - churn))
        stage = sa.case(
            # Not a lead yet (NULL dates compare as unknown, hence IS NOT TRUE rather than NOT).
            (sa.or_(t.lead_at < end, t.registered_at < end, a.first_any < end).is_not(sa.true()), sa.null()),
            (a.first_trade < end, sa.case(
                (sa.or_(last_any.is_(None), last_any < midnight(day + timedelta(days=1 - churn_days))), "churned"),
                (sa.or_(last_any < midnight(day + timedelta(days=1 - dormant_days)), last_trade.is_(None),
                        last_trade < window),
                 "dormant"),
                (came_back, "reactivated"),
                else_="active",
            )),
            (a.first_deposit < end, "ftd"),
            (t.kyc_approved_at < end, "kyc_approved"),
            (t.registered_at < end, "registered"),
            else_="lead",
        )
        stages.append(stage.label(f"stage_{i}"))
    return (
        sa.select(t.trader_id, t.vip_tier.is_not(None).label("is_vip"), *stages)
        .select_from(traders.outerjoin(per_trader, a.trader_id == t.trader_id))
        .where(*trader_filter.conditions())
        .subquery("staged")
    )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """(end of ``day`` exclusive, start of the active window ending with ``day``)."""
    return midnight(day + timedelta(days=1)), midnight(day - timedelta(days=ACTIVE_WINDOW_DAYS - 1))


def _last_data_day(engine: Engine) -> date:
    """The newest day (reporting time zone) with data (:func:`analytics.events.compute_data_span`), or today."""
    span = compute_data_span(engine)
    return span.end if span else local_date(datetime.now(UTC).replace(tzinfo=None))


def compute_stage_distribution(
    engine: Engine,
    *,
    as_of: date | None = None,
    dormant_days: int = DEFAULT_DORMANT_DAYS,
    churn_days: int = DEFAULT_CHURN_DAYS,
    trader_filter: TraderFilter = DEFAULT_FILTER,
) -> pd.DataFrame:
    """How many traders are at each lifecycle stage at the end of ``as_of`` (default: the newest
    day with data).

    Returns one row per stage in :data:`STAGES` order (zero rows included): ``stage`` (str),
    ``traders`` (int), ``share`` (float, of all traders captured by then; 0 when there are none),
    ``vip_traders`` (int, those with a VIP tier: the overlay).

    Precedence, first match wins (a trader not yet a lead by ``as_of`` is not counted):

    1. has traded (a trade opened by then):
       churned - no activity for >= ``churn_days``: trading (a position opened, closed or held) or the
       configured churn activity (an approved deposit; with TRADERLENS_CHURN_ACTIVITY=any a login too);
       dormant - none for >= ``dormant_days``, or no trade in the last 30 days;
       reactivated - came back within the last 30 days after a churn-length gap that followed a trade;
       active - otherwise (traded in the last 30 days and seen in the last ``dormant_days``);
    2. never traded - the furthest funnel step reached: ftd (approved deposit), kyc_approved,
       registered, else lead. Traders who never traded do not go dormant or churn.

    A trade counts from its open to its close, so an open position keeps a trader active.
    """
    _check_thresholds(dormant_days, churn_days)
    day = as_of or _last_data_day(engine)
    staged = _staged([day], dormant_days, churn_days, trader_filter)
    query = (
        sa.select(staged.c.stage_0, sa.func.count(), sa.func.sum(sa.case((staged.c.is_vip, 1), else_=0)))
        .where(staged.c.stage_0.is_not(None))
        .group_by(staged.c.stage_0)
    )
    with reading(engine) as conn:
        found = {stage: (int(n), int(vip or 0)) for stage, n, vip in conn.execute(query)}
    frame = pd.DataFrame(
        [(stage, *found.get(stage, (0, 0))) for stage in STAGES], columns=["stage", "traders", "vip_traders"])
    total = frame["traders"].sum()
    frame["share"] = frame["traders"] / total if total else 0.0
    return frame[STAGE_COLUMNS]


def trader_stages(
    day: date,
    *,
    dormant_days: int = DEFAULT_DORMANT_DAYS,
    churn_days: int = DEFAULT_CHURN_DAYS,
    trader_filter: TraderFilter = DEFAULT_FILTER,
) -> sa.Select:
    """SELECT trader_id, stage: each trader kept by the filter and captured by the end of ``day``,
    with their stage then (:data:`STAGES`; the rules of :func:`compute_stage_distribution`)."""
    _check_thresholds(dormant_days, churn_days)
    staged = _staged([day], dormant_days, churn_days, trader_filter)
    return sa.select(staged.c.trader_id, staged.c.stage_0.label("stage")).where(staged.c.stage_0.is_not(None))


def compute_stage_flows(
    engine: Engine,
    *,
    from_date: date,
    to_date: date,
    dormant_days: int = DEFAULT_DORMANT_DAYS,
    churn_days: int = DEFAULT_CHURN_DAYS,
    trader_filter: TraderFilter = DEFAULT_FILTER,
) -> pd.DataFrame:
    """How traders moved between stages from the end of ``from_date`` to the end of ``to_date``.

    Returns ``from_stage``, ``to_stage`` (str), ``traders`` (int), one row per pair that occurs,
    in stage order; traders who stay put appear as ``from_stage == to_stage``. Traders captured
    after ``from_date`` start from ``"not_captured"``. Summed by ``to_stage`` the counts are the
    distribution at ``to_date``, by ``from_stage`` the one at ``from_date`` (plus the newcomers).
    """
    if to_date < from_date:
        raise ValueError(f"to_date ({to_date}) is before from_date ({from_date})")
    _check_thresholds(dormant_days, churn_days)
    staged = _staged([from_date, to_date], dormant_days, churn_days, trader_filter)
    origin = sa.func.coalesce(staged.c.stage_0, NOT_CAPTURED)
    query = (
        sa.select(origin, staged.c.stage_1, sa.func.count())
        .where(staged.c.stage_1.is_not(None))
        .group_by(origin, staged.c.stage_1)
    )
    with reading(engine) as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=FLOW_COLUMNS)
    order = {stage: i for i, stage in enumerate((NOT_CAPTURED, *STAGES))}
    frame["traders"] = frame["traders"].astype("int64")
    return (frame.sort_values(["from_stage", "to_stage"], key=lambda c: c.map(order))
            .reset_index(drop=True))


def compute_active(frame: pd.DataFrame) -> pd.Series:
    """Traders active in each period of a :func:`compute_lifecycle` frame: new + returning + resurrecting."""
    return frame["new"] + frame["returning"] + frame["resurrecting"]


def compute_quick_ratios(frame: pd.DataFrame) -> pd.Series:
    """Each period's quick ratio in a :func:`compute_lifecycle` frame: traders gained (new + resurrecting)
    per trader lost (dormant), as floats; NaN where nobody went dormant. Above 1 the active base grows."""
    lost = -frame["dormant"]
    return (frame["new"] + frame["resurrecting"]) / lost.where(lost > 0)


def compute_quick_ratio(frame: pd.DataFrame) -> float:
    """The quick ratio of all of a :func:`compute_lifecycle` frame's periods together (their gains over
    their losses); NaN when nobody went dormant."""
    totals = frame[list(STATUSES)].sum().to_frame().T
    return float(compute_quick_ratios(totals).iloc[0])
