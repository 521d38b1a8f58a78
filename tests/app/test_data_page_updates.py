"""The Data page's import summary when a file changes rows already loaded (AppTest, in-process)."""

from __future__ import annotations

import sqlalchemy as sa

from connectors import database
from tests.app.test_data_page import db_url, open_data_page  # noqa: F401 (db_url is a fixture)

TRADERS = b"external_id,registered_at,country,email\nN1,2026-11-20T10:00:00,DE,n1@example.com\n"
LEDGER = ("external_id,trader_external_id,kind,status,amount,currency,amount_usd,created_at\n"
          "P1,N1,deposit,{status},600,USD,600,2026-11-21T10:00:00\n"
          "P2,N1,deposit,approved,50,USD,50,2026-11-22T10:00:00\n")


def _upload(at, name: str, data: bytes):
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    at.button(key="data.import").click().run()
    assert not at.exception, at.exception
    return at


def test_the_summary_counts_updated_and_unchanged_rows_and_names_the_changed_fields(db_url):  # noqa: F811
    at = open_data_page()
    _upload(at, "traders.csv", TRADERS)
    _upload(at, "psp_1121.csv", LEDGER.format(status="pending").encode())

    _upload(at, "psp_1122.csv", LEDGER.format(status="approved").encode())

    message = at.success[0].value
    assert message.startswith("Read 2 rows as `transactions`; inserted 0 (nothing new); updated 1; unchanged 1.")
    assert "Changed: transactions.status (1)" in message and "cli.py changes --import" in message
    recent = at.get_by_key("data.imports").dataframe[0].value
    assert recent[["File", "Inserted", "Updated", "Unchanged", "By"]].values.tolist()[0] == [
        "psp_1122.csv", 0, 1, 1, "app"]
    assert f"cli.py changes --import {recent['Import'].iloc[0]}" in message
    engine = database.get_engine(db_url)
    try:
        with engine.connect() as conn:
            who = conn.execute(sa.text("SELECT changed_by, old_value, new_value, file_name FROM row_changes")).all()
    finally:
        engine.dispose()
        database.dispose_engines()
    assert [tuple(r) for r in who] == [("app", "pending", "approved", "psp_1122.csv")]
