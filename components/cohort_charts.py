"""Cohorts page rendering: retention heatmap, table and curves, LTV curves, engagement bars.

Every figure is built from the small aggregates analytics.cohorts returns (a few hundred cells at
most), so the browser receives kilobytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from analytics.cohorts import ALL_COHORTS, CohortRate, EngagementResult, RetentionResult
from analytics.events import entered_segment
from components.figures import TEXT, memoised_figure, render_chart, styled
from components.tables import fit_height, render_table
from components.text import escape_markdown

Show = Literal["percent", "counts"]

PRIMARY = "#0b6e79"
MUTED = "#8a97a6"
ACCENT = "#e69f00"
COHORT_LINE = "rgba(11, 110, 121, 0.22)"
SIZE_FILL = "#f2f5f8"
UNFINISHED_OPACITY = 0.4  # an unfinished cell, drawn pale as Overview and Lifecycle draw partial periods
UNFINISHED_MARK = "*"  # after an unfinished cell's number, in the heatmap and the table
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
    """'ftd' → 'First deposit (FTD)'; a portal event 'deposit_page_view' → 'Deposit page view'; an "entered
    segment" event 'segment:VIP churners' → 'Entered segment: VIP churners'."""
    segment = entered_segment(name)
    if segment is not None:
        return f"Entered segment: {segment}"
    return EVENT_LABELS.get(name) or name.replace("_", " ").capitalize()


def column_label(period: str, k: int) -> str:
    return f"{PERIOD_NAMES[period]} {k}"


def cohort_labels(result: RetentionResult) -> list[str]:
    fmt = COHORT_FORMATS[result.spec.period]
    prefix = "Week of " if result.spec.period == "week" else ""
    return [f"{prefix}{ts:{fmt}}" for ts in result.counts["cohort_start"]]


def _cells(result: RetentionResult) -> tuple[np.ndarray, np.ndarray]:
    """(counts, percent) matrices with NaN where a cell is not observed (after the range, or a period that
    has not happened yet) or the cohort is empty: every figure and table leaves those blank, never 0."""
    cols = result.columns
    observed = result.observed().to_numpy() & (result.counts["size"].to_numpy() > 0)[:, None]
    counts = np.where(observed, result.counts[cols].to_numpy(dtype=float), np.nan)
    percent = np.where(observed, result.percentages[cols].to_numpy(dtype=float) * 100, np.nan)
    return counts, percent


