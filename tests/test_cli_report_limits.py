"""`cli.py report ...` under hostile input: bounded work, unknown events refused, one-line errors.

Exit codes: 2 for a command line the parser refuses (before the database is opened), 1 for a request
refused or failed after parsing, 0 with notes on stderr when a range was moved onto the data.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

import cli
from connectors import database, schema
from connectors.rollups import refresh_rollups

# The report_events fixture (tests/conftest.py) writes portal events a, b, c for three registered
# traders, from 2026-03-02 (T0) to 2026-03-17.
T0 = datetime(2026, 3, 2, 9, 0)
KNOWN = "the events in the database are: registered, a, b, c"


def _one_error_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and "unexpected" not in out.stderr, out.stderr
    return lines[0]


@pytest.mark.parametrize("args", [
    ("funnel", "--steps", "a,typo"),
    ("funnel", "--steps", "' OR 1=1 --,a"),
    ("funnel", "--steps", "a,b", "--exclude", "typo:0:1"),
    ("retention", "--start-event", "typo", "--return-event", "a", "--period", "week"),
    ("retention", "--start-event", "a", "--return-event", "typo", "--period", "week"),
    ("lifecycle", "--event", "typo", "--period", "week", "--from", "2026-03-02", "--to", "2026-03-22"),
], ids=["step", "sql-step", "exclusion", "start-event", "return-event", "lifecycle-event"])
@pytest.mark.usefixtures("report_events")
def test_an_unknown_event_is_an_error_listing_the_known_ones(cli_url, args, run_cli):
    out = run_cli("report", *args, url=cli_url)
    assert out.returncode == 1 and out.stdout == ""
    line = _one_error_line(out)
    assert line.startswith("error: unknown event '") or line.startswith("error: unknown event \"' OR 1=1 --\"")
    assert line.endswith(KNOWN)


@pytest.mark.usefixtures("report_events")
def test_dates_outside_the_data_are_moved_onto_it_with_a_note(cli_url, run_cli):
    out = run_cli("report", "retention", "--start-event", "a", "--return-event", "a", "--period", "day",
                  "--intervals", "2", "--from", "2025-12-01", "--to", "2026-04-30", url=cli_url)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["note: --from 2025-12-01 is before the data begins; using 2026-03-02",
                                       "note: --to 2026-04-30 is after the data ends; using 2026-03-17"]
    cohorts = [r["cohort_start"] for r in json.loads(out.stdout)]
    assert cohorts[0] == "2026-03-02" and cohorts[-1] == "2026-03-17" and len(cohorts) == 16
    lifecycle = run_cli("report", "lifecycle", "--event", "a", "--period", "day", "--from", "1999-01-01",
                        "--to", "2026-03-05", url=cli_url)
    assert lifecycle.returncode == 0, lifecycle.stderr
    assert lifecycle.stderr == "note: --from 1999-01-01 is before the data begins; using 2026-03-02\n"
    assert [r["period_start"] for r in json.loads(lifecycle.stdout)] == [f"2026-03-0{d}" for d in (2, 3, 4, 5)]


@pytest.mark.parametrize("args, message", [
    (("kpis", "--from", "2030-01-01"),
     "error: --from 2030-01-01 is after the data ends (2026-03-17); nothing to report"),
    (("lifecycle", "--event", "a", "--period", "week", "--from", "2020-01-01", "--to", "2020-02-01"),
     "error: --to 2020-02-01 is before the data begins (2026-03-02); nothing to report"),
])
@pytest.mark.usefixtures("report_events")
def test_a_range_wholly_outside_the_data_is_an_error(cli_url, args, message, run_cli):
    out = run_cli("report", *args, url=cli_url)
    assert out.returncode == 1 and out.stdout == ""
    assert _one_error_line(out) == message


def _far_event(url: str, days_before: int) -> None:
    """Trader 3 did ``a`` ``days_before`` T0: a data span longer than the period limit."""
    engine = database.get_engine(url)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": [100], "external_id": ["far"], "trader_id": [3], "event": ["a"],
            "occurred_at": [T0 - timedelta(days=days_before)]}))
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()


@pytest.mark.usefixtures("report_events")
def test_reports_beyond_the_period_and_cell_limits_are_refused(cli_url, run_cli):
    _far_event(cli_url, 4_000)
    daily = run_cli("report", "lifecycle", "--event", "a", "--period", "day", "--from", "1990-01-01",
                    "--to", "2030-01-01", url=cli_url)
    assert daily.returncode == 1 and daily.stdout == ""
    assert daily.stderr.splitlines()[-1] == ("error: 4,016 daily periods is more than the limit of 3,660: "
                                             "shorten the date range or use a longer period")
    cells = run_cli("report", "retention", "--start-event", "a", "--return-event", "a", "--period", "day",
                    "--intervals", "400", "--from", "2024-01-01", url=cli_url)
    assert cells.returncode == 1
    assert _one_error_line(cells) == ("error: 807 daily cohorts x 400 intervals = 322,800 cells is more than the "
                                      "limit of 250,000: shorten the date range, use a longer period or fewer "
                                      "intervals")
    weekly = run_cli("report", "lifecycle", "--event", "a", "--period", "week", "--from", "1990-01-01",
                     "--to", "2030-01-01", url=cli_url)
    assert weekly.returncode == 0, weekly.stderr
    weeks = [r["period_start"] for r in json.loads(weekly.stdout)]
    assert (weeks[0], weeks[-1], len(weeks)) == ("2015-03-16", "2026-03-16", 575)


@pytest.mark.parametrize("args, message", [
    (("kpis", "--to", "9999-12-31"), "argument --to: not between 1900-01-01 and 2999-12-31: '9999-12-31'"),
    (("kpis", "--from", "1026-12-01"), "argument --from: not between 1900-01-01 and 2999-12-31: '1026-12-01'"),
    (("funnel", "--steps", "a,b", "--window", "0"), "argument --window: must be positive: '0'"),
    (("funnel", "--steps", "a,b", "--window", "99999999999999999999w"),
     "argument --window: at most 1830d (five years): '99999999999999999999w'"),
    (("funnel", "--steps", "a,b", "--window", "262w"), "argument --window: at most 1830d (five years): '262w'"),
    (("retention", "--start-event", "a", "--return-event", "a", "--period", "day", "--intervals", "401"),
     "argument --intervals: at most 400: '401'"),
])
def test_values_out_of_bounds_are_refused_when_parsed(tmp_path, args, message, run_cli):
    out = run_cli("report", *args, url=f"duckdb:///{tmp_path / 'never-opened.duckdb'}")
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].endswith(message)
    assert not (tmp_path / "never-opened.duckdb").exists()


@pytest.mark.parametrize("args, message", [
    (("--steps", "a"), "error: A funnel needs at least two steps."),
    (("--steps", ",".join("a" * 21)), "error: A funnel can have at most 20 steps (this one has 21)."),
    (("--steps", "a,b", "--exclude", "c:1:0"), "error: Exclusion of 'c': the range must run from an earlier step to "
                                               "a later one (got steps 2 to 1)."),
    (("--steps", "a,b", "--breakdown", "nope"), "error: Cannot break down by 'nope'; trader attributes are "),
    (("--steps", "a,b", "--breakdown", "prop:a b"), "error: 'a b' is not an event property name."),
])
def test_a_rejected_funnel_is_a_plain_one_line_error(tmp_path, args, message, run_cli):
    out = run_cli("report", "funnel", *args, url=f"duckdb:///{tmp_path / 'empty.duckdb'}")
    assert out.returncode == 1 and out.stdout == ""
    assert _one_error_line(out).startswith(message)


@pytest.mark.usefixtures("report_events")
def test_an_empty_funnel_has_no_conversion_rate(cli_url, run_cli):
    args = ("report", "funnel", "--steps", "b,c", "--from", "2026-03-10", "--to", "2026-03-17")  # no b in range
    as_json = run_cli(*args, "--format", "json", url=cli_url)
    assert as_json.returncode == 0, as_json.stderr
    assert [(r["count"], r["conversion_rate"]) for r in json.loads(as_json.stdout)] == [(0, None), (0, None)]
    as_csv = run_cli(*args, "--format", "csv", url=cli_url)
    assert [(r["count"], r["conversion_rate"]) for r in csv.DictReader(io.StringIO(as_csv.stdout))] == [
        ("0", ""), ("0", "")]


@pytest.mark.parametrize("args", [
    ("funnel", "--steps", "a,b\x00c"),
    ("funnel", "--steps", "a,b", "--exclude", "\x00:0:1"),
    ("retention", "--start-event", "a\x00", "--return-event", "a", "--period", "week"),
    ("lifecycle", "--event", "ü\x00'", "--period", "day", "--from", "2026-03-02", "--to", "2026-03-03"),
], ids=["step", "exclusion", "start-event", "lifecycle-event"])
@pytest.mark.usefixtures("report_events")
def test_a_nul_byte_in_an_event_name_is_an_unknown_event(cli_url, monkeypatch, capsys, args):
    # In process: a command line cannot carry NUL, but a script calling main() can, and PostgreSQL
    # refuses NUL in a query parameter.
    monkeypatch.setenv("TRADERLENS_DB_URL", cli_url)
    try:
        code = cli.main(["report", *args])
    finally:
        database.dispose_engines()
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.startswith("error: unknown event ") and "\\x00" in captured.err
    assert len(captured.err.splitlines()) == 1 and captured.err.rstrip().endswith(KNOWN)
