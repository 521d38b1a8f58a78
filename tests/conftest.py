"""Shared fixtures: every database test runs on DuckDB and on PostgreSQL.

``engine`` is parametrised over both backends and yields an empty, migrated database.
PostgreSQL comes from TRADERLENS_TEST_PG_ADMIN_URL (default: the local server, user postgres);
when it cannot be reached the PostgreSQL half is skipped, except under CI=true where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from connectors import database

PG_ADMIN_URL = os.environ.get(
    "TRADERLENS_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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
    return engine


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


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path) -> Iterator[None]:
    """No test reads the developer's data/ file by accident: the default URL points at tmp."""
    monkeypatch.setenv("TRADERLENS_DB_URL", f"duckdb:///{tmp_path / 'default.duckdb'}")
    yield
