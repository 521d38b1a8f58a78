"""The Predictions page through the app entrypoint, in-process with AppTest, on a small simulated broker
with a trained and scored churn model and a churn candidate (tests/models_fixture.py, built once for the
module): the card's figures are the stored run's, the table follows the band, net-deposit and sidebar
filters, promotion makes the candidate active and rescoring follows, selected traders and a score band
become segments with the right members, the empty states say what to do, and a training started from
the page runs in the background to its end."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from analytics import segments as seg
from analytics.models import jobs, registry, scoring
from analytics.models.specs import BAND_LABELS, BAND_NAMES
from analytics.models.views import ScoreFilter, score_table
from components import labels
from components import predictions_card as card
from components.predictions_views import TABLE_KEY
from connectors import database, schema
from tests.models_fixture import trained_file

PAGE = "pages/predictions.py"
TRAINING_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The broker with churn v1 (active, scored) and v2 (a candidate); deposit and FTD untrained."""
    return trained_file(tmp_path_factory.mktemp("predictions") / "trained.duckdb", candidates=1)


@pytest.fixture
def db_url(trained, use_broker, monkeypatch) -> str:
    monkeypatch.setenv("TRADERLENS_SEGMENT_REFRESH_S", "0")  # no background writes (nor rescoring) during a test
    return use_broker(trained)


def engine_of(db_url: str) -> sa.Engine:
    return database.get_engine(db_url)


def open_tab(open_page, tab: str, **query: str) -> AppTest:
    return open_page(PAGE, **{"predictions.tab": tab, **query})


def plain(text: str) -> str:
    """Markdown text as read: the escapes that keep data from being Markdown taken off."""
    return re.sub(r"\\(.)", r"\1", text)


def texts(elements) -> list[str]:
    return [plain(e.value) for e in elements]


def metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def table(at: AppTest):
    return at.get_by_key(at.session_state[TABLE_KEY]).value


def in_band(db_url: str, band: str) -> set[int]:
    """Scored churn traders in ``band`` who are not test accounts, read straight from the tables."""
    with engine_of(db_url).connect() as conn:
        return set(conn.execute(
            sa.select(schema.model_scores.c.trader_id)
            .join(schema.traders, schema.traders.c.trader_id == schema.model_scores.c.trader_id)
            .where(schema.model_scores.c.model == "churn", schema.model_scores.c.band == band,
                   schema.traders.c.is_test.is_(False))).scalars())


def test_the_cards_show_the_stored_runs_figures(db_url, open_page):
    engine = engine_of(db_url)
    active = registry.active_run(engine, "churn")
    [candidate] = [r for r in registry.list_runs(engine, "churn") if r.status == "candidate"]
    at = open_tab(open_page, "Model card")
    shown = metrics(at)
    for i, run in enumerate((active, candidate)):  # the active card first, the candidate beside it
        test = run.card("test")
        expected = [(label, card.format_metric(name, getattr(test, name))) for name, label, *_ in card.METRICS]
        assert dict(shown[6 * i:6 * (i + 1)]) == dict(expected)  # tiles in three columns: read column by column
    figures = at.dataframe[0].value.set_index("Figure")
    baseline = active.card("baseline")
    assert figures.loc["ROC AUC", "Baseline"] == f"{baseline.roc_auc:.3f}"
    assert figures.loc["ROC AUC", "Random split"] == f"{active.card('random_split').roc_auc:.3f}"
    assert figures.loc["Rows", "Out of time"] == f"{active.card('test').rows:,}"
    markdown = " ".join(texts(at.markdown))
    random_auc = active.card("random_split").roc_auc
    assert f"{random_auc:.3f}" in markdown and "random split" in markdown
    assert "Platt scaling on the model's margin" in markdown and "additive" in markdown
    assert not any("does not beat its baseline" in w for w in texts(at.warning))  # both beat it
    assert at.button(key="predictions.card.promote").label == f"Promote v{candidate.version} to active"
    assert len(at.get("plotly_chart")) == 2  # beeswarm and dependence plots
    assert len(at.get("vega_lite_chart")) >= 7  # reliability, lift, gain per card; importance

    # A run that does not beat its baseline says so on its card.
    metrics_json = dict(candidate.metrics, beats_baseline=False)
    with engine.begin() as conn:
        conn.execute(schema.model_runs.update().where(schema.model_runs.c.run_id == candidate.run_id)
                     .values(metrics=json.dumps(metrics_json)))
    database.dispose_engines()
    st.cache_data.clear()  # runs are cached for a minute: a change made outside the app shows after that
    at = open_tab(open_page, "Model card")
    assert [w for w in texts(at.warning) if w.startswith(f"v{candidate.version} does not beat its baseline")]


