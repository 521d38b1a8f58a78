"""The Cohorts & retention page through the app entrypoint, in-process with AppTest, on a small
simulated broker in a tmp DuckDB file."""

from __future__ import annotations

import math
import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analytics.cohorts import RetentionSpec, compute_engagement_retention, compute_retention
from analytics.events import compute_data_span
from connectors import database
from connectors.schema import portal_events
from connectors.simulator import SimulationConfig


@pytest.fixture(scope="module")
def seeded_file(seeded_broker, tmp_path_factory) -> Path:
    """A simulated broker (400 traders over 240 days ending today) plus one portal event long before
    the default 90-day view, built once and copied per test."""
    path = tmp_path_factory.mktemp("cohorts_app") / "seed.duckdb"
    shutil.copyfile(seeded_broker(SimulationConfig(traders=400, days=240, seed=5)), path)
    engine = database.get_engine(f"duckdb:///{path}")
    span = compute_data_span(engine)
    with engine.begin() as conn:
        conn.execute(portal_events.insert(), [{
            "portal_event_id": 10**9, "external_id": "old-promo", "trader_id": 1, "event": "old_promo",
            "occurred_at": pd.Timestamp(span.start).to_pydatetime() + timedelta(hours=1)}])
    engine.dispose()
    database.dispose_engines()
    return path


@pytest.fixture
def db_url(use_broker, seeded_file) -> str:
    return use_broker(seeded_file)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def expected(db_url: str, spec: RetentionSpec):
    """compute_retention for the page's default view: the last 90 days of data, everyone but test accounts."""
    engine = database.get_engine(db_url)
    span = compute_data_span(engine)
    start = max(span.start, span.end - timedelta(days=89))
    return compute_retention(engine, spec, date_from=start, date_to=span.end)


def test_page_shows_the_ftd_to_trade_matrix_of_the_global_view(db_url, open_page):
    want = expected(db_url, RetentionSpec("ftd", "trade"))

    at = open_page("pages/cohorts.py")

    assert at.title[0].value == "Cohorts & retention"
    assert at.selectbox(key="cohorts.start").value == "ftd"
    assert at.selectbox(key="cohorts.return").value == "trade"
    got = metrics(at)
    assert got["Traders in cohorts"] == f"{int(want.counts['size'].sum()):,}"
    assert got["Back in week 1"] == f"{want.average().loc[1, 'rate']:.1%}"
    table = at.get_by_key("cohorts.table").dataframe[0].value
    assert table["Traders"].tolist() == want.counts["size"].tolist()
    assert len(at.get("vega_lite_chart")) == 4  # heatmap, curves, LTV, engagement bars
    engagement = compute_engagement_retention(database.get_engine(db_url), date_to=compute_data_span(
        database.get_engine(db_url)).end)
    assert metrics(at)["Retention, 10+ vs under 10 sessions"] == f"{engagement.rr:.2f}×"
    assert not at.error


def test_changing_the_controls_recomputes_the_matrix(db_url, open_page):
    at = open_page("pages/cohorts.py")
    before = metrics(at)["Traders in cohorts"]

    at.selectbox(key="cohorts.start").select("registered").run()
    assert not at.exception, at.exception
    want = expected(db_url, RetentionSpec("registered", "trade"))
    assert metrics(at)["Traders in cohorts"] == f"{int(want.counts['size'].sum()):,}" != before

    at.selectbox(key="cohorts.period").select("month").run()
    at.toggle(key="cohorts.cumulative").set_value(True).run()
    want = expected(db_url, RetentionSpec("registered", "trade", period="month", cumulative=True))
    table = at.get_by_key("cohorts.table").dataframe[0].value
    assert list(table.columns[:4]) == ["Cohort", "Traders", "Month 0", "Month 1"]
    assert table["Traders"].tolist() == want.counts["size"].tolist()
    # Cumulative rows count up to the current month, which is not over: unfinished, so no average.
    assert math.isnan(want.average().loc[1, "rate"]) and metrics(at)["Back in month 1"] == "—"
    at.toggle(key="cohorts.unfinished").set_value(True).run()
    assert metrics(at)["Back in month 1"] == f"{want.average(include_unfinished=True).loc[1, 'rate']:.1%}"

    at.segmented_control(key="cohorts.show").set_value("counts").run()
    table = at.get_by_key("cohorts.table").dataframe[0].value
    observed = want.observed()[1]
    shown = table.loc[observed, "Month 1"].str.replace(",", "").str.rstrip("*").astype(int)
    assert shown.tolist() == want.counts.loc[observed, 1].tolist()
    assert (table.loc[~observed, "Month 1"] == "").all()  # after the range: blank, not 0


def test_an_event_nobody_did_in_range_shows_an_empty_state(db_url, open_page):
    at = open_page("pages/cohorts.py")
    at.selectbox(key="cohorts.start").select("old_promo").run()

    assert not at.exception, at.exception
    assert any("No trader did" in info.value for info in at.info)
    assert "Traders in cohorts" not in metrics(at)


def test_an_empty_database_shows_how_to_get_data(tmp_path, monkeypatch, open_page):
    monkeypatch.setenv("TRADERLENS_DB_URL", f"duckdb:///{tmp_path / 'empty.duckdb'}")

    at = open_page("pages/cohorts.py")

    assert any("No events yet" in info.value for info in at.info)
    assert not at.metric and not at.error
