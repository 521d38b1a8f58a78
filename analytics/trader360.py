"""One trader in full: finding them, their profile and accounts, key figures, lifecycle stage, the
timeline of everything they did, their features against their segment and the population, and the
segments and clusters they belong to. The Trader 360 page reads these; each is one trader's rows,
read through the ``trader_id`` indexes of every event table (never a scan of the population, except
the search and the population's feature statistics).

Sections are separate functions returning typed results, so later issues (scores, campaigns,
alerts) add theirs beside them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics import lifecycle
from analytics.events import compute_data_span
from analytics.features import (
    FEATURE_NAMES,
    FEATURES,
    KYC_STATE,
    MaterialisedSnapshot,
    compute_features,
    feature_table,
    materialised_snapshot,
    snapshot_time,
)
from analytics.filters import EVERYONE
from analytics.periods import local_date, midnight, period_start
from analytics.reading import reading
from connectors import schema
from connectors.errors import TraderLensError
from connectors.schema import (
    accounts,
    cluster_assignments,
    clustering_runs,
    imports,
    kyc_events,
    portal_events,
    segment_changes,
    segment_members,
    segments,
    sessions,
    traders,
    trades,
    transactions,
)

SEARCH_LIMIT = 20  # candidates a search shows
MAX_SEARCH_CHARS = 200
MIN_CONTAINS_CHARS = 3  # shorter texts match whole fields and their starts only
MAX_EXTERNAL_ID_CHARS = 64  # traders.external_id is VARCHAR(64)
# Above this many rows of one source in the timeline's window, the source is drawn one point per day
# (a browser draws 20,000 WebGL markers, but their hover texts alone are megabytes to send).
TIMELINE_MAX_POINTS = 2_000


class TraderNotFound(TraderLensError):
    """No trader has the external id a link or a search asked for."""

    def __init__(self, external_id: str) -> None:
        self.external_id = external_id
        shown = external_id if external_id.isprintable() else repr(external_id)
        super().__init__(f"No trader has the id “{shown[:MAX_EXTERNAL_ID_CHARS]}”. Check the link, or search "
                         "by id, e-mail, name or platform login.")


class BadSearch(TraderLensError):
    """Search text that cannot be an id, e-mail, name or login (too long, control characters)."""


def _check_text(text: str, *, what: str, limit: int) -> str:
    """``text`` stripped, or :class:`BadSearch` naming why it cannot be searched for."""
    text = text.strip()
    if len(text) > limit:
        raise BadSearch(f"The {what} is longer than {limit} characters; no id, e-mail, name or login is that long.")
    if any(not c.isprintable() for c in text):
        raise BadSearch(f"The {what} contains control or invisible characters; type it again without them.")
    return text


# ---------------------------------------------------------------------------------------------
# Search


SEARCH_COLUMNS = ["trader_id", "external_id", "name", "email", "country", "registered_at", "matched_on", "exact"]
# What a search looks in, by the name a result says it matched on, in this order of preference.
SEARCH_FIELDS = ("id", "login", "name", "email")


@dataclass(frozen=True)
class SearchResult:
    """The candidates of one search: ``matches`` (:data:`SEARCH_COLUMNS`: trader_id, external_id, name,
    email, country, registered_at, matched_on (one of :data:`SEARCH_FIELDS`), exact (bool)), exact
    matches first, then prefixes, then anything containing the text; ``more`` when there were
    more than shown."""

    text: str
    matches: pd.DataFrame
    more: bool


def _full_name(first: ColumnElement, last: ColumnElement) -> ColumnElement[str]:
    return sa.func.trim(sa.func.coalesce(first, "") + " " + sa.func.coalesce(last, ""))


def search_traders(engine: Engine, text: str, *, limit: int = SEARCH_LIMIT) -> SearchResult:
    """Traders whose external id, platform login, name or e-mail matches ``text``, case-insensitive.

    Exact matches (the whole id, login, name or e-mail) come first, then fields that start with the
    text, then fields holding it anywhere (for texts of :data:`MIN_CONTAINS_CHARS` characters or
    more: one or two characters are inside most names); within each by id. The text is a bound
    parameter with LIKE's wildcards escaped, so ``%`` or ``_`` match themselves. Empty text finds
    nobody; :class:`BadSearch` for text longer than :data:`MAX_SEARCH_CHARS` or with control
    characters.

    One statement that reads every trader and account (no index helps a search inside names): a few
    milliseconds on DuckDB, 0.3-0.7 s on PostgreSQL at 200,000 traders.
    """
    text = _check_text(text, what="search text", limit=MAX_SEARCH_CHARS)
    if not text:
        return SearchResult(text, pd.DataFrame(columns=SEARCH_COLUMNS), False)
    needle = text.lower()
    t, a = traders.c, accounts.c
    name = _full_name(t.first_name, t.last_name)
    kinds = ["exact", "prefix", *(["anywhere"] if len(needle) >= MIN_CONTAINS_CHARS else [])]

    def hit(column: ColumnElement, kind: str) -> ColumnElement[bool]:
        lowered = sa.func.lower(column)
        if kind == "exact":
            return lowered == needle
        return (lowered.startswith if kind == "prefix" else lowered.contains)(needle, autoescape=True)

    def each(kind: str) -> ColumnElement[bool]:
        return sa.or_(hit(t.external_id, kind), hit(name, kind), hit(t.email, kind),
                      t.trader_id.in_(sa.select(a.trader_id).where(hit(a.login, kind))))

    # The kind of match as a CASE whose first tests are whole-field comparisons: for a text that most ids
    # start with, every trader is a candidate, and a CASE of nine LIKEs per row took 2 s on PostgreSQL
    # at 200,000 traders (0.6 s so).
    rank = sa.case((each("exact"), 0), (each("prefix"), 1), else_=2)
    query = (sa.select(t.trader_id, t.external_id, name.label("name"), t.email, t.country, t.registered_at,
                       rank.label("rank"))
             .where(each(kinds[-1]))
             .order_by(rank, t.external_id).limit(limit + 1))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
        frame = pd.DataFrame(rows[:limit], columns=[*SEARCH_COLUMNS[:6], "rank"])
        frame["kind"] = [("exact", "prefix", "anywhere")[int(r)] for r in frame["rank"]]
        frame["matched_on"] = _matched_on(conn, frame, needle)
    frame["exact"] = frame["kind"] == "exact"
    frame["trader_id"] = frame["trader_id"].astype("int64")
    return SearchResult(text, frame[SEARCH_COLUMNS], len(rows) > limit)


def _matched_on(conn: Connection, found: pd.DataFrame, needle: str) -> list[str]:
    """For each found trader, the first of :data:`SEARCH_FIELDS` that matches as the row's kind says (a
    login is checked only where no field of the trader's own does: one small read of their logins)."""
    def matches(value: object, kind: str) -> bool:
        text = "" if value is None else str(value).lower()
        return text == needle if kind == "exact" else text.startswith(needle) if kind == "prefix" else needle in text

    logins: dict[int, list[str]] = {}
    ids = [int(i) for i in found["trader_id"]]
    if ids:
        for trader_id, login in conn.execute(sa.select(accounts.c.trader_id, accounts.c.login).where(
                accounts.c.trader_id.in_(ids))):
            logins.setdefault(int(trader_id), []).append(login)
    out = []
    for row in found.itertuples(index=False):
        values = {"id": [row.external_id], "login": logins.get(int(row.trader_id), []), "name": [row.name],
                  "email": [row.email]}
        out.append(next((field for field in SEARCH_FIELDS if any(matches(v, row.kind) for v in values[field])),
                        "login"))
    return out


