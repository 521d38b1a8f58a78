"""Where a funnel's events come from: the event catalogue's SELECTs (:mod:`analytics.events`), each
over the table behind one event of the ``trader_events`` view, plus portal events read with their
properties.

:func:`event_queries` selects only the events that can matter - every step or exclusion event
inside the date range, for traders that pass the global filter - as compact columns: trader id,
time and a bitmask of the steps and exclusions the event matches. Where provably exact, rows are
cut before they travel: for a step on trades or logins, only the first such event after each event
of the previous step within the window (step 1: the first one plus the last one before each step-2
event); for strict funnels, only the unrelated events that can break a chain; for unordered
funnels, only the rows of a bulk event near the other steps' events.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from analytics.events import entered_segment, event_select
from analytics.filters import TraderFilter
from analytics.funnels.spec import US, FunnelSpec, StepFilter
from analytics.periods import DateRange, interval
from connectors.schema import CORE_EVENTS, daily_activity, portal_events

EXCLUSION_SHIFT = 32  # mask bits 0..31 are steps, bits 32.. are exclusions "before step i"
_TRIM_UNRELATED = True  # strict funnels fetch only the unrelated events that can break a chain (exact)



def _table_columns(name: str) -> tuple[sa.Column, sa.Column]:
    """The trader and time columns of the table behind an event read whole (a trade, a login)."""
    selected = event_select(name).selected_columns
    return selected.trader_id, selected.occurred_at.element  # the column under the "occurred_at" label


# Events with millions of rows (trades, logins); a step on them may be pre-reduced in SQL, which
# probes their tables' (trader_id, time) indexes directly.
BULK_EVENTS: dict[str, tuple[sa.Column, sa.Column]] = {name: _table_columns(name) for name in ("trade", "login")}


def _in_range(select: sa.Select, date_range: DateRange | None) -> sa.Select:
    """``select`` (trader_id, occurred_at, ...) limited to the date range."""
    if date_range is None:
        return select
    return select.where(date_range.contains(select.selected_columns.occurred_at))


def _property_text(dialect: str, key: str) -> ColumnElement:
    """The JSON property ``key`` of a portal event as text (NULL when absent)."""
    if dialect == "duckdb":
        return sa.func.json_extract_string(portal_events.c.properties, f'$."{key}"')  # quoted: keys like $browser
    return sa.func.json_extract_path_text(sa.cast(portal_events.c.properties, sa.JSON), key)


def _epoch_us(dialect: str, column: ColumnElement) -> ColumnElement:
    """Microseconds since 1970 as BIGINT (exact: ties at one timestamp decide funnel outcomes)."""
    if dialect == "duckdb":
        return sa.func.epoch_us(column)
    return sa.cast(sa.extract("epoch", column) * US, sa.BigInteger)


@dataclass(frozen=True)
class EventPlan:
    """What the event query needs to know: the bit each step and exclusion sets in a row's mask."""

    spec: FunnelSpec
    step_bits: dict[int, tuple[str, StepFilter | None]]  # bit -> (event, filter)
    exclusion_bits: dict[int, tuple[str, ...]]  # bit -> events that set it

    @classmethod
    def of(cls, spec: FunnelSpec) -> EventPlan:
        step_bits = {k: (name, spec.step_filter(k)) for k, name in enumerate(spec.steps)}
        exclusion_bits: dict[int, tuple[str, ...]] = {}
        for ex in spec.exclusions:
            # PostHog encodes "between step f and t" as one flag per step i in f+1..t: the attempt
            # has reached step i-1 but not step i.
            for i in range(ex.from_step + 1, ex.to_step + 1):
                exclusion_bits[EXCLUSION_SHIFT + i] = (*exclusion_bits.get(EXCLUSION_SHIFT + i, ()), ex.event)
        return cls(spec, step_bits, exclusion_bits)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.step_bits.values()} | {
            e for events in self.exclusion_bits.values() for e in events}

    def core_mask(self, name: str) -> int:
        """Mask of a core or "entered segment" event (neither carries properties, so filtered steps never
        match)."""
        mask = 0
        for bit, (event, flt) in self.step_bits.items():
            if event == name and flt is None:
                mask |= 1 << bit
        for bit, events in self.exclusion_bits.items():
            if name in events:
                mask |= 1 << bit
        return mask

    def portal_mask(self, dialect: str) -> ColumnElement:
        """SQL mask of a portal event row."""
        terms: list[ColumnElement] = []
        ev = portal_events.c.event
        for bit, (event, flt) in self.step_bits.items():
            if entered_segment(event) is not None:
                continue  # read from segment_changes (event_queries), never from a portal event
            cond = ev == event
            if flt is not None:
                cond = sa.and_(cond, _property_text(dialect, flt.key) == flt.value)
            terms.append(sa.case((cond, sa.literal(1 << bit, sa.BigInteger)), else_=sa.literal(0, sa.BigInteger)))
        for bit, events in self.exclusion_bits.items():
            portal_names = [e for e in events if entered_segment(e) is None]
            terms.append(sa.case((ev.in_(portal_names), sa.literal(1 << bit, sa.BigInteger)),
                                 else_=sa.literal(0, sa.BigInteger)))
        mask = terms[0] if terms else sa.literal(0, sa.BigInteger)  # every step an "entered segment" one
        for term in terms[1:]:
            mask = mask + term  # each bit comes from exactly one term, so + is a bitwise OR
        return mask

    def unordered_reducible(self, *, trends: bool, prop_key: str | None) -> str | None:
        """The bulk event B of an unordered funnel most of whose rows can be left out without
        changing any result, or None. The other funnel events are the anchors.

        Why it is exact (the unordered funnel's sliding window): progress is recorded just before the oldest
        collected event X is dropped, and then the queue holds the events from X to at most a
        window after X. With two or more steps collected an anchor is among them, and B's part is
        its earliest row at or after X: either X itself (a row with an anchor within a window
        after it) or the first row after an anchor. Rows of neither kind only ever sit in windows
        without an anchor, where at most one step is collected; progress 1 is recorded with the
        trader's first event, so B's first row is kept too. (Keeping more rows than these is
        harmless, which lets the SQL keep whole spans.) Checked equal to the full fetch on the
        200,000-trader benchmark data (benchmarks/README.md). Only when the other events are light
        (their spans are the anchors). Not for trends (one attempt per entry period) nor for
        breakdowns by event property.
        """
        if self.spec.order != "unordered" or trends or prop_key is not None:
            return None
        names = [name for name, _ in self.step_bits.values()]
        excluded = {e for events in self.exclusion_bits.values() for e in events}
        for name in BULK_EVENTS:
            others = [n for n in names if n != name]
            if (names.count(name) == 1 and others and not (set(others) | excluded) & set(BULK_EVENTS)
                    and self.spec.step_filter(names.index(name)) is None):
                return name
        return None

    def reducible_steps(self, *, trends: bool) -> dict[int, str]:
        """Steps on a bulk event whose rows can be pre-reduced in SQL without changing any result:
        ordered funnels without exclusions, the event used by that step only, its neighbour step
        light (or itself reduced) so that the anchors of the reduction are few."""
        spec = self.spec
        if spec.order != "ordered" or spec.exclusions:
            return {}
        names = [name for name, _ in self.step_bits.values()]
        bulk = [name in BULK_EVENTS for name in names]
        pure = [bulk[k] and names.count(names[k]) == 1 and spec.step_filter(k) is None for k in range(len(names))]
        reduced: dict[int, str] = {}
        # Step 1 is kept whole for trends: every entry period counts there.
        if pure[0] and not bulk[1] and not trends:
            reduced[0] = names[0]
        for k in range(1, len(names)):
            if pure[k] and (not bulk[k - 1] or (k - 1) in reduced):
                reduced[k] = names[k]
        return reduced


