"""Overview charts: KPI trend against the previous period, breakdown by a trader attribute, asset classes.

Every chart takes pre-aggregated frames (a few dozen rows), so the browser receives kilobytes.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.tables import fit_height, render_table

CURRENT_COLOR = "#0b6e79"
PARTIAL_COLOR = "#a2d4d2"  # the current colour, pale: a period only partly inside the range
PREVIOUS_COLOR = "#8a97a6"
GAIN_COLOR = "#1f8a5b"
LOSS_COLOR = "#b4232f"
CHART_CONFIG = {"displayModeBar": False}

# Plotly number formats per KPI unit (d3-format), for axes and hover labels.
AXIS_FORMATS = {"usd": "$~s", "count": "~s", "lots": "~s", "pct": ".0%", "hours": ".1f"}
HOVER_FORMATS = {"usd": "$,.0f", "count": ",.0f", "lots": ",.2f", "pct": ".1%", "hours": ",.1f"}
PERIOD_FORMATS = {"day": "%a %d %b %Y", "week": "week of %d %b %Y", "month": "%B %Y"}


def _layout(fig: go.Figure, *, height: int, unit: str | None = None, horizontal: bool = False) -> go.Figure:
    value_axis = {"tickformat": AXIS_FORMATS.get(unit or "", "~s"), "gridcolor": "#e3e9ef", "zeroline": True,
                  "zerolinecolor": "#c5d0db"}
    fig.update_layout(
        height=height, margin={"l": 8, "r": 8, "t": 28, "b": 8}, bargap=0.25,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "title": None},
        hovermode="x unified" if not horizontal else "closest",
    )
    if horizontal:
        fig.update_xaxes(**value_axis)
        fig.update_yaxes(autorange="reversed", title=None)
    else:
        fig.update_yaxes(**value_axis, title=None)
        fig.update_xaxes(title=None)
    return fig


def trend_figure(current: pd.DataFrame, previous: pd.DataFrame | None, *, label: str, unit: str,
                 period: str, previous_name: str, as_line: bool) -> go.Figure:
    """Bars (flows) or a line (levels) of ``current`` (period_start, value, partial), with ``previous``
    as a dotted grey line already shifted onto the current periods, when given. Periods that reach
    outside the range (``partial``) are drawn pale: they hold only part of a period."""
    value_format = HOVER_FORMATS.get(unit, ",.2f")
    partial = current["partial"] if "partial" in current else pd.Series(False, index=current.index)
    note = ["<br><i>part of the period only</i>" if p else "" for p in partial]
    hover = f"%{{y:{value_format}}}%{{customdata}}"
    x_format = PERIOD_FORMATS.get(period, "%d %b %Y")
    fig = go.Figure()
    if as_line:
        fig.add_scatter(x=current["period_start"], y=current["value"], name=label, mode="lines+markers",
                        line={"color": CURRENT_COLOR, "width": 2.5}, customdata=note, hovertemplate=hover,
                        marker={"size": 7, "color": [PARTIAL_COLOR if p else CURRENT_COLOR for p in partial]})
    else:
        fig.add_bar(x=current["period_start"], y=current["value"], name=label, customdata=note,
                    marker_color=[PARTIAL_COLOR if p else CURRENT_COLOR for p in partial], hovertemplate=hover)
    if previous is not None and not previous.empty:
        fig.add_scatter(x=previous["period_start"], y=previous["value"], name=previous_name, mode="lines",
                        line={"color": PREVIOUS_COLOR, "width": 2, "dash": "dot"},
                        hovertemplate=f"%{{y:{value_format}}}")
    fig.update_xaxes(hoverformat=x_format)
    return _layout(fig, height=340, unit=unit)


def render_trend(current: pd.DataFrame, previous: pd.DataFrame | None, *, label: str, unit: str, period: str,
                 previous_name: str, as_line: bool, key: str) -> None:
    fig = trend_figure(current, previous, label=label, unit=unit, period=period, previous_name=previous_name,
                       as_line=as_line)
    st.plotly_chart(fig, key=key, config=CHART_CONFIG)


def breakdown_figure(frame: pd.DataFrame, *, metric: str, label: str, unit: str) -> go.Figure:
    """Horizontal bars of ``metric`` per ``value`` in the frame's order (largest first, "Other" last)."""
    values = frame[metric]
    colors = [LOSS_COLOR if v < 0 else CURRENT_COLOR for v in values.fillna(0)]
    fig = go.Figure(go.Bar(
        x=values, y=frame["value"], orientation="h", marker_color=colors, name=label,
        hovertemplate=f"%{{y}}: %{{x:{HOVER_FORMATS.get(unit, ',.2f')}}}<extra></extra>",
    ))
    return _layout(fig, height=max(200, 26 * len(frame) + 50), unit=unit, horizontal=True)


