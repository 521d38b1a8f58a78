"""Behavioural clusters of traders: tunable, diagnosed, named, stable across refits, saved and reused.

The input is one feature snapshot (:func:`analytics.features.compute_features`). The steps, each a
choice the user can change (:class:`ClusterSpec`):

1. **Population.** By default the traders who opened a position before the snapshot ("traded");
   "funded" (an approved deposit) and "all" (every registered trader) are the alternatives. Who is
   in and who is left out is counted in :class:`Population`.
2. **Missing values** are filled by what they mean (:func:`fill_rule`): a recency of "never" (no
   deposit yet) becomes the trader's tenure, as if the last one was at registration; a typical value
   (the population's median) for holding time, leverage and win rate, where 0 would claim something
   the data does not say; 0 for every count, rate, amount and share (nothing happened).
3. **Transforms.** ``log1p`` on counts, rates, amounts and durations (heavy-tailed: one whale would
   otherwise be its own cluster), a signed log1p on quantities that can be negative (P&L), nothing on
   shares, flags and log ratios; then standard (mean/std) or robust (median/IQR) scaling or none;
   then optionally PCA to a few components.
4. **Algorithms.** k-means (MiniBatch k-means past :data:`MINIBATCH_ROWS` traders), a Gaussian
   mixture (full covariances), or HDBSCAN (density-based: finds its own number of clusters and
   leaves outliers as noise, cluster -1). The mixture and HDBSCAN are fitted on a random sample
   (:data:`FIT_SAMPLE_ROWS`: 20,000 and 10,000 traders) past that size; the other traders are
   assigned as new traders are (step 7).
5. **Cluster ids** are stable: a first run numbers clusters 1, 2, ... by size (largest first); a run
   with a previous one matches its clusters to the previous run's by member overlap (Jaccard, the
   Hungarian algorithm) so "cluster 3" keeps its meaning and its name; a cluster that matches none
   (Jaccard below :data:`MATCH_MIN_JACCARD`) gets a fresh id never used before.
6. **Profiles.** Size and share, every feature's mean against the population as a z-score, the most
   distinctive features and a readable name built from them (editable, saved with the run).
   z-scores are computed after the log transform, so one whale does not make a cluster's mean.
7. **Assigning new traders** without a refit (:meth:`ClusterModel.assign`): k-means, the nearest
   centroid in the stored transformed space; the mixture, its most probable component; HDBSCAN, the
   nearest cluster centroid when closer than that cluster's own 95th-percentile member distance,
   else noise (-1). A saved run stores everything this needs (fill values, log flags, scaler
   parameters, PCA components, centroids, means and covariances) as JSON in ``clustering_runs.model``.

Diagnostics across k (:func:`compute_diagnostics`) work on a random sample of the population
(:data:`DIAGNOSTIC_ROWS`: 12,000 traders for k-means, fewer for the slower algorithms): silhouette on
a sub-sample of at most :data:`SILHOUETTE_ROWS` (the sizes are returned so the UI says them),
Calinski-Harabasz, Davies-Bouldin, BIC for the mixture, and stability: the mean adjusted Rand index
between pairs of refits on bootstrap samples, each refit assigning the whole diagnostic sample
(HDBSCAN refits on 80% sub-samples instead: a bootstrap's repeated points are false dense spots).

Every random choice follows ``spec.seed`` and the population is ordered by trader id, so the same
snapshot and spec give the same clusters.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from itertools import combinations
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.linalg import solve_triangular
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OneHotEncoder
from sqlalchemy.engine import Connection, Engine
from threadpoolctl import threadpool_limits

from analytics.export import external_ids
from analytics.features import (
    DEFAULT_CLUSTER_FEATURES,
    FEATURE_NAMES,
    FEATURES_BY_NAME,
    KYC_STATE,
    FeatureSnapshot,
    compute_features,
    feature_table,
)
from analytics.filters import STANDARD_TIER
from analytics.reading import reading
from analytics.writing import writing
from connectors.database import bulk_insert, next_id
from connectors.errors import TraderLensError
from connectors.schema import accounts, cluster_assignments, clustering_runs, traders

ALGORITHMS: dict[str, str] = {"kmeans": "k-means", "gmm": "Gaussian mixture", "hdbscan": "HDBSCAN (density)"}
SCALINGS: dict[str, str] = {"standard": "Standard (mean, std)", "robust": "Robust (median, IQR)", "none": "None"}
POPULATIONS: dict[str, str] = {
    "traded": "traders who opened a position before the snapshot",
    "funded": "traders with an approved deposit before the snapshot",
    "all": "every trader registered before the snapshot",
}
MIN_K, MAX_K = 2, 20
DEFAULT_K_RANGE = tuple(range(2, 11))
# k-means runs in full up to this many traders and as MiniBatch k-means past it (same objective,
# a fraction of the time on 200,000 traders).
MINIBATCH_ROWS = 20_000
# The mixture and HDBSCAN are fitted on a sample of at most this many traders (HDBSCAN's cost grows
# faster than linearly; a full-covariance mixture on 200,000 traders takes tens of seconds).
FIT_SAMPLE_ROWS = {"gmm": 20_000, "hdbscan": 10_000}
# Diagnostics fit each k five times (once, then a refit per bootstrap): their sample keeps a full
# run within 30 s on 200,000 traders on this 2-core machine.
DIAGNOSTIC_ROWS = {"kmeans": 12_000, "gmm": 5_000, "hdbscan": 4_000}
SILHOUETTE_ROWS = 3_000
PROJECTION_ROWS = 3_000
BOOTSTRAPS = 4
# Below this overlap with every previous cluster, a new cluster is new (gets a fresh id).
MATCH_MIN_JACCARD = 0.3
# HDBSCAN assigns a new trader to the nearest cluster only within this quantile of that cluster's own
# members' distances to its centroid; farther is noise.
HDBSCAN_RADIUS_QUANTILE = 0.95
NOISE = -1
MODEL_VERSION = 1


F = TypeVar("F", bound=Callable[..., Any])


def _one_thread(compute: F) -> F:
    """Run ``compute`` with BLAS and OpenMP on one thread. On this 2-core machine with other work
    running, scikit-learn's threads spin against each other: k-means on 4,449 traders took 7.2 s with
    two threads at load 7 and 0.08 s with one; the mixture 9.3 s against 0.18 s."""

    @functools.wraps(compute)
    def limited(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1):
            return compute(*args, **kwargs)

    return limited  # type: ignore[return-value]


class ClusteringRejected(TraderLensError):
    """A clustering cannot be computed, saved or loaded as asked (the message says why); nothing was written."""


# ---------------------------------------------------------------------------------------------
# What to cluster


@dataclass(frozen=True)
class ClusterSpec:
    """The user's choices (see the module docstring). ``k`` is ignored by HDBSCAN, whose clusters
    must hold at least ``min_cluster_size`` traders (None: 1% of the population, at least 10)."""

    features: tuple[str, ...] = DEFAULT_CLUSTER_FEATURES
    log1p: bool = True
    scaling: str = "standard"
    pca_components: int | None = None
    algorithm: str = "kmeans"
    k: int = 6
    seed: int = 0
    min_cluster_size: int | None = None
    population: str = "traded"

    def check(self) -> None:
        """Raise ClusteringRejected naming the first choice that cannot work."""
        if not self.features:
            raise ClusteringRejected("Choose at least one feature to cluster on.")
        unknown = [f for f in self.features if f not in FEATURES_BY_NAME]
        if unknown:
            raise ClusteringRejected(f"Unknown feature(s): {', '.join(map(repr, unknown[:5]))}. "
                                     f"Known: {', '.join(FEATURE_NAMES)}.")
        if len(set(self.features)) != len(self.features):
            raise ClusteringRejected("A feature is listed twice.")
        if self.algorithm not in ALGORITHMS:
            raise ClusteringRejected(f"Unknown algorithm {self.algorithm!r}: choose {', '.join(ALGORITHMS)}.")
        if self.scaling not in SCALINGS:
            raise ClusteringRejected(f"Unknown scaling {self.scaling!r}: choose {', '.join(SCALINGS)}.")
        if self.population not in POPULATIONS:
            raise ClusteringRejected(f"Unknown population {self.population!r}: choose {', '.join(POPULATIONS)}.")
        if not MIN_K <= int(self.k) <= MAX_K:
            raise ClusteringRejected(f"k must be between {MIN_K} and {MAX_K} (got {self.k}).")
        if self.pca_components is not None and not 1 <= self.pca_components <= len(self.features):
            raise ClusteringRejected(f"PCA components must be between 1 and the number of features "
                                     f"({len(self.features)}); got {self.pca_components}.")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ClusteringRejected(f"The minimum cluster size must be at least 2 (got {self.min_cluster_size}).")

    def settings(self) -> dict[str, Any]:
        """The spec as JSON-ready values (``clustering_runs.settings``)."""
        return {"features": list(self.features), "log1p": self.log1p, "scaling": self.scaling,
                "pca_components": self.pca_components, "algorithm": self.algorithm, "k": int(self.k),
                "seed": int(self.seed), "min_cluster_size": self.min_cluster_size, "population": self.population}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ClusterSpec:
        known = {f: settings[f] for f in cls.__dataclass_fields__ if f in settings}
        if "features" in known:
            known["features"] = tuple(known["features"])
        return cls(**known)

    def describe(self) -> str:
        """One line: algorithm, k, transform (for captions and default run names)."""
        size = (f"min cluster size {self.min_cluster_size}" if self.min_cluster_size else "min cluster size 1%") \
            if self.algorithm == "hdbscan" else f"k = {self.k}"
        steps = ["log1p" if self.log1p else "no log", f"{self.scaling} scaling"]
        if self.pca_components:
            steps.append(f"PCA {self.pca_components}")
        n = len(self.features)
        return f"{ALGORITHMS[self.algorithm]}, {size}, {n} feature{'' if n == 1 else 's'} ({', '.join(steps)})"


@dataclass(frozen=True)
class Population:
    """Who was clustered: ``included`` of the ``registered`` traders in the snapshot, by ``rule``."""

    rule: str
    registered: int
    included: int

    @property
    def excluded(self) -> int:
        return self.registered - self.included

    def describe(self) -> str:
        if self.rule == "all":
            return f"All {self.included:,} traders registered before the snapshot."
        left_out = {"traded": "never opened a position", "funded": "never had an approved deposit"}[self.rule]
        return (f"{self.included:,} {POPULATIONS[self.rule]}; {self.excluded:,} of the {self.registered:,} "
                f"registered traders {left_out} and are left out.")


def select_population(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The rows of a snapshot frame that ``rule`` keeps, ordered by trader id."""
    if rule == "traded":
        kept = frame[frame["trades_total"].fillna(0) > 0]
    elif rule == "funded":
        kept = frame[frame["deposits_count"].fillna(0) > 0]
    elif rule == "all":
        kept = frame
    else:
        raise ClusteringRejected(f"Unknown population {rule!r}: choose {', '.join(POPULATIONS)}.")
    return kept.sort_index()


