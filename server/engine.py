"""The app's database engine: opened and migrated once per process, and asked whether it answers."""

from __future__ import annotations

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine

from analytics.reading import reading
from connectors import database
from connectors.errors import DatabaseUnavailable


@st.cache_resource(show_spinner="Opening the database…")
def _opened(url: str) -> tuple[Engine, str]:
    # Keyed by URL so pointing TRADERLENS_DB_URL elsewhere opens a new engine. A failure raises
    # and is not cached, so the next rerun retries (a database that comes back is picked up).
    engine = database.get_engine(url)
    database.upgrade_schema(engine)  # an empty database becomes usable on first start
    return engine, engine.url.render_as_string()  # the password hidden: it is part of cache keys


def get_engine() -> Engine:
    """The engine for the configured URL, schema up to date. Raises DatabaseUnavailable."""
    return _opened(database.database_url())[0]


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
