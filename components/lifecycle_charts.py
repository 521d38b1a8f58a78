"""Lifecycle page rendering: the new / returning / resurrecting / dormant bars, the stage
distribution with its VIP overlay, and the stage flows as a Sankey.

Every figure is drawn from the per-period or per-stage counts analytics.lifecycle returns (tens of
rows), so the browser receives kilobytes whatever the broker's size.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.lifecycle import NOT_CAPTURED, STAGE_LABELS, STAGES, STATUSES
from analytics.periods import step_period
from components.figures import CHART_CONFIG, memoised_figure
from components.tables import fit_height, render_table

TEXT = "#14243a"
GRID = "#e3e9ef"

# The conventional lifecycle colours, in the theme's muted family (.streamlit/config.toml).
STATUS_COLORS = {"new": "#1f8a5b", "returning": "#1f4e8c", "resurrecting": "#c8771a", "dormant": "#b4232f"}
STATUS_LABELS = {"new": "New", "returning": "Returning", "resurrecting": "Resurrecting", "dormant": "Dormant"}
STATUS_HELP = {
    "new": "first-ever activity in this period",
    "returning": "active in the previous period too",
    "resurrecting": "active again after at least one quiet period",
    "dormant": "active in the previous period, not in this one",
}
# Funnel stages in teal (darker = further down the funnel), then the trading states.
STAGE_COLORS = {
    NOT_CAPTURED: "#c3ccd6", "lead": "#a2d4d2", "registered": "#78bfbf", "kyc_approved": "#4fa8aa",
    "ftd": "#157882", "active": "#1f8a5b", "dormant": "#c8771a", "churned": "#b4232f", "reactivated": "#1f4e8c",
}
VIP_COLOR = "#e69f00"
PERIOD_FORMATS = {"day": "%a %d %b %Y", "week": "Week of %d %b %Y", "month": "%b %Y"}
PERIOD_NOUNS = {"day": "day", "week": "week", "month": "month"}


def _layout(fig: go.Figure, *, height: int, legend: bool = True) -> go.Figure:
    fig.update_layout(
        height=height, margin={"l": 8, "r": 8, "t": 36 if legend else 12, "b": 8}, plot_bgcolor="#ffffff",
        font={"color": TEXT}, showlegend=legend, hoverlabel={"bgcolor": "#ffffff"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title": None},
    )
    fig.update_xaxes(showgrid=False, linecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor="#8a97a6", zerolinewidth=1.5)
    return fig


def period_label(day, period: str) -> str:
    return f"{day:{PERIOD_FORMATS[period]}}"


def runs_past(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date) -> pd.Series:
    """True for periods that end after ``date_to``: with the data ending there, still filling up."""
    ends = [step_period(p, period, 1, week_start) - timedelta(days=1) for p in frame["period_start"]]
    return pd.Series([end > date_to for end in ends], index=frame.index)


@memoised_figure
def lifecycle_figure(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date) -> go.Figure:
    """Stacked bars per period: new, returning and resurrecting above zero, dormant below. A
    period running past ``date_to`` is drawn paler: its dormant count is mostly "not yet"."""
    x = pd.to_datetime(frame["period_start"])
    open_ = runs_past(frame, period=period, week_start=week_start, date_to=date_to)
    labels = [period_label(p, period) + (f" (data to {date_to:%d %b})" if o else "")
              for p, o in zip(frame["period_start"], open_, strict=True)]
    fig = go.Figure()
    for status in STATUSES:
        values = frame[status]
        fig.add_bar(
            x=x, y=values, name=STATUS_LABELS[status], marker_color=STATUS_COLORS[status],
            marker_opacity=[0.4 if o else 1.0 for o in open_],
            customdata=list(zip(labels, values.abs(), strict=True)),
            hovertemplate=f"%{{customdata[0]}}<br>{STATUS_LABELS[status]}: %{{customdata[1]:,}} traders"
                          f"<br><i>{STATUS_HELP[status]}</i><extra></extra>",
        )
    fig.update_layout(barmode="relative", bargap=0.25)
    # Bars of a month are drawn a month wide by date axes; ticks on period starts keep labels aligned.
    fig.update_xaxes(tickformat={"day": "%d %b", "week": "%d %b", "month": "%b %Y"}[period])
    fig.update_yaxes(title={"text": "Traders", "font": {"size": 12}}, tickformat=",d")
    return _layout(fig, height=380)


def render_lifecycle_chart(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date, key: str) -> None:
    st.plotly_chart(lifecycle_figure(frame, period=period, week_start=week_start, date_to=date_to), key=key,
                    config=CHART_CONFIG, width="stretch")


def render_lifecycle_metrics(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date) -> None:
    """The latest complete period at a glance, with the change from the period before, and the
    range's quick ratio (traders gained per trader lost)."""
    complete = frame[~runs_past(frame, period=period, week_start=week_start, date_to=date_to)]
    shown = complete if len(complete) else frame
    latest = shown.iloc[-1]
    before = shown.iloc[-2] if len(shown) > 1 else None
    noun = PERIOD_NOUNS[period]

    def change(column: str) -> int | None:
        return None if before is None else int(abs(latest[column]) - abs(before[column]))

    active = int(latest["new"] + latest["returning"] + latest["resurrecting"])
    active_before = None if before is None else int(before["new"] + before["returning"] + before["resurrecting"])
    gained = int(frame["new"].sum() + frame["resurrecting"].sum())
    lost = int(-frame["dormant"].sum())
    cols = st.columns(5)
    cols[0].metric(f"Active, last {noun}", f"{active:,}", border=True,
                   delta=None if active_before is None else f"{active - active_before:+,}",
                   help=f"New + returning + resurrecting in the {noun} starting "
                        f"{latest['period_start']:%d %b %Y}, against the {noun} before.")
    for col, status in zip(cols[1:4], ("new", "resurrecting", "dormant"), strict=True):
        col.metric(f"{STATUS_LABELS[status]}, last {noun}", f"{abs(int(latest[status])):,}", border=True,
                   delta=None if before is None else f"{change(status):+,}",
                   delta_color="inverse" if status == "dormant" else "normal",
                   help=f"Traders {STATUS_HELP[status]}.")
    cols[4].metric("Quick ratio", "—" if lost == 0 else f"{gained / lost:.2f}", border=True,
                   help="(New + resurrecting) ÷ dormant over the whole range: above 1 the active base grows.")


