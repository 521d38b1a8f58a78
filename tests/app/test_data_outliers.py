"""Outlier findings on the Data page's quality section, and the Overview's warning beside the
figures one trader decides (AppTest, in-process, on hand-made rows and a simulated broker)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from connectors import database
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig
from tests.analytics.test_data_health import OUTLIER_ROWS, WHALE, _weekly_deposits, insert

ROOT = Path(__file__).resolve().parents[2]


def fill(url: str, rows: dict[sa.Table, list[dict]]) -> None:
    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    insert(engine, rows)
    with engine.begin() as conn:
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()  # release the DuckDB file for the app under test


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    if page != "pages/overview.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, key: str) -> pd.DataFrame:
    return at.get_by_key(key).dataframe[0].value


def test_the_data_page_lists_traders_whose_positions_exceed_their_equity(db_url):
    fill(db_url, OUTLIER_ROWS)

    at = open_page("pages/data.py")

    assert any("2 traders opened positions larger than their equity and leverage allowed" in w.value
               for w in at.warning)
    shown = table(at, "data.volume_outliers")
    assert shown["Trader"].tolist() == ["T1", "T4"]
    assert shown["× equity"].tolist() == pytest.approx([5.0, 2.5])
    assert shown["Largest position"].tolist() == pytest.approx([500_000, 25_000])
    assert shown["Equity at most"].tolist() == pytest.approx([1_000, 100])


def test_the_data_page_names_the_trader_who_decides_a_week_and_the_overview_warns(db_url):
    fill(db_url, _weekly_deposits())

    at = open_page("pages/data.py")

    shown = table(at, "data.period_drivers")
    week = shown[(shown["Period"] == "Week of 12 Jan 2026") & (shown["Of the"] == "change")].iloc[0]
    assert (week["Figure"], week["Trader"]) == ("Net deposits", f"T{WHALE}")
    assert week["Share"] == pytest.approx(100) and week["Trader's part"] == pytest.approx(10_000)
    assert "Jan 2026" in shown["Period"].tolist()
    assert any("No trader opened a position larger" in c.value for c in at.caption)

    overview = open_page("pages/overview.py")  # the last 90 days: 9,000 of 15,500 USD from one trader
    notes = [w.value for w in overview.warning]
    assert any("**Net deposits**: one trader accounts for 58% of the period's total." in n for n in notes), notes
    assert not any(f"T{WHALE}" in n for n in notes)  # the Overview names nobody


def test_a_simulated_broker_shows_no_volume_outlier_and_no_overview_warning(seeded_broker, use_broker):
    use_broker(seeded_broker(SimulationConfig(traders=400, days=150, seed=5, end=date(2026, 11, 1))))

    at = open_page("pages/data.py")

    assert any("No trader opened a position larger" in c.value for c in at.caption)
    assert not any("opened positions larger" in w.value for w in at.warning)
    overview = open_page("pages/overview.py")
    assert not any("one trader accounts for" in w.value for w in overview.warning)
