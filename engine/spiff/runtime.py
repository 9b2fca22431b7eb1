"""A running instance: SpiffWorkflow's BpmnWorkflow behind a small typed surface.

The engine never touches SpiffWorkflow objects itself. It asks a `Run` for what is
open (user tasks, service calls, timers, message catches), applies one transition
at a time (complete a user task, deliver a handler's result, fire timers, deliver a
message, cancel), and after each transition reads a digest of the state computed over
a canonical form that does not depend on SpiffWorkflow's random task ids.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    EscalationEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as _BaseMsg
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins import ManualTaskMixin
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import (
    ErrorEventDefinition,
    MessageEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from engine.canonical import canonical_json, digest, sha256_hex
from engine.errors import EngineError, InvalidStateError, ProcessError, TaskNotFoundError
from engine.evaluator import Evaluator
from engine.spiff.scripting import ScriptEngine, clock
from engine.spiff.serialization import SpecBundle, dump_workflow, load_workflow
from engine.spiff.specs import ExternalServiceTask

if TYPE_CHECKING:
    from engine.spiff.migration import Plan

_OPEN = TaskState.READY | TaskState.STARTED | TaskState.WAITING


@dataclass(frozen=True)
class TaskRef:
    """Names a task independently of its random id: its path of BPMN ids and, among
    tasks with the same path, its position in tree order. Replay finds tasks by it."""

    path: str
    ordinal: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ordinal": self.ordinal}


@dataclass(slots=True)
class OpenTask:
    """A task the engine or a person must act on, or a wait the engine tracks."""

    id: str
    bpmn_id: str
    name: str
    kind: str  # user | manual | service | timer | message
    state: str
    lane: str | None
    ref: TaskRef
    due_at: datetime | None = None
    operator: str | None = None
    #: Tasks with the same four-eyes group must be completed by different people.
    four_eyes: str | None = None
    #: The role an overdue user task was escalated to: a boundary timer on it fired and
    #: led to an escalation end event whose code names the role.
    escalated_to: str | None = None
    #: The attempts a worker makes at a service task, when its diagram says (the
    #: `attempts` property; checked when deployed).
    attempts: int | None = None


@dataclass(slots=True)
class ServiceCall:
    """A service task waiting for its handler: what to call and with what."""

    task: OpenTask
    operator: str
    params: dict[str, Any]
    result_variable: str


def _wrap(exc: Exception, what: str) -> EngineError:
    if isinstance(exc, EngineError):
        return exc
    element = None
    task = getattr(exc, "task", None)
    if task is not None:
        element = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
    elif getattr(exc, "task_spec", None) is not None:
        element = getattr(getattr(exc, "task_spec", None), "bpmn_id", None)
    detail = str(exc).strip().rstrip(".")
    cause = _root_cause(exc)
    if cause is not None and str(cause) and str(cause) not in detail:
        detail = f"{detail}: {type(cause).__name__}: {cause}"
    where = f" at '{element}'" if element else ""
    return ProcessError(
        f"{what} failed{where}: {detail}",
        "The process could not continue with this data; nothing was saved. Check the "
        "diagram's conditions and scripts, or complete the task with different data.",
        element=element,
    )


def _root_cause(exc: BaseException) -> BaseException | None:
    """The exception SpiffWorkflow wrapped (it keeps only its type, not its message)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    cause: BaseException | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not isinstance(current, SpiffWorkflowException):
            cause = current
        current = current.__cause__ or current.__context__
    return cause


