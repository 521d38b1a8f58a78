"""Engine factory, schema upgrades and bulk loading for DuckDB (default) and PostgreSQL.

One code path serves both backends: the URL in ``TRADERLENS_DB_URL`` picks the driver, Alembic
brings the schema up to date on either, and ``bulk_insert`` uses each backend's fast path
(DataFrame scans on DuckDB, COPY on PostgreSQL).
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from connectors.deadlines import WATCHDOG, cut_socket
from connectors.errors import DatabaseBusy, DatabaseTimeout, DatabaseUnavailable, ImportBusy, TraderLensError
from connectors.schema import DATA_TABLES, metadata

try:  # the writer mark of a DuckDB file (see _DuckFile); Windows has no flock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DUCKDB_PATH = ROOT / "data" / "traderlens.duckdb"
MIGRATIONS_DIR = ROOT / "connectors" / "migrations"


def database_url() -> str:
    """The configured database URL: TRADERLENS_DB_URL, else the embedded DuckDB file."""
    url = os.environ.get("TRADERLENS_DB_URL", "").strip()
    return url or f"duckdb:///{DEFAULT_DUCKDB_PATH}"


# Query parameters whose values are safe to show; every other value (password=, sslpassword=,
# sslkey=...) is masked.
_SHOWN_QUERY_KEYS = frozenset({"sslmode", "connect_timeout", "application_name", "target_session_attrs"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
UNPARSEABLE_URL = "(a database URL that cannot be parsed)"


def _split(url: str) -> tuple[str, str, str] | None:
    """(scheme, credentials, rest) of ``url`` by the last ``@``, or None when it has no scheme://.

    Credentials are everything between ``scheme://`` and the *last* ``@``: a password with an
    unescaped ``@`` is still taken whole (SQLAlchemy's parser would leave its tail in the host).
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return None
    credentials, at, location = rest.rpartition("@")
    return scheme, credentials if at else "", location


def redact(url: str) -> str:
    """``url`` fit for messages and logs: credentials and secret query values masked.

    Whatever the form of the URL, no password survives: everything between the scheme and the
    last ``@`` becomes ``***``, query values other than harmless ones (sslmode, ...) become
    ``***``, and a string that is not ``scheme://...`` at all is not echoed.
    """
    parts = _split(url)
    if parts is None:
        return UNPARSEABLE_URL
    scheme, credentials, location = parts
    path, q, query = location.partition("?")
    if q:
        pairs = (pair.partition("=") for pair in query.split("&"))
        query = "&".join(k + (eq and ("=" + v if k in _SHOWN_QUERY_KEYS else "=***")) for k, eq, v in pairs)
    return f"{scheme}://{'***@' if credentials else ''}{path}{q}{query}"


def location(url: str) -> str:
    """Where the database is, with no credentials at all: ``host:port/db`` or the DuckDB file path."""
    parts = _split(url)
    if parts is None:
        return UNPARSEABLE_URL
    scheme, _, rest = parts
    rest = rest.partition("?")[0]
    # duckdb:///<path>: the database is what follows the third slash (a fourth makes it absolute).
    return rest[1:] if scheme.startswith("duckdb") else rest


def describe(url: str) -> tuple[str, str]:
    """(backend name, :func:`location`) of ``url`` for display: "PostgreSQL", "db.internal:5432/tl"."""
    parts = _split(url)
    backend = parts[0].partition("+")[0] if parts else "Unknown"
    return {"duckdb": "DuckDB", "postgresql": "PostgreSQL"}.get(backend, backend), location(url)


def scrub(text: str, url: str | None = None) -> str:
    """``text`` (a driver's or library's message) with the secrets of ``url`` masked.

    Drivers and parsers sometimes echo the DSN or parts of it; this removes the configured URL,
    its credentials and its password wherever they appear.
    """
    url = url if url is not None else database_url()
    parts = _split(url)
    secrets = [url.strip()]
    if parts is not None and parts[1]:
        credentials = parts[1]
        # The pieces too: a parser that split at the wrong "@" or ":" echoes a piece as a host name.
        secrets += [credentials, credentials.partition(":")[2], *re.split(r"[:@]", credentials)[1:]]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        if len(secret) >= 3:  # masking every "a" of a message for a one-letter password helps nobody
            text = text.replace(secret, "***" if secret != url.strip() else redact(url))
    return text


def is_duckdb(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "duckdb"


# --- The embedded DuckDB file, shared with other processes ------------------------------------------
#
# A DuckDB file opened read-write is locked against every other process; opened read-only, other
# processes may read it too but none may write. So the app and the CLI's reports open it read-only,
# writers (imports, seeding, migrations) read-write, and no process keeps it open while idle for
# long: the file is closed IDLE_RELEASE_S after its last connection went back. A writer first takes
# the writer mark (an flock on ``<file>.writer.lock``, which the kernel releases when its process
# dies): readers then open the file no more, close it as soon as they are idle, and the writer waits
# until they have. A reader meeting a marked or write-locked file waits for the writer, then says an
# import is running.

WAIT_ENV = "TRADERLENS_DUCKDB_WAIT_S"
DEFAULT_WAIT_S = 30.0  # how long a writer waits for readers to let go (and a CLI reader for a writer)
# An idle file is closed after this: TraderLens writers need not wait for it (their mark closes an
# idle file at once), other programs (a DuckDB shell) must. Page runs closer together than this keep
# the file open, which saves each of them opening it again (about 0.1 s on the 20,000-trader demo:
# benchmarks/duckdb_sharing.py).
IDLE_RELEASE_S = 60.0
_POLL_S = 0.2
_notice: list[Callable[[str], None] | None] = [None]


def set_wait_notice(notice: Callable[[str], None] | None) -> None:
    """Call ``notice(text)`` once whenever this process starts waiting for another one to let go of
    a DuckDB file (the CLI prints it; ``None`` waits silently)."""
    _notice[0] = notice


def wait_seconds() -> float:
    """How long to wait for another process to let go of a DuckDB file: TRADERLENS_DUCKDB_WAIT_S, else 30."""
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, "").strip() or DEFAULT_WAIT_S))
    except ValueError:
        return DEFAULT_WAIT_S


