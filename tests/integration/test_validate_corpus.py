"""Broken diagrams, generated: each gives the right message and deploys nothing.

Every case starts from the valid Camunda-Modeler-style diagram in
tests/fixtures/modeler (with its roles.toml, which asks every user task for a due time
and a form), breaks one thing with an lxml edit (or a byte edit, for what is not XML),
and checks that `validate` names the problem, the file and the element, and that
`deploy` refuses it and leaves the deployed processes as they were.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from support import FIXTURES

from engine import Engine, ProcessValidationError
from engine.errors import Problem

MODELER = FIXTURES / "modeler"
NAME = "modeler_claim.bpmn"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS}

Edit = Callable[[etree._Element], None]


def one(root: etree._Element, path: str) -> etree._Element:
    [found] = root.xpath(path, namespaces=NS)
    assert isinstance(found, etree._Element)
    return found


def by_id(root: etree._Element, element_id: str) -> etree._Element:
    return one(root, f"//*[@id='{element_id}']")


def remove(root: etree._Element, *ids: str) -> None:
    for element_id in ids:
        node = by_id(root, element_id)
        parent = node.getparent()
        assert parent is not None
        parent.remove(node)


def set_text(path: str, text: str) -> Edit:
    def edit(root: etree._Element) -> None:
        one(root, path).text = text

    return edit


def set_attribute(element_id: str, name: str, value: str | None) -> Edit:
    def edit(root: etree._Element) -> None:
        node = by_id(root, element_id)
        if value is None:
            del node.attrib[name]
        else:
            node.set(name, value)

    return edit


def retag(element_id: str, local: str) -> Edit:
    def edit(root: etree._Element) -> None:
        by_id(root, element_id).tag = f"{{{BPMN_NS}}}{local}"

    return edit


def add_orphan(root: etree._Element) -> None:
    process = one(root, "//bpmn:process")
    etree.SubElement(process, f"{{{BPMN_NS}}}task", id="orphan", name="Nobody gets here")
    etree.SubElement(
        process,
        f"{{{BPMN_NS}}}sequenceFlow",
        id="Flow_orphan",
        sourceRef="orphan",
        targetRef="End_ok",
    )


def add_compensation(root: etree._Element) -> None:
    process = one(root, "//bpmn:process")
    event = etree.SubElement(
        process, f"{{{BPMN_NS}}}boundaryEvent", id="undo_check", attachedToRef="check_claim"
    )
    etree.SubElement(event, f"{{{BPMN_NS}}}compensateEventDefinition", id="Compensate_1")


def remove_form(root: etree._Element) -> None:
    form = one(root, "//bpmn:userTask[@id='senior_review']//camunda:formData")
    parent = form.getparent()
    assert parent is not None
    parent.remove(form)


BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b"]>\n"
)


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    element: str | None
    edit: Edit | None = None
    raw: Callable[[bytes], bytes] | None = None
    #: Whether the problem can point at a line.
    located: bool = True

    def __str__(self) -> str:
        return self.name


CONDITION = "//bpmn:sequenceFlow[@id='Flow_small']/bpmn:conditionExpression"
TIMER = "//bpmn:boundaryEvent[@id='register_due']//bpmn:timeDuration"
CASES = [
    Case(
        "missing operator",
        "names operator 'test.ecoh', which no handler provides (did you mean 'test.echo'?)",
        "check_claim",
        lambda root: one(root, "//spiffworkflow:serviceTaskOperator").set("id", "test.ecoh"),
    ),
    Case(
        "unknown lane",
        "lane 'clark' names a role roles.toml does not declare (did you mean 'clerk'?)",
        None,
        set_attribute("Lane_clerk", "name", "clark"),
    ),
    Case(
        "gateway without default",
        "sequence flow 'Flow_ok' out of gateway 'Gateway_size' (How large?) has no condition "
        "and is not the gateway's default",
        "Flow_ok",
        set_attribute("Gateway_size", "default", None),
    ),
    Case(
        "gateway with a default that is not its flow",
        "names 'Flow_0a1' as its default, which is not one of its outgoing flows",
        "Gateway_size",
        set_attribute("Gateway_size", "default", "Flow_0a1"),
    ),
    Case(
        "condition syntax error",
        "condition 'amount <=':",
        "Gateway_size",
        set_text(CONDITION, "amount <="),
    ),
    Case(
        "condition with __import__",
        '"__import__" is an invalid variable name',
        "Gateway_size",
        set_text(CONDITION, "__import__('os').system('true')"),
    ),
    Case(
        "timer not ISO",
        "timer 'P7X' of 'register_due' (Due in 7 days) is not valid ISO 8601",
        "register_due",
        set_text(TIMER, "P7X"),
    ),
    Case(
        "timer a quoted word",
        "timer \"'tomorrow'\" of 'register_due' (Due in 7 days) is not valid ISO 8601",
        "register_due",
        set_text(TIMER, "'tomorrow'"),
    ),
    Case(
        "timer a word",
        "is neither ISO 8601 nor a value any step of the process sets ('tomorrow')",
        "register_due",
        set_text(TIMER, "tomorrow"),
    ),
    Case(
        "timer a bad date",
        "timer '2026-13-01' of 'register_due' (Due in 7 days) is not valid ISO 8601",
        "register_due",
        set_text(TIMER, "2026-13-01"),
    ),
    Case(
        "dangling flow",
        "sequence flow 'Flow_0a4' leads to 'End_nowhere', which is no element of this process",
        "Flow_0a4",
        set_attribute("Flow_0a4", "targetRef", "End_nowhere"),
    ),
    Case(
        "unreachable node",
        "task 'orphan' (Nobody gets here) cannot be reached from a start event",
        "orphan",
        add_orphan,
    ),
    Case(
        "dead end",
        "user task 'senior_review' (Review a large claim) leads nowhere",
        "senior_review",
        lambda root: remove(root, "Flow_0a4"),
    ),
    Case(
        "user task without due time",
        "user task 'senior_review' (Review a large claim) has no due time",
        "senior_review",
        lambda root: remove(root, "senior_due", "Flow_0e2", "End_senior_escalated"),
    ),
    Case(
        "user task without form",
        "user task 'senior_review' (Review a large claim) has no form",
        "senior_review",
        remove_form,
    ),
    Case(
        "complex gateway",
        "complex gateway 'Gateway_size' (How large?) is not supported",
        "Gateway_size",
        retag("Gateway_size", "complexGateway"),
    ),
    Case(
        "transaction",
        "transaction subprocess 'senior_review' (Review a large claim) is not supported",
        "senior_review",
        retag("senior_review", "transaction"),
    ),
    Case(
        "compensation",
        "compensation event 'undo_check' is not supported",
        "undo_check",
        add_compensation,
    ),
    Case(
        "malformed XML",
        "not well-formed XML",
        None,
        raw=lambda data: data.replace(b"</bpmn:process>", b"", 1),
    ),
    Case(
        "entity bomb",
        "document type declarations and entities are not allowed in diagrams",
        None,
        raw=lambda data: BOMB + data.split(b"?>", 1)[1].replace(b'name="clerk"', b'name="&lol9;"'),
    ),
]


def broken(tmp_path: Path, case: Case) -> Path:
    """A copy of the modeler folder with the case's edit made."""
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(MODELER / "roles.toml", folder / "roles.toml")
    data = (MODELER / NAME).read_bytes()
    if case.edit is not None:
        root = etree.fromstring(data)
        case.edit(root)
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if case.raw is not None:
        data = case.raw(data)
    (folder / NAME).write_bytes(data)
    return folder