# ---------------------------------------------------------------------------------------------
# Missing values and transforms

# Holding time, leverage and win rate have no neutral zero: an unknown one takes a typical value.
_MEDIAN_FILLED_GROUPS = ("holding", "leverage")
_MEDIAN_FILLED = ("win_rate",)
_NOT_LOGGED_UNITS = ("ratio", "flag", "log ratio")


def fill_rule(name: str) -> str:
    """How a missing ``name`` is filled: "tenure" (a recency of never: the trader's tenure),
    "median" (the population's median) or "zero"."""
    feature = FEATURES_BY_NAME[name]
    if feature.group == "recency":
        return "tenure"
    if feature.group in _MEDIAN_FILLED_GROUPS or name in _MEDIAN_FILLED:
        return "median"
    return "zero"


FILL_NOTES = {
    "tenure": "never → the trader's tenure (as if last at registration)",
    "median": "unknown → the population's median",
    "zero": "none → 0",
}


def fill_notes(features: Sequence[str]) -> pd.DataFrame:
    """What a missing value of each feature becomes: feature, label, rule, note."""
    rows = [(f, FEATURES_BY_NAME[f].label, fill_rule(f), FILL_NOTES[fill_rule(f)]) for f in features]
    return pd.DataFrame(rows, columns=["feature", "label", "rule", "note"])


def _log_rule(name: str, values: np.ndarray) -> str:
    """"log1p", "signed_log1p" or "none" for a feature with these (filled) values."""
    finite = values[np.isfinite(values)]
    unit = FEATURES_BY_NAME[name].unit if name in FEATURES_BY_NAME else ""
    if unit in ("flag", "log ratio") or finite.size == 0:
        return "none"
    if finite.min() < 0:
        return "signed_log1p"
    if unit in _NOT_LOGGED_UNITS and finite.max() <= 1:
        return "none"  # a share
    return "log1p" if finite.max() > 1 else "none"


def _apply_log(values: np.ndarray, rule: str) -> np.ndarray:
    if rule == "log1p":
        return np.log1p(np.maximum(values, 0))
    if rule == "signed_log1p":
        return np.sign(values) * np.log1p(np.abs(values))
    return values


@dataclass(frozen=True)
class Transform:
    """Fitted preprocessing: fill values, log rule per feature, scaler centre and scale, PCA."""

    features: tuple[str, ...]
    fills: dict[str, tuple[str, float]]  # feature -> (rule, value: the median, or the fallback of "tenure")
    logs: dict[str, str]
    center: np.ndarray
    scale: np.ndarray
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None

    def filled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The features of ``frame`` with missing values filled (raw units)."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ClusteringRejected(f"The snapshot lacks feature(s) {', '.join(missing)} this clustering uses.")
        out = frame[list(self.features)].astype(float).copy()
        tenure = frame["tenure_days"].astype(float) if "tenure_days" in frame.columns else None
        for name in self.features:
            rule, value = self.fills[name]
            column = out[name]
            if rule == "tenure" and tenure is not None:
                column = column.fillna(tenure)
            out[name] = column.fillna(value).replace([np.inf, -np.inf], value)
        return out

    def logged(self, frame: pd.DataFrame) -> np.ndarray:
        """Filled, then log-transformed (before scaling): the space profiles compare in."""
        values = self.filled(frame).to_numpy()
        return np.column_stack([_apply_log(values[:, i], self.logs[f]) for i, f in enumerate(self.features)]) \
            if len(values) else values

    def apply(self, frame: pd.DataFrame) -> np.ndarray:
        """The space the clusters live in: filled, logged, scaled and (optionally) projected."""
        x = (self.logged(frame) - self.center) / self.scale
        if self.pca_components is not None:
            x = (x - self.pca_mean) @ self.pca_components.T
        return x

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "fills": {k: list(v) for k, v in self.fills.items()},
                "logs": dict(self.logs), "center": self.center.tolist(), "scale": self.scale.tolist(),
                "pca_mean": None if self.pca_mean is None else self.pca_mean.tolist(),
                "pca_components": None if self.pca_components is None else self.pca_components.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transform:
        return cls(features=tuple(data["features"]), fills={k: (v[0], float(v[1])) for k, v in data["fills"].items()},
                   logs=dict(data["logs"]), center=np.asarray(data["center"], float),
                   scale=np.asarray(data["scale"], float),
                   pca_mean=None if data.get("pca_mean") is None else np.asarray(data["pca_mean"], float),
                   pca_components=None if data.get("pca_components") is None
                   else np.asarray(data["pca_components"], float))


def fit_transform(population: pd.DataFrame, spec: ClusterSpec) -> Transform:
    """Fit the preprocessing of ``spec`` on the population's rows."""
    fills: dict[str, tuple[str, float]] = {}
    for name in spec.features:
        rule = fill_rule(name)
        column = population[name].astype(float).replace([np.inf, -np.inf], np.nan)
        if rule == "median":
            value = column.median()
        elif rule == "tenure":  # fallback where tenure itself is unknown: the longest recency seen
            value = column.max()
        else:
            value = 0.0
        fills[name] = (rule, 0.0 if pd.isna(value) else float(value))
    draft = Transform(spec.features, fills, {}, np.zeros(len(spec.features)), np.ones(len(spec.features)))
    values = draft.filled(population).to_numpy()
    logs = {f: (_log_rule(f, values[:, i]) if spec.log1p else "none") for i, f in enumerate(spec.features)}
    logged = replace(draft, logs=logs).logged(population)
    if spec.scaling == "standard":
        center, scale = logged.mean(axis=0), logged.std(axis=0)
    elif spec.scaling == "robust":
        center = np.median(logged, axis=0)
        q75, q25 = np.percentile(logged, [75, 25], axis=0)
        # A mostly-zero feature (the share of a rare asset class) has an IQR of 0: its std scales it.
        scale = np.where(q75 - q25 > 0, q75 - q25, logged.std(axis=0))
    else:
        center, scale = np.zeros(logged.shape[1]), np.ones(logged.shape[1])
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant feature stays 0 instead of dividing by 0
    transform = Transform(spec.features, fills, logs, center, scale)
    if spec.pca_components:
        pca = PCA(n_components=spec.pca_components, svd_solver="full").fit((logged - center) / scale)
        transform = replace(transform, pca_mean=pca.mean_, pca_components=pca.components_)
    return transform


