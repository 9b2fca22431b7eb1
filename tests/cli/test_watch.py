"""`artreturns watch`: work in flight on one screen, through click's CliRunner.

The database holds two returns waiting for approval (one overdue and escalated to the
supervisor, one not yet due), a service task that failed (an incident) and one queued
for a worker; each frame is checked with --once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL
from support import BPMN, PROCESSES
from test_cli import ENV_VARS, Cli
from test_import_cost import HANDLER_MODULES, HEAVY, imported, top_level

import cli as cli_module
from engine import Registry, TaskContext

ORDERS = PROCESSES.parent / "docs" / "demo" / "orders.csv"
DAY1 = "2026-11-02T09:00Z"
DAY1_LATER = "2026-11-02T11:00Z"
#: The first approval was due at 09:00 on day 3 (escalated when timers run), the second
#: is due at 11:00.
DAY3 = "2026-11-04T10:00Z"
OFF = {"ARTRETURNS_INLINE_HANDLERS": "off"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def unreachable(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Fail as a service that is down does."""
    raise ConnectionError("service unreachable")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def floor(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Two returns waiting for approval, RMA-2026-000001 escalated; review_call K-1
    with its service task failed, K-2 with its service task queued for a worker."""
    if request.param == "sqlite":
        run = Cli(f"sqlite:///{tmp_path / 'floor.db'}")
    else:
        pg_url: URL = request.getfixturevalue("pg_url")
        monkeypatch.setenv("ARTRETURNS_DATA", str(tmp_path / "data"))
        run = Cli(pg_url.render_as_string(hide_password=False))
    registry = Registry.from_entry_points()
    registry.register_mapping({"test.double": unreachable}, source="tests")
    monkeypatch.setattr(
        cli_module.Registry, "from_entry_points", classmethod(lambda cls, group="": registry)
    )
    run("init")
    # Before roles.toml, whose roles review_call's lanes are not among.
    run("deploy", str(BPMN / "review_call.bpmn"), actor="owner")
    run("deploy", str(PROCESSES), actor="owner")
    run("orders", "import", str(ORDERS), actor="owner")
    photo = tmp_path / "patina.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo of the patina")
    for now, order, work, reason, evidence in (
        (DAY1, "D-2001", "W-101", "no_reason", ()),
        (DAY1_LATER, "D-2004", "W-104", "not_as_described", ("--evidence", str(photo))),
    ):
        run(
            "apply",
            *("--order", order, "--artwork", work, "--type", "return"),
            *("--reason", reason, "--description", "As the customer wrote it", *evidence),
            now=now,
            actor="cs-ann",
        )
    run("run-due", now=DAY3)

    for key, env in (("K-1", None), ("K-2", OFF)):
        run("start", "review_call", "--key", key, "--set", "amount=7", now=DAY1)
        run("complete", f"{key}:review", now=DAY1_LATER, env=env)
    return run


def test_one_frame_counts_open_overdue_escalated_failed_and_queued_work(floor: Cli) -> None:
    frame = floor.json("watch", "--once", now=DAY3)
    assert frame["at"] == "2026-11-04T10:00:00+00:00"
    assert frame["totals"] == {
        "open": 2,
        "overdue": 1,
        "escalated": 1,
        "incidents": 1,
        "jobs": 1,
    }
    (step,) = frame["steps"]
    assert (step["process_id"], step["bpmn_id"], step["role"], step["kind"]) == (
        "return_request",
        "approve_return",
        "customer_service",
        "user",
    )
    assert (step["open"], step["overdue"], step["escalated"]) == (2, 1, 1)
    assert step["oldest_key"] == "RMA-2026-000001"
    assert step["oldest_age_seconds"] == 49 * 3600  # applied on day 1 at 09:00
    assert frame["roles"] == {"customer_service": {"open": 2, "overdue": 1}}
    (escalated,) = frame["escalated"]
    assert (escalated["key"], escalated["escalated_to"], escalated["overdue"]) == (
        "RMA-2026-000001",
        "customer_service_supervisor",
        True,
    )
    (incident,) = frame["incidents"]
    assert (incident["key"], incident["bpmn_id"], incident["operator"]) == (
        "K-1",
        "call",
        "test.double",
    )
    assert "service unreachable" in incident["error"]
    assert frame["jobs"] == {"queued": 1, "retrying": 0, "running": 0}
    assert frame["in_flight"]["process"] == {"return_request": 2, "review_call": 2}
    assert sum(frame["in_flight"]["ticket"].values()) == 2  # K-1 and K-2 are no returns


def test_the_frame_as_people_read_it(floor: Cli) -> None:
    text = floor("watch", "--once", now=DAY3).stdout
    assert text.startswith(
        "Work in flight (everyone) at 2026-11-04 10:00: 2 open, 1 overdue, 1 escalated, "
        "1 failed, 1 jobs\n"
    )
    assert "Ctrl-C" not in text  # one frame: nothing to stop
    assert "Approve the return [approve_return]" in text
    assert "1 OVERDUE" in text
    assert "RMA-2026-000001, 2d 1h" in text  # the oldest waiting, and how long
    assert "customer_service_supervisor" in text
    assert "ConnectionError: service unreachable" in text
    assert "Jobs waiting for a worker: 1 queued, 0 retrying, 0 running." in text
    assert "Running, by process: return_request 2, review_call 2." in text


def test_a_role_sees_its_own_work_and_what_was_escalated_to_it(floor: Cli) -> None:
    finance = floor.json("watch", "--once", "--role", "finance", now=DAY3)
    assert finance["role"] == "finance"
    assert (finance["steps"], finance["escalated"], finance["incidents"]) == ([], [], [])
    supervisor = floor.json("watch", "--once", "--role", "customer_service_supervisor", now=DAY3)
    assert [i["key"] for i in supervisor["escalated"]] == ["RMA-2026-000001"]
    assert [(s["bpmn_id"], s["open"]) for s in supervisor["steps"]] == [("approve_return", 1)]
    assert "No open work." in floor("watch", "--once", "--role", "finance", now=DAY3).stdout


def test_everyones_work_is_for_supervisors_and_a_refusal_is_recorded(floor: Cli) -> None:
    floor("users", "add", "ada", "--role", "admin", actor="ada")
    floor("users", "add", "cs-ann", "--role", "customer_service", actor="ada")
    refused = floor("watch", "--once", actor="cs-ann", code=4)
    assert "may not list everyone's tasks" in refused.stderr
    denied = floor.json("operations", "--denied", actor="ada")
    assert [(o["operation"], o["actor"]) for o in denied][-1] == ("watch", "cs-ann")
    own = floor.json("watch", "--once", "--role", "customer_service", actor="cs-ann", now=DAY3)
    assert own["totals"]["open"] == 2
    assert floor.json("watch", "--once", actor="ada", now=DAY3)["totals"]["incidents"] == 1


def test_the_live_view_refreshes_until_ctrl_c(floor: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    shown = floor("watch", "--interval", "2", now=DAY3)  # exits 0 on Ctrl-C
    assert waits == [2.0, 2.0]  # one refresh between the two waits
    assert "refreshed every 2s, Ctrl-C to stop" in shown.stdout
    assert "Approve the return [approve_return]" in shown.stdout


def test_json_is_one_frame(floor: Cli) -> None:
    wrong = floor("watch", "--json", code=2)
    assert "add --once" in wrong.stderr


def test_a_frame_reads_through_the_driver_alone(tmp_path: Path) -> None:
    run = Cli(f"sqlite:///{tmp_path / 'light.db'}")
    run("init")
    run("deploy", str(PROCESSES), actor="owner")
    modules = imported(tmp_path, ["watch", "--once"], run.db)
    assert "sqlite3" in modules
    assert top_level(modules) & HEAVY == {"rich"}
    assert not any(name.startswith(("engine.spiff", "engine.api")) for name in modules)
    assert modules & HANDLER_MODULES == set()
