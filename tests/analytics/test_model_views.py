"""What the Predictions page reads (analytics.models.views) on DuckDB and PostgreSQL, from hand-made rows of
model_scores, model_runs, traders, transactions and segment membership: the table keeps exactly the
traders the sidebar filter, the bands and the net-deposit minimum allow, highest probability first, with
every band counted, net deposits over all history, and reasons in words with the scoring run's medians;
the external ids for a list segment are the same traders; a band rule names the score field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.filters import TraderFilter
from analytics.models.specs import BAND_NAMES, band_of
from analytics.models.views import ScoreFilter, band_field, band_rule, score_external_ids, score_table
from connectors import database, schema

MODEL_TABLES = (schema.model_scores, schema.score_runs, schema.model_runs, schema.model_jobs)
AT = datetime(2026, 10, 1)
# trader: (probability, country); 6 has no churn score, 8 is a test account.
CHURN = {1: (0.0625, "DE"), 2: (0.25, "GB"), 3: (0.375, "DE"), 4: (0.75, "GB"), 5: (0.5, "DE"), 8: (0.875, "DE")}
# trader: [(kind, status, usd)]: net deposits 1: 900, 3: 250, 4: -100, 5: 0 (declined only).
LEDGER = {1: [("deposit", "approved", 1000), ("withdrawal", "approved", 100), ("bonus", "approved", 500)],
          3: [("deposit", "approved", 250), ("withdrawal", "declined", 200)],
          4: [("deposit", "approved", 100), ("withdrawal", "approved", 200)],
          5: [("deposit", "declined", 5000)]}
NET = {1: 900.0, 2: 0.0, 3: 250.0, 4: -100.0, 5: 0.0, 8: 0.0}


def explanation(days: float) -> str:
    return json.dumps({"base": -1.0, "rest": 0.1, "rest_count": 50,
                       "reasons": [["days_since_last_login", days, 0.7], ["trades_30d", None, -0.2]]})


@pytest.fixture
def scored(engine) -> Iterator[sa.Engine]:
    with engine.begin() as conn:
        for table in MODEL_TABLES:
            conn.execute(table.delete())
        database.bulk_insert(conn, schema.traders, pd.DataFrame([
            {"trader_id": t, "external_id": f"T{t}", "first_name": f"F{t}", "last_name": "L", "is_test": t == 8,
             "registered_at": datetime(2026, 1, t), "country": CHURN.get(t, (0, "FR"))[1]} for t in range(1, 9)]))
        rows = [(t, kind, status, usd) for t, moves in LEDGER.items() for kind, status, usd in moves]
        database.bulk_insert(conn, schema.transactions, pd.DataFrame({
            "txn_id": range(1, len(rows) + 1), "external_id": [f"x{i}" for i in range(len(rows))],
            "trader_id": [r[0] for r in rows], "kind": [r[1] for r in rows], "status": [r[2] for r in rows],
            "amount": [r[3] for r in rows], "currency": "USD", "amount_usd": [r[3] for r in rows],
            "created_at": AT}))
        conn.execute(schema.model_runs.insert().values(
            run_id=1, model="churn", version=1, status="active", trained_at=AT, trained_by="test", cutoff=AT,
            snapshots="{}", params="{}", features="[]", metrics="{}", calibration="{}", summary="{}", reference="{}",
            medians=json.dumps({"days_since_last_login": 2.0}), artifact=""))
        p = [v[0] for v in CHURN.values()]
        database.bulk_insert(conn, schema.model_scores, pd.DataFrame({
            "model": "churn", "trader_id": list(CHURN), "run_id": 1, "score_run_id": 7, "probability": p,
            "band": band_of(p), "decile": 1, "explanation": [explanation(10.0 * t) for t in CHURN]}))
        conn.execute(schema.score_runs.insert().values(
            score_run_id=7, model="churn", run_id=1, as_of=AT, scored_at=AT, scored_by="test", traders=len(CHURN),
            duration_s=0.1, distribution="{}", drift="{}"))
        database.bulk_insert(conn, schema.segments, pd.DataFrame([{
            "segment_id": 1, "name": "Some", "kind": "list", "definition": "{}", "version": 1, "created_at": AT,
            "created_by": "t", "updated_at": AT, "updated_by": "t", "archived": False}]))
        database.bulk_insert(conn, schema.segment_members, pd.DataFrame({"segment_id": 1, "trader_id": [2, 3, 6],
                                                                         "entered_at": AT}))
    yield engine
    with engine.begin() as conn:
        for table in (*MODEL_TABLES, schema.segment_members, schema.segments):
            conn.execute(table.delete())


@pytest.mark.parametrize(("flt", "expected"), [
    (ScoreFilter("churn"), [4, 5, 3, 2, 1]),  # highest first; no test account, nobody unscored
    (ScoreFilter("churn", traders=TraderFilter(include_test=True)), [8, 4, 5, 3, 2, 1]),
    (ScoreFilter("churn", bands=("high",)), [5, 3]),
    (ScoreFilter("churn", bands=("very_high", "low")), [4, 1]),
    (ScoreFilter("churn", traders=TraderFilter(countries=("DE",))), [5, 3, 1]),
    (ScoreFilter("churn", traders=TraderFilter(segments=(1,))), [3, 2]),
    (ScoreFilter("churn", min_net_deposits=200.0), [3, 1]),
    (ScoreFilter("churn", min_net_deposits=0.0, bands=("medium", "very_high")), [2]),
    (ScoreFilter("churn", score_run_id=7, bands=("high",)), [5, 3]),
    (ScoreFilter("churn", score_run_id=8), []),  # another scoring's rows: none stored
    (ScoreFilter("deposit"), []),
])
def test_the_table_keeps_the_filtered_traders_highest_first(scored, flt, expected):
    table = score_table(scored, flt)
    assert table.rows["trader_id"].tolist() == expected
    assert table.total == len(expected)
    assert table.bands == {b: sum(band_of([CHURN[t][0]])[0] == b for t in expected) for b in BAND_NAMES}
    assert table.rows["net_deposits_usd"].tolist() == [NET[t] for t in expected]
    assert score_external_ids(scored, flt) == [f"T{t}" for t in expected]


def test_rows_carry_names_scores_and_reasons_in_words(scored):
    table = score_table(scored, ScoreFilter("churn"), limit=2)
    assert table.total == 5 and len(table.rows) == 2  # the limit cuts the rows, not the counts
    first = table.rows.iloc[0]
    assert (first["trader_external_id"], first["first_name"], first["country"], first["band"]) == ("T4", "F4", "GB",
                                                                                                   "very_high")
    assert first["probability"] == pytest.approx(0.75)
    assert first["reason_1"] == "Last login 40 days ago (typical: 2 days): raises churn risk (odds ×2)"
    assert first["reason_2"].endswith("lowers churn risk (odds ×0.82)")
    assert first["reason_3"] == ""  # two stored reasons


def test_a_band_rule_names_the_score_field(scored):
    assert band_field(scored, "churn") == "score.churn_band"
    assert band_field(scored, "ftd") is None  # no stored scores: no field
    assert band_rule("score.churn_band", ("very_high", "high")) == {
        "combine": "and", "items": [{"field": "score.churn_band", "op": "in", "value": ["high", "very_high"]}]}
