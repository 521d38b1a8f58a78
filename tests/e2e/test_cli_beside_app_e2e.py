"""The CLI beside the running app on the embedded database (issue 11, "Cron beside the app").

`cli.py serve` serves a DuckDB file and a page is open in Debian's Chromium: `cli.py info` and
`cli.py report kpis` answer at once, and `cli.py import` gets the file (waiting for the app to let go
of it if a page is reading) and imports. While another process writes, a page needing the database
says an import is running, with no trace, and shows its figures again once the write is done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from connectors import database
from connectors.simulator import SimulationConfig, seed_database
from tests.e2e.conftest import _serve, screenshot, wait_for_app

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
TRADERS = 500
NEW_TRADER_CSV = "external_id,registered_at,country,email\nCRON1,2026-02-01T10:00:00Z,DE,cron1@example.com\n"

# Another process writing for a while, as a long import does: the writer engine, one open transaction.
WRITER = r"""
import sys, time
import sqlalchemy as sa
from connectors import database
with database.get_engine(sys.argv[1]).begin() as conn:
    conn.execute(sa.text("UPDATE traders SET vip_tier = vip_tier WHERE trader_id = 1"))
    print("writing", flush=True)
    time.sleep(float(sys.argv[2]))
print("committed", flush=True)
"""


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('cli_beside') / 'traderlens.duckdb'}"
    seed_database(database.get_engine(url), SimulationConfig(traders=TRADERS, days=120, seed=5))
    database.dispose_engines()  # the server opens the file itself
    return url


@pytest.fixture(scope="module")
def app_url(db_url, chromium_path):
    yield from _serve(db_url, "e2e_cli_beside_server.log")


def _cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADERLENS_DB_URL": url}
    env.pop("TRADERLENS_DEBUG", None)
    return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _traders(info: str) -> int:
    """The traders row count in ``cli.py info``'s table."""
    line = next(line for line in info.splitlines() if line.startswith("traders "))
    return int(line.split()[1].replace(",", ""))


def _open(page: Page, url: str) -> None:
    page.goto(url)
    wait_for_app(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_the_app_says_an_import_is_running_while_another_process_writes(page: Page, app_url: str, db_url: str):
    _open(page, app_url)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db_url, "20"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        # A page whose figures are not cached yet (the warm-up computes the analytics pages, not this one)
        # needs the database: it waits a moment, then says why it shows nothing.
        page.get_by_test_id("stSidebarNav").get_by_text("Data", exact=True).click()
        expect(page.get_by_text("The database is busy")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(f"An import is running (PID {writer.pid}")).to_be_visible()
        expect(page.get_by_text("figures are back when it finishes")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_text("This app has encountered an error")).to_have_count(0)
        screenshot(page, "cli_beside_import_running.png")
        # A report beside it waits for the write to end instead of failing.
        started = time.monotonic()
        report = _cli("report", "kpis", "--format", "json", url=db_url)
        assert report.returncode == 0, report.stderr
        assert f"waiting up to 30 s for the import of PID {writer.pid}" in report.stderr
        assert writer.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    time.sleep(database._BUSY_BREAKER_S + 0.5)  # reads fail at once for a moment after finding it busy
    page.reload()
    wait_for_app(page)
    expect(page.get_by_text("What is loaded", exact=True)).to_be_visible()
    expect(page.get_by_text("The database is busy")).to_have_count(0)


def test_reports_and_imports_run_while_the_app_serves_the_file(page: Page, app_url: str, db_url: str, tmp_path):
    _open(page, app_url)
    expect(page.get_by_test_id("stMetric").first).to_be_visible()

    info = _cli("info", url=db_url)
    assert info.returncode == 0, info.stderr
    assert _traders(info.stdout) == TRADERS, info.stdout

    kpis = _cli("report", "kpis", "--format", "json", url=db_url)
    assert kpis.returncode == 0, kpis.stderr
    assert {k["key"] for k in json.loads(kpis.stdout)} >= {"registrations", "ftds"}

    # A page runs while the import starts: the import waits for the app to let go, then writes.
    page.reload()
    csv = tmp_path / "traders.csv"
    csv.write_text(NEW_TRADER_CSV)
    imported = _cli("import", str(csv), url=db_url)
    assert imported.returncode == 0, imported.stderr
    assert "wrote traders 1" in imported.stdout, imported.stdout
    assert "Traceback" not in imported.stderr

    # The app reads on, and sees the import.
    wait_for_app(page)
    _open(page, f"{app_url}/data")
    expect(page.get_by_text("What is loaded", exact=True)).to_be_visible()
    info = _cli("info", url=db_url)
    assert info.returncode == 0, info.stderr
    assert _traders(info.stdout) == TRADERS + 1
