"""Behavioural clustering (analytics/segmentation.py) on synthetic snapshots, no database: the default
method recovers planted groups of a broker unlike the simulator, reproducibly and stably; fill and
log rules; stable ids across refits; assigning new traders from the stored model; names, profiles,
projection, diagnostics and the KYC-vs-behaviour comparison."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from analytics import segmentation as seg
from analytics.features import DEFAULT_CLUSTER_FEATURES, FEATURE_NAMES, KYC_STATE, FeatureSnapshot

AS_OF = datetime(2026, 11, 1)
ASSETS = ("fx", "crypto", "indices", "commodities", "stocks")


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(rng.normal(0, sigma, n))


# A broker unlike the simulator: five groups told apart by different features (money movements,
# instruments, automation, holding time), unequal sizes, heavy tails, missing values, and every
# snapshot column filled so the frame looks like compute_features' own.
# name, share, trades/week, deposits/month, avg deposit, withdrawals/month, hold median (s),
# asset-mix Dirichlet weights (fx, crypto, indices, commodities, stocks), leverage, expert share, sessions/week
BROKER_B = (
    ("stock savers", 0.38, 0.5, 1.5, 250, 0.05, 10 * 86_400, (1, 1, 2, 1, 6), 2, 0.0, 3.0),
    ("index day traders", 0.24, 8.0, 0.8, 900, 0.3, 3 * 3_600, (2, 1, 6, 1, 1), 8, 0.0, 8.0),
    ("gold whales", 0.16, 2.0, 0.4, 12_000, 0.6, 2 * 86_400, (2, 1, 1, 6, 1), 4, 0.0, 2.0),
    ("crypto dabblers", 0.14, 1.5, 1.0, 200, 0.05, 8 * 3_600, (1, 6, 1, 1, 1), 15, 0.0, 6.0),
    ("FX robots", 0.08, 25.0, 0.5, 3_000, 0.4, 1_200, (6, 1, 1, 2, 1), 8, 0.9, 1.0),
)
SIGMA = 1.0  # spread of every rate and amount around its group's median (a factor of e either way)


def broker_b(n: int = 3_000, seed: int = 1, sigma: float = SIGMA) -> tuple[FeatureSnapshot, pd.Series]:
    """(snapshot, truth: trader_id -> group) of a synthetic broker with BROKER_B's groups, rates and
    amounts spread by ``sigma`` (log scale) around each group's median."""
    rng = np.random.default_rng(seed)
    shares = np.array([g[1] for g in BROKER_B])
    group = rng.choice(len(BROKER_B), size=n, p=shares / shares.sum())
    frame = pd.DataFrame(index=pd.Index(np.arange(1, n + 1) * 7 + 100, name="trader_id"))
    p = {name: np.array([g[i] for g in BROKER_B])[group] for i, name in enumerate(
        ("name", "share", "tpw", "dpm", "avg_dep", "wpm", "hold", "mix", "lev", "expert", "spw"))
        if name not in ("name", "share", "mix")}
    frame["trades_per_week"] = _lognormal(rng, 1, sigma, n) * p["tpw"]
    frame["trades_total"] = np.maximum(1, np.round(frame["trades_per_week"] * rng.uniform(2, 60, n)))
    frame["lots_per_week"] = frame["trades_per_week"] * _lognormal(rng, 0.5, 0.6, n)
    frame["notional_per_week"] = frame["lots_per_week"] * 100_000 * _lognormal(rng, 1, 0.3, n)
    frame["deposits_per_month"] = _lognormal(rng, 1, sigma, n) * p["dpm"]
    frame["deposits_count"] = np.maximum(1, np.round(frame["deposits_per_month"] * rng.uniform(1, 12, n)))
    frame["avg_deposit_usd"] = _lognormal(rng, 1, sigma, n) * p["avg_dep"]
    frame["deposits_usd"] = frame["avg_deposit_usd"] * frame["deposits_count"]
    frame["withdrawals_per_month"] = _lognormal(rng, 1, sigma, n) * p["wpm"] * (rng.random(n) < 0.7)
    frame["median_hold_s"] = _lognormal(rng, 1, 1.5 * sigma, n) * p["hold"]
    frame.loc[rng.random(n) < 0.03, "median_hold_s"] = np.nan  # nothing closed yet
    frame["share_hold_under_60s"] = np.clip(60 / frame["median_hold_s"].fillna(1e9) * rng.uniform(0, 0.5, n), 0, 1)
    alphas = np.array([g[7] for g in BROKER_B], dtype=float)[group]
    mix = np.array([rng.dirichlet(a) for a in alphas])
    for i, asset in enumerate(ASSETS):
        frame[f"share_{asset}"] = mix[:, i]
    frame["avg_leverage_used"] = _lognormal(rng, 1, 0.6 * sigma, n) * p["lev"]
    frame["share_expert_trades"] = np.clip(p["expert"] + rng.normal(0, 0.1, n), 0, 1)
    frame["sessions_per_week"] = _lognormal(rng, 1, sigma, n) * p["spw"]
    frame["tenure_days"] = rng.uniform(30, 700, n)
    frame["days_since_last_trade"] = frame["tenure_days"] * rng.uniform(0, 1, n)
    frame["days_since_last_deposit"] = np.where(rng.random(n) < 0.1, np.nan, frame["tenure_days"] * rng.random(n))
    for name in FEATURE_NAMES:  # the columns this broker's groups do not differ in
        if name not in frame.columns:
            frame[name] = rng.gamma(2.0, 1.0, n)
    frame = frame[list(FEATURE_NAMES)].astype(float)
    frame[KYC_STATE] = "approved"
    truth = pd.Series(np.array([g[0] for g in BROKER_B])[group], index=frame.index, name="group")
    return FeatureSnapshot(AS_OF, frame), truth