# Display names and formats of compute_breakdown's columns in the table.
BREAKDOWN_TABLE = {
    "registrations": ("Registrations", "localized"),
    "ftds": ("FTDs", "localized"),
    "ftd_conversion": ("FTD conv. 7d", "percent"),
    "deposits": ("Deposits", "dollar"),
    "withdrawals": ("Withdrawals", "dollar"),
    "net_deposits": ("Net deposits", "dollar"),
    "active_traders": ("Active traders", "localized"),
    "volume_usd": ("Volume (USD)", "dollar"),
}


def render_breakdown(frame: pd.DataFrame, *, metric: str, metric_label: str, unit: str, dimension_label: str,
                     file_name: str, key: str) -> None:
    """Bar chart of one metric above a table of every metric, with a CSV download of the frame."""
    st.plotly_chart(breakdown_figure(frame, metric=metric, label=metric_label, unit=unit),
                    key=f"{key}.chart", config=CHART_CONFIG)
    view = frame[["value", *BREAKDOWN_TABLE]].rename(
        columns={"value": dimension_label, **{c: name for c, (name, _) in BREAKDOWN_TABLE.items()}})
    view["FTD conv. 7d"] = view["FTD conv. 7d"] * 100  # shown as 12.3%, the CSV keeps the fraction
    render_table(
        view, key=f"{key}.table", file_name=file_name, download=frame, height=fit_height(len(view)),
        column_config={
            name: st.column_config.NumberColumn(
                format="%.1f%%" if fmt == "percent" else fmt,
                help="Cohort-based: registrations at least 7 days before the data end that deposited within 7 days"
                if fmt == "percent" else None)
            for name, fmt in BREAKDOWN_TABLE.values()
        },
    )


def asset_class_figure(frame: pd.DataFrame) -> go.Figure:
    """Notional volume per asset class (bars) with the closed client P&L in the hover."""
    fig = go.Figure(go.Bar(
        x=frame["notional_usd"], y=frame["asset_class"], orientation="h", marker_color=CURRENT_COLOR,
        customdata=frame[["trades", "lots", "client_pnl"]].to_numpy(),
        hovertemplate="%{y}: %{x:$,.0f} notional<br>%{customdata[0]:,} trades, %{customdata[1]:,.2f} lots"
                      "<br>client P&L %{customdata[2]:$,.0f}<extra></extra>",
    ))
    return _layout(fig, height=max(200, 40 * len(frame) + 50), unit="usd", horizontal=True)


def pnl_figure(frame: pd.DataFrame) -> go.Figure:
    """Closed client P&L per asset class: green where clients won, red where they lost."""
    colors = [LOSS_COLOR if v < 0 else GAIN_COLOR for v in frame["client_pnl"]]
    fig = go.Figure(go.Bar(
        x=frame["client_pnl"], y=frame["asset_class"], orientation="h", marker_color=colors,
        hovertemplate="%{y}: %{x:$,.0f}<extra></extra>",
    ))
    return _layout(fig, height=max(200, 40 * len(frame) + 50), unit="usd", horizontal=True)


def render_asset_classes(frame: pd.DataFrame, *, key: str) -> None:
    """Volume and client P&L by asset class side by side, and the figures as a table."""
    volume_col, pnl_col = st.columns(2, gap="medium")
    with volume_col:
        st.markdown("**Notional volume**")
        st.plotly_chart(asset_class_figure(frame), key=f"{key}.volume", config=CHART_CONFIG)
    with pnl_col:
        st.markdown("**Closed client P&L**")
        st.plotly_chart(pnl_figure(frame), key=f"{key}.pnl", config=CHART_CONFIG)
    view = frame.rename(columns={"asset_class": "Asset class", "trades": "Trades", "lots": "Lots",
                                 "notional_usd": "Notional (USD)", "client_pnl": "Client P&L (USD)"})
    render_table(view, key=f"{key}.table", file_name="traderlens_asset_classes.csv", download=frame,
                 height=fit_height(len(view)),
                 column_config={"Trades": st.column_config.NumberColumn(format="localized"),
                                "Lots": st.column_config.NumberColumn(format="localized"),
                                "Notional (USD)": st.column_config.NumberColumn(format="dollar"),
                                "Client P&L (USD)": st.column_config.NumberColumn(format="dollar")})
