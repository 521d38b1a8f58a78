"""One meaning of trading: a trader trades on every day they open, close or hold a position (held:
open at some moment of the day), in the KPIs, lifecycle, retention and the trading_days rollup; and
the churn activity setting (TRADERLENS_CHURN_ACTIVITY). DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.cohorts import RetentionSpec, compute_engagement_retention, compute_retention
from analytics.events import CHURN_ACTIVITY_ENV, BadChurnActivity, churn_activity
from analytics.kpis import compute_kpis
from analytics.lifecycle import compute_lifecycle, compute_stage_distribution
from analytics.periods import DateRange
from connectors import clock, database, schema
from connectors.clock import parse_zone
from connectors.rollups import refresh_rollups

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))


def write(engine, *, traders: list[dict], trades: list[tuple] = (), deposits: list[tuple] = (),
          logins: list[tuple] = ()) -> None:
    """Traders, positions (trader, opened, closed), approved deposits and logins (trader, time); the
    rollups refreshed as seeding and imports do."""
    frames = {
        schema.traders: [{"external_id": f"T{t['trader_id']}", "country": "DE", **t} for t in traders],
        schema.trades: [{"trade_id": i, "external_id": f"D{i}", "trader_id": t, "symbol": "EURUSD", "asset_class": "fx",
                         "side": "buy", "lots": 1, "notional_usd": 100_000, "opened_at": opened, "closed_at": closed,
                         "open_price": 1.1, "close_price": 1.1, "profit_usd": 0}
                        for i, (t, opened, closed) in enumerate(trades, start=1)],
        schema.transactions: [{"txn_id": i, "external_id": f"X{i}", "trader_id": t, "kind": "deposit",
                               "status": "approved", "amount": 100, "currency": "USD", "amount_usd": 100,
                               "created_at": at} for i, (t, at) in enumerate(deposits, start=1)],
        schema.sessions: [{"session_id": i, "external_id": f"S{i}", "trader_id": t, "started_at": at,
                           "duration_s": 60, "surface": "web"} for i, (t, at) in enumerate(logins, start=1)],
    }
    with engine.begin() as conn:
        for table, rows in frames.items():
            if rows:
                database.bulk_insert(conn, table, pd.DataFrame(rows))
        refresh_rollups(conn)


# ---- a position held for three weeks ------------------------------------------------------------


@pytest.fixture
def holder(engine):
    """Trader 1 registers and deposits on Monday 2 March and holds one position from that day to
    Monday 23 March, doing nothing else; trader 2 logs in on 31 March (the data ends then)."""
    write(engine,
          traders=[{"trader_id": 1, "registered_at": datetime(2026, 3, 2, 8)},
                   {"trader_id": 2, "registered_at": datetime(2026, 1, 5, 8)}],
          trades=[(1, datetime(2026, 3, 2, 10), datetime(2026, 3, 23, 10))],
          deposits=[(1, datetime(2026, 3, 2, 9))], logins=[(2, datetime(2026, 3, 31, 12))])
    return engine


def test_a_held_position_makes_its_trader_active_on_every_day_in_the_kpis(holder):
    # A week strictly inside the holding: nothing opened or closed in it.
    kpis = {k.key: k for k in compute_kpis(holder, date_range=DateRange(date(2026, 3, 9), date(2026, 3, 15)))}

    assert kpis["active_traders"].value == 1
    assert kpis["dau"].value == pytest.approx(1.0)  # 7 trader-days over 7 days
    assert kpis["wau"].value == 1 and kpis["mau"].value == 1
    assert "held" in kpis["active_traders"].definition and "held" in kpis["dau"].definition
    # The whole of March: 22 trading days (2 to 23 March) over 31.
    march = {k.key: k for k in compute_kpis(holder, date_range=MARCH)}
    assert march["dau"].value == pytest.approx(22 / 31)


def test_a_held_position_keeps_its_trader_returning_in_lifecycle_and_active_in_the_stages(holder):
    weeks = compute_lifecycle(holder, event="trade", period="week", date_from=date(2026, 3, 2),
                              date_to=date(2026, 3, 30))

    assert [[r.new, r.returning, r.resurrecting, r.dormant] for r in weeks.itertuples(index=False)] == [
        [1, 0, 0, 0],   # 2 March: opened
        [0, 1, 0, 0],   # 9 March: held
        [0, 1, 0, 0],   # 16 March: held
        [0, 1, 0, 0],   # 23 March: closed
        [0, 0, 0, -1],  # 30 March: gone
    ]
    stages = compute_stage_distribution(holder, as_of=date(2026, 3, 20)).set_index("stage")["traders"]
    assert stages["active"] == 1 and stages["dormant"] == 0


def test_a_held_position_counts_as_a_return_in_retention_by_trading(holder):
    spec = RetentionSpec(start_event="registered", return_event="trade", period="week", intervals=5)
    result = compute_retention(holder, spec, date_from=date(2026, 3, 2), date_to=date(2026, 3, 30))

    assert result.records()[0]["values"] == [1, 1, 1, 1, 0]


# ---- held days are days of the reporting time zone ----------------------------------------------


def test_held_days_are_local_days_across_midnight_and_daylight_saving(engine, monkeypatch):
    monkeypatch.setenv(clock.ENV, "America/New_York")
    # Opened at 22:00 on Thursday 5 March in New York (03:00 UTC on the 6th), closed at 23:30 on
    # Wednesday 11 March (03:30 UTC on the 12th); clocks moved to summer time on Sunday 8 March.
    write(engine, traders=[{"trader_id": 1, "registered_at": datetime(2026, 3, 1)}],
          trades=[(1, datetime(2026, 3, 6, 3), datetime(2026, 3, 12, 3, 30))])
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(
            sa.select(schema.trading_days.c.day, schema.trading_days.c.opened, schema.trading_days.c.closed)
            .order_by(schema.trading_days.c.day))]

    ny = parse_zone("America/New_York")
    local_days = [(5, 1, 0), (6, 0, 0), (7, 0, 0), (8, 0, 0), (9, 0, 0), (10, 0, 0), (11, 0, 1)]
    assert rows == [(ny.to_utc(datetime(2026, 3, d)), opened, closed) for d, opened, closed in local_days]
    # Midnights at 05:00 UTC before the change and 04:00 UTC after it: no day drifts by an hour.
    assert rows[3][0] == datetime(2026, 3, 8, 5) and rows[4][0] == datetime(2026, 3, 9, 4)


# ---- the churn activity setting ------------------------------------------------------------------


@pytest.fixture
def churners(engine):
    """Four traders who traded in February (the 30 days before March); in March's last 30 days
    (2-31 March) A only logs in, B deposits, C closes a position held since February, D does nothing."""
    feb = datetime(2026, 2, 10, 9)
    write(engine,
          traders=[{"trader_id": t, "registered_at": datetime(2026, 1, 5)} for t in (1, 2, 3, 4)],
          trades=[(1, feb, feb), (2, feb, feb), (3, datetime(2026, 2, 25, 9), datetime(2026, 3, 25, 9)), (4, feb, feb)],
          deposits=[(2, datetime(2026, 3, 20, 9))], logins=[(1, datetime(2026, 3, 20, 9))])
    return engine


def churn(engine) -> tuple[float, str]:
    kpi = {k.key: k for k in compute_kpis(engine, date_range=MARCH)}["churn_rate"]
    return kpi.value, kpi.definition


def test_churn_counts_trading_and_funding_by_default_and_logins_only_when_asked(churners, monkeypatch):
    monkeypatch.delenv(CHURN_ACTIVITY_ENV, raising=False)
    rate, definition = churn(churners)
    assert rate == pytest.approx(2 / 4)  # A (a login does not count) and D
    assert "approved deposit" in definition and "login" not in definition
    assert "TRADERLENS_CHURN_ACTIVITY=trading_funding" in definition

    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "any")
    rate, definition = churn(churners)
    assert rate == pytest.approx(1 / 4)  # D only
    assert "a login" in definition and "TRADERLENS_CHURN_ACTIVITY=any" in definition


def test_an_unknown_churn_activity_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "logins")
    with pytest.raises(BadChurnActivity, match=r"TRADERLENS_CHURN_ACTIVITY='logins' is not .*trading_funding.*any"):
        churn_activity()
    monkeypatch.setenv(CHURN_ACTIVITY_ENV, " ANY ")
    assert churn_activity().name == "any"


@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)
def test_the_kpi_report_names_the_churn_activity_and_refuses_a_bad_one(churners, db_url, run_cli, monkeypatch):
    churners.dispose()  # the CLI process must be the only one holding the DuckDB file
    database.dispose_engines()
    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "any")
    out = run_cli("report", "kpis", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "json", url=db_url)
    assert out.returncode == 0, out.stderr
    record = {r["key"]: r for r in json.loads(out.stdout)}["churn_rate"]
    assert record["value"] == pytest.approx(1 / 4) and "TRADERLENS_CHURN_ACTIVITY=any" in record["definition"]

    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "sometimes")
    bad = run_cli("report", "kpis", "--from", "2026-03-01", "--to", "2026-03-31", url=db_url)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "TRADERLENS_CHURN_ACTIVITY='sometimes' is not a churn activity setting" in bad.stderr


def test_a_position_held_through_the_window_retains_its_trader_in_engagement_retention(engine):
    ftd = datetime(2026, 1, 5, 12)
    # Trader 1 holds a position from day 80 to day 125 after the FTD (nothing opened or closed in days
    # 90-119); trader 2's positions close before day 90 and open after day 119.
    write(engine, traders=[{"trader_id": t, "registered_at": datetime(2026, 1, 1)} for t in (1, 2)],
          deposits=[(1, ftd), (2, ftd)],
          trades=[(1, ftd + timedelta(days=80), ftd + timedelta(days=125)),
                  (2, ftd + timedelta(days=80), ftd + timedelta(days=89, hours=23)),
                  (2, ftd + timedelta(days=120), ftd + timedelta(days=121))])

    result = compute_engagement_retention(engine, date_to=date(2026, 6, 30))

    assert (result.n_low, result.retained_low) == (2, 1)
    assert "a position opened, closed or held" in result.definition()
