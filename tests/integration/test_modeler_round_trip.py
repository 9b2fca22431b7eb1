"""Diagrams as bpmn.io / Camunda Modeler save them validate, deploy and run.

tests/fixtures/modeler/modeler_claim.bpmn is written the way Camunda Modeler writes a
diagram: camunda:formData forms, a service task's `attempts` in camunda:properties,
conditions typed xsi:type="bpmn:tFormalExpression" (one plain, one as `${...}`),
unquoted ISO durations, lanes, a collaboration and bpmndi shapes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lxml import etree
from support import FIXTURES, Recorder

from engine import Engine
from engine.definitions import collect_files
from engine.spiff import compile_sources

MODELER = FIXTURES / "modeler"
CLAIM = MODELER / "modeler_claim.bpmn"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def test_a_camunda_modeler_diagram_validates(engine: Engine) -> None:
    [view] = engine.validate([MODELER])
    assert view.process_id == "modeler_claim"
    compilation = compile_sources(collect_files([CLAIM]))
    assert compilation.problems == []
    process = compilation.processes["modeler_claim"]
    elements = {e.bpmn_id: e for e in process.elements}
    assert elements["check_claim"].attempts == "2"  # from camunda:properties
    assert elements["register"].lane == "clerk"
    form = elements["senior_review"].form
    assert form is not None
    assert [(f.id, f.type, f.required) for f in form.fields] == [("decision", "enum", True)]
    conditions = {x.source for x in process.expressions if x.kind == "condition"}
    assert conditions == {"amount > 1000", "amount <= 10"}  # `${...}` read as its inside
    timers = {x.source for x in process.expressions if x.kind == "timer"}
    assert timers == {"'P7D'", "'PT4H'"}


def test_a_camunda_modeler_diagram_runs(engine: Engine, recorder: Recorder) -> None:
    [deployed] = engine.deploy([MODELER], actor="owner")
    assert (deployed.process_id, deployed.version) == ("modeler_claim", 1)
    engine.start("modeler_claim", business_key="BIG", actor="ann")
    engine.complete("BIG:register", {"amount": 5000, "note": "Torn canvas"}, actor="ann")
    assert recorder.calls[-1][:2] == ("test.echo", {"amount": 5000})
    [task] = [t for t in engine.tasks() if t.business_key == "BIG"]
    assert task.bpmn_id == "senior_review"  # the `${amount > 1000}` branch
    assert task.due_at is not None
    done = engine.complete("BIG:senior_review", {"decision": "pay"}, actor="ann")
    assert done.instance.status == "completed"

    engine.start("modeler_claim", business_key="SMALL", actor="ann")
    small = engine.complete("SMALL:register", {"amount": 5}, actor="ann")
    assert small.instance.status == "completed"
    assert [t for t in engine.tasks() if t.business_key == "SMALL"] == []


def test_properties_in_the_spiffworkflow_namespace_work_too(engine: Engine, tmp_path: Path) -> None:
    root = etree.parse(str(CLAIM)).getroot()
    camunda = root.find(f".//{{{BPMN_NS}}}serviceTask//{{{CAMUNDA_NS}}}properties")
    assert camunda is not None
    extensions = camunda.getparent()
    assert extensions is not None
    extensions.remove(camunda)
    spiff = etree.SubElement(extensions, f"{{{SPIFF_NS}}}properties")
    etree.SubElement(spiff, f"{{{SPIFF_NS}}}property", name="attempts", value="4")
    folder = tmp_path / "spiff"
    folder.mkdir()
    shutil.copy(MODELER / "roles.toml", folder / "roles.toml")
    (folder / CLAIM.name).write_bytes(etree.tostring(root))
    engine.validate([folder])
    compilation = compile_sources(collect_files([folder / CLAIM.name]))
    elements = {e.bpmn_id: e for e in compilation.processes["modeler_claim"].elements}
    assert elements["check_claim"].attempts == "4"
