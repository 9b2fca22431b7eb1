"""The checks `validate` makes on a diagram's XML (engine/checks.py), one at a time."""

from __future__ import annotations

import pytest
from lxml import etree

from engine import checks
from engine.roles import parse_roles

HEAD = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">'
    '<bpmn:process id="p" isExecutable="true">'
)
TAIL = "</bpmn:process></bpmn:definitions>"


def messages(
    body: str, needs: frozenset[str] = frozenset(), names: set[str] | None = None
) -> list[str]:
    root = etree.fromstring(HEAD + body + TAIL)
    found = checks.blocking(root, "x.bpmn") + checks.check_document(root, "x.bpmn", needs, names)
    return [f"{p.element}: {p.message}" for p in found]


def flow(flow_id: str, source: str, target: str, condition: str | None = None) -> str:
    inner = f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression>" if condition else ""
    ends = f'sourceRef="{source}" targetRef="{target}"'
    return f'<bpmn:sequenceFlow id="{flow_id}" {ends}>{inner}</bpmn:sequenceFlow>'


LINE = (
    '<bpmn:startEvent id="s"/><bpmn:task id="t"/><bpmn:endEvent id="e"/>'
    + flow("f1", "s", "t")
    + flow("f2", "t", "e")
)


def test_a_straight_line_is_fine() -> None:
    assert messages(LINE) == []


@pytest.mark.parametrize("kind", ["exclusiveGateway", "inclusiveGateway"])
def test_a_gateway_flow_needs_a_condition_or_to_be_the_default(kind: str) -> None:
    body = (
        f'<bpmn:startEvent id="s"/><bpmn:{kind} id="g" default="f3"/>'
        '<bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/><bpmn:endEvent id="e3"/>'
        + flow("f1", "s", "g")
        + flow("f2", "g", "e1", "x &gt; 1")
        + flow("f3", "g", "e2")
        + flow("f4", "g", "e3")
    )
    assert messages(body) == [
        "f4: sequence flow 'f4' out of gateway 'g' has no condition and is not the "
        "gateway's default"
    ]
    # One way out needs neither.
    single = '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g"/><bpmn:endEvent id="e"/>'
    assert messages(single + flow("f1", "s", "g") + flow("f2", "g", "e")) == []


def test_a_boundary_event_s_path_and_an_event_subprocess_are_reached() -> None:
    body = (
        LINE + '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>P2D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        '<bpmn:endEvent id="late"/>'
        + flow("f3", "b", "late")
        + '<bpmn:subProcess id="on_cancel" triggeredByEvent="true">'
        '<bpmn:startEvent id="cs"><bpmn:messageEventDefinition/></bpmn:startEvent>'
        '<bpmn:task id="ct"/><bpmn:endEvent id="ce"/>'
        + flow("g1", "cs", "ct")
        + flow("g2", "ct", "ce")
        + "</bpmn:subProcess>"
    )
    assert messages(body) == []


def test_unreachable_nodes_and_dead_ends_inside_a_subprocess() -> None:
    body = (
        '<bpmn:startEvent id="s"/><bpmn:subProcess id="sub">'
        '<bpmn:startEvent id="ss"/><bpmn:task id="stuck"/><bpmn:task id="lost"/>'
        '<bpmn:endEvent id="se"/>'
        + flow("g1", "ss", "stuck")
        + flow("g2", "lost", "se")
        + '</bpmn:subProcess><bpmn:endEvent id="e"/>'
        + flow("f1", "s", "sub")
        + flow("f2", "sub", "e")
    )
    assert messages(body) == [
        "stuck: task 'stuck' leads nowhere: give it an outgoing sequence flow or end the path "
        "with an end event",
        "lost: task 'lost' cannot be reached from a start event",
        "se: end event 'se' cannot be reached from a start event",
    ]


def test_a_flow_to_nothing_is_named() -> None:
    assert messages(LINE + flow("f3", "t", "gone")) == [
        "f3: sequence flow 'f3' leads to 'gone', which is no element of this process"
    ]
    assert messages(LINE + '<bpmn:sequenceFlow id="f4" targetRef="e"/>') == [
        "f4: sequence flow 'f4' comes from no element in this process"
    ]


def test_a_non_executable_process_is_not_checked() -> None:
    root = etree.fromstring(
        (HEAD + '<bpmn:task id="alone"/>' + TAIL).replace(
            'isExecutable="true"', 'isExecutable="false"'
        )
    )
    assert checks.check_document(root, "x.bpmn") == []


