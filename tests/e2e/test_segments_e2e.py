"""The Segments page in Debian's Chromium, end to end: a cluster of the studio saved as a segment, that
segment as the sidebar filter of the Funnels page, its members downloaded, and one member opened in
Trader 360. Its own simulated broker (1,500 traders over a year), so the segment it saves changes no
other browser test's data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote_plus

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import _serve, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

NAME = "E2E cluster <b>"  # markup in a name stays text
ENTERED = "Entered · Registered"
LOAD_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def segments_app_url(tmp_path_factory, chromium_path) -> Iterator[str]:
    from connectors import database
    from connectors.simulator import SimulationConfig, seed_database

    db_url = f"duckdb:///{tmp_path_factory.mktemp('e2e_segments') / 'traderlens.duckdb'}"
    engine = database.get_engine(db_url)
    seed_database(engine, SimulationConfig(traders=1_500, days=365, seed=11))
    engine.dispose()
    database.dispose_engines()  # DuckDB allows one process per file: the server's
    yield from _serve(db_url, "e2e_segments_server.log")


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def settled(page: Page) -> None:
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def count_of(text: str) -> int:
    return int(text.replace(",", ""))


def test_a_cluster_becomes_a_segment_that_filters_funnels_and_opens_a_member(page: Page, segments_app_url: str):
    # 1. The studio clusters the traders; its first cluster is saved as a segment.
    page.goto(f"{segments_app_url}/segments")
    wait_for_app(page)
    expect(metric(page, "Traders clustered")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    page.locator(".st-key-segments-studio-segment_name input").fill(NAME)
    page.get_by_role("button", name="Save cluster as segment").click()
    saved = page.get_by_test_id("stAlertContentSuccess").filter(has_text="with")
    expect(saved).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    message = saved.inner_text()
    assert NAME in message  # shown as text: no <b> element made of the name
    members = count_of(re.search(r"with ([\d,]+) members", message).group(1))
    assert members > 0
    screenshot(page, "segments_studio_saved.png")

    # 2. The Funnels page over all the data, then filtered by the segment from the sidebar's link.
    page.goto(f"{segments_app_url}/funnels?period=All+data")
    wait_for_app(page)
    everyone = count_of(metric(page, ENTERED).inner_text())
    page.goto(f"{segments_app_url}/funnels?period=All+data&segment={quote_plus(NAME)}")
    wait_for_app(page)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_test_id("stMultiSelect").filter(has_text="Segment")).to_contain_text(NAME)
    expect(metric(page, ENTERED)).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    filtered = count_of(metric(page, ENTERED).inner_text())
    # Every member traded, so registered: the funnel's entry is the segment's size.
    assert filtered == members < everyone
    screenshot(page, "segments_funnels_filtered.png")

    # 3. The saved segment's members as CSV; the first one opened in Trader 360.
    page.goto(f"{segments_app_url}/segments?segments.tab=Saved+segments&segments.saved={quote_plus(NAME)}")
    wait_for_app(page)
    expect(page.get_by_role("heading", name=NAME)).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(metric(page, "Members")).to_have_text(f"{members:,}")
    with page.expect_download() as download:
        page.locator(".st-key-segments-members").get_by_role("button", name="Download CSV").click()
    frame = pd.read_csv(download.value.path(), encoding="utf-8")
    assert len(frame) == members and frame.columns[0] == "trader_external_id"
    member = frame["trader_external_id"].iloc[0]

    page.goto(f"{segments_app_url}/trader?trader={quote_plus(member)}")
    wait_for_app(page)
    memberships = page.locator(".st-key-trader360-memberships")
    expect(memberships).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(memberships).to_contain_text(NAME)
    screenshot(page, "segments_member_trader360.png")


def test_the_rule_builder_counts_as_conditions_change(page: Page, segments_app_url: str):
    page.goto(f"{segments_app_url}/segments?segments.tab=Rule+builder")
    wait_for_app(page)
    expect(page.get_by_role("button", name="Add condition")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    page.locator(".st-key-segments-rule-c1-op-trader-country [data-testid='stSelectbox']").click()
    page.get_by_role("option", name="is not empty", exact=True).click()
    expect(metric(page, "Members now")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    everyone = count_of(metric(page, "Members now").inner_text())
    page.get_by_role("button", name="Add group").click()
    settled(page)
    group_field = page.locator("[class*='st-key-segments-rule-c'][class*='-field'] [data-testid='stSelectbox']").nth(1)
    group_field.click()
    page.get_by_role("option", name="Lifecycle · Lifecycle stage", exact=True).click()
    settled(page)
    value = page.locator("[class*='-value-lifecycle-stage-'] [data-testid='stSelectbox']")
    value.click()
    page.get_by_role("option", name="Active", exact=True).click()
    expect(metric(page, "Members now")).not_to_have_text(f"{everyone:,}")
    assert 0 < count_of(metric(page, "Members now").inner_text()) < everyone
    screenshot(page, "segments_rule_builder.png")
