"""PostgreSQL imports and the writer lock: an import that cannot have the lock gives up after a
bounded wait saying another import is running, and an importer killed in the middle of its rollup
query leaves neither its backend nor the lock behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import cli
from connectors import importers
from connectors.errors import ImportBusy
from connectors.importers import import_file
from connectors.importers.loader import ROLLUP_PAUSE_ENV

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "csv"
BUSY = re.compile(r"another import is running \(started (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\); "
                  r"try again when it finishes")


@pytest.fixture
def pg(pg_server_url) -> sa.Engine:
    """The session's PostgreSQL database, emptied, with the fixture traders."""
    from tests.conftest import _empty_pg

    engine = _empty_pg(pg_server_url)
    import_file(engine, FIXTURES / "traders.csv")
    return engine


def _eventually(probe: Callable[[], object], seconds: float) -> object:
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        if time.monotonic() > deadline:
            return found
        time.sleep(0.1)
    return found


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_an_import_that_cannot_have_the_lock_says_another_import_is_running(pg, pg_server_url, monkeypatch,
                                                                            capsys):
    monkeypatch.setattr(importers, "LOCK_WAIT_S", 1.0)
    holder = sa.create_engine(pg_server_url)
    with holder.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('traderlens.writer'))"))  # another writer
        started = time.monotonic()
        with pytest.raises(ImportBusy) as caught:
            import_file(pg, FIXTURES / "kyc_events.csv")
        assert 1.0 <= time.monotonic() - started < 4
        since = BUSY.fullmatch(str(caught.value))
        assert since, str(caught.value)
        held_from = datetime.fromisoformat(since.group(1))
        assert abs((datetime.now(UTC).replace(tzinfo=None) - held_from).total_seconds()) < 60

        monkeypatch.setenv("TRADERLENS_DB_URL", pg_server_url)
        assert cli.main(["import", str(FIXTURES / "kyc_events.csv")]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and BUSY.fullmatch(err.strip().removeprefix("error: ")), err
        other.rollback()
    holder.dispose()
    assert _count(pg, "kyc_events") == 0
    assert import_file(pg, FIXTURES / "kyc_events.csv").inserted == {"kyc_events": 5}


def test_an_importer_killed_in_its_rollup_query_leaves_no_backend_and_no_lock(pg, pg_server_url):
    """The killed importer's backend is in pg_sleep inside the rollup phase, holding the lock; the
    server notices the closed connection within a second (client_connection_check_interval),
    rolls back and ends, so the next import gets the lock at once."""
    env = {**os.environ, "TRADERLENS_DB_URL": pg_server_url, ROLLUP_PAUSE_ENV: "60"}
    importer = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "import", str(FIXTURES / "sessions.csv")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    activity = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND state = 'active' AND query LIKE 'SELECT pg_sleep%'")
    try:
        def sleeping() -> list[int]:
            with pg.connect() as conn:
                return conn.execute(activity).scalars().all()

        backends = _eventually(sleeping, 30)
        assert backends, "the import never reached its rollup phase"
        importer.send_signal(signal.SIGKILL)
        importer.wait(10)

        started = time.monotonic()
        result = import_file(pg, FIXTURES / "kyc_events.csv")
        assert time.monotonic() - started < 5  # not the 60 s the dead import's query had left
        assert result.inserted == {"kyc_events": 5}

        def gone() -> bool:
            with pg.connect() as conn:
                return not conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"),
                                        {"p": backends}).scalar_one()

        assert _eventually(gone, 5), "the killed import's backend is still there"
        assert _count(pg, "sessions") == 0  # its rows were rolled back
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
