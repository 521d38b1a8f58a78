"""The event catalogue: what each event name means in rows, which names the data holds, each trader's
first deposit, and the span of time the data covers. Every analysis reads events through here.

An event is a ``(trader_id, occurred_at)`` row of the ``trader_events`` stream: the core events of
``connectors.schema.CORE_EVENTS`` (lead captured, registered, KYC, ledger, FTD, trade, login), each
read from the table it comes from, and every client-portal event under its own name.

The SELECT behind each core event and the first deposit are defined once, in ``connectors/schema.py``,
and this module builds on them rather than holding its own: the ``trader_events`` view is generated
from those same definitions (its migration holds the generated SQL), the rollups in
``connectors/rollups.py`` need the first deposit too, and connectors never import analytics. Here
they gain what only analytics asks for: portal events by name, the trader filter, the list of names
present, and the data span.

Analyses read an event's own table instead of the view: it is one plain SELECT the planner can use
indexes and range conditions on, where the view is a UNION ALL of twelve branches.

Beside the stream, each saved segment (analytics.segments) gives one more event: ``segment:<name>``,
"entered segment <name>", at each ``entered`` row of ``segment_changes`` (``occurred_at`` = the refresh's
``changed_at``). Funnels, retention and lifecycle take it like any other name; it is not part of the
``trader_events`` stream itself, so a strict funnel's chain is broken only by stream events. The name,
not the id, is in the event's name, as in every other picker and link; a segment renamed since is no
longer known by its old name. A portal event whose own name begins with ``segment:`` is read as the
segment's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.filters import EVERYONE, TraderFilter
from analytics.periods import DateRange, local_date
from analytics.reading import reading
from connectors import schema
from connectors.clock import reporting_zone
from connectors.errors import TraderLensError
from connectors.schema import (
    CORE_EVENTS,
    daily_activity,
    portal_events,
    segment_changes,
    segments,
    trades,
    trading_days,
    transactions,
)

# "Entered segment X" is the event ``segment:X``.
SEGMENT_EVENT_PREFIX = "segment:"


def segment_event(segment_name: str) -> str:
    """The name of the event "entered segment ``segment_name``"."""
    return f"{SEGMENT_EVENT_PREFIX}{segment_name}"


def entered_segment(name: str) -> str | None:
    """The segment's name when ``name`` is an "entered segment" event (:func:`segment_event`), else None."""
    return name[len(SEGMENT_EVENT_PREFIX):] if name.startswith(SEGMENT_EVENT_PREFIX) else None


def _segment_entries(segment_name: str, amount: bool) -> sa.Select:
    """SELECT trader_id, occurred_at: every time a trader entered the segment of that name."""
    sc = segment_changes.c
    segment_id = sa.select(segments.c.segment_id).where(segments.c.name == segment_name).scalar_subquery()
    columns = [sc.trader_id, sc.changed_at.label("occurred_at")]
    if amount:
        columns.append(sa.cast(sa.null(), schema.Money).label("amount_usd"))
    return sa.select(*columns).where(sc.segment_id == segment_id, sc.change == "entered")


def event_select(name: str, *, amount: bool = False) -> sa.Select:
    """SELECT ``trader_id``, ``occurred_at`` of every ``name`` event: the rows of ``trader_events
    WHERE event = name``, read from the table behind them.

    With ``amount`` also ``amount_usd`` (deposits, withdrawals and the FTD in USD, a trade's
    notional; NULL for other events). ``segment:<name>``: each entry into that saved segment (module
    docstring). Any other name that is not a core event is a portal event's.
    """
    if name in CORE_EVENTS:
        return schema.core_event_select(name, amount=amount)
    segment_name = entered_segment(name)
    if segment_name is not None:
        return _segment_entries(segment_name, amount)
    p = portal_events.c
    columns = [p.trader_id, p.occurred_at]
    if amount:
        columns.append(sa.cast(sa.null(), schema.Money).label("amount_usd"))
    return sa.select(*columns).where(p.event == name)


def first_deposits(trader_filter: TraderFilter = EVERYONE, *, form: schema.FirstDepositForm = "time") -> sa.Select:
    """SELECT ``trader_id``, ``occurred_at``: each kept trader's first deposit (FTD), over all history.

    The FTD is a trader's first approved deposit across all their accounts: the earliest
    ``created_at``, and of deposits at that instant the lowest ``txn_id`` (the one definition,
    :func:`connectors.schema.first_deposits`, whose other ``form`` values this passes on; the ``ftd``
    event is the same rows). The "time" SELECT groups by trader, so callers may add HAVING conditions
    on the time (``selected_columns.occurred_at``).
    """
    if trader_filter.is_everyone():
        return schema.first_deposits(form=form)
    return schema.first_deposits(trader_filter.restrict(transactions.c.trader_id), form=form)


