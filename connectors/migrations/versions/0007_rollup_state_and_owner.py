"""What the rollups were built for (rollup_state), and each trader's owner (account manager).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The rollups bucket events by day in the reporting time zone (TRADERLENS_REPORTING_TZ); the day
of an event depends on that zone, so the database records which zone, and which version of the
rollup definitions, its rollups were built with (connectors.rollups reads it and rebuilds when
either differs). Rollups built before this revision were built in UTC by version 1.

``traders.owner`` names the broker's employee who looks after the trader (account manager or
retention agent), the column a retention team sorts its call lists by.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.bulk_insert(state, [{"name": "reporting_tz", "value": "UTC"}, {"name": "version", "value": "1"}])
    columns = op.get_bind().exec_driver_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'traders'").scalars()
    if "owner" in set(columns):
        return  # left by a DuckDB downgrade (below)
    with _view_set_aside():
        op.add_column("traders", sa.Column("owner", sa.String(80)))


def downgrade() -> None:
    op.drop_table("rollup_state")
    # DuckDB cannot drop a column of a table that other tables reference by foreign key: there the
    # (nullable) column stays, and upgrading again keeps it.
    if op.get_bind().dialect.name != "duckdb":
        op.drop_column("traders", "owner")


@contextlib.contextmanager
def _view_set_aside() -> Iterator[None]:
    """DuckDB refuses to alter a table a view reads ("entries that depend on it"): drop the
    trader_events view around the change and create it again from its own stored definition."""
    bind = op.get_bind()
    if bind.dialect.name != "duckdb":
        yield
        return
    sql = bind.exec_driver_sql(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'trader_events' AND NOT internal").scalar_one_or_none()
    if sql is not None:
        op.execute("DROP VIEW trader_events")
    yield
    if sql is not None:
        op.execute(sql)
