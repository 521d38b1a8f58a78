"""The Overview's volume: notional (USD) is the headline, lots appear per asset class only (a crypto lot
is one coin, an FX lot 100,000 units: a sum of lots across classes measures nothing)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from analytics.events import compute_data_span
from analytics.kpis import compute_kpis, compute_volume_by_asset_class
from analytics.periods import DateRange
from components.kpi_tiles import format_value
from connectors import database
from connectors.simulator import SimulationConfig


@pytest.fixture
def broker_url(seeded_broker, use_broker) -> str:
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=150, seed=5, end=date(2026, 11, 1))))


def test_the_overview_heads_volume_in_notional_and_shows_lots_per_asset_class_only(broker_url, open_page):
    engine = database.get_engine(broker_url)
    try:
        span = compute_data_span(engine)
        rng = DateRange(span.end - timedelta(days=89), span.end)  # the sidebar's default "Last 90 days"
        notional = {k.key: k for k in compute_kpis(engine, date_range=rng)}["volume_usd"]
        classes = compute_volume_by_asset_class(engine, date_range=rng)
    finally:
        engine.dispose()
        database.dispose_engines()
    assert classes["asset_class"].nunique() >= 2  # lots of several classes, which must not be added

    at = open_page()

    tiles = {m.label: m for m in at.metric}
    assert tiles["Volume (notional)"].value == format_value(notional.value, "usd")
    assert "lots" in tiles["Volume (notional)"].help.lower()  # says why lots are not the headline
    assert not [label for label in tiles if "lot" in label.lower()]
    assert "volume_lots" not in at.selectbox(key="overview.metric").options
    # Lots per asset class, one row each and no total across classes.
    table = at.get_by_key("overview.assets.table").dataframe[0].value
    assert table["Asset class"].tolist() == classes["asset_class"].tolist()
    assert table["Lots"].tolist() == pytest.approx(classes["lots"].tolist())
    assert "Lots are per asset class" in " ".join(c.value for c in at.caption)