def render_lifecycle_table(frame: pd.DataFrame, *, period: str, key: str, file_name: str) -> None:
    """Counts per period as a table (CSV: the raw columns plus ``active``)."""
    shown = pd.DataFrame({
        "Period": [period_label(p, period) for p in frame["period_start"]],
        **{STATUS_LABELS[s]: frame[s] for s in STATUSES},
        "Active": frame["new"] + frame["returning"] + frame["resurrecting"],
    })
    export = frame.assign(active=shown["Active"].to_numpy())
    render_table(shown, key=key, file_name=file_name, download=export, height=fit_height(len(shown), max_rows=14),
                 column_config={"Dormant": st.column_config.NumberColumn(help="Negative: traders lost this period")})


@memoised_figure
def stage_figure(stages: pd.DataFrame) -> go.Figure:
    """Traders per stage in funnel order, VIP traders as a narrower bar inside each."""
    labels = [STAGE_LABELS[s] for s in stages["stage"]]
    fig = go.Figure()
    fig.add_bar(
        x=labels, y=stages["traders"], name="All traders", marker_color=[STAGE_COLORS[s] for s in stages["stage"]],
        text=[f"{n:,}<br>{share:.0%}" if n else "" for n, share in zip(stages["traders"], stages["share"],
                                                                         strict=True)],
        textposition="outside", cliponaxis=False, customdata=stages["share"],
        hovertemplate="%{x}: %{y:,} traders (%{customdata:.1%})<extra></extra>",
    )
    fig.add_bar(
        x=labels, y=stages["vip_traders"], name="VIP", marker_color=VIP_COLOR, width=0.35,
        hovertemplate="%{x}: %{y:,} VIP traders<extra></extra>",
    )
    fig.update_layout(barmode="overlay", bargap=0.3)
    top = max(int(stages["traders"].max()), 1)
    fig.update_yaxes(title={"text": "Traders", "font": {"size": 12}}, tickformat=",d", range=[0, top * 1.18])
    return _layout(fig, height=360)


