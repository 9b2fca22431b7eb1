"""User task forms: what a diagram declares a person must fill in, and the check of it.

A user task declares its form the Camunda way, inside its extension elements:

    <camunda:formData>
      <camunda:formField id="grade" label="Condition grade" type="enum">
        <camunda:validation><camunda:constraint name="required" /></camunda:validation>
        <camunda:value id="good" name="Good" />
      </camunda:formField>
    </camunda:formData>
    <spiffworkflow:variableName>inspection_report</spiffworkflow:variableName>

The compiler reads it at deploy (engine/spiff/compiler.py) and the definition keeps it in
its `elements`; `Engine.complete` checks the data against it before anything changes.

Types: string, long, boolean, enum, date (YYYY-MM-DD), json (our extension: a list
or an object) and amount (our extension: money's decimal text, "162000.00"). There is no
number type with decimals on purpose: an amount of money is text, read with
`decimal.Decimal` by the handler that needs it (which knows its currency and checks its
decimals). An amount field takes only digits with at most one dot and two decimals, not
negative, no exponent, no NaN, at most 13 digits before the dot. A JSON number is refused
where a form declares text or an amount, so a float never stands for money.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.canonical import read_json
from engine.errors import FieldProblem

TYPES = ("string", "long", "boolean", "enum", "date", "json", "amount")
TRUE_WORDS = ("true", "yes")
FALSE_WORDS = ("false", "no")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AMOUNT = re.compile(r"[0-9]{1,13}(?:\.[0-9]{1,2})?")
_WHAT = {
    "string": "text",
    "long": "a whole number",
    "boolean": "true or false",
    "enum": "one of the choices",
    "date": "a date as YYYY-MM-DD",
    "json": "a JSON list or object",
    "amount": 'an amount as text (digits, a dot, at most two decimals), such as "300.00"',
}


@dataclass(frozen=True)
class Choice:
    """One value an enum field may take, and how it reads."""

    id: str
    name: str


@dataclass(frozen=True)
class FormField:
    id: str
    label: str
    type: str
    required: bool = False
    choices: tuple[Choice, ...] = ()
    #: The field's `documentation` property: what to write and how.
    documentation: str | None = None

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "type": self.type,
            "required": self.required,
            "choices": [{"id": c.id, "name": c.name} for c in self.choices],
        }
        if self.documentation:
            data["documentation"] = self.documentation
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> FormField:
        return cls(
            id=str(data["id"]),
            label=str(data.get("label") or data["id"]),
            type=str(data["type"]),
            required=bool(data.get("required")),
            choices=tuple(Choice(str(c["id"]), str(c["name"])) for c in data.get("choices", [])),
            documentation=data.get("documentation"),
        )

    @property
    def what(self) -> str:
        """What the field takes, in words."""
        if self.type == "enum":
            return "one of " + ", ".join(c.id for c in self.choices)
        return _WHAT[self.type]

    def check(self, value: Any) -> str | None:
        """What is wrong with a value given for this field (None when nothing is)."""
        if _missing(value):
            return "required, but not given" if self.required else None
        if self.type in ("string", "amount"):
            if isinstance(value, str) and (self.type == "string" or _is_amount(value)):
                return None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return (
                    f"must be text, not the number {value!r} (an amount is text too, "
                    f'such as "{_amount_example(value)}": money is never a float)'
                )
        elif self.type == "long":
            if isinstance(value, int) and not isinstance(value, bool):
                return None
        elif self.type == "boolean":
            if isinstance(value, bool):
                return None
        elif self.type == "enum":
            if isinstance(value, str) and value in {c.id for c in self.choices}:
                return None
            return f"{_short(value)} is not one of {', '.join(c.id for c in self.choices)}"
        elif self.type == "date":
            if isinstance(value, str) and _is_date(value):
                return None
        elif self.type == "json" and isinstance(value, list | dict):
            return None
        return f"must be {self.what}, not {_short(value)}"

    def parse_text(self, text: str) -> Any:
        """A value typed as text (`--set`, a prompt) as this field's type; ValueError
        says what is wrong. Text stays text: "162000.00" is not made a number."""
        stripped = text.strip()
        value: Any
        if self.type in ("string", "enum", "date", "amount"):
            value = _unquoted(text)
            if self.type == "enum":
                value = self._choice(value.strip())
            elif self.type in ("date", "amount"):
                value = value.strip()
        elif self.type == "long":
            if not re.fullmatch(r"[+-]?\d+", stripped):
                raise ValueError(f"{_short(text)} is not a whole number")
            value = int(stripped)
        elif self.type == "boolean":
            word = stripped.lower()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise ValueError(f"{_short(text)} is not yes/no or true/false")
            value = word in TRUE_WORDS
        else:  # json
            try:
                value = read_json(text)
            except ValueError as exc:
                cause = exc.__cause__  # what is wrong, without where: the text is short
                reason = cause.msg if isinstance(cause, json.JSONDecodeError) else str(exc)
                raise ValueError(f"{_short(text)} is not JSON: {reason}") from exc
        problem = self.check(value)
        if problem is not None and not _missing(value):
            raise ValueError(problem)
        return value

    def _choice(self, text: str) -> str:
        """An enum's choice by its id, its number in the list (1, 2, ...) or its name."""
        ids = [c.id for c in self.choices]
        if text in ids:
            return text
        if text.isdigit() and 1 <= int(text) <= len(ids):
            return ids[int(text) - 1]
        by_name = [c.id for c in self.choices if c.name.casefold() == text.casefold()]
        return by_name[0] if len(by_name) == 1 else text

    def example(self) -> Any:
        """A value this field takes, to show in a hint."""
        if self.type == "enum":
            return self.choices[0].id
        return {
            "string": "text",
            "long": 1,
            "boolean": True,
            "date": "2026-01-31",
            "json": [],
            "amount": "300.00",
        }[self.type]


@dataclass(frozen=True)
class Form:
    """The fields of a user task, and the variable the task puts them under (if any)."""

    fields: tuple[FormField, ...]
    variable: str | None = None

    def as_data(self) -> dict[str, Any]:
        return {"variable": self.variable, "fields": [f.as_data() for f in self.fields]}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Form:
        return cls(
            fields=tuple(FormField.from_data(f) for f in data.get("fields", [])),
            variable=data.get("variable"),
        )

    def field(self, field_id: str) -> FormField | None:
        return next((f for f in self.fields if f.id == field_id), None)

    @property
    def required(self) -> list[FormField]:
        return [f for f in self.fields if f.required]

    def check(self, data: Mapping[str, Any]) -> list[FieldProblem]:
        """Everything wrong with the data, in the form's order, unknown fields last."""
        problems = [
            FieldProblem(f.id, message)
            for f in self.fields
            if (message := f.check(data.get(f.id))) is not None
        ]
        known = [f.id for f in self.fields]
        for key in data:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(FieldProblem(str(key), f"not a field of this form{hint}"))
        return problems

    def example(self) -> dict[str, Any]:
        """Data that fills in the required fields (every field, when none is required)."""
        return {f.id: f.example() for f in (self.required or list(self.fields))}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_amount(text: str) -> bool:
    return _AMOUNT.fullmatch(text.strip()) is not None


def _unquoted(text: str) -> str:
    """Text as written, or the string inside it when it is a JSON string ("0042")."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError:
            return text
        if isinstance(loaded, str):
            return loaded
    return text


def _amount_example(value: int | float) -> str:
    try:
        return f"{value:.2f}"
    except (OverflowError, ValueError):
        return "300.00"


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
