"""What every chart module shares: the memoisation of chart builders, the Vega-Lite look, and how a
chart is put on the page.

Every chart is Altair (Vega-Lite), with one exception. Streamlit loads a chart library's JavaScript
the first time a tab shows one of its charts: Plotly's bundle is 4.7 MB and took 1.2-1.5 s to
compile in every new tab here, which the 3 s first-render target cannot afford (benchmarks/README.md,
"Pages"). The exception is the Predictions page's SHAP beeswarm and dependence plots
(components/predictions_card.py): up to 60,000 points want WebGL (Plotly's scattergl), and they sit
in the model card's tab, which is drawn only when opened.

Building an Altair chart costs 15-30 ms here, and a page that answers an interaction from
``st.cache_data`` still reruns every builder: with three or four charts that was a fifth of a
cached rerun. ``st.cache_resource`` hands back the same chart object, never a pickled copy; that is
safe because ``st.altair_chart`` only reads it (it serialises a copy) and no caller changes a chart
after its builder returns it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import altair as alt
import pandas as pd
import streamlit as st

F = TypeVar("F", bound=Callable)

TEXT = "#14243a"
GRID = "#e3e9ef"
AXIS_LINE = "#c5d0db"


def memoised_figure(builder: F) -> F:
    """Cache ``builder`` (a pure function of data frames, results and options) per its arguments."""
    return st.cache_resource(ttl="10m", max_entries=64, show_spinner=False)(builder)


def styled(chart: alt.TopLevelMixin, *, height: int) -> alt.TopLevelMixin:
    """The house look: light grid, no frame, legend on top, left-aligned; ``height`` in pixels."""
    return (chart.properties(height=height)
            .configure_view(stroke=None)
            .configure_axis(gridColor=GRID, domainColor=AXIS_LINE, tickColor=AXIS_LINE, labelColor=TEXT,
                            titleColor=TEXT, titleFontWeight="normal", labelFontSize=12, titleFontSize=12)
            .configure_legend(orient="top", title=None, labelFontSize=12, symbolStrokeWidth=2)
            .configure_text(color=TEXT))


def render_chart(chart: alt.TopLevelMixin, *, key: str) -> None:
    """One chart the width of its container (keyed, so a rerun updates it in place)."""
    st.altair_chart(chart, width="stretch", key=key)


def period_ends(starts: pd.Series, period: str) -> pd.Series:
    """The start of the next period for each period start (day, week or calendar month): bars on a
    time axis span [start, end)."""
    starts = pd.to_datetime(starts)
    if period == "month":
        return starts + pd.DateOffset(months=1)
    return starts + pd.Timedelta(days=7 if period == "week" else 1)


PERIOD_TICK_FORMATS = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}


def period_x(field: str, starts: pd.Series, period: str, *, title: str | None = None) -> alt.X:
    """A UTC time axis with its ticks on the periods' starts. Left alone, Vega-Lite puts weekly ticks
    on Sundays, beside bars of weeks starting on Monday, and reads times in the browser's zone, where
    every date here is a UTC day (a broker in New York would see each bar labelled a day early)."""
    values = [alt.DateTime(year=ts.year, month=ts.month, date=ts.day, utc=True) for ts in pd.to_datetime(starts)]
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(values=values, format=PERIOD_TICK_FORMATS[period], labelOverlap=True, grid=False))
