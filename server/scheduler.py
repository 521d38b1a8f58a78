"""Background work of the running app: the feature snapshot kept current and saved segments
refreshed on a schedule.

While the app runs, one daemon thread per process ticks at once and then every
``TRADERLENS_SEGMENT_REFRESH_S`` seconds (default 300; 0 turns it off). A tick recomputes the
materialised feature snapshot when it is missing or stale (analytics.features.ensure_features: a
new day of data, or an import since it was computed), so the rule builder offers the features soon
after a start and a rule on "days since last trade" moves with the data; then it refreshes every
segment that is not archived, so rule segments stay live between ``python cli.py segments refresh``
runs. An empty database is left alone.

Writes go through the writer engine: on PostgreSQL the segment writers' advisory lock
(analytics.segments) serialises them with ``cli.py segments refresh``; on the embedded DuckDB file
the refresh waits like any writer for another process's import, and a tick that cannot have the
file is logged and retried at the next one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from analytics import segments
from analytics.events import read_event_span
from connectors import database

ENV = "TRADERLENS_SEGMENT_REFRESH_S"
DEFAULT_S = 300.0

log = logging.getLogger(__name__)


def refresh_interval() -> float:
    """Seconds between refreshes from TRADERLENS_SEGMENT_REFRESH_S (0: off); the default for a value
    that is not a number of seconds (logged)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        log.warning("%s=%r is not a number of seconds; refreshing every %.0f s", ENV, raw, DEFAULT_S)
        return DEFAULT_S
    return value


@dataclass
class Status:
    """What the scheduler did last (shown on the Segments page)."""

    interval_s: float = 0.0
    running: bool = False
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_error: str | None = None
    results: list[segments.RefreshResult] = field(default_factory=list)


STATUS = Status()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


def _writer() -> Engine:
    # database.get_engine directly (not server.engine's Streamlit-cached one): this runs outside any
    # script run. The app opened and migrated the database before starting the scheduler.
    return database.get_engine(database.database_url())


def _reader() -> Engine:
    return database.get_engine(database.database_url(), read_only=True)


def refresh_once(writer: Callable[[], Engine] = _writer, reader: Callable[[], Engine] = _reader
                 ) -> list[segments.RefreshResult]:
    """One tick: the feature snapshot recomputed when missing or stale (analytics.features.
    ensure_features: a new day of data or an import since), then every live segment refreshed.
    Returns the refresh results (empty when no segment is live). An empty database is left alone."""
    from analytics.features import ensure_features
    from analytics.models.scoring import rescore_stale
    from analytics.reading import reading

    with reading(reader()) as conn:
        if read_event_span(conn) is None:
            return []
    snapshot, recomputed = ensure_features(writer())
    if recomputed:
        log.info("feature snapshot as of %s materialised for %d traders", snapshot.as_of, snapshot.traders)
    # Scores before segments: rules may filter on them. A new day of data or a promoted model
    # leaves the stored scores stale.
    for scored in rescore_stale(writer(), by="scheduler"):
        log.info("%s scored for %d traders as of %s in %.1f s", scored.model, scored.traders, scored.as_of,
                 scored.duration_s)
    if segments.list_segments(reader()).empty:
        return []
    return segments.refresh_segments(writer())


def _run(interval: float, writer: Callable[[], Engine], reader: Callable[[], Engine]) -> None:
    # The first tick at once: a database without a feature snapshot gets one in the background, so
    # the rule builder can offer the features soon after the app starts.
    wait = 0.0
    while not _stop.wait(wait):
        wait = interval
        STATUS.running, STATUS.last_started_at = True, datetime.now(UTC).replace(tzinfo=None)
        started = time.perf_counter()
        try:
            STATUS.results = refresh_once(writer, reader)
            STATUS.last_error = None
            failed = [r for r in STATUS.results if r.error]
            for r in failed:
                log.warning("segment %r not refreshed: %s", r.name, r.error)
            if STATUS.results:
                log.info("%d segments refreshed in %.2f s", len(STATUS.results), time.perf_counter() - started)
        except Exception as exc:  # a database away or busy: say so, try again next tick
            STATUS.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("segment refresh failed: %s", STATUS.last_error)
        finally:
            STATUS.running, STATUS.last_finished_at = False, datetime.now(UTC).replace(tzinfo=None)


def start(writer: Callable[[], Engine] = _writer, reader: Callable[[], Engine] = _reader) -> bool:
    """Start the refresh thread unless it runs already in this process or the interval is 0.
    Returns True when this call started it."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return False
        interval = refresh_interval()
        STATUS.interval_s = interval
        if interval <= 0:
            return False
        _stop.clear()
        _thread = threading.Thread(target=_run, args=(interval, writer, reader), name="traderlens-segment-refresh",
                                   daemon=True)
        _thread.start()
        return True


def stop(timeout_s: float = 10.0) -> None:
    """Stop the refresh thread (tests; the daemon thread otherwise ends with the process)."""
    global _thread
    with _lock:
        thread, _thread = _thread, None
        _stop.set()
    if thread is not None:
        thread.join(timeout_s)
