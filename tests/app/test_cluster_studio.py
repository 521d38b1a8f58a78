"""The clustering studio (Segments page, Clusters tab) through the app entrypoint with AppTest, on a
small simulated broker (DuckDB): the clusters, profiles and map of the default clustering agree with
analytics.segmentation; the controls refit; diagnostics and the KYC comparison come on demand and say
their sample sizes; a clustering is saved with edited names, and a cluster becomes a saved segment."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from analytics import segmentation as seg
from analytics import segments
from analytics.features import compute_features
from connectors import database
from connectors.simulator import SimulationConfig

PAGE = "pages/segments.py"
KEY = "segments.studio"


@pytest.fixture
def db_url(seeded_broker, use_broker, monkeypatch) -> str:
    """A simulated broker (400 traders over 200 days ending today; the Segments page tests' broker)."""
    monkeypatch.setenv("TRADERLENS_SEGMENT_REFRESH_S", "0")  # no background writes during a test
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=200, seed=5)))


@pytest.fixture
def expected(db_url) -> seg.Clustering:
    """The default clustering, computed directly."""
    engine = database.get_engine(db_url)
    result = seg.fit_clustering(compute_features(engine))
    database.dispose_engines()
    return result


def open_studio(open_page, **query: str) -> AppTest:
    return open_page(PAGE, **{"segments.tab": "Clusters", **query})


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def editor(at: AppTest):
    (table,) = [e for e in at.data_editor if (e.key or "").startswith(f"{KEY}.names.")]
    return table


def test_the_default_clustering_is_shown_as_analytics_computes_it(db_url, open_page, expected):
    at = open_studio(open_page)
    assert not at.exception and not at.error
    assert metric(at, "Traders clustered") == f"{len(expected.labels):,}"
    assert metric(at, "Clusters") == "6" and metric(at, "Noise") == "none"
    shown = editor(at).value
    assert shown["Cluster"].tolist() == expected.clusters["cluster"].tolist()
    assert shown["Name"].tolist() == expected.clusters["name"].tolist()
    assert shown["Traders"].tolist() == expected.clusters["size"].tolist()
    assert editor(at).editing_mode == "fixed"
    text = captions(at)
    assert f"{expected.population.included:,} traders who opened a position" in text.replace("\\", "")
    assert f"All {len(expected.labels):,} traders, on the two main components" in text  # few: no sampling
    (heatmap,) = [c for c in at.get("vega_lite_chart") if "z_shown" in c.proto.spec]
    cells = pd.concat(convert_arrow_bytes_to_pandas_df(d.data.data) for d in heatmap.proto.datasets)
    assert len(cells) == len(expected.profiles)
    assert np.allclose(cells.sort_values(["cluster", "feature"])["z"],
                       expected.profiles.sort_values(["cluster", "feature"])["z"])
    (projection,) = [c for c in at.get("vega_lite_chart") if "Component 1" in c.proto.spec]
    points = pd.concat(convert_arrow_bytes_to_pandas_df(d.data.data) for d in projection.proto.datasets)
    assert points.set_index("trader_id")["cluster"].to_dict() == expected.labels.to_dict()  # every trader: few
    assert "Most distinctive" in shown.columns and all(shown["Most distinctive"].str.contains("σ"))


def test_the_controls_refit_and_bad_choices_are_explained(db_url, open_page):
    at = open_studio(open_page, **{f"{KEY}.k": "4", f"{KEY}.algorithm": "Gaussian mixture"})
    assert not at.exception
    assert metric(at, "Clusters") == "4" and len(editor(at).value) == 4
    at.segmented_control(key=f"{KEY}.algorithm").set_value("hdbscan").run()
    assert not at.exception
    assert metric(at, "Noise").endswith("%")
    assert at.number_input(key=f"{KEY}.k").disabled and not at.number_input(key=f"{KEY}.min_size").disabled
    at.multiselect(key=f"{KEY}.features").set_value([]).run()
    assert not at.exception
    assert any("Choose at least one feature" in w.value for w in at.warning)
    assert not [e for e in at.data_editor if (e.key or "").startswith(f"{KEY}.names.")]


def test_a_link_with_impossible_values_is_named_not_crashing(db_url, open_page):
    hostile = {f"{KEY}.k": "99", f"{KEY}.scaling": "minmax", f"{KEY}.pca": "1e9", f"{KEY}.seed": "nan",
               f"{KEY}.min_size": "-1", f"{KEY}.previous": "#999 x'); DROP TABLE traders;--",
               f"{KEY}.population": "<script>", f"{KEY}.log1p": "maybe"}
    at = open_page(PAGE, **{"segments.tab": "Clusters", **hostile},
                   **{f"{KEY}.features": ["Trades per week (Trading)", "no_such_feature"]})
    assert not at.exception
    notices = " ".join(w.value for w in at.warning).replace("\\", "")
    assert all(f"?{name}=" in notices for name in [*hostile, f"{KEY}.features"])
    # The known values stay: one feature, the defaults elsewhere.
    assert at.multiselect(key=f"{KEY}.features").value == ["trades_per_week"]
    assert metric(at, "Clusters") == "6"
    assert "k-means, k = 6, 1 feature (log1p, standard scaling)" in captions(at).replace("\\", "")