@pytest.fixture(scope="module")
def broker():
    return broker_b()


@pytest.fixture(scope="module")
def clustering(broker):
    return seg.fit_clustering(broker[0], seg.ClusterSpec(k=5))


def _with_rows(snapshot: FeatureSnapshot, frame: pd.DataFrame) -> FeatureSnapshot:
    return FeatureSnapshot(snapshot.as_of, frame)


# --- the method on a broker that is not the simulator ----------------------------------------------


def test_the_default_method_recovers_another_brokers_groups(broker, clustering):
    snapshot, truth = broker
    assert clustering.spec.features == DEFAULT_CLUSTER_FEATURES
    assert adjusted_rand_score(truth.loc[clustering.labels.index], clustering.labels) >= 0.7
    diagnostics = seg.compute_diagnostics(snapshot, seg.ClusterSpec(k=5), k_values=[2, 5, 8], bootstraps=3)
    at_5 = diagnostics.frame.set_index("k").loc[5]
    assert at_5["stability"] >= 0.8
    # The true k stands out: a better silhouette than a too-coarse or too-fine cut.
    assert at_5["silhouette"] > diagnostics.frame.set_index("k").loc[[2, 8], "silhouette"].max()
    assert diagnostics.suggested_k() == 5


def test_same_inputs_and_seed_give_the_same_clusters(broker, clustering):
    again = seg.fit_clustering(broker[0], seg.ClusterSpec(k=5))
    pd.testing.assert_series_equal(again.labels, clustering.labels)
    assert json.dumps(again.model.to_json()) == json.dumps(clustering.model.to_json())
    assert again.clusters["name"].tolist() == clustering.clusters["name"].tolist()
    # Row order does not matter: the population is ordered by trader id first.
    shuffled = broker[0].frame.sample(frac=1, random_state=3)
    pd.testing.assert_series_equal(seg.fit_clustering(_with_rows(broker[0], shuffled), seg.ClusterSpec(k=5)).labels,
                                   clustering.labels)


def test_the_mixture_finds_the_groups_too(broker):
    snapshot, truth = broker
    result = seg.fit_clustering(snapshot, seg.ClusterSpec(k=5, algorithm="gmm"))
    assert adjusted_rand_score(truth.loc[result.labels.index], result.labels) >= 0.7
    assert result.noise_share == 0 and sorted(result.clusters["cluster"]) == [1, 2, 3, 4, 5]


def test_hdbscan_reports_its_noise():
    # Separated groups (a small spread): HDBSCAN finds them and leaves the stragglers as noise. (On
    # overlapping groups, such as BROKER_B's, it merges them: that is what the diagnostics show.)
    snapshot, truth = broker_b(n=1_500, seed=2, sigma=0.3)
    result = seg.fit_clustering(snapshot, seg.ClusterSpec(algorithm="hdbscan"))
    clustered = result.labels[result.labels != seg.NOISE]
    assert adjusted_rand_score(truth.loc[clustered.index], clustered) >= 0.7
    assert 0 < result.noise_share < 0.3
    noise = result.clusters.set_index("cluster").loc[seg.NOISE]
    assert noise["size"] == (result.labels == seg.NOISE).sum() and noise["name"] == "Noise (no cluster)"


