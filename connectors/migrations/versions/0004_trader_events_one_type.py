"""trader_events: every branch's event name of one type, so filters on it reach the tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Migration 0001's view named most events with a TEXT literal but kind and portal events with
VARCHAR columns. With the branches of a UNION ALL of different types PostgreSQL cannot push a
filter such as ``event = 'trade'`` into them: it read every table behind the view (all trades,
sessions, ledger entries) and filtered afterwards. Every branch now casts the name to VARCHAR(64)
and names one event, so PostgreSQL drops the branches whose name cannot match and reads trades
alone. The rows are unchanged; the rollups need no rebuild.

The view's SQL below is what connectors.schema.trader_events_view_sql() generates from the event
definitions there, frozen as migrations are (tests/connectors/test_database.py checks that the
newest view SQL of the migrations is still the one the schema module generates).
"""

from __future__ import annotations

from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trader_events")
    op.execute(TRADER_EVENTS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trader_events")
    op.execute(context.script.get_revision("0001").module.TRADER_EVENTS_VIEW)


TRADER_EVENTS_VIEW = """
CREATE VIEW trader_events AS
SELECT traders.trader_id, CAST('lead_captured' AS VARCHAR(64)) AS event, traders.lead_at AS occurred_at,
       CAST('traders' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM traders
WHERE traders.lead_at IS NOT NULL
UNION ALL
SELECT traders.trader_id, CAST('registered' AS VARCHAR(64)) AS event,
       traders.registered_at AS occurred_at, CAST('traders' AS VARCHAR(16)) AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM traders
WHERE traders.registered_at IS NOT NULL
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_submitted' AS VARCHAR(64)) AS event,
       kyc_events.occurred_at AS occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE (kyc_events.status NOT IN ('approved', 'rejected'))
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_approved' AS VARCHAR(64)) AS event,
       kyc_events.occurred_at AS occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE kyc_events.status = 'approved'
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_rejected' AS VARCHAR(64)) AS event,
       kyc_events.occurred_at AS occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE kyc_events.status = 'rejected'
UNION ALL
SELECT transactions.trader_id, CAST('deposit' AS VARCHAR(64)) AS event,
       transactions.created_at AS occurred_at, CAST('transactions' AS VARCHAR(16)) AS source,
       transactions.amount_usd AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status = 'approved'
UNION ALL
SELECT ranked_deposits.trader_id, CAST('ftd' AS VARCHAR(64)) AS event,
       ranked_deposits.created_at AS occurred_at, CAST('transactions' AS VARCHAR(16)) AS source,
       ranked_deposits.amount_usd AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM (SELECT transactions.trader_id AS trader_id, transactions.txn_id AS txn_id,
       transactions.created_at AS created_at, transactions.amount_usd AS amount_usd,
       row_number() OVER (PARTITION BY transactions.trader_id ORDER BY transactions.created_at,
       transactions.txn_id) AS rn
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status = 'approved') AS ranked_deposits
WHERE ranked_deposits.rn = 1
UNION ALL
SELECT transactions.trader_id, CAST('deposit_declined' AS VARCHAR(64)) AS event,
       transactions.created_at AS occurred_at, CAST('transactions' AS VARCHAR(16)) AS source,
       transactions.amount_usd AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status = 'declined'
UNION ALL
SELECT transactions.trader_id, CAST('withdrawal' AS VARCHAR(64)) AS event,
       transactions.created_at AS occurred_at, CAST('transactions' AS VARCHAR(16)) AS source,
       transactions.amount_usd AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'withdrawal' AND transactions.status = 'approved'
UNION ALL
SELECT trades.trader_id, CAST('trade' AS VARCHAR(64)) AS event, trades.opened_at AS occurred_at,
       CAST('trades' AS VARCHAR(16)) AS source, trades.notional_usd AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM trades
UNION ALL
SELECT sessions.trader_id, CAST('login' AS VARCHAR(64)) AS event, sessions.started_at AS occurred_at,
       CAST('sessions' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM sessions
UNION ALL
SELECT portal_events.trader_id, CAST(portal_events.event AS VARCHAR(64)) AS event,
       portal_events.occurred_at, CAST('portal_events' AS VARCHAR(16)) AS source,
       CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, portal_events.properties AS properties
FROM portal_events
"""
