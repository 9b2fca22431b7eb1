"""The operating manual, generated from the diagrams: who does each step, by when, what
happens when the time runs out, and the standards the decision tables set.

`read_manual` reads BPMN and DMN files (the ones in processes/, or the sources of the
versions deployed to a database) with the hardened XML parser, and `render_manual`
writes them with jinja2 into markdown pages: an index, and one page per process with
its steps in order (a walk from the start event), each step's role (its lane), deadline
(a timer on its border) and escalation (what the timer leads to), the gateways' routes,
the decision tables it calls rendered as tables, and its diagram as SVG
(`engine.diagram.to_svg`). `artreturns docs` writes them to docs/manual/.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from engine.xmlsafe import parse_document

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
TEMPLATES = Path(__file__).resolve().parent / "templates"

#: What each kind of step is called in the manual.
KINDS = {
    "userTask": "person",
    "manualTask": "person",
    "serviceTask": "handler",
    "scriptTask": "script",
    "businessRuleTask": "decision table",
    "callActivity": "calls a flow",
    "subProcess": "sub-flow",
    "receiveTask": "waits for a message",
    "intermediateCatchEvent": "waits",
    "sendTask": "sends",
    "task": "task",
}
_GATEWAYS = ("exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway")


@dataclass
class Timer:
    name: str
    duration: str
    #: What happens: "escalated to finance_supervisor", or the steps it leads to.
    then: str
    interrupting: bool


@dataclass
class Step:
    id: str
    name: str
    kind: str
    role: str | None
    documentation: str = ""
    operator: str | None = None
    decision: str | None = None
    calls: str | None = None
    messages: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    deadlines: list[Timer] = field(default_factory=list)
    #: Other events on its border: a message, an error a handler reports.
    events: list[str] = field(default_factory=list)
    #: A gateway's ways out: "label → next step".
    routes: list[str] = field(default_factory=list)


@dataclass
class DecisionTable:
    id: str
    name: str
    file: str
    description: str
    hit_policy: str
    inputs: list[str]
    outputs: list[str]
    rows: list[list[str]]


@dataclass
class ProcessPage:
    id: str
    name: str
    file: str
    roles: list[str]
    steps: list[Step]
    ends: list[str]
    decisions: list[DecisionTable]
    svg: str | None
    version: int | None = None

    @property
    def deadlines(self) -> list[tuple[Step, Timer]]:
        return [(step, timer) for step in self.steps for timer in step.deadlines]


@dataclass
class Manual:
    source: str
    processes: list[ProcessPage]
    decisions: dict[str, DecisionTable]
    roles: list[dict[str, str]]


def _local(node: Any) -> str:
    return str(etree.QName(node).localname) if isinstance(node.tag, str) else ""


def _text(node: Any | None) -> str:
    return " ".join((node.text or "").split()) if node is not None else ""


def _doc(node: Any) -> str:
    return _text(node.find(f"{{{BPMN}}}documentation"))


def _clean(text: str) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _timer_text(definition: Any) -> str:
    for kind in ("timeDuration", "timeDate", "timeCycle"):
        node = definition.find(f"{{{BPMN}}}{kind}")
        if node is not None:
            return _text(node).strip("'\"")
    return ""


def _describe_duration(text: str) -> str:
    """P2D -> 2 days, PT12H -> 12 hours, P1W -> 1 week; anything else as written."""
    match = re.fullmatch(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", text)
    if not match or not any(match.groups()):
        return text
    parts = []
    for value, unit in zip(match.groups(), ("week", "day", "hour", "minute"), strict=True):
        if value:
            parts.append(f"{int(value)} {unit}{'s' if int(value) != 1 else ''}")
    return " ".join(parts)


class _Flow:
    """One BPMN process of a file, indexed for the walk."""

    def __init__(self, process: Any, root: Any) -> None:
        self.nodes: dict[str, Any] = {}
        self.flows: dict[str, Any] = {}
        self.outgoing: dict[str, list[Any]] = {}
        self.boundary: dict[str, list[Any]] = {}
        self.lane_of: dict[str, str] = {}
        for lane in process.iter(f"{{{BPMN}}}lane"):
            for ref in lane.iter(f"{{{BPMN}}}flowNodeRef"):
                self.lane_of[_text(ref)] = lane.get("name") or lane.get("id") or ""
        for node in process:
            local = _local(node)
            if local == "sequenceFlow":
                self.flows[node.get("id")] = node
                self.outgoing.setdefault(node.get("sourceRef"), []).append(node)
            elif local == "boundaryEvent":
                self.boundary.setdefault(node.get("attachedToRef"), []).append(node)
                self.nodes[node.get("id")] = node
            elif node.get("id") and local not in ("laneSet", "documentation", "extensionElements"):
                self.nodes[node.get("id")] = node
        self.messages = {
            m.get("id"): m.get("name") or m.get("id") for m in root.iter(f"{{{BPMN}}}message")
        }
        self.escalations = {
            e.get("id"): e.get("escalationCode") or e.get("name") or e.get("id")
            for e in root.iter(f"{{{BPMN}}}escalation")
        }
        self.errors = {
            e.get("id"): e.get("errorCode") or e.get("name") or e.get("id")
            for e in root.iter(f"{{{BPMN}}}error")
        }

    def name(self, node_id: str) -> str:
        node = self.nodes.get(node_id)
        return (node.get("name") if node is not None else None) or node_id

    def targets(self, node_id: str) -> list[str]:
        return [f.get("targetRef") for f in self.outgoing.get(node_id, [])]

    def named_next(self, node_id: str, depth: int = 4) -> list[str]:
        """The named steps a node leads to, through unnamed gateways."""
        found: list[str] = []
        for target in self.targets(node_id):
            node = self.nodes.get(target)
            if node is None:
                continue
            if node.get("name") or depth == 0:
                found.append(self.name(target))
            else:
                found.extend(n for n in self.named_next(target, depth - 1) if n not in found)
        return found

    def escalation_after(self, node_id: str) -> str | None:
        for target in self.targets(node_id):
            node = self.nodes.get(target)
            definition = (
                node.find(f"{{{BPMN}}}escalationEventDefinition") if node is not None else None
            )
            if definition is not None:
                return str(self.escalations.get(definition.get("escalationRef"), "a supervisor"))
        return None


def _walk(flow: _Flow) -> list[str]:
    """The flow nodes from the start event, depth first: at a fork the way that ends
    soonest first (a decline, an escalation), so that the main path reads on after its
    side exits. Each node once; a loop back is not followed."""

    def following(node_id: str) -> list[str]:
        found = list(flow.targets(node_id))
        for event in flow.boundary.get(node_id, []):
            found.append(event.get("id"))
        return [t for t in found if t in flow.nodes]

    ends = [i for i, n in flow.nodes.items() if _local(n) == "endEvent"]
    before: dict[str, list[str]] = {}
    for node_id in flow.nodes:
        for target in following(node_id):
            before.setdefault(target, []).append(node_id)
    to_end = dict.fromkeys(ends, 0)
    queue = deque(ends)
    while queue:
        current = queue.popleft()
        for previous in before.get(current, []):
            if previous not in to_end:
                to_end[previous] = to_end[current] + 1
                queue.append(previous)
    order: list[str] = []
    seen: set[str] = set()
    stack = [i for i, n in reversed(list(flow.nodes.items())) if _local(n) == "startEvent"]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        order.append(current)
        ahead = [t for t in following(current) if t not in seen]
        ahead.sort(key=lambda t: to_end.get(t, len(flow.nodes)))
        stack.extend(reversed(ahead))
    return order


def _read_process(process: Any, root: Any, file: str) -> ProcessPage:
    flow = _Flow(process, root)
    order = _walk(flow)
    steps: list[Step] = []
    ends: list[str] = []
    for node_id in order:
        node = flow.nodes[node_id]
        local = _local(node)
        if local == "endEvent":
            if node.find(f"{{{BPMN}}}escalationEventDefinition") is None:
                ends.append(flow.name(node_id))
            continue
        if local == "startEvent" or local == "boundaryEvent":
            continue
        if local in _GATEWAYS:
            if node.get("name") or len(flow.outgoing.get(node_id, [])) > 1:
                steps.append(_gateway(flow, node))
            continue
        if local == "intermediateThrowEvent" and not node.get("name"):
            continue
        steps.append(_step(flow, node, local))
    participant = next(
        (
            p
            for p in root.iter(f"{{{BPMN}}}participant")
            if p.get("processRef") == process.get("id")
        ),
        None,
    )
    name = (participant.get("name") if participant is not None else None) or process.get("name")
    return ProcessPage(
        id=str(process.get("id")),
        name=name or str(process.get("id")),
        file=file,
        roles=sorted({r for r in flow.lane_of.values() if r}),
        steps=steps,
        ends=ends,
        decisions=[],
        svg=None,
    )


def _gateway(flow: _Flow, node: Any) -> Step:
    routes = []
    default = node.get("default")
    for out in flow.outgoing.get(node.get("id"), []):
        label = out.get("name") or ""
        condition = _text(out.find(f"{{{BPMN}}}conditionExpression"))
        if out.get("id") == default:
            label = f"{label} (otherwise)" if label else "otherwise"
        elif condition and not label:
            label = f"when {condition}"
        target = out.get("targetRef")
        ahead = flow.name(target)
        if not flow.nodes.get(target, node).get("name"):
            ahead = ", ".join(flow.named_next(target)) or ahead
        routes.append(f"{label or 'then'} → {ahead}")
    return Step(
        id=str(node.get("id")),
        name=node.get("name") or "(unnamed)",
        kind="gateway" if _local(node) != "parallelGateway" else "in parallel",
        role=flow.lane_of.get(node.get("id")),
        routes=routes,
    )


def _step(flow: _Flow, node: Any, local: str) -> Step:
    node_id = str(node.get("id"))
    step = Step(
        id=node_id,
        name=flow.name(node_id),
        kind=KINDS.get(local, local),
        role=flow.lane_of.get(node_id),
        documentation=_doc(node),
    )
    operator = node.find(f".//{{{SPIFF}}}serviceTaskOperator")
    if operator is not None:
        step.operator = operator.get("id")
    decision = node.find(f".//{{{SPIFF}}}calledDecisionId")
    if decision is not None:
        step.decision = _text(decision)
    if local == "callActivity":
        step.calls = node.get("calledElement")
    if node.get("messageRef"):
        step.messages.append(str(flow.messages.get(node.get("messageRef"), node.get("messageRef"))))
    for definition in node.iter(f"{{{BPMN}}}messageEventDefinition"):
        step.messages.append(str(flow.messages.get(definition.get("messageRef"), "a message")))
    for form_field in node.iter(f"{{{CAMUNDA}}}formField"):
        required = any(
            c.get("name") == "required" for c in form_field.iter(f"{{{CAMUNDA}}}constraint")
        )
        label = form_field.get("label") or form_field.get("id")
        step.fields.append(f"{label} (`{form_field.get('id')}`{', required' if required else ''})")
    for definition in node.iter(f"{{{BPMN}}}timerEventDefinition"):  # a timer wait
        duration = _timer_text(definition)
        step.deadlines.append(
            Timer(node.get("name") or duration, duration, "the flow goes on", True)
        )
    for event in flow.boundary.get(node_id, []):
        _boundary(flow, event, step)
    step.deadlines.sort(key=lambda t: _seconds(t.duration))
    return step


def _seconds(duration: str) -> float:
    """An ISO duration in seconds, to order a task's timers (anything else last)."""
    match = re.fullmatch(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", duration)
    if not match or not any(match.groups()):
        return float("inf")
    weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
    return float((((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60)


def _boundary(flow: _Flow, event: Any, step: Step) -> None:
    event_id = str(event.get("id"))
    interrupting = event.get("cancelActivity", "true") != "false"
    timer = event.find(f"{{{BPMN}}}timerEventDefinition")
    if timer is not None:
        escalation = flow.escalation_after(event_id)
        if escalation is not None:
            then = f"escalated to {escalation}; the task stays open"
        else:
            ahead = ", ".join(flow.named_next(event_id)) or "the flow goes on"
            then = f"the task is left: {ahead}" if interrupting else f"{ahead}; the task stays open"
        step.deadlines.append(Timer(flow.name(event_id), _timer_text(timer), then, interrupting))
        return
    ahead = ", ".join(flow.named_next(event_id)) or "the flow goes on"
    error = event.find(f"{{{BPMN}}}errorEventDefinition")
    message = event.find(f"{{{BPMN}}}messageEventDefinition")
    if error is not None:
        code = flow.errors.get(error.get("errorRef"), "an error")
        step.events.append(f"on the error `{code}`: {ahead}")
    elif message is not None:
        name = flow.messages.get(message.get("messageRef"), "a message")
        step.events.append(f"on the message `{name}`: {ahead}")
    else:
        step.events.append(f"{flow.name(event_id)}: {ahead}")


def _read_decisions(root: Any, file: str) -> list[DecisionTable]:
    tables: list[DecisionTable] = []
    for decision in root.iter():
        if _local(decision) != "decision":
            continue
        table = next((t for t in decision if _local(t) == "decisionTable"), None)
        if table is None:
            continue
        description = next((_text(d) for d in decision if _local(d) == "description"), "")
        inputs = [c.get("label") or c.get("id") or "" for c in table if _local(c) == "input"]
        outputs = [c.get("label") or c.get("name") or "" for c in table if _local(c) == "output"]
        rows = []
        for rule in table:
            if _local(rule) != "rule":
                continue
            cells = [
                _text(next((t for t in entry if _local(t) == "text"), None))
                for entry in rule
                if _local(entry) in ("inputEntry", "outputEntry")
            ]
            note = next((_text(d) for d in rule if _local(d) == "description"), "")
            rows.append([_clean(c) for c in [str(rule.get("id")), *cells, note]])
        tables.append(
            DecisionTable(
                id=str(decision.get("id")),
                name=decision.get("name") or str(decision.get("id")),
                file=file,
                description=description,
                hit_policy=table.get("hitPolicy") or "UNIQUE",
                inputs=[_clean(i) for i in inputs],
                outputs=[_clean(o) for o in outputs],
                rows=rows,
            )
        )
    return tables


def read_manual(
    files: Mapping[str, bytes],
    source: str,
    roles: Iterable[Mapping[str, str]] = (),
    versions: Mapping[str, int] | None = None,
) -> Manual:
    """The manual of the diagrams `files` (name -> content), said to come from `source`."""
    from engine.diagram import to_svg

    processes: list[ProcessPage] = []
    decisions: dict[str, DecisionTable] = {}
    for name in sorted(files):
        root = parse_document(files[name], name)
        if name.lower().endswith(".dmn"):
            for table in _read_decisions(root, name):
                decisions[table.id] = table
            continue
        svg: str | None = to_svg(files[name], name)
        for process in root.iter(f"{{{BPMN}}}process"):
            if process.get("isExecutable") == "false":
                continue
            page = _read_process(process, root, name)
            page.svg, svg = svg, None  # the file's diagram, with its first process
            if versions is not None:
                page.version = versions.get(page.id)
            processes.append(page)
    for page in processes:
        called = [s.decision for s in page.steps if s.decision]
        page.decisions = [decisions[d] for d in dict.fromkeys(called) if d in decisions]
    return Manual(source, processes, decisions, [dict(r) for r in roles])


def render_manual(manual: Manual) -> dict[str, str]:
    """The manual's files: name -> text (index.md, <process>.md, <process>.svg)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - markdown, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = _describe_duration
    env.filters["cell"] = _clean
    pages = {"index.md": env.get_template("manual_index.md.j2").render(manual=manual)}
    process_template = env.get_template("manual_process.md.j2")
    for page in manual.processes:
        pages[f"{page.id}.md"] = process_template.render(manual=manual, page=page)
        if page.svg is not None:
            pages[f"{page.id}.svg"] = f'<?xml version="1.0" encoding="UTF-8"?>\n{page.svg}\n'
    return pages


def write_manual(pages: Mapping[str, str], out: Path) -> list[str]:
    """Write the pages into `out`; remove what an earlier manual left there. Returns
    what changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for name, text in sorted(pages.items()):
        target = out / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(f"wrote {target}")
    for old in sorted(out.iterdir()):
        if old.is_file() and old.suffix in (".md", ".svg") and old.name not in pages:
            old.unlink()
            changed.append(f"removed {old}")
    return changed


def files_in(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """The diagram files named, or found in the folders named, as deploy reads them."""
    from engine.definitions import collect_files

    return {f.name: f.content for f in collect_files(paths)}


def roles_of(roles: Any) -> list[dict[str, str]]:
    """A `Roles` (or None) as the rows of the manual's roles table."""
    if roles is None:
        return []
    return [
        {"name": r.name, "title": r.title, "does": r.does, "supervisor": r.supervisor}
        for r in roles.roles
    ]


def manual_from_files(paths: Iterable[str | Path]) -> Manual:
    """The manual of the diagram files (and roles.toml) named, or in the folders named."""
    from engine.definitions import find_roles

    paths = list(paths)
    roles, _problems = find_roles(paths)
    where = ", ".join(
        f"`{Path(p).as_posix().rstrip('/')}/`" if Path(p).is_dir() else f"`{p}`" for p in paths
    )
    return read_manual(files_in(paths), f"the diagrams in {where}", roles_of(roles))


def manual_from_database(engine: Any, actor: str) -> Manual:
    """The manual of the latest deployed version of every process in `engine`'s database."""
    from engine.persistence import SourceFileRecord

    latest = engine.processes(actor=actor)
    files: dict[str, bytes] = {}
    with engine.db.read() as session:
        for view in latest:
            for entry in view.files:
                record = session.get(SourceFileRecord, entry["sha256"])
                if record is not None:
                    files.setdefault(entry["name"], record.content.encode("utf-8"))
    versions = {view.process_id: view.version for view in latest}
    source = f"the versions deployed to {engine.db.display_url}"
    manual = read_manual(files, source, roles_of(engine.roles()), versions)
    manual.processes = [p for p in manual.processes if p.id in versions]
    return manual
