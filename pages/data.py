"""Data (admin): what is loaded, importing a broker file, and whether the data can be trusted."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from analytics import data_health
from components import health, imports, page
from components.errors import render_error
from connectors.errors import TraderLensError
from connectors.importers import KINDS, import_file, preview_file
from server import engine as db

UPLOAD_TYPES = ["csv", "html", "htm", "xlsx"]
OUTCOME = "data.import_outcome"  # session-state slot for the last import's result or rejection
UPLOAD_GENERATION = "data.upload_generation"  # part of the uploader's key, bumped by each import
COPY_BYTES = 1 << 20
IMPORTED_BY = "app"  # who the change history names for an upload here, until sign-in names the user


load_summary = page.loader(data_health.compute_table_summary, ttl="1m", max_entries=8)
load_recent_imports = page.loader(data_health.compute_recent_imports, ttl="1m", max_entries=8)
load_quality_checks = page.loader(data_health.compute_quality_checks, ttl="5m", max_entries=8,
                                  spinner="Checking data quality…")
load_volume_outliers = page.loader(data_health.compute_volume_outliers, ttl="5m", max_entries=8,
                                   spinner="Checking volume against equity…")
load_period_drivers = page.loader(data_health.compute_period_drivers, ttl="5m", max_entries=8)


@contextmanager
def saved_upload(upload: UploadedFile) -> Iterator[Path]:
    """The upload as a temporary file with its original name (and extension), deleted on exit.

    Copied a megabyte at a time: ``getvalue()`` would make a second in-memory copy of the file.
    """
    with tempfile.TemporaryDirectory(prefix="traderlens-upload-") as tmp:
        path = Path(tmp) / Path(upload.name).name
        upload.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload, out, COPY_BYTES)
        yield path


@st.cache_data(ttl="10m", max_entries=4, show_spinner="Reading the file…")
def load_preview(file_id: str, name: str, size: int, kind: str, _upload: UploadedFile) -> tuple[str, pd.DataFrame]:
    """(kind, first parsed rows) of an upload. Cached by the upload's id, name and size, never by
    its bytes, which cost a getvalue() copy and hashing the whole file on every rerun."""
    with saved_upload(_upload) as path:
        return preview_file(path, kind, file_name=name, rows=20)


def upload_key() -> str:
    """The uploader's key: "data.upload", then a new one after each import (an empty uploader)."""
    generation = st.session_state.get(UPLOAD_GENERATION, 0)
    return f"data.upload.{generation}" if generation else "data.upload"


def release_upload(upload: UploadedFile) -> None:
    """Drop Streamlit's own copy of an imported file now instead of at the end of the session
    (what st.chat_input does with its files)."""
    ctx = get_script_run_ctx()
    if ctx is not None and isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=upload.file_id)


def forget_outcome() -> None:
    st.session_state.pop(OUTCOME, None)


def run_import() -> None:
    """Import the uploaded file with the chosen options (Import button callback).

    After an import the uploader starts empty and Streamlit's copy of the file is released; a
    refused file stays in place to be imported again with other options.
    """
    upload = st.session_state.get(upload_key())
    if upload is None:
        return
    trader = st.session_state.get("data.trader", "").strip() or None
    try:
        with saved_upload(upload) as path:
            result = import_file(
                db.get_writer_engine(), path, kind=st.session_state.get("data.kind", "auto"), trader=trader,
                create_missing_traders=st.session_state.get("data.create_traders", False),
                file_name=upload.name, changed_by=IMPORTED_BY,
            )
    except TraderLensError as exc:
        st.session_state[OUTCOME] = exc
        return
    st.session_state[OUTCOME] = result
    release_upload(upload)
    st.session_state[UPLOAD_GENERATION] = st.session_state.get(UPLOAD_GENERATION, 0) + 1
    st.cache_data.clear()  # every cached figure, on this page and others, may now be stale; the preview too


page.header("Data", "What is loaded, how fresh it is, and whether it can be trusted.", needs_data=False)

summary = load_summary()
has_data = bool(summary.loc[summary["kind"] == "table", "rows"].sum())

st.subheader("What is loaded", divider="gray", anchor=False)
if has_data:
    health.render_load_metrics(summary)
    health.render_table_summary(summary, key="data.summary")
else:
    health.render_empty_state()
recent = load_recent_imports()
if has_data or not recent.empty:
    st.markdown("**Recent imports**")
    health.render_recent_imports(recent, key="data.imports")

st.subheader("Import a file", divider="gray", anchor=False)
with st.container(border=True):
    file_col, options_col = st.columns([3, 2], gap="large")
    with file_col:
        upload = st.file_uploader(
            "Broker file", type=UPLOAD_TYPES, key=upload_key(), on_change=forget_outcome,
            help="CSV exports of the back office, MT4 statements, MT5 reports (HTML or XLSX).",
        )
    with options_col:
        kind = st.selectbox("Kind", ("auto", *KINDS), key="data.kind", format_func=imports.kind_label,
                            on_change=forget_outcome)
        st.text_input("Trader external id", key="data.trader", on_change=forget_outcome,
                      help="For MT4/MT5 terminal reports, which do not name the client.")
        st.checkbox("Create missing traders", key="data.create_traders", on_change=forget_outcome,
                    help="Add a trader for every unknown trader id instead of rejecting the file.")
    if upload is not None:
        try:
            detected, preview = load_preview(upload.file_id, upload.name, upload.size, kind, upload)
        except TraderLensError as exc:
            render_error(exc)
        else:
            imports.render_preview(detected, preview, key="data.preview")
            st.button("Import", key="data.import", type="primary", icon=":material/upload:",
                      on_click=run_import)
    if OUTCOME in st.session_state:
        imports.render_import_outcome(st.session_state[OUTCOME])

st.subheader("Data quality", divider="gray", anchor=False)
if has_data:
    health.render_quality_checks(load_quality_checks(), key="data.checks")
    st.markdown("**Volume against equity**")
    health.render_volume_outliers(load_volume_outliers(), key="data.volume_outliers")
    st.markdown("**Periods decided by one trader**")
    health.render_period_drivers(load_period_drivers(), key="data.period_drivers")
else:
    st.caption("Checks run once there is data.")