# ---------------------------------------------------------------------------------------------
# Activity: "did this trader do it in this period"

# Trading activity. As an instant (a funnel step, "first trade") a ``trade`` is the opening of a
# position; as activity in a period (KPIs, retention, lifecycle) a trader traded on every day they
# opened, closed or held a position.
TRADING = "trade"


def _trading_days() -> sa.Select:
    td = trading_days.c
    return sa.select(td.trader_id, td.day.label("occurred_at"))


def activity_select(name: str) -> sa.Select:
    """SELECT ``trader_id``, ``occurred_at``: what "did the trader do ``name`` in period P" asks of.

    For :data:`TRADING`: one row per trader and day (reporting time zone) on which they opened,
    closed or held a position (open at some moment of the day), at the day's start (the UTC instant
    of its local midnight; the ``trading_days`` rollup), so a position held for three weeks is
    trading on each of those days. Every other event: its own rows (:func:`event_select`).
    """
    return _trading_days() if name == TRADING else event_select(name)


def activity_spans(name: str) -> sa.Select:
    """SELECT ``trader_id``, ``started_at``, ``ended_at``: when a trader was doing ``name``, for windows
    that are not whole days (days 90-119 after an FTD): activity in ``[a, b)`` is ``started_at < b AND
    ended_at >= a``. For :data:`TRADING` each position from its opening to its close (so holding one
    through the window counts); every other event its instants (``started_at = ended_at``).
    """
    if name == TRADING:
        t = trades.c
        return sa.select(t.trader_id, t.opened_at.label("started_at"), t.closed_at.label("ended_at"))
    rows = event_select(name)
    c = rows.selected_columns
    return rows.with_only_columns(c.trader_id, c.occurred_at.label("started_at"), c.occurred_at.label("ended_at"))


def activity_days(name: str) -> sa.Select:
    """SELECT ``trader_id``, ``occurred_at``: one row per trader and day (reporting time zone) with
    ``name`` activity, at the day's start (a UTC instant): for :data:`TRADING` the days of
    :func:`activity_select`, for an "entered segment" event the days of its entries (few rows: no rollup),
    for every other event the days of the ``daily_activity`` rollup."""
    if name == TRADING:
        return _trading_days()
    if entered_segment(name) is not None:
        entries = event_select(name).subquery("segment_entries")
        return sa.select(entries.c.trader_id, reporting_zone().day_start(entries.c.occurred_at).label("occurred_at")
                         ).distinct()
    da = daily_activity.c
    return sa.select(da.trader_id, da.day.label("occurred_at")).where(da.event == name)


CHURN_ACTIVITY_ENV = "TRADERLENS_CHURN_ACTIVITY"


@dataclass(frozen=True)
class ChurnActivity:
    """What keeps a trader from counting as churned, besides trading activity.

    ``name`` is the setting's value; ``events`` the other events that count (event names);
    ``description`` says it in words for tiles, reports and docs.
    """

    name: str
    events: tuple[str, ...]
    description: str


CHURN_ACTIVITIES: dict[str, ChurnActivity] = {
    "trading_funding": ChurnActivity("trading_funding", ("deposit",),
                                     "trading (a position opened, closed or held) or an approved deposit"),
    "any": ChurnActivity("any", ("deposit", "login"),
                         "trading (a position opened, closed or held), an approved deposit or a login"),
}
DEFAULT_CHURN_ACTIVITY = "trading_funding"


class BadChurnActivity(TraderLensError):
    """``TRADERLENS_CHURN_ACTIVITY`` names no known setting."""


def churn_activity() -> ChurnActivity:
    """The configured :class:`ChurnActivity` (``TRADERLENS_CHURN_ACTIVITY``; ``trading_funding`` when
    unset or empty); :class:`BadChurnActivity` naming the choices for any other value."""
    raw = os.environ.get(CHURN_ACTIVITY_ENV, "")
    value = raw.strip().lower() or DEFAULT_CHURN_ACTIVITY
    if value not in CHURN_ACTIVITIES:
        choices = "; ".join(f"{a.name} ({a.description})" for a in CHURN_ACTIVITIES.values())
        raise BadChurnActivity(f"{CHURN_ACTIVITY_ENV}={raw[:40]!r} is not a churn activity setting; use one "
                               f"of: {choices}")
    return CHURN_ACTIVITIES[value]