def test_population_says_who_is_in_and_out(broker):
    snapshot = broker[0]
    frame = snapshot.frame.copy()
    frame.iloc[:40, frame.columns.get_loc("trades_total")] = 0
    frame.iloc[40:50, frame.columns.get_loc("trades_total")] = np.nan
    result = seg.fit_clustering(_with_rows(snapshot, frame), seg.ClusterSpec(k=5))
    assert result.population.registered == len(frame) and result.population.included == len(frame) - 50
    assert result.population.excluded == 50
    assert not result.labels.index.isin(frame.index[:50]).any()
    assert "50 of the 3,000 registered traders never opened a position" in result.population.describe()
    everyone = seg.fit_clustering(_with_rows(snapshot, frame), seg.ClusterSpec(k=5, population="all"))
    assert everyone.population.included == len(frame)


# --- choices that cannot work ----------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    (seg.ClusterSpec(features=()), "at least one feature"),
    (seg.ClusterSpec(features=("trades_per_week", "no_such")), "Unknown feature"),
    (seg.ClusterSpec(features=("trades_per_week", "trades_per_week")), "twice"),
    (seg.ClusterSpec(k=1), "k must be between"),
    (seg.ClusterSpec(k=99), "k must be between"),
    (seg.ClusterSpec(algorithm="dbscan"), "Unknown algorithm"),
    (seg.ClusterSpec(scaling="minmax"), "Unknown scaling"),
    (seg.ClusterSpec(pca_components=40), "PCA components"),
    (seg.ClusterSpec(population="vip"), "Unknown population"),
    (seg.ClusterSpec(algorithm="hdbscan", min_cluster_size=1), "minimum cluster size"),
])
def test_bad_specs_are_refused_with_the_reason(broker, spec, message):
    with pytest.raises(seg.ClusteringRejected, match=message):
        seg.fit_clustering(broker[0], spec)


def test_too_few_traders_are_refused(broker):
    tiny = _with_rows(broker[0], broker[0].frame.head(9))
    with pytest.raises(seg.ClusteringRejected, match="Only 9 trader"):
        seg.fit_clustering(tiny, seg.ClusterSpec(k=5))


# --- missing values and transforms -----------------------------------------------------------------


def test_missing_values_are_filled_by_what_they_mean():
    assert seg.fill_rule("days_since_last_deposit") == "tenure"
    assert seg.fill_rule("median_hold_s") == "median" and seg.fill_rule("avg_leverage_used") == "median"
    assert seg.fill_rule("win_rate") == "median"
    assert seg.fill_rule("deposits_per_month") == "zero" and seg.fill_rule("share_crypto") == "zero"
    frame = pd.DataFrame({name: [1.0, 2.0, 3.0, 4.0] for name in FEATURE_NAMES}, index=[1, 2, 3, 4])
    frame["tenure_days"] = [100.0, 200.0, 300.0, 400.0]
    frame["days_since_last_deposit"] = [5.0, np.nan, 7.0, np.nan]
    frame["median_hold_s"] = [10.0, 30.0, np.nan, 1000.0]
    frame["deposits_per_month"] = [np.nan, 1.0, 2.0, 3.0]
    spec = seg.ClusterSpec(features=("days_since_last_deposit", "median_hold_s", "deposits_per_month"))
    filled = seg.fit_transform(frame, spec).filled(frame)
    assert filled["days_since_last_deposit"].tolist() == [5.0, 200.0, 7.0, 400.0]  # never: the tenure
    assert filled["median_hold_s"].tolist() == [10.0, 30.0, 30.0, 1000.0]  # unknown: the median
    assert filled["deposits_per_month"].tolist() == [0.0, 1.0, 2.0, 3.0]  # none: 0
    notes = seg.fill_notes(spec.features).set_index("feature")["rule"].to_dict()
    assert notes == {"days_since_last_deposit": "tenure", "median_hold_s": "median", "deposits_per_month": "zero"}


