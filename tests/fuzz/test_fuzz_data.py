"""Fuzz what people type: `--data`/`--set`, form values, and the data of `complete`,
`start`, `apply` and `message` on the real procedure.

Hostile JSON (NaN and infinities, integers too long to print, nesting thousands deep,
any Unicode, keys that start with an underscore or are not names, wrong types, long
text) is either taken or refused with an EngineError that has a message; after a
refusal the database, the instance's state included, is exactly as it was, and the
same engine (with what it keeps in memory) carries on with the next command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fuzzing import (
    DEEP,
    FAST,
    KEYS,
    OBJECTS,
    TEXT,
    VALUES,
    budgets,
    done_or_refused_cleanly,
    json_text,
    scaled,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from returns import CS, OWNER, STEPS, Returns
from sqlalchemy.engine import URL

import cli as cli_module
from cli import parse_data
from engine import InputError
from engine.forms import TYPES, Choice, Form, FormField
from handlers import desk

DATA_TEXT = st.one_of(
    VALUES.map(json_text),
    OBJECTS.map(json_text),
    TEXT,
    DEEP,
    st.sampled_from(
        [
            '{"a": NaN}',
            '{"a": Infinity, "b": -Infinity}',
            '{"a": ' + "9" * 5000 + "}",
            '{"a": 1e999999}',
            "[]",
            "null",
            '{"a": 1}{"b": 2}',
            '\ufeff{"a": 1}',
        ]
    ),
)
SET_ITEMS = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", KEYS, DATA_TEXT),
        st.builds(
            lambda k, v: f"{k}={v}", st.sampled_from(["a.b", "a..b", ".", "a.", "note"]), TEXT
        ),
        TEXT,
    ),
    max_size=4,
)


# -- --data and --set ----------------------------------------------------------------------


@budgets
def test_data_and_set_give_an_object_or_an_input_error(budget: settings) -> None:
    form = Form(
        (
            FormField("note", "Note", "string"),
            FormField("count", "Count", "long"),
            FormField("ok", "OK", "boolean"),
            FormField("items", "Items", "json"),
            FormField("when", "When", "date"),
            FormField("decision", "Decision", "enum", choices=(Choice("approve", "Approve"),)),
        )
    )

    @budget
    @given(st.one_of(st.none(), DATA_TEXT), SET_ITEMS, st.booleans())
    def parse(data: str | None, sets: list[str], with_form: bool) -> None:
        try:
            result = parse_data(data, sets, form if with_form else None)
        except InputError as exc:
            result = exc.message
        assert isinstance(result, dict) or result.strip()

    parse()


# -- form values ---------------------------------------------------------------------------


FIELDS = st.builds(
    FormField,
    st.just("field"),
    st.just("Field"),
    st.sampled_from(TYPES),
    st.booleans(),
    st.just((Choice("approve", "Approve"), Choice("reject", "Reject it"))),
)


@budgets
def test_a_form_field_reads_any_text_or_says_what_is_wrong(budget: settings) -> None:
    @budget
    @given(FIELDS, st.one_of(TEXT, DATA_TEXT), VALUES)
    def read(field: FormField, text: str, value: Any) -> None:
        said: str | None = None
        try:
            parsed = field.parse_text(text)
        except ValueError as exc:
            parsed, said = None, str(exc)
        if said is None:  # a value of the field's type, or none (for a prompt to ask again)
            missing = parsed is None or (isinstance(parsed, str) and not parsed.strip())
            assert field.check(parsed) is None or missing
        else:
            assert said.strip(), "a refusal without a reason"
        problem = field.check(value)
        assert problem is None or problem.strip()
        problems = Form((field,)).check({"field": value, "other": value})
        assert [p.field for p in problems][-1] == "other"

    read()


# -- complete on the procedure's own tasks -----------------------------------------------


@pytest.fixture
def returns(tmp_path: Path) -> Iterator[Returns]:
    made = Returns(f"sqlite:///{tmp_path / 'fuzz.db'}", tmp_path)
    yield made
    made.close()


def form_data(form: Form) -> st.SearchStrategy[dict[str, Any]]:
    """Data that fits the form, its text fields any text (amounts included)."""

    def value(field: FormField) -> st.SearchStrategy[Any]:
        return {
            "string": TEXT,
            "enum": st.sampled_from([c.id for c in field.choices] or [""]),
            "boolean": st.booleans(),
            "long": st.integers(),
            "date": st.dates().map(lambda d: d.isoformat()),
            "json": st.one_of(st.lists(VALUES, max_size=3), OBJECTS),
        }[field.type]

    required = {f.id: value(f) for f in form.fields if f.required}
    optional = {f.id: value(f) for f in form.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


class Targets:
    """Returns waiting at each fuzzed step; a return whose step was done is replaced."""

    def __init__(self, returns: Returns) -> None:
        self.returns = returns
        self.waiting: dict[str, str] = {}
        self.done = 0
        self.refused = 0

    def rma(self, step: str) -> str:
        if step not in self.waiting:
            self.waiting[step] = STEPS[step][1](self.returns)
        return self.waiting[step]

    def form(self, step: str) -> Form:
        engine = self.returns.engine
        view = engine.form(f"{self.rma(step)}:{step}")
        assert view.form is not None
        return view.form

    def complete(self, step: str, data: dict[str, Any]) -> None:
        engine = self.returns.engine
        rma = self.rma(step)
        shown = engine.show(rma)
        if done_or_refused_cleanly(
            engine, lambda: engine.complete(f"{rma}:{step}", data, actor=STEPS[step][0])
        ):
            self.done += 1
            del self.waiting[step]
            return
        self.refused += 1
        assert engine.show(rma) == shown  # and the engine's own cache agrees


@budgets
def test_complete_takes_the_data_or_refuses_it_and_changes_nothing(
    returns: Returns, budget: settings
) -> None:
    targets = Targets(returns)
    forms = {step: targets.form(step) for step in STEPS}

    @scaled(budget, 0.7)
    @given(st.data())
    def complete(draw: st.DataObject) -> None:
        step = draw.draw(st.sampled_from(sorted(STEPS)))
        fitting = form_data(forms[step])
        data = draw.draw(
            st.one_of(
                fitting,
                OBJECTS,
                st.builds(lambda d, extra: {**d, **extra}, fitting, OBJECTS),
            )
        )
        targets.complete(step, data)

    complete()
    assert targets.refused > 0
    # The engine that refused all that still does its work, and every history holds.
    for step in sorted(STEPS):
        targets.complete(step, forms[step].example() | _sensible(step))
    assert targets.waiting == {}
    for rma in {i.business_key for i in returns.engine.instances()}:
        assert returns.engine.verify(rma) is None


def _sensible(step: str) -> dict[str, Any]:
    if step == "inspect_work":
        return {"outcome": "accepted", "grade": "excellent", "observations": []}
    return {}


# -- start, apply and message ---------------------------------------------------------------


PROCESS_IDS = st.sampled_from(
    ["return_request", "refund", "approval", "inspection", "exchange", "dispute", "follow_up"]
)


@budgets
def test_start_takes_any_data_or_refuses_it_and_changes_nothing(
    returns: Returns, budget: settings
) -> None:
    engine = returns.engine

    @scaled(budget, 0.5)
    @given(PROCESS_IDS, OBJECTS, st.one_of(st.none(), TEXT))
    def start(process_id: str, data: dict[str, Any], key: str | None) -> None:
        done_or_refused_cleanly(
            engine, lambda: engine.start(process_id, data, business_key=key, actor=OWNER)
        )

    start()


@budgets
def test_apply_takes_any_request_or_refuses_it_and_leaves_nothing(
    returns: Returns, budget: settings
) -> None:
    """A refused request takes no RMA number, keeps no evidence, starts nothing."""
    engine = returns.engine
    words = st.one_of(TEXT, st.sampled_from(["SO-1", "SO-1-W", "return", "defective"]))

    @scaled(budget, 0.5)
    @given(words, st.lists(words, max_size=3), words, words, TEXT, st.booleans())
    def apply(
        order: str, artworks: list[str], kind: str, reason: str, text: str, photo: bool
    ) -> None:
        evidence = sorted(returns.folders.evidence.rglob("*"))
        done = done_or_refused_cleanly(
            engine,
            lambda: desk.apply(
                engine,
                returns.folders,
                order_number=order,
                artwork_ids=artworks,
                request_type=kind,
                reason=reason,
                description=text,
                evidence=[returns.photo] if photo else [],
                actor=CS,
            ),
        )
        if not done:
            assert sorted(returns.folders.evidence.rglob("*")) == evidence

    apply()


@budgets
def test_a_message_with_any_payload_is_taken_or_refused_cleanly(
    returns: Returns, budget: settings
) -> None:
    engine = returns.engine
    targets = Targets(returns)
    rma = targets.rma("inspect_work")
    shipping = returns.at_approval()
    engine.complete(f"{shipping}:approve_return", {"decision": "approve"}, actor="cs-bob")
    names = st.one_of(
        st.sampled_from(
            ["return_shipped", "return_received", "parcel_update", "customer_confirmation"]
        ),
        TEXT,
    )

    @scaled(budget, 0.5)
    @given(st.sampled_from([rma, shipping, "RMA-0000-000000", "#999"]), names, OBJECTS)
    def message(instance: str, name: str, payload: dict[str, Any]) -> None:
        done_or_refused_cleanly(engine, lambda: engine.message(instance, name, payload, actor=CS))

    message()


# -- through the command line ------------------------------------------------------------


@budgets
def test_complete_on_the_command_line_exits_with_a_message(
    returns: Returns, budget: settings
) -> None:
    url = returns.engine.db.display_url
    targets = Targets(returns)
    runner = CliRunner()

    @scaled(budget, 0.3)
    @given(st.sampled_from(sorted(STEPS)), st.one_of(st.none(), DATA_TEXT), SET_ITEMS)
    def complete(step: str, data: str | None, sets: list[str]) -> None:
        rma = targets.rma(step)
        args = ["--db", url, "--as", STEPS[step][0], "complete", f"{rma}:{step}"]
        args += ["--data", data] if data is not None else []
        for item in sets:
            args += ["--set", item]
        if data is None and not sets:
            args += ["--data", "{}"]
        before = snapshot(returns.engine)
        result = runner.invoke(cli_module.cli, args, prog_name="artreturns")
        if result.exception is not None:
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code in (0, 1, 2), result.output
        if result.exit_code == 0:
            del targets.waiting[step]
            return
        assert result.stderr.startswith("Error: ")
        assert len(result.stderr.strip()) > len("Error: ")
        assert snapshot(returns.engine) == before

    complete()


# -- what hypothesis found -------------------------------------------------------------------

TOO_DEEP = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
TOO_LONG = '{"a": ' + "9" * 5000 + "}"


@pytest.mark.parametrize(
    ("data", "words"),
    [(TOO_DEEP, "nested deeper than 64 levels"), (TOO_LONG, "more than 4,300 digits")],
    ids=["nested 5000 deep", "5000 digits"],
)
def test_data_that_once_crashed_parsing_is_refused_with_the_reason(data: str, words: str) -> None:
    """Both raised from json.loads past `except JSONDecodeError`: RecursionError and
    ValueError (Python reads integers of at most 4,300 digits)."""
    with pytest.raises(InputError, match=words):
        parse_data(data, [])
    # A --set value that does not read as JSON is text, as any other such value.
    assert parse_data(None, [f"a={data[6:-1]}"]) == {"a": data[6:-1]}
    with pytest.raises(ValueError, match=words):
        FormField("items", "Items", "json").parse_text(data[6:-1])


def test_data_nested_too_deep_for_the_engine_is_refused_and_changes_nothing(
    returns: Returns,
) -> None:
    """Data nested 900 levels deep (as objects, through the API) hit Python's recursion
    limit in `start` (RecursionError); `complete` and `message` take the same check."""
    engine = returns.engine
    deep: Any = 1
    for _ in range(900):
        deep = [deep]
    rma = returns.at_approval()
    before = snapshot(engine)
    with pytest.raises(InputError, match="nested deeper than 64 levels"):
        engine.start("refund", {"x": deep}, actor=OWNER)
    with pytest.raises(InputError, match="nested deeper than 64 levels"):
        engine.complete(
            f"{rma}:approve_return", {"decision": "approve", "note": deep}, actor="cs-bob"
        )
    with pytest.raises(InputError, match="nested deeper than 64 levels"):
        engine.message(rma, "return_shipped", {"parcel": deep}, actor=CS)
    assert snapshot(engine) == before
    sixty_four: Any = 1
    for _ in range(63):
        sixty_four = [sixty_four]
    engine.start("refund", {"x": sixty_four}, actor=OWNER)  # as deep as allowed


@pytest.mark.postgres
def test_refused_data_changes_nothing_on_postgresql(pg_url: URL, tmp_path: Path) -> None:
    """The same properties on PostgreSQL, whose JSON and text columns refuse what SQLite
    keeps (NUL characters among them): `start` and `complete` take the data or refuse it,
    and a refusal leaves every table as it was."""
    made = Returns(pg_url, tmp_path)
    try:
        targets = Targets(made)
        forms = {step: targets.form(step) for step in STEPS}
        engine = made.engine

        @settings(FAST, max_examples=8)
        @given(st.data())
        def command(draw: st.DataObject) -> None:
            step = draw.draw(st.sampled_from([*sorted(STEPS), "start"]))
            if step == "start":
                data = draw.draw(OBJECTS)
                done_or_refused_cleanly(engine, lambda: engine.start("refund", data, actor=OWNER))
            else:
                targets.complete(step, draw.draw(st.one_of(form_data(forms[step]), OBJECTS)))

        command()
        for text in ("\x00", "a\x00b", "\ud7ff\ue000"):
            data = {"x": text}
            done_or_refused_cleanly(
                engine, lambda data=data: engine.start("refund", data, actor=OWNER)
            )
            targets.complete("approve_return", {"decision": "approve", "note": text})
    finally:
        made.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [(TOO_DEEP[6:-1], "nested deeper than 64 levels"), (TOO_LONG[6:-1], "more than 4,300 digits")],
    ids=["nested 5000 deep", "5000 digits"],
)
def test_a_simulated_answer_that_once_crashed_is_refused_with_the_reason(
    tmp_path: Path, answer: str, words: str
) -> None:
    """`simulate --answer STEP=JSON` read the JSON past `except JSONDecodeError` too."""
    result = CliRunner().invoke(
        cli_module.cli,
        [
            *("--db", f"sqlite:///{tmp_path / 'none.db'}"),
            *("simulate", "refund", "--answer", f"confirm_refund={answer}"),
        ],
        prog_name="artreturns",
    )
    assert result.exit_code == 2, result.output
    assert words in result.stderr
