"""The Lifecycle page through the app entrypoint, in-process with AppTest, on a small simulated
broker in a tmp DuckDB file."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics.events import compute_data_span
from analytics.lifecycle import compute_lifecycle, compute_stage_distribution
from connectors import database
from connectors.schema import traders
from connectors.simulator import SimulationConfig


@pytest.fixture
def db_url(seeded_broker, use_broker) -> str:
    """A simulated broker (400 traders over 200 days ending today) as the app's database."""
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=200, seed=5)))


def table(at: AppTest, key: str) -> pd.DataFrame:
    return at.get_by_key(key).dataframe[0].value


def default_range(db_url: str):
    """The page's default view: the last 90 days of data."""
    span = compute_data_span(database.get_engine(db_url))
    return max(span.start, span.end - timedelta(days=89)), span.end


def test_page_shows_the_weekly_trade_lifecycle_of_the_global_view(db_url, open_page):
    at = open_page("pages/lifecycle.py")

    assert at.title[0].value == "Lifecycle"
    start, end = default_range(db_url)
    expected = compute_lifecycle(database.get_engine(db_url), date_from=start, date_to=end)
    shown = table(at, "lifecycle.table")
    assert shown["New"].tolist() == expected["new"].tolist()
    assert shown["Dormant"].tolist() == expected["dormant"].tolist()
    assert shown["Period"].iloc[0].startswith("Week of")
    assert shown["New"].sum() > 0 and shown["Returning"].sum() > 0
    assert len(at.get("vega_lite_chart")) == 3  # lifecycle bars, stages, flow matrix
    # The time axis is in UTC, with a tick on each period's start (a Monday), not Vega's Sundays.
    x = json.loads(at.get("vega_lite_chart")[0].proto.spec)["layer"][0]["encoding"]["x"]
    ticks = [date(v["year"], v["month"], v["date"]) for v in x["axis"]["values"]]
    assert x["scale"]["type"] == "utc" and all(v["utc"] for v in x["axis"]["values"])
    assert ticks == [pd.Timestamp(p).date() for p in expected["period_start"]]
    assert {t.weekday() for t in ticks} == {0}
    labels = [m.label for m in at.metric]
    assert labels[:2] == ["Active, last week", "New, last week"] and "Quick ratio" in labels


def test_stage_distribution_and_flows_match_the_analytics(db_url, open_page):
    at = open_page("pages/lifecycle.py")

    _, end = default_range(db_url)
    stages = compute_stage_distribution(database.get_engine(db_url), as_of=end)
    flows = table(at, "lifecycle.flows.table")
    into = flows.groupby("To")["Traders"].sum()
    assert into.sum() == stages["traders"].sum()
    assert into["Active"] == stages.set_index("stage").loc["active", "traders"]
    assert any(f"Stages on {end:%d %b %Y}" == h.value for h in at.subheader)


def test_controls_change_the_numbers(db_url, open_page):
    at = open_page("pages/lifecycle.py")
    weekly = table(at, "lifecycle.table")

    at.segmented_control(key="lifecycle.period").set_value("month").run()
    monthly = table(at, "lifecycle.table")
    assert not at.exception
    assert 3 <= len(monthly) <= 4 < len(weekly)

    at.segmented_control(key="lifecycle.basis").set_value("registration").run()
    by_registration = table(at, "lifecycle.table")
    # Registered before their first trade: resurrecting rather than new.
    assert by_registration["New"].sum() < monthly["New"].sum()
    assert by_registration["Resurrecting"].sum() > monthly["Resurrecting"].sum()

    before = table(at, "lifecycle.flows.table")["Traders"].sum()
    at.segmented_control(key="lifecycle.churn_days").set_value(90).run()
    churned = table(at, "lifecycle.flows.table").groupby("To")["Traders"].sum()
    assert not at.exception and churned.sum() == before
    at.toggle(key="lifecycle.changes_only").set_value(True).run()
    moved = table(at, "lifecycle.flows.table")
    assert len(moved) and (moved["From"] != moved["To"]).all()
    at.selectbox(key="lifecycle.event").set_value("login").run()
    assert not at.exception and table(at, "lifecycle.table")["New"].sum() > 0


def test_an_empty_database_shows_how_to_get_data(tmp_path, monkeypatch, open_page):
    monkeypatch.setenv("TRADERLENS_DB_URL", f"duckdb:///{tmp_path / 'empty.duckdb'}")

    at = open_page("pages/lifecycle.py")

    assert any("No events yet" in info.value for info in at.info)
    assert not at.get("vega_lite_chart")


def test_filters_that_keep_no_trader_show_empty_states(db_url, open_page):
    engine = database.get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.update(traders).values(is_test=True))  # the default view leaves test accounts out
    engine.dispose()
    database.dispose_engines()

    at = open_page("pages/lifecycle.py")

    infos = " ".join(info.value for info in at.info)
    assert "No trader was active" in infos and "No trader had been captured" in infos
    assert not at.get("vega_lite_chart") and not at.exception
