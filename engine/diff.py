"""What changed in a process between two sets of diagram files, in business words.

A process owner edits processes/ and wants to know, before deploying, what the edit
changes: which steps came or went, were renamed, moved to another role (lane), changed
kind, operator, form, deadline or script; which flows came or went and which conditions
changed; what changed in the processes it calls; which rows of the decision tables it
uses changed, cell by cell. `compare` answers that from two sets of source files (a
deployed version's, as stored, or the files on disk), read at the XML level with the
hardened parser: the semantic elements only, keyed by their ids.

What is not a change: the layout (BPMN DI, DMN DI: where shapes are drawn), the order of
elements in the file, white space in names and expressions, indentation of a whole
script, documentation and descriptions. What is: anything the engine runs by.

The set of files compared for a process is what it reaches: the processes its call
activities call (transitively), and the decisions its business rule tasks use.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lxml import etree

from engine.diagram import BPMN, FLOW_NODES
from engine.errors import InputError
from engine.xmlsafe import parse_document

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
_MARKS = {ADDED: "+ ", REMOVED: "- ", CHANGED: ""}
NONE = "(none)"
T = TypeVar("T")

#: What a change's `before` and `after` hold: a text, a few named texts (a form field,
#: a decision row's cells), or nothing (the side where it does not exist).
Value = str | dict[str, str] | None

#: A step's aspects compared one by one: what a change of it is called (`what` in
#: --json) and how a line says it. Role and kind first, as a reader asks them first.
_ASPECTS = {
    "role": "role",
    "kind": "kind",
    "operator": "operator",
    "called process": "calls",
    "decision": "decision",
    "timer": "timer",
    "script": "script",
    "script before": "script before",
    "script after": "script after",
    "message": "message",
    "escalation": "escalates to",
    "error": "error",
    "default flow": "default flow",
    "attached to": "attached to",
}
#: Aspects shown quoted, because they are expressions or code.
_QUOTED = frozenset({"script", "script before", "script after"})
#: Aspects that tell what an added or removed step is, after its kind.
_SUMMARY = ("operator", "called process", "decision", "timer", "message", "escalation")
_TIMERS = {"timeDuration": "{}", "timeDate": "at {}", "timeCycle": "every {}"}
_SCRIPTS = {"script": "script", "preScript": "script before", "postScript": "script after"}
_REFERENCES = {
    "messageEventDefinition": ("message", "messageRef"),
    "escalationEventDefinition": ("escalation", "escalationRef"),
    "errorEventDefinition": ("error", "errorRef"),
}


@dataclass(frozen=True)
class Change:
    """One thing that changed: `what` (step, flow, condition, decision row, ...),
    `change` (added, removed, changed), the id of the element, `where` (the process or
    decision it is in), before and after, and the sentence that says it."""

    what: str
    change: str
    id: str
    where: str
    text: str
    before: Value = None
    after: Value = None

    @property
    def line(self) -> str:
        """The sentence, marked `+ ` when something was added and `- ` when removed."""
        return _MARKS[self.change] + self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "change": self.change,
            "id": self.id,
            "where": self.where,
            "before": self.before,
            "after": self.after,
            "text": self.text,
        }


@dataclass(frozen=True)
class Comparison:
    """Two sides of a process compared: labels for them ("v3", "processes/ (files on
    disk)") and the changes, the process first, then what it calls, then decisions."""

    process_id: str
    before: str
    after: str
    changes: Sequence[Change]

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process_id,
            "from": self.before,
            "to": self.after,
            "changes": [c.to_dict() for c in self.changes],
        }


# -- reading -----------------------------------------------------------------------------


@dataclass
class _Step:
    id: str
    name: str
    aspects: dict[str, str] = field(default_factory=dict)
    form: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Flow:
    id: str
    name: str
    source: str
    target: str
    condition: str


@dataclass
class _Process:
    id: str
    name: str
    steps: dict[str, _Step]
    flows: dict[str, _Flow]
    calls: list[str]
    decisions: list[str]


@dataclass(frozen=True)
class _Row:
    id: str
    number: int
    cells: dict[str, str]  # column id -> the cell as written


@dataclass
class _Table:
    id: str
    name: str
    hit_policy: str
    inputs: dict[str, str]  # column id -> its label (expression)
    outputs: dict[str, str]
    labels: dict[str, str]  # column id -> the short label a line shows
    rows: dict[str, _Row]