# ---------------------------------------------------------------------------------------------
# Fitting


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row positions of a random sample of ``size`` of ``n`` rows (all when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _default_min_cluster_size(n: int) -> int:
    return max(10, round(0.01 * n))


@dataclass
class _Fit:
    """One fitted algorithm: raw labels of the rows it was fitted on, and how to label any rows."""

    algorithm: str
    labels: np.ndarray
    centroids: np.ndarray  # (clusters, d), row i for raw label i
    weights: np.ndarray | None = None
    covariances: np.ndarray | None = None
    radius: np.ndarray | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _predict(self.algorithm, x, self.centroids, self.weights, self.covariances, self.radius)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centroid, distance to it) per row."""
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, without an (n, k, d) array.
    d2 = (x * x).sum(axis=1)[:, None] - 2 * x @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
    nearest = d2.argmin(axis=1)
    return nearest, np.sqrt(np.maximum(d2[np.arange(len(x)), nearest], 0))


def _gmm_log_prob(x: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """log(weight_j) + log N(x; mean_j, cov_j) per row and component (full covariances)."""
    n, d = x.shape
    out = np.empty((n, len(weights)))
    for j, (w, mu, cov) in enumerate(zip(weights, means, covariances, strict=True)):
        chol = np.linalg.cholesky(cov)
        z = solve_triangular(chol, (x - mu).T, lower=True)
        log_det = 2 * np.log(np.diag(chol)).sum()
        out[:, j] = math.log(w) - 0.5 * (d * math.log(2 * math.pi) + log_det + (z * z).sum(axis=0))
    return out


def _predict(algorithm: str, x: np.ndarray, centroids: np.ndarray, weights: np.ndarray | None,
             covariances: np.ndarray | None, radius: np.ndarray | None) -> np.ndarray:
    if len(x) == 0 or len(centroids) == 0:
        return np.full(len(x), NOISE, dtype=int)
    if algorithm == "gmm":
        return _gmm_log_prob(x, weights, centroids, covariances).argmax(axis=1)
    nearest, distance = _nearest(x, centroids)
    if algorithm == "hdbscan":
        return np.where(distance <= radius[nearest], nearest, NOISE)
    return nearest


def _fit(x: np.ndarray, algorithm: str, k: int, seed: int, min_cluster_size: int | None = None, *,
         quick: int = 0) -> _Fit:
    """Fit ``algorithm`` on ``x`` (all rows for k-means; a sample past FIT_SAMPLE_ROWS otherwise).
    ``quick`` (diagnostics): k-means initialisations instead of 4 (the mixture: 1 instead of 2)."""
    n = len(x)
    if algorithm == "kmeans":
        if n > MINIBATCH_ROWS:
            model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=seed).fit(x)
        else:
            model = KMeans(n_clusters=k, n_init=quick or 4, random_state=seed).fit(x)
        centroids = model.cluster_centers_
        return _Fit("kmeans", _nearest(x, centroids)[0], centroids)
    rows = _sample(n, FIT_SAMPLE_ROWS[algorithm], seed)
    fitted_on = x[rows]
    if algorithm == "gmm":
        gm = GaussianMixture(n_components=k, covariance_type="full", n_init=1 if quick else 2, reg_covar=1e-4,
                             max_iter=100 if quick else 200,
                             random_state=seed).fit(fitted_on)
        fit = _Fit("gmm", np.empty(0, dtype=int), gm.means_, gm.weights_, gm.covariances_)
        fit.labels = fit.predict(x)
        return fit
    size = min_cluster_size or _default_min_cluster_size(len(fitted_on))
    sample_labels = HDBSCAN(min_cluster_size=int(min(size, max(2, len(fitted_on)))), copy=True).fit(fitted_on).labels_
    found = sorted(set(sample_labels.tolist()) - {NOISE})
    centroids = np.array([fitted_on[sample_labels == c].mean(axis=0) for c in found]).reshape(len(found), x.shape[1])
    radius = np.array([np.quantile(np.linalg.norm(fitted_on[sample_labels == c] - centroids[i], axis=1),
                                   HDBSCAN_RADIUS_QUANTILE) for i, c in enumerate(found)])
    relabel = {c: i for i, c in enumerate(found)}
    fit = _Fit("hdbscan", np.empty(0, dtype=int), centroids, radius=radius)
    labels = fit.predict(x)
    labels[rows] = [relabel.get(c, NOISE) for c in sample_labels]  # the fitted rows keep HDBSCAN's own labels
    fit.labels = labels
    return fit


# ---------------------------------------------------------------------------------------------
# The stored model


@dataclass(frozen=True)
class ClusterModel:
    """Everything needed to assign traders to the clusters of a run without refitting it.

    ``clusters[i]`` is the stable id of ``centroids[i]`` (and of ``weights[i]``/``covariances[i]``
    for the mixture, ``radius[i]`` for HDBSCAN); ``next_id`` is the first id never used in this run's
    lineage, for clusters a later refit finds new.
    """

    algorithm: str
    transform: Transform
    clusters: tuple[int, ...]
    centroids: np.ndarray
    weights: np.ndarray | None = None
    covariances: np.ndarray | None = None
    radius: np.ndarray | None = None
    next_id: int = 1

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """Each trader of ``frame`` (a snapshot frame, indexed by trader id) assigned to a cluster id (-1: noise)."""
        x = self.transform.apply(frame)
        with threadpool_limits(limits=1):
            raw = _predict(self.algorithm, x, self.centroids, self.weights, self.covariances, self.radius)
        ids = np.asarray(self.clusters, dtype=int)
        out = np.where(raw >= 0, ids[np.clip(raw, 0, max(len(ids) - 1, 0))] if len(ids) else NOISE, NOISE)
        return pd.Series(out.astype(int), index=frame.index, name="cluster")

    def to_json(self) -> dict[str, Any]:
        def listed(a: np.ndarray | None) -> list | None:
            return None if a is None else a.tolist()

        return {"version": MODEL_VERSION, "algorithm": self.algorithm, "transform": self.transform.to_json(),
                "clusters": list(self.clusters), "centroids": self.centroids.tolist(),
                "weights": listed(self.weights), "covariances": listed(self.covariances),
                "radius": listed(self.radius), "next_id": self.next_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterModel:
        def array(key: str) -> np.ndarray | None:
            return None if data.get(key) is None else np.asarray(data[key], float)

        d = len(data["transform"]["features"]) if data["transform"].get("pca_components") is None \
            else len(data["transform"]["pca_components"])
        return cls(algorithm=data["algorithm"], transform=Transform.from_json(data["transform"]),
                   clusters=tuple(int(c) for c in data["clusters"]),
                   centroids=np.asarray(data["centroids"], float).reshape(len(data["clusters"]), d),
                   weights=array("weights"), covariances=array("covariances"), radius=array("radius"),
                   next_id=int(data["next_id"]))


# ---------------------------------------------------------------------------------------------
# Stable ids


@dataclass(frozen=True)
class PreviousRun:
    """What a refit matches its clusters to: a run's assignments and model (and its names)."""

    run_id: int | None
    assignments: pd.Series  # trader_id -> cluster id
    model: ClusterModel | None
    names: dict[int, str] = field(default_factory=dict)


def match_clusters(labels: pd.Series, previous: pd.Series, *, min_jaccard: float = MATCH_MIN_JACCARD
                   ) -> dict[int, int]:
    """Pairs {new raw label: previous cluster id} of the best one-to-one matching by member overlap.

    ``labels`` and ``previous`` are Series trader_id -> label; noise (-1) on either side is left out.
    The overlap of two clusters is their Jaccard index over the traders both runs labelled; the
    Hungarian algorithm maximises its sum, and pairs below ``min_jaccard`` are not matches.
    """
    common = labels.index.intersection(previous.index)
    a, b = labels.loc[common].to_numpy(), previous.loc[common].to_numpy()
    keep = (a != NOISE) & (b != NOISE)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return {}
    new_ids, a_idx = np.unique(a, return_inverse=True)
    old_ids, b_idx = np.unique(b, return_inverse=True)
    overlap = np.zeros((len(new_ids), len(old_ids)))
    np.add.at(overlap, (a_idx, b_idx), 1)
    union = overlap.sum(axis=1)[:, None] + overlap.sum(axis=0)[None, :] - overlap
    jaccard = overlap / np.where(union > 0, union, 1)
    rows, cols = linear_sum_assignment(-jaccard)
    return {int(new_ids[r]): int(old_ids[c]) for r, c in zip(rows, cols, strict=True) if jaccard[r, c] >= min_jaccard}


