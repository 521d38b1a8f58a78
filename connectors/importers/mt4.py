"""MetaTrader 4: the terminal's "Statement" / "Detailed Statement" HTML export.

Only the "Closed Transactions:" table is read. Its rows are closed orders (buy/sell), balance
and credit operations (their cells collapsed into ticket, time, type, comment, amount) and
cancelled pending orders (last cells collapsed into "cancelled"), which are skipped. The ticket
cell's ``title`` carries the order comment: ``[sl]``, ``[tp]``, ``so: …`` give the close reason.
Open Trades, Working Orders and the Summary block are not read: the summary is not trusted
(statements are edited, and periods start after the first deposit), totals come from the rows.
"""

from __future__ import annotations

import re

from connectors.errors import ImportRejected
from connectors.importers.batch import AccountHeader, Batch
from connectors.importers.fields import (
    BadValue,
    parse_lots,
    parse_money,
    parse_mt_time,
    parse_price,
)
from connectors.importers.source import GridRow, decode_html, html_grid, named_columns
from connectors.importers.terminal import (
    BalanceOp,
    ClosedTrade,
    balance_kind,
    build_batch,
    close_reason_from_comment,
    credit_kind,
)

PENDING_TYPES = frozenset({"buy limit", "sell limit", "buy stop", "sell stop"})
CANCELLED_WORDS = frozenset({"cancelled", "canceled", "deleted", "expired"})
# Sections after Closed Transactions; reaching one ends the table.
LATER_SECTIONS = ("Open Trades:", "Working Orders:", "Summary:", "Details:")
REQUIRED = ("Ticket", "Open Time", "Type", "Size", "Item", "Price", "Close Time", "Price 2",
            "Commission", "Swap", "Profit")

_LOGIN = re.compile(r"(?:Account|A/C No)\s*:\s*(\d+)", re.IGNORECASE)
_NAME = re.compile(r"Name\s*:\s*(.+)", re.IGNORECASE)
_CURRENCY = re.compile(r"Currency\s*:\s*([A-Za-z]{3})\b", re.IGNORECASE)
_LEVERAGE = re.compile(r"Leverage\s*:\s*1\s*:\s*(\d+)", re.IGNORECASE)


def _header(grid: list[GridRow], name: str) -> AccountHeader:
    """Account, Name, Currency and Leverage from the statement's first rows."""
    for row in grid[:10]:
        login = next((m for c in row.cells if (m := _LOGIN.search(c))), None)
        if login is None:
            continue
        found: dict[str, str] = {}
        for cell in row.cells:
            for key, pattern in (("name", _NAME), ("currency", _CURRENCY),
                                 ("leverage", _LEVERAGE)):
                if key not in found and (match := pattern.search(cell)):
                    found[key] = match.group(1).strip()
        if "currency" not in found:
            raise ImportRejected(name, "the statement header states no Currency; every amount "
                                 "is in it", row=row.line, column="Currency")
        return AccountHeader(
            platform="MT4", login=login.group(1), currency=found["currency"].upper(),
            leverage=int(found["leverage"]) if "leverage" in found else None, server=None,
            is_demo=None, holder=found.get("name"))
    raise ImportRejected(name, "the statement has no 'Account:' line in its header",
                         column="Account")


def _closed_rows(grid: list[GridRow], name: str) -> tuple[GridRow, list[GridRow]]:
    """The Closed Transactions column header and the rows under it."""
    start = next((i for i, row in enumerate(grid)
                  if row.text().startswith("Closed Transactions")), None)
    if start is None or start + 1 >= len(grid):
        raise ImportRejected(name, "the statement has no 'Closed Transactions:' table")
    header = grid[start + 1]
    rows = []
    for row in grid[start + 2:]:
        if row.text().startswith(LATER_SECTIONS):
            break
        rows.append(row)
    return header, rows


