"""Property-based: hostile values for every flag of ``cli.py report funnel|retention|lifecycle|kpis``.

Hypothesis draws a report and a command line: each flag left out, given a valid value, or given a
hostile one (control characters and NUL, kilobytes of text, SQL, Markdown, spreadsheet formulas,
inf/nan/1e309/huge integers, dates from 0001 to 9999 and malformed ones, a flag repeated, a value
glued with ``=``, an unknown flag). Whatever the command line says:

- exit 0 prints records that parse (a JSON list, or CSV with a header) with the documented fields,
  and stderr holds only ``note: ...`` lines;
- exit 1 prints nothing on stdout and one ``error: ...`` line on stderr (after any notes);
- exit 2 is argparse's refusal: the usage, then ``cli.py report ...: error: ...``;
- never a traceback or an "unexpected" error, never another exit code;
- the database holds the same rows (row count and a content hash per table);
- the memory the report takes stays under a fixed bound (the issue saw 22.7 GB before the limits).

Most cases call ``cli.main`` in process (a subprocess costs a second or two): on DuckDB, and a
smaller sample on PostgreSQL. A few run ``python cli.py`` as a subprocess, for the real exit path,
each child's peak RSS read with ``os.wait4``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cli
from analytics.funnels import TRADER_BREAKDOWNS
from connectors import database
from connectors.simulator import SimulationConfig, seed_database

ROOT = Path(__file__).resolve().parents[1]
SIMULATION = SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1))  # data 2026-08-02..2026-10-31
EVENTS = ["registered", "kyc_approved", "ftd", "deposit", "trade", "login", "withdrawal", "deposit_page_view"]
IN_PROCESS_MB = 1_000  # peak RSS above the RSS before one in-process report (measured: at most 74 MB in 2,500)
CHILD_MB = 1_500  # peak RSS of one `python cli.py report` process (measured: 260 MB for kpis, at most ~500 MB)
FIELDS = {
    "funnel": {"step", "event", "count", "conversion_rate", "average_time_to_convert_s", "median_time_to_convert_s"},
    "retention": {"cohort_start", "size", "values", "complete"},
    "lifecycle": {"period_start", "new", "returning", "resurrecting", "dormant", "active", "quick_ratio"},
    "kpis": {"key", "label", "value", "previous", "change", "unit", "from", "to", "definition"},
}


# --- the database ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeded_duckdb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_cli") / "broker.duckdb"
    seed_database(database.get_engine(f"duckdb:///{path}"), SIMULATION)
    database.dispose_engines()
    return path


@pytest.fixture
def seeded_url(backend, tmp_path, request) -> str:
    """The simulated broker on the parametrised backend (DuckDB: a fresh copy of one seeded file)."""
    if backend == "duckdb":
        copy = tmp_path / "cli.duckdb"
        shutil.copyfile(request.getfixturevalue("seeded_duckdb"), copy)
        return f"duckdb:///{copy}"
    engine = request.getfixturevalue("engine")  # the session's PostgreSQL database, emptied and migrated
    seed_database(engine, SIMULATION)
    return request.getfixturevalue("db_url")


def fingerprint(url: str) -> dict[str, tuple[int, int | None]]:
    """Row count and an order-independent hash of the rows, per table."""
    engine = database.get_engine(url)
    row_hash = ("bit_xor(hash(t))" if engine.dialect.name == "duckdb"
                else "sum(hashtextextended(t::text, 0)::numeric)")
    with engine.connect() as conn:
        return {table: tuple(conn.execute(sa.text(f'SELECT count(*), {row_hash} FROM "{table}" t')).one())
                for table in sa.inspect(engine).get_table_names()}


# --- command lines --------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "", " ", "\x00", "a\x00b", "\t", "\n", "trade\n", "\x1b[31m", "\x7f", "\u200b", "\u202e", "😀", "İ",
    "' OR 1=1 --", "'; DROP TABLE traders; --", "trade'; DELETE FROM trades; --", '" OR ""="', "%", "_", "\\",
    "![p](http://127.0.0.1:9/p.png)", "<script>alert(1)</script>", '=HYPERLINK("http://127.0.0.1:9")', "@SUM(1)",
    "{}", "[]", "null", "NaN", "-", "--", "-h", "--help", "--steps", ",", ",,,", ":", "::", "a:b:c", "trade:0:",
    "prop:", "property:", "prop:' OR 1=1 --", "prop:a b", "prop:$.x", "prop:utm_source\x00",
]
SPECIAL_NUMBERS = [
    "inf", "-inf", "nan", "1e309", "-0", "0", "-1", "+9", " 9", "9.", ".5", "2.5", "1e1", "0x10", "1_000", "٣",
    "１２", "9" * 400, "-" + "9" * 30, "401", "400", "99999999999999999999w", "1831d", "1830d", "262w", "0s", "1s",
    "1", "14d", "1.5d", "d", "5y", "10 d", "１d",
]
SPECIAL_DATES = [
    "0001-01-01", "9999-12-31", "1899-12-31", "1900-01-01", "2999-12-31", "3000-01-01", "0000-00-00", "2026-02-30",
    "2026-13-01", "2026-10-1", "20261001", "2026-W40-1", "2026-10-01T00:00:00", "2026-10-01 ", "-2026-10-01",
    "2026-08-01", "2026-08-02", "2026-10-31", "2026-11-01", "2030-01-01", "1970-01-01", "today",
]


def hostile() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL_TEXT + SPECIAL_NUMBERS + SPECIAL_DATES),
        st.text(max_size=30),  # any Unicode but surrogates: control characters and NUL included
        st.text(st.characters(codec="ascii"), min_size=200, max_size=3000),
        st.integers(-(10**40), 10**40).map(str),
        st.floats().map(repr),
        st.dates().map(date.isoformat),
    )


EVENT = st.sampled_from(EVENTS)
NEAR = st.dates(date(2026, 7, 1), date(2026, 12, 31))  # the data: 2026-08-02 to 2026-10-31
DAY = st.one_of(NEAR, NEAR, NEAR, st.dates(date(1900, 1, 1), date(2999, 12, 31))).map(date.isoformat)
STEPS = st.one_of(st.lists(EVENT, min_size=2, max_size=6),
                  st.lists(st.one_of(EVENT, EVENT, hostile()), min_size=1, max_size=24)).map(",".join)
WINDOW = st.tuples(st.integers(1, 2_000), st.sampled_from(["", "s", "m", "h", "d", "w"])).map(lambda p: f"{p[0]}{p[1]}")
EXCLUSION = st.tuples(EVENT, st.integers(0, 25), st.integers(0, 25)).map(lambda p: f"{p[0]}:{p[1]}:{p[2]}")
BREAKDOWN = st.one_of(st.sampled_from(TRADER_BREAKDOWNS), st.just("prop:utm_source"), hostile().map("prop:".__add__))
FLAG = None  # a flag without a value (store_true)


def choice(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


COMMON = {"--from": DAY, "--to": DAY, "--format": choice("json", "csv"), "--include-test": FLAG}
REPORTS: dict[str, dict[str, st.SearchStrategy[str] | None]] = {
    "funnel": {"--steps": STEPS, "--window": WINDOW, "--order": choice("ordered", "strict", "unordered"),
               "--exclude": EXCLUSION, "--breakdown": BREAKDOWN, "--attribution": choice("first_touch", "last_touch"),
               **COMMON},
    "retention": {"--start-event": EVENT, "--return-event": EVENT, "--period": choice("day", "week", "month"),
                  "--intervals": st.integers(1, 400).map(str), "--mode": choice("recurring", "first-time"),
                  "--cumulative": FLAG, "--week-start": choice("monday", "sunday"), **COMMON},
    "lifecycle": {"--event": EVENT, "--period": choice("day", "week", "month"),
                  "--new-basis": choice("first-activity", "registration"), "--week-start": choice("monday", "sunday"),
                  **COMMON},
    "kpis": dict(COMMON),
}
FREE_TEXT = {"--steps", "--exclude", "--breakdown", "--start-event", "--return-event", "--event"}
REQUIRED = {"funnel": {"--steps"}, "retention": {"--start-event", "--return-event", "--period"},
            "lifecycle": {"--event", "--period", "--from", "--to"}, "kpis": set()}


@st.composite
def command_lines(draw, *, nul: bool = True) -> list[str]:
    """``report KIND`` and its flags in any order: most present, valid but for zero to three hostile ones, some
    repeated or glued with ``=``, now and then an unknown flag or a stray value after a switch."""
    kind = draw(st.sampled_from(sorted(REPORTS)))
    # (hypothesis favours a sampled list's first element and boundaries: the common case goes first)
    flags = [flag for flag in REPORTS[kind]
             if draw(st.sampled_from([True] * (9 if flag in REQUIRED[kind] else 1) + [False]))]
    # Which flags get a hostile value: free-text ones (event names, --breakdown) twice as likely, since a value
    # that argparse refuses never reaches the database.
    weighted = [flag for flag in flags for _ in range(2 if flag in FREE_TEXT else 1)]
    size = min(draw(st.sampled_from([0, 1, 0, 0, 1, 2, 0, 3])), len(flags))
    bad = set(draw(st.lists(st.sampled_from(weighted), min_size=size, max_size=size, unique=True))) if size else set()
    values: list[tuple[str, str | None]] = []
    for flag in flags:
        good = REPORTS[kind][flag]
        for _ in range(draw(st.sampled_from([1, 2, 3])) if flag == "--exclude" else 1):
            if good is FLAG:
                values.append((flag, draw(hostile()) if flag in bad else None))
            else:
                values.append((flag, draw(hostile() if flag in bad else good)))
    dates = {flag: value for flag, value in values if flag in ("--from", "--to") and flag not in bad}
    if len(dates) == 2 and draw(st.sampled_from([True] * 4 + [False])):  # mostly a range that runs forwards
        ordered = dict(zip(("--from", "--to"), sorted(dates.values()), strict=True))
        values = [(flag, ordered.get(flag, value)) for flag, value in values]
    parts: list[list[str]] = []
    for flag, value in values:
        if value is None or REPORTS[kind][flag] is FLAG:
            parts.append([flag] + ([] if value is None else [value]))
        else:
            parts.append([flag, value] if draw(st.sampled_from([True] * 9 + [False])) else [f"{flag}={value}"])
    extra = draw(st.sampled_from(["none"] * 18 + ["unknown", "twice"]))
    if extra == "unknown":
        parts.append(["--bogus", draw(hostile())])
    elif extra == "twice" and parts:
        parts.append(list(draw(st.sampled_from(parts))))  # a flag given twice
    argv = ["report", kind, *(token for part in draw(st.permutations(parts)) for token in part)]
    return argv if nul else [token.replace("\x00", "") for token in argv]


# --- outcomes -------------------------------------------------------------------------------------

def check_outcome(argv: list[str], code: int, out: str, err: str) -> None:
    """The command line's outcome is one of the three allowed ones (see the module docstring)."""
    kind = argv[1]
    assert "Traceback (most recent call last)" not in err and "error: unexpected " not in err, err
    lines = err.splitlines()
    if code == 0 and out.startswith("usage: cli.py") and {"-h", "--help"} & set(argv):
        assert err == "", err  # a stray -h/--help (say after a switch) asks for the help: argparse prints it
    elif code == 0:
        assert all(line.startswith("note: ") for line in lines), err
        records = parse_records(out, csv_format=_flag_value(argv, "--format") == "csv")
        for record in records:
            assert FIELDS[kind] <= set(record) <= FIELDS[kind] | {"breakdown_value"}, record
        check_records(kind, records)
    elif code == 1:
        assert out == "", out[:500]
        assert lines and lines[-1].startswith("error: ") and len(lines[-1]) > len("error: "), err
        assert all(line.startswith("note: ") for line in lines[:-1]), err
    elif code == 2:  # argparse's usage and reason; the reason may quote the command line's raw text
        assert out == "", out[:500]
        assert err.startswith("usage: cli.py"), err
        assert re.search(r"^cli\.py( report( \w+)?)?: error: ", err, re.MULTILINE), err
    else:
        pytest.fail(f"exit code {code}; stderr: {err[:2000]}")


