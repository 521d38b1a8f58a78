"""Training in the background (analytics.models.jobs) and the scheduler's rescoring of stale scores
(analytics.models.scoring.rescore_stale, server.scheduler.refresh_once). The first test runs on DuckDB
and PostgreSQL; the others, whose logic does not depend on the database, on DuckDB (a broker seeded
on PostgreSQL costs 10-20 s a test)."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from analytics.models import jobs
from analytics.models.dataset import MODEL_FEATURES
from analytics.models.registry import list_runs, promote
from analytics.models.scoring import latest_score_run, stale_models
from connectors import schema
from connectors.simulator import SimulationConfig
from server import scheduler
from tests.models_fixture import trained_database

BROKER = SimulationConfig(traders=3_000, days=170, seed=7, end=date(2026, 11, 1))


@pytest.fixture
def broker(engine):
    """A trained (churn, active) and scored broker in the engine fixture's database."""
    return trained_database(engine, config=BROKER)


def test_a_job_trains_saves_and_says_so(broker):
    job_id = jobs.start_training(broker, "churn", by="ana", background=False)
    job = jobs.get_job(broker, job_id)
    assert job.status == "done" and job.progress == 1.0 and job.finished
    assert job.requested_by == "ana" and job.run_id is not None
    assert job.message == "Saved as churn v2 (candidate)"  # the active model stays until promoted
    assert [(r.version, r.status) for r in list_runs(broker, "churn")] == [(2, "candidate"), (1, "active")]
    assert [j.job_id for j in jobs.recent_jobs(broker, "churn")] == [job_id]


@pytest.mark.parametrize("backend", ["duckdb"])
def test_a_failing_job_keeps_its_reason_and_a_second_request_waits_its_turn(broker):
    job_id = jobs.start_training(broker, "churn", by="ana", as_of=BROKER.end - timedelta(days=60),
                                 background=False)
    job = jobs.get_job(broker, job_id)
    assert job.status == "failed" and job.finished and job.run_id is None
    assert "needs 60 days of history" in job.error  # the protocol's own message, for the user
    # A queued job blocks a second request for the same model, not for another one.
    with broker.begin() as conn:
        conn.execute(schema.model_jobs.update().where(schema.model_jobs.c.job_id == job_id)
                     .values(status="queued", heartbeat_at=jobs._now()))
    with pytest.raises(jobs.TrainingBusy, match="already queued"):
        jobs.start_training(broker, "churn", by="bo", background=False)


@pytest.mark.parametrize("backend", ["duckdb"])
def test_a_job_whose_process_died_reads_as_interrupted(broker):
    job_id = jobs.start_training(broker, "churn", by="ana", background=False)
    with broker.begin() as conn:
        conn.execute(schema.model_jobs.update().where(schema.model_jobs.c.job_id == job_id).values(
            status="running", heartbeat_at=jobs._now() - jobs.STALE_AFTER - timedelta(seconds=1)))
    assert jobs.get_job(broker, job_id).status == "interrupted"
    # An interrupted job does not block a new one.
    second = jobs.start_training(broker, "deposit", by="ana", background=False)
    assert jobs.get_job(broker, second).status == "done"


@pytest.mark.parametrize("backend", ["duckdb"])
def test_background_training_runs_beside_the_caller(broker):
    started = time.perf_counter()
    job_id = jobs.start_training(broker, "churn", by="ana")
    assert time.perf_counter() - started < 2.0  # returns at once; the thread trains
    deadline = time.monotonic() + 120
    while not (job := jobs.get_job(broker, job_id)).finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status == "done", job.error


def test_the_scheduler_rescores_after_a_promotion_and_leaves_fresh_scores_alone(broker):
    assert stale_models(broker) == []  # scored by the fixture as of the current snapshot
    first = latest_score_run(broker, "churn")
    scheduler.refresh_once(lambda: broker, lambda: broker)
    assert latest_score_run(broker, "churn").score_run_id == first.score_run_id  # nothing to do
    job_id = jobs.start_training(broker, "churn", by="ana", background=False)
    candidate = jobs.get_job(broker, job_id).run_id
    assert stale_models(broker) == []  # a candidate does not score
    promote(broker, candidate, by="ana", features=MODEL_FEATURES)
    assert [s.name for s in stale_models(broker)] == ["churn"]
    scheduler.refresh_once(lambda: broker, lambda: broker)
    latest = latest_score_run(broker, "churn")
    assert latest.run_id == candidate and latest.scored_by == "scheduler"
    assert stale_models(broker) == []
