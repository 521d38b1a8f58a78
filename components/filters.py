"""The global filters in the sidebar: one date range and one trader filter for every page.

They are rendered once by app.py (the frame), so their values survive page switches, and each
widget is bound to a URL query parameter (``?period=…&country=DE&channel=affiliate``), so the
current view can be sent to a colleague. Pages read the result with :func:`current_view`. The
options and the data's span are fetched by the page seam (components/page.py) and handed in.

Saved segments are picked by name (``?segment=VIP%20churners``): the view keeps the current members of
any of them, and its filter carries the newest refresh of those segments, so a page's cached results are
recomputed once a refresh has changed who is in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from analytics.filters import FilterOptions, SegmentOption, TraderFilter
from analytics.periods import DateRange
from components import labels, params
from connectors.clock import reporting_zone

VIEW_KEY = "global.view"
PRESETS: dict[str, int | None] = {
    "Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Last 6 months": 182,
    "Last 12 months": 365, "All data": None, "Custom": None,
}
DEFAULT_PRESET = "Last 90 days"


@dataclass(frozen=True)
class View:
    """What every page looks at: whole days of the reporting time zone and a trader filter."""

    date_range: DateRange
    trader_filter: TraderFilter


def _today() -> datetime:
    """Now, as the reporting time zone's wall time."""
    return reporting_zone().to_local(datetime.now(UTC).replace(tzinfo=None))


def render_global_filters(options: FilterOptions, span: DateRange | None) -> View:
    """Draw the sidebar filters over ``options`` and the data's ``span`` (None: no data yet), and remember
    the resulting View for the page."""
    last = span.end if span else _today().date()
    first = span.start if span else last
    with st.sidebar:
        st.markdown("**Filters**")
        preset = params.selectbox(st, "Period", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET),
                              key="period",
                              help="Periods end on the newest day with data, so a stale import is obvious "
                                   "on the Data page rather than as empty charts.")
        if preset == "Custom":
            start = params.date_input(st, "From", value=max(first, last - timedelta(days=89)), min_value=first,
                                  max_value=last, key="from")
            end = params.date_input(st, "To", value=last, min_value=first, max_value=last, key="to")
            start, end = min(start, end), max(start, end)
        elif preset == "All data":
            start, end = first, last
        else:
            end = last
            start = max(first, end - timedelta(days=PRESETS[preset] - 1))
        st.caption(f"{start:%d %b %Y} – {end:%d %b %Y} ({reporting_zone().name})")
        trader_filter = TraderFilter(
            # By name; the URL holds the name too, and a link's ISO code or channel code still works.
            countries=tuple(params.multiselect(st, "Country", options.countries, key="country",
                                           format_func=labels.country_name, placeholder="All countries",
                                           aliases={c: labels.country_name(c) for c in options.countries})),
            channels=tuple(params.multiselect(st, "Acquisition channel", options.channels, key="channel",
                                              format_func=labels.channel_name, placeholder="All channels",
                                              aliases={c: labels.channel_name(c) for c in options.channels})),
            affiliates=tuple(params.multiselect(st, "Affiliate (IB)", options.affiliates, key="affiliate",
                                                placeholder="All affiliates")),
            platforms=tuple(params.multiselect(st, "Platform", options.platforms, key="platform",
                                           placeholder="All platforms")),
            vip_tiers=tuple(params.multiselect(st, "VIP tier", options.vip_tiers, key="vip",
                                           placeholder="All tiers")),
            segments=tuple(params.multiselect(
                st, "Segment", key="segment", **segment_widget(options.segments, placeholder="All traders"),
                help="Saved segments (Segments page): keeps the traders who are members of any of the chosen "
                     "segments, as of each segment's last refresh.")),
            include_test=params.toggle(st, "Include test accounts", key="test"),
        )
    view = View(DateRange(start, end), options.stamp(trader_filter))
    st.session_state[VIEW_KEY] = view
    return view


def segment_widget(segments: Sequence[SegmentOption], *, placeholder: str = "Choose segments") -> dict[str, Any]:
    """The arguments of a ``params.multiselect`` offering saved ``segments`` by name (the values are segment
    ids; the URL holds the names, and an unknown name is dropped with the usual notice); without segments it
    says so and is disabled."""
    names = {s.segment_id: s.name for s in segments}
    return {"options": list(names), "format_func": names.get, "disabled": not names,
            "placeholder": placeholder if names else "No saved segments yet"}


def current_view() -> View:
    """The View the frame computed on this run; a 90-day view of everyone when a page runs alone."""
    view = st.session_state.get(VIEW_KEY)
    if view is None:
        end = _today().date()
        view = View(DateRange(end - timedelta(days=89), end), TraderFilter())
    return view
