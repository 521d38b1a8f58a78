"""Table summary, data-quality checks and import history on DuckDB and PostgreSQL.

Rows are built by hand so every expected count below can be checked by reading the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import data_health
from analytics.periods import DateRange
from connectors import schema
from connectors.rollups import refresh_rollups
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


# --- Outliers: positions beyond equity x leverage, periods driven by one trader -------------------


def refreshed(engine: sa.Engine, rows: dict[sa.Table, list[dict]]) -> None:
    """Write ``rows`` and rebuild the rollups, as an import does (closed P&L and net deposits read them)."""
    insert(engine, rows)
    with engine.begin() as conn:
        refresh_rollups(conn)


def levered_account(account_id: int, trader_id: int, leverage: int | None) -> dict:
    return {**account(account_id, trader_id, D(2026, 1, 1)), "leverage": leverage}


def position(trade_id: int, trader_id: int, opened_at: datetime, notional: float, *, account_id: int | None,
             profit: float = 0.0, hours: int = 1) -> dict:
    return {**trade(trade_id, trader_id, opened_at, opened_at + pd.Timedelta(hours=hours), account_id=account_id),
            "notional_usd": notional, "profit_usd": profit}


OUTLIER_ROWS: dict[sa.Table, list[dict]] = {
    traders: [trader(i, D(2026, 1, 1)) for i in range(1, 6)],
    accounts: [levered_account(10 + i, i, 100) for i in range(1, 5)],  # trader 5 trades without an account
    transactions: [
        txn(100 + i, i, "deposit", D(2026, 1, 2, 9), 1_000, account_id=10 + i if i < 5 else None)
        for i in range(1, 6)
    ] + [
        txn(200, 4, "withdrawal", D(2026, 1, 3, 9), 900, account_id=14),
        txn(201, 2, "deposit", D(2026, 1, 9), 5_000, status="declined", account_id=12),  # not money
    ],
    trades: [
        # 1: $500,000 at 1:100 needs $5,000 of margin on $1,000 of equity (5x).
        position(1000, 1, D(2026, 1, 3, 10), 500_000, account_id=11),
        position(1001, 1, D(2026, 1, 6, 10), 400_000, account_id=11),  # 4x on another day
        # 2: exactly equity x leverage; a later position on the day's deposit-free equity is fine too.
        position(1002, 2, D(2026, 1, 3, 10), 100_000, account_id=12, profit=4_000),
        position(1003, 2, D(2026, 1, 5, 10), 500_000, account_id=12),  # equity 1,000 + 4,000 closed gain
        # 3: a deposit and a position on the same day: the day's money counts.
        position(1004, 3, D(2026, 1, 2, 12), 100_000, account_id=13),
        # 4: $1,000 in, $900 out, then $25,000 at 1:100 ($250 of margin on $100 of equity: 2.5x).
        position(1005, 4, D(2026, 1, 4, 10), 25_000, account_id=14),
        # 5: no account, so at most 1:500: $500,000 needs $1,000 = its equity.
        position(1006, 5, D(2026, 1, 4, 10), 500_000, account_id=None),
    ],
}


def test_volume_outliers_name_the_traders_whose_positions_exceed_equity_times_leverage(engine):
    refreshed(engine, OUTLIER_ROWS)

    outliers = data_health.compute_volume_outliers(engine)

    assert outliers.flagged == 2
    found = outliers.traders
    assert found.columns.tolist() == data_health.VOLUME_OUTLIER_COLUMNS
    assert found["trader_id"].tolist() == [1, 4]  # the worst first
    first = found.iloc[0]
    assert (first["external_id"], first["days_over"], first["worst_day"]) == ("T1", 2, D(2026, 1, 3).date())
    assert first["largest_position_usd"] == pytest.approx(500_000)
    assert first["margin_usd"] == pytest.approx(5_000)
    assert first["equity_usd"] == pytest.approx(1_000)
    assert first["multiple"] == pytest.approx(5.0)
    assert first["deposits_usd"] == pytest.approx(1_000)
    assert first["volume_usd"] == pytest.approx(900_000)
    second = found.iloc[1]
    assert (second["equity_usd"], second["multiple"], second["worst_day"]) == (
        pytest.approx(100), pytest.approx(2.5), D(2026, 1, 4).date())


def test_volume_outliers_stop_at_the_limit_but_count_every_trader(engine):
    refreshed(engine, OUTLIER_ROWS)

    outliers = data_health.compute_volume_outliers(engine, limit=1)

    assert outliers.flagged == 2 and outliers.traders["trader_id"].tolist() == [1]


def test_no_volume_outliers_in_plausible_trading(engine):
    refreshed(engine, CLEAN_ROWS)  # trader 1: $500 deposited, one $100,000 position at the fallback 1:500

    outliers = data_health.compute_volume_outliers(engine)

    assert outliers.flagged == 0 and outliers.traders.empty


CROWD = 30  # traders depositing 100 USD each week: more than DRIVER_MIN_TRADERS
WHALE = 99


def _weekly_deposits() -> dict[sa.Table, list[dict]]:
    people = [trader(i, D(2025, 12, 1)) for i in (*range(1, CROWD + 1), WHALE)]
    money = []
    for week, monday in enumerate((D(2026, 1, 5), D(2026, 1, 12))):
        money += [txn(1000 * (week + 1) + i, i, "deposit", monday + pd.Timedelta(hours=i), 100)
                  for i in range(1, CROWD + 1)]
    money.append(txn(9000, WHALE, "deposit", D(2026, 1, 14, 12), 10_000))
    # The week of 19 January: only six depositors, one of them large - too few to name anyone.
    money += [txn(9100 + i, i, "deposit", D(2026, 1, 20, i), 100) for i in range(1, 6)]
    money.append(txn(9200, WHALE, "withdrawal", D(2026, 1, 21), 1_000))
    return {traders: people, transactions: money}


def test_a_week_and_a_month_driven_by_one_trader_are_named_with_the_share(engine):
    refreshed(engine, _weekly_deposits())

    found = data_health.compute_period_drivers(engine)

    assert found.columns.tolist() == data_health.DRIVER_COLUMNS
    rows = {(r.metric, r.period, r.period_start.isoformat(), r.basis): r for r in found.itertuples()}
    assert set(rows) == {
        ("net_deposits", "week", "2026-01-12", "change"),  # 3,000 -> 13,000: the whale is all of it
        ("net_deposits", "week", "2026-01-12", "total"),  # 10,000 of 13,000
        ("net_deposits", "month", "2026-01-01", "total"),  # 10,000 - 1,000 of 3,000 + 13,000 + 500 - 1,000
    }
    week = rows[("net_deposits", "week", "2026-01-12", "change")]
    assert (week.trader_id, week.external_id) == (WHALE, f"T{WHALE}")
    assert (week.total, week.previous, week.trader_value, week.trader_previous) == (13_000, 3_000, 10_000, 0)
    assert week.share == pytest.approx(1.0)
    assert rows[("net_deposits", "week", "2026-01-12", "total")].share == pytest.approx(10_000 / 13_000)
    month = rows[("net_deposits", "month", "2026-01-01", "total")]
    assert month.total == pytest.approx(15_500) and month.share == pytest.approx(9_000 / 15_500)


def test_the_range_against_the_previous_one_names_the_trader_who_drives_it(engine):
    refreshed(engine, _weekly_deposits())
    week = DateRange(D(2026, 1, 12).date(), D(2026, 1, 18).date())

    drivers = data_health.compute_range_drivers(engine, date_range=week)

    assert [(d.metric, d.basis, d.trader_id) for d in drivers] == [
        ("net_deposits", "change", WHALE), ("net_deposits", "total", WHALE)]
    assert drivers[0].share == pytest.approx(1.0) and drivers[0].total == pytest.approx(13_000)
    assert drivers[0].previous == pytest.approx(3_000) and drivers[0].label == "Net deposits"
    first_week = DateRange(D(2026, 1, 5).date(), D(2026, 1, 11).date())
    assert data_health.compute_range_drivers(engine, date_range=first_week) == []


def test_a_clean_simulated_broker_has_no_volume_outliers_and_every_driver_is_true(engine):
    from analytics.periods import index_of_times
    from connectors.simulator import SimulationConfig, seed_database

    seed_database(engine, SimulationConfig(traders=1_500, days=200, seed=21, end=D(2026, 12, 1).date()))

    assert data_health.compute_volume_outliers(engine).flagged == 0
    found = data_health.compute_period_drivers(engine)
    with engine.connect() as conn:
        x = transactions.c
        money = pd.read_sql(sa.select(x.trader_id, x.kind, x.amount_usd, x.created_at)
                            .join(traders, traders.c.trader_id == x.trader_id)
                            .where(x.status == "approved", x.kind.in_(("deposit", "withdrawal")),
                                   traders.c.is_test.is_(False)), conn)
    amount = money["amount_usd"].astype(float)
    money["net"] = amount.where(money["kind"] == "deposit", -amount)
    for r in found[found["metric"] == "net_deposits"].itertuples():
        p = index_of_times(money["created_at"].to_numpy("datetime64[us]").astype("int64"), r.period)
        mine = index_of_times(np.array([pd.Timestamp(r.period_start).value // 1000]), r.period)[0]
        now, before = money[p == mine], money[p == mine - 1]
        assert now["net"].sum() == pytest.approx(r.total) and before["net"].sum() == pytest.approx(r.previous)
        own = now.loc[now["trader_id"] == r.trader_id, "net"].sum()
        own_before = before.loc[before["trader_id"] == r.trader_id, "net"].sum()
        share = own / r.total if r.basis == "total" else (own - own_before) / (r.total - r.previous)
        assert share == pytest.approx(r.share) and share > data_health.DRIVER_SHARE
        assert now["trader_id"].nunique() >= data_health.DRIVER_MIN_TRADERS
