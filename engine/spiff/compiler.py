"""Turn BPMN and DMN files into specs, and describe them for validation and projections.

Everything that reads diagram XML goes through here: the hardened XML parse, the BPMN
and DMN schema checks, SpiffWorkflow's parser, and the walk over the resulting specs
that lists every element (with its lane and operator) and every expression.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    EscalationEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins import (
    CallActivityMixin,
    ManualTaskMixin,
    ScriptTaskMixin,
    SubWorkflowTaskMixin,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent, ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask, MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.dmn.specs import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine import checks
from engine.canonical import canonical_json, sha256_hex
from engine.errors import Problem, ProcessValidationError
from engine.forms import TYPES, Choice, Form, FormField
from engine.spiff.serialization import SpecBundle, dump_specs
from engine.spiff.specs import ExternalServiceTask, Parser
from engine.xmlsafe import parse_document

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


@dataclass(frozen=True)
class SourceFile:
    """One diagram file as deployed: its name (no directories) and its bytes."""

    name: str
    content: bytes

    @classmethod
    def named(cls, path: str, content: bytes) -> SourceFile:
        return cls(PurePath(path).name, content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def text(self) -> str:
        """The file as text, decoded the way an XML parser would: byte-order mark first,
        then the encoding its XML declaration names, else UTF-8."""
        content = self.content
        for bom, codec in (
            (codecs.BOM_UTF32_LE, "utf-32"),
            (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"),
        ):
            if content.startswith(bom):
                return content.decode(codec)
        declared = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']", content)
        codec = declared.group(1).decode("ascii") if declared else "utf-8"
        try:
            return content.decode(codec)
        except (LookupError, UnicodeDecodeError) as exc:
            raise ProcessValidationError(
                [Problem(f"cannot be read as {codec}: {exc}", self.name)]
            ) from exc


@dataclass(frozen=True)
class Element:
    """A flow node of a process, as the engine needs to know it."""

    bpmn_id: str
    name: str
    kind: str
    lane: str | None
    operator: str | None = None
    process_id: str = ""
    #: The escalation code an escalation event throws (a role, by convention).
    escalation: str | None = None
    #: The form a user task declares (None: the task takes any data).
    form: Form | None = None
    #: A service task's `attempts` property as written (None: the settings decide).
    attempts: str | None = None


@dataclass(frozen=True)
class Expression:
    """A piece of diagram text the evaluator will run, and where it is written."""

    element: str
    kind: str
    source: str
    mode: str = "eval"
    file: str | None = None


@dataclass
class CompiledProcess:
    process_id: str
    name: str
    file: str
    bundle: SpecBundle
    spec_json: str
    content_hash: str
    files: list[str]
    elements: list[Element]
    expressions: list[Expression]
    lanes: list[str]
    called_processes: list[str]


@dataclass
class Compilation:
    processes: dict[str, CompiledProcess] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The XML of every document handed to SpiffWorkflow, by file name, for the checks
    #: that read the diagram itself (engine/checks.py).
    documents: dict[str, etree._Element] = field(default_factory=dict)

    def locate(self, file: str | None, element: str | None) -> int | None:
        if file is None or element is None:
            return None
        return self.lines.get((file, element))

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ProcessValidationError(self.problems)


def _kind_of(root: etree._Element) -> str | None:
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "definitions":
        return None
    if namespace == BPMN_NS:
        return "bpmn"
    if "DMN" in namespace.upper():
        return "dmn"
    return None


_LXML_REPR = re.compile(r"<Element \{[^}]*\}(\w+) at 0x[0-9a-f]+>")


def _one_line(message: str) -> str:
    """A library's message as one line, with lxml's element reprs as element names."""
    return " ".join(_LXML_REPR.sub(r"\1", message).split())


def _problem_from(exc: Exception, compilation: Compilation, file: str | None) -> Problem:
    if isinstance(exc, ValidationException):
        element = getattr(exc, "id", "") or None
        name = exc.file_name or file
        name = PurePath(name).name if name else None
        line = exc.line_number if isinstance(exc.line_number, int) else None
        message = _one_line(str(exc.args[0]) if exc.args else str(exc))
        return Problem(message, name, element, line or compilation.locate(name, element))
    if isinstance(exc, SpiffWorkflowException):
        task_spec = getattr(exc, "task_spec", None)
        element = getattr(task_spec, "bpmn_id", None) if task_spec is not None else None
        return Problem(_one_line(str(exc)), file, element, compilation.locate(file, element))
    return Problem(_one_line(f"{type(exc).__name__}: {exc}"), file)


def _spiff_properties(root: etree._Element) -> None:
    """Read a task's `camunda:properties` (as Camunda Modeler writes them) as its
    `spiffworkflow:properties`, where it has none of the latter."""
    for extensions in root.iter(f"{{{BPMN_NS}}}extensionElements"):
        camunda = extensions.find(f"{{{CAMUNDA_NS}}}properties")
        if camunda is None or extensions.find(f"{{{SPIFF_NS}}}properties") is not None:
            continue
        spiff = etree.SubElement(extensions, f"{{{SPIFF_NS}}}properties")
        for prop in camunda.iter(f"{{{CAMUNDA_NS}}}property"):
            etree.SubElement(
                spiff,
                f"{{{SPIFF_NS}}}property",
                name=prop.get("name") or "",
                value=prop.get("value") or "",
            )


_EL_EXPRESSION = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)


def _plain_conditions(root: etree._Element) -> None:
    """Accept conditions a modeler wrote as `${expression}`: the expression is the text
    inside (and is then compiled like any other condition)."""
    for node in root.iter(f"{{{BPMN_NS}}}conditionExpression"):
        found = _EL_EXPRESSION.match(node.text or "")
        if found and len(node) == 0:
            node.text = found.group(1).strip()


def compile_sources(files: list[SourceFile]) -> Compilation:
    """Parse every file and build a spec for every executable process in them."""
    compilation = Compilation()
    parser = Parser()
    origin: dict[str, str] = {}
    forms: dict[tuple[str, str], Form] = {}
    form_problems: list[Problem] = []
    for source in files:
        try:
            root = parse_document(source.content, source.name)
        except ProcessValidationError as exc:
            compilation.problems.extend(exc.problems)
            continue
        for node in root.iter():
            element_id = node.get("id") if isinstance(node.tag, str) else None
            if element_id:
                compilation.lines.setdefault((source.name, element_id), node.sourceline or 0)
        kind = _kind_of(root)
        if kind is None:
            compilation.problems.append(
                Problem("not a BPMN or DMN document (root must be <definitions>)", source.name)
            )
            continue
        if kind == "bpmn":
            _plain_conditions(root)
            _spiff_properties(root)
            blocking = checks.blocking(root, source.name)
            if blocking:
                compilation.problems.extend(blocking)
                continue
        if (
            kind == "dmn"
            and next(root.iterchildren(f"{{{etree.QName(root).namespace}}}decision"), None) is None
        ):
            compilation.problems.append(
                Problem(
                    "a DMN document without a <decision>: nothing a business rule task could call",
                    source.name,
                    line=root.sourceline,
                )
            )
            continue
        compilation.documents[source.name] = root
        try:
            if kind == "dmn":
                parser.add_dmn_xml(root, filename=source.name)
            else:
                parser.add_bpmn_xml(root, filename=source.name)
        except Exception as exc:  # the library raises many types for bad input
            compilation.problems.append(_problem_from(exc, compilation, source.name))
            continue
        if kind == "bpmn":
            for process in root.iter(f"{{{BPMN_NS}}}process"):
                origin[process.get("id", "")] = source.name
            form_problems.extend(_read_forms(root, source.name, forms))

    if compilation.problems:
        compilation.problems.extend(form_problems)
        return compilation

    by_name = {f.name: f for f in files}
    for process_id in sorted(parser.get_process_ids()):
        file = origin.get(process_id, "")
        try:
            spec = parser.get_spec(process_id)
            subprocess_specs = parser.get_subprocess_specs(process_id)
        except Exception as exc:
            compilation.problems.append(_problem_from(exc, compilation, file))
            continue
        missing = [name for name, sub in subprocess_specs.items() if sub is None]
        if missing:
            compilation.problems.append(
                Problem(f"calls process '{missing[0]}', which is in none of the files", file)
            )
            continue
        specs = [spec, *subprocess_specs.values()]
        for each in specs:
            _quote_iso_timers(each)
        bundle = SpecBundle(spec, subprocess_specs)
        spec_json = dump_specs(bundle)
        used_files = sorted({s.file for s in specs if s.file} | _dmn_files(parser, specs))
        elements, expressions = _describe(specs, _decision_files(parser), forms)
        compilation.processes[process_id] = CompiledProcess(
            process_id=process_id,
            name=spec.description or process_id,
            file=file,
            bundle=bundle,
            spec_json=spec_json,
            content_hash=_content_hash(spec_json, elements),
            files=[by_name[f].name for f in used_files if f in by_name],
            elements=elements,
            expressions=expressions,
            lanes=sorted({e.lane for e in elements if e.lane}),
            called_processes=sorted(subprocess_specs),
        )
    compilation.problems.extend(form_problems)
    return compilation


def _content_hash(spec_json: str, elements: list[Element]) -> str:
    """What makes a version: the spec, and the forms (which the spec does not hold)."""
    forms = [[e.process_id, e.bpmn_id, e.form.as_data()] for e in elements if e.form is not None]
    return sha256_hex(spec_json + canonical_json(forms) if forms else spec_json)


def _read_forms(
    root: etree._Element, file: str, forms: dict[tuple[str, str], Form]
) -> list[Problem]:
    """Read the form of every user task in a BPMN document into `forms`, keyed by
    (file, task id); return what is wrong with them."""
    problems: list[Problem] = []
    for form_data in root.iter(f"{{{CAMUNDA_NS}}}formData"):
        owner = form_data.getparent()
        task = owner.getparent() if owner is not None else None
        task_id = task.get("id") if task is not None else None
        line = form_data.sourceline
        if (
            task is None
            or task_id is None
            or owner is None
            or etree.QName(owner).localname != "extensionElements"
            or etree.QName(task).localname != "userTask"
        ):
            problems.append(
                Problem(
                    "a form (camunda:formData) is only read on a user task", file, task_id, line
                )
            )
            continue
        if (file, task_id) in forms:
            problems.append(Problem("the user task has two forms", file, task_id, line))
            continue
        fields, found = _read_fields(form_data, file, task_id)
        problems.extend(found)
        forms[(file, task_id)] = Form(tuple(fields))
    return problems


def _read_fields(
    form_data: etree._Element, file: str, task_id: str
) -> tuple[list[FormField], list[Problem]]:
    fields: list[FormField] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for node in form_data:
        if not isinstance(node.tag, str):
            continue
        line = node.sourceline

        def problem(message: str, line: int | None = line) -> None:
            problems.append(Problem(message, file, task_id, line))

        if etree.QName(node).namespace != CAMUNDA_NS or etree.QName(node).localname != "formField":
            problem(f"a form holds only camunda:formField, not {etree.QName(node).localname}")
            continue
        field_id = (node.get("id") or "").strip()
        name = f"form field '{field_id}'"
        if not field_id.isidentifier() or field_id.startswith("_"):
            problem(
                f"{name}: a field id must be a name (letters, digits, underscores) not "
                "starting with '_'"
            )
            continue
        if field_id in seen:
            problem(f"{name} is declared twice")
            continue
        seen.add(field_id)
        field_type = (node.get("type") or "").strip()
        if field_type not in TYPES:
            given = f"the type '{field_type}'" if field_type else "no type"
            problem(f"{name} has {given}; a form field is one of {', '.join(TYPES)}")
            continue
        if node.get("defaultValue") is not None:
            problem(f"{name}: defaultValue is not supported; say what to write in documentation")
        required = False
        documentation: str | None = None
        choices: list[Choice] = []
        for child in node:
            if not isinstance(child.tag, str):
                continue
            local = etree.QName(child).localname
            if local == "validation":
                for constraint in child:
                    if not isinstance(constraint.tag, str):
                        continue
                    if constraint.get("name") == "required":
                        required = True
                    else:
                        problem(
                            f"{name}: the constraint '{constraint.get('name')}' is not checked; "
                            "forms check only 'required'",
                            constraint.sourceline,
                        )
            elif local == "value":
                choice = (child.get("id") or "").strip()
                if not choice:
                    problem(f"{name} has a choice without an id", child.sourceline)
                elif choice in {c.id for c in choices}:
                    problem(f"{name} has the choice '{choice}' twice", child.sourceline)
                else:
                    choices.append(Choice(choice, child.get("name") or choice))
            elif local == "properties":
                for prop in child:
                    if isinstance(prop.tag, str) and prop.get("id") == "documentation":
                        documentation = prop.get("value") or None
        if field_type == "enum" and not choices:
            problem(f"{name} is an enum without choices (camunda:value)")
        elif field_type != "enum" and choices:
            problem(f"{name} has choices but is of type {field_type}; choices are for enum")
        fields.append(
            FormField(
                id=field_id,
                label=(node.get("label") or "").strip() or field_id,
                type=field_type,
                required=required,
                choices=tuple(choices),
                documentation=documentation,
            )
        )
    return fields, problems


def _dmn_files(parser: Parser, specs: list[Any]) -> set[str]:
    decisions = {
        getattr(ts.dmnEngine.decision_table, "id", None)
        for spec in specs
        for ts in spec.task_specs.values()
        if isinstance(ts, BusinessRuleTaskMixin)
    }
    found: set[str] = set()
    for dmn in parser.dmn_parsers.values():
        tables = {t.id for d in [dmn.decision] if d is not None for t in d.decisionTables}
        if tables & decisions and dmn.filename:
            found.add(dmn.filename)
    return found


def _timer_definitions(task_spec: Any) -> list[Any]:
    definition = getattr(task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return [d for d in definition.event_definitions if isinstance(d, TimerEventDefinition)]
    if isinstance(definition, TimerEventDefinition):
        return [definition]
    return []


def _quote_iso_timers(spec: Any) -> None:
    """Accept timers written the modeler way (`P7D`) as well as the quoted Python way."""
    for task_spec in spec.task_specs.values():
        for definition in _timer_definitions(task_spec):
            text = (definition.expression or "").strip()
            if checks.is_iso_timer(text):
                definition.expression = repr(text)


def _kind(task_spec: Any) -> str:
    if isinstance(task_spec, UserTaskMixin):
        return "user"
    if isinstance(task_spec, ManualTaskMixin):
        return "manual"
    if isinstance(task_spec, ExternalServiceTask):
        return "service"
    if isinstance(task_spec, ScriptTaskMixin):
        return "script"
    if isinstance(task_spec, BusinessRuleTaskMixin):
        return "businessRule"
    if isinstance(task_spec, CallActivityMixin):
        return "callActivity"
    if isinstance(task_spec, SubWorkflowTaskMixin):
        return "subProcess"
    if isinstance(task_spec, ExclusiveGateway):
        return "exclusiveGateway"
    if isinstance(task_spec, InclusiveGateway):
        return "inclusiveGateway"
    if isinstance(task_spec, CatchingEvent):
        return "catchEvent"
    if isinstance(task_spec, ThrowingEvent):
        return "throwEvent"
    return type(task_spec).__name__


def _property(task_spec: Any, name: str) -> str | None:
    """A `spiffworkflow:property` of a task, as written."""
    properties = (getattr(task_spec, "extensions", None) or {}).get("properties") or {}
    value = properties.get(name)
    return str(value) if value is not None else None


def _decision_files(parser: Parser) -> dict[str, str]:
    """Decision table id -> the DMN file it came from."""
    files: dict[str, str] = {}
    for dmn in parser.dmn_parsers.values():
        decision = dmn.decision
        if decision is None or not dmn.filename:
            continue
        for table in decision.decisionTables:
            files[table.id] = PurePath(dmn.filename).name
    return files


def _describe(
    specs: list[Any], decision_files: dict[str, str], forms: dict[tuple[str, str], Form]
) -> tuple[list[Element], list[Expression]]:
    elements: list[Element] = []
    expressions: list[Expression] = []
    for spec in specs:
        for task_spec in spec.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            kind = _kind(task_spec)
            operator = task_spec.operation_name if kind == "service" else None
            codes = [
                d.code
                for d in _event_definitions(task_spec)
                if isinstance(d, EscalationEventDefinition) and d.code
            ]
            file = PurePath(spec.file).name if spec.file else None
            form = forms.get((file or "", bpmn_id)) if kind == "user" else None
            if form is not None:
                form = Form(form.fields, getattr(task_spec, "variable", None))
            elements.append(
                Element(
                    bpmn_id=bpmn_id,
                    name=task_spec.bpmn_name or bpmn_id,
                    kind=kind,
                    lane=task_spec.lane,
                    operator=operator,
                    process_id=spec.name,
                    escalation=str(codes[0]) if codes else None,
                    form=form,
                    attempts=_property(task_spec, "attempts") if kind == "service" else None,
                )
            )
            expressions.extend(_expressions_of(task_spec, bpmn_id, file, decision_files))
    return elements, expressions


def _event_definitions(task_spec: Any) -> list[Any]:
    definition = getattr(task_spec, "event_definition", None)
    if definition is None:
        return []
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition]


def _expressions_of(
    task_spec: Any, bpmn_id: str, file: str | None, decision_files: dict[str, str]
) -> list[Expression]:
    found: list[Expression] = []

    def add(
        kind: str,
        source: Any,
        mode: str = "eval",
        element: str | None = None,
        where: str | None = None,
    ) -> None:
        if isinstance(source, str) and source.strip():
            found.append(Expression(element or bpmn_id, kind, source, mode, where or file))

    for condition, _target in getattr(task_spec, "cond_task_specs", []) or []:
        add("condition", condition.args[0] if getattr(condition, "args", None) else None)
    if isinstance(task_spec, ScriptTaskMixin):
        add("script", task_spec.script, "exec")
    add("pre-script", getattr(task_spec, "prescript", None), "exec")
    add("post-script", getattr(task_spec, "postscript", None), "exec")
    for definition in _event_definitions(task_spec):
        if isinstance(definition, TimerEventDefinition):
            add("timer", definition.expression)
        elif isinstance(definition, ConditionalEventDefinition):
            add("event condition", definition.expression)
        else:
            add("event payload", getattr(definition, "expression", None))
        for prop in getattr(definition, "correlation_properties", None) or []:
            add("correlation", prop.retrieval_expression, element=prop.name)
        for prop in getattr(definition, "process_correlations", None) or []:
            add("correlation", getattr(prop, "retrieval_expression", None), element=prop.name)
    if isinstance(task_spec, ExternalServiceTask):
        for name, param in (task_spec.operation_params or {}).items():
            add(f"parameter {name}", param.get("value"))
    if isinstance(task_spec, MultiInstanceTask):
        add("cardinality", task_spec.cardinality)
        add("completion condition", task_spec.condition)
    elif isinstance(task_spec, LoopTask):
        add("loop condition", task_spec.condition)
    if isinstance(task_spec, BusinessRuleTaskMixin):
        table = task_spec.dmnEngine.decision_table
        dmn = decision_files.get(table.id)
        for column in table.inputs:
            add("decision input", column.expression, element=column.id, where=dmn)
        for rule in table.rules:
            for entry in rule.inputEntries:
                for cell in entry.lhs:
                    text = (cell or "").strip()
                    if text and text != "-":
                        add(
                            "decision cell",
                            _dmn_cell_as_expression(text),
                            element=entry.id or rule.id,
                            where=dmn,
                        )
            for output in rule.outputEntries:
                add("decision output", output.text, element=output.id or rule.id, where=dmn)
    return found


def _dmn_cell_as_expression(cell: str) -> str:
    """A DMN input cell as the DMN engine will evaluate it, with the input as `x`."""
    if "?" in cell:
        return cell.replace("?", "x")
    if re.match(r"^\s*(<=|>=|<|>|==|!=|in\b|not\b)", cell):
        return f"x {cell}"
    return f"x == ({cell})"
