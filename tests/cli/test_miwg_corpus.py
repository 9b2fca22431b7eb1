"""The BPMN MIWG reference models as a robustness corpus for `artreturns validate`.

Real-world diagrams from many modelers (tests/fixtures/miwg, CC BY 3.0, see its
README.md): each one either validates or is refused with a clear message, one line per
problem, each naming the file. Never a crash, never a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import FIXTURES

import cli as cli_module

MIWG = FIXTURES / "miwg"
FILES = sorted(MIWG.glob("*.bpmn"))
ROOT = Path(__file__).resolve().parents[2]
HEADER = re.compile(r"^Error: \d+ problems in the diagrams:$")


def test_the_corpus_is_there_with_its_licence() -> None:
    assert len(FILES) == 21
    assert "Creative Commons Attribution 3.0" in (MIWG / "LICENSE.txt").read_text()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_reference_model_validates_or_is_refused_clearly(path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_module.cli,
        ["--db", f"sqlite:///{tmp_path / 'none.db'}", "validate", str(path)],
        prog_name="artreturns",
        catch_exceptions=False,  # an unexpected exception fails the test with its traceback
    )
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stderr == ""
        return
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("Hint: ")
    problems = [line for line in lines[:-1] if not HEADER.match(line)]
    assert problems
    for line in problems:
        assert line.removeprefix("Error: ").strip().startswith(f"{path.name}"), line


def test_the_whole_corpus_in_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTRETURNS_")}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("artreturns")),
            "--db",
            f"sqlite:///{tmp_path / 'none.db'}",
            "validate",
            *map(str, FILES),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    named = {line.split(":")[0].strip() for line in done.stderr.splitlines()[1:-1]}
    assert named <= {p.name for p in FILES}
    assert {"C.6.0.bpmn", "C.3.0.bpmn"} <= named
    assert "compensation event" in done.stderr
