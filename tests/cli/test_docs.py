"""The generated documents match the code: the CLI reference, the handler catalogue and
the pictures of the diagrams.

docs/render_cli.py renders the first two and docs/render_diagrams.py the pictures; these
tests fail when a checked-in file is stale, when a command or a handler has nothing to
say about itself, or when a picture leaves out part of its diagram.
"""

from __future__ import annotations

import hashlib
import re
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from lxml import etree

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


def _every_command(group: click.Group, path: str = "artreturns") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found += _every_command(command, f"{path} {name}")
    return found


def test_every_command_has_an_example_in_its_help(group: click.Group) -> None:
    """An example is an indented line of the help that runs the command itself."""
    for path, command in _every_command(group):
        lines = (command.help or "").splitlines()
        runs = [
            line
            for line in lines
            if line.startswith("  ")
            and re.search(
                rf"\bartreturns( --?\S+( \S+)?)* {re.escape(path.split(' ', 1)[1])}\b", line
            )
        ]
        assert runs, f"`{path} --help` has no example of itself"


def test_every_command_has_a_section_in_the_reference(group: click.Group) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (artreturns.*)$", text, re.M)
    expected = ["artreturns"]
    commands: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        expected.append(f"artreturns {name}")
        commands.append((name, command))
        if isinstance(command, click.Group):  # and each of its subcommands
            for sub in sorted(command.commands):
                expected.append(f"artreturns {name} {sub}")
                commands.append((f"{name} {sub}", command.commands[sub]))
    assert sections == expected
    for name, command in commands:
        assert f"Usage: artreturns {name} [OPTIONS]" in text
        page = text.split(f"## artreturns {name}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.opts[0] in page, f"`artreturns {name} {param.opts[0]}` undocumented"


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


# -- the pictures of the diagrams: docs/diagrams/<process>.svg ----------------------------

DIAGRAMS = DOCS / "diagrams"
BPMN_FILES = sorted((ROOT / "processes").glob("*.bpmn"))
BPMN_NS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
BPMNDI_NS = "{http://www.omg.org/spec/BPMN/20100524/DI}"
SVG_NS = "{http://www.w3.org/2000/svg}"
#: The BPMN elements that are flow nodes, named independently of the renderer's own list.
FLOW_NODES = (
    "task",
    "userTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "receiveTask",
    "sendTask",
    "manualTask",
    "callActivity",
    "subProcess",
    "transaction",
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "complexGateway",
)
HEADER = re.compile(r"<!-- Drawn from processes/(\w+)\.bpmn \(sha256 ([0-9a-f]{64})\) .*-->")


@pytest.fixture(scope="module")
def drawer() -> dict[str, Any]:
    """docs/render_diagrams.py's functions, loaded from its path."""
    return runpy.run_path(str(DOCS / "render_diagrams.py"))


def test_the_procedure_has_diagrams_to_draw() -> None:
    assert {p.stem for p in BPMN_FILES} >= {"return_request", "approval", "refund"}


@pytest.mark.parametrize("bpmn", BPMN_FILES, ids=lambda p: p.stem)
def test_every_diagram_has_a_picture_drawn_from_its_current_text(bpmn: Path) -> None:
    svg = DIAGRAMS / f"{bpmn.stem}.svg"
    assert svg.is_file(), f"{bpmn.name} has no picture: run `make docs`"
    first, second = svg.read_text(encoding="utf-8").splitlines()[:2]
    assert first == '<?xml version="1.0" encoding="UTF-8"?>'
    header = HEADER.fullmatch(second)
    assert header, f"docs/diagrams/{svg.name}: line 2 does not record the diagram's SHA-256"
    assert header.group(1) == bpmn.stem
    assert header.group(2) == hashlib.sha256(bpmn.read_bytes()).hexdigest(), (
        f"processes/{bpmn.name} changed since docs/diagrams/{svg.name} was drawn: "
        "run `make docs` and commit the result"
    )


@pytest.mark.parametrize("bpmn", BPMN_FILES, ids=lambda p: p.stem)
def test_every_picture_is_what_the_renderer_draws(bpmn: Path, drawer: dict[str, Any]) -> None:
    render: Callable[[Path], str] = drawer["render_file"]
    current = (DIAGRAMS / f"{bpmn.stem}.svg").read_text(encoding="utf-8")
    assert current == render(bpmn), STALE.format(name=f"docs/diagrams/{bpmn.stem}.svg")


def test_no_picture_is_left_from_a_diagram_that_is_gone() -> None:
    assert {p.stem for p in DIAGRAMS.glob("*.svg")} == {p.stem for p in BPMN_FILES}


def _groups(svg_text: str) -> dict[str, list[Any]]:
    """data-element id -> the <g> groups that draw it."""
    root = etree.fromstring(svg_text.encode("utf-8"))
    found: dict[str, list[Any]] = {}
    for group in root.iter(f"{SVG_NS}g"):
        if group.get("data-element"):
            found.setdefault(group.get("data-element"), []).append(group)
    return found


def _spoken(group: Any) -> str:
    """The words a group writes, without the spaces its lines were wrapped at."""
    return "".join("".join(t.itertext()) for t in group.iter(f"{SVG_NS}text")).replace(" ", "")


@pytest.mark.parametrize("bpmn", BPMN_FILES, ids=lambda p: p.stem)
def test_every_flow_node_and_sequence_flow_is_drawn_with_its_name(
    bpmn: Path, drawer: dict[str, Any]
) -> None:
    tree = etree.parse(str(bpmn))
    nodes = [e for name in FLOW_NODES for e in tree.iter(f"{BPMN_NS}{name}")]
    flows = list(tree.iter(f"{BPMN_NS}sequenceFlow"))
    assert nodes
    assert flows
    groups = _groups(drawer["render_file"](bpmn))
    for element in [*nodes, *flows]:
        element_id = element.get("id")
        assert len(groups.get(element_id, [])) == 1, f"{bpmn.name}: {element_id} not drawn once"
        [group] = groups[element_id]
        assert group.get("data-type") == etree.QName(element).localname
        assert any(
            child.tag in (f"{SVG_NS}rect", f"{SVG_NS}circle", f"{SVG_NS}path") for child in group
        ), f"{bpmn.name}: {element_id} has no shape"
        name = (element.get("name") or "").replace(" ", "")
        assert _spoken(group) == name, f"{bpmn.name}: {element_id} does not read {name!r}"


@pytest.mark.parametrize("bpmn", BPMN_FILES, ids=lambda p: p.stem)
def test_task_names_stay_inside_their_tasks(bpmn: Path, drawer: dict[str, Any]) -> None:
    text_width: Callable[[str, float], float] = drawer["text_width"]
    root = etree.fromstring(drawer["render_file"](bpmn).encode("utf-8"))
    tasks = [g for g in root.iter(f"{SVG_NS}g") if (g.get("data-type") or "").endswith("Task")]
    assert tasks
    for group in tasks:
        box = group.find(f"{SVG_NS}rect")
        lines = [t.text for t in group.findall(f"{SVG_NS}text")]
        assert len(lines) * 12 * 1.2 <= float(box.get("height")), group.get("data-element")
        for line in lines:
            assert text_width(line, 12) <= float(box.get("width")) - 10, line


def test_a_diagram_whose_layout_leaves_out_an_element_is_refused(
    drawer: dict[str, Any],
) -> None:
    tree = etree.parse(str(ROOT / "processes" / "insurance_claim.bpmn"))
    task = next(tree.iter(f"{BPMN_NS}serviceTask"))
    [shape] = [
        s for s in tree.iter(f"{BPMNDI_NS}BPMNShape") if s.get("bpmnElement") == task.get("id")
    ]
    shape.getparent().remove(shape)
    with pytest.raises(drawer["DiagramError"], match=f"serviceTask '{task.get('id')}'"):
        drawer["render"](etree.tostring(tree), "processes/insurance_claim.bpmn")


def test_the_drawing_script_names_its_usage(
    drawer: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert drawer["main"](["--help"]) == 2
    assert "usage: render_diagrams.py [FILE.bpmn ...]" in capsys.readouterr().err


def test_the_procedure_page_shows_every_picture() -> None:
    text = (DOCS / "processes.md").read_text(encoding="utf-8")
    for bpmn in BPMN_FILES:
        assert f"](diagrams/{bpmn.stem}.svg)" in text, f"docs/processes.md lacks {bpmn.stem}"


# -- links between the documents ---------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _anchors(page: Path) -> set[str]:
    """The anchors a page offers: its headings as a Markdown renderer slugs them
    (lower case, punctuation dropped, spaces to hyphens) and its `<a id="...">`."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+\s+(.+)$", text, re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_link_between_the_documents_leads_somewhere(page: Path) -> None:
    broken = []
    for link in _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", link):
            continue  # a web address: not checked, nothing here may reach the network
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no such heading")
    assert broken == []
