"""Lifecycle page rendering: the new / returning / resurrecting / dormant bars, the stage
distribution with its VIP overlay, and the stage flows as a from-to matrix.

Every figure is drawn from the per-period or per-stage counts analytics.lifecycle returns (tens of
rows), so the browser receives kilobytes whatever the broker's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from analytics.lifecycle import NOT_CAPTURED, STAGE_LABELS, STAGES, STATUSES, compute_active, compute_quick_ratio
from analytics.periods import step_period
from components import labels
from components.figures import TEXT, memoised_figure, period_ends, period_x, render_chart, styled
from components.tables import fit_height, render_table

# The conventional lifecycle colours, in the theme's muted family (.streamlit/config.toml).
STATUS_COLORS = {"new": "#1f8a5b", "returning": "#1f4e8c", "resurrecting": "#c8771a", "dormant": "#b4232f"}
STATUS_LABELS = {"new": "New", "returning": "Returning", "resurrecting": "Resurrecting", "dormant": "Dormant"}
STATUS_HELP = labels.LIFECYCLE_STATUSES
# Funnel stages in teal (darker = further down the funnel), then the trading states.
STAGE_COLORS = {
    NOT_CAPTURED: "#c3ccd6", "lead": "#a2d4d2", "registered": "#78bfbf", "kyc_approved": "#4fa8aa",
    "ftd": "#157882", "active": "#1f8a5b", "dormant": "#c8771a", "churned": "#b4232f", "reactivated": "#1f4e8c",
}
VIP_COLOR = "#e69f00"
PERIOD_FORMATS = {"day": "%a %d %b %Y", "week": "Week of %d %b %Y", "month": "%b %Y"}
PERIOD_NOUNS = {"day": "day", "week": "week", "month": "month"}


def period_label(day, period: str) -> str:
    return f"{day:{PERIOD_FORMATS[period]}}"


def runs_past(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date) -> pd.Series:
    """True for periods that end after ``date_to``: with the data ending there, still filling up."""
    ends = [step_period(p, period, 1, week_start) - timedelta(days=1) for p in frame["period_start"]]
    return pd.Series([end > date_to for end in ends], index=frame.index)


@memoised_figure
def lifecycle_figure(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date) -> alt.LayerChart:
    """Stacked bars per period: new, returning and resurrecting above zero, dormant below. A
    period running past ``date_to`` is drawn paler: its dormant count is mostly "not yet"."""
    open_ = runs_past(frame, period=period, week_start=week_start, date_to=date_to).to_numpy()
    labels = [period_label(p, period) + (f" (data to {date_to:%d %b})" if o else "")
              for p, o in zip(frame["period_start"], open_, strict=True)]
    starts = pd.to_datetime(frame["period_start"])
    ends = period_ends(starts, period)
    # The stack is laid out here (bottom and top of each segment) because bars spanning a period
    # need x and x2, and Vega-Lite does not stack ranged bars.
    rows = []
    above = pd.Series(0, index=frame.index)
    for status in STATUSES:
        values = frame[status].astype(int)
        bottom = values if status == "dormant" else above
        top = pd.Series(0, index=frame.index) if status == "dormant" else above + values
        rows.append(pd.DataFrame({
            "start": starts, "end": ends, "label": labels, "open": open_, "status": STATUS_LABELS[status],
            "traders": values.abs(), "bottom": bottom, "top": top, "help": STATUS_HELP[status],
        }))
        if status != "dormant":
            above = top
    data = pd.concat(rows, ignore_index=True)
    data = data[data["traders"] > 0]
    names = [STATUS_LABELS[s] for s in STATUSES]
    bars = alt.Chart(data).mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=period_x("start", starts, period),
        x2="end:T",
        y=alt.Y("bottom:Q", title="Traders", axis=alt.Axis(format=",d")),
        y2="top:Q",
        color=alt.Color("status:N", scale=alt.Scale(domain=names, range=[STATUS_COLORS[s] for s in STATUSES]),
                        sort=names),
        opacity=alt.condition("datum.open", alt.value(0.4), alt.value(1.0)),
        tooltip=[alt.Tooltip("label:N", title="Period"), alt.Tooltip("status:N", title="Status"),
                 alt.Tooltip("traders:Q", title="Traders", format=","), alt.Tooltip("help:N", title=" ")],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(color="#8a97a6", strokeWidth=1.5).encode(y="y:Q")
    return styled(alt.layer(bars, zero), height=380)


def render_lifecycle_chart(frame: pd.DataFrame, *, period: str, week_start: str, date_to: date, key: str) -> None:
    render_chart(lifecycle_figure(frame, period=period, week_start=week_start, date_to=date_to), key=key)


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

    actives = compute_active(shown)
    active = int(actives.iloc[-1])
    active_before = None if before is None else int(actives.iloc[-2])
    quick_ratio = compute_quick_ratio(frame)
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
    cols[4].metric("Quick ratio", "—" if math.isnan(quick_ratio) else f"{quick_ratio:.2f}", border=True,
                   help=f"{labels.QUICK_RATIO} Over the whole range.")


def render_lifecycle_table(frame: pd.DataFrame, *, period: str, key: str, file_name: str) -> None:
    """Counts per period as a table (CSV: the raw columns plus ``active``)."""
    shown = pd.DataFrame({
        "Period": [period_label(p, period) for p in frame["period_start"]],
        **{STATUS_LABELS[s]: frame[s] for s in STATUSES},
        "Active": compute_active(frame),
    })
    export = frame.assign(active=shown["Active"].to_numpy())
    render_table(shown, key=key, file_name=file_name, download=export, height=fit_height(len(shown), max_rows=14),
                 column_config={"Dormant": st.column_config.NumberColumn(help="Negative: traders lost this period")})


@memoised_figure
def stage_figure(stages: pd.DataFrame) -> alt.LayerChart:
    """Traders per stage in funnel order, VIP traders as a narrower bar inside each."""
    data = pd.DataFrame({
        "stage": [STAGE_LABELS[s] for s in stages["stage"]], "key": stages["stage"], "traders": stages["traders"],
        "share": stages["share"], "vip": stages["vip_traders"],
        "meaning": [labels.STAGES.get(s, "") for s in stages["stage"]],
        "text": [f"{n:,} · {share:.0%}" if n else "" for n, share in zip(stages["traders"], stages["share"],
                                                                          strict=True)],
        "series": "VIP",
    })
    order = list(data["stage"])
    x = alt.X("stage:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=120))
    top = max(int(stages["traders"].max()), 1) if len(stages) else 1
    y_scale = alt.Scale(domain=[0, top * 1.15])
    tooltip = [alt.Tooltip("stage:N", title="Stage"), alt.Tooltip("traders:Q", title="Traders", format=","),
               alt.Tooltip("share:Q", title="Share", format=".1%"), alt.Tooltip("vip:Q", title="VIP", format=","),
               alt.Tooltip("meaning:N", title="Means")]
    base = alt.Chart(data).encode(x=x, tooltip=tooltip)
    everyone = base.mark_bar().encode(
        y=alt.Y("traders:Q", title="Traders", axis=alt.Axis(format=",d"), scale=y_scale),
        color=alt.Color("key:N", scale=alt.Scale(domain=list(STAGE_COLORS), range=list(STAGE_COLORS.values())),
                        legend=None))
    vip = base.mark_bar(width=alt.RelativeBandSize(0.35)).encode(
        y=alt.Y("vip:Q", scale=y_scale),
        color=alt.Color("series:N", scale=alt.Scale(domain=["VIP"], range=[VIP_COLOR]), title=None))
    numbers = base.mark_text(dy=-8, fontSize=12).encode(y=alt.Y("traders:Q", scale=y_scale), text="text:N")
    return styled(alt.layer(everyone, vip, numbers).resolve_scale(color="independent"), height=360)


def render_stage_chart(stages: pd.DataFrame, *, key: str) -> None:
    render_chart(stage_figure(stages), key=key)


@memoised_figure
def flows_figure(flows: pd.DataFrame) -> alt.LayerChart:
    """A from-to matrix: a row per stage on the first day, a column per stage on the last day, each
    cell the traders who moved so, coloured by the share of the row (the diagonal stayed put)."""
    order = [NOT_CAPTURED, *STAGES]
    out_totals = flows.groupby("from_stage")["traders"].sum()
    in_totals = flows.groupby("to_stage")["traders"].sum()
    data = pd.DataFrame({
        "from": [f"{STAGE_LABELS[s]} · {out_totals[s]:,}" for s in flows["from_stage"]],
        "to": [f"{STAGE_LABELS[s]} · {in_totals[s]:,}" for s in flows["to_stage"]],
        "move": [f"{STAGE_LABELS[a]} → {STAGE_LABELS[b]}" for a, b in zip(flows["from_stage"], flows["to_stage"],
                                                                          strict=True)],
        "traders": flows["traders"].to_numpy(),
        "share": (flows["traders"] / flows["from_stage"].map(out_totals)).to_numpy(),
    })
    rows = [f"{STAGE_LABELS[s]} · {out_totals[s]:,}" for s in order if s in out_totals.index]
    columns = [f"{STAGE_LABELS[s]} · {in_totals[s]:,}" for s in order if s in in_totals.index]
    base = alt.Chart(data).encode(
        x=alt.X("to:N", sort=columns, title="Stage on the last day",
                # Stage and count on two lines, every column labelled (they would overlap on one).
                axis=alt.Axis(orient="top", labelAngle=0, labelLimit=130, grid=False, labelOverlap=False,
                              labelExpr="split(datum.label, ' · ')")),
        y=alt.Y("from:N", sort=rows, title="Stage on the first day", axis=alt.Axis(labelLimit=180, grid=False)),
        tooltip=[alt.Tooltip("move:N", title="Move"), alt.Tooltip("traders:Q", title="Traders", format=","),
                 alt.Tooltip("share:Q", title="Share of the row", format=".1%")],
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("share:Q", scale=alt.Scale(domain=[0, 1], range=["#eef5f6", "#0b3c4d"]),
                        legend=alt.Legend(title="Share of the row", format=".0%", orient="right")))
    numbers = base.mark_text(fontSize=12).encode(
        text=alt.Text("traders:Q", format=","),
        color=alt.condition("datum.share > 0.5", alt.value("#ffffff"), alt.value(TEXT)))
    return styled(alt.layer(cells, numbers), height=max(220, 40 * len(rows)))


def render_flows(flows: pd.DataFrame, *, key: str, file_name: str) -> None:
    render_chart(flows_figure(flows), key=f"{key}.matrix")
    totals = flows.groupby("from_stage")["traders"].transform("sum")
    shown = pd.DataFrame({
        "From": flows["from_stage"].map(STAGE_LABELS), "To": flows["to_stage"].map(STAGE_LABELS),
        "Traders": flows["traders"], "Share of From": flows["traders"] / totals,
    })
    render_table(shown, key=f"{key}.table", file_name=file_name, download=flows,
                 height=fit_height(len(shown), max_rows=10),
                 column_config={"Share of From": st.column_config.ProgressColumn(format="percent", min_value=0,
                                                                                max_value=1)})


def segment_stages_frame(stages: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Stage distributions of several groups (name -> :func:`analytics.lifecycle.compute_stage_distribution`)
    stacked: columns ``segment``, ``stage``, ``traders``, ``share`` (of the group), ``vip_traders``, groups in
    the mapping's order and stages in ladder order."""
    columns = ["segment", "stage", "traders", "share", "vip_traders"]
    frames = [frame.assign(segment=name) for name, frame in stages.items()]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


