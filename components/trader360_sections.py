"""The Trader 360 page's sections, each drawn from one analytics result: the finder, the trader's
header and profile, key figures, features against peers and population, and memberships.

Every value from the data (names, e-mails, ids, segment and run names) reaches Markdown through
:func:`components.text.escape_markdown`, or is shown in a table or a widget option, which take text as
it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import pandas as pd
import streamlit as st

from analytics.trader360 import (
    MAX_EXTERNAL_ID_CHARS,
    FeatureComparison,
    KeyFigures,
    Memberships,
    Peers,
    SearchResult,
    Timeline,
    TraderProfile,
    TraderStage,
)
from components import labels, tables
from components.errors import render_error
from components.kpi_tiles import format_value
from components.text import escape_markdown
from connectors.errors import TraderLensError

TRADER_PARAM = "trader"  # ?trader=<external id>: the trader the page shows (links from other pages use it)
SEARCH_KEY = "trader360.search"
MATCH_KEY = "trader360.match"
OPENED_KEY = "trader360.opened_for"  # session state: the search text whose exact match was opened
FIELD_LABELS = {"id": "id", "login": "platform login", "email": "e-mail", "name": "name"}
NO_VALUE = "—"


def linked_trader() -> list[str]:
    """The ``?trader=`` values of the link (several when a link repeats it)."""
    return st.query_params.get_all(TRADER_PARAM) if TRADER_PARAM in st.query_params else []


def _open(external_id: str) -> None:
    st.query_params[TRADER_PARAM] = external_id


def _on_match() -> None:
    chosen = st.session_state.get(MATCH_KEY)
    if chosen:
        _open(chosen)


def match_label(row: pd.Series) -> str:
    """One candidate as the match list shows it: id · name · e-mail · country (· what matched)."""
    parts = [str(row["external_id"]), row["name"] or "", row["email"] or "", labels.country_name(row["country"])]
    matched = FIELD_LABELS[row["matched_on"]]
    suffix = f"  ({'exact ' if row['exact'] else ''}{matched})" if matched != "id" or not row["exact"] else ""
    return " · ".join(p for p in parts if p) + suffix


def render_finder(search: Callable[[str], SearchResult]) -> None:
    """The search box and its matches. Choosing a match (or typing a whole id, login or e-mail that only
    one trader has) opens that trader: ``?trader=`` is set and the run goes on to show them."""
    text = st.text_input("Find a trader", key=SEARCH_KEY, max_chars=200,
                         placeholder="Trader id, e-mail, name or platform login",
                         help="Case does not matter. Whole values come first, then values that start with the "
                              "text, then (for three characters or more) values that hold it anywhere.")
    if not text.strip():
        return
    try:
        result = search(text)
    except TraderLensError as exc:  # text no id, login, name or e-mail can hold: said, not searched
        render_error(exc)
        return
    matches = result.matches
    if matches.empty:
        st.info(f"No trader's id, platform login, e-mail or name contains “{escape_markdown(result.text)}”.",
                icon=":material/person_search:")
        return
    exact = matches[matches["exact"]]
    # A whole id, login or e-mail that one trader has: open them, once per search text (the list stays,
    # to switch to another match).
    if (len(exact) == 1 and exact["external_id"].iloc[0] not in linked_trader()
            and st.session_state.get(OPENED_KEY) != result.text):
        st.session_state[OPENED_KEY] = result.text
        _open(str(exact["external_id"].iloc[0]))
    by_id = {str(r["external_id"]): match_label(r) for _, r in matches.iterrows()}
    shown = len(matches)
    st.selectbox(
        f"{shown} match{'es' if shown != 1 else ''}" + (f" (the first {shown}: add to the text to narrow them)"
                                                          if result.more else ""),
        list(by_id), format_func=by_id.get, index=None, key=MATCH_KEY, on_change=_on_match,
        placeholder="Choose a trader to open")


SOURCE_NAMES = {"ledger": "payments", "trades": "trades", "logins": "logins", "portal": "portal events"}


def timeline_note(timeline: Timeline) -> str:
    """How to read the timeline, and which sources it draws one point per day."""
    note = ("Times in UTC. Drag across the activity bars under the points to zoom into that span, drag the span to "
            "move it, double-click the bars to see everything again.")
    if timeline.per_day:
        thinned = " and ".join(SOURCE_NAMES[s] for s in timeline.per_day)
        note += (f" This window holds more than {timeline.max_points:,} points of {thinned}: they are drawn one per "
                 "day (a bigger mark for a busier day; hover for the day's count and total). A shorter window shows "
                 "each one.")
    return note


def render_header(profile: TraderProfile, stage: TraderStage) -> None:
    """Name, id and the badges that matter first: lifecycle stage, VIP, KYC, test or blocked account."""
    st.subheader(escape_markdown(profile.name), anchor=False)
    badges = [f":blue-badge[{escape_markdown(stage.label)}]"]
    if profile.vip_tier:
        badges.append(f":orange-badge[VIP {escape_markdown(profile.vip_tier)}]")
    badges.append(f":{'green' if profile.kyc_status == 'approved' else 'gray'}-badge[KYC "
                  f"{escape_markdown(profile.kyc_status)}]")
    if profile.is_blocked:
        badges.append(":red-badge[Blocked]")
    if profile.is_test:
        badges.append(":gray-badge[Test account]")
    st.markdown(" ".join(badges))
    st.caption(f"Trader id {escape_markdown(profile.external_id)} · lifecycle stage at the end of "
               f"{stage.day:%d %b %Y} (the newest day with data), dormant after {stage.dormant_days} and "
               f"churned after {stage.churn_days} days without activity.",
               help=labels.STAGES.get(stage.stage or "not_captured", ""))


def _when(value: datetime | None) -> str:
    return NO_VALUE if value is None or pd.isna(value) else f"{value:%d %b %Y %H:%M}"


def _day(value: datetime | None) -> str:
    return NO_VALUE if value is None or pd.isna(value) else f"{value:%d %b %Y}"


def _money(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NO_VALUE
    return f"{'−' if x < 0 else ''}${abs(x):,.2f}"


def _fields(rows: list[tuple[str, object]]) -> None:
    """Label: value lines, the values as literal text."""
    st.markdown("  \n".join(f"**{label}:** {escape_markdown(value) if value not in (None, '') else NO_VALUE}"
                            for label, value in rows))


def render_profile(profile: TraderProfile, *, key: str) -> None:
    """Contact details, where they came from, consents and owner; then their trading accounts."""
    c1, c2, c3 = st.columns(3)
    with c1:
        _fields([("E-mail", profile.email), ("Phone", profile.phone),
                 ("Country", labels.country_name(profile.country) if profile.country else None),
                 ("Language", profile.language), ("Time zone", profile.timezone)])
    with c2:
        _fields([("Channel", labels.channel_name(profile.acquisition_channel) if profile.acquisition_channel
                  else None), ("Campaign", profile.campaign_source), ("Affiliate (IB)", profile.affiliate_id),
                 ("Owner", profile.owner), ("VIP tier", profile.vip_tier)])
    with c3:
        consents = ", ".join(f"{channel} {'yes' if ok else 'no'}" for channel, ok in profile.consents.items())
        _fields([("Registered", _when(profile.registered_at) if profile.registered_at else None),
                 ("Lead since", _when(profile.lead_at) if profile.lead_at else None),
                 ("KYC", profile.kyc_status + (f", approved {_day(profile.kyc_approved_at)}"
                                              if profile.kyc_approved_at else "")),
                 ("May contact by", consents), ("Blocked", "yes" if profile.is_blocked else "no")])
    accounts = profile.accounts
    if accounts.empty:
        st.caption("No trading account.")
        return
    tables.render_table(
        accounts, key=key, file_name=f"trader_{profile.external_id[:MAX_EXTERNAL_ID_CHARS]}_accounts.csv",
        height=tables.fit_height(len(accounts), max_rows=8),
        column_config={
            "account": "Account", "platform": "Platform", "server": "Server", "login": "Login", "group": "Group",
            "currency": "Currency", "leverage": st.column_config.NumberColumn("Leverage", format="1:%d"),
            "demo": st.column_config.CheckboxColumn("Demo"),
            "opened_at": st.column_config.DatetimeColumn("Opened (UTC)", format="D MMM YYYY HH:mm"),
            "trades": st.column_config.NumberColumn("Trades", format="localized"),
            "last_trade_at": st.column_config.DatetimeColumn("Last close (UTC)", format="D MMM YYYY HH:mm"),
        })


def render_key_figures(figures: KeyFigures) -> None:
    """Money and trading over the trader's whole history, as tiles."""
    tiles = [
        ("Deposits", format_value(figures.deposits_usd, "usd"), f"{figures.deposits:,} approved"
         + (f", {figures.declined_deposits:,} declined" if figures.declined_deposits else ""),
         "Approved deposits in USD at transaction time."),
        ("Withdrawals", format_value(figures.withdrawals_usd, "usd"), f"{figures.withdrawals:,} approved",
         "Approved withdrawals in USD."),
        ("Net deposits", format_value(figures.net_deposits_usd, "usd"), f"bonuses {_money(figures.bonuses_usd)}"
         if figures.bonuses_usd else None,
         "Approved deposits − approved withdrawals; bonuses, adjustments, fees and IB commissions excluded."),
        ("Realised P&L", format_value(figures.realised_pnl_usd, "usd"), None,
         "Client P&L of closed positions: profit + commission + swap."),
        ("Trades", f"{figures.trades:,}", f"win rate {figures.win_rate:.0%}" if figures.win_rate is not None else None,
         "Closed positions; the win rate is the share with a positive client P&L."),
        ("Volume", format_value(figures.volume_usd, "usd"),
         f"{figures.lots:,.2f} lots", "Notional volume in USD of the positions (one side)."),
        ("First activity", _day(figures.first_activity_at), f"FTD {_day(figures.ftd_at)}" if figures.ftd_at else
         "no deposit yet", "The trader's first event of any kind: lead, registration, KYC, payment, trade, login."),
        ("Last activity", _day(figures.last_activity_at), f"last trade {_day(figures.last_trade_at)}"
         if figures.last_trade_at else "never traded", "The trader's latest event of any kind."),
    ]
    for start in range(0, len(tiles), 4):
        for column, (label, value, note, help_text) in zip(st.columns(4), tiles[start:start + 4], strict=True):
            with column:
                st.metric(label, value, help=help_text, border=True)
                if note:
                    st.caption(note)


