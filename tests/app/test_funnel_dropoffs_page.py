"""The Funnels page's "Who dropped off" tells the dropped (window over) from those still in their window,
with counts, and lists what a retention team contacts people with; in-process with AppTest on a
hand-built broker."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pandas as pd
import pytest

from connectors import database, schema
from connectors.rollups import refresh_rollups

END = datetime(2026, 3, 1, 12, 0)  # the newest event


def _day(days: float) -> datetime:
    return END - timedelta(days=days)


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """Registered -> FTD over the default 14-day window: trader 1 registered 30 days before the end and never
    deposited (dropped), trader 2 registered 3 days before (still in window), trader 3 converted."""
    url = f"duckdb:///{tmp_path / 'dropoffs.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.traders, pd.DataFrame({
            "trader_id": [1, 2, 3], "external_id": ["T1", "T2", "T3"],
            "registered_at": [_day(30), _day(3), _day(20)], "first_name": ["Ana", "Ben", "Cy"],
            "last_name": ["Lima", "Ode", "Ray"], "email": ["ana@example.com", "ben@example.com", "cy@example.com"],
            "phone": ["+351 900 000 001", "+44 7700 900002", None], "country": ["PT", "GB", "DE"],
            "acquisition_channel": ["affiliate", "paid_search", "organic"], "owner": ["Rui", None, "Rui"],
            "consent_email": [True, False, True], "consent_sms": [False, True, False],
            "consent_push": [False, False, False], "consent_whatsapp": [True, False, False],
        }))
        database.bulk_insert(conn, schema.transactions, pd.DataFrame({
            "txn_id": [1], "external_id": ["X1"], "trader_id": [3], "kind": ["deposit"], "status": ["approved"],
            "amount": [100.0], "currency": ["USD"], "amount_usd": [100.0], "created_at": [_day(15)],
        }))
        # The newest event, so the data ends on 01 Mar.
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": [1], "external_id": ["P1"], "trader_id": [3], "event": ["app_open"],
            "occurred_at": [END]}))
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()
    return url


def test_dropped_and_still_in_window_are_listed_apart_with_contact_details(db_url, open_page, downloaded):
    at = open_page("pages/funnels.py")
    at.multiselect(key="funnels.steps").set_value(["registered", "ftd"]).run()
    assert not at.exception, at.exception

    status = at.segmented_control(key="funnels.dropoff_status")
    assert status.value == "dropped"
    captions = [c.value for c in at.caption]
    assert any("1 dropped (window over by 01 Mar 2026" in c and "1 still in their window" in c for c in captions), \
        captions
    table = at.get_by_key("funnels.dropoffs").dataframe[0].value
    assert table["Name"].tolist() == ["Ana Lima"] and table["Status"].tolist() == ["Dropped"]
    assert table[["Email", "Phone", "Country", "Channel", "Owner"]].values.tolist() == [
        ["ana@example.com", "+351 900 000 001", "Portugal", "Affiliate", "Rui"]]  # names; the CSV keeps codes
    assert table[["Email ok", "SMS ok", "Push ok", "WhatsApp ok"]].values.tolist() == [[True, False, False, True]]

    status.set_value("in_window").run()
    table = at.get_by_key("funnels.dropoffs").dataframe[0].value
    assert table["Name"].tolist() == ["Ben Ode"] and table["Status"].tolist() == ["Still in window"]
    rows = list(csv.DictReader(io.StringIO(downloaded(at, "funnels.dropoffs.download"))))
    assert [(r["trader_id"], r["status"], r["email"], r["consent_sms"], r["owner"]) for r in rows] == [
        ("2", "in_window", "ben@example.com", "True", "")]
    assert rows[0]["window_ends_at"] == "2026-03-12 12:00:00"  # registered 02-26 12:00 + 14 days

    at.segmented_control(key="funnels.dropoff_status").set_value("all").run()
    table = at.get_by_key("funnels.dropoffs").dataframe[0].value
    assert table["Trader id"].tolist() == [2, 1]  # most recent first


def test_the_list_shown_is_bound_to_the_link(db_url, open_linked):
    at = open_linked("pages/funnels.py", {"funnels.steps": ["registered", "ftd"],
                                          "funnels.dropoff_status": "Still in window"})

    assert not at.exception, at.exception
    assert at.get_by_key("funnels.dropoffs").dataframe[0].value["Trader id"].tolist() == [2]