# ---------------------------------------------------------------------------------------------
# Profile


ACCOUNT_COLUMNS = ["account", "platform", "server", "login", "group", "currency", "leverage", "demo", "opened_at",
                   "trades", "last_trade_at"]
CONSENT_CHANNELS = ("email", "sms", "push", "whatsapp")


@dataclass(frozen=True)
class TraderProfile:
    """Who the trader is: the ``traders`` row, and ``accounts`` (:data:`ACCOUNT_COLUMNS`: account (its
    external id), platform, server, login, group, currency, leverage, demo (bool), opened_at, trades
    (closed positions on it), last_trade_at), oldest first. ``consents`` maps each channel of
    :data:`CONSENT_CHANNELS` to whether the trader agreed to be contacted on it."""

    trader_id: int
    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    country: str | None
    language: str | None
    timezone: str | None
    acquisition_channel: str | None
    campaign_source: str | None
    affiliate_id: str | None
    kyc_status: str
    kyc_approved_at: datetime | None
    vip_tier: str | None
    is_test: bool
    is_blocked: bool
    owner: str | None
    lead_at: datetime | None
    registered_at: datetime | None
    consents: dict[str, bool]
    accounts: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        """First and last name, or the external id when the data holds neither."""
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.external_id


def find_trader_id(engine: Engine, external_id: str) -> int:
    """The ``trader_id`` of the trader with this exact external id; :class:`TraderNotFound` if none
    (or :class:`BadSearch` for text no id can be)."""
    external_id = _check_text(external_id, what="trader id", limit=MAX_EXTERNAL_ID_CHARS)
    with reading(engine) as conn:
        found = conn.execute(sa.select(traders.c.trader_id).where(traders.c.external_id == external_id)).scalar()
    if found is None:
        raise TraderNotFound(external_id)
    return int(found)


