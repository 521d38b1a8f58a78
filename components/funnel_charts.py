"""Funnels page rendering: the funnel bars, the conversion table, the time-to-convert histogram, the
conversion trend and the drop-off list.

Every figure is drawn from the small aggregates analytics.funnels returns (one row per step, bin or
period), so the browser receives kilobytes whatever the number of traders.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.figures import CHART_CONFIG, memoised_figure
from components.tables import fit_height, render_table

PRIMARY = "#0b6e79"
DROPPED = "#dfe6ec"
MUTED = "#8a97a6"
GRID = "#e3e9ef"
SERIES = ["#0b6e79", "#e69f00", "#1f4e8c", "#d55e00", "#56b4e9", "#2e8b57", "#8e5ea2", "#c9a66b", "#5b6b7c",
          "#cc79a7"]

EVENT_LABELS = {
    "lead_captured": "Lead captured", "registered": "Registered", "kyc_submitted": "KYC submitted",
    "kyc_approved": "KYC approved", "kyc_rejected": "KYC rejected", "deposit": "Deposit",
    "ftd": "First deposit (FTD)", "deposit_declined": "Deposit declined", "withdrawal": "Withdrawal",
    "trade": "Trade", "login": "Login",
}


def event_label(name: str) -> str:
    """'ftd' -> 'First deposit (FTD)'; a portal event 'deposit_page_view' -> 'Deposit page view'."""
    return EVENT_LABELS.get(name) or name.replace("_", " ").capitalize()


def format_duration(seconds: float | None) -> str:
    """A duration for people: '45s', '12m', '3h 20m', '2d 4h'; '—' when unknown."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    s = round(float(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f" {s % 60}s" if s < 600 and s % 60 else "")
    if s < 86_400:
        return f"{s // 3600}h" + (f" {s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86_400}d" + (f" {s % 86_400 // 3600}h" if s % 86_400 // 3600 else "")


def _step_labels(steps: pd.DataFrame) -> list[str]:
    return [f"{k}. {event_label(e)}" for k, e in zip(steps["step"], steps["event"], strict=True)]


def _layout(fig: go.Figure, *, height: int) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 36, "b": 8}, plot_bgcolor="white",
                      paper_bgcolor="white", font={"size": 13},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
                      hoverlabel={"bgcolor": "white"})
    fig.update_yaxes(gridcolor=GRID, zeroline=False)
    fig.update_xaxes(showgrid=False)
    return fig


@memoised_figure
def funnel_figure(steps: pd.DataFrame) -> go.Figure:
    """Bars per step: traders who got there (solid) on top of those lost since step 1 (light); one
    colour per breakdown value when the table has ``breakdown_value``."""
    fig = go.Figure()
    if "breakdown_value" in steps.columns:
        for i, (value, block) in enumerate(steps.groupby("breakdown_value", sort=False)):
            fig.add_bar(
                x=_step_labels(block), y=block["count"], name=str(value), marker_color=SERIES[i % len(SERIES)],
                text=[f"{r:.1%}" for r in block["conversion_rate"]], textposition="outside", cliponaxis=False,
                customdata=block[["conversion_from_previous", "drop_off"]].to_numpy(),
                hovertemplate=(f"<b>{value}</b><br>%{{x}}<br>%{{y:,}} traders · %{{text}} of step 1<br>"
                               "%{customdata[0]:.1%} of the previous step<extra></extra>"),
            )
        fig.update_layout(barmode="group", bargap=0.25)
        return _layout(fig, height=420)
    labels = _step_labels(steps)
    lost = steps["count"].iloc[0] - steps["count"] if len(steps) else steps["count"]
    fig.add_bar(
        x=labels, y=steps["count"], name="Reached the step", marker_color=PRIMARY,
        text=[f"{c:,}<br>{r:.1%}" for c, r in zip(steps["count"], steps["conversion_rate"], strict=True)],
        textposition="inside", insidetextanchor="start", textfont={"color": "white"},
        customdata=steps[["conversion_from_previous", "drop_off"]].to_numpy(),
        hovertemplate=("%{x}<br><b>%{y:,}</b> traders<br>%{customdata[0]:.1%} of the previous step<br>"
                       "%{customdata[1]:,} dropped off just before<extra></extra>"),
    )
    fig.add_bar(x=labels, y=lost, name="Lost since step 1", marker_color=DROPPED,
                hovertemplate="%{x}<br>%{y:,} traders lost since step 1<extra></extra>")
    fig.update_layout(barmode="stack", bargap=0.3)
    fig = _layout(fig, height=380)
    fig.update_layout(legend={"traceorder": "normal"})  # "Reached" first, as stacked from the bottom
    return fig


def render_funnel_chart(steps: pd.DataFrame, *, key: str) -> None:
    st.plotly_chart(funnel_figure(steps), key=key, config=CHART_CONFIG, width="stretch")


