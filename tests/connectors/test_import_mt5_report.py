"""MT5 Trade History Report (HTML in UTF-16LE with BOM, and XLSX) on DuckDB and PostgreSQL:
deals paired into trades through the Positions section (hedged positions, a position opened
before the report, close-by, stop-out), FIFO without it, balance/credit deals typed, the two
formats and the deals CSV deduplicating against each other, and broken reports refused whole."""

from __future__ import annotations

import io
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from connectors.errors import ImportRejected
from connectors.importers import detect_kind, import_file, preview_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HTML = FIXTURES / "mt5" / "ReportHistory-70011987.html"
XLSX = FIXTURES / "mt5" / "ReportHistory-70011987.xlsx"
TEXT = HTML.read_bytes().decode("utf-16")
PRICE = partial(pytest.approx, rel=1e-12)  # prices are DOUBLE on both backends
TRADES = [f"MT5:70011987:deal:{n}" for n in (5100001, 5100005, 5100006, 5100010, 5100011,
                                             5100013)]


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def _utf16(text: str) -> bytes:
    return b"\xff\xfe" + text.encode("utf-16-le")


def _known_account(engine: sa.Engine) -> None:
    """A-5003 is MT5 login 70011987 (ZAR) of trader T-1002."""
    for kind in ("traders", "accounts"):
        import_file(engine, FIXTURES / "csv" / f"{kind}.csv")


def test_html_report_pairs_deals_through_positions(engine, query_rows):
    _known_account(engine)
    result = import_file(engine, HTML)
    assert result.kind == "mt5-report"
    assert result.inserted == {"traders": 0, "accounts": 0, "transactions": 7, "trades": 6}
    assert result.skipped == 1 and result.rows_read == 14

    trades = query_rows(engine, "SELECT t.external_id, symbol, side, lots, t.opened_at, closed_at, "
                           "open_price, close_price, profit_usd, commission_usd, close_reason, "
                           "a.external_id FROM trades t JOIN accounts a USING (account_id) "
                           "ORDER BY closed_at, t.external_id")
    assert [t[0] for t in trades] == TRADES
    assert {t[11] for t in trades} == {"A-5003"}
    eurusd, xau_small, xau_big, us500_sell, us500_buy, gbpusd = trades
    # Opened before the report starts: the Positions section knows when and where.
    assert eurusd[2:6] == ("buy", 0.2, datetime(2024, 2, 27, 10, 5), datetime(2024, 3, 1, 8, 0, 12))
    assert eurusd[6] == PRICE(1.0801)
    # Two hedged XAUUSD positions: the 0.10 close belongs to the second one (Positions), not
    # to the older one FIFO would pick.
    assert xau_small[3:7:3] == PRICE((0.1, 2083.9))
    assert xau_small[4] == datetime(2024, 3, 4, 10, 2, 30)
    assert xau_big[3:7:3] == PRICE((0.3, 2083.1))
    assert xau_small[9] == -0.76                     # 7 + 7 ZAR of commission (in and out)
    # Close-by: each "out by" deal closes one of the two opposite positions.
    assert us500_sell[2:4] == ("sell", 1.0) and us500_sell[6] == PRICE(5120.5)
    assert us500_buy[2:4] == ("buy", 1.0) and us500_buy[6] == PRICE(5121.3)
    assert (eurusd[10], xau_big[10], gbpusd[10], us500_buy[10]) == \
        ("tp", "tp", "stop_out", "client")
    # ZAR converted at the reference rate (0.054), row by row; the Results block says 99 999.99.
    assert sum(t[8] for t in trades) == pytest.approx(491.75)

    ledger = query_rows(engine, "SELECT kind, amount, currency, amount_usd FROM transactions "
                           "ORDER BY created_at")
    assert ledger == [("deposit", 5000.0, "ZAR", 270.0), ("bonus", 1000.0, "ZAR", 54.0),
                      ("withdrawal", 2500.0, "ZAR", 135.0), ("fee", -12.5, "ZAR", -0.68),
                      ("bonus_cancel", 1000.0, "ZAR", 54.0), ("deposit", 300.0, "ZAR", 16.2),
                      ("adjustment", 75.0, "ZAR", 4.05)]


