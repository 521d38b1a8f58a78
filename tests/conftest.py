"""Shared fixtures: every database test runs on DuckDB and on PostgreSQL.

``engine`` is parametrised over both backends and yields an empty, migrated database.
PostgreSQL comes from TRADERLENS_TEST_PG_ADMIN_URL (default: the local server, user postgres);
when it cannot be reached the PostgreSQL half is skipped, except under CI=true where it fails.
``cli_url``, ``run_cli`` and ``report_events`` run ``cli.py`` as a user runs it, in a subprocess,
on either backend.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import database, schema
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig, seed_database
from tests.pg_instance import PostgresInstance

ROOT = Path(__file__).resolve().parents[1]

PG_ADMIN_URL = os.environ.get(
    "TRADERLENS_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The app's background refresh of the feature snapshot and saved segments writes to the database on its
# own: off for every app a test starts (AppTest, and the servers of tests/e2e, which inherit this
# environment), unless a test turns it on for its own server.
os.environ.setdefault("TRADERLENS_SEGMENT_REFRESH_S", "0")
# XGBoost on a machine the suite keeps busy: passive OpenMP waits (analytics/models/__init__.py says why); set
# here too so a test module importing xgboost before analytics.models gets it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _pg_reachable() -> str | None:
    """None when the server answers, else the reason."""
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    reason = _pg_reachable()
    if reason is not None:
        message = f"PostgreSQL at {database.redact(PG_ADMIN_URL)} is unreachable: {reason}"
        if IN_CI:
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    name = f"traderlens_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    database.dispose_engines()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_pg(url: str) -> sa.Engine:
    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {_truth_schema()} CASCADE"))
        database.reset_data(conn)
        conn.execute(sa.text("DELETE FROM imports"))
        conn.execute(sa.text("DELETE FROM row_changes"))
        # Segments, clusterings and models (derived from the data above; the server's test database is shared
        # by the session) and the materialised feature snapshot (created on first use).
        for table in ("segment_changes", "segment_members", "segment_versions", "segments",
                      "cluster_assignments", "clustering_runs", "model_scores", "score_runs", "model_jobs",
                      "model_runs"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DROP TABLE IF EXISTS trader_features"))
    return engine


def module_database(request, tmp_path_factory, name: str) -> sa.Engine:
    """An empty, migrated database for a module-scoped fixture parametrised by backend
    (``request.param``): a new DuckDB file, or the session's PostgreSQL database emptied as the
    ``engine`` fixture empties it (data, segments, clusterings, the feature snapshot)."""
    if request.param == "duckdb":
        engine = database.get_engine(f"duckdb:///{tmp_path_factory.mktemp(name) / f'{name}.duckdb'}")
        database.upgrade_schema(engine)
        return engine
    return _empty_pg(request.getfixturevalue("pg_server_url"))


def _truth_schema() -> str:
    from connectors.schema import TRUTH_SCHEMA

    return TRUTH_SCHEMA


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, tmp_path, request) -> str:
    """URL of an empty, migrated database on the parametrised backend."""
    if backend == "duckdb":
        return f"duckdb:///{tmp_path / 'traderlens.duckdb'}"
    return request.getfixturevalue("pg_server_url")


@pytest.fixture
def engine(db_url, backend) -> Iterator[sa.Engine]:
    """An empty, migrated database on DuckDB and on PostgreSQL."""
    if backend == "duckdb":
        eng = database.get_engine(db_url)
        database.upgrade_schema(eng)
    else:
        eng = _empty_pg(db_url)
    yield eng
    if backend == "duckdb":
        eng.dispose()
        database.dispose_engines()


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PostgresInstance]:
    """A private PostgreSQL server of the module's own (tests/pg_instance.py), for tests that stop or
    freeze it: migrated, seeded with 300 simulated traders, running; destroyed after the module.
    Skipped where one cannot be created (a failure under CI=true)."""
    try:
        instance = PostgresInstance(Path(tempfile.mkdtemp(prefix="traderlens-pg-")))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        if IN_CI:
            pytest.fail(f"cannot create a private PostgreSQL server: {exc}")
        pytest.skip(f"cannot create a private PostgreSQL server: {exc}")
    instance.start()
    engine = database.get_engine(instance.url)
    database.upgrade_schema(engine)
    seed_database(engine, SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1)))
    database.dispose_engines()
    yield instance
    database.dispose_engines()
    instance.destroy()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path) -> Iterator[None]:
    """No test reads the developer's data/ file by accident: the default URL points at tmp."""
    monkeypatch.setenv("TRADERLENS_DB_URL", f"duckdb:///{tmp_path / 'default.duckdb'}")
    yield



