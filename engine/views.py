"""What the engine hands back: plain, immutable views with a stable JSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.forms import Form, FormField

if TYPE_CHECKING:  # views are made from records, but need not import the ORM to exist
    from engine.persistence import (
        EventRecord,
        InstanceRecord,
        OperationRecord,
        TaskRecord,
        UserRecord,
    )

SHORT_ID = 8


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _View:
    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _plain(asdict(self))  # type: ignore[call-overload]
        return result


@dataclass(frozen=True)
class TaskView(_View):
    id: str
    short_id: str
    instance_id: int
    business_key: str | None
    bpmn_id: str
    name: str
    kind: str
    role: str | None
    state: str
    operator: str | None
    due_at: datetime | None
    #: The supervisor role the task was escalated to when its due time passed.
    escalated_to: str | None
    #: None in a command's result for tasks that were already open before it.
    created_at: datetime | None
    ended_at: datetime | None
    completed_by: str | None
    attempts: int
    error: str | None
    #: The user who claimed the task (its assignee), and when.
    claimed_by: str | None = None
    claimed_at: datetime | None = None

    @classmethod
    def of(cls, record: TaskRecord, business_key: str | None) -> TaskView:
        return cls(
            id=record.id,
            short_id=record.id[:SHORT_ID],
            instance_id=record.instance_id,
            business_key=business_key,
            bpmn_id=record.bpmn_id,
            name=record.name,
            kind=record.kind,
            role=record.role,
            state=record.state,
            operator=record.operator,
            due_at=record.due_at,
            escalated_to=record.escalated_to,
            created_at=record.created_at,
            ended_at=record.ended_at,
            completed_by=record.completed_by,
            attempts=record.attempts,
            error=record.error,
            claimed_by=record.claimed_by,
            claimed_at=record.claimed_at,
        )


@dataclass(frozen=True)
class WorkItem(_View):
    """A line of a worklist: an open task, the instance's summary, and how late it is."""

    task: TaskView
    #: The few fields of the instance's data configured for worklists (artwork, ...).
    summary: dict[str, Any]
    overdue: bool
    #: Seconds since the task was opened, at the engine's clock.
    age_seconds: int


@dataclass(frozen=True)
class UserView(_View):
    name: str
    roles: list[str]
    active: bool
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    disabled_by: str | None

    @classmethod
    def of(cls, record: UserRecord) -> UserView:
        return cls(
            name=record.name,
            roles=sorted(str(r) for r in record.roles),
            active=record.active,
            created_at=record.created_at,
            created_by=record.created_by,
            disabled_at=record.disabled_at,
            disabled_by=record.disabled_by,
        )


@dataclass(frozen=True)
class OperationView(_View):
    """One entry of the operation log."""

    id: int
    at: datetime
    actor: str
    operation: str
    target: str | None
    #: "done" or "denied".
    outcome: str
    details: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, record: OperationRecord) -> OperationView:
        return cls(
            id=record.id,
            at=record.at,
            actor=record.actor,
            operation=record.operation,
            target=record.target,
            outcome=record.outcome,
            details=json.loads(record.details),
            hash=record.hash,
        )


@dataclass(frozen=True)
class EventView(_View):
    seq: int
    at: datetime
    actor: str
    kind: str
    bpmn_id: str | None
    task_name: str | None
    task_id: str | None
    data: dict[str, Any]
    process_id: str
    process_version: int
    state_digest: str
    hash: str

    @classmethod
    def of(cls, record: EventRecord) -> EventView:
        return cls(
            seq=record.seq,
            at=record.at,
            actor=record.actor,
            kind=record.kind,
            bpmn_id=record.bpmn_id,
            task_name=record.task_name,
            task_id=record.task_id,
            data=json.loads(record.data),
            process_id=record.process_id,
            process_version=record.process_version,
            state_digest=record.state_digest,
            hash=record.hash,
        )


@dataclass(frozen=True)
class InstanceView(_View):
    id: int
    uid: str
    business_key: str | None
    process_id: str
    process_version: int
    status: str
    started_at: datetime
    started_by: str
    updated_at: datetime
    ended_at: datetime | None
    next_timer_at: datetime | None
    incident_count: int
    event_count: int
    data: dict[str, Any] = field(default_factory=dict)
    open_tasks: list[TaskView] = field(default_factory=list)
    done_tasks: list[TaskView] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.business_key or f"#{self.id}"

    @classmethod
    def of(
        cls,
        record: InstanceRecord | Any,
        data: dict[str, Any],
        open_tasks: list[TaskView],
        done_tasks: list[TaskView],
    ) -> InstanceView:
        return cls(
            id=record.id,
            uid=record.uid,
            business_key=record.business_key,
            process_id=record.process_id,
            process_version=record.process_version,
            status=record.status,
            started_at=record.started_at,
            started_by=record.started_by,
            updated_at=record.updated_at,
            ended_at=record.ended_at,
            next_timer_at=record.next_timer_at,
            incident_count=record.incident_count,
            event_count=record.event_count,
            data=data,
            open_tasks=open_tasks,
            done_tasks=done_tasks,
        )


@dataclass(frozen=True)
class ProcessView(_View):
    process_id: str
    version: int
    name: str
    content_hash: str
    deployed_at: datetime
    deployed_by: str
    lanes: list[str]
    files: list[dict[str, str]]
    latest: bool


@dataclass(frozen=True)
class DeployView(_View):
    process_id: str
    version: int
    name: str
    created: bool
    content_hash: str


@dataclass(frozen=True)
class CommandResult(_View):
    """What one instance command did: the instance after it, and the events it added."""

    instance: InstanceView
    events: list[EventView]
    failures: list[str]


@dataclass(frozen=True)
class FormView(_View):
    """The form of an open task: the fields `complete` checks its data against."""

    task_id: str
    short_id: str
    instance: str
    bpmn_id: str
    name: str
    kind: str
    role: str | None
    #: False when the diagram declares no form: the task then takes any data.
    has_form: bool
    #: The variable the task puts the fields under (None: straight into the data).
    variable: str | None
    fields: list[FormField]

    @property
    def form(self) -> Form | None:
        return Form(tuple(self.fields), self.variable) if self.has_form else None
