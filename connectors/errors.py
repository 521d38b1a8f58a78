"""Named domain exceptions raised by connectors and turned into one clear message by callers."""

from __future__ import annotations

from datetime import datetime


class TraderLensError(Exception):
    """Base class: every subclass carries a message fit to show a user as it is."""


class DatabaseUnavailable(TraderLensError):
    """The database named by TRADERLENS_DB_URL cannot be reached or opened."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Database {url} is unavailable: {reason}")


class DatabaseTimeout(DatabaseUnavailable):
    """A read ran past its statement timeout and the server cancelled it."""


class DatabaseBusy(DatabaseUnavailable):
    """An embedded DuckDB file is held by another process (DuckDB allows one writer)."""


class DatabaseNotEmpty(TraderLensError):
    """A destructive operation (seeding) was asked for on a database that already holds data."""


class ImportRejected(TraderLensError):
    """An input file was refused; nothing from it was written.

    Carries where the problem is so that the CLI and the Data page can point at it:
    ``file`` (name as given), ``row`` (1-based data row, or None for the whole file),
    ``column`` (column or field name, or None) and ``reason`` (plain words).
    """

    def __init__(self, file: str, reason: str, *, row: int | None = None,
                 column: str | None = None) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.reason = reason
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {reason}")


class ImportBusy(TraderLensError):
    """Another import (or a seed) holds the database's writer lock; nothing was written.

    ``started`` is when the other writer's transaction began (UTC), when the server tells.
    """

    def __init__(self, started: datetime | None) -> None:
        self.started = started
        since = f" (started {started:%Y-%m-%d %H:%M:%S} UTC)" if started is not None else ""
        super().__init__(f"another import is running{since}; try again when it finishes")
