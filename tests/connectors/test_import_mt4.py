"""MT4 Statement HTML on DuckDB and PostgreSQL: closed orders become trades with SL/TP/stop-out
from the ticket's title, balance/credit rows become typed ledger entries by comment and sign,
cancelled pending orders and the unreconciled Summary are ignored, server time is shifted to UTC,
and broken statements are refused whole."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.errors import ImportRejected
from connectors.importers import detect_kind, import_file, preview_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STATEMENT = FIXTURES / "mt4" / "Statement_2109876.htm"
TEXT = STATEMENT.read_bytes().decode("cp1252")


def _line(text: str, needle: str) -> int:
    """Line number (1-based) of the first line holding ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def _known_account(engine: sa.Engine) -> None:
    """A-5001 is MT4 login 2109876 (EUR, 1:100) of trader T-1001."""
    for kind in ("traders", "accounts"):
        import_file(engine, FIXTURES / "csv" / f"{kind}.csv")


def test_statement_loads_trades_and_typed_balance_rows(engine, query_rows):
    _known_account(engine)
    result = import_file(engine, STATEMENT, trader="T-1001", server_utc_offset_hours=2)
    assert result.kind == "mt4-statement"
    # 6 closed orders, 9 balance/credit rows; the 2 cancelled pending orders are not records.
    assert result.inserted == {"traders": 0, "accounts": 0, "transactions": 9, "trades": 6}
    assert result.skipped == 1 and result.rows_read == 16

    trades = query_rows(engine, "SELECT external_id, symbol, asset_class, side, lots, opened_at, "
                           "closed_at, open_price, close_price, profit_usd, commission_usd, "
                           "swap_usd, close_reason FROM trades ORDER BY closed_at")
    assert [t[0] for t in trades] == [f"MT4:2109876:order:{n}" for n in (
        48212001, 48212250, 48212390, 48212391, 48212500, 48212700)]
    eurusd, xau, gbpjpy_part, gbpjpy_rest, us30, btc = trades
    assert eurusd[1:7] == ("EURUSD", "fx", "buy", 1.0, datetime(2024, 3, 1, 7, 15, 22),
                           datetime(2024, 3, 1, 12, 2, 10))
    assert eurusd[12] == "tp" and xau[12] == "sl" and us30[12] == "stop_out"
    assert {gbpjpy_part[12], gbpjpy_rest[12], btc[12]} == {"client"}
    assert gbpjpy_part[5] == gbpjpy_rest[5]                      # one order, partly closed
    assert (btc[7], btc[8]) == (72150.0, 71900.0)                # "72 150.00": space thousands
    assert btc[5] == datetime(2024, 3, 11, 8, 0)                 # HH:MM without seconds
    # EUR money converted at the reference rate (1.08), row by row.
    assert sum(t[9] for t in trades) == pytest.approx(-1520.46)
    assert xau[9] == -1348.50                                    # "-1 248.61" EUR
    assert sum(t[10] for t in trades) == pytest.approx(-10.48)   # commission + taxes
    assert sum(t[11] for t in trades) == pytest.approx(-15.39)

    ledger = query_rows(engine, "SELECT external_id, kind, amount, currency, amount_usd, comment "
                           "FROM transactions ORDER BY created_at")
    assert [(row[1], row[2]) for row in ledger] == [
        ("fee", -3.12),             # the statement starts with a financing charge, not a deposit
        ("deposit", 2000.0),
        ("bonus", 400.0),           # credit given
        ("withdrawal", 500.0),      # sign is in the kind
        ("adjustment", 15.0),
        ("adjustment", 100.0),      # "Transfer from …" is not a deposit
        ("fee", -1.40),             # "Swap"
        ("adjustment", 5.0),        # unrecognised positive comment: adjustment, not deposit
        ("bonus_cancel", 400.0),    # credit taken back
    ]
    assert {row[3] for row in ledger} == {"EUR"}
    assert ledger[1][4] == 2160.0
    # Everything belongs to the existing account and its trader.
    assert query_rows(engine, "SELECT DISTINCT a.external_id, t.external_id FROM trades x "
                         "JOIN accounts a ON a.account_id = x.account_id "
                         "JOIN traders t ON t.trader_id = x.trader_id") == [("A-5001", "T-1001")]


def test_statement_reimport_changes_nothing_and_finds_the_owner(engine, table_counts):
    _known_account(engine)
    first = import_file(engine, STATEMENT)          # no trader: the account's owner is used
    before = table_counts(engine)
    again = import_file(engine, STATEMENT, trader="T-1001")
    assert sum(again.inserted.values()) == 0
    assert again.skipped == again.rows_read == first.rows_read
    assert table_counts(engine) == {**before, "imports": before["imports"] + 1}


def test_server_time_is_taken_as_utc_by_default(engine, query_rows):
    import_file(engine, STATEMENT, create_missing_traders=True)
    assert query_rows(engine, "SELECT MIN(opened_at) FROM trades") == [(datetime(2024, 3, 1, 9, 15, 22),)]