def _near_rows(plan: EventPlan, name: str, light_cte: sa.CTE, window: ColumnElement, date_range: DateRange | None,
               dialect: str) -> sa.Select:
    """The rows of bulk event ``name`` an unordered funnel needs (see EventPlan.unordered_reducible).

    The other funnel events are the anchors. Kept, per trader: the rows from a window before the
    first anchor up to the last anchor; the first row after the last anchor (within a window), which
    with those stands for the first row at or after each anchor; and the trader's first row. The
    first row comes from the ``daily_activity`` rollup (the earliest time of the trader's first day
    with the event in the range, exact since ranges are whole days): a per-trader minimum over
    every raw row would cost as much as fetching them.
    """
    trader_col, time_col = BULK_EVENTS[name]
    in_range = [] if date_range is None else [date_range.contains(time_col)]
    span = (sa.select(light_cte.c.trader_id, (sa.func.min(light_cte.c.occurred_at) - window).label("lo"),
                      sa.func.max(light_cte.c.occurred_at).label("hi"))
            .group_by(light_cte.c.trader_id).cte("funnel_near_span"))
    da = daily_activity.c
    first = (sa.select(da.trader_id, sa.func.min(da.first_at).label("occurred_at"))
             .where(da.event == name, *([] if date_range is None else [date_range.contains(da.day)]))
             .group_by(da.trader_id).cte("funnel_near_first"))
    # Only traders with a row of B in the range have rows to keep.
    before = (sa.select(trader_col.label("trader_id"), time_col.label("occurred_at"))
              .join_from(trader_col.table, span, sa.and_(span.c.trader_id == trader_col, time_col >= span.c.lo,
                                                         time_col <= span.c.hi))
              .where(span.c.trader_id.in_(sa.select(first.c.trader_id)), *in_range))
    # The first row at or after an anchor t lies in [t, hi], which `before` keeps, or is the first row
    # after hi (then also within a window of hi, as t <= hi): one look per trader, from the last
    # anchor, stands for one per anchor.
    lasts = (sa.select(span.c.trader_id, span.c.hi).where(span.c.trader_id.in_(sa.select(first.c.trader_id)))
             .cte("funnel_near_last"))
    after_last = [trader_col == lasts.c.trader_id, time_col > lasts.c.hi, time_col <= lasts.c.hi + window]
    if dialect == "postgresql":
        # One index probe per trader into (trader_id, time).
        next_at = sa.select(sa.func.min(time_col)).where(*after_last, *in_range).scalar_subquery()
        # Materialised, or PostgreSQL inlines it and runs every probe twice (once for IS NOT NULL).
        probed = sa.select(lasts.c.trader_id, next_at.label("occurred_at")).cte("funnel_near_next").prefix_with(
            "MATERIALIZED")
    else:
        # DuckDB decorrelates the probe into a far slower plan; a join on the window and a GROUP BY
        # per trader is what its hash joins do well.
        probed = (sa.select(lasts.c.trader_id, sa.func.min(time_col).label("occurred_at"))
                  .join_from(lasts, trader_col.table, sa.and_(*after_last))
                  .where(*in_range)
                  .group_by(lasts.c.trader_id)
                  .cte("funnel_near_next"))
    singles = sa.union(sa.select(probed.c.trader_id, probed.c.occurred_at).where(probed.c.occurred_at.is_not(None)),
                       sa.select(first.c.trader_id, first.c.occurred_at)).subquery("funnel_near_singles")
    outside = (sa.select(singles.c.trader_id, singles.c.occurred_at)
               .select_from(singles.outerjoin(span, span.c.trader_id == singles.c.trader_id))
               .where(sa.or_(span.c.trader_id.is_(None), singles.c.occurred_at < span.c.lo,
                             singles.c.occurred_at > span.c.hi)))
    kept = sa.union_all(before, outside).subquery("funnel_near")
    mask = sa.literal(plan.core_mask(name), sa.BigInteger)
    return sa.select(kept.c.trader_id, kept.c.occurred_at, mask.label("mask"))


