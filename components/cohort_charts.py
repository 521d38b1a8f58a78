"""Cohorts page rendering: retention heatmap, table and curves, LTV curves, engagement bars.

Every figure is built from the small aggregates analytics.cohorts returns (a few hundred cells at
most), so the browser receives kilobytes.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.cohorts import ALL_COHORTS, EngagementResult, RetentionResult
from components.figures import CHART_CONFIG, memoised_figure
from components.tables import fit_height, render_table

Show = Literal["percent", "counts"]

PRIMARY = "#0b6e79"
MUTED = "#8a97a6"
ACCENT = "#e69f00"
COHORT_LINE = "rgba(11, 110, 121, 0.22)"
GRID = "#e3e9ef"
# The theme's sequential teal, lightest first; an unobserved cell stays blank.
SEQUENTIAL = ["#e6f4f3", "#c7e6e4", "#a2d4d2", "#78bfbf", "#4fa8aa", "#2e9096", "#157882", "#0b6e79",
              "#0a5563", "#0b3c4d"]

EVENT_LABELS = {
    "lead_captured": "Lead captured", "registered": "Registered", "kyc_submitted": "KYC submitted",
    "kyc_approved": "KYC approved", "kyc_rejected": "KYC rejected", "deposit": "Deposit",
    "ftd": "First deposit (FTD)", "deposit_declined": "Deposit declined", "withdrawal": "Withdrawal",
    "trade": "Trade", "login": "Login",
}
PERIOD_NAMES = {"day": "Day", "week": "Week", "month": "Month"}
COHORT_FORMATS = {"day": "%a %d %b %Y", "week": "%d %b %Y", "month": "%b %Y"}


def event_label(name: str) -> str:
    """'ftd' → 'First deposit (FTD)'; a portal event 'deposit_page_view' → 'Deposit page view'."""
    return EVENT_LABELS.get(name) or name.replace("_", " ").capitalize()


def column_label(period: str, k: int) -> str:
    return f"{PERIOD_NAMES[period]} {k}"


def cohort_labels(result: RetentionResult) -> list[str]:
    fmt = COHORT_FORMATS[result.spec.period]
    prefix = "Week of " if result.spec.period == "week" else ""
    return [f"{prefix}{ts:{fmt}}" for ts in result.counts["cohort_start"]]


def _cells(result: RetentionResult) -> tuple[np.ndarray, np.ndarray]:
    """(counts, percent) matrices with NaN where a cell is not observed or the cohort is empty."""
    cols = result.columns
    observed = result.observed().to_numpy() & (result.counts["size"].to_numpy() > 0)[:, None]
    counts = np.where(observed, result.counts[cols].to_numpy(dtype=float), np.nan)
    percent = np.where(observed, result.percentages[cols].to_numpy(dtype=float) * 100, np.nan)
    return counts, percent


@memoised_figure
def retention_heatmap(result: RetentionResult, *, show: Show = "percent") -> go.Figure:
    """Cohort sizes on the left, then % retained per period (colour) with counts or % as text."""
    period = result.spec.period
    labels = cohort_labels(result)
    x = [column_label(period, k) for k in result.columns]
    counts, percent = _cells(result)
    sizes = result.counts["size"].to_numpy()
    # Column 0 is always 100%: scale the colours to the later columns or they all look pale.
    later = percent[:, 1:]
    top = float(np.nanmax(later)) if later.size and not np.isnan(later).all() else 100.0
    text = np.where(np.isnan(percent), "",
                    np.vectorize(lambda p, c: f"{p:.1f}%" if show == "percent" else f"{c:,.0f}")(
                        np.nan_to_num(percent), np.nan_to_num(counts)))
    size_grid = np.repeat(sizes[:, None], len(x), axis=1)
    custom = np.dstack([np.nan_to_num(counts), size_grid])

    # A year of weekly cohorts still fits a screen or two; hundreds of daily ones shrink to a strip each.
    row_px = 30 if len(labels) <= 20 else 22 if len(labels) <= 60 else max(4, 1500 // len(labels))
    legible = row_px >= 20 and percent.size <= 600  # room for a number in each cell
    gap = 2 if row_px >= 12 else 0
    # Two x axes side by side on one shared category y axis (what make_subplots would build, without
    # its ~50 ms of grid bookkeeping on every rerun).
    sizes_trace = go.Heatmap(
        z=np.zeros((len(labels), 1)), x=["Traders"], y=labels, text=[[f"{s:,}"] for s in sizes], xaxis="x",
        texttemplate="%{text}" if row_px >= 20 else None, colorscale=[[0, "#f2f5f8"], [1, "#f2f5f8"]],
        showscale=False, xgap=2, ygap=gap,
        hovertemplate="%{y}<br>%{text} traders in the cohort<extra></extra>", textfont={"color": "#14243a"},
    )
    cells_trace = go.Heatmap(
        z=percent, x=x, y=labels, text=text, texttemplate="%{text}" if legible else None, xaxis="x2",
        customdata=custom, colorscale=[[i / (len(SEQUENTIAL) - 1), c] for i, c in enumerate(SEQUENTIAL)],
        zmin=0, zmax=max(top, 1.0), xgap=2, ygap=gap, hoverongaps=False,
        colorbar={"title": {"text": "% of cohort"}, "ticksuffix": "%", "thickness": 12, "len": 0.8},
        hovertemplate="%{y} · %{customdata[1]:,} traders<br>%{x}: %{customdata[0]:,} back (%{z:.1f}%)"
                      "<extra></extra>",
    )
    axis = {"side": "top", "type": "category", "showgrid": False, "ticks": ""}
    return go.Figure([sizes_trace, cells_trace], layout={
        "xaxis": {**axis, "domain": [0, 0.082]}, "xaxis2": {**axis, "domain": [0.09, 1.0]},
        "yaxis": {"autorange": "reversed", "type": "category", "showgrid": False, "ticks": ""},
        "height": 90 + row_px * len(labels), "margin": {"l": 8, "r": 8, "t": 40, "b": 8},
        "plot_bgcolor": "#ffffff",
    })


def render_retention_metrics(result: RetentionResult) -> None:
    """Traders and cohorts in the matrix, and the average retention one period later and at the last column."""
    sizes = result.counts["size"]
    average = result.average()
    unit = PERIOD_NAMES[result.spec.period].lower()
    cols = st.columns(4)
    cols[0].metric("Traders in cohorts", f"{int(sizes.sum()):,}", border=True,
                   help="Sum of cohort sizes; in “every period” mode a trader can be in several cohorts.")
    cols[1].metric("Cohorts", f"{int((sizes > 0).sum()):,}", border=True)
    for col, k in zip(cols[2:], sorted({1, result.spec.intervals - 1}), strict=False):
        rate = average.loc[k, "rate"]
        col.metric(f"Back in {unit} {k}", "—" if math.isnan(rate) else f"{rate:.1%}", border=True,
                   help=f"Size-weighted average over the {int(average.loc[k, 'cohorts'])} cohorts old enough to "
                        f"have a {unit} {k}.")


def render_retention_heatmap(result: RetentionResult, *, show: Show, key: str) -> None:
    st.plotly_chart(retention_heatmap(result, show=show), key=key, config=CHART_CONFIG)


def retention_table(result: RetentionResult, *, show: Show) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shown frame, CSV frame): cohort, size and one column per period as "61.3%" or "1,234" text (blank
    where the period lies after the range: st.dataframe would print "None"); the CSV carries counts and
    fractions as numbers, unobserved cells empty."""
    period = result.spec.period
    counts, percent = _cells(result)
    names = [column_label(period, k) for k in result.columns]
    values = percent if show == "percent" else counts
    fmt = "{:.1f}%" if show == "percent" else "{:,.0f}"
    shown = pd.DataFrame([["" if np.isnan(v) else fmt.format(v) for v in row] for row in values], columns=names,
                         dtype=object)
    shown.insert(0, "Traders", result.counts["size"].to_numpy())
    shown.insert(0, "Cohort", result.counts["cohort_start"].dt.date)
    export = pd.DataFrame({"cohort_start": result.counts["cohort_start"].dt.date, "size": result.counts["size"]})
    for k, name in zip(result.columns, names, strict=True):
        export[f"{name.lower().replace(' ', '_')}_count"] = pd.array(counts[:, k], dtype="Int64")
    for k, name in zip(result.columns, names, strict=True):
        export[f"{name.lower().replace(' ', '_')}_rate"] = percent[:, k] / 100
    return shown, export


