"""daily_activity: trader_events rolled up per trader, event and UTC day.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_activity",
        sa.Column("trader_id", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("day", sa.DateTime, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("amount_usd", sa.Numeric(18, 2, asdecimal=False)),
        sa.Column("first_at", sa.DateTime, nullable=False),
        sa.Column("last_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_daily_activity_event_day", "daily_activity", ["event", "day"])
    op.create_index("ix_daily_activity_trader", "daily_activity", ["trader_id", "day"])
    # Fill it from whatever the database already holds (a no-op on an empty one).
    op.execute(
        "INSERT INTO daily_activity (trader_id, event, day, events, amount_usd, first_at, last_at) "
        "SELECT trader_id, event, CAST(date_trunc('day', occurred_at) AS TIMESTAMP), COUNT(*), "
        "SUM(amount_usd), MIN(occurred_at), MAX(occurred_at) FROM trader_events "
        "GROUP BY trader_id, event, CAST(date_trunc('day', occurred_at) AS TIMESTAMP)"
    )


def downgrade() -> None:
    op.drop_index("ix_daily_activity_trader", "daily_activity")
    op.drop_index("ix_daily_activity_event_day", "daily_activity")
    op.drop_table("daily_activity")
