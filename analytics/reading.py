"""One way to open a connection for an analytics read: tuned, time-limited, failing clearly.

Every analytics module reads through :func:`reading`, so what every read needs lives in one place:

- PostgreSQL settings that the 200,000-trader benchmark showed to matter: ``jit = off`` (these
  queries cost far above ``jit_above_cost``, and compiling their wide aggregates takes 0.3-1 s on
  PostgreSQL 15 while saving less than that) and ``work_mem = 64MB`` (the default 4 MB makes
  per-trader hash aggregates and de-duplications spill to disk).
- A statement timeout (``READ_TIMEOUT_S``), enforced by the server, and a client-side deadline a
  little longer (connectors.database.deadline), so a frozen server fails the read in seconds.
- Failures that mean the database cannot be reached come out as one DatabaseUnavailable, whatever
  the driver raised; after one, reads fail at once for a few seconds rather than each waiting.

``SET LOCAL`` ends with the read's transaction, so a pooled connection goes back unchanged.
DuckDB needs none of this: it runs in this process and sizes its memory itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from connectors import database

POSTGRES_SETTINGS: dict[str, str] = {"jit": "off", "work_mem": "'64MB'"}
# The slowest page read on 200,000 traders takes 1-3 s on PostgreSQL; 30 s means something is wrong.
READ_TIMEOUT_S = 30
# The client gives the server this much longer to report its own timeout before cutting the socket.
_CLIENT_GRACE_S = 5


def tune(conn: Connection, timeout_s: float = READ_TIMEOUT_S) -> None:
    """Apply the read settings to the open transaction of ``conn`` (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        settings = {**POSTGRES_SETTINGS, "statement_timeout": f"'{int(timeout_s * 1000)}ms'"}
        conn.execute(sa.text("; ".join(f"SET LOCAL {name} = {value}" for name, value in settings.items())))


@contextmanager
def reading(engine: Engine, *, timeout_s: float = READ_TIMEOUT_S) -> Iterator[Connection]:
    """A connection for one analytics read (see the module docstring).

    Raises connectors.errors.DatabaseUnavailable when the database cannot be reached or does not
    answer within ``timeout_s``.
    """
    database.check_breaker(engine)
    try:
        with engine.connect() as conn, database.deadline(conn, timeout_s + _CLIENT_GRACE_S):
            tune(conn, timeout_s)
            yield conn
    except Exception as exc:
        outage = database.outage_of(exc, engine.url.render_as_string(hide_password=False))
        if outage is None:
            raise
        database.note_outage(engine, outage)
        raise outage from exc
    database.note_answer(engine)
