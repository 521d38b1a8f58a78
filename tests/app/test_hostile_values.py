"""Values chosen by outsiders (event names, property values, trader and affiliate ids, file names) on every
page, in-process with AppTest: Markdown elements carry them escaped, tables carry them raw, and every CSV
download neutralises those a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from components.cohort_charts import event_label
from components.text import escape_markdown
from connectors import database, schema
from connectors.rollups import refresh_rollups

END = datetime(2026, 3, 1, 12, 0)

IMAGE = "![p](http://127.0.0.1:9/p.png)"  # a Markdown image: the browser would fetch it
LINK = "[click](http://127.0.0.1:9/x)"  # a live link
FORMULA = '=hyperlink("http://evil.example/f","f")'  # runs in a spreadsheet
ONLY_TEST = "**bold** <b>html</b> :red[red]"  # done by a test account only: empty states name it
PROPERTY = '=HYPERLINK("http://evil.example/p")'
PROPERTY_MD = "[site](http://127.0.0.1:9/u)"
AFFILIATE = '@SUM(1+1)*cmd|" /C calc"!A0'
AFFILIATE_MD = "[ib](http://127.0.0.1:9/ib)"
TRADER = "=cmd|' /C calc'!A0"


@pytest.fixture
def hostile_url(tmp_path, monkeypatch) -> str:
    """The app's database: three traders whose ids, affiliates, events and properties are hostile.

    Trader 1 (FTD 180 days before the end) does IMAGE → LINK → FORMULA, and LINK again 75 days before the
    end (retained in the engagement analysis); trader 2 only does IMAGE (a drop-off); trader 3 is a test
    account, the only one who does ONLY_TEST.
    """
    url = f"duckdb:///{tmp_path / 'hostile.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    day = lambda days, hours=0: END - timedelta(days=days) + timedelta(hours=hours)  # noqa: E731
    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.traders, pd.DataFrame({
            "trader_id": [1, 2, 3], "external_id": ["T1", TRADER, "T3"],
            "registered_at": [day(200), day(10), day(5)], "country": ["DE", "GB", "DE"],
            "acquisition_channel": ["affiliate"] * 3, "affiliate_id": [AFFILIATE_MD, AFFILIATE, AFFILIATE],
            "is_test": [False, False, True],
        }))
        database.bulk_insert(conn, schema.transactions, pd.DataFrame({
            "txn_id": [1, 2], "external_id": ["X1", "X2"], "trader_id": [1, 2], "kind": ["deposit"] * 2,
            "status": ["approved"] * 2, "amount": [500.0, 250.0], "currency": ["USD"] * 2,
            "amount_usd": [500.0, 250.0], "created_at": [day(180), day(9)],
        }))
        events = [(1, IMAGE, day(3), PROPERTY), (1, LINK, day(3, 1), None), (1, FORMULA, day(3, 2), None),
                  (1, LINK, day(75), None), (2, IMAGE, day(2), PROPERTY_MD), (3, ONLY_TEST, day(1), None)]
        database.bulk_insert(conn, schema.portal_events, pd.DataFrame({
            "portal_event_id": range(1, len(events) + 1), "external_id": [f"P{i}" for i in range(len(events))],
            "trader_id": [e[0] for e in events], "event": [e[1] for e in events],
            "occurred_at": [e[2] for e in events],
            "properties": [None if e[3] is None else json.dumps({"utm_source": e[3]}) for e in events],
        }))
        refresh_rollups(conn)
    engine.dispose()
    database.dispose_engines()
    return url


def assert_shown_as_text(body: str, value: str) -> None:
    """``value`` is in the Markdown ``body`` escaped, and nowhere as it was typed."""
    assert escape_markdown(value) in body, body
    assert value not in body, body


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_funnels_page_shows_event_names_as_text_and_neutralises_its_downloads(hostile_url, downloaded, open_page):
    at = open_page("pages/funnels.py")
    at.multiselect(key="funnels.steps").set_value([IMAGE, LINK, FORMULA]).run()
    assert not at.exception, at.exception

    labels = {m.label for m in at.metric}
    entered = next(label for label in labels if label.startswith("Entered · "))
    completed = next(label for label in labels if label.startswith("Completed · "))
    assert_shown_as_text(entered, event_label(IMAGE))
    assert_shown_as_text(completed, event_label(FORMULA))
    # Plain-text places keep the value as it is: no backslashes in the table or the step picker.
    steps = at.get_by_key("funnels.table").dataframe[0].value["Step"].tolist()
    assert steps == [f"1. {event_label(IMAGE)}", f"2. {event_label(LINK)}", f"3. {event_label(FORMULA)}"]
    assert event_label(LINK) in at.multiselect(key="funnels.steps").options

    table = csv_rows(downloaded(at, "funnels.table.download"))
    assert [r["event"] for r in table] == [IMAGE, LINK, "'" + FORMULA]
    assert [r["count"] for r in table] == ["2", "1", "1"]
    # Trader 2 did IMAGE two days before the data ends: still in the 14-day window, listed under that status.
    at.segmented_control(key="funnels.dropoff_status").set_value("in_window").run()
    dropped = csv_rows(downloaded(at, "funnels.dropoffs.download"))
    assert [r["external_id"] for r in dropped] == ["'" + TRADER]

    # A breakdown by an event property: its values as raw text on screen, neutralised in the CSV.
    at.segmented_control(key="funnels.breakdown_kind").set_value("event").run()
    at.text_input(key="funnels.property").input("utm_source").run()
    assert not at.exception, at.exception
    assert set(at.get_by_key("funnels.table").dataframe[0].value["Breakdown"]) == {PROPERTY, PROPERTY_MD}
    values = {r["breakdown_value"] for r in csv_rows(downloaded(at, "funnels.table.download"))}
    assert values == {"'" + PROPERTY, PROPERTY_MD}
    values = {r["breakdown_value"] for r in csv_rows(downloaded(at, "funnels.dropoffs.download"))}
    assert values == {PROPERTY_MD}


def test_funnels_page_messages_name_events_as_text(hostile_url, open_page):
    at = open_page("pages/funnels.py")
    at.multiselect(key="funnels.steps").set_value([IMAGE, LINK, FORMULA]).run()
    at.selectbox(key="funnels.exclude").select(LINK).run()
    at.selectbox(key="funnels.exclude_from").select(2).run()
    at.selectbox(key="funnels.exclude_to").select(2).run()  # after step 2 and before step 2: rejected

    assert len(at.warning) == 1
    assert_shown_as_text(at.warning[0].value, LINK)

    at.selectbox(key="funnels.exclude").select("").run()
    at.multiselect(key="funnels.steps").set_value([ONLY_TEST, IMAGE]).run()
    assert not at.exception, at.exception
    assert_shown_as_text(next(i.value for i in at.info if "No trader did" in i.value), event_label(ONLY_TEST))


def test_cohorts_page_names_events_as_text(hostile_url, open_page):
    at = open_page("pages/cohorts.py")
    at.selectbox(key="cohorts.activity").select(LINK).run()
    assert not at.exception, at.exception
    caption = next(c.value for c in at.caption if "FTD traders whose" in c.value)
    assert_shown_as_text(caption, LINK)  # the engagement analysis names its retention event

    at.selectbox(key="cohorts.start").select(ONLY_TEST).run()
    assert not at.exception, at.exception
    assert_shown_as_text(next(i.value for i in at.info if "No trader did" in i.value), event_label(ONLY_TEST))


def test_lifecycle_page_names_the_activity_as_text(hostile_url, open_page):
    at = open_page("pages/lifecycle.py")
    at.selectbox(key="lifecycle.event").select(ONLY_TEST).run()

    assert not at.exception, at.exception
    assert_shown_as_text(next(i.value for i in at.info if "No trader was active" in i.value), ONLY_TEST)


def test_overview_names_the_affiliate_filter_as_text_and_neutralises_the_breakdown_csv(hostile_url, downloaded,
                                                                                        open_page):
    at = open_page(None, affiliate=AFFILIATE_MD)
    assert at.multiselect(key="affiliate").value == [AFFILIATE_MD]
    assert_shown_as_text(at.caption[0].value, AFFILIATE_MD)

    at = open_page(None)
    at.segmented_control(key="overview.breakdown").set_value("affiliate_id").run()
    assert not at.exception, at.exception
    shown = at.get_by_key("overview.breakdown_view.table").dataframe[0].value["Affiliate (IB)"].tolist()
    assert AFFILIATE in shown  # raw in the table
    values = [r["affiliate_id"] for r in csv_rows(downloaded(at, "overview.breakdown_view.table.download"))]
    assert "'" + AFFILIATE in values and AFFILIATE not in values


HOSTILE_FILE = "![x](x.png) [y](http://127.0.0.1:9/y).csv"
TRADERS_CSV = b"external_id,registered_at,country,email\nN1,2026-02-20T10:00:00,DE,n1@example.com\n"


def test_data_page_names_an_uploaded_file_as_text(hostile_url, open_page):
    at = open_page("pages/data.py")
    at.selectbox(key="data.kind").select("traders").run()

    # A rejection names the file.
    bad = b"external_id,registered_at,country,email\n[c](http://127.0.0.1:9/c),yesterday,DE,n2@example.com\n"
    at.file_uploader(key="data.upload").set_value((HOSTILE_FILE, bad, "text/csv")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert_shown_as_text(at.error[0].value, HOSTILE_FILE)

    # So does the result of an import.
    at.file_uploader(key="data.upload").set_value((HOSTILE_FILE, TRADERS_CSV, "text/csv")).run()
    at.button(key="data.import").click().run()
    assert not at.exception, at.exception
    assert_shown_as_text(at.success[0].proto.title, HOSTILE_FILE)
