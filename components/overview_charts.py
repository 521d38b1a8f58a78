"""Overview charts: KPI trend against the previous period, breakdown by a trader attribute, asset classes.

Altair (Vega-Lite) rather than Plotly here: the Overview is the landing page, and in measurements
on the demo broker the Plotly bundle alone added about 1.5 s to a first render in Chromium, which
the 3 s target cannot afford. Every chart takes pre-aggregated frames (a few dozen rows).
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from analytics.periods import Period
from components import labels
from components.figures import memoised_figure, period_ends, period_x
from components.tables import fit_height, render_table

CURRENT_COLOR = "#0b6e79"
PREVIOUS_COLOR = "#8a97a6"
GAIN_COLOR = "#1f8a5b"
LOSS_COLOR = "#b4232f"
PARTIAL_OPACITY = 0.4  # a period only partly inside the range

# d3 number formats per KPI unit, for axes and tooltips.
AXIS_FORMATS = {"usd": "$~s", "count": "~s", "pct": ".0%", "hours": ",.0f"}
TOOLTIP_FORMATS = {"usd": "$,.0f", "count": ",.0f", "pct": ".1%", "hours": ",.1f"}
PERIOD_FORMATS = {"day": "%a %d %b %Y", "week": "week of %d %b %Y", "month": "%B %Y"}


def _trend_frame(frame: pd.DataFrame, period: Period, series: str) -> pd.DataFrame:
    """period_start/value[/partial] with each period's end and middle (bars span the period) and its
    name as text for the tooltip (a temporal tooltip prints the browser's zone, a day early west of UTC)."""
    out = frame.assign(period_end=period_ends(frame["period_start"], period), series=series,
                       period=[f"{p:{PERIOD_FORMATS[period]}}" for p in frame["period_start"]])
    out["middle"] = out["period_start"] + (out["period_end"] - out["period_start"]) / 2
    if "partial" not in out:
        out["partial"] = False
    return out


@memoised_figure
def trend_chart(current: pd.DataFrame, previous: pd.DataFrame | None, *, label: str, unit: str,
                period: Period, previous_name: str, as_line: bool) -> alt.LayerChart:
    """Bars (flows) or a line (levels) of ``current`` (period_start, value, partial), with ``previous``
    as a dotted grey line already shifted onto the current periods, when given. Periods only partly
    inside the range are drawn pale."""
    value_format = TOOLTIP_FORMATS.get(unit, ",.2f")
    now = _trend_frame(current, period, label)
    compared = previous is not None and not previous.empty
    series = [label, previous_name] if compared else [label]
    colors = alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                       scale=alt.Scale(domain=series, range=[CURRENT_COLOR, PREVIOUS_COLOR][:len(series)]))
    tooltip = [alt.Tooltip("period:N", title="Period"),
               alt.Tooltip("value:Q", title=label, format=value_format),
               alt.Tooltip("partial:N", title="Partial period")]
    y = alt.Y("value:Q", title=None, axis=alt.Axis(format=AXIS_FORMATS.get(unit, "~s")))
    opacity = alt.condition("datum.partial", alt.value(PARTIAL_OPACITY), alt.value(1.0))
    if as_line:
        main = alt.Chart(now).mark_line(point=True, strokeWidth=2.5).encode(
            x=period_x("middle", now["period_start"], period), y=y, color=colors, opacity=opacity, tooltip=tooltip)
    else:
        # x to x2 spans the whole period; y2 = 0 keeps Vega-Lite from reading x/x2 as a horizontal bar.
        main = alt.Chart(now).mark_bar(stroke="white", strokeWidth=1).encode(
            x=period_x("period_start", now["period_start"], period), x2="period_end:T", y=y, y2=alt.datum(0),
            color=colors, opacity=opacity, tooltip=tooltip)
    layers: list[alt.Chart] = [main]
    if compared:
        before = _trend_frame(previous, period, previous_name)
        layers.append(alt.Chart(before).mark_line(strokeDash=[4, 3], strokeWidth=2).encode(
            x="middle:T", y="value:Q", color=colors,
            tooltip=[alt.Tooltip("value:Q", title=previous_name, format=value_format)]))
    return alt.layer(*layers).properties(height=320)


def render_trend(current: pd.DataFrame, previous: pd.DataFrame | None, *, label: str, unit: str, period: Period,
                 previous_name: str, as_line: bool, key: str) -> None:
    chart = trend_chart(current, previous, label=label, unit=unit, period=period, previous_name=previous_name,
                        as_line=as_line)
    st.altair_chart(chart, width="stretch", key=key)