# --- reading a test database back -----------------------------------------------------------------


def _table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = database.table_counts(conn)
        counts["imports"] = conn.execute(sa.select(sa.func.count()).select_from(
            schema.imports)).scalar_one()
    return counts


@pytest.fixture(scope="session")
def table_counts() -> Callable[[sa.Engine], dict[str, int]]:
    """``table_counts(engine)``: rows per data table, and in the import log under "imports"."""
    return _table_counts


def _query_rows(engine: sa.Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(float(v) if isinstance(v, Decimal) else v for v in row)
                for row in conn.execute(sa.text(sql)).all()]


@pytest.fixture(scope="session")
def query_rows() -> Callable[[sa.Engine, str], list[tuple]]:
    """``query_rows(engine, sql)``: the rows of ``sql`` as tuples, NUMERIC values as floats (so both
    backends compare alike)."""
    return _query_rows


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def cli_url(backend, tmp_path, request) -> str:
    """An empty database for a CLI subprocess. The DuckDB file is left closed here: DuckDB
    allows one process per file, and the CLI must be that process."""
    if backend == "duckdb":
        return f"duckdb:///{tmp_path / 'cli.duckdb'}"
    request.getfixturevalue("engine")  # empties and migrates the session's PostgreSQL database
    return request.getfixturevalue("db_url")


def _run_cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADERLENS_DB_URL": url}
    env.pop("TRADERLENS_DEBUG", None)
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=False)


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, url=URL)``: ``cli.py ARGS`` as a user runs it, a subprocess with
    TRADERLENS_DB_URL=URL (and no TRADERLENS_DEBUG); its CompletedProcess, text captured."""
    return _run_cli


REPORT_T0 = datetime(2026, 3, 2, 9, 0)  # a Monday: the first event of ``report_events``


@pytest.fixture
def report_events(cli_url) -> str:
    """``cli_url`` holding three registered traders' portal events a, b, c from 2026-03-02 to
    2026-03-17: 1 converts a→b→c, 2 stops at b (after 2 h), 3 only does a; 1 does a again on day 8
    and 2 on day 15. Written and closed before the CLI opens the database."""
    engine = database.get_engine(cli_url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.traders, pd.DataFrame({
            "trader_id": [1, 2, 3], "external_id": ["t1", "t2", "t3"],
            "registered_at": [REPORT_T0, REPORT_T0, REPORT_T0], "country": ["DE", "GB", "DE"],
        }))
        rows = [(1, "a", 0), (1, "b", 3600), (1, "c", 7200), (2, "a", 0), (2, "b", 7200), (3, "a", 0),
                (1, "a", 8 * 86_400), (2, "a", 15 * 86_400)]
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": range(1, len(rows) + 1), "external_id": [f"p{i}" for i in range(len(rows))],
            "trader_id": [r[0] for r in rows], "event": [r[1] for r in rows],
            "occurred_at": [REPORT_T0 + pd.Timedelta(seconds=r[2]) for r in rows],
        }))
        refresh_rollups(conn)  # what seeding and imports do after writing
    engine.dispose()
    database.dispose_engines()  # the CLI subprocess must be the one process holding a DuckDB file
    return cli_url


# --- memory ----------------------------------------------------------------------------------------


class ProcessMemory:
    """This process's memory as Linux reports it in /proc/self/status, in MB."""

    @staticmethod
    def mb(field: str) -> int:
        """``field`` (VmRSS: resident now; VmHWM: the peak) in MB."""
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
        return int(match.group(1)) // 1024

    @staticmethod
    def reset_peak() -> bool:
        """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False where that is refused."""
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False


@pytest.fixture(scope="session")
def process_memory() -> ProcessMemory:
    """How much memory this process holds and has held at most (``mb("VmRSS")``, ``mb("VmHWM")``), and a
    reset of that peak, for tests that bound the memory a report or a page run takes."""
    return ProcessMemory()
