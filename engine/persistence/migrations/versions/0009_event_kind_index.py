"""Events by kind: `report` counts handler calls and failures per step.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Covering for the report's counts: read from the index, never from the events'
    # data, which is most of the table.
    op.create_index("ix_event_kind_step", "event", ["kind", "bpmn_id", "instance_id"])


def downgrade() -> None:
    op.drop_index("ix_event_kind_step", table_name="event")
