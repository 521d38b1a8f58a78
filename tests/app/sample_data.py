"""A few hand-built broker rows for the app and browser tests (counts are easy to check by eye)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors import database
from connectors.schema import accounts, sessions, traders, trades, transactions

TRADERS = 3
ACCOUNTS = 2
TRANSACTIONS = 4
TRADES = 3
SESSIONS = 2


def fill_sample_database(url: str, *, closed_before_opened: bool = False) -> None:
    """Migrate the database at ``url`` and write the sample rows, timed in the last few days.

    With ``closed_before_opened`` one trade closes before it opens, which the quality checks flag.
    """
    base = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=3)
    at = lambda hours: base + timedelta(hours=hours)  # noqa: E731
    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(traders.insert(), [
            {"trader_id": i, "external_id": f"T{i}", "registered_at": at(i),
             "email": f"trader{i}@example.com", "country": "DE"}
            for i in range(1, TRADERS + 1)
        ])
        conn.execute(accounts.insert(), [
            {"account_id": 10 + i, "external_id": f"A{i}", "trader_id": i, "platform": "MT5",
             "login": f"5000{i}", "currency": "USD", "opened_at": at(i + 1)}
            for i in range(1, ACCOUNTS + 1)
        ])
        conn.execute(transactions.insert(), [
            {"txn_id": 100 + n, "external_id": f"X{n}", "trader_id": trader, "account_id": 10 + trader,
             "kind": kind, "status": "approved", "amount": amount, "currency": "USD",
             "amount_usd": amount, "created_at": at(5 + n)}
            for n, (trader, kind, amount) in enumerate(
                [(1, "deposit", 500), (2, "deposit", 250), (1, "deposit", 100), (1, "withdrawal", 80)])
        ])
        conn.execute(trades.insert(), [
            {"trade_id": 1000 + n, "external_id": f"D{n}", "account_id": 11, "trader_id": 1,
             "symbol": "EURUSD", "asset_class": "fx", "side": "buy", "lots": 0.5,
             "notional_usd": 55_000, "opened_at": at(10 + n),
             "closed_at": at(10 + n - 1 if closed_before_opened and n == 0 else 10 + n + 1),
             "open_price": 1.1, "close_price": 1.101, "profit_usd": 5.0}
            for n in range(TRADES)
        ])
        conn.execute(sessions.insert(), [
            {"session_id": n, "external_id": f"S{n}", "trader_id": 1, "started_at": at(9 + n),
             "duration_s": 600, "surface": "web"}
            for n in range(1, SESSIONS + 1)
        ])
    engine.dispose()
    database.dispose_engines()  # release the DuckDB file for the app under test


def row_counts(url: str) -> dict[str, int]:
    """Rows per data table at ``url`` (read through the process's engines: the app under test may have
    the DuckDB file open read-only, and DuckDB refuses a second connection in another mode)."""
    with database.get_engine(url, read_only=True).connect() as conn:
        return database.table_counts(conn)