def load_profile(engine: Engine, trader_id: int) -> TraderProfile:
    """The :class:`TraderProfile` of ``trader_id``; :class:`TraderNotFound` when there is no such trader."""
    t, a, x = traders.c, accounts.c, trades.c
    per_account = (sa.select(x.account_id, sa.func.count().label("trades"), sa.func.max(x.closed_at).label("last"))
                   .where(x.trader_id == trader_id).group_by(x.account_id).subquery("per_account"))
    account_rows = (
        sa.select(a.external_id, a.platform, a.server, a.login, a.account_group, a.currency, a.leverage, a.is_demo,
                  a.opened_at, sa.func.coalesce(per_account.c.trades, 0), per_account.c.last)
        .select_from(accounts.outerjoin(per_account, per_account.c.account_id == a.account_id))
        .where(a.trader_id == trader_id)
        .order_by(a.opened_at, a.account_id)
    )
    with reading(engine) as conn:
        row = conn.execute(sa.select(traders).where(t.trader_id == trader_id)).mappings().first()
        if row is None:
            raise TraderNotFound(str(trader_id))
        account_frame = pd.DataFrame(conn.execute(account_rows).all(), columns=ACCOUNT_COLUMNS)
    account_frame["trades"] = account_frame["trades"].astype("int64")
    return TraderProfile(
        trader_id=int(row["trader_id"]), external_id=row["external_id"], first_name=row["first_name"],
        last_name=row["last_name"], email=row["email"], phone=row["phone"], country=row["country"],
        language=row["language"], timezone=row["timezone"], acquisition_channel=row["acquisition_channel"],
        campaign_source=row["campaign_source"], affiliate_id=row["affiliate_id"], kyc_status=row["kyc_status"],
        kyc_approved_at=row["kyc_approved_at"], vip_tier=row["vip_tier"], is_test=bool(row["is_test"]),
        is_blocked=bool(row["is_blocked"]), owner=row["owner"], lead_at=row["lead_at"],
        registered_at=row["registered_at"],
        consents={channel: bool(row[f"consent_{channel}"]) for channel in CONSENT_CHANNELS},
        accounts=account_frame,
    )


# ---------------------------------------------------------------------------------------------
# Key figures


@dataclass(frozen=True)
class KeyFigures:
    """A trader's money and trading over all their history, as the KPIs count them
    (docs/semantics.md): deposits and withdrawals are approved ones (USD at transaction time), net
    deposits their difference; realised P&L is the client P&L (profit + commission + swap) of
    closed positions; volume is notional USD. ``first_activity_at`` / ``last_activity_at``: the
    trader's first and last event of any kind (lead or registration, KYC, ledger entry, trade opened
    or closed, login, portal event); None without any."""

    deposits: int
    deposits_usd: float
    withdrawals: int
    withdrawals_usd: float
    declined_deposits: int
    bonuses_usd: float
    trades: int
    lots: float
    volume_usd: float
    realised_pnl_usd: float
    winning_trades: int
    logins: int
    ftd_at: datetime | None
    ftd_usd: float | None
    first_trade_at: datetime | None
    last_trade_at: datetime | None
    last_deposit_at: datetime | None
    last_login_at: datetime | None
    first_activity_at: datetime | None
    last_activity_at: datetime | None

    @property
    def net_deposits_usd(self) -> float:
        return self.deposits_usd - self.withdrawals_usd

    @property
    def win_rate(self) -> float | None:
        """Share of closed positions with a positive client P&L; None without trades."""
        return self.winning_trades / self.trades if self.trades else None


def _scalar(select: sa.Select, name: str) -> sa.Label:
    return select.scalar_subquery().label(name)


def compute_key_figures(engine: Engine, trader_id: int) -> KeyFigures:
    """The :class:`KeyFigures` of ``trader_id``, in one statement of per-source subqueries (each an
    index range of this trader's rows)."""
    x, d, s = transactions.c, trades.c, sessions.c
    mine = x.trader_id == trader_id

    def money(kind: str, status: str = "approved") -> ColumnElement[bool]:
        return sa.and_(x.kind == kind, x.status == status)

    def usd(condition: ColumnElement[bool]) -> ColumnElement[float]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, sa.cast(x.amount_usd, sa.Double)), else_=0.0)), 0.0)

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return sa.func.count(sa.case((condition, 1)))

    ledger = sa.select(
        count(money("deposit")).label("deposits"), usd(money("deposit")).label("deposits_usd"),
        count(money("withdrawal")).label("withdrawals"), usd(money("withdrawal")).label("withdrawals_usd"),
        count(money("deposit", "declined")).label("declined_deposits"),
        (usd(money("bonus")) - usd(money("bonus_cancel"))).label("bonuses_usd"),
        sa.func.max(sa.case((money("deposit"), x.created_at))).label("last_deposit_at"),
        sa.func.min(x.created_at).label("first_ledger"), sa.func.max(x.created_at).label("last_ledger"),
    ).where(mine).subquery("ledger")
    pnl = sa.cast(d.profit_usd, sa.Double) + sa.cast(d.commission_usd, sa.Double) + sa.cast(d.swap_usd, sa.Double)
    trading = sa.select(
        sa.func.count().label("trades"), sa.func.coalesce(sa.func.sum(sa.cast(d.lots, sa.Double)), 0.0).label("lots"),
        sa.func.coalesce(sa.func.sum(sa.cast(d.notional_usd, sa.Double)), 0.0).label("volume_usd"),
        sa.func.coalesce(sa.func.sum(pnl), 0.0).label("realised_pnl_usd"),
        sa.func.count(sa.case((pnl > 0, 1))).label("winning_trades"),
        sa.func.min(d.opened_at).label("first_trade_at"), sa.func.max(d.closed_at).label("last_trade_at"),
    ).where(d.trader_id == trader_id).subquery("trading")
    logins = sa.select(sa.func.count().label("logins"), sa.func.min(s.started_at).label("first_login"),
                       sa.func.max(s.started_at).label("last_login_at")).where(s.trader_id == trader_id
                                                                               ).subquery("logins")
    ftd = schema.first_deposits(mine, form="detail").subquery("ftd")
    k, p, t = kyc_events.c, portal_events.c, traders.c
    others = sa.select(
        _scalar(sa.select(sa.func.min(k.occurred_at)).where(k.trader_id == trader_id), "first_kyc"),
        _scalar(sa.select(sa.func.max(k.occurred_at)).where(k.trader_id == trader_id), "last_kyc"),
        _scalar(sa.select(sa.func.min(p.occurred_at)).where(p.trader_id == trader_id), "first_portal"),
        _scalar(sa.select(sa.func.max(p.occurred_at)).where(p.trader_id == trader_id), "last_portal"),
        _scalar(sa.select(sa.func.coalesce(t.lead_at, t.registered_at)).where(t.trader_id == trader_id), "captured"),
        _scalar(sa.select(ftd.c.occurred_at), "ftd_at"),
        _scalar(sa.select(sa.cast(ftd.c.amount_usd, sa.Double)), "ftd_usd"),
    ).subquery("others")
    query = sa.select(ledger, trading, logins, others).select_from(
        ledger.join(trading, sa.true()).join(logins, sa.true()).join(others, sa.true()))
    with reading(engine) as conn:
        row = conn.execute(query).mappings().one()
    firsts = [row[n] for n in ("first_ledger", "first_trade_at", "first_login", "first_kyc", "first_portal",
                               "captured") if row[n] is not None]
    lasts = [row[n] for n in ("last_ledger", "last_trade_at", "last_login_at", "last_kyc", "last_portal", "captured")
             if row[n] is not None]
    return KeyFigures(
        deposits=int(row["deposits"]), deposits_usd=float(row["deposits_usd"]), withdrawals=int(row["withdrawals"]),
        withdrawals_usd=float(row["withdrawals_usd"]), declined_deposits=int(row["declined_deposits"]),
        bonuses_usd=float(row["bonuses_usd"]), trades=int(row["trades"]), lots=float(row["lots"]),
        volume_usd=float(row["volume_usd"]), realised_pnl_usd=float(row["realised_pnl_usd"]),
        winning_trades=int(row["winning_trades"]), logins=int(row["logins"]), ftd_at=row["ftd_at"],
        ftd_usd=None if row["ftd_usd"] is None else float(row["ftd_usd"]),
        first_trade_at=row["first_trade_at"], last_trade_at=row["last_trade_at"],
        last_deposit_at=row["last_deposit_at"], last_login_at=row["last_login_at"],
        first_activity_at=min(firsts, default=None), last_activity_at=max(lasts, default=None),
    )


