"""Turn a TraderLens domain exception into one clear message on the page, never a traceback."""

from __future__ import annotations

import streamlit as st

from components.text import escape_markdown
from connectors.errors import DatabaseBusy, DatabaseUnavailable, ImportRejected, TraderLensError


def render_error(exc: TraderLensError) -> None:
    """Show ``exc`` as a single st.error in plain words, with where the problem is."""
    if isinstance(exc, DatabaseBusy):
        st.error(f"`{exc.url}`\n\n{exc.reason}", title="The database file is in use",
                 icon=":material/lock:")
    elif isinstance(exc, DatabaseUnavailable):
        st.error(f"`{exc.url}`\n\n{exc.reason}\n\nCheck `TRADERLENS_DB_URL` and that the server "
                 "is running, then reload the page.",
                 title="Cannot reach the database", icon=":material/database_off:")
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
