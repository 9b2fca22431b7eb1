"""engine/forms.py: checking data against a user task's form, and reading typed text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Choice, FieldProblem, Form, FormField

COLOUR = FormField(
    "colour",
    "Colour",
    "enum",
    required=True,
    choices=(Choice("red", "Red"), Choice("green", "Green"), Choice("blue", "Deep blue")),
)
AMOUNT = FormField("amount", "Amount", "string", required=True, documentation="As text")
PIECES = FormField("pieces", "Pieces", "long")
FRAMED = FormField("framed", "Framed", "boolean")
SEEN_ON = FormField("seen_on", "Seen on", "date")
DETAILS = FormField("details", "Details", "json")
FORM = Form((COLOUR, AMOUNT, PIECES, FRAMED, SEEN_ON, DETAILS), variable="report")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (AMOUNT, "162000.00"),
        (AMOUNT, "any text at all"),
        (PIECES, 3),
        (PIECES, -2),
        (FRAMED, True),
        (FRAMED, False),
        (COLOUR, "blue"),
        (SEEN_ON, "2026-02-28"),
        (DETAILS, []),
        (DETAILS, {"zone": "surface", "photos": ["a.jpg"]}),
    ],
)
def test_a_value_of_the_field_s_type_passes(field: FormField, value: Any) -> None:
    assert field.check(value) is None


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        (
            AMOUNT,
            162000.0,
            'must be text, not the number 162000.0 (an amount is text too, such as "162000.00"',
        ),
        (AMOUNT, 12, "must be text, not the number 12"),
        (AMOUNT, ["a"], 'must be text, not ["a"]'),
        (PIECES, 1.5, "must be a whole number, not 1.5"),
        (PIECES, "3", "must be a whole number, not '3'"),
        (PIECES, True, "must be a whole number, not true"),
        (FRAMED, "yes", "must be true or false, not 'yes'"),
        (FRAMED, 1, "must be true or false, not 1"),
        (COLOUR, "purple", "'purple' is not one of red, green, blue"),
        (COLOUR, "Red", "'Red' is not one of red, green, blue"),
        (SEEN_ON, "2026-02-30", "must be a date as YYYY-MM-DD, not '2026-02-30'"),
        (SEEN_ON, "2026-2-3", "must be a date as YYYY-MM-DD, not '2026-2-3'"),
        (SEEN_ON, "2026-02-03T10:00", "must be a date as YYYY-MM-DD"),
        (DETAILS, "[1]", "must be a JSON list or object, not '[1]'"),
        (DETAILS, 3, "must be a JSON list or object, not 3"),
    ],
)
def test_a_value_of_another_type_is_refused_with_what_the_field_takes(
    field: FormField, value: Any, said: str
) -> None:
    problem = field.check(value)
    assert problem is not None
    assert problem.startswith(said)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_required_field_left_empty_is_missing_and_an_optional_one_is_fine(value: Any) -> None:
    assert AMOUNT.check(value) == "required, but not given"
    assert PIECES.check(value) is None


def test_every_problem_is_listed_at_once_in_the_form_s_order_unknown_fields_last() -> None:
    data = {"extra": 1, "pieces": "two", "colour": "purple", "amout": "1.00", "framed": True}
    assert FORM.check(data) == [
        FieldProblem("colour", "'purple' is not one of red, green, blue"),
        FieldProblem("amount", "required, but not given"),
        FieldProblem("pieces", "must be a whole number, not 'two'"),
        FieldProblem("extra", "not a field of this form"),
        FieldProblem("amout", "not a field of this form (did you mean 'amount'?)"),
    ]
    assert str(FieldProblem("amount", "required, but not given")) == (
        "amount: required, but not given"
    )


def test_data_that_fits_has_no_problems() -> None:
    assert FORM.check({"colour": "red", "amount": "1.00", "pieces": None, "details": {}}) == []


# -- text typed on the command line or at a prompt -----------------------------------------


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        (AMOUNT, "162000.00", "162000.00"),
        (AMOUNT, "0042", "0042"),
        (AMOUNT, '"0042"', "0042"),  # a JSON string, as `--set 'x="0042"'` has always meant
        (AMOUNT, "  spaced ", "  spaced "),
        (AMOUNT, "true", "true"),
        (PIECES, "12", 12),
        (PIECES, " -3 ", -3),
        (FRAMED, "yes", True),
        (FRAMED, "TRUE", True),
        (FRAMED, "no", False),
        (FRAMED, "false", False),
        (COLOUR, "green", "green"),
        (COLOUR, "3", "blue"),  # by its number in the list
        (COLOUR, "deep BLUE", "blue"),  # by its name
        (SEEN_ON, "2026-11-02", "2026-11-02"),
        (DETAILS, '{"a": [1, 2]}', {"a": [1, 2]}),
        (DETAILS, "[]", []),
    ],
)
def test_text_is_read_as_the_field_s_type(field: FormField, text: str, value: Any) -> None:
    assert field.parse_text(text) == value


@pytest.mark.parametrize(
    ("field", "text", "said"),
    [
        (PIECES, "1.5", "'1.5' is not a whole number"),
        (PIECES, "three", "'three' is not a whole number"),
        (FRAMED, "maybe", "'maybe' is not yes/no or true/false"),
        (COLOUR, "4", "'4' is not one of red, green, blue"),
        (COLOUR, "purple", "'purple' is not one of red, green, blue"),
        (SEEN_ON, "02/11/2026", "must be a date as YYYY-MM-DD, not '02/11/2026'"),
        (DETAILS, "{bad", "'{bad' is not JSON: Expecting property name enclosed in double quotes"),
        (DETAILS, "7", "must be a JSON list or object, not 7"),
    ],
)
def test_text_that_is_not_of_the_type_says_why(field: FormField, text: str, said: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        field.parse_text(text)


@given(st.text())
def test_a_text_field_never_turns_what_is_typed_into_a_number(text: str) -> None:
    value = AMOUNT.parse_text(text)
    assert isinstance(value, str)
    stripped = text.strip()
    if not (len(stripped) >= 2 and stripped[0] == stripped[-1] == '"'):
        assert value == text


# -- stored and shown ------------------------------------------------------------------------


def test_a_form_round_trips_through_its_stored_data() -> None:
    data = FORM.as_data()
    assert data["variable"] == "report"
    assert data["fields"][0] == {
        "id": "colour",
        "label": "Colour",
        "type": "enum",
        "required": True,
        "choices": [
            {"id": "red", "name": "Red"},
            {"id": "green", "name": "Green"},
            {"id": "blue", "name": "Deep blue"},
        ],
    }
    assert data["fields"][1]["documentation"] == "As text"
    assert Form.from_data(data) == FORM


def test_the_example_fills_in_the_required_fields_and_fits() -> None:
    assert FORM.example() == {"colour": "red", "amount": "text"}
    assert FORM.check(FORM.example()) == []
    optional = Form((PIECES, FRAMED, SEEN_ON, DETAILS))
    assert optional.example() == {
        "pieces": 1,
        "framed": True,
        "seen_on": "2026-01-31",
        "details": [],
    }
    assert optional.check(optional.example()) == []