def _markers_by_bucket(source: str, anchors: sa.CTE, window: ColumnElement, window_s: int,
                       date_range: DateRange | None) -> sa.Select:
    """DuckDB, strict funnels: per step instant t of a trader, the rows of bulk event ``source`` that
    can break a chain: one at t itself (a tie) and the first one after t within the window.

    The join is an equality on (trader, bucket of window length): a row within the window of t lies
    in t's bucket or the next, so each instant meets a few rows of its trader instead of all of them
    (DuckDB's range joins would pair every instant with every row of the trader)."""
    trader_col, time_col = BULK_EVENTS[source]
    bucket_us = max(int(window_s), 1) * US
    offsets = sa.union_all(*(
        sa.select(anchors.c.trader_id, anchors.c.occurred_at,
                  (sa.func.epoch_us(anchors.c.occurred_at).op("//")(bucket_us) + offset).label("bucket"))
        for offset in (0, 1))).subquery(f"funnel_buckets_{source}")
    nearest = (sa.select(offsets.c.trader_id, offsets.c.occurred_at,
                         sa.func.bool_or(time_col == offsets.c.occurred_at).label("tie"),
                         sa.func.min(time_col).filter(time_col > offsets.c.occurred_at).label("next_at"))
               .join_from(offsets, trader_col.table, sa.and_(
                   trader_col == offsets.c.trader_id,
                   sa.func.epoch_us(time_col).op("//")(bucket_us) == offsets.c.bucket,
                   time_col >= offsets.c.occurred_at, time_col <= offsets.c.occurred_at + window))
               .where(*([] if date_range is None else [date_range.contains(time_col)]))
               .group_by(offsets.c.trader_id, offsets.c.occurred_at)
               # Materialised: read twice below, and DuckDB would otherwise run the join twice.
               .cte(f"funnel_nearest_{source}").prefix_with("MATERIALIZED"))
    markers = sa.union_all(
        sa.select(nearest.c.trader_id, nearest.c.occurred_at).where(nearest.c.tie),
        sa.select(nearest.c.trader_id, nearest.c.next_at.label("occurred_at")).where(nearest.c.next_at.is_not(None)),
    ).subquery(f"funnel_markers_{source}")
    return sa.select(markers.c.trader_id, markers.c.occurred_at).distinct()