# ---------------------------------------------------------------------------------------------
# Timeline


TIMELINE_COLUMNS = ["lane", "kind", "occurred_at", "status", "amount_usd", "events", "detail"]
# The timeline's rows, top to bottom, as the trader meets them.
LANES = ("Onboarding", "Deposits", "Withdrawals", "Other money", "Positions opened", "Positions closed", "Logins",
         "Portal")
_MONEY_LANES = {"deposit": "Deposits", "withdrawal": "Withdrawals"}
# Sources a window may hold too many rows of, drawn per day beyond TIMELINE_MAX_POINTS.
THINNED_SOURCES = ("ledger", "trades", "logins", "portal")


@dataclass(frozen=True)
class Timeline:
    """What a trader did in a window, one row per point to draw.

    ``points`` (:data:`TIMELINE_COLUMNS`): ``lane`` (one of :data:`LANES`), ``kind`` (lead_captured,
    registered, kyc_<status>, account_opened, a ledger kind (deposit, withdrawal, bonus, ...),
    trade_opened, trade_closed, login, or a portal event's name), ``occurred_at`` (naive UTC; for a
    day's total the UTC instant the day starts), ``status`` (a ledger entry's status; profit or
    loss for a closed position; else None), ``amount_usd`` (a ledger entry's amount, an opened
    position's notional, a closed one's client P&L; NaN where none), ``events`` (1, or how many a
    day's total holds) and ``detail`` (plain facts for the hover: symbol, side and lots; method and
    provider; a login's surface and length). Sorted by time.

    ``per_day`` names the sources (of :data:`THINNED_SOURCES`) with more than ``max_points`` rows in
    the window: they come as one point per day, kind and status (a day's positions closed in profit
    and at a loss are two points). ``counts`` holds each source's rows in the window (trades: the
    positions opened plus the positions closed in it).
    """

    trader_id: int
    start: date | None
    end: date | None
    points: pd.DataFrame
    counts: dict[str, int]
    per_day: tuple[str, ...]
    max_points: int


def _window(column: ColumnElement, start: date | None, end: date | None) -> ColumnElement[bool]:
    conditions = []
    if start is not None:
        conditions.append(column >= midnight(start))
    if end is not None:
        conditions.append(column < midnight(end + timedelta(days=1)))
    return sa.and_(sa.true(), *conditions)


