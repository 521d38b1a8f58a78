"""The Overview page (the app's default page) in-process with AppTest, on a small simulated broker."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.events import compute_data_span
from analytics.filters import TraderFilter
from analytics.kpis import NOTES, Kpi, compute_breakdown, compute_kpis
from analytics.periods import DateRange
from components.kpi_tiles import format_delta, format_value
from connectors import database
from connectors.rollups import refresh_rollups
from connectors.schema import sessions, traders
from connectors.simulator import SimulationConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker_url(seeded_broker, use_broker) -> str:
    """The app's database: a copy of the simulated broker (400 traders over 150 days, ending 1 Nov 2026)."""
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=150, seed=5, end=date(2026, 11, 1))))


def default_view(url: str) -> DateRange:
    """The sidebar's default "Last 90 days", which ends on the newest day with data."""
    engine = database.get_engine(url)
    try:
        span = compute_data_span(engine)
    finally:
        engine.dispose()
        database.dispose_engines()
    return DateRange(span.end - timedelta(days=89), span.end)


def expected_tiles(url: str, rng: DateRange, flt: TraderFilter | None = None) -> dict[str, str]:
    engine = database.get_engine(url)
    try:
        kpis = compute_kpis(engine, date_range=rng, trader_filter=flt or TraderFilter())
        lines = {key for keys in NOTES.values() for key in keys}  # shown under a tile, not as tiles
        return {k.label: format_value(k.value, k.unit) for k in kpis if k.key not in lines}
    finally:
        engine.dispose()
        database.dispose_engines()


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def chart_spec(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("vega_lite_chart")[index].proto.spec)


def trend_marks(at: AppTest) -> list[str]:
    """Mark types of the trend's layers: the current series first, then the previous period's."""
    return [layer["mark"]["type"] for layer in chart_spec(at)["layer"]]


def trend_series(at: AppTest) -> list[str]:
    return chart_spec(at)["layer"][0]["encoding"]["color"]["scale"]["domain"]


def test_overview_is_the_default_page_and_its_tiles_equal_compute_kpis(broker_url, open_page):
    at = open_page()

    assert at.title[0].value == "Overview"
    assert not at.error
    assert tiles(at) == expected_tiles(broker_url, default_view(broker_url))
    assert len(at.metric) >= 22
    # Each tile explains itself on hover and names the comparison period.
    registrations = next(m for m in at.metric if m.label == "Registrations")
    assert "Previous period" in registrations.help and "registered in the period" in registrations.help
    assert [s.value for s in at.subheader] == ["Trends", "Breakdown", "Volume by asset class"]


def test_a_sidebar_filter_changes_the_tiles(broker_url, open_page):
    at = open_page()
    country = "DE"

    at.multiselect(key="country").select(country).run()

    assert not at.exception, at.exception
    expected = expected_tiles(broker_url, default_view(broker_url), TraderFilter(countries=(country,)))
    assert tiles(at) == expected
    assert "Country: Germany" in at.caption[0].value  # by name (components/labels.py)


def test_breakdown_controls_switch_dimension_and_ranking(broker_url, open_page):
    at = open_page()
    table = at.get_by_key("overview.breakdown_view.table").dataframe[0].value
    assert table.columns[0] == "Country"

    at.segmented_control(key="overview.breakdown").set_value("platform").run()
    at.selectbox(key="overview.rank").select("registrations").run()

    assert not at.exception, at.exception
    table = at.get_by_key("overview.breakdown_view.table").dataframe[0].value
    engine = database.get_engine(broker_url)
    try:
        expected = compute_breakdown(engine, dimension="platform", date_range=default_view(broker_url),
                                     rank_by="registrations")
    finally:
        engine.dispose()
    assert table.columns[0] == "Platform"
    assert table["Platform"].tolist() == expected["value"].tolist()
    assert table["Registrations"].tolist() == expected["registrations"].tolist()


def test_controls_start_from_the_url_so_a_view_can_be_shared(broker_url):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    # Bound widgets keep their shown labels in the URL.
    at.query_params.update({"overview.breakdown": "Affiliate (IB)", "overview.metric": "Deposits",
                            "overview.period": "Monthly"})
    at.run()

    assert not at.exception, at.exception
    assert at.get_by_key("overview.breakdown_view.table").dataframe[0].value.columns[0] == "Affiliate (IB)"
    assert at.selectbox(key="overview.metric").value == "deposits"
    assert at.segmented_control(key="overview.period").value == "month"


