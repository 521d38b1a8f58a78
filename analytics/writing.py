"""One way to open a transaction for an analytics write, as analytics.reading is for reads.

Analytics writes only the tables it derives and owns: the materialised feature snapshot
(analytics.features), saved clustering runs (analytics.segmentation) and saved segments with their
members and history (analytics.segments). Every such write goes through :func:`writing`, so what a
write needs lives in one place:

- One transaction: everything or nothing is written (a crash half-way leaves the old state).
- On PostgreSQL, ``application_name`` names the calling function (a DBA sees who holds a lock) and,
  with ``lock``, a transaction-scoped advisory lock serialises writers that allocate ids (max + 1)
  or replace a set of rows (connectors.database.write_lock). DuckDB has a single writer already.

``engine`` must be able to write (the app's writer engine, or the CLI's with ``write=True``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.reading import _caller
from connectors.database import write_lock


@contextmanager
def writing(engine: Engine, *, lock: str | None = None, tag: str | None = None) -> Iterator[Connection]:
    """A connection in one write transaction, committed when the block ends without an error.

    ``lock`` names an advisory lock held until the commit (PostgreSQL); ``tag`` names the caller
    (default: the calling function).
    """
    tag = tag or _caller(2)  # this generator, contextlib's __enter__, then the caller
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            name = "traderlens:" + re.sub(r"[^\w.:-]", "_", tag)[:50]
            conn.execute(sa.text("SELECT set_config('application_name', :name, true)"), {"name": name})
        if lock is None:
            yield conn
        else:
            with write_lock(conn, lock):
                yield conn
