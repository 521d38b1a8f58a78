"""The reporting time zone (TRADERLENS_REPORTING_TZ) decides every day, week and month.

Two kinds of proof:
- by hand, New York: a deposit, a registration and a trade at 23:30 on 30 November in New York
  (04:30 UTC on 1 December) belong to November for a New York desk and to December in UTC, in one
  KPI, one cohort and one lifecycle period;
- everything at once: a simulated broker reported in a fixed UTC-5 zone gives exactly what the same
  broker gives in UTC once every stored time is moved to that zone's wall time (KPIs, trends,
  retention, lifecycle, funnel trends, the data span). A missed conversion anywhere breaks it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.cohorts import RetentionSpec, compute_retention
from analytics.events import compute_data_span
from analytics.funnels import FunnelSpec, compute_funnel_trends
from analytics.kpis import compute_kpi_trend, compute_kpis
from analytics.lifecycle import compute_lifecycle, compute_stage_distribution
from analytics.periods import DateRange, midnight
from connectors import clock, database
from connectors.clock import BadTimeZone, parse_zone
from connectors.rollups import ROLLUP_VERSION, refresh_rollups, stale_reason
from connectors.schema import DATA_TABLES, accounts, rollup_state, sessions, traders, trades, transactions
from connectors.simulator import SimulationConfig, seed_database

NEW_YORK = "America/New_York"
LATE = datetime(2026, 12, 1, 4, 30)  # 23:30 on 30 November in New York (EST, UTC-5)
NOVEMBER, DECEMBER = DateRange(date(2026, 11, 1), date(2026, 11, 30)), DateRange(date(2026, 12, 1), date(2026, 12, 31))


@pytest.fixture
def zone(monkeypatch):
    def use(name: str | None) -> None:
        if name is None:
            monkeypatch.delenv(clock.ENV, raising=False)
        else:
            monkeypatch.setenv(clock.ENV, name)
    return use


# ---- the zone itself --------------------------------------------------------------------------


def test_zone_names_shifts_and_conversions():
    ny = parse_zone(NEW_YORK)
    assert ny.to_local(LATE) == datetime(2026, 11, 30, 23, 30)
    assert ny.to_utc(datetime(2026, 11, 30)) == datetime(2026, 11, 30, 5)  # EST
    assert ny.to_utc(datetime(2026, 7, 1)) == datetime(2026, 7, 1, 4)  # EDT
    fx = parse_zone("America/New_York+07:00")  # the FX day: starts at 17:00 in New York
    assert fx.to_utc(datetime(2026, 12, 1)) == datetime(2026, 11, 30, 22)
    assert fx.to_local(datetime(2026, 11, 30, 21, 59)).date() == date(2026, 11, 30)
    assert fx.to_local(datetime(2026, 11, 30, 22, 0)).date() == date(2026, 12, 1)
    assert parse_zone("UTC").is_utc and not ny.is_utc
    assert ny.describe(LATE) == "America/New_York (UTC-05:00)"
    us = pd.DatetimeIndex([LATE, datetime(2026, 7, 1, 3, 59)]).as_unit("us").asi8
    assert list(pd.to_datetime(ny.local_us(us), unit="us")) == [pd.Timestamp(2026, 11, 30, 23, 30),
                                                               pd.Timestamp(2026, 6, 30, 23, 59)]


@pytest.mark.parametrize("spec", ["Mars/Olympus", "America/New_York+25:00", "UTC; DROP TABLE traders", "+07:00", ""])
def test_a_bad_zone_is_refused_with_the_setting_named(spec):
    if spec == "":
        assert parse_zone("UTC").is_utc  # empty means the default, handled by reporting_zone()
        return
    with pytest.raises(BadTimeZone, match=clock.ENV):
        parse_zone(spec)


def test_every_command_refuses_a_bad_zone_in_one_line(run_cli, cli_url, monkeypatch):
    monkeypatch.setenv(clock.ENV, "Mars/Olympus")
    result = run_cli("info", url=cli_url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no time zone named 'Mars/Olympus'" in result.stderr


# ---- by hand, New York ------------------------------------------------------------------------


def _late_trader(engine) -> None:
    """T1 registers in mid-November; T2 registers, deposits $600 and trades at 23:30 New York time
    on 30 November; both log in again in December."""
    with engine.begin() as conn:
        conn.execute(traders.insert(), [
            {"trader_id": 1, "external_id": "T1", "registered_at": datetime(2026, 11, 15, 12)},
            {"trader_id": 2, "external_id": "T2", "registered_at": LATE - timedelta(minutes=10)}])
        conn.execute(accounts.insert(), [{"account_id": 1, "external_id": "A1", "trader_id": 2, "platform": "MT5",
                                          "login": "1", "currency": "USD", "opened_at": LATE}])
        conn.execute(transactions.insert(), [
            {"txn_id": 1, "external_id": "X1", "trader_id": 2, "account_id": 1, "kind": "deposit",
             "status": "approved", "amount": 600, "currency": "USD", "amount_usd": 600, "created_at": LATE}])
        conn.execute(trades.insert(), [
            {"trade_id": 1, "external_id": "D1", "trader_id": 2, "account_id": 1, "symbol": "EURUSD",
             "asset_class": "fx", "side": "buy", "lots": 1, "notional_usd": 100_000, "opened_at": LATE,
             "closed_at": LATE + timedelta(minutes=20), "open_price": 1.0, "close_price": 1.0, "profit_usd": 5}])
        conn.execute(sessions.insert(), [
            {"session_id": i, "external_id": f"S{i}", "trader_id": t, "started_at": datetime(2026, 12, 10, 12),
             "duration_s": 60, "surface": "web"} for i, t in ((1, 1), (2, 2))])
        refresh_rollups(conn)


def _kpi(engine, key: str, rng: DateRange) -> float | None:
    return next(k.value for k in compute_kpis(engine, date_range=rng) if k.key == key)


def test_a_late_new_york_deposit_belongs_to_november_for_a_new_york_desk(engine, zone):
    _late_trader(engine)
    # In UTC it is 1 December: one KPI, one cohort and one lifecycle period say so.
    assert (_kpi(engine, "deposits", NOVEMBER), _kpi(engine, "deposits", DECEMBER)) == (0, 600)
    zone(NEW_YORK)
    assert stale_reason_of(engine) is not None  # rollups built in UTC do not fit New York
    database.upgrade_schema(engine)  # what every process does on start: rebuilds them
    assert stale_reason_of(engine) is None

    # KPI: deposits and FTDs of November, by hand: T2's $600 at 23:30 on 30 November.
    assert _kpi(engine, "deposits", NOVEMBER) == 600 and _kpi(engine, "ftds", NOVEMBER) == 1
    assert _kpi(engine, "deposits", DECEMBER) == 0
    assert _kpi(engine, "active_traders", NOVEMBER) == 1 and _kpi(engine, "active_traders", DECEMBER) == 0

    # Cohort: both registered in November (one cohort of 2, none in December); both logged in in
    # December, the next month.
    result = compute_retention(engine, RetentionSpec(start_event="registered", return_event="login",
                                                     period="month", intervals=2),
                               date_from=date(2026, 11, 1), date_to=date(2026, 12, 31))
    counts = result.counts.set_index(result.counts["cohort_start"].dt.date)
    assert counts.loc[date(2026, 11, 1), "size"] == 2
    assert counts.loc[date(2026, 12, 1), "size"] == 0
    assert counts.loc[date(2026, 11, 1), 1] == 2

    # Lifecycle: the trade makes T2 new in November, and (no December trade) dormant in December.
    life = compute_lifecycle(engine, event="trade", period="month", date_from=date(2026, 11, 1),
                             date_to=date(2026, 12, 31))
    by_month = life.set_index(pd.to_datetime(life["period_start"]).dt.date)
    assert by_month.loc[date(2026, 11, 1), "new"] == 1
    assert by_month.loc[date(2026, 12, 1), ["new", "dormant"]].tolist() == [0, -1]

    # The data ends on 10 December either way; the span's first day is 15 November.
    assert compute_data_span(engine) == DateRange(date(2026, 11, 15), date(2026, 12, 10))


def test_the_fx_day_starting_at_17_00_new_york_is_one_setting(engine, zone):
    _late_trader(engine)
    zone("America/New_York+07:00")
    database.upgrade_schema(engine)
    # 23:30 in New York on 30 November is after the 17:00 close: it is 1 December's FX day.
    assert _kpi(engine, "deposits", NOVEMBER) == 0 and _kpi(engine, "deposits", DECEMBER) == 600
    assert midnight(date(2026, 12, 1)) == datetime(2026, 11, 30, 22)


def stale_reason_of(engine) -> str | None:
    with engine.connect() as conn:
        return stale_reason(conn)


def test_rollups_record_the_zone_and_version_they_were_built_for(engine, zone):
    _late_trader(engine)
    with engine.connect() as conn:
        state = dict(conn.execute(sa.select(rollup_state.c.name, rollup_state.c.value)).all())
    assert state == {"reporting_tz": "UTC", "version": str(ROLLUP_VERSION)}
    zone("Europe/Nicosia")
    assert "built for the reporting time zone UTC" in stale_reason_of(engine)
    assert "Europe/Nicosia" in database.upgrade_schema(engine)
    assert database.upgrade_schema(engine) is None  # once is enough
    zone(None)
    # A partial refresh (an import) of rollups built for another zone rebuilds them all.
    with engine.begin() as conn:
        refresh_rollups(conn, [2])
    assert stale_reason_of(engine) is None


# ---- everything at once: the zone against its wall time ----------------------------------------

SHIFT = timedelta(hours=-5)
FIXED = "Etc/GMT+5"  # UTC-5 all year (POSIX sign: "GMT+5" is five hours behind)
CONFIG = SimulationConfig(traders=400, days=75, seed=11, end=date(2026, 11, 20))


def _reports(engine) -> dict[str, object]:
    """Every period-based report of the analytics core on ``engine``, as plain values."""
    span = compute_data_span(engine)
    rng = DateRange(span.end - timedelta(days=27), span.end)
    out: dict[str, object] = {"span": span}
    for r in (rng, DateRange(span.start, span.end)):
        out[f"kpis {r}"] = [(k.key, k.value, k.previous) for k in compute_kpis(engine, date_range=r)]
    for metric in ("deposits", "active_traders", "registrations"):
        for period in ("day", "week"):
            frame = compute_kpi_trend(engine, metric=metric, date_range=rng, period=period)
            out[f"trend {metric} {period}"] = frame.to_dict("list")
    for period, return_event in (("day", "login"), ("week", "trade")):
        result = compute_retention(engine, RetentionSpec(start_event="registered", return_event=return_event,
                                                         period=period, intervals=6),
                                   date_from=span.start, date_to=span.end, data_end=span.end)
        out[f"retention {period}"] = result.records()
    out["lifecycle"] = compute_lifecycle(engine, event="trade", period="week", date_from=rng.start,
                                         date_to=rng.end).to_dict("list")
    out["stages"] = compute_stage_distribution(engine, as_of=span.end).to_dict("list")
    out["funnel trends"] = compute_funnel_trends(engine, FunnelSpec(steps=("registered", "ftd")),
                                                 period="day").to_dict("list")
    return out


def test_reports_in_a_zone_equal_reports_of_its_wall_time_in_utc(engine, zone, tmp_path):
    seed_database(engine, CONFIG)
    # The reference: the same broker on DuckDB with every stored time moved to UTC-5 wall time
    # (copied table by table: DuckDB cannot update a row other tables reference).
    source = database.get_engine(f"duckdb:///{tmp_path / 'source.duckdb'}")
    database.upgrade_schema(source)
    seed_database(source, CONFIG)
    wall = database.get_engine(f"duckdb:///{tmp_path / 'wall.duckdb'}")
    database.upgrade_schema(wall)
    with source.connect() as read, wall.begin() as conn:
        for table in DATA_TABLES:
            frame = pd.read_sql(sa.select(table), read)
            for c in table.columns:
                if isinstance(c.type, sa.DateTime):
                    frame[c.name] = frame[c.name] + SHIFT
            database.bulk_insert(conn, table, frame)
        refresh_rollups(conn)
    expected = _reports(wall)

    zone(FIXED)
    database.upgrade_schema(engine)
    actual = _reports(engine)
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key] == expected[key], key


def test_day_boundaries_follow_daylight_saving(zone):
    zone(NEW_YORK)  # EDT ends at 02:00 on 1 November 2026
    assert midnight(date(2026, 11, 1)) == datetime(2026, 11, 1, 4)
    assert midnight(date(2026, 11, 2)) == datetime(2026, 11, 2, 5)
    assert DateRange(date(2026, 11, 1), date(2026, 11, 1)).end_ts - DateRange(
        date(2026, 11, 1), date(2026, 11, 1)).start_ts == timedelta(hours=25)


@pytest.mark.parametrize("name", [NEW_YORK, "Europe/Nicosia", "America/New_York+07:00", "Asia/Kolkata", FIXED])
def test_sql_conversions_agree_with_python_around_every_kind_of_instant(engine, name):
    """local() and utc() read offsets from a table of transitions inside 1990-2060 and use the
    database's time zone functions outside; both must agree with Python's zoneinfo, at daylight-saving
    changes (the skipped and the repeated hour) and far from them."""
    z = parse_zone(name)
    instants = [datetime(1985, 7, 1, 12), datetime(2070, 1, 5, 3, 15), datetime(2026, 11, 30, 23, 59, 59)]
    for change in (datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6), datetime(2026, 3, 29, 1),
                   datetime(2026, 10, 25, 1)):
        instants += [change + timedelta(minutes=m) for m in (-61, -60, -1, 0, 1, 59, 60)]
    walls = [datetime(2026, 3, 8, 2, 30), datetime(2026, 11, 1, 1, 30), datetime(2026, 3, 29, 3, 30),
             datetime(2026, 10, 25, 3, 30), datetime(2026, 12, 1), datetime(1980, 1, 1), datetime(2080, 6, 1)]
    values = sa.values(sa.column("i", sa.Integer), sa.column("instant", sa.DateTime), name="v").data(
        list(enumerate(instants + walls)))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(values.c.i, z.local(values.c.instant), z.utc(values.c.instant))
                            .order_by(values.c.i)).all()
    for (i, local, utc), at in zip(rows, instants + walls, strict=True):
        if i < len(instants):
            assert local == z.to_local(at), (name, at)
        else:
            assert utc == z.to_utc(at), (name, at)


def test_a_command_run_in_another_zone_refuses_and_setup_adopts_it(run_cli, cli_url, monkeypatch):
    """A scheduled report whose environment lacks (or mistypes) the broker's zone must not rebuild the
    rollups for its own: the app would rebuild them back at its next start, and every report in
    between would silently count other days. It refuses in one line naming both zones; ``setup``
    with the new zone is how the broker changes it."""
    seeded = run_cli("seed", "--traders", "60", "--days", "20", url=cli_url)
    assert seeded.returncode == 0, seeded.stderr
    monkeypatch.setenv(clock.ENV, NEW_YORK)
    refused = run_cli("report", "kpis", "--format", "json", url=cli_url)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "reports in the time zone UTC" in refused.stderr and f"TRADERLENS_REPORTING_TZ={NEW_YORK}" in refused.stderr
    adopted = run_cli("setup", url=cli_url)
    assert adopted.returncode == 0 and "rebuilt the daily rollups" in adopted.stderr, adopted.stderr
    assert run_cli("report", "kpis", "--format", "json", url=cli_url).returncode == 0
    monkeypatch.delenv(clock.ENV)
    assert "reports in the time zone America/New_York" in run_cli("info", url=cli_url).stderr


def test_a_new_database_takes_the_zone_without_a_note(run_cli, cli_url, monkeypatch):
    monkeypatch.setenv(clock.ENV, NEW_YORK)
    result = run_cli("info", url=cli_url)
    assert result.returncode == 0, result.stderr
    assert "rebuilt" not in result.stderr
    assert "reporting time zone  America/New_York" in result.stdout
