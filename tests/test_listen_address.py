"""The demo server listens on 127.0.0.1 unless told otherwise (there is no sign-in yet): the committed
.streamlit/config.toml says so, STREAMLIT_SERVER_ADDRESS and `make run ADDRESS=...` override it, and a
server started from the repository answers on the loopback address only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_configuration_listens_on_loopback():
    out = subprocess.run(
        [sys.executable, "-c", "from streamlit import config; print(config.get_option('server.address'))"],
        cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")},
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "127.0.0.1"


def test_make_run_passes_an_address_only_when_given():
    plain = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    wide = subprocess.run(["make", "-n", "run", "ADDRESS=0.0.0.0"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    serve = [line for line in plain.splitlines() if "cli.py serve" in line]
    assert serve and "--server.address" not in serve[0]  # config.toml's 127.0.0.1 applies
    assert "--server.address 0.0.0.0" in wide


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("env", "outside_answers"), [({}, False), ({"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}, True)],
                         ids=["default", "STREAMLIT_SERVER_ADDRESS=0.0.0.0"])
def test_a_server_started_in_the_repository_answers_where_configured(tmp_path, env, outside_answers):
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address besides loopback")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "hello.py"
    script.write_text("import streamlit as st\nst.write('hello')\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**{k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _answers("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        # Before the change Streamlit's default listened on every interface.
        assert _answers(outside, port) is outside_answers
    finally:
        server.terminate()
        server.wait(timeout=10)
