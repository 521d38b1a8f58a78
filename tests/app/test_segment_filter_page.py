"""Saved segments in the app: the sidebar's Segment filter (bound to ?segment=<name>), the breakdowns by segment
on Overview, Funnels, Cohorts and Lifecycle, and "entered segment" as an event, through the entrypoint with
AppTest on a small simulated broker. The segments are written straight into the tables of migration 0009,
as a refresh leaves them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics.events import compute_data_span
from analytics.filters import NO_SEGMENT, TraderFilter
from analytics.funnels import FunnelSpec, compute_funnel
from analytics.periods import DateRange
from components.filters import VIEW_KEY
from connectors import database, schema
from connectors.simulator import SimulationConfig

NOTICE = "Some of the link's settings were ignored"
HIGH, NEW = 1, 2
REFRESHED = datetime(2026, 10, 31, 6)
ENTERED = datetime(2026, 10, 10, 9)


@pytest.fixture
def broker(seeded_broker, use_broker) -> tuple[str, DateRange, dict[int, set[int]]]:
    """The simulated broker (300 traders over 90 days ending 1 Nov 2026) with two saved segments (and an archived
    one): "High rollers" (every third trader), "Newcomers" (every fifth; the fifteenths are in both); all entered
    on 10 Oct. Returns the URL, the sidebar's default range and the members."""
    url = use_broker(seeded_broker(SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1))))
    engine = database.get_engine(url)
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(schema.traders.c.trader_id)).scalars())
    members = {HIGH: {i for i in ids if i % 3 == 0}, NEW: {i for i in ids if i % 5 == 0}, 3: set(ids[:5])}
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.segments, pd.DataFrame({
            "segment_id": [HIGH, NEW, 3], "name": ["High rollers", "Newcomers", "Gone"], "kind": "list",
            "definition": "{}", "version": 1, "created_at": ENTERED, "created_by": "test", "updated_at": ENTERED,
            "updated_by": "test", "refreshed_at": REFRESHED, "archived": [False, False, True]}))
        pairs = [(s, t) for s, traders in members.items() for t in sorted(traders)]
        database.bulk_insert(conn, schema.segment_members, pd.DataFrame(
            [{"segment_id": s, "trader_id": t, "entered_at": ENTERED} for s, t in pairs]))
        database.bulk_insert(conn, schema.segment_changes, pd.DataFrame(
            [{"change_id": n, "segment_id": s, "trader_id": t, "change": "entered", "changed_at": ENTERED,
              "version": 1} for n, (s, t) in enumerate(pairs, start=1)]))
    span = compute_data_span(engine)
    engine.dispose()
    database.dispose_engines()  # the app under test opens the file itself
    assert span is not None
    return url, DateRange(max(span.start, span.end - timedelta(days=89)), span.end), members


def notices(at: AppTest) -> list[str]:
    return [w.value.replace("\\", "") for w in at.warning if w.proto.title == NOTICE]


def kept_filter(at: AppTest) -> TraderFilter:
    return at.session_state[VIEW_KEY].trader_filter


def test_the_sidebar_filters_by_segment_names(broker, open_page):
    at = open_page()
    picker = at.multiselect(key="segment")
    assert picker.options == ["High rollers", "Newcomers"]  # by name, the archived one left out
    picker.set_value([HIGH]).run()
    assert not at.exception
    flt = kept_filter(at)
    assert flt.segments == (HIGH,) and flt.segments_as_of == REFRESHED
    assert "Segment: High rollers" in at.caption[0].value


def test_a_link_names_segments_and_a_bad_name_is_dropped_with_a_notice(broker, open_linked):
    at = open_linked("pages/overview.py", {"segment": ["Newcomers", "High rollers"]})
    assert not at.exception and not notices(at)
    assert set(kept_filter(at).segments) == {HIGH, NEW}

    at = open_linked("pages/overview.py", {"segment": ["High rollers", "Gone", "' OR 1=1 --"]})
    assert not at.exception
    shown = notices(at)
    assert len(shown) == 1 and "?segment=" in shown[0] and "Gone" in shown[0] and "High rollers" not in shown[0]
    assert kept_filter(at).segments == (HIGH,)
    assert at.query_params["segment"] in ("High rollers", ["High rollers"])


def test_overview_breaks_down_by_segment(broker, open_page):
    at = open_page()
    at.segmented_control(key="overview.breakdown").set_value("segment").run()
    assert not at.exception
    table = at.get_by_key("overview.breakdown_view.table").dataframe[0].value
    assert set(table["Segment"]) <= {"High rollers", "Newcomers", NO_SEGMENT}
    assert {"High rollers", "Newcomers"} <= set(table["Segment"])


def test_a_funnel_starts_with_entering_a_segment_and_breaks_down_by_segment(broker, open_page):
    url, rng, _ = broker
    at = open_page("pages/funnels.py")
    steps = at.multiselect(key="funnels.steps")
    assert "Entered segment: High rollers" in steps.options and "Entered segment: Gone" not in steps.options
    steps.set_value(["segment:High rollers", "trade"]).run()
    assert not at.exception
    expected = compute_funnel(database.get_engine(url), FunnelSpec(("segment:High rollers", "trade")), date_range=rng)
    metrics = {m.label.replace("\\", ""): m.value for m in at.metric}  # the Markdown escapes removed
    assert metrics["Entered · Entered segment: High rollers"] == f"{expected.steps['count'].iloc[0]:,}"
    assert expected.steps["count"].iloc[0] > 0

    at.segmented_control(key="funnels.breakdown_kind").set_value("segment").run()
    assert not at.exception
    table = at.get_by_key("funnels.table").dataframe[0].value
    assert len(table) == 2 * 2  # two steps for each of the two segments; everyone who entered is in one


def test_cohorts_compare_the_retention_of_segments(broker, open_page):
    at = open_page("pages/cohorts.py")
    at.multiselect(key="cohorts.segments").set_value([HIGH, NEW]).run()
    assert not at.exception
    table = at.get_by_key("cohorts.segment_curves.table").dataframe[0].value
    assert list(table["Traders"]) == ["All traders shown", "High rollers", "Newcomers"]


def test_lifecycle_shows_the_stages_of_each_segment(broker, open_page):
    url, _, members = broker
    at = open_page("pages/lifecycle.py")
    at.multiselect(key="lifecycle.segments").set_value([NEW]).run()
    assert not at.exception
    table = at.get_by_key("lifecycle.segment_stages.table").dataframe[0].value
    with database.get_engine(url).connect() as conn:
        real = set(conn.execute(sa.select(schema.traders.c.trader_id).where(schema.traders.c.is_test.is_(sa.false())))
                   .scalars())
    row = table.set_index("Traders").loc["Newcomers"]
    assert int(row.sum()) == len(members[NEW] & real)

