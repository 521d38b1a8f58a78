"""A trader's timeline: everything they did on one zoomable time axis, a row (lane) per kind of thing.

Vega-Lite (Altair), like every chart of the app: the points above, and under them the trader's
activity per day as a range slider; drag across the slider to zoom the points into that span, drag
the span to move it, double-click it to see everything again. Plotly (WebGL markers and its own
range slider) was measured first: its 4.7 MB bundle, loaded in every new tab, added 2-3 s to this
page's first render on a loaded 2-core machine, past the 2 s this page must render in
(benchmarks/trader360_bench.py). Hover texts come from the data; Vega-Lite shows tooltip text as
text, never HTML.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from analytics.trader360 import LANES, Timeline
from components.figures import AXIS_LINE, GRID, TEXT, memoised_figure

_GREEN, _RED, _AMBER, _TEAL, _BLUE, _GREY, _PURPLE = ("#1f8a5b", "#b4232f", "#e69f00", "#0b6e79", "#1f4e8c",
                                                      "#8a97a6", "#8e5ea2")
KIND_LABELS = {
    "lead_captured": "Lead captured", "registered": "Registered", "kyc_submitted": "KYC documents submitted",
    "kyc_approved": "KYC approved", "kyc_rejected": "KYC rejected", "kyc_resubmission": "KYC resubmission asked",
    "account_opened": "Trading account opened", "deposit": "Deposit", "withdrawal": "Withdrawal", "bonus": "Bonus",
    "bonus_cancel": "Bonus cancelled", "adjustment": "Adjustment", "fee": "Fee", "ib_commission": "IB commission",
    "trade_opened": "Position opened", "trade_closed": "Position closed", "login": "Login",
}
# What a point is drawn as (the legend), by lane and, for money and closed positions, by status.
STYLES: dict[str, tuple[str, str]] = {  # name -> (shape, colour)
    "Onboarding": ("diamond", _TEAL),
    "Approved": ("circle", _GREEN),
    "Declined": ("cross", _RED),
    "Pending": ("circle", _AMBER),
    "Reversed or charged back": ("triangle-down", _PURPLE),
    "Opened": ("triangle-up", _BLUE),
    "Closed in profit": ("circle", _GREEN),
    "Closed at a loss": ("circle", _RED),
    "Login": ("circle", _GREY),
    "Portal event": ("square", _PURPLE),
}
_LEDGER_STYLES = {"approved": "Approved", "declined": "Declined", "pending": "Pending",
                  "reversed": "Reversed or charged back", "chargeback": "Reversed or charged back"}
HEIGHT = 300
SLIDER_HEIGHT = 60
MARKER = 60  # Vega-Lite area (px²) of one event's mark
MAX_MARKER = 600  # of the busiest day of a source drawn per day


def _money(x: float) -> str:
    return f"{'−' if x < 0 else ''}${abs(x):,.2f}"


def style_of(lane: str, kind: str, status: object) -> str:
    """The legend name (a key of :data:`STYLES`) a point is drawn with."""
    if lane == "Onboarding":
        return "Onboarding"
    if kind == "trade_opened":
        return "Opened"
    if kind == "trade_closed":
        return "Closed in profit" if status == "profit" else "Closed at a loss"
    if kind == "login":
        return "Login"
    if lane == "Portal":
        return "Portal event"
    return _LEDGER_STYLES.get(str(status), "Pending")


def headline(kind: str, status: object, amount: float, events: int) -> str:
    """What happened, as a tooltip's first line: how many (for a day's total), the amount and status."""
    name = KIND_LABELS.get(kind, kind)
    if events > 1:
        if kind == "trade_closed":
            name = f"{events:,} positions closed {'in profit' if status == 'profit' else 'at a loss'}"
        elif kind == "trade_opened":
            name = f"{events:,} positions opened"
        else:
            name = f"{events:,} × {name}"
    parts = [name]
    if not math.isnan(amount):
        parts.append(("P&L " if kind == "trade_closed" else "notional " if kind == "trade_opened" else "")
                     + _money(amount))
    if status and kind != "trade_closed":
        parts.append(str(status))
    return " · ".join(parts)


def timeline_data(timeline: Timeline) -> pd.DataFrame:
    """The points as the chart draws them: lane, time, style, size and the tooltip's lines."""
    p = timeline.points
    busiest = max(int(p["events"].max()), 1) if len(p) else 1
    return pd.DataFrame({
        "lane": p["lane"].to_numpy(),
        "at": p["occurred_at"].to_numpy(),
        "style": [style_of(lane, kind, status) for lane, kind, status in zip(p["lane"], p["kind"], p["status"],
                                                                             strict=True)],
        "size": (MARKER + (MAX_MARKER - MARKER) * np.sqrt((p["events"] - 1) / max(busiest - 1, 1))).round(1),
        "what": [headline(k, s, a, e) for k, s, a, e in zip(p["kind"], p["status"], p["amount_usd"], p["events"],
                                                            strict=True)],
        "detail": [d[:200] for d in p["detail"]],
        "day_total": ["yes" if e > 1 else "" for e in p["events"]],
    })


