"""Saved segments as a global filter, a breakdown and an event, on DuckDB and PostgreSQL.

The rows are written straight into the tables of migration 0009, as a refresh leaves them, so these tests
check only what reads them. 2026-03-02 is a Monday.

Segments: 1 "VIP churners" (members 1, 2, 3; trader 5 entered and left), 2 "Scalpers" (members 3, 4),
3 "Old" (archived, member 5). Trader 6 is a test account in segment 1 too.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import funnels
from analytics.cohorts import RetentionSpec, compute_retention
from analytics.events import (
    UnknownEvent,
    activity_days,
    check_event_names,
    entered_segment,
    event_select,
    list_event_names,
    segment_event,
)
from analytics.filters import (
    EVERYONE,
    NO_SEGMENT,
    FilterOptions,
    SegmentOption,
    TraderFilter,
    compute_filter_options,
)
from analytics.funnels import FunnelSpec, compute_funnel
from analytics.kpis import compute_breakdown, compute_kpis
from analytics.lifecycle import compute_lifecycle, compute_stage_distribution
from analytics.periods import DateRange
from connectors import database, schema
from connectors.rollups import refresh_rollups

VIP, SCALPERS, OLD = 1, 2, 3
REFRESHED = datetime(2026, 3, 20, 6)
MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour)


def _clear_segments(conn) -> None:
    # The PostgreSQL test database is shared by the session and only its data tables are emptied.
    for table in (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments):
        conn.execute(table.delete())


def write_broker(engine) -> None:
    traders = pd.DataFrame({
        "trader_id": [1, 2, 3, 4, 5, 6], "external_id": [f"T{i}" for i in range(1, 7)],
        "registered_at": [at(1, 9 + i) for i in range(6)],
        "country": ["DE", "GB", "DE", "FR", "DE", "DE"], "is_test": [False] * 5 + [True],
    })
    trades = pd.DataFrame({
        "trade_id": [1, 2, 3, 4], "external_id": ["D1", "D2", "D3", "D4"], "trader_id": [1, 2, 3, 6],
        "symbol": "EURUSD", "side": "buy", "lots": 1.0, "notional_usd": [1000.0, 2000.0, 4000.0, 8000.0],
        "opened_at": [at(10), at(2), at(11), at(10)], "closed_at": [at(10, 13), at(2, 13), at(11, 13), at(10, 13)],
        "open_price": 1.1, "close_price": 1.1, "profit_usd": 0.0,
    })
    money = pd.DataFrame({
        "txn_id": [1, 2, 3], "external_id": ["X1", "X2", "X3"], "trader_id": [1, 3, 4], "kind": "deposit",
        "status": "approved", "amount": [500.0, 200.0, 100.0], "currency": "USD",
        "amount_usd": [500.0, 200.0, 100.0], "created_at": [at(3), at(4), at(5)],
    })
    segments = pd.DataFrame({
        "segment_id": [VIP, SCALPERS, OLD], "name": ["VIP churners", "Scalpers", "Old"], "kind": "list",
        "definition": "{}", "version": 1, "created_at": at(1), "created_by": "test", "updated_at": at(1),
        "updated_by": "test", "refreshed_at": [REFRESHED, REFRESHED - timedelta(days=1), REFRESHED],
        "archived": [False, False, True],
    })
    members = [(VIP, 1), (VIP, 2), (VIP, 3), (VIP, 6), (SCALPERS, 3), (SCALPERS, 4), (OLD, 5)]
    changes = [(VIP, 1, "entered", at(5, 10)), (VIP, 2, "entered", at(6, 10)), (VIP, 3, "entered", at(6, 11)),
               (VIP, 5, "entered", at(4, 10)), (VIP, 5, "left", at(8, 10)), (VIP, 6, "entered", at(5, 10)),
               (SCALPERS, 3, "entered", at(10, 10)), (SCALPERS, 4, "entered", at(12, 10)),
               (OLD, 5, "entered", at(2, 10))]
    with engine.begin() as conn:
        _clear_segments(conn)
        database.bulk_insert(conn, schema.traders, traders)
        database.bulk_insert(conn, schema.trades, trades)
        database.bulk_insert(conn, schema.transactions, money)
        database.bulk_insert(conn, schema.segments, segments)
        database.bulk_insert(conn, schema.segment_members, pd.DataFrame(
            [{"segment_id": s, "trader_id": t, "entered_at": at(5)} for s, t in members]))
        database.bulk_insert(conn, schema.segment_changes, pd.DataFrame(
            [{"change_id": i, "segment_id": s, "trader_id": t, "change": c, "changed_at": when, "version": 1}
             for i, (s, t, c, when) in enumerate(changes, start=1)]))
        refresh_rollups(conn)


@pytest.fixture
def broker(engine):
    write_broker(engine)
    yield engine
    with engine.begin() as conn:
        _clear_segments(conn)


def kept(engine, flt: TraderFilter) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(schema.traders.c.trader_id)
                                .where(flt.restrict(schema.traders.c.trader_id))).scalars())


def members(engine, *segment_ids: int) -> set[int]:
    m = schema.segment_members.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(m.trader_id).where(m.segment_id.in_(segment_ids))).scalars())


# --- the filter -----------------------------------------------------------------------------------


@pytest.mark.parametrize("segment_ids", [(VIP,), (SCALPERS,), (VIP, SCALPERS), (OLD,)])
def test_filter_by_segment_keeps_exactly_the_current_members(broker, segment_ids):
    assert kept(broker, TraderFilter(segments=segment_ids, include_test=True)) == members(broker, *segment_ids)
    # Test accounts are still left out by default; trader 6 is one.
    assert kept(broker, TraderFilter(segments=segment_ids)) == members(broker, *segment_ids) - {6}


def test_segments_combine_with_the_other_filters_and_within_narrows_to_one(broker):
    assert kept(broker, TraderFilter(segments=(VIP, SCALPERS), countries=("DE",))) == {1, 3}
    assert kept(broker, TraderFilter(segments=(VIP,)).within(SCALPERS)) == {3}
    assert kept(broker, TraderFilter().within(SCALPERS)) == {3, 4}
    assert kept(broker, TraderFilter(segments=(99,))) == set()  # a deleted segment keeps nobody


def test_a_segment_filter_narrows_and_is_part_of_the_filters_identity():
    flt = TraderFilter(segments=(VIP,))
    assert flt.narrows() and not TraderFilter(include_test=True, segments=(VIP,)).is_everyone()
    assert TraderFilter().within(VIP).narrows()
    # The stamp keeps nobody out, but a refresh makes it another filter (another cache entry).
    assert not TraderFilter(segments_as_of=REFRESHED).narrows()
    assert TraderFilter(include_test=True, segments_as_of=REFRESHED).is_everyone()
    assert flt != TraderFilter(segments=(VIP,), segments_as_of=REFRESHED)
    assert hash(flt) != hash(TraderFilter(segments=(VIP,), segments_as_of=REFRESHED))


def test_filter_options_list_the_segments_not_archived_by_name(broker):
    options = compute_filter_options(broker)
    assert [(s.segment_id, s.name) for s in options.segments] == [(SCALPERS, "Scalpers"), (VIP, "VIP churners")]
    assert options.segment_named("VIP churners").refreshed_at == REFRESHED
    assert options.segment(OLD) is None


def test_the_stamp_is_the_newest_refresh_of_the_segments_a_view_reads():
    older, newer = REFRESHED - timedelta(days=1), REFRESHED
    options = FilterOptions((), (), (), (), (), segments=(SegmentOption(SCALPERS, "Scalpers", older),
                                                          SegmentOption(VIP, "VIP churners", newer),
                                                          SegmentOption(7, "Never refreshed", None)))
    assert options.stamp(TraderFilter()) == TraderFilter()  # no segment read: the cache key is unchanged
    assert options.stamp(TraderFilter(segments=(SCALPERS,))).segments_as_of == older
    assert options.stamp(TraderFilter(segments=(SCALPERS,)), segment_names=["VIP churners"]).segments_as_of == newer
    assert options.stamp(TraderFilter(), segment_ids=[7]).segments_as_of is None
    assert options.stamp(TraderFilter().within(VIP)).segments_as_of == newer


# --- breakdowns -----------------------------------------------------------------------------------


def test_overview_breakdown_by_segment_counts_a_trader_in_each_of_their_segments(broker):
    frame = compute_breakdown(broker, dimension="segment", date_range=MARCH, rank_by="registrations")
    rows = frame.set_index("value")
    assert set(rows.index) == {"VIP churners", "Scalpers", NO_SEGMENT}  # archived "Old" is no row
    assert rows.loc["VIP churners", "registrations"] == 3 and rows.loc["VIP churners", "deposits"] == 700
    assert rows.loc["Scalpers", "registrations"] == 2 and rows.loc["Scalpers", "deposits"] == 300
    assert rows.loc[NO_SEGMENT, "registrations"] == 1  # trader 5 (6 is a test account)
    # The sum: every kept trader once per segment they are in (3 is in two), or once in no segment.
    assert frame["registrations"].sum() == 5 + 1
    assert rows.loc["VIP churners", "volume_usd"] == 1000 + 2000 + 4000


def test_each_segment_row_is_the_kpis_of_that_segment_as_a_filter(broker):
    frame = compute_breakdown(broker, dimension="segment", date_range=MARCH).set_index("value")
    for segment_id, name in ((VIP, "VIP churners"), (SCALPERS, "Scalpers")):
        kpis = {k.key: k.value for k in compute_kpis(broker, date_range=MARCH,
                                                    trader_filter=TraderFilter().within(segment_id))}
        assert frame.loc[name, "registrations"] == kpis["registrations"]
        assert frame.loc[name, "deposits"] == kpis["deposits"]
        assert frame.loc[name, "active_traders"] == kpis["active_traders"]


def test_funnel_breakdown_by_segment(broker):
    spec = FunnelSpec(steps=("registered", "trade"), breakdown=funnels.SEGMENT_BREAKDOWN, breakdown_kind="segment")
    result = compute_funnel(broker, spec, date_range=MARCH)
    counts = {(r.breakdown_value, r.step): r.count for r in result.steps.itertuples()}
    assert result.breakdown_values == ("VIP churners", "Scalpers", NO_SEGMENT)
    assert counts[("VIP churners", 1)] == 3 and counts[("VIP churners", 2)] == 3
    assert counts[("Scalpers", 1)] == 2 and counts[("Scalpers", 2)] == 1
    assert counts[(NO_SEGMENT, 1)] == 1 and counts[(NO_SEGMENT, 2)] == 0
    # Each block is the funnel of that segment as a filter.
    for segment_id, name in ((VIP, "VIP churners"), (SCALPERS, "Scalpers")):
        alone = compute_funnel(broker, FunnelSpec(steps=spec.steps), date_range=MARCH,
                               trader_filter=TraderFilter().within(segment_id))
        assert list(alone.steps["count"]) == [counts[(name, 1)], counts[(name, 2)]]
    # Drop-offs name every segment of a trader.
    dropped = funnels.dropoffs_of(broker, result, step=1, date_range=MARCH).people
    assert dict(zip(dropped["trader_id"], dropped["breakdown_value"], strict=True)) == {4: "Scalpers",
                                                                                      5: NO_SEGMENT}


def test_a_breakdown_by_segment_needs_its_name():
    with pytest.raises(funnels.FunnelRejected, match="segment"):
        funnels.validate_spec(FunnelSpec(steps=("a", "b"), breakdown="country", breakdown_kind="segment"))


# --- the "entered segment" event ------------------------------------------------------------------


def test_entered_segment_events_are_listed_and_checked(broker):
    names = list_event_names(broker)
    assert names[-2:] == [segment_event("Scalpers"), segment_event("VIP churners")]
    assert segment_event("Old") not in names  # archived
    check_event_names(broker, ["trade", "segment:VIP churners"])
    with pytest.raises(UnknownEvent):
        check_event_names(broker, ["segment:VIP"])
    assert entered_segment("segment:VIP churners") == "VIP churners" and entered_segment("trade") is None


def test_entered_segment_rows_are_the_entered_changes(broker):
    with broker.connect() as conn:
        rows = sorted(conn.execute(event_select("segment:VIP churners")).all())
        days = sorted(conn.execute(activity_days("segment:Scalpers")).all())
    assert rows == [(1, at(5, 10)), (2, at(6, 10)), (3, at(6, 11)), (5, at(4, 10)), (6, at(5, 10))]
    assert days == [(3, datetime(2026, 3, 10)), (4, datetime(2026, 3, 12))]


@pytest.mark.parametrize("order", ["ordered", "strict", "unordered"])
def test_a_funnel_from_entering_a_segment_to_trading(broker, order):
    spec = FunnelSpec(steps=("segment:VIP churners", "trade"), order=order)
    result = compute_funnel(broker, spec, date_range=MARCH)
    # Entered: 1, 2, 3 and 5 (who left since; 6 is a test account). Traded within 14 days after: 1 (10th) and
    # 3 (11th); 2 traded before entering, which counts only in any order.
    assert list(result.steps["count"]) == [4, 3 if order == "unordered" else 2]
    assert compute_funnel(broker, spec, date_range=MARCH, trader_filter=EVERYONE).steps["count"].iloc[0] == 5


def test_entering_a_segment_as_a_later_step_and_an_exclusion(broker):
    spec = FunnelSpec(steps=("registered", "segment:Scalpers"))
    assert list(compute_funnel(broker, spec, date_range=MARCH).steps["count"]) == [5, 2]
    excluded = FunnelSpec(steps=("registered", "trade"),
                          exclusions=(funnels.Exclusion("segment:VIP churners", 0, 1),))
    # 1, 3 and 5 entered VIP churners after registering and before trading (5 never traded): out of the
    # funnel. 2 traded before entering; 4 never entered nor traded.
    assert list(compute_funnel(broker, excluded, date_range=MARCH).steps["count"]) == [2, 1]
    both = FunnelSpec(steps=("segment:VIP churners", "segment:Scalpers"))
    assert list(compute_funnel(broker, both, date_range=MARCH).steps["count"]) == [4, 1]


def test_retention_from_entering_a_segment(broker):
    spec = RetentionSpec(start_event="segment:VIP churners", return_event="trade", period="week", intervals=3)
    result = compute_retention(broker, spec, date_from=date(2026, 3, 2), date_to=date(2026, 3, 15))
    first = result.counts.iloc[0]
    # Week of 2 March: 1, 2, 3 and 5 entered; 1 and 3 traded the next week.
    assert first["cohort_start"] == pd.Timestamp("2026-03-02") and first["size"] == 4 and first[1] == 2
    back = RetentionSpec(start_event="registered", return_event="segment:Scalpers", period="week", intervals=3)
    result = compute_retention(broker, back, date_from=date(2026, 2, 23), date_to=date(2026, 3, 15))
    registered = result.counts.set_index("cohort_start").loc[pd.Timestamp("2026-02-23")]
    assert registered["size"] == 5 and registered[2] == 2  # registered 1 March, entered Scalpers 10 and 12 March


def test_lifecycle_of_entering_a_segment(broker):
    frame = compute_lifecycle(broker, event="segment:VIP churners", period="week", date_from=date(2026, 3, 2),
                              date_to=date(2026, 3, 15))
    rows = {f"{r.period_start:%m-%d}": (r.new, r.returning, r.resurrecting, r.dormant)
            for r in frame.itertuples(index=False)}
    assert rows == {"03-02": (4, 0, 0, 0), "03-09": (0, 0, 0, -4)}


def test_stage_distribution_per_segment_adds_up_to_each_segment(broker):
    total = 0
    for segment_id in (VIP, SCALPERS):
        stages = compute_stage_distribution(broker, as_of=date(2026, 3, 20), trader_filter=TraderFilter().within(
            segment_id))
        assert stages["traders"].sum() == len(members(broker, segment_id) - {6})
        total += int(stages["traders"].sum())
    assert total == 3 + 2  # trader 3 counts in both