def test_xlsx_report_gives_the_same_records_and_both_dedupe(engine, table_counts, query_rows):
    _known_account(engine)
    first = import_file(engine, XLSX)
    assert first.kind == "mt5-report"
    assert first.inserted == {"traders": 0, "accounts": 0, "transactions": 7, "trades": 6}
    assert query_rows(engine, "SELECT SUM(profit_usd), SUM(lots) FROM trades") == [(491.75, 3.1)]
    before = table_counts(engine)
    # The same report as HTML, and the XLSX again: nothing new.
    for path in (HTML, XLSX):
        again = import_file(engine, path)
        assert sum(again.inserted.values()) == 0 and again.skipped == again.rows_read == 14
    assert table_counts(engine) == {**before, "imports": before["imports"] + 2}


def test_deals_csv_of_the_same_account_dedupes_against_the_report(engine, tmp_path):
    _known_account(engine)
    import_file(engine, HTML)
    path = tmp_path / "deals_70011987.csv"
    path.write_text(
        "ticket,order,time,type,entry,position_id,reason,volume,price,commission,swap,profit,"
        "fee,symbol,comment\n"
        "5100003,6100003,1709546405,0,0,6100003,0,0.3,2083.1,-21,0,0,0,XAUUSD,\n"
        "5100004,6100004,1709546550,0,0,6100004,0,0.1,2083.9,-7,0,0,0,XAUUSD,\n"
        "5100005,6100005,1709565600,1,1,6100004,0,0.1,2091.4,-7,0,1389.75,0,XAUUSD,\n"
        "5100006,6100006,1709629800,1,1,6100003,4,0.3,2110.0,-21,-48.3,14944.44,0,XAUUSD,"
        "[tp 2110.00]\n")
    result = import_file(engine, path)
    assert result.inserted == {"traders": 0, "accounts": 0, "trades": 0}
    # The deals export names how each position was opened or closed (its reason column), which the
    # report does not: the two positions gain their channel, the account is unchanged.
    assert result.updated == {"trades": 2} and result.changed_fields == {"trades.channel": 2}
    assert result.skipped == result.unchanged == 1


def test_report_times_shift_by_the_server_offset(engine, query_rows):
    import_file(engine, HTML, create_missing_traders=True, server_utc_offset_hours=2)
    assert query_rows(engine, "SELECT closed_at FROM trades WHERE external_id = "
                         "'MT5:70011987:deal:5100001'") == [(datetime(2024, 3, 1, 6, 0, 12),)]
    assert query_rows(engine, "SELECT t.external_id, a.server, a.is_demo, a.currency FROM traders t "
                         "JOIN accounts a USING (trader_id)") == [
        ("MT5-70011987", "Broker-MT5-Live", False, "ZAR")]


def _without_positions(text: str) -> str:
    start = text.index('<tr align="center">\r\n  <th colspan="14" style="height: 25px">'
                       '<div style="font: 10pt Tahoma"><b>Positions</b>')
    end = text.index('<tr align="center">\r\n  <th colspan="14" style="height: 25px">'
                     '<div style="font: 10pt Tahoma"><b>Orders</b>')
    return text[:start] + text[end:]


def test_without_positions_closing_deals_pair_first_in_first_out(engine, tmp_path, query_rows):
    text = _without_positions(TEXT)
    # The first deal closes a position opened before the report: with no Positions section
    # nothing says where it opened, so the report is refused...
    path = tmp_path / "report.html"
    path.write_bytes(_utf16(text))
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path, create_missing_traders=True)
    assert (caught.value.row, caught.value.column) == (_line(text, ">5100001<"), "Deal")
    assert "no opening deal" in str(caught.value)
    # ...and without that deal, the XAUUSD closes take the oldest open lots first.
    lines = [line for line in text.split("\r\n") if ">5100001<" not in line]
    path.write_bytes(_utf16("\r\n".join(lines)))
    import_file(engine, path, create_missing_traders=True)
    weighted_open = pytest.approx((0.3, 2083.36666667), rel=1e-9)  # volume-weighted over the opening deals
    assert query_rows(engine, "SELECT lots, open_price FROM trades WHERE symbol = 'XAUUSD' "
                         "ORDER BY closed_at") == [PRICE((0.1, 2083.1)), weighted_open]


