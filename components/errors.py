"""Turn a TraderLens domain exception into one clear message on the page, never a traceback."""

from __future__ import annotations

import streamlit as st

from components.outage import render_outage
from components.text import escape_markdown
from connectors.errors import DatabaseUnavailable, ImportRejected, TraderLensError


def render_error(exc: TraderLensError) -> None:
    """Show ``exc`` as a single st.error in plain words, with where the problem is."""
    if isinstance(exc, DatabaseUnavailable):
        render_outage(exc)  # the one banner, also shown when the database fails in the middle of a page
    elif isinstance(exc, ImportRejected):
        # The file's name, its header and its values are an outsider's text: shown as text, never Markdown.
        where = [f"**File:** {escape_markdown(exc.file)}"]
        if exc.row is not None:
            where.append(f"**Row:** {exc.row}")
        if exc.column is not None:
            where.append(f"**Column:** {escape_markdown(exc.column)}")
        st.error("  \n".join([*where, f"**Reason:** {escape_markdown(exc.reason)}",
                              "Nothing from this file was written."]),
                 title="The file was not imported", icon=":material/block:")
    else:
        st.error(escape_markdown(exc), icon=":material/error:")
