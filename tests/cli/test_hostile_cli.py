"""Hostile diagram files through `artreturns validate` and `artreturns deploy`.

Each attack is a BPMN or a DMN file. Both commands must exit with code 1 and an
`Error:` line naming the file, never echo what the file tried to pull in, never open a
connection, and deploy nothing: the database's definitions (and the source files kept
with them) are the same row for row after the refused deploy as before it.

The XML attacks: an external entity on a local secret file, one on an HTTP address (a
local server records every request), a parameter entity and an external DTD on that
server, the billion-laughs and the quadratic-blowup entity bombs, each in UTF-8 and in
UTF-16 (where a byte scan for `<!DOCTYPE` cannot see it); then a file over the size
limit (refused from its size, before it is read), elements nested deeper than the depth
limit, and a process with more steps than the limit. Then the same two commands on
expressions that escape the sandbox or compute without bound, in a condition, a script,
a timer and a decision cell, and `start` on those only the run can stop.
"""

from __future__ import annotations

import sqlite3
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner, Result
from support import FIXTURES
from xml_attacks import make_secret, recording_server

import cli as cli_module
from engine.checks import MAX_STEPS
from engine.xmlsafe import MAX_DEPTH, MAX_DOCUMENT_BYTES

GOOD = FIXTURES / "cli" / "return_request.bpmn"
HOSTILE = FIXTURES / "hostile"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"


# -- the command line, a database, and what it holds ---------------------------------


