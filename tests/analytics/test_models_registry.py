"""Saved model runs and scoring (analytics/models/registry.py, scoring.py) on DuckDB and PostgreSQL,
with one churn model trained by the protocol on a small simulated broker per backend.

Registry: the first run of a kind is active, later ones candidates; promotion retires the old
active run and refuses the active run itself and a run of other features; a saved run reads back
with every figure of its card, and its booster predicts exactly as the trained one.
Scoring: one row per trader of the population, bands and deciles, stored explanations that add up
to the stored probability, a new scoring replacing the last, drift near 0 on the training rows and
past the alert on a shifted population, and no scoring without an active model.
Each test starts from no saved run (the trained model is kept in memory).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.models import registry, scoring
from analytics.models.dataset import MODEL_FEATURES, scoring_snapshot
from analytics.models.explain import Explanation, contributions, margins
from analytics.models.registry import (
    ModelNotFound,
    PromotionRefused,
    active_run,
    get_run,
    list_runs,
    load_booster,
    promote,
    save_run,
)
from analytics.models.scoring import (
    DRIFT_ALERT,
    ScoringRefused,
    deciles_of,
    latest_score_run,
    read_scores,
    score_model,
    trader_scores,
)
from analytics.models.specs import BAND_NAMES, CHURN, DEPOSIT, band_of
from analytics.models.training import GlobalSummary, train_model
from connectors import schema
from connectors.simulator import SimulationConfig, seed_database
from tests.conftest import module_database

BROKER = SimulationConfig(traders=4_000, days=160, seed=5, end=date(2026, 11, 1))
NOW = datetime(2026, 11, 2, 9, 30)
OTHER_FEATURES = MODEL_FEATURES[:-1]


def _reset_models(engine: sa.Engine) -> None:
    """No saved model, score or job (the session's PostgreSQL database keeps them between modules),
    and no booster cached for a run id that a new run will reuse."""
    with engine.begin() as conn:
        for table in (schema.model_jobs, schema.model_scores, schema.score_runs, schema.model_runs):
            conn.execute(table.delete())
    registry._BOOSTERS.clear()


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def broker(request, tmp_path_factory):
    """(engine, TrainedModel): the simulated broker and a churn model trained on it, not saved."""
    engine = module_database(request, tmp_path_factory, "registry")
    seed_database(engine, BROKER)
    trained = train_model(engine, CHURN, train_snapshots=1)
    yield engine, trained
    _reset_models(engine)


@pytest.fixture
def engine(broker):
    """The broker's database with no saved run, score or job."""
    engine, _ = broker
    _reset_models(engine)
    return engine


@pytest.fixture
def trained(broker):
    """The churn model trained on it (a TrainedModel, in memory)."""
    return broker[1]


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# ---- registry -----------------------------------------------------------------------------------


def test_first_run_is_active_and_reads_back_with_its_card(engine, trained):
    run = save_run(engine, trained, by="alice", features=MODEL_FEATURES, now=NOW)
    assert (run.model, run.version, run.status, run.trained_by, run.trained_at) == ("churn", 1, "active", "alice", NOW)
    assert (run.promoted_at, run.promoted_by) == (NOW, "first model of its kind")
    assert run.cutoff == trained.plan.cutoff and run.snapshots == trained.plan.to_json()
    assert run.features == MODEL_FEATURES and "n_jobs" not in run.params
    assert run.params["max_depth"] == trained.params["max_depth"]
    for which in ("test", "test_uncalibrated", "baseline", "random_split"):
        assert run.card(which) == getattr(trained, which)
    assert run.metrics["counts"] == trained.counts and run.beats_baseline == trained.beats_baseline
    assert run.metrics["best_iteration"] == trained.best_iteration
    assert run.calibration == trained.calibration
    assert run.summary == GlobalSummary.from_json(json.loads(json.dumps(trained.summary.to_json())))
    assert run.reference == json.loads(json.dumps(trained.reference))
    assert run.medians == trained.medians
    assert get_run(engine, run.run_id) == run and active_run(engine, "churn") == run
    assert run.label == "churn v1 (active)"


def test_later_runs_are_candidates_and_each_kind_has_its_first(engine, trained):
    first = save_run(engine, trained, by="alice", features=MODEL_FEATURES, now=NOW)
    second = save_run(engine, trained, by="bob", features=MODEL_FEATURES, now=NOW + timedelta(hours=1))
    assert (second.version, second.status, second.promoted_at, second.promoted_by) == (2, "candidate", None, None)
    assert active_run(engine, "churn").run_id == first.run_id
    assert [r.version for r in list_runs(engine, "churn")] == [2, 1]
    # Another kind has its own first run, active at once; churn's are untouched.
    deposit = save_run(engine, dataclasses.replace(trained, spec=DEPOSIT), by="carol", features=MODEL_FEATURES)
    assert (deposit.model, deposit.version, deposit.status) == ("deposit", 1, "active")
    assert [(r.model, r.version, r.status) for r in list_runs(engine)] == [
        ("churn", 2, "candidate"), ("churn", 1, "active"), ("deposit", 1, "active")]
    assert active_run(engine, "ftd") is None


def test_promotion_retires_the_active_run(engine, trained):
    first = save_run(engine, trained, by="alice", features=MODEL_FEATURES, now=NOW)
    second = save_run(engine, trained, by="alice", features=MODEL_FEATURES, now=NOW)
    promoted = promote(engine, second.run_id, by="bob", features=MODEL_FEATURES, now=NOW + timedelta(days=1))
    assert (promoted.status, promoted.promoted_by, promoted.promoted_at) == ("active", "bob", NOW + timedelta(days=1))
    assert get_run(engine, first.run_id).status == "retired"
    assert active_run(engine, "churn").run_id == second.run_id
    third = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    assert third.status == "candidate"
    # A retired run can come back: the current one is retired in its turn.
    promote(engine, first.run_id, by="bob", features=MODEL_FEATURES)
    assert [(r.version, r.status) for r in list_runs(engine, "churn")] == [
        (3, "candidate"), (2, "retired"), (1, "active")]


def test_promotion_refuses_the_active_run_and_other_features(engine, trained):
    first = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    with pytest.raises(PromotionRefused, match="churn v1 is already the active model"):
        promote(engine, first.run_id, by="bob", features=MODEL_FEATURES)
    other = save_run(engine, trained, by="alice", features=OTHER_FEATURES)
    assert other.status == "candidate"
    with pytest.raises(PromotionRefused, match="another set of features"):
        promote(engine, other.run_id, by="bob", features=MODEL_FEATURES)
    assert [(r.version, r.status) for r in list_runs(engine, "churn")] == [(2, "candidate"), (1, "active")]
    with pytest.raises(ModelNotFound, match="no model run 999"):
        promote(engine, 999, by="bob", features=MODEL_FEATURES)
    with pytest.raises(ModelNotFound):
        get_run(engine, 999)
    with pytest.raises(ModelNotFound):
        load_booster(engine, 999)


def test_a_loaded_booster_predicts_exactly_as_the_trained_one(engine, trained):
    run = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    booster = load_booster(engine, run.run_id)
    assert booster is not trained.booster and booster.num_boosted_rounds() == trained.best_iteration + 1
    x = scoring_snapshot(engine, CHURN, trained.plan.cutoff).x
    assert np.array_equal(margins(booster, x), margins(trained.booster, x))
    for mine, theirs in zip(contributions(booster, x, run.calibration),
                            contributions(trained.booster, x, trained.calibration), strict=True):
        assert np.array_equal(mine, theirs)
    assert load_booster(engine, run.run_id) is booster  # read once per process


def test_a_run_id_saved_again_loads_its_own_booster(engine, trained):
    """Run ids are max + 1: once the runs are deleted (tests/conftest.py empties the session's
    PostgreSQL database of model runs between modules) the next run gets id 1 again, and loading it
    must give its own trees, not those a process cached for the deleted run 1."""
    first = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    x = scoring_snapshot(engine, CHURN, trained.plan.cutoff).x
    assert np.array_equal(margins(load_booster(engine, first.run_id), x), margins(trained.booster, x))
    with engine.begin() as conn:  # what _empty_pg does, without touching this process's cache
        conn.execute(schema.model_runs.delete())
    smaller = dataclasses.replace(trained, booster=trained.booster[:5])
    again = save_run(engine, smaller, by="alice", features=MODEL_FEATURES)
    assert again.run_id == first.run_id
    assert np.array_equal(margins(load_booster(engine, again.run_id), x), margins(smaller.booster, x))


# ---- scoring ------------------------------------------------------------------------------------


def test_no_scoring_without_an_active_model_of_these_features(engine, trained):
    with pytest.raises(ScoringRefused, match="no active churn model yet: train one first"):
        score_model(engine, CHURN, by="test")
    save_run(engine, trained, by="alice", features=OTHER_FEATURES)  # the first: active, but of other features
    with pytest.raises(ScoringRefused, match=r"another set of\s+features"):
        score_model(engine, CHURN, by="test")
    assert _count(engine, schema.score_runs) == 0 and _count(engine, schema.model_scores) == 0


def _population_by_hand(engine: sa.Engine, at: datetime) -> set[int]:
    """Traders registered before ``at`` (not test accounts) with a position opened or closed in the
    30 days before it (UTC in tests: days are 24 hours)."""
    since = at - timedelta(days=30)
    sql = sa.text("""
        SELECT DISTINCT d.trader_id FROM trades d JOIN traders t ON t.trader_id = d.trader_id
        WHERE ((d.opened_at >= :since AND d.opened_at < :at) OR (d.closed_at >= :since AND d.closed_at < :at))
          AND t.registered_at < :at AND NOT t.is_test""")
    with engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(sql, {"since": since, "at": at})}


