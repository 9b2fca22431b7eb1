"""`artreturns diff`: the owner's story of a lowered finance threshold, told before and
after deploying it, as text and as JSON."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_cli import ENV_VARS, ROOT, Cli

#: The amount cell of the CNY finance row in approval_tiers.dmn, before and after.
THRESHOLD = '<inputEntry id="t_finance_cny_amount"><text>&gt;= 10000</text>'
LOWERED = '<inputEntry id="t_finance_cny_amount"><text>&gt;= 1000</text>'
ROW_LINE = 'decision approval_tiers, row t_finance_cny (#14): Amount ">= 10000" → ">= 1000"'


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def edited(tmp_path: Path) -> tuple[Cli, Path]:
    """processes/ deployed from a copy, then the copy's CNY finance threshold lowered."""
    copy = tmp_path / "processes"
    shutil.copytree(ROOT / "processes", copy)
    cli = Cli(f"sqlite:///{tmp_path / 'diff.db'}")
    cli("init")
    cli("deploy", str(copy))
    tiers = copy / "approval_tiers.dmn"
    text = tiers.read_text(encoding="utf-8")
    assert text.count(THRESHOLD) == 1
    tiers.write_text(text.replace(THRESHOLD, LOWERED), encoding="utf-8")
    return cli, copy


def test_the_lowered_threshold_before_deploying(edited: tuple[Cli, Path]) -> None:
    cli, copy = edited
    out = cli("diff", "return_request", "--to", str(copy)).stdout
    assert out.splitlines() == [f"return_request v1 → {copy} (files on disk)", f"  {ROW_LINE}"]


def test_the_lowered_threshold_between_deployed_versions(edited: tuple[Cli, Path]) -> None:
    cli, copy = edited
    assert "return_request: deployed as version 2" in cli("deploy", str(copy)).stdout
    out = cli("diff", "return_request", "--from", "1", "--to", "2").stdout
    assert out.splitlines() == ["return_request v1 → v2", f"  {ROW_LINE}"]
    # The latest version against the files it was deployed from: nothing to tell.
    same = cli("diff", "return_request", "--to", str(copy)).stdout
    assert same == f"return_request v2 → {copy} (files on disk): no change\n"
    found = cli.json("diff", "return_request", "--from", "1", "--to", "v2")
    assert (found["process"], found["from"], found["to"]) == ("return_request", "v1", "v2")
    assert found["changes"] == [
        {
            "what": "decision row",
            "change": "changed",
            "id": "t_finance_cny",
            "where": "approval_tiers",
            "before": {"Amount": ">= 10000"},
            "after": {"Amount": ">= 1000"},
            "text": ROW_LINE,
        }
    ]


def test_a_process_that_does_not_use_the_table_did_not_change(
    edited: tuple[Cli, Path],
) -> None:
    cli, copy = edited
    out = cli("diff", "approval", "--to", str(copy)).stdout
    assert out == f"approval v1 → {copy} (files on disk): no change\n"
    # Files named replace the version's files of the same name; the others stay.
    files = ("--to", str(copy / "approval_tiers.dmn"))
    assert cli("diff", "return_request", *files).stdout.splitlines()[1:] == [f"  {ROW_LINE}"]
    assert "no change" in cli("diff", "return_request", "--to", str(copy / "refund.bpmn")).stdout


def test_by_default_the_latest_version_against_processes(
    edited: tuple[Cli, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, copy = edited
    monkeypatch.chdir(copy.parent)
    assert cli("diff", "return_request").stdout.splitlines()[1:] == [f"  {ROW_LINE}"]


def test_unknown_processes_and_versions_are_refused(edited: tuple[Cli, Path]) -> None:
    cli, copy = edited
    assert "no deployed process 'nowhere'" in cli("diff", "nowhere", code=1).stderr
    assert "version 7" in cli("diff", "approval", "--from", "7", code=1).stderr
    both = cli("diff", "approval", "--to", "1", "--to", str(copy), code=2).stderr
    assert "no such file or folder: 1" in both
