"""`artreturns replay` and `show --at`: one line when a history rebuilds the instance,
the divergence explained on stderr with exit 5 when it does not, and the instance as it
stood at an event or a time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_cli import ENV_VARS, FIXTURES, Cli

BPMN = FIXTURES / "bpmn"

T1 = "2026-11-02T10:00:00Z"
T2 = "2026-11-02T11:00:00Z"
T3 = "2026-11-02T12:00:00Z"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """R-1: started at T1, the amount entered at T2 (a manager's tier), approved at T3."""
    cli = Cli(f"sqlite:///{tmp_path / 'replay.db'}")
    cli("init")
    cli("deploy", str(BPMN / "rule_after_entry.bpmn"), str(BPMN / "tier_decision.dmn"))
    cli("start", "rule_after_entry", "--key", "R-1", "--data", '{"customer": "x"}', now=T1)
    cli("complete", "R-1:enter", "--data", '{"amount": 5000}', now=T2)
    cli("complete", "R-1:manager_approval", now=T3)
    return cli


def test_a_clean_replay_is_one_line(run: Cli) -> None:
    out = run("replay", "R-1").stdout
    assert out.splitlines() == [
        "R-1: replayed 4 events under rule_after_entry v1; every state matched its recorded digest."
    ]
    report = json.loads(run("replay", "R-1", "--json").stdout)
    assert report["clean"] is True
    assert report["replayed"] == report["events"] == 4


def test_a_divergence_is_explained_and_exits_5(run: Cli) -> None:
    with sqlite3.connect(run.db.removeprefix("sqlite:///")) as conn:
        # Amounts under 10,000 are now a clerk's: the spec is changed in place, under
        # the version the instance ran.
        conn.execute(
            "UPDATE definition SET spec_json = replace(spec_json, '< 1000\"', '< 10000\"')"
        )
    failed = run("replay", "R-1", code=5)
    assert "PROBLEM the stored spec of rule_after_entry v1 does not match" in failed.stderr
    assert "DIVERGED at event 2 (task_completed at 'Enter the amount'" in failed.stderr
    assert 'data key \'tier\': recorded "manager", rebuilt "clerk"' in failed.stderr
    assert "the history goes on at 'Manager approval' [manager_approval]" in failed.stderr
    assert "waits at 'Clerk approval' [clerk_approval, user]" in failed.stderr
    assert "R-1: the replay does not match its history (2 of 4 events replayed)" in failed.stderr


def test_the_instance_as_it_stood(run: Cli) -> None:
    then = run("show", "R-1", "--at", "2026-11-02T11:30:00Z")
    assert "As it stood at 2026-11-02 11:30 (after event 2, 2026-11-02 11:00):" in then.stdout
    assert "Manager approval [manager_approval]" in then.stdout
    assert "tier: manager" in then.stdout
    shown = json.loads(run("show", "R-1", "--at", "2026-11-02T11:30:00Z", "--json").stdout)
    assert [t["bpmn_id"] for t in shown["open_tasks"]] == ["manager_approval"]
    assert shown["status"] == "running"
    after_start = run("replay", "R-1", "--until", "1")
    assert after_start.stdout.startswith("R-1: replayed events 1 to 1 of 4")
    assert "Enter the amount [enter]" in after_start.stdout
    stood = json.loads(run("replay", "R-1", "--until", T3, "--json").stdout)
    assert stood["instance_then"]["status"] == "completed"
    too_early = run("show", "R-1", "--at", "2026-11-01T00:00:00Z", code=2)
    assert "R-1 did not exist yet" in too_early.stderr