def test_logs_go_on_heavy_tails_not_on_shares_and_keep_signs(broker):
    frame = broker[0].frame.copy()
    frame["realised_pnl_usd"] = np.linspace(-5_000, 3_000, len(frame))
    spec = seg.ClusterSpec(features=("deposits_usd", "share_crypto", "realised_pnl_usd", "trades_trend"))
    transform = seg.fit_transform(frame, spec)
    assert transform.logs == {"deposits_usd": "log1p", "share_crypto": "none", "realised_pnl_usd": "signed_log1p",
                              "trades_trend": "none"}
    assert seg.fit_transform(frame, seg.ClusterSpec(features=spec.features, log1p=False)).logs == {
        name: "none" for name in spec.features}
    x = transform.apply(frame)
    assert np.allclose(x.mean(axis=0), 0, atol=1e-9) and np.allclose(x.std(axis=0), 1)
    robust = seg.fit_transform(frame, seg.ClusterSpec(features=spec.features, scaling="robust")).apply(frame)
    assert np.allclose(np.median(robust, axis=0), 0, atol=1e-9)
    pca = seg.fit_transform(frame, seg.ClusterSpec(features=spec.features, pca_components=2)).apply(frame)
    assert pca.shape == (len(frame), 2)


# --- the stored model and new traders ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["kmeans", "gmm", "hdbscan"])
def test_the_stored_model_assigns_as_the_fit_did(broker, algorithm):
    snapshot = broker[0]
    result = seg.fit_clustering(snapshot, seg.ClusterSpec(k=5, algorithm=algorithm, pca_components=6))
    stored = seg.ClusterModel.from_json(json.loads(json.dumps(result.model.to_json())))
    population = snapshot.frame.loc[result.labels.index]
    assigned = stored.assign(population)
    if algorithm == "hdbscan":
        # A new trader joins a cluster within the 95th percentile of its members' distances to its
        # centroid: about 5% of the fitted members would be noise, and almost none another cluster.
        clustered = result.labels != seg.NOISE
        agree = assigned[clustered] == result.labels[clustered]
        assert agree.mean() >= 0.9
        assert (assigned[clustered][~agree] == seg.NOISE).mean() >= 0.9
    else:
        pd.testing.assert_series_equal(assigned, result.labels)


def test_new_traders_join_the_cluster_they_resemble(broker, clustering):
    snapshot = broker[0]
    members = snapshot.frame.loc[clustering.labels.index[:200]]
    new = members.copy()
    new.index = new.index + 10_000_000  # unseen traders that behave like these members
    new[["trades_per_week", "deposits_per_month"]] *= 1.05
    assigned = seg.assign_traders(clustering.model, new)
    assert (assigned.to_numpy() == clustering.labels.iloc[:200].to_numpy()).mean() >= 0.95
    # HDBSCAN: a trader far from every cluster is noise rather than forced into one.
    density = seg.fit_clustering(snapshot, seg.ClusterSpec(algorithm="hdbscan"))
    outlier = members.head(1).copy()
    outlier[["trades_per_week", "notional_per_week", "avg_deposit_usd", "sessions_per_week"]] = 1e12
    assert seg.assign_traders(density.model, outlier).tolist() == [seg.NOISE]


# --- stable ids --------------------------------------------------------------------------------------


def test_first_run_numbers_clusters_by_size(clustering):
    sizes = clustering.clusters.set_index("cluster")["size"]
    assert list(sizes.index) == [1, 2, 3, 4, 5] and sizes.is_monotonic_decreasing
    assert clustering.clusters["previous"].isna().all()
    assert clustering.labels.value_counts().sort_index().tolist() == sizes.tolist()


def _previous(result: seg.Clustering, run_id: int = 1) -> seg.PreviousRun:
    return seg.PreviousRun(run_id, result.labels, result.model, result.names())


def test_a_refit_keeps_each_clusters_id_and_name(broker, clustering):
    snapshot = broker[0]
    renamed = clustering.with_names({3: "Whales we call"})
    refit = seg.fit_clustering(snapshot, seg.ClusterSpec(k=5, seed=9), previous=_previous(renamed))
    assert adjusted_rand_score(refit.labels, clustering.labels) > 0.95
    assert (refit.labels == clustering.labels).mean() > 0.97  # the same numbers, not a relabelling
    assert refit.previous_run_id == 1
    assert refit.clusters.set_index("cluster")["previous"].to_dict() == {c: c for c in range(1, 6)}
    assert refit.names()[3] == "Whales we call"  # a user's name follows its cluster


