"""`artreturns worker` and `artreturns jobs` on the return procedure: with handlers not
inline, commands queue service tasks; a worker runs them and logs a line per job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli import ENV_VARS, Cli
from test_people_cli import ORDERS_CSV, PROCESSES

OFF = {"ARTRETURNS_INLINE_HANDLERS": "off"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def desk(tmp_path: Path) -> Cli:
    run = Cli(f"sqlite:///{tmp_path / 'jobs.db'}")
    run("init", actor=None)
    run("deploy", str(PROCESSES), actor="ada")
    orders = tmp_path / "orders.csv"
    orders.write_text(ORDERS_CSV, encoding="utf-8")
    run("orders", "import", str(orders), actor="ada")
    run("users", "add", "ada", "--role", "admin", actor="ada")
    run("users", "add", "cs-ann", "--role", "customer_service", actor="ada")
    run("users", "add", "aud-al", "--role", "auditor", actor="ada")
    run("users", "add", "ops-bot", "--role", "customer_service", actor="ada")
    return run


def _apply(desk: Cli, order: str = "P-1", artwork: str = "W-1") -> None:
    desk(
        *("apply", "--order", order, "--artwork", artwork, "--type", "return"),
        *("--reason", "no_reason", "--description", "I withdraw from the purchase."),
        actor="cs-ann",
        env=OFF,
    )


def test_a_worker_runs_what_commands_queued(desk: Cli) -> None:
    _apply(desk)
    [queued] = desk.json("jobs", actor="cs-ann")
    assert (queued["kind"], queued["operator"], queued["status"]) == (
        "service",
        "rma.open",
        "queued",
    )
    assert desk.json("tasks", "--all", actor="ada") == []  # nothing for people yet

    done = desk("worker", "--once", actor="ops-bot", env=OFF)
    [line] = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    # One job: its own task, then the three the return reaches before a person acts.
    assert (line["operator"], line["steps"], line["outcome"]) == ("rma.open", 4, "done")
    assert "Jobs run: 1 (1 done)." in done.stdout
    [approval] = desk.json("tasks", "--all", actor="ada")
    assert approval["bpmn_id"] == "approve_return"
    assert [j["kind"] for j in desk.json("jobs", actor="ada")] == ["timer"]
    assert "intact" in desk("verify", "RMA-2026-000001", actor="ada").stdout


def test_max_jobs_stops_the_worker(desk: Cli) -> None:
    _apply(desk)
    _apply(desk, order="P-2", artwork="W-2")
    done = desk("worker", "--once", "--max-jobs", "1", actor="ops-bot", env=OFF)
    assert "Jobs run: 1 (1 done)." in done.stdout
    left = [j for j in desk.json("jobs", actor="ada") if j["kind"] == "service"]
    assert [j["operator"] for j in left] == ["rma.open"]  # the other return's


def test_an_auditor_may_not_run_a_worker(desk: Cli) -> None:
    _apply(desk)
    refused = desk("worker", "--once", actor="aud-al", env=OFF, code=4)
    assert "auditor" in refused.stderr
    assert len(desk.json("jobs", actor="aud-al")) == 1  # reading is fine


def test_the_inline_setting_is_on_or_off(desk: Cli) -> None:
    wrong = desk("jobs", actor="ada", env={"ARTRETURNS_INLINE_HANDLERS": "maybe"}, code=1)
    assert "neither on nor off" in wrong.stderr


def test_a_worker_says_when_commands_run_handlers_themselves(desk: Cli) -> None:
    done = desk("worker", "--once", actor="ops-bot")
    assert "ARTRETURNS_INLINE_HANDLERS is not off" in done.stderr
    assert "Jobs run: 0 (none)." in done.stdout


def test_a_worker_says_which_handlers_may_outlast_its_lease(desk: Cli) -> None:
    quiet = desk("worker", "--once", actor="ops-bot", env=OFF)  # 120 s within 300 s
    assert "lease" not in quiet.stderr
    short = desk("worker", "--once", "--lease", "60", actor="ops-bot", env=OFF)
    assert "Note: handlers may run as long as the 60 s lease or longer: " in short.stderr
    assert "appraisal.record (120 s)" in short.stderr
    assert re.search(r"\(120 s\) and \d+ more\. ", short.stderr)  # five named, then a count
    assert "give --timeout below --lease" in short.stderr
    fixed = desk("worker", "--once", "--lease", "60", "--timeout", "30", actor="ops-bot", env=OFF)
    assert "lease" not in fixed.stderr
