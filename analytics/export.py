"""CSV for people to open in a spreadsheet: readable numbers, safe against formula injection.

Trader ids, affiliate ids, event names and property values come from outside the broker. A cell such as
``=HYPERLINK("http://…")`` would run as a formula in the analyst's spreadsheet, so every export prefixes
text that a spreadsheet reads as a formula with a single quote (OWASP, "CSV Injection"). Numbers stay
numbers: a dormant count of -12 is data, not a formula.

Numbers are written for reading (docs/semantics.md, "Downloads"): a column of whole numbers without a
decimal point (67, not 67.0), a column of fractions between -1 and 1 (rates, shares) to 4 decimals
(0.1976 = 19.76%), any other column of decimals (money, seconds, lots) to 2. Full precision stays in
``cli.py report --format json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.reading import reading
from connectors.schema import traders

# What makes Excel, LibreOffice or Google Sheets evaluate a cell, in ASCII and full width (which
# some spreadsheets fold to ASCII before parsing).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
FRACTION_DECIMALS = 4  # a rate of 0.1976 reads as 19.76%: percent with 2 decimals
DECIMALS = 2  # cents, and as much as anyone reads of seconds, hours or lots


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


def decimals_of(column: pd.Series) -> int:
    """Decimals a float column is written with: 0 when every value is whole, FRACTION_DECIMALS when every
    value lies within -1..1, else DECIMALS (missing and infinite values play no part)."""
    values = column.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    if not len(values) or (values == np.round(values)).all():
        return 0
    return FRACTION_DECIMALS if (np.abs(values) <= 1).all() else DECIMALS


def format_number(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` without trailing zeros ("0.5", "1", "-150.25"); "" when missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    text = f"{round(value, decimals) + 0.0:.{decimals}f}"  # + 0.0 turns -0.0 into 0.0
    return text.rstrip("0").rstrip(".") if "." in text else text


def _numbers_only(column: pd.Series) -> pd.Series | None:
    """An object column whose cells are all numbers or missing as floats; None when any cell is something else
    (text, a date, a bool), which leaves the column to the text rules."""
    values = column.dropna()
    if not len(values) or not all(isinstance(v, int | float | np.integer | np.floating)
                                  and not isinstance(v, bool | np.bool_) for v in values):
        return None
    return pd.to_numeric(column, errors="coerce").astype(float)


def readable(column: pd.Series) -> pd.Series:
    """A float column, or an object column of numbers, as the text it is written as (see the module
    docstring); other columns unchanged."""
    if column.dtype == object:
        numbers = _numbers_only(column)
        if numbers is None:
            return column
        column = numbers
    if not pd.api.types.is_float_dtype(column.dtype):
        return column
    decimals = decimals_of(column)
    return pd.Series([format_number(v, decimals) for v in column], index=column.index, dtype=object)


def to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text with a header and no index: every text cell and header through neutralise_cell,
    every float column through :func:`readable` (whole numbers as integers, fractions to 4 decimals, other
    decimals to 2).

    Missing values (None, NaN, NaT) are empty cells; embedded quotes, commas and newlines are quoted as
    the csv module does, so the file reads back with the same cells.
    """
    safe = frame.copy(deep=False)
    for position in range(safe.shape[1]):
        column = safe.iloc[:, position]
        if column.dtype == object and _numbers_only(column) is not None:
            safe.isetitem(position, readable(column))  # numbers held as objects (a frame built from records)
        elif _is_text_column(column):
            safe.isetitem(position, column.astype(object).map(neutralise_cell))
        else:
            # After the text check: a formatted number is text too, and "-150.25" is data, not a formula.
            safe.isetitem(position, readable(column))
    safe.columns = [neutralise_cell(name) for name in safe.columns]
    return safe.to_csv(index=False)


def external_ids(engine: Engine, trader_ids: Iterable[int]) -> np.ndarray:
    """The external id of each of ``trader_ids``, in their order (None for an id no trader has): the
    name a file gives a trader."""
    with reading(engine) as conn:
        rows = conn.execute(sa.select(traders.c.trader_id, traders.c.external_id)).all()
    known = pd.Series([r[1] for r in rows], index=pd.Index([int(r[0]) for r in rows]), dtype=object)
    return known.reindex(pd.Index([int(i) for i in trader_ids])).to_numpy()
