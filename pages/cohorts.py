"""Cohorts & retention (retention managers): who comes back, what a depositor is worth over time, and
whether early engagement goes with staying."""

from __future__ import annotations

import streamlit as st

from analytics import cohorts
from analytics.cohorts import RetentionSpec
from analytics.events import entered_segment, list_event_names
from analytics.periods import PERIODS
from components import cohort_charts as charts
from components import filters, outage, page, params
from components.text import escape_markdown

MODES = {"recurring": "Every period with the event", "first_time": "First time only"}
SHOW = {"percent": "Percent", "counts": "Counts"}
MAX_SEGMENTS = 6  # curves compared at once: each is one more retention query
REFERENCE = "All traders shown"

# A short life: a segment saved on the Segments page appears among the events within a minute.
load_event_names = page.loader(list_event_names, ttl="1m")
load_retention = page.loader(cohorts.compute_retention, spinner="Building the retention matrix…")
load_ltv = page.loader(cohorts.compute_ltv)
load_engagement = page.loader(cohorts.compute_engagement_retention)


def pick(options: list[str], preferred: str) -> int:
    return options.index(preferred) if preferred in options else 0


view = page.header("Cohorts & retention", lambda view: (
    f"Cohorts from {view.date_range.start:%d %b %Y} to {view.date_range.end:%d %b %Y} (UTC; the sidebar period), "
    "for the traders the sidebar filters keep."))
rng, trader_filter = view.date_range, view.trader_filter
events = load_event_names()
options = page.load_filter_options()


def reading_events(*names: str):
    """The sidebar's filter, stamped with the refresh of the segments whose "entered" events are among ``names``
    (their cached results are recomputed after a refresh)."""
    return options.stamp(trader_filter, segment_names=[entered_segment(n) for n in names
                                                       if entered_segment(n) is not None])


