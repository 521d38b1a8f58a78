"""``cli.py train``, ``score`` and ``models list|promote`` on a database filled only by ``cli.py import``
of the documented CSVs (no simulator tables, no truth table), as a broker's cron job runs them, with
``--as-of`` in the past. On DuckDB: the commands' database work is the models' own, which
tests/analytics/test_models_*.py run on PostgreSQL too, and an import of CSVs by subprocesses costs
a minute per backend.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from connectors import database
from connectors.simulator import SimulationConfig, seed_database
from tests.broker_csvs import write_broker_csvs

END = date(2026, 11, 1)
AS_OF = date(2026, 10, 15)  # a cut-off inside the data: nothing from it on may be used


@pytest.fixture
def imported(cli_url, run_cli, tmp_path):
    """``cli_url`` filled by importing a simulated broker's CSVs (3,000 traders over 240 days)."""
    source = database.get_engine(f"duckdb:///{tmp_path / 'source.duckdb'}")
    database.upgrade_schema(source)
    seed_database(source, SimulationConfig(traders=3_000, days=240, seed=5, end=END))
    folder = tmp_path / "csv"
    folder.mkdir()
    paths = write_broker_csvs(source, folder)
    source.dispose()
    database.dispose_engines()
    for path in paths:
        result = run_cli("import", str(path), "--kind", path.stem, url=cli_url)
        assert result.returncode == 0, result.stderr
    return cli_url


@pytest.mark.parametrize("backend", ["duckdb"])
def test_train_score_promote_and_refusals_on_an_imported_broker(imported, run_cli, tmp_path):
    url = imported
    trained = run_cli("train", "--model", "churn", "--as-of", AS_OF.isoformat(), url=url)
    assert trained.returncode == 0, trained.stderr
    out = trained.stdout
    assert "Churn model v1 (run 1, active)" in out
    assert "data before 2026-10-15 00:00 UTC" in out and "calibration and test halves of 2026-09-15" in out
    for line in ("XGBoost, calibrated", "baseline (logistic)", "random split (flatters)"):
        assert line in out

    scores = tmp_path / "churn.csv"
    scored = run_cli("score", "--model", "churn", "--as-of", AS_OF.isoformat(), "--out", str(scores), url=url)
    assert scored.returncode == 0, scored.stderr
    assert "as of 2026-10-15 00:00 UTC" in scored.stdout
    frame = pd.read_csv(scores)
    assert list(frame.columns[:4]) == ["trader_external_id", "probability", "band", "decile"]
    assert {"reason_1", "reason_1_feature", "reason_1_log_odds"} <= set(frame.columns)
    assert len(frame) > 100 and frame["trader_external_id"].is_unique
    assert frame["probability"].between(0, 1).all() and frame["decile"].between(1, 10).all()
    assert frame["reason_1"].str.contains(r"(?:raises|lowers) churn risk \(odds ×", regex=True).all()
    assert set(frame["band"]) <= {"low", "medium", "high", "very_high"}

    again = run_cli("train", "--model", "churn", "--as-of", AS_OF.isoformat(), "--snapshots", "2", url=url)
    assert again.returncode == 0, again.stderr
    assert "v2 (run 2, candidate)" in again.stdout and "models promote 2" in again.stdout
    listed = json.loads(run_cli("models", "list", url=url).stdout)
    assert [(r["version"], r["status"]) for r in listed] == [(2, "candidate"), (1, "active")]
    rescored = run_cli("score", "--model", "churn", "--as-of", AS_OF.isoformat(), url=url)
    assert "v2 (run 2) is a newer candidate" in rescored.stderr  # the active model still scores
    promoted = run_cli("models", "promote", "2", url=url)
    assert promoted.returncode == 0 and "churn v2 (run 2) is now the active churn model" in promoted.stdout
    listed = json.loads(run_cli("models", "list", "--format", "json", url=url).stdout)
    assert [(r["version"], r["status"]) for r in listed] == [(2, "active"), (1, "retired")]
    refused = run_cli("models", "promote", "2", url=url)
    assert refused.returncode == 1 and "already the active model" in refused.stderr

    # Refusals, each one line naming what is wrong (one import per backend serves them too).
    unknown = run_cli("train", "--model", "whales", url=url)
    assert unknown.returncode == 1 and "Unknown model 'whales': choose one of churn, deposit, ftd" in unknown.stderr
    early = run_cli("train", "--model", "churn", "--as-of", "2026-05-01", url=url)
    assert early.returncode == 1
    assert "the cut-off must be" in early.stderr and "Traceback" not in early.stderr
    unscored = run_cli("score", "--model", "deposit", url=url)
    assert unscored.returncode == 1 and "no active deposit model yet" in unscored.stderr
