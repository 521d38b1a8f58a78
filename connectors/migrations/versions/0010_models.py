"""Trained models, their scorings, every trader's latest scores and background training jobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``model_runs`` keeps each trained churn / deposit / FTD model (status candidate, active or retired;
the card's figures; the XGBoost model as JSON); ``score_runs`` each scoring with its drift;
``model_scores`` each trader's latest probability and stored explanation per model; ``model_jobs``
the training requested from the app, with its progress. No foreign keys to traders (see 0009).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, primary_key=True, autoincrement=False)


def upgrade() -> None:
    op.create_table(
        "model_runs",
        _id("run_id"),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("trained_at", sa.DateTime, nullable=False),
        sa.Column("trained_by", sa.String(80), nullable=False),
        sa.Column("cutoff", sa.DateTime, nullable=False),
        *(sa.Column(c, sa.Text, nullable=False) for c in (
            "snapshots", "params", "features", "metrics", "calibration", "summary", "reference", "medians",
            "artifact")),
        sa.Column("promoted_at", sa.DateTime),
        sa.Column("promoted_by", sa.String(80)),
        sa.UniqueConstraint("model", "version", name="uq_model_runs_version"),
    )
    op.create_table(
        "score_runs",
        _id("score_run_id"),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("scored_at", sa.DateTime, nullable=False),
        sa.Column("scored_by", sa.String(80), nullable=False),
        sa.Column("traders", sa.Integer, nullable=False),
        sa.Column("duration_s", sa.Float),
        sa.Column("distribution", sa.Text),
        sa.Column("drift", sa.Text),
    )
    op.create_table(
        "model_scores",
        sa.Column("model", sa.String(16), primary_key=True),
        _id("trader_id"),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("score_run_id", sa.BigInteger, nullable=False),
        sa.Column("probability", sa.Double, nullable=False),
        sa.Column("band", sa.String(12), nullable=False),
        sa.Column("decile", sa.Integer, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
    )
    op.create_index("ix_model_scores_probability", "model_scores", ["model", "probability"])
    op.create_table(
        "model_jobs",
        _id("job_id"),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
        sa.Column("as_of", sa.DateTime),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("run_id", sa.BigInteger),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    op.drop_index("ix_model_scores_probability", table_name="model_scores")
    for table in ("model_jobs", "model_scores", "score_runs", "model_runs"):
        op.drop_table(table)