def _point(lane: str | ColumnElement, kind: str | ColumnElement, at: ColumnElement, *,
           status: ColumnElement | None = None, amount: ColumnElement | None = None,
           measure: ColumnElement | None = None, detail: ColumnElement | None = None) -> list[ColumnElement]:
    """The columns of a timeline point: lane, kind, occurred_at, status, amount_usd, ``measure`` (a
    number summed per day: lots, seconds) and detail."""
    def text(value: str | ColumnElement | None) -> ColumnElement:
        if value is None:
            return sa.cast(sa.null(), sa.String)
        return sa.cast(sa.literal(value), sa.String) if isinstance(value, str) else sa.cast(value, sa.String)

    def number(value: ColumnElement | None) -> ColumnElement:
        return sa.cast(sa.null() if value is None else value, sa.Double)

    return [text(lane).label("lane"), text(kind).label("kind"), at.label("occurred_at"), text(status).label("status"),
            number(amount).label("amount_usd"), number(measure).label("measure"), text(detail).label("detail")]


def _sources(trader_id: int, start: date | None, end: date | None) -> dict[str, tuple[sa.Select, ...]]:
    """Each source's points of ``trader_id`` in the window, as SELECTs of :func:`_point` columns."""
    x, d, s, p, k, a, t = (transactions.c, trades.c, sessions.c, portal_events.c, kyc_events.c, accounts.c,
                           traders.c)
    onboarding = [sa.select(*_point("Onboarding", kind, column)).where(
        t.trader_id == trader_id, column.is_not(None), _window(column, start, end))
        for kind, column in (("lead_captured", t.lead_at), ("registered", t.registered_at))]
    onboarding.append(sa.select(*_point("Onboarding", "kyc_" + k.status, k.occurred_at, detail=k.reason)).where(
        k.trader_id == trader_id, _window(k.occurred_at, start, end)))
    onboarding.append(sa.select(*_point("Onboarding", "account_opened", a.opened_at,
                                        detail=a.platform + " " + a.login)).where(
        a.trader_id == trader_id, _window(a.opened_at, start, end)))
    lane = sa.case(*((x.kind == kind, name) for kind, name in _MONEY_LANES.items()), else_="Other money")
    ledger = sa.select(*_point(lane, x.kind, x.created_at, status=x.status, amount=x.amount_usd,
                               detail=sa.func.concat_ws(" · ", x.method, x.psp, x.comment))).where(
        x.trader_id == trader_id, _window(x.created_at, start, end))
    pnl = sa.cast(d.profit_usd, sa.Double) + sa.cast(d.commission_usd, sa.Double) + sa.cast(d.swap_usd, sa.Double)
    position = d.symbol + " " + d.side
    opened = sa.select(*_point("Positions opened", "trade_opened", d.opened_at, amount=d.notional_usd, measure=d.lots,
                               detail=position)).where(d.trader_id == trader_id, _window(d.opened_at, start, end))
    outcome = sa.case((pnl >= 0, "profit"), else_="loss")
    closed = sa.select(*_point("Positions closed", "trade_closed", d.closed_at, status=outcome, amount=pnl,
                               measure=d.lots, detail=position + sa.func.coalesce(" · " + d.close_reason, ""))
                       ).where(d.trader_id == trader_id, _window(d.closed_at, start, end))
    logins = sa.select(*_point("Logins", "login", s.started_at, measure=s.duration_s, detail=s.surface)).where(
        s.trader_id == trader_id, _window(s.started_at, start, end))
    portal = sa.select(*_point("Portal", p.event, p.occurred_at, detail=p.properties)).where(
        p.trader_id == trader_id, _window(p.occurred_at, start, end))
    return {"onboarding": tuple(onboarding), "ledger": (ledger,), "trades": (opened, closed), "logins": (logins,),
            "portal": (portal,)}


def _per_day(selects: tuple[sa.Select, ...]) -> sa.Select:
    """``selects``' points summed per day (reporting time zone), lane, kind and status: ``events`` is
    how many, amount_usd and measure their sums, occurred_at the day's start (local wall time)."""
    rows = sa.union_all(*selects).subquery("rows") if len(selects) > 1 else selects[0].subquery("rows")
    # The day in a subquery of its own: grouping by the expression would bind its 'day' twice,
    # which DuckDB then does not take for the same expression.
    days = sa.select(rows.c.lane, rows.c.kind, period_start(rows.c.occurred_at, "day").label("day"), rows.c.status,
                     rows.c.amount_usd, rows.c.measure).subquery("days")
    c = days.c
    return (sa.select(c.lane, c.kind, c.day.label("occurred_at"), c.status,
                      sa.func.sum(c.amount_usd).label("amount_usd"), sa.func.count().label("events"),
                      sa.func.sum(c.measure).label("measure"),
                      sa.cast(sa.null(), sa.String).label("detail"))
            .group_by(c.lane, c.kind, c.day, c.status))


