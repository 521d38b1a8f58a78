"""The Data page through the app entrypoint, in-process with AppTest."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analytics import data_health
from connectors.errors import ImportBusy
from tests.app import sample_data

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_URL = "postgresql+psycopg2://nobody@127.0.0.1:1/x"


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """URL of a tmp DuckDB file the app is pointed at (empty until a test fills it)."""
    url = f"duckdb:///{tmp_path / 'app.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    return url


def open_data_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, key: str) -> pd.DataFrame:
    return at.get_by_key(key).dataframe[0].value


def test_empty_database_is_migrated_and_shows_a_friendly_empty_state(db_url):
    at = open_data_page()

    assert at.title[0].value == "Data"
    assert not at.error
    assert any("No data yet" in info.value and "cli.py seed" in info.value for info in at.info)
    assert not at.metric  # no wall of zeros
    assert at.file_uploader(key="data.upload").label == "Broker file"
    # The app brought the empty file up to the newest schema on start.
    counts = sample_data.row_counts(db_url)
    assert set(counts) == {"traders", "accounts", "kyc_events", "transactions", "trades", "sessions",
                           "portal_events"}
    assert sum(counts.values()) == 0


def test_loaded_data_shows_row_counts_per_table(db_url):
    sample_data.fill_sample_database(db_url)

    at = open_data_page()

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Traders"] == str(sample_data.TRADERS)
    assert metrics["Trades"] == str(sample_data.TRADES)
    assert metrics["Transactions"] == str(sample_data.TRANSACTIONS)
    summary = table(at, "data.summary").set_index("Table")
    assert summary.loc["Accounts", "Rows"] == sample_data.ACCOUNTS
    assert summary.loc["Sessions", "Rows"] == sample_data.SESSIONS
    assert summary.loc["Traders", "Freshness"] == ["stale"]
    assert summary.loc["KYC events", "Freshness"] == ["empty"]  # newest trader registered ~3 days ago
    assert not any("No data yet" in info.value for info in at.info)


def test_sidebar_names_the_connected_database(db_url):
    # Without switch_page: AppTest (1.67) drops the frame's sidebar elements after a page switch.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()

    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "DuckDB" in captions
    assert "app.duckdb" in captions


def test_unreachable_database_shows_one_clear_error_and_no_traceback(monkeypatch):
    monkeypatch.setenv("TRADERLENS_DB_URL", UNREACHABLE_URL)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()

    assert not at.exception
    assert len(at.error) == 1
    assert "127.0.0.1:1/x" in at.error[0].value and "nobody" not in at.error[0].value  # no credentials
    assert "Connection refused" in at.error[0].value or "refused" in at.error[0].value.lower()
    assert not at.title  # the page itself never ran


def test_quality_panel_lists_a_planted_problem(db_url):
    sample_data.fill_sample_database(db_url, closed_before_opened=True)

    at = open_data_page()

    problems = table(at, "data.checks")
    assert problems[["Check", "Table", "Problem rows"]].values.tolist() == [
        ["Closed before opened", "trades", 1]]
    assert problems["Status"].iloc[0] == ["error"]
    assert list(problems["Example ids"].iloc[0]) == [1000]
    assert any("1 error]" in md.value for md in at.markdown)  # the severity badge
    passed = table(at, "data.checks.passed")
    assert "Closed before opened" not in passed["Check"].tolist()
    assert len(passed) == len(data_health.quality_checks(datetime(2026, 1, 1))) - 1


def test_quality_panel_on_clean_data_has_no_problems(db_url):
    sample_data.fill_sample_database(db_url)

    at = open_data_page()

    assert any("checks passed" in s.value for s in at.success)
    with pytest.raises(KeyError):
        at.get_by_key("data.checks")  # no table of failing checks
    assert len(table(at, "data.checks.passed")) == len(data_health.quality_checks(datetime(2026, 1, 1)))


TRADERS_CSV = (
    b"external_id,registered_at,country,email\n"
    b"N1,2026-11-20T10:00:00,DE,n1@example.com\n"
    b"N2,2026-11-21T11:00:00,GB,n2@example.com\n"
)


def test_uploading_a_traders_csv_previews_then_imports_it(db_url):
    at = open_data_page()

    at.file_uploader(key="data.upload").set_value(("new_traders.csv", TRADERS_CSV, "text/csv")).run()
    assert not at.exception, at.exception
    assert any("Read as **Traders**" in md.value for md in at.markdown)
    assert table(at, "data.preview")["external_id"].tolist() == ["N1", "N2"]

    at.button(key="data.import").click().run()

    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Read 2 rows as `traders`; inserted 2 (2 traders)")
    assert {m.label: m.value for m in at.metric}["Traders"] == "2"  # caches were cleared
    assert table(at, "data.imports")["File"].tolist() == ["new_traders.csv"]
    assert sample_data.row_counts(db_url)["traders"] == 2

    # The uploader starts empty again (Streamlit dropped its copy of the file); the outcome stays.
    assert [u.value for u in at.file_uploader] == [None]
    with pytest.raises(KeyError):
        at.get_by_key("data.import")
    assert not list(Path(tempfile.gettempdir()).glob("traderlens-upload-*"))  # the temporary copy is gone

    at.file_uploader[0].set_value(("new_traders.csv", TRADERS_CSV, "text/csv")).run()
    at.button(key="data.import").click().run()  # the same file again writes nothing

    assert any("Every row was already loaded" in info.value for info in at.info)
    assert sample_data.row_counts(db_url)["traders"] == 2


def test_a_refused_import_keeps_the_file_for_another_try(db_url):
    at = open_data_page()
    sessions = b"trader_external_id,started_at,duration_s,surface\nN9,2026-11-20T10:00:00,60,web\n"

    at.file_uploader(key="data.upload").set_value(("sessions.csv", sessions, "text/csv")).run()
    at.button(key="data.import").click().run()

    assert "unknown trader" in at.error[0].value and "N9" in at.error[0].value
    assert at.file_uploader(key="data.upload").value is not None  # still there to import again

    at.checkbox(key="data.create_traders").check().run()
    at.button(key="data.import").click().run()

    assert at.success[0].value.startswith("Read 1 rows as `sessions`; inserted 2 (1 traders, 1 sessions)")
    assert sample_data.row_counts(db_url)["sessions"] == 1


def test_a_rejected_file_is_explained_in_plain_words(db_url):
    at = open_data_page()
    bad = b"external_id,registered_at,country,email\nN3,yesterday,DE,n3@example.com\n"

    at.selectbox(key="data.kind").select("traders").run()
    at.file_uploader(key="data.upload").set_value(("bad.csv", bad, "text/csv")).run()

    assert not at.exception, at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "**File:** bad\\.csv" in message  # the file's name and header are shown as text, not Markdown
    assert "**Row:** 2" in message
    assert "**Column:** registered\\_at" in message
    assert "not an ISO 8601" in message
    with pytest.raises(KeyError):
        at.get_by_key("data.import")  # nothing to import


def test_page_also_runs_on_its_own_without_the_frame(db_url):
    # Smoke tests (streamlit-app-action) run every pages/*.py as its own app.
    sample_data.fill_sample_database(db_url)

    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=60).run()

    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Traders"] == str(sample_data.TRADERS)


def test_an_import_while_another_one_runs_is_refused_in_plain_words(db_url, monkeypatch):
    import connectors.importers

    def busy(*args, **kwargs):
        raise ImportBusy(datetime(2026, 11, 30, 9, 15))

    monkeypatch.setattr(connectors.importers, "import_file", busy)  # the page imports it on each run
    at = open_data_page()
    at.file_uploader(key="data.upload").set_value(("new_traders.csv", TRADERS_CSV, "text/csv")).run()
    at.button(key="data.import").click().run()

    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "another import is running" in at.error[0].value and "try again when it finishes" in at.error[0].value
    assert at.file_uploader(key="data.upload").value is not None  # kept for the next try
