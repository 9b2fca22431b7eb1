"""User task forms, on SQLite and PostgreSQL: read from the diagram at deploy, refused
there when wrong, and checked by `complete` before anything changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from support import FIXTURES

from engine import (
    Choice,
    Engine,
    Form,
    FormField,
    FormValidationError,
    ProcessValidationError,
)
from engine.definitions import collect_files
from engine.persistence import DefinitionRecord, InstanceRecord, TaskRecord
from engine.spiff import compile_sources

FORMS = FIXTURES / "forms"
FORM_TYPES = FORMS / "form_types.bpmn"
REPORT = {
    "colour": "blue",
    "amount": "162000.00",
    "pieces": 3,
    "framed": False,
    "seen_on": "2026-11-02",
    "details": {"zones": ["surface"]},
}


def started(engine: Engine, key: str = "F-1") -> str:
    engine.deploy([FORM_TYPES], actor="owner")
    engine.start("form_types", business_key=key, actor="ann")
    return key


def snapshot(engine: Engine, key: str) -> dict[str, Any]:
    """Everything a command could change about an instance, as stored."""
    with engine.db.read() as session:
        record = session.scalars(
            select(InstanceRecord).where(InstanceRecord.business_key == key)
        ).one()
        tasks = session.execute(
            select(TaskRecord.bpmn_id, TaskRecord.state, TaskRecord.completed_by)
            .where(TaskRecord.instance_id == record.id)
            .order_by(TaskRecord.bpmn_id)
        ).all()
        return {
            "revision": record.revision,
            "state": record.state,
            "event_count": record.event_count,
            "head_hash": record.head_hash,
            "tasks": [tuple(t) for t in tasks],
            "history": [(e.seq, e.kind) for e in engine.history(key)],
        }


# -- read at deploy ------------------------------------------------------------------------


def test_the_compiler_reads_every_type_of_field_and_the_variable() -> None:
    compilation = compile_sources(collect_files([FORM_TYPES]))
    assert compilation.problems == []
    forms = {e.bpmn_id: e.form for e in compilation.processes["form_types"].elements}
    assert forms["fill_in"] == Form(
        (
            FormField(
                "colour",
                "Colour",
                "enum",
                required=True,
                choices=(
                    Choice("red", "Red"),
                    Choice("green", "Green"),
                    Choice("blue", "Deep blue"),
                ),
            ),
            FormField(
                "amount", "Amount", "string", required=True, documentation="As text: 162000.00"
            ),
            FormField("pieces", "Pieces", "long"),
            FormField("framed", "Framed", "boolean"),
            FormField("seen_on", "Seen on", "date"),
            FormField("details", "Details", "json"),
        ),
        variable="report",
    )
    assert forms["sign"] == Form(
        (
            FormField("signed", "Signed", "boolean", required=True),
            FormField("remark", "Remark", "string"),
        )
    )
    assert forms["free"] is None
    assert forms["start"] is None


def test_the_shipped_inspection_form_declares_its_lists_as_json() -> None:
    compilation = compile_sources(
        collect_files([FIXTURES.parent.parent / "processes" / "inspection.bpmn"])
    )
    [form] = [
        e.form for e in compilation.processes["inspection"].elements if e.bpmn_id == "inspect_work"
    ]
    assert form is not None
    assert form.variable == "inspection_report"
    types = {f.id: f.type for f in form.fields}
    assert types == {
        "outcome": "enum",
        "grade": "enum",
        "observations": "json",
        "accessories": "json",
        "deduction_amount": "string",
        "deduction_currency": "string",
    }


def test_deploy_keeps_each_form_in_the_definition_s_elements(engine: Engine) -> None:
    engine.deploy([FORM_TYPES], actor="owner")
    with engine.db.read() as session:
        elements = session.scalars(select(DefinitionRecord.elements)).one()
    by_id = {e["id"]: e for e in elements}
    assert by_id["fill_in"]["form"]["variable"] == "report"
    assert [f["id"] for f in by_id["fill_in"]["form"]["fields"]] == [
        "colour",
        "amount",
        "pieces",
        "framed",
        "seen_on",
        "details",
    ]
    assert by_id["sign"]["form"] == {
        "variable": None,
        "fields": [
            {"id": "signed", "label": "Signed", "type": "boolean", "required": True, "choices": []},
            {"id": "remark", "label": "Remark", "type": "string", "required": False, "choices": []},
        ],
    }
    assert "form" not in by_id["free"]
    assert "form" not in by_id["start"]


def test_a_changed_form_makes_a_new_version(engine: Engine, tmp_path: Path) -> None:
    changed = tmp_path / "form_types.bpmn"
    changed.write_text(FORM_TYPES.read_text())
    assert [d.created for d in engine.deploy([changed], actor="owner")] == [True]
    assert [d.created for d in engine.deploy([changed], actor="owner")] == [False]
    # Only the form changes: SpiffWorkflow's spec does not hold it, the version does.
    changed.write_text(
        FORM_TYPES.read_text().replace('label="Pieces" type="long"', 'label="Pieces" type="string"')
    )
    [deployed] = engine.deploy([changed], actor="owner")
    assert (deployed.version, deployed.created) == (2, True)


def test_deploy_refuses_bad_forms_each_located_by_file_element_and_line(engine: Engine) -> None:
    with pytest.raises(ProcessValidationError) as refused:
        engine.deploy([FORMS / "bad_forms.bpmn"], actor="owner")
    assert [(p.file, p.element, p.line, p.message) for p in refused.value.problems] == [
        (
            "bad_forms.bpmn",
            "report",
            10,
            "form field 'price' has the type 'money'; a form field is one of string, long, "
            "boolean, enum, date, json, amount",
        ),
        (
            "bad_forms.bpmn",
            "report",
            11,
            "form field 'grade' is an enum without choices (camunda:value)",
        ),
        ("bad_forms.bpmn", "report", 13, "form field 'note' is declared twice"),
        ("bad_forms.bpmn", "pack", 20, "a form (camunda:formData) is only read on a user task"),
    ]
    assert engine.processes() == []


def _with_fields(tmp_path: Path, fields: str) -> Path:
    path = tmp_path / "one_form.bpmn"
    path.write_text(
        FORM_TYPES.read_text()
        .replace('id="form_types"', 'id="one_form"')
        .replace(
            '<camunda:formField id="remark" label="Remark" type="string" />',
            fields,
        )
    )
    return path


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (
            '<camunda:formField id="remark" type="string"><camunda:validation>'
            '<camunda:constraint name="maxlength" config="10" />'
            "</camunda:validation></camunda:formField>",
            "form field 'remark': the constraint 'maxlength' is not checked; "
            "forms check only 'required'",
        ),
        (
            '<camunda:formField id="remark" type="string" defaultValue="none" />',
            "form field 'remark': defaultValue is not supported",
        ),
        (
            '<camunda:formField id="remark" type="string">'
            '<camunda:value id="a" name="A" /></camunda:formField>',
            "form field 'remark' has choices but is of type string; choices are for enum",
        ),
        (
            '<camunda:formField id="kind" type="enum"><camunda:value id="a" name="A" />'
            '<camunda:value id="a" name="B" /></camunda:formField>',
            "form field 'kind' has the choice 'a' twice",
        ),
        (
            '<camunda:formField id="the-remark" type="string" />',
            "form field 'the-remark': a field id must be a name",
        ),
        ('<camunda:formField id="remark" />', "form field 'remark' has no type"),
    ],
)
def test_deploy_refuses_a_field_the_engine_could_not_check(
    engine: Engine, tmp_path: Path, fields: str, said: str
) -> None:
    with pytest.raises(ProcessValidationError) as refused:
        engine.deploy([_with_fields(tmp_path, fields)], actor="owner")
    [problem] = refused.value.problems
    assert (problem.file, problem.element) == ("one_form.bpmn", "sign")
    assert problem.message.startswith(said)
    assert problem.line is not None


# -- checked by complete -------------------------------------------------------------------


def test_complete_lists_every_problem_at_once_and_saves_nothing(engine: Engine) -> None:
    key = started(engine)
    before = snapshot(engine, key)

    with pytest.raises(FormValidationError) as refused:
        engine.complete(
            f"{key}:fill_in",
            {
                "colour": "purple",
                "amount": 162000.0,
                "pieces": "3",
                "framed": "yes",
                "seen_on": "02/11/2026",
                "details": "[]",
                "colour_code": "#00f",
            },
            actor="ann",
        )

    error = refused.value
    assert [str(p) for p in error.problems] == [
        "colour: 'purple' is not one of red, green, blue",
        "amount: must be text, not the number 162000.0 (an amount is text too, such as "
        '"162000.00": money is never a float)',
        "pieces: must be a whole number, not '3'",
        "framed: must be true or false, not 'yes'",
        "seen_on: must be a date as YYYY-MM-DD, not '02/11/2026'",
        "details: must be a JSON list or object, not '[]'",
        "colour_code: not a field of this form (did you mean 'colour'?)",
    ]
    assert error.exit_code == 1
    assert error.message.startswith("the data for 'Fill in the report' does not fit its form: ")
    assert error.hint == (
        "Nothing was saved: correct colour, amount, pieces, framed, seen_on, details and "
        "colour_code, then complete the task again. `artreturns form F-1:fill_in` lists the "
        "form's fields."
    )
    assert snapshot(engine, key) == before

    with pytest.raises(FormValidationError) as missing:
        engine.complete(f"{key}:fill_in", {"amount": "  "}, actor="ann")
    assert [str(p) for p in missing.value.problems] == [
        "colour: required, but not given",
        "amount: required, but not given",
    ]
    assert snapshot(engine, key) == before

    # The same engine (whose cached copy of the instance the refusals dropped) goes on.
    done = engine.complete(f"{key}:fill_in", REPORT, actor="ann")
    assert [t.bpmn_id for t in done.instance.open_tasks] == ["sign"]


def test_a_fresh_engine_refuses_the_same_way(engine: Engine, make_engine: Any) -> None:
    key = started(engine)
    before = snapshot(engine, key)
    fresh = make_engine(clock=engine.clock)
    with pytest.raises(FormValidationError, match="colour: required, but not given; amount: "):
        fresh.complete(f"{key}:fill_in", {}, actor="bob")
    assert snapshot(engine, key) == before


def test_data_that_fits_goes_under_the_form_s_variable_or_into_the_data(engine: Engine) -> None:
    key = started(engine)
    optional_left_out = {"colour": "red", "amount": "0.50", "pieces": None}

    engine.complete(f"{key}:fill_in", optional_left_out, actor="ann")
    engine.complete(f"{key}:sign", {"signed": True}, actor="ann")
    # A task without a form takes any data.
    done = engine.complete(f"{key}:free", {"anything": [1, {"at": "all"}]}, actor="ann")

    assert done.instance.status == "completed"
    data = engine.show(key).data
    assert data["report"] == optional_left_out
    assert data["signed"] is True
    assert data["anything"] == [1, {"at": "all"}]
    completed = [e.data["data"] for e in engine.history(key) if e.kind == "task_completed"]
    assert completed[0] == optional_left_out


def test_a_version_stored_without_forms_takes_any_data(engine: Engine) -> None:
    """Definitions deployed before forms were recorded have none in their elements."""
    key = started(engine)
    with engine.db.transaction() as session:
        record = session.scalars(select(DefinitionRecord)).one()
        elements = [{k: v for k, v in e.items() if k != "form"} for e in record.elements]
        session.execute(update(DefinitionRecord).values(elements=elements))
    fresh = Engine(engine.db, registry=engine.registry, clock=engine.clock)
    fresh.complete(f"{key}:fill_in", {"colour": "purple"}, actor="ann")
    assert fresh.show(key).data["report"] == {"colour": "purple"}


def test_the_form_of_an_open_task(engine: Engine) -> None:
    key = started(engine)
    view = engine.form(f"{key}:fill_in")
    assert (view.instance, view.bpmn_id, view.name, view.kind, view.role) == (
        key,
        "fill_in",
        "Fill in the report",
        "user",
        "clerk",
    )
    assert view.task_id.startswith(view.short_id)
    assert view.has_form
    assert view.variable == "report"
    assert [f.id for f in view.fields if f.required] == ["colour", "amount"]
    assert view.form is not None
    assert view.form.example() == {"colour": "red", "amount": "text"}
    assert engine.form(view.short_id) == view
    shown = view.to_dict()
    assert list(shown) == [
        "task_id",
        "short_id",
        "instance",
        "bpmn_id",
        "name",
        "kind",
        "role",
        "has_form",
        "variable",
        "fields",
    ]
    assert shown["fields"][0]["choices"][2] == {"id": "blue", "name": "Deep blue"}

    engine.complete(f"{key}:fill_in", REPORT, actor="ann")
    engine.complete(f"{key}:sign", {"signed": False}, actor="ann")
    free = engine.form(f"{key}:free")
    assert (free.has_form, free.variable, free.fields, free.form) == (False, None, [], None)