def test_new_clusters_get_fresh_ids_never_reused(broker, clustering):
    snapshot = broker[0]
    finer = seg.fit_clustering(snapshot, seg.ClusterSpec(k=7), previous=_previous(clustering))
    ids = set(finer.clusters["cluster"])
    kept = {c for c, p in finer.clusters.set_index("cluster")["previous"].items() if pd.notna(p)}
    assert kept <= {1, 2, 3, 4, 5} and len(kept) >= 4
    assert ids - kept == set(range(6, 6 + len(ids - kept)))
    assert finer.model.next_id == 6 + len(ids - kept)
    # Back to five: a cluster of the run before last whose id went unused keeps it retired.
    coarser = seg.fit_clustering(snapshot, seg.ClusterSpec(k=4), previous=_previous(finer, 2))
    fresh = set(coarser.clusters["cluster"]) - set(finer.clusters["cluster"])
    assert all(c >= finer.model.next_id for c in fresh)


def test_traders_new_to_a_refit_are_matched_through_the_previous_model(broker, clustering):
    snapshot = broker[0]
    # The previous run saw none of these traders: matching goes through where its model puts them.
    previous = seg.PreviousRun(None, pd.Series(dtype="int64"), clustering.model, clustering.names())
    refit = seg.fit_clustering(snapshot, seg.ClusterSpec(k=5, seed=4), previous=previous)
    assert (refit.labels == clustering.labels).mean() > 0.97


def test_matching_by_overlap():
    previous = pd.Series([1, 1, 1, 2, 2, 2, 3, 3, -1], index=range(9))
    new = pd.Series([0, 0, 0, 5, 5, 5, 6, 7, 7], index=range(9))
    # 0<->1 and 5<->2 overlap fully; 7 shares one trader with 3 (Jaccard 1/2), 6 shares 3's other one (1/2).
    matches = seg.match_clusters(new, previous)
    assert matches[0] == 1 and matches[5] == 2 and len(matches) == 3 and 3 in matches.values()
    assert seg.match_clusters(new, previous, min_jaccard=0.6) == {0: 1, 5: 2}
    assert seg.match_clusters(new, pd.Series([1, 2], index=[100, 101])) == {}


# --- profiles, names and pictures ------------------------------------------------------------------


def test_profiles_put_each_group_where_it_differs(broker, clustering):
    truth = broker[1]
    profiles = clustering.profiles.set_index(["cluster", "feature"])
    robots = truth.loc[clustering.labels.index].eq("FX robots").groupby(clustering.labels).mean().idxmax()
    assert profiles.loc[(robots, "share_expert_trades"), "z"] > 2
    assert profiles.loc[(robots, "trades_per_week"), "z"] > 1
    assert profiles.loc[(robots, "share_fx"), "mean"] > profiles.loc[(robots, "share_fx"), "population_mean"]
    row = clustering.clusters.set_index("cluster").loc[robots]
    assert row["top_features"][0]["feature"] == "share_expert_trades"
    assert "algo traders" in row["name"].lower()
    assert clustering.clusters["name"].is_unique
    assert abs(clustering.clusters["share"].sum() - 1) < 1e-9


@pytest.mark.parametrize(("z", "name"), [
    ({"trades_per_week": 2.0, "share_fx": 1.5, "share_hold_under_60s": 1.8, "sessions_per_week": 0.2},
     "High-frequency FX scalpers"),
    ({"days_since_last_trade": 1.5, "avg_deposit_usd": -1.2, "share_fx": 0.1}, "Dormant small depositors"),
    ({"trades_per_week": 0.1, "share_fx": -0.2}, "Typical traders"),
    ({"symbols_traded": 0.3, "portal_events_30d": 0.1, "declined_deposits": 0.2}, "Typical traders"),
    ({"lots_per_week": 1.0, "notional_per_week": 1.4, "share_crypto": 0.9}, "High-volume crypto traders"),
    ({"bonus_share": 2.0, "win_rate": -0.6}, "Losing bonus hunters"),
])
def test_automatic_names_read_like_a_retention_manager_would_say(z, name):
    assert seg.auto_name(z) == name


