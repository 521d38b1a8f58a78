"""The database layer: migrations, the trader_events view, bulk loads and clear failures."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connectors import database, schema
from connectors.errors import DatabaseBusy, DatabaseUnavailable

HEAD = "0010"  # the newest migration


def _catalog(engine: sa.Engine) -> tuple[dict[str, set[tuple[str, bool]]], set[str], set[str]]:
    """Columns (name, nullable) per table, index names and view names, read from the catalog.

    information_schema serves both backends; SQLAlchemy's reflection does not work on DuckDB
    (duckdb_engine inherits PostgreSQL's pg_catalog queries).
    """
    with engine.connect() as conn:
        cols = conn.execute(sa.text(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema IN ('main', 'public')")).all()
        views = {r[0] for r in conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'VIEW' AND table_schema IN ('main', 'public')"))}
        index_sql = ("SELECT index_name FROM duckdb_indexes()" if engine.dialect.name == "duckdb"
                     else "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        indexes = {r[0] for r in conn.execute(sa.text(index_sql))}
    tables: dict[str, set[tuple[str, bool]]] = {}
    for table, column, nullable in cols:
        tables.setdefault(table, set()).add((column, nullable == "YES"))
    return tables, indexes, views


def test_migrations_create_exactly_the_declared_schema(engine):
    assert database.schema_revision(engine) == HEAD
    tables, indexes, views = _catalog(engine)
    for table in schema.metadata.sorted_tables:
        declared = {(c.name, bool(c.nullable)) for c in table.columns}
        assert tables.get(table.name) == declared, table.name
        for ix in table.indexes:
            assert ix.name in indexes, ix.name
    assert "trader_events" in views
    assert {c.name for c in schema.trader_events.columns} == {c for c, _ in tables["trader_events"]}
    for table in schema.DATA_TABLES[1:]:
        time_col = schema.TIME_COLUMNS[table.name]
        assert any(list(ix.columns.keys()) == ["trader_id", time_col] for ix in table.indexes), table.name
    if engine.dialect.name == "postgresql":  # Alembic's own drift check, exact on PostgreSQL
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_upgrading_twice_is_a_no_op_and_downgrade_removes_everything(engine):
    database.upgrade_schema(engine)
    assert database.schema_revision(engine) == HEAD
    command.downgrade(database.alembic_config(engine), "base")
    tables, _, views = _catalog(engine)
    assert not set(tables) & {t.name for t in schema.DATA_TABLES} and not views
    database.upgrade_schema(engine)
    assert database.schema_revision(engine) == HEAD


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _load_small_broker(conn) -> None:
    database.bulk_insert(conn, schema.traders, pd.DataFrame({
        "trader_id": [1, 2, 3], "external_id": ["T1", "T2", "L3"],
        "lead_at": [_ts("2026-01-01 09:00"), _ts("2026-01-02 10:00"), _ts("2026-01-03 11:00")],
        "registered_at": [_ts("2026-01-01 10:00"), _ts("2026-01-02 10:00"), None],
        "country": ["DE", "GB", "ZA"], "email": ["a@x.example", "", None],
    }))
    database.bulk_insert(conn, schema.accounts, pd.DataFrame({
        "account_id": [10], "external_id": ["A10"], "trader_id": [1], "platform": ["MT5"], "login": ["5001"],
        "currency": ["EUR"], "leverage": [30], "is_demo": [False], "opened_at": [_ts("2026-01-01 12:00")],
    }))
    database.bulk_insert(conn, schema.kyc_events, pd.DataFrame({
        "kyc_event_id": [1, 2, 3, 4], "external_id": ["K1", "K2", "K3", "K4"], "trader_id": [1, 1, 1, 2],
        "status": ["submitted", "rejected", "resubmission", "submitted"],
        "occurred_at": [_ts("2026-01-01 11:00"), _ts("2026-01-01 12:00"), _ts("2026-01-02 09:00"),
                        _ts("2026-01-02 11:00")],
    }))
    # Two approved deposits at the same second: the FTD is the one with the lower txn_id.
    database.bulk_insert(conn, schema.transactions, pd.DataFrame({
        "txn_id": [7, 5, 6, 8, 9], "external_id": ["X7", "X5", "X6", "X8", "X9"], "trader_id": [1, 1, 1, 1, 2],
        "kind": ["deposit", "deposit", "deposit", "withdrawal", "bonus"],
        "status": ["approved", "approved", "declined", "approved", "approved"],
        "amount": [100.0, 250.5, 80.0, 40.0, 10.0], "currency": ["EUR"] * 5,
        "amount_usd": [108.0, 270.54, 86.4, 43.2, 10.8],
        "created_at": [_ts("2026-01-03 10:00"), _ts("2026-01-03 10:00"), _ts("2026-01-03 09:55"),
                       _ts("2026-01-09 10:00"), _ts("2026-01-04 10:00")],
    }))
    database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
        "portal_event_id": [1], "external_id": ["P1"], "trader_id": [1], "event": ["deposit_page_view"],
        "occurred_at": [_ts("2026-01-03 09:50")], "properties": ['{"step": "cashier"}'],
    }))
    database.bulk_insert(conn, schema.sessions, pd.DataFrame({
        "session_id": [1], "external_id": ["S1"], "trader_id": [2], "started_at": [_ts("2026-01-05 20:00")],
        "duration_s": [600], "surface": ["mobile"],
    }))


def test_trader_events_view_unifies_every_source_under_one_name_each(engine):
    with engine.begin() as conn:
        _load_small_broker(conn)
    te = schema.trader_events
    with engine.connect() as conn:
        rows = conn.execute(sa.select(te.c.trader_id, te.c.event, te.c.occurred_at, te.c.source,
                                      sa.cast(te.c.amount_usd, sa.Double), te.c.properties)
                            .order_by(te.c.trader_id, te.c.occurred_at, te.c.event)).all()
    events = [(r[0], r[1]) for r in rows]
    assert events == [
        (1, "lead_captured"), (1, "registered"), (1, "kyc_submitted"), (1, "kyc_rejected"),
        (1, "kyc_submitted"), (1, "deposit_page_view"), (1, "deposit_declined"),
        (1, "deposit"), (1, "deposit"), (1, "ftd"), (1, "withdrawal"),
        (2, "lead_captured"), (2, "registered"), (2, "kyc_submitted"), (2, "login"),
        (3, "lead_captured"),
    ]
    ftd = [r for r in rows if r[1] == "ftd"]
    assert len(ftd) == 1 and ftd[0][4] == pytest.approx(270.54)  # txn 5 beats txn 7 at the same second
    page_view = next(r for r in rows if r[1] == "deposit_page_view")
    assert page_view[3] == "portal_events" and '"cashier"' in page_view[5]
    assert not [r for r in rows if r[1] == "bonus"], "bonuses are not deposits"


def test_the_newest_view_migration_holds_the_sql_the_schema_generates():
    # The view is generated from connectors.schema's event definitions; its migration freezes that
    # SQL. Whitespace aside, the newest migration that creates the view must hold exactly it.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(database.MIGRATIONS_DIR))
    frozen = next(script.module.TRADER_EVENTS_VIEW for script in scripts.walk_revisions()
                  if hasattr(script.module, "TRADER_EVENTS_VIEW"))
    assert frozen.split() == schema.trader_events_view_sql().split()


def test_postgresql_reads_only_the_table_behind_a_filtered_view_event(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    te = schema.trader_events.c
    query = sa.select(te.trader_id, te.occurred_at).where(te.event == "trade")
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()

    def scanned(node: dict) -> set[str]:
        return ({node["Relation Name"]} if "Relation Name" in node else set()).union(
            *(scanned(child) for child in node.get("Plans", [])))

    # Every other core branch names another event and is dropped; portal events may carry any name.
    assert scanned(plan[0]["Plan"]) == {"trades", "portal_events"}


def test_bulk_insert_keeps_nulls_apart_from_values_and_money_exact(engine):
    with engine.begin() as conn:
        _load_small_broker(conn)
    with engine.connect() as conn:
        emails = dict(conn.execute(sa.select(schema.traders.c.external_id, schema.traders.c.email)).all())
        total = conn.execute(sa.select(sa.func.sum(schema.transactions.c.amount))).scalar_one()
    assert emails["T1"] == "a@x.example" and emails["L3"] is None
    assert float(total) == pytest.approx(480.5)


def test_unreachable_postgres_raises_database_unavailable_with_url_and_reason():
    url = "postgresql+psycopg2://nobody:secret@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailable) as info:
        database.get_engine(url)
    message = str(info.value)
    assert "127.0.0.1:1/nowhere" in message and "secret" not in message
    assert "Traceback" not in message and len(message.splitlines()) == 1


def test_unsupported_or_malformed_urls_are_refused_clearly():
    with pytest.raises(DatabaseUnavailable, match="only duckdb"):
        database.get_engine("mysql+pymysql://root@127.0.0.1/test")
    with pytest.raises(DatabaseUnavailable, match="not a valid database URL"):
        database.get_engine("this is not a url")


def test_a_duckdb_file_held_by_another_process_raises_database_busy(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADERLENS_DUCKDB_WAIT_S", "1")  # a writer waits this long for the holder (default 30 s)
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('create table t(x int)');"
        "print('ready', flush=True); time.sleep(60)"), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseBusy, match="another process"):
            database.get_engine(f"duckdb:///{path}")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    assert database.get_engine(f"duckdb:///{path}") is not None
    database.dispose_engines()


def test_default_url_is_the_embedded_duckdb_file(monkeypatch):
    monkeypatch.delenv("TRADERLENS_DB_URL", raising=False)
    assert database.database_url() == f"duckdb:///{database.DEFAULT_DUCKDB_PATH}"
    monkeypatch.setenv("TRADERLENS_DB_URL", "postgresql+psycopg2://u@h/db")
    assert database.database_url() == "postgresql+psycopg2://u@h/db"