def _stable_ids(raw: pd.Series, population: pd.DataFrame, previous: PreviousRun | None
                ) -> tuple[dict[int, int], dict[int, int], int]:
    """({raw label: stable id}, {stable id: previous id it continues}, next free id)."""
    found = [int(c) for c in raw.value_counts().index if c != NOISE]  # by size, largest first
    sizes = raw.value_counts()
    found.sort(key=lambda c: (-sizes[c], c))
    if previous is None:
        return {c: i + 1 for i, c in enumerate(found)}, {}, len(found) + 1
    known = previous.assignments
    if previous.model is not None:
        unseen = population.index.difference(known.index)
        if len(unseen):
            # Traders the previous run did not see: where its model would put them (unless it used
            # features this snapshot lacks: then members only).
            with contextlib.suppress(ClusteringRejected):
                known = pd.concat([known, previous.model.assign(population.loc[unseen])])
    matches = match_clusters(raw, known)
    fresh = max([previous.model.next_id if previous.model else 1, *(int(c) + 1 for c in known.unique())])
    ids: dict[int, int] = {}
    for c in found:
        if c in matches:
            ids[c] = matches[c]
        else:
            ids[c] = fresh
            fresh += 1
    return ids, {ids[c]: matches[c] for c in found if c in matches}, fresh


# ---------------------------------------------------------------------------------------------
# Profiles and names


# Words for a feature far from the population: (feature, +1 above / -1 below) -> (slot, concept, words).
# A name is "<quality> <quality> <asset> <kind>", filled from the most distinctive features first.
_WORDS: dict[tuple[str, int], tuple[str, str, str]] = {}


def _words(slot: str, concept: str, up: str | None, down: str | None, *names: str) -> None:
    for name in names:
        if up:
            _WORDS[(name, 1)] = (slot, concept, up)
        if down:
            _WORDS[(name, -1)] = (slot, concept, down)


_words("quality", "frequency", "high-frequency", "low-frequency", "trades_per_week", "trades_total", "trades_7d",
       "trades_30d", "trades_90d")
_words("quality", "volume", "high-volume", "small-volume", "lots_per_week", "notional_per_week", "lots_7d", "lots_30d",
       "lots_90d", "notional_7d", "notional_30d", "notional_90d")
_words("kind", "deposits", "frequent depositors", None, "deposits_per_month", "deposits_count")
_words("kind", "money", "big depositors", "small depositors", "deposits_usd", "avg_deposit_usd", "net_deposits_usd")
_words("kind", "withdrawals", "frequent withdrawers", None, "withdrawals_per_month", "withdrawals_count",
       "withdrawals_usd")
_words("kind", "bonus", "bonus hunters", None, "bonus_share")
_words("quality", "declined", "payment-declined", None, "declined_deposits")
_words("quality", "profit", "profitable", "losing", "realised_pnl_usd", "pnl_to_deposits", "win_rate")
_words("kind", "holding", "position holders", "scalpers", "median_hold_s")
_words("kind", "holding", "scalpers", None, "share_hold_under_60s")
_words("asset", "asset", "FX", None, "share_fx")
_words("asset", "asset", "crypto", None, "share_crypto")
_words("asset", "asset", "index", None, "share_indices")
_words("asset", "asset", "commodity", None, "share_commodities")
_words("asset", "asset", "stock", None, "share_stocks")
_words("quality", "leverage", "high-leverage", "low-leverage", "avg_leverage_used", "account_leverage")
_words("quality", "diversity", "diversified", "single-instrument", "symbols_traded")
_words("kind", "automation", "algo traders", None, "share_expert_trades")
_words("quality", "engagement", "highly engaged", "rarely logged-in", "sessions_per_week", "portal_events_30d")
_words("quality", "session", "long-session", None, "avg_session_min")
_words("quality", "mobile", "mobile", "desktop", "share_mobile_sessions")
_words("quality", "recency", "dormant", "recently active", "days_since_last_trade", "days_since_last_deposit",
       "days_since_last_login")
_words("quality", "tenure", "long-standing", "new", "tenure_days")
_words("quality", "trend", "growing", "fading", "trades_trend", "sessions_trend")
_words("quality", "kyc", None, "unverified", "kyc_approved")

NAME_MIN_Z = 0.5
NAME_MAX_WORDS = 3
TOP_FEATURES = 3


def auto_name(z: Mapping[str, float]) -> str:
    """A readable name from a cluster's z-scores ({feature: z}): the words of its most distinctive
    features (|z| >= NAME_MIN_Z), at most three of them: up to two qualities, one asset class and one
    kind of trader, e.g. "High-frequency FX scalpers" or "Dormant small depositors"."""
    qualities: list[str] = []
    asset = kind = None
    concepts: set[str] = set()
    for name, value in sorted(z.items(), key=lambda item: -abs(item[1])):
        if not np.isfinite(value) or abs(value) < NAME_MIN_Z or len(concepts) == NAME_MAX_WORDS:
            break
        entry = _WORDS.get((name, 1 if value > 0 else -1))
        if entry is None or entry[1] in concepts:
            continue
        slot, concept, word = entry
        if slot == "quality" and len(qualities) < 2:
            qualities.append(word)
        elif slot == "asset" and asset is None:
            asset = word
        elif slot == "kind" and kind is None:
            kind = word
        else:
            continue
        concepts.add(concept)
    if not qualities and asset is None and kind is None:
        ranked = sorted(((n, v) for n, v in z.items() if np.isfinite(v)), key=lambda item: -abs(item[1]))
        if not ranked or abs(ranked[0][1]) < NAME_MIN_Z:
            return "Typical traders"
        name, value = ranked[0]
        return f"Traders with {'high' if value > 0 else 'low'} {FEATURES_BY_NAME[name].label.lower()}"
    words = [*qualities, *([asset] if asset else []), kind or "traders"]
    text = " ".join(words)
    return text[0].upper() + text[1:]


def _unique_names(names: dict[int, str]) -> dict[int, str]:
    """Numbered where two clusters got the same name ("Dormant small depositors 2")."""
    seen: dict[str, int] = {}
    out = {}
    for cluster in sorted(names):
        base = names[cluster]
        seen[base] = seen.get(base, 0) + 1
        out[cluster] = base if seen[base] == 1 else f"{base} {seen[base]}"
    return out


def compute_profiles(population: pd.DataFrame, labels: pd.Series, transform: Transform) -> pd.DataFrame:
    """Each cluster's feature means against the population.

    One row per cluster and feature: cluster, feature, label, unit, mean (raw units, missing values
    filled), population_mean, z (the cluster's mean after the log transform minus the population's,
    in population standard deviations of the transformed feature).
    """
    filled = transform.filled(population)
    logged = pd.DataFrame(transform.logged(population), index=population.index, columns=list(transform.features))
    pop_mean, pop_log_mean = filled.mean(), logged.mean()
    pop_log_std = logged.std(ddof=0).replace(0, np.nan)
    rows = []
    groups = labels.reindex(population.index)
    raw_means = filled.groupby(groups).mean()
    log_means = logged.groupby(groups).mean()
    for cluster in raw_means.index:
        z = (log_means.loc[cluster] - pop_log_mean) / pop_log_std
        for name in transform.features:
            feature = FEATURES_BY_NAME[name]
            rows.append((int(cluster), name, feature.label, feature.unit, float(raw_means.loc[cluster, name]),
                         float(pop_mean[name]), float(z[name]) if pd.notna(z[name]) else 0.0))
    return pd.DataFrame(rows, columns=["cluster", "feature", "label", "unit", "mean", "population_mean", "z"])


