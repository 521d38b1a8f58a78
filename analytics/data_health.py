"""What is loaded and whether it can be trusted: table summaries, data-quality checks, imports.

Every number is aggregated in the database (one small query per table or per check), so the Data
page stays fast on a broker with millions of deals. Times are naive UTC like the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.events import first_deposits
from analytics.reading import reading
from connectors.schema import (
    DATA_TABLES,
    TIME_COLUMNS,
    accounts,
    imports,
    sessions,
    trader_events,
    traders,
    trades,
    transactions,
)

Severity = Literal["ok", "warning", "error"]

# Clocks of brokers' servers and of this host drift a little; only flag clearly future rows.
FUTURE_TOLERANCE = timedelta(minutes=5)
SAMPLE_SIZE = 5

SUMMARY_COLUMNS = ["table", "kind", "rows", "first_at", "last_at", "freshness_hours"]
CHECK_COLUMNS = ["check", "table", "column", "severity", "problem_rows", "description", "sample_ids"]
IMPORT_COLUMNS = ["import_id", "file_name", "kind", "rows_read", "rows_inserted", "rows_skipped",
                  "imported_at"]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def compute_table_summary(engine: Engine, now: datetime | None = None) -> pd.DataFrame:
    """Row count and time range of every data table and of the ``trader_events`` view.

    Returns one row per table in load order (schema.DATA_TABLES), then ``trader_events``:

    - ``table`` (str), ``kind`` ("table" or "view");
    - ``rows`` (int);
    - ``first_at`` / ``last_at`` (naive UTC datetime, NaT when empty): min / max of the table's
      time column (schema.TIME_COLUMNS; ``occurred_at`` for the view);
    - ``freshness_hours`` (float, NaN when empty): hours from ``last_at`` to ``now``
      (negative when the newest row lies in the future).
    """
    now = now or _utcnow()
    sources = [(t, t.c[TIME_COLUMNS[t.name]], "table") for t in DATA_TABLES]
    sources.append((trader_events, trader_events.c.occurred_at, "view"))
    records = []
    with reading(engine) as conn:
        for table, time_col, kind in sources:
            rows, first_at, last_at = conn.execute(
                sa.select(sa.func.count(), sa.func.min(time_col), sa.func.max(time_col))
                .select_from(table)
            ).one()
            records.append({
                "table": table.name, "kind": kind, "rows": int(rows),
                "first_at": first_at, "last_at": last_at,
                "freshness_hours": (now - last_at).total_seconds() / 3600 if last_at else None,
            })
    frame = pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)
    frame["rows"] = frame["rows"].astype("int64")
    frame["first_at"] = pd.to_datetime(frame["first_at"])
    frame["last_at"] = pd.to_datetime(frame["last_at"])
    frame["freshness_hours"] = frame["freshness_hours"].astype("float64")
    return frame


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality rule: a query naming the ids of the rows that break it."""

    check: str
    table: str
    column: str
    severity: Severity  # severity when at least one row breaks the rule
    description: str
    problem_ids: Callable[[], sa.Select]  # SELECT of one column, the offending rows' ids


def _pk(table: sa.Table) -> sa.Column:
    return next(iter(table.primary_key.columns))


def _orphans(child: sa.Table, fk: str, parent: sa.Table) -> QualityCheck:
    # LEFT JOIN ... IS NULL rather than trusting FKs: constraints may be dropped on PostgreSQL for
    # bulk loads, and data can arrive by other paths than our importers.
    parent_pk = _pk(parent)
    child_fk = child.c[fk]

    def query() -> sa.Select:
        return (
            sa.select(_pk(child))
            .select_from(child.outerjoin(parent, child_fk == parent_pk))
            .where(child_fk.is_not(None), parent_pk.is_(None))
        )

    return QualityCheck(
        "Orphan rows", child.name, fk, "error",
        f"{fk} matches no row of {parent.name}", query)


def _duplicates(table: sa.Table, keys: list[sa.ColumnElement], column: str, description: str,
                where: sa.ColumnElement | None = None) -> QualityCheck:
    # Every copy after the first (lowest id) of a group counts, so the count is what a clean-up
    # would delete.
    pk = _pk(table)

    def query() -> sa.Select:
        numbered = sa.select(
            pk.label("id"),
            sa.func.row_number().over(partition_by=keys, order_by=pk).label("copy_no"),
        )
        if where is not None:
            numbered = numbered.where(where)
        sub = numbered.subquery()
        return sa.select(sub.c.id).where(sub.c.copy_no > 1)

    return QualityCheck("Duplicates", table.name, column, "warning", description, query)


def _rows_where(check: str, table: sa.Table, column: str, severity: Severity, description: str,
                condition: Callable[[], sa.ColumnElement]) -> QualityCheck:
    return QualityCheck(check, table.name, column, severity, description,
                        lambda: sa.select(_pk(table)).where(condition()))


def _future_rows(table: sa.Table, cutoff: datetime) -> QualityCheck:
    time_cols = [c for c in table.columns if isinstance(c.type, sa.DateTime)]
    return _rows_where(
        "Events in the future", table, ", ".join(c.name for c in time_cols), "warning",
        f"timed more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} min after now "
        "(a clock or time-zone error in the source)",
        lambda: sa.or_(*(c > cutoff for c in time_cols)))