@dataclass
class _Model:
    processes: dict[str, _Process] = field(default_factory=dict)
    tables: dict[str, _Table] = field(default_factory=dict)

    def reach(self, process_id: str) -> tuple[list[str], list[str]]:
        """The processes `process_id` reaches through call activities (itself first)
        and the decisions they use, each once, in the order met; those called but in
        none of the files too (they cannot be compared, but are still called)."""
        processes: list[str] = []
        decisions: list[str] = []
        waiting = [process_id]
        while waiting:
            current = waiting.pop(0)
            if current in processes:
                continue
            processes.append(current)
            process = self.processes.get(current)
            if process is not None:
                waiting.extend(process.calls)
                decisions.extend(d for d in process.decisions if d not in decisions)
        return processes, decisions


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _text(value: str | None) -> str:
    """White space folded: re-wrapping a name or an expression changes nothing."""
    return " ".join((value or "").split())


def _script(value: str | None) -> str:
    """A script without blank lines, trailing blanks or indentation common to all lines
    (which is how a modeler re-indents it); inner indentation is Python and counts."""
    lines = textwrap.dedent((value or "").expandtabs()).splitlines()
    return "\n".join(line.rstrip() for line in lines if line.strip())


def _unquoted(text: str) -> str:
    """`"P2D"` (SpiffWorkflow's quoted form) and `P2D` (the modeler's) are one timer."""
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" and text[0] not in text[1:-1]:
        return text[1:-1]
    return text


def _own(node: etree._Element) -> Iterator[etree._Element]:
    """What a flow node itself declares: its children and everything under them, but
    not the steps and flows of a subprocess."""
    for child in node:
        name = _local(child)
        if not name or name in FLOW_NODES or name == "sequenceFlow":
            continue
        yield child
        yield from _own(child)


def _form_field(node: etree._Element) -> dict[str, str]:
    found = {"label": _text(node.get("label")), "type": _text(node.get("type"))}
    found["required"] = "no"
    choices: list[str] = []
    for inner in node.iterdescendants():
        name = _local(inner)
        if name == "constraint" and inner.get("name") == "required":
            found["required"] = "yes"
        elif name == "value":
            choices.append(inner.get("id") or "")
    if choices:
        found["choices"] = ", ".join(choices)
    return found


def _read_step(node: etree._Element, roles: dict[str, str], refs: dict[str, str]) -> _Step:
    step_id = node.get("id") or ""
    kind = _local(node)
    step = _Step(step_id, _text(node.get("name")))
    aspects = step.aspects
    aspects["kind"] = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).lower()
    if step_id in roles:
        aspects["role"] = roles[step_id]
    plain = {
        "called process": node.get("calledElement"),
        "default flow": node.get("default"),
        "attached to": node.get("attachedToRef"),
        "message": refs.get(node.get("messageRef") or "", node.get("messageRef")),
    }
    for name, value in node.attrib.items():
        if etree.QName(name).localname == "decisionRef":  # camunda:decisionRef
            plain["decision"] = value
    aspects.update({k: _text(v) for k, v in plain.items() if v})
    for inner in _own(node):
        name = _local(inner)
        if name == "serviceTaskOperator":
            aspects["operator"] = _text(inner.get("id"))
        elif name == "parameter" and inner.get("id"):
            step.parameters[inner.get("id", "")] = _text(inner.get("value"))
        elif name == "property" and inner.get("name"):
            step.properties[inner.get("name", "")] = _text(inner.get("value"))
        elif name == "calledDecisionId":
            aspects["decision"] = _text(inner.text)
        elif name in _TIMERS:
            aspects["timer"] = _TIMERS[name].format(_unquoted(_text(inner.text)))
        elif name in _SCRIPTS:
            aspects[_SCRIPTS[name]] = _script(inner.text)
        elif name in _REFERENCES:
            what, attribute = _REFERENCES[name]
            ref = inner.get(attribute) or ""
            aspects[what] = refs.get(ref, ref) or "(any)"
        elif name == "formField" and inner.get("id"):
            step.form[inner.get("id", "")] = _form_field(inner)
    return step


