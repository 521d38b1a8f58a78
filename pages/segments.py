"""Segments (retention managers, marketers): behavioural clusters, rule segments with a live count,
saved segments with their history and members, and two segments side by side."""

from __future__ import annotations

import json

import streamlit as st

from analytics import cohorts, kpis
from analytics import segments as seg
from analytics.events import list_event_names
from analytics.segments import RuleRejected, SegmentRejected
from components import page, params
from components import rule_builder as builder
from components import segment_actions as actions
from components import segment_views as views
from components.cohort_charts import event_label
from components.text import escape_markdown

TABS = ["Clusters", "Rule builder", "Saved segments", "Compare"]
RULE = "segments.rule"  # the rule builder's state
MEMBERS_SHOWN = 500
FUNNEL_STATUSES = {"dropped": "Dropped (window closed)", "in_window": "Still in window", "both": "Both"}

load_catalog = page.loader(seg.load_catalog, ttl="1m")
load_preview = page.loader(seg.preview_rule, ttl="1m", spinner="Counting the traders the rule selects…")
load_segments = page.loader(seg.list_segments, ttl="1m")
load_size = page.loader(seg.compute_size_over_time, ttl="1m")
load_members = page.loader(seg.export_members, ttl="1m")
load_versions = page.loader(seg.list_versions, ttl="1m")
load_list_check = page.loader(seg.check_id_list, ttl="1m")
load_profile = page.loader(seg.compute_feature_profile, ttl="1m")
load_kpis = page.loader(kpis.compute_kpis)
load_retention = page.loader(cohorts.compute_retention)
load_event_names = page.loader(list_event_names, ttl="1m")
actions.register_loaders(load_catalog, load_preview, load_segments, load_size, load_members, load_versions,
                         load_profile)

view = page.header("Segments", "Turn a kind of trader into a segment the rest of TraderLens can use: as a filter "
                   "and breakdown on every page, and as the “entered segment” event in funnels, retention and "
                   "lifecycle.")
actions.render_flash()
studio_tab, rules_tab, saved_tab, compare_tab = st.tabs(TABS, key="segments.tab", bind="query-params")

if studio_tab.open:
    with studio_tab:
        from components import cluster_studio  # the studio's own modules load only when its tab is open

        cluster_studio.render(key="segments.studio")

if rules_tab.open:
    with rules_tab:
        catalog = load_catalog()
        saved = load_segments()
        rules = saved[saved["kind"] == "rules"]
        if catalog.context.features_as_of is None:
            st.info("No feature snapshot yet: rules can use trader attributes, the lifecycle stage and clusters. "
                    "Compute the snapshot to filter on behaviour (trades per week, deposits, recency …).",
                    icon=":material/query_stats:")
            st.button("Compute the feature snapshot", key="segments.materialise", on_click=actions.materialise_features,
                      icon=":material/calculate:")
        l1, l2, l3 = st.columns([4, 1, 1], vertical_alignment="bottom")
        editing = l1.selectbox("Start from", [None, *rules["segment_id"].astype(int)], key="segments.rule.start",
                               format_func=lambda s: "A new rule" if s is None else
                               f"“{rules.set_index('segment_id').loc[s, 'name']}” (version "
                               f"{rules.set_index('segment_id').loc[s, 'version']})")
        if editing is not None:
            definition = json.loads(rules.set_index("segment_id").loc[editing, "definition"])
            l2.button("Load", key="segments.rule.load", on_click=builder.load_rule, args=(RULE, definition, catalog),
                      icon=":material/edit:", help="Put this segment's rule into the builder.")
        l3.button("Clear", key="segments.rule.clear", on_click=builder.clear_rule, args=(RULE,),
                  icon=":material/restart_alt:")
        rule = builder.render_rule_editor(catalog, key=RULE)
        text = json.dumps(rule, sort_keys=True)
        try:
            preview = load_preview(text)
        except RuleRejected as exc:
            preview = None
            st.warning(escape_markdown(exc), icon=":material/rule:")
        if preview is not None:
            builder.render_preview(preview, key="segments.rule.sample")
            with st.form("segments.rule.save", border=True):
                st.markdown("**Save as a segment**")
                f1, f2 = st.columns([2, 3])
                f1.text_input("Name", max_chars=seg.MAX_NAME, key="segments.rule.name")
                f2.text_input("Description", max_chars=500, key="segments.rule.description")
                if editing is not None:
                    st.checkbox("Save as the next version of the segment it started from (its name stays)",
                                key="segments.rule.as_version")
                st.form_submit_button(
                    "Save segment", icon=":material/save:", type="primary", key="segments.rule.submit",
                    on_click=actions.submit_rule, args=(rule, editing),
                    kwargs={"name_key": "segments.rule.name", "description_key": "segments.rule.description",
                            "version_key": "segments.rule.as_version"})
        with st.expander("The rule as JSON", icon=":material/data_object:"):
            st.code(seg.rule_to_json(seg.rule_from_dict(rule)), language="json")
            pasted = st.text_area("Paste a rule to load it", key="segments.rule.json", max_chars=200_000)
            st.button("Load this JSON", key="segments.rule.load_json", disabled=not pasted.strip(),
                      on_click=builder.load_rule_json, args=(RULE, pasted, catalog))
            builder.render_json_error(RULE)

