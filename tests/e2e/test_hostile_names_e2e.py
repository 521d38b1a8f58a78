"""Names written as Markdown reach the browser as text (Debian's Chromium): no outside image is fetched,
no link is made, and they read as they were imported. First the Funnels page, then every kind of
Markdown element the app puts data in, through Streamlit's real renderer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from components.cohort_charts import event_label
from components.text import WORD_JOINER
from connectors import database, schema
from connectors.rollups import refresh_rollups
from server.warmup import answers_health
from tests.app import sample_data
from tests.e2e.conftest import ARTIFACTS, ROOT, _free_port, _serve, screenshot, wait_for_app
from tests.e2e.markdown_text_app import VALUES

pytestmark = pytest.mark.e2e

class Trap:
    """A local HTTP server standing in for the attacker's host: it counts every request it receives."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                trap.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


def hostile_events(trap: Trap) -> tuple[str, str]:
    return f"![p](http://{trap.host}/p.png)", f"[click](http://{trap.host}/x)"


@pytest.fixture(scope="module")
def hostile_app_url(tmp_path_factory, chromium_path, trap) -> Iterator[str]:
    """The app on the sample rows plus portal events named as a Markdown image and a Markdown link: trader 1
    does both, trader 2 only the image."""
    image, link = hostile_events(trap)
    db_url = f"duckdb:///{tmp_path_factory.mktemp('e2e_hostile') / 'traderlens.duckdb'}"
    sample_data.fill_sample_database(db_url)
    at = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=1)
    engine = database.get_engine(db_url)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": [1, 2, 3], "external_id": ["H1", "H2", "H3"], "trader_id": [1, 1, 2],
            "event": [image, link, image], "occurred_at": [at, at + timedelta(minutes=5), at],
        }))
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()  # the server must be the one process holding the DuckDB file
    yield from _serve(db_url, "e2e_hostile_server.log")


def shown(text: str) -> str:
    """Text as a reader sees it (the invisible word joiners that keep Streamlit from linking dropped)."""
    return text.replace(WORD_JOINER, "")


def test_markdown_in_event_names_is_shown_as_text_on_the_funnels_page(page: Page, hostile_app_url: str,
                                                                      trap: Trap):
    image, link = hostile_events(trap)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # Bound widgets keep their shown labels in the URL: a shared link to this funnel.
    query = urlencode([("funnels.steps", event_label(image)), ("funnels.steps", event_label(link))])
    page.goto(f"{hostile_app_url}/funnels?{query}")
    wait_for_app(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(3)  # funnel, time to convert, trend
    expect(page.locator(".st-key-funnels-table [data-testid='stDataFrame']")).to_be_visible()

    # The names read as imported: in the metric labels (Markdown) and the step picker (plain text).
    labels = [shown(t) for t in page.get_by_test_id("stMetricLabel").all_inner_texts()]
    assert f"Entered · {event_label(image)}" in labels
    assert f"Completed · {event_label(link)}" in labels
    picker = page.locator(".st-key-funnels-steps")
    expect(picker.get_by_text(event_label(image), exact=True)).to_be_visible()
    expect(picker.get_by_text(event_label(link), exact=True)).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Entered").get_by_test_id("stMetricValue")
           ).to_have_text("2")

    # A tooltip of the funnel chart names the step too: Vega's tooltip must not make it HTML.
    chart = page.get_by_test_id("stVegaLiteChart").first
    box = chart.bounding_box()
    assert box is not None
    tooltip = page.locator("#vg-tooltip-element")
    for fraction in (0.2, 0.25, 0.3, 0.35, 0.4):  # somewhere over the first bar
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.75)
        page.wait_for_timeout(200)
        if tooltip.count() and tooltip.is_visible():
            break
    expect(tooltip).to_contain_text(f"1. {event_label(image)}")
    screenshot(page, "funnels_hostile_names.png")  # with the tooltip open
    page.mouse.move(0, 0)

    page.wait_for_timeout(1000)  # time for any image request the page would make
    assert page.locator(f"a[href*='{trap.host}']").count() == 0
    assert page.locator(f"img[src*='{trap.host}'], img[srcset*='{trap.host}']").count() == 0
    assert not [url for url in requested if trap.host in url]
    assert trap.paths == []


@pytest.fixture(scope="module")
def markdown_app_url(chromium_path, trap) -> Iterator[str]:
    """tests/e2e/markdown_text_app.py served by `streamlit run`: each VALUES entry in every element kind."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAP_HOST": trap.host}
    with (ARTIFACTS / "e2e_markdown_text_server.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "tests" / "e2e" / "markdown_text_app.py"),
             "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
             "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not answers_health(base):
            assert proc.poll() is None and time.monotonic() < deadline, "the Markdown test app did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


ELEMENTS = {  # what each element shows of the value, by the element's test id
    "markdown": "[data-testid='stMarkdown'] [data-testid='stMarkdownContainer']",
    "caption": "[data-testid='stCaptionContainer']",
    "metric label": "[data-testid='stMetricLabel']",
    "alert title": "[data-testid='stAlertTitle']",
    "radio option": "[data-testid='stRadio'] [role='radiogroup'] label",
    "segment": "[data-testid='stButtonGroup'] button",
    "checkbox label": "[data-testid='stCheckbox'] label",
}


def test_every_markdown_element_shows_escaped_values_as_their_text(page: Page, markdown_app_url: str, trap: Trap):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(markdown_app_url)
    wait_for_app(page)
    expect(page.locator(f".st-key-value{len(VALUES) - 1}")).to_be_visible()

    for i, raw in enumerate(VALUES):
        value = " ".join(raw.replace("{trap}", trap.host).split())  # a browser shows whitespace as one space
        block = page.locator(f".st-key-value{i}")
        for element, selector in ELEMENTS.items():
            expect(block.locator(selector)).to_have_count(1)  # lazily loaded elements may still be drawing
            assert [shown(" ".join(t.split())) for t in block.locator(selector).all_inner_texts()] == [value], (
                element, value)
        # Inside the rendered Markdown only text: no link, image, emphasis, code, badge, icon or formula.
        rendered = block.locator("[data-testid='stMarkdownContainer'] p, [data-testid='stCaptionContainer'] p")
        assert rendered.count() >= 5
        assert rendered.locator("*").count() == 0, (value, rendered.first.inner_html())

    page.wait_for_timeout(1000)
    assert not [url for url in requested if trap.host in url]
    assert trap.paths == []
