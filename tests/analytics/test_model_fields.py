"""Scores as segment rule fields (analytics.models.fields) on DuckDB and PostgreSQL: each operator on
score.<model>, score.<model>_band and score.<model>_decile selects exactly its traders (a trader
outside a model's population has an empty value), saved rule segments follow a new scoring when
refreshed (in process and by ``cli.py segments refresh``, which never imports the module itself),
a model without stored scores offers no field, and a value that cannot be used is refused.

The scores are hand-made rows of model_scores and score_runs (what scoring writes), with
probabilities exact in binary, so DuckDB's 4-byte FLOAT column and PostgreSQL's double hold the same
numbers. tests/app/test_trader360_scores.py checks the fields against a trained and scored model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import segments as seg
from analytics.models import fields as score_fields
from analytics.models.scoring import BAND_NAMES, band_of
from analytics.reading import reading
from connectors import database, schema

MODEL_TABLES = (schema.model_scores, schema.score_runs, schema.model_runs, schema.model_jobs)
SEGMENT_TABLES = (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments)
AS_OF = datetime(2026, 10, 1)
EXPLANATION = json.dumps({"base": -1.0, "rest": 0.0, "rest_count": 0, "reasons": []})

# trader: (churn probability, churn decile) / (deposit probability, deposit decile); 6 and 7 have no
# churn score (outside its population), 8 is a test account (never a member).
CHURN = {1: (0.0625, 5), 2: (0.25, 3), 3: (0.375, 2), 4: (0.75, 1), 5: (0.5, 2), 8: (0.875, 1)}
DEPOSIT = {2: (0.5, 1), 6: (0.0625, 2)}
EVERYONE = {1, 2, 3, 4, 5, 6, 7}


def write_traders(conn) -> None:
    database.bulk_insert(conn, schema.traders, pd.DataFrame([
        {"trader_id": t, "external_id": f"T{t}", "first_name": "A", "last_name": "B", "is_test": t == 8,
         "registered_at": datetime(2026, 1, t)} for t in range(1, 9)]))


def write_scores(conn, model: str, scores: dict[int, tuple[float, int]], score_run_id: int) -> None:
    """A scoring of ``model`` as scoring writes it: its rows replaced and a score_runs row added."""
    conn.execute(schema.model_scores.delete().where(schema.model_scores.c.model == model))
    if scores:
        p = [v[0] for v in scores.values()]
        database.bulk_insert(conn, schema.model_scores, pd.DataFrame({
            "model": model, "trader_id": list(scores), "run_id": 1, "score_run_id": score_run_id,
            "probability": p, "band": band_of(p), "decile": [v[1] for v in scores.values()],
            "explanation": EXPLANATION}))
    conn.execute(schema.score_runs.insert().values(
        score_run_id=score_run_id, model=model, run_id=1, as_of=AS_OF, scored_at=AS_OF, scored_by="test",
        traders=len(scores), duration_s=0.1, distribution="{}", drift="{}"))


def clear_models(engine) -> None:
    # tests/conftest.py's PostgreSQL emptying does not know the model tables (yet): leave none behind.
    with engine.begin() as conn:
        for table in MODEL_TABLES:
            conn.execute(table.delete())


@pytest.fixture
def scored(engine) -> Iterator[sa.Engine]:
    """Eight traders, churn and deposit scores; no model run rows (the fields do not need them)."""
    clear_models(engine)
    with engine.begin() as conn:
        for table in SEGMENT_TABLES:
            conn.execute(table.delete())
        write_traders(conn)
        write_scores(conn, "churn", CHURN, 1)
        write_scores(conn, "deposit", DEPOSIT, 2)
    yield engine
    clear_models(engine)


def members(engine, rule: dict) -> set[int]:
    with reading(engine) as conn:
        return set(conn.execute(seg.rule_members(seg.rule_from_dict(rule), seg.read_catalog(conn))).scalars())


def cond(field: str, op: str, value=None) -> dict:
    return {"field": field, "op": op} | ({} if value is None else {"value": value})


def one(field: str, op: str, value=None) -> dict:
    return {"combine": "and", "items": [cond(field, op, value)]}


CASES = [
    (one("score.churn", ">", 0.375), {4, 5}),
    (one("score.churn", ">=", 0.375), {3, 4, 5}),
    (one("score.churn", "<", 0.3), {1, 2}),  # 6 and 7 have no score: never below anything
    (one("score.churn", "<=", 0.25), {1, 2}),
    (one("score.churn", "between", [0.25, 0.5]), {2, 3, 5}),
    (one("score.churn", "=", 0.375), {3}),
    (one("score.churn", "!=", 0.375), {1, 2, 4, 5, 6, 7}),  # the exact complement: empty values kept
    (one("score.churn", "is empty"), {6, 7}),
    (one("score.churn", "is not empty"), {1, 2, 3, 4, 5}),
    (one("score.churn_band", "=", "high"), {3, 5}),
    (one("score.churn_band", "in", ["high", "very_high"]), {3, 4, 5}),
    (one("score.churn_band", "!=", "high"), {1, 2, 4, 6, 7}),
    (one("score.churn_band", "not in", ["low"]), {2, 3, 4, 5, 6, 7}),
    (one("score.churn_band", "is empty"), {6, 7}),
    (one("score.churn_decile", "<=", 2), {3, 4, 5}),
    (one("score.churn_decile", "=", 1), {4}),
    (one("score.churn_decile", "between", [3, 10]), {1, 2}),
    (one("score.churn_decile", ">", 9), set()),
    (one("score.deposit", ">", 0.25), {2}),
    (one("score.deposit_band", "=", "low"), {6}),
    (one("score.deposit_decile", "!=", 1), {1, 3, 4, 5, 6, 7}),
    ({"combine": "and", "items": [cond("score.churn_band", "=", "medium"), cond("score.deposit", ">", 0.25)]}, {2}),
    ({"combine": "or", "items": [cond("score.churn_decile", "=", 1), cond("score.deposit_band", "=", "low")]}, {4, 6}),
    ({"combine": "and", "items": [cond("score.churn", ">", 0.3), cond("score.churn_band", "!=", "very_high"),
                                  cond("trader.external_id", "!=", "T3")]}, {5}),
]


def test_each_operator_on_score_fields_selects_exactly_its_traders(scored):
    for rule, expected in CASES:
        assert members(scored, rule) == expected, rule


def test_the_fields_say_what_they_mean_and_conditions_on_one_model_share_one_join(scored):
    catalog = seg.load_catalog(scored)
    names = [f.name for f in catalog.fields if f.name.startswith("score.")]
    assert names == ["score.churn", "score.churn_band", "score.churn_decile",
                     "score.deposit", "score.deposit_band", "score.deposit_decile"]
    p, band, decile = (catalog.get(n) for n in score_fields.field_names("churn"))
    assert (p.type, band.type, decile.type) == ("number", "choice", "number")
    assert band.choices == BAND_NAMES and band.choice_label("very_high") == "Very high (60% or more)"
    assert p.label == "Churn probability (30 days)" and p.group == "Scores"
    for f in (p, band, decile):
        assert "within 30 days" in f.description and "as of 01 Oct 2026" in f.description
        assert "Active traders" in f.description and "no score" in f.description  # who has no value
    rule = seg.validate_rule(seg.rule_from_dict({"combine": "or", "items": [
        cond("score.churn", ">", 0.5), cond("score.churn_band", "=", "high"), cond("score.deposit", "<", 0.1)]}),
        catalog)
    from_, where, _ = seg.compile_rule(rule, catalog)
    sql = str(sa.select(schema.traders.c.trader_id).select_from(from_).where(where).compile(dialect=scored.dialect))
    assert sql.count("JOIN") == 2 and "scores_churn" in sql and "scores_deposit" in sql
    assert "'high'" not in sql and "0.5" not in sql and "'churn'" not in sql  # every value bound


def test_a_model_without_stored_scores_offers_no_fields(scored):
    with scored.begin() as conn:
        write_scores(conn, "churn", {}, 3)  # a scoring whose population was empty: no rows
    names = {f.name for f in seg.load_catalog(scored).fields}
    assert not any(n.startswith("score.churn") for n in names)
    assert not any(n.startswith("score.ftd") for n in names)  # never scored at all
    assert {"score.deposit", "score.deposit_band", "score.deposit_decile"} <= names
    clear_models(scored)
    assert not any(f.name.startswith("score.") for f in seg.load_catalog(scored).fields)
    with pytest.raises(seg.RuleRejected, match=r"the churn model has no stored scores yet"):
        members(scored, one("score.churn", ">", 0.5))


REFUSED = [
    (one("score.churn_band", "=", "hot"), "'hot' is not one of its values (low, medium, high, very_high)"),
    (one("score.churn_band", "=", "High (30–60%)"), "is not one of its values"),  # the label is not the value
    (one("score.churn_band", "<", "high"), "'<' does not apply to a choice field"),
    (one("score.churn", ">", "30%"), "expects a number, not '30%'"),
    (one("score.churn", "between", [0.9, 0.1]), "the low end (0.9) is above the high end (0.1)"),
    (one("score.churn_decile", "=", "top"), "expects a number"),
    (one("score.churn", "in", [0.5]), "'in' does not apply to a number field"),
    # A percentage typed for a probability would select nobody without a word.
    (one("score.churn", ">", 30), "takes values from 0 to 1 (probability from 0 to 1: 0.3 is 30%), not 30"),
    (one("score.churn_decile", "<=", 11), "takes values from 1 to 10"),
    (one("score.ftd", ">", 0.5), "the ftd model has no stored scores yet (train and score it on the Predictions "
                                 "page, or `python cli.py score --model ftd`)"),
    (one("score.churn_bands", "=", "high"), "unknown field 'score.churn_bands'"),
]


def test_a_value_that_cannot_be_used_is_refused_with_its_reason(scored):
    for rule, message in REFUSED:
        with pytest.raises(seg.RuleRejected) as refused:
            members(scored, rule)
        assert message in str(refused.value) and str(refused.value).startswith("Condition 1 ("), rule


def test_a_saved_rule_segment_follows_a_new_scoring_when_refreshed(scored):
    rule = one("score.churn_band", "in", ["high", "very_high"])
    created = seg.create_segment(scored, name="Churn risk", kind="rules", definition=rule, created_by="test")
    assert set(seg.member_ids(scored, created.segment_id)) == {3, 4, 5}
    with scored.begin() as conn:  # the next scoring: 3 falls to low, 1 rises, 6 enters the population
        write_scores(conn, "churn", {1: (0.75, 1), 3: (0.0625, 4), 4: (0.75, 1), 5: (0.5, 2), 6: (0.375, 3)}, 3)
    [result] = seg.refresh_segments(scored)
    assert result.error is None and (result.size, result.entered, result.left) == (4, 2, 1)
    assert set(seg.member_ids(scored, created.segment_id)) == {1, 4, 5, 6}
    [again] = seg.refresh_segments(scored)
    assert (again.entered, again.left) == (0, 0)


def test_cli_segments_refresh_reads_score_fields(cli_url, run_cli):
    """The command line imports no score module itself: the catalog it reads must offer the fields."""
    engine = database.get_engine(cli_url)
    database.upgrade_schema(engine)
    clear_models(engine)
    with engine.begin() as conn:
        write_traders(conn)
        write_scores(conn, "churn", CHURN, 1)
    seg.create_segment(engine, name="Top churn decile", kind="rules",
                       definition=one("score.churn_decile", "=", 1), created_by="test")
    with engine.begin() as conn:
        write_scores(conn, "churn", {**CHURN, 3: (0.75, 1)}, 2)
    engine.dispose()
    database.dispose_engines()  # the CLI must be the one process holding a DuckDB file
    try:
        result = run_cli("segments", "refresh", url=cli_url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Top churn decile: 2 members (+1 entered, -0 left)" in result.stdout
    finally:
        clear_models(database.get_engine(cli_url))
        database.dispose_engines()
