"""Every diagram in processes/: valid, readable in a modeler, and kept to our conventions.

The engine checks what it must to run a diagram (schema, expressions, operators, roles);
these tests check what a process owner needs to read and change one: a complete layout
(every element drawn, inside its lane, nothing on top of anything else), plain names,
a form, a description and a due time on every user task, and escalations that go to the
lane's supervisor.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from support import PROCESSES

from engine import Engine, Registry
from engine.roles import parse_roles

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "camunda": CAMUNDA, "spiff": SPIFF}

DIAGRAMS = sorted(PROCESSES.glob("*.bpmn"))
FLOW_NODES = (
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "userTask",
    "manualTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "receiveTask",
    "sendTask",
    "callActivity",
    "subProcess",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
)
GENERATED_ID = re.compile(r"^(Activity|Event|Gateway|Flow|StartEvent|EndEvent|Lane|Participant)_")


def parse(path: Path) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.parse(str(path), parser).getroot()


def nodes(root: etree._Element) -> list[etree._Element]:
    found: list[etree._Element] = []
    for process in root.iterfind("bpmn:process", NS):
        for tag in FLOW_NODES:
            found.extend(process.iter(f"{{{BPMN}}}{tag}"))
    return found


def bounds(root: etree._Element) -> dict[str, tuple[float, float, float, float]]:
    shapes: dict[str, tuple[float, float, float, float]] = {}
    for shape in root.iter(f"{{{BPMNDI}}}BPMNShape"):
        box = shape.find("dc:Bounds", NS)
        assert box is not None, f"shape {shape.get('id')} has no bounds"
        shapes[shape.get("bpmnElement", "")] = tuple(  # type: ignore[assignment]
            float(box.get(k, "nan")) for k in ("x", "y", "width", "height")
        )
    return shapes


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    ix, iy, iw, ih = inner
    ox, oy, ow, oh = outer
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


def test_the_procedure_is_all_there() -> None:
    names = {p.stem for p in DIAGRAMS}
    assert names >= {
        "return_request",
        "approval",
        "return_shipping",
        "inspection",
        "refund",
        "exchange",
        "dispute",
        "insurance_claim",
        "follow_up",
    }
    assert (PROCESSES / "return_policy.dmn").is_file()
    assert (PROCESSES / "approval_tiers.dmn").is_file()


def test_the_folder_validates_with_every_operator_and_role_known() -> None:
    engine = Engine("sqlite://", registry=Registry.from_entry_points())
    checked = engine.validate([PROCESSES], stored_roles=False)
    assert {c.process_id for c in checked} >= {p.stem for p in DIAGRAMS}


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_a_diagram_is_named_after_its_process_and_drawn_whole(path: Path) -> None:
    root = parse(path)
    [process] = root.findall("bpmn:process", NS)
    assert process.get("id") == path.stem
    assert process.get("isExecutable") == "true"
    [participant] = root.findall("bpmn:collaboration/bpmn:participant", NS)
    assert participant.get("processRef") == path.stem
    assert participant.get("name")

    shapes = bounds(root)
    edges = {e.get("bpmnElement") for e in root.iter(f"{{{BPMNDI}}}BPMNEdge")}
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    assert lanes, "a diagram has lanes (roles)"
    for element in [participant, *lanes, *nodes(root)]:
        assert element.get("id") in shapes, f"{element.get('id')} is not drawn"
    for flow in process.iter(f"{{{BPMN}}}sequenceFlow"):
        assert flow.get("id") in edges, f"flow {flow.get('id')} is not drawn"
        edge = next(
            e for e in root.iter(f"{{{BPMNDI}}}BPMNEdge") if e.get("bpmnElement") == flow.get("id")
        )
        assert len(edge.findall("di:waypoint", NS)) >= 2


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_nodes_sit_in_their_lane_and_on_top_of_nothing(path: Path) -> None:
    root = parse(path)
    shapes = bounds(root)
    [participant] = root.findall("bpmn:collaboration/bpmn:participant", NS)
    pool = shapes[participant.get("id", "")]
    lane_of: dict[str, str] = {}
    lanes = root.findall("bpmn:process/bpmn:laneSet/bpmn:lane", NS)
    for lane in lanes:
        assert inside(shapes[lane.get("id", "")], pool), f"lane {lane.get('name')} leaves the pool"
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            assert ref.text not in lane_of, f"{ref.text} is in two lanes"
            lane_of[ref.text or ""] = lane.get("id", "")
    for a, b in [(x, y) for i, x in enumerate(lanes) for y in lanes[i + 1 :]]:
        assert not overlap(shapes[a.get("id", "")], shapes[b.get("id", "")]), "lanes overlap"

    drawn = nodes(root)
    for node in drawn:
        node_id = node.get("id", "")
        assert node_id in lane_of, f"{node_id} is in no lane"
        if node.tag != f"{{{BPMN}}}boundaryEvent":
            lane_box = shapes[lane_of[node_id]]
            assert inside(shapes[node_id], lane_box), f"{node_id} is drawn outside its lane"
    solid = [n for n in drawn if n.tag != f"{{{BPMN}}}boundaryEvent"]
    for i, a in enumerate(solid):
        for b in solid[i + 1 :]:
            assert not overlap(shapes[a.get("id", "")], shapes[b.get("id", "")]), (
                f"{a.get('id')} and {b.get('id')} are drawn on top of each other"
            )
    for event in root.iter(f"{{{BPMN}}}boundaryEvent"):
        host = shapes[event.get("attachedToRef", "")]
        grown = (host[0] - 20, host[1] - 20, host[2] + 40, host[3] + 40)
        assert overlap(shapes[event.get("id", "")], grown), f"{event.get('id')} is off its task"


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_names_and_ids_are_for_people(path: Path) -> None:
    root = parse(path)
    for node in nodes(root):
        node_id = node.get("id", "")
        assert not GENERATED_ID.match(node_id), f"{node_id}: give it a meaningful id"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", node_id), f"{node_id}: use snake_case ids"
        tag = etree.QName(node).localname
        if tag.endswith("Task") or tag in ("callActivity", "subProcess", "boundaryEvent"):
            assert (node.get("name") or "").strip(), f"{node_id} has no name"
    for lane in root.iterfind(".//bpmn:lane", NS):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", lane.get("name", "")), "lanes are role ids"


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_every_user_task_has_a_form_a_description_and_a_due_time(path: Path) -> None:
    root = parse(path)
    lane_name = {
        ref.text: lane.get("name")
        for lane in root.iterfind(".//bpmn:lane", NS)
        for ref in lane.findall("bpmn:flowNodeRef", NS)
    }
    process = root.find("bpmn:process", NS)
    assert process is not None
    by_id = {n.get("id"): n for n in nodes(root)}
    escalation_code = {
        e.get("id"): e.get("escalationCode") for e in root.iterfind("bpmn:escalation", NS)
    }
    for task in process.iter(f"{{{BPMN}}}userTask"):
        task_id = task.get("id")
        assert (task.findtext("bpmn:documentation", "", NS) or "").strip(), (
            f"{task_id}: say in a sentence what the person does"
        )
        assert task.find("bpmn:extensionElements/camunda:formData", NS) is not None, (
            f"{task_id} has no form"
        )
        timers = [
            b
            for b in process.iter(f"{{{BPMN}}}boundaryEvent")
            if b.get("attachedToRef") == task_id
            and b.find("bpmn:timerEventDefinition", NS) is not None
            and b.get("cancelActivity") == "false"
        ]
        assert timers, f"{task_id} has no due time (a non-interrupting boundary timer)"
        codes = set()
        for timer in timers:
            for flow in process.iterfind("bpmn:sequenceFlow", NS):
                if flow.get("sourceRef") != timer.get("id"):
                    continue
                target = by_id[flow.get("targetRef")]
                definition = target.find("bpmn:escalationEventDefinition", NS)
                if definition is not None:
                    codes.add(escalation_code.get(definition.get("escalationRef")))
        expected = f"{lane_name[task_id]}_supervisor"
        assert codes == {expected}, f"{task_id} escalates to {codes or 'nobody'}, not {expected}"


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_gateways_say_where_every_path_goes(path: Path) -> None:
    root = parse(path)
    process = root.find("bpmn:process", NS)
    assert process is not None
    for kind in ("exclusiveGateway", "inclusiveGateway"):
        for gateway in process.iter(f"{{{BPMN}}}{kind}"):
            outgoing = [
                f
                for f in process.iterfind("bpmn:sequenceFlow", NS)
                if f.get("sourceRef") == gateway.get("id")
            ]
            if len(outgoing) < 2:
                continue
            assert (gateway.get("name") or "").strip(), f"{gateway.get('id')}: name the question"
            for flow in outgoing:
                conditioned = flow.find("bpmn:conditionExpression", NS) is not None
                assert conditioned or gateway.get("default") == flow.get("id"), (
                    f"{flow.get('id')} from {gateway.get('id')} has no condition"
                )
                assert (flow.get("name") or "").strip(), f"{flow.get('id')}: name the answer"


def test_the_roles_file_covers_exactly_the_lanes_drawn() -> None:
    roles, problems = parse_roles((PROCESSES / "roles.toml").read_text(encoding="utf-8"))
    assert problems == []
    assert roles is not None
    drawn = {
        lane.get("name") for path in DIAGRAMS for lane in parse(path).iterfind(".//bpmn:lane", NS)
    }
    declared = {r.name for r in roles.roles}
    assert drawn <= set(roles.names)
    assert declared <= drawn, f"declared but in no lane: {sorted(declared - drawn)}"
