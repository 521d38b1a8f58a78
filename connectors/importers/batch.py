"""What a parsed file hands to the loader: canonical rows per table, before any database access."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

import pandas as pd
import sqlalchemy as sa

from connectors import schema
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
    """What one import wrote: rows read, rows inserted and updated per table, rows not written.

    ``skipped`` counts every row not written: rows already present with the same values
    (``unchanged``) and identical repeats inside the file. ``changed_fields`` counts, per
    "table.column", the rows whose column the import changed (the change history has each one).
    """

    file: str
    kind: str
    rows_read: int
    inserted: dict[str, int]   # table name -> rows written
    skipped: int               # rows not written: unchanged rows already present, repeats in the file
    updated: dict[str, int] = field(default_factory=dict)  # table name -> rows already present, changed
    unchanged: int = 0         # rows already present (same external_id) with the same values
    changed_fields: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows changed
    import_id: int | None = field(default=None, compare=False)  # its imports row (and row_changes.import_id)


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


def _spill_file() -> BinaryIO:
    # Unlinked at once: the space is freed when it is closed, or when the process dies.
    return tempfile.TemporaryFile(prefix="traderlens-import-")


@dataclass
class StagedCsv:
    """A CSV file of one table, parsed and validated whole, its distinct records staged on disk.

    :meth:`chunks` gives them back in file order as DataFrames of canonical rows like a
    :class:`Batch` table (typed for ``table``, with ``_row`` and the references
    ``trader_external_id`` / ``account_external_id``). :attr:`traders` is indexed by every
    trader_external_id the file names, with ``row`` (the first line naming it) and ``time`` (its
    earliest value of the kind's time column); None for a traders file. ``skipped`` counts
    identical repeats inside the file, already dropped; ``sha256`` is the file's digest.
    """

    file: str
    kind: str
    table: sa.Table
    rows_read: int = 0
    skipped: int = 0
    sha256: str = ""
    columns: frozenset[str] = frozenset()  # the kind's columns the file's header has
    _count: int = 0
    _spill: BinaryIO = field(default_factory=_spill_file, repr=False)
    _traders: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def append(self, frame: pd.DataFrame) -> None:
        """Stage the next chunk of distinct records."""
        pickle.dump(frame, self._spill, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1
        if "trader_external_id" in frame:
            time_column = schema.TIME_COLUMNS[self.table.name]
            self._traders.append(frame.groupby("trader_external_id", sort=False).agg(
                row=(ROW, "min"), time=(time_column, "min")))
            if sum(len(part) for part in self._traders) > 200_000:
                self._combine_traders()

    def _combine_traders(self) -> None:
        if len(self._traders) > 1:
            self._traders = [pd.concat(self._traders).groupby(level=0, sort=False).min()]

    @property
    def traders(self) -> pd.DataFrame | None:
        self._combine_traders()
        return self._traders[0] if self._traders else None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The staged chunks, from the first (one pass at a time)."""
        self._spill.seek(0)
        for _ in range(self._count):
            yield pickle.load(self._spill)  # written by append() in this process

    def close(self) -> None:
        self._spill.close()


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
            # Arrow-backed text: DuckDB scans it in place (Python str objects took it about 300
            # bytes more a row inside a large import's transaction); a missing value is NA.
            out[column.name] = pd.Series(values.to_numpy(dtype=object, na_value=None),
                                         index=frame.index, dtype=object).astype("string[pyarrow]")
    return out


__all__ = ["ROW", "AccountHeader", "Batch", "ImportResult", "StagedCsv", "dedupe_in_file", "typed"]
