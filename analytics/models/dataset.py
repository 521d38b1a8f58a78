"""The training protocol's rows: which snapshot dates, and each trader's features and label at them.

For a cut-off C (``--as-of``; by default the local midnight after the newest day with data) and a
model with horizon H, every date is a local midnight and every label window ends by C:

- **test** (calibration and evaluation): C − H, the newest snapshot whose outcome is fully known.
  Its traders are split in two halves by a hash of their id: one half fits the calibration, the
  other gives the model card's out-of-time figures.
- **validation** (early stopping): C − 2H.
- **train**: C − 3H, C − 4H, ... (``train_snapshots`` of them, fewer when the data starts later).

Windows never overlap across roles (each snapshot's window ends where the next role begins), and no
row reads anything at or after C: features come from before their snapshot, labels from before C.
Scoring uses the snapshot at C itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from analytics.events import compute_data_span
from analytics.features import FEATURE_NAMES, KYC_STATE, KYC_STATES, compute_features, snapshot_time
from analytics.models.labels import labelled, population, shift
from analytics.models.specs import ModelSpec
from analytics.periods import local_date, midnight
from analytics.reading import reading
from connectors.columnar import fetch_frame
from connectors.errors import TraderLensError

# The model's inputs: every numeric feature of the snapshot, then the KYC state as a code
# (its index in KYC_STATES; trees split on it like a category).
MODEL_FEATURES: tuple[str, ...] = (*FEATURE_NAMES, KYC_STATE)
TRAIN_SNAPSHOTS = 4
# A snapshot needs this much history before it, so "the last 30 days" and the trends are whole.
MIN_HISTORY_DAYS = 60
# Past this many training rows a uniform sample is taken (the base rate is kept, so calibration holds).
MAX_TRAIN_ROWS = 600_000
MIN_ROWS = 100
MIN_POSITIVES = 10

Progress = Callable[[float, str], None]


class NotEnoughHistory(TraderLensError):
    """The data is too short or too small for the protocol (says what it needs)."""


@dataclass(frozen=True)
class SnapshotPlan:
    """The snapshot dates of one training run (naive UTC instants of local midnights)."""

    cutoff: datetime
    train: tuple[datetime, ...]
    validation: datetime
    test: datetime

    def to_json(self) -> dict:
        return {"cutoff": self.cutoff.isoformat(), "train": [t.isoformat() for t in self.train],
                "validation": self.validation.isoformat(), "test": self.test.isoformat()}


def plan_snapshots(engine: Engine, spec: ModelSpec, *, as_of: date | datetime | None = None,
                   train_snapshots: int = TRAIN_SNAPSHOTS) -> SnapshotPlan:
    """The snapshot dates for training ``spec`` with data before ``as_of`` (see the module docstring).
    Raises :class:`NotEnoughHistory` when fewer than one training snapshot fits."""
    cutoff = snapshot_time(engine, as_of)
    span = compute_data_span(engine)
    if span is None:
        raise NotEnoughHistory("The database holds no events yet: import data or run `python cli.py seed`.")
    last = midnight(span.end + timedelta(days=1))
    if cutoff > last:
        # The newest snapshot's outcome window would run into days without data: everyone "churned"
        # in them, nobody "deposited".
        raise NotEnoughHistory(
            f"The data ends on {span.end}: a training cut-off after {span.end + timedelta(days=1)} would label "
            f"traders from days without data. Use --as-of {span.end + timedelta(days=1)} or earlier (or leave it "
            "out).")
    earliest = midnight(span.start + timedelta(days=MIN_HISTORY_DAYS))
    h = spec.horizon_days
    test, validation = shift(cutoff, -h), shift(cutoff, -2 * h)
    train = tuple(t for t in (shift(cutoff, -k * h) for k in range(3, 3 + max(1, train_snapshots)))
                  if t >= earliest)
    if not train:
        need = local_date(earliest) + timedelta(days=3 * h)
        raise NotEnoughHistory(
            f"Training the {spec.name} model needs {MIN_HISTORY_DAYS} days of history before its first "
            f"snapshot and then three windows of {h} days (train, validation, test): with data from "
            f"{span.start}, the cut-off must be {need} or later (it is {local_date(cutoff)}).")
    return SnapshotPlan(cutoff, tuple(sorted(train)), validation, test)


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """The model matrix of a feature snapshot's frame: MODEL_FEATURES as float32 columns, the KYC
    state as its code (NaN when unknown), indexed like ``frame``."""
    x = frame[list(FEATURE_NAMES)].astype("float32")
    codes = {s: float(i) for i, s in enumerate(KYC_STATES)}
    x[KYC_STATE] = frame[KYC_STATE].map(codes).astype("float32")
    return x


@dataclass(frozen=True)
class Snapshot:
    """One snapshot's rows: ``x`` (model matrix indexed by trader_id), ``y`` (0/1 labels, same index;
    None for a scoring snapshot whose outcome is not known yet) and the raw feature values ``raw``."""

    at: datetime
    x: pd.DataFrame
    y: pd.Series | None
    raw: pd.DataFrame

    def __len__(self) -> int:
        return len(self.x)


def labelled_snapshot(engine: Engine, spec: ModelSpec, at: datetime) -> Snapshot:
    """The population of ``spec`` at ``at`` with features and labels (test accounts left out)."""
    snapshot = compute_features(engine, as_of=at)
    with reading(engine, tag=f"labels:{spec.name}") as conn:
        labels = fetch_frame(conn, labelled(spec, at)).set_index("trader_id")["label"]
    frame = snapshot.frame.loc[snapshot.frame.index.intersection(labels.index).sort_values()]
    return Snapshot(at, encode(frame), labels.loc[frame.index].astype("int8"), frame)


def scoring_snapshot(engine: Engine, spec: ModelSpec, at: datetime) -> Snapshot:
    """The population of ``spec`` at ``at`` with features, for scoring (no labels)."""
    snapshot = compute_features(engine, as_of=at)
    with reading(engine, tag=f"population:{spec.name}") as conn:
        ids = fetch_frame(conn, population(spec, at))["trader_id"]
    frame = snapshot.frame.loc[snapshot.frame.index.intersection(pd.Index(ids)).sort_values()]
    return Snapshot(at, encode(frame), None, frame)


def half(index: pd.Index) -> np.ndarray:
    """True for the calibration half of these trader ids, False for the test half: a fixed hash
    of the id (SplitMix64), so a trader stays on one side from run to run."""
    z = index.to_numpy(dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z & np.uint64(1)) == 0


@dataclass(frozen=True)
class TrainingData:
    """The labelled rows of one run: training rows (stacked snapshots, ``train_at`` names each
    row's snapshot), the validation snapshot, and the test snapshot's calibration and test halves."""

    plan: SnapshotPlan
    train_x: pd.DataFrame
    train_y: pd.Series
    train_at: pd.Series
    validation: Snapshot
    calibration: Snapshot
    test: Snapshot
    sampled_from: int


def _subset(s: Snapshot, mask: np.ndarray) -> Snapshot:
    return Snapshot(s.at, s.x[mask], None if s.y is None else s.y[mask], s.raw[mask])


def _check(name: str, s: Snapshot | pd.Series, spec: ModelSpec, at: datetime) -> None:
    y = s.y if isinstance(s, Snapshot) else s
    n, pos = len(y), int(y.sum())
    if n < MIN_ROWS or pos < MIN_POSITIVES or n - pos < MIN_POSITIVES:
        raise NotEnoughHistory(
            f"The {name} rows of the {spec.name} model (snapshot {local_date(at)}) are {n:,} traders with "
            f"{pos:,} positive outcomes; the protocol needs at least {MIN_ROWS} traders and "
            f"{MIN_POSITIVES} of each outcome. Use a later --as-of or more data.")


def training_data(engine: Engine, spec: ModelSpec, plan: SnapshotPlan, *, progress: Progress | None = None,
                  seed: int = 0) -> TrainingData:
    """Features and labels at every snapshot of ``plan`` (one feature snapshot per date)."""
    dates = [*plan.train, plan.validation, plan.test]
    snaps = []
    for i, at in enumerate(dates):
        if progress:
            progress(0.05 + 0.45 * i / len(dates), f"Features and outcomes as of {local_date(at)}")
        snaps.append(labelled_snapshot(engine, spec, at))
    train, validation, test = snaps[:-2], snaps[-2], snaps[-1]
    x = pd.concat([s.x for s in train])
    y = pd.concat([s.y for s in train])
    at = pd.Series(np.concatenate([np.full(len(s), s.at, dtype="datetime64[us]") for s in train]), index=x.index)
    total = len(x)
    if total > MAX_TRAIN_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(total, MAX_TRAIN_ROWS, replace=False))
        x, y, at = x.iloc[keep], y.iloc[keep], at.iloc[keep]
    _check("training", y, spec, plan.train[-1])
    _check("validation", validation, spec, plan.validation)
    cal = half(test.x.index)
    data = TrainingData(plan, x, y, at, validation, _subset(test, cal), _subset(test, ~cal), total)
    _check("calibration", data.calibration, spec, plan.test)
    _check("test", data.test, spec, plan.test)
    return data
