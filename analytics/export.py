"""CSV for people to open in a spreadsheet, safe against formula injection.

Trader ids, affiliate ids, event names and property values come from outside the broker. A cell such as
``=HYPERLINK("http://…")`` would run as a formula in the analyst's spreadsheet, so every export prefixes
text that a spreadsheet reads as a formula with a single quote (OWASP, "CSV Injection"). Numbers stay
numbers: a dormant count of -12 is data, not a formula.
"""

from __future__ import annotations

import pandas as pd

# What makes Excel, LibreOffice or Google Sheets evaluate a cell, in ASCII and full width (which
# some spreadsheets fold to ASCII before parsing).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise_cell(value: object) -> object:
    """``value`` unchanged, unless it is text starting with a FORMULA_STARTS character: then ``'`` + text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _is_text_column(column: pd.Series) -> bool:
    """True for columns that can hold text (object, string, categorical), whose cells are checked one by one."""
    return not (pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
                or pd.api.types.is_datetime64_any_dtype(column.dtype)
                or pd.api.types.is_timedelta64_dtype(column.dtype))


def to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text with a header and no index, every text cell and header through neutralise_cell.

    Missing values (None, NaN, NaT) are empty cells; embedded quotes, commas and newlines are quoted as
    the csv module does, so the file reads back with the same cells.
    """
    safe = frame.copy(deep=False)
    for position in range(safe.shape[1]):
        column = safe.iloc[:, position]
        if _is_text_column(column):
            safe.isetitem(position, column.astype(object).map(neutralise_cell))
    safe.columns = [neutralise_cell(name) for name in safe.columns]
    return safe.to_csv(index=False)