def _flag_value(argv: list[str], flag: str) -> str | None:
    value = None
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith(flag + "="):
            value = token.split("=", 1)[1]
    return value


def parse_records(out: str, *, csv_format: bool) -> list[dict]:
    if not csv_format:
        records = json.loads(out)
        assert isinstance(records, list) and all(isinstance(r, dict) for r in records), out[:500]
        return records
    rows = list(csv.reader(io.StringIO(out)))
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    assert all(len(row) == len(header) for row in body), out[:500]
    return [dict(zip(header, row, strict=True)) for row in body]


def _number(value) -> float | None:
    return None if value in (None, "") else float(value)


def check_records(kind: str, records: list[dict]) -> None:
    """What every such report satisfies whatever was asked."""
    if kind == "funnel":
        groups: dict[str, list[dict]] = {}
        for record in records:
            groups.setdefault(record.get("breakdown_value", ""), []).append(record)
        for steps in groups.values():
            counts = [_number(r["count"]) for r in steps]
            assert [int(_number(r["step"])) for r in steps] == list(range(1, len(steps) + 1)), steps
            assert counts == sorted(counts, reverse=True), steps  # a step never has more traders than the one before
            for r in steps:
                rate = _number(r["conversion_rate"])
                assert rate is None or 0 <= rate <= 1, r
    elif kind == "retention":
        for record in records:
            values = record["values"] if isinstance(record["values"], list) else record["values"].split("|")
            assert _number(values[0]) == _number(record["size"]), record  # column 0 is the cohort
    elif kind == "lifecycle":
        for record in records:
            assert min(_number(record[k]) for k in ("new", "returning", "resurrecting")) >= 0, record
            assert _number(record["dormant"]) <= 0, record


