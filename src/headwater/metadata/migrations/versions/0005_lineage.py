"""lineage

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "column_lineage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=255), nullable=False),
        sa.Column("step", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("src_dataset", sa.String(length=255), nullable=False),
        sa.Column("src_column", sa.String(length=255), nullable=False),
        sa.Column("dst_dataset", sa.String(length=255), nullable=False),
        sa.Column("dst_column", sa.String(length=255), nullable=False),
        sa.Column("transformation", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("column_lineage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_column_lineage_pipeline"), ["pipeline"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_column_lineage_src_dataset"), ["src_dataset"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_column_lineage_dst_dataset"), ["dst_dataset"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("column_lineage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_column_lineage_dst_dataset"))
        batch_op.drop_index(batch_op.f("ix_column_lineage_src_dataset"))
        batch_op.drop_index(batch_op.f("ix_column_lineage_pipeline"))
    op.drop_table("column_lineage")