def _read_process(process: etree._Element, refs: dict[str, str]) -> _Process:
    roles: dict[str, str] = {}
    for lane in process.iter(f"{{{BPMN}}}lane"):  # a nested lane comes after its parent
        role = _text(lane.get("name")) or lane.get("id") or ""
        for ref in lane.findall(f"{{{BPMN}}}flowNodeRef"):
            roles[_text(ref.text)] = role
    steps: dict[str, _Step] = {}
    flows: dict[str, _Flow] = {}
    for node in process.iterdescendants():
        name = _local(node)
        if name in FLOW_NODES and node.get("id"):
            steps[node.get("id", "")] = _read_step(node, roles, refs)
        elif name == "sequenceFlow" and node.get("id"):
            condition = node.find(f"{{{BPMN}}}conditionExpression")
            flows[node.get("id", "")] = _Flow(
                node.get("id", ""),
                _text(node.get("name")),
                node.get("sourceRef") or "",
                node.get("targetRef") or "",
                _text(condition.text) if condition is not None else "",
            )
    called = (s.aspects.get("called process") for s in steps.values())
    used = (s.aspects.get("decision") for s in steps.values())
    return _Process(
        process.get("id") or "",
        _text(process.get("name")),
        steps,
        flows,
        [c for c in called if c],
        [d for d in used if d],
    )


def _references(root: etree._Element) -> dict[str, str]:
    """Message, escalation and error ids -> what a reader knows them by."""
    refs: dict[str, str] = {}
    for node in root:
        name = _local(node)
        ref = node.get("id")
        if ref and name in ("message", "escalation", "error"):
            said = node.get("escalationCode") or node.get("errorCode") or node.get("name")
            refs[ref] = _text(said) or ref
    return refs


def _short(label: str) -> str:
    """A column's label without its explanation: "Amount (price of ...)" -> "Amount"."""
    return label.split(" (", 1)[0].strip() or label


def _read_table(decision: etree._Element, namespace: str) -> _Table | None:
    table = decision.find(f"{{{namespace}}}decisionTable")
    if table is None:
        return None

    def q(name: str) -> str:
        return f"{{{namespace}}}{name}"

    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    labels: dict[str, str] = {}
    for n, column in enumerate(table.findall(q("input")), 1):
        key = column.get("id") or f"input {n}"
        expression = _text(column.findtext(f"{q('inputExpression')}/{q('text')}"))
        label = _text(column.get("label"))
        inputs[key] = f"{label} ({expression})" if label and expression else label or expression
        labels[key] = _short(label) or expression or key
    for n, column in enumerate(table.findall(q("output")), 1):
        key = column.get("id") or f"output {n}"
        name, label = _text(column.get("name")), _text(column.get("label"))
        outputs[key] = f"{label} ({name})" if label and name else label or name
        labels[key] = _short(label) or name or key
    seen = Counter(labels.values())  # two columns with one label: tell them apart
    labels = {k: (f"{v} [{k}]" if seen[v] > 1 else v) for k, v in labels.items()}
    rows: dict[str, _Row] = {}
    for number, rule in enumerate(table.findall(q("rule")), 1):
        cells: dict[str, str] = {}
        for key, entry in zip(inputs, rule.findall(q("inputEntry")), strict=False):
            cells[key] = _text(entry.findtext(q("text"))) or "-"
        for key, entry in zip(outputs, rule.findall(q("outputEntry")), strict=False):
            cells[key] = _text(entry.findtext(q("text")))
        row_id = rule.get("id") or f"#{number}"
        rows[row_id] = _Row(row_id, number, cells)
    policy = table.get("hitPolicy") or "UNIQUE"
    if table.get("aggregation"):
        policy += " " + (table.get("aggregation") or "")
    return _Table(
        decision.get("id") or "",
        _text(decision.get("name")),
        policy,
        inputs,
        outputs,
        labels,
        rows,
    )


def read(files: Mapping[str, bytes]) -> _Model:
    """Every process and decision table in the files (name -> content)."""
    model = _Model()
    for name, content in files.items():
        root = parse_document(content, name)
        namespace = etree.QName(root).namespace or ""
        if namespace == BPMN:
            refs = _references(root)
            for process in root.iter(f"{{{BPMN}}}process"):
                model.processes[process.get("id") or ""] = _read_process(process, refs)
        elif "DMN" in namespace.upper():
            for decision in root.iter(f"{{{namespace}}}decision"):
                table = _read_table(decision, namespace)
                if table is not None:
                    model.tables[table.id] = table
    return model


# -- comparing ---------------------------------------------------------------------------