def event_queries(plan: EventPlan, dialect: str, date_range: DateRange | None, trader_filter: TraderFilter, *,
                  prop_key: str | None, trends: bool) -> list[sa.Select]:
    """The events the funnel looks at as one or more SELECT trader_id, us, mask[, prop] whose rows
    together are the events (unsorted). More than one only for strict funnels on PostgreSQL, whose
    trade and login markers are index probes that :func:`analytics.funnels.stream.load_events` runs
    side by side.

    ``mask`` bits 0..n-1: steps matched; bits 32+i: exclusions "between step i-1 and i". Strict funnels
    also get the trader's unrelated events that can break a chain (mask 0).
    """
    spec = plan.spec
    strict = spec.order == "strict"
    reduced = plan.reducible_steps(trends=trends)
    near_only = plan.unordered_reducible(trends=trends, prop_key=prop_key)
    window = interval(spec.effective_window_s, "seconds")
    core_names = [name for name in CORE_EVENTS if strict or name in plan.names]

    def shaped(select: sa.Select, mask: ColumnElement | int, prop: ColumnElement | None) -> sa.Select:
        mask_col = sa.literal(mask, sa.BigInteger) if isinstance(mask, int) else mask
        cols = [select.selected_columns.trader_id, select.selected_columns.occurred_at, mask_col.label("mask")]
        if prop_key is not None:
            cols.append((prop if prop is not None else sa.null()).label("prop"))
        return select.with_only_columns(*cols)

    light: list[sa.Select] = []
    # Strict funnels: (rows matching nothing, their core event name or "portal"/"portal+props").
    unrelated: list[tuple[sa.Select, str]] = []
    for name in core_names:
        if name in reduced.values() or name == near_only:
            continue
        mask = plan.core_mask(name)
        source = event_select(name)
        if mask:
            light.append(shaped(_in_range(source, date_range), mask, None))
        elif strict:
            unrelated.append((shaped(_in_range(source, date_range), 0, None), name))
    # "Entered segment" steps and exclusions: a few rows each, read whole. They are not events of the
    # trader_events stream, so they never break a strict chain unless they are part of the funnel.
    segment_names = sorted(name for name in plan.names if entered_segment(name) is not None)
    for name in segment_names:
        light.append(shaped(_in_range(event_select(name), date_range), plan.core_mask(name), None))
    portal = sa.select(portal_events.c.trader_id, portal_events.c.occurred_at)
    if not strict:
        portal = portal.where(portal_events.c.event.in_(sorted(plan.names.difference(segment_names))))
    portal_mask = plan.portal_mask(dialect)
    portal = shaped(_in_range(portal, date_range), portal_mask,
                    _property_text(dialect, prop_key) if prop_key else None)
    if strict:
        unrelated.append((portal.where(portal_mask == 0), "portal+props" if prop_key else "portal"))
        portal = portal.where(portal_mask != 0)
    elif any(flt is not None for _, flt in plan.step_bits.values()):
        portal = portal.where(portal_mask != 0)  # a filtered step can leave portal rows matching nothing
    light.append(portal)
    light_cte = sa.union_all(*light).cte("funnel_light")
    extra: list[sa.Select] = []
    separate: list[sa.Select] = []  # rows that are better fetched by a statement of their own
    if unrelated:
        # Strict funnels. An unrelated event only matters (a) at the instant of a step or exclusion event,
        # where it makes the tie "mixed", or (b) as the first one after such an event, where it breaks the
        # chain - and only within the window of it, since every attempt started at or before it. So
        # trades and logins are fetched as those markers only; the lighter sources inside each trader's
        # span of step events (PostgreSQL: whole); portal events whole when a breakdown reads
        # properties from every event.
        span = (sa.select(light_cte.c.trader_id, sa.func.min(light_cte.c.occurred_at).label("lo"),
                          sa.func.max(light_cte.c.occurred_at).label("hi"))
                .group_by(light_cte.c.trader_id).cte("funnel_span"))
        anchors = sa.select(light_cte.c.trader_id, light_cte.c.occurred_at)
        if dialect == "postgresql":
            # Probed in index order, so that consecutive probes read neighbouring index pages: twice as
            # fast as in the hash order a DISTINCT leaves (216,000 trade probes: 0.7 s against 0.3 s).
            # Not de-duplicated: a repeated instant costs one more probe, the DISTINCT of the markers
            # below removes its rows, and de-duplicating every instant cost more (0.14 s).
            anchors = anchors.order_by(light_cte.c.trader_id, light_cte.c.occurred_at)
        else:
            anchors = anchors.distinct()
        anchors = anchors.cte("funnel_instants")
        for select, source in unrelated:
            if source == "portal+props" or not _TRIM_UNRELATED:
                extra.append(select)
            elif source in BULK_EVENTS and dialect == "postgresql":
                # Index probes on (trader_id, time); DuckDB would unnest these into a join of every
                # step event with every trade of the trader, so it takes the span below instead.
                trader_col, time_col = BULK_EVENTS[source]
                in_range = [] if date_range is None else [date_range.contains(time_col)]
                # One probe per instant for the first one at or after it; only when that one is at the
                # instant itself (a tie) does a second probe look for the first one after it.
                at_or_after = sa.select(sa.func.min(time_col)).where(
                    trader_col == anchors.c.trader_id, time_col >= anchors.c.occurred_at,
                    time_col <= anchors.c.occurred_at + window, *in_range).scalar_subquery()
                probe = sa.select(anchors.c.trader_id, anchors.c.occurred_at,
                                  at_or_after.label("first_at")).cte(f"funnel_probe_{source}")
                after = sa.select(sa.func.min(time_col)).where(
                    trader_col == probe.c.trader_id, time_col > probe.c.occurred_at,
                    time_col <= probe.c.occurred_at + window, *in_range).scalar_subquery()
                markers = sa.union_all(
                    sa.select(probe.c.trader_id, probe.c.first_at.label("occurred_at")),
                    sa.select(probe.c.trader_id,
                              sa.case((probe.c.first_at == probe.c.occurred_at, after)).label("occurred_at")),
                ).subquery()
                separate.append(shaped(sa.select(markers.c.trader_id, markers.c.occurred_at)
                                       .where(markers.c.occurred_at.is_not(None)).distinct(), 0, None))
            elif source in BULK_EVENTS:
                extra.append(shaped(_markers_by_bucket(source, anchors, window, spec.effective_window_s,
                                                       date_range), 0, None))
            elif dialect == "postgresql":
                # The light sources whole: a few hundred thousand rows at most, fetched in one scan
                # each, where a join on each trader's span runs as one index probe per trader
                # (PostgreSQL cannot estimate the span CTE and picks nested loops: ~0.35 s each
                # for 60,000 traders against ~0.05 s for the scan).
                extra.append(select)
            else:
                rows = select.subquery()
                extra.append(sa.select(rows).join(span, sa.and_(
                    span.c.trader_id == rows.c.trader_id, rows.c.occurred_at >= span.c.lo,
                    rows.c.occurred_at <= span.c.hi)))

    if near_only is not None:
        extra.append(_near_rows(plan, near_only, light_cte, window, date_range, dialect))
    if strict:
        # The trader filter on the step events alone. The unrelated events (most rows) of a trader
        # without step events change nothing (EventStream.collapse_unrelated drops them), so neither they nor
        # the markers above need the semi-join (0.2 s over a million rows on PostgreSQL).
        parts: list[sa.Select] = [sa.select(light_cte).where(trader_filter.restrict(light_cte.c.trader_id)), *extra]
    else:
        parts = [sa.select(light_cte), *extra]
    reduced_ctes: dict[int, sa.CTE] = {}
    for k in sorted(reduced):
        trader_col, time_col = BULK_EVENTS[reduced[k]]
        in_range = [] if date_range is None else [date_range.contains(time_col)]

        def anchors_of(step: int) -> sa.Subquery:
            anchor = sa.select(light_cte.c.trader_id, light_cte.c.occurred_at).where(
                light_cte.c.mask.op("&")(1 << step) != 0)
            if step in reduced_ctes:
                prev = reduced_ctes[step]
                anchor = sa.union_all(anchor, sa.select(prev.c.trader_id, prev.c.occurred_at))
            return anchor.subquery()

        if k == 0:
            # Step 1: the trader's first event (the attempt kept when nothing follows) and the last one
            # at or before each step-2 event within the window (the only one that step can use).
            a = anchors_of(1)
            last = (sa.select(sa.func.max(time_col)).where(
                trader_col == a.c.trader_id, time_col <= a.c.occurred_at, time_col >= a.c.occurred_at - window,
                *in_range).scalar_subquery())
            first = sa.select(trader_col.label("trader_id"), sa.func.min(time_col).label("occurred_at")).where(
                trader_filter.restrict(trader_col), *in_range).group_by(trader_col)
            candidates = sa.union_all(first, sa.select(a.c.trader_id, last.label("occurred_at")))
        else:
            # Step k: only the first such event at or after each event of step k-1, within the window
            # of that event (a later one can only repeat what the first did, or be too late).
            a = anchors_of(k - 1)
            nxt = (sa.select(sa.func.min(time_col)).where(
                trader_col == a.c.trader_id, time_col >= a.c.occurred_at, time_col <= a.c.occurred_at + window,
                *in_range).scalar_subquery())
            candidates = sa.select(a.c.trader_id, nxt.label("occurred_at"))
        # Materialised, or PostgreSQL inlines it and runs every probe twice (once for IS NOT NULL).
        probed = candidates.cte(f"funnel_probe_{k}").prefix_with("MATERIALIZED")
        cte = (sa.select(probed.c.trader_id, probed.c.occurred_at)
               .where(probed.c.occurred_at.is_not(None)).distinct().cte(f"funnel_bulk_{k}"))
        reduced_ctes[k] = cte
        cols = [cte.c.trader_id, cte.c.occurred_at, sa.literal(plan.core_mask(reduced[k]), sa.BigInteger).label("mask")]
        if prop_key is not None:
            cols.append(sa.null().label("prop"))
        parts.append(sa.select(*cols))

    def output(rows: sa.Subquery | sa.CTE) -> sa.Select:
        # Every number as BIGINT: PostgreSQL hands the rows over as fixed-width binary COPY
        # (connectors.columnar). There a timestamp travels as stored, an int64 of microseconds since 2000
        # that columnar shifts to 1970 (it knows the column by its DateTime type): exact, and 0.2 s per
        # million rows cheaper than EXTRACT's numeric arithmetic. Results with a text column (CSV) need
        # the number. DuckDB hands every column over as a numpy array as it is: no casts, and the
        # timestamp as stored, datetime64[us] that columnar views as int64 (1.5 ms of a 9 ms, 215,000-row
        # read).
        as_stored = dialect == "duckdb" or (dialect == "postgresql" and prop_key is None)
        us = sa.type_coerce(rows.c.occurred_at, sa.DateTime) if as_stored else _epoch_us(dialect, rows.c.occurred_at)

        def bigint(col: ColumnElement) -> ColumnElement:
            return col if dialect == "duckdb" else sa.cast(col, sa.BigInteger)

        out = [bigint(rows.c.trader_id).label("trader_id"), us.label("us"), bigint(rows.c.mask).label("mask")]
        if prop_key is not None:
            out.append(rows.c.prop)
        if strict:
            return sa.select(*out)  # filtered with the step events (parts[0])
        # The trader filter once, on the rows that remain: one semi-join instead of one per source (half
        # the time on PostgreSQL). Other traders' rows only ever add work, never change a trader's result.
        return sa.select(*out).where(trader_filter.restrict(rows.c.trader_id))

    main = output(sa.union_all(*parts).subquery("funnel_rows") if len(parts) > 1 else light_cte)
    return [main, *(output(part.subquery("funnel_rows")) for part in separate)]