def test_diagnostics_and_the_kyc_comparison_come_on_demand(db_url, open_page, expected):
    at = open_studio(open_page)
    assert "Silhouette on a sample" not in captions(at)
    at.button(key=f"{KEY}.diagnostics.run").click().run()
    assert not at.exception
    n = len(expected.labels)
    assert (f"Silhouette on a sample of {min(n, seg.SILHOUETTE_ROWS):,} traders; the other measures on "
            f"{min(n, seg.DIAGNOSTIC_ROWS['kmeans']):,} of the {n:,} traders") in captions(at)
    assert "Suggested: k = " in captions(at)
    # Diagnostics span k: another k keeps them, another algorithm asks again.
    at.number_input(key=f"{KEY}.k").set_value(5).run()
    assert "Silhouette on a sample" in captions(at)
    at.button(key=f"{KEY}.kyc.run").click().run()
    assert not at.exception
    assert "cross-validation" in captions(at) and "by always guessing the largest cluster" in captions(at)
    (fields,) = [d.value for d in at.dataframe if "Cramér's V" in d.value.columns]
    assert set(fields["Field"]) >= {"Country", "Acquisition channel", "Platform", "VIP tier"}
    assert fields["Cramér's V"].between(0, 1).all()
    at.segmented_control(key=f"{KEY}.algorithm").set_value("gmm").run()
    assert "Silhouette on a sample" not in captions(at)
    assert at.button(key=f"{KEY}.diagnostics.run")


def test_save_with_edited_names_then_a_cluster_as_a_segment(db_url, open_page, expected):
    at = open_studio(open_page)
    table = editor(at)
    at.session_state[table.key] = {"edited_rows": {1: {"Name": "Our second group"}}, "added_rows": [],
                                   "deleted_rows": []}
    at.run()
    at.button(key=f"{KEY}.diagnostics.run").click().run()  # computed diagnostics are saved with the run
    at.text_input(key=f"{KEY}.run_name").set_value("October personas")
    at.button(key=f"{KEY}.save").click().run()
    assert not at.exception and not at.error
    assert any("Saved clustering run #1" in s.value for s in at.success)
    engine = database.get_engine(db_url)
    run = seg.load_run(engine, 1)
    assert run.name == "October personas"
    assert run.names() == {**expected.names(), 2: "Our second group"}
    assert seg.load_assignments(engine, 1).to_dict() == expected.labels.to_dict()
    assert run.diagnostics is not None and run.diagnostics.frame["k"].tolist() == list(range(2, 11))
    # Saved: the studio says so and offers to save later name edits on the run.
    assert any("Saved as clustering run **#1**" in m.value for m in at.markdown)
    at.session_state[table.key] = {"edited_rows": {1: {"Name": "Our second group"}, 0: {"Name": "The first"}},
                                   "added_rows": [], "deleted_rows": []}
    at.run()
    at.button(key=f"{KEY}.save_names").click().run()
    assert not at.exception and any("Saved the cluster names of run #1" in s.value for s in at.success)
    assert seg.load_run(engine, 1).names() == {**expected.names(), 1: "The first", 2: "Our second group"}
    at.selectbox(key=f"{KEY}.segment_cluster").set_value(3)
    at.text_input(key=f"{KEY}.segment_name").set_value("Cluster three")
    at.button(key=f"{KEY}.save_segment").click().run()
    assert not at.exception and not at.error
    assert any("Saved “Cluster three” with" in s.value for s in at.success)
    saved = segments.list_segments(engine)
    assert saved["name"].tolist() == ["Cluster three"]
    assert json.loads(saved["definition"].iloc[0]) == {"run_id": 1, "clusters": [3]}  # the segments module's form
    assert int(saved["size"].iloc[0]) == int((expected.labels == 3).sum())
    database.dispose_engines()


def test_a_cluster_becomes_a_segment_in_one_step(db_url, open_page, expected):
    at = open_studio(open_page)
    at.selectbox(key=f"{KEY}.segment_cluster").set_value(1)
    at.button(key=f"{KEY}.save_segment").click().run()
    assert not at.exception and not at.error
    engine = database.get_engine(db_url)
    assert seg.list_runs(engine)["run_id"].tolist() == [1]  # the clustering was saved first
    saved = segments.list_segments(engine)
    assert saved["name"].tolist() == [expected.names()[1]]  # named after its cluster
    database.dispose_engines()


def test_profiles_and_each_traders_cluster_download(db_url, open_page, expected, downloaded):
    at = open_studio(open_page)
    assignments = pd.read_csv(io.StringIO(downloaded(at, f"{KEY}.assignments")))
    assert list(assignments.columns) == ["trader_external_id", "trader_id", "cluster", "cluster_name"]
    by_trader = assignments.set_index("trader_id")
    assert by_trader["cluster"].to_dict() == expected.labels.to_dict()
    assert by_trader["cluster_name"].to_dict() == expected.labels.map(expected.names()).to_dict()
    profiles = pd.read_csv(io.StringIO(downloaded(at, f"{KEY}.profile_table.download")))
    assert len(profiles) == len(expected.profiles)
    assert np.allclose(profiles["z"], expected.profiles["z"], atol=0.006)  # the CSV rounds for reading


def test_a_density_run_that_finds_no_cluster_still_draws_and_explains(db_url, open_page):
    at = open_studio(open_page, **{f"{KEY}.algorithm": "HDBSCAN (density)", f"{KEY}.min_size": "100000"})
    assert not at.exception
    assert metric(at, "Clusters") in ("0", "1") and metric(at, "Noise").endswith("%")
    at.button(key=f"{KEY}.kyc.run").click().run()
    assert not at.exception
    assert any("needs at least two clusters" in i.value for i in at.info)
    at.button(key=f"{KEY}.diagnostics.run").click().run()
    assert not at.exception and "Silhouette on a sample" in captions(at)