@memoised_figure
def segment_stages_figure(frame: pd.DataFrame) -> alt.LayerChart:
    """A 100% bar per group (its stage shares, in ladder order), labelled with the group's size."""
    sizes = frame.groupby("segment", sort=False)["traders"].sum()
    data = frame[frame["traders"] > 0].assign(
        group=lambda f: [f"{name} · {sizes[name]:,}" for name in f["segment"]],
        label=lambda f: [STAGE_LABELS[s] for s in f["stage"]],
        order=lambda f: [STAGES.index(s) for s in f["stage"]])
    groups = [f"{name} · {size:,}" for name, size in sizes.items()]
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("group:N", sort=groups, title=None, axis=alt.Axis(labelLimit=260)),
        x=alt.X("share:Q", stack="zero", title="Share of the group's traders", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("label:N", title=None, sort=[STAGE_LABELS[s] for s in STAGES],
                        scale=alt.Scale(domain=[STAGE_LABELS[s] for s in STAGES],
                                        range=[STAGE_COLORS[s] for s in STAGES])),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("segment:N", title="Traders"), alt.Tooltip("label:N", title="Stage"),
                 alt.Tooltip("traders:Q", title="Count", format=","), alt.Tooltip("share:Q", title="Share",
                                                                                 format=".1%")])
    return styled(chart, height=alt.Step(34))  # a fixed band per group, however many


def render_segment_stages(stages: Mapping[str, pd.DataFrame], *, key: str, file_name: str) -> None:
    """Each group's stage distribution as a 100% bar (``stages``: name -> distribution, the reference first),
    and the counts as a table (a row per group, a column per stage) with a CSV of every figure."""
    frame = segment_stages_frame(stages)
    render_chart(segment_stages_figure(frame), key=f"{key}.chart")
    shown = frame.pivot(index="segment", columns="stage", values="traders").reindex(list(stages))[list(STAGES)]
    shown.columns = [STAGE_LABELS[s] for s in shown.columns]
    shown = shown.reset_index().rename(columns={"segment": "Traders"})
    render_table(shown, key=f"{key}.table", file_name=file_name, download=frame, height=fit_height(len(shown)),
                 column_config={c: st.column_config.NumberColumn(format="localized") for c in shown.columns[1:]})