def _hbar(frame: pd.DataFrame, *, category: str, value: str, title: str, unit: str, color: alt.Color | alt.Value,
          tooltip: list) -> alt.Chart:
    """Horizontal bars in the frame's order (largest first)."""
    return alt.Chart(frame).mark_bar(cornerRadiusEnd=2).encode(
        y=alt.Y(f"{category}:N", sort=list(frame[category]), title=None, axis=alt.Axis(labelLimit=160)),
        x=alt.X(f"{value}:Q", title=title, axis=alt.Axis(format=AXIS_FORMATS.get(unit, "~s"))),
        color=color, tooltip=tooltip,
    ).properties(height=alt.Step(26))  # a fixed band per bar: every label shows, however many bars


def _by_sign(field: str, positive: str) -> alt.Color:
    return alt.condition(f"datum.{field} < 0", alt.value(LOSS_COLOR), alt.value(positive))


@memoised_figure
def breakdown_chart(frame: pd.DataFrame, *, metric: str, label: str, unit: str) -> alt.Chart:
    """Horizontal bars of ``metric`` per ``value``, largest first, "Other" last (the frame's order)."""
    codes = [alt.Tooltip("value_code:N", title="Code")] if "value_code" in frame else []  # a country's ISO code
    return _hbar(frame, category="value", value=metric, title=label, unit=unit,
                 color=_by_sign(metric, CURRENT_COLOR),
                 tooltip=[alt.Tooltip("value:N", title=" "), *codes,
                          alt.Tooltip(f"{metric}:Q", title=label, format=TOOLTIP_FORMATS.get(unit, ",.2f"))])


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


def render_breakdown(frame: pd.DataFrame, *, metric: str, metric_label: str, unit: str, dimension: str,
                     dimension_label: str, file_name: str, key: str) -> None:
    """Bar chart of one metric above a table of every metric, with a CSV download of the frame (its ``value``
    column named after the ``dimension``: country, acquisition_channel…). Countries and channels are shown by
    name (the chart's tooltip and the CSV keep the code)."""
    named = labels.with_names(frame, "value", dimension)
    st.altair_chart(breakdown_chart(named, metric=metric, label=metric_label, unit=unit), width="stretch",
                    key=f"{key}.chart")
    view = named[["value", *BREAKDOWN_TABLE]].rename(
        columns={"value": dimension_label, **{c: name for c, (name, _) in BREAKDOWN_TABLE.items()}})
    view["FTD conv. 7d"] = view["FTD conv. 7d"] * 100  # shown as 12.3%, the CSV keeps the fraction
    render_table(
        view, key=f"{key}.table", file_name=file_name, download=frame.rename(columns={"value": dimension}),
        height=fit_height(len(view)),
        column_config={
            name: st.column_config.NumberColumn(
                format="%.1f%%" if fmt == "percent" else fmt,
                help="Cohort-based: registrations at least 7 days before the data end that deposited within 7 days"
                if fmt == "percent" else None)
            for name, fmt in BREAKDOWN_TABLE.values()
        },
    )


@memoised_figure
def asset_class_charts(frame: pd.DataFrame) -> tuple[alt.Chart, alt.Chart]:
    """Notional volume per asset class, and closed client P&L (green where clients won, red where
    they lost)."""
    tooltip = [alt.Tooltip("asset_class:N", title="Asset class"),
               alt.Tooltip("notional_usd:Q", title="Notional", format="$,.0f"),
               alt.Tooltip("trades:Q", title="Trades", format=","),
               alt.Tooltip("lots:Q", title="Lots", format=",.2f"),
               alt.Tooltip("client_pnl:Q", title="Client P&L", format="$,.0f")]
    volume = _hbar(frame, category="asset_class", value="notional_usd", title="Notional volume (USD)", unit="usd",
                   color=alt.value(CURRENT_COLOR), tooltip=tooltip)
    pnl = _hbar(frame, category="asset_class", value="client_pnl", title="Closed client P&L (USD)", unit="usd",
                color=_by_sign("client_pnl", GAIN_COLOR), tooltip=tooltip)
    return volume, pnl


def render_asset_classes(frame: pd.DataFrame, *, key: str) -> None:
    """Volume and client P&L by asset class side by side, and the figures as a table."""
    volume, pnl = asset_class_charts(frame)
    volume_col, pnl_col = st.columns(2, gap="medium")
    volume_col.altair_chart(volume, width="stretch", key=f"{key}.volume")
    pnl_col.altair_chart(pnl, width="stretch", key=f"{key}.pnl")
    view = frame.rename(columns={"asset_class": "Asset class", "trades": "Trades", "lots": "Lots",
                                 "notional_usd": "Notional (USD)", "client_pnl": "Client P&L (USD)"})
    render_table(view, key=f"{key}.table", file_name="traderlens_asset_classes.csv", download=frame,
                 height=fit_height(len(view)),
                 column_config={"Trades": st.column_config.NumberColumn(format="localized"),
                                "Lots": st.column_config.NumberColumn(format="localized"),
                                "Notional (USD)": st.column_config.NumberColumn(format="dollar"),
                                "Client P&L (USD)": st.column_config.NumberColumn(format="dollar")})
