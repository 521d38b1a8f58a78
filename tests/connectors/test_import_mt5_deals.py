"""MT5 deal exports (history_deals_get as CSV) on DuckDB and PostgreSQL: deals paired into trades
by position_id (partial closes, a reversal, SL/TP/stop-out), balance deals typed, server time
converted, the account found or created, and malformed exports refused whole."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.errors import ImportRejected
from connectors.importers import detect_kind, import_file, preview_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEALS = FIXTURES / "mt5" / "deals_70011223.csv"


def _known_account(engine: sa.Engine) -> None:
    """Traders and accounts from the CSV fixtures: A-5002 is MT5 login 70011223 (USD) of T-1001."""
    for kind in ("traders", "accounts"):
        import_file(engine, FIXTURES / "csv" / f"{kind}.csv")


def test_deals_become_trades_and_ledger_entries(engine, query_rows):
    _known_account(engine)
    result = import_file(engine, DEALS, server_utc_offset_hours=2)
    assert result.kind == "mt5-deals"
    assert result.inserted == {"traders": 0, "accounts": 0, "transactions": 5, "trades": 6}
    assert result.skipped == 1          # the account was already there
    assert result.rows_read == 12       # 6 trades + 5 balance operations + the account

    trades = query_rows(engine, "SELECT t.external_id, side, lots, t.opened_at, closed_at, open_price, "
                           "close_price, profit_usd, commission_usd, swap_usd, close_reason, "
                           "channel, a.external_id, tr.external_id FROM trades t "
                           "JOIN accounts a USING (account_id) "
                           "JOIN traders tr ON tr.trader_id = t.trader_id ORDER BY closed_at")
    assert [t[0] for t in trades] == [f"MT5:70011223:deal:3010001{n}"
                                      for n in ("03", "05", "06", "09", "10", "12")]
    assert {(t[12], t[13]) for t in trades} == {("A-5002", "T-1001")}
    eurusd, xau_part, xau_sl, us500_close, us500_reversed, gbpusd = trades
    # Server time GMT+2 → UTC; commission includes the opening deal's.
    assert eurusd[1:5] == ("buy", 0.5, datetime(2024, 3, 4, 7, 15, 7),
                           datetime(2024, 3, 4, 9, 42, 55))
    assert eurusd[8] == -3.5 and eurusd[10:12] == ("tp", "desktop")
    # A partial close takes its share of the entry commission; both halves open at the same deal.
    assert xau_part[1:4] == ("sell", 0.1, datetime(2024, 3, 5, 6, 30))
    assert xau_part[8] == -1.0 and xau_sl[3] == xau_part[3]
    assert xau_sl[9:11] == (-1.2, "sl")
    # The in/out deal closes 1 lot and opens 2 the other way, closed by the next deal.
    assert us500_close[1:3] == ("buy", 1.0) and us500_close[7] == -11.2
    assert us500_reversed[1:3] == ("sell", 2.0) and us500_reversed[5] == 4990.0
    assert us500_reversed[3] == us500_close[4]
    assert gbpusd[10:12] == ("stop_out", "expert")
    assert sum(t[7] for t in trades) == pytest.approx(-352.2)
    assert sum(t[8] for t in trades) == pytest.approx(-12.5)

    ledger = query_rows(engine, "SELECT kind, amount, currency, amount_usd, status, created_at "
                           "FROM transactions ORDER BY created_at")
    assert [row[:4] for row in ledger] == [
        ("deposit", 2000.0, "USD", 2000.0), ("bonus", 100.0, "USD", 100.0),
        ("withdrawal", 500.0, "USD", 500.0), ("ib_commission", 12.4, "USD", 12.4),
        ("fee", -25.0, "USD", -25.0)]
    assert {row[4] for row in ledger} == {"approved"}
    assert ledger[0][5] == datetime(2024, 3, 4, 7, 0)
    # The known account keeps its opened_at (earlier than the export) and its trader.
    assert query_rows(engine, "SELECT opened_at FROM accounts WHERE external_id = 'A-5002'") == \
        [(datetime(2024, 2, 1, 8, 0),)]


def test_reimport_of_deals_changes_nothing(engine, table_counts):
    _known_account(engine)
    first = import_file(engine, DEALS)
    before = table_counts(engine)
    again = import_file(engine, DEALS)
    assert sum(again.inserted.values()) == 0
    assert again.skipped == again.rows_read == first.rows_read == 12
    after = table_counts(engine)
    assert after == {**before, "imports": before["imports"] + 1}


def test_unknown_login_needs_a_trader(engine, table_counts):
    before = table_counts(engine)
    with pytest.raises(ImportRejected, match="--trader"):
        import_file(engine, DEALS)
    assert table_counts(engine) == before


def test_create_missing_traders_creates_platform_login_trader_and_account(engine, tmp_path, query_rows):
    lines = DEALS.read_text().splitlines()
    path = tmp_path / "history.csv"     # no login in the name: the login column says it
    path.write_text("\n".join([lines[0] + ",login,currency",
                               *(line + ",70011223,EUR" for line in lines[1:])]) + "\n")
    result = import_file(engine, path, create_missing_traders=True)
    assert result.inserted == {"traders": 1, "accounts": 1, "transactions": 5, "trades": 6}
    assert query_rows(engine, "SELECT t.external_id, t.registered_at, t.source, a.external_id, "
                         "a.currency, a.opened_at FROM traders t JOIN accounts a "
                         "USING (trader_id)") == [
        ("MT5-70011223", datetime(2024, 3, 4, 9), "import", "MT5:70011223", "EUR",
         datetime(2024, 3, 4, 9))]
    # Money stays in EUR; USD uses the static reference rate (1 EUR = 1.08 USD).
    assert query_rows(engine, "SELECT SUM(profit_usd) FROM trades") == [(pytest.approx(-380.38),)]
    assert query_rows(engine, "SELECT amount, amount_usd FROM transactions WHERE kind = 'deposit'") \
        == [(2000.0, 2160.0)]


def test_named_trader_is_created_on_request_and_owns_the_account(engine):
    _known_account(engine)
    with pytest.raises(ImportRejected, match="belongs to trader 'T-1001', not 'T-1002'"):
        import_file(engine, DEALS, trader="T-1002")
    with pytest.raises(ImportRejected, match="trader 'NEW-1' does not exist"):
        import_file(engine, DEALS, trader="NEW-1")
    result = import_file(engine, DEALS, trader="T-1001")
    assert result.inserted["trades"] == 6


def test_detect_and_preview():
    assert detect_kind(DEALS) == "mt5-deals"
    kind, frame = preview_file(DEALS, rows=50)
    assert kind == "mt5-deals"
    assert list(frame["table"]).count("trades") == 6
    assert frame["time"].is_monotonic_increasing


HEAD = DEALS.read_text().splitlines()[0]
BODY = DEALS.read_text().splitlines()[1:]


def _edit(line_no: int, column: str, value: str) -> str:
    """The fixture with one cell changed (line_no counts the header as 1)."""
    names = HEAD.split(",")
    lines = [HEAD, *BODY]
    cells = lines[line_no - 1].split(",")
    cells[names.index(column)] = value
    lines[line_no - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


MALFORMED = [
    ("missing-position-id", "\n".join([HEAD.replace("position_id", "pos"), *BODY]), None,
     "position_id", "required column 'position_id'"),
    ("unknown-deal-type", _edit(3, "type", "99"), 3, "type", "not a known deal type"),
    ("unknown-entry", _edit(4, "entry", "7"), 4, "entry", "not a known entry"),
    ("zero-volume", _edit(3, "volume", "0"), 3, "volume", "greater than 0"),
    ("bad-price", _edit(3, "price", "n/a"), 3, "price", "not a number"),
    ("bad-profit", _edit(4, "profit", "1e999"), 4, "profit", "finite"),
    ("bad-time", _edit(2, "time", "yesterday"), 2, "time", "ISO 8601"),
    ("empty-ticket", _edit(5, "ticket", ""), 5, "ticket", "not a ticket number"),
    ("close-without-open", "\n".join([HEAD, *BODY[:1], *BODY[2:]]), 3, "position_id",
     "no opening deal"),
    ("conflicting-ticket", "\n".join([HEAD, *BODY, BODY[2].replace("150.0", "151.0")]), 19,
     "ticket", "appears again"),
]


@pytest.mark.parametrize(("content", "row", "column", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_deals_are_refused_whole(engine, tmp_path, content, row, column, words, table_counts):
    _known_account(engine)
    before = table_counts(engine)
    path = tmp_path / "deals_70011223.csv"
    path.write_text(content)
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, kind="mt5-deals")
    assert (caught.value.row, caught.value.column) == (row, column), str(caught.value)
    assert words in str(caught.value)
    if row is not None:
        assert f"row {row}" in str(caught.value)
    if column is not None:
        assert f"column '{column}'" in str(caught.value)
    assert table_counts(engine) == before


@pytest.mark.parametrize(("name", "extra", "column", "words"), [
    ("deals.csv", None, "login", "cannot tell which MT5 login"),
    ("deals_70011223_20240301.csv", ("login", ["70011223", "70011224"]), "login",
     "one account per file"),
    ("deals_70011223.csv", ("currency", ["XYZ", "XYZ"]), "currency", "'XYZ' has no reference"),
])
def test_deals_without_a_usable_account_are_refused(engine, tmp_path, name, extra, column, words, table_counts):
    lines = DEALS.read_text().splitlines()
    if extra is not None:
        label, values = extra
        lines = [lines[0] + f",{label}",
                 *(line + f",{values[i % 2]}" for i, line in enumerate(lines[1:]))]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, create_missing_traders=True)
    assert caught.value.column == column
    assert words in str(caught.value)
    assert sum(table_counts(engine).values()) == 0
