"""Trading rollups: daily_trading (closed positions per trader, UTC close day and asset class),
trading_days (the days each trader opened or closed a position) and trader_firsts (first opening,
approved deposit and login per trader).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Money = sa.Numeric(18, 2, asdecimal=False)


def upgrade() -> None:
    op.create_table(
        "daily_trading",
        sa.Column("trader_id", sa.BigInteger, nullable=False),
        sa.Column("day", sa.DateTime, nullable=False),
        sa.Column("asset_class", sa.String(16)),
        sa.Column("closed", sa.Integer, nullable=False),
        sa.Column("carried", sa.Integer, nullable=False),
        sa.Column("costed", sa.Integer, nullable=False),
        sa.Column("lots", sa.Numeric(12, 2, asdecimal=False), nullable=False),
        sa.Column("notional_usd", Money),
        sa.Column("profit_usd", Money, nullable=False),
        sa.Column("commission_usd", Money, nullable=False),
        sa.Column("swap_usd", Money, nullable=False),
        sa.Column("client_pnl_usd", Money, nullable=False),
        sa.Column("first_opened_at", sa.DateTime, nullable=False),
        sa.Column("last_closed_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_daily_trading_day", "daily_trading", ["day"])
    op.create_index("ix_daily_trading_trader", "daily_trading", ["trader_id", "day"])
    # Fill it from whatever the database already holds (a no-op on an empty one); the same
    # statement as connectors.rollups, frozen here as SQL so later edits there cannot change history.
    op.execute(
        "INSERT INTO daily_trading (trader_id, day, asset_class, closed, carried, costed, lots, notional_usd, "
        "profit_usd, commission_usd, swap_usd, client_pnl_usd, first_opened_at, last_closed_at) "
        "SELECT trader_id, CAST(date_trunc('day', closed_at) AS TIMESTAMP), asset_class, COUNT(*), "
        "COALESCE(SUM(CASE WHEN CAST(date_trunc('day', opened_at) AS TIMESTAMP) "
        "<> CAST(date_trunc('day', closed_at) AS TIMESTAMP) THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN commission_usd <> 0 OR swap_usd <> 0 THEN 1 ELSE 0 END), 0), "
        "SUM(lots), SUM(notional_usd), SUM(profit_usd), SUM(commission_usd), SUM(swap_usd), "
        "SUM(profit_usd + commission_usd + swap_usd), "
        "MIN(opened_at), MAX(closed_at) FROM trades "
        "GROUP BY trader_id, CAST(date_trunc('day', closed_at) AS TIMESTAMP), asset_class ORDER BY 1, 2"
    )
    op.create_table(
        "trading_days",
        sa.Column("trader_id", sa.BigInteger, nullable=False),
        sa.Column("day", sa.DateTime, nullable=False),
        sa.Column("opened", sa.Integer, nullable=False),
        sa.Column("closed", sa.Integer, nullable=False),
    )
    op.create_index("ix_trading_days_day", "trading_days", ["day"])
    op.create_index("ix_trading_days_trader", "trading_days", ["trader_id", "day"])
    op.execute(
        "INSERT INTO trading_days (trader_id, day, opened, closed) "
        "SELECT trader_id, day, SUM(opened), SUM(closed) FROM ("
        "SELECT trader_id, CAST(date_trunc('day', opened_at) AS TIMESTAMP) AS day, 1 AS opened, 0 AS closed "
        "FROM trades UNION ALL "
        "SELECT trader_id, CAST(date_trunc('day', closed_at) AS TIMESTAMP), 0, 1 FROM trades) AS moves "
        "GROUP BY trader_id, day ORDER BY trader_id, day"
    )
    op.create_table(
        "trader_firsts",
        sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_trade_at", sa.DateTime),
        sa.Column("first_deposit_at", sa.DateTime),
        sa.Column("first_login_at", sa.DateTime),
    )
    op.execute(
        "INSERT INTO trader_firsts (trader_id, first_trade_at, first_deposit_at, first_login_at) "
        "SELECT trader_id, MIN(first_at) FILTER (WHERE event = 'trade'), "
        "MIN(first_at) FILTER (WHERE event = 'deposit'), MIN(first_at) FILTER (WHERE event = 'login') "
        "FROM daily_activity WHERE event IN ('trade', 'deposit', 'login') GROUP BY trader_id ORDER BY trader_id"
    )
    # Planner statistics for the new table now rather than whenever autovacuum gets to it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE daily_trading")
        op.execute("ANALYZE trading_days")
        op.execute("ANALYZE trader_firsts")
        op.execute("ANALYZE daily_activity")


def downgrade() -> None:
    op.drop_table("trader_firsts")
    op.drop_index("ix_trading_days_trader", "trading_days")
    op.drop_index("ix_trading_days_day", "trading_days")
    op.drop_table("trading_days")
    op.drop_index("ix_daily_trading_trader", "daily_trading")
    op.drop_index("ix_daily_trading_day", "daily_trading")
    op.drop_table("daily_trading")
