"""One way to open a connection for an analytics read, tuned for large aggregates.

Every analytics module reads through :func:`reading`, so the PostgreSQL session settings that the
200,000-trader benchmark showed to matter live in one place:

- ``jit = off``: these queries cost far above ``jit_above_cost``, and compiling their wide
  aggregates takes 0.3-1 s on PostgreSQL 15 while saving less than that.
- ``work_mem = 64MB``: the default 4 MB makes per-trader hash aggregates and de-duplications
  spill to disk (batches and temp files in EXPLAIN ANALYZE).

``SET LOCAL`` ends with the read's transaction, so a pooled connection goes back unchanged.
DuckDB needs nothing: it sizes its memory itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

POSTGRES_SETTINGS: dict[str, str] = {"jit": "off", "work_mem": "'64MB'"}


def tune(conn: Connection) -> None:
    """Apply the read settings to the open transaction of ``conn`` (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        for name, value in POSTGRES_SETTINGS.items():
            conn.execute(sa.text(f"SET LOCAL {name} = {value}"))


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for one analytics read (see the module docstring)."""
    with engine.connect() as conn:
        tune(conn)
        yield conn
