"""Importers: CSV tables, MT4 statements, MT5 reports and MT5 deal exports into the database.

Public API (the CLI and the Data page code against it):

- :data:`KINDS` - the file kinds understood;
- :func:`detect_kind` - which kind a file is;
- :func:`preview_file` - parse and validate a file without touching the database;
- :func:`import_file` - load a file in one transaction, updating rows already present where the
  file changes them (with a change history); CSV tables are read in chunks, so a file of any
  size needs about the same memory.

Every refusal is an :class:`~connectors.errors.ImportRejected` naming the file and, where it
applies, the row (the line of the file, header = line 1; the worksheet row for XLSX) and column.
docs/import_formats.md describes every format and column.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors import database
from connectors.errors import ImportBusy, ImportRejected
from connectors.importers.batch import Batch, ImportResult
from connectors.importers.csv_tables import CSV_KINDS, detect_csv_kind, preview_csv_kind, stage_csv_kind
from connectors.importers.source import (
    XLSX_MAGIC,
    CsvStream,
    decode_html,
    read_bytes,
    read_head,
    sniff_text,
    xlsx_grid,
)
from connectors.importers.updates import os_user

KINDS = ("mt4-statement", "mt5-report", "mt5-deals", "traders", "accounts", "trades",
         "transactions", "kyc_events", "sessions", "portal_events")


LOCK_WAIT_S = 10.0  # how long an import waits for another one to finish before giving up


def _display_name(path: Path, file_name: str | None) -> str:
    return file_name or Path(path).name


def _looks_html(data: bytes) -> bool:
    head = sniff_text(data).lower()
    return any(tag in head for tag in ("<html", "<table", "<!doctype html"))


def _detect(path: Path, name: str) -> tuple[str, CsvStream | None]:
    """The file's kind, and for a CSV table the open stream positioned after its header.

    Reads the head of the file; a workbook or an HTML report is read whole. A CSV header that
    fits no kind is refused after the rest of the file has been read, so that a binary, encoding
    or CSV problem anywhere in it is named first, as when the whole text was read.
    """
    from connectors.importers import mt5

    head = read_head(path, name)
    if head.startswith(XLSX_MAGIC):
        if mt5.is_report_grid(xlsx_grid(read_bytes(path, name), name)):
            return "mt5-report", None
        raise ImportRejected(name, "is a workbook but not an MT5 Trade History Report; save "
                             "other tables as CSV")
    if _looks_html(head):
        text = decode_html(read_bytes(path, name), name)
        if "Closed Transactions" in text:
            return "mt4-statement", None
        if "Trade History Report" in text:
            return "mt5-report", None
        raise ImportRejected(name, "is an HTML file but neither an MT4 Statement (no \"Closed "
                             "Transactions:\" section) nor an MT5 Trade History Report")
    stream = CsvStream(path, name)
    try:
        header = stream.header()
        if mt5.is_deals_header(header):
            stream.drain()  # read whole below; the same problems, in the same order
            stream.close()
            return "mt5-deals", None
        kind = detect_csv_kind(header, name)
        if kind is None:
            stream.drain()
            needs = "; ".join(f"{k}: {', '.join(spec.required)}" for k, spec in CSV_KINDS.items())
            raise ImportRejected(name, "cannot tell which kind of file this is from its header; "
                                 f"name the kind, or use the columns of one kind ({needs})")
    except BaseException:
        stream.close()
        raise
    return kind, stream


def detect_kind(path: Path, file_name: str | None = None) -> str:
    """The kind of the file at ``path`` (one of KINDS); ImportRejected if it cannot tell.

    A CSV table is recognised by its header: a problem further on in the file is found by
    :func:`preview_file` or :func:`import_file`, not here.
    """
    name = _display_name(path, file_name)
    kind, stream = _detect(path, name)
    if stream is not None:
        stream.close()
    return kind


def _open(path: Path, name: str, kind: str, server_utc_offset_hours: float) -> tuple[str, CsvStream | None]:
    """The kind to read the file as (detected for ``auto``), with a CSV table's open stream."""
    stream = None
    if kind == "auto":
        kind, stream = _detect(path, name)
    else:
        read_head(path, name)  # an unreadable or empty file is refused before anything else
    if kind not in KINDS:
        raise ImportRejected(name, f"unknown kind '{kind}'; expected auto or one of "
                             f"{', '.join(KINDS)}")
    if not -14 <= server_utc_offset_hours <= 14:
        if stream is not None:  # a detected CSV: a problem anywhere in it is named first
            with stream:
                stream.drain()
        raise ImportRejected(name, f"server UTC offset {server_utc_offset_hours} h is outside "
                             "-14..14")
    if kind in CSV_KINDS and stream is None:
        stream = CsvStream(path, name)
    return kind, stream


def _parse_whole(data: bytes, name: str, kind: str, server_utc_offset_hours: float) -> Batch:
    """A terminal report or MT5 deals export, read whole (one account's history)."""
    if kind == "mt4-statement":
        from connectors.importers import mt4

        return mt4.parse_statement(data, name, server_utc_offset_hours)
    from connectors.importers import mt5

    if kind == "mt5-deals":
        return mt5.parse_deals_csv(data, name, server_utc_offset_hours)
    return mt5.parse_report(data, name, server_utc_offset_hours)


