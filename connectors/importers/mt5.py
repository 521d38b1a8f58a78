"""MetaTrader 5: the terminal's Trade History Report (HTML or XLSX) and deal exports (CSV).

MT5 records deals, not trades: a position is opened by an "in" deal and closed by one or more
"out" / "in/out" / "out by" deals. Each closing deal becomes one trade, paired with the
opening deal(s) of its position: by position_id in the CSV export; in the report, by the
Positions section (position id = ticket of the opening order) where it covers the deal, else
first-in-first-out by symbol and side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from connectors.errors import ImportRejected
from connectors.importers.batch import AccountHeader, Batch
from connectors.importers.csv_tables import header_columns
from connectors.importers.fields import (
    BadValue,
    parse_int,
    parse_iso_time,
    parse_money,
    parse_mt_time,
    parse_number,
    parse_price,
)
from connectors.importers.source import (
    XLSX_MAGIC,
    GridRow,
    decode_html,
    decode_strict,
    html_grid,
    named_columns,
    read_csv,
    xlsx_grid,
)
from connectors.importers.terminal import (
    BalanceOp,
    ClosedTrade,
    balance_kind,
    build_batch,
    close_reason_from_comment,
    credit_kind,
)

EPS = 1e-9

# ENUM_DEAL_TYPE of the MT5 API, in code order.
DEAL_TYPES = (
    "buy", "sell", "balance", "credit", "charge", "correction", "bonus", "commission",
    "commission_daily", "commission_monthly", "agent_daily", "agent_monthly", "interest",
    "buy_canceled", "sell_canceled", "dividend", "dividend_franked", "tax", "agent",
    "so_compensation", "so_compensation_credit",
)
ENTRIES = ("in", "out", "inout", "out_by")
# Deal reason codes that say where the client traded from, and why a position closed.
REASON_CHANNELS = {0: "desktop", 1: "expert", 16: "mobile", 17: "web"}
REASON_CLOSES = {3: "sl", 4: "tp", 5: "stop_out"}

DEALS_CSV_REQUIRED = ("ticket", "order", "type", "entry", "position_id", "volume", "price",
                      "commission", "swap", "profit", "symbol")


def is_deals_header(header: list[str]) -> bool:
    """Whether a CSV header is that of ``history_deals_get`` (MT5 Python API)."""
    columns = {c.strip().lower() for c in header}
    return set(DEALS_CSV_REQUIRED) <= columns and bool({"time", "time_msc"} & columns)


def is_report_grid(rows: list[GridRow]) -> bool:
    """Whether a worksheet/HTML grid is an MT5 Trade History Report."""
    return any("Trade History Report" in row.text() for row in rows[:12])


# ---- deals and their pairing ---------------------------------------------------------------


@dataclass
class Deal:
    """One MT5 deal, as either export states it (money in the account currency)."""

    row: int
    ticket: str
    time: datetime
    sort_key: tuple[float, int]
    symbol: str
    type: str
    entry: str | None
    volume: float
    price: float
    order: str
    position: str | None
    commission: float
    fee: float
    swap: float
    profit: float
    comment: str
    reason: int | None = None


@dataclass
class Position:
    """A row of the report's Positions section: where a position opened and closed."""

    position: str
    symbol: str
    side: str
    open_time: datetime
    open_price: float
    close_time: datetime
    remaining: float


@dataclass
class _Lot:
    """Open volume waiting for a closing deal."""

    side: str
    symbol: str
    time: datetime
    price: float
    volume: float
    remaining: float
    commission: float       # entry commission + fee of the whole opening deal
    channel: str | None


