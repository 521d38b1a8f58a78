"""What the server does once at start so a broker's first page view does not pay for it.

A page's first run in a new server process imports pandas, Altair, SQLAlchemy and the
analytics modules (about 2.5 s on this 2-core machine), loads the funnel kernels' compiled code
(1-2 s; 13 s when a new checkout compiles them) and computes every analytics call of its default
view (1-3 s on the demo database). ``cli.py serve`` calls :func:`preload` before the server
listens, and :func:`start_page_warmer` then opens each analytics page once over Streamlit's own
websocket, as a browser with no query parameters would, so the default views' ``st.cache_data``
entries exist before the first visitor asks for them.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time
import urllib.request
from pathlib import Path

# Everything a page imports on its first run, heaviest first (measured with py-spy on a cold visit).
MODULES: tuple[str, ...] = (
    "pandas", "numpy", "sqlalchemy", "altair", "pyarrow", "duckdb_engine", "alembic",
    "analytics.kpis", "analytics.cohorts", "analytics.funnels", "analytics.lifecycle", "analytics.data_health",
    "components.overview_charts", "components.cohort_charts", "components.funnel_charts",
    "components.lifecycle_charts", "components.kpi_tiles", "components.tables", "components.health",
    "analytics.features", "analytics.segmentation", "analytics.segments", "analytics.trader360",
    "components.cluster_studio", "components.rule_builder", "components.timeline",
    "xgboost", "analytics.models.scoring", "analytics.models.fields", "components.trader360_scores",
)
# The pages whose default view is computed at start, by url_path in app.py's navigation; the
# default page (Overview) is served at "/", so its name is "".
# Segments opens on its clustering studio: the feature snapshot and the default clustering (and
# scikit-learn's import) made its first visit 6-9 s instead of about 1 s.
WARM_PAGES: tuple[str, ...] = ("", "cohorts", "funnels", "lifecycle", "segments", "predictions")
WARMED_LINE = "Warm-up done"  # logged when every page has run once; benchmarks and tests wait for it
SKIPPED_LINE = "Warm-up skipped"  # logged instead when it failed

def preload() -> dict[str, float]:
    """Import the pages' modules and load the funnel kernels; seconds spent on each part."""
    started = time.perf_counter()
    for name in MODULES:
        importlib.import_module(name)
    imported = time.perf_counter()
    from analytics.funnels import warm_kernels

    warm_kernels()
    return {"imports_s": imported - started, "kernels_s": time.perf_counter() - imported}


class WarmupFailed(RuntimeError):
    """A page's warm-up run did not finish (the server keeps serving; the page is computed on demand)."""


async def _run_page(stream_url: str, page: str, timeout_s: float) -> int:
    """One session that runs ``page`` to the end, as a browser's first visit does; deltas received."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    deltas = 0
    async with websockets.connect(stream_url, subprotocols=["streamlit"], max_size=None) as ws:
        request = BackMsg()
        request.rerun_script.query_string = ""
        request.rerun_script.page_name = page
        await ws.send(request.SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(ws.recv(), timeout_s))
            kind = message.WhichOneof("type")
            deltas += kind == "delta"
            if kind == "page_not_found":  # Streamlit would warm the default page instead
                raise WarmupFailed(f"{page}: no such page in app.py's navigation")
            if kind == "navigation" and _ran_elsewhere(message.navigation, page):
                # The app answers an unknown name with its own notice page rather than Streamlit's
                # dialog: warming that would hide a misspelt page name.
                raise WarmupFailed(f"{page}: no such page in app.py's navigation")
            # A first run can end early because the frame binds widgets to the URL and reruns.
            if kind == "script_finished" and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if message.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                    raise WarmupFailed(f"{page}: the run ended with status {message.script_finished}")
                return deltas


def _ran_elsewhere(navigation, page: str) -> bool:
    """Whether the run's navigation message names another page than the one at url path ``page``, or a
    hidden page under that name: the app's notice for an unknown name is registered, hidden, at the
    name asked for (components/navigation.py); only the default page has a hidden copy, at "/"."""
    ran = [p for p in navigation.app_pages if p.page_script_hash == navigation.page_script_hash]
    if not ran:
        return False
    asked = page.strip("/")
    return ran[0].url_pathname.strip("/") != asked or (ran[0].is_hidden and asked != "")


def warm_pages(base_url: str, pages: tuple[str, ...] = WARM_PAGES, *, timeout_s: float = 300) -> dict[str, float]:
    """Run each page once on the server at ``base_url`` (http://host:port[/base]); seconds per page."""
    stream_url = base_url.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"
    seconds: dict[str, float] = {}
    for page in pages:
        started = time.perf_counter()
        deltas = asyncio.run(_run_page(stream_url, page, timeout_s))
        if not deltas:
            raise WarmupFailed(f"{page}: the run drew nothing (is it in app.py's navigation?)")
        seconds[page] = time.perf_counter() - started
    return seconds


def _server_base_url() -> str:
    from streamlit import config

    address = config.get_option("server.address") or "127.0.0.1"
    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"http://{address}:{config.get_option('server.port')}" + (f"/{base}" if base else "")


def answers_health(base_url: str) -> bool:
    """True when the Streamlit server at ``base_url`` answers its health check with "ok"."""
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


def start_page_warmer(*, wait_s: float = 120) -> threading.Thread:
    """In a daemon thread: wait until the server in this process answers its health check, then
    :func:`warm_pages`. A failure is logged, never raised: pages then compute on first visit."""

    def warm() -> None:
        from streamlit import runtime

        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    # Config is read only once the server has parsed it (reading it earlier makes
                    # Streamlit warn that its [server] section changed).
                    if not runtime.exists():
                        raise ConnectionError("not started")
                    base = _server_base_url()
                    if answers_health(base):
                        break
                except ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise WarmupFailed(f"the server did not answer its health check within {wait_s:.0f} s")
                time.sleep(0.2)
            seconds = warm_pages(base)
            print(f"{WARMED_LINE}: " + ", ".join(f"{page or 'default page'} {s:.1f}s" for page, s in seconds.items()),
                  file=sys.stderr, flush=True)
        except Exception as exc:  # the server must keep serving whatever happens here
            print(f"{SKIPPED_LINE}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=warm, name="traderlens-warmup", daemon=True)
    thread.start()
    return thread


class ServerNotReady(RuntimeError):
    """A server started with `cli.py serve` exited, never became healthy or failed its warm-up."""


def wait_until_warm(base_url: str, proc, log: Path, *, timeout_s: float) -> tuple[float, float]:
    """For whoever started `cli.py serve` as ``proc`` (logging to ``log``): wait for the health
    check, then for the warm-up line. Returns (seconds to healthy, seconds to warmed); raises
    :class:`ServerNotReady` with the log's tail when the server exits, stays unhealthy or logs
    :data:`SKIPPED_LINE`, or ``timeout_s`` passes."""
    started = time.monotonic()
    deadline = started + timeout_s

    def failed(why: str) -> ServerNotReady:
        return ServerNotReady(f"{why}:\n{log.read_text()[-3000:]}")

    healthy_s = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise failed(f"the server exited with {proc.returncode}")
        if healthy_s is None:
            if answers_health(base_url):
                healthy_s = time.monotonic() - started
        else:
            text = log.read_text()
            if WARMED_LINE in text:
                return healthy_s, time.monotonic() - started
            if SKIPPED_LINE in text:
                raise failed("the server's warm-up failed")
        time.sleep(0.1)
    raise failed(f"{'no warm-up line' if healthy_s else 'no health check answer'} after {timeout_s:.0f} s")
