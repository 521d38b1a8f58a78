"""Lifecycle (retention managers): who is new, returning, resurrecting or going dormant each period,
where every trader stands today, and how traders moved between stages."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from analytics import lifecycle
from analytics.events import churn_activity, entered_segment, list_event_names
from analytics.periods import PERIODS
from components import filters, labels, page, params
from components import lifecycle_charts as charts
from components.cohort_charts import event_label
from components.text import escape_markdown

BASES = {"first-activity": "First activity", "registration": "Registration"}
WEEK_STARTS = {"monday": "Monday", "sunday": "Sunday"}
SPANS = {"range": "Start of the period", "30": "30 days before", "90": "90 days before"}
MAX_SEGMENTS = 8  # stage bars compared at once: each is one more stage query
REFERENCE = "All traders shown"

# A short life: a segment saved on the Segments page appears among the events within a minute.
load_event_names = page.loader(list_event_names, ttl="1m")
load_lifecycle = page.loader(lifecycle.compute_lifecycle, spinner="Labelling traders period by period…")
load_stages = page.loader(lifecycle.compute_stage_distribution)
load_flows = page.loader(lifecycle.compute_stage_flows)

view = page.header("Lifecycle", lambda view: (
    f"{view.date_range.start:%d %b %Y} – {view.date_range.end:%d %b %Y} (UTC; the sidebar period), for the traders "
    "the sidebar filters keep."))
rng, trader_filter = view.date_range, view.trader_filter
events = load_event_names()
options = page.load_filter_options()

st.subheader("New, returning, resurrecting and dormant", divider="gray", anchor=False)
with st.container(border=True):
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    event = params.selectbox(c1, "Activity", events, index=events.index("trade") if "trade" in events else 0,
                         format_func=event_label,
                         key="lifecycle.event",
                         help="A trader is active in a period when they did this at least once in it.")
    period = params.segmented_control(c2, "Period", PERIODS, default="week", required=True, format_func=str.capitalize,
                                  key="lifecycle.period")
    new_basis = params.segmented_control(c3,
        "New means", list(BASES), default="first-activity", required=True, format_func=BASES.get,
        key="lifecycle.basis",
        help="First activity: new in the period of a trader's first-ever activity. Registration (as PostHog): "
             "new only if active in the period they registered (leads: were captured); a trader who "
             "registered earlier is “resurrecting” on their first activity.")
    week_start = params.segmented_control(c4, "Weeks start", list(WEEK_STARTS), default="monday", required=True,
                                      format_func=WEEK_STARTS.get, key="lifecycle.week_start",
                                      disabled=period != "week")

# An "entered segment" activity: its cached result is recomputed after the segment's refresh.
segment_name = entered_segment(event)
event_filter = options.stamp(trader_filter, segment_names=[segment_name] if segment_name else [])
result = load_lifecycle(event=event, period=period, date_from=rng.start, date_to=rng.end, new_basis=new_basis,
                        week_start=week_start, trader_filter=event_filter)
if not result[list(lifecycle.STATUSES)].to_numpy().any():
    st.info(f"No trader was active (“{escape_markdown(event_label(event))}”) in this range with these filters. "
            "Choose a longer period in the sidebar, loosen the filters or pick another activity.",
            icon=":material/filter_alt_off:")
else:
    charts.render_lifecycle_metrics(result, period=period, week_start=week_start, date_to=rng.end)
    charts.render_lifecycle_chart(result, period=period, week_start=week_start, date_to=rng.end,
                                  key="lifecycle.chart")
    st.caption("Each period counts distinct traders. "
               + " ".join(f"**{charts.STATUS_LABELS[s]}**: {labels.LIFECYCLE_STATUSES[s]}." for s in lifecycle.STATUSES)
               + " The range snaps to whole "
               f"{charts.PERIOD_NOUNS[period]}s, and the {charts.PERIOD_NOUNS[period]} before it is read too, so "
               "its first period can show returning and dormant traders. A pale last period runs past the range's "
               "end: its traders may still come back, so its dormant count is not final.")
    charts.render_lifecycle_table(result, period=period, key="lifecycle.table",
                                  file_name=f"lifecycle_{event}_{period}_{rng.start}_{rng.end}.csv")

st.subheader(f"Stages on {rng.end:%d %b %Y}", divider="gray", anchor=False)
alive = churn_activity().description  # what keeps a trader from going dormant or churning (a setting)
s1, s2, _ = st.columns([2, 3, 5], vertical_alignment="bottom")
churn_days = params.segmented_control(s2, "Churned after (days)", lifecycle.CHURN_DAY_CHOICES,
                                  default=lifecycle.DEFAULT_CHURN_DAYS, required=True, key="lifecycle.churn_days",
                                  help=f"No {alive} for this long.")
dormant_days = params.number_input(s1, "Dormant after (days)", min_value=1, max_value=lifecycle.ACTIVE_WINDOW_DAYS - 1,
                               value=lifecycle.DEFAULT_DORMANT_DAYS, step=1, key="lifecycle.dormant_days",
                               help=f"No {alive} for this long.")
stages = load_stages(as_of=rng.end, dormant_days=int(dormant_days), churn_days=int(churn_days),
                     trader_filter=trader_filter)
if not stages["traders"].any():
    st.info("No trader had been captured by this day with these filters.", icon=":material/filter_alt_off:")
else:
    charts.render_stage_chart(stages, key="lifecycle.stages")
    st.caption(
        f"Traders who traded: **churned** after {int(churn_days)} days without {alive} "
        "(TRADERLENS_CHURN_ACTIVITY); "
        f"**dormant** after {int(dormant_days)} such days or with no trade in the last "
        f"{lifecycle.ACTIVE_WINDOW_DAYS} days; **reactivated** when back in the last {lifecycle.ACTIVE_WINDOW_DAYS} "
        f"days after a churn; otherwise **active** (an open position counts as activity). Traders who never "
        "traded stay at the furthest step reached: FTD, KYC approved, registered or lead. VIP: traders with a "
        "VIP tier.")
    chosen = [options.segment(i) for i in params.multiselect(
        st, "Stages by segment", key="lifecycle.segments", max_selections=MAX_SEGMENTS,
        **filters.segment_widget(options.segments),
        help="The stage distribution of each chosen saved segment's members (as of its last refresh), within the "
             "sidebar's filters, beside that of all the traders shown.")]
    if chosen:
        by_segment = {REFERENCE: stages}
        for segment in chosen:
            by_segment[segment.name] = load_stages(
                as_of=rng.end, dormant_days=int(dormant_days), churn_days=int(churn_days),
                trader_filter=trader_filter.within(segment.segment_id, segment.refreshed_at))
        charts.render_segment_stages(by_segment, key="lifecycle.segment_stages",
                                     file_name=f"lifecycle_stages_by_segment_{rng.end}.csv")
        st.caption("Bars are each group's shares, labelled with its traders; a trader in two segments counts in both.")

st.subheader("How traders moved", divider="gray", anchor=False)
f1, f2 = st.columns([3, 2], vertical_alignment="bottom")
span = params.segmented_control(f1, "From", list(SPANS), default="range", required=True, format_func=SPANS.get,
                            key="lifecycle.span",
                            help=f"Each trader's stage on this day (left) and on {rng.end:%d %b %Y} (right).")
changes_only = params.toggle(f2, "Only traders who changed stage", key="lifecycle.changes_only")
from_date = rng.start if span == "range" else rng.end - timedelta(days=int(span))
flows = load_flows(from_date=from_date, to_date=rng.end, dormant_days=int(dormant_days), churn_days=int(churn_days),
                   trader_filter=trader_filter)
moves = flows[flows["from_stage"] != flows["to_stage"]]
if flows.empty or (changes_only and moves.empty):
    st.info("No trader to follow with these filters." if flows.empty else
            f"No trader changed stage between {from_date:%d %b %Y} and {rng.end:%d %b %Y}.",
            icon=":material/filter_alt_off:")
else:
    st.caption(f"Stage on {from_date:%d %b %Y} → stage on {rng.end:%d %b %Y}: {int(moves['traders'].sum()):,} of "
               f"{int(flows['traders'].sum()):,} traders changed stage. “Not yet captured” are traders who "
               "arrived in between.")
    charts.render_flows(moves if changes_only else flows, key="lifecycle.flows",
                        file_name=f"lifecycle_flows_{from_date}_{rng.end}.csv")