def _cluster_table(labels: pd.Series, profiles: pd.DataFrame, continues: Mapping[int, int],
                   names: Mapping[int, str]) -> pd.DataFrame:
    """cluster, name, auto_name, size, share, top_features (list of "label ±z"), previous (id continued or None)."""
    sizes = labels.value_counts()
    total = len(labels)
    auto: dict[int, str] = {}
    tops: dict[int, list[dict[str, Any]]] = {}
    for cluster, part in profiles.groupby("cluster"):
        z = dict(zip(part["feature"], part["z"], strict=True))
        auto[int(cluster)] = "Noise (no cluster)" if cluster == NOISE else auto_name(z)
        ranked = part.reindex(part["z"].abs().sort_values(ascending=False).index).head(TOP_FEATURES)
        tops[int(cluster)] = [{"feature": f, "label": lab, "z": round(float(v), 2)}
                              for f, lab, v in zip(ranked["feature"], ranked["label"], ranked["z"], strict=True)]
    auto = {**_unique_names({c: n for c, n in auto.items() if c != NOISE}),
            **({NOISE: auto[NOISE]} if NOISE in auto else {})}
    rows = []
    for cluster in sorted(auto, key=lambda c: (c == NOISE, c)):
        rows.append({"cluster": cluster, "name": names.get(cluster, auto[cluster]), "auto_name": auto[cluster],
                     "size": int(sizes.get(cluster, 0)),
                     "share": float(sizes.get(cluster, 0)) / total if total else 0.0,
                     "top_features": tops.get(cluster, []), "previous": continues.get(cluster)})
    frame = pd.DataFrame(rows, columns=["cluster", "name", "auto_name", "size", "share", "top_features", "previous"])
    return frame.astype({"previous": "Int64"})


def describe_top(top_features: Sequence[Mapping[str, Any]]) -> str:
    """"Label +1.8σ, Label −1.2σ" from a cluster's top features."""
    return ", ".join(f"{t['label']} {t['z']:+.1f}σ".replace("-", "−") for t in top_features)


# ---------------------------------------------------------------------------------------------
# The clustering


@dataclass(frozen=True)
class Clustering:
    """One fitted clustering of a snapshot.

    ``labels``: Series trader_id -> stable cluster id (-1 noise), the population in trader order.
    ``clusters``: see :func:`_cluster_table`; ``profiles``: see :func:`compute_profiles`.
    ``fitted_rows``: how many traders the algorithm was fitted on (the rest were assigned).
    ``previous_run_id``: the run whose ids this one continues (None: numbered afresh).
    """

    spec: ClusterSpec
    as_of: datetime
    population: Population
    labels: pd.Series
    model: ClusterModel
    clusters: pd.DataFrame
    profiles: pd.DataFrame
    fitted_rows: int
    previous_run_id: int | None = None

    @property
    def noise_share(self) -> float:
        return float((self.labels == NOISE).mean()) if len(self.labels) else 0.0

    def names(self) -> dict[int, str]:
        return dict(zip(self.clusters["cluster"].astype(int), self.clusters["name"], strict=True))

    def with_names(self, names: Mapping[int, str]) -> Clustering:
        """The same clustering with some clusters renamed (blank names keep the automatic one)."""
        return replace(self, clusters=_renamed(self.clusters, names))


def _renamed(clusters: pd.DataFrame, names: Mapping[int, str]) -> pd.DataFrame:
    out = clusters.copy()
    for i, cluster in enumerate(out["cluster"]):
        new = str(names.get(int(cluster), "") or "").strip()
        if new:
            if len(new) > 80:
                raise ClusteringRejected(f"Cluster {cluster}'s name is longer than 80 characters.")
            out.loc[out.index[i], "name"] = new
    return out


def _population_of(snapshot: FeatureSnapshot, spec: ClusterSpec) -> tuple[pd.DataFrame, Population]:
    spec.check()
    frame = snapshot.frame
    population = select_population(frame, spec.population)
    info = Population(spec.population, len(frame), len(population))
    smallest = max(spec.k if spec.algorithm != "hdbscan" else 2, 2) * 2
    if len(population) < smallest:
        raise ClusteringRejected(
            f"Only {len(population)} trader(s) in the population ({POPULATIONS[spec.population]}); "
            f"at least {smallest} are needed for {spec.describe()}.")
    return population, info


@_one_thread
def fit_clustering(snapshot: FeatureSnapshot, spec: ClusterSpec = ClusterSpec(), *,
                   previous: PreviousRun | None = None) -> Clustering:
    """Cluster the snapshot's population as ``spec`` says; ids continue ``previous``'s when given."""
    population, info = _population_of(snapshot, spec)
    transform = fit_transform(population, spec)
    x = transform.apply(population)
    k = min(spec.k, len(population))
    fit = _fit(x, spec.algorithm, k, spec.seed, spec.min_cluster_size)
    raw = pd.Series(fit.labels, index=population.index)
    ids, continues, next_free = _stable_ids(raw, population, previous)
    order = sorted(ids, key=lambda c: ids[c])
    model = ClusterModel(
        algorithm=spec.algorithm, transform=transform, clusters=tuple(ids[c] for c in order),
        centroids=fit.centroids[order] if order else np.zeros((0, x.shape[1])),
        weights=None if fit.weights is None else fit.weights[order] / fit.weights[order].sum(),
        covariances=None if fit.covariances is None else fit.covariances[order],
        radius=None if fit.radius is None else fit.radius[order], next_id=next_free)
    labels = raw.map(lambda c: ids.get(int(c), NOISE)).astype(int).rename("cluster")
    profiles = compute_profiles(population, labels, transform)
    names = {c: previous.names[p] for c, p in continues.items() if previous and p in previous.names}
    clusters = _cluster_table(labels, profiles, continues, names)
    fitted = len(x) if spec.algorithm == "kmeans" else min(len(x), FIT_SAMPLE_ROWS[spec.algorithm])
    return Clustering(spec, snapshot.as_of, info, labels, model, clusters, profiles, fitted,
                      previous.run_id if previous else None)


# ---------------------------------------------------------------------------------------------
# Diagnostics