def compare(
    process_id: str, before_files: Mapping[str, bytes], after_files: Mapping[str, bytes]
) -> list[Change]:
    """What changed in `process_id`, the processes it calls and the decisions it uses,
    from the files before (name -> content) to the files after."""
    before, after = read(before_files), read(after_files)
    for model, side in ((before, "before"), (after, "after")):
        if process_id not in model.processes:
            raise InputError(
                f"process '{process_id}' is in none of the files compared ({side})",
                "Name the folder or the files that define it (a file's name is its process "
                "id), or compare two deployed versions with --from V --to V.",
            )
    old_processes, old_decisions = before.reach(process_id)
    new_processes, new_decisions = after.reach(process_id)
    changes: list[Change] = []
    for pid, old, new in _pairs(old_processes, before.processes, new_processes, after.processes):
        changes.extend(_process_changes(old, new, "" if pid == process_id else f"process {pid}, "))
    for did, old_table, new_table in _pairs(
        old_decisions, before.tables, new_decisions, after.tables
    ):
        changes.extend(_table_changes(did, old_table, new_table))
    return changes


def _pairs(
    old_ids: Sequence[str],
    old: Mapping[str, T],
    new_ids: Sequence[str],
    new: Mapping[str, T],
) -> Iterator[tuple[str, T | None, T | None]]:
    """Each id used on either side with what it is on each side (None: not used there).
    One used on a side but in none of its files is passed over: it cannot be compared,
    and `validate` tells that it is missing."""
    for key in _union(new_ids, old_ids):
        if (key in old_ids and key not in old) or (key in new_ids and key not in new):
            continue
        yield (
            key,
            old.get(key) if key in old_ids else None,
            new.get(key) if key in new_ids else None,
        )


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return [*first, *(k for k in second if k not in first)]


def _sides(old: Mapping[str, T], new: Mapping[str, T]) -> Iterator[tuple[str, T | None, T | None]]:
    """Each key of either side (the new side's order first) with its value on each."""
    for key in _union(list(new), list(old)):
        yield key, old.get(key), new.get(key)


def _quote(value: str) -> str:
    """An expression as a line quotes it: `"CNY"` stays as written, `>= 1000` becomes
    `">= 1000"`, and one with quotes inside goes between backquotes."""
    if _unquoted(value) != value and value[0] == '"':
        return value
    if '"' not in value:
        return f'"{value}"'
    return f"`{value}`"


def _show(what: str, value: str | None) -> str:
    if value is None or value == "":
        return NONE
    if what in _QUOTED:
        return _quote("; ".join(line.strip() for line in value.splitlines()))
    return value


def _named(process: _Process | None, step_id: str) -> str:
    step = process.steps.get(step_id) if process is not None else None
    return f"'{step.name}'" if step is not None and step.name else f"[{step_id}]"


def _step_label(step: _Step) -> str:
    return f"step '{step.name}' [{step.id}]" if step.name else f"step [{step.id}]"


def _describe(step: _Step) -> str:
    role = f" ({step.aspects['role']})" if "role" in step.aspects else ""
    kind = [step.aspects["kind"]]
    kind += [f"{_ASPECTS[a]} {step.aspects[a]}" for a in _SUMMARY if a in step.aspects]
    return f"{_step_label(step)}{role}: {', '.join(kind)}"


def _process_changes(old: _Process | None, new: _Process | None, prefix: str) -> list[Change]:
    if old is None or new is None:
        process = new or old
        assert process is not None
        change = ADDED if new is not None else REMOVED
        label = f"process '{process.name}' [{process.id}]" if process.name else process.id
        state = "now called" if new is not None else "no longer called"
        return [Change("process", change, process.id, process.id, f"{label} ({state})")]
    where = new.id
    changes: list[Change] = []
    if old.name != new.name:
        text = f"{prefix}process renamed '{old.name}' → '{new.name}'"
        changes.append(Change("name", CHANGED, where, where, text, old.name, new.name))
    for step_id, before, after in _sides(old.steps, new.steps):
        if before is None or after is None:
            step = after or before
            assert step is not None
            change = ADDED if after is not None else REMOVED
            text = prefix + _describe(step)
            changes.append(_with_sides(Change("step", change, step_id, where, text), step.name))
            continue
        changes.extend(_step_changes(before, after, new, where, prefix))
    for flow_id in _union(list(new.flows), list(old.flows)):
        changes.extend(_flow_changes(old, new, flow_id, prefix))
    return changes


def _with_sides(change: Change, value: str) -> Change:
    """A change with the value on the side where the thing exists."""
    if change.change == ADDED:
        return Change(change.what, ADDED, change.id, change.where, change.text, None, value)
    return Change(change.what, REMOVED, change.id, change.where, change.text, value, None)


