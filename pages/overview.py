"""Overview (executives): headline KPIs against the previous period, trends, breakdowns, asset classes.

Aggregates only: no trader is named on this page.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from analytics import events
from analytics import kpis as kpi_analytics
from analytics.filters import FilterOptions, TraderFilter
from analytics.kpis import DIMENSION_LABELS, DIMENSIONS, GROUPS, SPECS, TREND_METRICS
from analytics.periods import DateRange, Period, comparison_range, step_period
from components import health, kpi_tiles, labels, outage, overview_charts, page, params
from components.filters import View
from components.text import escape_markdown

PERIOD_LABELS = {"day": "Daily", "week": "Weekly", "month": "Monthly"}
LEVEL_METRICS = {"active_traders"}  # drawn as a line; every other trend metric is a flow drawn as bars
BREAKDOWN_METRICS = ("deposits", "net_deposits", "registrations", "ftds", "active_traders", "volume_usd")

load_event_span = page.loader(events.compute_event_span)
load_kpis = page.loader(kpi_analytics.compute_kpis, spinner="Computing KPIs…")
load_trend = page.loader(kpi_analytics.compute_kpi_trend)
load_breakdown = page.loader(kpi_analytics.compute_breakdown)
load_asset_classes = page.loader(kpi_analytics.compute_volume_by_asset_class)


def data_start() -> datetime | None:
    """The first instant with data; None for an empty database."""
    span = load_event_span()
    return span.first_at if span else None


def span_label(rng: DateRange) -> str:
    return f"{rng.start:%d %b %Y} – {rng.end:%d %b %Y}"


def filter_label(flt: TraderFilter, options: FilterOptions | None = None) -> str:
    """"Country: DE, GB · Platform: MT5 · Segment: VIP churners", or "all traders"; says whether test accounts
    count. Segments are named from ``options``. Markdown: the values (affiliate ids, countries, segment
    names …) come from the data and the URL."""
    segments = tuple(getattr(options and options.segment(i), "name", f"#{i}") for i in flt.segments)
    parts = [f"{name}: {', '.join(escape_markdown(labels.display_value(attribute, v)) for v in values)}"
             for name, attribute, values in (
                 ("Country", "country", flt.countries), ("Channel", "acquisition_channel", flt.channels),
                 ("Affiliate", "affiliate_id", flt.affiliates), ("Platform", "platform", flt.platforms),
                 ("VIP tier", "vip_tier", flt.vip_tiers), ("Segment", None, segments)) if values]
    who = " · ".join(parts) if parts else "All traders"
    return f"{who} ({'test accounts included' if flt.include_test else 'test accounts excluded'})"


def coverage_note(previous: DateRange, data_start: datetime | None) -> str:
    """Why a comparison is missing or thin when the data begins after the previous period starts."""
    if data_start is None or data_start <= previous.start_ts:
        return ""
    if data_start >= previous.end_ts:
        return f" · The data begins on {data_start:%d %b %Y}, so there is no previous period to compare with."
    return f" · The data begins on {data_start:%d %b %Y}, so the previous period is only partly covered."


def default_period(rng: DateRange) -> Period:
    return "day" if rng.days <= 31 else "week" if rng.days <= 190 else "month"


def caption(view: View) -> str:
    """The range against the previous one, the traders kept, and how far the data reaches back."""
    rng, previous = view.date_range, view.date_range.previous()
    return (f"{span_label(rng)} (UTC) against the previous {rng.days} days ({span_label(previous)}) · "
            f"{filter_label(view.trader_filter, page.load_filter_options())}{coverage_note(previous, data_start())}")


# The two panels with their own controls are fragments: changing a trend or breakdown control
# reruns that panel only, so the tiles and the other charts are not rebuilt and resent.
@outage.fragment
def trends_panel(date_range: DateRange, trader_filter: TraderFilter) -> None:
    st.subheader("Trends", divider="gray", anchor=False)
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
        metric = params.selectbox(st, "Metric", TREND_METRICS, format_func=lambda m: SPECS[m].label,
                                  key="overview.metric", width=260)
        period = params.segmented_control(st, "Period", list(PERIOD_LABELS), format_func=PERIOD_LABELS.get,
                                      default=default_period(date_range), required=True, key="overview.period")
        compare = params.toggle(st, "Compare with the previous period", value=True, key="overview.compare")
    spec = SPECS[metric]
    current = load_trend(metric=metric, date_range=date_range, period=period, trader_filter=trader_filter)
    earlier = None
    first = data_start()
    # Whole days/weeks/months back, so each previous bar sits on the period it compares with.
    back_range, back = comparison_range(date_range, period)
    if compare and first is not None and back_range.end_ts <= first:
        st.caption(f"No comparison: the data begins on {first:%d %b %Y}, after {span_label(back_range)}.")
    elif compare:
        earlier = load_trend(metric=metric, date_range=back_range, period=period, trader_filter=trader_filter)
        earlier = earlier.assign(period_start=[pd.Timestamp(step_period(p.date(), period, back))
                                               for p in earlier["period_start"]])
        st.caption(f"Dotted line: the same {PERIOD_LABELS[period].lower()} periods {span_label(back_range)}. "
                   "Pale bars: periods only partly inside the range.")
    overview_charts.render_trend(current, earlier, label=spec.label, unit=spec.unit, period=period,
                                 previous_name="Previous period", as_line=metric in LEVEL_METRICS,
                                 key="overview.trend")


@outage.fragment
def breakdown_panel(date_range: DateRange, trader_filter: TraderFilter) -> None:
    st.subheader("Breakdown", divider="gray", anchor=False)
    options = page.load_filter_options()
    # By segment only once there are saved segments; each row is then one segment's current members.
    dimensions = [d for d in DIMENSIONS if d != "segment" or options.segments]
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
        dimension = params.segmented_control(st, "By", dimensions, format_func=DIMENSION_LABELS.get,
                                         default="country", required=True, key="overview.breakdown")
        ranked_by = params.selectbox(st, "Ranked by", BREAKDOWN_METRICS, format_func=lambda m: SPECS[m].label,
                                 key="overview.rank", width=220)
    if dimension == "segment":
        trader_filter = options.stamp(trader_filter, segment_ids=[s.segment_id for s in options.segments])
    breakdown = load_breakdown(dimension=dimension, date_range=date_range, trader_filter=trader_filter,
                               rank_by=ranked_by)
    if breakdown.empty:
        st.info("No activity for the selected traders in this period.", icon=":material/bar_chart_off:")
        return
    overview_charts.render_breakdown(
        breakdown, metric=ranked_by, metric_label=SPECS[ranked_by].label, unit=SPECS[ranked_by].unit,
        dimension=dimension, dimension_label=DIMENSION_LABELS[dimension],
        file_name=f"traderlens_breakdown_{dimension}.csv",
        key="overview.breakdown_view")
    if dimension == "segment":
        st.caption("Every saved segment, by its members as of its last refresh: a trader in two segments counts in "
                   "both, so the rows can add up to more than the total. FTD conversion is cohort-based: "
                   "registrations at least 7 days before the data end.")
    else:
        st.caption("Top 10 by the ranking metric, the rest as Other. A trader's platform is that of their first "
                   "live account. FTD conversion is cohort-based: registrations at least 7 days before the data "
                   "end.")


view = page.header("Overview", caption)
date_range, trader_filter = view.date_range, view.trader_filter

kpis = load_kpis(date_range=date_range, trader_filter=trader_filter)
if all(not k.value and not k.previous for k in kpis):
    st.info("No registrations, payments or trades in this period or the one before it for the selected traders. "
            "Widen the period or clear some filters in the sidebar.",
            title="Nothing to show for this view", icon=":material/filter_alt_off:")
    st.stop()

kpi_tiles.render_kpi_groups(kpis, GROUPS, key="overview.kpis",
                            previous_label=f"Previous period ({span_label(date_range.previous())})")
health.render_range_drivers(date_range, trader_filter)  # net deposits or volume decided by one trader

trends_panel(date_range, trader_filter)
breakdown_panel(date_range, trader_filter)

st.subheader("Volume by asset class", divider="gray", anchor=False)
asset_classes = load_asset_classes(date_range=date_range, trader_filter=trader_filter)
if asset_classes.empty:
    st.info("No positions were closed in this period.", icon=":material/candlestick_chart:")
else:
    overview_charts.render_asset_classes(asset_classes, key="overview.assets")
    st.caption("Positions closed in the period; notional in USD, one side counted: the headline volume. Lots are "
               "per asset class only: a lot is 100,000 units of an FX pair but one coin of a crypto, so lots of "
               "different classes are never added up.")
