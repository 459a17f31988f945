"""quality history: dataset profiles, metrics, scores, alert incidents and deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 21:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dataset_profiles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset", "version"),
    )
    op.create_index("ix_dataset_profiles_dataset", "dataset_profiles", ["dataset"])

    op.create_table(
        "quality_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("metric", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=True),
        _ts("measured_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quality_metrics_dataset", "quality_metrics", ["dataset"])
    op.create_index("ix_quality_metrics_run_id", "quality_metrics", ["run_id"])
    op.create_index("ix_quality_metrics_measured_at", "quality_metrics", ["measured_at"])

    op.create_table(
        "quality_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("completeness", sa.Float(), nullable=True),
        sa.Column("validity", sa.Float(), nullable=True),
        sa.Column("consistency", sa.Float(), nullable=True),
        sa.Column("timeliness", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("measured_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quality_scores_dataset", "quality_scores", ["dataset"])
    op.create_index("ix_quality_scores_measured_at", "quality_scores", ["measured_at"])

    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        _ts("opened_at"),
        _ts("last_seen_at"),
        _ts("resolved_at", nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_incidents_status", "alert_incidents", ["status"])

    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("sent_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_deliveries_incident_id", "alert_deliveries", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_incident_id", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_incidents_status", table_name="alert_incidents")
    op.drop_table("alert_incidents")
    op.drop_index("ix_quality_scores_measured_at", table_name="quality_scores")
    op.drop_index("ix_quality_scores_dataset", table_name="quality_scores")
    op.drop_table("quality_scores")
    op.drop_index("ix_quality_metrics_measured_at", table_name="quality_metrics")
    op.drop_index("ix_quality_metrics_run_id", table_name="quality_metrics")
    op.drop_index("ix_quality_metrics_dataset", table_name="quality_metrics")
    op.drop_table("quality_metrics")
    op.drop_index("ix_dataset_profiles_dataset", table_name="dataset_profiles")
    op.drop_table("dataset_profiles")