@memoised_figure
def timeline_figure(timeline: Timeline) -> alt.VConcatChart:
    """The points by lane over time, and the activity per day beneath as the range slider that zooms them."""
    data = timeline_data(timeline)
    lanes = [lane for lane in LANES if lane in set(data["lane"])]
    used = [name for name in STYLES if name in set(data["style"])]
    span = alt.selection_interval(encodings=["x"], name="span")
    legend = alt.Legend(title=None, orient="top", direction="horizontal", symbolSize=80)
    points = alt.Chart(data).mark_point(filled=True, opacity=0.85, strokeWidth=1.5).encode(
        x=alt.X("at:T", title=None, scale=alt.Scale(domain=span), axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("lane:N", sort=lanes, title=None, axis=alt.Axis(labelLimit=140, grid=True)),
        # One legend: shape and colour share the field and the legend's settings, so Vega-Lite merges them.
        shape=alt.Shape("style:N", scale=alt.Scale(domain=used, range=[STYLES[n][0] for n in used]), legend=legend),
        color=alt.Color("style:N", scale=alt.Scale(domain=used, range=[STYLES[n][1] for n in used]), legend=legend),
        size=alt.Size("size:Q", scale=None, legend=None),
        tooltip=[alt.Tooltip("what:N", title="What"), alt.Tooltip("at:T", title="When (UTC)",
                                                                  format="%d %b %Y %H:%M:%S"),
                 alt.Tooltip("detail:N", title="Detail"), alt.Tooltip("day_total:N", title="Day's total")],
    ).properties(height=HEIGHT)
    per_day = (data.assign(day=pd.to_datetime(data["at"]).dt.floor("D"), n=1).groupby("day", as_index=False)["n"]
               .sum())
    slider = alt.Chart(per_day).mark_bar(color=_GREY, width=2).encode(
        x=alt.X("day:T", title=None, axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("n:Q", title=None, axis=None),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b %Y"), alt.Tooltip("n:Q", title="Points")],
    ).add_params(span).properties(height=SLIDER_HEIGHT)
    return (alt.vconcat(points, slider, spacing=6)
            .properties(usermeta={"embedOptions": {"renderer": "canvas"}})
            .configure_view(stroke=None)
            .configure_axis(gridColor=GRID, domainColor=AXIS_LINE, tickColor=AXIS_LINE, labelColor=TEXT,
                            labelFontSize=12)
            .configure_legend(labelFontSize=12, symbolStrokeWidth=2))


def render_timeline(timeline: Timeline, *, key: str) -> None:
    """The timeline chart in a container keyed ``key`` (a stable handle for tests and browsers), or a note
    when the window holds nothing."""
    with st.container(key=key):
        if timeline.points.empty:
            st.info("Nothing happened in this window.", icon=":material/event_busy:")
            return
        st.altair_chart(timeline_figure(timeline), width="stretch", key=f"{key}.chart")
