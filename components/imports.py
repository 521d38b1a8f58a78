"""The file-import panel's output: the parsed preview and the result of an import."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from components.errors import render_error
from components.text import escape_markdown
from connectors.errors import TraderLensError

if TYPE_CHECKING:
    from connectors.importers import ImportResult

KIND_LABELS = {
    "auto": "Detect automatically",
    "mt4-statement": "MT4 statement (HTML)",
    "mt5-report": "MT5 report (HTML / XLSX)",
    "mt5-deals": "MT5 deals export",
    "traders": "Traders",
    "accounts": "Accounts",
    "trades": "Trades",
    "transactions": "Transactions (payment ledger)",
    "kyc_events": "KYC events",
    "sessions": "Sessions (logins)",
    "portal_events": "Portal events",
}


def kind_label(kind: str) -> str:
    """Human name of an importer kind, for the kind selectbox."""
    return KIND_LABELS.get(kind, kind)


def render_preview(kind: str, preview: pd.DataFrame, *, key: str) -> None:
    """The first parsed rows of an uploaded file and the kind it was read as."""
    st.markdown(f"Read as **{kind_label(kind)}** (`{kind}`) — first {len(preview)} parsed rows:")
    with st.container(key=key):
        st.dataframe(preview, hide_index=True, height="auto")


def render_import_outcome(outcome: ImportResult | TraderLensError) -> None:
    """An ImportResult as a success summary, or the rejection in plain words."""
    if isinstance(outcome, TraderLensError):
        render_error(outcome)
        return
    inserted = {table: n for table, n in outcome.inserted.items() if n}
    updated = {table: n for table, n in outcome.updated.items() if n}
    total, changed = sum(inserted.values()), sum(updated.values())
    details = ", ".join(f"{n:,} {table}" for table, n in inserted.items())
    repeats = outcome.skipped - outcome.unchanged
    message = (
        f"Read {outcome.rows_read:,} rows as `{outcome.kind}`; inserted {total:,} "
        f"({details or 'nothing new'}); updated {changed:,}; unchanged {outcome.unchanged:,}"
        + (f"; skipped {repeats:,} repeated in the file" if repeats else "") + "."
    )
    if outcome.changed_fields:
        fields = ", ".join(f"{field} ({n:,})" for field, n in sorted(outcome.changed_fields.items()))
        message += (f" Changed: {fields}; the previous values are in the change history "
                    f"(`cli.py changes --import {outcome.import_id}`).")
    file = escape_markdown(outcome.file)  # the uploaded file's name, chosen outside
    if total == 0 and changed == 0 and outcome.rows_read:
        st.info(message + " Every row was already loaded.", title=f"{file}: nothing new",
                icon=":material/info:")
    else:
        st.success(message, title=f"Imported {file}", icon=":material/task_alt:")
