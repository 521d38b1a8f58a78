"""The embedded DuckDB file shared between processes (connectors.database._DuckFile), with real
processes: readers read at the same time, a writer waits for readers to let go and readers for a
writer to finish, whoever gives up says who holds the file and writes nothing, and a process killed
while writing leaves nothing half-written and nothing locked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import database
from connectors.errors import DatabaseBusy
from tests.app import sample_data

ROOT = Path(__file__).resolve().parents[2]

# A child process: "read SECONDS EVERY" reads the trader count through a reader engine every EVERY
# seconds for SECONDS (never idle long enough to let go of the file by itself); "write SECONDS" adds a
# trader in one transaction through a writer engine and holds the transaction open SECONDS; "hold"
# keeps a plain read-only DuckDB connection open (a foreign reader that never lets go).
CHILD = r"""
import sys, time
import sqlalchemy as sa
from connectors import database
url, role = sys.argv[1], sys.argv[2]
database.set_wait_notice(lambda text: print("notice:", text, flush=True))
if role == "read":
    engine = database.get_engine(url, read_only=True, wait_s=30)
    end = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < end:
        with engine.connect() as conn:
            print("traders", conn.execute(sa.text("SELECT count(*) FROM traders")).scalar(), flush=True)
        time.sleep(float(sys.argv[4]))
elif role == "write":
    engine = database.get_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO traders (trader_id, external_id, registered_at) "
                             "VALUES (900, 'T900', TIMESTAMP '2026-01-01 00:00:00')"))
        print("writing", flush=True)
        time.sleep(float(sys.argv[3]))
    print("committed", flush=True)
elif role == "hold":
    import duckdb
    conn = duckdb.connect(url.removeprefix("duckdb:///"), read_only=True)
    print("holding", flush=True)
    time.sleep(120)
"""

PLAIN_WRITER = "import duckdb, sys; duckdb.connect(sys.argv[1].removeprefix('duckdb:///')).close(); print('opened')"
NEW_TRADER_CSV = "external_id,registered_at,country,email\nNEW1,2026-02-01T10:00:00Z,DE,new1@example.com\n"


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sharing") / "sample.duckdb"
    sample_data.fill_sample_database(f"duckdb:///{path}")
    database.prepare(f"duckdb:///{path}")  # so no child has a migration or a rollup rebuild to write
    database.dispose_engines()
    return path


@pytest.fixture
def url(sample_file, tmp_path) -> Iterator[str]:
    path = tmp_path / "shared.duckdb"
    shutil.copyfile(sample_file, path)
    yield f"duckdb:///{path}"
    database.dispose_engines()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def _child(children: list, url: str, *args: str, ready: str) -> subprocess.Popen:
    """Start CHILD with ``args``; return once it has printed a line starting with ``ready``."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, *args], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    children.append(child)
    while True:
        line = child.stdout.readline()
        assert line, f"the child ended before {ready!r}"
        if line.startswith(ready):
            return child


def _cli(*args: str, url: str, wait_s: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADERLENS_DB_URL": url}
    env.pop("TRADERLENS_DEBUG", None)
    if wait_s is not None:
        env[database.WAIT_ENV] = str(wait_s)
    return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _traders(url: str) -> int:
    with database.get_engine(url, read_only=True).connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM traders")).scalar_one()


def test_two_processes_read_the_file_at_once(url, children):
    reader = _child(children, url, "read", "20", "0.2", ready="traders")
    # The child is reading (it never lets go): this process reads too, and so does the CLI.
    assert _traders(url) == sample_data.TRADERS
    info = _cli("info", url=url, wait_s=0)
    assert info.returncode == 0, info.stderr
    assert "traders" in info.stdout and "waiting" not in info.stderr
    assert reader.poll() is None  # still reading


def test_a_writer_waits_for_a_reader_that_keeps_reading_then_writes(url, children, tmp_path):
    reader = _child(children, url, "read", "30", "0.3", ready="traders")
    csv = tmp_path / "traders.csv"
    csv.write_text(NEW_TRADER_CSV)
    out = _cli("import", str(csv), url=url)
    assert out.returncode == 0, out.stderr
    assert reader.poll() is None  # the reader let go for it mid-way: the import did not wait for its end
    # Whether the import had to wait at all is a race with the reader, which lets go as soon as it sees
    # the writer's mark (a clean-clone CI run got in at once): it says so at most once.
    assert out.stderr.count("waiting up to 30 s for PID") <= 1, out.stderr
    assert "Error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    rest, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0, rest
    # The reader waited for the import and read on: it saw the new trader, and no error.
    assert f"traders {sample_data.TRADERS + 1}" in rest and "Error" not in rest, rest
    assert "notice: waiting up to 30 s for the import of PID" in rest


def test_a_reader_meeting_an_import_says_so_or_waits_for_it(url, children):
    writer = _child(children, url, "write", "4", ready="writing")
    with pytest.raises(DatabaseBusy, match=rf"an import is running \(PID {writer.pid}: .*since .* UTC\)") as busy:
        database.get_engine(url, read_only=True, wait_s=0.5)
    assert "figures are back when it finishes" in str(busy.value)
    # The CLI's report waits for the import, says so once, and reads what it committed.
    out = _cli("info", url=url)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(f"waiting up to 30 s for the import of PID {writer.pid}") == 1, out.stderr
    counts = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()[2:]}
    assert counts["traders"] == str(sample_data.TRADERS + 1), out.stdout
    assert writer.wait(timeout=30) == 0
    assert _traders(url) == sample_data.TRADERS + 1