def _three_way(
    what: str, element: str, where: str, text: str, before: Value, after: Value
) -> Change:
    """A change that is added when there was nothing before, removed when nothing after."""
    change = ADDED if not before else REMOVED if not after else CHANGED
    return Change(what, change, element, where, text, before or None, after or None)


def _step_changes(
    old: _Step, new: _Step, process: _Process, where: str, prefix: str
) -> list[Change]:
    changes: list[Change] = []
    label = prefix + _step_label(new)
    if old.name != new.name:
        text = f"{prefix}step [{new.id}]: renamed '{old.name}' → '{new.name}'"
        changes.append(Change("name", CHANGED, new.id, where, text, old.name, new.name))
    for aspect, said in _ASPECTS.items():
        before, after = old.aspects.get(aspect, ""), new.aspects.get(aspect, "")
        if before == after:
            continue
        subject, element, what = label, new.id, aspect
        attached = new.aspects.get("attached to")
        if aspect == "timer" and attached and attached in process.steps:
            # A timer on a task's boundary is that task's deadline.
            subject = prefix + _step_label(process.steps[attached])
            element, what, said = attached, "deadline", "deadline"
        if before and after:
            text = f"{subject}: {said} {_show(aspect, before)} → {_show(aspect, after)}"
        else:
            text = f"{subject}: {said} {_show(aspect, before or after)}"
        changes.append(_three_way(what, element, where, text, before, after))
    for what, old_values, new_values in (
        ("parameter", old.parameters, new.parameters),
        ("property", old.properties, new.properties),
    ):
        for key, was, now in _sides(old_values, new_values):
            if was != now:
                shown = " → ".join(_quote(v) for v in (was, now) if v is not None)
                text = f"{label}: {what} {key} {shown}"
                changes.append(_three_way(what, new.id, where, text, was, now))
    for key, was_field, now_field in _sides(old.form, new.form):
        changes.extend(_field_changes(key, was_field, now_field, new, where, label))
    return changes


def _field_changes(
    key: str,
    before: dict[str, str] | None,
    after: dict[str, str] | None,
    step: _Step,
    where: str,
    label: str,
) -> list[Change]:
    if before == after:
        return []
    field_label = f"form field '{(after or before or {}).get('label') or key}' [{key}]"
    if before is None or after is None:
        value = after or before or {}
        kind = value.get("type", "")
        extra = ", required" if value.get("required") == "yes" else ""
        text = f"{label}: {field_label} ({kind}{extra})"
        change = ADDED if before is None else REMOVED
        return [Change("form field", change, step.id, where, text, before, after)]
    parts = [
        f"{name} {before.get(name) or NONE} → {after.get(name) or NONE}"
        for name in _union(list(after), list(before))
        if before.get(name) != after.get(name)
    ]
    text = f"{label}: {field_label}: {'; '.join(parts)}"
    return [Change("form field", CHANGED, step.id, where, text, before, after)]


def _flow_label(flow: _Flow) -> str:
    return f"flow '{flow.name}' [{flow.id}]" if flow.name else f"flow [{flow.id}]"


def _flow_changes(old: _Process, new: _Process, flow_id: str, prefix: str) -> list[Change]:
    before, after = old.flows.get(flow_id), new.flows.get(flow_id)
    where = new.id
    if before is None or after is None:
        flow = after or before
        assert flow is not None
        process = new if after is not None else old
        ends = f"{_named(process, flow.source)} → {_named(process, flow.target)}"
        when = f" if {_quote(flow.condition)}" if flow.condition else ""
        text = f"{prefix}{_flow_label(flow)}: {ends}{when}"
        value = f"{flow.source} → {flow.target}"
        change = Change("flow", ADDED if after is not None else REMOVED, flow_id, where, text)
        return [_with_sides(change, value)]
    changes: list[Change] = []
    label = prefix + _flow_label(after)
    if (before.source, before.target) != (after.source, after.target):
        was = f"{_named(old, before.source)} → {_named(old, before.target)}"
        now = f"{_named(new, after.source)} → {_named(new, after.target)}"
        text = f"{label}: now {now}, was {was}"
        sides = (f"{before.source} → {before.target}", f"{after.source} → {after.target}")
        changes.append(Change("flow", CHANGED, flow_id, where, text, *sides))
    if before.name != after.name:
        text = f"{prefix}flow [{flow_id}]: label '{before.name}' → '{after.name}'"
        changes.append(Change("flow name", CHANGED, flow_id, where, text, before.name, after.name))
    if before.condition != after.condition:
        label += f" from {_named(new, after.source)}"
        if before.condition and after.condition:
            said = f"{_quote(before.condition)} → {_quote(after.condition)}"
        else:
            said = _quote(before.condition or after.condition)
        text = f"{label}: condition {said}"
        sides = (before.condition, after.condition)
        changes.append(_three_way("condition", flow_id, where, text, *sides))
    return changes