@dataclass(frozen=True)
class _Blocker:
    """What keeps a connection from opening: "import" (a writer's mark), "process" (DuckDB's lock held
    by another process) or "self" (this process's own connections in the other mode)."""

    kind: str
    who: str
    started: datetime | None = None


def _mark_path(path: Path) -> Path:
    return path.with_name(path.name + ".writer.lock")


def _describe(pid: int) -> str:
    """"the app (PID 12)" or "PID 12: cli.py import deposits.csv", from /proc where there is one."""
    try:
        argv = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0") if a]
    except OSError:
        return f"PID {pid}"
    while argv and (Path(argv[0]).name.startswith("python") or argv[0] in {"-m", "-u"}):
        argv.pop(0)
    # The program and its first two words ("cli.py import deposits.csv"): a message shown in the app
    # must not carry another process's arguments at length (a URL, a token).
    argv = ["python -c …"] if argv[:1] == ["-c"] else argv[:3]
    command = scrub(" ".join(" ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv)).split()))
    if "streamlit" in command or command.startswith("cli.py serve"):
        return f"the app (PID {pid})"
    return f"PID {pid}: {command[:80]}" if command else f"PID {pid}"


def _marked_writer(path: Path) -> _Blocker | None:
    """The writer holding the mark of ``path`` in another process, or None when nobody does."""
    if fcntl is None:
        return None
    try:
        fd = os.open(_mark_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            who, _, started = os.read(fd, 1000).decode("utf-8", "replace").partition("\n")
            try:
                since = datetime.fromisoformat(started.strip()).replace(tzinfo=None)
            except ValueError:
                since = None
            return _Blocker("import", who.strip() or "another process", since)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _take_mark(path: Path) -> int | None:
    """The writer mark of ``path`` (a descriptor; closing it releases the mark), or None when another
    process holds it. -1 where there is no flock (Windows): DuckDB's own lock then serialises alone."""
    if fcntl is None:
        return -1
    fd = os.open(_mark_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    os.write(fd, f"{_describe(os.getpid())}, since {now:%H:%M:%S} UTC\n{now.isoformat()}".encode())
    return fd


def _lock_holder(exc: BaseException) -> _Blocker | None:
    """Who holds the file, from DuckDB's "Could not set lock on file ... (PID 12)" error; None for other errors."""
    text = str(exc)
    if "Could not set lock" not in text and "Conflicting lock" not in text:
        return None
    pid = re.search(r"\(PID (\d+)\)", text)
    return _Blocker("process", _describe(int(pid.group(1))) if pid else "another process")


class _DuckFile:
    """One DuckDB file as this process holds it: closed, open read-only ("r") or read-write ("w").

    Every engine on the file, reader or writer, goes through it. A keeper connection holds the open
    database while connections come and go; it is closed when the file has been idle IDLE_RELEASE_S,
    or as soon as it is idle while a writer waits. A reader joins a file this process holds
    read-write; a writer waits until this process's readers are done.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.mode: str | None = None
        self.keeper: Any = None
        self.mark: int | None = None  # the writer mark's descriptor while this process writes
        self.active = 0  # connections out
        self.writers = 0  # of which a writer engine's
        self.writers_waiting = 0
        self.close_when_idle = False
        self.idle_since = time.monotonic()
        self.reaper: threading.Thread | None = None

    def acquire(self, pool: _DuckPool) -> None:
        """Wait until ``pool``'s engine may open a connection, opening the file in its mode as needed.
        Raises DatabaseBusy (ImportBusy for a writer behind another import) after ``pool.wait_s``."""
        write = pool.writer
        deadline = time.monotonic() + pool.wait_s
        noticed = False
        with self.cond:
            self.writers_waiting += write
            try:
                while True:
                    blocker = self._try(pool, write)
                    if blocker is None:
                        self.active += 1
                        self.writers += write
                        return
                    if time.monotonic() >= deadline:
                        if write and self.mode is None:
                            self._drop_mark()
                        raise self._busy(write, blocker, pool.wait_s)
                    if not noticed and _notice[0] is not None and blocker.kind != "self":
                        noticed = True
                        _notice[0](f"waiting up to {pool.wait_s:.0f} s for " + (
                            f"the import of {blocker.who} to finish …" if blocker.kind == "import"
                            else f"{blocker.who} to release the database …"))
                    self.cond.wait(min(_POLL_S, max(0.0, deadline - time.monotonic())))
            finally:
                self.writers_waiting -= write

    def _try(self, pool: _DuckPool, write: bool) -> _Blocker | None:
        """None when a connection may be opened now (the file is open in a fitting mode), else what blocks it."""
        if self.mode == "w":
            if write or self.active:
                return None
            self._close()  # idle, and only a reader asks: read-only again, so other processes may read
        if self.mode == "r":
            if write:
                if self.active:
                    return _Blocker("self", "this process's readers")
                self._close()
            elif self.writers_waiting:
                return _Blocker("import", _describe(os.getpid()))  # its writer goes first
            else:
                marked = _marked_writer(self.path)
                if marked is None:
                    return None
                if not self.active:
                    self._close()
                return marked
        # Closed: open it in the mode asked for.
        if write:
            if self.mark is None:
                self.mark = _take_mark(self.path)
                if self.mark is None:
                    return _marked_writer(self.path) or _Blocker("import", "another process")
        elif self.writers_waiting:
            return _Blocker("import", _describe(os.getpid()))
        elif (marked := _marked_writer(self.path)) is not None:
            return marked
        self.mode = "w" if write else "r"  # read by the engine's do_connect listener
        try:
            self.keeper = pool.open_keeper()
        except Exception as exc:
            self.mode = None
            holder = _lock_holder(exc)
            if holder is None:
                self._drop_mark()
                raise
            return holder
        if self.reaper is None:
            self.reaper = threading.Thread(target=self._reap, name=f"duckdb-idle:{self.path.name}", daemon=True)
            self.reaper.start()
        return None

    def release(self, pool: _DuckPool) -> None:
        with self.cond:
            self.active -= 1
            self.writers -= pool.writer
            if not self.active:
                self.idle_since = time.monotonic()
                if self.close_when_idle or self.writers_waiting or (
                        self.mode == "r" and _marked_writer(self.path) is not None):
                    self._close()  # someone waits for the file: let go now, not after the idle delay
            self.cond.notify_all()

    def close_if_idle(self) -> None:
        """Close the file now if no connection is out, else as soon as the last one is back."""
        with self.cond:
            if self.active:
                self.close_when_idle = True
            else:
                self._close()
            self.cond.notify_all()

    def _close(self) -> None:
        keeper, self.keeper, self.mode, self.close_when_idle = self.keeper, None, None, False
        try:
            if keeper is not None:
                keeper.close()  # the last connection: DuckDB checkpoints and lets go of the file
        finally:
            self._drop_mark()

    def _drop_mark(self) -> None:
        if self.mark is not None and self.mark >= 0:
            os.close(self.mark)
        self.mark = None

    def _reap(self) -> None:
        """Close the file once it has been idle IDLE_RELEASE_S, or as soon as it is idle while another
        process's writer waits for it (its mark is looked at every _POLL_S); a thread per open spell."""
        with self.cond:
            while self.keeper is not None:
                left = self.idle_since + IDLE_RELEASE_S - time.monotonic()
                if self.active:
                    self.cond.wait()
                elif left > 0 and (self.mode == "w" or _marked_writer(self.path) is None):
                    self.cond.wait(min(left, _POLL_S))
                else:
                    self._close()
            self.reaper = None

    def _busy(self, write: bool, blocker: _Blocker, wait_s: float) -> TraderLensError:
        where = redact(f"duckdb:///{self.path}")
        if blocker.kind == "import":
            if write:
                return ImportBusy(blocker.started)
            return DatabaseBusy(where, f"an import is running ({blocker.who}); figures are back when it finishes")
        if blocker.kind == "self":
            return DatabaseBusy(where, "this process was still reading the DuckDB file after "
                                       f"{wait_s:.0f} s; nothing was written")
        if write:
            return DatabaseBusy(where, f"another process still had the DuckDB file open after {wait_s:.0f} s: "
                                       f"{blocker.who}; nothing was written. The app lets go of it between page "
                                       f"runs: try again, or wait longer with {WAIT_ENV}")
        return DatabaseBusy(where, f"another process is writing to the DuckDB file ({blocker.who}); "
                                   "figures are back when it finishes")


_FILES: dict[Path, _DuckFile] = {}


class _DuckPool(NullPool):
    """A connection per checkout, each through the process's :class:`_DuckFile` for the engine's
    file: a reader engine's open it read-only, a writer's read-write."""

    # Not keyword-only: create_engine() hands a pool class the keywords its __init__ names positionally.
    def __init__(self, creator: Any, duck_file: _DuckFile, writer: bool = True, wait_s: float = DEFAULT_WAIT_S,
                 **kwargs: Any) -> None:
        super().__init__(creator, **kwargs)
        self.duck_file, self.writer, self.wait_s = duck_file, writer, wait_s

    def _do_get(self) -> Any:
        self.duck_file.acquire(self)
        try:
            return super()._do_get()
        except BaseException:
            self.duck_file.release(self)
            raise

    def _do_return_conn(self, record: Any) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            self.duck_file.release(self)

    def open_keeper(self) -> Any:
        return self._invoke_creator(None)  # type: ignore[arg-type]  # the creator ignores the record

    def recreate(self) -> _DuckPool:
        return _DuckPool(self._creator, duck_file=self.duck_file, writer=self.writer, wait_s=self.wait_s,
                         recycle=self._recycle, echo=self.echo, logging_name=self._orig_logging_name,
                         reset_on_return=self._reset_on_return, pre_ping=self._pre_ping,
                         _dispatch=self.dispatch, dialect=self._dialect)

    def dispose(self) -> None:
        self.duck_file.close_if_idle()  # engine.dispose() releases the file, as the QueuePool did


_ENGINES: dict[tuple[str, bool, float], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(url: str | None = None, *, read_only: bool = False, wait_s: float | None = None) -> Engine:
    """A process-wide engine for ``url`` (default: :func:`database_url`), checked to connect.

    On a DuckDB file, a ``read_only`` engine opens the file read-only (other processes may read it
    at the same time), any other read-write; neither keeps it open while idle, and each waits up to
    ``wait_s`` (default :func:`wait_seconds`) for another process to let go of it (see _DuckFile).
    PostgreSQL has one engine per URL whatever ``read_only`` says.

    Raises DatabaseUnavailable (DatabaseBusy for a DuckDB file another process keeps) with the URL
    and the reason, never the driver's stack trace.
    """
    url = url or database_url()
    wait_s = wait_seconds() if wait_s is None else wait_s
    key = (url, read_only, wait_s) if _duckdb_file(url) is not None else (url, False, 0.0)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = _create_engine(url, writer=not read_only, wait_s=wait_s)
        return _ENGINES[key]


def _duckdb_file(url: str) -> Path | None:
    """The file of a ``duckdb:///PATH`` URL (None for other URLs and in-memory databases)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "duckdb" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def _create_engine(url: str, *, writer: bool = True, wait_s: float = DEFAULT_WAIT_S) -> Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        # The parser's message echoes the URL, password included: say what is wrong without it.
        raise DatabaseUnavailable(redact(url), "TRADERLENS_DB_URL is not a valid database URL (expected "
                                  "postgresql+psycopg2://USER:PASSWORD@HOST:5432/DATABASE or "
                                  "duckdb:///PATH)") from None
    parts = _split(url)
    if parts is not None and "@" in parts[1]:
        # SQLAlchemy would split at the first "@" and send the password's tail as the host name.
        raise DatabaseUnavailable(redact(url), "an '@' in the user name or password of TRADERLENS_DB_URL must "
                                  "be written as %40")
    kwargs: dict = {}
    duck_file = None
    if parsed.get_backend_name() == "duckdb":
        path = _duckdb_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            duck_file = _FILES.setdefault(path, _DuckFile(path))
            kwargs.update(poolclass=_DuckPool, duck_file=duck_file, writer=writer, wait_s=wait_s)
    elif parsed.get_backend_name() == "postgresql":
        kwargs.update(pool_pre_ping=True, pool_recycle=1800)
        if parsed.get_driver_name() == "psycopg2":
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    else:
        raise DatabaseUnavailable(
            redact(url), "only duckdb:/// and postgresql+psycopg2:// URLs are supported")
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":
        _install_deadlines(engine)
    if duck_file is not None:
        def open_in_mode(dialect, record, cargs, cparams, file=duck_file) -> None:
            # Every connection opens the file in the mode the process holds it in; DuckDB refuses a
            # second connection to a file that this process has open in another mode.
            cparams["read_only"] = file.mode == "r"

        sa.event.listen(engine, "do_connect", open_in_mode)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except TraderLensError:
        engine.dispose()
        raise
    except Exception as exc:  # each driver raises its own exception types
        engine.dispose()
        raise _unavailable(url, exc) from None
    return engine


# A connection attempt to a server that does not answer gives up after this long (libpq's own
# timeout, covering the TCP connect and the start-up exchange).
CONNECT_TIMEOUT_S = 3
# The pool's liveness check (SELECT 1 on checkout) waits this long on a pooled connection.
PING_TIMEOUT_S = 3.0
_DEADLINE = "traderlens.deadline_s"  # Connection.info: how long a statement may wait on the socket
_ARMED = "traderlens.deadline_token"


def _install_deadlines(engine: Engine) -> None:
    """Arm the watchdog around every statement of a connection that has a deadline, and around the
    pool's liveness ping, so a frozen PostgreSQL server fails a read in seconds instead of never."""

    def arm(conn, cursor, statement, parameters, context, executemany) -> None:
        seconds = conn.info.get(_DEADLINE)
        if seconds:
            conn.info[_ARMED] = WATCHDOG.arm(seconds, cut_socket(conn.connection.dbapi_connection))

    def disarm(conn, *_args) -> None:
        token = conn.info.pop(_ARMED, None) if conn is not None else None
        if token is not None:
            WATCHDOG.disarm(token)

    sa.event.listen(engine, "before_cursor_execute", arm)
    sa.event.listen(engine, "after_cursor_execute", disarm)
    sa.event.listen(engine, "handle_error", lambda context: disarm(context.connection))
    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection) -> bool:
        with WATCHDOG.deadline(PING_TIMEOUT_S, cut_socket(dbapi_connection)):
            return ping(dbapi_connection)

    engine.dialect.do_ping = do_ping  # the pool calls the dialect's do_ping before handing out a connection


@contextmanager
def deadline(conn: Connection, seconds: float | None) -> Iterator[None]:
    """Statements on ``conn`` inside the block fail once they wait ``seconds`` on the server.

    On PostgreSQL the watchdog cuts the socket of a statement still waiting then (the server's
    ``statement_timeout`` cannot help when the server itself is frozen). Raw driver calls (COPY)
    are covered too: the block itself is watched. DuckDB runs in this process and needs none.
    """
    if conn.dialect.name != "postgresql" or not seconds:
        yield
        return
    conn.info[_DEADLINE] = seconds
    try:
        # Statements arm their own deadline; this outer one covers raw driver calls in the block.
        with WATCHDOG.deadline(seconds + PING_TIMEOUT_S, cut_socket(conn.connection.dbapi_connection)):
            yield
    finally:
        conn.info.pop(_DEADLINE, None)


# Connection-level failures: the server is down, frozen, restarting or refusing connections.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError,
                                                    DatabaseUnavailable)
try:  # raw driver calls (COPY) raise the driver's own exceptions
    import psycopg2

    _OUTAGE_ERRORS += (psycopg2.OperationalError, psycopg2.InterfaceError)
except ImportError:  # pragma: no cover - psycopg2 is a requirement
    pass

_BREAKER_S = 10.0  # after a failure, reads fail at once for this long instead of waiting again
_BUSY_BREAKER_S = 2.0  # the same after a DuckDB file was found busy (each read has waited already)
_down: dict[str, tuple[float, DatabaseUnavailable]] = {}
_answered: dict[str, datetime] = {}


def outage_of(exc: BaseException, url: str) -> DatabaseUnavailable | None:
    """``exc`` as a DatabaseUnavailable when it means the database cannot be reached, else None."""
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if not isinstance(exc, _OUTAGE_ERRORS):
        return None
    if getattr(getattr(exc, "orig", exc), "pgcode", None) == "57014":  # query_canceled: statement_timeout
        return DatabaseTimeout(redact(url), "a query took longer than the read timeout and was cancelled; "
                                            "the server may be overloaded")
    outage = _unavailable(url, exc)
    # A cut socket and libpq's connect_timeout read as these; say what they mean.
    if "closed the connection unexpectedly" in outage.reason or "timeout expired" in outage.reason:
        outage = DatabaseUnavailable(outage.url, "the server did not answer in time (it may be frozen, "
                                                 "overloaded or unreachable)")
    return outage


def note_outage(engine: Engine, outage: DatabaseUnavailable) -> None:
    """Remember ``outage`` so reads in the next few seconds fail at once (see :func:`check_breaker`).

    A cancelled slow query is no outage: the server answered, other reads may go on."""
    if not isinstance(outage, DatabaseTimeout):
        # A busy DuckDB file is back as soon as the import ends: ask again after a moment.
        pause = _BUSY_BREAKER_S if isinstance(outage, DatabaseBusy) else _BREAKER_S
        _down[str(engine.url)] = (time.monotonic() + pause, outage)


def check_breaker(engine: Engine) -> None:
    """Raise the last outage again while it is recent: a page with ten reads waits once, not ten times."""
    down = _down.get(str(engine.url))
    if down is not None:
        until, outage = down
        if time.monotonic() < until:
            raise outage
        _down.pop(str(engine.url), None)


def forget_outages() -> None:
    """Let the next read try the database again at once (tests, and a reconfigured app)."""
    _down.clear()


def note_answer(engine: Engine) -> None:
    """Record that the database answered just now."""
    _answered[str(engine.url)] = datetime.now(UTC)
    _down.pop(str(engine.url), None)


def last_answer(engine: Engine) -> datetime | None:
    """When this process last read from the database successfully (UTC), or None."""
    return _answered.get(str(engine.url))


def _unavailable(url: str, exc: Exception) -> DatabaseUnavailable:
    reason = scrub((str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0], url)
    if "lock" in reason.lower() and url.startswith("duckdb"):
        return DatabaseBusy(redact(url), f"another process holds the DuckDB file ({reason})")
    return DatabaseUnavailable(redact(url), reason)


def dispose_engines() -> None:
    """Close and forget every engine (so a DuckDB file is released for another process at once)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        for duck_file in _FILES.values():
            duck_file.close_if_idle()


def prepare(url: str | None = None, *, adopt_zone: bool = True) -> str | None:
    """Make the database fit this version of TraderLens before anything reads it
    (:func:`upgrade_schema`: migrations, and the rollups for the running reporting time zone); this
    is the place for any other write a process must make at start. Returns why the rollups were
    rebuilt, or None. Without ``adopt_zone``, rollups holding data for another reporting time zone
    are refused (:class:`connectors.rollups.RollupsStale`) rather than rebuilt for this process's.

    It looks first, read-only: a DuckDB file is opened read-write (waiting for other processes as
    any writer does) only when there is something to write, so starting the app or running a
    report beside a running app writes nothing and waits for nobody.
    """
    url = url or database_url()
    path = _duckdb_file(url)
    if (path is None or path.exists()) and not _needs_writing(get_engine(url, read_only=True), adopt_zone):
        return None
    return upgrade_schema(get_engine(url))


def _needs_writing(engine: Engine, adopt_zone: bool = True) -> bool:
    """Whether :func:`prepare` has something to write: a migration to apply or rollups to rebuild."""
    from connectors.rollups import RollupsStale, stale_reason, zone_conflict

    with engine.connect() as conn:
        if _revision(conn) != _head_revision():
            return True
        if not adopt_zone and (conflict := zone_conflict(conn)):
            raise RollupsStale(conflict)
        return stale_reason(conn) is not None


def alembic_config(engine: Engine):
    """An Alembic Config pointing at our migrations and at ``engine``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine) -> str | None:
    """Bring the database to the newest migration, and its rollups to the running configuration
    (the reporting time zone and the rollup definitions: connectors.rollups.ensure_rollups).

    A no-op when both are there; returns why the rollups were rebuilt, or None. Every process
    (the app, each CLI command) passes here before it reads.
    """
    from alembic import command

    from connectors.rollups import stale_reason

    try:
        command.upgrade(alembic_config(engine), "head")
        with engine.connect() as conn:
            stale = stale_reason(conn)
    except TraderLensError:
        raise
    except Exception as exc:
        raise _unavailable(engine.url.render_as_string(hide_password=False), exc) from None
    if stale is None:
        return None
    from connectors.rollups import ensure_rollups

    with engine.begin() as conn, write_lock(conn):
        return ensure_rollups(conn)  # None when another process rebuilt them meanwhile


@functools.cache
def _head_revision() -> str | None:
    """The newest migration of this checkout."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    # Alembic's own reader needs the DuckDB dialect registered by the migrations' env.py, which a
    # process that only reads never loads.
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def table_counts(conn: Connection) -> dict[str, int]:
    """Row count per data table."""
    return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in DATA_TABLES}


def next_id(conn: Connection, table: sa.Table) -> int:
    """The first free primary-key value of ``table`` (ids are assigned by writers)."""
    pk = next(iter(table.primary_key.columns))
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(pk), 0))).scalar_one()) + 1


@contextmanager
def write_lock(conn: Connection, name: str = "traderlens.writer", *,
               wait_s: float | None = None) -> Iterator[None]:
    """Serialise writers that assign ids (max + 1) so two imports cannot collide.

    PostgreSQL takes a transaction-scoped advisory lock; DuckDB already has a single writer.
    With ``wait_s``, a writer that cannot have the lock within that many seconds raises
    ImportBusy (naming when the holder's transaction started) instead of waiting on.
    """
    if conn.dialect.name == "postgresql":
        if wait_s is None:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
        else:
            _try_lock(conn, name, wait_s)
    yield


def _try_lock(conn: Connection, name: str, wait_s: float) -> None:
    # pg_try_ keeps the transaction usable when the lock is busy (a lock_timeout error would
    # abort it), so the holder can still be looked up for the message.
    deadline = time.monotonic() + wait_s
    try_lock = sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:n))")
    while not conn.execute(try_lock, {"n": name}).scalar_one():
        if time.monotonic() >= deadline:
            started = conn.execute(sa.text(
                "SELECT min(a.xact_start) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid::bigint = (hashtext(:n)::bigint >> 32) & 4294967295 "
                "AND l.objid::bigint = hashtext(:n)::bigint & 4294967295"), {"n": name}).scalar_one()
            raise ImportBusy(started.astimezone(UTC).replace(tzinfo=None) if started else None)
        time.sleep(0.2)


def bulk_insert(conn: Connection, table: sa.Table, frame: pd.DataFrame, *, chunk_rows: int = 250_000,
                external_id_prefix: str | None = None) -> int:
    """Append ``frame`` (columns named as in ``table``) to ``table`` inside the open transaction.

    DuckDB scans the DataFrame directly; PostgreSQL gets COPY ... FROM STDIN in CSV. Columns
    missing from the frame take their defaults. With ``external_id_prefix`` and no external_id
    column, each chunk gets external ids "<prefix><primary key>" (millions of id strings need
    not sit in memory at once). Returns the number of rows written.
    """
    if frame.empty:
        return 0
    columns = [c.name for c in table.columns if c.name in frame.columns]
    derive = external_id_prefix is not None and "external_id" not in frame.columns and "external_id" in table.c
    pk = next(iter(table.primary_key.columns)).name
    if derive:
        columns.insert(1, "external_id")
    total = 0
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start:start + chunk_rows]
        if derive:
            chunk = chunk.assign(external_id=external_id_prefix + chunk[pk].astype(str))
        chunk = chunk[columns]
        if conn.dialect.name == "duckdb":
            _duckdb_append(conn, table, chunk, columns)
        else:
            _postgres_copy(conn, table, chunk, columns)
        total += len(chunk)
    return total


def _duckdb_append(conn: Connection, table: sa.Table, chunk: pd.DataFrame, columns: list[str]) -> None:
    raw = conn.connection.driver_connection
    view = f"_bulk_{table.name}"
    raw.register(view, chunk)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        raw.execute(f'INSERT INTO {_qualified(table)} ({cols}) SELECT {cols} FROM "{view}"')
    finally:
        raw.unregister(view)


def _postgres_copy(conn: Connection, table: sa.Table, chunk: pd.DataFrame, columns: list[str]) -> None:
    # An integer column with gaps arrives as float ("17.0"), which COPY rejects for INTEGER.
    floats_as_ints = [c for c in columns if isinstance(table.c[c].type, sa.Integer)
                      and pd.api.types.is_float_dtype(chunk[c].dtype)]
    if floats_as_ints:
        chunk = chunk.astype({c: "Int64" for c in floats_as_ints})
    buf = _csv_for_copy(chunk)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {_qualified(table)} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
    finally:
        cursor.close()


def _csv_for_copy(chunk: pd.DataFrame) -> io.BytesIO:
    """``chunk`` as CSV for COPY: NULLs as an unquoted empty field, every other value quoted, so an
    empty string stays "" (COPY CSV's own distinction). Written by pyarrow's C++ writer, several
    times faster than ``DataFrame.to_csv`` (which took 19 s of a 20,000-trader seed); pandas
    writes what pyarrow cannot convert."""
    buf = io.BytesIO()
    try:
        frame = chunk.astype({c: "string" for c in chunk.columns if isinstance(chunk[c].dtype, pd.CategoricalDtype)})
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False,
                                                                       quoting_style="all_valid"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        buf = io.BytesIO()
        chunk.to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")
    buf.seek(0)
    return buf


def _qualified(table: sa.Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def reset_data(conn: Connection) -> None:
    """Delete every row of the data tables (children first) in the open transaction.

    Not for a filled DuckDB database: DuckDB checks foreign keys too eagerly to delete a parent
    row in the transaction that deleted its children (see :func:`reset_data_per_table`).
    """
    from connectors.schema import ROLLUP_TABLES

    for table in (*ROLLUP_TABLES, *reversed(DATA_TABLES)):
        conn.execute(table.delete())


def reset_data_per_table(engine: Engine) -> None:
    """Delete every row of the data tables, one committed transaction per table, children first.

    DuckDB's way to empty tables linked by foreign keys. An interruption leaves the parent
    tables (traders, accounts) still filled, never an orphan row.
    """
    from connectors.schema import ROLLUP_TABLES

    for table in (*ROLLUP_TABLES, *reversed(DATA_TABLES)):
        with engine.begin() as conn:
            conn.execute(table.delete())


__all__ = [
    "DEFAULT_DUCKDB_PATH", "bulk_insert", "database_url", "describe", "dispose_engines", "get_engine",
    "is_duckdb", "location", "metadata", "next_id", "prepare", "redact", "reset_data", "reset_data_per_table",
    "schema_revision", "scrub", "set_wait_notice", "table_counts", "upgrade_schema", "wait_seconds", "write_lock",
]
