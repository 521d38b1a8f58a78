"""The event catalogue on a hand-made broker with ties, on DuckDB and PostgreSQL: every event is the
trader_events view's rows, names are listed in order, the first deposit breaks ties one way, and the
data span covers every event and nothing else."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.events import (
    EventSpan,
    UnknownEvent,
    check_event_names,
    compute_data_span,
    compute_event_span,
    event_select,
    first_deposits,
    list_event_names,
)
from analytics.filters import DEFAULT_FILTER, EVERYONE, TraderFilter
from analytics.periods import DateRange
from connectors import database, schema


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _load(conn) -> None:
    """Four traders: 1 and 2 deposit (with ties), 3 is a lead, 4 a test account.

    The earliest row of all is trader 3's lead capture, the latest event trader 2's login; a fee
    and a trade's close come later still, but neither is an event.
    """
    database.bulk_insert(conn, schema.traders, pd.DataFrame({
        "trader_id": [1, 2, 3, 4], "external_id": ["T1", "T2", "L3", "T4"],
        "lead_at": [_ts("2026-01-01 09:00"), None, _ts("2025-12-31 23:30"), None],
        "registered_at": [_ts("2026-01-01 10:00"), _ts("2026-01-02 10:00"), None, _ts("2026-01-02 11:00")],
        "country": ["DE", "GB", "ZA", "DE"], "is_test": [False, False, False, True],
    }))
    database.bulk_insert(conn, schema.accounts, pd.DataFrame({
        "account_id": [10, 11, 20], "external_id": ["A10", "A11", "A20"], "trader_id": [1, 1, 2],
        "platform": ["MT5", "MT4", "MT5"], "login": ["5001", "4001", "5002"], "currency": ["EUR", "USD", "GBP"],
        "opened_at": [_ts("2026-01-01 12:00"), _ts("2026-01-02 12:00"), _ts("2026-01-02 12:00")],
    }))
    database.bulk_insert(conn, schema.kyc_events, pd.DataFrame({
        "kyc_event_id": [1, 2, 3, 4, 5], "external_id": [f"K{i}" for i in range(1, 6)],
        "trader_id": [1, 1, 1, 1, 2],
        "status": ["submitted", "rejected", "resubmission", "approved", "submitted"],
        "occurred_at": [_ts("2026-01-01 11:00"), _ts("2026-01-01 12:00"), _ts("2026-01-02 09:00"),
                        _ts("2026-01-02 10:00"), _ts("2026-01-02 11:00")],
    }))
    # Trader 1: three approved deposits at one second on two accounts (txn 5 is the FTD, though
    # txn 7 was written first and txn 6 is on the other account), an earlier declined one, a
    # withdrawal, a bonus and a late fee. Trader 2: the first approved deposit ties with a declined
    # one at the same second. Trader 4 (a test account) deposits too.
    database.bulk_insert(conn, schema.transactions, pd.DataFrame({
        "txn_id": [7, 5, 6, 4, 8, 9, 12, 21, 20, 22, 30],
        "external_id": [f"X{i}" for i in (7, 5, 6, 4, 8, 9, 12, 21, 20, 22, 30)],
        "trader_id": [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 4],
        "account_id": [10, 10, 11, 10, 10, 10, 10, 20, 20, 20, None],
        "kind": ["deposit", "deposit", "deposit", "deposit", "withdrawal", "bonus", "fee", "deposit", "deposit",
                 "deposit", "deposit"],
        "status": ["approved", "approved", "approved", "declined", "approved", "approved", "approved", "approved",
                   "declined", "approved", "approved"],
        "amount": [100.0, 250.5, 50.0, 80.0, 40.0, 10.0, 1.0, 500.0, 300.0, 20.0, 5.0],
        "currency": ["EUR", "EUR", "USD", "EUR", "EUR", "EUR", "EUR", "GBP", "GBP", "GBP", "USD"],
        "amount_usd": [108.0, 270.54, 50.0, 86.4, 43.2, 10.8, 1.08, 635.0, 381.0, 25.4, 5.0],
        "created_at": [_ts("2026-01-03 10:00"), _ts("2026-01-03 10:00"), _ts("2026-01-03 10:00"),
                       _ts("2026-01-03 09:55"), _ts("2026-01-09 10:00"), _ts("2026-01-04 10:00"),
                       _ts("2026-01-20 08:00"), _ts("2026-01-05 08:00"), _ts("2026-01-05 08:00"),
                       _ts("2026-01-06 08:00"), _ts("2026-01-04 09:00")],
    }))
    database.bulk_insert(conn, schema.trades, pd.DataFrame({
        "trade_id": [1, 2, 3], "external_id": ["D1", "D2", "D3"], "account_id": [10, 10, 20],
        "trader_id": [1, 1, 2], "symbol": ["EURUSD"] * 3, "side": ["buy", "sell", "buy"], "lots": [1.0, 0.5, 2.0],
        "notional_usd": [108000.0, 54000.0, 216000.0],
        "opened_at": [_ts("2026-01-03 11:00"), _ts("2026-01-03 11:00"), _ts("2026-01-06 09:00")],
        "closed_at": [_ts("2026-01-03 12:00"), _ts("2026-01-04 12:00"), _ts("2026-01-25 09:00")],
        "open_price": [1.08] * 3, "close_price": [1.09] * 3, "profit_usd": [10.0, -5.0, 20.0],
    }))
    database.bulk_insert(conn, schema.sessions, pd.DataFrame({
        "session_id": [1, 2], "external_id": ["S1", "S2"], "trader_id": [1, 2],
        "started_at": [_ts("2026-01-03 09:00"), _ts("2026-01-10 20:00")], "duration_s": [600, 60],
        "surface": ["web", "mobile"],
    }))
    database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
        "portal_event_id": [1, 2, 3], "external_id": ["P1", "P2", "P3"], "trader_id": [1, 1, 2],
        "event": ["deposit_page_view", "deposit_page_view", "app_open"],
        "occurred_at": [_ts("2026-01-03 09:50"), _ts("2026-01-03 09:50"), _ts("2026-01-02 10:30")],
        "properties": ['{"step": "cashier"}', None, '{"os": "ios"}'],
    }))


@pytest.fixture
def broker(engine) -> sa.Engine:
    with engine.begin() as conn:
        _load(conn)
    return engine


def _rows(conn, select: sa.Select) -> list[tuple]:
    return sorted((int(t), at, None if usd is None else round(float(usd), 2))
                  for t, at, usd in conn.execute(select))


def test_every_event_of_the_catalogue_is_the_view_s_rows(broker):
    te = schema.trader_events.c
    names = list_event_names(broker)
    with broker.connect() as conn:
        in_view = set(conn.execute(sa.select(te.event).distinct()).scalars())
        assert sorted(in_view) == sorted(names)
        for name in [*schema.CORE_EVENTS, *names, "no_such_event"]:
            mine = _rows(conn, event_select(name, amount=True))
            theirs = _rows(conn, sa.select(te.trader_id, te.occurred_at, te.amount_usd).where(te.event == name))
            assert mine == theirs, name
            assert (name in in_view) == bool(mine), name
            plain = conn.execute(event_select(name)).all()
            assert sorted((int(t), at) for t, at in plain) == [(t, at) for t, at, _ in mine], name
    # Spot checks of what the view holds: the tie-broken FTDs with their amounts, every KYC status
    # but approved and rejected as a submission, the trade at its opening, no bonus or fee.
    with broker.connect() as conn:
        ftd = _rows(conn, event_select("ftd", amount=True))
        kyc = _rows(conn, event_select("kyc_submitted", amount=True))
        trades = _rows(conn, event_select("trade", amount=True))
    assert ftd == [(1, _ts("2026-01-03 10:00"), 270.54), (2, _ts("2026-01-05 08:00"), 635.0),
                   (4, _ts("2026-01-04 09:00"), 5.0)]
    assert [(t, at) for t, at, _ in kyc] == [(1, _ts("2026-01-01 11:00")), (1, _ts("2026-01-02 09:00")),
                                             (2, _ts("2026-01-02 11:00"))]
    assert [at for _, at, _ in trades] == [_ts("2026-01-03 11:00")] * 2 + [_ts("2026-01-06 09:00")]
    assert {"bonus", "fee"}.isdisjoint(names)


def test_event_names_are_listed_core_events_in_order_then_portal_events_a_to_z(engine):
    assert list_event_names(engine) == []
    with engine.begin() as conn:
        _load(conn)
    assert list_event_names(engine) == [
        "lead_captured", "registered", "kyc_submitted", "kyc_approved", "kyc_rejected", "deposit", "ftd",
        "deposit_declined", "withdrawal", "trade", "login", "app_open", "deposit_page_view"]
    with engine.begin() as conn:  # no approved deposit left: neither deposit nor ftd is present
        conn.execute(schema.transactions.delete().where(schema.transactions.c.status == "approved"))
        conn.execute(schema.kyc_events.delete())
    assert list_event_names(engine) == [
        "lead_captured", "registered", "deposit_declined", "trade", "login", "app_open", "deposit_page_view"]


def test_unknown_event_names_are_refused_naming_the_events_present(broker):
    check_event_names(broker, ["ftd", "app_open", "ftd"])
    with pytest.raises(UnknownEvent) as refused:
        check_event_names(broker, ["ftd", "tarde", "bonus"])
    assert refused.value.unknown == ("tarde", "bonus")
    assert refused.value.known == tuple(list_event_names(broker))
    assert str(refused.value).startswith("unknown events 'tarde', 'bonus'; the events in the database are: "
                                         "lead_captured, registered,")


def test_the_first_deposit_is_the_earliest_approved_one_then_the_lowest_txn_id(broker):
    with broker.connect() as conn:
        detail = sorted(tuple(r) for r in conn.execute(schema.first_deposits(form="detail")).all())
        plain = sorted(tuple(r) for r in conn.execute(first_deposits()).all())
        kept = sorted(tuple(r) for r in conn.execute(first_deposits(DEFAULT_FILTER)).all())
        british = sorted(tuple(r) for r in conn.execute(first_deposits(TraderFilter(countries=("GB",)))).all())
        late = first_deposits(EVERYONE)
        late = late.having(late.selected_columns.occurred_at > _ts("2026-01-04 00:00"))
        after_4th = sorted(int(t) for t, _ in conn.execute(late))
    # Trader 1: txns 5, 6 and 7 share the first second; 5 is the lowest id (not the first written,
    # not the first account). Trader 2: the declined deposit at the same second is not a deposit.
    assert [(t, at, txn, round(float(usd), 2)) for t, at, txn, usd in detail] == [
        (1, _ts("2026-01-03 10:00"), 5, 270.54), (2, _ts("2026-01-05 08:00"), 21, 635.0),
        (4, _ts("2026-01-04 09:00"), 30, 5.0)]
    assert plain == [(t, at) for t, at, _, _ in detail]
    assert kept == plain[:2]  # the test account is left out by default
    assert british == [(2, _ts("2026-01-05 08:00"))]
    assert after_4th == [2, 4]


def test_the_data_span_covers_every_event_and_nothing_else(engine):
    assert compute_event_span(engine) is None and compute_data_span(engine) is None
    with engine.begin() as conn:
        _load(conn)
    # From trader 3's lead capture to trader 2's login; the later fee and trade close are no events.
    span = compute_event_span(engine)
    assert span == EventSpan(_ts("2025-12-31 23:30"), _ts("2026-01-10 20:00"))
    assert compute_data_span(engine) == span.days == DateRange(date(2025, 12, 31), date(2026, 1, 10))
    te = schema.trader_events.c
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.select(sa.func.min(te.occurred_at), sa.func.max(te.occurred_at))).one()) == (
            span.first_at, span.last_at)
