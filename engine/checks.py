"""What `validate` checks on a BPMN document's XML, beyond what SpiffWorkflow parses.

Each check walks the lxml tree of one document and reports every problem it finds with
the file, the element's id and its line:

- elements the engine cannot run (complex gateways, compensation, transactions, ...),
  named, before SpiffWorkflow sees them;
- sequence flows from or to an element that does not exist;
- outgoing flows of an exclusive or inclusive gateway that have neither a condition
  nor are the gateway's default;
- flow nodes no start event reaches, and nodes (other than end events) with no way on;
- timers that are neither ISO 8601 (a date, a duration, a repeating interval) nor an
  expression;
- when the procedure asks for it, user tasks without a due-time timer or a form;
- processes with more than MAX_STEPS steps (SpiffWorkflow's parser recurses along a
  path of steps and fails, deep in Python, on a few hundred).

Only executable processes are checked: SpiffWorkflow ignores the others.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import Problem

if TYPE_CHECKING:
    from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"

#: Most flow nodes (tasks, events, gateways) one executable process may hold, its
#: subprocesses included. The largest process shipped has under a hundred.
MAX_STEPS = 250

#: What a procedure may ask of every user task (roles.toml: `user_tasks_need`).
USER_TASK_NEEDS = ("due_time", "form")

_ACTIVITIES = {
    "task",
    "userTask",
    "manualTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "sendTask",
    "receiveTask",
    "callActivity",
    "subProcess",
    "transaction",
    "adHocSubProcess",
}
_EVENTS = {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
}
_GATEWAYS = {
    "exclusiveGateway",
    "inclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
    "complexGateway",
}
FLOW_NODES = _ACTIVITIES | _EVENTS | _GATEWAYS

#: Elements SpiffWorkflow or the engine cannot run: what to call each, what to do instead.
UNSUPPORTED = {
    "complexGateway": ("complex gateway", "use an inclusive gateway with a condition per flow"),
    "transaction": ("transaction subprocess", "use an embedded subprocess"),
    "adHocSubProcess": (
        "ad-hoc subprocess",
        "use a subprocess whose tasks a parallel gateway starts",
    ),
    "compensateEventDefinition": (
        "compensation event",
        "model the undoing as steps after an error boundary event",
    ),
    "cancelEventDefinition": ("cancel event", "use an error end event and an error boundary"),
    "linkEventDefinition": ("link event", "connect the flows directly"),
}
_COMPENSATION_ACTIVITY = (
    "compensation activity",
    "model the undoing as steps after an error boundary event",
)

#: How SpiffWorkflow says what `_check_gateway` says better.
LIBRARY_NO_CONDITION = "Non-default exclusive outgoing sequence flow without condition"

_DURATION = re.compile(
    r"^P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+([.,]\d+)?S)?)?$"
)
_ISO_LOOKING = re.compile(r"^(R\d*/|P\d|PT|P$|\d{4}-)")


def _q(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


def _local(node: etree._Element) -> str:
    tag = node.tag
    if not isinstance(tag, str) or not tag.startswith(f"{{{BPMN_NS}}}"):
        return ""
    return tag.split("}", 1)[1]


def _text(node: etree._Element | None) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _described(node: etree._Element) -> str:
    name = " ".join((node.get("name") or "").split())
    return f"'{node.get('id')}'" + (f" ({name})" if name and name != node.get("id") else "")


@dataclass
class _Checker:
    file: str
    needs: frozenset[str]
    data_names: set[str]

    def __post_init__(self) -> None:
        self.problems: list[Problem] = []

    def report(self, message: str, node: etree._Element, element: str | None = None) -> None:
        self.problems.append(
            Problem(message, self.file, element or node.get("id"), node.sourceline)
        )


def unsupported(root: etree._Element, file: str) -> list[Problem]:
    """Elements of executable processes that the engine cannot run, by name."""
    problems: list[Problem] = []
    for process in _executable(root):
        for node in process.iter():
            local = _local(node)
            found = UNSUPPORTED.get(local)
            if local in _ACTIVITIES and node.get("isForCompensation") == "true":
                found = _COMPENSATION_ACTIVITY
            owner = node if local in FLOW_NODES else node.getparent()
            if found is None or owner is None:
                continue
            what, instead = found
            problems.append(
                Problem(
                    f"{what} {_described(owner)} is not supported: {instead}",
                    file,
                    owner.get("id"),
                    owner.sourceline,
                )
            )
    return problems


def check_document(
    root: etree._Element,
    file: str,
    needs: frozenset[str] = frozenset(),
    data_names: set[str] | None = None,
) -> list[Problem]:
    """Everything wrong with the executable processes of one BPMN document."""
    checker = _Checker(file, needs, data_names if data_names is not None else set())
    for process in _executable(root):
        for container in _containers(process):
            _check_container(checker, container)
        for definition in process.iter(_q("timerEventDefinition")):
            _check_timer(checker, definition)
        if needs:
            _check_user_tasks(checker, process)
    return checker.problems


def data_names(root: etree._Element) -> set[str]:
    """Names a document's steps give a value: form fields, results, script assignments."""
    names: set[str] = set()
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        tag = node.tag.split("}", 1)[-1]
        if tag == "formField" and node.get("id"):
            names.add(str(node.get("id")))
        for attribute in ("resultVariable", "variableName", "messageVariable"):
            if node.get(attribute):
                names.add(str(node.get(attribute)))
        if tag in ("variableName", "messageVariable") and node.text:
            names.add(node.text.strip())
        if tag == "output" and node.get("name"):  # a DMN output column
            names.add(str(node.get("name")))
        if tag in ("script", "preScript", "postScript") and node.text:
            names.update(re.findall(r"^\s*([A-Za-z_]\w*)\s*=(?!=)", node.text, re.MULTILINE))
    return names