class Run:
    """One instance's workflow, loaded for the length of a command."""

    def __init__(self, workflow: Any, now: Callable[[], datetime]) -> None:
        self._wf = workflow
        self._now = now
        self._snap: _Snapshot | None = None

    # -- construction and storage --------------------------------------------------

    @classmethod
    def start(
        cls,
        bundle: SpecBundle,
        data: Mapping[str, Any],
        evaluator: Evaluator,
        now: Callable[[], datetime],
    ) -> Run:
        workflow = BpmnWorkflow(
            bundle.spec, dict(bundle.subprocess_specs), script_engine=ScriptEngine(evaluator)
        )
        start = workflow.task_tree
        start.data.update(copy.deepcopy(dict(data)))
        run = cls(workflow, now)
        run._guard(run._advance, "starting the process")
        return run

    @classmethod
    def restore(
        cls,
        bundle: SpecBundle,
        state: str,
        serializer_version: str,
        evaluator: Evaluator,
        now: Callable[[], datetime],
    ) -> Run:
        workflow = load_workflow(state, bundle, serializer_version)
        workflow.script_engine = ScriptEngine(evaluator)
        return cls(workflow, now)

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Move a cached run to the next command's clock."""
        self._now = now

    def clock(self) -> datetime:
        """The time the run's transitions are taking place at."""
        return self._now()

    def dump(self) -> str:
        return dump_workflow(self._wf)

    # -- what is open --------------------------------------------------------------

    @property
    def completed(self) -> bool:
        """Whether the top-level process has no unfinished task left."""
        return self._snapshot().finished

    @property
    def data(self) -> dict[str, Any]:
        """The process data: the workflow's data once it reached its end, else (running
        or cancelled) the data of the last task that ran, with what the called processes
        still running have set so far laid over it, the most recent last."""
        if self.completed and self._wf.data:
            return dict(self._wf.data)
        last = self._wf.last_task
        data = dict(last.data) if last is not None else dict(self._wf.task_tree.data)
        running = [
            sub.last_task
            for sub in self._wf.subprocesses.values()
            if not sub.is_completed() and sub.last_task is not None
        ]
        for task in sorted(running, key=lambda t: t.last_state_change):
            if last is None or task.last_state_change >= last.last_state_change:
                data.update(task.data)
        return data

    def open_tasks(self) -> list[OpenTask]:
        """Every READY user task, STARTED service task and WAITING timer or message."""
        return list(self._snapshot().open)

    def _open_kind(self, task: Any) -> str | None:
        spec = task.task_spec
        if task.state == TaskState.READY:
            if isinstance(spec, UserTaskMixin):
                return "user"
            if isinstance(spec, ManualTaskMixin):
                return "manual"
            return None
        if task.state == TaskState.STARTED and isinstance(spec, ExternalServiceTask):
            return "service"
        if task.state == TaskState.WAITING and isinstance(spec, CatchingEvent):
            definition = spec.event_definition
            if isinstance(definition, TimerEventDefinition):
                return "timer"
            if isinstance(definition, _BaseMsg):
                return "message"
            if isinstance(definition, MultipleEventDefinition):
                return (
                    "timer"
                    if any(
                        isinstance(d, TimerEventDefinition) for d in definition.event_definitions
                    )
                    else "message"
                )
        return None

    def timer_due(self, task: Any) -> datetime | None:
        value = task.internal_data.get("event_value")
        if isinstance(value, dict):  # cycle timers keep {"next": ...}
            value = value.get("next")
        if not isinstance(value, str):
            return None
        due = datetime.fromisoformat(value)
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        return datetime.fromisoformat(due.astimezone(UTC).isoformat())

    def _due_at(self, task: Any, kind: str) -> datetime | None:
        if kind == "timer":
            return self.timer_due(task)
        if kind in ("user", "manual"):
            # The earliest timer on the task's boundary is its deadline; it stays the
            # deadline after it fired (the task is then overdue).
            dues = [
                self.timer_due(sibling)
                for sibling in _boundary_timers(task)
                if sibling.state in (TaskState.WAITING, TaskState.COMPLETED)
            ]
            known = [d for d in dues if d is not None]
            return min(known) if known else None
        return None

    def _escalated_to(self, task: Any, kind: str) -> str | None:
        if kind not in ("user", "manual"):
            return None
        for sibling in _boundary_timers(task):
            if sibling.state == TaskState.COMPLETED:
                code = _escalation_code(sibling.task_spec)
                if code:
                    return code
        return None

    def next_timer(self) -> datetime | None:
        dues = [t.due_at for t in self.open_tasks() if t.kind == "timer" and t.due_at]
        return min(dues) if dues else None

    def _lane(self, task: Any) -> str | None:
        current = task
        while current is not None:
            lane = getattr(current.task_spec, "lane", None)
            if lane:
                return str(lane)
            parent_id = current.workflow.parent_task_id
            current = self._wf.get_task_from_id(parent_id) if parent_id is not None else None
        return None

    # -- transitions ---------------------------------------------------------------

    def complete_user_task(self, task_id: str, data: Mapping[str, Any]) -> OpenTask:
        task = self._task(task_id)
        if task.state != TaskState.READY or not isinstance(
            task.task_spec, UserTaskMixin | ManualTaskMixin
        ):
            raise InvalidStateError(
                f"task {task_id[:8]} ({task.task_spec.bpmn_name or task.task_spec.bpmn_id}) "
                f"is {TaskState.get_name(task.state)}, not a ready user task",
                "List open tasks with `artreturns tasks`.",
            )
        before = self._describe(task)
        incoming = copy.deepcopy(dict(data))

        def apply() -> None:
            spec = task.task_spec
            if hasattr(spec, "add_data_from_form"):
                spec.add_data_from_form(task, incoming)
            else:
                task.data.update(incoming)
            task.run()
            self._advance()

        self._guard(apply, f"completing '{before.name}'")
        return before

    def service_call(self, task_id: str) -> ServiceCall:
        task = self._task(task_id)
        spec = task.task_spec
        if task.state != TaskState.STARTED or not isinstance(spec, ExternalServiceTask):
            raise InvalidStateError(
                f"task {task_id[:8]} is {TaskState.get_name(task.state)}, "
                "not a waiting service task"
            )
        described = self._describe(task)
        params: dict[str, Any] = {}

        def evaluate() -> None:
            with clock(self._now):
                for name, param in (spec.operation_params or {}).items():
                    params[name] = task.workflow.script_engine.evaluate(task, param["value"])

        self._guard(evaluate, f"evaluating the parameters of '{described.name}'")
        return ServiceCall(
            described, spec.operation_name, copy.deepcopy(params), spec.result_variable
        )

    def complete_service_task(self, task_id: str, result: Mapping[str, Any] | None) -> None:
        task = self._task(task_id)
        spec = task.task_spec
        if task.state != TaskState.STARTED or not isinstance(spec, ExternalServiceTask):
            raise InvalidStateError(f"task {task_id[:8]} is not a waiting service task")

        def apply() -> None:
            value = copy.deepcopy(dict(result or {}))
            if spec.result_variable == _default_result_variable(spec):
                # No resultVariable in the diagram: the handler's fields become process
                # data of their own (what a business-rule task does with its outputs).
                task.data.update(value)
            else:
                task.data[spec.result_variable] = value
            task.complete()
            self._advance()

        self._guard(apply, f"continuing after '{spec.bpmn_name or spec.bpmn_id}'")

    def throw_error(self, task_id: str, code: str, payload: Mapping[str, Any]) -> bool:
        """Throw a BPMN error from a service task; True when a boundary caught it."""
        task = self._task(task_id)
        event = BpmnEvent(
            ErrorEventDefinition(code, code=code),
            payload=copy.deepcopy(dict(payload)),
            target=task.workflow,
        )
        caught: list[bool] = []

        def apply() -> None:
            self._wf.catch(event)
            # An event nothing catches is queued by the library as an outgoing event.
            uncaught = any(e is event for e in self._wf.bpmn_events)
            caught.append(not uncaught)
            if uncaught:
                self._wf.bpmn_events = [e for e in self._wf.bpmn_events if e is not event]
            else:
                self._advance()

        self._guard(apply, f"throwing error '{code}'")
        return caught[0]

    @contextmanager
    def as_of(self, at: datetime) -> Iterator[None]:
        """Run what follows (handlers' continuations) with the clock at `at`."""
        real = self._now
        self._now = lambda: at
        try:
            yield
        finally:
            self._now = real

    def fire_earliest_due(self) -> list[OpenTask]:
        """Fire the timers that fell due first, of those due by the engine's now, as of
        their due time; return them. Called until it returns nothing, timers that fell
        due on different days fire in the order they fell due (a 5-day reminder before
        a 14-day lapse), and what they start is timed from when they fell due."""
        now = self._now()
        due = [
            t
            for t in self.open_tasks()
            if t.kind == "timer" and t.due_at is not None and t.due_at < now
        ]
        if not due:
            return []
        first = min(t.due_at for t in due if t.due_at is not None)
        # The library fires a timer once the clock is strictly past it; what follows
        # runs at the due time itself, so deadlines it starts are counted from then.
        past = first + timedelta(microseconds=1)
        firing = [t for t in due if t.due_at == first]

        def apply() -> None:
            with clock(lambda: past):
                self._wf.refresh_timers()
            self._advance()

        with self.as_of(first):
            self._guard(apply, "firing timers")
        return firing

    def message_waits(self) -> list[OpenTask]:
        """The open tasks a message can complete: message catches and receive tasks, and
        event-based gateways that also wait for a timer (listed as timers, with a due
        time, but a message may come first)."""
        found = []
        for open_task in self.open_tasks():
            if open_task.kind == "message":
                found.append(open_task)
            elif open_task.kind == "timer":
                definition = getattr(self._task(open_task.id).task_spec, "event_definition", None)
                if isinstance(definition, MultipleEventDefinition) and any(
                    isinstance(d, _BaseMsg) for d in definition.event_definitions
                ):
                    found.append(open_task)
        return found

    def deliver_message(self, name: str, payload: Mapping[str, Any]) -> None:
        waiting = self.message_waits()
        if not waiting:
            raise InvalidStateError(
                f"the instance is not waiting for any message (sent: '{name}')",
                "See what it waits for with `artreturns show`.",
            )
        event = BpmnEvent(MessageEventDefinition(name), payload=copy.deepcopy(dict(payload)))

        def apply() -> None:
            try:
                with clock(self._now):
                    self._wf.send_event(event)
            except WorkflowException as exc:
                names = sorted({t.name for t in waiting})
                raise InvalidStateError(
                    f"the instance is not waiting for message '{name}'",
                    f"It waits at: {', '.join(names)}.",
                ) from exc
            self._advance()

        self._guard(apply, f"delivering message '{name}'")

    def cancel(self) -> None:
        self._guard(self._wf.cancel, "cancelling")

    def migration(self, bundle: SpecBundle, version: int) -> Plan:
        """Whether the run can move to `bundle` (version `version`), and what moving
        changes (`engine.spiff.migration`)."""
        from engine.spiff.migration import plan

        return plan(self._wf, bundle, version)

    def migrate(self, bundle: SpecBundle, found: Plan) -> None:
        """Move the run to `bundle`, as the safe plan `found` says."""
        from engine.spiff.migration import migrate

        self._guard(lambda: migrate(self._wf, bundle, found), "moving to another version")

    # -- canonical form ------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The state in a form independent of task ids and library timestamps: every
        task as (path of BPMN ids, state), with data for the unfinished ones, in a
        sorted order; the workflows' data; whether it completed."""
        finished: list[tuple[str, int]] = []
        live: list[tuple[str, int, dict[str, Any]]] = []
        for task, path, _ordinal in self._snapshot().tasks:
            if task.state & TaskState.FINISHED_MASK:
                finished.append((path, task.state))
            else:
                live.append((path, task.state, {"data": task.data, "internal": task.internal_data}))
        finished.sort()
        # Live tasks at the same path and state (multi-instance siblings) are told apart
        # by their data, so sort by that too; it is only serialized when there is a tie.
        live.sort(key=lambda e: (e[0], e[1]))
        for index in range(1, len(live)):
            if live[index][:2] == live[index - 1][:2]:
                live.sort(key=lambda e: (e[0], e[1], canonical_json(e[2])))
                break
        workflows = [self._wf, *self._wf.subprocesses.values()]
        return {
            "finished": finished,
            "live": live,
            "data": [w.data for w in workflows],
            "completed": self._snapshot().finished,
        }

    def digest(self) -> str:
        snapshot = self._snapshot()
        if snapshot.digest is None:
            try:
                snapshot.digest = digest(self.canonical())
            except (TypeError, ValueError) as exc:
                raise ProcessError(
                    f"the process data holds a value that cannot be stored: {exc}",
                    "Scripts may leave only text, numbers, true/false, null, lists and "
                    "objects of these (and decimals and dates) in the data; nothing was saved.",
                ) from exc
        return snapshot.digest

    def find(self, ref: TaskRef, kinds: tuple[str, ...]) -> OpenTask:
        """The open task named by `ref` (used to re-apply recorded events)."""
        for task in self.open_tasks():
            if task.ref == ref and task.kind in kinds:
                return task
        raise TaskNotFoundError(f"no open task at {ref.path} #{ref.ordinal}")

    # -- internals -----------------------------------------------------------------

    def _advance(self) -> None:
        """Run every automatic step (gateways, scripts, rules, due timers) until the
        instance waits for a person, a handler, a timer or a message."""
        with clock(self._now):
            self._wf.refresh_timers()
            self._wf.do_engine_steps()
        # An escalation nothing in the diagram catches is the engine's to handle (it
        # marks the overdue task, see `escalated_to`); the library would otherwise keep
        # it, with a copy of the task's data, as an outgoing event in the saved state.
        if self._wf.bpmn_events:
            self._wf.bpmn_events = [
                e
                for e in self._wf.bpmn_events
                if not isinstance(e.event_definition, EscalationEventDefinition)
            ]

    def _guard(self, fn: Callable[[], Any], what: str) -> None:
        try:
            with clock(self._now):
                fn()
        except EngineError:
            raise
        except SpiffWorkflowException as exc:
            raise _wrap(exc, what) from exc
        except (ValueError, TypeError, KeyError, AttributeError, NameError, ArithmeticError) as exc:
            raise _wrap(exc, what) from exc
        finally:
            self._snap = None

    def _task(self, task_id: str) -> Any:
        try:
            task = self._wf.get_task_from_id(UUID(task_id))
        except (ValueError, WorkflowException) as exc:
            raise TaskNotFoundError(f"no task {task_id} in this instance") from exc
        if task is None:
            raise TaskNotFoundError(f"no task {task_id} in this instance")
        return task

    def _describe(self, task: Any) -> OpenTask:
        for open_task in self.open_tasks():
            if open_task.id == str(task.id):
                return open_task
        raise TaskNotFoundError(f"task {task.id} is not open")

    def _snapshot(self) -> _Snapshot:
        """One walk over every task tree: paths, refs and open tasks, cached until the
        next transition."""
        if self._snap is not None:
            return self._snap
        tasks: list[tuple[Any, str, int]] = []
        counts: dict[str, int] = {}
        paths: dict[UUID, str] = {}
        workflows = sorted([self._wf, *self._wf.subprocesses.values()], key=lambda w: w.depth)
        for workflow in workflows:
            parent_id = workflow.parent_task_id
            prefix = paths[parent_id] + ">" if parent_id is not None else ""
            by_id = workflow.tasks
            root = workflow.task_tree
            stack = [(root, prefix + root.task_spec.name)]
            while stack:
                task, path = stack.pop()
                paths[task.id] = path
                ordinal = counts.get(path, 0)
                counts[path] = ordinal + 1
                tasks.append((task, path, ordinal))
                children = [by_id[c] for c in task._children if c in by_id]
                for child in reversed(children):
                    stack.append((child, f"{path}/{child.task_spec.name}"))
        open_tasks: list[OpenTask] = []
        for task, path, ordinal in tasks:
            if not task.state & _OPEN:
                continue
            kind = self._open_kind(task)
            if kind is None:
                continue
            spec = task.task_spec
            open_tasks.append(
                OpenTask(
                    id=str(task.id),
                    bpmn_id=spec.bpmn_id or spec.name,
                    name=spec.bpmn_name or spec.bpmn_id or spec.name,
                    kind=kind,
                    state=TaskState.get_name(task.state),
                    lane=self._lane(task),
                    ref=TaskRef(path, ordinal),
                    due_at=self._due_at(task, kind),
                    operator=spec.operation_name if kind == "service" else None,
                    four_eyes=_four_eyes(spec),
                    escalated_to=self._escalated_to(task, kind),
                    attempts=_attempts(spec) if kind == "service" else None,
                )
            )
        top = self._wf
        finished = not any(
            not task.state & TaskState.FINISHED_MASK
            for task, _path, _ordinal in tasks
            if task.workflow is top
        )
        self._snap = _Snapshot(tasks, open_tasks, finished)
        return self._snap