def test_scoring_writes_one_row_per_trader_of_the_population(engine, trained):
    run = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    at = trained.plan.cutoff
    scored = score_model(engine, CHURN, by="carol", as_of=at, now=NOW)
    stored = read_scores(engine, "churn")
    expected = _population_by_hand(engine, at)
    assert len(expected) > 300
    assert set(stored["trader_id"]) == expected and len(stored) == len(expected)
    assert set(scored.frame.index) == expected and scored.run.traders == len(expected)
    assert set(stored["run_id"]) == {run.run_id} and set(stored["score_run_id"]) == {scored.run.score_run_id}
    latest = latest_score_run(engine, "churn")
    assert (latest.score_run_id, latest.run_id, latest.as_of, latest.scored_at, latest.scored_by, latest.traders) == (
        scored.run.score_run_id, run.run_id, at, NOW, "carol", len(expected))
    assert latest.distribution == scored.run.distribution and latest.drift == scored.run.drift
    # Highest first; the stored probability is the one scored.
    assert stored["probability"].is_monotonic_decreasing
    mine = scored.frame["probability"].reindex(stored["trader_id"]).to_numpy()
    np.testing.assert_allclose(stored["probability"].to_numpy(), mine, rtol=0, atol=1e-12)
    assert set(read_scores(engine, "churn", trader_ids=stored["trader_id"][:3])["trader_id"]) == set(
        stored["trader_id"][:3])