def render_conversion_table(steps: pd.DataFrame, *, key: str, file_name: str) -> None:
    """The step table with rates as percentages and times for people; the CSV keeps raw numbers."""
    shown = pd.DataFrame({
        "Step": _step_labels(steps),
        "Traders": steps["count"],
        "Conversion": steps["conversion_rate"] * 100,
        "From previous": steps["conversion_from_previous"] * 100,
        "Dropped off": steps["drop_off"],
        "Avg time": [format_duration(v) for v in steps["average_time_to_convert_s"]],
        "Median time": [format_duration(v) for v in steps["median_time_to_convert_s"]],
    })
    if "breakdown_value" in steps.columns:
        shown.insert(0, "Breakdown", steps["breakdown_value"].to_numpy())
    render_table(shown, key=key, file_name=file_name, download=steps, height=fit_height(len(shown), max_rows=20),
                 column_config={
                     "Traders": st.column_config.NumberColumn(format="localized"),
                     "Dropped off": st.column_config.NumberColumn(format="localized"),
                     "Conversion": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100,
                                                                   help="Share of step-1 traders"),
                     "From previous": st.column_config.NumberColumn(format="%.1f%%"),
                 })


def _time_unit(seconds: float) -> tuple[str, float]:
    """The unit a time axis reads best in, for times up to ``seconds``."""
    for name, size in (("days", 86_400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= 2 * size:
            return name, size
    return "seconds", 1.0


@memoised_figure
def histogram_figure(histogram: pd.DataFrame) -> go.Figure:
    """Pre-binned bars of how long traders took (the bins arrive computed), on an axis in the unit
    that suits the longest time."""
    unit, size = _time_unit(float(histogram["bin_end_s"].max()) if len(histogram) else 0.0)
    starts = histogram["bin_start_s"] / size
    widths = (histogram["bin_end_s"] - histogram["bin_start_s"]) / size
    ranges = [f"{format_duration(a)} – {format_duration(b)}"
              for a, b in zip(histogram["bin_start_s"], histogram["bin_end_s"], strict=True)]
    fig = go.Figure(go.Bar(
        x=starts + widths / 2, y=histogram["traders"], width=widths * 0.92, marker_color=PRIMARY, customdata=ranges,
        hovertemplate="%{customdata}<br><b>%{y:,}</b> traders<extra></extra>",
    ))
    fig.update_xaxes(title_text=f"Time to convert ({unit})", rangemode="tozero")
    fig.update_yaxes(title_text="Traders", tickformat=",d")
    return _layout(fig, height=340)


def render_time_histogram(histogram: pd.DataFrame, *, key: str) -> None:
    st.plotly_chart(histogram_figure(histogram), key=key, config=CHART_CONFIG, width="stretch")


@memoised_figure
def trends_figure(trends: pd.DataFrame, *, period: str) -> go.Figure:
    """Conversion rate by entry period (line) over how many traders entered (bars)."""
    fig = go.Figure()
    fig.add_bar(x=trends["period_start"], y=trends["reached_from_step_count"], name="Entered", marker_color=DROPPED,
                yaxis="y2", hovertemplate="%{x|%d %b %Y}<br>%{y:,} entered<extra></extra>")
    fig.add_scatter(x=trends["period_start"], y=trends["conversion_rate"], name="Converted %", mode="lines+markers",
                    line={"color": PRIMARY, "width": 2.5}, marker={"size": 6},
                    customdata=trends[["reached_to_step_count", "reached_from_step_count"]].to_numpy(),
                    hovertemplate=("%{x|%d %b %Y}<br><b>%{y:.2f}%</b> converted<br>"
                                   "%{customdata[0]:,} of %{customdata[1]:,}<extra></extra>"))
    fig.update_layout(
        yaxis={"title": "Converted (%)", "rangemode": "tozero", "ticksuffix": "%"},
        yaxis2={"title": "Entered", "overlaying": "y", "side": "right", "showgrid": False, "rangemode": "tozero",
                "tickformat": ",d"},
        xaxis={"title": f"Entry {period}"},
    )
    return _layout(fig, height=340)


def render_trends(trends: pd.DataFrame, *, period: str, key: str) -> None:
    st.plotly_chart(trends_figure(trends, period=period), key=key, config=CHART_CONFIG, width="stretch")


def render_dropoffs(frame: pd.DataFrame, *, key: str, file_name: str, preview_rows: int = 200) -> None:
    """The first rows of the drop-off list on screen; the CSV has every trader."""
    shown = frame.head(preview_rows).rename(columns={
        "trader_id": "Trader id", "external_id": "External id", "country": "Country",
        "acquisition_channel": "Channel", "reached_at": "Reached the step at", "breakdown_value": "Breakdown",
    })
    render_table(shown, key=key, file_name=file_name, download=frame, height=fit_height(len(shown), max_rows=10),
                 column_config={"Reached the step at": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
                                "Trader id": st.column_config.NumberColumn(format="%d")})
