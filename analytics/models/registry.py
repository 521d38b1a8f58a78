"""Saved model runs: write a trained model, read runs back, promote one to active.

Each model kind has at most one **active** run, the one scoring uses. A new run is saved as a
**candidate** and never replaces the active one by itself: an admin promotes it after comparing the
two cards (:func:`promote`; the old active run becomes **retired**). The first run of a kind, with
nothing to replace, is active at once, so a new installation can score after one training.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import xgboost as xgb
from sqlalchemy.engine import Engine

from analytics.models.explain import Calibration
from analytics.models.metrics import Metrics
from analytics.models.training import GlobalSummary, TrainedModel
from analytics.reading import reading
from analytics.writing import writing
from connectors.database import next_id
from connectors.errors import TraderLensError
from connectors.schema import model_runs

LOCK = "traderlens.models"


class ModelNotFound(TraderLensError):
    """No such model run, or no active run of a kind yet."""


class PromotionRefused(TraderLensError):
    """A run that cannot be promoted (already active, or of another feature set)."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class ModelRun:
    """A saved run: identity, status and the card's figures (``metrics``: test, test_uncalibrated,
    baseline, random_split as :class:`Metrics`; counts, timings and beats_baseline as stored)."""

    run_id: int
    model: str
    version: int
    status: str
    trained_at: datetime
    trained_by: str
    cutoff: datetime
    snapshots: dict
    params: dict
    features: tuple[str, ...]
    metrics: dict
    calibration: Calibration
    summary: GlobalSummary
    reference: dict
    medians: dict
    promoted_at: datetime | None
    promoted_by: str | None

    def card(self, which: str = "test") -> Metrics:
        """One slice's :class:`Metrics`: test, test_uncalibrated, baseline or random_split."""
        return Metrics.from_json(self.metrics[which])

    @property
    def beats_baseline(self) -> bool:
        return bool(self.metrics.get("beats_baseline"))

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version} ({self.status})"


_SUMMARY_COLUMNS = [c for c in model_runs.c if c.name != "artifact"]


def _run(row) -> ModelRun:
    r = row._mapping
    cal = json.loads(r["calibration"])
    return ModelRun(
        int(r["run_id"]), r["model"], int(r["version"]), r["status"], r["trained_at"], r["trained_by"],
        r["cutoff"], json.loads(r["snapshots"]), json.loads(r["params"]), tuple(json.loads(r["features"])),
        json.loads(r["metrics"]), Calibration(cal["slope"], cal["intercept"]),
        GlobalSummary.from_json(json.loads(r["summary"])), json.loads(r["reference"]), json.loads(r["medians"]),
        r["promoted_at"], r["promoted_by"])


def save_run(engine: Engine, trained: TrainedModel, *, by: str, features: tuple[str, ...],
             now: datetime | None = None) -> ModelRun:
    """Save ``trained`` as the next version of its kind: a candidate, or active when the kind has no
    active run yet. ``engine`` must be able to write."""
    metrics = {"test": trained.test.to_json(), "test_uncalibrated": trained.test_uncalibrated.to_json(),
               "baseline": trained.baseline.to_json(), "random_split": trained.random_split.to_json(),
               "counts": trained.counts, "timings": trained.timings, "beats_baseline": trained.beats_baseline,
               "best_iteration": trained.best_iteration}
    # To the microsecond: with the run id it tells a run apart from a deleted one that had its id
    # (load_booster's cache key).
    at = now or datetime.now(UTC).replace(tzinfo=None)
    r = model_runs.c
    with writing(engine, lock=LOCK) as conn:
        run_id = next_id(conn, model_runs)
        version = conn.execute(sa.select(sa.func.coalesce(sa.func.max(r.version), 0))
                               .where(r.model == trained.spec.name)).scalar_one() + 1
        has_active = conn.execute(sa.select(sa.func.count()).where(
            r.model == trained.spec.name, r.status == "active")).scalar_one() > 0
        conn.execute(model_runs.insert().values(
            run_id=run_id, model=trained.spec.name, version=version,
            status="candidate" if has_active else "active", trained_at=at, trained_by=by,
            cutoff=trained.plan.cutoff, snapshots=json.dumps(trained.plan.to_json()),
            params=json.dumps(trained.params), features=json.dumps(list(features)), metrics=json.dumps(metrics),
            calibration=json.dumps({"slope": trained.calibration.slope, "intercept": trained.calibration.intercept,
                                    "method": "platt_on_margin"}),
            summary=json.dumps(trained.summary.to_json()), reference=json.dumps(trained.reference),
            medians=json.dumps(trained.medians),
            artifact=bytes(trained.booster.save_raw(raw_format="json")).decode(),
            promoted_at=None if has_active else at, promoted_by=None if has_active else "first model of its kind"))
        return _run(conn.execute(sa.select(*_SUMMARY_COLUMNS).where(r.run_id == run_id)).one())


