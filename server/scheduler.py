"""Background work of the running app: saved segments refreshed on a schedule.

While the app runs, one daemon thread per process refreshes every segment that is not archived
every ``TRADERLENS_SEGMENT_REFRESH_S`` seconds (default 300; 0 turns it off), so rule segments stay
live between ``python cli.py segments refresh`` runs. A tick does nothing, and never takes the
writer, when no segment is live. When a live rule segment tests a feature and the data has a newer
day than the materialised feature snapshot, the snapshot is materialised again first, so a rule on
"days since last trade" moves with the data.

Writes go through the writer engine: on PostgreSQL the segment writers' advisory lock
(analytics.segments) serialises them with ``cli.py segments refresh``; on the embedded DuckDB file
the refresh waits like any writer for another process's import, and a tick that cannot have the
file is logged and retried at the next one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from analytics import segments
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


def _uses_features(definition: dict) -> bool:
    return any(name.startswith("feature.") for name in segments.rule_fields(segments.rule_from_dict(definition)))


def refresh_once(writer: Callable[[], Engine] = _writer, reader: Callable[[], Engine] = _reader
                 ) -> list[segments.RefreshResult]:
    """One tick: materialise the feature snapshot when stale and a live rule segment needs it, then
    refresh every live segment. Returns the refresh results (empty when no segment is live)."""
    from analytics.features import materialised_snapshot, snapshot_time

    live = segments.list_segments(reader())
    if live.empty:
        return []
    engine = writer()
    rules = live[live["kind"] == "rules"]["definition"]
    if any(_uses_features(json.loads(text)) for text in rules):
        current = materialised_snapshot(engine)
        if current is not None and current.as_of < snapshot_time(engine, None):
            from analytics.features import materialise_features

            materialise_features(engine)
            log.info("feature snapshot materialised again (it was as of %s)", current.as_of)
    return segments.refresh_segments(engine)


def _run(interval: float, writer: Callable[[], Engine], reader: Callable[[], Engine]) -> None:
    while not _stop.wait(interval):
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
