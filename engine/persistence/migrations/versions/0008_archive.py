"""Archives: the events of closed instances moved to an export (`audit archive`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("through_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("events_sha256", sa.String(length=64), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instance.id"], name=op.f("fk_archive_instance_id_instance")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive")),
        sa.UniqueConstraint(
            "instance_id", "through_seq", name=op.f("uq_archive_instance_id_through_seq")
        ),
    )


def downgrade() -> None:
    op.drop_table("archive")
