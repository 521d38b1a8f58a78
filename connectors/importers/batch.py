"""What a parsed file hands to the loader: canonical rows per table, before any database access."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.errors import ImportRejected

ROW = "_row"  # source row number of each record (see source.py for the convention)


@dataclass(frozen=True)
class AccountHeader:
    """The trading account a terminal report belongs to, as its header states it."""

    platform: str            # "MT4" or "MT5"
    login: str
    currency: str | None     # account currency (every amount is in it); None: not stated
    leverage: int | None
    server: str | None
    is_demo: bool | None     # None when the report does not say (MT4 statements)
    holder: str | None       # the Name line of the report (shown in messages only)
    first_time: datetime | None = None   # earliest time in the report: a new account's opened_at

    @property
    def external_id(self) -> str:
        return f"{self.platform}:{self.login}"


@dataclass(frozen=True)
class ImportResult:
    """What one import wrote: rows read, rows written per table, rows already present."""

    file: str
    kind: str
    rows_read: int
    inserted: dict[str, int]   # table name -> rows written
    skipped: int               # rows already present (same external_id), not written again


@dataclass
class Batch:
    """A whole file, parsed and validated, ready to load.

    ``tables`` maps a table name to a DataFrame of canonical rows: the table's own columns
    (without its id), ``external_id``, ``_row``, and for CSV files the references
    ``trader_external_id`` / ``account_external_id`` the loader resolves to ids. Rows of a
    terminal report carry no references: they all belong to ``account``.
    ``skipped`` counts identical duplicate rows inside the file, already dropped.
    """

    file: str
    kind: str
    rows_read: int
    tables: dict[str, pd.DataFrame]
    skipped: int = 0
    account: AccountHeader | None = None
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)


def dedupe_in_file(records: list[dict[str, Any]], file: str,
                   column: str = "external_id") -> tuple[list[dict[str, Any]], int]:
    """Drop repeated external_ids inside one file: identical repeats are skipped, differing ones
    are an error at the second occurrence. Returns the unique records and the number skipped."""
    seen: dict[str, dict[str, Any]] = {}
    unique: list[dict[str, Any]] = []
    skipped = 0
    for record in records:
        key = record["external_id"]
        first = seen.get(key)
        if first is None:
            seen[key] = record
            unique.append(record)
            continue
        same = all(first.get(k) == v for k, v in record.items() if k != ROW) and \
            first.keys() == record.keys()
        if not same:
            raise ImportRejected(
                file, f"external_id '{key}' appears again (first at row {first[ROW]}) "
                "with different values", row=record[ROW], column=column)
        skipped += 1
    return unique, skipped


def typed(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Give each column the dtype its database column needs, so both bulk paths write it as is
    (nullable integers stay integers in COPY, text stays text with NULLs). Columns that are not
    the table's are kept as they are."""
    out = frame.copy()
    for column in table.columns:
        if column.name not in frame:
            continue
        values = frame[column.name]
        kind = column.type
        if isinstance(kind, sa.Boolean):
            out[column.name] = values.astype("boolean" if column.nullable else bool)
        elif isinstance(kind, sa.Integer):
            out[column.name] = pd.array(values.tolist(), dtype="Int64")
        elif isinstance(kind, sa.DateTime):
            out[column.name] = pd.to_datetime(values).astype("datetime64[us]")
        elif isinstance(kind, sa.Numeric):
            out[column.name] = pd.to_numeric(values).astype(float)
        else:
            out[column.name] = pd.Series(
                [None if v is None or (isinstance(v, float) and v != v) else v for v in values],
                index=frame.index, dtype=object)
    return out


__all__ = ["ROW", "AccountHeader", "Batch", "ImportResult", "dedupe_in_file", "typed"]
