"""A database outage while pages are open: one clear banner, cached figures labelled, reads that fail in
seconds when the server freezes, and recovery without a restart. Runs on a PostgreSQL server of the
test's own (tests/pg_instance.py), which the tests stop, freeze and start again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics.reading import reading
from connectors import database
from connectors.errors import DatabaseUnavailable

ROOT = Path(__file__).resolve().parents[2]
BANNER = "Cannot reach the database"

pytestmark = pytest.mark.postgres


@pytest.fixture
def running(private_pg, monkeypatch):
    """The server, up and answering, as the app's database; left running after the test."""
    private_pg.thaw()
    if not (private_pg.data / "postmaster.pid").exists():
        private_pg.start()
    private_pg.wait_ready()
    database.forget_outages()
    monkeypatch.setenv("TRADERLENS_DB_URL", private_pg.url)
    yield private_pg
    private_pg.thaw()
    if not (private_pg.data / "postmaster.pid").exists():
        private_pg.start()


def _banners(at: AppTest) -> list[str]:
    return [e.value for e in at.error if BANNER in (e.proto.body + str(getattr(e, "title", "")) + str(e.proto))]


def test_a_stopped_server_gives_the_banner_on_every_page_and_labels_cached_figures(running):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception and not _banners(at)
    tiles_before = [m.value for m in at.metric]
    assert tiles_before  # the Overview's KPI tiles

    running.stop()
    at.run()  # the same view: its figures are cached
    assert not at.exception
    banners = _banners(at)
    assert len(banners) == 1
    assert "come from the cache" in banners[0] and "UTC" in banners[0]
    assert [m.value for m in at.metric] == tiles_before  # still shown, under the label

    for page in ("pages/cohorts.py", "pages/funnels.py", "pages/lifecycle.py", "pages/data.py"):
        at.switch_page(page).run()  # never opened: nothing cached, every read fails
        assert not at.exception, page
        assert len(_banners(at)) == 1, page

    running.start()
    running.wait_ready()
    time.sleep(database._BREAKER_S)  # reads fail at once for a few seconds after an outage, then try again
    at.switch_page("pages/overview.py").run()
    assert not at.exception and not _banners(at)
    assert [m.value for m in at.metric] == tiles_before


def test_a_frozen_server_fails_a_page_in_seconds_and_recovers(running):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    running.freeze()
    try:
        started = time.monotonic()
        at.switch_page("pages/lifecycle.py").run()
        elapsed = time.monotonic() - started
    finally:
        running.thaw()
    assert not at.exception
    assert len(_banners(at)) == 1
    assert elapsed < 20, f"a frozen server held the page for {elapsed:.1f} s"

    time.sleep(database._BREAKER_S)
    at.run()
    assert not at.exception and not _banners(at)
    assert at.title[0].value == "Lifecycle"


def test_a_read_on_a_frozen_server_raises_database_unavailable_in_seconds(running):
    engine = database.get_engine(running.url)
    with reading(engine) as conn:  # a pooled connection that the freeze leaves open
        conn.execute(sa.text("SELECT 1"))
    running.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable), reading(engine, timeout_s=2) as conn:
            conn.execute(sa.text("SELECT count(*) FROM trades"))
        elapsed = time.monotonic() - started
        # Right after, reads fail at once instead of waiting again.
        started_again = time.monotonic()
        with pytest.raises(DatabaseUnavailable), reading(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        assert time.monotonic() - started_again < 0.5
    finally:
        running.thaw()
    assert elapsed < 15, f"a frozen server held the read for {elapsed:.1f} s"


def test_a_slow_query_is_cancelled_by_the_statement_timeout(running):
    engine = database.get_engine(running.url)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="took longer"), reading(engine, timeout_s=1) as conn:
        conn.execute(sa.text("SELECT pg_sleep(10)"))
    assert time.monotonic() - started < 5
    with reading(engine) as conn:  # a timeout is no outage: the next read goes ahead at once
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_the_cli_reports_a_frozen_server_in_one_line_within_seconds(running):
    running.freeze()
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "report", "kpis"], capture_output=True,
                              text=True, timeout=120, env={**os.environ,
                                                           "TRADERLENS_DB_URL": running.url})
        elapsed = time.monotonic() - started
    finally:
        running.thaw()
    assert done.returncode != 0
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert elapsed < 20
