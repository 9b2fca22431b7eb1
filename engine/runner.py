"""One command's work on one instance: load, apply transitions, save — all or nothing.

A `Work` wraps a loaded instance for the length of one database transaction. Each
transition (start, complete a user task, deliver a handler's result, fire timers,
deliver a message, cancel) is applied to the workflow and recorded as a pending event
with the digest of the state after it. `save` writes the state with a revision check
(a concurrent change makes it fail with ConcurrencyError), brings the task projection
in line and appends the events to the instance's hash chain.

This is the hot path of every command, so it speaks SQLAlchemy Core on one connection:
a complete-task command is one read of the task and instance and four writes.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.canonical import canonical_json, dump_tagged, tag_data
from engine.errors import (
    ConcurrencyError,
    HandlerNotFoundError,
    InputError,
    ProcessError,
)
from engine.history import GENESIS_HASH, EventKind, PendingEvent, chain
from engine.indicators import report_data
from engine.permissions import Principal, Refusal
from engine.persistence import EventRecord, InstanceRecord, TaskRecord, writes
from engine.reading import OPEN_STATES
from engine.registry import (
    BpmnError,
    Handler,
    HandlerStuckError,
    HandlerTimedOut,
    Leash,
    Registry,
    TaskContext,
    call_within,
)
from engine.views import SHORT_ID, EventView, InstanceView, TaskView

if TYPE_CHECKING:  # SpiffWorkflow is imported when an instance is run, not to list tasks
    from engine.spiff import OpenTask, Run

log = logging.getLogger("artreturns.engine")

#: Seconds a handler cut off may take to leave the database call it is in.
LEASH_GRACE = 5.0

STATUS_RUNNING = "running"
STATUS_COMPLETED = "completed"
STATUS_CANCELLED = "cancelled"

INSTANCE = cast(Table, InstanceRecord.__table__)
TASK = cast(Table, TaskRecord.__table__)
EVENT = cast(Table, EventRecord.__table__)

# Statements are built once: building a SQLAlchemy statement costs more than running it.
_SELECT_INSTANCE = select(INSTANCE).where(INSTANCE.c.id == bindparam("b_id"))
_INSTANCE_COLUMNS = (
    "uid",
    "business_key",
    "process_id",
    "definition_id",
    "process_version",
    "status",
    "state",
    "serializer_version",
    "revision",
    "started_at",
    "started_by",
    "updated_at",
    "ended_at",
    "next_timer_at",
    "incident_count",
    "event_count",
    "head_hash",
    "summary",
    "report_data",
    "data",
)
_INSTANCE_TIMES = ("started_at", "updated_at", "ended_at", "next_timer_at")
_INSERT_INSTANCE = writes.insert("instance", _INSTANCE_COLUMNS, _INSTANCE_TIMES, returning="id")
_SAVED_COLUMNS = (
    "state",
    "serializer_version",
    "revision",
    "status",
    "updated_at",
    "ended_at",
    "next_timer_at",
    "incident_count",
    "event_count",
    "head_hash",
    "summary",
    "report_data",
    "data",
)
_JOB_COLUMNS = ("instance_id", "task_id", "kind", "operator", "due_at", "attempts", "created_at")
_INSERT_JOB = writes.Write(
    f"INSERT INTO job ({', '.join(_JOB_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join(':' + c for c in _JOB_COLUMNS)}) ON CONFLICT (task_id, kind) DO NOTHING",
    ("due_at", "created_at"),
)
_RETRY_JOB = writes.Write(
    "UPDATE job SET attempts = :attempts, due_at = :due_at, last_error = :last_error, "
    "locked_by = NULL, locked_until = NULL WHERE task_id = :b_task AND kind = 'service'",
    ("due_at",),
)
_DELETE_JOB = writes.Write("DELETE FROM job WHERE task_id = :b_task AND kind = :b_kind")
_UPSERT_TIMER_JOB = writes.Write(
    f"INSERT INTO job ({', '.join(_JOB_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join(':' + c for c in _JOB_COLUMNS)}) "
    "ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at, "
    # A save is a fresh start for the timer: attempts that failed before it (a path
    # that raised, `Jobs._attempt_failed`) no longer count.
    "attempts = 0, last_error = NULL, locked_by = NULL, locked_until = NULL",
    ("due_at", "created_at"),
)
_UPDATE_INSTANCE = writes.update("instance", _SAVED_COLUMNS, ("id", "revision"), _INSTANCE_TIMES)
_FAILED_TASKS = select(TASK.c.id, TASK.c.attempts, TASK.c.error).where(
    TASK.c.instance_id == bindparam("b_id"), TASK.c.state == "FAILED"
)
_CLAIMS = select(TASK.c.id, TASK.c.claimed_by, TASK.c.claimed_at).where(
    TASK.c.instance_id == bindparam("b_id"),
    TASK.c.state.in_(OPEN_STATES),
    TASK.c.claimed_by.is_not(None),
)
_SET_CLAIM = (
    update(TASK)
    .where(TASK.c.id == bindparam("b_id"))
    .values(claimed_by=bindparam("b_by"), claimed_at=bindparam("b_at"))
)
_SAME_CHAIN = (
    select(TASK.c.name)
    .where(
        TASK.c.instance_id == bindparam("b_instance"),
        TASK.c.four_eyes == bindparam("b_group"),
        TASK.c.completed_by == bindparam("b_actor"),
        TASK.c.state == "COMPLETED",
        TASK.c.bpmn_id != bindparam("b_step"),
    )
    .limit(1)
)
_TASK_COLUMNS = (
    "id",
    "instance_id",
    "bpmn_id",
    "name",
    "kind",
    "role",
    "state",
    "operator",
    "four_eyes",
    "due_at",
    "escalated_to",
    "created_at",
    "ended_at",
    "completed_by",
    "attempts",
    "error",
)
#: Rounds of catching up on overdue timers in one command (a cycle timer far behind
#: fires once per round; the rest waits for the next run).
MAX_TIMER_ROUNDS = 100

_TASK_CHANGES = (
    "state",
    "due_at",
    "escalated_to",
    "attempts",
    "error",
    "ended_at",
    "completed_by",
)
_UPSERT_TASK = writes.upsert(
    "task", _TASK_COLUMNS, "id", _TASK_CHANGES, ("due_at", "created_at", "ended_at")
)
_EVENT_COLUMNS = (
    "instance_id",
    "seq",
    "at",
    "actor",
    "kind",
    "bpmn_id",
    "task_name",
    "task_id",
    "data",
    "process_id",
    "process_version",
    "state_digest",
    "prev_hash",
    "hash",
)
_INSERT_EVENT = writes.insert("event", _EVENT_COLUMNS, ("at",))


@dataclass
class Settings:
    """Engine behaviour a deployment may change."""

    #: Run service-task handlers inside the command that reaches them. Turn off when
    #: workers run the queued jobs.
    inline_handlers: bool = True
    #: Seconds one diagram expression may run.
    expression_time_limit: float = 1.0
    #: Bytes one diagram expression may grow the process's memory by (Linux; None:
    #: no limit but the time limit and the size guards). docs/security.md.
    expression_memory_limit: int | None = 256 * 1024 * 1024
    #: Instances kept in memory between commands of one process (0 turns it off). A
    #: cached instance is used only when its stored revision still matches.
    instance_cache_size: int = 256
    #: What worklists show of each instance: a name for each dotted path into its data
    #: (a list on the way maps over its items). None: as the installed packages publish
    #: under the `artreturns.summary` entry-point group.
    summary: Mapping[str, str] | None = None
    #: Attempts a worker makes at a service task before it becomes an incident, and
    #: per operator where it differs.
    job_attempts: int = 3
    job_attempts_by_operator: Mapping[str, int] = field(default_factory=dict)
    #: The wait before a failed job's second attempt; it doubles for each one after.
    job_backoff: timedelta = field(default_factory=lambda: timedelta(seconds=30))
    #: Seconds a handler call may run before it is cut off and fails (then, after its
    #: attempts, becomes an incident); per operator where it differs, else as the
    #: handler was registered; None: no limit. Keep it below the workers' lease.
    handler_timeout: float | None = 120.0
    handler_timeout_by_operator: Mapping[str, float] = field(default_factory=dict)

    def attempts_for(self, operator: str | None) -> int:
        return self.job_attempts_by_operator.get(operator or "", self.job_attempts)

    def timeout_for(self, operator: str, registry: Registry) -> float | None:
        """The time limit of a call to `operator`: the settings' for it, else the
        registry's, else the settings' default."""
        limit = self.handler_timeout_by_operator.get(operator)
        if limit is None:
            limit = registry.timeout(operator)
        return limit if limit is not None else self.handler_timeout

    def backoff(self, attempt: int) -> timedelta:
        """The wait after the `attempt`-th failed attempt."""
        return timedelta(seconds=self.job_backoff.total_seconds() * 2 ** (attempt - 1))


@dataclass
class InstanceRow:
    """An instance row as the hot path reads and writes it."""

    id: int
    uid: str
    business_key: str | None
    process_id: str
    definition_id: int
    process_version: int
    status: str
    state: str
    serializer_version: str
    revision: int
    started_at: datetime
    started_by: str
    updated_at: datetime
    ended_at: datetime | None
    next_timer_at: datetime | None
    incident_count: int
    event_count: int
    head_hash: str
    summary: str | None
    data: str | None = None
    report_data: str | None = None

    @property
    def label(self) -> str:
        return self.business_key or f"#{self.id}"

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> InstanceRow:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


def load_instance(conn: Connection, instance_id: int) -> InstanceRow | None:
    row = conn.execute(_SELECT_INSTANCE, {"b_id": instance_id}).mappings().first()
    return InstanceRow.from_mapping(row) if row is not None else None


def new_instance(
    *,
    definition_id: int,
    process_id: str,
    process_version: int,
    business_key: str | None,
    actor: str,
    now: datetime,
) -> InstanceRow:
    """A new instance, not yet stored (revision 0); `Work` inserts it when needed."""
    from engine.spiff import SERIALIZER_VERSION

    return InstanceRow(
        id=0,
        uid=str(uuid.uuid4()),
        business_key=business_key,
        process_id=process_id,
        definition_id=definition_id,
        process_version=process_version,
        status=STATUS_RUNNING,
        state="",
        serializer_version=SERIALIZER_VERSION,
        revision=0,
        started_at=now,
        started_by=actor,
        updated_at=now,
        ended_at=None,
        next_timer_at=None,
        incident_count=0,
        event_count=0,
        head_hash=GENESIS_HASH,
        summary=None,
    )


def _insert(conn: Connection, row: InstanceRow) -> None:
    values = {f.name: getattr(row, f.name) for f in fields(InstanceRow) if f.name != "id"}
    try:
        row.id = _INSERT_INSTANCE.run(conn, values).scalar_one()
    except IntegrityError as exc:
        if row.business_key is not None:
            raise business_key_taken(row.business_key) from exc
        raise


@dataclass
class Work:
    """The state of one instance while one command changes it."""

    conn: Connection
    registry: Registry
    settings: Settings
    row: InstanceRow
    run: Run
    actor: str
    now: datetime
    events: list[PendingEvent] = field(default_factory=list)
    completed: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    retrying: set[str] = field(default_factory=set)
    #: A worker's job: the attempt it makes at a task (task id -> attempt number).
    attempt_of: dict[str, int] = field(default_factory=dict)
    #: Failed attempts a worker makes again later: task id -> (attempt, when, error).
    retry_later: dict[str, tuple[int, datetime, str]] = field(default_factory=dict)
    #: Open tasks before the command, as the workflow and the task table both had them.
    before: dict[str, OpenTask] = field(default_factory=dict)
    #: Failed service tasks before the command: id -> (attempts, error).
    failed_before: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    cancelled: bool = False
    #: Claims on the instance's open tasks: task id -> (claimed by, claimed at).
    claims: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    #: Why the command was refused, once it was (the history records it as `denied`).
    refusal: Refusal | None = None
    #: What the person asked for (a command line), for the next event recorded.
    intent: str | None = None
    #: The acting user as the rules see them, once looked up for this command.
    principal: Principal | None = None
    #: Builds what handlers get as `ctx.services` (from the connection and the time).
    services_factory: Callable[[Connection, datetime], Any] | None = None
    _services: Any = None
    _was_completed: bool = False

    @classmethod
    def load(
        cls,
        conn: Connection,
        registry: Registry,
        settings: Settings,
        row: InstanceRow,
        run: Run,
        actor: str,
        now: datetime,
        *,
        new: bool = False,
        services: Callable[[Connection, datetime], Any] | None = None,
        claims: dict[str, tuple[str, datetime]] | None = None,
    ) -> Work:
        """`claims`: the claims as this process saved them with the instance's current
        revision (cached), else they are read. A stale cache is caught by the revision
        check when the work is saved."""
        work = cls(conn, registry, settings, row, run, actor, now, services_factory=services)
        work._was_completed = row.status == STATUS_COMPLETED
        if not new:
            work.before = {t.id: t for t in run.open_tasks()}
            if claims is None:
                claimed = conn.execute(_CLAIMS, {"b_id": row.id}).all()
                claims = {r.id: (r.claimed_by, r.claimed_at) for r in claimed}
            work.claims = claims
        if row.incident_count:
            failed = conn.execute(_FAILED_TASKS, {"b_id": row.id}).all()
            work.failed_before = {r.id: (r.attempts, r.error) for r in failed}
        if not new:
            from engine.spiff import SERIALIZER_VERSION

            if row.serializer_version != SERIALIZER_VERSION:
                # Loading brought the state to today's format; saving keeps it so.
                work.record_event(
                    EventKind.STATE_UPGRADED,
                    {"from": row.serializer_version, "to": SERIALIZER_VERSION},
                )
        return work

    # -- recording -----------------------------------------------------------------

    def record_event(
        self, kind: str, data: Mapping[str, Any], task: OpenTask | None = None
    ) -> None:
        recorded = dict(data)
        ran_at = self.run.clock()
        if ran_at != self.now:
            # What a fired timer started ran as of when it fell due: replay needs that.
            recorded["clock"] = ran_at.isoformat()
        if self.intent is not None:
            recorded["intent"] = self.intent
            self.intent = None  # one command, one intent: on its first event
        self.events.append(
            PendingEvent(
                kind=kind,
                at=self.now,
                actor=self.actor,
                data=recorded,
                state_digest=self.run.digest(),
                bpmn_id=task.bpmn_id if task else None,
                task_name=task.name if task else None,
                task_id=task.id if task else None,
            )
        )

    # -- transitions ---------------------------------------------------------------

    def fire_due_timers(self) -> list[OpenTask]:
        due_at = self.row.next_timer_at
        if due_at is None or due_at >= self.now:
            return []
        fired_all: list[OpenTask] = []
        for _ in range(MAX_TIMER_ROUNDS):
            before = top_level(self.run.data)
            fired = self.run.fire_earliest_due()
            if not fired:
                break
            fired_all.extend(fired)
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
                    ],
                    "changed": changes(before, top_level(self.run.data)),
                },
            )
            # What this round started (a reminder's notice) runs before the next round,
            # on the clock of the round: deadlines it starts count from when it fell due.
            when = fired[0].due_at
            if when is None:
                self.run_handlers()
            else:
                with self.run.as_of(when):
                    self.run_handlers()
        return fired_all

    def four_eyes_conflict(self, task_id: str, actor: str | None = None) -> str | None:
        """The step this actor (or `actor`) already completed in the same four-eyes group
        as the task, if any: one person may not decide at two levels of one approval
        chain."""
        task = self.open_task(task_id)
        if task is None or task.four_eyes is None:
            return None
        row = self.conn.execute(
            _SAME_CHAIN,
            {
                "b_instance": self.row.id,
                "b_group": task.four_eyes,
                "b_actor": actor or self.actor,
                "b_step": task.bpmn_id,
            },
        ).first()
        return str(row.name) if row is not None else None

    def open_task(self, task_id: str | None) -> OpenTask | None:
        return next((t for t in self.run.open_tasks() if t.id == task_id), None)

    def deny(self, operation: str, reason: str, task: OpenTask | None = None) -> None:
        """Record a refused operation in the history (nothing else changes)."""
        self.record_event(EventKind.DENIED, {"operation": operation, "reason": reason}, task)

    def refuse(self, operation: str, refusal: Refusal, task: OpenTask | None = None) -> None:
        """Refuse the command: the history records it as `denied`, the caller raises
        PermissionDeniedError once this is saved."""
        self.deny(operation, refusal.reason, task)
        self.refusal = refusal

    # -- claims --------------------------------------------------------------------

    def set_claim(self, task: OpenTask, to: str | None, kind: str, data: Mapping[str, Any]) -> None:
        """Give a task to `to` (None lets it go) and record `kind` (claimed, unclaimed,
        delegated) with `data` in the history."""
        self.conn.execute(
            _SET_CLAIM, {"b_id": task.id, "b_by": to, "b_at": self.now if to else None}
        )
        if to is None:
            self.claims.pop(task.id, None)
        else:
            self.claims[task.id] = (to, self.now)
        self.record_event(kind, data, task)

    def complete_user_task(self, task_id: str, data: Mapping[str, Any]) -> OpenTask:
        before = top_level(self.run.data)
        task = self.run.complete_user_task(task_id, data)
        self.completed[task.id] = self.actor
        changed = changes(before, top_level(self.run.data))
        self.record_event(
            EventKind.TASK_COMPLETED,
            {"ref": task.ref.as_dict(), "data": dict(data), "changed": changed},
            task,
        )
        return task

    def deliver_message(self, name: str, payload: Mapping[str, Any]) -> None:
        waiting = {t.id for t in self.run.message_waits()}
        before = top_level(self.run.data)
        self.run.deliver_message(name, payload)
        still = {t.id for t in self.run.message_waits()}
        for task_id in waiting - still:
            self.completed[task_id] = "message"
        self.record_event(
            EventKind.MESSAGE,
            {
                "name": name,
                "payload": dict(payload),
                "changed": changes(before, top_level(self.run.data)),
            },
        )

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
                and (t.id in self.retrying or t.id not in self.failed_before)
            ]
            if not pending:
                return
            attempted.add(pending[0].id)
            self._call(pending[0])

    def run_service_task(self, task: OpenTask) -> None:
        """Run one waiting service task's handler now (a worker's job)."""
        self._call(task)

    def _attempt(self, task_id: str) -> int:
        if task_id in self.attempt_of:
            return self.attempt_of[task_id]
        attempts, _error = self.failed_before.get(task_id, (0, None))
        return attempts + 1

    def _call(self, task: OpenTask) -> None:
        attempt = self._attempt(task.id)
        try:
            call = self.run.service_call(task.id)
            handler = self.registry.get(call.operator)
        except (ProcessError, HandlerNotFoundError) as exc:
            self._fail(task, task.operator or "", str(exc), attempt)
            return
        self._ensure_stored()
        if self._services is None and self.services_factory is not None:
            self._services = self.services_factory(self.conn, self.now)
        context = TaskContext(
            instance_id=self.row.id,
            instance_uid=self.row.uid,
            business_key=self.row.business_key,
            process_id=self.row.process_id,
            process_version=self.row.process_version,
            task_id=task.id,
            bpmn_id=task.bpmn_id,
            operator=call.operator,
            idempotency_key=f"{self.row.uid}:{task.id}",
            attempt=attempt,
            now=self.now,
            actor=self.actor,
            logger=logging.getLogger(f"artreturns.handlers.{call.operator}"),
            services=self._services,
        )
        try:
            limit = self.settings.timeout_for(call.operator, self.registry)
            if limit is None:
                result = handler(call.params, context)
            else:
                result = self._call_within(handler, call.params, context, limit)
            if result is None:
                result = {}
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"handler returned {type(result).__name__}; it must return a mapping"
                )
            canonical_json(result)  # refuses what cannot be stored
        except BpmnError as error:
            before = top_level(self.run.data)
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
                        "ref": task.ref.as_dict(),
                        "changed": changes(before, top_level(self.run.data)),
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
        except HandlerStuckError:
            raise  # the connection is not this command's alone any more: undo it all
        except HandlerTimedOut as exc:
            log.warning("handler %s on %s: %s", call.operator, task.id, exc)
            self._fail(task, call.operator, str(exc), attempt)
            return
        except Exception as exc:  # a handler's failure must never lose the instance
            if self.conn.invalidated:
                raise  # the database went away, not the handler: nothing can be saved
            log.warning("handler %s failed on %s: %s", call.operator, task.id, exc)
            self._fail(task, call.operator, _describe_exception(exc), attempt)
            return
        before = top_level(self.run.data)
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
                "changed": changes(before, top_level(self.run.data)),
            },
            task,
        )

    def _call_within(
        self, handler: Handler, params: Mapping[str, Any], context: TaskContext, limit: float
    ) -> Any:
        """Call a handler that has a time limit: in a thread of its own, inside a
        savepoint, with services on a leashed connection. Cut off, what it wrote is
        undone and its thread can no longer reach the connection; ended in time, its
        writes stay, whether it failed or not."""
        leash = Leash(self.conn, context.operator, limit)
        if self.services_factory is not None:
            context = replace(
                context, services=self.services_factory(cast(Connection, leash), self.now)
            )
        savepoint = self.conn.begin_nested()
        try:
            result = call_within(handler, params, context, limit)
        except HandlerTimedOut:
            if not leash.cut(grace=LEASH_GRACE):
                raise HandlerStuckError(context.operator, limit) from None
            savepoint.rollback()  # what it wrote before it hung is undone
            raise
        except DBAPIError:
            # The database refused what it wrote (another worker's run of the same
            # task got there first): PostgreSQL then refuses all but going back.
            leash.cut(grace=LEASH_GRACE)
            if not self.conn.invalidated:
                savepoint.rollback()
            raise
        except BaseException:
            # Failed in time: as without a limit, what it wrote stays (a payment it
            # made before it failed is on record, and its retry finds it).
            leash.cut(grace=LEASH_GRACE)
            if not self.conn.invalidated:
                savepoint.commit()
            raise
        leash.cut(grace=LEASH_GRACE)
        savepoint.commit()
        return result

    def _ensure_stored(self) -> None:
        """Insert a new instance now, so that handlers see its number."""
        if self.row.revision == 0:
            self.row.revision = 1
            _insert(self.conn, self.row)

    def record_failure(self, task: OpenTask, error: str, attempt: int) -> None:
        """Record attempt `attempt` at a service task as failed with `error`, its handler
        not run by this command (a worker's attempt that could not be saved)."""
        self._fail(task, task.operator or "", error, attempt)

    def _fail(self, task: OpenTask, operator: str, error: str, attempt: int) -> None:
        self.failures[task.id] = error
        self.record_event(
            EventKind.HANDLER_FAILED,
            {"operator": operator, "error": error, "attempt": attempt, "ref": task.ref.as_dict()},
            task,
        )

    # -- saving --------------------------------------------------------------------

    def save(self) -> tuple[InstanceView, list[EventView]]:
        from engine.spiff import SERIALIZER_VERSION

        row = self.row
        run = self.run
        if run.completed and not self._was_completed and not self.cancelled:
            self.record_event(EventKind.COMPLETED, {})
        after = [] if self.cancelled else run.open_tasks()
        for task in after:
            previous = self.before.get(task.id)
            if task.escalated_to and (previous is None or not previous.escalated_to):
                self.record_event(
                    EventKind.ESCALATED,
                    {
                        "role": task.escalated_to,
                        "due_at": task.due_at.isoformat() if task.due_at else None,
                        "ref": task.ref.as_dict(),
                    },
                    task,
                )

        revision = row.revision
        data = instance_data(run)
        row.summary = summarize(data, self.settings.summary or {})
        tagged = tag_data(data)
        row.data = None if tagged is None else dump_tagged(tagged)
        row.report_data = report_data(tagged)
        row.state = run.dump()
        row.serializer_version = SERIALIZER_VERSION
        row.updated_at = self.now
        if self.cancelled:
            row.status = STATUS_CANCELLED
            row.ended_at = self.now
        elif run.completed:
            row.status = STATUS_COMPLETED
            row.ended_at = row.ended_at or self.now
        else:
            row.status = STATUS_RUNNING
        timers = [t.due_at for t in after if t.kind == "timer" and t.due_at is not None]
        row.next_timer_at = min(timers) if timers else None
        row.incident_count = sum(
            1
            for t in after
            if projected_state(t, t.id in self.failures, self._still_failed(t.id)) == "FAILED"
        )
        chained = chain(
            self.events,
            instance_uid=row.uid,
            process_id=row.process_id,
            process_version=row.process_version,
            first_seq=row.event_count + 1,
            prev_hash=row.head_hash,
        )
        if chained:
            row.event_count = chained[-1].seq
            row.head_hash = chained[-1].hash
        row.revision = revision + 1
        if revision == 0:
            _insert(self.conn, row)
        else:
            values = {name: getattr(row, name) for name in _SAVED_COLUMNS}
            updated = _UPDATE_INSTANCE.run(
                self.conn, {"b_id": row.id, "b_revision": revision, **values}
            )
            if updated.rowcount != 1:
                raise ConcurrencyError(
                    f"{row.label} was changed by another command at the same time; this "
                    "command was undone",
                    "Look at the instance again (`artreturns show`) and repeat the command if "
                    "it still applies.",
                )
        open_views = self._project(after)
        self._write_tasks()
        if not self.settings.inline_handlers:
            self._write_jobs(after)
        if chained:
            _INSERT_EVENT.run(
                self.conn,
                _one_or_many(
                    [
                        {
                            "instance_id": row.id,
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
                    ]
                ),
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
                data=dict(pending.data),
                process_id=e.process_id,
                process_version=e.process_version,
                state_digest=e.state_digest,
                hash=e.hash,
            )
            for e, pending in zip(chained, self.events, strict=True)
        ]
        return InstanceView.of(row, data, open_views, []), views

    def _still_failed(self, task_id: str) -> bool:
        """Failed before this command and not retried by it: a retry with handlers not
        inline puts the task back in the queue for a worker."""
        return task_id in self.failed_before and task_id not in self.retrying

    def _write_jobs(self, after: list[OpenTask]) -> None:
        """With handlers not inline, the instance's queued service tasks and its next
        timer are its jobs: add a job for a task newly queued, drop those of tasks no
        longer queued, move a failed attempt's job to its next try, keep the timer job
        at the instance's next timer. A job a worker holds keeps its lease."""
        queued = [
            t
            for t in after
            if t.kind == "service"
            and projected_state(t, t.id in self.failures, self._still_failed(t.id)) == "QUEUED"
        ]
        keep = [t.id for t in queued]
        markers = ", ".join(f":k{i}" for i in range(len(keep)))
        sql = "DELETE FROM job WHERE instance_id = :b_id AND kind = 'service'"
        if keep:
            sql += f" AND task_id NOT IN ({markers})"
        params = {"b_id": self.row.id, **{f"k{i}": k for i, k in enumerate(keep)}}
        writes.Write(sql).run(self.conn, params)
        if queued:
            _INSERT_JOB.run(
                self.conn,
                [self._job(t.id, "service", t.operator, self.now) for t in queued],
            )
        for task_id, (attempt, when, error) in self.retry_later.items():
            _RETRY_JOB.run(
                self.conn,
                {"b_task": task_id, "attempts": attempt, "due_at": when, "last_error": error},
            )
        timer = self._timer_job_id()
        if self.row.next_timer_at is None:
            _DELETE_JOB.run(self.conn, {"b_task": timer, "b_kind": "timer"})
        else:
            _UPSERT_TIMER_JOB.run(
                self.conn, self._job(timer, "timer", None, self.row.next_timer_at)
            )

    def _timer_job_id(self) -> str:
        return f"timer-{self.row.id}"

    def _job(
        self, task_id: str, kind: str, operator: str | None, due_at: datetime
    ) -> dict[str, Any]:
        return {
            "instance_id": self.row.id,
            "task_id": task_id,
            "kind": kind,
            "operator": operator,
            "due_at": due_at,
            "attempts": 0,
            "created_at": self.now,
        }

    def _project(self, after: list[OpenTask]) -> list[TaskView]:
        """Work out which task rows change; return the open tasks as views.

        Every changed row is written whole, so one upsert covers new tasks, tasks that
        finished and tasks whose state or deadline moved."""
        self._rows: list[dict[str, Any]] = []
        views: list[TaskView] = []
        now_open = {t.id for t in after}
        for task in after:
            previous = self.before.get(task.id)
            attempts, error = self.failed_before.get(task.id, (0, None))
            state = projected_state(task, task.id in self.failures, self._still_failed(task.id))
            if task.id in self.failures:
                attempts = self._attempt(task.id)
                error = self.failures[task.id]
            elif task.id in self.retry_later:
                attempts, _when, error = self.retry_later[task.id]
            values = self._row(task, state, attempts, error)
            if previous is None:
                self._rows.append(values)
            else:
                before_state = (
                    "FAILED"
                    if task.id in self.failed_before
                    else projected_state(previous, False, False)
                )
                if (
                    before_state != state
                    or previous.due_at != task.due_at
                    or previous.escalated_to != task.escalated_to
                    or task.id in self.failures
                    or task.id in self.retry_later
                ):
                    self._rows.append(values)
                values = {**values, "created_at": None}
            views.append(_view(values, self.row.business_key, self.claims.get(task.id)))
        for task_id, previous in self.before.items():
            if task_id in now_open:
                continue
            how = self.completed.get(task_id)
            attempts, error = self.failed_before.get(task_id, (0, None))
            if previous.kind == "service" and how is not None:
                attempts += 1
            values = self._row(
                previous, "COMPLETED" if how is not None else "CANCELLED", attempts, error
            )
            values["ended_at"] = self.now
            values["completed_by"] = how if previous.kind in ("user", "manual") else None
            self._rows.append(values)
        return views

    def _row(self, task: OpenTask, state: str, attempts: int, error: str | None) -> dict[str, Any]:
        return {
            "id": task.id,
            "instance_id": self.row.id,
            "bpmn_id": task.bpmn_id,
            "name": task.name,
            "kind": task.kind,
            "role": task.lane,
            "state": state,
            "operator": task.operator,
            "four_eyes": task.four_eyes,
            "due_at": task.due_at,
            "escalated_to": task.escalated_to,
            "created_at": self.now,
            "ended_at": None,
            "completed_by": None,
            "attempts": attempts,
            "error": error,
        }

    def _write_tasks(self) -> None:
        if self._rows:
            _UPSERT_TASK.run(self.conn, _one_or_many(self._rows))


def _one_or_many(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """One row is executed as one statement; a list becomes executemany."""
    return rows[0] if len(rows) == 1 else rows


def projected_state(task: OpenTask, failed_now: bool, failed_before: bool) -> str:
    if task.kind in ("user", "manual"):
        return "READY"
    if task.kind == "service":
        return "FAILED" if failed_now or failed_before else "QUEUED"
    return "WAITING"


def _view(
    values: Mapping[str, Any],
    business_key: str | None,
    claim: tuple[str, datetime] | None = None,
) -> TaskView:
    return TaskView(
        id=values["id"],
        short_id=values["id"][:SHORT_ID],
        instance_id=values["instance_id"],
        business_key=business_key,
        bpmn_id=values["bpmn_id"],
        name=values["name"],
        kind=values["kind"],
        role=values["role"],
        state=values["state"],
        operator=values["operator"],
        due_at=values["due_at"],
        escalated_to=values["escalated_to"],
        created_at=values["created_at"],
        ended_at=values["ended_at"],
        completed_by=values["completed_by"],
        attempts=values["attempts"],
        error=values["error"],
        claimed_by=claim[0] if claim else None,
        claimed_at=claim[1] if claim else None,
    )


#: The longest text one summary field keeps.
SUMMARY_TEXT_LIMIT = 200


def summarize(data: Mapping[str, Any], paths: Mapping[str, str]) -> str | None:
    """The configured fields of an instance's data, as JSON text (None: none configured).

    Each path is dotted (`customer.name`); a list met on the way maps over its items
    (`artworks.title` gives every title), and the values are joined with ", "."""
    if not paths:
        return None
    fields: dict[str, str | None] = {}
    for name, path in paths.items():
        found = _pluck(data, path.split("."))
        texts = [_short(v) for v in (found if isinstance(found, list) else [found])]
        joined = ", ".join(t for t in texts if t)
        fields[name] = joined[:SUMMARY_TEXT_LIMIT] or None
    return canonical_json(fields)


def _pluck(value: Any, parts: list[str]) -> Any:
    if isinstance(value, list | tuple):
        found: list[Any] = []
        for item in value:
            plucked = _pluck(item, parts)
            found.extend(plucked if isinstance(plucked, list) else [plucked])
        return found
    if not parts:
        return value
    if isinstance(value, Mapping):
        return _pluck(value.get(parts[0]), parts[1:])
    return None


def _short(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    return str(value)[:SUMMARY_TEXT_LIMIT]


def top_level(data: Mapping[str, Any]) -> dict[str, str]:
    """Each top-level data key with its value as canonical JSON text (a value that has
    none, which the save then refuses, by its type)."""
    found: dict[str, str] = {}
    for key, value in data.items():
        try:
            found[str(key)] = canonical_json(value)
        except (TypeError, ValueError):
            found[str(key)] = canonical_json(f"<{type(value).__name__}>")
    return found


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[Any]]:
    """The top-level keys whose value a step changed: key -> [before, after] (None for
    a key that was not there)."""
    changed: dict[str, list[Any]] = {}
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old != new:
            changed[key] = [
                json.loads(old) if old is not None else None,
                json.loads(new) if new is not None else None,
            ]
    return changed


def instance_data(run: Run) -> dict[str, Any]:
    """A copy of the process data that later steps cannot change under the caller."""
    return {key: _copy_data(value) for key, value in run.data.items()}


def _copy_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_data(item) for item in value]
    return value  # str, numbers, Decimal, dates, None: immutable


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}{where}"


def business_key_taken(key: str) -> InputError:
    return InputError(
        f"business key '{key}' is already used by another instance",
        f"Each instance needs its own key; show the existing one with `artreturns show {key}`.",
    )
