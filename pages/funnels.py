"""Funnels & conversion (retention managers): how many traders get from one event to the next, how
long it takes, whether it is getting better, and who dropped off where."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from analytics import funnels
from analytics.events import entered_segment, list_event_names
from analytics.filters import TraderFilter
from analytics.funnels import Exclusion, FunnelRejected, FunnelSpec
from analytics.periods import PERIODS, DateRange
from components import funnel_charts as charts
from components import labels, page, params
from components.text import escape_markdown

DEFAULT_STEPS = ["registered", "kyc_submitted", "kyc_approved", "ftd", "trade"]
ORDERS = {"ordered": "In order", "strict": "Strictly in a row", "unordered": "Any order"}
UNITS = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks", "month": "months (31 days)"}
BREAKDOWNS = {"none": "No breakdown", "trader": "Trader attribute", "event": "Event property", "segment": "Segment"}
ATTRIBUTIONS = {"first_touch": "First touch", "last_touch": "Last touch"}
NO_EXCLUSION = ""
DROPOFF_VIEWS = {funnels.DROPPED: "Dropped", funnels.IN_WINDOW: "Still in window", "all": "Both"}

# A short life: a segment saved on the Segments page appears among the steps within a minute.
load_event_names = page.loader(list_event_names, ttl="1m")
load_funnel = page.loader(funnels.compute_funnel, spinner="Following traders through the funnel…")
load_trends = page.loader(funnels.compute_funnel_trends, spinner="Computing conversion by entry period…")


@page.loader
def load_time_to_convert(engine: Engine, spec: FunnelSpec, date_range: DateRange, trader_filter: TraderFilter,
                         from_step: int, to_step: int) -> pd.DataFrame:
    # From the cached funnel: the same traders and attempts, no second pass over the events.
    result = load_funnel(spec, date_range=date_range, trader_filter=trader_filter)
    return funnels.time_to_convert_of(result, from_step=from_step, to_step=to_step, bins=30)


@page.loader
def load_dropoffs(engine: Engine, spec: FunnelSpec, step: int, date_range: DateRange,
                  trader_filter: TraderFilter) -> funnels.Dropoffs:
    result = load_funnel(spec, date_range=date_range, trader_filter=trader_filter)
    return funnels.dropoffs_of(engine, result, step=step, trader_filter=trader_filter, date_range=date_range,
                               data_end=page.load_data_span().end)  # cached: no second read of the span


view = page.header("Funnels & conversion", lambda view: (
    f"Every step must happen between {view.date_range.start:%d %b %Y} and {view.date_range.end:%d %b %Y} (UTC; "
    "the sidebar period), for the traders the sidebar filters keep."))
rng, trader_filter = view.date_range, view.trader_filter
events = load_event_names()
options = page.load_filter_options()

with st.container(border=True):
    steps = params.multiselect(st,
        "Steps, in order", events, default=[e for e in DEFAULT_STEPS if e in events], format_func=charts.event_label,
        key="funnels.steps", max_selections=funnels.MAX_STEPS,
        placeholder="Pick the events traders should do, first step first",
        help="The order you pick them in is the order of the funnel. Portal events appear by name. A step is "
             "an instant: Trade is the opening of a position (Cohorts, Lifecycle and the Overview count a trader "
             "as trading on every day a position is open).")
    c1, c2, c3 = st.columns([4, 2, 2], vertical_alignment="bottom")
    order = params.segmented_control(c1,
        "Step order", list(ORDERS), default="ordered", format_func=ORDERS.get, required=True, key="funnels.order",
        help="In order: other events may happen in between. Strictly in a row: nothing else in between. "
             "Any order: step k means k different steps done within one window.")
    window_value = params.number_input(c2, "Conversion window", min_value=1, max_value=10_000, value=14, step=1,
                                   key="funnels.window_value",
                                   help="Measured from each attempt's first step; the boundary counts.")
    window_unit = params.selectbox(c3, "Unit", list(UNITS), index=list(UNITS).index("day"), format_func=UNITS.get,
                               key="funnels.window_unit", label_visibility="hidden")
    with st.expander("Exclusion and breakdown"):
        e1, e2, e3 = st.columns([4, 2, 2])
        exclude = params.selectbox(e1, "Exclude traders who do", [NO_EXCLUSION, *events],
                               format_func=lambda e: "Nobody excluded" if e == NO_EXCLUSION else charts.event_label(e),
                               key="funnels.exclude",
                               help="In order: a trader whose furthest attempt is spoiled leaves the whole funnel. "
                                    "Any order: the event wipes their progress.")
        positions = list(range(1, max(len(steps), 2) + 1))
        exclude_from = params.selectbox(e2, "After step", positions[:-1], key="funnels.exclude_from",
                                    disabled=exclude == NO_EXCLUSION or order == "unordered")
        exclude_to = params.selectbox(e3, "Before step", positions[1:], index=len(positions) - 2,
                                      key="funnels.exclude_to",
                                      disabled=exclude == NO_EXCLUSION or order == "unordered")
        b1, b2, b3 = st.columns([3, 3, 2], vertical_alignment="bottom")
        kinds = [k for k in BREAKDOWNS if k != "segment" or options.segments]  # by segment once there are some
        breakdown_kind = params.segmented_control(b1, "Break down by", kinds, default="none",
                                              format_func=BREAKDOWNS.get, required=True,
                                              key="funnels.breakdown_kind",
                                              help="Segment: a block per saved segment (its members as of its "
                                                   "last refresh); a trader in two segments counts in both.")
        breakdown = None
        if breakdown_kind == "trader":
            breakdown = params.selectbox(b2, "Attribute", funnels.TRADER_BREAKDOWNS,
                                     format_func=lambda a: a.replace("_", " ").capitalize(), key="funnels.breakdown")
        elif breakdown_kind == "event":
            breakdown = params.text_input(b2, "Property", key="funnels.property",
                                      placeholder="e.g. utm_source",
                                      help="A key of the portal events' properties.").strip() or None
        elif breakdown_kind == "segment":
            breakdown = funnels.SEGMENT_BREAKDOWN
        attribution = params.radio(b3, "Attribution", list(ATTRIBUTIONS), format_func=ATTRIBUTIONS.get, horizontal=True,
                               key="funnels.attribution", disabled=breakdown is None or breakdown_kind == "segment",
                               help=" ".join(labels.ATTRIBUTION[a] for a in ATTRIBUTIONS))

if len(steps) < 2:
    st.info("Pick at least two steps to see a funnel, for example *Registered → First deposit (FTD)*.",
            icon=":material/filter_alt:")
    st.stop()

exclusions: tuple[Exclusion, ...] = ()
if exclude != NO_EXCLUSION:
    span = (0, len(steps) - 1) if order == "unordered" else (int(exclude_from) - 1, int(exclude_to) - 1)
    exclusions = (Exclusion(exclude, *span),)
spec = FunnelSpec(steps=tuple(steps), window_s=funnels.window_seconds(int(window_value), window_unit), order=order,
                  exclusions=exclusions, breakdown=breakdown,
                  breakdown_kind=breakdown_kind if breakdown_kind in ("event", "segment") else "trader",
                  attribution=attribution)
# Segments the funnel reads (an "entered segment" step or exclusion, the breakdown) refresh its cached results.
trader_filter = options.stamp(
    trader_filter, segment_names=[entered_segment(e) for e in (*steps, exclude) if entered_segment(e) is not None],
    segment_ids=[s.segment_id for s in options.segments] if breakdown_kind == "segment" else ())
try:
    funnels.validate_spec(spec)
    result = load_funnel(spec, date_range=rng, trader_filter=trader_filter)
except FunnelRejected as exc:
    st.warning(escape_markdown(exc), icon=":material/warning:")
    st.stop()

table = result.steps
overall = result if spec.breakdown is None else load_funnel(
    FunnelSpec(spec.steps, spec.window_s, spec.order, spec.exclusions), date_range=rng, trader_filter=trader_filter)
entered, completed = int(overall.steps["count"].iloc[0]), int(overall.steps["count"].iloc[-1])
if entered == 0:
    st.info(f"No trader did “{escape_markdown(charts.event_label(steps[0]))}” in this range with these filters. "
            "Choose a longer period in the sidebar, loosen the filters or start the funnel with another event.",
            icon=":material/filter_alt_off:")
    st.stop()

n = len(steps)
histogram = load_time_to_convert(spec, rng, trader_filter, 1, n)
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"Entered · {escape_markdown(charts.event_label(steps[0]))}", f"{entered:,}", border=True)
m2.metric(f"Completed · {escape_markdown(charts.event_label(steps[-1]))}", f"{completed:,}", border=True)
m3.metric("Overall conversion", f"{overall.overall_conversion:.1%}", border=True,
          help="Traders who completed the last step, as a share of those who did step 1.")
m4.metric("Median time to convert", charts.format_duration(histogram.attrs.get("median_s")), border=True,
          help="From step 1 to the last step of each trader's kept attempt, same-instant conversions included.")

st.subheader("Conversion by step", divider="gray", anchor=False)
named = spec.breakdown if spec.breakdown_kind == "trader" else None  # countries and channels by name
charts.render_funnel_chart(table, key="funnels.chart", attribute=named)
if spec.breakdown is not None and funnels.OTHER in result.breakdown_values:
    st.caption(f"The {spec.breakdown_limit} values with the most traders are shown; the rest are under “Other”.")
if spec.breakdown_kind == "segment":
    st.caption(f"Each saved segment's members as of its last refresh (the {spec.breakdown_limit} with the most "
               "traders at step 1), then the traders in none: a trader in two segments counts in both, so the "
               "blocks can add up to more than the funnel.")
charts.render_conversion_table(table, key="funnels.table", file_name="funnel_conversion.csv", attribute=named)
st.caption("Times are between consecutive steps of each trader's kept attempt; conversions within the same "
           "second count as converted but are left out of the times.")

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Time to convert", divider="gray", anchor=False)
    if completed == 0:
        st.info("Nobody completed the funnel yet, so there is no time to show.", icon=":material/hourglass_empty:")
    else:
        charts.render_time_histogram(histogram, key="funnels.time_to_convert")
        st.caption(f"{histogram.attrs['traders']:,} traders from step 1 to step {n}; average "
                   f"{charts.format_duration(histogram.attrs['average_s'])}, median "
                   f"{charts.format_duration(histogram.attrs['median_s'])}.")
with right:
    st.subheader("Conversion over time", divider="gray", anchor=False)
    if order == "unordered":
        st.info("Conversion over time follows ordered or strict funnels.", icon=":material/timeline:")
    else:
        period = params.segmented_control(st, "By entry", PERIODS, default="week", format_func=str.capitalize,
                                      required=True, key="funnels.trend_period")
        trends = load_trends(spec, period=period, date_range=rng, trader_filter=trader_filter)
        charts.render_trends(trends, period=period, key="funnels.trends")
        st.caption("Traders count in the period of each step-1 event that started an attempt. Recent periods look "
                   "worse until their window has passed.")

st.subheader("Who dropped off", divider="gray", anchor=False)
d1, d2, _ = st.columns([3, 3, 2], vertical_alignment="bottom")
drop_step = params.selectbox(d1, "Reached step, but not the next", list(range(1, n)),
                         format_func=lambda k: f"{k}. {charts.event_label(steps[k - 1])} → {k + 1}. "
                                               f"{charts.event_label(steps[k])}",
                         key="funnels.dropoff_step")
dropoffs = load_dropoffs(spec, int(drop_step), rng, trader_filter)
if dropoffs.people.empty:
    st.success("Nobody dropped off at this step.", icon=":material/check_circle:")
else:
    counts = dropoffs.counts
    shown_status = params.segmented_control(
        d2, "Show", list(DROPOFF_VIEWS), default=funnels.DROPPED, required=True, key="funnels.dropoff_status",
        format_func=DROPOFF_VIEWS.get,  # the URL holds the label: no counts in it, they change with the data
        help="Dropped: their conversion window closed before the end of the period (or of the data), without "
             "the next step. Still in window: it had not closed yet, so they can still convert.")
    listed = dropoffs.of_status(None if shown_status == "all" else shown_status)
    seen_to = f"{dropoffs.observed_until - timedelta(days=1):%d %b %Y}" if dropoffs.observed_until else "the end"
    st.caption(f"{counts[funnels.DROPPED]:,} dropped (window over by {seen_to}, the last day the funnel looks at) "
               f"and {counts[funnels.IN_WINDOW]:,} still in their window, who can still convert; "
               "most recent first. The CSV has every trader of the list shown, with contact details and consents.")
    if listed.empty:
        st.info(f"Nobody is {DROPOFF_VIEWS[shown_status].lower()} at this step.", icon=":material/hourglass_empty:")
    else:
        charts.render_dropoffs(listed, key="funnels.dropoffs",
                               file_name=f"funnel_dropoffs_step{int(drop_step)}_{shown_status}.csv")
