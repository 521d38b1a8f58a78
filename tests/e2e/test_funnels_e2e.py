"""The Funnels page in Debian's Chromium on the simulated demo broker (3,000 traders over a year)."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

ENTERED = "Entered · Registered"


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def settled(page: Page) -> None:
    """Until the rerun the last interaction started has finished."""
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def choose(page: Page, key: str, option: str) -> None:
    """Pick ``option`` in the selectbox with widget key ``key``."""
    page.locator(f".st-key-{key.replace('.', '-')} [data-testid='stSelectbox']").click()
    page.get_by_role("option", name=option, exact=True).click()


def count_of(text: str) -> int:
    return int(text.replace(",", ""))


def test_funnels_page_draws_the_funnel_and_follows_the_filters(page: Page, demo_app_url: str):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    page.goto(f"{demo_app_url}/funnels")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3)  # funnel, time to convert, trend
    expect(page.locator(".st-key-funnels-table [data-testid='stDataFrame']")).to_be_visible()
    timings["first_render_s"] = time.perf_counter() - t0
    expect(page.get_by_role("heading", name="Funnels & conversion")).to_be_visible()
    everyone = metric(page, ENTERED).inner_text()
    assert count_of(everyone) > 0

    # A sidebar filter narrows the funnel to one country.
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stMultiSelect").filter(has_text="Country").click()
    page.get_by_role("option", name="United Kingdom", exact=True).click()  # countries by name
    page.keyboard.press("Escape")
    expect(metric(page, ENTERED)).not_to_have_text(everyone)
    settled(page)
    britain = metric(page, ENTERED).inner_text()
    assert 0 < count_of(britain) < count_of(everyone)
    assert "country=United+Kingdom" in page.url.replace("%20", "+")

    # Page controls: a one-hour window (computed), then back to days (served from the cache).
    choose(page, "funnels.window_unit", "hours")
    settled(page)
    assert "funnels.window_unit=hours" in page.url  # bound widgets put their labels in the URL
    converted_in_hours = metric(page, "Overall conversion").inner_text()
    t1 = time.perf_counter()
    choose(page, "funnels.window_unit", "days")
    expect(metric(page, "Overall conversion")).not_to_have_text(converted_in_hours)
    timings["cached_interaction_s"] = time.perf_counter() - t1
    settled(page)
    expect(metric(page, ENTERED)).to_have_text(britain)

    # A shared link opens the same funnel (a new funnel for this server: computed, not cached).
    t2 = time.perf_counter()
    page.goto(f"{demo_app_url}/funnels?funnels.steps=Deposit+page+view&funnels.steps=Deposit"
              "&funnels.window_value=1&funnels.window_unit=hours")
    wait_for_app(page)
    expect(metric(page, "Entered · Deposit page view")).to_be_visible()
    expect(metric(page, "Completed · Deposit")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3)
    expect(page.locator(".st-key-funnels-table [data-testid='stDataFrame']")).to_be_visible()
    timings["uncached_render_s"] = time.perf_counter() - t2
    settled(page)

    t3 = time.perf_counter()
    page.goto(f"{demo_app_url}/funnels")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3)
    expect(page.locator(".st-key-funnels-table [data-testid='stDataFrame']")).to_be_visible()
    timings["cached_render_s"] = time.perf_counter() - t3
    settled(page)
    screenshot(page, "funnels.png")
    (ARTIFACTS / "funnels_timings.json").write_text(json.dumps(timings, indent=1))
    print("funnels page timings:", {k: round(v, 2) for k, v in timings.items()})