# How a feature's value reads, by its unit.
def format_feature(value: float, unit: str) -> str:
    """A feature value for reading: ratios as percent, USD as dollars, seconds as a duration."""
    if value is None or math.isnan(value):
        return NO_VALUE
    if unit == "ratio":
        return f"{value:.1%}"
    if unit.startswith("USD"):
        return _money(value) + unit[3:]
    if unit == "seconds":
        return f"{value:,.0f} s" if value < 120 else f"{value / 60:,.1f} min" if value < 7200 else \
            f"{value / 3600:,.1f} h"
    if unit == "flag":
        return "yes" if value >= 0.5 else "no"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + (f" {unit}" if unit not in ("x",) else "×")


def comparison_table(comparison: FeatureComparison) -> pd.DataFrame:
    """The comparison as the page shows it: text values by unit, z-scores and percentiles as numbers (the
    population's and peers' columns only when there is a snapshot to compare with)."""
    t = comparison.table
    shown = pd.DataFrame({
        "Feature": t["label"], "Group": t["group"].str.replace("_", " "),
        "Trader": [format_feature(v, u) for v, u in zip(t["value"], t["unit"], strict=True)],
    })
    if comparison.snapshot_as_of is None:
        return shown
    shown["Population mean"] = [format_feature(v, u) for v, u in zip(t["population_mean"], t["unit"], strict=True)]
    shown["z (population)"] = t["population_z"]
    shown["Percentile (population)"] = t["population_percentile"]
    if comparison.peers is not None:
        shown["Peers' mean"] = [format_feature(v, u) for v, u in zip(t["segment_mean"], t["unit"], strict=True)]
        shown["z (peers)"] = t["segment_z"]
        shown["Percentile (peers)"] = t["segment_percentile"]
    return shown


