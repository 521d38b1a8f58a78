"""Funnels page rendering: the funnel bars, the conversion table, the time-to-convert histogram, the
conversion trend and the drop-off list.

Every figure is drawn from the small aggregates analytics.funnels returns (one row per step, bin or
period), so the browser receives kilobytes whatever the number of traders. Rates arrive as fractions
0..1 and become percentages only here, when drawn.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from components import labels
from components.cohort_charts import event_label
from components.figures import memoised_figure, period_ends, period_x, render_chart, styled
from components.tables import fit_height, render_table

PRIMARY = "#0b6e79"
DROPPED = "#dfe6ec"
SERIES = ["#0b6e79", "#e69f00", "#1f4e8c", "#d55e00", "#56b4e9", "#2e8b57", "#8e5ea2", "#c9a66b", "#5b6b7c",
          "#cc79a7"]

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


@memoised_figure
def funnel_figure(steps: pd.DataFrame) -> alt.LayerChart:
    """Bars per step: traders who got there (solid) on top of those lost since step 1 (light); one
    colour per breakdown value, bars side by side, when the table has ``breakdown_value``."""
    step_names = _step_labels(steps)
    tooltip = [alt.Tooltip("label:N", title="Step"), alt.Tooltip("count:Q", title="Traders", format=","),
               alt.Tooltip("conversion_rate:Q", title="Of step 1", format=".1%"),
               alt.Tooltip("conversion_from_previous:Q", title="Of the previous step", format=".1%"),
               alt.Tooltip("drop_off:Q", title="Dropped off just before", format=",")]
    x = alt.X("label:N", sort=_unique(step_names), title=None, axis=alt.Axis(labelAngle=0, labelLimit=160))
    data = steps.assign(label=step_names)
    if "breakdown_value" in steps.columns:
        values = [str(v) for v in _unique(steps["breakdown_value"])]
        data = data.assign(breakdown_value=steps["breakdown_value"].astype(str))
        colors = alt.Color("breakdown_value:N", sort=values, title=None,
                           scale=alt.Scale(domain=values, range=[SERIES[i % len(SERIES)] for i in range(len(values))]))
        codes = [alt.Tooltip("breakdown_value_code:N", title="Code")] if "breakdown_value_code" in data else []
        base = alt.Chart(data).encode(x=x, xOffset=alt.XOffset("breakdown_value:N", sort=values),
                                      tooltip=[alt.Tooltip("breakdown_value:N", title="Breakdown"), *codes, *tooltip])
        bars = base.mark_bar().encode(y=alt.Y("count:Q", title="Traders", axis=alt.Axis(format=",d")), color=colors)
        if len(values) > 4:  # more labels than fit above narrow bars: the tooltip and table carry the rates
            return styled(bars, height=420)
        rates = base.mark_text(dy=-7, fontSize=11).encode(y="count:Q", text=alt.Text("conversion_rate:Q", format=".1%"))
        return styled(alt.layer(bars, rates), height=420)
    first = int(steps["count"].iloc[0]) if len(steps) else 0
    data = data.assign(lost=first - steps["count"], top=first,
                       text=[f"{c:,} · {r:.1%}" for c, r in zip(steps["count"], steps["conversion_rate"], strict=True)])
    series = alt.Scale(domain=["Reached the step", "Lost since step 1"], range=[PRIMARY, DROPPED])
    base = alt.Chart(data).encode(x=x, tooltip=tooltip)
    reached = base.mark_bar().encode(
        y=alt.Y("count:Q", title="Traders", axis=alt.Axis(format=",d")),
        color=alt.Color("series:N", scale=series, title=None)).transform_calculate(series="'Reached the step'")
    lost = base.mark_bar().encode(y="count:Q", y2="top:Q", color=alt.Color("series:N", scale=series)
                                  ).transform_calculate(series="'Lost since step 1'")
    numbers = base.mark_text(dy=-8, fontSize=12, fontWeight="bold").encode(y="count:Q", text="text:N")
    return styled(alt.layer(lost, reached, numbers), height=380)


def _unique(values) -> list:
    """Values in first-seen order (a breakdown repeats every step label)."""
    return list(dict.fromkeys(values))


def render_funnel_chart(steps: pd.DataFrame, *, key: str, attribute: str | None = None) -> None:
    """The funnel's bars; a breakdown by the trader ``attribute`` country or channel shows names (codes on hover)."""
    render_chart(funnel_figure(labels.with_names(steps, "breakdown_value", attribute)), key=key)


