"""quality results

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check_result_id", sa.Integer(), nullable=False),
        sa.Column("observed", sa.JSON(), nullable=True),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["check_result_id"], ["check_results.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("check_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_check_samples_check_result_id"), ["check_result_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("check_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_samples_check_result_id"))
    op.drop_table("check_samples")
