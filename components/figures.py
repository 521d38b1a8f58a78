"""Charts memoised per their inputs, for the chart modules.

Building a Plotly figure (every property validated) costs 15-30 ms per chart here, an Altair chart
about as much, and a page that
answers an interaction from ``st.cache_data`` still reruns every builder: with three or four charts
that was a fifth of a cached rerun (benchmarks/README.md, "Pages"). ``st.cache_resource`` hands
back the same Figure (or Altair chart) object, never a pickled copy; that is safe because
``st.plotly_chart`` and ``st.altair_chart`` only read it (each serialises a copy) and no caller
changes a chart after its builder returns it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

F = TypeVar("F", bound=Callable)

CHART_CONFIG = {"displayModeBar": False}


def memoised_figure(builder: F) -> F:
    """Cache ``builder`` (a pure function of data frames, results and options) per its arguments."""
    return st.cache_resource(ttl="10m", max_entries=64, show_spinner=False)(builder)
