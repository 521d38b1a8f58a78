"""A PostgreSQL outage while the app is open in Debian's Chromium: the server of the test's own is stopped
under an open page; every page then shows the one "Cannot reach the database" banner (a cached view
says its figures come from the cache), and the app recovers by itself when the server is back."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from connectors import database
from tests.e2e.conftest import _serve, screenshot, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BANNER = "Cannot reach the database"


@pytest.fixture(scope="module")
def outage_app_url(private_pg, chromium_path):
    yield from _serve(private_pg.url, "e2e_outage_server.log")


def test_stopping_the_database_under_an_open_page_shows_the_banner_and_recovers(page: Page, private_pg,
                                                                                  outage_app_url: str):
    page.goto(outage_app_url)
    wait_for_app(page)
    tiles = page.get_by_test_id("stMetric")
    expect(tiles.first).to_be_visible()
    expect(page.get_by_text(BANNER)).to_have_count(0)

    private_pg.stop()
    try:
        # A page never opened since the start of the outage: nothing of it can be shown.
        page.get_by_test_id("stSidebarNav").get_by_text("Lifecycle", exact=True).click()
        expect(page.get_by_text(BANNER)).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_text("This app has encountered an error")).to_have_count(0)
        screenshot(page, "outage_lifecycle.png")

        # Back on the Overview, which the cache still holds: the banner says so, the tiles stay.
        page.get_by_test_id("stSidebarNav").get_by_text("Overview", exact=True).click()
        expect(page.get_by_text("come from the cache")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(BANNER)).to_have_count(1)
        expect(tiles.first).to_be_visible()
        screenshot(page, "outage_overview_cached.png")
    finally:
        private_pg.start()
    private_pg.wait_ready()
    time.sleep(database._BREAKER_S + 1)  # reads fail at once for a few seconds after an outage

    page.reload()
    wait_for_app(page)
    expect(tiles.first).to_be_visible()
    expect(page.get_by_text(BANNER)).to_have_count(0)
