"""Shared fixtures of the AppTest suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st

from connectors import database


@pytest.fixture(autouse=True)
def _fresh_streamlit_state() -> Iterator[None]:
    """Streamlit caches and our engines are process-wide; no test may see another's."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    database.dispose_engines()
