"""The Overview (the app's default page) in Debian's Chromium on the simulated demo broker (3,000 traders)."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def metric(page: Page, label: str):
    """The value of the tile whose label is exactly ``label`` ("Deposits", not "Net deposits")."""
    label_el = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_el).get_by_test_id("stMetricValue")


def choose(page: Page, label: str, option: str, *, sidebar: bool = False) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    scope = page.get_by_test_id("stSidebar") if sidebar else page.get_by_test_id("stMain")
    scope.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def segment(page: Page, key: str, option: str) -> None:
    """Click ``option`` of the segmented control with widget key ``key``."""
    page.locator(f".st-key-{key.replace('.', '-')}").get_by_role("radio", name=option, exact=True).click()


def settled(page: Page) -> None:
    """Until the rerun the last interaction started has finished."""
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def test_overview_shows_kpis_and_follows_the_filters(page: Page, demo_app_url: str):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    page.goto(f"{demo_app_url}/")
    wait_for_app(page)
    # The first visit also loads the Vega-Lite renderer and runs every query: allow a busy machine its time.
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=60_000)  # trend, breakdown, 2 asset
    timings["first_render_s"] = time.perf_counter() - t0
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    values = page.get_by_test_id("stMetricValue")
    assert values.count() >= 22
    deposits = metric(page, "Deposits").inner_text()
    assert deposits.startswith("$") and deposits != "$0"
    expect(page.locator(".st-key-overview-breakdown_view-table [data-testid='stDataFrame']")).to_be_visible()
    settled(page)
    screenshot(page, "overview.png")  # the default view: last 90 days against the 90 before

    # A sidebar filter changes the tiles: one country deposits less than every country.
    page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").filter(has_text="Country").click()
    page.get_by_role("option", name="Germany", exact=True).click()  # countries by name
    page.keyboard.press("Escape")
    expect(metric(page, "Deposits")).not_to_have_text(deposits)
    settled(page)
    assert "country=Germany" in page.url.replace("%20", "+")
    germany = metric(page, "Registrations").inner_text()

    # Page controls: the breakdown by platform (computed), then by country again (from the cache).
    segment(page, "overview.breakdown", "Platform")
    expect(page.locator(".st-key-overview-breakdown_view-table [role='columnheader']").first).to_contain_text(
        "Platform")
    settled(page)
    t1 = time.perf_counter()
    segment(page, "overview.breakdown", "Country")
    expect(page.locator(".st-key-overview-breakdown_view-table [role='columnheader']").first).to_contain_text(
        "Country")
    settled(page)
    timings["cached_interaction_s"] = time.perf_counter() - t1

    # A full render with warm caches, as a colleague opening the same link sees it.
    t2 = time.perf_counter()
    page.reload()
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=60_000)
    expect(metric(page, "Registrations")).to_have_text(germany)  # the URL kept the view
    timings["cached_reload_s"] = time.perf_counter() - t2

    # Back to every trader on the last 12 months: a view the server has not computed yet.
    t3 = time.perf_counter()
    page.goto(f"{demo_app_url}/?period=Last+12+months")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=60_000)
    expect(metric(page, "Deposits")).not_to_have_text(deposits)
    timings["uncached_render_s"] = time.perf_counter() - t3
    settled(page)
    (ARTIFACTS / "overview_timings.json").write_text(json.dumps(timings, indent=1))
    print("overview page timings:", {k: round(v, 2) for k, v in timings.items()})
