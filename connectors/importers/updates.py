"""Rows a file brings again: which are new, which change a row already loaded, which are the same.

A row whose external_id its table already holds is compared column by column with the stored row.
Columns a later export may change (:data:`MUTABLE`: a deposit's status, a trade's close, a trader's
consent) are updated and every change is kept in ``row_changes``; columns that identify the row
(:data:`IDENTITY`: its trader, account, kind, time) may not change, and a file that changes one is
refused whole, naming the row, the column and both values. docs/import_formats.md lists them.

Only columns the file has are compared: a traders file without consent columns leaves the stored
consents as they are. A blank cell in a column the file has is a value (empty), and replaces one.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors import database, schema
from connectors.errors import ImportRejected
from connectors.importers.batch import ROW, typed

_LOOKUP = 5_000  # external ids per IN (...) look-up

# Columns a re-import may change, per table. Times of events, references and kinds are identity.
MUTABLE: dict[str, tuple[str, ...]] = {
    # The trader's own attributes; registered_at and lead_at too, because a trader created by
    # "create missing traders" takes its registration time from the earliest row seen, and the
    # traders file corrects it.
    "traders": ("lead_at", "registered_at", "first_name", "last_name", "email", "phone", "country",
                "language", "timezone", "acquisition_channel", "campaign_source", "affiliate_id",
                "kyc_status", "kyc_approved_at", "vip_tier", "is_test", "is_blocked", "consent_email",
                "consent_sms", "consent_push", "consent_whatsapp", "owner"),
    "accounts": ("leverage", "account_group", "server", "is_demo"),
    # A later report finalises the close side of a position.
    "trades": ("closed_at", "close_price", "profit_usd", "commission_usd", "swap_usd", "close_reason",
               "notional_usd", "asset_class", "leverage_used", "channel"),
    # The payment provider's later word: status (pending -> approved, approved -> reversed or
    # chargeback), the settled amount and currency, method, provider and comment.
    "transactions": ("status", "amount", "currency", "amount_usd", "method", "psp", "comment"),
    "kyc_events": ("status", "reason"),
    "sessions": ("duration_s", "surface"),
    "portal_events": ("properties",),
}
# Columns that identify a row: a file that gives another value for one is refused.
IDENTITY: dict[str, tuple[str, ...]] = {
    "traders": (),
    "accounts": ("trader_id", "platform", "login", "currency", "opened_at"),
    "trades": ("trader_id", "account_id", "symbol", "side", "lots", "opened_at", "open_price"),
    "transactions": ("trader_id", "account_id", "kind", "created_at"),
    "kyc_events": ("trader_id", "occurred_at"),
    "sessions": ("trader_id", "started_at"),
    "portal_events": ("trader_id", "event", "occurred_at"),
}
# How a reference column is named in a file (the database holds ids, the file external ids).
_REFERENCES = {"trader_id": ("trader_external_id", schema.traders),
               "account_id": ("account_external_id", schema.accounts)}


def os_user() -> str:
    """The operating-system user running this process ("unknown" where it has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@dataclass(frozen=True)
class RowUpdate:
    """A stored row a file changes: its id, external_id, trader and column -> (old, new) value."""

    row_id: int
    external_id: str
    trader_id: int
    changes: Mapping[str, tuple[Any, Any]]


@dataclass(frozen=True)
class Comparison:
    """A chunk of a file against the database: ``known`` marks its rows already stored (same
    external_id), ``updates`` the known rows whose values differ."""

    known: np.ndarray
    updates: tuple[RowUpdate, ...]


def _canonical(values: pd.Series, kind: sa.types.TypeEngine) -> pd.Series:
    """``values`` as one comparable nullable dtype for the column type (money to its cents)."""
    if isinstance(kind, sa.Boolean):
        return values.astype("boolean")
    if isinstance(kind, sa.Integer):
        return pd.array(pd.to_numeric(values), dtype="Int64")
    if isinstance(kind, sa.DateTime):
        return pd.to_datetime(values).astype("datetime64[us]")
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        return pd.to_numeric(values).astype("Float64").round(kind.scale or 0)
    if isinstance(kind, sa.Float | sa.Double):
        return pd.to_numeric(values).astype("Float64")
    return values.astype("string")


def _differs(old: pd.Series, new: pd.Series, kind: sa.types.TypeEngine) -> np.ndarray:
    o = pd.Series(_canonical(old, kind), index=old.index)
    n = pd.Series(_canonical(new, kind), index=new.index)
    same = (o == n).fillna(False).to_numpy(dtype=bool) | (o.isna() & n.isna()).to_numpy(dtype=bool)
    return ~same


def _plain(value: Any) -> Any:
    """A pandas/numpy scalar as a plain Python value (None for a missing one)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_text(value: Any, kind: sa.types.TypeEngine | None = None) -> str | None:
    """A value as the change history and messages write it: money with its cents, times ISO."""
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale is not None:
        return f"{float(value):.{kind.scale}f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and isinstance(kind, sa.Integer):
        return str(int(value))
    return str(value)


def compared_columns(table: sa.Table, columns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(identity, mutable) columns of ``table`` a file with ``columns`` can be compared on."""
    have = set(columns)
    return ([c for c in IDENTITY[table.name] if c in have], [c for c in MUTABLE[table.name] if c in have])


def compare(conn: Connection, file: str, table: sa.Table, frame: pd.DataFrame,
            columns: Iterable[str], *, empty_keeps: bool = False) -> Comparison:
    """Compare ``frame`` (canonical rows with ``external_id``, ``_row`` and resolved ``trader_id``
    / ``account_id`` where the table has them) with the rows ``table`` already holds, on the
    ``columns`` the file has. Raises ImportRejected at the first row (in file order) whose
    identity differs. With ``empty_keeps`` an empty value never replaces a stored one (terminal
    reports: an MT4 statement does not carry what an MT5 deals export adds, such as the channel)."""
    identity, mutable = compared_columns(table, columns)
    pk = next(iter(table.primary_key.columns)).name
    owner = pk if table is schema.traders else "trader_id"  # the trader whose rollups a change touches
    wanted = list(dict.fromkeys([pk, "external_id", owner, *identity, *mutable]))
    ids = frame["external_id"].to_numpy(dtype=object)
    found: list[tuple] = []
    distinct = sorted(set(ids))
    for start in range(0, len(distinct), _LOOKUP):
        part = distinct[start:start + _LOOKUP]
        query = sa.select(*(table.c[c] for c in wanted)).where(table.c.external_id.in_(part))
        found.extend(tuple(r) for r in conn.execute(query))  # plain tuples: a DataFrame of Rows costs 4x
    if not found:
        return Comparison(np.zeros(len(frame), dtype=bool), ())
    stored = pd.DataFrame(found, columns=wanted).set_index("external_id")
    present = set(stored.index)  # a set: Series.isin over Arrow strings took a second a chunk
    known = np.fromiter((i in present for i in ids), dtype=bool, count=len(ids))
    rows = frame[known]
    old = stored.loc[ids[known]].set_axis(rows.index)
    for column in identity:
        bad = _differs(old[column], rows[column], table.c[column].type)
        if bad.any():
            index = rows.index[np.flatnonzero(bad)[0]]
            _refuse(conn, file, table, rows.loc[index], column, old.at[index, column], rows.at[index, column])
    changed = {c: _differs(old[c], rows[c], table.c[c].type) & ~(empty_keeps & rows[c].isna().to_numpy(dtype=bool))
               for c in mutable}
    updates: list[RowUpdate] = []
    if changed:
        any_change = np.logical_or.reduce(list(changed.values()))
        for position in np.flatnonzero(any_change):
            index = rows.index[position]
            updates.append(RowUpdate(
                row_id=int(old.at[index, pk]), external_id=str(rows.at[index, "external_id"]),
                trader_id=int(old.at[index, owner]),
                changes={c: (_plain(old.at[index, c]), _plain(rows.at[index, c]))
                         for c, mask in changed.items() if mask[position]}))
    return Comparison(known, tuple(updates))


def _refuse(conn: Connection, file: str, table: sa.Table, row: pd.Series, column: str, old: Any,
            new: Any) -> None:
    kind = table.c[column].type
    name, was, now = column, as_text(old, kind), as_text(new, kind)
    if column in _REFERENCES:  # say which trader or account, as the file names them
        name, parent = _REFERENCES[column]
        refs = {r[1]: r[0] for r in conn.execute(sa.select(parent.c.external_id, parent.c[column]).where(
            parent.c[column].in_([_plain(v) for v in (old, new) if _plain(v) is not None])))}
        was, now = refs.get(_plain(old), was), refs.get(_plain(new), now)
    raise ImportRejected(
        file, f"{table.name} '{row['external_id']}' is already loaded with {name} "
        f"{'(empty)' if was is None else repr(was)}, and this file says {'(empty)' if now is None else repr(now)}; "
        f"{name} identifies the row and cannot change on re-import (only "
        f"{', '.join(MUTABLE[table.name])} can). Nothing was imported",
        row=int(row[ROW]) if ROW in row and pd.notna(row[ROW]) else None, column=name)


_BULK_UPDATE = 200  # rows from which an update goes through a staged table (UPDATE ... FROM)


def apply(conn: Connection, table: sa.Table, updates: Iterable[RowUpdate]) -> None:
    """Write ``updates`` to ``table``, per set of changed columns: a few rows by an executemany, many
    by one UPDATE ... FROM a temporary table bulk-loaded with the new values (on DuckDB 20,000 single
    UPDATEs took about 7 s)."""
    pk = next(iter(table.primary_key.columns))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for update in updates:
        columns = tuple(sorted(update.changes))
        values = {f"new_{c}": update.changes[c][1] for c in columns}
        groups.setdefault(columns, []).append({"row_pk": update.row_id, **values})
    for columns, params in groups.items():
        if len(params) < _BULK_UPDATE:
            statement = (table.update().where(pk == sa.bindparam("row_pk"))
                         .values({c: sa.bindparam(f"new_{c}") for c in columns}))
            conn.execute(statement, params)
            continue
        staged = sa.Table(f"_import_changes_{table.name}", sa.MetaData(),
                          sa.Column("row_pk", sa.BigInteger, primary_key=True, autoincrement=False),
                          *(sa.Column(f"new_{c}", table.c[c].type) for c in columns), prefixes=["TEMPORARY"])
        staged.create(conn)
        try:
            database.bulk_insert(conn, staged, typed(staged, pd.DataFrame(params)))
            conn.execute(table.update().where(pk == staged.c.row_pk)
                         .values({c: staged.c[f"new_{c}"] for c in columns}))
        finally:
            staged.drop(conn)


def record(conn: Connection, table: sa.Table, updates: Iterable[RowUpdate], *, import_id: int, file: str,
           changed_by: str, changed_at: datetime) -> int:
    """Add one ``row_changes`` row per changed column of ``updates``; returns how many."""
    rows = [
        {"table_name": table.name, "row_id": u.row_id, "external_id": u.external_id, "column_name": column,
         "old_value": as_text(old, table.c[column].type), "new_value": as_text(new, table.c[column].type)}
        for u in updates for column, (old, new) in u.changes.items()]
    if not rows:
        return 0
    history = schema.row_changes
    start = database.next_id(conn, history)
    frame = pd.DataFrame(rows)
    frame.insert(0, "change_id", range(start, start + len(frame)))
    frame["import_id"], frame["file_name"] = import_id, file[:255]
    frame["changed_by"], frame["changed_at"] = changed_by[:80], changed_at
    database.bulk_insert(conn, history, typed(history, frame))
    return len(frame)


__all__ = ["IDENTITY", "MUTABLE", "Comparison", "RowUpdate", "apply", "as_text", "compare", "compared_columns",
           "os_user", "record"]
