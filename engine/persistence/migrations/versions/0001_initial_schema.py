"""Initial schema: definitions, source files, instances, tasks and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("engine",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "definition",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("serializer_version", sa.String(length=16), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("elements", sa.JSON(), nullable=False),
        sa.Column("lanes", sa.JSON(), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_definition")),
        sa.UniqueConstraint("process_id", "version", name=op.f("uq_definition_process_id_version")),
    )
    with op.batch_alter_table("definition", schema=None) as batch_op:
        batch_op.create_index(
            "ix_definition_process_hash", ["process_id", "content_hash"], unique=False
        )

    op.create_table(
        "source_file",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("first_deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_source_file")),
    )
    op.create_table(
        "instance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("business_key", sa.String(length=200), nullable=True),
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("process_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("serializer_version", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_timer_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["definition.id"], name=op.f("fk_instance_definition_id_definition")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance")),
        sa.UniqueConstraint("business_key", name=op.f("uq_instance_business_key")),
        sa.UniqueConstraint("uid", name=op.f("uq_instance_uid")),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index("ix_instance_next_timer_at", ["next_timer_at"], unique=False)
        batch_op.create_index("ix_instance_process", ["process_id", "status"], unique=False)
        batch_op.create_index("ix_instance_status", ["status"], unique=False)

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("bpmn_id", sa.String(length=200), nullable=True),
        sa.Column("task_name", sa.String(length=255), nullable=True),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("process_version", sa.Integer(), nullable=False),
        sa.Column("state_digest", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instance.id"], name=op.f("fk_event_instance_id_instance")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("instance_id", "seq", name=op.f("uq_event_instance_id_seq")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_actor_at", ["actor", "at"], unique=False)
        batch_op.create_index("ix_event_at", ["at"], unique=False)

    op.create_table(
        "task",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("bpmn_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=True),
        sa.Column("four_eyes", sa.String(length=100), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instance.id"], name=op.f("fk_task_instance_id_instance")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_instance_state", ["instance_id", "state"], unique=False)
        batch_op.create_index("ix_task_state_role", ["state", "role"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_state_role")
        batch_op.drop_index("ix_task_instance_state")

    op.drop_table("task")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_at")
        batch_op.drop_index("ix_event_actor_at")

    op.drop_table("event")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index("ix_instance_status")
        batch_op.drop_index("ix_instance_process")
        batch_op.drop_index("ix_instance_next_timer_at")

    op.drop_table("instance")
    op.drop_table("source_file")
    with op.batch_alter_table("definition", schema=None) as batch_op:
        batch_op.drop_index("ix_definition_process_hash")

    op.drop_table("definition")