def parse_statement(data: bytes, name: str, offset_hours: float = 0.0) -> Batch:
    """An MT4 Statement (HTML, any encoding its <meta> declares) as trades and transactions.

    Times are server time; ``offset_hours`` is the server's UTC offset (0 = taken as UTC).
    """
    grid = html_grid(decode_html(data, name), name)
    header = _header(grid, name)
    column_row, rows = _closed_rows(grid, name)
    columns = named_columns(column_row)
    for column in REQUIRED:
        if column not in columns:
            shown = "Price" if column == "Price 2" else column
            raise ImportRejected(name, f"the Closed Transactions table has no '{shown}' column",
                                 row=column_row.line, column=shown)
    trades: list[ClosedTrade] = []
    balances: list[BalanceOp] = []
    for row in rows:
        ticket = _cell(row, columns, "Ticket")
        if not ticket.isdigit():
            continue  # the totals and "Closed P/L" rows
        kind = _cell(row, columns, "Type").lower()
        if kind in {"balance", "credit"}:
            balances.append(_balance(row, columns, kind, name, offset_hours))
        elif kind in {"buy", "sell"}:
            if not CANCELLED_WORDS & {c.lower() for c in row.cells}:
                trades.append(_trade(row, columns, kind, name, offset_hours))
        elif kind not in PENDING_TYPES:  # a pending order here never filled: not a trade
            raise ImportRejected(name, f"'{kind}' is not an MT4 order type", row=row.line,
                                 column="Type")
    return build_batch(name, "mt4-statement", header, trades, balances, ticket_column="Ticket")


def _cell(row: GridRow, columns: dict[str, int], column: str) -> str:
    index = columns.get(column)
    return row.cells[index] if index is not None and index < len(row.cells) else ""


def _money(row: GridRow, columns: dict[str, int], column: str) -> float:
    text = _cell(row, columns, column)
    return parse_money(text, spaced=True) if text else 0.0


def _balance(row: GridRow, columns: dict[str, int], kind: str, name: str,
             offset_hours: float) -> BalanceOp:
    current = "Open Time"
    try:
        moment = parse_mt_time(_cell(row, columns, "Open Time"), offset_hours)
        current = "Profit"
        text = _cell(row, columns, "Profit")
        if not text:
            raise BadValue("is empty (a balance row needs its amount)")
        amount = parse_money(text, spaced=True)
    except BadValue as exc:
        raise ImportRejected(name, exc.reason, row=row.line, column=current) from None
    # The comment fills the collapsed cells after Type; the ticket's title repeats it.
    comment = _cell(row, columns, "Size") or row.titles[columns["Ticket"]]
    ledger = credit_kind(amount) if kind == "credit" else \
        balance_kind(comment, amount, unrecognised_positive="adjustment")
    return BalanceOp(row.line, _cell(row, columns, "Ticket"), moment, ledger, amount, comment)


def _trade(row: GridRow, columns: dict[str, int], side: str, name: str,
           offset_hours: float) -> ClosedTrade:
    current = "Open Time"
    try:
        opened = parse_mt_time(_cell(row, columns, "Open Time"), offset_hours)
        current = "Size"
        lots = parse_lots(_cell(row, columns, "Size"), spaced=True)
        current = "Item"
        symbol = _cell(row, columns, "Item")
        if not symbol:
            raise BadValue("is empty")
        current = "Price"
        open_price = parse_price(_cell(row, columns, "Price"), spaced=True)
        current = "Close Time"
        closed = parse_mt_time(_cell(row, columns, "Close Time"), offset_hours)
        if closed < opened:
            raise BadValue(f"{closed} is before the open time {opened}")
        current = "Price"
        close_price = parse_price(_cell(row, columns, "Price 2"), spaced=True)
        money = {}
        for current in ("Commission", "Taxes", "Swap", "Profit"):
            money[current] = _money(row, columns, current)
    except BadValue as exc:
        raise ImportRejected(name, exc.reason, row=row.line, column=current) from None
    title = row.titles[columns["Ticket"]]
    # MT4 prints symbols in lower case; upper case matches MT5 and the other sources.
    return ClosedTrade(
        row=row.line, ticket=_cell(row, columns, "Ticket"), symbol=symbol.upper(), side=side,
        lots=lots,
        opened_at=opened, closed_at=closed, open_price=open_price, close_price=close_price,
        profit=money["Profit"], commission=money["Commission"] + money["Taxes"],
        swap=money["Swap"], close_reason=close_reason_from_comment(title))


__all__ = ["parse_statement"]