@dataclass(frozen=True)
class Diagnostics:
    """Quality of the clustering across k (HDBSCAN: across minimum cluster sizes).

    ``frame``: k, min_cluster_size (HDBSCAN, else NaN), silhouette, calinski_harabasz, davies_bouldin,
    bic (mixture only, else NaN), stability (mean ARI between bootstrap refits), noise_share.
    Silhouette is computed on ``silhouette_rows`` traders, everything else on ``sample_rows``.
    """

    algorithm: str
    frame: pd.DataFrame
    sample_rows: int
    population_rows: int
    silhouette_rows: int
    bootstraps: int

    def suggested_k(self) -> int | None:
        """The k the measures agree on: among the settings with a stability of at least 0.8 (else all),
        the best sum of ranks by silhouette (high), Calinski-Harabasz (high) and Davies-Bouldin (low);
        ties go to the more stable, then the smaller k. One index alone is easily swayed (on the demo,
        k = 8 beats k = 6 by 0.011 of silhouette while Calinski-Harabasz and Davies-Bouldin pick 6)."""
        f = self.frame.dropna(subset=["silhouette", "calinski_harabasz", "davies_bouldin"])
        if f.empty:
            return None
        stable = f[f["stability"] >= 0.8]
        pool = stable if not stable.empty else f
        ranks = (pool["silhouette"].rank(ascending=False) + pool["calinski_harabasz"].rank(ascending=False)
                 + pool["davies_bouldin"].rank(ascending=True))
        best = pool.assign(_rank=ranks).sort_values(["_rank", "stability", "k"], ascending=[True, False, True])
        return int(best.iloc[0]["k"])

    def to_json(self) -> dict[str, Any]:
        frame = self.frame.astype(object).where(self.frame.notna(), None)
        return {"algorithm": self.algorithm, "sample_rows": self.sample_rows,
                "population_rows": self.population_rows, "silhouette_rows": self.silhouette_rows,
                "bootstraps": self.bootstraps, "rows": frame.to_dict(orient="records")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnostics:
        frame = pd.DataFrame(data["rows"], columns=DIAGNOSTIC_COLUMNS).astype(float)
        return cls(data["algorithm"], frame, int(data["sample_rows"]), int(data["population_rows"]),
                   int(data["silhouette_rows"]), int(data["bootstraps"]))


DIAGNOSTIC_COLUMNS = ["k", "min_cluster_size", "silhouette", "calinski_harabasz", "davies_bouldin", "bic",
                      "stability", "noise_share"]


def _distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between every pair of rows of ``x``."""
    squares = (x * x).sum(axis=1)
    d2 = squares[:, None] + squares[None, :] - 2 * x @ x.T
    np.fill_diagonal(d2, 0)
    return np.sqrt(np.maximum(d2, 0))


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """The mean silhouette coefficient (as sklearn's silhouette_score) from precomputed distances: the
    silhouette sample's distances are computed once and serve every k, where sklearn's function
    computes them again for each (1.3 of the 3.2 s of the demo's diagnostics)."""
    ids, inverse = np.unique(labels, return_inverse=True)
    n = len(labels)
    if len(ids) < 2 or n < 3:
        return math.nan
    onehot = np.zeros((n, len(ids)))
    onehot[np.arange(n), inverse] = 1
    sums = distances @ onehot  # each row's total distance to each cluster
    counts = onehot.sum(axis=0)
    own = counts[inverse]
    a = sums[np.arange(n), inverse] / np.maximum(own - 1, 1)
    others = sums / counts
    others[np.arange(n), inverse] = np.inf
    b = others.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.where(own > 1, np.nan_to_num(s), 0.0)  # a trader alone in its cluster scores 0
    return float(s.mean())


def _scores(x: np.ndarray, labels: np.ndarray, silhouette_rows: np.ndarray, distances: np.ndarray
            ) -> tuple[float, float, float, int]:
    """(silhouette on the sample ``silhouette_rows`` whose ``distances`` are given, Calinski-Harabasz,
    Davies-Bouldin, silhouette rows used), noise left out."""
    keep = labels != NOISE
    if len(np.unique(labels[keep])) < 2:
        return math.nan, math.nan, math.nan, 0
    sampled = labels[silhouette_rows]
    kept = sampled != NOISE
    sil = silhouette(distances[np.ix_(kept, kept)] if not kept.all() else distances, sampled[kept])
    return (sil, float(calinski_harabasz_score(x[keep], labels[keep])),
            float(davies_bouldin_score(x[keep], labels[keep])), int(kept.sum()))


def _bic(x: np.ndarray, fit: _Fit) -> float:
    """Bayesian information criterion of a fitted mixture on ``x`` (lower is better)."""
    log_prob = _gmm_log_prob(x, fit.weights, fit.centroids, fit.covariances)
    top = log_prob.max(axis=1, keepdims=True)
    log_likelihood = float((top[:, 0] + np.log(np.exp(log_prob - top).sum(axis=1))).sum())
    k, d = fit.centroids.shape
    parameters = (k - 1) + k * d + k * d * (d + 1) / 2
    return -2 * log_likelihood + parameters * math.log(len(x))


def _stability(x: np.ndarray, algorithm: str, k: int, seed: int, bootstraps: int,
               min_cluster_size: int | None) -> float:
    """Mean ARI between pairs of refits on bootstrap samples (HDBSCAN: 80% sub-samples, its minimum
    cluster size scaled alike), each labelling all of ``x``."""
    rng = np.random.default_rng(seed + 7919)
    labelings = []
    for b in range(bootstraps):
        if algorithm == "hdbscan":
            rows = np.sort(rng.choice(len(x), size=int(0.8 * len(x)), replace=False))
            size = None if min_cluster_size is None else max(2, round(0.8 * min_cluster_size))
        else:
            rows, size = rng.integers(0, len(x), size=len(x)), min_cluster_size
        # Two k-means++ starts per refit, as the fit at each k: with one, k-means lands in a poor local
        # optimum often enough to read a stable k as unstable (k = 6 on 200,000 traders: 0.72 vs 0.99).
        labelings.append(_fit(x[rows], algorithm, k, seed + 1 + b, size, quick=2).predict(x))
    pairs = [adjusted_rand_score(a, b) for a, b in combinations(labelings, 2)]
    return float(np.mean(pairs)) if pairs else math.nan


@_one_thread
def compute_diagnostics(snapshot: FeatureSnapshot, spec: ClusterSpec = ClusterSpec(), *,
                        k_values: Sequence[int] = DEFAULT_K_RANGE, bootstraps: int = BOOTSTRAPS) -> Diagnostics:
    """Silhouette, Calinski-Harabasz, Davies-Bouldin, BIC (mixture) and bootstrap stability for each
    k of ``k_values`` (HDBSCAN: for minimum cluster sizes of 0.5%, 1%, 2% and 5% of the sample), on
    a sample of the population (DIAGNOSTIC_ROWS), transformed as ``spec`` says."""
    population, _ = _population_of(snapshot, spec)
    transform = fit_transform(population, spec)
    x_all = transform.apply(population)
    x = x_all[_sample(len(x_all), DIAGNOSTIC_ROWS[spec.algorithm], spec.seed)]
    rows = []
    silhouette_rows = 0
    sample = _sample(len(x), SILHOUETTE_ROWS, spec.seed + 1)
    distances = _distances(x[sample])
    if spec.algorithm == "hdbscan":
        sizes = sorted({max(5, round(share * len(x))) for share in (0.005, 0.01, 0.02, 0.05)})
        settings = [(0, size) for size in sizes]
    else:
        settings = [(k, None) for k in sorted({int(k) for k in k_values}) if MIN_K <= k <= min(MAX_K, len(x) - 1)]
    for k, size in settings:
        fit = _fit(x, spec.algorithm, k, spec.seed, size, quick=2)
        sil, ch, db, silhouette_rows_k = _scores(x, fit.labels, sample, distances)
        silhouette_rows = max(silhouette_rows, silhouette_rows_k)
        bic = math.nan
        if spec.algorithm == "gmm":
            bic = _bic(x, fit)
        found = len(set(fit.labels.tolist()) - {NOISE})
        stability = _stability(x, spec.algorithm, k, spec.seed, bootstraps, size)
        rows.append({"k": found if spec.algorithm == "hdbscan" else k,
                     "min_cluster_size": size if size is not None else math.nan, "silhouette": sil,
                     "calinski_harabasz": ch, "davies_bouldin": db, "bic": bic, "stability": stability,
                     "noise_share": float((fit.labels == NOISE).mean())})
    frame = pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS).astype(float)
    return Diagnostics(spec.algorithm, frame, len(x), len(x_all), silhouette_rows, bootstraps)


# ---------------------------------------------------------------------------------------------
# The 2-D picture


@dataclass(frozen=True)
class Projection:
    """A 2-D PCA of the clustering space: ``frame`` (trader_id, x, y, cluster) for ``shown`` of the
    ``total`` traders (a random sample past PROJECTION_ROWS, every cluster kept), and the share of
    the variance each axis explains."""

    frame: pd.DataFrame
    total: int
    shown: int
    explained: tuple[float, float]

    @property
    def sampled(self) -> bool:
        return self.shown < self.total


@_one_thread
def compute_projection(snapshot: FeatureSnapshot, clustering: Clustering, *,
                       max_points: int = PROJECTION_ROWS) -> Projection:
    """The population in the plane of the clustering space's two main components, coloured by cluster."""
    known = clustering.labels[clustering.labels.index.isin(snapshot.frame.index)]  # the snapshot's traders only
    population = snapshot.frame.loc[known.index]
    x = clustering.model.transform.apply(population)
    labels = known.to_numpy()
    rows = _sample(len(x), max_points, clustering.spec.seed + 3)
    if len(rows) < len(x):
        # Every cluster shows, however small: up to 30 of its members beyond the random sample.
        rng = np.random.default_rng(clustering.spec.seed + 5)
        extra = [rng.choice(np.flatnonzero(labels == c), size=min(30, int((labels == c).sum())), replace=False)
                 for c in np.unique(labels)]
        rows = np.unique(np.concatenate([rows, *extra]))
    fit_rows = _sample(len(x), DIAGNOSTIC_ROWS["kmeans"], clustering.spec.seed)
    components = min(2, x.shape[1])
    pca = PCA(n_components=components, svd_solver="full").fit(x[fit_rows])
    xy = pca.transform(x[rows])
    if components == 1:
        xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
    explained = (*pca.explained_variance_ratio_.tolist(), 0.0)[:2]
    frame = pd.DataFrame({"trader_id": population.index.to_numpy()[rows], "x": xy[:, 0], "y": xy[:, 1],
                          "cluster": labels[rows]})
    return Projection(frame, len(x), len(rows), (float(explained[0]), float(explained[1])))


# ---------------------------------------------------------------------------------------------
# KYC and demographics against behaviour

KYC_FIELDS: dict[str, str] = {
    "country": "Country", "language": "Language", "acquisition_channel": "Acquisition channel",
    "campaign_source": "Campaign source", "affiliate": "Affiliate (IB)", "vip_tier": "VIP tier",
    KYC_STATE: "KYC state", "platform": "Platform", "currency": "Account currency",
}
# Affiliates beyond the most frequent ones are grouped as one "other" category.
_TOP_AFFILIATES = 30


def load_kyc_fields(engine: Engine, as_of: datetime) -> pd.DataFrame:
    """KYC and demographic fields of every trader registered before ``as_of``, indexed by trader_id:
    country, language, acquisition_channel, campaign_source, affiliate, vip_tier, platform and currency
    (of the trader's first account opened before ``as_of``); missing values as "unknown"."""
    first_account = (sa.select(accounts.c.trader_id, accounts.c.platform, accounts.c.currency,
                               sa.func.row_number().over(partition_by=accounts.c.trader_id,
                                                         order_by=(accounts.c.opened_at, accounts.c.account_id))
                               .label("n"))
                     .where(accounts.c.opened_at < as_of).subquery())
    t = traders.c
    query = (sa.select(t.trader_id, t.country, t.language, t.acquisition_channel, t.campaign_source,
                       t.affiliate_id.label("affiliate"), t.vip_tier, first_account.c.platform,
                       first_account.c.currency)
             .select_from(traders.outerjoin(first_account, sa.and_(first_account.c.trader_id == t.trader_id,
                                                                   first_account.c.n == 1)))
             .where(t.registered_at < as_of))
    with reading(engine) as conn:
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame = frame.set_index("trader_id").sort_index()
    frame["vip_tier"] = frame["vip_tier"].fillna(STANDARD_TIER)
    frame["affiliate"] = frame["affiliate"].where(frame["affiliate"].isna(), "IB " + frame["affiliate"].astype(str))
    frame["affiliate"] = frame["affiliate"].fillna("none")
    return frame.astype(object).where(frame.notna(), "unknown").astype(str)


@dataclass(frozen=True)
class KycComparison:
    """How well each group of fields predicts a trader's cluster.

    ``frame``: group ("KYC & demographics" | "Behaviour"), fields (their labels, comma-separated),
    accuracy and accuracy_std (over the folds of a stratified cross-validation), baseline (always
    guessing the largest cluster of the training folds) and lift (accuracy - baseline).
    ``associations``: field, label, cramers_v (association of one KYC field with the cluster,
    0 = none, 1 = the field decides the cluster), categories. ``rows``: traders used (noise left out).
    """

    frame: pd.DataFrame
    associations: pd.DataFrame
    rows: int
    folds: int


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a, b).to_numpy(dtype=float)
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) @ table.sum(axis=0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum()
    return float(math.sqrt(chi2 / n / (min(table.shape) - 1)))


def _cv_accuracy(x: Any, y: np.ndarray, folds: int, seed: int) -> tuple[float, float, float]:
    """(mean accuracy, its std, mean majority-class baseline) of a logistic regression, stratified folds."""
    accuracy, baseline = [], []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = LogisticRegression(max_iter=300, tol=1e-3).fit(x[train], y[train])
        accuracy.append(float((model.predict(x[test]) == y[test]).mean()))
        values, counts = np.unique(y[train], return_counts=True)
        baseline.append(float((y[test] == values[counts.argmax()]).mean()))
    return float(np.mean(accuracy)), float(np.std(accuracy)), float(np.mean(baseline))


@_one_thread
def compare_kyc_behaviour(snapshot: FeatureSnapshot, clustering: Clustering, kyc: pd.DataFrame, *,
                          folds: int = 5, max_rows: int = 6_000) -> KycComparison:
    """Cross-validated accuracy of predicting the cluster from KYC/demographic fields (``kyc``, as
    :func:`load_kyc_fields` returns, plus the snapshot's KYC state) and from the behavioural features
    the clusters were built from, each against the majority-class baseline, on a sample of at most
    ``max_rows`` clustered traders."""
    labels = clustering.labels[(clustering.labels != NOISE) & clustering.labels.index.isin(snapshot.frame.index)]
    counts = labels.value_counts()
    labels = labels[labels.isin(counts[counts >= folds].index)]  # a cluster smaller than the folds cannot be stratified
    if labels.nunique() < 2:
        raise ClusteringRejected("Comparing KYC with behaviour needs at least two clusters of "
                                 f"{folds} or more traders.")
    ids = labels.index.to_numpy()[_sample(len(labels), max_rows, clustering.spec.seed + 11)]
    y = labels.loc[ids].to_numpy()
    fields = kyc.reindex(ids).fillna("unknown")
    fields[KYC_STATE] = snapshot.frame[KYC_STATE].reindex(ids).fillna("unknown").to_numpy()
    fields = fields[[f for f in KYC_FIELDS if f in fields.columns]].astype(str)
    x_kyc = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5).fit_transform(fields)
    x_behaviour = clustering.model.transform.apply(snapshot.frame.loc[ids])
    seed = clustering.spec.seed
    rows = []
    for group, x, names in (("KYC & demographics", x_kyc, [KYC_FIELDS[f] for f in fields.columns]),
                            ("Behaviour", x_behaviour,
                             [FEATURES_BY_NAME[f].label for f in clustering.model.transform.features])):
        accuracy, std, baseline = _cv_accuracy(x, y, folds, seed)
        rows.append({"group": group, "fields": ", ".join(names), "accuracy": accuracy, "accuracy_std": std,
                     "baseline": baseline, "lift": accuracy - baseline})
    associations = pd.DataFrame(
        [(f, KYC_FIELDS[f], _cramers_v(fields[f], pd.Series(y, index=fields.index)), int(fields[f].nunique()))
         for f in fields.columns], columns=["field", "label", "cramers_v", "categories"]
    ).sort_values("cramers_v", ascending=False, ignore_index=True)
    return KycComparison(pd.DataFrame(rows), associations, len(ids), folds)