def render_retention_table(result: RetentionResult, *, show: Show, key: str) -> None:
    shown, export = retention_table(result, show=show)
    render_table(shown, key=key, file_name="traderlens_retention.csv", download=export,
                 height=fit_height(len(shown), max_rows=16),
                 column_config={"Cohort": st.column_config.DateColumn(format="YYYY-MM-DD", pinned=True),
                                "Traders": st.column_config.NumberColumn(format="localized"),
                                **{c: st.column_config.TextColumn(alignment="right") for c in shown.columns[2:]}})


def _thin_lines(lines: list[tuple[str, list, list]], *, name: str, hover: str) -> go.Scatter:
    """Many cohort lines as ONE trace, separated by gaps: a trace per cohort costs ~10 ms to build and
    slows the browser, and a year of weekly cohorts has 52. ``hover`` may use %{text} (the label)."""
    xs: list = []
    ys: list = []
    labels: list = []
    for label, x, y in lines:
        xs += [*x, None]
        ys += [*y, None]
        labels += [label] * len(x) + [None]
    return go.Scatter(x=xs, y=ys, text=labels, mode="lines", name=name, connectgaps=False,
                      line={"color": COHORT_LINE, "width": 1.5}, hovertemplate=hover)


@memoised_figure
def retention_curves(result: RetentionResult) -> go.Figure:
    """% of each cohort back per period (thin lines) and the size-weighted average (bold)."""
    period = result.spec.period
    _, percent = _cells(result)
    lines = [(label, result.columns[: int((~np.isnan(row)).sum())], row[~np.isnan(row)].tolist())
             for label, row in zip(cohort_labels(result), percent, strict=True) if not np.isnan(row).all()]
    fig = go.Figure(_thin_lines(lines, name="One cohort",
                                hover=f"%{{text}}<br>{PERIOD_NAMES[period]} %{{x}}: %{{y:.1f}}%<extra></extra>"))
    avg = result.average()
    fig.add_scatter(x=avg["interval"], y=avg["rate"] * 100, mode="lines+markers", name="Average (size-weighted)",
                    line={"color": PRIMARY, "width": 3}, marker={"size": 6}, customdata=avg[["cohorts", "size"]],
                    hovertemplate=f"Average · {PERIOD_NAMES[period]} %{{x}}: %{{y:.1f}}%<br>"
                                  "%{customdata[0]} cohorts, %{customdata[1]:,} traders<extra></extra>")
    fig.update_xaxes(title=f"{PERIOD_NAMES[period]}s after the cohort's {PERIOD_NAMES[period].lower()}",
                     dtick=1, gridcolor=GRID)
    fig.update_yaxes(title="% of cohort", ticksuffix="%", rangemode="tozero", gridcolor=GRID)
    fig.update_layout(height=360, margin={"l": 8, "r": 8, "t": 28, "b": 8}, plot_bgcolor="#ffffff",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0})
    return fig


