"""What MT4 and MT5 reports have in common: closed trades and balance operations in the account
currency, turned into canonical trades/transactions rows with USD figures.

Platforms type their balance operations poorly (MT4 has only "balance" and "credit" plus a free
comment), so the ledger kind comes from the comment and the sign; the payment ledger (a
transactions CSV) stays the source of truth for deposits where a broker has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd

from connectors.errors import ImportRejected
from connectors.fx import usd_per_unit
from connectors.importers import instruments
from connectors.importers.batch import ROW, AccountHeader, Batch, dedupe_in_file


@dataclass(frozen=True)
class ClosedTrade:
    """One closed position (or part of one) from a report; money in the account currency."""

    row: int
    ticket: str              # ticket of the closing record: MT4 order, MT5 closing deal
    symbol: str
    side: str                # "buy" or "sell": the direction of the position
    lots: float
    opened_at: datetime
    closed_at: datetime
    open_price: float
    close_price: float
    profit: float
    commission: float        # commission + fees + taxes, negative when charged
    swap: float
    close_reason: str
    channel: str | None = None


@dataclass(frozen=True)
class BalanceOp:
    """One balance/credit operation; ``amount`` is signed as it moved the balance."""

    row: int
    ticket: str
    created_at: datetime
    kind: str
    amount: float
    comment: str


_IB = re.compile(r"\b(ib|agent|rebate|partner|introducer)\b", re.IGNORECASE)
_BONUS = re.compile(r"\bbonus", re.IGNORECASE)
_FEE = re.compile(r"financ|swap|interest|\bfee|commission|inactiv|charge|rollover|storage",
                  re.IGNORECASE)
_ADJUST = re.compile(r"adjust|\badj\b|correct|transfer|compensat|dividend|reversal|refund",
                     re.IGNORECASE)
_WITHDRAW = re.compile(r"withdraw|\bwd\b|payout|cash ?out", re.IGNORECASE)
_DEPOSIT = re.compile(r"\bdep(osit(ed)?)?\b|funding|top.?up", re.IGNORECASE)


def balance_kind(comment: str, amount: float, *, unrecognised_positive: str) -> str:
    """Ledger kind of a balance operation from its comment and sign.

    Order matters: "Withdrawal fee" is a fee, "Transfer to 123" an adjustment, not a withdrawal.
    A positive operation with an unrecognised comment is ``unrecognised_positive``: an
    adjustment on MT4 (not every balance row is a deposit), a deposit on MT5 (whose balance
    deal is the deposit operation). Negative unrecognised operations are withdrawals.
    """
    if _IB.search(comment):
        return "ib_commission" if amount > 0 else "adjustment"
    if _BONUS.search(comment):
        return "bonus" if amount >= 0 else "bonus_cancel"
    if _FEE.search(comment):
        return "fee"
    if _ADJUST.search(comment):
        return "adjustment"
    if _WITHDRAW.search(comment):
        return "withdrawal" if amount < 0 else "adjustment"
    if _DEPOSIT.search(comment):
        return "deposit" if amount > 0 else "adjustment"
    if amount < 0:
        return "withdrawal"
    return unrecognised_positive if amount > 0 else "adjustment"


def credit_kind(amount: float) -> str:
    """Credit (bonus money) given is a bonus; credit taken back is a bonus cancellation."""
    return "bonus" if amount >= 0 else "bonus_cancel"


# Kinds whose direction is in the kind itself: the stored amount is the size (positive).
UNSIGNED_KINDS = frozenset({"deposit", "withdrawal", "bonus", "bonus_cancel", "ib_commission"})

_SL = re.compile(r"\[\s*sl\b", re.IGNORECASE)
_TP = re.compile(r"\[\s*tp\b", re.IGNORECASE)
_SO = re.compile(r"\[\s*so\b|(^|\s)so:", re.IGNORECASE)


def close_reason_from_comment(comment: str) -> str:
    """``[sl]``/``[sl 1.0850]`` → sl, ``[tp …]`` → tp, ``so: …``/``[so …]`` → stop_out, else client."""
    if _SO.search(comment):
        return "stop_out"
    if _SL.search(comment):
        return "sl"
    if _TP.search(comment):
        return "tp"
    return "client"


def build_batch(file: str, kind: str, header: AccountHeader, trades: list[ClosedTrade],
                balances: list[BalanceOp], *, ticket_column: str, repeated: int = 0) -> Batch:
    """A Batch of one report: trades and transactions with external ids
    ``{platform}:{login}:{what}:{ticket}`` (so re-imports and other exports of the same
    account dedupe), converted to USD when the account currency is known. ``repeated`` counts
    identical source rows the parser already dropped (they count as read and skipped)."""
    prefix = f"{header.platform}:{header.login}"
    what = "order" if header.platform == "MT4" else "deal"
    trade_records = []
    for t in trades:
        inst = instruments.classify(t.symbol)
        trade_records.append({
            "external_id": f"{prefix}:{what}:{t.ticket}", "symbol": t.symbol[:32],
            "asset_class": inst.asset_class, "side": t.side, "lots": t.lots,
            "notional_usd": instruments.notional_usd(inst, t.lots, t.open_price),
            "opened_at": t.opened_at, "closed_at": t.closed_at, "open_price": t.open_price,
            "close_price": t.close_price, "profit": round(t.profit, 2),
            "commission": round(t.commission, 2), "swap": round(t.swap, 2),
            "leverage_used": None, "close_reason": t.close_reason, "channel": t.channel,
            ROW: t.row,
        })
    txn_records = []
    for b in balances:
        amount = abs(b.amount) if b.kind in UNSIGNED_KINDS else b.amount
        txn_records.append({
            "external_id": f"{prefix}:{what}:{b.ticket}", "kind": b.kind, "status": "approved",
            "amount": round(amount, 2), "currency": header.currency, "method": None,
            "psp": None, "comment": b.comment[:255] or None, "created_at": b.created_at,
            ROW: b.row,
        })
    trade_records, skipped_trades = dedupe_in_file(trade_records, file, ticket_column)
    txn_records, skipped_txns = dedupe_in_file(txn_records, file, ticket_column)
    times = [t["opened_at"] for t in trade_records] + [b["created_at"] for b in txn_records]
    if not times:
        raise ImportRejected(file, "the report holds no closed trades and no balance "
                             "operations; nothing to import")
    header = replace(header, first_time=min(times))
    tables = {
        "trades": pd.DataFrame(trade_records, columns=[*_TRADE_COLUMNS, ROW]),
        "transactions": pd.DataFrame(txn_records, columns=[*_TXN_COLUMNS, ROW]),
    }
    batch = Batch(file=file, kind=kind, rows_read=len(trades) + len(balances) + 1 + repeated,
                  tables={k: v for k, v in tables.items() if not v.empty},
                  skipped=skipped_trades + skipped_txns + repeated, account=header)
    if header.currency is not None:
        convert_to_usd(batch.tables, header.currency, file)
    batch.preview = report_preview(batch)
    return batch


_TRADE_COLUMNS = ("external_id", "symbol", "asset_class", "side", "lots", "notional_usd",
                  "opened_at", "closed_at", "open_price", "close_price", "profit", "commission",
                  "swap", "leverage_used", "close_reason", "channel")
_TXN_COLUMNS = ("external_id", "kind", "status", "amount", "currency", "method", "psp",
                "comment", "created_at")


def convert_to_usd(tables: dict[str, pd.DataFrame], currency: str, file: str) -> None:
    """Fill the USD columns of report tables from the account-currency ones at the reference
    rate (fx.py); an unknown currency is refused."""
    rate = usd_per_unit(currency)
    if rate is None:
        raise ImportRejected(file, f"account currency '{currency}' has no reference rate "
                             "in connectors/fx.py", column="currency")
    trades = tables.get("trades")
    if trades is not None:
        for money in ("profit", "commission", "swap"):
            trades[f"{money}_usd"] = (trades[money] * rate).round(2)
    txns = tables.get("transactions")
    if txns is not None:
        txns["currency"] = currency
        txns["amount_usd"] = (txns["amount"] * rate).round(2)


def report_preview(batch: Batch) -> pd.DataFrame:
    """One line per trade or balance operation, by time: table, external_id, time, symbol,
    side, lots, kind, amount (account currency), amount_usd, close_reason, comment."""
    parts = []
    trades = batch.tables.get("trades")
    if trades is not None:
        parts.append(pd.DataFrame({
            "table": "trades", "external_id": trades["external_id"], "time": trades["closed_at"],
            "symbol": trades["symbol"], "side": trades["side"], "lots": trades["lots"],
            "kind": None, "amount": trades["profit"],
            "amount_usd": trades.get("profit_usd"), "close_reason": trades["close_reason"],
            "comment": None, ROW: trades[ROW]}))
    txns = batch.tables.get("transactions")
    if txns is not None:
        parts.append(pd.DataFrame({
            "table": "transactions", "external_id": txns["external_id"],
            "time": txns["created_at"], "symbol": None, "side": None, "lots": None,
            "kind": txns["kind"], "amount": txns["amount"], "amount_usd": txns.get("amount_usd"),
            "close_reason": None, "comment": txns["comment"], ROW: txns[ROW]}))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["time", ROW], kind="stable").drop(columns=[ROW])
    return frame.reset_index(drop=True)


__all__ = ["BalanceOp", "ClosedTrade", "balance_kind", "build_batch", "close_reason_from_comment",
           "convert_to_usd", "credit_kind", "report_preview"]
