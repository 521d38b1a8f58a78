"""The Cohorts & retention page in Debian's Chromium on the simulated demo broker (3,000 traders)."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def choose(page: Page, label: str, option: str, *, sidebar: bool = False) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    scope = page.get_by_test_id("stSidebar") if sidebar else page.get_by_test_id("stMain")
    scope.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def settled(page: Page) -> None:
    """Until the rerun the last interaction started has finished."""
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def test_cohorts_page_draws_the_matrix_and_follows_the_filters(page: Page, demo_app_url: str):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    page.goto(f"{demo_app_url}/cohorts")
    wait_for_app(page)
    # The first visit also loads the Vega-Lite renderer and runs every query: allow a busy CI machine its time.
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4, timeout=60_000)  # heatmap, curves, LTV, engagement
    expect(page.get_by_text("Early sessions and later retention")).to_be_visible()
    timings["first_render_s"] = time.perf_counter() - t0
    expect(page.get_by_role("heading", name="Cohorts & retention")).to_be_visible()
    expect(page.locator(".st-key-cohorts-table [data-testid='stDataFrame']")).to_be_visible()
    cohort_total = metric(page, "Traders in cohorts").inner_text()
    assert int(cohort_total.replace(",", "")) > 0

    # A sidebar filter changes the view: twelve months hold more FTD cohorts than ninety days.
    choose(page, "Period", "Last 12 months", sidebar=True)
    expect(metric(page, "Traders in cohorts")).not_to_have_text(cohort_total)
    settled(page)
    year_total = metric(page, "Traders in cohorts").inner_text()
    assert int(year_total.replace(",", "")) > int(cohort_total.replace(",", ""))
    assert "period=Last+12+months" in page.url or "period=Last%2012%20months" in page.url

    # Page controls: monthly cohorts (computed), then back to weekly (served from the cache).
    choose(page, "Cohort period", "Month")
    expect(page.get_by_test_id("stMetric").filter(has_text="Back in month 1")).to_be_visible()
    settled(page)
    t1 = time.perf_counter()
    choose(page, "Cohort period", "Week")
    expect(page.get_by_test_id("stMetric").filter(has_text="Back in week 1")).to_be_visible()
    timings["cached_interaction_s"] = time.perf_counter() - t1
    settled(page)
    expect(metric(page, "Traders in cohorts")).to_have_text(year_total)

    page.reload()
    t2 = time.perf_counter()
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)
    timings["cached_reload_s"] = time.perf_counter() - t2
    settled(page)
    expect(metric(page, "Traders in cohorts")).to_have_text(year_total)  # the URL kept the view
    screenshot(page, "cohorts.png")
    (ARTIFACTS / "cohorts_timings.json").write_text(json.dumps(timings, indent=1))
    print("cohorts page timings:", {k: round(v, 2) for k, v in timings.items()})