def compute_timeline(engine: Engine, trader_id: int, *, start: date | None = None, end: date | None = None,
                     max_points: int = TIMELINE_MAX_POINTS) -> Timeline:
    """The :class:`Timeline` of ``trader_id`` from ``start`` to ``end`` (days of the reporting time zone,
    both included; None: from the first or to the last event).

    One statement counts each source's rows in the window; then one statement per source reads its
    points, or its per-day totals when there are more than ``max_points``: always this trader's rows
    alone, each through its table's (trader_id, time) index.
    """
    if start is not None and end is not None and end < start:
        raise ValueError(f"the timeline's window ends ({end}) before it starts ({start})")
    sources = _sources(trader_id, start, end)
    counts_query = sa.select(*(
        sum((sa.select(sa.func.count()).select_from(q.subquery()).scalar_subquery() for q in sources[name][1:]),
            sa.select(sa.func.count()).select_from(sources[name][0].subquery()).scalar_subquery()).label(name)
        for name in THINNED_SOURCES))
    frames = []
    with reading(engine) as conn:
        counts = {name: int(n) for name, n in conn.execute(counts_query).mappings().one().items()}
        per_day = tuple(name for name in THINNED_SOURCES if counts[name] > max_points)
        for name, selects in sources.items():
            daily = name in per_day
            query = _per_day(selects) if daily else sa.union_all(*selects) if len(selects) > 1 else selects[0]
            rows = conn.execute(query).mappings().all()
            if not rows:
                continue
            frame = pd.DataFrame(rows)
            frame["events"] = frame["events"] if daily else 1
            if daily:  # the local midnight of each day as the UTC instant it is
                frame["occurred_at"] = [midnight(pd.Timestamp(ts).date()) for ts in frame["occurred_at"]]
            frame["detail"] = [_detail(kind, detail, measure, daily=daily) for kind, detail, measure
                               in zip(frame["kind"], frame["detail"], frame["measure"], strict=True)]
            frames.append(frame)
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TIMELINE_COLUMNS)
    points["occurred_at"] = pd.to_datetime(points["occurred_at"])
    points["amount_usd"] = pd.to_numeric(points["amount_usd"]).astype("float64")
    points["events"] = points["events"].astype("int64")
    points["status"] = points["status"].astype(object).where(points["status"].notna(), None)
    points = points.sort_values(["occurred_at", "lane"], kind="stable").reset_index(drop=True)
    return Timeline(trader_id, start, end, points[TIMELINE_COLUMNS], counts, per_day, max_points)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _detail(kind: str, detail: object, measure: object, *, daily: bool) -> str:
    """The hover's facts of a point, from the row's text and its summed ``measure`` (lots, seconds)."""
    text = "" if _missing(detail) else str(detail)
    has_measure = not _missing(measure)
    if kind in ("trade_opened", "trade_closed") and has_measure:
        lots = f"{float(measure):,.2f} lots"
        return lots if daily else f"{text}, {lots}"
    if kind == "login" and has_measure:
        minutes = f"{float(measure) / 60:,.0f} min"
        return f"{minutes} in all" if daily else f"{text}, {minutes}"
    return text


# ---------------------------------------------------------------------------------------------
# Lifecycle stage


@dataclass(frozen=True)
class TraderStage:
    """The trader's lifecycle stage (one of :data:`analytics.lifecycle.STAGES`, None when not captured
    yet) at the end of ``day``, with the thresholds it was judged by."""

    stage: str | None
    day: date
    dormant_days: int
    churn_days: int

    @property
    def label(self) -> str:
        return lifecycle.STAGE_LABELS.get(self.stage, "Not yet captured") if self.stage else "Not yet captured"


def compute_stage(engine: Engine, trader_id: int, *, day: date | None = None,
                  dormant_days: int = lifecycle.DEFAULT_DORMANT_DAYS,
                  churn_days: int = lifecycle.DEFAULT_CHURN_DAYS) -> TraderStage:
    """``trader_id``'s stage at the end of ``day`` (default: the newest day with data), by the stage
    ladder of :func:`analytics.lifecycle.trader_stages` (test accounts included: this is one trader
    looked up by name, not a report)."""
    if day is None:
        span = compute_data_span(engine)
        day = span.end if span else local_date(datetime.now(UTC).replace(tzinfo=None))
    stages = lifecycle.trader_stages(day, dormant_days=dormant_days, churn_days=churn_days,
                                     trader_filter=EVERYONE).subquery("stages")
    with reading(engine) as conn:
        stage = conn.execute(sa.select(stages.c.stage).where(stages.c.trader_id == trader_id)).scalar()
    return TraderStage(stage, day, dormant_days, churn_days)


# ---------------------------------------------------------------------------------------------
# Features against the population and a segment


COMPARISON_COLUMNS = ["feature", "label", "group", "unit", "value", "population_mean", "population_std",
                      "population_z", "population_percentile", "segment_mean", "segment_z", "segment_percentile"]


@dataclass(frozen=True)
class Peers:
    """The traders a trader is compared with besides everyone: a saved segment's members
    (``kind`` "segment", ``ref`` its segment_id) or a cluster of a saved clustering run (``kind``
    "cluster", ``ref`` the run_id, ``cluster`` the cluster); ``name`` is what screens call it."""

    kind: str
    ref: int
    name: str
    cluster: int | None = None

    def members(self) -> sa.Select:
        """SELECT trader_id of the peers."""
        if self.kind == "segment":
            return sa.select(segment_members.c.trader_id).where(segment_members.c.segment_id == self.ref)
        if self.kind == "cluster":
            ca = cluster_assignments.c
            return sa.select(ca.trader_id).where(ca.run_id == self.ref, ca.cluster == self.cluster)
        raise ValueError(f"unknown peers kind {self.kind!r}; use segment or cluster")