def render_stage_chart(stages: pd.DataFrame, *, key: str) -> None:
    st.plotly_chart(stage_figure(stages), key=key, config=CHART_CONFIG, width="stretch")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _stacked_centres(sizes: list[int], gap: float = 0.04) -> list[float]:
    """Vertical centres (0 = top) of nodes stacked in order with a small gap between them."""
    room = max(1.0 - gap * (len(sizes) - 1), 0.2)
    total = sum(sizes) or 1
    centres, top = [], 0.0
    for size in sizes:
        height = room * size / total
        centres.append(min(max(top + height / 2, 0.001), 0.999))
        top += height + gap
    return centres


@memoised_figure
def flows_figure(flows: pd.DataFrame) -> go.Figure:
    """Sankey from the stage on the first day (left) to the stage on the last day (right)."""
    order = [NOT_CAPTURED, *STAGES]
    left = [s for s in order if s in set(flows["from_stage"])]
    right = [s for s in order if s in set(flows["to_stage"])]
    out_totals = flows.groupby("from_stage")["traders"].sum()
    in_totals = flows.groupby("to_stage")["traders"].sum()
    labels = ([f"{STAGE_LABELS[s]} · {out_totals[s]:,}" for s in left]
              + [f"{STAGE_LABELS[s]} · {in_totals[s]:,}" for s in right])
    index = {("from", s): i for i, s in enumerate(left)} | {("to", s): len(left) + i for i, s in enumerate(right)}
    # Fixed positions keep both columns in funnel order (Plotly would otherwise reorder the nodes).
    fig = go.Figure(go.Sankey(
        arrangement="fixed",
        node={"label": labels, "pad": 14, "thickness": 16, "line": {"width": 0},
              "color": [STAGE_COLORS[s] for s in (*left, *right)],
              "x": [0.001] * len(left) + [0.999] * len(right),
              "y": _stacked_centres([out_totals[s] for s in left]) + _stacked_centres([in_totals[s] for s in right]),
              "hovertemplate": "%{label} traders<extra></extra>"},
        link={"source": [index[("from", s)] for s in flows["from_stage"]],
              "target": [index[("to", s)] for s in flows["to_stage"]],
              "value": flows["traders"],
              "color": [_rgba(STAGE_COLORS[s], 0.35) for s in flows["to_stage"]],
              "customdata": [f"{STAGE_LABELS[a]} → {STAGE_LABELS[b]}"
                             for a, b in zip(flows["from_stage"], flows["to_stage"], strict=True)],
              "hovertemplate": "%{customdata}: %{value:,} traders<extra></extra>"},
    ))
    fig.update_layout(height=max(420, 44 * max(len(left), len(right))), margin={"l": 8, "r": 8, "t": 8, "b": 8},
                      font={"color": TEXT, "size": 13})
    return fig


def render_flows(flows: pd.DataFrame, *, key: str, file_name: str) -> None:
    st.plotly_chart(flows_figure(flows), key=f"{key}.sankey", config=CHART_CONFIG, width="stretch")
    totals = flows.groupby("from_stage")["traders"].transform("sum")
    shown = pd.DataFrame({
        "From": flows["from_stage"].map(STAGE_LABELS), "To": flows["to_stage"].map(STAGE_LABELS),
        "Traders": flows["traders"], "Share of From": flows["traders"] / totals,
    })
    render_table(shown, key=f"{key}.table", file_name=file_name, download=flows,
                 height=fit_height(len(shown), max_rows=10),
                 column_config={"Share of From": st.column_config.ProgressColumn(format="percent", min_value=0,
                                                                                max_value=1)})