def render_retention_curves(result: RetentionResult, *, key: str) -> None:
    st.plotly_chart(retention_curves(result), key=key, config=CHART_CONFIG)


@memoised_figure
def ltv_figure(net: pd.DataFrame, deposits: pd.DataFrame, *, period: str) -> go.Figure:
    """USD per trader by age since FTD: a thin net-deposit line per FTD cohort, the pooled net-deposit
    curve (bold) and the pooled deposit curve (MT5 "Lifetime Value", dashed); the gap is withdrawals."""
    unit = {"day": "Days", "week": "Weeks", "month": "30-day months"}[period]
    fmt = COHORT_FORMATS[period]
    lines = [(f"{part['cohort_start'].iloc[0]:{fmt}} cohort ({part['cohort_size'].iloc[0]:,} traders)",
              part["age"].tolist(), part["value_per_trader"].tolist())
             for _, part in net[net["cohort"] != ALL_COHORTS].groupby("cohort", sort=True)]
    fig = go.Figure(_thin_lines(lines, name="One FTD cohort (net)",
                                hover="%{text}<br>age %{x}: $%{y:,.0f} net per trader<extra></extra>"))
    for frame, name, line in ((deposits, "Deposits, all cohorts (MT5 LTV)", {"color": ACCENT, "width": 2.5,
                                                                             "dash": "dash"}),
                              (net, "Net deposits, all cohorts", {"color": PRIMARY, "width": 3})):
        pooled = frame[frame["cohort"] == ALL_COHORTS]
        fig.add_scatter(x=pooled["age"], y=pooled["value_per_trader"], mode="lines+markers", name=name, line=line,
                        marker={"size": 6}, customdata=pooled[["cohort_size"]],
                        hovertemplate=f"{name}<br>age %{{x}}: $%{{y:,.0f}} per trader "
                                      "(%{customdata[0]:,} traders old enough)<extra></extra>")
    fig.update_xaxes(title=f"{unit} since FTD", dtick=1, gridcolor=GRID)
    fig.update_yaxes(title="USD per trader", tickprefix="$", tickformat="~s", gridcolor=GRID,
                     zerolinecolor="#c5d0db")
    fig.update_layout(height=380, plot_bgcolor="#ffffff", margin={"l": 8, "r": 8, "t": 28, "b": 8},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0})
    return fig


