"""What each command imports: a command pays only for the libraries it uses.

Checked in a fresh interpreter through `sys.modules` after the command ran, never by
timing (the timings are in `artreturns bench`, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import FIXTURES, T0

import engine
import engine.persistence
import engine.spiff
import handlers
from engine import Engine, FixedClock

ROOT = Path(__file__).resolve().parents[2]
RETURN_REQUEST = FIXTURES / "cli" / "return_request.bpmn"
#: Libraries that cost tens to hundreds of milliseconds to import.
HEAVY = {"sqlalchemy", "SpiffWorkflow", "alembic", "jinja2", "rich", "lxml", "RestrictedPython"}
HANDLER_MODULES = {f"handlers.{name}" for name in handlers.MODULE_NAMES}

# Runs `artreturns ARGS` (or only imports cli.py, without ARGS) in this interpreter and
# writes the names of the modules imported by then to the file named second.
SCRIPT = """
import json, sys
args, out = json.loads(sys.argv[1]), sys.argv[2]
import cli
if args is not None:
    sys.argv = ["artreturns", *args]
    try:
        cli.main()
    except SystemExit as exc:
        if exc.code:
            raise
with open(out, "w", encoding="utf-8") as handle:
    json.dump(sorted(sys.modules), handle)
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    """return_request deployed, RMA-1 started and waiting at `register`."""
    url = f"sqlite:///{tmp_path / 'imports.db'}"
    setup = Engine(url, clock=FixedClock(T0))
    setup.init()
    setup.deploy([RETURN_REQUEST], actor="tester")
    setup.start("return_request", {"customer": "Ann"}, business_key="RMA-1", actor="tester")
    setup.db.dispose()
    return url


def imported(tmp_path: Path, args: list[str] | None, db: str | None = None) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTRETURNS_")}
    env.update(ARTRETURNS_NOW="2026-11-02T09:30:00Z", ARTRETURNS_USER="tester")
    if db is not None:
        env["ARTRETURNS_DB"] = db
        env["ARTRETURNS_DATA"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text(encoding="utf-8")))


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.mark.parametrize("args", [None, ["--help"], ["tasks", "--help"]])
def test_importing_cli_and_asking_for_help_import_no_heavy_library(
    tmp_path: Path, args: list[str] | None
) -> None:
    modules = imported(tmp_path, args)
    assert top_level(modules) & HEAVY == set()
    assert not any(name.startswith(("engine.api", "engine.spiff")) for name in modules)


def test_tasks_reads_the_task_table_through_the_driver_alone(tmp_path: Path, db: str) -> None:
    modules = imported(tmp_path, ["tasks", "--all"], db)
    assert "sqlite3" in modules  # it reads the database, through the driver
    assert top_level(modules) & HEAVY == {"rich"}  # neither SQLAlchemy nor the ORM
    assert not any(name.startswith("engine.spiff") for name in modules)
    assert modules & HANDLER_MODULES == set()  # no handler runs, none is imported
    assert "handlers.notices" not in modules


def test_show_reads_the_stored_data_through_the_driver_alone(tmp_path: Path, db: str) -> None:
    modules = imported(tmp_path, ["show", "RMA-1"], db)
    assert "sqlite3" in modules
    # The data shown is stored beside the state: nothing is restored, parsed or migrated.
    assert top_level(modules) & HEAVY == {"rich"}
    assert {"alembic", "jinja2", "SpiffWorkflow"} & top_level(modules) == set()
    assert modules & HANDLER_MODULES == set()


def test_show_restores_an_instance_saved_before_its_data_was_stored(
    tmp_path: Path, db: str
) -> None:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE instance SET data = NULL")
    modules = imported(tmp_path, ["show", "RMA-1"], db)
    assert "SpiffWorkflow" in modules  # the data shown is the restored instance's
    assert "engine.spiff.compiler" not in modules  # nothing is parsed or compiled


def test_complete_runs_the_handlers_it_reaches_but_migrates_nothing(
    tmp_path: Path, db: str
) -> None:
    args = ["complete", "RMA-1:register", "--set", "order_number=A-1", "--set", "artwork=x"]
    modules = imported(tmp_path, [*args, "--set", "type=return", "--set", "reason=damaged"], db)
    assert "handlers.intake" in modules  # check_complete ran after the user task
    assert "alembic" not in top_level(modules)
    assert "engine.spiff.compiler" not in modules


@pytest.mark.parametrize("package", [engine, engine.persistence, engine.spiff])
def test_every_public_name_of_a_lazy_package_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    for name in names:
        assert getattr(package, name) is not None, name
    assert set(names) <= set(dir(package))
    with pytest.raises(AttributeError, match="no attribute 'nothing_such'"):
        _ = package.nothing_such  # type: ignore[attr-defined]


def test_the_handler_mapping_merges_every_handler_module() -> None:
    expected = {
        operator
        for name in handlers.MODULE_NAMES
        for operator in __import__(f"handlers.{name}", fromlist=["HANDLERS"]).HANDLERS
    }
    assert set(handlers.HANDLERS) == expected
    assert [m.__name__ for m in handlers.MODULES] == [
        f"handlers.{name}" for name in handlers.MODULE_NAMES
    ]