def preview_file(path: Path, kind: str = "auto", *, file_name: str | None = None,
                 rows: int = 20, server_utc_offset_hours: float = 0.0) -> tuple[str, pd.DataFrame]:
    """(kind, first ``rows`` records) of a file, parsed and validated, without the database.

    A CSV table is read only as far as its first ``rows`` records (the rest is checked by
    :func:`import_file`) and gives its canonical columns (docs/import_formats.md); a terminal
    report is read and validated whole and gives one line per trade or balance operation:
    table, external_id, time, symbol, side, lots, kind, amount (account currency), amount_usd,
    close_reason, comment.
    """
    name = _display_name(path, file_name)
    kind, stream = _open(path, name, kind, server_utc_offset_hours)
    if stream is not None:
        with stream:
            return kind, preview_csv_kind(kind, stream, name, rows).reset_index(drop=True)
    batch = _parse_whole(read_bytes(path, name), name, kind, server_utc_offset_hours)
    return batch.kind, batch.preview.head(rows).reset_index(drop=True)


def import_file(engine: sa.Engine, path: Path, *, kind: str = "auto", trader: str | None = None,
                create_missing_traders: bool = False, file_name: str | None = None,
                server_utc_offset_hours: float = 0.0, changed_by: str | None = None) -> ImportResult:
    """Load one file in a single transaction: everything or nothing.

    A row whose external_id is already in its table is compared with it: changed mutable fields
    (a status, an amount, a consent; :data:`connectors.importers.updates.MUTABLE`) are updated and
    kept in the change history (``row_changes``) under ``changed_by`` (who imports: "cli:<user>",
    "app", later the signed-in user; default "python:<os user>"); a changed identity field (trader,
    account, kind, time) refuses the file. Re-importing the same file writes nothing. ``trader``
    is the external_id of the client a terminal report belongs to;
    ``create_missing_traders`` creates minimal traders for unknown references;
    ``server_utc_offset_hours`` is the trade server's offset from UTC for MT4/MT5 times
    (server time is taken as UTC by default).

    A CSV table is parsed and validated whole before the database is touched, a chunk of rows at
    a time with the chunks staged in a temporary file, so memory stays flat however large the
    file; a terminal report is read whole. On PostgreSQL an import waits at most
    ``LOCK_WAIT_S`` for another one to finish (then ImportBusy), and its session is set up so
    that the server ends its work soon after the importing process dies.
    """
    from connectors.importers.loader import load, load_csv

    name = _display_name(path, file_name)
    who = changed_by or f"python:{os_user()}"
    kind, stream = _open(path, name, kind, server_utc_offset_hours)
    if stream is not None:
        with stream:
            staged = stage_csv_kind(kind, stream, name)
        try:
            with _import_transaction(engine) as conn:
                return load_csv(conn, staged, create_missing_traders=create_missing_traders, changed_by=who)
        finally:
            staged.close()
    data = read_bytes(path, name)
    batch = _parse_whole(data, name, kind, server_utc_offset_hours)
    with _import_transaction(engine) as conn:
        return load(conn, batch, sha256=hashlib.sha256(data).hexdigest(), trader=trader,
                    create_missing_traders=create_missing_traders, changed_by=who)


# Settings of an import's PostgreSQL transaction (SET LOCAL: they end with it).
IMPORT_SESSION_SETTINGS = {
    # A lock held by anything else (a migration, a long report) fails the import instead of
    # stalling it without end.
    "lock_timeout": "10s",
    # A running statement checks every second that the client is still there. A killed importer
    # closes its socket, but PostgreSQL only reads the socket between statements: without this a
    # rollup query of a dead import runs to its end, holding the writer lock (PostgreSQL 14+).
    "client_connection_check_interval": "1s",
    # A client that stops talking mid-transaction (hung, or its host gone) releases the lock.
    "idle_in_transaction_session_timeout": "60s",
    # A client host that vanishes without closing the connection is found by keepalive probes
    # after about a minute (the check above then sees the dead socket).
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
    # No statement_timeout: a full rollup rebuild of a large broker legitimately runs for
    # minutes, and the statement of a dead client is ended by the check above.
}


@contextlib.contextmanager
def _import_transaction(engine: sa.Engine) -> Iterator[Connection]:
    """One transaction holding the writer lock, with the import session settings on PostgreSQL."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            version = conn.connection.driver_connection.server_version
            for setting, value in IMPORT_SESSION_SETTINGS.items():
                if setting == "client_connection_check_interval" and version < 140000:
                    continue
                conn.execute(sa.text("SELECT set_config(:s, :v, true)"), {"s": setting, "v": value})
        with database.write_lock(conn, wait_s=LOCK_WAIT_S):
            yield conn


__all__ = ["KINDS", "LOCK_WAIT_S", "ImportBusy", "ImportRejected", "ImportResult", "detect_kind",
           "import_file", "os_user", "preview_file"]
