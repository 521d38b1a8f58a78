"""The Lifecycle page in Debian's Chromium on the simulated demo broker (3,000 traders)."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

ACTIVE = "Active, last week"
# Timings are recorded, not asserted: on a busy shared machine a page load can take far longer than
# expect()'s 15 s, and that is no page failure.
LOAD_TIMEOUT_MS = 90_000


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def segment(page: Page, key: str, option: str) -> None:
    """Click ``option`` of the segmented control with widget key ``key``."""
    page.locator(f".st-key-{key.replace('.', '-')}").get_by_role("radio", name=option, exact=True).click()


def settled(page: Page) -> None:
    """Until the rerun the last interaction started has finished."""
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def test_lifecycle_page_draws_its_charts_and_follows_the_filters(page: Page, demo_app_url: str):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    page.goto(f"{demo_app_url}/lifecycle")
    wait_for_app(page)
    # The first visit also starts the server's Python session (imports, engine, migrations check).
    # Lifecycle bars, stages, flow matrix.
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3, timeout=LOAD_TIMEOUT_MS)
    timings["first_visit_s"] = time.perf_counter() - t0
    # A full render on a running server: another period, so every figure is computed afresh.
    t0 = time.perf_counter()
    page.goto(f"{demo_app_url}/lifecycle?period=Last+6+months")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3, timeout=LOAD_TIMEOUT_MS)
    expect(page.locator(".st-key-lifecycle-flows-table [data-testid='stDataFrame']")).to_be_visible()
    timings["full_render_s"] = time.perf_counter() - t0
    page.goto(f"{demo_app_url}/lifecycle")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3, timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Lifecycle", exact=True)).to_be_visible()
    # The lifecycle chart (the first) has drawn its bars: Vega's rect marks in its SVG.
    expect(page.get_by_test_id("stVegaLiteChart").first.locator("svg.marks .mark-rect path").first).to_be_attached()
    everyone = metric(page, ACTIVE).inner_text()
    assert int(everyone.replace(",", "")) > 0

    # A sidebar trader filter: one country holds fewer active traders than all of them.
    page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").filter(has_text="Country").click()
    page.get_by_role("option", name="Germany", exact=True).click()  # countries by name
    page.keyboard.press("Escape")
    expect(metric(page, ACTIVE)).not_to_have_text(everyone, timeout=LOAD_TIMEOUT_MS)
    settled(page)
    germany = metric(page, ACTIVE).inner_text()
    assert 0 < int(germany.replace(",", "")) < int(everyone.replace(",", ""))
    assert "country=Germany" in page.url.replace("%20", "+")

    # Page controls: monthly periods (computed), then weekly again (served from the cache).
    segment(page, "lifecycle.period", "Month")
    expect(page.get_by_test_id("stMetric").filter(has_text="Active, last month")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    assert "lifecycle.period=Month" in page.url  # bound params carry the option as shown
    settled(page)
    t1 = time.perf_counter()
    segment(page, "lifecycle.period", "Week")
    expect(page.get_by_test_id("stMetric").filter(has_text=ACTIVE)).to_be_visible()
    expect(metric(page, ACTIVE)).to_have_text(germany)
    timings["cached_interaction_s"] = time.perf_counter() - t1
    settled(page)

    page.reload()
    t2 = time.perf_counter()
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3, timeout=LOAD_TIMEOUT_MS)
    timings["cached_reload_s"] = time.perf_counter() - t2
    settled(page)
    expect(metric(page, ACTIVE)).to_have_text(germany)  # the URL kept the filter
    page.mouse.move(5, 5)  # no hover label in the screenshot
    page.set_viewport_size({"width": 1440, "height": 3300})  # the whole page: Streamlit scrolls inside
    settled(page)
    screenshot(page, "lifecycle.png")
    (ARTIFACTS / "lifecycle_timings.json").write_text(json.dumps(timings, indent=1))
    print("lifecycle page timings:", {k: round(v, 2) for k, v in timings.items()})
