"""What a run did, read off its task trees: the steps it finished, in the order they ran,
the timers it started and the messages it waits for. `engine.simulate` reads a
simulated run through these; nothing here changes the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins import CallActivityMixin, SubWorkflowTaskMixin
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent, ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.dmn.specs import BusinessRuleTaskMixin
from SpiffWorkflow.util.task import TaskState

from engine.spiff.compiler import _kind, _timer_definitions
from engine.spiff.runtime import Run, _escalation_code, _timer_like

_GATEWAYS = (ExclusiveGateway, InclusiveGateway, ParallelGateway)


@dataclass(frozen=True)
class TracedStep:
    """A flow node a run went through."""

    task_id: str
    bpmn_id: str
    name: str
    kind: str
    lane: str | None
    process: str
    #: A business-rule task's decision outputs, by name.
    outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class TracedTimer:
    """A timer a run started: a task's due time, or a wait's time limit."""

    task_id: str
    bpmn_id: str
    name: str
    #: The duration, date or cycle as the diagram writes it (P2D).
    expression: str
    #: The task whose border it is on (None: an intermediate event or a gateway's wait).
    on: str | None
    #: The role an escalation it leads to names, if any.
    escalation: str | None
    #: The names of what it leads to.
    leads_to: tuple[str, ...]


def _name(spec: Any) -> str:
    return str(spec.bpmn_name or spec.bpmn_id or spec.name)


def _event_kind(spec: Any) -> str:
    """startEvent, endEvent, boundaryEvent, intermediateCatchEvent, ... from the class."""
    name = type(spec).__name__
    return name[0].lower() + name[1:]


def _step_kind(spec: Any) -> str:
    if isinstance(spec, CatchingEvent | ThrowingEvent):
        return _event_kind(spec)
    return _kind(spec)


def _entered(task: Any) -> bool:
    """Whether a task counts as gone through: finished, or (a called process, a
    subprocess) entered, so that it comes before the steps it calls."""
    if task.state == TaskState.COMPLETED:
        return True
    spec = task.task_spec
    return bool(
        task.state == TaskState.STARTED
        and isinstance(spec, CallActivityMixin | SubWorkflowTaskMixin)
    )


def new_steps(run: Run, seen: set[str]) -> list[TracedStep]:
    """The flow nodes the run went through since `seen` was last updated (which this
    adds them to), in the order they ran: gateways and the library's own tasks left out."""
    found: list[tuple[float, int, Any]] = []
    for index, (task, _path, _ordinal) in enumerate(run._snapshot().tasks):
        spec = task.task_spec
        key = str(task.id)
        if key in seen or not getattr(spec, "bpmn_id", None) or isinstance(spec, _GATEWAYS):
            continue
        if not _entered(task):
            continue
        seen.add(key)
        found.append((task.last_state_change, index, task))
    steps: list[TracedStep] = []
    for _time, _index, task in sorted(found, key=lambda item: (item[0], item[1])):
        spec = task.task_spec
        outputs = None
        if isinstance(spec, BusinessRuleTaskMixin):
            table = spec.dmnEngine.decision_table
            outputs = {
                str(column.name): task.data.get(column.name)
                for column in table.outputs
                if column.name
            }
        steps.append(
            TracedStep(
                task_id=str(task.id),
                bpmn_id=str(spec.bpmn_id),
                name=_name(spec),
                kind=_step_kind(spec),
                lane=run._lane(task),
                process=str(task.workflow.spec.name),
                outputs=outputs,
            )
        )
    return steps


def _unquoted(expression: str) -> str:
    text = expression.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def timer_of(run: Run, task_id: str) -> TracedTimer:
    """What the diagram says of a waiting timer of the run."""
    task = run._task(task_id)
    spec = task.task_spec
    definitions = _timer_definitions(spec)
    expression = _unquoted(definitions[0].expression or "") if definitions else ""
    on = None
    parent = task.parent
    if parent is not None and parent.task_spec is not None:
        attached = [
            sibling
            for sibling in parent.children
            if sibling is not task and not _timer_like(sibling.task_spec)
        ]
        if attached and type(parent.task_spec).__name__ == "BoundaryEventSplit":
            on = _name(attached[0].task_spec)
    return TracedTimer(
        task_id=task_id,
        bpmn_id=str(spec.bpmn_id or spec.name),
        name=_name(spec),
        expression=expression,
        on=on,
        escalation=_escalation_code(spec),
        leads_to=tuple(_named_next(spec)),
    )


def _named_next(spec: Any, depth: int = 4) -> list[str]:
    """The named steps a flow node leads to, through unnamed gateways and joins."""
    found: list[str] = []
    for following in spec.outputs:
        if type(following).__name__ == "BoundaryEventJoin" or _timer_like(following):
            continue
        if following.bpmn_name:
            found.append(str(following.bpmn_name))
        elif depth > 0:
            found.extend(n for n in _named_next(following, depth - 1) if n not in found)
    return found


def message_names(run: Run, task_id: str) -> list[str]:
    """The messages a waiting catch (or an event-based gateway's wait) takes."""
    definition = getattr(run._task(task_id).task_spec, "event_definition", None)
    definitions = (
        list(definition.event_definitions)
        if isinstance(definition, MultipleEventDefinition)
        else [definition]
    )
    return [str(d.name) for d in definitions if isinstance(d, MessageEventDefinition)]