@dataclass(frozen=True)
class FeatureComparison:
    """A trader's features beside everyone's and their peers'.

    ``table`` (:data:`COMPARISON_COLUMNS`): one row per feature of :data:`analytics.features.FEATURES`
    (their order): ``value`` (the trader's, as of ``as_of``; NaN where undefined), the population's
    ``*_mean`` and ``*_std`` (sample), ``*_z`` ((value − mean) ÷ std; NaN when the std is 0 or
    undefined) and ``*_percentile`` (0-100: the share of traders with a lower value plus half of those
    with the same one), then the same against the peers (``segment_*``; NaN without peers).
    ``kyc_state`` is the trader's text feature. Population and peers are read from the materialised
    snapshot (``snapshot_as_of``, ``population``: its traders with the feature; ``peers``: how many of
    the peers it holds); without one (``snapshot_as_of`` None) only the trader's values are filled.
    """

    trader_id: int
    as_of: datetime
    kyc_state: str | None
    snapshot_as_of: datetime | None
    population: int
    peers: Peers | None
    peer_count: int
    table: pd.DataFrame

    @property
    def registered(self) -> bool:
        """False when the trader had not registered by ``as_of`` (a lead): features describe registered
        traders."""
        return self.table["value"].notna().any() or self.kyc_state is not None


def _distribution(snapshot: sa.Table, values: dict[str, float], members: sa.Select | None) -> sa.Select:
    """One row: per feature the count, mean, sample std, and how many values lie below and at the
    trader's ``values`` (NaN: none), over ``snapshot`` or its ``members``."""
    columns: list[ColumnElement] = [sa.func.count().label("rows")]
    for name in FEATURE_NAMES:
        column = snapshot.c[name]
        columns += [sa.func.count(column).label(f"{name}__n"), sa.func.avg(column).label(f"{name}__mean"),
                    sa.func.stddev_samp(column).label(f"{name}__std")]
        value = values.get(name)
        if value is not None and not math.isnan(value):
            bound = sa.bindparam(f"v_{name}", value, type_=sa.Double)
            columns += [sa.func.count(sa.case((column < bound, 1))).label(f"{name}__below"),
                        sa.func.count(sa.case((column == bound, 1))).label(f"{name}__equal")]
    query = sa.select(*columns).select_from(snapshot)
    return query if members is None else query.where(snapshot.c.trader_id.in_(members))


def _stats(row: Any, name: str, value: float) -> tuple[float, float, float, float]:
    """(mean, std, z, percentile) of feature ``name`` from a :func:`_distribution` row."""
    nan = math.nan
    if row is None or not row[f"{name}__n"]:
        return nan, nan, nan, nan
    n = int(row[f"{name}__n"])
    mean = float(row[f"{name}__mean"])
    std = nan if row[f"{name}__std"] is None else float(row[f"{name}__std"])
    if math.isnan(value):
        return mean, std, nan, nan
    z = (value - mean) / std if std and not math.isnan(std) else nan
    percentile = 100.0 * (int(row[f"{name}__below"]) + 0.5 * int(row[f"{name}__equal"])) / n
    return mean, std, z, percentile


def _own_features(engine: Engine, trader_id: int, snapshot: MaterialisedSnapshot | None
                  ) -> tuple[datetime, pd.Series | None]:
    """(as-of, the trader's row of :data:`FEATURE_NAMES` and ``kyc_state``, None for a trader without
    features): the materialised snapshot's row while the snapshot is current (the rule of
    :func:`analytics.features.ensure_features`: it is as of now and no import finished after it was
    computed), else :func:`analytics.features.compute_features` for this trader alone. The snapshot's
    row is what compute_features returns, read instead of recomputed (0.1-0.15 s of the page)."""
    now = snapshot_time(engine, None)
    if snapshot is not None and snapshot.as_of == now:
        table = feature_table()
        with reading(engine) as conn:
            last_import = conn.execute(sa.select(sa.func.max(imports.c.imported_at))).scalar()
            if last_import is None or last_import <= snapshot.computed_at:
                found = conn.execute(sa.select(*(table.c[name] for name in (*FEATURE_NAMES, KYC_STATE)))
                                     .where(table.c.trader_id == trader_id)).mappings().first()
                if found is not None:
                    return now, pd.Series(dict(found))
    mine = compute_features(engine, as_of=now, trader_ids=[trader_id], trader_filter=EVERYONE)
    return mine.as_of, (mine.frame.iloc[0] if len(mine.frame) else None)


def compute_feature_comparison(engine: Engine, trader_id: int, *, peers: Peers | None = None) -> FeatureComparison:
    """:class:`FeatureComparison` of ``trader_id``: their features now (as of the local midnight after the
    newest day with data; :func:`_own_features`) against the materialised snapshot's population and
    ``peers``, in one aggregate statement each."""
    snapshot = materialised_snapshot(engine)
    as_of, row = _own_features(engine, trader_id, snapshot)
    values = {name: (math.nan if row is None or row[name] is None else float(row[name])) for name in FEATURE_NAMES}
    kyc_state = None if row is None else row[KYC_STATE]
    population = peer_row = None
    peer_count = 0
    if snapshot is not None:
        table = feature_table()
        with reading(engine) as conn:
            population = conn.execute(_distribution(table, values, None)).mappings().one()
            if peers is not None:
                peer_row = conn.execute(_distribution(table, values, peers.members())).mappings().one()
                peer_count = int(peer_row["rows"])
    records = []
    for feature in FEATURES:
        value = values[feature.name]
        mean, std, z, percentile = _stats(population, feature.name, value)
        peer_mean, _, peer_z, peer_percentile = _stats(peer_row, feature.name, value)
        records.append((feature.name, feature.label, feature.group, feature.unit, value, mean, std, z, percentile,
                        peer_mean, peer_z, peer_percentile))
    frame = pd.DataFrame(records, columns=COMPARISON_COLUMNS)
    numeric = COMPARISON_COLUMNS[4:]
    frame[numeric] = frame[numeric].astype("float64")
    return FeatureComparison(trader_id, as_of, kyc_state, None if snapshot is None else snapshot.as_of,
                             int(population["rows"]) if population is not None else 0, peers, peer_count, frame)


