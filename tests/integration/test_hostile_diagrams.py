"""Hostile diagrams through the public API, on SQLite and PostgreSQL.

The diagrams in tests/fixtures/hostile put `__import__('os').system('touch @MARKER@')`
in every place the engine evaluates diagram text. Each test copies them into
`tmp_path` with @MARKER@ replaced by an absolute path there, so that the payload, if it
ever ran, would leave a file we can look for. Deploying must refuse every one of them,
name the file and the element, store nothing, and never create the marker.

Expressions that compile but fail when they run (a guard refuses, the time limit
stops them) must fail the command with a `ProcessError` and leave the database as it
was.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select
from support import FIXTURES, T0, Recorder, clock_of, fixture

from engine import Engine, Settings
from engine.errors import (
    EngineError,
    InputError,
    ProcessError,
    ProcessValidationError,
)
from engine.persistence import EventRecord, InstanceRecord, TaskRecord

HOSTILE = FIXTURES / "hostile"
ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = "__import__('os').system('touch @MARKER@')"
ACTOR = "mallory"

#: Other ways out of a sandbox; each would create the marker if it ran unrestricted.
ESCAPES = {
    "import": PAYLOAD,
    "subclasses": "[c for c in ().__class__.__base__.__subclasses__() "
    "if c.__name__ == '_wrap_close'][0].__init__.__globals__['system']('touch @MARKER@')",
    "lambda-builtins": "(lambda: 0).__builtins__['__import__']('os').system('touch @MARKER@')",
    "generator-frame": "(x for x in [1]).gi_frame.f_builtins['__import__']('os')"
    ".system('touch @MARKER@')",
}


@dataclass(frozen=True)
class Case:
    """One hostile place: the files to deploy, and where the problem must point."""

    files: tuple[str, ...]
    file: str
    element: str
    kind: str

    def __str__(self) -> str:
        return self.files[-1].removesuffix(".bpmn").removesuffix(".dmn")


RULE = "hostile_rule.bpmn"
CASES = [
    Case(("hostile_condition.bpmn",), "hostile_condition.bpmn", "route", "condition"),
    Case(("hostile_script.bpmn",), "hostile_script.bpmn", "compute", "script"),
    Case(("hostile_prescript.bpmn",), "hostile_prescript.bpmn", "review", "pre-script"),
    Case(("hostile_postscript.bpmn",), "hostile_postscript.bpmn", "review", "post-script"),
    Case(("hostile_timer.bpmn",), "hostile_timer.bpmn", "wait", "timer"),
    Case(("hostile_service_param.bpmn",), "hostile_service_param.bpmn", "call", "parameter"),
    Case(("hostile_cardinality.bpmn",), "hostile_cardinality.bpmn", "review", "cardinality"),
    Case(
        (RULE, "hostile_decision_input_cell.dmn"),
        "hostile_decision_input_cell.dmn",
        "r_one_amount",
        "decision cell",
    ),
    Case(
        (RULE, "hostile_decision_output_cell.dmn"),
        "hostile_decision_output_cell.dmn",
        "r_one_out",
        "decision output",
    ),
    Case(
        (RULE, "hostile_decision_input_expr.dmn"),
        "hostile_decision_input_expr.dmn",
        "in_amount",
        "decision input",
    ),
]
DMN_CASES = [c for c in CASES if c.files[-1].endswith(".dmn")]


def materialise(
    folder: Path, names: tuple[str, ...], marker: Path, payload: str | None = None
) -> list[Path]:
    """Copy fixture diagrams into `folder` with the marker (and payload) filled in."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    replaced = False
    for name in names:
        text = (HOSTILE / name).read_text()
        if payload is not None and escape(PAYLOAD) in text:
            text = text.replace(escape(PAYLOAD), escape(payload, {'"': "&quot;"}))
            replaced = True
        text = text.replace("@MARKER@", str(marker))
        path = folder / name
        path.write_text(text)
        paths.append(path)
    assert payload is None or replaced, f"no payload to replace in {names}"
    return paths


def deploy_or_refuse(engine: Engine, paths: list[Path]) -> EngineError | None:
    """Deploy; return the EngineError if it was refused (anything else propagates)."""
    try:
        engine.deploy(paths, actor="owner")
    except EngineError as refused:
        return refused
    return None