def compute_kyc_comparison(engine: Engine, snapshot: FeatureSnapshot, clustering: Clustering, *,
                           folds: int = 5) -> KycComparison:
    """:func:`compare_kyc_behaviour` with the KYC fields read from the database."""
    return compare_kyc_behaviour(snapshot, clustering, load_kyc_fields(engine, snapshot.as_of), folds=folds)


# ---------------------------------------------------------------------------------------------
# Saved runs


@dataclass(frozen=True)
class SavedRun:
    """A saved clustering run (clustering_runs) with its clusters table (as :class:`Clustering`'s)."""

    run_id: int
    name: str
    created_at: datetime
    created_by: str
    as_of: datetime
    spec: ClusterSpec
    model: ClusterModel
    clusters: pd.DataFrame
    population: dict[str, Any]
    diagnostics: Diagnostics | None

    def names(self) -> dict[int, str]:
        return dict(zip(self.clusters["cluster"].astype(int), self.clusters["name"], strict=True))


def _clusters_json(clusters: pd.DataFrame) -> str:
    records = []
    for row in clusters.to_dict(orient="records"):
        records.append({"cluster": int(row["cluster"]), "name": str(row["name"]), "auto_name": str(row["auto_name"]),
                        "size": int(row["size"]), "share": round(float(row["share"]), 6),
                        "top_features": list(row["top_features"]),
                        "previous": None if pd.isna(row["previous"]) else int(row["previous"])})
    return json.dumps(records)


def _clusters_frame(text: str | None) -> pd.DataFrame:
    records = json.loads(text or "[]")
    frame = pd.DataFrame(records, columns=["cluster", "name", "auto_name", "size", "share", "top_features",
                                           "previous"])
    return frame.astype({"cluster": "int64", "size": "int64", "share": "float64", "previous": "Int64"})


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def save_clustering(write_engine: Engine, clustering: Clustering, *, name: str, created_by: str = "app",
                    diagnostics: Diagnostics | None = None, now: datetime | None = None) -> int:
    """Save the run and every trader's cluster in one transaction; returns the new run_id."""
    name = (name or "").strip()
    if not name:
        raise ClusteringRejected("Give the clustering a name.")
    if len(name) > 120:
        raise ClusteringRejected("A clustering's name is at most 120 characters.")
    row = {"name": name, "created_at": now or _now(), "created_by": (created_by or "app")[:80],
           "as_of": clustering.as_of, "algorithm": clustering.spec.algorithm,
           "k": len(clustering.model.clusters), "seed": int(clustering.spec.seed),
           "features": json.dumps(list(clustering.spec.features)),
           "settings": json.dumps({"spec": clustering.spec.settings(),
                                   "population": {"rule": clustering.population.rule,
                                                  "registered": clustering.population.registered,
                                                  "included": clustering.population.included},
                                   "fitted_rows": clustering.fitted_rows,
                                   "previous_run_id": clustering.previous_run_id}),
           "model": json.dumps(clustering.model.to_json()), "clusters": _clusters_json(clustering.clusters),
           "diagnostics": None if diagnostics is None else json.dumps(diagnostics.to_json())}
    members = pd.DataFrame({"trader_id": clustering.labels.index.to_numpy(dtype="int64"),
                            "cluster": clustering.labels.to_numpy(dtype="int64")})
    with writing(write_engine, lock="traderlens.clustering_runs") as conn:
        run_id = next_id(conn, clustering_runs)
        conn.execute(clustering_runs.insert().values(run_id=run_id, **row))
        bulk_insert(conn, cluster_assignments, members.assign(run_id=run_id)[["run_id", "trader_id", "cluster"]])
    return run_id