def _executable(root: etree._Element) -> Iterator[etree._Element]:
    for process in root.iter(_q("process")):
        if process.get("isExecutable", "true") == "true":
            yield process


def _containers(process: etree._Element) -> Iterator[etree._Element]:
    """The process and every subprocess in it: each has its own flows and start."""
    yield process
    yield from process.iter(_q("subProcess"))


def blocking(root: etree._Element, file: str) -> list[Problem]:
    """What keeps a document from being handed to SpiffWorkflow at all: elements the
    engine cannot run, and sequence flows from or to no element."""
    checker = _Checker(file, frozenset(), set())
    too_big: list[Problem] = []
    for process in _executable(root):
        steps = 0
        for container in _containers(process):
            nodes = _nodes(container)
            steps += len(nodes)
            _flows(checker, container, nodes, report=True)
        if steps > MAX_STEPS:
            too_big.append(
                Problem(
                    f"the process has {steps:,} steps; the limit is {MAX_STEPS:,}: "
                    "split it into processes that call each other",
                    file,
                    process.get("id"),
                    process.sourceline,
                )
            )
    if too_big:  # the other checks would only repeat themselves over thousands of steps
        return too_big
    return [*unsupported(root, file), *checker.problems]


def _nodes(container: etree._Element) -> dict[str, etree._Element]:
    return {str(n.get("id")): n for n in container if _local(n) in FLOW_NODES and n.get("id")}


def _flows(
    checker: _Checker,
    container: etree._Element,
    nodes: dict[str, etree._Element],
    *,
    report: bool,
) -> dict[str, list[etree._Element]]:
    """The container's sequence flows by source; dangling ones reported or left out."""
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in container:
        if _local(flow) != "sequenceFlow":
            continue
        source, target = flow.get("sourceRef") or "", flow.get("targetRef") or ""
        broken = False
        for end, ref in (("comes from", source), ("leads to", target)):
            if ref not in nodes:
                broken = True
                if report:
                    what = f"'{ref}', which is no element of" if ref else "no element in"
                    checker.report(
                        f"sequence flow {_described(flow)} {end} {what} this process", flow
                    )
        if not broken:
            outgoing.setdefault(source, []).append(flow)
    return outgoing


def _check_container(checker: _Checker, container: etree._Element) -> None:
    nodes = _nodes(container)
    outgoing = _flows(checker, container, nodes, report=False)
    for node in nodes.values():
        if _local(node) in ("exclusiveGateway", "inclusiveGateway"):
            _check_gateway(checker, node, outgoing.get(str(node.get("id")), []))
    _check_paths(checker, container, nodes, outgoing)


def _check_gateway(checker: _Checker, gateway: etree._Element, flows: list[etree._Element]) -> None:
    default = gateway.get("default")
    if default and default not in {f.get("id") for f in flows}:
        checker.report(
            f"gateway {_described(gateway)} names '{default}' as its default, which is not "
            "one of its outgoing flows",
            gateway,
        )
    if len(flows) < 2:
        return
    for flow in flows:
        if flow.get("id") == default or _text(flow.find(_q("conditionExpression"))):
            continue
        checker.report(
            f"sequence flow {_described(flow)} out of gateway {_described(gateway)} has no "
            "condition and is not the gateway's default",
            flow,
        )