def test_the_table_follows_the_band_net_deposit_and_sidebar_filters(db_url, open_page, downloaded):
    at = open_tab(open_page, "Scores")
    engine = engine_of(db_url)
    score_run = scoring.latest_score_run(engine, "churn")
    bands = score_run.distribution["bands"]
    assert dict(metrics(at)) == {BAND_LABELS[b]: f"{bands[b]:,}" for b in BAND_NAMES}
    everyone = table(at)
    assert len(everyone) == min(200, sum(bands.values()))
    assert everyone["probability"].is_monotonic_decreasing
    assert everyone["reason_1"].str.contains(r"churn risk \(odds ×").all()  # every row has its reasons in words
    assert everyone["open"].iloc[0] == f"./trader?trader={everyone['trader_external_id'].iloc[0]}"

    at.multiselect(key="predictions.scores.band").set_value(["very_high"]).run()
    very_high = table(at)
    assert set(very_high["band"]) == {"Very high"}
    expected = in_band(db_url, "very_high")
    assert len(very_high) == len(expected) > 0
    assert f"{len(expected):,} traders listed" in " ".join(texts(at.caption))

    csv = pd.read_csv(io.StringIO(downloaded(at, "predictions.scores.table.download")))
    assert csv["trader_external_id"].tolist() == very_high["trader_external_id"].tolist()
    assert list(csv.columns[:2]) == ["trader_external_id", "probability"] and csv["reason_1"].notna().all()

    at.number_input(key="predictions.scores.min_net").set_value(1000).run()
    rich = table(at)
    assert (rich["net_deposits_usd"] >= 1000).all() and 0 < len(rich) < len(very_high)

    # The sidebar's country filter, from a shared link.
    with engine.connect() as conn:
        code = conn.execute(sa.select(schema.traders.c.country).where(
            schema.traders.c.external_id == everyone["trader_external_id"].iloc[0])).scalar_one()
    at = open_tab(open_page, "Scores", country=code)
    assert set(table(at)["country"]) == {labels.country_name(code)}
    flt = ScoreFilter("churn", score_run.score_run_id, at.session_state["global.view"].trader_filter)
    assert len(table(at)) == min(200, score_table(engine, flt, limit=None).total)


def test_promoting_the_candidate_makes_it_active_and_rescoring_follows(db_url, open_page):
    engine = engine_of(db_url)
    before = registry.active_run(engine, "churn")
    database.dispose_engines()
    at = open_tab(open_page, "Model card")
    at.button(key="predictions.card.promote").click().run()
    assert not at.exception
    assert texts(at.success)[0].startswith("Churn v2 is now the active model.")
    runs = {r.version: r.status for r in registry.list_runs(engine_of(db_url), "churn")}
    assert runs == {2: "active", 1: "retired"}
    with engine_of(db_url).connect() as conn:
        promoted_by = conn.execute(sa.select(schema.model_runs.c.promoted_by)
                                   .where(schema.model_runs.c.version == 2)).scalar_one()
    assert promoted_by == "app"
    assert "predictions.card.promote" not in [b.key for b in at.button]  # nothing left to promote

    at = open_tab(open_page, "Scores")
    assert any(w.startswith("These scores were made by v1; v2 is the active model now") for w in texts(at.warning))
    at.button(key="predictions.scores.rescore").click().run()
    assert texts(at.success)[0].startswith("Scored ") and "with churn v2" in texts(at.success)[0]
    latest = scoring.latest_score_run(engine_of(db_url), "churn")
    assert latest.run_id != before.run_id == 1 and latest.scored_by == "app"
    assert not at.warning


def save(at: AppTest, what: str, name: str) -> AppTest:
    at.radio(key="predictions.scores.save.what").set_value(what).run()
    at.text_input(key="predictions.scores.save.name").input(name)
    return at.button(key="predictions.scores.save.submit").click().run()


