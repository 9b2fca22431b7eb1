"""`artreturns migrate`: a dry run per instance, the move, the refusal with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cli import ENV_VARS, FIXTURES, Cli

BPMN = FIXTURES / "bpmn"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_dry_run_then_the_move(tmp_path: Path) -> None:
    folder = tmp_path / "diagrams"
    folder.mkdir()
    for name in ("rule_after_entry.bpmn", "tier_decision.dmn"):
        shutil.copy(BPMN / name, folder / name)
    cli = Cli(f"sqlite:///{tmp_path / 'migrate.db'}")
    cli("init")
    cli("deploy", str(folder))
    cli("start", "rule_after_entry", "--key", "R-1", "--data", '{"customer": "x"}')
    cli("start", "rule_after_entry", "--key", "R-2", "--data", '{"customer": "x"}')
    cli("complete", "R-2:enter", "--data", '{"amount": 5000}')
    dmn = folder / "tier_decision.dmn"
    dmn.write_text(dmn.read_text().replace("&lt; 1000<", "&lt; 10000<"))
    cli("deploy", str(folder))
    planned = cli("migrate", "--process", "rule_after_entry", "--to-version", "2", "--dry-run")
    assert planned.stdout.splitlines() == [
        "R-1: can move v1 -> v2",
        "R-2: stays on v1",
        "  because step 'Decide the tier' [decide_tier] already ran and version 2 changes "
        "its decision table",
        "1 of 2 can move to version 2 (dry run).",
    ]
    refused = cli("migrate", "R-2", "--to-version", "2", code=1)
    assert "R-2 cannot move to version 2" in refused.stderr
    moved = json.loads(cli("migrate", "R-1", "--to-version", "2", "--json").stdout)
    assert [(m["instance"], m["moved"]) for m in moved] == [("R-1", True)]
    history = json.loads(cli("history", "R-1", "--json").stdout)
    assert history[-1]["kind"] == "migrated"
    assert "R-1: replayed 2 events under rule_after_entry v1 then v2" in cli("replay", "R-1").stdout