def render_peer_choice(choices: list[Peers], *, key: str) -> Peers | None:
    """A select of the groups to compare the trader with (their clusters, then their segments); None
    without any. Not bound to the URL: the choices are this trader's own."""
    if not choices:
        return None
    names = {f"{p.kind}:{p.ref}:{'' if p.cluster is None else p.cluster}": p for p in choices}
    chosen = st.selectbox("Compare with", list(names), format_func=lambda k: names[k].name, key=key,
                          help="The trader's clusters in saved clustering runs and the saved segments they are in.")
    return names.get(chosen)


def render_feature_comparison(comparison: FeatureComparison, *, key: str, file_name: str) -> None:
    """The trader's features beside the population's and their peers', with z-scores and percentiles."""
    if not comparison.registered:
        st.info(f"No features: the trader had not registered by {comparison.as_of:%d %b %Y} (features describe "
                "registered traders).", icon=":material/hourglass_empty:")
        return
    if comparison.snapshot_as_of is None:
        st.info("No feature snapshot of all traders has been computed yet, so only this trader's values are shown. "
                "The comparison with everyone and with the trader's segment appears once the app's background "
                "refresh has computed one (at start, then every 5 minutes).", icon=":material/info:")
    else:
        note = (f" (the trader's values are as of {comparison.as_of:%d %b %Y %H:%M} UTC)"
                if comparison.snapshot_as_of != comparison.as_of else "")
        peers = (f"; peers: **{escape_markdown(comparison.peers.name)}**, {comparison.peer_count:,} of them in the "
                 "snapshot" if comparison.peers is not None else "")
        st.caption(f"Population: the feature snapshot as of {comparison.snapshot_as_of:%d %b %Y %H:%M} UTC, "
                   f"{comparison.population:,} traders{note}{peers}. z = (trader − mean) ÷ standard deviation; "
                   "percentile = share of traders below the trader (ties count half). Data up to the day before "
                   "the as-of.")
    shown = comparison_table(comparison)
    percent = st.column_config.ProgressColumn(min_value=0, max_value=100, format="%.0f")
    z = st.column_config.NumberColumn(format="%+.2f")
    config = {"z (population)": z, "Percentile (population)": percent}
    if comparison.peers is not None:
        config |= {"z (peers)": z, "Percentile (peers)": percent}
    tables.render_table(shown, key=key, file_name=file_name, column_config=config, height=420,
                        download=comparison.table)


