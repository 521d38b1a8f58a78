"""`cli.py report ...` as cron jobs run it: records with the documented fields, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pandas as pd
import pytest

import cli
from analytics import cohorts, events
from connectors import database, schema
from connectors.rollups import refresh_rollups

T0 = datetime(2026, 3, 2, 9, 0)  # a Monday


@pytest.mark.usefixtures("report_events")
def test_funnel_report_has_one_record_per_step(cli_url, run_cli):
    out = run_cli("report", "funnel", "--steps", "a,b,c", "--window", "1d", "--format", "json", url=cli_url)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [(r["step"], r["event"], r["count"]) for r in records] == [(1, "a", 3), (2, "b", 2), (3, "c", 1)]
    assert records[1]["conversion_rate"] == pytest.approx(2 / 3)
    assert records[0]["average_time_to_convert_s"] is None
    assert records[1]["average_time_to_convert_s"] == pytest.approx(5400)
    assert records[1]["median_time_to_convert_s"] == pytest.approx(5400)
    assert set(records[0]) == {"step", "event", "count", "conversion_rate", "average_time_to_convert_s",
                               "median_time_to_convert_s"}


@pytest.mark.usefixtures("report_events")
def test_funnel_report_window_exclusions_and_csv(cli_url, run_cli):
    short = run_cli("report", "funnel", "--steps", "a,b", "--window", "90m", "--format", "csv", url=cli_url)
    assert short.returncode == 0, short.stderr
    rows = list(csv.DictReader(io.StringIO(short.stdout)))
    assert [int(r["count"]) for r in rows] == [3, 1]  # trader 2's b came after 2 h
    excluded = run_cli("report", "funnel", "--steps", "a,c", "--window", "1d", "--exclude", "b:0:1",
                       "--format", "json", url=cli_url)
    assert excluded.returncode == 0, excluded.stderr
    # Trader 1's furthest attempt (a, b, c) is spoiled by b: removed from every step. Trader 2's
    # spoiled attempt is replaced by the later unspoiled one (a on day 15); trader 3 never did b.
    assert [r["count"] for r in json.loads(excluded.stdout)] == [2, 0]
    bad = run_cli("report", "funnel", "--steps", "a,b", "--window", "soon", url=cli_url)
    assert bad.returncode == 2 and "not a window" in bad.stderr


@pytest.mark.usefixtures("report_events")
def test_retention_report_records_cohort_size_and_values(cli_url, run_cli):
    out = run_cli("report", "retention", "--start-event", "a", "--return-event", "a", "--period", "week",
                  "--intervals", "3", "--from", "2026-03-02", "--to", "2026-03-22", "--format", "json",
                  url=cli_url)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    # The data ends on Tuesday 2026-03-17: the week of 03-16 is not over, so its cells are unfinished
    # ("complete" false), and the weeks of 03-23 and 03-30 have not happened: null, not 0.
    assert records[0] == {"cohort_start": "2026-03-02", "size": 3, "values": [3, 1, 1],
                          "complete": [True, True, False]}
    assert [r["cohort_start"] for r in records] == ["2026-03-02", "2026-03-09", "2026-03-16"]
    assert [r["values"] for r in records[1:]] == [[1, 0, None], [1, None, None]]
    assert [r["complete"] for r in records[1:]] == [[True, False, None], [False, None, None]]
    csv_out = run_cli("report", "retention", "--start-event", "a", "--return-event", "a", "--period", "week",
                      "--intervals", "3", "--from", "2026-03-02", "--format", "csv", url=cli_url)
    assert csv_out.returncode == 0, csv_out.stderr
    assert csv_out.stdout.splitlines() == ["cohort_start,size,values,complete", "2026-03-02,3,3|1|1,True|True|False",
                                           "2026-03-09,1,1|0|,True|False|", "2026-03-16,1,1||,False||"]


@pytest.mark.usefixtures("report_events")
def test_lifecycle_report_and_required_dates(cli_url, run_cli):
    out = run_cli("report", "lifecycle", "--event", "a", "--period", "week", "--from", "2026-03-02",
                  "--to", "2026-03-22", "--format", "json", url=cli_url)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert set(records[0]) == {"period_start", "new", "returning", "resurrecting", "dormant", "active", "quick_ratio"}
    assert records[0]["period_start"] == "2026-03-02" and records[0]["new"] == 3
    assert all(r["dormant"] <= 0 for r in records)
    # active = new + returning + resurrecting; quick ratio = (new + resurrecting) / dormant, null with no one lost
    assert all(r["active"] == r["new"] + r["returning"] + r["resurrecting"] for r in records)
    assert all(r["quick_ratio"] == ((r["new"] + r["resurrecting"]) / -r["dormant"] if r["dormant"] else None)
               for r in records)
    assert any(r["quick_ratio"] is None for r in records) and any(r["quick_ratio"] is not None for r in records)
    missing = run_cli("report", "lifecycle", "--event", "a", "--period", "week", url=cli_url)
    assert missing.returncode == 2 and "--from" in missing.stderr


@pytest.mark.usefixtures("report_events")
def test_kpi_report_lists_every_kpi_with_its_definition(cli_url, run_cli):
    out = run_cli("report", "kpis", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "json", url=cli_url)
    assert out.returncode == 0, out.stderr
    records = {r["key"]: r for r in json.loads(out.stdout)}
    assert records["registrations"]["value"] == 3
    assert all(r["definition"] for r in records.values())


def test_funnel_report_csv_neutralises_formulas_in_event_names_and_breakdown_values(cli_url, run_cli):
    event, affiliate = "=cmd|' /C calc'!A0", '@HYPERLINK("http://evil.example/a")'
    engine = database.get_engine(cli_url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.traders, pd.DataFrame({
            "trader_id": [1, 2], "external_id": ["t1", "t2"], "registered_at": [T0, T0],
            "affiliate_id": [affiliate, "-IB7"]}))
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": [1, 2, 3], "external_id": ["p1", "p2", "p3"], "trader_id": [1, 1, 2],
            "event": [event, "b", event], "occurred_at": [T0, T0 + pd.Timedelta(hours=1), T0]}))
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()

    args = ("report", "funnel", f"--steps={event},b", "--breakdown", "affiliate_id", "--window", "1d")
    out = run_cli(*args, "--format", "csv", url=cli_url)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {(r["event"], r["breakdown_value"], r["count"]) for r in rows} == {
        ("'" + event, "'" + affiliate, "1"), ("b", "'" + affiliate, "1"),
        ("'" + event, "'-IB7", "1"), ("b", "'-IB7", "0")}
    assert all(not r["conversion_rate"].startswith("'") for r in rows)  # numbers stay numbers
    # JSON is for programs, not spreadsheets: the values as stored.
    records = json.loads(run_cli(*args, "--format", "json", url=cli_url).stdout)
    assert {r["event"] for r in records} == {event, "b"}
    assert {r["breakdown_value"] for r in records} == {affiliate, "-IB7"}


@pytest.mark.usefixtures("report_events")
def test_a_retention_report_reads_the_data_span_once(cli_url, monkeypatch, capsys):
    # The span gives both the range and the periods that have not happened yet; on a large PostgreSQL
    # database reading it costs several times the retention query itself.
    reads = []

    def counted(engine):
        reads.append(engine)
        return span(engine)

    span = events.compute_data_span
    monkeypatch.setattr(events, "compute_data_span", counted)
    monkeypatch.setattr(cohorts, "compute_data_span", counted)
    monkeypatch.setenv("TRADERLENS_DB_URL", cli_url)
    try:
        code = cli.main(["report", "retention", "--start-event", "a", "--return-event", "a", "--period", "week",
                         "--intervals", "3", "--from", "2026-03-02", "--format", "json"])
    finally:
        database.dispose_engines()
    assert code == 0 and len(reads) == 1
    assert [r["values"] for r in json.loads(capsys.readouterr().out)][1:] == [[1, 0, None], [1, None, None]]