def test_a_writer_that_cannot_have_the_file_says_who_holds_it_and_writes_nothing(url, children, tmp_path):
    holder = _child(children, url, "hold", ready="holding")
    csv = tmp_path / "traders.csv"
    csv.write_text(NEW_TRADER_CSV)
    out = _cli("import", str(csv), url=url, wait_s=2)
    assert out.returncode == 1
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and len(out.stderr.strip().splitlines()) == 2, out.stderr  # notice, error
    assert f"another process still had the DuckDB file open after 2 s: PID {holder.pid}: python -c …;" in error
    assert "nothing was written" in error and "TRADERLENS_DUCKDB_WAIT_S" in error
    assert "Traceback" not in out.stderr
    holder.kill()
    holder.wait()
    assert _traders(url) == sample_data.TRADERS


def test_a_writer_killed_mid_write_leaves_nothing_half_written_and_nothing_locked(url, children, tmp_path):
    writer = _child(children, url, "write", "60", ready="writing")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert _traders(url) == sample_data.TRADERS  # the uncommitted trader is not there
    database.dispose_engines()
    csv = tmp_path / "traders.csv"
    csv.write_text(NEW_TRADER_CSV)
    out = _cli("import", str(csv), url=url, wait_s=2)  # the dead writer's mark went with its process
    assert out.returncode == 0, out.stderr
    assert "waiting" not in out.stderr
    assert _traders(url) == sample_data.TRADERS + 1


def test_an_idle_reader_lets_another_process_s_writer_in_at_once(url, children):
    assert _traders(url) == sample_data.TRADERS  # this process has the file open, idle
    started = time.monotonic()
    writer = _child(children, url, "write", "0", ready="committed")
    assert time.monotonic() - started < 5  # the child's start-up included; idle readers close on its mark
    assert writer.wait(timeout=30) == 0
    assert _traders(url) == sample_data.TRADERS + 1  # opened again, and sees the other process's write


def test_an_idle_file_is_closed_for_any_other_program(url, children, monkeypatch):
    monkeypatch.setattr(database, "IDLE_RELEASE_S", 0.5)
    with database.get_engine(url, read_only=True).connect():
        # A program that knows nothing of the writer mark (a DuckDB shell) cannot write while we read...
        shell = subprocess.run([sys.executable, "-c", PLAIN_WRITER, url], capture_output=True, text=True, timeout=60)
        assert "Could not set lock" in shell.stderr
    time.sleep(1.5)
    # ...but can once this process has been idle a while.
    shell = subprocess.run([sys.executable, "-c", PLAIN_WRITER, url], capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0 and shell.stdout.strip() == "opened", shell.stderr


def test_a_reader_joins_this_process_s_own_writer_and_the_file_goes_back_to_read_only(url, children):
    writer = database.get_engine(url)
    with writer.begin() as conn:
        conn.execute(sa.text("INSERT INTO traders (trader_id, external_id, registered_at) "
                             "VALUES (901, 'T901', TIMESTAMP '2026-01-01 00:00:00')"))
        # A read of this process while its own import writes: no "different configuration" error.
        assert _traders(url) == sample_data.TRADERS
    assert _traders(url) == sample_data.TRADERS + 1
    # Only readers now: the file is open read-only again, so another process may read beside us.
    reader = _child(children, url, "read", "0.1", "0.1", ready="traders")
    assert reader.wait(timeout=30) == 0