# -- decision tables ---------------------------------------------------------------------


def _cells(table: _Table, row: _Row) -> dict[str, str]:
    return {table.labels[k]: v for k, v in row.cells.items()}


def _row_text(table: _Table, row: _Row) -> str:
    when = ", ".join(
        f"{table.labels[k]} {_quote(v)}" for k, v in row.cells.items() if k in table.inputs
    )
    then = ", ".join(
        f"{table.labels[k]} {_quote(v)}" for k, v in row.cells.items() if k in table.outputs
    )
    return f"when {when or 'always'} then {then or NONE}"


def _table_changes(did: str, old: _Table | None, new: _Table | None) -> list[Change]:
    if old is None or new is None:
        table = new or old
        assert table is not None
        change = ADDED if new is not None else REMOVED
        label = f"decision '{table.name}' [{did}]" if table.name else f"decision {did}"
        text = f"{label} ({len(table.rows)} rows)"
        return [_with_sides(Change("decision", change, did, did, text), table.name)]
    changes: list[Change] = []
    head = f"decision {did}"
    if old.name != new.name:
        text = f"{head}: renamed '{old.name}' → '{new.name}'"
        changes.append(Change("name", CHANGED, did, did, text, old.name, new.name))
    if old.hit_policy != new.hit_policy:
        text = f"{head}: hit policy {old.hit_policy} → {new.hit_policy}"
        changes.append(
            Change("hit policy", CHANGED, did, did, text, old.hit_policy, new.hit_policy)
        )
    for what, before_columns, after_columns in (
        ("decision input", old.inputs, new.inputs),
        ("decision output", old.outputs, new.outputs),
    ):
        noun = what.split()[1]
        for key, before, after in _sides(before_columns, after_columns):
            if before == after:
                continue
            if before is not None and after is not None:
                text = f"{head}: {noun} [{key}] '{before}' → '{after}'"
            else:
                text = f"{head}: {noun} '{after or before}' [{key}]"
            change = ADDED if before is None else REMOVED if after is None else CHANGED
            changes.append(Change(what, change, key, did, text, before, after))
    changes.extend(_row_changes(did, old, new))
    return changes


def _row_changes(did: str, old: _Table, new: _Table) -> list[Change]:
    changes: list[Change] = []
    common_old = [r for r in old.rows if r in new.rows]
    common_new = [r for r in new.rows if r in old.rows]
    moved: set[str] = set()
    matcher = difflib.SequenceMatcher(a=common_old, b=common_new, autojunk=False)
    for tag, first, last, _, _ in matcher.get_opcodes():
        if tag != "equal":  # rows whose order among the others changed
            moved.update(common_old[first:last])
    for row_id, before, after in _sides(old.rows, new.rows):
        if before is None or after is None:
            row = after or before
            assert row is not None
            table = new if after is not None else old
            text = f"decision {did}, row {row_id} (#{row.number}): {_row_text(table, row)}"
            change = ADDED if after is not None else REMOVED
            cells = _cells(table, row)
            sides = (None, cells) if after is not None else (cells, None)
            changes.append(Change("decision row", change, row_id, did, text, *sides))
            continue
        labels = {**old.labels, **new.labels}
        differ = [
            k
            for k in _union(list(after.cells), list(before.cells))
            if before.cells.get(k, "-") != after.cells.get(k, "-")
        ]
        head = f"decision {did}, row {row_id} (#{after.number})"
        if differ:
            parts = [
                f"{labels[k]} {_quote(before.cells.get(k, '-'))} → "
                f"{_quote(after.cells.get(k, '-'))}"
                for k in differ
            ]
            text = f"{head}: {'; '.join(parts)}"
            sides_before = {labels[k]: before.cells.get(k, "-") for k in differ}
            sides_after = {labels[k]: after.cells.get(k, "-") for k in differ}
            changes.append(
                Change("decision row", CHANGED, row_id, did, text, sides_before, sides_after)
            )
        if row_id in moved:
            text = f"{head}: moved from #{before.number} to #{after.number}"
            position = (f"#{before.number}", f"#{after.number}")
            changes.append(Change("row order", CHANGED, row_id, did, text, *position))
    return changes