def test_clashing_names_are_numbered_and_users_can_rename(clustering):
    names = seg._unique_names({1: "Dormant traders", 2: "FX scalpers", 3: "Dormant traders"})
    assert names == {1: "Dormant traders", 2: "FX scalpers", 3: "Dormant traders 2"}
    renamed = clustering.with_names({2: "  Savers  ", 4: ""})
    assert renamed.names()[2] == "Savers" and renamed.names()[4] == clustering.names()[4]
    with pytest.raises(seg.ClusteringRejected, match="longer than 80"):
        clustering.with_names({1: "x" * 81})


def test_projection_is_sampled_and_keeps_every_cluster(broker, clustering):
    projection = seg.compute_projection(broker[0], clustering, max_points=500)
    assert projection.sampled and projection.total == len(clustering.labels)
    assert 500 <= projection.shown < projection.total and len(projection.frame) == projection.shown
    assert set(projection.frame["cluster"]) == set(clustering.labels)
    assert 0 < projection.explained[1] <= projection.explained[0] < 1
    whole = seg.compute_projection(broker[0], clustering, max_points=10_000)
    assert not whole.sampled and whole.shown == whole.total
    assert (whole.frame.set_index("trader_id")["cluster"] == clustering.labels.loc[whole.frame["trader_id"]]).all()


def test_diagnostics_report_every_measure_and_the_sample_sizes():
    snapshot = broker_b(n=1_000, seed=3)[0]
    gmm = seg.compute_diagnostics(snapshot, seg.ClusterSpec(algorithm="gmm"), k_values=[3, 5], bootstraps=2)
    assert gmm.frame.columns.tolist() == seg.DIAGNOSTIC_COLUMNS
    assert gmm.frame["k"].tolist() == [3, 5] and gmm.frame["bic"].notna().all()
    assert gmm.frame.loc[1, "bic"] < gmm.frame.loc[0, "bic"]  # five groups explain it better than three
    assert gmm.sample_rows == min(len(snapshot.frame), seg.DIAGNOSTIC_ROWS["gmm"])
    assert gmm.silhouette_rows == min(gmm.sample_rows, seg.SILHOUETTE_ROWS) and gmm.bootstraps == 2
    density = seg.compute_diagnostics(snapshot, seg.ClusterSpec(algorithm="hdbscan"), bootstraps=2)
    assert density.frame["min_cluster_size"].notna().all() and density.frame["bic"].isna().all()
    assert density.frame["noise_share"].between(0, 1).all()
    round_trip = seg.Diagnostics.from_json(json.loads(json.dumps(gmm.to_json())))
    pd.testing.assert_frame_equal(round_trip.frame, gmm.frame)


def test_kyc_fields_that_carry_no_behaviour_predict_no_better_than_the_baseline(broker, clustering):
    snapshot, truth = broker
    rng = np.random.default_rng(5)
    ids = snapshot.frame.index
    kyc = pd.DataFrame({"country": rng.choice(["DE", "GB", "BR", "TH"], len(ids)),
                        "acquisition_channel": rng.choice(["organic", "social"], len(ids)),
                        "platform": rng.choice(["MT4", "MT5"], len(ids))}, index=ids)
    result = seg.compare_kyc_behaviour(snapshot, clustering, kyc, folds=3).frame.set_index("group")
    assert result.loc["Behaviour", "accuracy"] > 0.9
    assert abs(result.loc["KYC & demographics", "accuracy"] - result.loc["KYC & demographics", "baseline"]) < 0.05
    # A field that does follow the groups shows up, in accuracy and in its association.
    kyc["platform"] = np.where(truth.loc[ids].eq("FX robots"), "cTrader", kyc["platform"])
    informed = seg.compare_kyc_behaviour(snapshot, clustering, kyc, folds=3)
    kyc_row = informed.frame.set_index("group").loc["KYC & demographics"]
    assert kyc_row["lift"] > 0.04
    assert informed.associations.iloc[0]["field"] == "platform" and informed.rows == len(clustering.labels)


def test_the_silhouette_from_shared_distances_is_sklearns():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    labels = rng.integers(0, 4, 600)
    labels[0] = 9  # a cluster of one scores 0, as in sklearn
    assert seg.silhouette(seg._distances(x), labels) == pytest.approx(silhouette_score(x, labels), abs=1e-9)
    assert np.isnan(seg.silhouette(seg._distances(x[:10]), np.zeros(10, dtype=int)))
