"""The one "Cannot reach the database" banner, wherever in a run the database fails.

app.py runs every page inside :func:`guard`, and pages use :func:`fragment` instead of
``st.fragment``, so a connection failure anywhere (opening, a cache miss, a fragment's rerun)
ends the run with the banner instead of Streamlit's generic error. :func:`check` asks the
database at the start of each run: when it does not answer, the banner says that the figures the
page still shows come from the cache, and since when.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.runtime.scriptrunner import get_script_run_ctx

from components.text import escape_markdown
from connectors import database
from connectors.errors import DatabaseBusy, DatabaseUnavailable, TraderLensError
from server.engine import probe

PROBE_TIMEOUT_S = 3.0
_SLOT = "outage.slot"  # session-state: the container at the top of the page that holds the banner
_SHOWN = "outage.shown"  # session-state: the banner is already on this run's page


def render_outage(outage: DatabaseUnavailable, *, cached_before: datetime | None = None) -> None:
    """The banner: what failed, where, what to check, and whether the page shows cached figures."""
    where = database.location(database.database_url()).replace("`", "")  # shown in a code span
    reason = escape_markdown(outage.reason)  # a driver's message may quote a host name or a path
    if isinstance(outage, DatabaseBusy):  # an import (CLI or another process) has the DuckDB file
        st.warning(f"{reason[:1].upper()}{reason[1:]}.\n\n**Database:** `{where}`", title="The database is busy",
                   icon=":material/lock:")
        return
    lines = [f"**Database:** `{where}`", f"**Reason:** {reason}",
             "Check that the database server is running and reachable from this app, and that "
             "`TRADERLENS_DB_URL` points at it. The app tries again on every change: reload the page when "
             "the server is back."]
    if cached_before is not None:
        lines.append(f"**Figures below come from the cache**, computed before {cached_before:%d %b %Y %H:%M} UTC "
                     "(when the database last answered); anything not cached cannot be shown.")
    st.error("  \n".join(lines), title="Cannot reach the database", icon=":material/database_off:")


def _outage(exc: BaseException) -> DatabaseUnavailable | None:
    return database.outage_of(exc, database.database_url())


@contextmanager
def guard() -> Iterator[Any]:
    """Run the page inside: a database failure anywhere ends the run with the banner at the top, and
    any other TraderLensError (a request the user can change) with its one clear message there.

    Yields the container at the top of the page where the banner goes, for other page-wide notices.
    """
    top = st.session_state[_SLOT] = st.container()
    st.session_state[_SHOWN] = False
    try:
        yield top
    except Exception as exc:
        outage = _outage(exc)
        if outage is None and not isinstance(exc, TraderLensError):
            raise
        if outage is None:  # a request the user can change (a report too large, an unknown event)
            from components.errors import render_error  # components.errors shows outages with this module

            with st.session_state[_SLOT]:
                render_error(exc)
        elif not st.session_state.get(_SHOWN):
            with st.session_state[_SLOT]:
                render_outage(outage)
        else:
            st.caption("The rest of this page needs the database.")


def check(engine: Engine) -> None:
    """Ask the database whether it answers; if not, show the banner and let the page go on from cache."""
    outage = probe(engine, timeout_s=PROBE_TIMEOUT_S)
    if outage is not None:
        with st.session_state[_SLOT]:
            render_outage(outage, cached_before=database.last_answer(engine))
        st.session_state[_SHOWN] = True


def fragment(func: Callable[..., Any]) -> Callable[..., Any]:
    """``st.fragment`` whose reruns end with the banner (inside the fragment) when the database fails."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            outage = _outage(exc)
            ctx = get_script_run_ctx()
            # In a full run the page's guard shows the banner at the top and ends the run; only a
            # fragment's own rerun, which the page's guard does not wrap, shows it here.
            if outage is None or ctx is None or not ctx.fragment_ids_this_run:
                raise
            render_outage(outage)
            return None

    return st.fragment(guarded)