def _check_paths(
    checker: _Checker,
    container: etree._Element,
    nodes: dict[str, etree._Element],
    outgoing: dict[str, list[etree._Element]],
) -> None:
    """Every node is reached from a start event; every node but an end event leads on."""
    boundary: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if _local(node) == "boundaryEvent" and node.get("attachedToRef"):
            boundary.setdefault(str(node.get("attachedToRef")), []).append(node_id)
    starts = [
        node_id
        for node_id, node in nodes.items()
        if _local(node) == "startEvent"
        or (_local(node) == "subProcess" and node.get("triggeredByEvent") == "true")
    ]
    if not any(_local(nodes[s]) == "startEvent" for s in starts):
        return  # SpiffWorkflow reports a missing start event
    reached: set[str] = set()
    todo = list(starts)
    while todo:
        node_id = todo.pop()
        if node_id in reached:
            continue
        reached.add(node_id)
        todo.extend(str(f.get("targetRef")) for f in outgoing.get(node_id, []))
        todo.extend(boundary.get(node_id, []))
    for node_id, node in nodes.items():
        local = _local(node)
        if node_id not in reached and local != "boundaryEvent":
            checker.report(
                f"{_kind_name(local)} {_described(node)} cannot be reached from a start event",
                node,
            )
        elif node_id not in reached:
            attached = node.get("attachedToRef")
            if attached not in nodes:
                checker.report(
                    f"boundary event {_described(node)} is attached to '{attached}', which "
                    "is no element of this process",
                    node,
                )
        if node_id not in reached or local == "endEvent" or outgoing.get(node_id):
            continue
        if local == "subProcess" and node.get("triggeredByEvent") == "true":
            continue
        checker.report(
            f"{_kind_name(local)} {_described(node)} leads nowhere: give it an outgoing "
            "sequence flow or end the path with an end event",
            node,
        )


def _kind_name(local: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r" \1", local).lower()


def is_iso_timer(text: str) -> bool:
    """A date, a duration or a repeating interval as ISO 8601 writes them."""
    if text.startswith("R"):
        parts = text.split("/")
        if not re.fullmatch(r"R\d*", parts[0]) or len(parts) not in (2, 3):
            return False
        return all(_DURATION.match(p) or _iso_date(p) for p in parts[1:]) and any(
            _DURATION.match(p) for p in parts[1:]
        )
    return bool(_DURATION.match(text)) or _iso_date(text)


def _iso_date(text: str) -> bool:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_timer(checker: _Checker, definition: etree._Element) -> None:
    event = definition.getparent()
    if event is None:
        return
    for child in definition:
        kind = _local(child)
        if kind not in ("timeDuration", "timeDate", "timeCycle"):
            continue
        text = _text(child)
        if not text:
            checker.report(f"timer of {_described(event)} has an empty {kind}", event)
            continue
        if is_iso_timer(text):
            continue
        problem = _timer_problem(text, checker.data_names)
        if problem:
            checker.report(
                f"timer {text!r} of {_described(event)} {problem}; write an ISO 8601 "
                "duration (P7D, PT4H), date (2026-12-01T09:00:00Z) or repeating interval "
                "(R3/PT1H), or an expression that reads the data",
                event,
            )


def _timer_problem(text: str, names: set[str]) -> str | None:
    """Why a timer that is not ISO 8601 as written is wrong, or None if it may be fine
    (an expression, checked with every other expression by the evaluator)."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        if _ISO_LOOKING.match(text):
            return "is not valid ISO 8601"
        return None  # the evaluator reports the syntax error
    body = tree.body
    if isinstance(body, ast.Constant):
        if isinstance(body.value, str) and is_iso_timer(body.value.strip()):
            return None
        return "is not valid ISO 8601"
    if isinstance(body, ast.Name):
        if _ISO_LOOKING.match(text):
            return "is not valid ISO 8601"
        if body.id not in names:
            return f"is neither ISO 8601 nor a value any step of the process sets ('{body.id}')"
    return None


def _check_user_tasks(checker: _Checker, process: etree._Element) -> None:
    timed = {
        event.get("attachedToRef")
        for event in process.iter(_q("boundaryEvent"))
        if event.find(_q("timerEventDefinition")) is not None
    }
    for task in process.iter(_q("userTask")):
        if "due_time" in checker.needs and task.get("id") not in timed:
            checker.report(
                f"user task {_described(task)} has no due time: attach a timer boundary "
                "event to it",
                task,
            )
        if "form" in checker.needs and not _has_form(task):
            checker.report(
                f"user task {_described(task)} has no form: declare its fields with "
                "camunda:formData",
                task,
            )


def _has_form(task: etree._Element) -> bool:
    extensions = task.find(_q("extensionElements"))
    if extensions is None:
        return False
    return extensions.find(f"{{{CAMUNDA_NS}}}formData") is not None
