"""The operator's reading commands on the real procedure, through click's CliRunner: the
worklist (overdue first, sort, filters, summary, CSV), `show` as the whole picture of a
return, and `history` as a story with what each step changed and the command that
asked for it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support import PROCESSES
from test_cli import ENV_VARS, RETURN_REQUEST, WORKLIST_KEYS, Cli

ORDERS = Path(__file__).parent.parent.parent / "docs" / "demo" / "orders.csv"
DAY1 = "2026-11-02T09:00Z"
DAY1_LATER = "2026-11-02T11:00Z"
DAY3 = "2026-11-04T12:00Z"  # the approval of a day-1 request is due on day 3 at 09:00


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def desk(tmp_path: Path) -> Cli:
    """The procedure deployed, the demo's orders imported, two returns waiting for
    approval: RMA-2026-000001 (the print, applied at 09:00) and RMA-2026-000002 (the
    bronze, applied at 11:00)."""
    run = Cli(f"sqlite:///{tmp_path / 'desk.db'}")
    run("init")
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
    return run


def test_the_worklist_has_summary_age_and_due_time(desk: Cli) -> None:
    first, second = desk.json("tasks", now=DAY1_LATER)
    assert list(first) == WORKLIST_KEYS
    assert (first["business_key"], first["bpmn_id"]) == ("RMA-2026-000001", "approve_return")
    assert first["summary"] == {
        "artwork": "Mist over Huangshan, open edition",
        "customer": "Wang Fang",
    }
    assert second["summary"] == {"artwork": "Crane, bronze", "customer": "Li Wei"}
    assert (first["age_seconds"], second["age_seconds"]) == (7200, 0)
    assert (first["overdue"], second["overdue"]) == (False, False)
    text = desk("tasks", now=DAY1_LATER).stdout
    for column in ("task", "rma", "artwork", "customer", "step", "role", "assignee", "age"):
        assert column in text
    assert "Mist over Huangshan" in text
    assert "2h 0m" in text


def test_overdue_tasks_come_first_and_can_be_listed_alone(desk: Cli) -> None:
    # Both approvals are due two days after their request; at day 3 noon the first is
    # overdue (due 09:00) and so is the second (due 11:00). Earlier, at day 3 10:00,
    # only the first.
    at_ten = desk.json("tasks", now="2026-11-04T10:00Z")
    assert [(t["business_key"], t["overdue"]) for t in at_ten] == [
        ("RMA-2026-000001", True),
        ("RMA-2026-000002", False),
    ]
    late = desk.json("tasks", "--overdue", now="2026-11-04T10:00Z")
    assert [t["business_key"] for t in late] == ["RMA-2026-000001"]
    assert "OVERDUE" in desk("tasks", now="2026-11-04T10:00Z").stdout
    assert desk.json("tasks", "--overdue", now=DAY1_LATER) == []


def test_sort_by_age_puts_the_oldest_first(desk: Cli) -> None:
    desk(
        "apply",
        *("--order", "D-2002", "--artwork", "W-102", "--type", "return"),
        *("--reason", "defective", "--description", "A tear in the paper"),
        now="2026-11-02T10:00Z",
        actor="cs-ann",
    )
    by_age = desk.json("tasks", "--sort", "age", now=DAY1_LATER)
    assert [t["business_key"] for t in by_age] == [
        "RMA-2026-000001",
        "RMA-2026-000003",
        "RMA-2026-000002",
    ]
    ages = [t["age_seconds"] for t in by_age]
    assert ages == sorted(ages, reverse=True)
    assert "--sort" in desk("tasks", "--sort", "size", code=2).stderr


def test_csv_has_a_header_and_one_task_a_line(desk: Cli) -> None:
    text = desk("tasks", "--csv", now=DAY1_LATER).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        *("task_id", "rma", "step", "name", "role", "assignee", "due_at", "overdue"),
        *("escalated_to", "created_at", "age_seconds", "state", "kind", "artwork", "customer"),
    ]
    assert [(r["rma"], r["step"], r["role"], r["overdue"]) for r in rows] == [
        ("RMA-2026-000001", "approve_return", "customer_service", "false"),
        ("RMA-2026-000002", "approve_return", "customer_service", "false"),
    ]
    assert rows[1]["customer"] == "Li Wei"
    assert rows[0]["due_at"] == "2026-11-04T09:00:00+00:00"
    assert "not both" in desk("tasks", "--csv", "--json", code=2).stderr


def test_show_gives_the_whole_picture_of_a_return(desk: Cli) -> None:
    desk("claim", "RMA-2026-000002:approve_return", now=DAY1_LATER, actor="cs-bob")
    text = desk("show", "RMA-2026-000002", now=DAY1_LATER).stdout
    for expected in (
        "RMA-2026-000002  return_request v1, running",
        "customer:  Li Wei <li.wei@example.com>",
        "order:     D-2004, store (CN)",
        "artwork:   W-104 Crane, bronze by Guo Tai (sculpture), CNY 180,000.00",
        "request:   return, not_as_described",
        "Approve the return [approve_return]",
        "cs-bob",  # who holds the open step
        "2026-11-04 11:00",  # its deadline
        "Notices sent:",
        "received",
    ):
        assert expected in text, expected
    shown = desk.json("show", "RMA-2026-000002", now=DAY1_LATER)
    picture = shown["return"]
    assert list(picture) == [
        *("rma", "ticket", "customer", "order", "artworks", "request", "policy"),
        *("money", "evidence", "notices"),
    ]
    assert picture["rma"] == "RMA-2026-000002"
    assert picture["customer"]["name"] == "Li Wei"
    assert picture["artworks"][0]["price"] == {"amount": "180000.00", "currency": "CNY"}
    assert picture["policy"]["eligibility"] is not None
    assert [n["notice"] for n in picture["notices"]] == ["received"]
    [open_task] = [t for t in shown["open_tasks"] if t["kind"] == "user"]
    assert open_task["claimed_by"] == "cs-bob"


def test_show_of_an_instance_that_is_no_return(tmp_path: Path) -> None:
    run = Cli(f"sqlite:///{tmp_path / 'plain.db'}")
    run("init")
    run("deploy", str(RETURN_REQUEST))
    run("start", "return_request", "--key", "K-1", "--set", "customer=Ann")
    assert run.json("show", "K-1")["return"] is None
    assert 'data:      {"customer": "Ann"}' in run("show", "K-1").stdout


def test_history_reads_as_a_story_with_changes_and_intent(desk: Cli) -> None:
    desk(
        "complete",
        "RMA-2026-000001:approve_return",
        *("--set", "decision=approve", "--set", "note=Sealed"),
        now=DAY1_LATER,
        actor="cs-bob",
    )
    events = desk.json("history", "RMA-2026-000001")
    [done] = [e for e in events if e["kind"] == "task_completed"]
    assert done["actor"] == "cs-bob"
    assert done["data"]["intent"] == (
        "artreturns complete RMA-2026-000001:approve_return "
        "--set decision=approve --set note=Sealed"
    )
    assert done["data"]["changed"]["approval_result"] == [None, "approved"]
    assert done["data"]["changed"]["cs_approval"] == [
        None,
        {"decision": "approve", "note": "Sealed"},
    ]
    # One command, one intent: the handlers that ran after it carry none.
    later = events[events.index(done) + 1 :]
    assert later
    assert all("intent" not in e["data"] for e in later)
    started = events[0]
    assert started["kind"] == "started"
    assert started["data"]["intent"].startswith("artreturns apply --order D-2001 ")
    assert "--db" not in started["data"]["intent"]  # global options are not the intent

    story = desk("history", "RMA-2026-000001").stdout
    assert "completed 'Approve the return'" in story
    assert "approval_result: — -> approved" in story
    assert "asked: artreturns complete RMA-2026-000001:approve_return" in story
    assert "notify.customer ran" in story


def test_a_refusal_is_in_the_story_with_what_was_asked(desk: Cli) -> None:
    desk("users", "add", "ada", "--role", "admin", actor="ada")
    desk("users", "add", "fin-fay", "--role", "finance", actor="ada")
    refused = desk("claim", "RMA-2026-000001:approve_return", actor="fin-fay", code=4)
    assert "needs the role customer_service" in refused.stderr
    denied = [
        e for e in desk.json("history", "RMA-2026-000001", actor="ada") if e["kind"] == "denied"
    ]
    assert [(e["actor"], e["data"]["operation"]) for e in denied] == [("fin-fay", "claim")]
    assert denied[0]["data"]["intent"] == "artreturns claim RMA-2026-000001:approve_return"
    story = desk("history", "RMA-2026-000001", actor="ada").stdout
    assert "was refused (claim): fin-fay may not claim" in story
    logged = desk.json("operations", actor="ada")
    added = [o for o in logged if o["operation"] == "users add"]
    assert [o["details"]["intent"] for o in added] == [
        "artreturns users add ada --role admin",
        "artreturns users add fin-fay --role finance",
    ]


def test_tables_print_user_text_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Cells hold what people typed: never read as markup or emoji codes."""
    import cli as cli_module

    cli_module._console().print("[bold]Crane[/bold] :smile: :thumbs_up:")
    assert capsys.readouterr().out.strip() == "[bold]Crane[/bold] :smile: :thumbs_up:"