def test_a_band_and_selected_traders_become_segments(db_url, open_page):
    at = open_tab(open_page, "Scores")
    at.multiselect(key="predictions.scores.band").set_value(["high", "very_high"]).run()
    expected = in_band(db_url, "high") | in_band(db_url, "very_high")
    assert at.radio(key="predictions.scores.save.what").options == [
        f"All {len(expected):,} traders listed", "Whoever is in high or very high at each refresh"]

    save(at, "rule", "Churn high <b>")
    assert texts(at.success) == [f"Saved “Churn high <b>” with {len(expected):,} members."]
    live = seg.get_segment(engine_of(db_url), "Churn high <b>")
    assert live.kind == "rules" and live.definition == {
        "combine": "and", "items": [{"field": "score.churn_band", "op": "in", "value": ["high", "very_high"]}]}
    assert set(seg.member_ids(engine_of(db_url), live.segment_id)) == expected

    save(at, "listed", "Churn high, fixed")
    fixed = seg.get_segment(engine_of(db_url), "Churn high, fixed")
    assert fixed.kind == "list" and set(seg.member_ids(engine_of(db_url), fixed.segment_id)) == expected

    # Two rows selected in the table: a list segment of those two.
    shown = table(at)
    at.session_state[at.session_state[TABLE_KEY]] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    at.run()
    assert at.radio(key="predictions.scores.save.what").options[0] == "The 2 selected traders"
    # The first selected trader's stored score, explained under the table as Trader 360 shows it.
    first = shown["trader_external_id"].iloc[0]
    why = [m.value.replace("\\", "") for m in at.markdown if m.value.startswith("**Why:")]
    assert len(why) == 1 and why[0].endswith(f"({first}), the first of 2 selected")
    assert any(m.value.startswith("#### Churn") for m in at.markdown)
    assert len(at.get("vega_lite_chart")) >= 1
    save(at, "selected", "Two to call")
    picked = seg.get_segment(engine_of(db_url), "Two to call")
    assert picked.definition == {"external_ids": [shown["trader_external_id"].iloc[0],
                                                  shown["trader_external_id"].iloc[2]]}
    assert len(seg.member_ids(engine_of(db_url), picked.segment_id)) == 2

    save(at, "selected", "Two to call")  # a taken name is said, nothing written
    assert any("Two to call" in e for e in texts(at.error))


def test_empty_states_say_what_to_do(db_url, open_page, tmp_path, monkeypatch):
    # FTD: no model yet, so the training controls.
    at = open_page(PAGE, **{"predictions.model": "First deposit"})
    assert any("There is no first deposit model yet" in i for i in texts(at.info))
    assert at.button(key="predictions.training.train").label == "Train a new first deposit model"

    # Churn trained but not scored: the Score now button, which scores.
    with engine_of(db_url).begin() as conn:
        conn.execute(schema.model_scores.delete())
        conn.execute(schema.score_runs.delete())
    database.dispose_engines()
    at = open_tab(open_page, "Scores")
    assert any("is trained but has not scored anyone yet" in i for i in texts(at.info))
    at.button(key="predictions.scores.score").click().run()
    assert texts(at.success)[0].startswith("Scored ")
    assert len(at.metric) == 4 and len(table(at)) > 0
    at = open_tab(open_page, "Drift")
    assert at.metric[0].label == "Score distribution PSI"

    # An empty database: how to fill it.
    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", empty)
    at = open_page(PAGE)
    assert any("No events yet" in i for i in texts(at.info))


def test_training_from_the_page_runs_in_the_background_to_its_end(db_url, open_page):
    at = open_tab(open_page, "Training")
    at.button(key="predictions.training.train").click().run()
    assert texts(at.success)[0].startswith("Training of a new churn model started (job ")
    job_id = int(re.search(r"job (\d+)", texts(at.success)[0]).group(1))
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while not (job := jobs.get_job(engine_of(db_url), job_id)).finished:
        assert time.monotonic() < deadline, f"training still {job.status} ({job.message})"
        at.run()  # the page shows the progress meanwhile
        assert not at.exception
        time.sleep(0.5)
    assert job.status == "done", job.error
    at.run()
    assert [s for s in texts(at.success) if s.startswith(f"Last training (job {job_id}) finished")
            and "Saved as churn v3 (candidate)" in s]
    runs = at.dataframe[0].value
    assert runs["Version"].tolist() == [3, 2, 1] and runs["Status"].tolist() == ["candidate", "candidate", "active"]


def test_a_hostile_link_is_named_and_the_rest_of_it_kept(db_url, open_linked):
    at = open_linked(PAGE, {"predictions.model": "zz'; DROP TABLE model_runs;--", "predictions.tab": "Scores",
                            "predictions.scores.band": ["<script>", BAND_LABELS["very_high"]],
                            "predictions.scores.min_net": "inf"})
    assert not at.exception
    notice = " ".join(texts(at.warning))
    assert all(f"?{key}=" in notice for key in ("predictions.model", "predictions.scores.band",
                                                 "predictions.scores.min_net"))
    assert at.get_by_key("predictions.model").value == "churn"
    assert set(table(at)["band"]) == {"Very high"}  # the known band stays
    assert len(table(at)) == len(in_band(db_url, "very_high"))
    at = open_linked(PAGE, {"predictions.tab": "nonsense"})
    assert not at.exception and len(at.metric) == 4  # an unknown tab opens the first, Scores
