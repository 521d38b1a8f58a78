"""Initial consolidated trader database and the trader_events view.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

A migration is a frozen snapshot: it spells out its tables instead of importing
connectors.schema, so later schema edits cannot rewrite history. tests/connectors/test_database.py
checks that migrating an empty database yields exactly connectors.schema.metadata.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Money = sa.Numeric(18, 2, asdecimal=False)
Lots = sa.Numeric(12, 2, asdecimal=False)


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, primary_key=True, autoincrement=False)


def _external_id() -> sa.Column:
    return sa.Column("external_id", sa.String(64), nullable=False, unique=True)


def _trader_fk() -> sa.Column:
    return sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False)


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())


def upgrade() -> None:
    op.create_table(
        "traders",
        _id("trader_id"), _external_id(),
        sa.Column("lead_at", sa.DateTime),
        sa.Column("registered_at", sa.DateTime),
        sa.Column("first_name", sa.String(80)),
        sa.Column("last_name", sa.String(80)),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(32)),
        sa.Column("country", sa.String(2)),
        sa.Column("language", sa.String(8)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("acquisition_channel", sa.String(32)),
        sa.Column("campaign_source", sa.String(64)),
        sa.Column("affiliate_id", sa.String(64)),
        sa.Column("kyc_status", sa.String(16), nullable=False, server_default="none"),
        sa.Column("kyc_approved_at", sa.DateTime),
        sa.Column("vip_tier", sa.String(16)),
        _flag("is_test"), _flag("is_blocked"),
        _flag("consent_email"), _flag("consent_sms"), _flag("consent_push"), _flag("consent_whatsapp"),
        sa.Column("source", sa.String(16), nullable=False, server_default="import"),
    )
    op.create_index("ix_traders_registered_at", "traders", ["registered_at"])

    op.create_table(
        "accounts",
        _id("account_id"), _external_id(), _trader_fk(),
        sa.Column("platform", sa.String(8), nullable=False),
        sa.Column("server", sa.String(64)),
        sa.Column("login", sa.String(32), nullable=False),
        sa.Column("account_group", sa.String(64)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("leverage", sa.Integer),
        _flag("is_demo"),
        sa.Column("opened_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_accounts_trader", "accounts", ["trader_id", "opened_at"])

    op.create_table(
        "trades",
        _id("trade_id"), _external_id(),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.account_id")),
        _trader_fk(),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("asset_class", sa.String(16)),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("lots", Lots, nullable=False),
        sa.Column("notional_usd", Money),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("closed_at", sa.DateTime, nullable=False),
        sa.Column("open_price", sa.Double, nullable=False),
        sa.Column("close_price", sa.Double, nullable=False),
        sa.Column("profit_usd", Money, nullable=False),
        sa.Column("commission_usd", Money, nullable=False, server_default="0"),
        sa.Column("swap_usd", Money, nullable=False, server_default="0"),
        sa.Column("leverage_used", sa.Double),
        sa.Column("close_reason", sa.String(16)),
        sa.Column("channel", sa.String(16)),
    )
    op.create_index("ix_trades_trader_opened", "trades", ["trader_id", "opened_at"])
    op.create_index("ix_trades_opened", "trades", ["opened_at"])

    op.create_table(
        "transactions",
        _id("txn_id"), _external_id(), _trader_fk(),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.account_id")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_usd", Money, nullable=False),
        sa.Column("method", sa.String(32)),
        sa.Column("psp", sa.String(32)),
        sa.Column("comment", sa.String(255)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_transactions_trader_created", "transactions", ["trader_id", "created_at"])
    op.create_index("ix_transactions_created", "transactions", ["created_at"])

    op.create_table(
        "kyc_events",
        _id("kyc_event_id"), _external_id(), _trader_fk(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255)),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_kyc_events_trader_time", "kyc_events", ["trader_id", "occurred_at"])

    op.create_table(
        "sessions",
        _id("session_id"), _external_id(), _trader_fk(),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("duration_s", sa.Integer, nullable=False),
        sa.Column("surface", sa.String(16), nullable=False),
    )
    op.create_index("ix_sessions_trader_started", "sessions", ["trader_id", "started_at"])

    op.create_table(
        "portal_events",
        _id("portal_event_id"), _external_id(), _trader_fk(),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("properties", sa.Text),
    )
    op.create_index("ix_portal_events_trader_time", "portal_events", ["trader_id", "occurred_at"])

    op.create_table(
        "imports",
        _id("import_id"),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_inserted", sa.Integer, nullable=False),
        sa.Column("rows_skipped", sa.Integer, nullable=False),
        sa.Column("imported_at", sa.DateTime, nullable=False),
    )

    op.execute(TRADER_EVENTS_VIEW)


# Portable SQL (DuckDB and PostgreSQL). FTD is each trader's first approved deposit; ties at one
# timestamp are broken by txn_id so exactly one deposit is the FTD.
TRADER_EVENTS_VIEW = """
CREATE VIEW trader_events AS
SELECT trader_id, 'lead_captured' AS event, lead_at AS occurred_at, 'traders' AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS TEXT) AS properties
  FROM traders WHERE lead_at IS NOT NULL
UNION ALL
SELECT trader_id, 'registered', registered_at, 'traders', NULL, NULL
  FROM traders WHERE registered_at IS NOT NULL
UNION ALL
SELECT trader_id,
       CASE WHEN status = 'approved' THEN 'kyc_approved'
            WHEN status = 'rejected' THEN 'kyc_rejected'
            ELSE 'kyc_submitted' END,
       occurred_at, 'kyc_events', NULL, NULL
  FROM kyc_events
UNION ALL
SELECT trader_id,
       CASE WHEN status = 'declined' THEN 'deposit_declined' ELSE kind END,
       created_at, 'transactions', amount_usd, NULL
  FROM transactions
 WHERE (kind IN ('deposit', 'withdrawal') AND status = 'approved')
    OR (kind = 'deposit' AND status = 'declined')
UNION ALL
SELECT trader_id, 'ftd', created_at, 'transactions', amount_usd, NULL
  FROM (SELECT trader_id, created_at, amount_usd,
               ROW_NUMBER() OVER (PARTITION BY trader_id ORDER BY created_at, txn_id) AS rn
          FROM transactions WHERE kind = 'deposit' AND status = 'approved') AS firsts
 WHERE rn = 1
UNION ALL
SELECT trader_id, 'trade', opened_at, 'trades', notional_usd, NULL FROM trades
UNION ALL
SELECT trader_id, 'login', started_at, 'sessions', NULL, NULL FROM sessions
UNION ALL
SELECT trader_id, event, occurred_at, 'portal_events', NULL, properties FROM portal_events
"""


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trader_events")
    for table in ("imports", "portal_events", "sessions", "kyc_events", "transactions", "trades",
                  "accounts", "traders"):
        op.drop_table(table)
