"""The change history of imported rows: what a re-import changed, from what to what, who and when.

An import that brings a row again with other values (a deposit gone from pending to approved, a
withdrawal reversed, a consent withdrawn) updates the row and keeps one ``row_changes`` row per
changed column (connectors/importers/updates.py writes them; docs/import_formats.md says which
columns can change).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.reading import reading
from connectors.schema import row_changes

CHANGE_COLUMNS = ["changed_at", "table_name", "external_id", "column_name", "old_value", "new_value",
                  "import_id", "file_name", "changed_by", "row_id"]
MAX_CHANGES = 100_000


def compute_row_changes(engine: Engine, *, external_id: str | None = None, import_id: int | None = None,
                        table: str | None = None, limit: int = 1_000) -> pd.DataFrame:
    """Changes made by imports, newest first, optionally of one row (``external_id``, and
    ``table`` where ids repeat across tables), one import or one table; at most ``limit`` rows.

    Columns: ``changed_at`` (naive UTC datetime), ``table_name``, ``external_id``, ``column_name``,
    ``old_value``, ``new_value`` (text; None for an empty value), ``import_id`` (int),
    ``file_name``, ``changed_by`` (str), ``row_id`` (int, the row's id in its table).
    """
    c = row_changes.c
    conditions = []
    if external_id is not None:
        conditions.append(c.external_id == external_id)
    if import_id is not None:
        conditions.append(c.import_id == import_id)
    if table is not None:
        conditions.append(c.table_name == table)
    query = (sa.select(*(c[name] for name in CHANGE_COLUMNS)).where(*conditions)
             .order_by(c.changed_at.desc(), c.change_id.desc()).limit(max(0, min(limit, MAX_CHANGES))))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame.from_records(rows, columns=CHANGE_COLUMNS)
    frame["changed_at"] = pd.to_datetime(frame["changed_at"])
    return frame


__all__ = ["CHANGE_COLUMNS", "MAX_CHANGES", "compute_row_changes"]