def list_runs(engine: Engine, model: str | None = None) -> list[ModelRun]:
    """Every saved run (of ``model``), newest first."""
    r = model_runs.c
    stmt = sa.select(*_SUMMARY_COLUMNS).order_by(r.model, r.version.desc())
    if model is not None:
        stmt = stmt.where(r.model == model)
    with reading(engine) as conn:
        return [_run(row) for row in conn.execute(stmt)]


def get_run(engine: Engine, run_id: int) -> ModelRun:
    """The run ``run_id``; :class:`ModelNotFound` when there is none."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(model_runs.c.run_id == int(run_id))).one_or_none()
    if row is None:
        raise ModelNotFound(f"There is no model run {run_id}: `python cli.py models list` shows them.")
    return _run(row)


def active_run(engine: Engine, model: str) -> ModelRun | None:
    """The active run of ``model``, None before the first training."""
    r = model_runs.c
    with reading(engine) as conn:
        row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(r.model == model, r.status == "active")).one_or_none()
    return None if row is None else _run(row)


_BOOSTERS: dict[tuple[str, int, datetime], xgb.Booster] = {}
_BOOSTERS_LOCK = threading.Lock()
_BOOSTERS_KEPT = 12


def load_booster(engine: Engine, run_id: int) -> xgb.Booster:
    """The XGBoost model of run ``run_id``, read once per process (a saved run never changes). The
    cache is keyed by the run's training time too: ids are max + 1, so an emptied table gives a new
    run an old id."""
    r = model_runs.c
    with reading(engine) as conn:
        trained_at = conn.execute(sa.select(r.trained_at).where(r.run_id == int(run_id))).scalar()
    if trained_at is None:
        raise ModelNotFound(f"There is no model run {run_id}: `python cli.py models list` shows them.")
    key = (str(engine.url), int(run_id), trained_at)
    with _BOOSTERS_LOCK:
        if key in _BOOSTERS:
            return _BOOSTERS[key]
    with reading(engine) as conn:
        artifact = conn.execute(sa.select(r.artifact).where(r.run_id == int(run_id))).scalar()
    if artifact is None:
        raise ModelNotFound(f"There is no model run {run_id}: `python cli.py models list` shows them.")
    booster = xgb.Booster()
    booster.load_model(bytearray(artifact.encode()))
    with _BOOSTERS_LOCK:
        while len(_BOOSTERS) >= _BOOSTERS_KEPT:
            _BOOSTERS.pop(next(iter(_BOOSTERS)))
        _BOOSTERS[key] = booster
    return booster


def promote(engine: Engine, run_id: int, *, by: str, features: tuple[str, ...],
            now: datetime | None = None) -> ModelRun:
    """Make run ``run_id`` the active model of its kind (the previous active run is retired).
    Refused for the active run itself and for a run trained on other features than ``features``
    (this version's model inputs). ``engine`` must be able to write."""
    r = model_runs.c
    with writing(engine, lock=LOCK) as conn:
        row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(r.run_id == int(run_id))).one_or_none()
        if row is None:
            raise ModelNotFound(f"There is no model run {run_id}: `python cli.py models list` shows them.")
        run = _run(row)
        if run.status == "active":
            raise PromotionRefused(f"{run.model} v{run.version} is already the active model.")
        if run.features != tuple(features):
            raise PromotionRefused(f"{run.model} v{run.version} was trained on another set of features than this "
                                   "version computes; train a new model instead.")
        at = (now or _now()).replace(microsecond=0)
        conn.execute(model_runs.update().where(r.model == run.model, r.status == "active").values(status="retired"))
        conn.execute(model_runs.update().where(r.run_id == run.run_id).values(
            status="active", promoted_at=at, promoted_by=by))
        return _run(conn.execute(sa.select(*_SUMMARY_COLUMNS).where(r.run_id == run.run_id)).one())
