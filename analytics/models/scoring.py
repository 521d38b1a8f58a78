"""Scoring a model's whole population with its active run, with every trader's reasons stored.

:func:`score_model` computes the feature snapshot at T, the calibrated probability of every trader
in the model's population, their SHAP contributions (the same pass: XGBoost's TreeSHAP, on a GPU
with ``device="cuda"``), the top reasons, bands and deciles, and the drift of the score and the
run's top features against its training rows (PSI; past :data:`DRIFT_ALERT` the population has
shifted). It replaces the model's rows of ``model_scores`` and adds a ``score_runs`` row in one
transaction, so pages always read one complete scoring. Traders outside the population (a churn
score for someone who has not traded for a month) have no score: the model does not describe them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.features import snapshot_time
from analytics.models import metrics as m
from analytics.models.dataset import MODEL_FEATURES, Progress, scoring_snapshot
from analytics.models.explain import Explanation, contributions, top_reasons
from analytics.models.registry import ModelNotFound, ModelRun, active_run, load_booster
from analytics.models.specs import BAND_LABELS, BAND_NAMES, BANDS, MODELS, ModelSpec, band_of
from analytics.reading import reading
from analytics.writing import writing
from connectors.columnar import fetch_frame
from connectors.database import bulk_insert, next_id
from connectors.errors import TraderLensError
from connectors.schema import model_scores, score_runs

DRIFT_ALERT = 0.2
HISTOGRAM_BINS = 20


class ScoringRefused(TraderLensError):
    """Scoring cannot run (no active model, or a model of other features)."""


def deciles_of(p: np.ndarray) -> np.ndarray:
    """Each probability's decile in this population, 1 for the highest 10% (ties by position)."""
    n = len(p)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(-np.asarray(p, dtype=float), kind="stable")] = np.arange(n)
    return (ranks * 10 // max(n, 1) + 1).astype(int)


@dataclass(frozen=True)
class ScoreRun:
    """One scoring: which run, as of when, how many traders, how long, the score histogram and the
    drift ({"score": psi, "features": {name: psi}, "alerts": [names past DRIFT_ALERT]})."""

    score_run_id: int
    model: str
    run_id: int
    as_of: datetime
    scored_at: datetime
    scored_by: str
    traders: int
    duration_s: float
    distribution: dict
    drift: dict


@dataclass(frozen=True)
class Scored:
    """What :func:`score_model` wrote, and the scores themselves (``frame``: trader_id, probability,
    band, decile, explanation (:class:`Explanation`), indexed by trader_id)."""

    run: ScoreRun
    frame: pd.DataFrame


def drift(run: ModelRun, x: pd.DataFrame, probability: np.ndarray) -> dict:
    """PSI of the score and of the run's reference features, this population against training."""
    ref = run.reference
    features = {f: m.psi(r["shares"], m.bin_shares(x[f].to_numpy(dtype=float), np.asarray(r["edges"])))
                for f, r in ref["features"].items() if f in x}
    score = m.psi(ref["score"]["shares"], m.bin_shares(probability, np.asarray(ref["score"]["edges"])))
    alerts = [name for name, v in (("score", score), *features.items()) if v > DRIFT_ALERT]
    return {"score": score, "features": features, "alerts": alerts}


def score_model(engine: Engine, spec: ModelSpec, *, by: str, as_of: date | datetime | None = None,
                device: str | None = None, progress: Progress | None = None,
                now: datetime | None = None) -> Scored:
    """Score ``spec``'s population as of ``as_of`` with its active run and store the result (see
    the module docstring). ``engine`` must be able to write."""
    say = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    run = active_run(engine, spec.name)
    if run is None:
        raise ScoringRefused(f"There is no active {spec.name} model yet: train one first "
                             f"(`python cli.py train --model {spec.name}`).")
    if run.features != MODEL_FEATURES:
        raise ScoringRefused(f"The active {spec.name} model (v{run.version}) was trained on another set of "
                             "features than this version computes: train and promote a new one.")
    at = snapshot_time(engine, as_of)
    say(0.1, "Computing the feature snapshot")
    snap = scoring_snapshot(engine, spec, at)
    say(0.5, f"Scoring and explaining {len(snap):,} traders")
    booster = load_booster(engine, run.run_id)
    phi, base = contributions(booster, snap.x, run.calibration, device=device)
    log_odds = base + phi.sum(axis=1)
    probability = 1.0 / (1.0 + np.exp(-log_odds))
    explanations = top_reasons(phi, base, snap.x)
    frame = pd.DataFrame({"probability": probability, "band": band_of(probability),
                          "decile": deciles_of(probability), "explanation": explanations}, index=snap.x.index)
    hist, edges = np.histogram(probability, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    distribution = {"edges": edges.round(4).tolist(), "counts": hist.tolist(),
                    "mean": float(probability.mean()) if len(probability) else None,
                    "bands": {b: int((frame["band"] == b).sum()) for b in BAND_NAMES}}
    shift = drift(run, snap.x, probability) if len(snap) else {"score": None, "features": {}, "alerts": []}
    say(0.8, "Saving the scores")
    scored_at = (now or datetime.now(UTC).replace(tzinfo=None)).replace(microsecond=0)
    rows = pd.DataFrame({
        "model": spec.name, "trader_id": frame.index.to_numpy(dtype=np.int64), "run_id": run.run_id,
        "score_run_id": 0, "probability": probability, "band": frame["band"].to_numpy(),
        "decile": frame["decile"].to_numpy(), "explanation": [json.dumps(e.to_json()) for e in explanations]})
    with writing(engine, lock="traderlens.scores") as conn:
        score_run_id = next_id(conn, score_runs)
        rows["score_run_id"] = score_run_id
        conn.execute(model_scores.delete().where(model_scores.c.model == spec.name))
        bulk_insert(conn, model_scores, rows)
        duration = time.perf_counter() - started
        conn.execute(score_runs.insert().values(
            score_run_id=score_run_id, model=spec.name, run_id=run.run_id, as_of=at, scored_at=scored_at,
            scored_by=by, traders=len(frame), duration_s=duration, distribution=json.dumps(distribution),
            drift=json.dumps(shift)))
    say(1.0, "Scored")
    return Scored(ScoreRun(score_run_id, spec.name, run.run_id, at, scored_at, by, len(frame), duration,
                           distribution, shift), frame)


def stale_models(engine: Engine) -> list[ModelSpec]:
    """The models whose stored scores are missing or out of date: an active run exists and the latest
    scoring used another run or another snapshot time than the current one."""
    current = snapshot_time(engine, None)
    stale = []
    for spec in MODELS.values():
        run = active_run(engine, spec.name)
        if run is None or run.features != MODEL_FEATURES:
            continue
        latest = latest_score_run(engine, spec.name)
        if latest is None or latest.run_id != run.run_id or latest.as_of != current:
            stale.append(spec)
    return stale


def rescore_stale(engine: Engine, *, by: str) -> list[ScoreRun]:
    """Score every model of :func:`stale_models` as of now (the scheduler's tick after new data or a
    promotion). ``engine`` must be able to write."""
    return [score_model(engine, spec, by=by).run for spec in stale_models(engine)]


def _score_run(row) -> ScoreRun:
    r = row._mapping
    return ScoreRun(int(r["score_run_id"]), r["model"], int(r["run_id"]), r["as_of"], r["scored_at"],
                    r["scored_by"], int(r["traders"]), float(r["duration_s"] or 0.0),
                    json.loads(r["distribution"] or "{}"), json.loads(r["drift"] or "{}"))


def latest_score_run(engine: Engine, model: str) -> ScoreRun | None:
    """The newest scoring of ``model`` (the one ``model_scores`` holds), None before the first."""
    s = score_runs.c
    with reading(engine) as conn:
        row = conn.execute(sa.select(score_runs).where(s.model == model)
                           .order_by(s.score_run_id.desc()).limit(1)).one_or_none()
    return None if row is None else _score_run(row)


@dataclass(frozen=True)
class TraderScore:
    """One trader's stored score of one model."""

    model: str
    run_id: int
    score_run_id: int
    probability: float
    band: str
    decile: int
    explanation: Explanation


def trader_scores(engine: Engine, trader_id: int) -> dict[str, TraderScore]:
    """The trader's stored scores, by model name (a model that does not score them is absent)."""
    s = model_scores.c
    with reading(engine) as conn:
        # model IN (...) keeps it a probe of the (model, trader_id) key: by trader alone PostgreSQL
        # walked the whole index (9 ms against 0.1 ms at 350,000 scores).
        rows = conn.execute(sa.select(model_scores).where(s.model.in_(list(MODELS)),
                                                          s.trader_id == int(trader_id))).all()
    return {r.model: TraderScore(r.model, int(r.run_id), int(r.score_run_id), float(r.probability), r.band,
                                 int(r.decile), Explanation.from_json(json.loads(r.explanation))) for r in rows}


def read_scores(engine: Engine, model: str, *, trader_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The stored scores of ``model``: trader_id, probability, band, decile, explanation (JSON text),
    run_id, score_run_id; ordered by probability, highest first."""
    s = model_scores.c
    stmt = (sa.select(s.trader_id, s.probability, s.band, s.decile, s.explanation, s.run_id, s.score_run_id)
            .where(s.model == model).order_by(s.probability.desc(), s.trader_id))
    if trader_ids is not None:
        stmt = stmt.where(s.trader_id.in_([int(i) for i in trader_ids]))
    with reading(engine) as conn:
        return fetch_frame(conn, stmt)


__all__ = ["BANDS", "BAND_LABELS", "BAND_NAMES", "DRIFT_ALERT", "ModelNotFound", "ScoreRun", "Scored",
           "ScoringRefused", "TraderScore", "band_of", "deciles_of", "latest_score_run", "read_scores",
           "rescore_stale", "score_model", "stale_models", "trader_scores"]
