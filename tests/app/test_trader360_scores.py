"""Trader 360's scores section through the app (AppTest) on a broker with a trained and scored churn
model (tests/models_fixture.py, built once for the module): a scored trader's stored probability,
band, decile, version, reasons and waterfall (whose bars add up to the stored probability's
log-odds); the line saying why a trader outside the churn population has no score; a model trained
but not scored yet; a database without models; and the score fields in the Segments page's rule
builder, selecting what the stored scores say.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import segments as seg
from analytics import trader360
from analytics.models import registry, scoring
from analytics.models.explain import Explanation
from analytics.models.reasons import reason_text
from analytics.models.specs import model_spec
from analytics.periods import local_date
from components import trader360_scores as section
from connectors import database
from connectors.simulator import SimulationConfig
from tests.app.conftest import ROOT
from tests.models_fixture import trained_file

PAGE = "pages/trader.py"
CHURN = model_spec("churn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A closed DuckDB file: the fixture broker with the churn model trained and scored (only)."""
    return trained_file(tmp_path_factory.mktemp("t360_scores") / "trained.duckdb", models=("churn",))


@pytest.fixture
def app_db(trained, use_broker) -> sa.Engine:
    """A copy of the trained broker as the app's database; an engine to read it (and change it)."""
    return database.get_engine(use_broker(trained))


def plain(text: str) -> str:
    """Markdown as read: the escapes that keep data from being Markdown taken off."""
    return re.sub(r"\\(.)", r"\1", text)


def open_trader(external_id: str) -> AppTest:
    database.dispose_engines()  # the app opens the DuckDB copy itself
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.query_params["trader"] = external_id
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(node) -> list[str]:
    """Every Markdown and caption text under ``node`` (an AppTest tree or block), escapes removed."""
    return [plain(m.value) for m in [*node.get("markdown"), *node.get("caption")]]


def chart_rows(block) -> list[dict]:
    """The data rows of the (one) Vega-Lite chart under ``block``."""
    [chart] = [c for c in block.get("vega_lite_chart") if c.proto.data.data]
    return pa.ipc.open_stream(chart.proto.data.data).read_all().to_pylist()


def _trader(engine: sa.Engine, sql: str) -> tuple[int, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(sql)).one())


def scored_trader(engine: sa.Engine) -> tuple[int, str]:
    """The scored trader with the highest churn probability below 1 in 2 (a mid-table one)."""
    return _trader(engine, "SELECT t.trader_id, t.external_id FROM model_scores s JOIN traders t USING (trader_id) "
                           "WHERE s.model = 'churn' AND s.probability < 0.5 AND NOT t.is_test "
                           "ORDER BY s.probability DESC, t.trader_id LIMIT 1")


def outside_trader(engine: sa.Engine) -> tuple[int, str]:
    """A registered, non-test trader the churn model did not score (no trade in its last 30 days)."""
    return _trader(engine, "SELECT t.trader_id, t.external_id FROM traders t WHERE NOT t.is_test AND "
                           "t.registered_at < (SELECT max(as_of) FROM score_runs) AND NOT EXISTS (SELECT 1 FROM "
                           "model_scores s WHERE s.trader_id = t.trader_id) ORDER BY t.trader_id LIMIT 1")


def test_a_scored_trader_shows_the_stored_probability_band_decile_version_and_reasons(app_db):
    trader_id, external_id = scored_trader(app_db)
    stored = scoring.trader_scores(app_db, trader_id)["churn"]
    run = registry.get_run(app_db, stored.run_id)
    at = open_trader(external_id)
    block = at.get_by_key("trader360.scores.churn")
    shown = texts(block)
    assert f"#### Churn within 30 days: {section.probability_text(stored.probability)}" in shown
    assert any(scoring.BAND_LABELS[stored.band] in t and f"Decile {stored.decile} of 10" in t for t in shown)
    [caption] = [t for t in shown if t.startswith("Probability of: no trade opened or closed")]
    assert f"Churn model v{run.version} (active), scored " in caption
    # The reasons in plain words, as the stored explanation and the run's medians give them, largest first.
    [reasons] = [t for t in shown if t.startswith("- :")]
    expected = [reason_text(CHURN, r, run.medians) for r in stored.explanation.reasons]
    assert [line.split("] ", 1)[1] for line in reasons.splitlines()][:len(expected)] == expected
    sizes = [abs(r.contribution) for r in stored.explanation.reasons]
    assert sizes == sorted(sizes, reverse=True) and len(expected) == 8
    assert not at.get_by_key("trader360.scores.notes").get("markdown")  # no "not scored" line for churn
    # The other models were never trained: said once, with the way to the Predictions page.
    notes = at.get_by_key("trader360.scores.notes")
    assert [plain(c.value) for c in notes.get("caption")] == [
        "No deposit or first deposit model has been trained yet: train one on the Predictions page."]
    assert [p.proto.page for p in notes.get("page_link")] == ["predictions"]


