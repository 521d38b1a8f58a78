"""The app's scheduled work (server/scheduler.py): the interval setting, one thread per process, a
tick that keeps the feature snapshot current and refreshes live segments, and leaves an empty
database alone."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import segments as seg
from analytics.features import materialised_snapshot
from connectors import database, schema
from connectors.errors import DatabaseBusy
from connectors.rollups import refresh_rollups
from server import scheduler
from tests.analytics.test_segments import add_trader, one, write_broker


@pytest.fixture
def broker(engine):
    write_broker(engine)
    return engine


@pytest.fixture(autouse=True)
def _stopped():
    yield
    scheduler.stop()


@pytest.mark.parametrize(("value", "expected"), [("", 300.0), ("60", 60.0), ("0", 0.0), ("0.5", 0.5),
                                                 ("soon", 300.0), ("-5", 300.0), ("nan", 300.0), ("inf", 300.0)])
def test_the_interval_comes_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(scheduler.ENV, value)
    assert scheduler.refresh_interval() == expected


def test_zero_turns_the_refresh_off(monkeypatch):
    monkeypatch.setenv(scheduler.ENV, "0")
    assert scheduler.start() is False
    assert scheduler.STATUS.interval_s == 0


def test_a_tick_refreshes_live_segments_and_skips_archived_ones(broker):
    live = seg.create_segment(broker, name="Germany", kind="rules", definition=one("trader.country", "=", "DE"),
                              refresh=False)
    old = seg.create_segment(broker, name="Britain", kind="rules", definition=one("trader.country", "=", "GB"),
                             refresh=False)
    seg.archive_segment(broker, old.segment_id)
    results = scheduler.refresh_once(lambda: broker, lambda: broker)
    assert [(r.name, r.size) for r in results] == [("Germany", 2)]
    assert seg.get_segment(broker, live.segment_id).refreshed_at is not None
    assert seg.get_segment(broker, old.segment_id).refreshed_at is None


def test_a_tick_with_a_fresh_snapshot_and_no_live_segment_writes_nothing(broker):
    before = materialised_snapshot(broker)
    assert scheduler.refresh_once(lambda: broker, lambda: broker) == []
    assert materialised_snapshot(broker) == before  # not recomputed


def test_the_first_tick_computes_a_missing_snapshot(broker):
    with broker.begin() as conn:
        conn.execute(sa.text("DROP TABLE trader_features"))
    assert scheduler.refresh_once(lambda: broker, lambda: broker) == []
    assert materialised_snapshot(broker).traders == 5  # registered before the snapshot (the lead is not)


def test_an_empty_database_is_left_alone(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS trader_features"))
    assert scheduler.refresh_once(lambda: engine, lambda: engine) == []
    assert materialised_snapshot(engine) is None


def test_a_stale_feature_snapshot_is_materialised_again_for_a_rule_on_features(broker):
    seg.create_segment(broker, name="Traders", kind="rules", definition=one("feature.trades_total", ">", 0))
    before = materialised_snapshot(broker).as_of
    with broker.begin() as conn:  # a trade on a later day: the data moves on
        database.bulk_insert(conn, schema.trades, pd.DataFrame([{
            "trade_id": 99, "external_id": "D99", "trader_id": 2, "symbol": "EURUSD", "side": "buy", "lots": 1,
            "opened_at": datetime(2026, 4, 3, 10), "closed_at": datetime(2026, 4, 3, 11), "open_price": 1.0,
            "close_price": 1.0, "profit_usd": 0}]))
        refresh_rollups(conn)
    [result] = scheduler.refresh_once(lambda: broker, lambda: broker)
    assert materialised_snapshot(broker).as_of == before + timedelta(days=3)
    assert result.size == 2 and result.entered == 1  # trader 2 traded: the rule sees it


def test_the_thread_starts_once_and_refreshes_on_its_own(broker, monkeypatch):
    monkeypatch.setenv(scheduler.ENV, "0.2")
    s = seg.create_segment(broker, name="Germany", kind="rules", definition=one("trader.country", "=", "DE"))
    add_trader(broker, 7, "DE")
    assert scheduler.start(lambda: broker, lambda: broker) is True
    assert scheduler.start(lambda: broker, lambda: broker) is False  # one per process
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and 7 not in set(seg.member_ids(broker, s.segment_id)):
        time.sleep(0.1)
    assert 7 in set(seg.member_ids(broker, s.segment_id))
    scheduler.stop()
    assert scheduler.STATUS.last_error is None and scheduler.STATUS.last_finished_at is not None


def test_a_failing_tick_is_reported_and_the_thread_goes_on(broker, monkeypatch):
    monkeypatch.setenv(scheduler.ENV, "0.1")
    seg.create_segment(broker, name="Germany", kind="rules", definition=one("trader.country", "=", "DE"))
    calls = []

    def busy():
        calls.append(1)
        raise DatabaseBusy("duckdb:///x", "held by another process")

    scheduler.start(busy, lambda: broker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(calls) < 2:
        time.sleep(0.05)
    scheduler.stop()
    assert len(calls) >= 2
    assert "held by another process" in scheduler.STATUS.last_error
    with broker.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.segments)).scalar_one() == 1