def quality_checks(now: datetime) -> list[QualityCheck]:
    """The rules compute_quality_checks runs, in display order."""
    cutoff = now + FUTURE_TOLERANCE
    checks = [_orphans(t, "trader_id", traders) for t in DATA_TABLES if t is not traders]
    checks += [_orphans(trades, "account_id", accounts), _orphans(transactions, "account_id", accounts)]

    checks += [
        _duplicates(
            transactions,
            [transactions.c.trader_id, transactions.c.created_at, transactions.c.amount,
             transactions.c.kind],
            "trader_id, created_at, amount, kind",
            "deposits repeating another deposit's trader, time and amount",
            where=transactions.c.kind == "deposit"),
        _duplicates(
            sessions, [sessions.c.trader_id, sessions.c.started_at], "trader_id, started_at",
            "sessions repeating another session's trader and start time"),
        _duplicates(
            traders, [sa.func.lower(traders.c.email)], "email",
            "traders sharing an email address (case-insensitive) with an earlier trader",
            where=sa.and_(traders.c.email.is_not(None), traders.c.email != "")),
    ]

    checks += [
        _rows_where(
            "Non-positive amounts", transactions, "amount, amount_usd", "error",
            "deposits or withdrawals with amount <= 0 or amount_usd <= 0",
            lambda: sa.and_(transactions.c.kind.in_(("deposit", "withdrawal")),
                            sa.or_(transactions.c.amount <= 0, transactions.c.amount_usd <= 0))),
        _rows_where("Non-positive amounts", trades, "lots", "error", "trades with zero or negative lots",
                    lambda: trades.c.lots <= 0),
        _rows_where("Negative durations", sessions, "duration_s", "error",
                    "sessions with a negative duration", lambda: sessions.c.duration_s < 0),
    ]

    checks += [_future_rows(t, cutoff) for t in DATA_TABLES]

    checks.append(_rows_where(
        "Closed before opened", trades, "closed_at", "error",
        "trades whose closed_at precedes opened_at",
        lambda: trades.c.closed_at < trades.c.opened_at))

    def registered_after_ftd() -> sa.Select:
        ftd = first_deposits().subquery("ftd")
        return (sa.select(traders.c.trader_id)
                .join(ftd, ftd.c.trader_id == traders.c.trader_id)
                .where(traders.c.registered_at > ftd.c.occurred_at))

    checks.append(QualityCheck(
        "Registered after FTD", "traders", "registered_at", "warning",
        "traders whose registration is later than their first approved deposit",
        registered_after_ftd))

    def deposits_without_registration() -> sa.Select:
        return (sa.select(transactions.c.txn_id)
                .join(traders, traders.c.trader_id == transactions.c.trader_id)
                .where(transactions.c.kind == "deposit", transactions.c.status == "approved",
                       traders.c.registered_at.is_(None)))

    checks.append(QualityCheck(
        "Deposit without registration", "transactions", "trader_id", "warning",
        "approved deposits by traders who have no registered_at (leads)",
        deposits_without_registration))
    return checks


def _run_check(conn: Connection, check: QualityCheck) -> tuple[int, list[int]]:
    """Problem-row count and the first few ids, in one round trip."""
    sub = check.problem_ids().subquery()
    id_col = next(iter(sub.c))
    rows = conn.execute(
        sa.select(id_col, sa.func.count().over().label("n")).order_by(id_col).limit(SAMPLE_SIZE)
    ).all()
    return (int(rows[0].n) if rows else 0), [int(r[0]) for r in rows]


def compute_quality_checks(engine: Engine, now: datetime | None = None) -> pd.DataFrame:
    """Run every data-quality rule (see :func:`quality_checks`) against the database.

    Returns one row per check:

    - ``check`` (str, e.g. "Orphan rows"), ``table`` (str), ``column`` (str; several columns are
      comma-separated);
    - ``severity`` ("ok" when no row breaks the rule, else the rule's "warning" or "error");
    - ``problem_rows`` (int): offending rows (for duplicates: the copies after the first);
    - ``description`` (str): the rule in plain words;
    - ``sample_ids`` (list[int]): up to five offending primary-key values, smallest first.
    """
    now = now or _utcnow()
    records = []
    with reading(engine) as conn:
        for check in quality_checks(now):
            count, sample = _run_check(conn, check)
            records.append({
                "check": check.check, "table": check.table, "column": check.column,
                "severity": check.severity if count else "ok", "problem_rows": count,
                "description": check.description, "sample_ids": sample,
            })
    frame = pd.DataFrame.from_records(records, columns=CHECK_COLUMNS)
    frame["problem_rows"] = frame["problem_rows"].astype("int64")
    return frame


def compute_recent_imports(engine: Engine, limit: int = 20) -> pd.DataFrame:
    """The newest ``limit`` file imports, newest first.

    Columns: ``import_id`` (int), ``file_name`` (str), ``kind`` (str), ``rows_read``,
    ``rows_inserted``, ``rows_skipped`` (int), ``imported_at`` (naive UTC datetime).
    """
    query = (
        sa.select(*(imports.c[name] for name in IMPORT_COLUMNS))
        .order_by(imports.c.imported_at.desc(), imports.c.import_id.desc())
        .limit(limit)
    )
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame.from_records(rows, columns=IMPORT_COLUMNS)
    frame["imported_at"] = pd.to_datetime(frame["imported_at"])
    return frame


__all__ = [
    "CHECK_COLUMNS", "IMPORT_COLUMNS", "SUMMARY_COLUMNS", "QualityCheck", "Severity",
    "compute_quality_checks", "compute_recent_imports", "compute_table_summary", "quality_checks",
]
