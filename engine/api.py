"""The engine's public surface: one object, one method per command.

Every method that changes an instance runs as one unit of work (see runner.py); every
method that reads uses the projections and the history, never deserialising more
instances than it shows.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from engine import definitions, reading, users, watching
from engine.canonical import MAX_DEPTH, canonical_json, nesting, sha256_hex
from engine.clock import Clock, SystemClock
from engine.errors import (
    AmbiguousReferenceError,
    ConcurrencyError,
    ConfigurationError,
    EngineError,
    FormValidationError,
    InputError,
    InstanceNotFoundError,
    InvalidStateError,
    PermissionDeniedError,
    PersistenceError,
    StoredStateError,
    TaskNotFoundError,
)
from engine.forms import Form
from engine.history import GENESIS_HASH, Break, ChainedEvent, EventKind, verify
from engine.jobs import Jobs
from engine.parts import Gate
from engine.people import People
from engine.permissions import may_administer, may_archive, may_change, may_housekeep
from engine.persistence import (
    DEFAULT_DB,
    Database,
    DefinitionRecord,
    EventRecord,
    InstanceRecord,
    RoleSetRecord,
    TaskRecord,
)
from engine.reading import OPEN_STATES, summary_paths
from engine.registry import Registry
from engine.roles import Roles
from engine.runner import (
    INSTANCE,
    STATUS_RUNNING,
    TASK,
    InstanceRow,
    Settings,
    Work,
    business_key_taken,
    changes,
    instance_data,
    load_instance,
    new_instance,
    top_level,
)
from engine.versions import Versions
from engine.views import (
    CommandResult,
    DeployView,
    EventView,
    FormView,
    InstanceView,
    ProcessView,
    TaskView,
)

if TYPE_CHECKING:  # imported when an instance is run: `tasks` needs neither
    from engine.audit import Manifest
    from engine.diff import Comparison
    from engine.evaluator import Evaluator
    from engine.indicators import Indicators
    from engine.replay import ReplayReport
    from engine.spiff import Run, SpecBundle

log = logging.getLogger("artreturns.engine")

_SHORT_ID = re.compile(r"^[0-9a-f][0-9a-f-]{3,35}$")
_STEP_REF = re.compile(r"^(?P<instance>.+):(?P<step>[A-Za-z_][\w.-]*)$")

_TASK_AND_INSTANCE = select(TASK.c.id.label("task_id"), INSTANCE).join(
    INSTANCE, INSTANCE.c.id == TASK.c.instance_id
)
_TASK_BY_ID = _TASK_AND_INSTANCE.where(
    TASK.c.id == bindparam("b_id"), TASK.c.state.in_(OPEN_STATES)
)
_TASK_BY_PREFIX = _TASK_AND_INSTANCE.where(
    TASK.c.id >= bindparam("b_low"), TASK.c.id < bindparam("b_high"), TASK.c.state.in_(OPEN_STATES)
).limit(5)
_TASK_BY_STEP = _TASK_AND_INSTANCE.where(
    TASK.c.instance_id == bindparam("b_instance"),
    TASK.c.bpmn_id == bindparam("b_step"),
    TASK.c.state.in_(OPEN_STATES),
).limit(5)
_INSTANCE_BY_KEY = select(INSTANCE.c.id).where(INSTANCE.c.business_key == bindparam("b_key"))
_SPEC_JSON = select(DefinitionRecord.spec_json).where(DefinitionRecord.id == bindparam("b_id"))
_INSTANCE_BY_ID = select(INSTANCE.c.id).where(INSTANCE.c.id == bindparam("b_id"))
_TASK_STEP = select(TASK.c.bpmn_id, TASK.c.name, TASK.c.kind, TASK.c.role).where(
    TASK.c.id == bindparam("b_id")
)


if TYPE_CHECKING:
    from engine.archive import Archive, ArchiveResult
    from engine.audit import ExportedInstance, Manifest

    #: A cached instance: its row, its run, its open user tasks' ids, the claims on them.
    _Cached = tuple[InstanceRow, Run, list[str], dict[str, tuple[str, datetime]]]


@dataclass(frozen=True)
class DueResult:
    """What `run_due` or `retry_all` did to one instance."""

    instance: str
    result: CommandResult | None
    error: str | None
    #: Skipped because another command changed the instance meanwhile (not a failure:
    #: that command did, or will do, what was due).
    raced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "error": self.error,
            "result": self.result.to_dict() if self.result else None,
        }


class Engine(People, Jobs, Versions):
    """A workflow engine over one database."""

    def __init__(
        self,
        database: Database | str | URL = DEFAULT_DB,
        *,
        registry: Registry | Callable[[], Registry] | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        services: Callable[[Connection, datetime], Any] | None = None,
    ) -> None:
        """`registry` may be a function that makes one (the default reads the entry
        points): it is called when a handler is first needed, so that a command that
        runs none never imports the handler packages."""
        self.db = database if isinstance(database, Database) else Database(database)
        #: Builds `ctx.services` for handlers; None gives handlers no services.
        self.services = services
        self._registry = registry if registry is not None else Registry.from_entry_points
        self.clock: Clock = clock or SystemClock()
        self.settings = settings or Settings()
        if self.settings.summary is None:
            self.settings = replace(self.settings, summary=summary_paths())
        self._evaluator: Evaluator | None = None
        self._lane_cache: dict[int, list[str]] = {}
        self._specs = definitions.SpecCache()
        self._forms = definitions.FormCache()
        #: Instances this process saved last, with their open user tasks' ids.
        #: Each with the claims on its tasks as saved (a claim changes the revision too).
        self._runs: OrderedDict[int, _Cached] = OrderedDict()
        self._task_owner: dict[str, int] = {}
        #: What the person asked for, as they said it (a command line): kept with the
        #: first event each command records, and with its operation-log entry.
        self.intent: str | None = None

    @property
    def registry(self) -> Registry:
        """The handlers, read from the entry points (or made) on first use."""
        if not isinstance(self._registry, Registry):
            self._registry = self._registry()
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self._registry = registry

    @property
    def evaluator(self) -> Evaluator:
        """The sandbox of the diagrams' expressions, made when an instance first runs."""
        if self._evaluator is None:
            from engine.evaluator import Evaluator

            self._evaluator = Evaluator(
                self.settings.expression_time_limit,
                memory_limit=self.settings.expression_memory_limit,
            )
        return self._evaluator

    # -- schema --------------------------------------------------------------------

    def init(self, *, actor: str | None = None) -> tuple[str | None, str]:
        """Create the schema, or upgrade it to the newest revision.

        With `actor`, once users exist only an admin may; a change is logged."""
        if actor is not None:
            # Without a schema (or one from before users) there is nobody to ask.
            with contextlib.suppress(ConfigurationError):
                self._authorize(actor, "init", lambda p, _: may_administer(p, "upgrade the schema"))
        before, after = self.db.upgrade()
        if actor is not None and before != after:
            self._log(actor, "init", None, "done", {"schema": [before or None, after]})
        return before, after

    # -- definitions ---------------------------------------------------------------

    def validate(
        self, paths: Iterable[str | Path], *, stored_roles: bool = True
    ) -> list[DeployView]:
        """Check diagrams without deploying them; raise ProcessValidationError.

        Lanes are checked against the roles file among the paths, else (with
        `stored_roles`) against the roles last deployed to this database, if any."""
        paths = list(paths)
        files = definitions.collect_files(paths)
        roles, problems = definitions.find_roles(paths)
        if roles is None and not problems and stored_roles:
            roles = self._stored_roles_if_any()
        compilation = definitions.validate(
            files, self.registry, deploying=False, roles=roles, role_problems=problems
        )
        return [
            DeployView(p.process_id, 0, p.name, False, p.content_hash)
            for p in compilation.processes.values()
        ]

    def diff(
        self,
        process_id: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        to_paths: Iterable[str | Path] | None = None,
        actor: str | None = None,
    ) -> Comparison:
        """What changed in a process, the processes it calls and the decisions it uses
        (`engine.diff`): from a deployed version (default: the latest) to another one
        (`to_version`) or to diagram files and folders (`to_paths`, default processes/)."""
        from engine import diff, report

        if actor is not None:
            self.authorize(actor, "diff", "read", target=process_id)
        if to_version is not None and to_paths is not None:
            raise InputError(
                "compare with a deployed version or with files, not both",
                "Give --to a version number or paths, once.",
            )

        def stored(session: Session, version: int | None) -> tuple[int, dict[str, bytes]]:
            record = definitions.find_definition(session, process_id, version)
            sources = report.deployed_sources(session, record.id)
            return record.version, {s.name: s.content.encode("utf-8") for s in sources}

        with self.db.read() as session:
            before, old = stored(session, from_version)
            if to_version is not None:
                after, new = stored(session, to_version)
                label = f"v{after}"
        if to_version is None:
            paths = list(to_paths or ("processes/",))
            # The files named replace the version's files of the same name: naming one
            # edited table compares the version with only that table changed.
            new = {**old, **{f.name: f.content for f in definitions.collect_files(paths)}}
            label = ", ".join(str(p) for p in paths) + " (files on disk)"
        changes = diff.compare(process_id, old, new)
        return diff.Comparison(process_id, f"v{before}", label, changes)

    def deploy(self, paths: Iterable[str | Path], actor: str) -> list[DeployView]:
        """Validate diagrams and store each changed process as a new version.

        A roles file among the paths is checked and deployed with them; without one,
        lanes are checked against the roles deployed before (if any were). Once users
        exist, only an admin may deploy; every deployment is in the operation log."""
        self._authorize(actor, "deploy", lambda p, _: may_administer(p, "deploy diagrams"))
        paths = list(paths)
        files = definitions.collect_files(paths)
        roles, problems = definitions.find_roles(paths)
        given = roles is not None
        if not given and not problems:
            roles = self.roles()
        compilation = definitions.validate(
            files, self.registry, deploying=True, roles=roles, role_problems=problems
        )
        now = self.clock.now()
        with self.db.transaction() as session:
            if given and roles is not None:
                _store_roles(session, roles, actor, now)
            deployed = definitions.store(session, compilation, files, actor, now)
            self.log_operation(
                session.connection(),
                actor,
                "deploy",
                ", ".join(sorted({d.process_id for d in deployed})) or None,
                {
                    "versions": [
                        {"process": d.process_id, "version": d.version, "created": d.created}
                        for d in deployed
                    ],
                    "roles_file": given,
                },
            )
        return [
            DeployView(d.process_id, d.version, d.name, d.created, d.content_hash) for d in deployed
        ]

    def roles(self) -> Roles | None:
        """The roles deployed last (None when no roles file was ever deployed)."""
        with self.db.read() as session:
            record = session.scalars(
                select(RoleSetRecord).order_by(RoleSetRecord.id.desc()).limit(1)
            ).first()
            return Roles.from_data(list(record.roles)) if record is not None else None

    def _stored_roles_if_any(self) -> Roles | None:
        """Stored roles for `validate`, which must also work without a database (and
        must not create a SQLite file by looking)."""
        database = self.db.url.database
        if self.db.is_sqlite and (not database or not Path(database).is_file()):
            return None
        try:
            return self.roles()
        except EngineError:
            return None

    def processes(
        self, all_versions: bool = False, *, actor: str | None = None
    ) -> list[ProcessView]:
        if actor is not None:
            self.authorize(actor, "processes", "read")
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
        from engine.spiff import Run

        payload = _require_mapping(data or {}, "start data")
        key = business_key.strip() if business_key is not None else None
        if key is not None and not key:
            raise InputError("the business key is empty")
        if key is not None and (key.isdigit() or key.startswith("#")):
            raise InputError(
                f"business key '{key}' could be mistaken for an instance number",
                "Use a key with letters, for example RMA-2026-000123.",
            )
        now = self.clock.now()
        with self.db.connect() as conn:
            definition = definitions.find_definition_row(conn, process_id, version)
            refusal = self._start_refusal(conn, actor, process_id, definition.id)
            if refusal is not None:
                conn.rollback()
                self._deny(actor, "start", process_id, refusal)
            if key is not None and conn.execute(_INSTANCE_BY_KEY, {"b_key": key}).first():
                raise business_key_taken(key)
            row = new_instance(
                definition_id=definition.id,
                process_id=definition.process_id,
                process_version=definition.version,
                business_key=key,
                actor=actor,
                now=now,
            )
            bundle = self._bundle(conn, definition.id)
            run = Run.start(bundle, payload, self.evaluator, lambda: now)
            work = Work.load(
                conn,
                self.registry,
                self.settings,
                row,
                run,
                actor,
                now,
                new=True,
                services=self.services,
            )
            work.intent = self.intent
            work.record_event(
                EventKind.STARTED,
                {
                    "data": dict(payload),
                    "business_key": key,
                    "definition": definition.content_hash,
                    # What the steps up to the first wait made of the data given.
                    "changed": changes(top_level(payload), top_level(run.data)),
                },
            )
            work.run_handlers()
            instance, events = work.save()
        self._keep(work)
        return CommandResult(instance, events, list(work.failures.values()))

    def complete(
        self, task: str, data: Mapping[str, Any] | None = None, *, actor: str
    ) -> CommandResult:
        """Complete a ready user task with data, then run the instance on.

        The data must fit the task's form, when its diagram declares one: every problem
        (unknown, missing or mistyped fields, a value not among the choices) is raised
        at once as FormValidationError, and nothing is saved."""
        payload = _require_mapping(data or {}, "task data")
        ref = task.strip()
        late: list[str] = []
        denied: list[str] = []

        def apply(work: Work, task_id: str | None) -> None:
            assert task_id is not None
            late.clear()
            denied.clear()
            if task_id not in {t.id for t in work.run.open_tasks()}:
                before = work.before.get(task_id)
                late.append(before.name if before is not None else task_id)
                return
            if self._task_refusal(work, task_id, "complete"):
                return  # not the actor's role, or claimed by someone else
            earlier = work.four_eyes_conflict(task_id)
            if earlier is not None:
                task = next(t for t in work.run.open_tasks() if t.id == task_id)
                reason = (
                    f"{actor} already decided '{earlier}' in this approval chain; "
                    f"another person must decide '{task.name}'"
                )
                work.deny("complete", reason, task)
                denied.append(reason)
                return
            self._check_form(work, task_id, payload, ref)
            work.complete_user_task(task_id, payload)

        result = self._change(None, actor, apply, task_ref=task, operation="complete")
        if denied:
            raise PermissionDeniedError(
                denied[0], "Four eyes: each level of an approval is decided by someone else."
            )
        if late:
            raise InvalidStateError(
                f"'{late[0]}' is no longer open: its deadline passed and the process moved on",
                f"See what is open now with `artreturns show {result.instance.label}`.",
            )
        return result

    def form(self, task: str) -> FormView:
        """The form of an open task (an id prefix or INSTANCE:STEP): its fields, their
        types and choices, which are required, and the variable they go under."""
        with self.db.connect() as conn:
            task_id, row = self._find_task(conn, task)
            step = conn.execute(_TASK_STEP, {"b_id": task_id}).one()
            form = self._form_of(conn, row.definition_id, step.bpmn_id, step.kind)
        return FormView(
            task_id=task_id,
            short_id=task_id[:8],
            instance=row.label,
            bpmn_id=step.bpmn_id,
            name=step.name,
            kind=step.kind,
            role=step.role,
            has_form=form is not None,
            variable=form.variable if form is not None else None,
            fields=list(form.fields) if form is not None else [],
        )

    def _form_of(
        self, conn: Connection, definition_id: int, bpmn_id: str, kind: str
    ) -> Form | None:
        if kind != "user":
            return None
        return self._forms.get(conn, definition_id).get(bpmn_id)

    def _check_form(self, work: Work, task_id: str, data: Mapping[str, Any], ref: str) -> None:
        """Refuse data that does not fit the task's form, before anything changes."""
        task = next(t for t in work.run.open_tasks() if t.id == task_id)
        form = self._form_of(work.conn, work.row.definition_id, task.bpmn_id, task.kind)
        problems = form.check(data) if form is not None else []
        if problems:
            *others, last = dict.fromkeys(p.field for p in problems)
            fields = f"{', '.join(others)} and {last}" if others else last
            raise FormValidationError(
                task.name,
                problems,
                f"Nothing was saved: correct {fields}, then complete the task again. "
                f"`artreturns form {ref}` lists the form's fields.",
            )

    def cancel(self, instance: str, *, actor: str, reason: str = "") -> CommandResult:
        """Cancel a running instance; nothing more runs on it."""
        return self._change(
            instance,
            actor,
            lambda work, _: work.cancel(reason),
            fire=False,
            operation="cancel",
            gate=self._gate("cancel", "cancel"),
        )

    def message(
        self, instance: str, name: str, payload: Mapping[str, Any] | None = None, *, actor: str
    ) -> CommandResult:
        """Deliver a BPMN message to an instance that waits for it."""
        body = _require_mapping(payload or {}, "message payload")
        return self._change(
            instance,
            actor,
            lambda work, _: work.deliver_message(name, body),
            operation="message",
            gate=self._gate("take part", "deliver messages"),
        )

    def comment(self, instance: str, text: str, *, actor: str) -> CommandResult:
        """Add a note to an instance's history."""
        if not text.strip():
            raise InputError("the comment is empty")
        return self._change(
            instance,
            actor,
            lambda work, _: work.comment(text),
            fire=False,
            operation="comment",
            gate=self._gate("take part", "comment"),
        )

    def retry(self, target: str, *, actor: str, operator: str | None = None) -> CommandResult:
        """Run failed service tasks again: every one of an instance (its number or
        business key), or one incident (a failed task's id, id prefix or INSTANCE:STEP).
        With `operator`, only the tasks that call it."""

        def apply(work: Work, task_id: str | None) -> None:
            failed = sorted(work.failed_before.items())
            if task_id is not None:
                failed = [(i, f) for i, f in failed if i == task_id]
            if operator is not None:
                failed = [
                    (i, f)
                    for i, f in failed
                    if (task := work.before.get(i)) is not None and task.operator == operator
                ]
            if not failed:
                what = "that task has not failed" if task_id is not None else "no failed tasks"
                if operator is not None:
                    what += f" calling {operator}"
                raise InvalidStateError(
                    f"{work.row.label}: {what}",
                    "Incidents are listed by `artreturns incidents`.",
                )
            for failed_id, (attempts, _error) in failed:
                task = work.before.get(failed_id)
                work.retrying.add(failed_id)
                work.record_event(
                    EventKind.RETRIED,
                    {"task": task.bpmn_id if task else None, "attempts_so_far": attempts},
                    task,
                )

        try:
            with self.db.read() as session:
                self._find_instance(session, target)
        except InstanceNotFoundError:
            return self._change(
                None, actor, apply, task_ref=target, operation="retry", gate=self._gate("retry", "")
            )
        return self._change(target, actor, apply, operation="retry", gate=self._gate("retry", ""))

    def incidents(self, *, operator: str | None = None) -> list[TaskView]:
        """Failed service tasks, oldest first: each waits for its cause to be fixed and
        for `retry`."""
        found = self.tasks(kinds=("service",), states=("FAILED",))
        if operator is not None:
            found = [t for t in found if t.operator == operator]
        return sorted(
            found, key=lambda t: (t.created_at is None, t.created_at, t.instance_id, t.id)
        )

    def retry_all(
        self,
        *,
        actor: str,
        operator: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[DueResult]:
        """Retry every incident (those calling `operator`), one instance per transaction;
        an instance that fails again is reported, not raised; `progress` is told
        (instances done, instances in all) after each."""
        self._authorize(actor, "retry", lambda p, _: may_change(p, "retry failed tasks"))
        instances: dict[int, str] = {}
        for incident in self.incidents(operator=operator):
            label = incident.business_key or f"#{incident.instance_id}"
            instances.setdefault(incident.instance_id, label)
        return _one_by_one(
            [
                (label, partial(self.retry, str(instance_id), actor=actor, operator=operator))
                for instance_id, label in instances.items()
            ],
            progress,
        )

    def fire_due(self, instance: str, *, actor: str) -> CommandResult:
        """Fire the timers of one instance that are due now."""
        return self._change(
            instance,
            actor,
            _nothing,
            operation="fire due timers",
            gate=self._gate("housekeeping", "fire due timers"),
        )

    def run_due(
        self,
        *,
        actor: str,
        limit: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[DueResult]:
        """Fire every timer due now, one instance per transaction; `progress` is told
        (instances done, instances due) after each."""
        self._authorize(actor, "run-due", lambda p, _: may_housekeep(p, "fire due timers"))
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
        return _one_by_one(
            [
                (
                    key or f"#{instance_id}",
                    partial(self._change, str(instance_id), actor, _nothing, by_id=True),
                )
                for instance_id, key in due
            ],
            progress,
        )

    def _change(
        self,
        instance: str | None,
        actor: str,
        apply: Callable[[Work, str | None], None],
        *,
        task_ref: str | None = None,
        fire: bool = True,
        by_id: bool = False,
        operation: str = "change",
        gate: Gate | None = None,
        immediate: bool = False,
    ) -> CommandResult:
        """Run `apply` on an instance as one unit of work. `gate` (by default: an active
        user who is not an auditor) decides before anything runs whether the actor may
        go on; a refusal is saved as a `denied` event and raised after the commit."""
        now = self.clock.now()
        check = gate or _default_gate(operation)
        hit = self._cache_hit(instance, task_ref, by_id)
        if hit is not None:
            # The instance as this process last saved it: write it back on the condition
            # that nobody changed it since (the revision check). If somebody did, load it
            # again and redo the command on what is stored.
            row, run, task_id, claims = hit
            run.use_clock(lambda: now)
            try:
                with self.db.connect(immediate=immediate) as conn:
                    work, result = self._work(
                        conn,
                        row,
                        run,
                        task_id,
                        actor,
                        now,
                        apply,
                        fire,
                        (operation, check),
                        claims=claims,
                    )
                self._keep(work)
                return _refused_or(work, result)
            except ConcurrencyError:
                log.info("%s changed elsewhere since this process cached it", row.label)
        with self.db.connect(immediate=immediate) as conn:
            task_id = None
            if task_ref is not None:
                task_id, row = self._find_task(conn, task_ref)
            elif by_id and instance is not None:
                found = load_instance(conn, int(instance))
                if found is None:
                    raise InstanceNotFoundError(f"no instance #{instance}")
                row = found
            else:
                assert instance is not None
                row = self._find_instance_row(conn, instance)
            if row.status != STATUS_RUNNING:
                raise InvalidStateError(
                    f"{row.label} is {row.status}", "Only running instances can be changed."
                )
            run = self._restore(conn, row, now)
            work, result = self._work(
                conn, row, run, task_id, actor, now, apply, fire, (operation, check)
            )
        self._keep(work)
        return _refused_or(work, result)

    def _work(
        self,
        conn: Connection,
        row: InstanceRow,
        run: Run,
        task_id: str | None,
        actor: str,
        now: datetime,
        apply: Callable[[Work, str | None], None],
        fire: bool,
        gate: tuple[str, Gate],
        *,
        claims: dict[str, tuple[str, datetime]] | None = None,
    ) -> tuple[Work, CommandResult]:
        work = Work.load(
            conn,
            self.registry,
            self.settings,
            row,
            run,
            actor,
            now,
            services=self.services,
            claims=claims,
        )
        operation, check = gate
        work.principal = users.principal(conn, actor)
        refusal = check(work, work.principal)
        if refusal is not None:
            # Refused before anything runs: no timer fires, no handler runs in the
            # name of someone who may not act; only the refusal is saved.
            work.intent = self.intent
            work.refuse(operation, refusal, work.open_task(task_id))
        else:
            if fire:
                work.fire_due_timers()
            work.intent = self.intent  # on the command's own first event, not a timer's
            apply(work, task_id)
            work.run_handlers()
        view, events = work.save()
        return work, CommandResult(view, events, list(work.failures.values()))

    def _cache_hit(
        self, instance: str | None, task_ref: str | None, by_id: bool
    ) -> tuple[InstanceRow, Run, str | None, dict[str, tuple[str, datetime]]] | None:
        """Take an instance out of the in-memory cache for a command that names it by
        a full task id or by number. It goes back only after the command committed."""
        if task_ref is not None:
            instance_id = self._task_owner.get(task_ref.strip().lower())
            task_id: str | None = task_ref.strip().lower()
        elif by_id and instance is not None:
            instance_id, task_id = int(instance), None
        else:
            return None
        if instance_id is None:
            return None
        cached = self._runs.pop(instance_id, None)
        if cached is None:
            return None
        row, run, task_ids, claims = cached
        for open_id in task_ids:
            self._task_owner.pop(open_id, None)
        return replace(row), run, task_id, dict(claims)

    def _keep(self, work: Work) -> None:
        size = self.settings.instance_cache_size
        stale = self._runs.pop(work.row.id, None)
        if stale is not None:
            for open_id in stale[2]:
                self._task_owner.pop(open_id, None)
        if size <= 0 or work.row.status != STATUS_RUNNING:
            return
        task_ids = [t.id for t in work.run.open_tasks() if t.kind in ("user", "manual")]
        self._runs[work.row.id] = (replace(work.row), work.run, task_ids, dict(work.claims))
        for open_id in task_ids:
            self._task_owner[open_id] = work.row.id
        while len(self._runs) > size:
            _, (_, _, evicted, _) = self._runs.popitem(last=False)
            for open_id in evicted:
                self._task_owner.pop(open_id, None)

    # -- queries -------------------------------------------------------------------

    def tasks(
        self,
        *,
        role: str | None = None,
        instance: str | None = None,
        kinds: tuple[str, ...] = ("user", "manual"),
        states: tuple[str, ...] = ("READY",),
    ) -> list[TaskView]:
        """Open tasks from the task table (indexed by state and role), overdue first,
        then earliest deadline first: `worklist` without the summaries."""
        found = self.worklist(role=role, instance=instance, kinds=kinds, states=states)
        return [item.task for item in found]

    def watch(
        self,
        *,
        actor: str | None = None,
        role: str | None = None,
        tallies: Mapping[str, watching.Tally] | None = None,
    ) -> watching.Snapshot:
        """Work in flight now (`engine.watching`): everyone's (for supervisors, admins
        and auditors), or one `role`'s (its holders and supervisor too). A refusal is
        recorded in the operation log as `watch`."""
        from engine.permissions import Supervisors

        with self.db.read() as session:
            conn = session.connection()
            refusal = None
            if actor is not None:
                principal = users.principal(conn, actor)
                supervisors = self._supervisors(conn) if principal.enforced else Supervisors()
                refusal = reading.worklist_refusal(principal, supervisors, role, role is None)
            if refusal is None:
                reader = reading.Reader.on(conn)
                return watching.snapshot(reader, now=self.clock.now(), role=role, tallies=tallies)
        assert actor is not None
        self._deny(actor, "watch", reading.worklist_scope(role, role is None, None), refusal)

    def instances(
        self,
        *,
        status: str | None = None,
        process_id: str | None = None,
        limit: int | None = None,
        actor: str | None = None,
    ) -> list[InstanceView]:
        """Instances, most recently changed first, with their open tasks (no data)."""
        if actor is not None:
            self.authorize(actor, "instances", "read")
        with self.db.read() as session:
            query = select(InstanceRecord).order_by(
                InstanceRecord.updated_at.desc(), InstanceRecord.id.desc()
            )
            if status is not None:
                query = query.where(InstanceRecord.status == status)
            if process_id is not None:
                query = query.where(InstanceRecord.process_id == process_id)
            if limit is not None:
                query = query.limit(limit)
            records = session.scalars(query).all()
            open_rows = session.scalars(
                select(TaskRecord)
                .where(
                    TaskRecord.instance_id.in_([r.id for r in records]),
                    TaskRecord.state.in_(OPEN_STATES),
                )
                .order_by(TaskRecord.created_at, TaskRecord.id)
            ).all()
            by_instance: dict[int, list[TaskView]] = {}
            keys = {r.id: r.business_key for r in records}
            for row in open_rows:
                by_instance.setdefault(row.instance_id, []).append(
                    TaskView.of(row, keys[row.instance_id])
                )
            return [InstanceView.of(r, {}, by_instance.get(r.id, []), []) for r in records]

    def show(self, instance: str, *, actor: str | None = None) -> InstanceView:
        """An instance with its data and all its tasks, open and done."""
        if actor is not None:
            self.authorize(actor, "show", "read", target=instance)
        with self.db.read() as session:
            conn = session.connection()
            reader = reading.Reader.on(conn)
            # The read `artreturns show` makes through the driver alone: the data as
            # stored by the instance's last save.
            view = reading.instance_view(reader, reading.instance_id(reader, instance))
            if view is not None:
                return view
            # Saved before the data was stored beside the state: restore the state.
            record = self._find_instance(session, instance)
            rows = session.scalars(
                select(TaskRecord)
                .where(TaskRecord.instance_id == record.id)
                .order_by(TaskRecord.created_at, TaskRecord.id)
            ).all()
            key = record.business_key
            open_views = [TaskView.of(r, key) for r in rows if r.state in OPEN_STATES]
            done_views = [TaskView.of(r, key) for r in rows if r.state not in OPEN_STATES]
            run = self._restore(conn, record, self.clock.now())
            return InstanceView.of(record, instance_data(run), open_views, done_views)

    def history(self, instance: str, *, actor: str | None = None) -> list[EventView]:
        if actor is not None:
            self.authorize(actor, "history", "read", target=instance)
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            events = session.scalars(
                select(EventRecord)
                .where(EventRecord.instance_id == record.id)
                .order_by(EventRecord.seq)
            ).all()
            return [EventView.of(e) for e in events]

    def replay(
        self,
        instance: str,
        *,
        until_seq: int | None = None,
        until: datetime | None = None,
        export: Path | None = None,
        actor: str | None = None,
    ) -> ReplayReport:
        """Rebuild an instance from its recorded events alone, under the definition
        version they were recorded with, and check each step against its recorded
        digest (`engine.replay`); stop after event `until_seq`, or at the last event
        at or before `until`. With `export` (a folder made by `audit export` or
        `audit archive`), the events it holds are replayed in place of the database's
        (an archived instance's events are only there)."""
        if actor is not None:
            self.authorize(actor, "replay", "read", target=instance)
        report, _record, _tasks = self._replay(instance, until_seq, until, export)
        return report

    def as_it_stood(
        self,
        instance: str,
        *,
        at: datetime | None = None,
        until_seq: int | None = None,
        export: Path | None = None,
        actor: str | None = None,
    ) -> tuple[InstanceView, ReplayReport]:
        """The instance as it stood at `at` (after its last event at or before then) or
        after event `until_seq`, rebuilt by replaying its history, with the replay's
        report (when it is not clean, the view holds no data and no tasks)."""
        from engine.replay import view_at

        if actor is not None:
            self.authorize(actor, "show", "read", target=instance)
        report, record, tasks = self._replay(instance, until_seq, at, export)
        if report.replayed.divergence is not None or report.replayed.run is None:
            return InstanceView.of(record, {}, [], []), report
        ids_now: dict[tuple[str, int], str] = {}
        if record.status == STATUS_RUNNING:
            with self.db.connect() as conn:
                current = self._restore(conn, record, self.clock.now())
            ids_now = {(t.ref.path, t.ref.ordinal): t.id for t in current.open_tasks()}
        return view_at(record, report.replayed, tasks, ids_now), report

    def _replay(
        self, instance: str, until_seq: int | None, until: datetime | None, export: Path | None
    ) -> tuple[ReplayReport, InstanceRecord, list[TaskRecord]]:
        from engine import archive
        from engine.audit import exported_events
        from engine.replay import ReplayReport, definition_problems, replay
        from engine.spiff import load_specs

        problems: list[str] = []
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            session.expunge(record)
            events = [
                _chained(record.uid, e)
                for e in session.scalars(
                    select(EventRecord)
                    .where(EventRecord.instance_id == record.id)
                    .order_by(EventRecord.seq)
                )
            ]
            label = record.business_key or f"#{record.id}"
            moved_out = archive.archived(session, record.id)
            if export is not None:
                exported, problems = exported_events(export, record.uid)
                if not exported:
                    raise InputError(f"{label} has no events in {export}")
                merged = {e.seq: e for e in events} | {e.seq: e for e in exported}
                events = [merged[seq] for seq in sorted(merged)]
            elif moved_out and (not events or events[0].seq != 1):
                where = moved_out[-1]
                raise InvalidStateError(
                    f"{label}: its events 1-{where.through_seq} were archived to {where.folder}",
                    f"Replay it from there: `artreturns replay {label} --export {where.folder}`.",
                )
            process_id = events[0].process_id if events else record.process_id
            version = events[0].process_version if events else record.process_version
            # Every version the events ran under, each with the content hash recorded
            # when the instance started on it or moved to it.
            stored: dict[int, tuple[str, str, list[Any]]] = {}
            for ran in sorted({e.process_version for e in events} | {version}):
                found = definitions.find_definition(session, process_id, ran)
                stored[ran] = (found.spec_json, found.content_hash, list(found.elements or []))
            tasks = list(
                session.scalars(
                    select(TaskRecord)
                    .where(TaskRecord.instance_id == record.id)
                    .order_by(TaskRecord.created_at, TaskRecord.id)
                )
            )
            for task in tasks:
                session.expunge(task)
        for event in events:
            if event.kind in (EventKind.STARTED, EventKind.MIGRATED):
                spec_json, content_hash, elements = stored[event.process_version]
                problems += definition_problems(
                    event,
                    f"{process_id} v{event.process_version}",
                    content_hash,
                    spec_json,
                    elements,
                )
        broken = verify(events, record.event_count, record.head_hash)
        if broken is not None:
            problems.append(f"the hash chain is broken at event {broken.seq}: {broken.reason}")

        def stop(event: ChainedEvent) -> bool:
            if until_seq is not None and event.seq > until_seq:
                return True
            return until is not None and event.at > until

        if until is not None and events and events[0].at > until:
            raise InputError(
                f"{label} did not exist yet at {until.isoformat()}",
                f"It was started at {events[0].at.isoformat()}.",
            )
        bundles: dict[int, SpecBundle] = {}

        def bundle(ran: int) -> SpecBundle:
            if ran not in stored:
                raise InvalidStateError(f"{process_id} version {ran} is not deployed")
            if ran not in bundles:
                bundles[ran] = load_specs(stored[ran][0])
            return bundles[ran]

        replayed = replay(events, bundle, self.evaluator, stop=stop)
        report = ReplayReport(label, process_id, version, len(events), replayed, problems)
        return report, record, tasks

    def events(
        self,
        *,
        by: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
    ) -> list[tuple[str, EventView]]:
        """Events across instances, oldest first: those recorded with actor `by`, from
        `since` to `until` (what one person did, or what happened in a period); each
        with its instance's label."""
        if actor is not None:
            self.authorize(actor, "history", "read", target=by or "all")
        query = select(EventRecord, InstanceRecord.business_key).join(
            InstanceRecord, InstanceRecord.id == EventRecord.instance_id
        )
        if by is not None:
            query = query.where(EventRecord.actor == by)
        if since is not None:
            query = query.where(EventRecord.at >= since)
        if until is not None:
            query = query.where(EventRecord.at <= until)
        query = query.order_by(EventRecord.at, EventRecord.instance_id, EventRecord.seq)
        with self.db.read() as session:
            return [
                (key or f"#{event.instance_id}", EventView.of(event))
                for event, key in session.execute(query).all()
            ]

    def report(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: str | None = None,
        actor: str | None = None,
    ) -> Indicators:
        """The indicators of the returns started from `since` to `until`, as they stand
        now (docs/monitoring.md), computed from the history and the task table."""
        from engine import indicators

        if actor is not None:
            self.authorize(actor, "report", "read", target="all")
        with self.db.connect() as conn:
            return indicators.compute(conn, now=self.clock.now(), since=since, until=until, by=by)

    def verify(self, instance: str, *, actor: str | None = None) -> Break | None:
        """Recompute an instance's hash chain; return the first broken link, if any."""
        if actor is not None:
            self.authorize(actor, "verify", "read", target=instance)
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            events = session.scalars(
                select(EventRecord)
                .where(EventRecord.instance_id == record.id)
                .order_by(EventRecord.seq)
            ).all()
            chained = (_chained(record.uid, e) for e in events)
            from engine import archive

            kept = archive.archived(session, record.id)
            if kept:  # its events up to the archived head are in an export
                return archive.check(kept[0], list(chained), record.event_count, record.head_hash)
            return verify(chained, record.event_count, record.head_hash)

    def verify_all(self, *, actor: str | None = None) -> list[tuple[str, Break | None]]:
        """Every instance's chain, oldest first: (its label, its first break or None)."""
        if actor is not None:
            self.authorize(actor, "verify", "read", target="all")
        with self.db.read() as session:
            labels = [
                (r.id, r.business_key or f"#{r.id}")
                for r in session.execute(
                    select(InstanceRecord.id, InstanceRecord.business_key).order_by(
                        InstanceRecord.id
                    )
                )
            ]
        return [(label, self.verify(f"#{number}")) for number, label in labels]

    def audit_export(
        self,
        folder: Path,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
    ) -> Manifest:
        """Export the events of every instance with events from `since` to `until`
        (each instance's run of events from the first in the window to the last, so
        that its chain is whole), with a manifest of chain heads (`engine.audit`)."""
        from engine.audit import Manifest, write_export

        if actor is not None:
            self.authorize(actor, "audit export", "read", target=str(folder))
        window = []
        if since is not None:
            window.append(EventRecord.at >= since)
        if until is not None:
            window.append(EventRecord.at <= until)
        chains: list[tuple[ExportedInstance, list[ChainedEvent]]] = []
        with self.db.read() as session:
            spans = session.execute(
                select(
                    EventRecord.instance_id,
                    func.min(EventRecord.seq),
                    func.max(EventRecord.seq),
                )
                .where(*window)
                .group_by(EventRecord.instance_id)
                .order_by(EventRecord.instance_id)
            ).all()
            for instance_id, first, last in spans:
                chains.append(_export_chain(session, instance_id, first, last))
        manifest = Manifest(exported_at=self.clock.now(), since=since, until=until)
        return write_export(folder, manifest, chains)

    def audit_report(
        self,
        instance: str,
        *,
        actor: str | None = None,
        evidence: Iterable[Mapping[str, Any]] = (),
        notices: Iterable[Mapping[str, Any]] = (),
    ) -> str:
        """The audit report of an instance: one self-contained HTML page with the
        diagram of its version (as deployed) showing the path it took, its timeline,
        the hash chain's verification, and the `evidence` files (name, kind, size,
        sha256, intact) and `notices` (id, notice, to, at, delivered) the caller keeps
        (`engine.report`)."""
        from engine import report

        if actor is not None:
            self.authorize(actor, "verify", "read", target=instance)
        view = self.show(instance)
        events = self.history(instance)
        broken = self.verify(instance)
        replayed = self.replay(instance) if events else None
        with self.db.read() as session:
            record = self._find_instance(session, instance)
            sources = report.deployed_sources(session, record.definition_id)
            tree = self._restore(session.connection(), record, self.clock.now()).canonical()
        tasks = [*tree["finished"], *((path, state) for path, state, _data in tree["live"])]
        return report.render(
            report.Report(
                view,
                events,
                sources,
                tasks,
                broken,
                self.clock.now(),
                [*evidence],
                [*notices],
                replayed,
            )
        )

    def audit_archive(
        self,
        folder: Path,
        *,
        before: datetime,
        dry_run: bool = False,
        actor: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> ArchiveResult:
        """Move the events of instances closed (completed or cancelled) before `before`
        out of the database into a new export folder (`engine.archive`): written, made
        durable and checked first, then deleted in one transaction with an `archive` row
        per instance and an entry in the operation log. The instances keep their chain
        heads, so `verify` still holds. Admins only; a `dry_run` (a read) only says what
        would go. `progress(done, total)` follows the instances written, then deleted."""
        from engine import archive
        from engine.audit import Manifest, write_export

        if dry_run:
            self.authorize(actor, "audit archive", "read", target=str(folder))
        else:
            self._authorize(actor, "audit archive", lambda p, _: may_archive(p), folder.name)
        with self.db.read() as session:
            chosen = archive.closed_before(session, before)
            earlier = {a.uid: a.head_hash for a in archive.archived(session)}
        result = archive.ArchiveResult(str(folder), before, dry_run, chosen)
        if dry_run or not chosen:
            return result
        total = 2 * len(chosen)
        tick = progress or (lambda _done, _total: None)

        def chains() -> Iterator[tuple[ExportedInstance, list[ChainedEvent]]]:
            with self.db.read() as session:
                for done, item in enumerate(chosen, start=1):
                    yield _export_chain(session, item.instance_id, item.first_seq, item.last_seq)
                    tick(done, total)

        now = self.clock.now()
        try:
            written = write_export(
                folder, Manifest(exported_at=now, since=None, until=None), chains()
            )
            archive.make_durable(folder)
        except OSError as exc:
            raise archive.write_failed(folder, exc) from exc
        anchors = {i.uid: earlier.get(i.uid, GENESIS_HASH) for i in chosen}
        archive.confirm(folder, written, anchors)
        with self.db.connect(immediate=True) as conn:
            archive.record(
                conn,
                chosen,
                written,
                folder=str(folder),
                at=now,
                actor=actor,
                progress=lambda done: tick(len(chosen) + done, total),
            )
            self.log_operation(
                conn,
                actor,
                "audit archive",
                folder.name,
                {
                    "folder": str(folder),
                    "before": before.isoformat(),
                    "instances": len(chosen),
                    "events": result.events,
                    "events_sha256": written.events_sha256,
                },
            )
        result.events_sha256 = written.events_sha256
        return result

    def archives(self, instance: str | None = None, *, actor: str | None = None) -> list[Archive]:
        """Where archived histories are (`audit archive`): `instance`'s latest archive
        (empty: its events were never archived), else every archived instance's."""
        from engine import archive

        if actor is not None:
            self.authorize(actor, "history", "read", target=instance or "all")
        with self.db.read() as session:
            number = None if instance is None else self._instance_id(session.connection(), instance)
            return archive.archived(session, number)

    # -- lookups -------------------------------------------------------------------

    def _restore(self, conn: Connection, row: InstanceRow | InstanceRecord, now: datetime) -> Run:
        from engine.spiff import Run

        bundle = self._bundle(conn, row.definition_id)
        try:
            return Run.restore(
                bundle, row.state, row.serializer_version, self.evaluator, lambda: now
            )
        except EngineError:
            raise  # said already (a serializer this engine cannot read: another version)
        except (ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
            # Not JSON, a state of the wrong shape (it fails anywhere in the library's
            # loader), or nested too deep.
            label = row.business_key or f"#{row.id}"
            raise StoredStateError(
                f"{label}: its stored state cannot be read ({type(exc).__name__}: {exc})",
                "It was changed or damaged after it was saved; its history may still be "
                f"whole (`artreturns replay {label}` rebuilds the instance from its events "
                "and shows where it stands). Restore the instance from a backup.",
            ) from exc

    def _bundle(self, conn: Connection, definition_id: int) -> SpecBundle:
        cached = self._specs.cached(definition_id)
        if cached is not None:
            return cached
        spec_json = conn.execute(_SPEC_JSON, {"b_id": definition_id}).scalar_one_or_none()
        if spec_json is None:
            raise InstanceNotFoundError(f"definition {definition_id} is missing")
        return self._specs.put(definition_id, spec_json)

    def _find_instance(self, session: Session, ref: str) -> InstanceRecord:
        instance_id = self._instance_id(session.connection(), ref)
        record = session.get(InstanceRecord, instance_id)
        assert record is not None
        return record

    def _find_instance_row(self, conn: Connection, ref: str) -> InstanceRow:
        row = load_instance(conn, self._instance_id(conn, ref))
        assert row is not None
        return row

    def _instance_id(self, conn: Connection, ref: str) -> int:
        text = ref.strip()
        found = conn.execute(_INSTANCE_BY_KEY, {"b_key": text}).scalar_one_or_none()
        if found is None:
            number = text[1:] if text.startswith("#") else text
            if number.isdigit():
                found = conn.execute(_INSTANCE_BY_ID, {"b_id": int(number)}).scalar_one_or_none()
        if found is None:
            raise InstanceNotFoundError(
                f"no instance '{ref}'",
                "Give a business key or an instance number; `artreturns tasks --all` lists "
                "instances with open work.",
            )
        return int(found)

    def _find_task(self, conn: Connection, ref: str) -> tuple[str, InstanceRow]:
        """An open task by a unique prefix of its id, or by INSTANCE:STEP for the open
        task with that BPMN id; returns the task id and its instance."""
        text = ref.strip()
        step = _STEP_REF.match(text)
        if step is not None and not _SHORT_ID.match(text):
            instance_id = self._instance_id(conn, step.group("instance"))
            result = conn.execute(
                _TASK_BY_STEP, {"b_instance": instance_id, "b_step": step.group("step")}
            )
        elif _SHORT_ID.match(text.lower()):
            prefix = text.lower()
            if len(prefix) == 36:
                result = conn.execute(_TASK_BY_ID, {"b_id": prefix})
            else:
                result = conn.execute(_TASK_BY_PREFIX, {"b_low": prefix, "b_high": prefix + "\x7f"})
        else:
            raise InputError(
                f"'{ref}' is not a task id",
                "Give the id shown by `artreturns tasks` (the first 8 characters are enough) "
                "or INSTANCE:STEP, for example RMA-1:review.",
            )
        rows = result.mappings().all()
        if not rows:
            raise TaskNotFoundError(
                f"no open task '{ref}'", "List open tasks with `artreturns tasks --all`."
            )
        if len(rows) > 1:
            ids = ", ".join(r["task_id"][:12] for r in rows)
            raise AmbiguousReferenceError(
                f"'{ref}' matches more than one open task: {ids}",
                "Give more characters of the id.",
            )
        return str(rows[0]["task_id"]), InstanceRow.from_mapping(rows[0])


def _one_by_one(
    commands: Sequence[tuple[str, Callable[[], CommandResult]]],
    progress: Callable[[int, int], None] | None,
) -> list[DueResult]:
    """Run each (label, command), each its own transaction, and say how each went: one
    that fails, or that another command raced, is reported and the rest still run; a
    database that refuses or cannot be reached stops them all. `progress` is told
    (commands done, commands in all) after each."""
    results: list[DueResult] = []
    for label, command in commands:
        try:
            results.append(DueResult(label, command(), None))
        except ConcurrencyError:
            results.append(
                DueResult(label, None, "changed by another command; skipped", raced=True)
            )
        except (PersistenceError, ConfigurationError):
            raise  # the database refuses or cannot be reached: so for every instance
        except EngineError as exc:
            results.append(DueResult(label, None, str(exc)))
        if progress is not None:
            progress(len(results), len(commands))
    return results


def _nothing(_work: Work, _task: str | None) -> None:
    """A change that only runs the engine (the due timers fire as it saves)."""


def _default_gate(operation: str) -> Gate:
    """The least an instance command needs: an active user who is not an auditor."""
    return lambda work, principal: may_change(principal, operation)


def _refused_or(work: Work, result: CommandResult) -> CommandResult:
    """The result of a command, or its refusal (saved already) raised."""
    if work.refusal is not None:
        raise PermissionDeniedError(work.refusal.reason, work.refusal.hint)
    return result


def _store_roles(session: Session, roles: Roles, actor: str, now: datetime) -> None:
    """Keep a roles file when it differs from the one deployed last."""
    data = roles.as_data()
    digest = sha256_hex(canonical_json(data))
    latest = session.scalars(
        select(RoleSetRecord).order_by(RoleSetRecord.id.desc()).limit(1)
    ).first()
    if latest is None or latest.sha256 != digest:
        session.add(RoleSetRecord(sha256=digest, roles=data, deployed_at=now, deployed_by=actor))


def _require_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a JSON object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise InputError(
                f"{what} has the key {key!r}, which diagrams cannot use",
                "Keys must be names (letters, digits, underscores) not starting with '_'.",
            )
    if nesting(value) > MAX_DEPTH:
        raise InputError(
            f"{what} is nested deeper than {MAX_DEPTH} levels",
            "Give the data as fields with values, lists and objects a few levels deep.",
        )
    return dict(value)


def _export_chain(
    session: Session, instance_id: int, first: int, last: int
) -> tuple[ExportedInstance, list[ChainedEvent]]:
    """An instance's events from `first` to `last`, as an export holds them."""
    from engine.audit import ExportedInstance

    record = session.get(InstanceRecord, instance_id)
    assert record is not None
    events = [
        _chained(record.uid, e)
        for e in session.scalars(
            select(EventRecord)
            .where(
                EventRecord.instance_id == instance_id,
                EventRecord.seq >= first,
                EventRecord.seq <= last,
            )
            .order_by(EventRecord.seq)
        )
    ]
    exported = ExportedInstance(
        uid=record.uid,
        business_key=record.business_key,
        process_id=record.process_id,
        first_seq=first,
        last_seq=last,
        anchor=events[0].prev_hash,
        last_hash=events[-1].hash,
        head_seq=record.event_count,
        head_hash=record.head_hash,
    )
    return exported, events


def _chained(uid: str, e: EventRecord) -> ChainedEvent:
    return ChainedEvent(
        instance_uid=uid,
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
