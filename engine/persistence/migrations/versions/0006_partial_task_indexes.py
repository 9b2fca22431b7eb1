"""Escalated and claimed tasks indexed alone.

Few tasks are ever escalated or claimed, but the indexes on (state, escalated_to) and
(state, claimed_by) held every task and were rewritten each time any task changed
state. Partial indexes hold only the tasks that have an escalation or a claim; the
worklist's `escalated_to = ?` / `claimed_by = ?` still find them through the index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_state_escalated")
        batch_op.drop_index("ix_task_state_claimed")
    for name, column in (("ix_task_escalated", "escalated_to"), ("ix_task_claimed", "claimed_by")):
        condition = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            name,
            "task",
            [column, "state"],
            sqlite_where=condition,
            postgresql_where=condition,
        )


def downgrade() -> None:
    op.drop_index("ix_task_claimed", table_name="task")
    op.drop_index("ix_task_escalated", table_name="task")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_state_escalated", ["state", "escalated_to"], unique=False)
        batch_op.create_index("ix_task_state_claimed", ["state", "claimed_by"], unique=False)