# ---------------------------------------------------------------------------------------------
# Segments and clusters


SEGMENT_COLUMNS = ["segment_id", "segment", "kind", "since", "refreshed_at", "archived"]
HISTORY_COLUMNS = ["changed_at", "segment_id", "segment", "change", "version"]
CLUSTER_COLUMNS = ["run_id", "run", "created_at", "as_of", "algorithm", "k", "cluster", "cluster_name"]


@dataclass(frozen=True)
class Memberships:
    """Where the trader belongs: ``segments`` (:data:`SEGMENT_COLUMNS`: the saved segments they are a
    member of at their last refresh, since when, newest first), ``history`` (:data:`HISTORY_COLUMNS`:
    every time a refresh found them entering or leaving a segment, newest first; change is
    "entered" or "left") and ``clusters`` (:data:`CLUSTER_COLUMNS`: their cluster in each saved
    clustering run, newest run first; cluster -1 is a density run's noise)."""

    segments: pd.DataFrame
    history: pd.DataFrame
    clusters: pd.DataFrame

    def peer_choices(self) -> list[Peers]:
        """The groups the trader can be compared with: their clusters (newest run first), then their
        segments."""
        choices = [Peers("cluster", int(r.run_id), f"{r.cluster_name} ({r.run})", int(r.cluster))
                   for r in self.clusters.itertuples() if r.cluster >= 0]
        choices += [Peers("segment", int(r.segment_id), str(r.segment)) for r in self.segments.itertuples()]
        return choices


def _cluster_names(clusters_json: str | None) -> dict[int, str]:
    """cluster -> name from a clustering run's ``clusters`` JSON (a list of {cluster, name, ...})."""
    try:
        entries = json.loads(clusters_json or "[]")
    except ValueError:
        return {}
    return {int(e["cluster"]): str(e.get("name") or f"Cluster {e['cluster']}") for e in entries
            if isinstance(e, dict) and "cluster" in e}


def compute_memberships(engine: Engine, trader_id: int) -> Memberships:
    """The :class:`Memberships` of ``trader_id``. Memberships and assignments are keyed by segment or
    run first, so they are read with the (few) segment and run ids named: each is then an index probe."""
    sg, sm, sc = segments.c, segment_members.c, segment_changes.c
    cr, ca = clustering_runs.c, cluster_assignments.c
    with reading(engine) as conn:
        known = conn.execute(sa.select(sg.segment_id, sg.name, sg.kind, sg.refreshed_at, sg.archived)).all()
        runs = conn.execute(sa.select(cr.run_id, cr.name, cr.created_at, cr.as_of, cr.algorithm, cr.k, cr.clusters)
                            ).all()
        member = dict(conn.execute(sa.select(sm.segment_id, sm.entered_at).where(
            sm.segment_id.in_([r.segment_id for r in known]), sm.trader_id == trader_id)).all()) if known else {}
        changes = conn.execute(sa.select(sc.changed_at, sc.segment_id, sc.change, sc.version).where(
            sc.trader_id == trader_id).order_by(sc.changed_at.desc(), sc.change_id.desc())).all()
        assigned = dict(conn.execute(sa.select(ca.run_id, ca.cluster).where(
            ca.run_id.in_([r.run_id for r in runs]), ca.trader_id == trader_id)).all()) if runs else {}
    names = {r.segment_id: r.name for r in known}
    segment_frame = pd.DataFrame(
        [(r.segment_id, r.name, r.kind, member[r.segment_id], r.refreshed_at, bool(r.archived))
         for r in known if r.segment_id in member], columns=SEGMENT_COLUMNS
    ).sort_values("since", ascending=False, kind="stable").reset_index(drop=True)
    history = pd.DataFrame([(c.changed_at, c.segment_id, names.get(c.segment_id, f"#{c.segment_id} (deleted)"),
                             c.change, c.version) for c in changes], columns=HISTORY_COLUMNS)
    clusters = pd.DataFrame(
        [(r.run_id, r.name, r.created_at, r.as_of, r.algorithm, r.k, int(assigned[r.run_id]),
          "Noise" if assigned[r.run_id] == -1 else _cluster_names(r.clusters).get(int(assigned[r.run_id]),
                                                                                 f"Cluster {assigned[r.run_id]}"))
         for r in runs if r.run_id in assigned], columns=CLUSTER_COLUMNS
    ).sort_values(["created_at", "run_id"], ascending=False, kind="stable").reset_index(drop=True)
    return Memberships(segment_frame, history, clusters)