# --- memory ---------------------------------------------------------------------------------------


def call_in_process(argv: list[str], memory) -> tuple[int, str, str, int]:
    """``cli.main(argv)`` with stdout and stderr captured: exit code, stdout, stderr, MB of RSS it took
    (``memory``: the process_memory fixture)."""
    out, err = io.StringIO(), io.StringIO()
    rss = memory.mb("VmRSS")
    peaks = memory.reset_peak()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse refuses the command line
            code = exc.code
    return code, out.getvalue(), err.getvalue(), (memory.mb("VmHWM") if peaks else memory.mb("VmRSS")) - rss


def run_property(url: str, monkeypatch, max_examples: int, worst: dict, memory) -> None:
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    monkeypatch.delenv("TRADERLENS_DEBUG", raising=False)
    before = fingerprint(url)
    assert before["traders"][0] == SIMULATION.traders

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=command_lines())
    @example(argv=["report", "lifecycle", "--event", "trade", "--period", "day", "--from", "1900-01-01",
                   "--to", "2999-12-31"])
    @example(argv=["report", "retention", "--start-event", "ftd", "--return-event", "trade", "--period", "day",
                   "--intervals", "400", "--from", "1900-01-01", "--to", "2999-12-31", "--format", "csv"])
    @example(argv=["report", "funnel", "--steps", "registered,ftd,trade", "--window", "1830d", "--breakdown",
                   "prop:' OR 1=1 --", "--exclude", "trade\x00:0:1"])
    def check(argv):
        code, out, err, used = call_in_process(argv, memory)
        worst["calls"] += 1
        worst["mb"] = max(worst["mb"], used)
        worst["codes"][code] = worst["codes"].get(code, 0) + 1
        check_outcome(argv, code, out, err)
        assert used < IN_PROCESS_MB, f"{used} MB for {argv!r}"
        assert fingerprint(url) == before

    check()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_any_report_command_line_gives_records_or_a_clear_refusal(seeded_url, backend, monkeypatch, process_memory):
    worst = {"calls": 0, "mb": 0, "codes": {}}
    started = time.perf_counter()
    try:
        run_property(seeded_url, monkeypatch, 500 if backend == "duckdb" else 120, worst, process_memory)
    finally:
        database.dispose_engines()
        print(f"\n{backend}: {worst['calls']} command lines in {time.perf_counter() - started:.0f} s, exit codes "
              f"{worst['codes']}, at most {worst['mb']} MB of RSS for one report")


