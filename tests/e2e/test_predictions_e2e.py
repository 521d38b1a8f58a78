"""The Predictions page in Debian's Chromium, end to end, on its own broker with a trained and scored churn
model and a candidate (tests/models_fixture.py): the scores and their table, the model cards side by side
with the SHAP plots, the candidate promoted, and the very-high band saved as a live segment that the
Segments page then lists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, _serve, screenshot, wait_for_app
from tests.models_fixture import trained_file

pytestmark = pytest.mark.e2e

LOAD_TIMEOUT_MS = 60_000
NAME = "E2E churn very high <i>"  # markup in a name stays text
VERY_HIGH = "Very high (60% or more)"


@pytest.fixture(scope="module")
def predictions_app_url(tmp_path_factory, chromium_path) -> Iterator[str]:
    path = trained_file(tmp_path_factory.mktemp("e2e_predictions") / "traderlens.duckdb", candidates=1)
    yield from _serve(f"duckdb:///{path}", "e2e_predictions_server.log")


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def settled(page: Page) -> None:
    page.wait_for_timeout(250)  # the script state may still read the previous run's "notRunning"
    wait_for_app(page)


def test_scores_cards_promotion_and_a_band_saved_as_a_segment(page: Page, predictions_app_url: str):
    # 1. The scores: the bands, the distribution and the table of the highest scores with their reasons.
    page.goto(f"{predictions_app_url}/predictions")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Predictions", exact=True)).to_be_visible()
    expect(metric(page, VERY_HIGH)).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    very_high = int(metric(page, VERY_HIGH).inner_text().replace(",", ""))
    assert very_high > 0
    table = page.locator(".st-key-predictions-scores-table [data-testid='stDataFrame']")
    expect(table).to_be_visible()
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="highest of")).to_be_visible()
    screenshot(page, "predictions_scores.png")

    # 2. The model cards side by side, with the global SHAP plots; the candidate promoted.
    page.get_by_role("tab", name="Model card").click()
    settled(page)
    expect(metric(page, "ROC AUC")).to_have_count(2, timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2, timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_text("Churn v1 · active")).to_be_visible()
    expect(page.get_by_text("Churn v2 · candidate")).to_be_visible()
    screenshot(page, "predictions_cards.png")
    beeswarm = page.get_by_test_id("stPlotlyChart").first
    beeswarm.scroll_into_view_if_needed()
    expect(beeswarm.locator("canvas").first).to_be_visible()  # WebGL points drawn
    beeswarm.screenshot(path=str(ARTIFACTS / "predictions_beeswarm.png"))
    page.get_by_test_id("stPlotlyChart").nth(1).screenshot(path=str(ARTIFACTS / "predictions_dependence.png"))
    page.get_by_role("button", name="Promote v2 to active").click()
    expect(page.get_by_test_id("stAlertContentSuccess").filter(has_text="Churn v2 is now the active model")
           ).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_text("Churn v2 · active")).to_be_visible()
    expect(page.get_by_role("button", name="Promote v2 to active")).to_have_count(0)

    # 3. The very-high band, from a link, saved as a live rule segment.
    page.goto(f"{predictions_app_url}/predictions?predictions.tab=Scores&predictions.scores.band={quote_plus(VERY_HIGH)}")
    wait_for_app(page)
    listed = page.get_by_test_id("stCaptionContainer").filter(has_text="traders listed")
    expect(listed).to_contain_text(f"{very_high:,} traders listed", timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_text("These scores were made by v1; v2 is the active model now")).to_be_visible()
    page.get_by_text("Whoever is in very high at each refresh").click()
    settled(page)
    page.locator(".st-key-predictions-scores-save-name input").fill(NAME)
    page.get_by_role("button", name="Save segment").click()
    saved = page.get_by_test_id("stAlertContentSuccess").filter(has_text="members")
    expect(saved).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    assert NAME in saved.inner_text()  # shown as text: no <i> element made of the name
    members = int(re.search(r"with ([\d,]+) members", saved.inner_text()).group(1).replace(",", ""))
    assert members == very_high
    screenshot(page, "predictions_band_saved.png")

    page.goto(f"{predictions_app_url}/segments?segments.tab=Saved+segments&segments.saved={quote_plus(NAME)}")
    wait_for_app(page)
    expect(page.get_by_role("heading", name=NAME)).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(metric(page, "Members")).to_have_text(f"{members:,}")


def test_drift_then_training_from_the_page_with_its_progress_until_it_ends(page: Page, predictions_app_url: str):
    page.goto(f"{predictions_app_url}/predictions?predictions.tab=Drift")
    wait_for_app(page)
    expect(metric(page, "Score distribution PSI")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    screenshot(page, "predictions_drift.png")

    page.goto(f"{predictions_app_url}/predictions?predictions.tab=Training")
    wait_for_app(page)
    page.get_by_role("button", name="Train a new churn model").click()
    expect(page.get_by_test_id("stAlertContentSuccess").filter(has_text="started")).to_be_visible(
        timeout=LOAD_TIMEOUT_MS)
    # The fragment polls the job on its own; no click reloads the page until the run is saved.
    done = page.get_by_test_id("stAlertContentSuccess").filter(has_text="Last training")
    expect(done).to_contain_text("(candidate)", timeout=120_000)
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    runs = page.locator(".st-key-predictions-training-runs")
    expect(runs).to_contain_text("candidate")
    screenshot(page, "predictions_training_done.png")
