"""A dry run of a process under the diagrams as they are on disk: no database, no handlers.

`simulate` compiles and checks the files as `validate` does, starts the process on the
data given and drives it as far as it can: a service task gets the answer given for it,
else what its handler declares it returns (a `sample` attribute: a mapping, or a function
of the task's parameters), else nothing (the step is listed as stubbed); a user task is
completed with the answer given for it, or with no data when its form requires nothing,
else the run stops there; a message is delivered when an answer names it; timers fire
only when asked, earliest first. What comes back is the path in order (with each
decision's outputs), the deadlines started, where it stopped and what data changed.

An owner checks a tier change with it before deploying: nothing is stored anywhere.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import definitions
from engine.errors import EngineError, InputError
from engine.registry import Registry

if TYPE_CHECKING:
    from engine.evaluator import Evaluator
    from engine.forms import Form
    from engine.spiff import OpenTask, Run

#: Transitions after which a simulation gives up (answers that send it round a loop).
MAX_TRANSITIONS = 500


@dataclass
class SimulatedStep:
    """A step the simulated case went through."""

    step: str
    name: str
    kind: str
    lane: str | None
    process: str
    operator: str | None = None
    #: A business-rule task's decision outputs.
    outputs: dict[str, Any] | None = None
    #: How a service or user task was done: answered, sample, stubbed, empty.
    done_by: str | None = None


@dataclass
class Deadline:
    """A timer the simulated case started."""

    timer: str
    name: str
    on: str | None
    duration: str
    due_in_seconds: float | None
    escalation: str | None
    leads_to: list[str]
    fired: bool = False

    @property
    def due_in(self) -> str:
        return describe_duration(self.due_in_seconds)


@dataclass
class Wait:
    """Something the simulation stopped at."""

    kind: str  # user | message | timer
    step: str
    name: str
    lane: str | None = None
    #: The required fields a user task waits for.
    fields: list[str] = field(default_factory=list)
    #: The messages a catch waits for.
    messages: list[str] = field(default_factory=list)
    due_in_seconds: float | None = None


@dataclass
class Simulation:
    process: str
    files: list[str]
    started_at: datetime
    steps: list[SimulatedStep] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    #: ended | waiting | failed | stopped (too many transitions)
    outcome: str = "waiting"
    waits: list[Wait] = field(default_factory=list)
    error: str | None = None
    changed: dict[str, list[Any]] = field(default_factory=dict)
    unused_answers: list[str] = field(default_factory=list)

    @property
    def stubbed(self) -> list[str]:
        return sorted({s.step for s in self.steps if s.done_by == "stubbed"})

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["started_at"] = self.started_at.isoformat()
        found["stubbed"] = self.stubbed
        return found

    def lines(self) -> list[str]:
        """The simulation in words, one line each."""
        out = [f"Simulated {self.process} from {', '.join(self.files)} (nothing stored)."]
        out.append("Path:")
        for number, step in enumerate(self.steps, start=1):
            where = f" [{step.lane}]" if step.lane else ""
            called = f" in {step.process}" if step.process != self.process else ""
            extra = ""
            if step.outputs is not None:
                extra = " -> " + ", ".join(f"{k} {_short(v)}" for k, v in step.outputs.items())
            if step.operator:
                extra += f" ({step.operator}, {step.done_by})"
            elif step.done_by == "answered":
                extra += " (answered)"
            out.append(f"  {number:>2}. {step.name} ({step.kind}){where}{called}{extra}")
        if self.deadlines:
            out.append("Deadlines started:")
            for deadline in self.deadlines:
                on = f"'{deadline.on}'" if deadline.on else f"'{deadline.name}'"
                then = (
                    f", escalated to {deadline.escalation}"
                    if deadline.escalation
                    else f", then {', '.join(deadline.leads_to)}"
                    if deadline.leads_to
                    else ""
                )
                fired = " (fired)" if deadline.fired else ""
                out.append(
                    f"  deadline {on} in {deadline.due_in} ({deadline.duration}){then}{fired}"
                )
        out.extend(self._outcome_lines())
        if self.stubbed:
            out.append("Stubbed (no answer, no sample): " + ", ".join(self.stubbed))
        if self.changed:
            out.append("Data changed: " + ", ".join(sorted(self.changed)))
        if self.unused_answers:
            out.append("Answers not used: " + ", ".join(self.unused_answers))
        return out

    def _outcome_lines(self) -> list[str]:
        if self.outcome == "ended":
            return ["Ends."]
        if self.outcome == "failed":
            return [f"Fails: {self.error}"]
        if self.outcome == "stopped":
            return [f"Stops: {self.error}"]
        out: list[str] = []
        for wait in self.waits:
            if wait.kind == "user":
                fields = ", ".join(wait.fields)
                out.append(f"Stops at '{wait.name}' ({wait.lane}) waiting for: {fields}")
            elif wait.kind == "message":
                names = ", ".join(f"'{m}'" for m in wait.messages)
                out.append(f"Waits for message {names} at '{wait.name}'")
            else:
                out.append(
                    f"Waits for timer '{wait.name}' (in {describe_duration(wait.due_in_seconds)};"
                    " --fire-timers goes on)"
                )
        return out


def describe_duration(seconds: float | None) -> str:
    """2 days, 12 hours, 90 minutes."""
    if seconds is None:
        return "an unknown time"
    whole = round(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if whole >= size and whole % size == 0:
            count = whole // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{whole} seconds"


def _short(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class _Answers:
    """The answers given, by step id, step name, operator or message name."""

    given: dict[str, Any]
    used: set[str] = field(default_factory=set)

    def find(self, *keys: str | None) -> tuple[bool, Any]:
        for key in keys:
            if key and key in self.given:
                self.used.add(key)
                return True, copy.deepcopy(self.given[key])
        return False, None

    def unused(self) -> list[str]:
        return sorted(set(self.given) - self.used)


def simulate(
    process_id: str,
    paths: Sequence[str | Path],
    data: Mapping[str, Any],
    *,
    registry: Registry,
    answers: Mapping[str, Any] | None = None,
    fire_timers: bool = False,
    start: datetime,
    evaluator: Evaluator | None = None,
) -> Simulation:
    """Run `process_id` as compiled from `paths` on `data`; see the module's docstring.

    Raises ProcessValidationError when the files do not validate, InputError when the
    process is not among them."""
    from engine.spiff import Run
    from engine.spiff.trace import new_steps

    files = definitions.collect_files(paths)
    roles, problems = definitions.find_roles(paths)
    compilation = definitions.validate(
        files, registry, deploying=False, roles=roles, role_problems=problems
    )
    compiled = compilation.processes.get(process_id)
    if compiled is None:
        close = difflib.get_close_matches(process_id, list(compilation.processes), n=1)
        raise InputError(
            f"no process '{process_id}' in {', '.join(str(p) for p in paths)}",
            f"Did you mean '{close[0]}'?"
            if close
            else "Name one of: " + ", ".join(sorted(compilation.processes)),
        )
    if evaluator is None:
        from engine.evaluator import Evaluator
        from engine.runner import Settings

        settings = Settings()
        evaluator = Evaluator(
            settings.expression_time_limit, memory_limit=settings.expression_memory_limit
        )
    forms = {e.bpmn_id: e.form for e in compiled.elements if e.form is not None}
    given = _Answers(dict(answers or {}))
    sim = Simulation(process_id, list(compiled.files), start)
    clock = [start]
    seen: set[str] = set()
    timers: dict[str, Deadline] = {}
    done_by: dict[str, tuple[str | None, str]] = {}
    run: Run | None = None

    def observe(current: Run) -> None:
        for traced in new_steps(current, seen):
            operator, how = done_by.get(traced.task_id, (None, ""))
            sim.steps.append(
                SimulatedStep(
                    traced.bpmn_id,
                    traced.name,
                    traced.kind,
                    traced.lane,
                    traced.process,
                    operator,
                    traced.outputs,
                    how or None,
                )
            )
        started = [t for t in current.open_tasks() if t.kind == "timer" and t.id not in timers]
        for task in sorted(started, key=lambda t: (t.due_at is None, t.due_at or start)):
            timers[task.id] = _deadline(current, task, start)
            sim.deadlines.append(timers[task.id])

    try:
        run = Run.start(compiled.bundle, data, evaluator, lambda: clock[0])
        observe(run)
        for _ in range(MAX_TRANSITIONS):
            if run.completed:
                sim.outcome = "ended"
                break
            if not _step(run, given, forms, registry, done_by, clock, timers, fire_timers, sim):
                break
            observe(run)
        else:
            sim.outcome = "stopped"
            sim.error = f"still running after {MAX_TRANSITIONS} steps (do the answers loop?)"
    except EngineError as exc:
        sim.outcome = "failed"
        sim.error = exc.message
        if run is not None:
            observe(run)
    if run is not None:
        from engine.runner import changes, top_level

        sim.changed = changes(top_level(data), top_level(run.data))
    sim.unused_answers = given.unused()
    return sim


def _deadline(run: Run, task: OpenTask, start: datetime) -> Deadline:
    from engine.spiff.trace import timer_of

    traced = timer_of(run, task.id)
    due = (task.due_at - start).total_seconds() if task.due_at is not None else None
    return Deadline(
        traced.bpmn_id,
        traced.name,
        traced.on,
        traced.expression,
        due,
        traced.escalation,
        list(traced.leads_to),
    )


def _step(
    run: Run,
    given: _Answers,
    forms: Mapping[str, Form],
    registry: Registry,
    done_by: dict[str, tuple[str | None, str]],
    clock: list[datetime],
    timers: Mapping[str, Deadline],
    fire_timers: bool,
    sim: Simulation,
) -> bool:
    """Make one transition; False when there is none to make (`sim.waits` says why)."""
    from engine.spiff.trace import message_names

    open_tasks = run.open_tasks()
    for task in open_tasks:
        if task.kind == "service":
            call = run.service_call(task.id)
            found, answer = given.find(task.bpmn_id, task.name, call.operator)
            how = "answered"
            if not found:
                answer, how = _sample(registry, call.operator, call.params)
            done_by[task.id] = (call.operator, how)
            run.complete_service_task(task.id, answer if isinstance(answer, Mapping) else {})
            return True
    waits: list[Wait] = []
    for task in open_tasks:
        if task.kind not in ("user", "manual"):
            continue
        found, answer = given.find(task.bpmn_id, task.name)
        form = forms.get(task.bpmn_id)
        required = [f.id for f in form.required] if form is not None else []
        if found or not required:
            done_by[task.id] = (None, "answered" if found else "empty")
            run.complete_user_task(task.id, answer if isinstance(answer, Mapping) else {})
            return True
        waits.append(Wait("user", task.bpmn_id, task.name, task.lane, fields=required))
    for task in run.message_waits():
        names = message_names(run, task.id)
        for name in names:
            found, payload = given.find(name)
            if found:
                run.deliver_message(name, payload if isinstance(payload, Mapping) else {})
                return True
        waits.append(Wait("message", task.bpmn_id, task.name, task.lane, messages=names))
    due = [t for t in open_tasks if t.kind == "timer" and t.due_at is not None]
    if fire_timers and due:
        first = min(t.due_at for t in due if t.due_at is not None)
        clock[0] = first + timedelta(microseconds=1)
        for fired in run.fire_earliest_due():
            if fired.id in timers:
                timers[fired.id].fired = True
        return True
    waited = {w.step for w in waits}
    for task in due:
        deadline = timers.get(task.id)
        on_a_task = deadline is not None and deadline.on is not None
        if task.bpmn_id not in waited and not on_a_task and task.due_at is not None:
            seconds = (task.due_at - sim.started_at).total_seconds()
            waits.append(Wait("timer", task.bpmn_id, task.name, task.lane, due_in_seconds=seconds))
    sim.waits = waits
    return False


def _sample(registry: Registry, operator: str, params: Mapping[str, Any]) -> tuple[Any, str]:
    """What a handler declares it returns (its `sample`), else nothing."""
    handler: Callable[..., Any] | None = registry.get(operator) if operator in registry else None
    sample = getattr(handler, "sample", None)
    if callable(sample):
        return sample(copy.deepcopy(dict(params))), "sample"
    if isinstance(sample, Mapping):
        return copy.deepcopy(dict(sample)), "sample"
    return {}, "stubbed"