RUN_COLUMNS = ["run_id", "name", "created_at", "created_by", "as_of", "algorithm", "k", "seed", "traders"]


def list_runs(engine: Engine) -> pd.DataFrame:
    """Saved runs, newest first: run_id, name, created_at, created_by, as_of, algorithm, k (clusters
    found), seed, traders (assigned)."""
    r = clustering_runs.c
    counts = (sa.select(cluster_assignments.c.run_id, sa.func.count().label("traders"))
              .group_by(cluster_assignments.c.run_id).subquery())
    query = (sa.select(r.run_id, r.name, r.created_at, r.created_by, r.as_of, r.algorithm, r.k, r.seed,
                       sa.func.coalesce(counts.c.traders, 0).label("traders"))
             .select_from(clustering_runs.outerjoin(counts, counts.c.run_id == r.run_id))
             .order_by(r.created_at.desc(), r.run_id.desc()))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RUN_COLUMNS)


def load_run(engine: Engine, run_id: int) -> SavedRun:
    """The saved run ``run_id``; ClusteringRejected when there is none."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(clustering_runs).where(clustering_runs.c.run_id == int(run_id))).mappings().first()
    if row is None:
        raise ClusteringRejected(f"There is no saved clustering run {run_id}.")
    settings = json.loads(row["settings"] or "{}")
    diagnostics = Diagnostics.from_json(json.loads(row["diagnostics"])) if row["diagnostics"] else None
    return SavedRun(int(row["run_id"]), row["name"], row["created_at"], row["created_by"], row["as_of"],
                    ClusterSpec.from_settings(settings.get("spec", {})),
                    ClusterModel.from_json(json.loads(row["model"])),
                    _clusters_frame(row["clusters"]), settings.get("population", {}), diagnostics)


def latest_run_id(engine: Engine) -> int | None:
    """The newest saved run's id, None when none is saved."""
    runs = list_runs(engine)
    return None if runs.empty else int(runs.iloc[0]["run_id"])


def load_assignments(engine: Engine, run_id: int) -> pd.Series:
    """Series trader_id -> cluster of a saved run (trader order)."""
    a = cluster_assignments.c
    with reading(engine) as conn:
        rows = conn.execute(sa.select(a.trader_id, a.cluster).where(a.run_id == int(run_id))
                            .order_by(a.trader_id)).all()
    return pd.Series([int(r[1]) for r in rows], index=pd.Index([int(r[0]) for r in rows], name="trader_id"),
                     name="cluster", dtype="int64")


def previous_run(engine: Engine, run_id: int) -> PreviousRun:
    """What a refit needs to keep run ``run_id``'s ids and the names users gave its clusters (an
    automatic name is made again from the refit's own profile)."""
    run = load_run(engine, run_id)
    given = run.clusters[run.clusters["name"] != run.clusters["auto_name"]]
    return PreviousRun(run.run_id, load_assignments(engine, run_id), run.model,
                       dict(zip(given["cluster"].astype(int), given["name"], strict=True)))


def cluster_members(run_id: int, cluster: int) -> sa.Select:
    """SELECT trader_id of the traders in ``cluster`` of saved run ``run_id`` (for cluster segments)."""
    a = cluster_assignments.c
    return sa.select(a.trader_id).where(a.run_id == int(run_id), a.cluster == int(cluster))


def rename_clusters(write_engine: Engine, run_id: int, names: Mapping[int, str]) -> pd.DataFrame:
    """Save new names for clusters of run ``run_id`` (blank: keep); returns the run's clusters table."""
    with writing(write_engine) as conn:
        text = conn.execute(sa.select(clustering_runs.c.clusters).where(clustering_runs.c.run_id == int(run_id))
                            ).scalar_one_or_none()
        if text is None:
            raise ClusteringRejected(f"There is no saved clustering run {run_id}.")
        clusters = _renamed(_clusters_frame(text), names)
        conn.execute(clustering_runs.update().where(clustering_runs.c.run_id == int(run_id))
                     .values(clusters=_clusters_json(clusters)))
    return clusters


def assign_traders(model: ClusterModel | SavedRun, frame: pd.DataFrame) -> pd.Series:
    """The clusters of a saved run for the traders of ``frame`` (a snapshot frame), without a refit."""
    return (model.model if isinstance(model, SavedRun) else model).assign(frame)


def _population_condition(table: sa.Table, rule: str) -> sa.ColumnElement[bool]:
    """:func:`select_population`'s rule over a table with the snapshot's columns."""
    if rule == "traded":
        return sa.func.coalesce(table.c.trades_total, 0) > 0
    if rule == "funded":
        return sa.func.coalesce(table.c.deposits_count, 0) > 0
    return sa.true()


def assign_new_traders(conn: Connection, run_id: int) -> int:
    """Inside the caller's write transaction: give every trader of the materialised snapshot
    (``trader_features``) who belongs to run ``run_id``'s population (test accounts left out) and
    has no cluster in it yet the cluster the run's stored model assigns (no refit); returns how many
    were added (0 without a materialised snapshot)."""
    row = conn.execute(sa.select(clustering_runs.c.model, clustering_runs.c.settings)
                       .where(clustering_runs.c.run_id == int(run_id))).first()
    if row is None:
        raise ClusteringRejected(f"There is no saved clustering run {run_id}.")
    if not sa.inspect(conn).has_table(feature_table().name):
        return 0
    model = ClusterModel.from_json(json.loads(row[0]))
    rule = json.loads(row[1] or "{}").get("spec", {}).get("population", "traded")
    table = feature_table()
    a = cluster_assignments.c
    query = (sa.select(table.c.trader_id, *(table.c[f] for f in FEATURE_NAMES))
             .join(traders, traders.c.trader_id == table.c.trader_id)
             .where(traders.c.is_test.is_(sa.false()), _population_condition(table, rule),
                    ~sa.exists().where(a.run_id == int(run_id), a.trader_id == table.c.trader_id))
             .order_by(table.c.trader_id))
    result = conn.execute(query)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        return 0
    frame = frame.set_index("trader_id").astype(float)
    labels = model.assign(frame)
    bulk_insert(conn, cluster_assignments, pd.DataFrame({
        "run_id": int(run_id), "trader_id": labels.index.to_numpy(dtype="int64"),
        "cluster": labels.to_numpy(dtype="int64")}))
    return len(labels)


# ---------------------------------------------------------------------------------------------
# From the database in one call (the command line, the app's cached loaders)


def compute_clustering(engine: Engine, spec: ClusterSpec = ClusterSpec(), *, as_of: datetime | date | None = None,
                       previous_run_id: int | None = None) -> Clustering:
    """Features as of ``as_of`` (see analytics.features), clustered as ``spec`` says, ids continuing
    saved run ``previous_run_id`` when given."""
    snapshot = compute_features(engine, as_of=as_of)
    previous = previous_run(engine, previous_run_id) if previous_run_id is not None else None
    return fit_clustering(snapshot, spec, previous=previous)


def clustering_table(engine: Engine, clustering: Clustering) -> pd.DataFrame:
    """One row per clustered trader: trader_external_id, trader_id, cluster, cluster_name (for CSV)."""
    names = clustering.names()
    frame = pd.DataFrame({"trader_id": clustering.labels.index.to_numpy(dtype="int64"),
                          "cluster": clustering.labels.to_numpy(dtype="int64")})
    frame.insert(0, "trader_external_id", external_ids(engine, frame["trader_id"]))
    frame["cluster_name"] = frame["cluster"].map(names).fillna("Noise (no cluster)")
    return frame