def render_memberships(memberships: Memberships, *, key: str, file_prefix: str) -> None:
    """Saved segments the trader is in, the history of their entering and leaving, and their clusters."""
    with st.container(key=key):
        segments, history, clusters = memberships.segments, memberships.history, memberships.clusters
        left, right = st.columns(2)
        with left:
            st.markdown("**Segments now**")
            if segments.empty:
                st.caption("In no saved segment at the segments' last refresh.")
            else:
                tables.render_table(segments.drop(columns=["segment_id"]), key=f"{key}.segments",
                                    file_name=f"{file_prefix}_segments.csv",
                                    height=tables.fit_height(len(segments), max_rows=8),
                                    column_config={"segment": "Segment", "kind": "Kind",
                                                   "since": st.column_config.DatetimeColumn("Member since (UTC)",
                                                                                            format="D MMM YYYY HH:mm"),
                                                   "refreshed_at": st.column_config.DatetimeColumn(
                                                       "Refreshed (UTC)", format="D MMM YYYY HH:mm"),
                                                   "archived": st.column_config.CheckboxColumn("Archived")})
        with right:
            st.markdown("**Clusters**")
            if clusters.empty:
                st.caption("No saved clustering run has placed this trader.")
            else:
                tables.render_table(clusters.drop(columns=["run_id"]), key=f"{key}.clusters",
                                    file_name=f"{file_prefix}_clusters.csv",
                                    height=tables.fit_height(len(clusters), max_rows=8),
                                    column_config={"run": "Run", "created_at": st.column_config.DatetimeColumn(
                                        "Saved (UTC)", format="D MMM YYYY"), "as_of": st.column_config.DatetimeColumn(
                                        "Features as of", format="D MMM YYYY"), "algorithm": "Algorithm", "k": "k",
                                        "cluster": "Cluster", "cluster_name": "Cluster name"})
        st.markdown("**Entered and left**")
        if history.empty:
            st.caption("No segment refresh has seen this trader enter or leave a segment.")
        else:
            tables.render_table(history.drop(columns=["segment_id"]), key=f"{key}.history",
                                file_name=f"{file_prefix}_segment_history.csv",
                                height=tables.fit_height(len(history), max_rows=10),
                                column_config={"changed_at": st.column_config.DatetimeColumn(
                                    "When (UTC)", format="D MMM YYYY HH:mm"), "segment": "Segment",
                                    "change": "Change", "version": "Definition version"})
