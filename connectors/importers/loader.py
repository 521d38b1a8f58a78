"""Writing a parsed Batch inside one transaction: resolve traders and accounts, drop rows already
present, assign ids, bulk-insert, and record the import."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors import database, schema
from connectors.errors import ImportRejected
from connectors.importers.batch import ROW, AccountHeader, Batch, ImportResult, typed
from connectors.importers.terminal import convert_to_usd
from connectors.rollups import refresh_rollups

_CHUNK = 5_000  # keys per IN (...) lookup; keeps statements small on both backends


def load(conn: Connection, batch: Batch, *, sha256: str, trader: str | None,
         create_missing_traders: bool) -> ImportResult:
    """Write ``batch`` through ``conn`` (inside the caller's transaction and write lock)."""
    frames = {name: frame.copy() for name, frame in batch.tables.items()}
    inserted: dict[str, int] = {}
    skipped = batch.skipped
    if batch.account is not None:
        trader_id, account_id, created, account_new, currency = _resolve_account(
            conn, batch.file, batch.account, trader, create_missing_traders)
        if batch.account.currency is None:
            # The export did not state the currency: amounts are in the known account's.
            convert_to_usd(frames, currency, batch.file)
        inserted["traders"] = created
        inserted["accounts"] = int(account_new)
        skipped += int(not account_new)
        for frame in frames.values():
            frame["trader_id"] = trader_id
            frame["account_id"] = account_id
    else:
        created = _resolve_traders(conn, batch.file, frames, create_missing_traders)
        if created:
            inserted["traders"] = created
        _resolve_accounts(conn, batch.file, frames)
        if "accounts" in frames:
            _check_logins(conn, batch.file, frames["accounts"])
    for table in schema.DATA_TABLES:
        if table.name in frames:
            written, present = _insert_new(conn, batch.file, table, frames[table.name])
            inserted[table.name] = inserted.get(table.name, 0) + written
            skipped += present
    # Keep the daily rollup in step with what this import wrote, in the same transaction.
    touched = {int(t) for f in frames.values() if "trader_id" in f for t in f["trader_id"].dropna()}
    if sum(inserted.values()):
        refresh_rollups(conn, sorted(touched))
    _record_import(conn, batch, sha256, sum(inserted.values()), skipped)
    return ImportResult(file=batch.file, kind=batch.kind, rows_read=batch.rows_read,
                        inserted=inserted, skipped=skipped)


# ---- lookups -------------------------------------------------------------------------------


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _rows_by(conn: Connection, table: sa.Table, column: str, keys: Iterable[Any],
             *columns: str) -> list[sa.Row]:
    """Rows of ``table`` whose ``column`` is in ``keys`` (selecting ``columns``)."""
    wanted = sorted({k for k in keys if k is not None})
    found: list[sa.Row] = []
    for part in _chunks(wanted):
        query = sa.select(*(table.c[c] for c in columns)).where(table.c[column].in_(part))
        found.extend(conn.execute(query).all())
    return found


def _trader_ids(conn: Connection, external_ids: Iterable[str]) -> dict[str, int]:
    rows = _rows_by(conn, schema.traders, "external_id", external_ids, "external_id", "trader_id")
    return {r.external_id: r.trader_id for r in rows}


def _create_traders(conn: Connection, file: str, first_seen: dict[str, datetime]) -> dict[str, int]:
    """Minimal trader records (external_id, registered_at = earliest time seen, source=import)."""
    names = sorted(first_seen)
    start = database.next_id(conn, schema.traders)
    frame = pd.DataFrame({
        "trader_id": range(start, start + len(names)),
        "external_id": names,
        "registered_at": [first_seen[n] for n in names],
        "source": "import",
    })
    _bulk(conn, file, schema.traders, frame)
    return dict(zip(names, frame["trader_id"].tolist(), strict=True))


# ---- CSV references ------------------------------------------------------------------------


def _resolve_traders(conn: Connection, file: str, frames: dict[str, pd.DataFrame],
                     create: bool) -> int:
    """Replace trader_external_id by trader_id in every frame; returns traders created."""
    first_row: dict[str, int] = {}
    earliest: dict[str, datetime] = {}
    for name, frame in frames.items():
        if "trader_external_id" not in frame:
            continue
        time_column = schema.TIME_COLUMNS[name]
        grouped = frame.groupby("trader_external_id").agg(
            row=(ROW, "min"), time=(time_column, "min"))
        for ref, values in grouped.iterrows():
            first_row[ref] = min(first_row.get(ref, values["row"]), values["row"])
            when = pd.Timestamp(values["time"]).to_pydatetime()
            earliest[ref] = min(earliest.get(ref, when), when)
    if not first_row:
        return 0
    ids = _trader_ids(conn, first_row)
    missing = {ref: earliest[ref] for ref in first_row if ref not in ids}
    if missing and not create:
        ref = min(missing, key=lambda r: first_row[r])
        raise ImportRejected(
            file, f"unknown trader '{ref}' (not in the database); import the traders file first "
            "or allow creating missing traders (--create-missing-traders)",
            row=int(first_row[ref]), column="trader_external_id")
    if missing:
        ids.update(_create_traders(conn, file, missing))
    for frame in frames.values():
        if "trader_external_id" in frame:
            frame["trader_id"] = frame["trader_external_id"].map(ids)
    return len(missing)


def _resolve_accounts(conn: Connection, file: str, frames: dict[str, pd.DataFrame]) -> None:
    """Replace account_external_id by account_id; the account must exist and be the trader's."""
    for frame in frames.values():
        if "account_external_id" not in frame:
            continue
        refs = frame["account_external_id"].dropna()
        rows = _rows_by(conn, schema.accounts, "external_id", refs.tolist(),
                        "external_id", "account_id", "trader_id")
        found = {r.external_id: r for r in rows}
        for index, ref in refs.items():
            account = found.get(ref)
            line = int(frame.at[index, ROW])
            if account is None:
                raise ImportRejected(file, f"unknown account '{ref}' (not in the database); "
                                     "import the accounts file first", row=line,
                                     column="account_external_id")
            if account.trader_id != frame.at[index, "trader_id"]:
                raise ImportRejected(
                    file, f"account '{ref}' belongs to another trader than "
                    f"'{frame.at[index, 'trader_external_id']}'", row=line,
                    column="account_external_id")
        frame["account_id"] = frame["account_external_id"].map(
            {k: r.account_id for k, r in found.items()}).astype("Int64")


def _same_server(a: str | None, b: str | None) -> bool:
    # A login is unique per trade server; an unknown server cannot tell two logins apart.
    return a is None or b is None or a == b


def _check_logins(conn: Connection, file: str, frame: pd.DataFrame) -> None:
    """One platform login is one account: refuse a second external_id for the same login."""
    rows = _rows_by(conn, schema.accounts, "login", frame["login"].tolist(),
                    "external_id", "platform", "login", "server")
    known: dict[tuple[str, str], list[tuple[str, str | None, int | None]]] = {}
    for r in rows:
        known.setdefault((r.platform, r.login), []).append((r.external_id, r.server, None))
    for rec in frame.to_dict("records"):
        key = (rec["platform"], rec["login"])
        for external_id, server, line in known.get(key, []):
            if external_id != rec["external_id"] and _same_server(server, rec["server"]):
                where = f"row {line} of this file" if line else "the database"
                raise ImportRejected(
                    file, f"{rec['platform']} login {rec['login']} is already account "
                    f"'{external_id}' in {where}", row=rec[ROW], column="login")
        known.setdefault(key, []).append((rec["external_id"], rec["server"], rec[ROW]))


# ---- terminal-report account ---------------------------------------------------------------


def _resolve_account(conn: Connection, file: str, header: AccountHeader, trader: str | None,
                     create: bool) -> tuple[int, int, int, bool, str]:
    """The (trader_id, account_id) a terminal report belongs to, creating or refreshing the
    account. Returns also the number of traders created, whether the account is new and the
    account currency."""
    acc = schema.accounts
    candidates = conn.execute(sa.select(acc).where(
        acc.c.platform == header.platform, acc.c.login == header.login)).all()
    candidates = [c for c in candidates if _same_server(c.server, header.server)]
    if len(candidates) > 1:
        exact = [c for c in candidates if c.server == header.server]
        if len(exact) != 1:
            raise ImportRejected(file, f"{header.platform} login {header.login} matches "
                                 f"{len(candidates)} accounts on different servers")
        candidates = exact
    existing = candidates[0] if candidates else None
    first_time = header.first_time or datetime.now(UTC).replace(tzinfo=None)

    created = 0
    if trader is not None:
        trader_id = _trader_ids(conn, [trader]).get(trader)
        if trader_id is None:
            if not create:
                raise ImportRejected(file, f"trader '{trader}' does not exist; import it first "
                                     "or allow creating missing traders")
            trader_id = _create_traders(conn, file, {trader: first_time})[trader]
            created = 1
        if existing is not None and existing.trader_id != trader_id:
            owner = conn.execute(sa.select(schema.traders.c.external_id).where(
                schema.traders.c.trader_id == existing.trader_id)).scalar_one()
            raise ImportRejected(file, f"{header.platform} account {header.login} belongs to "
                                 f"trader '{owner}', not '{trader}'")
    elif existing is not None:
        trader_id = existing.trader_id
    elif create:
        name = f"{header.platform}-{header.login}"
        trader_id = _trader_ids(conn, [name]).get(name)
        if trader_id is None:
            trader_id = _create_traders(conn, file, {name: first_time})[name]
            created = 1
    else:
        raise ImportRejected(
            file, f"no trader owns {header.platform} account {header.login} yet; name the "
            "client this report belongs to (--trader <external_id>) or allow creating "
            "missing traders")

    if existing is None:
        if header.currency is None:
            raise ImportRejected(
                file, f"the file does not state the currency of {header.platform} account "
                f"{header.login} and the account is not in the database; add a currency "
                "column or import the account first", column="currency")
        account_id = database.next_id(conn, acc)
        frame = pd.DataFrame([{
            "account_id": account_id, "external_id": header.external_id, "trader_id": trader_id,
            "platform": header.platform, "server": header.server, "login": header.login,
            "currency": header.currency, "leverage": header.leverage,
            "is_demo": bool(header.is_demo), "opened_at": first_time,
        }])
        _bulk(conn, file, acc, typed(acc, frame))
        return trader_id, account_id, created, True, str(header.currency)

    if header.currency is not None and existing.currency != header.currency:
        raise ImportRejected(file, f"{header.platform} account {header.login} is in "
                             f"{existing.currency} in the database but the report says "
                             f"{header.currency}", column="Currency")
    # A report is the latest word on leverage and server; an earlier report widens opened_at.
    changes: dict[str, Any] = {}
    if header.leverage is not None and header.leverage != existing.leverage:
        changes["leverage"] = header.leverage
    if header.server and header.server != existing.server:
        changes["server"] = header.server
    if header.is_demo is not None and header.is_demo != existing.is_demo:
        changes["is_demo"] = header.is_demo
    if first_time < existing.opened_at:
        changes["opened_at"] = first_time
    if changes:
        conn.execute(acc.update().where(acc.c.account_id == existing.account_id).values(**changes))
    return trader_id, existing.account_id, created, False, existing.currency


# ---- writing -------------------------------------------------------------------------------


def _existing_external_ids(conn: Connection, table: sa.Table, keys: list[str]) -> set[str]:
    return {r.external_id for r in _rows_by(conn, table, "external_id", keys, "external_id")}


def _insert_new(conn: Connection, file: str, table: sa.Table,
                frame: pd.DataFrame) -> tuple[int, int]:
    """Insert the rows whose external_id the table does not hold yet; (written, skipped)."""
    present = _existing_external_ids(conn, table, frame["external_id"].tolist())
    new = frame[~frame["external_id"].isin(present)]
    if new.empty:
        return 0, len(frame)
    pk = next(iter(table.primary_key.columns)).name
    start = database.next_id(conn, table)
    new = new.assign(**{pk: range(start, start + len(new))})
    _bulk(conn, file, table, typed(table, new))
    return len(new), len(frame) - len(new)


@contextlib.contextmanager
def _database_refusal(file: str) -> Iterator[None]:
    """A constraint the parser did not foresee becomes an ImportRejected, not a driver trace
    (the caller's transaction rolls back either way)."""
    import duckdb
    import psycopg2

    try:
        yield
    except (sa.exc.DBAPIError, duckdb.Error, psycopg2.Error) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ImportRejected(file, f"the database refused the rows ({reason})") from None


def _bulk(conn: Connection, file: str, table: sa.Table, frame: pd.DataFrame) -> None:
    with _database_refusal(file):
        database.bulk_insert(conn, table, frame)


def _record_import(conn: Connection, batch: Batch, sha256: str, inserted: int,
                   skipped: int) -> None:
    imports = schema.imports
    conn.execute(imports.insert().values(
        import_id=database.next_id(conn, imports), file_name=batch.file[:255], kind=batch.kind,
        sha256=sha256, rows_read=batch.rows_read, rows_inserted=inserted, rows_skipped=skipped,
        imported_at=datetime.now(UTC).replace(tzinfo=None)))


__all__ = ["load"]
