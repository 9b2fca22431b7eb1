"""One command's work on one instance: load, apply transitions, save — all or nothing.

A `Work` wraps a loaded instance for the length of one database transaction. Each
transition (start, complete a user task, deliver a handler's result, fire timers,
deliver a message, cancel) is applied to the workflow and recorded as a pending event
with the digest of the state after it. `save` writes the state with a revision check
(a concurrent change makes it fail with ConcurrencyError), refreshes the task
projection and appends the events to the instance's hash chain.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.canonical import canonical_json
from engine.errors import ConcurrencyError, HandlerNotFoundError, ProcessError
from engine.history import GENESIS_HASH, EventKind, PendingEvent, chain
from engine.persistence import DefinitionRecord, EventRecord, InstanceRecord, TaskRecord
from engine.registry import BpmnError, Registry, TaskContext
from engine.spiff import SERIALIZER_VERSION, OpenTask, Run
from engine.views import EventView, InstanceView, TaskView

log = logging.getLogger("artreturns.engine")

OPEN_STATES = ("READY", "QUEUED", "FAILED", "WAITING")
STATUS_RUNNING = "running"
STATUS_COMPLETED = "completed"
STATUS_CANCELLED = "cancelled"


@dataclass
class Settings:
    """Engine behaviour a deployment may change."""

    #: Run service-task handlers inside the command that reaches them. Turn off when
    #: workers run the queued jobs.
    inline_handlers: bool = True
    #: Seconds one diagram expression may run.
    expression_time_limit: float = 1.0


@dataclass
class Work:
    """The state of one instance while one command changes it."""

    session: Session
    registry: Registry
    settings: Settings
    record: InstanceRecord
    run: Run
    actor: str
    now: datetime
    events: list[PendingEvent] = field(default_factory=list)
    completed: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    retrying: set[str] = field(default_factory=set)
    previous: dict[str, TaskRecord] = field(default_factory=dict)
    cancelled: bool = False
    _was_completed: bool = False

    @classmethod
    def load(
        cls,
        session: Session,
        registry: Registry,
        settings: Settings,
        record: InstanceRecord,
        run: Run,
        actor: str,
        now: datetime,
    ) -> Work:
        work = cls(session, registry, settings, record, run, actor, now)
        work._was_completed = record.status == STATUS_COMPLETED
        if record.status == STATUS_RUNNING:
            rows = session.scalars(
                select(TaskRecord).where(
                    TaskRecord.instance_id == record.id, TaskRecord.state.in_(OPEN_STATES)
                )
            )
            work.previous = {row.id: row for row in rows}
        return work

    # -- recording -----------------------------------------------------------------

    def record_event(
        self, kind: str, data: Mapping[str, Any], task: OpenTask | None = None
    ) -> None:
        self.events.append(
            PendingEvent(
                kind=kind,
                at=self.now,
                actor=self.actor,
                data=dict(data),
                state_digest=self.run.digest(),
                bpmn_id=task.bpmn_id if task else None,
                task_name=task.name if task else None,
                task_id=task.id if task else None,
            )
        )

    # -- transitions ---------------------------------------------------------------

    def fire_due_timers(self) -> list[OpenTask]:
        fired = self.run.fire_due_timers()
        if fired:
            for timer in fired:
                self.completed[timer.id] = "timer"
            self.record_event(
                EventKind.TIMER_FIRED,
                {
                    "timers": [
                        {
                            "bpmn_id": t.bpmn_id,
                            "name": t.name,
                            "ref": t.ref.as_dict(),
                            "due_at": t.due_at.isoformat() if t.due_at else None,
                        }
                        for t in fired
                    ]
                },
            )
        return fired

    def complete_user_task(self, task_id: str, data: Mapping[str, Any]) -> OpenTask:
        task = self.run.complete_user_task(task_id, data)
        self.completed[task.id] = self.actor
        self.record_event(
            EventKind.TASK_COMPLETED, {"ref": task.ref.as_dict(), "data": dict(data)}, task
        )
        return task

    def deliver_message(self, name: str, payload: Mapping[str, Any]) -> None:
        waiting = {t.id for t in self.run.open_tasks() if t.kind == "message"}
        self.run.deliver_message(name, payload)
        still = {t.id for t in self.run.open_tasks() if t.kind == "message"}
        for task_id in waiting - still:
            self.completed[task_id] = "message"
        self.record_event(EventKind.MESSAGE, {"name": name, "payload": dict(payload)})

    def cancel(self, reason: str) -> None:
        self.run.cancel()
        self.cancelled = True
        self.record_event(EventKind.CANCELLED, {"reason": reason})

    def comment(self, text: str) -> None:
        self.record_event(EventKind.COMMENT, {"text": text})

    # -- handlers ------------------------------------------------------------------

    def run_handlers(self) -> None:
        """Run every waiting service task's handler, in tree order, until none is left
        that this command may run. Failed tasks run again only when retried."""
        if not self.settings.inline_handlers:
            return
        attempted: set[str] = set()
        while True:
            pending = [
                t
                for t in self.run.open_tasks()
                if t.kind == "service"
                and t.id not in attempted
                and (t.id in self.retrying or self._previous_state(t.id) != "FAILED")
            ]
            if not pending:
                return
            attempted.add(pending[0].id)
            self._call(pending[0])

    def _previous_state(self, task_id: str) -> str | None:
        row = self.previous.get(task_id)
        return row.state if row is not None else None

    def _attempt(self, task_id: str) -> int:
        row = self.previous.get(task_id)
        return (row.attempts if row is not None else 0) + 1

    def _call(self, task: OpenTask) -> None:
        attempt = self._attempt(task.id)
        try:
            call = self.run.service_call(task.id)
            handler = self.registry.get(call.operator)
        except (ProcessError, HandlerNotFoundError) as exc:
            self._fail(task, task.operator or "", str(exc), attempt)
            return
        context = TaskContext(
            instance_id=self.record.id,
            instance_uid=self.record.uid,
            business_key=self.record.business_key,
            process_id=self.record.process_id,
            process_version=self.record.process_version,
            task_id=task.id,
            bpmn_id=task.bpmn_id,
            operator=call.operator,
            idempotency_key=f"{self.record.uid}:{task.id}",
            attempt=attempt,
            now=self.now,
            actor=self.actor,
            logger=logging.getLogger(f"artreturns.handlers.{call.operator}"),
        )
        try:
            result = handler(call.params, context)
            if result is None:
                result = {}
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"handler returned {type(result).__name__}; it must return a mapping"
                )
            canonical_json(result)  # refuses what cannot be stored
        except BpmnError as error:
            if self.run.throw_error(task.id, error.code, error.payload):
                self.completed[task.id] = "error"
                self.record_event(
                    EventKind.ERROR_THROWN,
                    {
                        "operator": call.operator,
                        "params": call.params,
                        "code": error.code,
                        "message": str(error),
                        "payload": error.payload,
                        "attempt": attempt,
                    },
                    task,
                )
            else:
                self._fail(
                    task,
                    call.operator,
                    f"BPMN error '{error.code}' ({error}) was not caught by any boundary event",
                    attempt,
                )
            return
        except Exception as exc:  # a handler's failure must never lose the instance
            log.warning("handler %s failed on %s: %s", call.operator, task.id, exc)
            self._fail(task, call.operator, _describe_exception(exc), attempt)
            return
        self.run.complete_service_task(task.id, result)
        self.completed[task.id] = "handler"
        self.record_event(
            EventKind.HANDLER_RESULT,
            {
                "operator": call.operator,
                "params": call.params,
                "result": dict(result),
                "ref": task.ref.as_dict(),
                "attempt": attempt,
            },
            task,
        )

    def _fail(self, task: OpenTask, operator: str, error: str, attempt: int) -> None:
        self.failures[task.id] = error
        self.record_event(
            EventKind.HANDLER_FAILED,
            {"operator": operator, "error": error, "attempt": attempt, "ref": task.ref.as_dict()},
            task,
        )

    # -- saving --------------------------------------------------------------------

    def save(self) -> tuple[InstanceView, list[EventView]]:
        record = self.record
        run = self.run
        if run.completed and not self._was_completed and not self.cancelled:
            self.record_event(EventKind.COMPLETED, {})
        open_tasks = [] if self.cancelled else run.open_tasks()
        task_rows = self._project(open_tasks)

        record.state = run.dump()
        record.serializer_version = SERIALIZER_VERSION
        record.updated_at = self.now
        if self.cancelled:
            record.status = STATUS_CANCELLED
            record.ended_at = self.now
        elif run.completed:
            record.status = STATUS_COMPLETED
            record.ended_at = record.ended_at or self.now
        else:
            record.status = STATUS_RUNNING
        timers = [t.due_at for t in open_tasks if t.kind == "timer" and t.due_at is not None]
        record.next_timer_at = min(timers) if timers else None
        record.incident_count = sum(1 for row in task_rows if row.state == "FAILED")

        chained = chain(
            self.events,
            instance_uid=record.uid,
            process_id=record.process_id,
            process_version=record.process_version,
            first_seq=record.event_count + 1,
            prev_hash=record.head_hash,
        )
        if chained:
            record.event_count = chained[-1].seq
            record.head_hash = chained[-1].hash
        try:
            self.session.flush()
        except StaleDataError as exc:
            raise ConcurrencyError(
                f"{record.business_key or '#' + str(record.id)} was changed by another command "
                "at the same time; this command was undone",
                "Look at the instance again (`artreturns show`) and repeat the command if it "
                "still applies.",
            ) from exc
        if chained:
            self.session.execute(
                insert(EventRecord),
                [
                    {
                        "instance_id": record.id,
                        "seq": e.seq,
                        "at": e.at,
                        "actor": e.actor,
                        "kind": e.kind,
                        "bpmn_id": e.bpmn_id,
                        "task_name": e.task_name,
                        "task_id": e.task_id,
                        "data": e.data,
                        "process_id": e.process_id,
                        "process_version": e.process_version,
                        "state_digest": e.state_digest,
                        "prev_hash": e.prev_hash,
                        "hash": e.hash,
                    }
                    for e in chained
                ],
            )
        views = [
            EventView(
                seq=e.seq,
                at=e.at,
                actor=e.actor,
                kind=e.kind,
                bpmn_id=e.bpmn_id,
                task_name=e.task_name,
                task_id=e.task_id,
                data=json.loads(e.data),
                process_id=e.process_id,
                process_version=e.process_version,
                state_digest=e.state_digest,
                hash=e.hash,
            )
            for e in chained
        ]
        key = record.business_key
        open_views = [TaskView.of(row, key) for row in task_rows if row.state in OPEN_STATES]
        instance = InstanceView.of(record, instance_data(run), open_views, [])
        return instance, views

    def _project(self, open_tasks: list[OpenTask]) -> list[TaskRecord]:
        """Bring the task table in line with the workflow; return the open rows."""
        rows: list[TaskRecord] = []
        now_open = {t.id for t in open_tasks}
        for task in open_tasks:
            row = self.previous.get(task.id)
            state = _projected_state(
                task, self.failures.get(task.id), self._previous_state(task.id)
            )
            if row is None:
                row = TaskRecord(
                    id=task.id,
                    instance_id=self.record.id,
                    bpmn_id=task.bpmn_id,
                    name=task.name,
                    kind=task.kind,
                    role=task.lane,
                    state=state,
                    operator=task.operator,
                    due_at=task.due_at,
                    created_at=self.now,
                    attempts=0,
                )
                self.session.add(row)
            else:
                row.state = state
                row.due_at = task.due_at
            if task.id in self.failures:
                row.attempts = (row.attempts or 0) + 1
                row.error = self.failures[task.id]
            rows.append(row)
        for task_id, row in self.previous.items():
            if task_id in now_open:
                continue
            how = self.completed.get(task_id)
            row.state = "COMPLETED" if how is not None else "CANCELLED"
            row.ended_at = self.now
            if row.kind == "service" and how is not None:
                row.attempts = (row.attempts or 0) + 1
            if how is not None and row.kind in ("user", "manual"):
                row.completed_by = how
        return rows


def _projected_state(task: OpenTask, failure: str | None, before: str | None) -> str:
    if task.kind in ("user", "manual"):
        return "READY"
    if task.kind == "service":
        if failure is not None:
            return "FAILED"
        return before if before == "FAILED" else "QUEUED"
    return "WAITING"


def instance_data(run: Run) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(canonical_json(run.data))
        return result
    except (TypeError, ValueError):
        return {}


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}{where}"


def new_instance_record(
    definition: DefinitionRecord, business_key: str | None, actor: str, now: datetime
) -> InstanceRecord:
    return InstanceRecord(
        uid=str(uuid.uuid4()),
        business_key=business_key,
        process_id=definition.process_id,
        definition_id=definition.id,
        process_version=definition.version,
        status=STATUS_RUNNING,
        state="",
        serializer_version=SERIALIZER_VERSION,
        started_at=now,
        started_by=actor,
        updated_at=now,
        ended_at=None,
        next_timer_at=None,
        incident_count=0,
        event_count=0,
        head_hash=GENESIS_HASH,
    )


__all__ = [
    "OPEN_STATES",
    "STATUS_CANCELLED",
    "STATUS_COMPLETED",
    "STATUS_RUNNING",
    "Settings",
    "Work",
    "new_instance_record",
]
