"""Who entered a funnel and how far they got: the events run through the state machines, one kept
attempt per trader, and the breakdown label of each trader; and who of them dropped off at a step,
with what a retention team needs to contact them (:class:`Dropoffs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.events import entered_segment, event_select
from analytics.filters import NO_SEGMENT, STANDARD_TIER, TraderFilter, read_segment_options, segment_memberships
from analytics.funnels.kernels import ordered_pass, unordered_pass
from analytics.funnels.sources import _epoch_us, _in_range, _property_text
from analytics.funnels.spec import NONE_VALUE, US, Attribution, FunnelRejected, FunnelSpec, validate_spec
from analytics.funnels.stream import EventStream, load_events
from analytics.periods import DateRange
from analytics.reading import reading
from connectors.columnar import fetch_columns
from connectors.schema import CORE_EVENTS, accounts, traders


@dataclass(frozen=True, eq=False)
class People:
    """Traders who entered the funnel: ids (sorted), furthest step of the kept attempt (1..n), that
    attempt's step times (epoch microseconds, one column per step) and breakdown labels. A breakdown by
    segment also has ``groups``: (segment name, which of the traders are its members) per segment, A-Z,
    the label being the names of a trader's segments ("A, B"; NO_SEGMENT for none)."""

    trader_id: np.ndarray
    reached: np.ndarray
    times: np.ndarray
    labels: np.ndarray | None
    groups: tuple[tuple[str, np.ndarray], ...] | None = None


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


def _segment_groups(conn: Connection, trader_ids: np.ndarray) -> tuple[np.ndarray, tuple[tuple[str, np.ndarray], ...]]:
    """Per trader id (sorted), the names of their current segments as one label, and per segment (not
    archived, A-Z) which of them are members."""
    names = {option.segment_id: option.name for option in read_segment_options(conn)}
    memberships = segment_memberships().subquery("memberships")
    bounds = (int(trader_ids.min()), int(trader_ids.max())) if len(trader_ids) else (0, -1)
    pairs = fetch_columns(conn, sa.select(memberships.c.trader_id, memberships.c.segment_id)
                          .where(memberships.c.trader_id.between(*bounds)))
    member = np.asarray(pairs["trader_id"], dtype=np.int64)
    segment = np.asarray(pairs["segment_id"], dtype=np.int64)
    labels = np.full(len(trader_ids), "", dtype=object)
    groups = []
    for segment_id, name in sorted(names.items(), key=lambda item: (item[1], item[0])):
        inside = np.isin(trader_ids, member[segment == segment_id])
        labels[inside] = np.where(labels[inside] == "", name, labels[inside] + ", " + name)
        groups.append((str(name), inside))
    labels[labels == ""] = NO_SEGMENT
    return labels, tuple(groups)


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
        groups = None
        if spec.breakdown and spec.breakdown_kind == "trader":
            labels = _trader_labels(conn, spec.breakdown, spec.attribution, trader_id, trader_filter)
        elif spec.breakdown and spec.breakdown_kind == "segment":
            labels, groups = _segment_groups(conn, trader_id)
        elif labels is not None:
            labels = labels[np.searchsorted(label_people, trader_id)]
    if labels is not None:
        labels = np.array([NONE_VALUE if v is None else str(v) for v in labels], dtype=object)
    return People(trader_id, reached[entered].astype(np.int64), times[entered], labels, groups)


# ---------------------------------------------------------------------------------------------
# Who dropped off


DROPPED, IN_WINDOW = "dropped", "in_window"
NO_TIME = np.iinfo(np.int64).min
DROPOFF_STATUSES = (DROPPED, IN_WINDOW)
CONSENT_COLUMNS = ["consent_email", "consent_sms", "consent_push", "consent_whatsapp"]
# The trader details a retention team contacts people with, as stored in ``traders``.
CONTACT_COLUMNS = ["first_name", "last_name", "email", "phone", "country", "acquisition_channel", *CONSENT_COLUMNS,
                   "owner"]
DROPOFF_COLUMNS = ["trader_id", "external_id", "status", "reached_at", "window_ends_at", *CONTACT_COLUMNS]


@dataclass(frozen=True, eq=False)
class Dropoffs:
    """The traders whose kept attempt reached ``step`` (1-based) but not the next one.

    ``people``: one row per trader, most recent first, columns DROPOFF_COLUMNS (plus ``breakdown_value``
    with a breakdown): ``trader_id`` (int), ``external_id`` (str), ``status`` ("dropped": their attempt's
    conversion window closed before ``observed_until``, so the funnel saw them not convert; "in_window":
    it had not, so they can still convert), ``reached_at`` (naive UTC datetime of their step-``step``
    event), ``window_ends_at`` (their attempt's step-1 time + the window: the last instant a next step
    counts), ``first_name``, ``last_name``, ``email``, ``phone``, ``country``, ``acquisition_channel``
    (str or None), ``consent_email`` / ``_sms`` / ``_push`` / ``_whatsapp`` (bool) and ``owner`` (str or
    None: the account manager). ``observed_until`` is the first instant the funnel did not look at: the
    end of its date range or of the newest day with data, whichever is earlier (None for an empty
    database, where nobody is listed).
    """

    step: int
    observed_until: datetime | None
    people: pd.DataFrame

    @property
    def dropped(self) -> pd.DataFrame:
        return self.people[self.people["status"] == DROPPED].reset_index(drop=True)

    @property
    def in_window(self) -> pd.DataFrame:
        return self.people[self.people["status"] == IN_WINDOW].reset_index(drop=True)

    @property
    def counts(self) -> dict[str, int]:
        """Traders per status, every status present (0 when nobody has it)."""
        found = self.people["status"].value_counts()
        return {status: int(found.get(status, 0)) for status in DROPOFF_STATUSES}

    def of_status(self, status: str | None) -> pd.DataFrame:
        """The rows of ``status`` ("dropped", "in_window"), or every row for None."""
        if status is None:
            return self.people
        if status not in DROPOFF_STATUSES:
            raise ValueError(f"unknown drop-off status {status!r}; use {' or '.join(DROPOFF_STATUSES)}")
        return self.dropped if status == DROPPED else self.in_window