@dataclass(slots=True)
class _Snapshot:
    tasks: list[tuple[Any, str, int]]
    open: list[OpenTask]
    finished: bool
    digest: str | None = None


def _default_result_variable(spec: Any) -> str:
    """The name SpiffWorkflow gives a service task's result when the diagram names none."""
    return f"spiff__{spec.name.replace('-', '_')}_result"


def _four_eyes(task_spec: Any) -> str | None:
    """The `four_eyes` property a diagram gives a user task (its approval chain)."""
    properties = (getattr(task_spec, "extensions", None) or {}).get("properties") or {}
    group = properties.get("four_eyes")
    return str(group) if group else None


def _attempts(task_spec: Any) -> int | None:
    """The `attempts` property a diagram gives a service task."""
    properties = (getattr(task_spec, "extensions", None) or {}).get("properties") or {}
    value = str(properties.get("attempts", "")).strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


def _boundary_timers(task: Any) -> list[Any]:
    """The timer events attached to a task's boundary (its siblings under the split)."""
    parent = task.parent
    if parent is None or not isinstance(parent.task_spec, BoundaryEventSplit):
        return []
    return [s for s in parent.children if s is not task and _timer_like(s.task_spec)]


def _escalation_code(timer_spec: Any) -> str | None:
    """The escalation code of the event a boundary timer leads straight to, if any."""
    for following in timer_spec.outputs:
        definition = getattr(following, "event_definition", None)
        if isinstance(definition, EscalationEventDefinition) and definition.code:
            return str(definition.code)
    return None


def _timer_like(task_spec: Any) -> bool:
    definition = getattr(task_spec, "event_definition", None)
    if isinstance(definition, TimerEventDefinition):
        return True
    return isinstance(definition, MultipleEventDefinition) and any(
        isinstance(d, TimerEventDefinition) for d in definition.event_definitions
    )


def state_fingerprint(text: str) -> str:
    """A short hash of serialized state, for logs and diagnostics."""
    return sha256_hex(text)[:12]