if saved_tab.open:
    with saved_tab:
        show_archived = params.toggle(st, "Show archived segments", key="segments.archived")
        saved = load_segments(include_archived=show_archived)
        catalog = load_catalog()
        if saved.empty:
            st.info("No saved segment yet: build one on the Rule builder tab, save a cluster on the Clusters tab, "
                    "or make one from a list or a funnel step below.", icon=":material/group_add:")
        else:
            views.render_segment_list(saved, key="segments.list")
            chosen = views.pick_segment(st, saved, key="segments.saved")
            row = saved.set_index("segment_id").loc[chosen]
            st.subheader(escape_markdown(row["name"]), anchor=False, divider="gray")
            views.render_segment_summary(row, catalog)
            b1, b2, _ = st.columns([1, 1, 4])
            b1.button("Refresh now", key="segments.refresh", on_click=actions.refresh_now, args=(chosen,),
                      icon=":material/refresh:", disabled=bool(row["archived"]))
            b2.button("Restore" if row["archived"] else "Archive", key="segments.archive",
                      on_click=actions.set_archived, args=(chosen, not row["archived"]),
                      icon=":material/unarchive:" if row["archived"] else ":material/archive:")
            st.markdown("**Size over time**")
            views.render_size_over_time(load_size(chosen), key="segments.size")
            st.markdown("**Members**")
            members = load_members(chosen)
            views.render_members(members.head(MEMBERS_SHOWN), total=len(members), key="segments.members",
                                 export=members, file_name=f"segment_{chosen}_members.csv")
            with st.expander("Versions", icon=":material/history:"):
                views.render_versions(load_versions(chosen), row["kind"], catalog, key="segments.versions")

        st.subheader("New segment from …", anchor=False, divider="gray")
        source = st.segmented_control("Source", ["A list of traders", "A cluster", "A funnel step"],
                                      default="A list of traders", key="segments.new.source",
                                      label_visibility="collapsed")
        if source == "A list of traders":
            upload = st.file_uploader("A CSV with a trader_external_id column, or one trader id per line",
                                      type=["csv", "txt"], key="segments.new.list_file")
            typed = st.text_area("… or paste ids", key="segments.new.list_text", height=100)
            raw = upload.getvalue().decode("utf-8", errors="replace") if upload is not None else typed
            if raw.strip():
                try:
                    rows = seg.parse_id_list(raw)
                except SegmentRejected as exc:
                    st.warning(escape_markdown(exc), icon=":material/list_alt:")
                else:
                    checked = load_list_check(tuple(rows))
                    views.render_list_check(checked)
                    with st.form("segments.new.list"):
                        st.text_input("Name", max_chars=seg.MAX_NAME, key="segments.new.list_name")
                        st.form_submit_button("Save list segment", icon=":material/save:", type="primary",
                                              key="segments.new.list_submit", on_click=actions.submit_new,
                                              args=("list", {"external_ids": list(checked.external_ids)}),
                                              kwargs={"name_key": "segments.new.list_name"})
        elif source == "A cluster":
            runs = [f for f in catalog.fields if f.name.startswith("cluster.")]
            if not runs:
                st.caption("No saved clustering run yet: save one on the Clusters tab.")
            else:
                c1, c2 = st.columns(2)
                run = c1.selectbox("Clustering run", runs, key="segments.new.run",
                                   format_func=lambda f: f.label.removeprefix("Cluster in "))
                clusters_key = f"segments.new.clusters.{run.name}"
                with st.form("segments.new.cluster"):
                    st.multiselect("Clusters", run.choices, format_func=run.choice_label, key=clusters_key)
                    st.text_input("Name", max_chars=seg.MAX_NAME, key="segments.new.cluster_name")
                    st.form_submit_button("Save cluster segment", icon=":material/save:", type="primary",
                                          key="segments.new.cluster_submit", on_click=actions.submit_cluster,
                                          args=(int(run.name.partition(".")[2]),),
                                          kwargs={"clusters_key": clusters_key,
                                                  "name_key": "segments.new.cluster_name"})
        else:
            events = load_event_names()
            with st.form("segments.new.funnel"):
                st.multiselect("Funnel steps, in order", events, format_func=event_label,
                               default=[e for e in ("registered", "ftd") if e in events], key="segments.new.steps")
                c1, c2, c3, c4 = st.columns(4)
                c1.number_input("Dropped after step", min_value=1, max_value=19, value=1, step=1,
                                key="segments.new.step")
                c2.number_input("Window (days)", min_value=1, max_value=1830, value=14, step=1,
                                key="segments.new.window")
                c3.number_input("Over the last (days of data)", min_value=1, max_value=3660, value=30, step=1,
                                key="segments.new.days")
                c4.selectbox("Who", list(FUNNEL_STATUSES), format_func=FUNNEL_STATUSES.get, key="segments.new.status")
                st.text_input("Name", max_chars=seg.MAX_NAME, key="segments.new.name")
                st.form_submit_button("Save funnel segment", icon=":material/save:", type="primary",
                                      key="segments.new.funnel_submit", on_click=actions.submit_funnel,
                                      args=("segments.new",))

