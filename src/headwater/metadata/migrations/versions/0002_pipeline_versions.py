"""pipeline versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:00:00

``pipeline_versions`` keeps the text of every pipeline that ran, by its SHA-256 (a run
records the hash in its params); ``step_outputs`` keeps the dataset versions each
succeeded step left, which a resume reads.
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
        "pipeline_versions",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    with op.batch_alter_table("pipeline_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_versions_pipeline"), ["pipeline"], unique=False
        )
    op.create_table(
        "step_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=255), nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step", "dataset"),
    )
    with op.batch_alter_table("step_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_step_outputs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_outputs_run_id"))
    op.drop_table("step_outputs")
    with op.batch_alter_table("pipeline_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_versions_pipeline"))
    op.drop_table("pipeline_versions")
