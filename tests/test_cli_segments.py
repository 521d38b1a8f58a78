"""``cli.py features`` and ``cli.py segments list|refresh|export`` on a database filled only by
``cli.py import`` of the documented CSVs (no simulator tables), as a broker's cron job runs them.
DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from analytics.features import compute_features, ensure_features
from analytics.segments import create_segment
from connectors import database
from connectors.simulator import SimulationConfig, seed_database
from tests.broker_csvs import write_broker_csvs

END = date(2026, 11, 1)


@pytest.fixture
def imported(cli_url, run_cli, tmp_path):
    """``cli_url`` filled by importing a small simulated broker's CSVs; (url, the source's features
    as of END by external id)."""
    source = database.get_engine(f"duckdb:///{tmp_path / 'source.duckdb'}")
    database.upgrade_schema(source)
    seed_database(source, SimulationConfig(traders=200, days=90, seed=3, end=END))
    expected = compute_features(source, as_of=END).frame
    with source.connect() as conn:
        ids = pd.read_sql("SELECT trader_id, external_id FROM traders", conn).set_index("trader_id")["external_id"]
    expected.index = expected.index.map(ids)
    folder = tmp_path / "csv"
    folder.mkdir()
    paths = write_broker_csvs(source, folder)
    source.dispose()
    database.dispose_engines()
    for path in paths:
        result = run_cli("import", str(path), "--kind", path.stem, url=cli_url)
        assert result.returncode == 0, result.stderr
    return cli_url, expected


def test_features_and_segments_of_an_imported_broker(imported, run_cli, tmp_path):
    """One import per backend (the slow part) serves every command's check."""
    url, expected = imported
    _check_features(url, expected, run_cli, tmp_path)
    _check_missing_folder(url, run_cli, tmp_path)
    _check_segments(url, expected, run_cli, tmp_path)
    _check_clustering(url, expected, run_cli, tmp_path)


def _check_features(url, expected, run_cli, tmp_path):
    out = tmp_path / "features.csv"
    result = run_cli("features", "--as-of", END.isoformat(), "--out", str(out), url=url)
    assert result.returncode == 0, result.stderr
    assert "from data before 2026-11-01 00:00 UTC" in result.stderr
    got = pd.read_csv(out).set_index("trader_external_id")
    assert got.index.is_unique and set(got.index) == set(expected.index)
    # What the broker's files say is what the simulator's database said, feature by feature.
    numeric = [c for c in expected.columns if c != "kyc_state"]
    pd.testing.assert_frame_equal(got.loc[expected.index, numeric], expected[numeric], check_names=False,
                                  rtol=1e-6)
    assert (got.loc[expected.index, "kyc_state"] == expected["kyc_state"]).all()


def _check_missing_folder(url, run_cli, tmp_path):
    result = run_cli("features", "--out", str(tmp_path / "missing" / "f.csv"), url=url)
    assert result.returncode == 1 and "folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()


def _check_segments(url, expected, run_cli, tmp_path):
    rule = {"combine": "and", "items": [{"field": "feature.deposits_count", "op": ">=", "value": 1}]}
    engine = database.get_engine(url)
    ensure_features(engine)  # what the app does before its rule builder offers features
    create_segment(engine, name="Depositors", kind="rules", definition=rule, created_by="test")
    engine.dispose()
    database.dispose_engines()

    refreshed = run_cli("segments", "refresh", url=url)
    assert refreshed.returncode == 0, refreshed.stderr
    depositors = int((expected["deposits_count"] >= 1).sum())
    assert f"Depositors: {depositors:,} members (+0 entered, -0 left)" in refreshed.stdout

    listed = run_cli("segments", "list", url=url)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["name"] == "Depositors" and row["size"] == depositors and row["kind"] == "rules"

    out = tmp_path / "members.csv"
    exported = run_cli("segments", "export", "Depositors", "--out", str(out), url=url)
    assert exported.returncode == 0, exported.stderr
    members = pd.read_csv(out)
    assert set(members["trader_external_id"]) == set(expected.index[expected["deposits_count"] >= 1])

    unknown = run_cli("segments", "export", "Nope", "--out", str(out), url=url)
    assert unknown.returncode == 1 and "Nope" in unknown.stderr and "Traceback" not in unknown.stderr


def _check_clustering(url, expected, run_cli, tmp_path):
    """``cli.py segment``: one row per trader who traded, the diagnostics printed; saved twice under one
    name, the second run continues the first's ids and, on the same data and seed, gives the same file."""
    files = [tmp_path / "clusters1.csv", tmp_path / "clusters2.csv"]
    outputs = []
    for out in files:
        result = run_cli("segment", "--k", "3", "--seed", "4", "--out", str(out), "--save", "nightly", url=url)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert "silhouette" in outputs[0] and "stability" in outputs[0] and "saved as clustering run 1" in outputs[0]
    assert "cluster ids continuing run 1" in outputs[1]
    first, second = (pd.read_csv(f) for f in files)
    assert list(first.columns) == ["trader_external_id", "cluster", "cluster_name"]
    assert set(first["trader_external_id"]) == set(expected.index[expected["trades_total"] > 0])
    assert first["cluster"].nunique() == 3 and first["cluster_name"].notna().all()
    pd.testing.assert_frame_equal(first, second)

    bad = run_cli("segment", "--k", "3", "--features", "trades_per_week,shoe_size", url=url)
    assert bad.returncode == 2 and "shoe_size" in bad.stderr and "Traceback" not in bad.stderr
