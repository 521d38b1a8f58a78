"""Writing a parsed file inside one transaction: resolve traders and accounts, compare rows already
present (connectors.importers.updates), assign ids, bulk-insert the new rows, update the changed
ones and keep their history, refresh the rollups and record the import. A terminal report
arrives whole (a Batch), a CSV file staged in chunks (a StagedCsv)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors import database, schema
from connectors.errors import ImportRejected
from connectors.importers import updates
from connectors.importers.batch import ROW, AccountHeader, Batch, ImportResult, StagedCsv, typed
from connectors.importers.terminal import convert_to_usd
from connectors.rollups import refresh_rollups

_CHUNK = 5_000  # keys per IN (...) lookup; keeps statements small on both backends


class _Tally:
    """What an import has written so far, and the traders whose rollups it touched."""

    def __init__(self, conn: Connection, file: str, changed_by: str, skipped: int = 0) -> None:
        self.file, self.changed_by = file, changed_by
        self.import_id = database.next_id(conn, schema.imports)  # nobody else writes while we hold the lock
        self.at = datetime.now(UTC).replace(tzinfo=None)
        self.inserted: dict[str, int] = {}
        self.updated: dict[str, int] = {}
        self.fields: dict[str, int] = {}
        self.unchanged = 0
        self.skipped = skipped
        self.touched: set[int] = set()

    def created(self, table: str, count: int) -> None:
        self.inserted[table] = self.inserted.get(table, 0) + count

    def write(self, conn: Connection, table: sa.Table, frame: pd.DataFrame, comparison: updates.Comparison,
              start: int) -> int:
        """Insert the rows of ``frame`` not stored yet (ids from ``start``) and apply the updates;
        returns the number inserted."""
        new = frame[~comparison.known]
        if len(new):
            _insert_rows(conn, self.file, table, new, start)
            ids = range(start, start + len(new)) if table is schema.traders else new["trader_id"].dropna()
            self.touched.update(int(t) for t in ids)
        self.created(table.name, len(new))
        self.change(conn, table, comparison.updates)
        unchanged = int(comparison.known.sum()) - len(comparison.updates)
        self.unchanged += unchanged
        self.skipped += unchanged
        return len(new)

    def change(self, conn: Connection, table: sa.Table, changes: tuple[updates.RowUpdate, ...]) -> None:
        self.updated[table.name] = self.updated.get(table.name, 0) + len(changes)
        if not changes:
            return
        with _database_refusal(self.file):
            updates.apply(conn, table, changes)
            updates.record(conn, table, changes, import_id=self.import_id, file=self.file,
                           changed_by=self.changed_by, changed_at=self.at)
        for change in changes:
            self.touched.add(change.trader_id)
            for column in change.changes:
                key = f"{table.name}.{column}"
                self.fields[key] = self.fields.get(key, 0) + 1

    def finish(self, conn: Connection, kind: str, sha256: str, rows_read: int) -> ImportResult:
        """Refresh the rollups of the traders whose rows were inserted or updated, log the import."""
        if sum(self.inserted.values()) or sum(self.updated.values()):
            _rollup_test_pause(conn)
            # Keep the daily rollups in step with what this import wrote, in the same transaction.
            refresh_rollups(conn, sorted(self.touched))
        imports = schema.imports
        conn.execute(imports.insert().values(
            import_id=self.import_id, file_name=self.file[:255], kind=kind, sha256=sha256, rows_read=rows_read,
            rows_inserted=sum(self.inserted.values()), rows_skipped=self.skipped,
            rows_updated=sum(self.updated.values()), rows_unchanged=self.unchanged,
            imported_by=self.changed_by[:80], imported_at=self.at))
        return ImportResult(file=self.file, kind=kind, rows_read=rows_read, inserted=self.inserted,
                            skipped=self.skipped, updated=self.updated, unchanged=self.unchanged,
                            changed_fields=self.fields, import_id=self.import_id)


def load(conn: Connection, batch: Batch, *, sha256: str, trader: str | None,
         create_missing_traders: bool, changed_by: str) -> ImportResult:
    """Write a terminal report's ``batch`` through ``conn`` (inside the caller's transaction and
    write lock); rows already present are updated where the report changes them."""
    assert batch.account is not None, "CSV files are loaded by load_csv"
    frames = {name: frame.copy() for name, frame in batch.tables.items()}
    tally = _Tally(conn, batch.file, changed_by, batch.skipped)
    trader_id, account_id, created, account_new, currency, account_change = _resolve_account(
        conn, batch.file, batch.account, trader, create_missing_traders)
    if batch.account.currency is None:
        # The export did not state the currency: amounts are in the known account's.
        convert_to_usd(frames, currency, batch.file)
    tally.created("traders", created)
    tally.created("accounts", int(account_new))
    if account_change is not None:
        tally.change(conn, schema.accounts, (account_change,))
    elif not account_new:
        tally.unchanged += 1
        tally.skipped += 1
    for frame in frames.values():
        frame["trader_id"] = trader_id
        frame["account_id"] = account_id
    for table in schema.DATA_TABLES:
        if table.name in frames:
            frame = frames[table.name]
            comparison = updates.compare(conn, batch.file, table, frame, frame.columns, empty_keeps=True)
            tally.write(conn, table, frame, comparison, database.next_id(conn, table))
    return tally.finish(conn, batch.kind, sha256, batch.rows_read)


def load_csv(conn: Connection, staged: StagedCsv, *, create_missing_traders: bool, changed_by: str) -> ImportResult:
    """Write a staged CSV file through ``conn`` (inside the caller's transaction and write lock),
    one chunk at a time: new rows are inserted, rows already present updated where the file
    changes them (connectors.importers.updates).

    Every check a whole-file load made before its first write still comes first, in the same
    order: the traders the file names, then (reading the chunks once without writing) the
    accounts it names or the logins it adds, and the rows already present, compared; then the
    chunks are written.
    """
    file, table = staged.file, staged.table
    tally = _Tally(conn, file, changed_by, staged.skipped)
    trader_ids: dict[str, int] = {}
    if staged.traders is not None:
        trader_ids, created = _resolve_traders(conn, file, staged.traders, create_missing_traders)
        if created:
            tally.created("traders", created)
            tally.touched.update(trader_ids.values())
    accounts: dict[str, tuple[int, int]] = {}  # account external_id -> (account_id, trader_id)
    logins = _Logins() if table is schema.accounts else None
    names_accounts = table is not schema.accounts and "account_id" in table.c  # trades, transactions
    # The file's columns as the table names them: only those are compared with stored rows.
    references = {"trader_external_id": "trader_id", "account_external_id": "account_id"}
    columns = {references.get(c, c) for c in staged.columns}

    def resolved(chunk: pd.DataFrame) -> pd.DataFrame:
        if "trader_external_id" in chunk:
            chunk = chunk.assign(trader_id=chunk["trader_external_id"].map(trader_ids))
        if names_accounts:
            ids = {ref: ids[0] for ref, ids in accounts.items()}
            chunk = chunk.assign(account_id=chunk["account_external_id"].map(ids).astype("Int64"))
        return chunk

    # Every check and every look-up of rows already present runs before the first write: later
    # chunks would otherwise be looked up against the rows this import has just added (which
    # DuckDB scans slowly inside the transaction) and a refusal would come after writes.
    comparisons: list[updates.Comparison] = []
    for chunk in staged.chunks():
        if names_accounts:
            _check_accounts(conn, file, chunk.assign(trader_id=chunk["trader_external_id"].map(trader_ids)),
                            accounts)
        if logins is not None:
            logins.check(conn, file, chunk)
        comparisons.append(updates.compare(conn, file, table, resolved(chunk), columns))
    next_id = database.next_id(conn, table)  # nobody else assigns ids while we hold the lock
    written = 0
    for chunk, comparison in zip(staged.chunks(), comparisons, strict=True):
        written += tally.write(conn, table, resolved(chunk), comparison, next_id + written)
    return tally.finish(conn, staged.kind, staged.sha256, staged.rows_read)


ROLLUP_PAUSE_ENV = "TRADERLENS_TEST_ROLLUP_PAUSE_S"


def _rollup_test_pause(conn: Connection) -> None:
    """Tests only: with TRADERLENS_TEST_ROLLUP_PAUSE_S set, sleep that long on the server at the
    start of the rollup phase, so a test can kill the importer while its backend is busy and
    holds the writer lock."""
    seconds = os.environ.get(ROLLUP_PAUSE_ENV)
    if seconds and conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": float(seconds)})


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


def _resolve_traders(conn: Connection, file: str, refs: pd.DataFrame,
                     create: bool) -> tuple[dict[str, int], int]:
    """trader_id of every trader_external_id in ``refs`` (indexed by it, with the first ``row``
    naming it and its earliest ``time``), creating the missing ones when ``create``; returns the
    ids and the number of traders created."""
    ids = _trader_ids(conn, refs.index)
    missing = refs[~refs.index.isin(list(ids))]
    if len(missing) and not create:
        ref = missing["row"].idxmin()
        raise ImportRejected(
            file, f"unknown trader '{ref}' (not in the database); import the traders file first "
            "or allow creating missing traders (--create-missing-traders)",
            row=int(missing.at[ref, "row"]), column="trader_external_id")
    if len(missing):
        ids.update(_create_traders(conn, file, {
            ref: pd.Timestamp(when).to_pydatetime() for ref, when in missing["time"].items()}))
    return ids, len(missing)


def _check_accounts(conn: Connection, file: str, frame: pd.DataFrame,
                    found: dict[str, tuple[int, int]]) -> None:
    """Every account_external_id of ``frame`` (which has trader_id) names an account of that
    trader. ``found`` (external_id -> (account_id, trader_id)) carries what earlier chunks found
    and gains this chunk's accounts."""
    refs = frame["account_external_id"].dropna()
    rows = _rows_by(conn, schema.accounts, "external_id", [r for r in refs.unique() if r not in found],
                    "external_id", "account_id", "trader_id")
    found.update({r.external_id: (r.account_id, r.trader_id) for r in rows})
    owners = refs.map(lambda ref: found.get(ref, (None, None))[1])
    bad = owners.isna() | (owners != frame.loc[refs.index, "trader_id"])
    if not bad.any():
        return
    index = bad.idxmax()  # the first bad row in file order
    ref, line = refs[index], int(frame.at[index, ROW])
    if ref not in found:
        raise ImportRejected(file, f"unknown account '{ref}' (not in the database); "
                             "import the accounts file first", row=line, column="account_external_id")
    raise ImportRejected(
        file, f"account '{ref}' belongs to another trader than '{frame.at[index, 'trader_external_id']}'",
        row=line, column="account_external_id")


def _same_server(a: str | None, b: str | None) -> bool:
    # A login is unique per trade server; an unknown server cannot tell two logins apart.
    return a is None or b is None or a == b


class _Logins:
    """One platform login is one account: refuses a second external_id for the same login, in the
    database or earlier in the file, chunk after chunk. Holds one entry per account of the file
    (accounts files are the small ones: one row per trading login)."""

    def __init__(self) -> None:
        # (platform, login) -> (external_id, server, file row or None for the database), in the
        # order a whole-file check met them: the database's first.
        self.known: dict[tuple[str, str], list[tuple[str, str | None, int | None]]] = {}
        self.looked_up: set[str] = set()

    def check(self, conn: Connection, file: str, frame: pd.DataFrame) -> None:
        new = {login for login in frame["login"].tolist() if login not in self.looked_up}
        self.looked_up |= new
        for r in _rows_by(conn, schema.accounts, "login", new, "external_id", "platform", "login", "server"):
            self.known.setdefault((r.platform, r.login), []).append((r.external_id, r.server, None))
        for rec in frame.to_dict("records"):
            key = (rec["platform"], rec["login"])
            for external_id, server, line in self.known.get(key, []):
                if external_id != rec["external_id"] and _same_server(server, rec["server"]):
                    where = f"row {line} of this file" if line else "the database"
                    raise ImportRejected(
                        file, f"{rec['platform']} login {rec['login']} is already account "
                        f"'{external_id}' in {where}", row=rec[ROW], column="login")
            self.known.setdefault(key, []).append((rec["external_id"], rec["server"], rec[ROW]))


# ---- terminal-report account ---------------------------------------------------------------


def _resolve_account(conn: Connection, file: str, header: AccountHeader, trader: str | None,
                     create: bool) -> tuple[int, int, int, bool, str, updates.RowUpdate | None]:
    """The (trader_id, account_id) a terminal report belongs to, creating or refreshing the
    account. Returns also the number of traders created, whether the account is new, the
    account currency and the change the report makes to a stored account (None: none)."""
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
        return trader_id, account_id, created, True, str(header.currency), None

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
    change = None
    if changes:  # written and recorded by the caller, like any other update
        change = updates.RowUpdate(row_id=existing.account_id, external_id=existing.external_id,
                                   trader_id=trader_id,
                                   changes={c: (getattr(existing, c), v) for c, v in changes.items()})
    return trader_id, existing.account_id, created, False, existing.currency, change


# ---- writing -------------------------------------------------------------------------------


def _insert_rows(conn: Connection, file: str, table: sa.Table, frame: pd.DataFrame, start: int) -> None:
    """Insert every row of ``frame`` with primary keys from ``start``."""
    pk = next(iter(table.primary_key.columns)).name
    _bulk(conn, file, table, typed(table, frame.assign(**{pk: range(start, start + len(frame))})))


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


__all__ = ["ROLLUP_PAUSE_ENV", "load", "load_csv"]
