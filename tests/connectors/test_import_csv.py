"""CSV importers (traders, accounts, trades, transactions, kyc_events, sessions, portal_events) on
DuckDB and PostgreSQL: exact counts and sums, idempotent re-import, creating missing traders, and
malformed inputs that must be refused whole with the row and column named."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.errors import ImportRejected
from connectors.importers import detect_kind, import_file, preview_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
ORDER = ("traders", "accounts", "trades", "transactions", "kyc_events", "sessions", "portal_events")
ROWS = {"traders": 6, "accounts": 5, "trades": 8, "transactions": 8, "kyc_events": 5,
        "sessions": 6, "portal_events": 5}


def _scalar(engine: sa.Engine, sql: str, **params) -> object:
    """One value; NUMERIC sums come back as Decimal, compared here as floats."""
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql), params).scalar_one()
    return float(value) if isinstance(value, Decimal) else value


def _load_all(engine: sa.Engine, kinds: tuple[str, ...] = ORDER) -> None:
    for kind in kinds:
        import_file(engine, FIXTURES / f"{kind}.csv")


def test_every_csv_fixture_loads_with_exact_counts_and_sums(engine, table_counts):
    results = {kind: import_file(engine, FIXTURES / f"{kind}.csv") for kind in ORDER}
    for kind, result in results.items():
        assert result.kind == kind
        assert result.rows_read == ROWS[kind]
        assert result.inserted == {kind: ROWS[kind]}
        assert result.skipped == 0
    assert table_counts(engine) == {**ROWS, "imports": 7}

    # Times: an offset is converted to UTC, no offset means UTC, a date alone is midnight.
    assert _scalar(engine, "SELECT registered_at FROM traders WHERE external_id = 'T-1002'") \
        == datetime(2024, 1, 5, 12, 3)
    assert _scalar(engine, "SELECT registered_at FROM traders WHERE external_id = 'T-1003'") \
        == datetime(2024, 1, 7)
    assert _scalar(engine, "SELECT lead_at FROM traders WHERE external_id = 'T-1005'") \
        == datetime(2024, 2, 20, 8)
    # Case-insensitive enumerations and booleans are normalised.
    assert _scalar(engine, "SELECT acquisition_channel || '/' || kyc_status FROM traders "
                           "WHERE external_id = 'T-1002'") == "affiliate/submitted"
    assert _scalar(engine, "SELECT COUNT(*) FROM traders WHERE consent_email") == 3
    assert _scalar(engine, "SELECT country FROM traders WHERE external_id = 'T-1003'") == "GB"
    assert _scalar(engine, "SELECT last_name FROM traders WHERE external_id = 'T-1003'") \
        == "Smith, Jr."
    assert _scalar(engine, "SELECT leverage FROM accounts WHERE external_id = 'A-5001'") == 100
    assert _scalar(engine, "SELECT platform FROM accounts WHERE external_id = 'A-5002'") == "MT5"

    # Trades: sums, derived asset classes and notionals, account links.
    assert _scalar(engine, "SELECT SUM(profit_usd) FROM trades") == pytest.approx(357.25)
    assert _scalar(engine, "SELECT SUM(commission_usd) FROM trades") == pytest.approx(-14.60)
    assert _scalar(engine, "SELECT SUM(lots) FROM trades") == pytest.approx(14.65)
    with engine.connect() as conn:
        derived = dict(conn.execute(sa.text(
            "SELECT external_id, asset_class FROM trades")).all())
        notional = {k: float(v) for k, v in conn.execute(sa.text(
            "SELECT external_id, notional_usd FROM trades")).all()}
    assert derived == {"TR-1": "fx", "TR-2": "commodities", "TR-3": "indices", "TR-4": "crypto",
                       "TR-5": "fx", "TR-6": "fx", "TR-7": "stocks", "TR-8": "commodities"}
    assert notional["TR-1"] == pytest.approx(109_500.0)       # 1 lot × 100k × 1.0950
    assert notional["TR-2"] == pytest.approx(20_305.0)        # 0.1 × 100 oz × 2030.50
    assert notional["TR-3"] == pytest.approx(12_375.0)        # given in the file
    assert notional["TR-5"] == pytest.approx(37_426.2)        # 0.3 × 100k × 186.20 × JPY rate
    assert notional["TR-6"] == pytest.approx(54_673.5)        # quote GBP at 1.27
    assert notional["TR-8"] == pytest.approx(15_480.0)        # 0.2 × 1000 bbl × 77.40
    assert _scalar(engine, "SELECT COUNT(*) FROM trades WHERE account_id IS NULL") == 3

    # Transactions: approved deposits in USD, withdrawals, signed fee.
    assert _scalar(engine, "SELECT SUM(amount_usd) FROM transactions WHERE kind = 'deposit' "
                           "AND status = 'approved'") == pytest.approx(1741.50)
    assert _scalar(engine, "SELECT SUM(amount) FROM transactions WHERE kind = 'withdrawal'") \
        == pytest.approx(300.0)
    assert _scalar(engine, "SELECT amount_usd FROM transactions WHERE kind = 'fee'") \
        == pytest.approx(-12.70)
    assert _scalar(engine, "SELECT created_at FROM transactions WHERE external_id = 'P-9005'") \
        == datetime(2024, 1, 6, 6, 20)

    assert _scalar(engine, "SELECT SUM(duration_s) FROM sessions") == 42_965
    assert _scalar(engine, "SELECT COUNT(*) FROM sessions WHERE surface = 'mobile'") == 2
    assert _scalar(engine, "SELECT COUNT(*) FROM sessions WHERE external_id LIKE 'h:%'") == 5
    assert _scalar(engine, "SELECT reason FROM kyc_events WHERE status = 'rejected'") \
        == "document expired"
    assert _scalar(engine, "SELECT properties FROM portal_events WHERE event = "
                           "'promo_banner_clicked'") == '{"banner":"spring-bonus"}'
    assert _scalar(engine, "SELECT COUNT(*) FROM portal_events WHERE properties IS NULL") == 1
    # The import log holds every file with its hash and counts.
    assert _scalar(engine, "SELECT SUM(rows_inserted) FROM imports") == sum(ROWS.values())


def test_reimport_changes_nothing(engine, table_counts):
    _load_all(engine)
    before = table_counts(engine)
    for kind in ORDER:
        again = import_file(engine, FIXTURES / f"{kind}.csv")
        assert again.inserted == {kind: 0}
        assert again.skipped == again.rows_read == ROWS[kind]
    after = table_counts(engine)
    assert {k: v for k, v in after.items() if k != "imports"} == \
        {k: v for k, v in before.items() if k != "imports"}
    assert after["imports"] == before["imports"] + len(ORDER)


def test_identical_duplicate_rows_in_one_file_are_skipped(engine, tmp_path):
    _load_all(engine, ("traders",))
    text = (FIXTURES / "sessions.csv").read_text()
    lines = text.splitlines()
    path = tmp_path / "sessions.csv"
    path.write_text("\n".join([*lines, lines[1], lines[2]]) + "\n")
    result = import_file(engine, path)
    assert result.rows_read == 8
    assert result.inserted == {"sessions": 6}
    assert result.skipped == 2


def test_unknown_trader_is_refused_unless_creating_missing_traders(engine, table_counts):
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, FIXTURES / "sessions.csv")
    assert caught.value.row == 2 and caught.value.column == "trader_external_id"
    assert "T-1001" in str(caught.value)
    assert table_counts(engine)["sessions"] == 0

    result = import_file(engine, FIXTURES / "sessions.csv", create_missing_traders=True)
    assert result.inserted == {"traders": 4, "sessions": 6}
    with engine.connect() as conn:
        created = dict(conn.execute(sa.text(
            "SELECT external_id, registered_at FROM traders WHERE source = 'import'")).all())
        empty = conn.execute(sa.text("SELECT COUNT(*) FROM traders WHERE email IS NULL AND "
                                     "country IS NULL AND kyc_status = 'none'")).scalar_one()
    # registered_at is the earliest time seen for each trader in the file.
    assert created == {"T-1001": datetime(2024, 1, 3, 9, 15),
                       "T-1002": datetime(2024, 1, 6, 6, 10),
                       "T-1003": datetime(2024, 1, 9, 7, 50),
                       "T-1004": datetime(2024, 2, 12, 7, 45)}
    assert empty == 4
    # A later file for the same traders finds them and creates nobody.
    later = import_file(engine, FIXTURES / "kyc_events.csv", create_missing_traders=True)
    assert later.inserted == {"kyc_events": 5}


@pytest.mark.parametrize("kind", ORDER)
def test_detect_and_preview_need_no_database(kind):
    path = FIXTURES / f"{kind}.csv"
    assert detect_kind(path) == kind
    found, frame = preview_file(path, rows=3)
    assert found == kind
    assert len(frame) == 3
    assert "external_id" in frame.columns and "_row" not in frame.columns


def test_preview_shows_canonical_values():
    _, frame = preview_file(FIXTURES / "trades.csv")
    first = frame.iloc[1]
    assert first["side"] == "sell" and first["asset_class"] == "commodities"
    _, frame = preview_file(FIXTURES / "kyc_events.csv", file_name="upload-123.csv")
    assert frame["external_id"].str.startswith("h:").all()


# ---- malformed input: each is refused whole, naming the row and column ----------------------

TRADERS_HEAD = "external_id,registered_at,country,email,first_name,is_test,acquisition_channel," \
    "timezone\n"
OK_TRADER = "T-2001,2024-03-01T10:00:00Z,DE,a@example.de,Ann,false,organic,Europe/Berlin\n"
ACCOUNTS_HEAD = "external_id,trader_external_id,platform,login,currency,leverage,opened_at," \
    "is_demo\n"
OK_ACCOUNT = "A-9,T-1001,MT4,555001,USD,100,2024-03-01T10:00:00Z,false\n"
TRADES_HEAD = "external_id,trader_external_id,symbol,side,lots,opened_at,closed_at,open_price," \
    "close_price,profit_usd,account_external_id,close_reason\n"
OK_TRADE = "X-1,T-1001,EURUSD,buy,0.1,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,1.08,1.09,10,,\n"
TXN_HEAD = "external_id,trader_external_id,kind,status,amount,currency,amount_usd,created_at\n"
OK_TXN = "Y-1,T-1001,deposit,approved,100,EUR,108,2024-03-01T10:00:00Z\n"


def _trade(**changes: str) -> str:
    fields = dict(zip(TRADES_HEAD.strip().split(","), OK_TRADE.strip("\n").split(","),
                      strict=True))
    fields.update(changes)
    return ",".join(fields.values()) + "\n"


def _txn(**changes: str) -> str:
    fields = dict(zip(TXN_HEAD.strip().split(","), OK_TXN.strip().split(","), strict=True))
    fields.update(changes)
    return ",".join(fields.values()) + "\n"


def _trader(**changes: str) -> str:
    fields = dict(zip(TRADERS_HEAD.strip().split(","), OK_TRADER.strip().split(","), strict=True))
    fields.update(changes)
    return ",".join(fields.values()) + "\n"


# (id, kind given to import_file, file content, expected row, expected column, words in message)
MALFORMED: list[tuple[str, str, str | bytes, int | None, str | None, str]] = [
    ("empty-file", "auto", b"", None, None, "empty"),
    ("whitespace-only", "traders", b"  \n\n", None, None, "empty"),
    ("header-only", "traders", TRADERS_HEAD, None, None, "no data rows"),
    ("missing-required-column", "traders",
     "external_id,registered_at,country\nT-1,2024-01-01,DE\n", None, "email",
     "required column 'email' is missing"),
    ("unknown-kind", "payments", TRADERS_HEAD + OK_TRADER, None, None, "unknown kind 'payments'"),
    ("undetectable-header", "auto", "id,when,amount\n1,2024-01-01,5\n", None, None,
     "cannot tell which kind"),
    ("latin1-encoding", "traders",
     (TRADERS_HEAD + OK_TRADER + _trader(external_id="T-2002", first_name="Jürgen"))
     .encode("latin-1"), 3, None, "not UTF-8"),
    ("binary-file", "traders", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, None, None,
     "UTF-8"),
    ("bad-csv-quoting", "traders", TRADERS_HEAD + OK_TRADER + 'T-2002,"2024-01-01,DE\n', 3,
     None, "not valid CSV"),
    ("duplicate-header-column", "traders",
     "external_id,registered_at,country,email,country\nT-1,2024-01-01,DE,a@b.de,DE\n",
     None, "country", "appears twice"),
    ("too-many-values", "traders", TRADERS_HEAD + OK_TRADER + _trader().strip() + ",extra\n",
     3, None, "header has 8 columns"),
    ("too-few-values", "traders", TRADERS_HEAD + "T-2002,2024-01-01,DE\n", 2, None,
     "3 values"),
    ("unparseable-date", "traders", TRADERS_HEAD + _trader(registered_at="2024-13-45"), 2,
     "registered_at", "not an ISO 8601"),
    ("non-iso-date", "traders", TRADERS_HEAD + OK_TRADER + "\n" +
     _trader(external_id="T-2002", registered_at="03/01/2024"), 4, "registered_at", "ISO 8601"),
    ("date-out-of-range", "traders", TRADERS_HEAD + _trader(registered_at="2924-01-01"), 2,
     "registered_at", "outside 1970-2099"),
    ("bad-country", "traders", TRADERS_HEAD + _trader(country="XX"), 2, "country",
     "ISO 3166-1"),
    ("uk-is-not-iso", "traders", TRADERS_HEAD + _trader(country="UK"), 2, "country", "use GB"),
    ("bad-email", "traders", TRADERS_HEAD + _trader(email="anna.example.de"), 2, "email",
     "not an e-mail"),
    ("bad-boolean", "traders", TRADERS_HEAD + _trader(is_test="maybe"), 2, "is_test",
     "not a boolean"),
    ("bad-acquisition-channel", "traders", TRADERS_HEAD + _trader(acquisition_channel="tv"), 2,
     "acquisition_channel", "not one of organic"),
    ("bad-timezone", "traders", TRADERS_HEAD + _trader(timezone="Mars/Olympus"), 2, "timezone",
     "IANA"),
    ("name-too-long", "traders", TRADERS_HEAD + _trader(first_name="A" * 81), 2, "first_name",
     "at most 80"),
    ("empty-external-id", "traders", TRADERS_HEAD + _trader(external_id=""), 2, "external_id",
     "is empty"),
    ("no-registration-time", "traders", TRADERS_HEAD + _trader(registered_at=""), 2,
     "registered_at", "lead_at"),
    ("conflicting-duplicate", "traders", TRADERS_HEAD + OK_TRADER + _trader(email="b@example.de"),
     3, "external_id", "first at row 2"),
    ("bad-platform", "accounts", ACCOUNTS_HEAD + OK_ACCOUNT.replace("MT4", "MT6"), 2, "platform",
     "not one of MT4"),
    ("bad-leverage", "accounts", ACCOUNTS_HEAD + OK_ACCOUNT.replace(",100,", ",lots,"), 2,
     "leverage", "not a number"),
    ("account-unknown-trader", "accounts", ACCOUNTS_HEAD + OK_ACCOUNT +
     OK_ACCOUNT.replace("A-9", "A-10").replace("T-1001", "T-9999").replace("555001", "555002"),
     3, "trader_external_id", "unknown trader 'T-9999'"),
    ("login-already-taken", "accounts", ACCOUNTS_HEAD + OK_ACCOUNT.replace("555001", "2109876"),
     2, "login", "already account 'A-5001'"),
    ("lots-zero", "trades", TRADES_HEAD + _trade(lots="0"), 2, "lots", "greater than 0"),
    ("lots-negative", "trades", TRADES_HEAD + _trade(lots="-0.5"), 2, "lots", "greater than 0"),
    ("closed-before-opened", "trades", TRADES_HEAD + _trade(closed_at="2024-03-01T09:00:00Z"), 2,
     "closed_at", "before opened_at"),
    ("profit-nan", "trades", TRADES_HEAD + _trade(profit_usd="NaN"), 2, "profit_usd",
     "not a finite number"),
    ("price-inf", "trades", TRADES_HEAD + _trade(open_price="inf"), 2, "open_price",
     "not a finite number"),
    ("thousands-separator", "trades", TRADES_HEAD + _trade(profit_usd='"1,234.50"'), 2,
     "profit_usd", "not a number"),
    ("bad-side", "trades", TRADES_HEAD + _trade(side="long"), 2, "side", "not one of buy, sell"),
    ("bad-close-reason", "trades", TRADES_HEAD + _trade(close_reason="margin_call"), 2,
     "close_reason", "not one of client"),
    ("unknown-account", "trades", TRADES_HEAD + _trade(account_external_id="A-0000"), 2,
     "account_external_id", "unknown account"),
    ("someone-elses-account", "trades", TRADES_HEAD + _trade(account_external_id="A-5003"), 2,
     "account_external_id", "another trader"),
    ("trade-unknown-trader", "trades", TRADES_HEAD + OK_TRADE +
     _trade(external_id="X-2", trader_external_id="T-4040"), 3, "trader_external_id",
     "unknown trader 'T-4040'"),
    ("negative-deposit", "transactions", TXN_HEAD + _txn(amount="-100", amount_usd="-108"), 2,
     "amount", "sign is in kind"),
    ("zero-withdrawal-usd", "transactions", TXN_HEAD + _txn(kind="withdrawal", amount_usd="0"),
     2, "amount_usd", "greater than 0"),
    ("usd-sign-mismatch", "transactions", TXN_HEAD + _txn(kind="fee", amount="-5",
                                                          amount_usd="5"), 2,
     "amount_usd", "opposite sign"),
    ("bad-txn-kind", "transactions", TXN_HEAD + _txn(kind="payout"), 2, "kind",
     "not one of deposit"),
    ("bad-txn-status", "transactions", TXN_HEAD + _txn(status="done"), 2, "status",
     "not one of approved"),
    ("bad-currency", "transactions", TXN_HEAD + _txn(currency="EURO"), 2, "currency",
     "three-letter"),
    ("money-too-large", "transactions", TXN_HEAD + _txn(amount="1e20"), 2, "amount",
     "too large"),
    ("bad-kyc-status", "kyc_events", "trader_external_id,status,occurred_at\n"
     "T-1001,submitted,2024-01-01T00:00:00Z\nT-1001,pending,2024-01-02T00:00:00Z\n", 3,
     "status", "not one of submitted"),
    ("negative-duration", "sessions", "trader_external_id,started_at,duration_s,surface\n"
     "T-1001,2024-01-01T00:00:00Z,-5,web\n", 2, "duration_s", "0 or more"),
    ("fractional-duration", "sessions", "trader_external_id,started_at,duration_s,surface\n"
     "T-1001,2024-01-01T00:00:00Z,12.5,web\n", 2, "duration_s", "whole number"),
    ("bad-surface", "sessions", "trader_external_id,started_at,duration_s,surface\n"
     "T-1001,2024-01-01T00:00:00Z,5,tv\n", 2, "surface", "not one of web"),
    ("core-event-name", "portal_events", "trader_external_id,event,occurred_at\n"
     "T-1001,Deposit,2024-01-01T00:00:00Z\n", 2, "event", "core event name"),
    ("segment-event-name", "portal_events", "trader_external_id,event,occurred_at\n"
     "T-1001,Segment:VIP,2024-01-01T00:00:00Z\n", 2, "event", "entering a saved segment"),
    ("properties-not-object", "portal_events", "trader_external_id,event,occurred_at,properties\n"
     'T-1001,page_view,2024-01-01T00:00:00Z,"[1, 2]"\n', 2, "properties", "JSON object"),
    ("properties-bad-json", "portal_events", "trader_external_id,event,occurred_at,properties\n"
     'T-1001,page_view,2024-01-01T00:00:00Z,"{page: 1"\n', 2, "properties", "not valid JSON"),
    ("properties-nan", "portal_events", "trader_external_id,event,occurred_at,properties\n"
     'T-1001,page_view,2024-01-01T00:00:00Z,"{""x"": NaN}"\n', 2, "properties", "NaN"),
]


@pytest.mark.parametrize(("kind", "content", "row", "column", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_csv_is_refused_whole(engine, tmp_path, kind, content, row, column, words, table_counts):
    _load_all(engine, ("traders", "accounts"))
    before = table_counts(engine)
    path = tmp_path / "upload.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, kind=kind, file_name="bad.csv")
    error = caught.value
    assert (error.row, error.column) == (row, column), str(error)
    assert words in str(error)
    assert str(error).startswith("bad.csv")
    if row is not None:
        assert f"row {row}" in str(error)
    if column is not None:
        assert f"column '{column}'" in str(error)
    assert table_counts(engine) == before


def test_a_late_error_rolls_back_everything_already_written(engine, tmp_path, table_counts):
    """Traders created for row 2 are rolled back when row 3 names an unknown account: the file
    loads whole or not at all."""
    _load_all(engine, ("traders", "accounts"))
    before = table_counts(engine)
    path = tmp_path / "trades.csv"
    path.write_text(TRADES_HEAD + _trade(trader_external_id="T-7777")
                    + _trade(external_id="X-2", account_external_id="A-4040"))
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, create_missing_traders=True)
    assert (caught.value.row, caught.value.column) == (3, "account_external_id")
    assert table_counts(engine) == before
