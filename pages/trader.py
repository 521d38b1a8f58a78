"""Trader 360 (retention managers): one trader in full. Found by id, e-mail, name or platform login, or
opened from a link (``?trader=<external id>``): profile and accounts, lifecycle stage, key figures, the
timeline of everything they did, their features against their peers and everyone, and the segments
and clusters they belong to.

Each section is a function of the trader in :data:`SECTIONS`; later issues add theirs (scores,
campaigns, alerts) to that list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import streamlit as st

from analytics import trader360
from components import page, params
from components import trader360_sections as sections
from components.errors import render_error
from components.timeline import render_timeline
from components.trader360_scores import render_scores_section
from connectors.errors import TraderLensError

WINDOWS = {"all": "All history", "365": "Last 12 months", "90": "Last 90 days", "30": "Last 30 days"}

load_search = page.loader(trader360.search_traders, ttl="1m")
load_trader_id = page.loader(trader360.find_trader_id)
load_profile = page.loader(trader360.load_profile)
load_stage = page.loader(trader360.compute_stage)
load_figures = page.loader(trader360.compute_key_figures)
load_timeline = page.loader(trader360.compute_timeline, spinner="Reading the trader's history…")
load_comparison = page.loader(trader360.compute_feature_comparison, spinner="Comparing features…")
load_memberships = page.loader(trader360.compute_memberships)


def profile_section(trader_id: int) -> None:
    profile = load_profile(trader_id)
    span = page.load_data_span()  # cached: the stage is judged at the end of the newest day with data
    sections.render_header(profile, load_stage(trader_id, day=span.end if span else None))
    sections.render_key_figures(load_figures(trader_id))
    with st.expander("Profile and accounts", expanded=True):
        sections.render_profile(profile, key="trader360.accounts")


def timeline_section(trader_id: int) -> None:
    st.subheader("Timeline", divider="gray", anchor=False)
    window = params.segmented_control(st, "Window", list(WINDOWS), default="all", required=True,
                                      format_func=WINDOWS.get, key="trader360.window")
    span = page.load_data_span()
    start = None if window == "all" or span is None else span.end - timedelta(days=int(window) - 1)
    timeline = load_timeline(trader_id, start=start)
    render_timeline(timeline, key="trader360.timeline")
    st.caption(sections.timeline_note(timeline))


def features_section(trader_id: int) -> None:
    st.subheader("Features against peers and everyone", divider="gray", anchor=False)
    choices = load_memberships(trader_id).peer_choices()
    peers = sections.render_peer_choice(choices, key="trader360.peers")
    comparison = load_comparison(trader_id, peers=peers)
    sections.render_feature_comparison(comparison, key="trader360.features",
                                       file_name=f"trader_{trader_id}_features.csv")


def memberships_section(trader_id: int) -> None:
    st.subheader("Segments and clusters", divider="gray", anchor=False)
    sections.render_memberships(load_memberships(trader_id), key="trader360.memberships",
                                file_prefix=f"trader_{trader_id}")


# The scores right after the profile: what a retention manager acts on first, and on screen before
# the timeline (the page's slowest section) has drawn.
SECTIONS: tuple[Callable[[int], None], ...] = (profile_section, render_scores_section, timeline_section,
                                               features_section, memberships_section)

page.header("Trader 360", caption="One trader in full: who they are, what they did and where they belong. The "
            "sidebar's period and filters do not apply here.")
sections.render_finder(load_search)
linked = sections.linked_trader()
if not linked:
    st.info("Search for a trader above, or open one from a link (`?trader=` and their id).",
            icon=":material/person_search:")
    st.stop()
if len(linked) > 1:
    st.warning("The link names more than one trader; this page shows one at a time: the first.",
               icon=":material/link_off:")
try:
    trader_id = load_trader_id(linked[0])
except TraderLensError as exc:
    render_error(exc)
    st.stop()
for section in SECTIONS:
    section(trader_id)
