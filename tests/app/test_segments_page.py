"""The Segments page through the app entrypoint, in-process with AppTest, on a small simulated broker
(DuckDB) with its feature snapshot: the rule builder's live count and saving, loading a saved or
pasted rule, the saved segments (list, refresh, archive, members CSV), segments from a list and a
funnel step, and two segments compared."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import segments as seg
from analytics.events import compute_data_span
from analytics.export import to_csv
from analytics.features import materialise_features
from analytics.filters import TraderFilter
from analytics.funnels import FunnelSpec, compute_dropoffs
from analytics.kpis import compute_kpis
from analytics.periods import DateRange
from components.kpi_tiles import format_value
from connectors import database, schema
from connectors.simulator import SimulationConfig

PAGE = "pages/segments.py"
HOSTILE = "x'); DROP TABLE traders;--"


@pytest.fixture
def db_url(seeded_broker, use_broker, monkeypatch) -> str:
    """A simulated broker (400 traders over 200 days ending today) with its feature snapshot."""
    monkeypatch.setenv("TRADERLENS_SEGMENT_REFRESH_S", "0")  # no background writes during a test
    url = use_broker(seeded_broker(SimulationConfig(traders=400, days=200, seed=5)))
    materialise_features(database.get_engine(url))
    database.dispose_engines()
    return url


def writer(db_url: str):
    return database.get_engine(db_url)


def open_tab(open_page, tab: str) -> AppTest:
    return open_page(PAGE, **{"segments.tab": tab})


def rule(*items: dict, combine: str = "and") -> dict:
    return {"combine": combine, "items": list(items)}


def cond(field: str, op: str, value=None) -> dict:
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def plain(text: str) -> str:
    """Markdown text as read: the escapes that keep data from being Markdown taken off."""
    return re.sub(r"\\(.)", r"\1", text)


def ok(at: AppTest) -> list[str]:
    assert not at.exception, at.exception
    return [plain(s.value) for s in at.success]


def warnings(at: AppTest) -> list[str]:
    return [plain(w.value) for w in at.warning]


def test_the_rule_builder_counts_live_and_saves_the_segment(db_url, open_page):
    at = open_tab(open_page, "Rule builder")
    at.selectbox(key="segments.rule.c1.op.trader.country").set_value("in").run()
    at.multiselect(key="segments.rule.c1.value.trader.country.in").set_value(["DE", "GB"]).run()
    expected = seg.preview_rule(writer(db_url), rule(cond("trader.country", "in", ["DE", "GB"])))
    assert metric(at, "Members now") == f"{expected.count:,}" and expected.count > 0
    shown = at.get_by_key("segments.rule.sample").dataframe[0].value
    assert shown["trader_external_id"].tolist() == expected.sample["trader_external_id"].tolist()

    at.button(key="segments.rule.g0.add_group").click().run()  # (country in DE, GB) and (a nested group)
    assert "Condition 2.1 (Country is): expects text, not None" in warnings(at)
    new = next(s.key for s in at.selectbox if s.key.endswith(".field") and s.key != "segments.rule.c1.field")
    at.selectbox(key=new).set_value("lifecycle.stage").run()
    uid = new.split(".")[2]
    at.selectbox(key=f"segments.rule.{uid}.value.lifecycle.stage.=").set_value("active").run()
    group = next(s.key for s in at.get("button_group") if s.key not in ("segments.rule.g0.combine",)
                 and s.key.endswith(".combine"))
    assert at.get_by_key(group).value == "or"  # a nested group starts as an alternative
    full = rule(cond("trader.country", "in", ["DE", "GB"]),
                rule(cond("lifecycle.stage", "=", "active"), combine="or"))
    expected = seg.preview_rule(writer(db_url), full)
    assert metric(at, "Members now") == f"{expected.count:,}"

    at.text_input(key="segments.rule.name").input("Active in DE or GB")
    at.text_input(key="segments.rule.description").input("for the call list")
    at.button(key="segments.rule.submit").click().run()
    assert ok(at) == [f"Saved “Active in DE or GB” with {expected.count:,} members."]
    saved = seg.get_segment(writer(db_url), "Active in DE or GB")
    assert saved.definition == full and saved.description == "for the call list"
    assert len(seg.member_ids(writer(db_url), saved.segment_id)) == expected.count


def test_hostile_text_is_only_a_value_and_a_missing_name_is_said(db_url, open_page):
    at = open_tab(open_page, "Rule builder")
    at.selectbox(key="segments.rule.c1.field").set_value("trader.external_id").run()
    at.text_input(key="segments.rule.c1.value.trader.external_id.=").input(HOSTILE).run()
    assert metric(at, "Members now") == "0"
    at.text_input(key="segments.rule.c1.value.trader.external_id.=").input("SIM-0000001").run()
    assert metric(at, "Members now") == "1"
    at.button(key="segments.rule.submit").click().run()  # no name
    assert [plain(e.value) for e in at.error] == ["A segment needs a name."]
    assert seg.list_segments(writer(db_url)).empty


def test_a_saved_rule_loads_into_the_builder_and_saves_as_the_next_version(db_url, open_page):
    made = seg.create_segment(writer(db_url), name="Britain", kind="rules",
                              definition=rule(cond("trader.country", "in", ["GB"]),
                                              cond("feature.trades_total", ">", 2)))
    database.dispose_engines()
    at = open_tab(open_page, "Rule builder")
    at.selectbox(key="segments.rule.start").set_value(made.segment_id).run()
    at.button(key="segments.rule.load").click().run()
    fields = [s.value for s in at.selectbox if s.key.endswith(".field")]
    assert fields == ["trader.country", "feature.trades_total"]
    [countries] = [m for m in at.multiselect if m.key.endswith(".value.trader.country.in")]
    assert countries.value == ["GB"]
    [trades] = [n for n in at.number_input if n.key.endswith(".value.feature.trades_total.>")]
    assert trades.value == 2.0
    trades.set_value(10.0).run()
    at.checkbox(key="segments.rule.as_version").check()
    at.button(key="segments.rule.submit").click().run()
    after = seg.get_segment(writer(db_url), made.segment_id)
    assert after.version == 2 and after.definition["items"][1]["value"] == 10.0
    assert ok(at)[0].startswith("Saved “Britain” as version 2:")


def test_a_pasted_rule_loads_and_a_bad_one_is_named(db_url, open_page):
    at = open_tab(open_page, "Rule builder")
    at.text_area(key="segments.rule.json").input(
        '{"combine": "or", "items": [{"field": "trader.vip_tier", "op": "=", "value": "standard"}, '
        '{"field": "trader.registered_at", "op": "between", "value": ["2026-01-01", "2026-02-01"]}]}').run()
    at.button(key="segments.rule.load_json").click().run()
    assert at.get_by_key("segments.rule.g0.combine").value == "or"
    assert [s.value for s in at.selectbox if s.key.endswith(".field")] == ["trader.vip_tier", "trader.registered_at"]
    bad = '"trader.country; DROP TABLE traders"'
    at.text_area(key="segments.rule.json").input(
        f'{{"combine": "and", "items": [{{"field": {bad}, "op": "=", "value": "DE"}}]}}').run()
    at.button(key="segments.rule.load_json").click().run()
    assert any("unknown field" in w for w in warnings(at))
    assert at.get_by_key("segments.rule.g0.combine").value == "or"  # the builder kept the last good rule


def test_saved_segments_list_refresh_archive_and_the_members_csv(db_url, open_page, downloaded):
    engine = writer(db_url)
    seg.create_segment(engine, name="Britain", kind="rules", definition=rule(cond("trader.country", "=", "GB")))
    de = seg.create_segment(engine, name="**Germany** <b>", kind="rules",
                            definition=rule(cond("trader.country", "=", "DE")))
    members = seg.export_members(engine, de.segment_id)
    database.dispose_engines()
    at = open_tab(open_page, "Saved segments")
    listed = at.get_by_key("segments.list").dataframe[0].value
    assert listed["Segment"].tolist() == ["**Germany** <b>", "Britain"]  # by name, case aside
    at.selectbox(key="segments.saved").set_value(de.segment_id).run()
    assert at.subheader[0].value == r"\*\*Germany\*\* \<b\>"  # a name is shown as text, never Markdown
    assert metric(at, "Members") == f"{len(members):,}"
    csv = downloaded(at, "segments.members.download")
    assert csv == to_csv(members)
    assert pd.read_csv(io.StringIO(csv))["trader_external_id"].tolist() == members["trader_external_id"].tolist()
    assert len(at.get("vega_lite_chart")) == 2  # size over time, entered/left

    at.button(key="segments.refresh").click().run()
    assert ok(at)[0].startswith("Refreshed “**Germany** <b>”:")
    at.button(key="segments.archive").click().run()
    assert ok(at)[0].startswith("Archived “**Germany** <b>”")
    assert at.success[0].value.startswith(r"Archived “\*\*Germany\*\* \<b\>”")  # escaped: shown as text
    assert seg.get_segment(writer(db_url), de.segment_id).archived
    assert at.get_by_key("segments.list").dataframe[0].value["Segment"].tolist() == ["Britain"]


def test_a_list_upload_names_unknown_ids_by_row_and_saves(db_url, open_page):
    at = open_tab(open_page, "Saved segments")
    at.text_area(key="segments.new.list_text").input("SIM-0000001\nNOPE-9\n\nSIM-0000002\n").run()
    unknown = [d.value for d in at.dataframe if "Trader id" in d.value.columns and "Row" in d.value.columns]
    assert unknown[0].to_dict("records") == [{"Row": 2, "Trader id": "NOPE-9"}]
    at.text_input(key="segments.new.list_name").input("Call list")
    at.button(key="segments.new.list_submit").click().run()
    assert ok(at) == ["Saved “Call list” with 2 members."]
    assert seg.get_segment(writer(db_url), "Call list").definition == {
        "external_ids": ["SIM-0000001", "NOPE-9", "SIM-0000002"]}


def test_a_funnel_step_segment_holds_the_drop_offs(db_url, open_page):
    at = open_tab(open_page, "Saved segments")
    at.segmented_control(key="segments.new.source").set_value("A funnel step").run()
    at.text_input(key="segments.new.name").input("Registered, no FTD")
    at.button(key="segments.new.funnel_submit").click().run()
    assert ok(at)[0].startswith("Saved “Registered, no FTD” with")
    engine = writer(db_url)
    span = compute_data_span(engine)
    expected = compute_dropoffs(engine, FunnelSpec(("registered", "ftd"), window_s=14 * 86_400), step=1,
                                date_range=DateRange(span.end - timedelta(days=29), span.end)).dropped
    got = seg.member_ids(engine, "Registered, no FTD")
    assert set(got) == set(expected["trader_id"]) and len(got) > 0


def test_two_segments_side_by_side(db_url, open_page):
    engine = writer(db_url)
    gb = seg.create_segment(engine, name="Britain", kind="rules", definition=rule(cond("trader.country", "=", "GB")))
    de = seg.create_segment(engine, name="Germany", kind="rules", definition=rule(cond("trader.country", "=", "DE")))
    database.dispose_engines()
    at = open_tab(open_page, "Compare")
    at.selectbox(key="segments.compare_a").set_value(gb.segment_id).run()
    at.selectbox(key="segments.compare_b").set_value(de.segment_id).run()
    assert not at.exception
    kpis = at.get_by_key("segments.compare.kpis").dataframe[0].value
    assert list(kpis.columns) == ["KPI", "Britain", "Germany"]
    view_range = DateRange(*_sidebar_range(db_url))
    for name, made in (("Britain", gb), ("Germany", de)):
        flt = TraderFilter().within(made.segment_id, seg.get_segment(writer(db_url), made.segment_id).refreshed_at)
        expected = {k.label: format_value(k.value, k.unit) for k in compute_kpis(writer(db_url), date_range=view_range,
                                                                                 trader_filter=flt)}
        assert dict(zip(kpis["KPI"], kpis[name], strict=True)) == expected
    profile = at.get_by_key("segments.compare.profile").dataframe[0].value
    assert {"Feature", "All traders", "Britain", "Germany", "z: Britain", "z: Germany"} <= set(profile.columns)
    assert len(at.get("vega_lite_chart")) == 1  # the retention curves


def _sidebar_range(db_url: str):
    span = compute_data_span(database.get_engine(db_url))
    return max(span.start, span.end - timedelta(days=89)), span.end


def test_a_cluster_saved_from_the_studio_is_a_live_segment(db_url, open_page):
    at = open_tab(open_page, "Clusters")
    cluster = at.selectbox(key="segments.studio.segment_cluster").value
    at.text_input(key="segments.studio.segment_name").input("Cluster from the studio")
    at.button(key="segments.studio.save_segment").click().run()
    [message] = ok(at)
    engine = writer(db_url)
    made = seg.get_segment(engine, "Cluster from the studio")
    assert made.kind == "cluster" and made.definition["clusters"] == [cluster]
    assert message == f"Saved “Cluster from the studio” with {len(seg.member_ids(engine, made.segment_id)):,} members."
    run_id = made.definition["run_id"]
    with engine.connect() as conn:
        assigned = set(conn.execute(sa.select(schema.cluster_assignments.c.trader_id).where(
            schema.cluster_assignments.c.run_id == run_id, schema.cluster_assignments.c.cluster == cluster)).scalars())
        tests = set(conn.execute(sa.select(schema.traders.c.trader_id).where(schema.traders.c.is_test)).scalars())
    assert set(seg.member_ids(engine, made.segment_id)) == assigned - tests and assigned

    # Traders the run has no cluster for (as if they arrived after it) get one from the stored model
    # at the next refresh, without a refit: the fit's own (k-means: nearest centroid).
    ca = schema.cluster_assignments.c
    with engine.begin() as conn:
        dropped = dict(conn.execute(sa.select(ca.trader_id, ca.cluster).where(ca.run_id == run_id)
                                    .order_by(ca.trader_id.desc()).limit(5)).all())
        conn.execute(schema.cluster_assignments.delete().where(ca.run_id == run_id,
                                                               ca.trader_id.in_(list(dropped))))
    seg.refresh_segment(engine, made.segment_id)
    with engine.connect() as conn:
        again = dict(conn.execute(sa.select(ca.trader_id, ca.cluster).where(
            ca.run_id == run_id, ca.trader_id.in_(list(dropped)))).all())
        assigned = set(conn.execute(sa.select(ca.trader_id).where(ca.run_id == run_id,
                                                                  ca.cluster == cluster)).scalars())
    assert again == dropped
    assert set(seg.member_ids(engine, made.segment_id)) == assigned - tests


def test_without_a_feature_snapshot_the_builder_offers_to_compute_it(db_url, open_page):
    with writer(db_url).begin() as conn:
        conn.execute(sa.text("DROP TABLE trader_features"))
    database.dispose_engines()
    at = open_tab(open_page, "Rule builder")
    assert next(plain(i.value) for i in at.info).startswith("No feature snapshot yet")
    assert "Features: trading · Trades per week" not in at.selectbox(key="segments.rule.c1.field").options
    at.button(key="segments.materialise").click().run()
    assert ok(at)[0].startswith("Feature snapshot as of ")
    fields = at.selectbox(key="segments.rule.c1.field")
    assert "Features: trading · Trades per week" in fields.options
    fields.set_value("feature.trades_per_week").run()
    expected = seg.preview_rule(writer(db_url), rule(cond("feature.trades_per_week", "=", 0.0)))
    assert metric(at, "Members now") == f"{expected.count:,}" and expected.count > 0
