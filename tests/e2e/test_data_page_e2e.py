"""The Data page in Debian's Chromium against a real server: load, quality panel, file import."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.app import sample_data
from tests.e2e.conftest import screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def metric_value(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def cell(page: Page, table_key: str, text: str):
    """A cell of a keyed table: st.dataframe draws on a canvas but mirrors cells in an a11y grid."""
    return page.locator(f".st-key-{table_key} [role='gridcell']").filter(has_text=text)


def test_data_page_shows_what_is_loaded(page: Page, app_url: str):
    page.goto(f"{app_url}/data")  # the Overview is the default page
    wait_for_app(page)

    expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible()
    expect(metric_value(page, "Traders")).to_have_text(str(sample_data.TRADERS))
    expect(metric_value(page, "Trades")).to_have_text(str(sample_data.TRADES))
    expect(cell(page, "data-summary", "Transactions")).to_have_count(1)
    expect(page.get_by_test_id("stSidebar")).to_contain_text("DuckDB")  # the connected database
    screenshot(page, "data_page.png")


def test_quality_panel_flags_the_planted_trade(page: Page, app_url: str):
    page.goto(f"{app_url}/data")  # the Overview is the default page
    wait_for_app(page)

    expect(page.get_by_text("1 error")).to_be_visible()  # the severity badge
    expect(cell(page, "data-checks", "Closed before opened")).to_have_count(1)
    page.get_by_text("Checks that passed (23)").click()
    expect(page.locator(".st-key-data-checks-passed [data-testid='stDataFrame']")).to_be_visible()
    expect(cell(page, "data-checks-passed", "Orphan rows")).to_have_count(8)  # 6 trader_id + 2 account_id
    screenshot(page, "data_quality.png")


def test_uploading_a_csv_imports_it(page: Page, app_url: str):
    page.goto(f"{app_url}/data")  # the Overview is the default page
    wait_for_app(page)
    before = int(metric_value(page, "Traders").inner_text())
    csv = (b"external_id,registered_at,country,email\n"
           b"E2E-1,2026-11-20T10:00:00,DE,e2e1@example.com\n"
           b"E2E-2,2026-11-21T11:00:00,CY,e2e2@example.com\n")

    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "e2e_traders.csv", "mimeType": "text/csv", "buffer": csv}])
    expect(page.get_by_text("Read as Traders")).to_be_visible()
    screenshot(page, "data_import_preview.png")
    page.get_by_role("button", name="Import").click()

    success = page.get_by_test_id("stAlertContentSuccess")
    expect(success).to_contain_text("Imported e2e_traders.csv")
    expect(success).to_contain_text("inserted 2 (2 traders)")
    expect(metric_value(page, "Traders")).to_have_text(str(before + 2))
    expect(cell(page, "data-imports", "e2e_traders.csv")).to_have_count(1)
    wait_for_app(page)
    screenshot(page, "data_import_done.png")
