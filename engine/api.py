"""The engine's public surface: one object, one method per command.

Every method that changes an instance runs as one unit of work (see runner.py); every
method that reads uses the projections and the history, never deserialising more
instances than it shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine import definitions
from engine.clock import Clock, SystemClock
from engine.errors import (
    AmbiguousReferenceError,
    ConcurrencyError,
    EngineError,
    InputError,
    InstanceNotFoundError,
    InvalidStateError,
    TaskNotFoundError,
)
from engine.evaluator import Evaluator
from engine.history import Break, ChainedEvent, EventKind, verify
from engine.persistence import (
    DEFAULT_DB,
    Database,
    DefinitionRecord,
    EventRecord,
    InstanceRecord,
    TaskRecord,
)
from engine.registry import Registry
from engine.runner import (
    OPEN_STATES,
    STATUS_RUNNING,
    Settings,
    Work,
    instance_data,
    new_instance_record,
)
from engine.spiff import Run, SpecBundle
from engine.views import (
    CommandResult,
    DeployView,
    EventView,
    InstanceView,
    ProcessView,
    TaskView,
)

_SHORT_ID = re.compile(r"^[0-9a-f]{4,36}$")
_STEP_REF = re.compile(r"^(?P<instance>.+):(?P<step>[A-Za-z_][\w.-]*)$")


@dataclass(frozen=True)
class DueResult:
    """What `run_due` did to one instance."""

    instance: str
    result: CommandResult | None
    error: str | None


class Engine:
    """A workflow engine over one database."""

    def __init__(
        self,
        database: Database | str = DEFAULT_DB,
        *,
        registry: Registry | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.db = database if isinstance(database, Database) else Database(database)
        self.registry = registry if registry is not None else Registry.from_entry_points()
        self.clock: Clock = clock or SystemClock()
        self.settings = settings or Settings()
        self.evaluator = Evaluator(self.settings.expression_time_limit)
        self._specs = definitions.SpecCache()

    # -- schema --------------------------------------------------------------------

    def init(self) -> tuple[str | None, str]:
        """Create the schema, or upgrade it to the newest revision."""
        return self.db.upgrade()

    # -- definitions ---------------------------------------------------------------

    def validate(self, paths: Iterable[str | Path]) -> list[DeployView]:
        """Check diagrams without deploying them; raise ProcessValidationError."""
        files = definitions.collect_files(paths)
        compilation = definitions.validate(files, self.registry)
        return [
            DeployView(p.process_id, 0, p.name, False, p.content_hash)
            for p in compilation.processes.values()
        ]

    def deploy(self, paths: Iterable[str | Path], actor: str) -> list[DeployView]:
        """Validate diagrams and store each changed process as a new version."""
        files = definitions.collect_files(paths)
        compilation = definitions.validate(files, self.registry)
        now = self.clock.now()
        with self.db.transaction() as session:
            deployed = definitions.store(session, compilation, files, actor, now)
        return [
            DeployView(d.process_id, d.version, d.name, d.created, d.content_hash) for d in deployed
        ]

    def processes(self, all_versions: bool = False) -> list[ProcessView]:
        with self.db.read() as session:
            latest = dict(
                session.execute(
                    select(
                        DefinitionRecord.process_id, func.max(DefinitionRecord.version)
                    ).group_by(DefinitionRecord.process_id)
                ).all()
            )
            query = select(DefinitionRecord).order_by(
                DefinitionRecord.process_id, DefinitionRecord.version
            )
            records = session.scalars(query).all()
            return [
                ProcessView(
                    process_id=r.process_id,
                    version=r.version,
                    name=r.name,
                    content_hash=r.content_hash,
                    deployed_at=r.deployed_at,
                    deployed_by=r.deployed_by,
                    lanes=list(r.lanes),
                    files=list(r.files),
                    latest=latest.get(r.process_id) == r.version,
                )
                for r in records
                if all_versions or latest.get(r.process_id) == r.version
            ]

    # -- instance commands ---------------------------------------------------------

    def start(
        self,
        process_id: str,
        data: Mapping[str, Any] | None = None,
        *,
        business_key: str | None = None,
        actor: str,
        version: int | None = None,
    ) -> CommandResult:
        """Start an instance of the latest (or the given) version of a process."""
        payload = _require_mapping(data or {}, "start data")
        key = business_key.strip() if business_key else None
        if key is not None and not key:
            raise InputError("the business key is empty")
        now = self.clock.now()
        with self.db.transaction() as session:
            definition = definitions.find_definition(session, process_id, version)
            if key is not None:
                taken = session.scalars(
                    select(InstanceRecord.id).where(InstanceRecord.business_key == key)
                ).first()
                if taken is not None:
                    raise InputError(
                        f"business key '{key}' is already used by instance #{taken}",
                        "Each instance needs its own key; show the existing one with "
                        f"`artreturns show {key}`.",
                    )
            record = new_instance_record(definition, key, actor, now)
            session.add(record)
            session.flush()
            bundle = self._specs.get(definition)
            run = Run.start(bundle, payload, self.evaluator, lambda: now)
            work = Work.load(session, self.registry, self.settings, record, run, actor, now)
            work.record_event(
                EventKind.STARTED,
                {"data": dict(payload), "business_key": key, "definition": definition.content_hash},
            )
            work.run_handlers()
            instance, events = work.save()
        return CommandResult(instance, events, list(work.failures.values()))

    def complete(
        self, task: str, data: Mapping[str, Any] | None = None, *, actor: str
    ) -> CommandResult:
        """Complete a ready user task with data, then run the instance on."""
        payload = _require_mapping(data or {}, "task data")
        late: list[str] = []

        def apply(work: Work, row: TaskRecord | None) -> None:
            assert row is not None
            open_ids = {t.id for t in work.run.open_tasks()}
            if row.id not in open_ids:
                late.append(row.name)
                return
            work.complete_user_task(row.id, payload)

        result = self._change(None, actor, apply, task_ref=task)
        if late:
            raise InvalidStateError(
                f"'{late[0]}' is no longer open: its deadline passed and the process moved on",
                f"See what is open now with `artreturns show {result.instance.label}`.",
            )
        return result

    def cancel(self, instance: str, *, actor: str, reason: str = "") -> CommandResult:
        """Cancel a running instance; nothing more runs on it."""
        return self._change(instance, actor, lambda work, _: work.cancel(reason), fire=False)

    def message(
        self, instance: str, name: str, payload: Mapping[str, Any] | None = None, *, actor: str
    ) -> CommandResult:
        """Deliver a BPMN message to an instance that waits for it."""
        body = _require_mapping(payload or {}, "message payload")
        return self._change(instance, actor, lambda work, _: work.deliver_message(name, body))

    def comment(self, instance: str, text: str, *, actor: str) -> CommandResult:
        """Add a note to an instance's history."""
        if not text.strip():
            raise InputError("the comment is empty")
        return self._change(instance, actor, lambda work, _: work.comment(text), fire=False)

    def retry(self, instance: str, *, actor: str) -> CommandResult:
        """Run the failed service tasks of an instance again."""

        def apply(work: Work, _: TaskRecord | None) -> None:
            failed = [row for row in work.previous.values() if row.state == "FAILED"]
            if not failed:
                raise InvalidStateError(
                    f"{work.record.business_key or '#' + str(work.record.id)} has no failed tasks",
                    "Failed tasks are listed by `artreturns show`.",
                )
            for row in failed:
                work.retrying.add(row.id)
                work.record_event(
                    EventKind.RETRIED,
                    {"task": row.bpmn_id, "attempts_so_far": row.attempts},
                    _open_task(work, row.id),
                )

        return self._change(instance, actor, apply)

    def fire_due(self, instance: str, *, actor: str) -> CommandResult:
        """Fire the timers of one instance that are due now."""
        return self._change(instance, actor, lambda work, _: None)

    def run_due(self, *, actor: str, limit: int | None = None) -> list[DueResult]:
        """Fire every timer due now, one instance per transaction."""
        now = self.clock.now()
        with self.db.read() as session:
            query = (
                select(InstanceRecord.id, InstanceRecord.business_key)
                .where(
                    InstanceRecord.status == STATUS_RUNNING,
                    InstanceRecord.next_timer_at.is_not(None),
                    InstanceRecord.next_timer_at <= now,
                )
                .order_by(InstanceRecord.next_timer_at, InstanceRecord.id)
            )
            if limit is not None:
                query = query.limit(limit)
            due = session.execute(query).all()
        results: list[DueResult] = []
        for instance_id, key in due:
            label = key or f"#{instance_id}"
            try:
                result = self._change(str(instance_id), actor, lambda work, _: None, by_id=True)
                results.append(DueResult(label, result, None))
            except ConcurrencyError:
                results.append(DueResult(label, None, "changed by another command; skipped"))
            except EngineError as exc:
                results.append(DueResult(label, None, str(exc)))
        return results

    def _change(
        self,
        instance: str | None,
        actor: str,
        apply: Callable[[Work, TaskRecord | None], None],
        *,
        task_ref: str | None = None,
        fire: bool = True,
        by_id: bool = False,
    ) -> CommandResult:
        now = self.clock.now()
        with self.db.transaction() as session:
            row: TaskRecord | None = None
            if task_ref is not None:
                row = self._find_task(session, task_ref)
                record = session.get(InstanceRecord, row.instance_id)
                assert record is not None
            elif by_id and instance is not None:
                found = session.get(InstanceRecord, int(instance))
                if found is None:
                    raise InstanceNotFoundError(f"no instance #{instance}")
                record = found
            else:
                assert instance is not None
                record = self._find_instance(session, instance)
            if record.status != STATUS_RUNNING:
                raise InvalidStateError(
                    f"{record.business_key or '#' + str(record.id)} is {record.status}",
                    "Only running instances can be changed.",
                )
            run = self._restore(session, record, now)
            work = Work.load(session, self.registry, self.settings, record, run, actor, now)
            if fire:
                work.fire_due_timers()
            apply(work, row)
            work.run_handlers()
            view, events = work.save()
        return CommandResult(view, events, list(work.failures.values()))

    # -- queries -------------------------------------------------------------------

    def tasks(
        self,
        *,
        role: str | None = None,
        instance: str | None = None,
        kinds: tuple[str, ...] = ("user", "manual"),
        states: tuple[str, ...] = ("READY",),
    ) -> list[TaskView]:
        """Open tasks from the task table (indexed by state and role)."""
        with self.db.read() as session:
            query = (
                select(TaskRecord, InstanceRecord.business_key)
                .join(InstanceRecord, InstanceRecord.id == TaskRecord.instance_id)
                .where(TaskRecord.state.in_(states), TaskRecord.kind.in_(kinds))
            )
            if role is not None:
                query = query.where(TaskRecord.role == role)
            if instance is not None:
                query = query.where(
                    TaskRecord.instance_id == self._find_instance(session, instance).id
                )
            query = query.order_by(
                TaskRecord.due_at.is_(None), TaskRecord.due_at, TaskRecord.created_at, TaskRecord.id
            )
            return [TaskView.of(row, key) for row, key in session.execute(query).all()]

    def show(self, instance: str) -> InstanceView:
        """An instance with its data and all its tasks, open and done."""
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            rows = session.scalars(
                select(TaskRecord)
                .where(TaskRecord.instance_id == record.id)
                .order_by(TaskRecord.created_at, TaskRecord.id)
            ).all()
            key = record.business_key
            open_views = [TaskView.of(r, key) for r in rows if r.state in OPEN_STATES]
            done_views = [TaskView.of(r, key) for r in rows if r.state not in OPEN_STATES]
            run = self._restore(session, record, self.clock.now())
            return InstanceView.of(record, instance_data(run), open_views, done_views)

    def history(self, instance: str) -> list[EventView]:
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            events = session.scalars(
                select(EventRecord)
                .where(EventRecord.instance_id == record.id)
                .order_by(EventRecord.seq)
            ).all()
            return [EventView.of(e) for e in events]

    def verify(self, instance: str) -> Break | None:
        """Recompute an instance's hash chain; return the first broken link, if any."""
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            events = session.scalars(
                select(EventRecord)
                .where(EventRecord.instance_id == record.id)
                .order_by(EventRecord.seq)
            ).all()
            chained = (
                ChainedEvent(
                    instance_uid=record.uid,
                    seq=e.seq,
                    at=e.at,
                    actor=e.actor,
                    kind=e.kind,
                    bpmn_id=e.bpmn_id,
                    task_name=e.task_name,
                    task_id=e.task_id,
                    data=e.data,
                    process_id=e.process_id,
                    process_version=e.process_version,
                    state_digest=e.state_digest,
                    prev_hash=e.prev_hash,
                    hash=e.hash,
                )
                for e in events
            )
            return verify(chained, record.event_count, record.head_hash)

    # -- lookups -------------------------------------------------------------------

    def _restore(self, session: Session, record: InstanceRecord, now: datetime) -> Run:
        bundle = self._bundle(session, record.definition_id)
        return Run.restore(
            bundle, record.state, record.serializer_version, self.evaluator, lambda: now
        )

    def _bundle(self, session: Session, definition_id: int) -> SpecBundle:
        definition = self._specs.cached(definition_id)
        if definition is not None:
            return definition
        record = session.get(DefinitionRecord, definition_id)
        if record is None:
            raise InstanceNotFoundError(f"definition {definition_id} is missing")
        return self._specs.get(record)

    def _find_instance(self, session: Session, ref: str) -> InstanceRecord:
        text = ref.strip()
        record = session.scalars(
            select(InstanceRecord).where(InstanceRecord.business_key == text)
        ).first()
        if record is None:
            number = text[1:] if text.startswith("#") else text
            if number.isdigit():
                record = session.get(InstanceRecord, int(number))
        if record is None:
            raise InstanceNotFoundError(
                f"no instance '{ref}'",
                "Give a business key or an instance number; `artreturns tasks --all` lists "
                "instances with open work.",
            )
        return record

    def _find_task(self, session: Session, ref: str) -> TaskRecord:
        """A task by a unique prefix of its id, or by INSTANCE:STEP for the open task
        with that BPMN id."""
        text = ref.strip()
        step = _STEP_REF.match(text)
        if step is not None and not _SHORT_ID.match(text):
            instance = self._find_instance(session, step.group("instance"))
            rows = session.scalars(
                select(TaskRecord).where(
                    TaskRecord.instance_id == instance.id,
                    TaskRecord.bpmn_id == step.group("step"),
                    TaskRecord.state.in_(OPEN_STATES),
                )
            ).all()
            return _one(rows, ref, "open task")
        if not _SHORT_ID.match(text.lower()):
            raise InputError(
                f"'{ref}' is not a task id",
                "Give the id shown by `artreturns tasks` (the first 8 characters are enough) "
                "or INSTANCE:STEP, for example RMA-1:review.",
            )
        rows = session.scalars(
            select(TaskRecord)
            .where(
                or_(TaskRecord.id == text.lower(), TaskRecord.id.startswith(text.lower())),
                TaskRecord.state.in_(OPEN_STATES),
            )
            .limit(5)
        ).all()
        return _one(rows, ref, "open task")


def _one(rows: Any, ref: str, what: str) -> TaskRecord:
    rows = list(rows)
    if not rows:
        raise TaskNotFoundError(
            f"no {what} '{ref}'", "List open tasks with `artreturns tasks --all`."
        )
    if len(rows) > 1:
        ids = ", ".join(r.id[:12] for r in rows)
        raise AmbiguousReferenceError(
            f"'{ref}' matches more than one {what}: {ids}", "Give more characters of the id."
        )
    row: TaskRecord = rows[0]
    return row


def _open_task(work: Work, task_id: str) -> Any:
    for task in work.run.open_tasks():
        if task.id == task_id:
            return task
    return None


def _require_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a JSON object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise InputError(
                f"{what} has the key {key!r}, which diagrams cannot use",
                "Keys must be names (letters, digits, underscores) not starting with '_'.",
            )
    return dict(value)
