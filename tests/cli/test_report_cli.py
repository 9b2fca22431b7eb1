"""`artreturns report` on the command line: the three formats, a file, the refusals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import BPMN

import cli as cli_module

T0 = "2026-11-02T09:00:00Z"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    for name in ("ARTRETURNS_DB", "ARTRETURNS_USER", "ARTRETURNS_NOW"):
        monkeypatch.delenv(name, raising=False)
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def invoke(*args: str, now: str = T0, code: int = 0) -> Result:
        argv = ["--db", db, "--now", now, "--as", "tester", *args]
        result = CliRunner().invoke(cli_module.cli, argv, prog_name="artreturns")
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    invoke("init")
    invoke("deploy", str(BPMN / "escalate_review.bpmn"))
    invoke("start", "escalate_review", "--key", "E-1")
    return invoke


def test_report_prints_tables_json_and_csv(run: Callable[..., Result], tmp_path: Path) -> None:
    invoke = run
    later = "2026-11-05T09:00:00Z"
    table = invoke("report", now=later).stdout
    assert "Volume by category" in table
    assert "due times missed" in table
    data = json.loads(invoke("report", "--format", "json", now=later).stdout)
    # Only the return procedure's instances are counted: a fixture process is not one.
    assert data["volume"]["opened"] == 0
    assert data["window"]["now"] == "2026-11-05T09:00:00+00:00"
    rows = list(csv.reader(io.StringIO(invoke("report", "--format", "csv").stdout)))
    assert rows[0] == ["section", "indicator", "group", "value", "unit", "currency"]
    assert ["volume", "opened", "", "0", "returns", ""] in rows

    out = tmp_path / "r.json"
    written = invoke("report", "--format", "json", "--by", "role", "-o", str(out))
    assert written.stdout == ""
    assert json.loads(out.read_text())["window"]["by"] == "role"


def test_report_refuses_an_unknown_breakdown(run: Callable[..., Result]) -> None:
    result = run("report", "--by", "artist", code=2)
    assert "'artist' is not one of" in result.stderr