def test_trend_controls_redraw_the_chart(broker_url, open_page):
    at = open_page()
    assert trend_marks(at) == ["bar", "line"]  # registrations, and the previous period dotted
    assert trend_series(at) == ["Registrations", "Previous period"]
    # Dates are UTC days: a UTC time axis with ticks on the weeks' Mondays, and the period named as
    # text in the tooltip (a temporal tooltip would print the browser's zone).
    x = chart_spec(at)["layer"][0]["encoding"]["x"]
    ticks = [date(v["year"], v["month"], v["date"]) for v in x["axis"]["values"]]
    assert x["scale"]["type"] == "utc" and ticks and {t.weekday() for t in ticks} == {0}
    period_tip = chart_spec(at)["layer"][0]["encoding"]["tooltip"][0]
    assert period_tip["type"] == "nominal" and period_tip["title"] == "Period"

    at.selectbox(key="overview.metric").select("net_deposits").run()
    at.segmented_control(key="overview.period").set_value("month").run()
    at.toggle(key="overview.compare").set_value(False).run()

    assert not at.exception, at.exception
    assert trend_marks(at) == ["bar"]
    assert trend_series(at) == ["Net deposits"]  # no legend entry for a line that is not drawn
    at.selectbox(key="overview.metric").select("active_traders").run()
    assert trend_marks(at) == ["line"]  # a level is drawn as a line


def test_without_earlier_data_nothing_is_compared(broker_url, open_page):
    at = open_page()

    at.selectbox(key="period").select("All data").run()  # the previous period lies before the data

    assert not at.exception, at.exception
    assert {m.delta for m in at.metric} == {"no comparison"}
    assert "no previous period to compare with" in at.caption[0].value
    assert trend_marks(at) == ["bar"]  # no flat "previous" line at zero
    assert any("No comparison: the data begins on" in c.value for c in at.caption)


def test_an_empty_database_shows_how_to_get_data(db_url, open_page):
    at = open_page()

    assert at.title[0].value == "Overview"
    assert any("The database is empty" in (i.proto.title or "") or "cli.py seed" in i.value for i in at.info)
    assert not at.metric
    assert not at.get("vega_lite_chart")


def test_a_view_without_any_activity_shows_an_empty_state(db_url, open_page):
    # One old trader whose only recent trace is a login: nothing for any KPI to count.
    engine = database.get_engine(db_url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(traders.insert(), [{"trader_id": 1, "external_id": "T1", "registered_at": datetime(2024, 1, 1)}])
        conn.execute(sessions.insert(), [{"session_id": 1, "external_id": "S1", "trader_id": 1,
                                          "started_at": datetime(2026, 10, 1), "duration_s": 60, "surface": "web"}])
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()

    at = open_page()

    assert any("Widen the period" in i.value for i in at.info)
    assert not at.metric


def test_page_also_runs_on_its_own_without_the_frame(broker_url):
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60).run()

    assert not at.exception, at.exception


@pytest.mark.parametrize("value, unit, shown", [
    (561_003.2, "usd", "$561 K"), (-561_003.2, "usd", "-$561 K"), (1_574_000, "usd", "$1.57 M"),
    (2.04e9, "usd", "$2.04 B"), (1_691.15, "usd", "$1,691"), (12_345, "count", "12.3 K"), (67.17, "count", "67.2"),
    (0.2034, "pct", "20.3%"), (20, "hours", "20.0 h"), (53.2, "hours", "2.2 d"), (None, "usd", "—"),
])
def test_tile_values_are_compact_enough_for_a_tile(value, unit, shown):
    assert format_value(value, unit) == shown


@pytest.mark.parametrize("value, previous, unit, delta", [
    (110, 100, "count", "+10.0%"), (90, 100, "usd", "-10.0%"), (0.25, 0.2, "pct", "+5.0 pp"),
    (8_822, -372, "usd", "+$9,194"),  # across zero: the difference, not "+2,469%"
    (100, 100, "count", 0), (5, None, "count", None), (None, 0.3, "pct", None),
])
def test_tile_deltas(value, previous, unit, delta):
    kpi = Kpi("k", "K", value, previous, unit, "definition")
    assert format_delta(kpi) == delta
