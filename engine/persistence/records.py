"""The database tables, as SQLAlchemy 2.0 typed models.

`definition` holds each deployed version of a process with its parsed spec (stored
once per version), `source_file` the diagram files it came from, `instance` one row
per running or finished instance with its state and revision, `task` the projection
of open and finished tasks that worklists read, and `event` the append-only,
hash-chained history. `user_account` holds the people who may act and their roles,
`operation` the hash-chained log of what happened outside any one instance (user and
deployment changes, refusals), `archive` what `audit archive` moved out of `event`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class SourceFileRecord(Base):
    """A diagram file as deployed, stored once per content hash."""

    __tablename__ = "source_file"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    first_deployed_at: Mapped[datetime]


class RoleSetRecord(Base):
    """A deployed roles file: the roles lanes may name from then on."""

    __tablename__ = "role_set"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64))
    roles: Mapped[list[Any]]
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(200))


class DefinitionRecord(Base):
    """One version of one process: what instances started on it run by."""

    __tablename__ = "definition"
    __table_args__ = (
        UniqueConstraint("process_id", "version"),
        Index("ix_definition_process_hash", "process_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    process_id: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    spec_json: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(16))
    files: Mapped[list[Any]]
    elements: Mapped[list[Any]]
    lanes: Mapped[list[Any]]
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(200))


class InstanceRecord(Base):
    __tablename__ = "instance"
    __table_args__ = (
        Index("ix_instance_status", "status"),
        Index("ix_instance_next_timer_at", "next_timer_at"),
        Index("ix_instance_process", "process_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    business_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    process_id: Mapped[str] = mapped_column(String(200))
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"))
    process_version: Mapped[int]
    status: Mapped[str] = mapped_column(String(20))
    serializer_version: Mapped[str] = mapped_column(String(16))
    #: Optimistic locking: every update says WHERE revision = <the revision loaded>
    #: and bumps it; a concurrent change leaves zero rows and the command fails.
    revision: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    next_timer_at: Mapped[datetime | None]
    incident_count: Mapped[int] = mapped_column(default=0)
    event_count: Mapped[int] = mapped_column(default=0)
    head_hash: Mapped[str] = mapped_column(String(64))
    #: A few fields of the instance's data for worklists (JSON text), kept current by
    #: every command from the configured data paths (`Settings.summary`).
    summary: Mapped[str | None] = mapped_column(Text)
    #: The fields of the instance's data the report reads (`indicators.REPORT_PATHS`),
    #: JSON text keyed by path, kept current by every command with the data (0012).
    report_data: Mapped[str | None] = mapped_column(Text)
    #: The instance's data (JSON text, `canonical.dump_data`), kept current by every
    #: command, so that reads need not restore the state; None when it holds a value
    #: that would not read back as itself, or for an instance not changed since 0005.
    data: Mapped[str | None] = mapped_column(Text)
    #: The workflow's serialized state: last in the row, so that SQLite reads the other
    #: columns without reading through it (revision 0010).
    state: Mapped[str] = mapped_column(Text)


class JobRecord(Base):
    """A service task waiting for a worker (when handlers do not run inline), with the
    lease of the worker that holds it: `locked_until` in the past means nobody does."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("task_id", "kind"),
        Index("ix_job_due_at", "due_at"),
        Index("ix_job_instance_id", "instance_id"),
        # Job numbers are never used twice (they appear in workers' logs).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"))
    task_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))
    operator: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class TaskRecord(Base):
    """A task as worklists and `show` see it; kept after it finishes, for who-did-what."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_state_role", "state", "role"),
        Index("ix_task_instance_state", "instance_id", "state"),
        # Few tasks are escalated or claimed: only those are indexed (revision 0006).
        Index(
            "ix_task_escalated",
            "escalated_to",
            "state",
            sqlite_where=text("escalated_to IS NOT NULL"),
            postgresql_where=text("escalated_to IS NOT NULL"),
        ),
        Index(
            "ix_task_claimed",
            "claimed_by",
            "state",
            sqlite_where=text("claimed_by IS NOT NULL"),
            postgresql_where=text("claimed_by IS NOT NULL"),
        ),
        # Keyed by the task's id: on SQLite one b-tree instead of a rowid table plus
        # an index on the id, so each change writes fewer pages.
        {"sqlite_with_rowid": False},
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"))
    bpmn_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    role: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    operator: Mapped[str | None] = mapped_column(String(200))
    four_eyes: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime | None]
    #: The supervisor role an overdue task was escalated to (it stays open for its role).
    escalated_to: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    #: The user who claimed the task: it is theirs until they (or a supervisor) let go.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]


class EventRecord(Base):
    """One change to one instance. Rows are only ever inserted."""

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("instance_id", "seq"),
        Index("ix_event_actor_at", "actor", "at"),
        Index("ix_event_at", "at"),
        # The report's counts of handler calls per step (revision 0009).
        Index("ix_event_kind_step", "kind", "bpmn_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"))
    seq: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    bpmn_id: Mapped[str | None] = mapped_column(String(200))
    task_name: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[str] = mapped_column(Text)
    process_id: Mapped[str] = mapped_column(String(200))
    process_version: Mapped[int]
    state_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class UserRecord(Base):
    """A person who may act, with the roles they hold. Never deleted, only disabled."""

    __tablename__ = "user_account"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    roles: Mapped[list[Any]]
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None]
    disabled_by: Mapped[str | None] = mapped_column(String(200))


class OperationRecord(Base):
    """One operation outside any single instance's history, done or denied.

    Rows are only ever inserted; each one's hash covers the previous row's hash, and
    `prev_hash` is unique, so two writers can never both extend the same head."""

    __tablename__ = "operation"
    __table_args__ = (
        UniqueConstraint("prev_hash"),
        Index("ix_operation_at", "at"),
        Index("ix_operation_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(10))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ArchiveRecord(Base):
    """Events of a closed instance moved out of `event` into an export (`audit archive`):
    its events up to `through_seq`, whose last hash is `head_hash`, are in `folder`,
    whose events file has the SHA-256 `events_sha256`. Rows are only ever inserted."""

    __tablename__ = "archive"
    __table_args__ = (UniqueConstraint("instance_id", "through_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"))
    through_seq: Mapped[int]
    head_hash: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(1000))
    events_sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime]
    archived_by: Mapped[str] = mapped_column(String(200))