def render_conversion_table(steps: pd.DataFrame, *, key: str, file_name: str, attribute: str | None = None) -> None:
    """The step table with rates as percentages and times for people (breakdown values by name for the trader
    ``attribute`` country or channel); the CSV keeps raw numbers and codes."""
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
        shown.insert(0, "Breakdown", [labels.display_value(attribute, v) for v in steps["breakdown_value"]])
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
def histogram_figure(histogram: pd.DataFrame) -> alt.Chart:
    """Pre-binned bars of how long traders took (the bins arrive computed), on an axis in the unit
    that suits the longest time."""
    unit, size = _time_unit(float(histogram["bin_end_s"].max()) if len(histogram) else 0.0)
    data = pd.DataFrame({
        "start": histogram["bin_start_s"] / size, "end": histogram["bin_end_s"] / size,
        "traders": histogram["traders"],
        "range": [f"{format_duration(a)} – {format_duration(b)}"
                  for a, b in zip(histogram["bin_start_s"], histogram["bin_end_s"], strict=True)],
    })
    chart = alt.Chart(data).mark_bar(color=PRIMARY, stroke="white", strokeWidth=1).encode(
        x=alt.X("start:Q", title=f"Time to convert ({unit})", scale=alt.Scale(zero=True, nice=False)),
        x2="end:Q",
        # y2 = 0: with x and x2 set, Vega-Lite would otherwise read the bar as horizontal.
        y=alt.Y("traders:Q", title="Traders", axis=alt.Axis(format=",d")), y2=alt.datum(0),
        tooltip=[alt.Tooltip("range:N", title="Took"), alt.Tooltip("traders:Q", title="Traders", format=",")],
    )
    return styled(chart, height=340)


def render_time_histogram(histogram: pd.DataFrame, *, key: str) -> None:
    render_chart(histogram_figure(histogram), key=key)


@memoised_figure
def trends_figure(trends: pd.DataFrame, *, period: str) -> alt.LayerChart:
    """Conversion rate by entry period (line, left axis) over how many traders entered (bars, right axis)."""
    starts = pd.to_datetime(trends["period_start"])
    ends = period_ends(starts, period)
    # The entry date as text: a temporal tooltip would print it in the browser's zone, a day early
    # west of UTC.
    data = trends.assign(period_start=starts, period_end=ends, middle=starts + (ends - starts) / 2,
                         rate=trends["conversion_rate"], entry=starts.dt.strftime("%d %b %Y"))
    series = alt.Scale(domain=["Converted %", "Entered"], range=[PRIMARY, DROPPED])
    tooltip = [alt.Tooltip("entry:N", title=f"Entry {period}"),
               alt.Tooltip("rate:Q", title="Converted", format=".2%"),
               alt.Tooltip("reached_to_step_count:Q", title="Converted traders", format=","),
               alt.Tooltip("reached_from_step_count:Q", title="Entered", format=",")]
    base = alt.Chart(data).encode(tooltip=tooltip)
    entered = base.mark_bar(stroke="white", strokeWidth=1).encode(
        x=period_x("period_start", starts, period, title=f"Entry {period}"),
        x2="period_end:T",
        y=alt.Y("reached_from_step_count:Q", title="Entered", axis=alt.Axis(orient="right", format=",d", grid=False)),
        y2=alt.datum(0),
        color=alt.Color("series:N", scale=series, title=None)).transform_calculate(series="'Entered'")
    rate = base.transform_calculate(series="'Converted %'").mark_line(point=True, strokeWidth=2.5).encode(
        x="middle:T", y=alt.Y("rate:Q", title="Converted", axis=alt.Axis(format="%"), scale=alt.Scale(zero=True)),
        color=alt.Color("series:N", scale=series))
    return styled(alt.layer(entered, rate).resolve_scale(y="independent"), height=340)


def render_trends(trends: pd.DataFrame, *, period: str, key: str) -> None:
    render_chart(trends_figure(trends, period=period), key=key)


STATUS_LABELS = {"dropped": "Dropped", "in_window": "Still in window"}


def render_dropoffs(frame: pd.DataFrame, *, key: str, file_name: str, preview_rows: int = 200) -> None:
    """The first rows of a drop-off list (analytics.funnels.Dropoffs.people or a part of it) on screen: who,
    how to reach them and whether they may be contacted; the CSV has every trader, every column."""
    head = frame.head(preview_rows)
    names = (head["first_name"].fillna("") + " " + head["last_name"].fillna("")).str.strip()
    blank = lambda column: head[column].fillna("")  # noqa: E731 - st.dataframe would print "None"
    shown = pd.DataFrame({
        "Trader id": head["trader_id"], "Name": names, "Status": head["status"].map(STATUS_LABELS),
        "Email": blank("email"), "Phone": blank("phone"), "Country": head["country"].map(labels.country_name),
        "Channel": head["acquisition_channel"].map(labels.channel_name), "Owner": blank("owner"),
        "Email ok": head["consent_email"], "SMS ok": head["consent_sms"], "Push ok": head["consent_push"],
        "WhatsApp ok": head["consent_whatsapp"], "Reached the step at": head["reached_at"],
        "Window ends": head["window_ends_at"], "External id": head["external_id"],
    })
    if "breakdown_value" in head.columns:
        shown["Breakdown"] = head["breakdown_value"].to_numpy()
    consent = "Consented to be contacted on this channel"
    render_table(shown, key=key, file_name=file_name, download=frame, height=fit_height(len(shown), max_rows=10),
                 column_config={"Reached the step at": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
                                "Window ends": st.column_config.DatetimeColumn(
                                    format="D MMM YYYY, HH:mm",
                                    help="The last moment the next step counts for their newest attempt"),
                                "Trader id": st.column_config.NumberColumn(format="%d"),
                                **{c: st.column_config.CheckboxColumn(help=consent)
                                   for c in ("Email ok", "SMS ok", "Push ok", "WhatsApp ok")}})
