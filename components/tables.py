"""Tables with a CSV download next to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from analytics.export import to_csv

ROW_PX = 35  # st.dataframe's default row height; used to size a table to show every row


def fit_height(rows: int, *, max_rows: int = 30) -> int:
    """Pixel height that shows ``rows`` rows (plus the header) without an inner scrollbar."""
    return ROW_PX * (min(rows, max_rows) + 1) + 2


def render_table(
    frame: pd.DataFrame,
    *,
    key: str,
    file_name: str,
    column_config: Mapping[str, Any] | None = None,
    height: int | str = "auto",
    download: pd.DataFrame | None = None,
    downloadable: bool = True,
) -> None:
    """``frame`` as a read-only table and, if ``downloadable``, a "Download CSV" button.

    ``download`` is the frame to export when it differs from the one shown (raw values instead of
    display labels). The CSV is built only when the button is clicked, by analytics.export.to_csv (text
    that a spreadsheet would run as a formula is neutralised).
    """
    export = frame if download is None else download
    # The key goes on a container: a read-only st.dataframe does not keep its key, and tests and
    # browser selectors need a stable handle (.st-key-<key>).
    with st.container(key=key, gap="xsmall"):
        st.dataframe(frame, hide_index=True, column_config=column_config, height=height,
                     row_height=ROW_PX)
        if not downloadable:
            return
        st.download_button(
            "Download CSV", data=lambda: to_csv(export), file_name=file_name,
            mime="text/csv", key=f"{key}.download", on_click="ignore", icon=":material/download:",
            type="tertiary",
        )
