"""The app's database engine: opened and migrated once per process, failures shown once per page."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from components.errors import render_error
from connectors import database
from connectors.errors import TraderLensError


@st.cache_resource(show_spinner="Opening the database…")
def _migrated_engine(url: str) -> Engine:
    # Keyed by URL so pointing TRADERLENS_DB_URL elsewhere opens a new engine. A failure raises
    # and is not cached, so the next rerun retries (a database that comes back is picked up).
    engine = database.get_engine(url)
    database.upgrade_schema(engine)  # an empty database becomes usable on first start
    return engine


def get_engine() -> Engine:
    """The engine for the configured URL, schema up to date. Raises DatabaseUnavailable."""
    return _migrated_engine(database.database_url())


def require_engine() -> Engine:
    """:func:`get_engine`, or one clear error on the page and st.stop() when it cannot open."""
    try:
        return get_engine()
    except TraderLensError as exc:
        render_error(exc)
        st.stop()


def describe_connection() -> tuple[str, str]:
    """(backend name, where the database is, without credentials) of the configured database."""
    return database.describe(database.database_url())