def _seconds(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def _match_position(positions: list[Position], deal: Deal, side: str) -> Position | None:
    """The Positions row a closing deal belongs to: same symbol and side, open at deal time,
    preferring the one that closed exactly then."""
    candidates = [p for p in positions if p.symbol == deal.symbol and p.side == side
                  and p.remaining > EPS and p.open_time <= deal.time
                  <= p.close_time + timedelta(seconds=1)]
    exact = [p for p in candidates if p.close_time == deal.time]
    return (exact or candidates or [None])[0]


def pair_deals(deals: list[Deal], positions: list[Position], *, by_position_id: bool,
               file: str, column: str) -> list[ClosedTrade]:
    """One ClosedTrade per closing deal, paired with the opening volume it closes.

    ``column`` names the column to point at when a closing deal has nothing to close (the
    export starts after the position opened).
    """
    lots: dict[str, list[_Lot]] = {}
    trades: list[ClosedTrade] = []
    for deal in sorted(deals, key=lambda d: d.sort_key):
        own_key = (deal.position if by_position_id else deal.order) or deal.ticket
        if deal.entry == "in":
            channel = REASON_CHANNELS.get(deal.reason) if deal.reason is not None else None
            lots.setdefault(own_key, []).append(_Lot(
                deal.type, deal.symbol, deal.time, deal.price, deal.volume, deal.volume,
                deal.commission + deal.fee, channel))
            continue
        side = _opposite(deal.type)
        matched = None if by_position_id else _match_position(positions, deal, side)
        if by_position_id or matched is not None:
            keys = [deal.position if by_position_id else matched.position]
        else:
            keys = list(lots)
        open_lots = [lot for key in keys for lot in lots.get(key, [])
                     if lot.side == side and lot.symbol == deal.symbol and lot.remaining > EPS]
        to_close = deal.volume
        if deal.entry == "inout":
            # A reversal closes what is open and opens the rest the other way.
            available = sum(lot.remaining for lot in open_lots) or (
                matched.remaining if matched else 0.0)
            to_close = min(deal.volume, available)
        parts: list[tuple[_Lot, float]] = []
        need = to_close
        for lot in open_lots:
            take = min(lot.remaining, need)
            lot.remaining -= take
            need -= take
            parts.append((lot, take))
            if need <= EPS:
                break
        if need > EPS and matched is not None:
            # Opened before the report starts: the Positions row knows where.
            parts.append((_Lot(side, deal.symbol, matched.open_time, matched.open_price, need,
                               need, 0.0, None), need))
            need = 0.0
        if need > EPS or to_close <= EPS:
            raise ImportRejected(
                file, f"closing deal {deal.ticket} ({deal.symbol} {deal.volume:g} lots) has no "
                "opening deal in this file; export the history from before the position opened",
                row=deal.row, column=column)
        if matched is not None:
            matched.remaining -= to_close
        trades.append(_closed_trade(deal, side, parts, to_close, file, by_position_id))
        leftover = deal.volume - to_close
        if deal.entry == "inout" and leftover > EPS:
            channel = REASON_CHANNELS.get(deal.reason) if deal.reason is not None else None
            lots.setdefault(own_key, []).append(_Lot(
                deal.type, deal.symbol, deal.time, deal.price, leftover, leftover, 0.0, channel))
    return trades


def _closed_trade(deal: Deal, side: str, parts: list[tuple[_Lot, float]], volume: float,
                  file: str, by_reason: bool) -> ClosedTrade:
    lots = round(volume, 2)
    if lots < 0.01:
        raise ImportRejected(file, f"closing deal {deal.ticket} closes {volume:g} lots, below "
                             "the 0.01 the database stores", row=deal.row, column="Volume")
    open_price = sum(lot.price * take for lot, take in parts) / volume
    entry_commission = sum(lot.commission * take / lot.volume for lot, take in parts)
    reason = REASON_CLOSES.get(deal.reason) if by_reason and deal.reason is not None else None
    return ClosedTrade(
        row=deal.row, ticket=deal.ticket, symbol=deal.symbol, side=side, lots=lots,
        opened_at=min(lot.time for lot, _ in parts), closed_at=deal.time,
        open_price=round(open_price, 8), close_price=deal.price, profit=deal.profit,
        commission=deal.commission + deal.fee + entry_commission, swap=deal.swap,
        close_reason=reason or close_reason_from_comment(deal.comment),
        channel=parts[0][0].channel)


def balance_op(deal: Deal) -> BalanceOp | None:
    """The ledger entry of a non-trading deal (None for cancelled-order records)."""
    kind = deal.type
    if kind in {"buy_canceled", "sell_canceled"}:
        return None
    amount = deal.profit
    if kind == "balance":
        ledger = balance_kind(deal.comment, amount, unrecognised_positive="deposit")
    elif kind in {"credit", "bonus"}:
        ledger = credit_kind(amount)
    elif kind in {"agent", "agent_daily", "agent_monthly"}:
        ledger = "ib_commission" if amount > 0 else "adjustment"
    elif kind in {"charge", "commission", "commission_daily", "commission_monthly",
                  "interest", "tax"}:
        ledger = "fee"
    else:  # correction, dividends, stop-out compensation
        ledger = "adjustment"
    return BalanceOp(deal.row, deal.ticket, deal.time, ledger, amount, deal.comment)


def dedupe_deals(deals: list[Deal], file: str, column: str) -> tuple[list[Deal], int]:
    """Drop repeated deal tickets before pairing (a repeated closing deal would close twice):
    identical repeats are skipped, differing ones are an error at the repeat."""
    seen: dict[str, Deal] = {}
    unique: list[Deal] = []
    for deal in deals:
        first = seen.get(deal.ticket)
        if first is None:
            seen[deal.ticket] = deal
            unique.append(deal)
        elif replace(first, row=deal.row) != deal:
            raise ImportRejected(file, f"deal {deal.ticket} appears again (first at row "
                                 f"{first.row}) with different values", row=deal.row,
                                 column=column)
    return unique, len(deals) - len(unique)


def _split(deals: list[Deal], positions: list[Position], *, by_position_id: bool, file: str,
           column: str) -> tuple[list[ClosedTrade], list[BalanceOp]]:
    trading = [d for d in deals if d.type in {"buy", "sell"}]
    balances = [op for d in deals if d.type not in {"buy", "sell"}
                if (op := balance_op(d)) is not None]
    return pair_deals(trading, positions, by_position_id=by_position_id, file=file,
                      column=column), balances


# ---- the deals CSV (history_deals_get) -----------------------------------------------------

_LOGIN_IN_NAME = re.compile(r"(?<!\d)(\d{5,12})(?!\d)")


def _login_from_name(name: str) -> str | None:
    """A login written in the file name (deals_70011223.csv); dates like 20240301 do not count."""
    found = []
    for run in _LOGIN_IN_NAME.findall(PurePath(name).stem):
        try:
            if len(run) == 8 and 1990 <= int(run[:4]) <= 2100:
                datetime.strptime(run, "%Y%m%d")
                continue
        except ValueError:
            pass
        found.append(run)
    return found[0] if len(found) == 1 else None


def _digits(raw: str) -> str:
    text = raw.strip()
    if text.endswith(".0"):
        text = text[:-2]
    if not text.isdigit():
        raise BadValue(f"'{raw}' is not a ticket number")
    return text


def _code(raw: str, names: tuple[str, ...], what: str) -> str:
    value = parse_int(raw)
    if not 0 <= value < len(names):
        raise BadValue(f"{value} is not a known {what} code (0-{len(names) - 1})")
    return names[value]


def _epoch(raw: str, *, millis: bool, offset_hours: float) -> datetime:
    """Epoch seconds (or ms) in server time, or an ISO time written by a script → naive UTC."""
    text = raw.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        value = float(text) / (1000.0 if millis else 1.0)
        moment = datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        if not datetime(1970, 1, 2) <= moment < datetime(2100, 1, 1):
            raise BadValue(f"'{raw}' is not a plausible epoch time")
    else:
        moment = parse_iso_time(text)
    return moment - timedelta(hours=offset_hours)


def _single_value(table_rows: list[tuple[int, list[str]]], index: int, column: str,
                  name: str) -> str | None:
    """The one value a per-file column (login, currency) holds; differing values are an error."""
    seen: str | None = None
    for line, values in table_rows:
        value = values[index].strip() if index < len(values) else ""
        if not value:
            continue
        if seen is None:
            seen = value
        elif value != seen:
            raise ImportRejected(name, f"holds {seen} and {value}; export one account per file",
                                 row=line, column=column)
    return seen


def parse_deals_csv(data: bytes, name: str, offset_hours: float = 0.0) -> Batch:
    """Deals exported with the MT5 Python API (``history_deals_get`` as CSV).

    The API has no account columns: the login comes from a ``login`` column or the file name
    (deals_70011223.csv), the currency from a ``currency`` column or the account already in
    the database. Times are epoch seconds in server time (``time``, else ``time_msc``).
    """
    table = read_csv(decode_strict(data, name), name)
    columns = header_columns(table.header, name)
    for column in DEALS_CSV_REQUIRED:
        if column not in columns:
            raise ImportRejected(name, f"required column '{column}' is missing (an MT5 deals "
                                 f"export needs {', '.join(DEALS_CSV_REQUIRED)}, time)",
                                 column=column)
    if not table.records:
        raise ImportRejected(name, "the file has a header but no data rows")
    time_column = "time" if "time" in columns else "time_msc"
    if time_column not in columns:
        raise ImportRejected(name, "required column 'time' is missing", column="time")
    login = None
    if "login" in columns:
        login = _single_value(table.records, columns["login"], "login", name)
    login = login or _login_from_name(name)
    if login is None:
        raise ImportRejected(name, "cannot tell which MT5 login these deals belong to; add a "
                             "login column or put the login in the file name "
                             "(deals_70011223.csv)", column="login")
    currency = None
    if "currency" in columns:
        currency = _single_value(table.records, columns["currency"], "currency", name)
        currency = currency.upper() if currency else None

    deals = []
    for line, values in table.records:
        if len(values) < len(table.header):
            raise ImportRejected(name, f"has {len(values)} values but the header has "
                                 f"{len(table.header)} columns", row=line)
        deals.append(_csv_deal(values, columns, line, name, time_column, offset_hours))
    deals, repeated = dedupe_deals(deals, name, "ticket")
    trades, balances = _split(deals, [], by_position_id=True, file=name, column="position_id")
    header = AccountHeader(platform="MT5", login=login, currency=currency, leverage=None,
                           server=None, is_demo=None, holder=None)
    return build_batch(name, "mt5-deals", header, trades, balances, ticket_column="ticket",
                       repeated=repeated)


def _csv_deal(values: list[str], columns: dict[str, int], line: int, name: str,
              time_column: str, offset_hours: float) -> Deal:
    def cell(column: str) -> str:
        index = columns.get(column)
        return values[index].strip() if index is not None else ""

    current = "ticket"
    try:
        ticket = _digits(cell("ticket"))
        current = time_column
        moment = _epoch(cell(time_column), millis=time_column == "time_msc",
                        offset_hours=offset_hours)
        sort_time = float(cell("time_msc")) if cell("time_msc").isdigit() else \
            _seconds(moment) * 1000
        current = "type"
        kind = _code(cell("type"), DEAL_TYPES, "deal type")
        trading = kind in {"buy", "sell"}
        current = "entry"
        entry = _code(cell("entry"), ENTRIES, "entry") if trading else None
        current = "reason"
        reason = parse_int(cell("reason")) if cell("reason") else None
        current = "position_id"
        position = _digits(cell("position_id")) if trading else None
        current = "volume"
        volume = parse_number(cell("volume")) if trading else 0.0
        if trading and volume <= 0:
            raise BadValue(f"volume must be greater than 0, got '{cell('volume')}'")
        current = "price"
        price = parse_price(cell("price")) if trading else 0.0
        money = {}
        for current in ("commission", "fee", "swap", "profit"):
            money[current] = parse_money(cell(current)) if cell(current) else 0.0
        current = "symbol"
        symbol = cell("symbol")
        if trading and not symbol:
            raise BadValue("is empty")
    except BadValue as exc:
        raise ImportRejected(name, exc.reason, row=line, column=current) from None
    return Deal(row=line, ticket=ticket, time=moment, sort_key=(sort_time, int(ticket)),
                symbol=symbol, type=kind, entry=entry, volume=volume, price=price,
                order=cell("order"), position=position, commission=money["commission"],
                fee=money["fee"], swap=money["swap"], profit=money["profit"],
                comment=cell("comment"), reason=reason)


# ---- the Trade History Report (HTML / XLSX) ------------------------------------------------

SECTION_TITLES = frozenset({"Positions", "Orders", "Deals", "Open Positions", "Working Orders",
                            "Summary", "Results", "Balance Graph"})
DEALS_REQUIRED = ("Time", "Deal", "Symbol", "Type", "Direction", "Volume", "Price", "Order",
                  "Commission", "Swap", "Profit", "Comment")
POSITIONS_REQUIRED = ("Time", "Position", "Symbol", "Type", "Volume", "Price", "Time 2")

# Deal type as the terminal prints it → DEAL_TYPES name.
_REPORT_TYPES = {
    "buy": "buy", "sell": "sell", "balance": "balance", "credit": "credit", "charge": "charge",
    "correction": "correction", "bonus": "bonus", "commission": "commission",
    "daily commission": "commission_daily", "monthly commission": "commission_monthly",
    "daily agent commission": "agent_daily", "monthly agent commission": "agent_monthly",
    "agent commission": "agent", "interest rate": "interest", "interest": "interest",
    "canceled buy": "buy_canceled", "cancelled buy": "buy_canceled",
    "canceled sell": "sell_canceled", "cancelled sell": "sell_canceled",
    "dividend": "dividend", "franked dividend": "dividend_franked", "tax": "tax",
    "so compensation": "so_compensation", "so credit compensation": "so_compensation_credit",
}
_REPORT_ENTRIES = {"in": "in", "out": "out", "in/out": "inout", "inout": "inout",
                   "out by": "out_by", "out_by": "out_by"}
_ACCOUNT = re.compile(r"^\s*(\d+)\s*\((.*)\)\s*$")


@dataclass(frozen=True)
class _Section:
    header: GridRow
    columns: dict[str, int]
    rows: list[GridRow]


def _sections(grid: list[GridRow]) -> dict[str, _Section]:
    """Each titled section's column header and the rows up to the next section title."""
    found: dict[str, _Section] = {}
    current: str | None = None
    for row in grid:
        texts = [c for c in row.cells if c]
        if len(texts) == 1 and texts[0] in SECTION_TITLES:
            current = texts[0]
            continue
        if current is None or not texts:
            continue
        if current not in found:
            found[current] = _Section(row, named_columns(row), [])
        else:
            found[current].rows.append(row)
    return found


def _label_value(grid: list[GridRow], label: str) -> tuple[str, int] | None:
    """The text after a header label cell ("Account:") and its row number."""
    for row in grid[:20]:
        cells = [c for c in row.cells if c]
        if cells and cells[0].rstrip(":").strip().lower() == label.lower() and len(cells) > 1:
            return cells[1], row.line
        if cells and cells[0].lower().startswith(label.lower() + ":") and len(cells) == 1:
            return cells[0].split(":", 1)[1].strip(), row.line
    return None


def _report_header(grid: list[GridRow], name: str) -> AccountHeader:
    account = _label_value(grid, "Account")
    if account is None:
        raise ImportRejected(name, "the report has no Account line in its header",
                             column="Account")
    text, line = account
    match = _ACCOUNT.match(text)
    if not match:
        raise ImportRejected(name, f"cannot read the Account line '{text}' (expected "
                             "'login (currency, server, demo|real, Hedge|Netting)')", row=line,
                             column="Account")
    parts = [p.strip() for p in match.group(2).split(",") if p.strip()]
    currency_at = next((i for i, p in enumerate(parts) if re.fullmatch(r"[A-Z]{3}", p)), None)
    if currency_at is None:
        raise ImportRejected(name, f"the Account line '{text}' states no currency", row=line,
                             column="Account")
    flags = {p.lower() for p in parts}
    server = next((p for p in parts[currency_at + 1:] if p.lower() not in
                   {"demo", "real", "contest", "hedge", "netting", "hedging"}), None)
    is_demo = True if "demo" in flags else False if {"real", "contest"} & flags else None
    holder = _label_value(grid, "Name")
    return AccountHeader(platform="MT5", login=match.group(1), currency=parts[currency_at],
                         leverage=None, server=server, is_demo=is_demo,
                         holder=holder[0] if holder else None)


def parse_report(data: bytes, name: str, offset_hours: float = 0.0) -> Batch:
    """An MT5 Trade History Report, saved as HTML (usually UTF-16LE with BOM) or XLSX.

    Trades and balance operations come from the Deals section; the Positions section helps
    pair closing deals. The account block and Results are not read: totals are computed from
    the rows, so a summary that does not add up can neither mislead nor block an import.
    """
    is_xlsx = data.startswith(XLSX_MAGIC)
    grid = xlsx_grid(data, name) if is_xlsx else html_grid(decode_html(data, name), name)
    if not is_report_grid(grid):
        raise ImportRejected(name, "is not an MT5 Trade History Report (no such title)")
    header = _report_header(grid, name)
    sections = _sections(grid)
    deals_section = sections.get("Deals")
    if deals_section is None:
        raise ImportRejected(name, "the report has no Deals section")
    for column in DEALS_REQUIRED:
        if column not in deals_section.columns:
            raise ImportRejected(name, f"the Deals section has no '{column}' column",
                                 row=deals_section.header.line, column=column)
    positions = []
    if "Positions" in sections and all(c in sections["Positions"].columns
                                       for c in POSITIONS_REQUIRED):
        positions = [p for row in sections["Positions"].rows
                     if (p := _report_position(row, sections["Positions"].columns, name,
                                               offset_hours)) is not None]
    deals = [d for row in deals_section.rows
             if (d := _report_deal(row, deals_section.columns, name, offset_hours)) is not None]
    deals, repeated = dedupe_deals(deals, name, "Deal")
    trades, balances = _split(deals, positions, by_position_id=False, file=name, column="Deal")
    return build_batch(name, "mt5-report", header, trades, balances, ticket_column="Deal",
                       repeated=repeated)


def _cell(row: GridRow, columns: dict[str, int], column: str) -> str:
    index = columns.get(column)
    return row.cells[index] if index is not None and index < len(row.cells) else ""


def _money(row: GridRow, columns: dict[str, int], column: str) -> float:
    text = _cell(row, columns, column)
    return parse_money(text, spaced=True) if text else 0.0


def _report_deal(row: GridRow, columns: dict[str, int], name: str,
                 offset_hours: float) -> Deal | None:
    ticket = _cell(row, columns, "Deal")
    if not ticket.isdigit():
        return None  # totals row, blank spacer or the account block after the deals
    current = "Time"
    try:
        moment = parse_mt_time(_cell(row, columns, "Time"), offset_hours)
        current = "Type"
        type_text = _cell(row, columns, "Type").lower()
        kind = _REPORT_TYPES.get(type_text)
        if kind is None:
            raise BadValue(f"'{type_text}' is not a deal type this importer knows")
        trading = kind in {"buy", "sell"}
        current = "Direction"
        entry = None
        if trading:
            entry = _REPORT_ENTRIES.get(_cell(row, columns, "Direction").lower())
            if entry is None:
                raise BadValue(f"'{_cell(row, columns, 'Direction')}' is not in, out, in/out "
                               "or out by")
        current = "Volume"
        volume = 0.0
        if trading:
            # Netting reports may print "filled / requested"; the first figure is the deal's.
            volume = parse_number(_cell(row, columns, "Volume").split("/")[0], spaced=True)
            if volume <= 0:
                raise BadValue(f"volume must be greater than 0, got {volume:g}")
        current = "Price"
        price = parse_price(_cell(row, columns, "Price"), spaced=True) if trading else 0.0
        money = {}
        for current in ("Commission", "Fee", "Swap", "Profit"):
            money[current] = _money(row, columns, current)
        current = "Symbol"
        symbol = _cell(row, columns, "Symbol")
        if trading and not symbol:
            raise BadValue("is empty")
    except BadValue as exc:
        raise ImportRejected(name, exc.reason, row=row.line, column=current) from None
    return Deal(row=row.line, ticket=ticket, time=moment,
                sort_key=(_seconds(moment), int(ticket)), symbol=symbol, type=kind,
                entry=entry, volume=volume, price=price, order=_cell(row, columns, "Order"),
                position=None, commission=money["Commission"], fee=money["Fee"],
                swap=money["Swap"], profit=money["Profit"],
                comment=_cell(row, columns, "Comment"))


def _report_position(row: GridRow, columns: dict[str, int], name: str,
                     offset_hours: float) -> Position | None:
    position = _cell(row, columns, "Position")
    if not position.isdigit() or not _cell(row, columns, "Time 2"):
        return None
    current = "Time"
    try:
        opened = parse_mt_time(_cell(row, columns, "Time"), offset_hours)
        current = "Type"
        side = _cell(row, columns, "Type").lower()
        if side not in {"buy", "sell"}:
            raise BadValue(f"'{side}' is not buy or sell")
        current = "Volume"
        volume = parse_number(_cell(row, columns, "Volume").split("/")[0], spaced=True)
        current = "Price"
        price = parse_price(_cell(row, columns, "Price"), spaced=True)
        current = "Time 2"
        closed = parse_mt_time(_cell(row, columns, "Time 2"), offset_hours)
    except BadValue as exc:
        column = "Time" if current == "Time 2" else current  # the close Time column
        raise ImportRejected(name, f"(Positions) {exc.reason}", row=row.line,
                             column=column) from None
    return Position(position, _cell(row, columns, "Symbol"), side, opened, price, closed, volume)


__all__ = ["DEAL_TYPES", "is_deals_header", "is_report_grid", "pair_deals", "parse_deals_csv",
           "parse_report"]