@outage.fragment
def retention_and_ltv() -> None:
    """Controls, matrix, curves and LTV; a control change reruns this part only."""
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
        start = params.selectbox(c1, "Cohort by", events, index=pick(events, "ftd"), format_func=charts.event_label,
                             key="cohorts.start",
                             help="Traders are grouped by the period in which they did this.")
        back = params.selectbox(c2, "Came back with", events, index=pick(events, "trade"),
                                format_func=charts.event_label,
                            key="cohorts.return",
                            help="A trader counts in period k if they did this k periods after their cohort's period.")
        period = params.selectbox(c3, "Cohort period", PERIODS, index=1, format_func=str.capitalize,
                                  key="cohorts.period")
        intervals = params.number_input(c4, "Periods shown", min_value=2, max_value=60, value=8, step=1,
                                    key="cohorts.intervals",
                                    help="Columns of the matrix: period 0 (the cohort) and the next ones.")
        c5, c6, c7, c8 = st.columns([3, 2, 2, 3], vertical_alignment="bottom")
        mode = params.segmented_control(c5, "Cohorts", list(MODES), default="recurring", format_func=MODES.get,
                                    required=True, key="cohorts.mode",
                                    help="Every period: a trader joins the cohort of each period with the event. "
                                         "First time: only the period of their first-ever event; traders whose "
                                         "first time predates the range are left out.")
        show = params.segmented_control(c6, "Show", list(SHOW), default="percent", format_func=SHOW.get, required=True,
                                    key="cohorts.show")
        cumulative = params.toggle(c7, "Cumulative", key="cohorts.cumulative",
                               help="Rolling retention: a trader counts in period k if they came back in k or later.")
        include_unfinished = params.toggle(
            c8, "Include unfinished periods", key="cohorts.unfinished",
            help="A period not over at the newest day with data is unfinished: its cells can still rise. They "
                 "are marked * either way; on, the averages and curves count them too.")

    spec = RetentionSpec(start_event=start, return_event=back, period=period, intervals=int(intervals), mode=mode,
                         cumulative=cumulative)
    flt = reading_events(start, back)
    result = load_retention(spec, date_from=rng.start, date_to=rng.end, trader_filter=flt,
                            data_end=page.load_data_span().end)  # cached: no second read of the span

    st.subheader("Retention by cohort", divider="gray", anchor=False)
    if int(result.counts["size"].sum()) == 0:
        st.info(f"No trader did “{escape_markdown(charts.event_label(start))}” in this range with these filters. "
                "Choose a longer period in the sidebar, loosen the filters or pick another cohort event.",
                icon=":material/filter_alt_off:")
    else:
        charts.render_retention_metrics(result, include_unfinished=include_unfinished)
        charts.render_cohort_extremes(result, include_unfinished=include_unfinished)
        charts.render_retention_heatmap(result, show=show, key="cohorts.heatmap")
        unit = charts.PERIOD_NAMES[period].lower()
        unfinished = (f"Pale cells marked * are unfinished: their {unit} is not over on "
                      f"{result.data_end:%d %b %Y}, the newest day with data, so they can still rise; "
                      + ("the averages and curves include them. " if include_unfinished else
                         "the averages and curves leave them out. ")) if result.unfinished().to_numpy().any() else ""
        st.caption(f"{unfinished}Blank cells lie after the end of the range. A return in the cohort's own period "
                   "does not count.")
        charts.render_retention_table(result, show=show, key="cohorts.table")
        st.markdown("**Retention curves**")
        charts.render_retention_curves(result, key="cohorts.curves", include_unfinished=include_unfinished)
        st.markdown("**Retention by segment**")
        chosen = [options.segment(i) for i in params.multiselect(
            st, "Compare segments", key="cohorts.segments", max_selections=MAX_SEGMENTS,
            **filters.segment_widget(options.segments),
            help="The average curve of each chosen saved segment's members (as of its last refresh), within the "
                 "sidebar's filters, beside the curve of all the traders shown.")]
        if chosen:
            results = {REFERENCE: result}
            for segment in chosen:
                results[segment.name] = load_retention(
                    spec, date_from=rng.start, date_to=rng.end, data_end=page.load_data_span().end,
                    trader_filter=flt.within(segment.segment_id, segment.refreshed_at))
            charts.render_segment_curves(results, period=period, include_unfinished=include_unfinished,
                                         key="cohorts.segment_curves")
            st.caption("Size-weighted average over each segment's cohorts, as the curve above. A trader in two "
                       "segments counts in both.")

    st.subheader("Lifetime value by FTD cohort", divider="gray", anchor=False)
    st.caption(f"Cumulative money per trader by {charts.PERIOD_NAMES[period].lower()}s since their first deposit, "
               "for FTD cohorts in the range; a cohort shows an age only once all its traders have reached it. "
               "Net deposits = approved deposits − approved withdrawals (bonuses excluded); deposits alone are "
               "the MT5 “Lifetime Value” definition.")
    net = load_ltv(period=period, ages=int(intervals), metric="net_deposits", date_from=rng.start, date_to=rng.end,
                   trader_filter=trader_filter)
    if net.empty or not (net["cohort"] == cohorts.ALL_COHORTS).any():
        st.info("No FTD cohort in this range is old enough yet. Choose a longer period in the sidebar or a shorter "
                "cohort period.", icon=":material/hourglass_empty:")
    else:
        deposits = load_ltv(period=period, ages=int(intervals), metric="deposits", date_from=rng.start,
                            date_to=rng.end, trader_filter=trader_filter)
        charts.render_ltv(net, deposits, period=period, key="cohorts.ltv")


@outage.fragment
def early_engagement() -> None:
    """The "10+ sessions" question; its own controls rerun this part only."""
    st.subheader("Early sessions and later retention", divider="gray", anchor=False)
    e1, e2, _ = st.columns([2, 3, 5])
    threshold = params.number_input(e1, "Sessions threshold", min_value=1, max_value=100, value=10, step=1,
                                key="cohorts.threshold")
    activity = params.selectbox(e2, "Counts as retained", events, index=pick(events, "trade"),
                            format_func=charts.event_label, key="cohorts.activity")
    engagement = load_engagement(threshold=int(threshold), activity=activity, date_to=rng.end,
                                 trader_filter=reading_events(activity))
    if engagement.n_high + engagement.n_low == 0:
        st.info(f"No trader made an FTD at least {engagement.retained_to_day} days before {rng.end:%d %b %Y}, so "
                "no one's 90-day retention can be measured yet.", icon=":material/hourglass_empty:")
    else:
        charts.render_engagement(engagement, key="cohorts.engagement",
                                 note="All FTDs up to the end of the sidebar period are included.")


retention_and_ltv()
early_engagement()
