"""The generated documents match the code: the CLI reference and the handler catalogue.

docs/render_cli.py renders both; these tests fail when a checked-in file is stale, or
when a command or a handler has nothing to say about itself.
"""

from __future__ import annotations

import re
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
STALE = "{name} is stale: run `make docs` and commit the result"


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    """docs/render_cli.py's functions, loaded from its path."""
    return runpy.run_path(str(DOCS / "render_cli.py"))


@pytest.fixture(scope="module")
def group(script: dict[str, Any]) -> click.Group:
    loaded: click.Group = script["load_cli"]()
    return loaded


def test_the_cli_reference_is_up_to_date(script: dict[str, Any]) -> None:
    render: Callable[[], str] = script["render_cli"]
    expected = render()
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == expected, STALE.format(name="docs/cli.md")


def test_the_handler_catalogue_is_up_to_date(script: dict[str, Any]) -> None:
    render: Callable[[], str] = script["render_handlers"]
    current = (DOCS / "handlers.md").read_text(encoding="utf-8")
    assert current == render(), STALE.format(name="docs/handlers.md")


def test_rendering_does_not_depend_on_the_terminal(
    script: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    render: Callable[[], str] = script["render_cli"]
    monkeypatch.setenv("COLUMNS", "200")
    wide = render()
    monkeypatch.setenv("COLUMNS", "40")
    assert render() == wide
    longest = max(len(line) for line in wide.splitlines() if not line.startswith(("#", "Gen")))
    assert longest <= 88


def test_every_command_has_a_help_text_with_a_first_line(group: click.Group) -> None:
    assert group.help
    assert group.help.strip().splitlines()[0].endswith(".")
    for name, command in group.commands.items():
        assert command.help, f"`artreturns {name}` has no help text (its docstring)"
        first = command.help.strip().splitlines()[0]
        assert first.endswith("."), f"`artreturns {name}`: first help line {first!r} is cut"
        assert command.get_short_help_str(limit=200) == first


def test_every_command_has_a_section_in_the_reference(group: click.Group) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (artreturns.*)$", text, re.M)
    assert sections == ["artreturns", *(f"artreturns {n}" for n in sorted(group.commands))]
    for name, command in group.commands.items():
        assert f"Usage: artreturns {name} [OPTIONS]" in text
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.opts[0] in text, f"`artreturns {name} {param.opts[0]}` undocumented"


def test_every_handler_is_in_the_catalogue(script: dict[str, Any]) -> None:
    registry = script["builtin_registry"]()
    assert len(registry) > 0
    text = (DOCS / "handlers.md").read_text(encoding="utf-8")
    for info in registry:
        assert info.summary, f"handler {info.operator} has no docstring"
        assert f"## `{info.operator}`" in text, f"{info.operator} is not in docs/handlers.md"
        assert f"| `{info.operator}` | {info.summary} |" in text


def test_the_catalogue_keeps_the_whole_docstring() -> None:
    text = (DOCS / "handlers.md").read_text(encoding="utf-8")
    section = text.split("## `intake.check_completeness`", 1)[1]
    assert "Check that every required field of a request is present and not blank." in section
    assert "Returns `complete` (true or false)" in section
    assert "Provided by `handlers:HANDLERS`." in section


def test_the_script_names_what_it_renders(
    script: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    main: Callable[[list[str]], int] = script["main"]
    assert main(["handlers"]) == 0
    assert capsys.readouterr().out == (DOCS / "handlers.md").read_text(encoding="utf-8")
    assert main(["nonsense"]) == 2
    assert "usage: render_cli.py [cli|handlers]" in capsys.readouterr().err