if compare_tab.open:
    with compare_tab:
        saved = load_segments()
        if len(saved) < 2:
            st.info("Compare needs two saved segments.", icon=":material/compare_arrows:")
        else:
            c1, c2 = st.columns(2)
            first = views.pick_segment(c1, saved, key="segments.compare_a", label="Segment A", index=0)
            second = views.pick_segment(c2, saved, key="segments.compare_b", label="Segment B", index=1)
            rows = saved.set_index("segment_id")
            chosen = [first, second] if first != second else [first]
            names = {sid: rows.loc[sid, "name"] for sid in chosen}
            for where, sid in zip((c1, c2), chosen, strict=False):
                where.metric("Members", f"{int(rows.loc[sid, 'size']):,}")
            rng = view.date_range
            st.caption(f"{rng.start:%d %b %Y} – {rng.end:%d %b %Y} (the sidebar period), members as of each "
                       "segment's last refresh, within the traders the sidebar filters keep.")
            filters = {names[sid]: view.trader_filter.within(sid, views.as_datetime(rows.loc[sid, "refreshed_at"]))
                       for sid in chosen}
            st.markdown("**KPIs**")
            views.render_kpi_comparison({name: load_kpis(date_range=rng, trader_filter=flt)
                                         for name, flt in filters.items()}, key="segments.compare.kpis")
            st.markdown("**Retention**: registered → traded again, by week")
            spec = cohorts.RetentionSpec(start_event="registered", return_event="trade", period="week", intervals=8)
            curves = {name: load_retention(spec, date_from=rng.start, date_to=rng.end, trader_filter=flt).average()
                      for name, flt in filters.items()}
            views.render_retention_comparison(curves, period="week", key="segments.compare.retention")
            st.markdown("**Feature profile**")
            views.render_profile_comparison(load_profile(tuple(chosen)), names, key="segments.compare.profile")
