"""The server's warm-up (server/warmup.py): it must load exactly the compiled kernels a real
funnel then uses, or the first funnel of a server still pays for them; and the wait for a started
server's warm-up that the browser tests and benchmarks share."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from analytics import funnels
from analytics.funnels import kernels as funnel_kernels
from server.warmup import MODULES, SKIPPED_LINE, WARMED_LINE, ServerNotReady, preload, wait_until_warm


def test_preload_imports_the_pages_modules_and_loads_the_kernels_real_funnels_use(tmp_path):
    from connectors import database
    from connectors.simulator import SimulationConfig, seed_database

    engine = database.get_engine(f"duckdb:///{tmp_path / 'warm.duckdb'}")
    seed_database(engine, SimulationConfig(traders=300, days=90, seed=3))
    timings = preload()
    assert set(timings) == {"imports_s", "kernels_s"}
    assert all(name in sys.modules for name in MODULES)
    kernels = (funnel_kernels.ordered_pass, funnel_kernels.unordered_pass, funnel_kernels.trends_pass)
    warmed = [list(kernel.signatures) for kernel in kernels]
    assert all(warmed)
    for order in funnels.ORDERS:
        spec = funnels.FunnelSpec(steps=("registered", "ftd", "trade"), window_s=30 * 86_400, order=order)
        assert funnels.compute_funnel(engine, spec).steps["count"].iloc[0] > 0
        if order != "unordered":  # trends are for ordered and strict funnels
            funnels.compute_funnel_trends(engine, spec, period="week")
    # No new specialisation was compiled: every call above ran the code the warm-up loaded.
    assert [list(kernel.signatures) for kernel in kernels] == warmed


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def healthy_url():
    """A real HTTP server answering Streamlit's health path with "ok"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture()
def running():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield proc
    proc.kill()
    proc.wait()


def test_wait_until_warm_returns_once_healthy_and_warmed(healthy_url, running, tmp_path):
    log = tmp_path / "server.log"
    log.write_text(f"Local URL: ...\n{WARMED_LINE}: default page 1.0s\n")
    healthy_s, warmed_s = wait_until_warm(healthy_url, running, log, timeout_s=10)
    assert 0 <= healthy_s <= warmed_s < 10


def test_wait_until_warm_reports_a_failed_warm_up_with_the_log(healthy_url, running, tmp_path):
    log = tmp_path / "server.log"
    log.write_text(f"{SKIPPED_LINE}: WarmupFailed: page 'cohorts' not found\n")
    with pytest.raises(ServerNotReady, match=r"(?s)warm-up failed.*page 'cohorts' not found"):
        wait_until_warm(healthy_url, running, log, timeout_s=10)


def test_wait_until_warm_reports_an_exited_server_and_a_silent_one(healthy_url, running, tmp_path):
    log = tmp_path / "server.log"
    log.write_text("Traceback: boom\n")
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    with pytest.raises(ServerNotReady, match=r"(?s)exited with 3.*boom"):
        wait_until_warm(healthy_url, exited, log, timeout_s=10)
    with pytest.raises(ServerNotReady, match="no warm-up line after 1 s"):
        wait_until_warm(healthy_url, running, log, timeout_s=1)
    with pytest.raises(ServerNotReady, match="no health check answer after 1 s"):
        wait_until_warm("http://127.0.0.1:9", running, log, timeout_s=1)
