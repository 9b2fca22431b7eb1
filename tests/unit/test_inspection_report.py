"""handlers/inspection.py: what an inspection report must be, and what the inspector is
told when it is not.

No database: the evidence store is replaced by the names of the files it holds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import BpmnError, TaskContext
from handlers import inspection
from handlers.store import Services

RMA = "RMA-2026-000007"
WORK = {
    "artwork_id": "OIL-0212",
    "price": {"amount": "4500.00", "currency": "EUR"},
    "condition": {"grade": "excellent", "accessories": ["certificate", "hanging wire"]},
}
SCUFF = {"zone": "surface", "text": "Light scuff lower left", "photos": ["surface-1.jpg"]}


@dataclass
class _Item:
    name: str


class _Evidence:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def items(self, rma: str) -> list[_Item]:
        assert rma == RMA
        return [_Item(name) for name in self.names]


class _Services(Services):
    """Only the evidence store, holding files by name."""

    def __init__(self, names: list[str]) -> None:
        self.evidence = _Evidence(names)  # type: ignore[assignment]


def context(evidence: list[str]) -> TaskContext:
    return TaskContext(
        instance_id=1,
        instance_uid="uid-1",
        business_key=RMA,
        process_id="inspection",
        process_version=1,
        task_id="task-1",
        bpmn_id="compare_reports",
        operator="inspection.compare",
        idempotency_key="uid-1:task-1",
        attempt=1,
        now=datetime(2026, 11, 2, 9, tzinfo=UTC),
        actor="inspector-ivy",
        logger=logging.getLogger("test"),
        services=_Services(evidence),
    )


def report(outcome: str = "accepted", **fields: Any) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "grade": "good",
        "observations": [SCUFF],
        "accessories": ["certificate", "hanging wire"],
        **fields,
    }


def compare(data: dict[str, Any], evidence: tuple[str, ...] = ("surface-1.jpg",)) -> Any:
    result = inspection.compare(
        {"report": data, "artworks": [WORK], "rma": RMA}, context(list(evidence))
    )
    return result["inspection"]


def incomplete(data: dict[str, Any], evidence: tuple[str, ...] = ("surface-1.jpg",)) -> str:
    """The reason the report was sent back (fails when it was not)."""
    with pytest.raises(BpmnError) as caught:
        compare(data, evidence)
    assert caught.value.code == "report_incomplete"
    assert caught.value.payload == {"reason": str(caught.value)}
    reason = str(caught.value)
    assert reason[0].isupper()
    assert reason.endswith(".")
    return reason


# -- a complete report ---------------------------------------------------------------------


def test_a_complete_report_is_compared_with_the_dispatch_condition() -> None:
    assert compare(report(accessories=["certificate"])) == {
        "outcome": "accepted",
        "grade": "good",
        "observations": ["Light scuff lower left"],
        "accessories_missing": ["hanging wire"],
        "deduction": None,
        "differences": ["OIL-0212: grade excellent at dispatch, good now"],
    }


def test_accessories_are_matched_whatever_their_case() -> None:
    found = compare(report(accessories=["Certificate", "HANGING WIRE"]))
    assert found["accessories_missing"] == []


def test_lists_come_as_lists_or_as_the_json_text_a_form_field_holds() -> None:
    data = report(observations=json.dumps([SCUFF]), accessories='["certificate"]')
    assert compare(data)["observations"] == ["Light scuff lower left"]
    assert compare(report(observations="", accessories=""))["accessories_missing"] == [
        "certificate",
        "hanging wire",
    ]


# -- the deduction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"deduction_amount": "300.00"},
        {"deduction_amount": "300.00", "deduction_currency": "EUR"},
        {"deduction_amount": " 300 ", "deduction_currency": "eur"},
        {"deduction_amount": 300},
        {"deduction": {"amount": "300.00", "currency": "EUR"}},
        {"deduction": {"amount": "300.00", "currency": "EUR"}, "deduction_amount": "300"},
    ],
)
def test_the_deduction_comes_from_the_form_or_as_an_object(fields: dict[str, Any]) -> None:
    found = compare(report("accepted_with_deduction", **fields))
    assert found["deduction"] == {"amount": "300.00", "currency": "EUR"}


def test_the_deduction_may_be_the_whole_price() -> None:
    found = compare(report("accepted_with_deduction", deduction_amount="4500.00"))
    assert found["deduction"] == {"amount": "4500.00", "currency": "EUR"}


def test_a_form_sends_empty_deduction_fields_with_other_outcomes() -> None:
    data = report("transit_damage", deduction_amount="", deduction_currency="EUR", deduction={})
    assert compare(data)["deduction"] is None


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"deduction_amount": 300.0}, "floating-point number, which money never is"),
        ({"deduction": {"amount": 300.0, "currency": "EUR"}}, "floating-point number"),
        ({"deduction_amount": "4,500.00"}, "is not an amount: write the amount as text"),
        ({"deduction_amount": "4.500"}, "has more decimals than EUR has (2)"),
        ({"deduction_amount": "three hundred"}, "is not an amount"),
        ({"deduction_amount": True}, "True is not an amount"),
        ({"deduction_amount": "0"}, "must be more than zero, not EUR 0.00"),
        ({"deduction_amount": "-10.00"}, "must be more than zero"),
        ({"deduction_amount": "4500.01"}, "more than the price of the works returned (EUR"),
        ({"deduction_amount": "300", "deduction_currency": "USD"}, "in EUR, the currency of"),
        ({"deduction": "300.00"}, "must be {amount, currency}"),
        ({"deduction": {"amount": "300"}, "deduction_amount": "200"}, "given twice"),
        ({}, "needs the deduction"),
        ({"deduction_amount": "  "}, "needs the deduction"),
    ],
)
def test_a_deduction_the_inspector_has_to_put_right(fields: dict[str, Any], said: str) -> None:
    assert said in incomplete(report("accepted_with_deduction", **fields))


def test_a_float_deduction_is_told_how_to_write_it_on_the_command_line() -> None:
    reason = incomplete(report("accepted_with_deduction", deduction_amount=300.0))
    assert """--set 'deduction_amount="300.00"'""" in reason


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_money_is_never_a_float(amount: float) -> None:
    reason = incomplete(report("accepted_with_deduction", deduction_amount=amount))
    assert "floating-point number" in reason


@pytest.mark.parametrize("outcome", ["accepted", "transit_damage", "mismatch"])
def test_a_deduction_with_another_outcome_is_sent_back(outcome: str) -> None:
    reason = incomplete(report(outcome, deduction_amount="300.00"))
    assert reason == (
        "A deduction is only for the outcome accepted_with_deduction; leave it out when "
        f"the outcome is {outcome}."
    )


# -- outcome, grade, observations, accessories --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"outcome": "ok"}, "The outcome 'ok' is not one of accepted, accepted_with_deduction"),
        ({"outcome": None}, "The report has no outcome; it is one of accepted,"),
        ({"grade": "mint"}, "The grade 'mint' is not one of excellent, good, fair, poor."),
        ({"grade": ""}, "The report has no grade"),
        ({"observations": "a scuff"}, "The observations must be a JSON list of {zone, text"),
        ({"observations": "[" * 100_000}, "The observations must be a JSON list of {zone"),
        ({"observations": "[" + "9" * 5000 + "]"}, "The observations must be a JSON list of"),
        ({"observations": ["a scuff"]}, "Observation 1 must be {zone, text, photos}"),
        ({"observations": [{**SCUFF, "zone": "corner"}]}, "has the zone 'corner'; the zones"),
        ({"observations": [{**SCUFF, "zone": None}]}, "('Light scuff lower left') has no zone"),
        ({"observations": [{**SCUFF, "text": " "}]}, "Observation 1 has no text"),
        ({"observations": [{**SCUFF, "photos": []}]}, "cites no photo; every observation"),
        ({"observations": [{**SCUFF, "photos": "surface-1.jpg"}]}, "cites no photo"),
        ({"observations": [{**SCUFF, "photos": [1]}]}, "photos must be the names of files"),
        ({"accessories": "certificate"}, "The accessories must be a JSON list of names"),
        ({"accessories": ["certificate", 7]}, "The accessories must be a JSON list of names"),
    ],
)
def test_a_report_the_inspector_has_to_put_right(fields: dict[str, Any], said: str) -> None:
    assert said in incomplete({**report(), **fields})


def test_photos_not_in_the_evidence_are_named_with_the_command_that_adds_them() -> None:
    crack = {"zone": "frame_glazing", "text": "Glazing cracked", "photos": ["a.jpg", "b.jpg"]}
    reason = incomplete(report(observations=[SCUFF, crack]), evidence=("surface-1.jpg", "a.jpg"))
    assert reason == (
        "Observation 2 ('Glazing cracked') cites the photo b.jpg that is not in the return's "
        f"evidence: add it with `artreturns evidence add {RMA} FILE...` or correct the file "
        "names."
    )


def test_everything_to_put_right_is_said_at_once() -> None:
    data = {
        "outcome": "accepted_with_deduction",
        "grade": "mint",
        "observations": [{**SCUFF, "photos": []}],
        "accessories": ["certificate"],
        "deduction_amount": 300.0,
    }
    reason = incomplete(data)
    assert reason.count(". ") == 2
    assert reason.startswith("The grade 'mint' is not one of")
    assert "cites no photo" in reason
    assert "floating-point number" in reason
