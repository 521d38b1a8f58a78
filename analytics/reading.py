"""One way to open a connection for an analytics read: tuned, time-limited, failing clearly.

Every analytics module reads through :func:`reading`, so what every read needs lives in one place:

- A read-only transaction tagged with the calling function (``application_name`` on PostgreSQL).
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

import re
import sys
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


def _begin(conn: Connection, timeout_s: float, tag: str) -> None:
    """Make the open transaction of ``conn`` a tuned, time-limited, read-only one named ``tag``.

    PostgreSQL only, in one round trip: a read-only transaction (a bug or an injected statement
    cannot write), the settings above, the statement timeout, and ``application_name`` so a DBA
    sees in pg_stat_activity which TraderLens function runs each query.
    """
    if conn.dialect.name != "postgresql":
        return
    settings = {**POSTGRES_SETTINGS, "statement_timeout": f"'{int(timeout_s * 1000)}ms'",
                "application_name": "'traderlens:" + re.sub(r"[^\w.:-]", "_", tag)[:50] + "'"}
    conn.execute(sa.text("SET TRANSACTION READ ONLY; " + "; ".join(
        f"SET LOCAL {name} = {value}" for name, value in settings.items())))


def _caller(depth: int) -> str:
    """``module.function`` of the code ``depth`` frames up: the query tag when none is given."""
    frame = sys._getframe(depth + 1)
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"


@contextmanager
def reading(engine: Engine, *, timeout_s: float = READ_TIMEOUT_S, tag: str | None = None) -> Iterator[Connection]:
    """A connection for one analytics read (see the module docstring); ``tag`` names the caller
    (default: the calling function).

    Raises connectors.errors.DatabaseUnavailable when the database cannot be reached or does not
    answer within ``timeout_s``.
    """
    tag = tag or _caller(2)  # this generator, contextlib's __enter__, then the caller
    database.check_breaker(engine)
    try:
        with engine.connect() as conn, database.deadline(conn, timeout_s + _CLIENT_GRACE_S):
            _begin(conn, timeout_s, tag)
            yield conn
    except Exception as exc:
        outage = database.outage_of(exc, engine.url.render_as_string(hide_password=False))
        if outage is None:
            raise
        database.note_outage(engine, outage)
        raise outage from exc
    database.note_answer(engine)
