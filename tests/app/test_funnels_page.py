"""The Funnels page through the app entrypoint, in-process with AppTest, on a small simulated broker."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.events import compute_data_span
from analytics.filters import TraderFilter
from analytics.funnels import FunnelSpec, compute_dropoffs, compute_funnel
from analytics.periods import DateRange
from components.labels import channel_name
from connectors import database
from connectors.simulator import SimulationConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STEPS = ("registered", "kyc_submitted", "kyc_approved", "ftd", "trade")


@pytest.fixture
def broker(seeded_broker, use_broker) -> DateRange:
    """The simulated broker (500 traders over 120 days ending 1 Mar 2026) as the app's database; returns
    the sidebar's default range (last 90 days)."""
    url = use_broker(seeded_broker(SimulationConfig(traders=500, days=120, seed=5, end=date(2026, 3, 1))))
    span = compute_data_span(database.get_engine(url))
    assert span is not None
    return DateRange(max(span.start, span.end - timedelta(days=89)), span.end)


def shown_counts(at: AppTest) -> list[int]:
    return at.get_by_key("funnels.table").dataframe[0].value["Traders"].tolist()


def expected(db_url: str, rng: DateRange, spec: FunnelSpec) -> list[int]:
    result = compute_funnel(database.get_engine(db_url), spec, date_range=rng, trader_filter=TraderFilter())
    return result.steps["count"].tolist()


def test_page_shows_the_default_funnel_with_the_analytics_numbers(db_url, broker, open_page):
    at = open_page("pages/funnels.py")

    assert at.title[0].value == "Funnels & conversion"
    counts = expected(db_url, broker, FunnelSpec(DEFAULT_STEPS))
    assert counts[0] > 0 and counts[-1] > 0
    assert shown_counts(at) == counts
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Entered · Registered"] == f"{counts[0]:,}"
    assert metrics["Completed · Trade"] == f"{counts[-1]:,}"
    assert metrics["Overall conversion"] == f"{counts[-1] / counts[0]:.1%}"
    assert len(at.get("vega_lite_chart")) == 3  # funnel, time to convert, trend
    assert not at.warning


def test_changing_the_window_and_the_order_updates_the_numbers(db_url, broker, open_page):
    at = open_page("pages/funnels.py")

    at.number_input(key="funnels.window_value").set_value(1).run()
    at.selectbox(key="funnels.window_unit").select("hour").run()
    one_hour = expected(db_url, broker, FunnelSpec(DEFAULT_STEPS, window_s=3600))
    assert shown_counts(at) == one_hour

    at.segmented_control(key="funnels.order").set_value("strict").run()
    strict = expected(db_url, broker, FunnelSpec(DEFAULT_STEPS, window_s=3600, order="strict"))
    assert shown_counts(at) == strict
    assert strict != expected(db_url, broker, FunnelSpec(DEFAULT_STEPS, window_s=14 * 86_400))
    assert not at.exception


def test_picked_steps_and_drop_offs_match_the_analytics(db_url, broker, open_page):
    at = open_page("pages/funnels.py")

    at.multiselect(key="funnels.steps").set_value(["deposit_page_view", "deposit"]).run()
    at.number_input(key="funnels.window_value").set_value(1).run()
    at.selectbox(key="funnels.window_unit").select("hour").run()

    spec = FunnelSpec(("deposit_page_view", "deposit"), window_s=3600)
    assert shown_counts(at) == expected(db_url, broker, spec)
    dropped = compute_dropoffs(database.get_engine(db_url), spec, step=1, date_range=broker,
                               trader_filter=TraderFilter()).dropped  # the page lists the dropped first
    table = at.get_by_key("funnels.dropoffs").dataframe[0].value
    assert table["Trader id"].tolist() == dropped["trader_id"].head(200).tolist()
    assert at.get_by_key("funnels.dropoffs.download") is not None


def test_a_breakdown_shows_one_block_per_value(db_url, broker, open_page):
    at = open_page("pages/funnels.py")
    at.multiselect(key="funnels.steps").set_value(["registered", "ftd"]).run()

    at.segmented_control(key="funnels.breakdown_kind").set_value("trader").run()
    at.selectbox(key="funnels.breakdown").select("acquisition_channel").run()

    table = at.get_by_key("funnels.table").dataframe[0].value
    result = compute_funnel(database.get_engine(db_url), FunnelSpec(("registered", "ftd"),
                                                                     breakdown="acquisition_channel"),
                            date_range=broker, trader_filter=TraderFilter())
    assert table["Breakdown"].tolist() == [channel_name(v) for v in result.steps["breakdown_value"]]  # "Paid search"
    assert table["Traders"].tolist() == result.steps["count"].tolist()


def test_an_invalid_exclusion_is_one_plain_warning(db_url, broker, open_page):
    at = open_page("pages/funnels.py")

    at.selectbox(key="funnels.exclude").select("login").run()
    at.selectbox(key="funnels.exclude_from").select(3).run()
    at.selectbox(key="funnels.exclude_to").select(2).run()

    assert not at.exception
    assert len(at.warning) == 1
    assert "earlier step to a later one" in at.warning[0].value


def test_fewer_than_two_steps_is_a_helpful_empty_state(db_url, broker, open_page):
    at = open_page("pages/funnels.py")

    at.multiselect(key="funnels.steps").set_value(["registered"]).run()

    assert not at.exception
    assert any("at least two steps" in info.value for info in at.info)
    assert not at.get("vega_lite_chart")


def test_nobody_in_the_funnel_is_a_helpful_empty_state(db_url, broker, open_page):
    first_day = compute_data_span(database.get_engine(db_url)).start  # only leads exist on day one
    # The sidebar's period comes from the URL (the frame's widgets keep it across the page switch).
    at = open_page("pages/funnels.py", period="Custom", **{"from": first_day.isoformat(), "to": first_day.isoformat()})
    at.multiselect(key="funnels.steps").set_value(["trade", "withdrawal"]).run()

    assert not at.exception
    assert any("No trader did “Trade”" in info.value for info in at.info)
    assert not at.get("vega_lite_chart")


def test_an_empty_database_says_how_to_get_data(db_url, open_page):
    at = open_page("pages/funnels.py")

    assert not at.exception
    assert any("No events yet" in info.value for info in at.info)
    assert not at.get("vega_lite_chart")


def test_page_also_runs_on_its_own_without_the_frame(db_url, broker):
    # Smoke tests (streamlit-app-action) run every pages/*.py as its own app.
    at = AppTest.from_file(str(ROOT / "pages" / "funnels.py"), default_timeout=60).run()

    assert not at.exception, at.exception
    assert at.title[0].value == "Funnels & conversion"
    # Without the frame the view is the last 90 days up to today, after this broker's data ends.
    assert any("No trader did" in info.value for info in at.info)