# ---------------------------------------------------------------------------------------------
# The names present


def list_event_names(engine: Engine) -> list[str]:
    """Names of the events present: core events in :data:`CORE_EVENTS` order (the order a trader
    meets them), then portal events A-Z, then "entered segment" events of the segments that are not
    archived, by segment name (:func:`segment_event`; listed before their first entry too).

    Each core event is one EXISTS probe, so this stays fast on large data; the FTD is probed as an
    approved deposit, which exists exactly when an FTD does.
    """
    probes = [sa.exists(event_select("deposit" if name == "ftd" else name).limit(1)).label(f"e{i}")
              for i, name in enumerate(CORE_EVENTS)]
    portal = sa.select(portal_events.c.event).distinct().order_by(portal_events.c.event)
    with reading(engine) as conn:
        present = conn.execute(sa.select(*probes)).one()
        portal_names = list(conn.execute(portal).scalars())
        segment_names = list(conn.execute(sa.select(segments.c.name).where(segments.c.archived.is_(sa.false()))
                                          .order_by(segments.c.name)).scalars())
    # Importers refuse portal events named like a core event; one written another way is not listed twice,
    # nor one named like a segment's event, which reads the segment (module docstring).
    return [name for name, ok in zip(CORE_EVENTS, present, strict=True) if ok] + [
        name for name in portal_names if name not in CORE_EVENTS and entered_segment(name) is None] + [
        segment_event(name) for name in segment_names]


class UnknownEvent(TraderLensError):
    """Event names no event in the database carries (most often a typo); ``known`` lists those it has."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        self.known = tuple(known)
        # repr() and the escaping keep the message on one line whatever the names hold.
        names = ", ".join(repr(name) for name in self.unknown)
        listed = ", ".join(name if name.isprintable() else repr(name) for name in self.known)
        super().__init__(f"unknown event{'s' if len(self.unknown) > 1 else ''} {names}; "
                         f"the events in the database are: {listed or 'none'}")


def check_event_names(engine: Engine, names: Iterable[str]) -> None:
    """Raise :class:`UnknownEvent` unless every one of ``names`` is in :func:`list_event_names`.

    An analysis of an absent event is all zeros, which hides a typo in a scheduled report.
    """
    known = list_event_names(engine)
    present = set(known)
    unknown = [name for name in dict.fromkeys(names) if name not in present]
    if unknown:
        raise UnknownEvent(unknown, known)


# ---------------------------------------------------------------------------------------------
# The span of the data


@dataclass(frozen=True)
class EventSpan:
    """The first and the last instant (naive UTC) of any event in the stream."""

    first_at: datetime
    last_at: datetime

    @property
    def days(self) -> DateRange:
        """The reporting time zone's days from the first event's to the last event's, both included."""
        return DateRange(local_date(self.first_at), local_date(self.last_at))


def read_event_span(conn: Connection) -> EventSpan | None:
    """The :class:`EventSpan` of the data, on an open connection; None when there is no event.

    One statement: min() and max() over each event's own SELECT, a row per event, rather than over the
    view, whose every row PostgreSQL would read. Every event table has an index on its time alone, so
    PostgreSQL answers each pair from it (3 ms in all on 200,000 traders). The FTD is left out: it is
    one of the deposits.
    """
    pairs = []
    for name in [n for n in CORE_EVENTS if n != "ftd"] + [None]:
        rows = (sa.select(portal_events.c.occurred_at) if name is None else event_select(name)).subquery()
        pairs.append(sa.select(sa.func.min(rows.c.occurred_at), sa.func.max(rows.c.occurred_at)))
    found = [(first, last) for first, last in conn.execute(sa.union_all(*pairs)) if first is not None]
    return EventSpan(min(f for f, _ in found), max(last for _, last in found)) if found else None


def compute_event_span(engine: Engine) -> EventSpan | None:
    """:func:`read_event_span` through the read door."""
    with reading(engine) as conn:
        return read_event_span(conn)


def compute_data_span(engine: Engine) -> DateRange | None:
    """The first and last day (reporting time zone) with any event (:meth:`EventSpan.days`); None for an
    empty database."""
    span = compute_event_span(engine)
    return span.days if span else None
