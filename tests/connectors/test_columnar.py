"""connectors.columnar on DuckDB and PostgreSQL: a SELECT's columns as numpy arrays by their SQL type
(integers and timestamps as int64, text as str or None), the same on both backends and through
PostgreSQL's fallback to rows; and analytics never reaches the driver itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from connectors import columnar
from connectors.schema import traders

ROOT = Path(__file__).resolve().parents[2]
ROWS = [  # (trader_id, registered_at, country)
    (1, datetime(1999, 12, 31, 23, 59, 59, 999_999), "DE"),  # before PostgreSQL's binary epoch
    (2, datetime(2026, 3, 2, 12, 0, 0, 1), None),
    (3, datetime(1970, 1, 1), ""),
]


def epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


@pytest.fixture
def filled(engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(traders.insert(), [{"trader_id": i, "external_id": f"x{i}", "registered_at": at, "country": c}
                                        for i, at, c in ROWS])
    return engine


def fetch(engine: sa.Engine, stmt: sa.Select) -> dict[str, np.ndarray]:
    with engine.connect() as conn:
        return columnar.fetch_columns(conn, stmt)


def test_integers_and_timestamps_arrive_as_int64_exact_to_the_microsecond(filled, monkeypatch):
    stmt = sa.select(traders.c.trader_id, traders.c.registered_at.label("at")).order_by(traders.c.trader_id)
    expected = {"trader_id": [1, 2, 3], "at": [epoch_us(at) for _, at, _ in ROWS]}
    columns = fetch(filled, stmt)
    assert list(columns) == ["trader_id", "at"]
    assert all(col.dtype == np.int64 for col in columns.values())
    assert {name: col.tolist() for name, col in columns.items()} == expected
    monkeypatch.setattr(columnar, "_copy_binary", lambda *args: None)  # PostgreSQL's fallback to rows
    assert {name: col.tolist() for name, col in fetch(filled, stmt).items()} == expected


def test_text_keeps_null_apart_from_the_empty_string(filled):
    columns = fetch(filled, sa.select(traders.c.trader_id, traders.c.country).order_by(traders.c.trader_id))
    assert columns["trader_id"].dtype == np.int64 and columns["country"].dtype == object
    assert columns["country"].tolist() == ["DE", None, ""]


def test_an_empty_result_has_empty_columns_of_each_kind(filled):
    for stmt in (sa.select(traders.c.trader_id, traders.c.registered_at).where(sa.false()),
                 sa.select(traders.c.trader_id, traders.c.country).where(sa.false())):
        columns = fetch(filled, stmt)
        assert [len(col) for col in columns.values()] == [0, 0]
        assert columns["trader_id"].dtype == np.int64


def test_text_with_timestamps_is_refused_on_postgresql_only(filled):
    stmt = sa.select(traders.c.registered_at, traders.c.country).order_by(traders.c.trader_id)
    if filled.dialect.name == "postgresql":
        with pytest.raises(TypeError, match="epoch microseconds"):
            fetch(filled, stmt)
    else:
        columns = fetch(filled, stmt)
        assert columns["registered_at"].tolist() == [epoch_us(at) for _, at, _ in ROWS]


def test_analytics_never_reaches_past_sqlalchemy_to_the_driver():
    driver = re.compile(r"driver_connection|\.dbapi_connection|fetchnumpy|copy_expert|\.cursor\b")
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "analytics").rglob("*.py"))
                 if driver.search(path.read_text())]
    assert offenders == []