@pytest.mark.parametrize(
    "text",
    [
        "P7D",
        "PT4H",
        "P1Y2M3W4DT5H6M7.5S",
        "2026-12-01",
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:00+01:00",
        "R3/PT1H",
        "R/P1D",
        "R2/2026-12-01T09:00:00Z/P1D",
        "R2/P1D/2026-12-31T00:00:00Z",
    ],
)
def test_iso_8601_timers(text: str) -> None:
    assert checks.is_iso_timer(text)


@pytest.mark.parametrize(
    "text",
    [
        "P7X",
        "P",
        "PT",
        "7D",
        "2026-13-01",
        "2026-12-01T25:00",
        "R3",
        "R3/tomorrow",
        "R3/2026-12-01",
    ],
)
def test_not_iso_8601_timers(text: str) -> None:
    assert not checks.is_iso_timer(text)


def timer(text: str) -> str:
    return LINE.replace(
        '<bpmn:task id="t"/>',
        '<bpmn:intermediateCatchEvent id="t" name="Wait">'
        f"<bpmn:timerEventDefinition><bpmn:timeDate>{text}</bpmn:timeDate>"
        "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("P7X", "is not valid ISO 8601"),
        ("'P7X'", "is not valid ISO 8601"),
        ("42", "is not valid ISO 8601"),
        ("tomorrow", "is neither ISO 8601 nor a value any step of the process sets"),
        ("P7D", None),
        ("'2026-12-01T09:00:00Z'", None),
        ('refund["escalate_at"]', None),  # an expression: the evaluator checks it
        ("due_at", None),  # a value a step sets
        ("", "has an empty timeDate"),
    ],
)
def test_timers_parse(text: str, problem: str | None) -> None:
    found = messages(timer(text), names={"due_at"})
    if problem is None:
        assert found == []
    else:
        [message] = found
        assert message.startswith("t: ")
        assert problem in message


def test_data_names_come_from_forms_results_and_scripts() -> None:
    root = etree.fromstring(
        HEAD + '<bpmn:userTask id="u"><bpmn:extensionElements><camunda:formData>'
        '<camunda:formField id="due_at" type="string"/></camunda:formData>'
        "</bpmn:extensionElements></bpmn:userTask>"
        '<bpmn:scriptTask id="st"><bpmn:script>x = 1\nif x == 2: pass\n  y=2</bpmn:script>'
        "</bpmn:scriptTask>" + TAIL
    )
    assert checks.data_names(root) == {"due_at", "x", "y"}


def test_user_tasks_need_what_the_roles_file_asks() -> None:
    task = (
        '<bpmn:startEvent id="s"/><bpmn:userTask id="u" name="Approve"/><bpmn:endEvent id="e"/>'
        + flow("f1", "s", "u")
        + flow("f2", "u", "e")
    )
    assert messages(task) == []
    assert messages(task, frozenset({"due_time", "form"})) == [
        "u: user task 'u' (Approve) has no due time: attach a timer boundary event to it",
        "u: user task 'u' (Approve) has no form: declare its fields with camunda:formData",
    ]
    manual = task.replace("userTask", "manualTask")
    assert messages(manual, frozenset({"due_time", "form"})) == []


def test_the_roles_file_says_what_user_tasks_need() -> None:
    roles, problems = parse_roles('user_tasks_need = ["form"]\n[desk]\ntitle = "D"\ndoes = "x"\n')
    assert problems == []
    assert roles is not None
    assert roles.user_tasks_need == ("form",)
    assert roles.names == ["desk", "desk_supervisor"]
    _, wrong = parse_roles('user_tasks_need = ["deadline"]\n[desk]\ntitle = "D"\ndoes = "x"\n')
    assert [p.message for p in wrong] == ["'user_tasks_need' is a list of 'due_time', 'form'"]


@pytest.mark.parametrize(
    ("element", "named"),
    [
        ('<bpmn:complexGateway id="x"/>', "complex gateway 'x' is not supported"),
        ('<bpmn:adHocSubProcess id="x"/>', "ad-hoc subprocess 'x' is not supported"),
        ('<bpmn:transaction id="x"/>', "transaction subprocess 'x' is not supported"),
        (
            '<bpmn:task id="x" isForCompensation="true"/>',
            "compensation activity 'x' is not supported",
        ),
        (
            '<bpmn:intermediateThrowEvent id="x"><bpmn:linkEventDefinition name="a"/>'
            "</bpmn:intermediateThrowEvent>",
            "link event 'x' is not supported",
        ),
    ],
)
def test_unsupported_elements_are_named(element: str, named: str) -> None:
    root = etree.fromstring(HEAD + element + TAIL)
    [problem] = checks.unsupported(root, "x.bpmn")
    assert (problem.element, problem.file) == ("x", "x.bpmn")
    assert problem.message.startswith(named)
