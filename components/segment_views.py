"""Rendering for the Segments page's saved segments and their comparison: the list, one segment's
figures, definition, size over time, members and versions; the forms that make list, cluster and
funnel-step segments; two segments side by side (size, KPIs, retention curve, feature profile)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from analytics.kpis import Kpi
from analytics.segments import SIZE_COLUMNS, FeatureProfile, FieldCatalog, ListCheck, describe_definition
from components import labels, params
from components.figures import render_chart, styled
from components.kpi_tiles import format_value
from components.rule_builder import trader_link
from components.tables import fit_height, render_table
from components.text import escape_markdown

KIND_LABELS = {"rules": "Rules", "cluster": "Cluster", "list": "Uploaded list", "funnel_step": "Funnel drop-offs"}
SIZE_BLUE, ENTERED_GREEN, LEFT_RED = "#1f5fa8", "#2e8b57", "#c0392b"


def render_segment_list(frame: pd.DataFrame, *, key: str) -> None:
    """The saved segments: name, kind, members, version, last refresh, description."""
    shown = pd.DataFrame({
        "Segment": frame["name"], "Kind": frame["kind"].map(KIND_LABELS), "Members": frame["size"],
        "Version": frame["version"], "Refreshed (UTC)": frame["refreshed_at"],
        "Archived": frame["archived"], "Description": frame["description"],
    })
    if not frame["archived"].any():
        shown = shown.drop(columns=["Archived"])
    with st.container(key=key):
        st.dataframe(shown, hide_index=True, height=fit_height(len(shown), max_rows=12), column_config={
            "Members": st.column_config.NumberColumn(format="localized"),
            "Refreshed (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        })


def pick_segment(where, frame: pd.DataFrame, *, key: str, label: str = "Segment", index: int | None = 0) -> int | None:
    """A segment chosen by name (bound to ``?key=<name>``); its id, None when there is none to choose."""
    if frame.empty:
        return None
    names = dict(zip(frame["segment_id"].astype(int), frame["name"], strict=True))
    chosen = params.selectbox(where, label, list(names), key=key, format_func=names.get, index=index)
    return None if chosen is None else int(chosen)


def render_segment_summary(row: Mapping, catalog: FieldCatalog | None) -> None:
    """Members, version, last refresh and the definition in words."""
    c1, c2, c3 = st.columns(3)
    c1.metric("Members", f"{int(row['size']):,}")
    c2.metric("Version", int(row["version"]),
              help=f"Saved {row['updated_at']:%d %b %Y %H:%M} UTC by {row['updated_by']}.")
    refreshed = row["refreshed_at"]
    c3.metric("Refreshed", "never" if pd.isna(refreshed) else f"{refreshed:%d %b %H:%M}",
              help="UTC. Saved segments are refreshed every few minutes while the app runs "
                   "(TRADERLENS_SEGMENT_REFRESH_S) and by `python cli.py segments refresh`.")
    definition = json.loads(row["definition"])
    st.markdown(f"**{KIND_LABELS.get(row['kind'], row['kind'])}:** "
                f"{escape_markdown(describe_definition(row['kind'], definition, catalog))}")
    if row["description"]:
        st.caption(escape_markdown(row["description"]))


def as_datetime(value: object) -> datetime | None:
    """A pandas time (NaT included) as a datetime or None."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def render_size_over_time(frame: pd.DataFrame, *, key: str) -> None:
    """The segment's size at the end of each day, with the traders who entered and left."""
    if frame.empty:
        st.caption("No refresh yet: the size over time starts with the first one.")
        return
    data = frame[SIZE_COLUMNS].copy()
    data["day"] = pd.to_datetime(data["day"])
    x = alt.X("day:T", title=None, axis=alt.Axis(format="%d %b"))
    size = alt.Chart(data).mark_line(point=len(data) < 60, color=SIZE_BLUE).encode(
        x=x, y=alt.Y("size:Q", title="Members", scale=alt.Scale(zero=True, nice=True, padding=8)),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b %Y"), alt.Tooltip("size:Q", title="Members"),
                 alt.Tooltip("entered:Q", title="Entered"), alt.Tooltip("left:Q", title="Left")])
    moves = pd.concat([data.assign(move="entered", traders=data["entered"]),
                       data.assign(move="left", traders=-data["left"])], ignore_index=True)
    width = max(2, min(14, 600 // len(data)))  # a bar per day, visible when there are few days
    bars = alt.Chart(moves).mark_bar(opacity=0.7, size=width).encode(
        x=x, y=alt.Y("traders:Q", title="Entered / left"),
        color=alt.Color("move:N", scale=alt.Scale(domain=["entered", "left"], range=[ENTERED_GREEN, LEFT_RED])),
        tooltip=[alt.Tooltip("day:T", title="Day", format="%d %b %Y"), alt.Tooltip("move:N", title=" "),
                 alt.Tooltip("traders:Q", title="Traders")])
    render_chart(styled(size, height=180), key=key)
    render_chart(styled(bars, height=140), key=f"{key}.moves")


# Headers of the members table (the CSV keeps analytics.segments.EXPORT_COLUMNS' names).
MEMBER_LABELS = {
    "trader_external_id": "Trader id", "first_name": "First name", "last_name": "Last name", "email": "Email",
    "phone": "Phone", "country": "Country", "language": "Language", "acquisition_channel": "Channel",
    "affiliate_id": "Affiliate", "vip_tier": "VIP tier", "kyc_status": "KYC", "owner": "Owner",
    "consent_email": "Email ok", "consent_sms": "SMS ok", "consent_push": "Push ok",
    "consent_whatsapp": "WhatsApp ok", "is_blocked": "Blocked",
}


def render_members(frame: pd.DataFrame, *, total: int, key: str, file_name: str, export: pd.DataFrame | None = None
                   ) -> None:
    """Members with links to Trader 360; the CSV holds every member (``export``)."""
    shown = frame.copy()
    shown.insert(0, "open", [trader_link(e) for e in shown["trader_external_id"]])
    shown["country"] = shown["country"].map(labels.country_name)
    st.caption(f"{len(shown):,} of {total:,} members shown" if total > len(shown) else f"{total:,} members")
    render_table(shown, key=key, file_name=file_name, download=export if export is not None else frame,
                 height=fit_height(len(shown), max_rows=12), column_config={
                     **MEMBER_LABELS,
                     "open": st.column_config.LinkColumn("Trader 360", display_text="Open", width="small"),
                     "registered_at": st.column_config.DatetimeColumn("Registered", format="YYYY-MM-DD"),
                     "member_since": st.column_config.DatetimeColumn("Member since (UTC)", format="YYYY-MM-DD HH:mm"),
                 })


def render_versions(frame: pd.DataFrame, kind: str, catalog: FieldCatalog | None, *, key: str) -> None:
    """Every saved definition of the segment, newest first, in words."""
    shown = pd.DataFrame({
        "Version": frame["version"],
        "Definition": [describe_definition(kind, json.loads(d), catalog) for d in frame["definition"]],
        "Saved (UTC)": frame["saved_at"], "By": frame["saved_by"],
    })
    with st.container(key=key):
        st.dataframe(shown, hide_index=True, height=fit_height(len(shown), max_rows=8), column_config={
            "Saved (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})


def render_list_check(checked: ListCheck) -> None:
    """What an uploaded list matched: known traders, unknown ids with their row, test accounts."""
    st.markdown(f"**{checked.known:,}** of {len(checked.external_ids):,} distinct ids name a trader.")
    if not checked.unknown.empty:
        st.warning(f"{len(checked.unknown):,} ids name no trader yet (they join the segment when a later import "
                   "brings them):", icon=":material/person_off:")
        st.dataframe(checked.unknown.rename(columns={"row": "Row", "external_id": "Trader id"}), hide_index=True,
                     height=fit_height(len(checked.unknown), max_rows=8))
    if not checked.test_accounts.empty:
        st.caption(f"{len(checked.test_accounts):,} ids are test accounts and are left out (rows "
                   + ", ".join(str(r) for r in checked.test_accounts["row"].head(20)) + ").")


# --- comparing two segments -----------------------------------------------------------------------------


def render_kpi_comparison(kpis: Mapping[str, Sequence[Kpi]], *, key: str) -> None:
    """One row per KPI, one column per segment (their values over the sidebar's period)."""
    order: dict[str, str] = {}  # key -> label, in the order the KPIs come (a KPI may be missing from one)
    for listed in kpis.values():
        order.update({k.key: k.label for k in listed if k.key not in order})
    table = pd.DataFrame({"KPI": list(order.values())})
    for name, listed in kpis.items():
        by_key = {k.key: k for k in listed}
        table[name] = [format_value(by_key[k].value, by_key[k].unit) if k in by_key else "" for k in order]
    with st.container(key=key):
        st.dataframe(table, hide_index=True, height=fit_height(len(table), max_rows=30),
                     column_config={"KPI": st.column_config.TextColumn(help="As on the Overview page.")})


def render_retention_comparison(curves: Mapping[str, pd.DataFrame], *, period: str, key: str) -> None:
    """The size-weighted retention curve of each segment's cohorts."""
    rows = [frame.assign(segment=name) for name, frame in curves.items() if not frame.empty]
    if not rows:
        st.caption("No cohort with data for these segments in this period.")
        return
    data = pd.concat(rows, ignore_index=True)
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("interval:O", title=f"{period.capitalize()}s after registration"),
        y=alt.Y("rate:Q", title="Traded again", axis=alt.Axis(format="%")),
        color=alt.Color("segment:N"),
        tooltip=[alt.Tooltip("segment:N", title="Segment"), alt.Tooltip("interval:O", title=period.capitalize()),
                 alt.Tooltip("rate:Q", title="Retained", format=".1%"), alt.Tooltip("size:Q", title="Traders")])
    render_chart(styled(chart, height=260), key=key)


def render_profile_comparison(profile: FeatureProfile, names: Mapping[int, str], *, key: str, top: int = 15) -> None:
    """Each feature's mean in each segment against the population, the most different first (by the
    gap between the two segments' z-scores)."""
    if profile.as_of is None or profile.frame.empty:
        st.caption("No feature snapshot yet: compute one on the Rule builder tab.")
        return
    frame = profile.frame
    ids = list(names)
    wide = frame[frame["segment_id"] == ids[0]][["feature", "label", "unit", "population_mean"]].reset_index(drop=True)
    for sid in ids:
        part = frame[frame["segment_id"] == sid].reset_index(drop=True)
        wide[f"{names[sid]}"] = part["mean"]
        wide[f"z: {names[sid]}"] = part["z"]
    gap = (wide[f"z: {names[ids[0]]}"] - wide[f"z: {names[ids[-1]]}"]).abs() if len(ids) > 1 else \
        wide[f"z: {names[ids[0]]}"].abs()
    wide = wide.assign(_gap=gap.fillna(-1)).sort_values("_gap", ascending=False).drop(columns=["_gap"])
    st.caption(f"Means over the members in the feature snapshot as of {profile.as_of:%d %b %Y}; z: how many "
               "standard deviations from every trader's mean. The most different features first.")
    shown = wide.drop(columns=["feature"]).rename(columns={"label": "Feature", "unit": "Unit",
                                                           "population_mean": "All traders"})
    render_table(shown.head(top), key=key, file_name="segment_profiles.csv", download=shown,
                 height=fit_height(min(top, len(shown)), max_rows=top),
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in shown.columns
                                if c not in ("Feature", "Unit")})