class Cli:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            cli_module.cli,
            ["--db", f"sqlite:///{self.db_path}", "--as", "owner", *args],
            prog_name="artreturns",
            catch_exceptions=False,  # an unexpected exception fails the test
        )

    def deployed(self) -> list[tuple[Any, ...]]:
        """Every row of the definitions and of the source files stored with them."""
        with sqlite3.connect(self.db_path) as con:
            rows = []
            for table in ("definition", "source_file"):
                query = f"SELECT * FROM {table} ORDER BY 1"
                rows += [(table, *r) for r in con.execute(query)]
            return rows


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARTRETURNS_DB", "ARTRETURNS_NOW", "ARTRETURNS_USER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database where one good process is deployed (made once, copied per test)."""
    cli = Cli(tmp_path_factory.mktemp("template") / "x.db")
    assert cli("init").exit_code == 0
    assert cli("deploy", str(GOOD)).exit_code == 0
    assert cli.deployed()
    return cli.db_path


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Cli:
    """A CLI on a copy of the template database."""
    with sqlite3.connect(template) as source, sqlite3.connect(tmp_path / "x.db") as copy:
        source.backup(copy)  # the whole database, whatever is still in its log
    return Cli(tmp_path / "x.db")


def assert_refused_by_both(
    run: Cli, path: Path, words: tuple[str, ...], *, secret: str | None = None
) -> str:
    """Run validate and deploy on `path`: both exit 1 naming the file, say one of
    `words`, leak nothing and deploy nothing. Return what deploy said."""
    before = run.deployed()
    said = ""
    for command in ("validate", "deploy"):
        result = run(command, str(path))
        said = result.stdout + result.stderr
        assert result.exit_code == 1, f"{command}: exit {result.exit_code}\n{said}"
        assert "Traceback" not in said
        assert f"Error: {path.name}" in result.stderr
        assert any(w in said for w in words), said
        assert "Hint:" in result.stderr
        if secret is not None:
            assert secret not in said
        assert run.deployed() == before
    assert "nothing was deployed" in said
    return said


# -- a secret file and a server that records requests ---------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    return make_secret(tmp_path)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    with recording_server() as found:
        yield found


# -- the attacks -----------------------------------------------------------------------


def bpmn(doctype: str, text: str = "hello", encoding: str = "UTF-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"{doctype}\n"
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="http://x">\n'
        '  <bpmn:process id="hostile" isExecutable="true">\n'
        f"    <bpmn:documentation>{text}</bpmn:documentation>\n"
        '    <bpmn:startEvent id="s"><bpmn:outgoing>f</bpmn:outgoing></bpmn:startEvent>\n'
        '    <bpmn:endEvent id="e"><bpmn:incoming>f</bpmn:incoming></bpmn:endEvent>\n'
        '    <bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/>\n'
        "  </bpmn:process>\n"
        "</bpmn:definitions>\n"
    )


def dmn(doctype: str, text: str = "hello", encoding: str = "UTF-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"{doctype}\n"
        f'<definitions xmlns="{DMN_NS}" id="d" name="D" namespace="http://x">\n'
        '  <decision id="hostile" name="Hostile">\n'
        '    <decisionTable id="t" hitPolicy="UNIQUE">\n'
        '      <input id="i" label="Amount"><inputExpression id="ie" typeRef="number">'
        "<text>amount</text></inputExpression></input>\n"
        '      <output id="o" label="Tier" name="tier" typeRef="string"/>\n'
        f'      <rule id="r"><description>{text}</description>'
        '<inputEntry id="re"><text>-</text></inputEntry>'
        '<outputEntry id="ro"><text>"low"</text></outputEntry></rule>\n'
        "    </decisionTable>\n"
        "  </decision>\n"
        "</definitions>\n"
    )


def _laughs() -> str:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return "".join(entities)


#: name -> (the DOCTYPE, the text that uses it), given the secret file and server URL.
ATTACKS: dict[str, Callable[[Path, str], tuple[str, str]]] = {
    "file-entity": lambda f, u: (
        f'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "{f.as_uri()}">]>',
        "&xxe;",
    ),
    "network-entity": lambda f, u: (
        f'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "{u}/entity">]>',
        "&xxe;",
    ),
    "parameter-entity": lambda f, u: (
        f'<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "{u}/evil.dtd"> %remote;]>',
        "&leak;",
    ),
    "external-dtd": lambda f, u: (f'<!DOCTYPE definitions SYSTEM "{u}/bpmn.dtd">', "&leak;"),
    "billion-laughs": lambda f, u: (f"<!DOCTYPE definitions [{_laughs()}]>", "&lol9;"),
    "quadratic-blowup": lambda f, u: (
        f'<!DOCTYPE definitions [<!ENTITY big "{"x" * 20_000}">]>',
        "&big;" * 20_000,
    ),
}
#: What the refusal may say: a DOCTYPE is refused as such; in UTF-16, libxml2 may meet
#: an undeclared entity first (the DTD is never read).
REFUSED_XML = ("document type declarations", "entit")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("kind", ["bpmn", "dmn"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_xml_attack_is_refused_by_validate_and_deploy(
    run: Cli,
    tmp_path: Path,
    secret: tuple[Path, str],
    server: tuple[str, list[str]],
    attack: str,
    kind: str,
    encoding: str,
) -> None:
    secret_path, token = secret
    url, hits = server
    doctype, text = ATTACKS[attack](secret_path, url)
    document = (bpmn if kind == "bpmn" else dmn)(doctype, text, encoding.upper())
    path = tmp_path / f"hostile.{kind}"
    path.write_bytes(document.encode(encoding))
    if encoding == "utf-16":
        assert b"<!DOCTYPE" not in path.read_bytes()  # out of sight of a byte scan

    assert_refused_by_both(run, path, REFUSED_XML, secret=token)
    assert hits == []  # no connection was made: nothing was fetched


def test_the_attacks_are_real(secret: tuple[Path, str], server: tuple[str, list[str]]) -> None:
    # Control: a parser that resolves entities reads the secret file, so "the secret is
    # not in the output" above means the defence held; and the recorder records.
    # (The libxml2 under lxml here has no HTTP client at all, so the network attacks
    # cannot be shown to work; the recorder guards against a build that has one, and
    # against anything else in the deploy that might fetch a URL.)
    from lxml import etree

    secret_path, token = secret
    url, hits = server
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False)
    doctype, text = ATTACKS["file-entity"](secret_path, url)
    parsed = etree.fromstring(bpmn(doctype, text).encode(), parser=unsafe)
    assert token in etree.tostring(parsed).decode()
    with urllib.request.urlopen(f"{url}/probe", timeout=5) as response:
        assert response.status == 200
    assert hits == ["/probe"]


# -- size, depth, steps --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bpmn", "dmn"])
def test_a_huge_file_is_refused_from_its_size_without_being_read(
    run: Cli, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"huge.{kind}"
    head = (bpmn if kind == "bpmn" else dmn)("").encode()
    with path.open("wb") as handle:  # a sparse file: 2 GiB long, no disk used
        handle.write(head)
        handle.truncate(2 * 1024**3)
    run("validate", str(GOOD))  # everything the commands import is imported by now

    tracemalloc.start()
    try:
        said = assert_refused_by_both(run, path, ("the limit is",))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"file is {2 * 1024**3:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}" in said
    assert peak < MAX_DOCUMENT_BYTES  # not even the first 5 MB were read


def test_a_file_just_over_the_size_limit_is_refused(run: Cli, tmp_path: Path) -> None:
    data = bpmn("").encode()
    data += b"<!--" + b"x" * (MAX_DOCUMENT_BYTES - len(data)) + b"-->"
    path = tmp_path / "big.bpmn"
    path.write_bytes(data)
    said = assert_refused_by_both(run, path, ("the limit is",))
    assert f"file is {len(data):,} bytes" in said


@pytest.mark.parametrize("kind", ["bpmn", "dmn"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deeply_nested_elements_are_refused_with_their_line(
    run: Cli, tmp_path: Path, kind: str, depth: int
) -> None:
    text = "<x>\n" * depth + "</x>\n" * depth
    path = tmp_path / f"deep.{kind}"
    path.write_text((bpmn if kind == "bpmn" else dmn)("", text))
    said = assert_refused_by_both(run, path, ("levels deep",))
    assert f"the limit is {MAX_DEPTH}" in said
    assert "XML_PARSE_HUGE" not in said
    line = int(said.split(f"{path.name}:")[1].split(":")[0])
    assert 5 < line <= 5 + 256  # where the nesting passed a limit, not the file's end


def chain(tasks: int) -> str:
    """A valid process: a start event, `tasks` tasks in a row, an end event."""
    flows = ['<bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="t0"/>']
    for i in range(tasks):
        target = f"t{i + 1}" if i + 1 < tasks else "e"
        flows.append(
            f'<bpmn:task id="t{i}"/>'
            f'<bpmn:sequenceFlow id="f{i + 1}" sourceRef="t{i}" targetRef="{target}"/>'
        )
    return (
        bpmn("")
        .replace('<bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/>', "\n".join(flows))
        .replace("<bpmn:outgoing>f</bpmn:outgoing>", "")
        .replace("<bpmn:incoming>f</bpmn:incoming>", "")
    )


def test_a_process_with_too_many_steps_is_refused(run: Cli, tmp_path: Path) -> None:
    # A chain this long would otherwise fail deep inside SpiffWorkflow's parser.
    path = tmp_path / "long.bpmn"
    path.write_text(chain(2_000))
    said = assert_refused_by_both(run, path, ("steps; the limit is",))
    assert "long.bpmn:4 hostile: the process has 2,002 steps" in said
    assert f"the limit is {MAX_STEPS}" in said
    assert "RecursionError" not in said


def test_a_process_at_the_step_limit_deploys(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "long.bpmn"
    path.write_text(chain(MAX_STEPS - 2))  # with its start and end events: the limit
    assert run("validate", str(path)).exit_code == 0
    result = run("deploy", str(path))
    assert result.exit_code == 0, result.stderr
    assert "hostile: deployed as version 1" in result.stdout


# -- expressions -----------------------------------------------------------------------

PAYLOAD = "__import__('os').system('touch @MARKER@')"
#: Each is refused when compiled, so by validate and deploy, in any place.
REFUSED_EXPRESSIONS = {
    "import": PAYLOAD,
    "subclasses": "().__class__.__bases__[0].__subclasses__()",
    "lambda-globals": "(lambda: 0).__globals__['__builtins__']",
    "gi-frame": "(x for x in [1]).gi_frame.f_back.f_globals",
    "eval": "eval('1')",
    "open": "open('/etc/hostname').read()",
    "getattr": "getattr(1, '__class__')",
    "power": "9 ** 9 ** 9",
    "repeat": "'a' * 10 ** 9",
}
#: (the files, the hostile one, the element its problem names)
PLACES = {
    "condition": (("hostile_condition.bpmn",), "route"),
    "script": (("hostile_script.bpmn",), "compute"),
    "timer": (("hostile_timer.bpmn",), "wait"),
    "decision-cell": (("hostile_rule.bpmn", "hostile_decision_output_cell.dmn"), "r_one_out"),
}


def place(folder: Path, files: tuple[str, ...], payload: str, marker: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in files:
        text = (HOSTILE / name).read_text()
        text = text.replace(escape(PAYLOAD), escape(payload, {'"': "&quot;"}))
        path = folder / name
        path.write_text(text.replace("@MARKER@", str(marker)))
        paths.append(path)
    return paths


@pytest.mark.parametrize("where", sorted(PLACES))
@pytest.mark.parametrize("what", sorted(REFUSED_EXPRESSIONS))
def test_a_hostile_expression_is_refused_by_validate_and_deploy(
    run: Cli, tmp_path: Path, where: str, what: str
) -> None:
    marker = tmp_path / "pwned"
    files, element = PLACES[where]
    paths = place(tmp_path / "d", files, REFUSED_EXPRESSIONS[what], marker)
    before = run.deployed()
    for command in ("validate", "deploy"):
        result = run(command, *map(str, paths))
        assert result.exit_code == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert f"{paths[-1].name}:" in result.stderr
        assert f" {element}: " in result.stderr
        assert "refused" in result.stderr
        assert run.deployed() == before
    assert not marker.exists()


#: Compile, but can only be stopped when they run: by the time limit or by a guard
#: (`type` and `str.format` do not exist for diagrams). The memory limit is shown at
#: work in tests/unit/test_evaluator.py, where it can be set small.
RUN_TIME = {
    "endless": ("sum(1 for g in [[0]] for x in g if not g.append(x))", "stopped after 1 s"),
    "power": ("len(str(9 ** abs(-9 ** 9)))", "bits"),
    "type-mro": ("len(type(amount).mro())", "'type' is not defined"),
    "format": ("len('{0.__class__}'.format(1))", "format"),
}
#: Where each place's element is reached by `start` (the decision runs at `decide`).
REACHED = {"condition": "route", "script": "compute", "timer": "wait", "decision-cell": "decide"}


#: Every place for each, but the time limit (a second each) in two places only.
STOPPED = [
    (what, where)
    for what in sorted(RUN_TIME)
    for where in sorted(PLACES)
    if what != "endless" or where in ("condition", "decision-cell")
]


@pytest.mark.parametrize(("what", "where"), STOPPED)
def test_an_expression_stopped_at_run_time_fails_start_and_stores_nothing(
    run: Cli, tmp_path: Path, what: str, where: str
) -> None:
    marker = tmp_path / "pwned"
    source, words = RUN_TIME[what]
    paths = place(tmp_path / "d", PLACES[where][0], source, marker)
    assert run("validate", *map(str, paths)).exit_code == 0
    assert run("deploy", *map(str, paths)).exit_code == 0
    process = paths[0].stem

    result = run("start", process, "--key", "K-1", "--set", "amount=1")

    assert result.exit_code == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"failed at '{REACHED[where]}'" in result.stderr
    assert words in result.stderr
    assert "nothing was saved" in result.stderr
    with sqlite3.connect(run.db_path) as con:
        assert con.execute("SELECT count(*) FROM instance").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM event").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM task").fetchone() == (0,)


def test_docs_security_states_the_limits_in_force() -> None:
    from engine import evaluator

    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    stated = [
        f"5 MiB ({MAX_DOCUMENT_BYTES:,} bytes)",
        f"more than **{MAX_DEPTH}** levels",
        f"more than **{MAX_STEPS}** flow nodes",
        f"**{evaluator.MAX_SEQUENCE_LENGTH:,}** elements",
        f"**{evaluator.MAX_INT_BITS:,}** bits",
        f"**{evaluator.MAX_RANGE:,}** items",
        f"{evaluator.MAX_SOURCE_LENGTH:,} characters",
        f"Time limit: {evaluator.DEFAULT_TIME_LIMIT:g} second",
        f"Memory limit: {evaluator.DEFAULT_MEMORY_LIMIT // 2**20} MB",
    ]
    assert [s for s in stated if s not in text] == []
    assert sorted(evaluator.UNAVAILABLE_NAMES) == sorted(
        n for n in evaluator.UNAVAILABLE_NAMES if f"`{n}`" in text
    )
