"""Fuzz the diagram loader with mutated copies of processes/ and of the MIWG corpus.

Every mutant is deployed (which validates first) through the engine, and some through
the command line: it deploys, or it is refused with an EngineError that has a message,
and then the database is exactly as it was. A mutant that deploys is started once: it
runs, or it is refused the same way. The edits are made on the XML (elements dropped,
duplicated and moved; ids, references, conditions, timers, DMN cells and called
processes changed or removed) and on the bytes (flips, insertions, deletions,
truncation), so that they reach both the parser and the checks after it. The roles file
beside the diagrams is mutated too, by lines and by bytes, and validated with them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuzzing import TEXT, budgets, done_or_refused_cleanly, refused_or_done, scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from mutants import BYTE_EDITS, Mutant, _edit_bytes, mutants
from support import FIXTURES, PROCESSES, T0

import cli as cli_module
from engine import DeployView, Engine, FixedClock
from handlers.store import Folders, services_factory

OWNER = "owner"
PROCESS_FILES = {p.name: p for p in [*PROCESSES.glob("*.bpmn"), *PROCESSES.glob("*.dmn")]}
MIWG_FILES = {p.name: p for p in (FIXTURES / "miwg").glob("*.bpmn")}
#: The one diagram that calls the others: its mutants are deployed with all of them.
CALLER = "return_request.bpmn"


class Loader:
    """An engine with processes/ deployed, and a folder to write mutants into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.engine = Engine(
            f"sqlite:///{root / 'fuzz.db'}",
            clock=FixedClock(T0),
            services=services_factory(Folders(root / "data")),
        )
        self.engine.init()
        self.engine.deploy([PROCESSES], OWNER)
        self.deployed = 0
        self.refused = 0

    def write(self, mutant: Mutant, originals: dict[str, Path]) -> list[Path]:
        """The mutant in a fresh folder, with the diagrams it needs beside it."""
        folder = self.root / "mutant"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        target = folder / mutant.file
        target.write_bytes(mutant.apply(originals[mutant.file].read_bytes()))
        if originals is PROCESS_FILES:
            needed = (
                PROCESS_FILES
                if mutant.file == CALLER
                else {n: p for n, p in PROCESS_FILES.items() if n.endswith(".dmn")}
            )
            for name, path in needed.items():
                if name != mutant.file:
                    shutil.copyfile(path, folder / name)
        return sorted(folder.iterdir())

    def deploy(self, paths: list[Path]) -> None:
        """Deploy: done (and each new process starts or is refused), or refused with
        nothing changed."""
        views: list[DeployView] = []
        if not done_or_refused_cleanly(
            self.engine, lambda: views.extend(self.engine.deploy(paths, OWNER))
        ):
            self.refused += 1
            return
        self.deployed += 1
        for process_id in [v.process_id for v in views if v.created]:
            done_or_refused_cleanly(
                self.engine,
                lambda process_id=process_id: self.engine.start(process_id, {}, actor=OWNER),
            )


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[Loader]:
    made = Loader(tmp_path)
    yield made
    made.engine.db.dispose()


@budgets
def test_mutants_of_the_procedure_deploy_or_are_refused_cleanly(
    loader: Loader, budget: settings
) -> None:
    @budget
    @given(mutants(sorted(PROCESS_FILES)))
    def deploy(mutant: Mutant) -> None:
        loader.deploy(loader.write(mutant, PROCESS_FILES))

    deploy()
    assert loader.refused > 0  # the mutations reach the checks
    assert loader.deployed > 0  # and not all of them break the diagram
    loader.engine.deploy([PROCESSES], OWNER)  # the engine that refused them deploys still


@budgets
def test_mutants_of_the_miwg_corpus_deploy_or_are_refused_cleanly(
    loader: Loader, budget: settings
) -> None:
    @budget
    @given(mutants(sorted(MIWG_FILES)))
    def deploy(mutant: Mutant) -> None:
        loader.deploy(loader.write(mutant, MIWG_FILES))

    deploy()
    assert loader.refused > 0
    assert loader.deployed > 0


@budgets
def test_mutants_through_the_command_line_exit_with_a_message(
    tmp_path: Path, budget: settings
) -> None:
    """`validate` and `deploy` on a mutant: exit 0, or 1 or 2 with an error and a hint
    on stderr, never a traceback."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(cli_module.cli, ["--db", url, "init"]).exit_code == 0
    files = {**MIWG_FILES, **{n: p for n, p in PROCESS_FILES.items() if n != CALLER}}
    folder = tmp_path / "mutant"

    @scaled(budget, 0.3)
    @given(mutants(sorted(files)), st.sampled_from(["validate", "deploy"]))
    def run(mutant: Mutant, command: str) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        path = folder / mutant.file
        path.write_bytes(mutant.apply(files[mutant.file].read_bytes()))
        for name, original in PROCESS_FILES.items():
            if name.endswith(".dmn") and name != mutant.file:
                shutil.copyfile(original, folder / name)
        result = runner.invoke(
            cli_module.cli,
            ["--db", url, "--as", OWNER, command, str(folder)],
            prog_name="artreturns",
        )
        assert result.exit_code in (0, 1, 2), result.output
        if result.exception is not None:
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        if result.exit_code:
            assert result.stderr.startswith("Error: "), result.stderr
            assert len(result.stderr.strip()) > len("Error: ")

    run()


#: A line of roles.toml replaced by what people and programs get wrong in TOML.
ROLES_LINES = st.one_of(
    st.sampled_from(
        [
            "[clerk",
            "[Clerk]",
            "[a.b.c]",
            "[[customer_service]]",
            "user_tasks_need = [[1], {a = 1}]",
            'user_tasks_need = "form"',
            "title = 1e999",
            "title = nan",
            "supervisor = 2026-11-27",
            'does = """',
            "x = " + "[" * 5000 + "]" * 5000,
            "x = " + "{a = " * 3000 + "1" + "}" * 3000,
        ]
    ),
    TEXT.map(lambda text: f"title = {text}"),
    TEXT,
)


@budgets
def test_mutants_of_the_roles_file_validate_or_are_refused_with_a_message(
    tmp_path: Path, budget: settings
) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'roles.db'}", clock=FixedClock(T0))
    engine.init()
    original = (PROCESSES / "roles.toml").read_bytes()
    diagram = tmp_path / "follow_up.bpmn"
    shutil.copyfile(PROCESSES / "follow_up.bpmn", diagram)
    roles = tmp_path / "roles.toml"
    refused: list[str] = []

    @budget
    @given(
        st.lists(st.tuples(st.integers(0, 200), ROLES_LINES), max_size=3),
        st.lists(BYTE_EDITS, max_size=2),
    )
    def validate(lines: list[tuple[int, str]], raw: list[tuple[object, ...]]) -> None:
        text = original.decode("utf-8").splitlines()
        for at, line in lines:
            text[at % len(text)] = line
        data = "\n".join(text).encode("utf-8", "surrogatepass")
        for edit in raw:
            data = _edit_bytes(data, edit)
        roles.write_bytes(data)
        _, refusal = refused_or_done(lambda: engine.validate([roles, diagram], stored_roles=False))
        if refusal is not None:
            refused.append(refusal.message)

    try:
        validate()
    finally:
        engine.db.dispose()
    assert refused  # the mutations reach the checks
