"""`artreturns form` and the form side of `artreturns complete`, through click's CliRunner:
--set typed by the form, every problem listed at once, the prompt on a terminal (driven
by input), and a pipe without data refused with the required fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import FIXTURES
from test_cli import ENV_VARS, Cli, error_lines

import cli as cli_module

FORM_TYPES = FIXTURES / "forms" / "form_types.bpmn"
KEY = "F-1"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """form_types deployed and F-1 waiting at `fill_in`."""
    cli = Cli(f"sqlite:///{tmp_path / 'forms.db'}")
    cli("init")
    cli("deploy", str(FORM_TYPES))
    cli("start", "form_types", "--key", KEY)
    return cli


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stdin is a terminal, as when an operator types the command."""
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)


def report(run: Cli) -> Any:
    return run.json("show", KEY)["data"].get("report")


def kinds(run: Cli) -> list[str]:
    return [e["kind"] for e in run.json("history", KEY)]


# -- artreturns form ---------------------------------------------------------------------


def test_form_shows_each_field_with_its_type_and_choices(run: Cli) -> None:
    lines = run("form", f"{KEY}:fill_in").stdout.splitlines()
    assert lines[0] == "Fill in the report [fill_in] of F-1, role clerk"
    assert lines[1] == "The fields go into the data as 'report'."
    rows = {
        cells[0]: cells[1:]
        for line in lines
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│").split("│")]]
    }
    assert rows["colour"] == [
        "enum",
        "yes",
        "Colour",
        "red (Red), green (Green), blue (Deep blue)",
    ]
    assert rows["amount"] == ["string", "yes", "Amount", "As text: 162000.00"]
    assert rows["pieces"] == ["long", "", "Pieces", ""]
    assert [rows[f][0] for f in ("framed", "seen_on", "details")] == ["boolean", "date", "json"]


def test_form_as_json(run: Cli) -> None:
    shown = run.json("form", f"{KEY}:fill_in")
    assert (shown["instance"], shown["bpmn_id"], shown["has_form"], shown["variable"]) == (
        KEY,
        "fill_in",
        True,
        "report",
    )
    assert shown["fields"][0] == {
        "id": "colour",
        "label": "Colour",
        "type": "enum",
        "required": True,
        "choices": [
            {"id": "red", "name": "Red"},
            {"id": "green", "name": "Green"},
            {"id": "blue", "name": "Deep blue"},
        ],
        "documentation": None,
    }


def test_form_of_a_task_without_one(run: Cli) -> None:
    run("complete", f"{KEY}:fill_in", "--data", '{"colour": "red", "amount": "1.00"}')
    run("complete", f"{KEY}:sign", "--set", "signed=yes")
    assert run("form", f"{KEY}:free").stdout == (
        "Anything goes [free] of F-1, role clerk\n"
        "No form: the task takes any data with --data/--set, or none.\n"
    )
    assert run.json("form", f"{KEY}:free")["has_form"] is False
    missing = run("form", f"{KEY}:nowhere", code=1)
    assert error_lines(missing)[0] == f"Error: no open task '{KEY}:nowhere'"


# -- --set and --data ----------------------------------------------------------------------


def test_set_values_are_read_as_their_fields_types(run: Cli) -> None:
    run(
        "complete",
        f"{KEY}:fill_in",
        "--set",
        "colour=blue",
        "--set",
        "amount=162000.00",  # text stays text: never the float 162000.0
        "--set",
        "pieces=3",
        "--set",
        "framed=no",
        "--set",
        "seen_on=2026-11-02",
        "--set",
        'details={"zones": ["surface"]}',
    )
    assert report(run) == {
        "colour": "blue",
        "amount": "162000.00",
        "pieces": 3,
        "framed": False,
        "seen_on": "2026-11-02",
        "details": {"zones": ["surface"]},
    }
    run("complete", f"{KEY}:sign", "--set", "signed=TRUE", "--set", "remark=12")
    data = run.json("show", KEY)["data"]
    assert (data["signed"], data["remark"]) == (True, "12")


def test_everything_wrong_is_listed_at_once_and_nothing_is_saved(run: Cli) -> None:
    before = run.json("show", KEY)
    result = run(
        "complete",
        f"{KEY}:fill_in",
        "--set",
        "colour=purple",
        "--set",
        "pieces=three",
        "--set",
        "framed=maybe",
        "--set",
        "details=not json",
        "--set",
        "colours=red",
        code=1,
    )
    assert result.stdout == ""
    assert error_lines(result) == [
        "Error: the data for 'Fill in the report' does not fit its form:",
        "  colour: 'purple' is not one of red, green, blue",
        "  amount: required, but not given",
        "  pieces: must be a whole number, not 'three'",
        "  framed: must be true or false, not 'maybe'",
        "  details: must be a JSON list or object, not 'not json'",
        "  colours: not a field of this form (did you mean 'colour'?)",
        "Hint: Nothing was saved: correct colour, amount, pieces, framed, details and colours, "
        "then complete the task again. `artreturns form F-1:fill_in` lists the form's fields.",
    ]
    after = run.json("show", KEY)
    assert (after["event_count"], after["data"], after["open_tasks"]) == (
        before["event_count"],
        before["data"],
        before["open_tasks"],
    )
    assert kinds(run) == ["started"]