def render_ltv(net: pd.DataFrame, deposits: pd.DataFrame, *, period: str, key: str) -> None:
    """Both LTV definitions in one chart, and both as one CSV."""
    st.plotly_chart(ltv_figure(net, deposits, period=period), key=f"{key}.chart", config=CHART_CONFIG)
    pooled = (net[net["cohort"] == ALL_COHORTS][["age", "cohort_size", "value_per_trader"]]
              .merge(deposits[deposits["cohort"] == ALL_COHORTS][["age", "value_per_trader"]], on="age",
                     suffixes=("_net", "_deposits"), how="outer"))
    shown = pooled.rename(columns={"age": "Age", "cohort_size": "Traders",
                                   "value_per_trader_net": "Net deposits / trader",
                                   "value_per_trader_deposits": "Deposits / trader"})
    export = pd.concat([net.assign(metric="net_deposits"), deposits.assign(metric="deposits")], ignore_index=True)
    with st.expander("All-cohorts curves as a table", icon=":material/table:"):
        render_table(shown, key=f"{key}.table", file_name="traderlens_ltv.csv", download=export,
                     height=fit_height(len(shown), max_rows=12),
                     column_config={"Traders": st.column_config.NumberColumn(format="localized"),
                                    "Net deposits / trader": st.column_config.NumberColumn(format="dollar"),
                                    "Deposits / trader": st.column_config.NumberColumn(format="dollar")})


def format_ratio(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}×"


def render_engagement_headline(result: EngagementResult) -> None:
    """The relative risk as a metric with its interval and the two groups' sizes."""
    t = result.threshold
    ci = ("no interval (a group has no retained trader)" if math.isnan(result.rr_low)
          else f"95% CI {result.rr_low:.2f}–{result.rr_high:.2f}")
    cols = st.columns(3)
    cols[0].metric(f"Retention, {t}+ vs under {t} sessions", format_ratio(result.rr), border=True,
                   help=f"Relative risk: retention rate of traders with {t} or more sessions divided by that of "
                        f"traders with fewer; {ci} (Katz log method).")
    cols[1].metric(f"Retained with {t}+ sessions", _rate(result.rate_high), border=True,
                   help=f"{result.retained_high:,} of {result.n_high:,} traders")
    cols[2].metric(f"Retained under {t} sessions", _rate(result.rate_low), border=True,
                   help=f"{result.retained_low:,} of {result.n_low:,} traders")
    st.caption(f"{ci} · n = {result.n_high:,} traders with {t}+ sessions and {result.n_low:,} with fewer.")


def _rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1%}"


@memoised_figure
def engagement_figure(result: EngagementResult) -> go.Figure:
    """Retention rate per session bucket with 95% Wilson whiskers; buckets at or above the threshold in teal."""
    b = result.buckets
    rate = b["rate"] * 100
    colors = [PRIMARY if low >= result.threshold else MUTED for low in b["low"]]
    fig = go.Figure(go.Bar(
        x=b["bucket"], y=rate, marker_color=colors,
        error_y={"type": "data", "array": (b["rate_high"] * 100 - rate).fillna(0),
                 "arrayminus": (rate - b["rate_low"] * 100).fillna(0), "color": "#14243a", "thickness": 1.2,
                 "width": 6},
        text=[f"n={n:,}" for n in b["traders"]], textposition="inside", insidetextanchor="start",
        customdata=b[["retained", "traders", "rate_low", "rate_high"]],
        hovertemplate="%{x} sessions: %{y:.1f}% retained<br>%{customdata[0]:,} of %{customdata[1]:,} traders<br>"
                      "95% CI %{customdata[2]:.1%}–%{customdata[3]:.1%}<extra></extra>",
    ))
    fig.update_xaxes(title=f"{event_label(result.session_event)} sessions in the first {result.first_days} days "
                           "after FTD", type="category")
    fig.update_yaxes(title=f"% retained (days {result.retained_from_day}–{result.retained_to_day - 1})",
                     ticksuffix="%", rangemode="tozero", gridcolor=GRID)
    fig.update_layout(height=340, margin={"l": 8, "r": 8, "t": 16, "b": 8}, plot_bgcolor="#ffffff", bargap=0.3)
    return fig


def render_engagement(result: EngagementResult, *, key: str, note: str = "") -> None:
    """Headline metrics, bars by session bucket, the definition in plain words, and the buckets table."""
    render_engagement_headline(result)
    st.plotly_chart(engagement_figure(result), key=f"{key}.chart", config=CHART_CONFIG)
    st.caption(f"{result.definition()} {note}".strip())
    b = result.buckets
    shown = pd.DataFrame({"Sessions": b["bucket"], "Traders": b["traders"], "Retained": b["retained"],
                          "Rate": b["rate"] * 100, "95% CI low": b["rate_low"] * 100,
                          "95% CI high": b["rate_high"] * 100})
    pct = st.column_config.NumberColumn(format="%.1f%%")
    with st.expander("Buckets as a table", icon=":material/table:"):
        render_table(shown, key=f"{key}.table", file_name="traderlens_engagement.csv", download=b,
                     height=fit_height(len(shown)),
                     column_config={"Traders": st.column_config.NumberColumn(format="localized"),
                                    "Retained": st.column_config.NumberColumn(format="localized"),
                                    "Rate": pct, "95% CI low": pct, "95% CI high": pct})
