"""The read door (analytics.reading): every analytics read goes through it, and what it gives a read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics.reading import reading
from connectors.schema import traders

ANALYTICS = Path(__file__).resolve().parents[2] / "analytics"
# Calls that open a connection or a transaction of their own, or reach past SQLAlchemy's pool.
OPENERS = {"connect", "begin", "raw_connection", "create_engine"}


def test_no_analytics_module_opens_a_connection_except_through_the_door():
    offenders = []
    for path in sorted(ANALYTICS.rglob("*.py")):
        if path.name in ("reading.py", "writing.py"):  # the two doors
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in OPENERS:
                offenders.append(f"{path.relative_to(ANALYTICS.parent)}:{node.lineno} .{node.func.attr}(")
    assert not offenders, "open connections with analytics.reading.reading: " + ", ".join(offenders)


def test_a_read_is_read_only_time_limited_and_tagged_on_postgresql(engine, backend):
    with reading(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(traders)).scalar_one() == 0
        if backend == "postgres":
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar_one() == "on"
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "30s"
            name = conn.execute(sa.text("SHOW application_name")).scalar_one()
            assert name.startswith("traderlens:") and "test_a_read_is_read_only" in name  # the caller
    if backend == "postgres":
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"), reading(engine) as conn:
            conn.execute(traders.delete())
        with reading(engine, tag="kpis.compute_kpis") as conn:
            assert conn.execute(sa.text("SHOW application_name")).scalar_one() == "traderlens:kpis.compute_kpis"
    with engine.connect() as conn:  # the settings ended with the read's transaction
        if backend == "postgres":
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar_one() == "off"