def test_bands_and_deciles(engine, trained):
    assert band_of(np.array([0, 0.0999, 0.1, 0.2999, 0.3, 0.5999, 0.6, 1.0])).tolist() == [
        "low", "low", "medium", "medium", "high", "high", "very_high", "very_high"]
    p = np.linspace(1, 0, 20)
    assert deciles_of(p).tolist() == [d for d in range(1, 11) for _ in range(2)]
    assert deciles_of(np.array([0.2, 0.2, 0.2, 0.2])).tolist() == [1, 3, 6, 8]  # ties: by position

    save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    scored = score_model(engine, CHURN, by="test", as_of=trained.plan.cutoff)
    stored = read_scores(engine, "churn")
    p = stored["probability"].to_numpy()
    cuts = [(0.0, "low"), (0.1, "medium"), (0.3, "high"), (0.6, "very_high")]
    by_hand = [next(name for lower, name in reversed(cuts) if v >= lower) for v in p]
    assert stored["band"].tolist() == by_hand
    n = len(stored)
    ranks = np.argsort(np.argsort(-p, kind="stable"), kind="stable")
    assert stored["decile"].tolist() == (ranks * 10 // n + 1).tolist()
    sizes = stored.groupby("decile").size()
    assert list(sizes.index) == list(range(1, 11)) and sizes.max() - sizes.min() <= 1
    groups = stored.groupby("decile")["probability"]
    assert all(groups.min()[d] >= groups.max()[d + 1] for d in range(1, 10))
    dist = scored.run.distribution
    assert dist["bands"] == {b: int((stored["band"] == b).sum()) for b in BAND_NAMES}
    assert sum(dist["counts"]) == n and dist["mean"] == pytest.approx(p.mean())
    assert dist["counts"] == np.histogram(p, bins=20, range=(0, 1))[0].tolist()
    assert {"low", "very_high"} <= set(stored["band"])  # the churn model uses the whole range


def test_stored_explanations_add_up_to_the_stored_probability(engine, trained):
    run = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    at = trained.plan.cutoff
    score_model(engine, CHURN, by="test", as_of=at)
    stored = read_scores(engine, "churn").set_index("trader_id")
    explanations = stored["explanation"].map(lambda text: Explanation.from_json(json.loads(text)))
    np.testing.assert_allclose(explanations.map(lambda e: e.probability).to_numpy(), stored["probability"].to_numpy(),
                               rtol=0, atol=1e-6)
    # ... and to the model's calibrated margin for the trader's features as of the scoring (1e-3).
    x = scoring_snapshot(engine, CHURN, at).x.loc[stored.index]
    log_odds = run.calibration.log_odds(margins(load_booster(engine, run.run_id), x))
    assert np.abs(explanations.map(lambda e: e.log_odds).to_numpy() - log_odds).max() <= 1e-3
    assert all(len(e.reasons) == 8 and e.rest_count == len(MODEL_FEATURES) - 8 for e in explanations)
    # One trader's page reads the same.
    tid = int(stored.index[0])
    mine = trader_scores(engine, tid)
    assert list(mine) == ["churn"]
    assert mine["churn"].explanation == explanations[tid]
    assert (mine["churn"].probability, mine["churn"].band, mine["churn"].decile, mine["churn"].run_id) == (
        stored.loc[tid, "probability"], stored.loc[tid, "band"], stored.loc[tid, "decile"], run.run_id)
    assert trader_scores(engine, 10**9) == {}


def test_a_second_scoring_replaces_the_first(engine, trained):
    save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    first = score_model(engine, CHURN, by="test", as_of=trained.plan.cutoff)
    earlier = trained.plan.cutoff - timedelta(days=7)
    second = score_model(engine, CHURN, by="test", as_of=earlier)
    stored = read_scores(engine, "churn")
    assert set(stored["score_run_id"]) == {second.run.score_run_id} != {first.run.score_run_id}
    assert set(stored["trader_id"]) == _population_by_hand(engine, earlier) != set(first.frame.index)
    assert len(stored) == second.run.traders
    assert _count(engine, schema.score_runs) == 2
    assert latest_score_run(engine, "churn").as_of == earlier


def test_drift_is_near_zero_on_the_training_rows_and_alerts_on_a_shift(engine, trained):
    """Scoring the snapshot the model was trained on (one training snapshot here) compares the
    training rows with themselves: PSI near 0 for the score and every reference feature."""
    run = save_run(engine, trained, by="alice", features=MODEL_FEATURES)
    assert len(trained.plan.train) == 1
    at = trained.plan.train[0]
    scored = score_model(engine, CHURN, by="test", as_of=at)
    assert scored.run.traders == trained.counts["train_rows"]
    shift = scored.run.drift
    assert shift["score"] < 0.01 and shift["alerts"] == []
    assert set(shift["features"]) == set(run.reference["features"]) and len(shift["features"]) == 10
    assert max(shift["features"].values()) < 0.01
    assert latest_score_run(engine, "churn").drift == shift
    # The same traders a month more idle: the recency features and the score move past the alert.
    x = scoring_snapshot(engine, CHURN, at).x
    idle = x.assign(days_since_last_login=x["days_since_last_login"] + 30,
                    days_since_last_trade=x["days_since_last_trade"] + 30)
    phi, base = contributions(load_booster(engine, run.run_id), idle, run.calibration)
    moved = scoring.drift(run, idle, 1 / (1 + np.exp(-(base + phi.sum(axis=1)))))
    assert moved["score"] > DRIFT_ALERT and "score" in moved["alerts"]
    recency = {"days_since_last_login", "days_since_last_trade"} & set(run.reference["features"])
    assert recency and recency <= set(moved["alerts"])
    assert pd.Series(moved["features"]).drop(list(recency)).max() < 0.01