def _latest_starts(conn: Connection, spec: FunnelSpec, date_range: DateRange | None,
                   bounds: tuple[int, int]) -> sa.Subquery:
    """trader_id, last_start: each trader's newest step-1 event in the range, the start of their newest
    attempt. The event stream cannot tell: its SQL pre-reduction drops step-1 events no step 2 follows."""
    source = event_select(spec.steps[0])
    flt = spec.step_filter(0)
    if flt is not None:
        # A filtered step matches portal events with that property only (a core event never).
        source = (source.where(_property_text(conn.dialect.name, flt.key) == flt.value)
                  if spec.steps[0] not in CORE_EVENTS and entered_segment(spec.steps[0]) is None
                  else source.where(sa.false()))
    rows = _in_range(source, date_range).subquery("step_one")
    return (sa.select(rows.c.trader_id, sa.func.max(rows.c.occurred_at).label("last_start"))
            .where(rows.c.trader_id.between(*bounds))
            .group_by(rows.c.trader_id).subquery("latest_starts"))


def list_dropoffs(conn: Connection, spec: FunnelSpec, people: People, step: int, trader_filter: TraderFilter,
                  date_range: DateRange | None, observed_until: datetime | None) -> Dropoffs:
    """:class:`Dropoffs` at ``step`` of the people who entered ``spec`` over ``date_range``: their times from
    ``people``, their details and newest attempt in one query on ``conn`` (a
    :func:`analytics.reading.reading` connection)."""
    n = len(spec.steps)
    if not 1 <= step < n:
        raise FunnelRejected(f"Drop-offs are between steps: pick a step from 1 to {n - 1}.")
    at = people.reached == step
    ids = people.trader_id[at]
    # Bounded by the droppers' id range: ids follow capture order, so the droppers of a recent
    # range are a narrow band of the table (exact either way; lookup matches by id).
    lo_hi = (int(ids.min()), int(ids.max())) if len(ids) else (0, -1)
    t = traders.c
    # Consents as 0/1: the columnar fetch takes integers and text, not booleans (text on PostgreSQL).
    columns = [t.trader_id, t.external_id, *(sa.cast(t[c], sa.Integer).label(c) if c in CONSENT_COLUMNS else t[c]
                                             for c in CONTACT_COLUMNS)]
    query = sa.select(*columns).where(trader_filter.restrict(t.trader_id), t.trader_id.between(*lo_hi))
    if spec.order != "unordered":
        latest = _latest_starts(conn, spec, date_range, lo_hi)
        # As epoch microseconds (PostgreSQL's columnar fetch takes no timestamp beside text columns), 0 for
        # the traders in the id range who are not droppers (an integer column cannot be NULL).
        last_us = sa.func.coalesce(_epoch_us(conn.dialect.name, latest.c.last_start), 0)
        query = query.add_columns(sa.cast(last_us, sa.BigInteger).label("last_start_us")).outerjoin_from(
            traders, latest, latest.c.trader_id == t.trader_id)
    details = lookup(conn, query, ids)
    # The window that can still carry a trader on: from their newest step-1 event (a repeated step 1
    # starts a new attempt, which can get further); unordered, from the first of the kept steps.
    started = people.times[at, 0]
    if spec.order != "unordered":
        last = np.array([NO_TIME if v is None else v for v in details[-1]], dtype=np.int64)
        started = np.maximum(started, last)
        details = details[:-1]
    window_ends = started + spec.effective_window_s * US  # the window includes its last instant
    if observed_until is None:
        open_ = np.zeros(len(ids), dtype=bool)
    else:
        until = int((pd.Timestamp(observed_until) - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))
        open_ = window_ends >= until
    frame = pd.DataFrame({"trader_id": ids, "status": np.where(open_, IN_WINDOW, DROPPED),
                          "reached_at": pd.to_datetime(people.times[at, step - 1], unit="us"),
                          "window_ends_at": pd.to_datetime(window_ends, unit="us")})
    if spec.breakdown:
        assert people.labels is not None
        frame["breakdown_value"] = people.labels[at]
    for name, values in zip(["external_id", *CONTACT_COLUMNS], details, strict=True):
        frame[name] = np.array([v is not None and int(v) == 1 for v in values], dtype=bool) \
            if name in CONSENT_COLUMNS else values
    frame = frame[[*DROPOFF_COLUMNS, *(["breakdown_value"] if spec.breakdown else [])]]
    frame = frame.sort_values(["reached_at", "trader_id"], ascending=[False, True], ignore_index=True)
    return Dropoffs(step=step, observed_until=observed_until, people=frame)
