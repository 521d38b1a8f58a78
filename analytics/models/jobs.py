"""Training requested from the app, run in the background with progress every page can read.

:func:`start_training` writes a ``model_jobs`` row (queued) and starts a daemon thread that trains
and saves the model (:func:`run_job`), writing its progress and a heartbeat to the row as it goes.
Jobs run one at a time per process (training takes both cores; a second one waits its turn), and a
second request for a model already queued or running is refused. The thread spends its time in
XGBoost and the database, which release Python's interpreter lock, so other users' pages keep
running. A job whose heartbeat stopped (the process died) reads as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.models.dataset import MODEL_FEATURES
from analytics.models.registry import save_run
from analytics.models.specs import model_spec
from analytics.models.training import train_model
from analytics.periods import midnight
from analytics.reading import reading
from analytics.writing import writing
from connectors.database import next_id
from connectors.errors import TraderLensError
from connectors.schema import model_jobs

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(minutes=5)
_ONE_AT_A_TIME = threading.Semaphore(1)


class TrainingBusy(TraderLensError):
    """A training of this model is already queued or running."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class Job:
    """A training job: ``status`` queued, running, done, failed or interrupted; ``progress`` 0..1."""

    job_id: int
    model: str
    requested_by: str
    requested_at: datetime
    as_of: datetime | None
    status: str
    progress: float
    message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    run_id: int | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "interrupted")


def _job(row, now: datetime) -> Job:
    r = row._mapping
    status = r["status"]
    beat = r["heartbeat_at"] or r["requested_at"]
    if status in ("queued", "running") and now - beat > STALE_AFTER:
        status = "interrupted"
    return Job(int(r["job_id"]), r["model"], r["requested_by"], r["requested_at"], r["as_of"], status,
               float(r["progress"] or 0.0), r["message"], r["started_at"], r["finished_at"],
               None if r["run_id"] is None else int(r["run_id"]), r["error"])


def get_job(engine: Engine, job_id: int) -> Job | None:
    with reading(engine) as conn:
        row = conn.execute(sa.select(model_jobs).where(model_jobs.c.job_id == int(job_id))).one_or_none()
    return None if row is None else _job(row, _now())


def recent_jobs(engine: Engine, model: str | None = None, *, limit: int = 10) -> list[Job]:
    """The newest jobs (of ``model``), newest first."""
    j = model_jobs.c
    stmt = sa.select(model_jobs).order_by(j.job_id.desc()).limit(limit)
    if model is not None:
        stmt = stmt.where(j.model == model)
    with reading(engine) as conn:
        rows = conn.execute(stmt).all()
    now = _now()
    return [_job(r, now) for r in rows]


def _update(engine: Engine, job_id: int, **values) -> None:
    with writing(engine, tag="model_jobs") as conn:
        conn.execute(model_jobs.update().where(model_jobs.c.job_id == job_id).values(heartbeat_at=_now(), **values))


def start_training(engine: Engine, model: str, *, by: str, as_of: date | None = None,
                   background: bool = True) -> int:
    """Queue a training of ``model`` and start it (in a daemon thread unless ``background`` is
    False, when it runs before returning). The job's id; :class:`TrainingBusy` if one of the same
    model is queued or running. ``engine`` must be able to write."""
    spec = model_spec(model)
    busy = [job for job in recent_jobs(engine, spec.name, limit=5) if job.status in ("queued", "running")]
    if busy:
        raise TrainingBusy(f"A training of the {spec.name} model is already {busy[0].status} "
                           f"(requested by {busy[0].requested_by} at {busy[0].requested_at:%H:%M} UTC).")
    now = _now()
    with writing(engine, lock="traderlens.model_jobs") as conn:
        job_id = next_id(conn, model_jobs)
        conn.execute(model_jobs.insert().values(
            job_id=job_id, model=spec.name, requested_by=by, requested_at=now,
            as_of=None if as_of is None else midnight(as_of), status="queued", progress=0.0,
            message="Waiting for the trainer", heartbeat_at=now))
    if background:
        threading.Thread(target=run_job, args=(engine, job_id, by, as_of), name=f"train-{spec.name}-{job_id}",
                         daemon=True).start()
    else:
        run_job(engine, job_id, by, as_of)
    return job_id


def run_job(engine: Engine, job_id: int, by: str, as_of: date | None) -> None:
    """Train and save the job's model, writing progress; never raises (the error goes to the row)."""
    job = get_job(engine, job_id)
    if job is None:
        return
    with _ONE_AT_A_TIME:
        try:
            _update(engine, job_id, status="running", started_at=_now(), message="Starting")

            def progress(fraction: float, message: str) -> None:
                _update(engine, job_id, progress=float(fraction), message=message)

            trained = train_model(engine, model_spec(job.model), as_of=as_of, progress=progress)
            run = save_run(engine, trained, by=by, features=MODEL_FEATURES)
            _update(engine, job_id, status="done", progress=1.0, finished_at=_now(), run_id=run.run_id,
                    message=f"Saved as {run.model} v{run.version} ({run.status})")
        except TraderLensError as exc:
            _update(engine, job_id, status="failed", finished_at=_now(), error=str(exc), message="Failed")
        except Exception as exc:  # a background thread has no caller to raise to
            log.exception("training job %s failed", job_id)
            _update(engine, job_id, status="failed", finished_at=_now(), message="Failed",
                    error=f"Training stopped on an unexpected error ({type(exc).__name__}); the server log has "
                          "the details.")