def line_of(path: Path, element: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if f'id="{element}"' in line:
            return number
    raise AssertionError(f"{element} is not in {path}")


def counts(engine: Engine) -> dict[str, int]:
    with engine.db.read() as session:
        return {
            record.__name__: session.scalar(select(func.count()).select_from(record)) or 0
            for record in (InstanceRecord, EventRecord, TaskRecord)
        }


def instance_row(engine: Engine, instance_id: int) -> dict[str, Any]:
    with engine.db.read() as session:
        record = session.get(InstanceRecord, instance_id)
        assert record is not None
        return {
            "status": record.status,
            "event_count": record.event_count,
            "head_hash": record.head_hash,
            "revision": record.revision,
            "state": record.state,
        }


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / f"pwned-{uuid.uuid4().hex[:8]}"


# -- the payloads are real ---------------------------------------------------------


@pytest.mark.parametrize("escape_name", sorted(ESCAPES))
def test_each_payload_would_create_the_marker_if_it_ran_unrestricted(
    escape_name: str, marker: Path
) -> None:
    # Control for the tests below: plain Python runs the payload and makes the file,
    # so "the marker does not exist" really means "the payload did not run".
    source = ESCAPES[escape_name].replace("@MARKER@", str(marker))
    subprocess.run([sys.executable, "-c", source], check=True, timeout=30)
    assert marker.exists()


# -- refused at deploy -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("escape_name", sorted(ESCAPES))
def test_a_hostile_diagram_is_refused_at_deploy(
    engine: Engine, tmp_path: Path, marker: Path, case: Case, escape_name: str
) -> None:
    paths = materialise(tmp_path / "diagrams", case.files, marker, ESCAPES[escape_name])

    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy(paths, actor=ACTOR)

    located = [(p.file, p.element) for p in raised.value.problems]
    assert (case.file, case.element) in located
    [problem] = [p for p in raised.value.problems if p.element == case.element]
    assert problem.line == line_of(tmp_path / "diagrams" / case.file, case.element)
    assert problem.message.startswith(case.kind)
    assert "refused" in problem.message
    assert str(problem).startswith(f"{case.file}:{problem.line} {case.element}: ")
    assert raised.value.hint
    assert not marker.exists()
    assert engine.processes(all_versions=True) == []
    assert counts(engine) == {"InstanceRecord": 0, "EventRecord": 0, "TaskRecord": 0}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_validate_refuses_a_hostile_diagram_too(
    engine: Engine, tmp_path: Path, marker: Path, case: Case
) -> None:
    paths = materialise(tmp_path / "diagrams", case.files, marker)
    with pytest.raises(ProcessValidationError) as raised:
        engine.validate(paths)
    assert (case.file, case.element) in [(p.file, p.element) for p in raised.value.problems]
    assert not marker.exists()


def test_a_hostile_file_among_good_ones_stops_the_whole_deploy(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    before = engine.processes(all_versions=True)
    good = tmp_path / "diagrams" / "review_call.bpmn"
    good.parent.mkdir(parents=True)
    changed = (fixture("review_call.bpmn")[0]).read_text().replace("Review it", "Review it now")
    good.write_text(changed)
    hostile = materialise(tmp_path / "diagrams", ("hostile_script.bpmn",), marker)

    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy([good, *hostile], actor=ACTOR)

    assert raised.value.file == "hostile_script.bpmn"
    assert engine.processes(all_versions=True) == before  # no version 2 of review_call
    assert not marker.exists()


def test_a_folder_of_hostile_diagrams_reports_every_one(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    folder = tmp_path / "diagrams"
    bpmn_only = [c for c in CASES if len(c.files) == 1]
    for case in bpmn_only:
        materialise(folder, case.files, marker)

    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy([folder], actor=ACTOR)

    located = {(p.file, p.element) for p in raised.value.problems}
    assert {(c.file, c.element) for c in bpmn_only} <= located
    assert "more" in str(raised.value)  # "(and N more)"
    assert not marker.exists()
    assert engine.processes() == []


@pytest.mark.parametrize("case", DMN_CASES, ids=str)
def test_a_hostile_decision_is_reported_in_its_own_file(
    engine: Engine, tmp_path: Path, marker: Path, case: Case
) -> None:
    paths = materialise(tmp_path / "diagrams", case.files, marker)
    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy(paths, actor=ACTOR)
    dmn = case.files[-1]
    elements = {"in_amount_expr", "in_amount", "r_one", "r_one_amount", "r_one_out"}
    assert any(p.file == dmn and p.element in elements for p in raised.value.problems)


@pytest.mark.parametrize(
    ("name", "elements"),
    [
        ("hostile_correlation.bpmn", {"order_id", "wait_payment", "wait_payment_def"}),
        ("hostile_multiple_event.bpmn", {"escalate", "flagged"}),
    ],
)
def test_expressions_the_compiler_does_not_collect_are_refused_at_deploy(
    engine: Engine, tmp_path: Path, marker: Path, name: str, elements: set[str]
) -> None:
    paths = materialise(tmp_path / "diagrams", (name,), marker)
    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy(paths, actor=ACTOR)
    assert any(p.file == name and p.element in elements for p in raised.value.problems)


def test_a_hostile_correlation_expression_never_runs(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    paths = materialise(tmp_path / "diagrams", ("hostile_correlation.bpmn",), marker)
    if deploy_or_refuse(engine, paths) is None:  # deployed: it must still never run
        started = engine.start("hostile_correlation", {}, business_key="K-4", actor=ACTOR)
        before = instance_row(engine, started.instance.id)
        with pytest.raises(EngineError, match="refused"):
            engine.message("K-4", "payment_received", {"order": 1}, actor=ACTOR)
        assert instance_row(engine, started.instance.id) == before
    assert not marker.exists()


def test_a_hostile_condition_in_a_multiple_event_never_runs(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    paths = materialise(tmp_path / "diagrams", ("hostile_multiple_event.bpmn",), marker)
    if deploy_or_refuse(engine, paths) is None:  # deployed: it must still never run
        started = engine.start("hostile_multiple_event", {}, business_key="K-5", actor=ACTOR)
        assert {t.bpmn_id for t in started.instance.open_tasks} == {"review", "escalate"}
        clock_of(engine).set(T0 + timedelta(days=2))
        fired = engine.fire_due("K-5", actor=ACTOR)
        assert fired.instance.status == "completed"  # by the timer half of the event
    assert not marker.exists()


def test_an_import_statement_in_a_script_never_runs(
    make_engine: Any, tmp_path: Path, marker: Path
) -> None:
    engine = make_engine(settings=Settings(expression_time_limit=0.2))
    script = "import os\nos.system('touch @MARKER@')"
    paths = materialise(tmp_path / "diagrams", ("hostile_script.bpmn",), marker, script)
    refused = deploy_or_refuse(engine, paths)
    if refused is not None:  # the better outcome: refused up front
        assert isinstance(refused, ProcessValidationError)
        assert refused.element == "compute"
    else:
        with pytest.raises(ProcessError, match="__import__") as raised:
            engine.start("hostile_script", {}, actor=ACTOR)
        assert raised.value.element == "compute"
        assert counts(engine)["InstanceRecord"] == 0
    assert not marker.exists()


def test_an_import_statement_in_a_script_is_refused_at_deploy(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    script = "import os\nos.system('touch @MARKER@')"
    paths = materialise(tmp_path / "diagrams", ("hostile_script.bpmn",), marker, script)
    with pytest.raises(ProcessValidationError):
        engine.deploy(paths, actor=ACTOR)


def test_a_very_long_condition_is_refused_cleanly(
    engine: Engine, tmp_path: Path, marker: Path
) -> None:
    condition = " + ".join(["1"] * 3000) + " > 0"
    paths = materialise(tmp_path / "diagrams", ("hostile_condition.bpmn",), marker, condition)
    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy(paths, actor=ACTOR)
    assert (raised.value.file, raised.value.element) == ("hostile_condition.bpmn", "route")
    assert engine.processes() == []


# -- hostile XML -----------------------------------------------------------------------
# (deploy collects every file's problems into one ProcessValidationError, so the
# UnsafeDocumentError raised by the parser arrives as its base class here)


def test_an_xxe_diagram_is_refused_and_reads_nothing(engine: Engine, tmp_path: Path) -> None:
    token = f"SECRET-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(token)
    text = (HOSTILE / "hostile_xxe.bpmn").read_text()
    assert "file:///etc/hostname" in text
    path = tmp_path / "hostile_xxe.bpmn"
    path.write_text(text.replace("file:///etc/hostname", secret.as_uri()))

    for paths in ([HOSTILE / "hostile_xxe.bpmn"], [path]):
        with pytest.raises(ProcessValidationError) as raised:
            engine.deploy(paths, actor=ACTOR)
        assert (raised.value.file, raised.value.line) == ("hostile_xxe.bpmn", 2)
        assert "document type" in raised.value.message
        said = "\n".join([str(raised.value), raised.value.hint or ""])
        assert token not in said
    assert engine.processes() == []


def test_an_xxe_diagram_in_utf16_is_refused(engine: Engine, tmp_path: Path) -> None:
    text = (HOSTILE / "hostile_xxe.bpmn").read_text().replace('"UTF-8"', '"UTF-16"')
    path = tmp_path / "hostile_xxe.bpmn"
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy([path], actor=ACTOR)
    assert raised.value.file == "hostile_xxe.bpmn"
    # libxml2 sees the entity in an attribute first; either way it is refused
    assert "entit" in raised.value.message or "document type" in raised.value.message
    assert engine.processes() == []


def test_a_billion_laughs_diagram_is_refused_at_once(engine: Engine) -> None:
    started = time.monotonic()
    with pytest.raises(ProcessValidationError, match="document type") as raised:
        engine.deploy([HOSTILE / "hostile_laughs.bpmn"], actor=ACTOR)
    assert time.monotonic() - started < 2
    assert (raised.value.file, raised.value.line) == ("hostile_laughs.bpmn", 2)
    assert engine.processes() == []


@pytest.mark.parametrize(("encoding", "label"), [("utf-16", "UTF-16"), ("latin-1", "ISO-8859-1")])
def test_a_diagram_in_another_encoding_deploys_or_is_refused_cleanly(
    engine: Engine, tmp_path: Path, encoding: str, label: str
) -> None:
    text = (fixture("review_call.bpmn")[0]).read_text()
    text = text.replace('"UTF-8"', f'"{label}"').replace("Review it", "Prüfen")
    path = tmp_path / "review_call.bpmn"
    path.write_bytes(text.encode(encoding))
    refused = deploy_or_refuse(engine, [path])
    if refused is not None:
        assert isinstance(refused, ProcessValidationError)
        assert refused.file == "review_call.bpmn"
    else:
        assert [p.process_id for p in engine.processes()] == ["review_call"]


# -- hostile folders -----------------------------------------------------------------


def test_a_directory_named_like_a_diagram_is_not_read(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "diagrams"
    (folder / "not_a_file.bpmn").mkdir(parents=True)
    (folder / "review_call.bpmn").write_bytes(fixture("review_call.bpmn")[0].read_bytes())
    refused = deploy_or_refuse(engine, [folder])
    if refused is not None:
        assert isinstance(refused, InputError | ProcessValidationError)
    else:
        assert [p.process_id for p in engine.processes()] == ["review_call"]


def test_a_decision_file_without_a_decision_is_refused_by_name(
    engine: Engine, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.dmn"
    empty.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" '
        'name="D" namespace="http://example.com/d"/>\n',
        encoding="utf-8",
    )
    with pytest.raises(ProcessValidationError) as raised:
        engine.deploy([*fixture("review_call.bpmn"), empty], actor=ACTOR)
    [problem] = raised.value.problems
    assert (problem.file, problem.line) == ("empty.dmn", 2)
    assert "without a <decision>" in problem.message
    assert engine.processes() == []


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_an_endless_device_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "diagrams"
    folder.mkdir()
    (folder / "zero.bpmn").symlink_to("/dev/zero")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from engine.definitions import collect_files, validate\n"
        "from engine.errors import EngineError\n"
        "from engine.registry import Registry\n"
        "try:\n"
        "    validate(collect_files([sys.argv[1]]), Registry())\n"
        "except EngineError as exc:\n"
        "    print('refused', exc)\n"
        "except BaseException as exc:\n"
        "    print('crashed', type(exc).__name__)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            check=False,
        )
        outcome = done.stdout
    except subprocess.TimeoutExpired:
        outcome = "hung"
    assert outcome.startswith("refused")


# -- compiles, but fails when it runs ---------------------------------------------------


@pytest.fixture
def quick_engine(make_engine: Any) -> Engine:
    engine: Engine = make_engine(settings=Settings(expression_time_limit=0.2))
    return engine


def deploy(engine: Engine, tmp_path: Path, name: str, payload: str, marker: Path) -> None:
    engine.deploy(materialise(tmp_path / "diagrams", (name,), marker, payload), actor="owner")


@pytest.mark.parametrize(
    ("name", "payload", "element", "words"),
    [
        ("hostile_condition.bpmn", "len(str(10**abs(-5000))) > 1", "route", "10**abs"),
        ("hostile_condition.bpmn", "sum(1 for g in [[0]] for x in g if not g.append(x)) > 0",
         "route", "sum(1 for g"),
        ("hostile_script.bpmn", "n = 0\nwhile True:\n    n = n + 1", "compute", "0.2 s"),
        ("hostile_script.bpmn", "big = 'a' * abs(-10**9)", "compute", "exceeds"),
        ("hostile_timer.bpmn", "'PT' + str(len(list(range(10**9)))) + 'H'", "wait", ""),
    ],
)  # fmt: skip
def test_an_expression_failing_at_start_stores_nothing(
    quick_engine: Engine,
    tmp_path: Path,
    marker: Path,
    name: str,
    payload: str,
    element: str,
    words: str,
) -> None:
    deploy(quick_engine, tmp_path, name, payload, marker)
    process_id = name.removesuffix(".bpmn")

    started = time.monotonic()
    with pytest.raises(ProcessError) as raised:
        quick_engine.start(process_id, {}, business_key="K-1", actor=ACTOR)

    assert time.monotonic() - started < 2
    assert isinstance(raised.value, EngineError)
    assert raised.value.element == element
    assert f"'{element}'" in raised.value.message
    assert words in raised.value.message
    assert "nothing was saved" in (raised.value.hint or "")
    assert counts(quick_engine) == {"InstanceRecord": 0, "EventRecord": 0, "TaskRecord": 0}
    # The key is still free: the failed start left no trace.
    quick_engine.deploy(fixture("review_call.bpmn"), actor="owner")
    assert quick_engine.start("review_call", {"amount": 1}, business_key="K-1", actor=ACTOR)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("n = 0\nwhile True:\n    n = n + 1", "0.2 s"),
        ("total = len(str(10**abs(-5000)))", "bits"),
        ("rows = list(range(10**9))", "range"),
        ("total = sum(1 for g in [[0]] for x in g if not g.append(x))", "0.2 s"),
    ],
)
def test_a_script_failing_at_complete_leaves_the_instance_as_it_was(
    quick_engine: Engine, tmp_path: Path, marker: Path, payload: str, words: str
) -> None:
    deploy(quick_engine, tmp_path, "hostile_postscript.bpmn", payload, marker)
    started = quick_engine.start(
        "hostile_postscript", {"amount": 3}, business_key="K-2", actor="ann"
    )
    [review] = started.instance.open_tasks
    before = instance_row(quick_engine, started.instance.id)
    before_counts = counts(quick_engine)
    history = quick_engine.history("K-2")

    clock = time.monotonic()
    with pytest.raises(ProcessError) as raised:
        quick_engine.complete(review.short_id, {"ok": True}, actor="ann")

    assert time.monotonic() - clock < 2
    assert raised.value.element == "review"
    assert words in raised.value.message
    assert instance_row(quick_engine, started.instance.id) == before
    assert counts(quick_engine) == before_counts
    assert quick_engine.history("K-2") == history
    assert [t.id for t in quick_engine.show("K-2").open_tasks] == [review.id]
    assert quick_engine.verify("K-2") is None


def test_a_failing_condition_says_why(quick_engine: Engine, tmp_path: Path, marker: Path) -> None:
    deploy(quick_engine, tmp_path, "hostile_condition.bpmn", "len(str(10**abs(-5000))) > 1", marker)
    with pytest.raises(ProcessError) as raised:
        quick_engine.start("hostile_condition", {}, actor=ACTOR)
    assert "bits" in raised.value.message or "limit" in raised.value.message


def test_a_service_parameter_failing_at_run_time_never_reaches_the_handler(
    quick_engine: Engine, recorder: Recorder, tmp_path: Path, marker: Path
) -> None:
    deploy(quick_engine, tmp_path, "hostile_service_param.bpmn", "len(str(10**abs(-5000)))", marker)
    result = quick_engine.start("hostile_service_param", {}, business_key="K-3", actor=ACTOR)
    assert recorder.calls == []
    assert result.failures  # recorded as a failed task, kept for retry
    assert not marker.exists()


@pytest.mark.parametrize(
    "script", ["rows = range(3)", "pairs = map(str, [1])", "z = complex(1, 2)"]
)
def test_a_script_leaving_unstorable_data_fails_as_a_process_error(
    quick_engine: Engine, tmp_path: Path, marker: Path, script: str
) -> None:
    deploy(quick_engine, tmp_path, "hostile_script.bpmn", script, marker)
    with pytest.raises(ProcessError):
        quick_engine.start("hostile_script", {}, actor=ACTOR)
    assert counts(quick_engine)["InstanceRecord"] == 0
