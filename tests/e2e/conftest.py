"""A real server started as `make run` starts it (`cli.py serve`: warm-up, then `streamlit run app.py`)
and Debian's Chromium for the browser tests.

Never downloads a browser: Playwright drives /usr/bin/chromium (CHROMIUM_PATH overrides). Without
it the tests skip, except under CI=true where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server.warmup import ServerNotReady, wait_until_warm
from tests.app import sample_data

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
STARTUP_TIMEOUT_S = 120  # start, then the warm-up of the four analytics pages

# expect() retries for 5 s by default; a busy CI machine (other suites, PostgreSQL) needs more.
expect.set_options(timeout=15_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium; never `playwright install`)"
        if IN_CI:
            pytest.fail(message + " - required under CI=true")
        pytest.skip(message)
    return CHROMIUM


def _serve(db_url: str, log_name: str) -> Iterator[str]:
    """Serve the app as `make run` does (`cli.py serve`) on a free port against ``db_url``; yield its base URL."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / log_name
    port = _free_port()
    with log.open("w") as out:  # a file, not a PIPE: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, "cli.py", "serve", "--server.headless=true",
             f"--server.port={port}", "--server.address=127.0.0.1",
             "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"],
            cwd=ROOT, env={**os.environ, "TRADERLENS_DB_URL": db_url}, stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # `cli.py serve` runs every analytics page once after start (server/warmup.py); it must succeed.
        try:
            wait_until_warm(f"http://127.0.0.1:{port}", proc, log, timeout_s=STARTUP_TIMEOUT_S)
        except ServerNotReady as exc:
            pytest.fail(str(exc))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, chromium_path) -> Iterator[str]:
    """Base URL of the app serving a tmp DuckDB with the sample rows (one trade closed early)."""
    db_url = f"duckdb:///{tmp_path_factory.mktemp('e2e') / 'traderlens.duckdb'}"
    sample_data.fill_sample_database(db_url, closed_before_opened=True)
    yield from _serve(db_url, "e2e_server.log")


DEMO_TRADERS = 3_000
DEMO_DAYS = 365


@pytest.fixture(scope="session")
def demo_app_url(tmp_path_factory, chromium_path) -> Iterator[str]:
    """Base URL of the app serving a simulated broker (3,000 traders over a year, ending today),
    the data the analytics pages are tested on in a real browser."""
    from connectors import database
    from connectors.simulator import SimulationConfig, seed_database

    db_url = f"duckdb:///{tmp_path_factory.mktemp('e2e_demo') / 'traderlens.duckdb'}"
    engine = database.get_engine(db_url)
    seed_database(engine, SimulationConfig(traders=DEMO_TRADERS, days=DEMO_DAYS, seed=7))
    engine.dispose()
    database.dispose_engines()  # DuckDB allows one process per file: the server's
    yield from _serve(db_url, "e2e_demo_server.log")


@pytest.fixture(scope="session")
def browser(chromium_path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    # Tall enough that a full-page screenshot shows the whole Data page (Streamlit scrolls an
    # inner container, so Playwright's full_page option would stop at the viewport).
    context = browser.new_context(viewport={"width": 1440, "height": 2000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def wait_for_app(page: Page) -> None:
    """Until the websocket is up and the script run has finished."""
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(state="attached")
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(state="attached")


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