# --- the real exit path ---------------------------------------------------------------------------

def run_child(argv: list[str], url: str, tmp: Path) -> tuple[int, str, str, int]:
    """``python cli.py *argv`` as a process: exit code, stdout, stderr and its peak RSS in MB (os.wait4)."""
    env = {**os.environ, "TRADERLENS_DB_URL": url}
    env.pop("TRADERLENS_DEBUG", None)
    with open(os.devnull, "rb") as stdin, open(tmp / "out", "w+b") as out, open(tmp / "err", "w+b") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *argv], stdin=stdin, stdout=out, stderr=err,
                                env=env, cwd=ROOT)
        deadline = time.monotonic() + 300
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own rusage, unlike RUSAGE_CHILDREN
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss // 1024


@pytest.mark.parametrize("backend", ["duckdb"])
def test_report_processes_exit_cleanly_within_the_memory_bound(seeded_url, backend, tmp_path):
    """A few command lines through the real entry point: exit status, streams and the child's peak RSS."""
    database.dispose_engines()  # the child must be the one process holding the DuckDB file
    before = fingerprint(seeded_url)
    database.dispose_engines()
    seen = {"mb": 0, "codes": []}

    @settings(max_examples=3, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=command_lines(nul=False))  # a command line cannot carry NUL
    @example(argv=["report", "lifecycle", "--event", "trade", "--period", "day", "--from", "0001-01-01",
                   "--to", "9999-12-31"])
    @example(argv=["report", "retention", "--start-event", "ftd", "--return-event", "trade", "--period", "day",
                   "--intervals", "400", "--from", "1900-01-01", "--to", "2999-12-31"])
    def check(argv):
        code, out, err, peak = run_child(argv, seeded_url, tmp_path)
        seen["mb"], seen["codes"] = max(seen["mb"], peak), [*seen["codes"], code]
        check_outcome(argv, code, out, err)
        assert peak < CHILD_MB, f"{peak} MB for {argv!r}"

    check()
    assert fingerprint(seeded_url) == before
    database.dispose_engines()
    print(f"\nchild processes: exit codes {seen['codes']}, peak RSS at most {seen['mb']} MB")
