"""The app's database engine: opened and migrated once per process, and asked whether it answers."""

from __future__ import annotations

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine

from analytics.reading import reading
from connectors import database
from connectors.errors import DatabaseUnavailable

# A page read meeting the embedded database busy with another process's import waits this long,
# then the page says an import is running (components/outage.py) instead of hanging.
READ_WAIT_S = 3.0


@st.cache_resource(show_spinner="Opening the database…")
def _opened(url: str) -> tuple[Engine, str]:
    # Keyed by URL so pointing TRADERLENS_DB_URL elsewhere opens a new engine. A failure raises
    # and is not cached, so the next rerun retries (a database that comes back is picked up).
    database.prepare(url)  # an empty database becomes usable on first start; writes only when needed
    # Read-only: on DuckDB the CLI's reports read the file beside the app, and the file is closed
    # while no page reads, so an import (CLI or Data page) can open it read-write.
    engine = database.get_engine(url, read_only=True, wait_s=READ_WAIT_S)
    return engine, engine.url.render_as_string()  # the password hidden: it is part of cache keys


def get_engine() -> Engine:
    """The engine the pages read with (read-only on DuckDB), schema up to date. Raises DatabaseUnavailable."""
    return _opened(database.database_url())[0]


def get_writer_engine() -> Engine:
    """The engine for the app's own writes (the Data page's import): on DuckDB it opens the file
    read-write for the write, after other processes' readers let go (database.get_engine)."""
    url = database.database_url()
    _opened(url)  # the schema up to date first
    return database.get_engine(url)


def open_database() -> tuple[Engine, str]:
    """(:func:`get_engine`, the key that names its database in ``st.cache_data`` entries, without the password)."""
    return _opened(database.database_url())


def describe_connection() -> tuple[str, str]:
    """(backend name, where the database is, without credentials) of the configured database."""
    return database.describe(database.database_url())


def probe(engine: Engine, *, timeout_s: float) -> DatabaseUnavailable | None:
    """None when the database answers within ``timeout_s``, else why it does not.

    DuckDB runs in this process and is not asked (a file that cannot be read fails on opening).
    """
    if engine.dialect.name == "duckdb":
        return None
    try:
        with reading(engine, timeout_s=timeout_s) as conn:
            conn.execute(sa.text("SELECT 1"))
    except DatabaseUnavailable as outage:
        return outage
    return None