def test_detect_and_preview_both_formats(tmp_path):
    assert detect_kind(HTML) == detect_kind(XLSX) == "mt5-report"
    _, html = preview_file(HTML, rows=50)
    _, xlsx = preview_file(XLSX, rows=50)
    assert html.equals(xlsx)
    assert len(html) == 13
    # A report re-saved as UTF-8 without a BOM reads the same.
    utf8 = tmp_path / "ReportHistory.html"
    utf8.write_text(TEXT, encoding="utf-8")
    assert preview_file(utf8, rows=50)[1].equals(html)


def _edited(old: str, new: str) -> bytes:
    assert old in TEXT, old
    return _utf16(TEXT.replace(old, new, 1))


def _workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


DEALS_HEADER_LINE = _line(TEXT, "<td nowrap><b>Direction</b>")
EURUSD_POSITION = next(line for line in TEXT.split("\r\n") if ">6000990<" in line)
MALFORMED = [
    ("no-account-line", "html", _edited("Account:", "Konto:"), None, "Account",
     "no Account line"),
    ("account-without-currency", "html", _edited("(ZAR, Broker-MT5-Live", "(Broker-MT5-Live"),
     _line(TEXT, "Account:") - 1, "Account", "states no currency"),
    ("unknown-currency", "html", _edited("(ZAR,", "(XXX,"), None, "currency",
     "'XXX' has no reference rate"),
    ("no-deals-section", "html", _edited("<b>Deals</b>", "<b>Trades</b>"), None, None,
     "no Deals section"),
    ("deals-without-direction", "html", _edited("<b>Direction</b>", "<b>Dir</b>"),
     DEALS_HEADER_LINE - 1, "Direction", "no 'Direction' column"),
    ("unknown-deal-type", "html", _edited("<td>5100008</td><td>US500</td><td>sell</td>",
                                          "<td>5100008</td><td>US500</td><td>sell stop</td>"),
     _line(TEXT, ">5100008<"), "Type", "not a deal type"),
    ("unknown-direction", "html", _edited("<td>sell</td><td>in</td>",
                                          "<td>sell</td><td>sideways</td>"),
     _line(TEXT, ">5100008<"), "Direction", "not in, out"),
    ("bad-volume", "html", _edited("<td>out</td><td>0.20</td>", "<td>out</td><td>0,20</td>"),
     _line(TEXT, ">5100001<"), "Volume", "not a number"),
    ("bad-deal-time", "html", _edited("2024.03.12 16:30:00</td><td>5100013",
                                      "2024.03.32 16:30:00</td><td>5100013"),
     _line(TEXT, ">5100013<"), "Time", "not a valid date"),
    ("bad-profit", "html", _edited("<td>-8 333.33</td><td>33 870.34</td>",
                                   "<td>-8 333,33</td><td>33 870.34</td>"),
     _line(TEXT, ">5100013<"), "Profit", "not a number"),
    ("bad-position-time", "html", _edited("2024.02.27 10:05:00", "27.02.2024 10:05"),
     _line(TEXT, ">6000990<"), "Time", "not a MetaTrader time"),
    ("close-without-open", "html", _edited(EURUSD_POSITION + "\r\n", ""),
     _line(TEXT, ">5100001<") - 1, "Deal", "no opening deal"),
    ("conflicting-deal", "html", _edited("<td>5100015</td>", "<td>5100014</td>"),
     _line(TEXT, ">5100015<"), "Deal", "appears again"),
    ("workbook-not-a-report", "xlsx", _workbook([["Login", "Profit"], [70011987, 12.5]]), None,
     None, "not an MT5 Trade History Report"),
    ("corrupt-workbook", "xlsx", b"PK\x03\x04" + b"\x00garbage" * 50, None, None,
     "not a readable XLSX"),
    ("html-neither-report", "html", _utf16("<html><body><table><tr><td>Hello</td></tr>"
                                           "</table></body></html>"), None, None,
     "neither an MT4 Statement"),
]


@pytest.mark.parametrize(("suffix", "content", "row", "column", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_report_is_refused_whole(engine, tmp_path, suffix, content, row, column,
                                           words, table_counts):
    _known_account(engine)
    before = table_counts(engine)
    path = tmp_path / f"ReportHistory.{suffix}"
    path.write_bytes(content)
    with pytest.raises(ImportRejected) as caught:
        import_file(engine, path)
    assert (caught.value.row, caught.value.column) == (row, column), str(caught.value)
    assert words in str(caught.value)
    if row is not None:
        assert f"row {row}" in str(caught.value)
    if column is not None:
        assert f"column '{column}'" in str(caught.value)
    assert table_counts(engine) == before