def test_the_waterfall_adds_up_to_the_stored_probability_in_log_odds(app_db):
    trader_id, external_id = scored_trader(app_db)
    stored = scoring.trader_scores(app_db, trader_id)["churn"]
    at = open_trader(external_id)
    rows = chart_rows(at.get_by_key("trader360.scores.churn"))
    base, *steps, final = rows
    assert (base["kind"], final["kind"]) == ("base", "score")
    assert [r["step"] for r in steps][-1] == f"Other {stored.explanation.rest_count} features"
    # Each bar starts where the one before it ended; base plus every step is the score's bar.
    assert base["start"] == 0 and steps[0]["start"] == pytest.approx(base["end"])
    for before, step in itertools.pairwise(steps):
        assert step["start"] == pytest.approx(before["end"])
    total = base["end"] + sum(r["contribution"] for r in steps)
    logit = math.log(stored.probability / (1 - stored.probability))
    assert final["end"] == pytest.approx(total, abs=1e-9)
    assert total == pytest.approx(logit, abs=1e-5)  # DuckDB keeps the probability as a 4-byte float
    assert final["label"] == section.probability_text(stored.probability)
    assert base["label"] == section.probability_text(1 / (1 + math.exp(-base["end"])))
    assert steps[0]["contribution"] == pytest.approx(stored.explanation.reasons[0].contribution)


def test_every_stored_explanation_draws_a_waterfall_ending_at_its_probability(app_db):
    with app_db.connect() as conn:
        rows = conn.execute(sa.text("SELECT probability, explanation FROM model_scores")).all()
    assert len(rows) > 100
    ends = np.array([section.waterfall_frame(CHURN, Explanation.from_json(json.loads(e)), {})["end"].iloc[-1]
                     for _, e in rows])
    p = np.array([r[0] for r in rows])
    np.testing.assert_allclose(ends, np.log(p / (1 - p)), atol=1e-4)


def test_a_trader_outside_the_population_gets_one_line_saying_why(app_db):
    _, external_id = outside_trader(app_db)
    as_of = scoring.latest_score_run(app_db, "churn").as_of
    at = open_trader(external_id)
    with pytest.raises(KeyError):
        at.get_by_key("trader360.scores.churn")
    [line] = [plain(m.value) for m in at.get_by_key("trader360.scores.notes").get("markdown")]
    assert line == (f":material/block: Not scored for churn: outside the model's population at the latest scoring "
                    f"(as of {local_date(as_of):%d %b %Y}). The churn model scores active traders: a position opened "
                    "or closed in the 30 days before the snapshot.")


def test_why_a_trader_is_not_scored_names_test_accounts_leads_and_late_registrations(app_db):
    trader_id, _ = outside_trader(app_db)
    profile = trader360.load_profile(app_db, trader_id)
    run = scoring.latest_score_run(app_db, "churn")
    assert section.not_scored_reason(CHURN, run, dataclasses.replace(profile, is_test=True)) == \
        "Not scored for churn: test accounts are never scored."
    assert "has not registered (a lead)" in section.not_scored_reason(
        CHURN, run, dataclasses.replace(profile, registered_at=None))
    assert "registered after the latest scoring" in section.not_scored_reason(
        CHURN, run, dataclasses.replace(profile, registered_at=run.as_of))


def test_a_model_trained_but_not_scored_yet_says_how_to_score_it(app_db):
    _, external_id = scored_trader(app_db)
    with app_db.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_scores"))
        conn.execute(sa.text("DELETE FROM score_runs"))
    at = open_trader(external_id)
    [line] = [plain(m.value) for m in at.get_by_key("trader360.scores.notes").get("markdown")]
    assert line.startswith(":material/block: Not scored for churn: the churn model (v1) has not scored anyone yet")
    assert "python cli.py score --model churn" in line


def test_a_database_without_models_shows_the_way_to_the_predictions_page(seeded_broker, use_broker):
    # The broker of tests/app/test_query_params.py (seeded once per session).
    use_broker(seeded_broker(SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1))))
    at = open_trader("SIM-0000001")
    notes = at.get_by_key("trader360.scores.notes")
    [info] = notes.info
    assert plain(info.value).startswith("No model has been trained yet, so no trader has a churn, deposit or "
                                        "first-deposit probability.")
    assert [p.proto.page for p in notes.get("page_link")] == ["predictions"]
    with pytest.raises(KeyError):
        at.get_by_key("trader360.scores.churn")


def test_the_rule_builder_offers_score_fields_that_select_the_stored_scores(app_db):
    with app_db.connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT count(*) FROM model_scores s JOIN traders t USING (trader_id) WHERE s.model = 'churn' AND "
            "s.band IN ('high', 'very_high') AND NOT t.is_test")).scalar_one()
        top = set(conn.execute(sa.text(
            "SELECT s.trader_id FROM model_scores s JOIN traders t USING (trader_id) WHERE s.model = 'churn' AND "
            "s.decile = 1 AND s.probability > 0.3 AND NOT t.is_test")).scalars())
    assert expected > 0 and top
    rule = {"combine": "and", "items": [{"field": "score.churn_decile", "op": "=", "value": 1},
                                        {"field": "score.churn", "op": ">", "value": 0.3}]}
    with app_db.connect() as conn:
        assert set(conn.execute(seg.rule_members(seg.rule_from_dict(rule), seg.read_catalog(conn))).scalars()) == top
    database.dispose_engines()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.query_params["segments.tab"] = "Rule builder"
    at.switch_page("pages/segments.py").run()
    field = at.selectbox(key="segments.rule.c1.field")
    assert {"Scores · Churn probability (30 days)", "Scores · Churn score band",
            "Scores · Churn score decile"} <= set(field.options)
    field.set_value("score.churn_band").run()
    at.selectbox(key="segments.rule.c1.op.score.churn_band").set_value("in").run()
    at.multiselect(key="segments.rule.c1.value.score.churn_band.in").set_value(["high", "very_high"]).run()
    assert not at.exception, at.exception
    assert next(m.value for m in at.metric if m.label == "Members now") == f"{expected:,}"
