"""MetaTrader 5: the terminal's Trade History Report (HTML or XLSX) and deal exports (CSV)."""

from __future__ import annotations

from connectors.importers.source import GridRow

DEALS_CSV_COLUMNS = ("ticket", "order", "time", "type", "entry", "position_id", "volume", "price",
                     "commission", "swap", "profit", "symbol")


def is_deals_header(header: list[str]) -> bool:
    """Whether a CSV header is that of ``history_deals_get`` (MT5 Python API)."""
    columns = {c.strip().lower() for c in header}
    return set(DEALS_CSV_COLUMNS) <= columns


def is_report_grid(rows: list[GridRow]) -> bool:
    """Whether a worksheet/HTML grid is an MT5 Trade History Report."""
    return any("Trade History Report" in row.text() for row in rows[:10])