def _included(result: RetentionResult, include_unfinished: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_cells` with unfinished cells blanked too, unless ``include_unfinished``: what the curves
    draw, as :meth:`RetentionResult.average` averages."""
    counts, percent = _cells(result)
    if include_unfinished:
        return counts, percent
    final = result.complete().to_numpy()
    return np.where(final, counts, np.nan), np.where(final, percent, np.nan)


def unfinished_note(result: RetentionResult) -> str:
    """Why a cell is unfinished, for a tooltip: '… the week is not over (data to 06 Dec 2026)'."""
    end = f" (data to {result.data_end:%d %b %Y})" if result.data_end is not None else ""
    return f"Unfinished: the {PERIOD_NAMES[result.spec.period].lower()} is not over{end}, so it can still rise"


@memoised_figure
def retention_heatmap(result: RetentionResult, *, show: Show = "percent") -> alt.LayerChart:
    """Cohort sizes in a first column, then % retained per period (colour) with counts or % as text.
    Unfinished cells (a period not over at the data's end) are pale, marked * and say so in the tooltip."""
    period = result.spec.period
    labels = cohort_labels(result)
    names = [column_label(period, k) for k in result.columns]
    counts, percent = _cells(result)
    sizes = result.counts["size"].to_numpy()
    unfinished = result.unfinished().to_numpy()
    n_rows, n_cols = percent.shape
    observed = ~np.isnan(percent)
    rows, cols = np.nonzero(observed)
    note = unfinished_note(result)
    cells = pd.DataFrame({
        "cohort": np.asarray(labels, dtype=object)[rows], "column": np.asarray(names, dtype=object)[cols],
        "percent": percent[rows, cols], "count": counts[rows, cols], "size": sizes[rows],
        "unfinished": unfinished[rows, cols],
    })
    cells["status"] = np.where(cells["unfinished"], note, "Final")
    mark = np.where(cells["unfinished"], UNFINISHED_MARK, "")
    cells["text"] = ([f"{p:.1f}%{m}" for p, m in zip(cells["percent"], mark, strict=True)] if show == "percent"
                     else [f"{c:,.0f}{m}" for c, m in zip(cells["count"], mark, strict=True)])
    growing = unfinished[:, 0]  # the cohort's own period is not over: its size can still grow
    size_cells = pd.DataFrame({"cohort": labels, "column": "Traders", "size": sizes,
                               "status": np.where(growing, note, "Final"),
                               "text": [f"{v:,}{UNFINISHED_MARK if g else ''}" for v, g in
                                        zip(sizes, growing, strict=True)]})
    # Column 0 is always 100%: scale the colours to the later columns or they all look pale.
    later = percent[:, 1:]
    top = float(np.nanmax(later)) if later.size and observed[:, 1:].any() else 100.0
    top = max(top, 1.0)

    # A year of weekly cohorts still fits a screen or two; hundreds of daily ones shrink to a strip each.
    row_px = 30 if n_rows <= 20 else 22 if n_rows <= 60 else max(4, 1500 // max(n_rows, 1))
    legible = row_px >= 20 and n_rows * n_cols <= 600  # room for a number in each cell
    x = alt.X("column:N", sort=["Traders", *names], title=None,
              axis=alt.Axis(orient="top", labelAngle=0, ticks=False, domain=False, grid=False))
    y = alt.Y("cohort:N", sort=labels, title=None,
              axis=alt.Axis(ticks=False, domain=False, grid=False, labels=row_px >= 12, labelLimit=220))
    gap = 2 if row_px >= 12 else 0
    size_layer = alt.Chart(size_cells).encode(
        x=x, y=y, tooltip=[alt.Tooltip("cohort:N", title="Cohort"),
                           alt.Tooltip("size:Q", title="Traders in the cohort", format=","),
                           alt.Tooltip("status:N", title="Status")])
    layers = [size_layer.mark_rect(color=SIZE_FILL, stroke="white", strokeWidth=gap)]
    cell_layer = alt.Chart(cells).encode(
        x=x, y=y, tooltip=[alt.Tooltip("cohort:N", title="Cohort"), alt.Tooltip("size:Q", title="Traders", format=","),
                           alt.Tooltip("column:N", title="Period"), alt.Tooltip("count:Q", title="Back", format=","),
                           alt.Tooltip("percent:Q", title="% of cohort", format=".1f"),
                           alt.Tooltip("status:N", title="Status")])
    layers.append(cell_layer.mark_rect(stroke="white", strokeWidth=gap).encode(
        opacity=alt.condition("datum.unfinished", alt.value(UNFINISHED_OPACITY), alt.value(1.0)),
        color=alt.Color("percent:Q", title="% of cohort",
                        scale=alt.Scale(domain=[0, top], range=SEQUENTIAL, clamp=True),
                        legend=alt.Legend(orient="right", gradientLength=160, labelExpr="datum.label + '%'"))))
    if row_px >= 20:
        layers.append(size_layer.mark_text(fontSize=12, color=TEXT).encode(text="text:N"))
    if legible:
        layers.append(cell_layer.mark_text(fontSize=11).encode(
            text="text:N", color=alt.condition(f"datum.percent > {top * 0.55:.3f}", alt.value("#ffffff"),
                                               alt.value(TEXT))))
    return styled(alt.layer(*layers), height=row_px * n_rows)


def render_retention_metrics(result: RetentionResult, *, include_unfinished: bool = False) -> None:
    """Traders and cohorts in the matrix, and the average retention one period later and at the last column
    (unfinished cells left out unless ``include_unfinished``)."""
    sizes = result.counts["size"]
    average = result.average(include_unfinished=include_unfinished)
    unit = PERIOD_NAMES[result.spec.period].lower()
    cols = st.columns(4)
    cols[0].metric("Traders in cohorts", f"{int(sizes.sum()):,}", border=True,
                   help="Sum of cohort sizes; in “every period” mode a trader can be in several cohorts.")
    cols[1].metric("Cohorts", f"{int((sizes > 0).sum()):,}", border=True)
    for col, k in zip(cols[2:], sorted({1, result.spec.intervals - 1}), strict=False):
        rate = average.loc[k, "rate"]
        col.metric(f"Back in {unit} {k}", "—" if math.isnan(rate) else f"{rate:.1%}", border=True,
                   help=f"Size-weighted average over the {int(average.loc[k, 'cohorts'])} cohorts old enough to "
                        f"have a {unit} {k}" + (", unfinished ones included." if include_unfinished else
                                                 f" that is over (unfinished {unit}s are left out)."))


def render_cohort_extremes(result: RetentionResult, *, include_unfinished: bool = False) -> None:
    """The best and the worst cohort at the latest period two or more cohorts have (finished cells only
    unless ``include_unfinished``), as a caption; nothing when no period has two."""
    average = result.average(include_unfinished=include_unfinished)
    columns = [k for k in result.columns[1:] if average.loc[k, "cohorts"] >= 2]
    found = result.extremes(columns[-1], include_unfinished=include_unfinished) if columns else None
    if found is None:
        return
    period = result.spec.period
    prefix = "week of " if period == "week" else ""

    def cohort(c: CohortRate) -> str:
        return f"{prefix}{c.cohort_start:{COHORT_FORMATS[period]}} ({c.rate:.1%} of {c.size:,})"

    best, worst = found
    st.caption(f"{column_label(period, columns[-1])}: best cohort {cohort(best)}, worst {cohort(worst)}; "
               + ("unfinished periods included." if include_unfinished else "finished periods only."))


def render_retention_heatmap(result: RetentionResult, *, show: Show, key: str) -> None:
    render_chart(retention_heatmap(result, show=show), key=key)


def retention_table(result: RetentionResult, *, show: Show) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shown frame, CSV frame): cohort, size and one column per period as "61.3%" or "1,234" text (blank
    where the period lies after the range or has not happened: st.dataframe would print "None"; "61.3%*"
    where it is unfinished); the CSV carries counts and fractions as numbers, unobserved cells empty, and
    whether each cell is final (``cohort_complete``: the cohort's size; ``<period>_<k>_complete``)."""
    period = result.spec.period
    counts, percent = _cells(result)
    unfinished = result.unfinished().to_numpy()
    names = [column_label(period, k) for k in result.columns]
    values = percent if show == "percent" else counts
    fmt = "{:.1f}%" if show == "percent" else "{:,.0f}"
    shown = pd.DataFrame([["" if np.isnan(v) else fmt.format(v) + (UNFINISHED_MARK if u else "")
                           for v, u in zip(row, marks, strict=True)]
                          for row, marks in zip(values, unfinished, strict=True)], columns=names, dtype=object)
    shown.insert(0, "Traders", result.counts["size"].to_numpy())
    shown.insert(0, "Cohort", result.counts["cohort_start"].dt.date)
    complete = result.complete().to_numpy()
    export = pd.DataFrame({"cohort_start": result.counts["cohort_start"].dt.date, "size": result.counts["size"],
                           "cohort_complete": complete[:, 0]})
    for k, name in zip(result.columns, names, strict=True):
        export[f"{name.lower().replace(' ', '_')}_count"] = pd.array(counts[:, k], dtype="Int64")
    for k, name in zip(result.columns, names, strict=True):
        export[f"{name.lower().replace(' ', '_')}_rate"] = percent[:, k] / 100
    for k, name in zip(result.columns, names, strict=True):
        export[f"{name.lower().replace(' ', '_')}_complete"] = pd.array(
            np.where(np.isnan(counts[:, k]), None, complete[:, k]), dtype="boolean")
    return shown, export


def render_retention_table(result: RetentionResult, *, show: Show, key: str) -> None:
    shown, export = retention_table(result, show=show)
    render_table(shown, key=key, file_name="traderlens_retention.csv", download=export,
                 height=fit_height(len(shown), max_rows=16),
                 column_config={"Cohort": st.column_config.DateColumn(format="YYYY-MM-DD", pinned=True),
                                "Traders": st.column_config.NumberColumn(format="localized"),
                                **{c: st.column_config.TextColumn(alignment="right") for c in shown.columns[2:]}})


def _curves(thin: pd.DataFrame, bold: pd.DataFrame, *, thin_name: str, x_title: str, y_title: str,
            y_format: str, tooltip_format: str, x_label: str, height: int) -> alt.LayerChart:
    """Thin grey-teal lines, one per cohort (``thin``: cohort, x, y), under bold series (``bold``:
    series, x, y, traders), all in one legend. The bold series are drawn in ``bold``'s order, the
    first solid teal and any second dashed amber."""
    names = [thin_name, *dict.fromkeys(bold["series"])]
    palette = [COHORT_LINE, PRIMARY, ACCENT][:len(names)]
    color = alt.Color("series:N", scale=alt.Scale(domain=names, range=palette), sort=names, title=None,
                      legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3))
    # One scale for both layers so Vega-Lite draws a single legend with colour and dash together.
    dash = alt.StrokeDash("series:N", scale=alt.Scale(domain=names, range=[[1, 0], [1, 0], [6, 4]][:len(names)]),
                          sort=names, title=None)
    x = alt.X("x:Q", title=x_title, axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("y:Q", title=y_title, axis=alt.Axis(format=y_format))
    lines = alt.Chart(thin.assign(series=thin_name)).mark_line(strokeWidth=1.5).encode(
        x=x, y=y, detail="cohort:N", color=color, strokeDash=dash,
        tooltip=[alt.Tooltip("cohort:N", title="Cohort"), alt.Tooltip("x:Q", title=x_label),
                 alt.Tooltip("y:Q", title=y_title, format=tooltip_format)])
    averages = alt.Chart(bold).mark_line(point=True, strokeWidth=3).encode(
        x=x, y=y, color=color, strokeDash=dash,
        tooltip=[alt.Tooltip("series:N", title=" "), alt.Tooltip("x:Q", title=x_label),
                 alt.Tooltip("y:Q", title=y_title, format=tooltip_format),
                 alt.Tooltip("traders:Q", title="Traders", format=",")])
    return styled(alt.layer(lines, averages), height=height)


@memoised_figure
def retention_curves(result: RetentionResult, *, include_unfinished: bool = False) -> alt.LayerChart:
    """% of each cohort back per period (thin lines) and the size-weighted average (bold), over final
    cells only unless ``include_unfinished``."""
    period = result.spec.period
    _, percent = _included(result, include_unfinished)
    rows, cols = np.nonzero(~np.isnan(percent))
    thin = pd.DataFrame({"cohort": np.asarray(cohort_labels(result), dtype=object)[rows],
                         "x": np.asarray(result.columns)[cols], "y": percent[rows, cols] / 100})
    avg = result.average(include_unfinished=include_unfinished)
    avg = avg[avg["cohorts"] > 0]  # a period no cohort has reached yet has no average, not 0
    bold = pd.DataFrame({"series": "Average (size-weighted)", "x": avg["interval"], "y": avg["rate"],
                         "traders": avg["size"]})
    return _curves(thin, bold, thin_name="One cohort", x_label=PERIOD_NAMES[period], height=360,
                   x_title=f"{PERIOD_NAMES[period]}s after the cohort's {PERIOD_NAMES[period].lower()}",
                   y_title="% of cohort", y_format="%", tooltip_format=".1%")


def render_retention_curves(result: RetentionResult, *, key: str, include_unfinished: bool = False) -> None:
    render_chart(retention_curves(result, include_unfinished=include_unfinished), key=key)


@memoised_figure
def ltv_figure(net: pd.DataFrame, deposits: pd.DataFrame, *, period: str) -> alt.LayerChart:
    """USD per trader by age since FTD: a thin net-deposit line per FTD cohort, the pooled net-deposit
    curve (bold) and the pooled deposit curve (MT5 "Lifetime Value", dashed); the gap is withdrawals."""
    unit = {"day": "Days", "week": "Weeks", "month": "30-day months"}[period]
    fmt = COHORT_FORMATS[period]
    cohorts = net[net["cohort"] != ALL_COHORTS]
    thin = pd.DataFrame({
        "cohort": [f"{start:{fmt}} ({size:,} traders)"
                   for start, size in zip(cohorts["cohort_start"], cohorts["cohort_size"], strict=True)],
        "x": cohorts["age"].to_numpy(), "y": cohorts["value_per_trader"].to_numpy()})
    bold = pd.concat([
        pd.DataFrame({"series": name, "x": pooled["age"].to_numpy(), "y": pooled["value_per_trader"].to_numpy(),
                      "traders": pooled["cohort_size"].to_numpy()})
        for frame, name in ((net, "Net deposits, all cohorts"), (deposits, "Deposits, all cohorts (MT5 LTV)"))
        for pooled in (frame[frame["cohort"] == ALL_COHORTS],)], ignore_index=True)
    return _curves(thin, bold, thin_name="One FTD cohort (net)", x_label="Age", height=380,
                   x_title=f"{unit} since FTD", y_title="USD per trader", y_format="$~s", tooltip_format="$,.0f")


def render_ltv(net: pd.DataFrame, deposits: pd.DataFrame, *, period: str, key: str) -> None:
    """Both LTV definitions in one chart, and both as one CSV."""
    render_chart(ltv_figure(net, deposits, period=period), key=f"{key}.chart")
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
def engagement_figure(result: EngagementResult) -> alt.LayerChart:
    """Retention rate per session bucket with 95% Wilson whiskers; buckets at or above the threshold in teal."""
    b = result.buckets
    data = pd.DataFrame({
        "bucket": b["bucket"].astype(str), "rate": b["rate"], "low": b["rate_low"], "high": b["rate_high"],
        "traders": b["traders"], "retained": b["retained"], "n": [f"n={n:,}" for n in b["traders"]],
        "group": [f"{result.threshold}+ sessions" if low >= result.threshold else f"Under {result.threshold}"
                  for low in b["low"]],
    })
    groups = [f"Under {result.threshold}", f"{result.threshold}+ sessions"]
    x = alt.X("bucket:N", sort=list(data["bucket"]), axis=alt.Axis(labelAngle=0),
              title=f"{event_label(result.session_event)} sessions in the first {result.first_days} days after FTD")
    y_title = f"% retained (days {result.retained_from_day}–{result.retained_to_day - 1})"
    base = alt.Chart(data).encode(x=x, tooltip=[
        alt.Tooltip("bucket:N", title="Sessions"), alt.Tooltip("rate:Q", title="Retained", format=".1%"),
        alt.Tooltip("retained:Q", title="Retained traders", format=","),
        alt.Tooltip("traders:Q", title="Traders", format=","),
        alt.Tooltip("low:Q", title="95% CI low", format=".1%"),
        alt.Tooltip("high:Q", title="95% CI high", format=".1%")])
    bars = base.mark_bar(width=alt.RelativeBandSize(0.7)).encode(
        y=alt.Y("rate:Q", title=y_title, axis=alt.Axis(format="%")),
        color=alt.Color("group:N", scale=alt.Scale(domain=groups, range=[MUTED, PRIMARY]), title=None))
    whiskers = base.mark_rule(color=TEXT, strokeWidth=1.2).encode(y="low:Q", y2="high:Q")
    counts = base.mark_text(baseline="bottom", dy=-4, fontSize=11).encode(y="high:Q", text="n:N")
    return styled(alt.layer(bars, whiskers, counts), height=340)


def render_engagement(result: EngagementResult, *, key: str, note: str = "") -> None:
    """Headline metrics, bars by session bucket, the definition in plain words, and the buckets table."""
    render_engagement_headline(result)
    render_chart(engagement_figure(result), key=f"{key}.chart")
    st.caption(escape_markdown(f"{result.definition()} {note}"))  # names the events: data
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


# ---------------------------------------------------------------------------------------------
# Retention by segment

# Categorical colours of the segments' curves (the theme's muted family); the reference curve is TEXT.
SEGMENT_COLORS = ["#0b6e79", "#e69f00", "#1f4e8c", "#b4232f", "#1f8a5b", "#8e5ea2", "#c8771a", "#5a7d9a"]


def segment_curves_frame(results: Mapping[str, RetentionResult], *, include_unfinished: bool) -> pd.DataFrame:
    """The size-weighted average curve of each result (a segment's, or the reference's): columns ``series``,
    ``interval``, ``cohorts``, ``size``, ``retained``, ``rate``, in ``results``' order; intervals no cohort
    has reached yet are left out (no average, not 0)."""
    frames = [result.average(include_unfinished=include_unfinished).assign(series=name)
              for name, result in results.items()]
    columns = ["series", "interval", "cohorts", "size", "retained", "rate"]
    if not frames:
        return pd.DataFrame(columns=columns)
    curves = pd.concat(frames, ignore_index=True)
    return curves[curves["cohorts"] > 0][columns].reset_index(drop=True)


@memoised_figure
def segment_curves_figure(curves: pd.DataFrame, *, period: str) -> alt.LayerChart:
    """One line per series of :func:`segment_curves_frame`, the first (the traders the sidebar keeps) dark and
    dashed, each segment in its own colour."""
    names = list(dict.fromkeys(curves["series"]))
    palette = [TEXT, *(SEGMENT_COLORS * (len(names) // len(SEGMENT_COLORS) + 1))][:len(names)]
    color = alt.Color("series:N", scale=alt.Scale(domain=names, range=palette), sort=names, title=None,
                      legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3, labelLimit=260))
    dash = alt.StrokeDash("series:N", scale=alt.Scale(domain=names, range=[[6, 4], *([[1, 0]] * (len(names) - 1))]),
                          sort=names, title=None)
    chart = alt.Chart(curves).mark_line(point=True, strokeWidth=2.5).encode(
        x=alt.X("interval:Q", title=f"{PERIOD_NAMES[period]}s after the cohort's {PERIOD_NAMES[period].lower()}",
                axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("rate:Q", title="% of cohort", axis=alt.Axis(format="%")),
        color=color, strokeDash=dash,
        tooltip=[alt.Tooltip("series:N", title=" "), alt.Tooltip("interval:Q", title=PERIOD_NAMES[period]),
                 alt.Tooltip("rate:Q", title="% of cohort", format=".1%"),
                 alt.Tooltip("retained:Q", title="Came back", format=","),
                 alt.Tooltip("size:Q", title="Of traders", format=",")])
    return styled(chart, height=340)


def render_segment_curves(results: Mapping[str, RetentionResult], *, period: str, include_unfinished: bool,
                          key: str) -> None:
    """The average retention curve of each segment beside the reference's (``results``: name -> result, the
    reference first), and the curves as a table with a CSV."""
    curves = segment_curves_frame(results, include_unfinished=include_unfinished)
    render_chart(segment_curves_figure(curves, period=period), key=f"{key}.chart")
    shown = curves.pivot(index="series", columns="interval", values="rate").reindex(
        [name for name in results if name in set(curves["series"])])
    shown.columns = [column_label(period, int(k)) for k in shown.columns]
    shown = (shown * 100).reset_index().rename(columns={"series": "Traders"})
    with st.expander("Curves by segment as a table", icon=":material/table:"):
        render_table(shown, key=f"{key}.table", file_name="traderlens_retention_by_segment.csv", download=curves,
                     height=fit_height(len(shown)),
                     column_config={c: st.column_config.NumberColumn(format="%.1f%%") for c in shown.columns[1:]})