def test_create_missing_traders_makes_platform_login_trader_and_account(engine, table_counts, query_rows):
    with pytest.raises(ImportRejected, match="--trader"):
        import_file(engine, STATEMENT)
    assert sum(table_counts(engine).values()) == 0
    result = import_file(engine, STATEMENT, create_missing_traders=True)
    assert result.inserted == {"traders": 1, "accounts": 1, "transactions": 9, "trades": 6}
    assert query_rows(engine, "SELECT t.external_id, t.registered_at, a.external_id, a.platform, "
                         "a.login, a.currency, a.leverage, a.opened_at FROM traders t "
                         "JOIN accounts a USING (trader_id)") == [
        ("MT4-2109876", datetime(2024, 3, 1), "MT4:2109876", "MT4", "2109876", "EUR", 100,
         datetime(2024, 3, 1))]


def test_a_newer_statement_refreshes_the_account_leverage(engine, tmp_path, query_rows):
    _known_account(engine)
    import_file(engine, STATEMENT)
    assert query_rows(engine, "SELECT leverage FROM accounts WHERE login = '2109876'") == [(100,)]
    newer = tmp_path / "Statement.htm"
    newer.write_bytes(TEXT.replace("Leverage: 1:100", "Leverage: 1:30").encode("cp1252"))
    result = import_file(engine, newer)
    assert sum(result.inserted.values()) == 0
    assert query_rows(engine, "SELECT leverage FROM accounts WHERE login = '2109876'") == [(30,)]


def test_detect_and_preview():
    assert detect_kind(STATEMENT) == "mt4-statement"
    kind, frame = preview_file(STATEMENT, rows=100)
    assert kind == "mt4-statement"
    assert len(frame) == 15
    assert frame.loc[frame["table"] == "trades", "symbol"].tolist() == [
        "EURUSD", "XAUUSD", "GBPJPY.M", "GBPJPY.M", "US30", "BTCUSD"]


def _replace(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new, 1)


MALFORMED = [
    ("no-currency", _replace("<td colspan=2><b>Currency: EUR</b></td>", ""),
     _line(TEXT, "Account: 2109876") - 1, "Currency", "states no Currency"),  # its <tr> line
    ("unknown-currency", _replace("Currency: EUR", "Currency: XYZ"), None, "currency",
     "'XYZ' has no reference rate"),
    ("no-closed-transactions", _replace("Closed Transactions:", "Closed Orders:"), None, None,
     "neither an MT4 Statement"),
    ("no-account-line", _replace("Account: 2109876", "Konto 2109876"), None, "Account",
     "no 'Account:' line"),
    ("missing-profit-column", _replace("<td>Swap</td><td>Profit</td>", "<td>Swap</td>"),
     _line(TEXT, '<tr align=center bgcolor="#C0C0C0">'), "Profit", "no 'Profit' column"),
    ("unknown-type", _replace("<td>buy</td><td class=mspt>1.00</td>",
                              "<td>buy market</td><td class=mspt>1.00</td>"),
     _line(TEXT, "48212001"), "Type", "not an MT4 order type"),
    ("bad-open-time", _replace("2024.03.04 10:30:05", "2024.13.04 10:30:05"),
     _line(TEXT, "48212250"), "Open Time", "not a valid date"),
    ("iso-time-in-mt4", _replace("2024.03.05 10:00:00", "2024-03-05T10:00:00"),
     _line(TEXT, "48212301"), "Open Time", "not a MetaTrader time"),
    ("bad-size", _replace("<td class=mspt>0.05</td>", "<td class=mspt>0,05</td>"),
     _line(TEXT, "48212700"), "Size", "not a number"),
    ("zero-size", _replace("<td class=mspt>2.00</td>", "<td class=mspt>0.00</td>"),
     _line(TEXT, "48212250"), "Size", "greater than 0"),
    ("closed-before-opened", _replace("2024.03.07 15:31:12", "2024.03.05 15:31:12"),
     _line(TEXT, "48212500"), "Close Time", "before the open time"),
    ("bad-close-price", _replace(">71 900.00<", ">n/a<"), _line(TEXT, "48212700"), "Price",
     "not a number"),
    ("balance-without-amount", _replace("<td class=mspt>2 000.00</td>", "<td></td>"),
     _line(TEXT, "48212301"), "Profit", "needs its amount"),
    ("conflicting-ticket", _replace(">48212560<", ">48212550<"), _line(TEXT, "48212560"),
     "Ticket", "appears again"),
]


@pytest.mark.parametrize(("content", "row", "column", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_statement_is_refused_whole(engine, tmp_path, content, row, column, words, table_counts):
    _known_account(engine)
    before = table_counts(engine)
    path = tmp_path / "statement.htm"
    path.write_bytes(content.encode("cp1252"))
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, trader="T-1001")
    assert (caught.value.row, caught.value.column) == (row, column), str(caught.value)
    assert words in str(caught.value)
    if row is not None:
        assert f"row {row}" in str(caught.value)
    if column is not None:
        assert f"column '{column}'" in str(caught.value)
    assert table_counts(engine) == before
