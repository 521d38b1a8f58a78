"""Saved clustering runs and their assignments, and saved segments with their versions, members
and membership changes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

``clustering_runs`` keeps a behavioural clustering (features, settings, the model that assigns new
traders without a refit, the named clusters and their diagnostics); ``cluster_assignments`` each
trader's cluster in it (-1 for noise). ``segments`` holds named, versioned definitions (kind
``rules``, ``cluster``, ``list`` or ``funnel_step``), ``segment_versions`` every saved definition,
``segment_members`` the members as of the last refresh and ``segment_changes`` every member who
entered or left, with its time (a segment's size over time and the "entered segment" event).

None of these tables references traders by foreign key: DuckDB cannot update a parent row that a
foreign key references, and imports update traders. No view reads them, so nothing is set aside.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, primary_key=True, autoincrement=False)


def upgrade() -> None:
    op.create_table(
        "clustering_runs",
        _id("run_id"),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("k", sa.Integer),
        sa.Column("seed", sa.Integer),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("settings", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("clusters", sa.Text),
        sa.Column("diagnostics", sa.Text),
    )
    op.create_table(
        "cluster_assignments",
        _id("run_id"),
        _id("trader_id"),
        sa.Column("cluster", sa.Integer, nullable=False),
    )
    op.create_table(
        "segments",
        _id("segment_id"),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
        sa.Column("refreshed_at", sa.DateTime),
        sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "segment_versions",
        _id("segment_id"),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("saved_at", sa.DateTime, nullable=False),
        sa.Column("saved_by", sa.String(80), nullable=False),
    )
    op.create_table(
        "segment_members",
        _id("segment_id"),
        _id("trader_id"),
        sa.Column("entered_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "segment_changes",
        _id("change_id"),
        sa.Column("segment_id", sa.BigInteger, nullable=False),
        sa.Column("trader_id", sa.BigInteger, nullable=False),
        sa.Column("change", sa.String(8), nullable=False),
        sa.Column("changed_at", sa.DateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_segment_changes_segment", "segment_changes", ["segment_id", "changed_at"])
    op.create_index("ix_segment_changes_trader", "segment_changes", ["trader_id", "changed_at"])


def downgrade() -> None:
    op.drop_index("ix_segment_changes_trader", table_name="segment_changes")
    op.drop_index("ix_segment_changes_segment", table_name="segment_changes")
    for table in ("segment_changes", "segment_members", "segment_versions", "segments",
                  "cluster_assignments", "clustering_runs"):
        op.drop_table(table)