def test_data_is_checked_as_given(run: Cli) -> None:
    result = run(
        "complete", f"{KEY}:fill_in", "--data", '{"colour": "red", "amount": 162000.00}', code=1
    )
    assert error_lines(result)[0] == (
        "Error: the data for 'Fill in the report' does not fit its form:"
    )
    assert error_lines(result)[1].startswith("  amount: must be text, not the number 162000.0 ")
    run("complete", f"{KEY}:fill_in", "--data", '{"colour": "red", "amount": "162000.00"}')
    assert report(run) == {"colour": "red", "amount": "162000.00"}


# -- no data: a terminal is asked, a pipe is told ------------------------------------------


def test_a_pipe_without_data_is_told_the_required_fields(run: Cli) -> None:
    result = run("complete", f"{KEY}:fill_in", code=1)
    assert result.stdout == ""
    assert error_lines(result) == [
        "Error: no --data or --set for 'Fill in the report', and no terminal to ask on:",
        "  colour: required, one of red, green, blue",
        "  amount: required, text",
        "Hint: Give the fields with --data or --set, for example:",
        """  artreturns complete F-1:fill_in --data '{"colour": "red", "amount": "text"}'""",
        "`artreturns form F-1:fill_in` describes every field of the form.",
    ]
    assert kinds(run) == ["started"]


def test_a_task_without_a_form_completes_without_data_from_a_pipe(run: Cli) -> None:
    run("complete", f"{KEY}:fill_in", "--data", '{"colour": "red", "amount": "1.00"}')
    run("complete", f"{KEY}:sign", "--set", "signed=no")
    done = run("complete", f"{KEY}:free")
    assert done.stdout == "Completed a task of F-1 (form_types v1): completed\n"


def test_a_terminal_is_asked_field_by_field(run: Cli, terminal: None) -> None:
    answers = [
        "",  # colour is required: asked again
        "4",  # not a choice: asked again
        "3",  # blue, by its number
        "162000.00",
        "three",  # not a whole number: asked again
        "2",
        "",  # framed skipped
        "2026-11-31",  # no such day: asked again
        "2026-11-30",
        "",  # details skipped
    ]
    result = run("complete", f"{KEY}:fill_in", input="\n".join(answers) + "\n")

    assert result.stdout.startswith("Completed a task of F-1 (form_types v1): running\n")
    assert report(run) == {
        "colour": "blue",
        "amount": "162000.00",
        "pieces": 2,
        "seen_on": "2026-11-30",
    }
    asked = result.stderr.splitlines()
    assert asked[:3] == [
        "Fill in the report [fill_in] of F-1, role clerk",
        "Fields marked * are required; press Enter to skip an optional one.",
        "",
    ]
    assert asked[3:8] == [
        "Colour * (enum)",
        "  1) red - Red",
        "  2) green - Green",
        "  3) blue - Deep blue",
        "colour [1-3 or a name]: ",
    ]
    assert "Error: Colour is required." in asked
    assert "Error: '4' is not one of red, green, blue." in asked
    assert "Amount * (string)" in asked
    assert "  As text: 162000.00" in asked
    assert "Error: 'three' is not a whole number." in asked
    assert "Error: must be a date as YYYY-MM-DD, not '2026-11-31'." in asked
    assert sum(line.startswith("colour [1-3 or a name]: ") for line in asked) == 3


def test_an_enum_can_be_chosen_by_its_name(run: Cli, terminal: None) -> None:
    run("complete", f"{KEY}:fill_in", input="Deep Blue\n5.00\n\n\n\n\n")
    assert report(run) == {"colour": "blue", "amount": "5.00"}
    run("complete", f"{KEY}:sign", input="\nyes\n\n", actor="bob")
    assert run.json("show", KEY)["data"]["signed"] is True


def test_prompts_go_to_stderr_so_json_output_stays_clean(run: Cli, terminal: None) -> None:
    result = run("complete", f"{KEY}:fill_in", "--json", input="green\n7.00\n\n\n\n\n")
    assert '"business_key": "F-1"' in result.stdout
    assert "Colour * (enum)" not in result.stdout
    assert "Colour * (enum)" in result.stderr


def test_input_that_ends_early_aborts_and_saves_nothing(run: Cli, terminal: None) -> None:
    result = run("complete", f"{KEY}:fill_in", input="red\n", code=1)
    assert "Aborted!" in result.stderr
    assert kinds(run) == ["started"]