def matching(problems: list[Problem], case: Case) -> Problem:
    found = [p for p in problems if case.expected in p.message]
    assert found, "\n".join(str(p) for p in problems)
    return found[0]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_broken_diagram_gets_the_right_message_and_deploys_nothing(
    engine: Engine, tmp_path: Path, case: Case
) -> None:
    engine.deploy([MODELER], actor="owner")
    before = engine.processes(all_versions=True)
    folder = broken(tmp_path, case)

    with pytest.raises(ProcessValidationError) as caught:
        engine.validate([folder])
    problem = matching(caught.value.problems, case)
    assert problem.file == NAME
    if case.element is not None:
        assert problem.element == case.element
    if case.located:
        assert problem.line is not None

    with pytest.raises(ProcessValidationError) as refused:
        engine.deploy([folder], actor="owner")
    assert matching(refused.value.problems, case) == problem
    assert engine.processes(all_versions=True) == before


def test_every_problem_is_reported_at_once(engine: Engine, tmp_path: Path) -> None:
    edits = [c.edit for c in CASES if c.name in ("gateway without default", "timer not ISO")]
    combined = Case("both", "", None, lambda root: [e(root) for e in edits if e] and None)
    folder = broken(tmp_path, combined)
    with pytest.raises(ProcessValidationError) as caught:
        engine.validate([folder])
    elements = {p.element for p in caught.value.problems}
    assert {"Flow_ok", "register_due"} <= elements


def test_the_base_diagram_is_valid(engine: Engine) -> None:
    assert [v.process_id for v in engine.validate([MODELER])] == ["modeler_claim"]
