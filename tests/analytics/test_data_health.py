"""Table summary, data-quality checks and import history on DuckDB and PostgreSQL.

Rows are built by hand so every expected count below can be checked by reading the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import data_health
from connectors import schema
from connectors.schema import (
    accounts,
    imports,
    kyc_events,
    portal_events,
    sessions,
    traders,
    trades,
    transactions,
)

D = datetime


def trader(trader_id: int, registered_at: datetime | None, *, lead_at: datetime | None = None,
           email: str | None = None) -> dict:
    return {"trader_id": trader_id, "external_id": f"T{trader_id}", "lead_at": lead_at,
            "registered_at": registered_at, "email": email}


def account(account_id: int, trader_id: int, opened_at: datetime) -> dict:
    return {"account_id": account_id, "external_id": f"A{account_id}", "trader_id": trader_id,
            "platform": "MT5", "login": str(account_id), "currency": "USD", "is_demo": False,
            "opened_at": opened_at}


def txn(txn_id: int, trader_id: int, kind: str, created_at: datetime, amount: float = 100.0, *,
        status: str = "approved", account_id: int | None = None,
        amount_usd: float | None = None) -> dict:
    return {"txn_id": txn_id, "external_id": f"X{txn_id}", "trader_id": trader_id,
            "account_id": account_id, "kind": kind, "status": status, "amount": amount,
            "currency": "USD", "amount_usd": amount if amount_usd is None else amount_usd,
            "created_at": created_at}


def trade(trade_id: int, trader_id: int, opened_at: datetime, closed_at: datetime, *,
          lots: float = 1.0, account_id: int | None = None) -> dict:
    return {"trade_id": trade_id, "external_id": f"D{trade_id}", "account_id": account_id,
            "trader_id": trader_id, "symbol": "EURUSD", "side": "buy", "lots": lots,
            "notional_usd": 100_000.0, "opened_at": opened_at, "closed_at": closed_at,
            "open_price": 1.1, "close_price": 1.2, "profit_usd": 10.0, "commission_usd": 0.0,
            "swap_usd": 0.0}


def session(session_id: int, trader_id: int, started_at: datetime, duration_s: int = 60) -> dict:
    return {"session_id": session_id, "external_id": f"S{session_id}", "trader_id": trader_id,
            "started_at": started_at, "duration_s": duration_s, "surface": "web"}


def kyc(kyc_event_id: int, trader_id: int, occurred_at: datetime, status: str = "approved") -> dict:
    return {"kyc_event_id": kyc_event_id, "external_id": f"K{kyc_event_id}", "trader_id": trader_id,
            "status": status, "occurred_at": occurred_at}


def portal(portal_event_id: int, trader_id: int, occurred_at: datetime,
           event: str = "deposit_page_viewed") -> dict:
    return {"portal_event_id": portal_event_id, "external_id": f"P{portal_event_id}",
            "trader_id": trader_id, "event": event, "occurred_at": occurred_at, "properties": None}


def insert(engine: sa.Engine, rows: dict[sa.Table, list[dict]]) -> None:
    with engine.begin() as conn:
        for table in schema.DATA_TABLES:  # parents first
            if rows.get(table):
                conn.execute(table.insert(), rows[table])


@contextmanager
def foreign_keys_off(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction in which orphan rows can be written, as happens when FKs are absent."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Transaction-scoped: FK triggers don't fire; the shared test database keeps its FKs.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            # DuckDB cannot drop a constraint: recreate the child tables without any (this file
            # belongs to this test alone). Views bind by name, so trader_events keeps working.
            for table in reversed(schema.DATA_TABLES):
                if table is traders:
                    continue
                name = table.name
                conn.execute(sa.text(f"CREATE TABLE tmp_{name} AS SELECT * FROM {name} LIMIT 0"))
                conn.execute(sa.text(f"DROP TABLE {name}"))
                conn.execute(sa.text(f"ALTER TABLE tmp_{name} RENAME TO {name}"))
        yield conn


def insert_without_foreign_keys(engine: sa.Engine, rows: dict[sa.Table, list[dict]]) -> None:
    with foreign_keys_off(engine) as conn:
        for table in schema.DATA_TABLES:
            if rows.get(table):
                conn.execute(table.insert(), rows[table])


CLEAN_ROWS: dict[sa.Table, list[dict]] = {
    traders: [trader(1, D(2026, 1, 1), lead_at=D(2025, 12, 31), email="ann@example.com"),
              trader(2, D(2026, 1, 5), email="bob@example.com")],
    accounts: [account(10, 1, D(2026, 1, 1, 9))],
    kyc_events: [kyc(1, 1, D(2026, 1, 1, 10))],
    transactions: [txn(100, 1, "deposit", D(2026, 1, 2, 10), 500, account_id=10),
                   txn(101, 1, "withdrawal", D(2026, 1, 10), 50, account_id=10),
                   txn(102, 1, "bonus_cancel", D(2026, 1, 3), -20),  # negative is fine for a bonus
                   txn(103, 2, "deposit", D(2026, 1, 6), 1000, status="declined")],
    trades: [trade(1000, 1, D(2026, 1, 3), D(2026, 1, 4), account_id=10)],
    sessions: [session(1, 1, D(2026, 1, 2, 8))],
    portal_events: [portal(1, 2, D(2026, 1, 5, 12))],
}
CLEAN_NOW = D(2026, 1, 11)


def test_table_summary_counts_rows_and_time_ranges(engine):
    insert(engine, CLEAN_ROWS)

    summary = data_health.compute_table_summary(engine, now=CLEAN_NOW).set_index("table")

    assert list(summary.index) == [t.name for t in schema.DATA_TABLES] + ["trader_events"]
    assert summary["rows"].to_dict() == {
        "traders": 2, "accounts": 1, "kyc_events": 1, "transactions": 4, "trades": 1,
        "sessions": 1, "portal_events": 1,
        # lead 1 + registered 2 + kyc 1 + deposit/withdrawal/declined 3 + ftd 1 + trade + login + portal
        "trader_events": 11,
    }
    assert summary.loc["traders", "first_at"] == pd.Timestamp(2026, 1, 1)
    assert summary.loc["traders", "last_at"] == pd.Timestamp(2026, 1, 5)
    assert summary.loc["traders", "freshness_hours"] == pytest.approx(6 * 24)
    assert summary.loc["transactions", "last_at"] == pd.Timestamp(2026, 1, 10)
    assert summary.loc["trader_events", "kind"] == "view"
    assert summary.loc["trader_events", "first_at"] == pd.Timestamp(2025, 12, 31)
    assert summary.loc["trader_events", "freshness_hours"] == pytest.approx(24)


def test_table_summary_of_an_empty_database_has_zero_rows_and_no_dates(engine):
    summary = data_health.compute_table_summary(engine)

    assert summary.columns.tolist() == data_health.SUMMARY_COLUMNS
    assert summary["rows"].sum() == 0
    assert summary["last_at"].isna().all()
    assert summary["freshness_hours"].isna().all()


def test_quality_checks_on_clean_data_are_all_ok(engine):
    insert(engine, CLEAN_ROWS)

    checks = data_health.compute_quality_checks(engine, now=CLEAN_NOW)

    assert checks.columns.tolist() == data_health.CHECK_COLUMNS
    assert (checks["severity"] == "ok").all(), checks[checks["problem_rows"] > 0]
    assert checks["problem_rows"].sum() == 0
    assert checks["sample_ids"].map(len).sum() == 0


def test_quality_checks_on_an_empty_database_are_all_ok(engine):
    checks = data_health.compute_quality_checks(engine)

    assert len(checks) == len(data_health.quality_checks(datetime(2026, 1, 1)))
    assert (checks["severity"] == "ok").all()


NOW = D(2026, 6, 1, 12)
FUTURE = D(2026, 6, 1, 12, 10)  # past the 5-minute tolerance
NEAR_FUTURE = D(2026, 6, 1, 12, 3)  # within it

PROBLEM_ROWS: dict[sa.Table, list[dict]] = {
    traders: [
        trader(1, D(2026, 1, 1), email="ann@example.com"),
        trader(2, D(2026, 1, 5), email="ANN@example.com"),  # duplicate email of trader 1
        trader(3, None, lead_at=D(2026, 1, 2), email="lead@example.com"),  # lead who deposits
        trader(4, D(2026, 3, 1)),  # registers after the FTD below
        trader(5, FUTURE),  # future
        trader(6, NEAR_FUTURE),  # within tolerance: not flagged
    ],
    accounts: [account(10, 1, D(2026, 1, 1)), account(11, 2, D(2026, 1, 5)),
               account(12, 4, D(2026, 2, 1)),
               account(13, 777, D(2026, 1, 1))],  # orphan trader
    kyc_events: [kyc(1, 1, D(2026, 1, 1)), kyc(2, 888, D(2026, 1, 1))],  # 2: orphan trader
    transactions: [
        txn(100, 1, "deposit", D(2026, 1, 2, 10), 500, account_id=10),
        txn(101, 1, "deposit", D(2026, 1, 2, 10), 500, account_id=10),  # duplicate of 100
        txn(102, 1, "deposit", D(2026, 1, 2, 10), 500, account_id=10),  # duplicate of 100
        txn(103, 1, "withdrawal", D(2026, 1, 3), -50, account_id=10),  # negative amount
        txn(104, 2, "deposit", D(2026, 1, 6), 100, amount_usd=0, account_id=11),  # zero USD
        txn(105, 3, "deposit", D(2026, 1, 3), 200),  # depositor without registration
        txn(106, 4, "deposit", D(2026, 2, 1), 300, account_id=12),  # FTD before registration
        txn(107, 2, "withdrawal", D(2026, 1, 7), 100, status="declined", account_id=11),
        txn(108, 999, "deposit", D(2026, 1, 4), 100),  # orphan trader
        txn(109, 1, "deposit", D(2026, 1, 5), 100, account_id=888),  # orphan account
        txn(110, 1, "deposit", FUTURE, 100, account_id=10),  # future
        txn(111, 1, "bonus_cancel", D(2026, 1, 8), -25, account_id=10),  # not a deposit: fine
        txn(112, 1, "deposit", D(2026, 1, 2, 10), 700, account_id=10),  # same time, other amount
    ],
    trades: [
        trade(1000, 1, D(2026, 1, 3), D(2026, 1, 3, 12), account_id=10),
        trade(1001, 1, D(2026, 1, 4), D(2026, 1, 4, 1), lots=0, account_id=10),  # zero lots
        trade(1002, 2, D(2026, 1, 6, 12), D(2026, 1, 6, 11), account_id=11),  # closed before opened
        trade(1003, 999, D(2026, 1, 5), D(2026, 1, 5, 1)),  # orphan trader
        trade(1004, 1, D(2026, 1, 5), D(2026, 1, 5, 1), account_id=777),  # orphan account
        trade(1005, 1, D(2026, 5, 30), FUTURE, account_id=10),  # closes in the future
        trade(1006, 1, D(2026, 1, 7), D(2026, 1, 7, 1), lots=-0.5, account_id=10),  # negative lots
    ],
    sessions: [
        session(1, 1, D(2026, 1, 2, 8)),
        session(2, 1, D(2026, 1, 2, 8), duration_s=30),  # duplicate of 1
        session(3, 2, D(2026, 1, 6), duration_s=-5),  # negative duration
        session(4, 999, D(2026, 1, 6)),  # orphan trader
        session(5, 2, D(2026, 1, 2, 8)),  # same time, other trader: fine
    ],
    portal_events: [portal(1, 1, D(2026, 1, 2)), portal(2, 1, D(2026, 12, 1))],  # 2: future
}

# (check, table, column) -> (problem_rows, sample_ids); every check not listed must be ok.
EXPECTED_PROBLEMS: dict[tuple[str, str, str], tuple[int, list[int]]] = {
    ("Orphan rows", "accounts", "trader_id"): (1, [13]),
    ("Orphan rows", "kyc_events", "trader_id"): (1, [2]),
    ("Orphan rows", "transactions", "trader_id"): (1, [108]),
    ("Orphan rows", "trades", "trader_id"): (1, [1003]),
    ("Orphan rows", "sessions", "trader_id"): (1, [4]),
    ("Orphan rows", "trades", "account_id"): (1, [1004]),
    ("Orphan rows", "transactions", "account_id"): (1, [109]),
    ("Duplicates", "transactions", "trader_id, created_at, amount, kind"): (2, [101, 102]),
    ("Duplicates", "sessions", "trader_id, started_at"): (1, [2]),
    ("Duplicates", "traders", "email"): (1, [2]),
    ("Non-positive amounts", "transactions", "amount, amount_usd"): (2, [103, 104]),
    ("Non-positive amounts", "trades", "lots"): (2, [1001, 1006]),
    ("Negative durations", "sessions", "duration_s"): (1, [3]),
    ("Events in the future", "traders", "lead_at, registered_at, kyc_approved_at"): (1, [5]),
    ("Events in the future", "transactions", "created_at"): (1, [110]),
    ("Events in the future", "trades", "opened_at, closed_at"): (1, [1005]),
    ("Events in the future", "portal_events", "occurred_at"): (1, [2]),
    ("Closed before opened", "trades", "closed_at"): (1, [1002]),
    ("Registered after FTD", "traders", "registered_at"): (1, [4]),
    ("Deposit without registration", "transactions", "trader_id"): (1, [105]),
}


def test_quality_checks_count_each_planted_problem_exactly(engine):
    insert_without_foreign_keys(engine, PROBLEM_ROWS)

    checks = data_health.compute_quality_checks(engine, now=NOW)

    found = {
        (r.check, r.table, r.column): (r.problem_rows, list(r.sample_ids))
        for r in checks.itertuples() if r.problem_rows
    }
    assert found == EXPECTED_PROBLEMS
    assert not checks.duplicated(["check", "table", "column"]).any()
    severities = checks.set_index(["check", "table", "column"])["severity"]
    assert severities[("Orphan rows", "trades", "trader_id")] == "error"
    assert severities[("Duplicates", "traders", "email")] == "warning"
    assert severities[("Orphan rows", "portal_events", "trader_id")] == "ok"
    assert severities[("Events in the future", "accounts", "opened_at")] == "ok"


def test_sample_ids_stop_at_five_but_the_count_does_not(engine):
    rows = {traders: [trader(1, D(2026, 1, 1))],
            sessions: [session(i, 1, D(2026, 1, 2), duration_s=-1) for i in range(1, 9)]}
    insert(engine, rows)

    checks = data_health.compute_quality_checks(engine, now=NOW)

    negative = checks[checks["check"] == "Negative durations"].iloc[0]
    assert negative["problem_rows"] == 8
    assert list(negative["sample_ids"]) == [1, 2, 3, 4, 5]
    assert negative["severity"] == "error"


def test_recent_imports_are_newest_first_and_limited(engine):
    with engine.begin() as conn:
        conn.execute(imports.insert(), [
            {"import_id": i, "file_name": f"file{i}.csv", "kind": "traders", "sha256": "0" * 64,
             "rows_read": 10 * i, "rows_inserted": 9 * i, "rows_skipped": i,
             "imported_at": D(2026, 1, i)}
            for i in (1, 2, 3)
        ])

    recent = data_health.compute_recent_imports(engine, limit=2)

    assert recent.columns.tolist() == data_health.IMPORT_COLUMNS
    assert recent["file_name"].tolist() == ["file3.csv", "file2.csv"]
    assert recent["rows_inserted"].tolist() == [27, 18]
    assert recent["imported_at"].iloc[0] == pd.Timestamp(2026, 1, 3)


def test_recent_imports_of_an_empty_database_is_an_empty_frame(engine):
    recent = data_health.compute_recent_imports(engine)

    assert recent.empty
    assert recent.columns.tolist() == data_health.IMPORT_COLUMNS
