"""Change history of imported rows, import counts of updated and unchanged rows, and the FTD of a
deposit taken back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Re-importing a row with the same external id now updates its mutable fields (a deposit going from
pending to approved, a withdrawal reversed) instead of keeping the old state. ``row_changes`` keeps
every such change (table, row, column, old and new value as text, the import, file, who and when);
``imports`` gains ``rows_updated``, ``rows_unchanged`` and ``imported_by``.

The FTD is a trader's first deposit that was approved when it was made: a deposit reversed or
charged back later (the new ``chargeback`` status) stays the FTD, so the trader_events view's
``ftd`` branch reads deposits approved, reversed or charged back. The view's SQL below is what
connectors.schema.trader_events_view_sql() generates (tests/connectors/test_database.py keeps the
two equal). The rollups' ``ftd`` rows follow from connectors.rollups.ROLLUP_VERSION 2, which has
them rebuilt where a deposit was reversed (the only rows the new definition can change).

Neither table altered here is read by a view or referenced by a foreign key, so DuckDB alters
``imports`` in place (compare 0007).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "row_changes",
        sa.Column("change_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("import_id", sa.BigInteger, nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("row_id", sa.BigInteger, nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("column_name", sa.String(64), nullable=False),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("changed_by", sa.String(80), nullable=False),
        sa.Column("changed_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_row_changes_row", "row_changes", ["table_name", "external_id"])
    op.create_index("ix_row_changes_import", "row_changes", ["import_id"])
    op.add_column("imports", sa.Column("rows_updated", sa.Integer, nullable=False, server_default="0"))
    op.add_column("imports", sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0"))
    op.add_column("imports", sa.Column("imported_by", sa.String(80)))
    op.execute("DROP VIEW IF EXISTS trader_events")
    op.execute(TRADER_EVENTS_VIEW)
    # Rollups of version 1 differ from version 2 only for a trader with a deposit reversed (or
    # charged back) before any approved one: without such a deposit they are already version 2,
    # and need no rebuild (an empty database among them).
    taken_back = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM transactions WHERE kind = 'deposit' AND status IN ('reversed', 'chargeback')"
    ).scalar_one()
    if not taken_back:
        op.execute("UPDATE rollup_state SET value = '2' WHERE name = 'version' AND value = '1'")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trader_events")
    op.execute(context.script.get_revision("0004").module.TRADER_EVENTS_VIEW)
    for column in ("imported_by", "rows_unchanged", "rows_updated"):
        op.drop_column("imports", column)
    op.drop_index("ix_row_changes_import", table_name="row_changes")
    op.drop_index("ix_row_changes_row", table_name="row_changes")
    op.drop_table("row_changes")


TRADER_EVENTS_VIEW = """
CREATE VIEW trader_events AS
SELECT traders.trader_id, CAST('lead_captured' AS VARCHAR(64)) AS event, traders.lead_at AS occurred_at,
       CAST('traders' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS
       TEXT) AS properties
FROM traders
WHERE traders.lead_at IS NOT NULL
UNION ALL
SELECT traders.trader_id, CAST('registered' AS VARCHAR(64)) AS event, traders.registered_at AS occurred_at,
       CAST('traders' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS
       TEXT) AS properties
FROM traders
WHERE traders.registered_at IS NOT NULL
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_submitted' AS VARCHAR(64)) AS event, kyc_events.occurred_at AS
       occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE (kyc_events.status NOT IN ('approved', 'rejected'))
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_approved' AS VARCHAR(64)) AS event, kyc_events.occurred_at AS
       occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE kyc_events.status = 'approved'
UNION ALL
SELECT kyc_events.trader_id, CAST('kyc_rejected' AS VARCHAR(64)) AS event, kyc_events.occurred_at AS
       occurred_at, CAST('kyc_events' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM kyc_events
WHERE kyc_events.status = 'rejected'
UNION ALL
SELECT transactions.trader_id, CAST('deposit' AS VARCHAR(64)) AS event, transactions.created_at AS
       occurred_at, CAST('transactions' AS VARCHAR(16)) AS source, transactions.amount_usd AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status = 'approved'
UNION ALL
SELECT ranked_deposits.trader_id, CAST('ftd' AS VARCHAR(64)) AS event, ranked_deposits.created_at AS
       occurred_at, CAST('transactions' AS VARCHAR(16)) AS source, ranked_deposits.amount_usd AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM (SELECT transactions.trader_id AS trader_id, transactions.txn_id AS txn_id, transactions.created_at AS
       created_at, transactions.amount_usd AS amount_usd, row_number() OVER (PARTITION BY
       transactions.trader_id ORDER BY transactions.created_at, transactions.txn_id) AS rn
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status IN ('approved', 'reversed', 'chargeback')) AS
       ranked_deposits
WHERE ranked_deposits.rn = 1
UNION ALL
SELECT transactions.trader_id, CAST('deposit_declined' AS VARCHAR(64)) AS event, transactions.created_at AS
       occurred_at, CAST('transactions' AS VARCHAR(16)) AS source, transactions.amount_usd AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'deposit' AND transactions.status = 'declined'
UNION ALL
SELECT transactions.trader_id, CAST('withdrawal' AS VARCHAR(64)) AS event, transactions.created_at AS
       occurred_at, CAST('transactions' AS VARCHAR(16)) AS source, transactions.amount_usd AS amount_usd,
       CAST(NULL AS TEXT) AS properties
FROM transactions
WHERE transactions.kind = 'withdrawal' AND transactions.status = 'approved'
UNION ALL
SELECT trades.trader_id, CAST('trade' AS VARCHAR(64)) AS event, trades.opened_at AS occurred_at, CAST('trades'
       AS VARCHAR(16)) AS source, trades.notional_usd AS amount_usd, CAST(NULL AS TEXT) AS properties
FROM trades
UNION ALL
SELECT sessions.trader_id, CAST('login' AS VARCHAR(64)) AS event, sessions.started_at AS occurred_at,
       CAST('sessions' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd, CAST(NULL AS
       TEXT) AS properties
FROM sessions
UNION ALL
SELECT portal_events.trader_id, CAST(portal_events.event AS VARCHAR(64)) AS event, portal_events.occurred_at,
       CAST('portal_events' AS VARCHAR(16)) AS source, CAST(NULL AS NUMERIC(18, 2)) AS amount_usd,
       portal_events.properties AS properties
FROM portal_events
"""
