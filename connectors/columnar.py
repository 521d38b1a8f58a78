"""A SELECT's result as numpy columns, without a Python object per row where the driver allows.

Analytics that walk millions of rows (funnels) need arrays, not tuples: building a tuple per row
costs more than the query. This module is the one place that reaches past SQLAlchemy to the driver:

- DuckDB hands every column over as a numpy array (``fetchnumpy``).
- PostgreSQL streams the result with ``COPY (SELECT ...) TO STDOUT``: as fixed-width binary when
  every column is an integer or a timestamp (several times faster than a tuple per row), else as
  CSV parsed by pyarrow. A binary stream that is not the fixed layout expected (a NULL) falls back
  to fetching rows.

What a column becomes follows its SQLAlchemy type in the SELECT:

- ``sa.Integer`` and subtypes: int64 (the column must not be NULL);
- ``sa.DateTime``: int64 microseconds since 1970-01-01 (naive UTC), exact;
- anything else (strings, untyped expressions such as JSON extraction): an object array of str,
  None where NULL. On PostgreSQL a SELECT with such a column cannot also have a DateTime column
  (select the time as epoch microseconds instead).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

_US = 1_000_000
_PG_EPOCH_US = 946_684_800 * _US  # 2000-01-01, where PostgreSQL's binary timestamps start


def _kind(stmt: sa.Select, name: str) -> str:
    """"int", "time" or "text": what column ``name`` of ``stmt`` becomes (see the module docstring)."""
    column_type = stmt.selected_columns[name].type
    if isinstance(column_type, sa.DateTime):
        return "time"
    if isinstance(column_type, sa.Integer):
        return "int"
    return "text"


def fetch_columns(conn: Connection, stmt: sa.Select) -> dict[str, np.ndarray]:
    """Run ``stmt`` on ``conn`` and return its columns by name, as the module docstring says."""
    names = list(stmt.selected_columns.keys())
    kinds = {name: _kind(stmt, name) for name in names}
    if conn.dialect.name == "duckdb":
        return _duckdb_columns(conn, stmt, kinds)
    if conn.dialect.name != "postgresql":
        raise TypeError(f"no columnar fetch for the {conn.dialect.name} dialect")
    if "text" in kinds.values():
        if "time" in kinds.values():
            raise TypeError("on PostgreSQL a columnar SELECT with text columns cannot have DateTime columns; "
                            "select the time as epoch microseconds")
        return _copy_csv(conn, stmt, kinds)
    copied = _copy_binary(conn, stmt, kinds)
    if copied is None:  # not the fixed binary layout after all: one tuple per row
        rows = conn.execute(stmt).fetchall()
        copied = {name: (np.array([r[i] for r in rows], dtype="datetime64[us]").astype(np.int64) if kind == "time"
                         else np.array([r[i] for r in rows], dtype=np.int64))
                  for i, (name, kind) in enumerate(kinds.items())}
    return copied


def _unmasked(col: np.ndarray, *, nulls: bool = False) -> np.ndarray:
    """A DuckDB column without its NULL mask: NULL becomes None (object columns, or ``nulls``) or 0."""
    if not isinstance(col, np.ma.MaskedArray):
        return np.asarray(col, dtype=object) if nulls else np.asarray(col)
    missing = np.ma.getmaskarray(col)
    if nulls or col.dtype == object:
        out = np.asarray(col.data, dtype=object).copy()
        out[missing] = None  # .filled(None) would fill with numpy's default "?", not None
        return out
    return col.filled(0)


def _duckdb_columns(conn: Connection, stmt: sa.Select, kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """DuckDB's numpy arrays as they are; timestamps (datetime64[us]) viewed as int64, no copy."""
    raw = conn.execute(stmt).cursor.fetchnumpy()
    out: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        col = _unmasked(raw[name], nulls=kind == "text")
        if kind == "time":
            col = col.astype("datetime64[us]", copy=False).view(np.int64)
        elif col.dtype.kind in "iu":
            col = col.astype(np.int64, copy=False)
        out[name] = col
    return out


def _copy(conn: Connection, stmt: sa.Select, options: str) -> io.BytesIO:
    """PostgreSQL: ``COPY (stmt) TO STDOUT WITH (options)`` into memory."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()
    try:
        sql = cursor.mogrify(str(compiled), compiled.params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH ({options})", buffer)
    finally:
        cursor.close()
    return buffer


def _copy_binary(conn: Connection, stmt: sa.Select, kinds: dict[str, str]) -> dict[str, np.ndarray] | None:
    """PostgreSQL: NOT NULL BIGINT or TIMESTAMP columns through COPY ... (FORMAT binary); None when the
    stream is not the fixed layout expected (then the caller fetches rows)."""
    data = _copy(conn, stmt, "FORMAT binary").getbuffer()
    # Header: 11-byte signature, int32 flags, int32 extension length; trailer: int16 -1.
    start = 19 + int.from_bytes(data[15:19], "big")
    layout = [("fields", ">i2")]
    for name in kinds:
        layout += [(f"{name}_len", ">i4"), (name, ">i8")]
    body = data[start:len(data) - 2]
    if len(body) % np.dtype(layout).itemsize:
        return None
    records = np.frombuffer(body, dtype=layout)
    if len(records) and ((records["fields"] != len(kinds)).any()
                         or any((records[f"{name}_len"] != 8).any() for name in kinds)):
        return None
    out = {name: records[name].astype(np.int64) for name in kinds}
    for name, kind in kinds.items():
        if kind == "time":
            out[name] += _PG_EPOCH_US  # binary timestamps count from 2000-01-01
    return out


def _copy_csv(conn: Connection, stmt: sa.Select, kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """PostgreSQL: integer and text columns through COPY ... CSV, parsed by pyarrow: a few times faster
    than a tuple per row. NULL stays None, an empty string stays ''."""
    buffer = _copy(conn, stmt, "FORMAT csv")
    names = [f"c{i}" for i in range(len(kinds))]  # result names may repeat or need quoting; positions do not
    if not buffer.getbuffer().nbytes:
        return {name: np.zeros(0, np.int64) if kind == "int" else np.zeros(0, object) for name, kind in kinds.items()}
    buffer.seek(0)
    types = {c: pa.int64() if kind == "int" else pa.string() for c, kind in zip(names, kinds.values(), strict=True)}
    table = pacsv.read_csv(
        buffer, read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                             quoted_strings_can_be_null=False))
    return {name: np.asarray(table.column(i).to_numpy(zero_copy_only=False),
                             dtype=np.int64 if kind == "int" else object)
            for i, (name, kind) in enumerate(kinds.items())}


def fetch_frame(conn: Connection, stmt: sa.Select) -> pd.DataFrame:
    """The rows of ``stmt`` as a DataFrame, one column per selected column. DuckDB hands its result
    over as columns (``.df()``); other drivers build it from the fetched rows."""
    if conn.dialect.name == "duckdb":
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        return conn.connection.driver_connection.execute(str(compiled)).df()
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
