"""People and their roles, claims on tasks, the operation log, instance summaries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_account",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_user_account")),
    )
    op.create_table(
        "operation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_operation_prev_hash")),
    )
    with op.batch_alter_table("operation", schema=None) as batch_op:
        batch_op.create_index("ix_operation_at", ["at"], unique=False)
        batch_op.create_index("ix_operation_actor_at", ["actor", "at"], unique=False)

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_task_state_claimed", ["state", "claimed_by"], unique=False)

    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_column("summary")

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_state_claimed")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by")

    with op.batch_alter_table("operation", schema=None) as batch_op:
        batch_op.drop_index("ix_operation_actor_at")
        batch_op.drop_index("ix_operation_at")

    op.drop_table("operation")
    op.drop_table("user_account")
