"""Delivery state of the outbox: delivered_at, attempts, last_attempt_at, last_error and
a sender's claim (claimed_until), so that notices can be delivered by SMTP after the
command that wrote them has committed.

Every notice stored before this revision was written to the outbox folder when it was
stored: it is marked delivered at its creation, so that turning SMTP on later does not
mail it again.

Revision ID: r0002
Revises: r0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_outbox_message_delivered_at", ["delivered_at"], unique=False)
    op.execute(
        "UPDATE outbox_message SET delivered_at = created_at, attempts = 1,"
        " last_attempt_at = created_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index("ix_outbox_message_delivered_at")
        batch.drop_column("claimed_until")
        batch.drop_column("last_error")
        batch.drop_column("last_attempt_at")
        batch.drop_column("attempts")
        batch.drop_column("delivered_at")
