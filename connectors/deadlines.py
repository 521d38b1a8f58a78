"""Client-side deadlines for database calls: what a frozen server cannot enforce itself.

A PostgreSQL server that stops answering (a frozen host, a stopped process, a network partition
that still accepts packets) leaves libpq waiting on its socket forever: ``statement_timeout`` is
enforced by the server, and TCP keepalives are answered by the server's kernel. So every read
arms a deadline on one watchdog thread; when it passes first, the watchdog shuts the
connection's socket down, libpq's wait returns at once with "server closed the connection", and
SQLAlchemy invalidates the connection (the next read opens a new one).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Watchdog:
    """One daemon thread that runs an action for every deadline that passes before it is disarmed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        """Run ``action`` in ``seconds`` unless :meth:`disarm` is called first; returns the token."""
        with self._cond:
            token = next(self._ids)
            self._actions[token] = action
            heapq.heappush(self._heap, (time.monotonic() + seconds, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="traderlens-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        """Forget the deadline ``token`` (a no-op when it has already fired)."""
        with self._cond:
            self._actions.pop(token, None)

    @contextmanager
    def deadline(self, seconds: float | None, action: Callable[[], None]) -> Iterator[None]:
        """``action`` runs if the block is still running after ``seconds`` (None: no deadline)."""
        if not seconds:
            yield
            return
        token = self.arm(seconds, action)
        try:
            yield
        finally:
            self.disarm(token)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, token = self._heap[0]
                if token not in self._actions:  # disarmed: drop it without waiting for its time
                    heapq.heappop(self._heap)
                    continue
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                action = self._actions.pop(token)
            with contextlib.suppress(OSError, ValueError):  # a connection already gone needs no cutting
                action()


WATCHDOG = Watchdog()


def cut_socket(dbapi_connection) -> Callable[[], None]:
    """An action that shuts down the socket of a psycopg2 connection, waking any call waiting on it."""

    def cut() -> None:
        # A duplicate of the descriptor, so closing ours leaves libpq's own descriptor valid;
        # shutdown() acts on the socket both share.
        with socket.socket(fileno=os.dup(dbapi_connection.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    return cut
