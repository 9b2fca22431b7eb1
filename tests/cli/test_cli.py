"""The `artreturns` command line, through click's CliRunner and once as a real process.

Every test runs on its own SQLite file and a fixed clock (`--now`), and asserts on what a
user would read: stdout, stderr and the exit code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import BPMN, FIXTURES

import cli as cli_module
from engine import Registry, TaskContext

ROOT = Path(__file__).resolve().parents[2]

# The first, small return_request: intake and one review (the CLI is tested on it).
RETURN_REQUEST = FIXTURES / "cli" / "return_request.bpmn"
T0 = "2026-11-02T09:00:00Z"
REGISTERED = (
    "--set",
    "order_number=A-1",
    "--set",
    "artwork=Blue Lake",
    "--set",
    "type=return",
    "--set",
    "reason=damaged in transit",
)
TASK_KEYS = [
    "id",
    "short_id",
    "instance_id",
    "business_key",
    "bpmn_id",
    "name",
    "kind",
    "role",
    "state",
    "operator",
    "due_at",
    "escalated_to",
    "created_at",
    "ended_at",
    "completed_by",
    "attempts",
    "error",
    "claimed_by",
    "claimed_at",
]
#: `tasks --json` adds these to a task's keys.
WORKLIST_KEYS = [*TASK_KEYS, "overdue", "age_seconds", "summary"]
ENV_VARS = (
    "ARTRETURNS_DB",
    "ARTRETURNS_NOW",
    "ARTRETURNS_USER",
    "ARTRETURNS_INLINE_HANDLERS",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)


class Cli:
    """Runs `artreturns` in-process on one database, as one user, at a fixed time."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        code: int = 0,
        now: str | None = T0,
        actor: str | None = "tester",
        db: str | None = "",
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Result:
        argv: list[str] = []
        if db is not None:
            argv += ["--db", db or self.db]
        if now is not None:
            argv += ["--now", now]
        if actor is not None:
            argv += ["--as", actor]
        result = self.runner.invoke(
            cli_module.cli,
            [*argv, *args],
            input=input,
            env=env,
            prog_name="artreturns",
            catch_exceptions=False,
        )
        assert result.exit_code == code, (
            f"artreturns {' '.join(args)}: exit {result.exit_code}, expected {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self(*args, "--json", **kwargs).stdout)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own ARTRETURNS_* settings must not leak into the tests."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'x.db'}"


@pytest.fixture
def run(db: str) -> Cli:
    """A CLI on an initialised, empty database."""
    cli = Cli(db)
    cli("init")
    return cli


@pytest.fixture
def started(run: Cli) -> Cli:
    """return_request deployed, RMA-1 started at T0 and waiting at `register`."""
    run("deploy", str(RETURN_REQUEST))
    run("start", "return_request", "--key", "RMA-1", "--set", "customer=Ann")
    return run


def short_id(output: str, bpmn_id: str) -> str:
    """The short task id printed in front of an open step in a command's `Open:` list."""
    match = re.search(rf"^  ([0-9a-f]{{8}})  .* \[{re.escape(bpmn_id)}\]  \(", output, re.M)
    assert match, f"no open step [{bpmn_id}] in:\n{output}"
    return match.group(1)


def error_lines(result: Result) -> list[str]:
    return result.stderr.strip().splitlines()


# -- init, deploy, validate, processes -------------------------------------------------


def test_init_creates_the_schema_then_reports_it_up_to_date(db: str) -> None:
    cli = Cli(db)
    first = cli("init")
    created = re.fullmatch(r"Database \S+x\.db: schema none -> ([\w ]+)\.\n", first.stdout)
    assert created is not None
    assert "0012" in created.group(1).split()  # the engine's branch, and the procedure's
    again = cli("init")
    same = re.fullmatch(r"Database \S+x\.db is up to date \(schema ([\w ]+)\)\.\n", again.stdout)
    assert same is not None
    assert same.group(1) == created.group(1)


def test_an_uninitialised_database_says_to_run_init(db: str) -> None:
    result = Cli(db)("tasks", code=1)
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message.startswith("Error: the database ")
    assert message.endswith("has no artreturns schema")
    assert "artreturns init" in hint
    assert hint.startswith("Hint: ")


def test_deploy_creates_version_1_once(run: Cli) -> None:
    first = run("deploy", str(RETURN_REQUEST))
    assert first.stdout == "return_request: deployed as version 1  (Return request)\n"
    again = run("deploy", str(RETURN_REQUEST))
    assert again.stdout == "return_request: unchanged at version 1  (Return request)\n"
    [listed] = run.json("deploy", str(RETURN_REQUEST.parent))  # a folder works too
    assert (listed["process_id"], listed["version"], listed["created"]) == (
        "return_request",
        1,
        False,
    )


def test_a_changed_diagram_is_deployed_as_version_2(run: Cli, tmp_path: Path) -> None:
    run("deploy", str(RETURN_REQUEST))
    changed = tmp_path / "return_request.bpmn"
    changed.write_text(
        RETURN_REQUEST.read_text().replace(
            '<bpmn:process id="return_request" name="Return request"',
            '<bpmn:process id="return_request" name="Return request v2"',
        )
    )
    assert "deployed as version 2" in run("deploy", str(changed)).stdout
    latest = run("processes").stdout
    assert "Return request v2" in latest
    assert "(old)" not in latest
    every = run("processes", "--all").stdout
    assert "return_request (old)" in every
    result = run("start", "return_request", "--version", "1", "--key", "OLD-1")
    assert result.stdout.startswith("Started OLD-1 (return_request v1): running\n")


def test_a_broken_diagram_lists_its_problems_and_deploys_nothing(run: Cli) -> None:
    # The shipped handlers provide neither test.double nor test.reject.
    files = [RETURN_REQUEST, BPMN / "review_call.bpmn", BPMN / "error_service.bpmn"]
    result = run("deploy", *map(str, files), code=1)
    assert result.stdout == ""
    lines = error_lines(result)
    assert lines[0].startswith("Error: ")
    assert lines[0] == "Error: 2 problems in the diagrams:"
    problems = [line for line in lines if line.startswith("  ")]
    assert len(problems) == 2
    assert any("review_call.bpmn" in p and "'test.double'" in p for p in problems)
    assert any("error_service.bpmn" in p and "'test.reject'" in p for p in problems)
    assert lines[-1].startswith("Hint: ")
    assert "Traceback" not in result.stderr
    # return_request itself was fine, but nothing is deployed when any file fails.
    assert run("processes").stdout.startswith("No processes deployed.")
    assert run.json("processes") == []


def test_validate_checks_without_deploying(run: Cli) -> None:
    ok = run("validate", str(RETURN_REQUEST))
    assert ok.stdout == "return_request: ok  (Return request)\n"
    assert run.json("processes") == []
    bad = run("validate", str(BPMN / "review_call.bpmn"), code=1)
    assert "names operator 'test.double', which no handler provides" in bad.stderr
    assert error_lines(bad)[-1].startswith("Hint: ")


def test_deploy_of_a_missing_path_is_an_input_error(run: Cli, tmp_path: Path) -> None:
    result = run("deploy", str(tmp_path / "nowhere"), code=2)
    assert "nowhere" in result.stderr
    assert result.stderr.startswith("Error: ")


def test_processes_as_text_and_json(run: Cli) -> None:
    assert run("processes").stdout == (
        "No processes deployed. Deploy some with `artreturns deploy processes/`.\n"
    )
    run("deploy", str(RETURN_REQUEST), actor="owner")
    text = run("processes").stdout
    [row] = [line for line in text.splitlines() if "return_request" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [
        "return_request",
        "1",
        "Return request",
        "customer_service, customer_service_supervisor",
        "2026-11-02 09:00",
        "owner",
    ]
    [process] = run.json("processes")
    assert process["process_id"] == "return_request"
    assert process["version"] == 1
    assert process["latest"] is True
    assert process["deployed_by"] == "owner"
    assert process["deployed_at"] == "2026-11-02T09:00:00+00:00"
    assert process["lanes"] == ["customer_service", "customer_service_supervisor"]
    assert [f["name"] for f in process["files"]] == ["return_request.bpmn"]


# -- start and its data --------------------------------------------------------------


def test_start_prints_the_instance_and_its_open_step(run: Cli) -> None:
    run("deploy", str(RETURN_REQUEST))
    result = run("start", "return_request", "--key", "RMA-7")
    lines = result.stdout.splitlines()
    assert lines[0] == "Started RMA-7 (return_request v1): running"
    assert lines[1] == "Open:"
    assert re.fullmatch(
        r"  [0-9a-f]{8}  Register the request \[register\]  \(user, role customer_service\)",
        lines[2],
    )
    assert len(lines) == 3
    assert result.stderr == ""


def test_start_data_from_a_file_and_set_options(started: Cli, tmp_path: Path) -> None:
    data = tmp_path / "request.json"
    data.write_text(json.dumps({"customer": "Ann", "address": {"city": "Ghent"}}))
    started(
        "start",
        "return_request",
        "--key",
        "RMA-2",
        "--data",
        f"@{data}",
        "--set",
        "address.zip=9000",  # JSON number, merged into the object from the file
        "--set",
        "address.street=Veldstraat 1",  # not JSON: kept as text
        "--set",
        "urgent=true",
        "--set",
        'code="0042"',  # JSON string: stays text
        "--set",
        "tags=[1, 2]",
        "--set",
        "shipping.carrier.name=DHL",  # dotted keys make nested objects
    )
    shown = started.json("show", "RMA-2")
    assert shown["data"] == {
        "customer": "Ann",
        "address": {"city": "Ghent", "zip": 9000, "street": "Veldstraat 1"},
        "urgent": True,
        "code": "0042",
        "tags": [1, 2],
        "shipping": {"carrier": {"name": "DHL"}},
    }


def test_start_with_inline_json_data_and_json_output(started: Cli) -> None:
    result = started.json(
        "start", "return_request", "--key", "RMA-3", "--data", '{"amount": 1200, "note": "é"}'
    )
    assert result["instance"]["business_key"] == "RMA-3"
    assert result["instance"]["status"] == "running"
    assert result["instance"]["data"] == {"amount": 1200, "note": "é"}
    assert [e["kind"] for e in result["events"]] == ["started"]
    assert result["failures"] == []


def test_bad_data_json_is_an_input_error(started: Cli) -> None:
    result = started("start", "return_request", "--data", "{bad", code=2)
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message.startswith("Error: --data is not valid JSON")
    assert "line 1 column 2" in message
    assert hint.startswith("Hint: ")
    not_object = started("start", "return_request", "--data", "[1, 2]", code=2)
    assert "--data must be a JSON object" in not_object.stderr


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ('{"a": NaN}', "NaN is not a number JSON can hold"),
        ('{"a": [-Infinity]}', "-Infinity is not a number JSON can hold"),
        ('{"a": 1e400}', "1e400 is too large a number to store"),
    ],
)
def test_numbers_json_cannot_hold_are_refused_as_given(started: Cli, data: str, said: str) -> None:
    before = started.json("instances")
    refused = started("start", "return_request", "--data", data, code=2)
    assert f"Error: --data is not valid JSON: {said}" in refused.stderr
    assert started.json("instances") == before  # nothing started
    kept = started.json("start", "return_request", "--set", "note=NaN", "--set", "n=1e400")
    assert kept["instance"]["data"] == {"note": "NaN", "n": "1e400"}  # not JSON: kept as text


def test_data_from_a_missing_file_is_an_input_error(started: Cli, tmp_path: Path) -> None:
    result = started("start", "return_request", "--data", f"@{tmp_path / 'none.json'}", code=2)
    assert "cannot read" in result.stderr
    assert "none.json" in result.stderr


def test_data_from_a_file_too_large_or_not_utf8_is_an_input_error(
    started: Cli, tmp_path: Path
) -> None:
    endless = started("start", "return_request", "--data", "@/dev/zero", code=2)
    assert "/dev/zero is larger than 16 MiB" in endless.stderr
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"name": "Dürer"}'.encode("latin-1"))
    result = started("start", "return_request", "--data", f"@{latin}", code=2)
    assert "is not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(run: Cli) -> None:
    """A text that begins like a formula gets a leading apostrophe in every CSV out;
    numbers, a lone "-" and other texts are written as they are."""
    run("deploy", str(RETURN_REQUEST))
    names = {
        "RMA-1": '=HYPERLINK("http://example.com","x")',
        "RMA-2": "@SUM(A1:A9)",
        "RMA-3": "-12.50",
        "RMA-4": "+1 (555) 0100",
        "RMA-5": "Ann - Lee",
    }
    for key, name in names.items():
        run("start", "return_request", "--key", key, "--set", f"customer.name={name}")
    rows = list(csv.DictReader(io.StringIO(run("tasks", "--csv").stdout)))
    got = {row["rma"]: row["customer"] for row in rows}
    assert got == {
        "RMA-1": '\'=HYPERLINK("http://example.com","x")',
        "RMA-2": "'@SUM(A1:A9)",
        "RMA-3": "-12.5",  # read as the number it is
        "RMA-4": "'+1 (555) 0100",
        "RMA-5": "Ann - Lee",
    }
    written = {"-": "-", "-0": "-0", "+3.5": "+3.5", "12": "12", "\tx": "'\tx", "-x": "'-x"}
    assert {cell: cli_module.csv_cell(cell) for cell in written} == written
    assert cli_module.csv_cell(7) == 7


def test_set_without_equals_is_an_input_error(started: Cli) -> None:
    result = started("start", "return_request", "--set", "approved", code=2)
    assert error_lines(result) == [
        "Error: --set 'approved' is not key=value",
        "Hint: For example --set approved=true.",
    ]
    conflict = started("start", "return_request", "--set", "a=1", "--set", "a.b=2", code=2)
    assert "'a' is already a value" in conflict.stderr
    # Nothing was started by the refused commands.
    assert [t["business_key"] for t in started.json("tasks")] == ["RMA-1"]


def test_start_of_an_unknown_process(run: Cli) -> None:
    result = run("start", "nope", code=1)
    message, hint = error_lines(result)
    assert message == "Error: no deployed process 'nope'"
    assert "artreturns deploy" in hint


def test_a_business_key_can_only_be_used_once(started: Cli) -> None:
    result = started("start", "return_request", "--key", "RMA-1", code=2)
    assert "RMA-1" in result.stderr
    assert len(started.json("tasks")) == 1


# -- tasks, show, complete -----------------------------------------------------------


def test_tasks_lists_ready_user_tasks_with_filters(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED)
    text = started("tasks").stdout
    assert "Review and decide" in text
    assert "RMA-1" in text
    assert "2026-11-04 09:00" in text  # due: the P2D boundary timer
    assert "2 days" not in text  # the timer itself is not a user task
    assert "WAITING" not in text

    everything = started("tasks", "--any-kind").stdout
    assert "2 days" in everything
    assert "WAITING" in everything
    assert "Review and decide" in everything

    assert "Review and decide" in started("tasks", "--role", "customer_service").stdout
    supervisor = started("tasks", "--role", "customer_service_supervisor")
    assert supervisor.stdout == "No open tasks.\n"
    assert started.json("tasks", "--role", "customer_service_supervisor") == []


def test_tasks_json_has_stable_keys(started: Cli) -> None:
    [task] = started.json("tasks")
    assert list(task) == WORKLIST_KEYS
    assert task["id"].startswith(task["short_id"])
    assert len(task["short_id"]) == 8
    assert (task["business_key"], task["bpmn_id"], task["kind"], task["state"]) == (
        "RMA-1",
        "register",
        "user",
        "READY",
    )
    assert task["role"] == "customer_service"
    assert task["created_at"] == "2026-11-02T09:00:00+00:00"
    every = started.json("tasks", "--any-kind", "--instance", "RMA-1")
    assert all(list(t) == WORKLIST_KEYS for t in every)


def test_tasks_come_earliest_deadline_first(started: Cli) -> None:
    started("start", "return_request", "--key", "RMA-2")
    started("start", "return_request", "--key", "RMA-3")
    started("complete", "RMA-2:register", *REGISTERED, now="2026-11-02T10:00:00Z")
    started("complete", "RMA-1:register", *REGISTERED, now="2026-11-02T11:00:00Z")
    order = [(t["business_key"], t["bpmn_id"]) for t in started.json("tasks")]
    # Tasks with a deadline first (earliest first), then the rest by creation.
    assert order == [("RMA-2", "review"), ("RMA-1", "review"), ("RMA-3", "register")]
    only = started.json("tasks", "--instance", "RMA-3")
    assert [(t["business_key"], t["bpmn_id"]) for t in only] == [("RMA-3", "register")]


def test_the_task_table_shows_the_bpmn_id_of_each_step(started: Cli) -> None:
    assert "Register the request [register]" in started("tasks").stdout
    assert "Register the request [register]" in started("show", "RMA-1").stdout


def test_text_that_looks_like_markup_is_printed_as_is(started: Cli) -> None:
    started("comment", "RMA-1", "refund [/b] pending")
    result = started.runner.invoke(
        cli_module.cli, ["--db", started.db, "history", "RMA-1"], catch_exceptions=True
    )
    assert result.exit_code == 0, result.exception
    assert "refund [/b] pending" in result.stdout


def test_instances_lists_where_each_instance_stands(started: Cli) -> None:
    started("start", "return_request", "--key", "RMA-2", now="2026-11-02T10:00:00Z")
    started("cancel", "RMA-2", now="2026-11-02T11:00:00Z")
    text = started("instances").stdout
    [row] = [line for line in text.splitlines() if "RMA-1" in line]
    assert "return_request v1" in row
    assert "running" in row
    assert "Register the request (customer_service)" in row
    listed = started.json("instances")
    assert [(i["business_key"], i["status"]) for i in listed] == [
        ("RMA-2", "cancelled"),  # most recently changed first
        ("RMA-1", "running"),
    ]
    running = started.json("instances", "--status", "running")
    assert [i["business_key"] for i in running] == ["RMA-1"]
    assert started("instances", "--process", "nope").stdout == "No instances.\n"
    bad = started("instances", "--status", "paused", code=2)
    assert "'paused' is not one of" in bad.stderr


def test_show_as_text(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED, actor="bea")
    lines = started("show", "RMA-1").stdout.splitlines()
    # started, task_completed, handler_result
    assert lines[0] == "RMA-1  return_request v1, running  (instance #1, 3 events)"
    assert lines[1] == "  started:   2026-11-02 09:00 by tester"
    assert lines[2] == "  next timer: 2026-11-04 09:00"
    data = json.loads(lines[3].removeprefix("  data:      "))
    assert data["customer"] == "Ann"
    assert data["completeness"] == {"complete": True, "missing": []}
    text = "\n".join(lines)
    assert "Now:" in text
    assert "Review and decide" in text
    assert "Path so far:" in text
    [done] = [line for line in lines if "Register the request" in line]
    assert "2026-11-02 09:00" in done
    assert "bea" in done


def test_show_as_json(started: Cli) -> None:
    shown = started.json("show", "#1")  # by number as well as by key
    assert shown["business_key"] == "RMA-1"
    assert shown["status"] == "running"
    assert shown["started_by"] == "tester"
    assert shown["data"] == {"customer": "Ann"}
    assert [t["bpmn_id"] for t in shown["open_tasks"]] == ["register"]
    assert shown["done_tasks"] == []
    assert list(shown["open_tasks"][0]) == TASK_KEYS


def test_complete_by_printed_short_id_then_by_key_and_step(run: Cli, tmp_path: Path) -> None:
    run("deploy", str(RETURN_REQUEST))
    started = run("start", "return_request", "--key", "RMA-1")
    register = short_id(started.stdout, "register")
    form = tmp_path / "form.json"
    form.write_text(json.dumps({"order_number": "A-1", "artwork": "Blue Lake", "type": "return"}))

    done = run("complete", register, "--data", f"@{form}", "--set", "reason=damaged")
    lines = done.stdout.splitlines()
    assert lines[0] == "Completed a task of RMA-1 (return_request v1): running"
    assert re.fullmatch(
        r"  [0-9a-f]{8}  Review and decide \[review\]  "
        r"\(user, role customer_service, due 2026-11-04 09:00\)",
        lines[2],
    )
    assert "2 days [review_overdue]  (timer" in done.stdout

    final = run("complete", "RMA-1:review", "--set", "approved=true")
    assert final.stdout == "Completed a task of RMA-1 (return_request v1): completed\n"
    shown = run.json("show", "RMA-1")
    assert shown["status"] == "completed"
    assert shown["data"]["request"]["reason"] == "damaged"
    assert shown["data"]["approved"] is True
    assert shown["open_tasks"] == []
    # The same reference again: the task is gone.
    again = run("complete", "RMA-1:review", code=1)
    assert error_lines(again)[0] == "Error: no open task 'RMA-1:review'"


def test_complete_with_json_output(started: Cli) -> None:
    result = started.json("complete", "RMA-1:register", *REGISTERED)
    assert [e["kind"] for e in result["events"]] == ["task_completed", "handler_result"]
    assert [t["bpmn_id"] for t in result["instance"]["open_tasks"]] == ["review", "review_overdue"]


def test_complete_rejects_references_that_are_not_tasks(started: Cli) -> None:
    not_an_id = started("complete", "zzzz", code=2)
    message, hint = error_lines(not_an_id)
    assert message == "Error: 'zzzz' is not a task id"
    assert "INSTANCE:STEP" in hint
    missing = started("complete", "0000000", code=1)
    assert error_lines(missing)[0] == "Error: no open task '0000000'"


# -- cancel, comment, message ----------------------------------------------------------


def test_cancel_ends_the_instance_and_keeps_the_reason(started: Cli) -> None:
    result = started("cancel", "RMA-1", "--reason", "customer withdrew")
    assert result.stdout == "Cancelled RMA-1 (return_request v1): cancelled\n"
    assert started("tasks").stdout == "No open tasks.\n"
    last = started.json("history", "RMA-1")[-1]
    assert (last["kind"], last["data"]) == (
        "cancelled",
        {
            "reason": "customer withdrew",
            "intent": "artreturns cancel RMA-1 --reason 'customer withdrew'",
        },
    )
    again = started("cancel", "RMA-1", code=1)
    assert error_lines(again) == [
        "Error: RMA-1 is cancelled",
        "Hint: Only running instances can be changed.",
    ]


def test_show_keeps_the_data_of_a_cancelled_instance(started: Cli) -> None:
    started("cancel", "RMA-1")
    assert started.json("show", "RMA-1")["data"] == {"customer": "Ann"}


def test_comment_is_added_to_the_history(started: Cli) -> None:
    result = started("comment", "RMA-1", "Called the customer", actor="cyd")
    assert result.stdout.startswith("Commented on RMA-1 (return_request v1): running\n")
    last = started.json("history", "RMA-1")[-1]
    assert (last["kind"], last["actor"], last["data"]) == (
        "comment",
        "cyd",
        {"text": "Called the customer", "intent": "artreturns comment RMA-1 'Called the customer'"},
    )
    empty = started("comment", "RMA-1", "  ", code=2)
    assert error_lines(empty) == ["Error: the comment is empty"]


def test_message_is_delivered_to_a_waiting_instance(run: Cli) -> None:
    run("deploy", str(BPMN / "msg_wait.bpmn"))
    run("start", "msg_wait", "--key", "M-1")
    assert run("tasks").stdout == "No open tasks.\n"
    [waiting] = run.json("tasks", "--any-kind")
    assert (waiting["bpmn_id"], waiting["kind"], waiting["state"]) == (
        "wait_payment",
        "message",
        "WAITING",
    )
    result = run("message", "M-1", "payment_received", "--set", "amount=120")
    assert result.stdout.startswith("Delivered to M-1 (msg_wait v1): running\nOpen:\n")
    assert "Ship [ship]  (user)" in result.stdout
    assert run.json("show", "M-1")["data"]["payment"] == {"amount": 120}
    refused = run("message", "M-1", "payment_received", code=1)
    assert "not waiting" in refused.stderr


# -- timers ----------------------------------------------------------------------------


def test_run_due_fires_the_boundary_timer_once_time_has_passed(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED)  # review is due 2026-11-04 09:00
    assert started("run-due", now="2026-11-03T09:00:00Z").stdout == "No timers due.\n"
    assert "Review and decide" in started("tasks", now="2026-11-03T09:00:00Z").stdout

    fired = started("run-due", now="2026-11-04T09:01:00Z")
    assert fired.stdout == "RMA-1: fired 1 timer event(s), now running\n"
    assert started("tasks", "--role", "customer_service").stdout == "No open tasks.\n"
    [escalated] = started.json("tasks", "--role", "customer_service_supervisor")
    assert (escalated["bpmn_id"], escalated["business_key"]) == ("review_escalated", "RMA-1")
    assert started.json("run-due", now="2026-11-05T09:00:00Z") == []
    assert started.json("history", "RMA-1")[-1]["kind"] == "timer_fired"


def test_run_due_json_reports_each_instance(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED)
    [item] = started.json("run-due", now="2026-11-10T00:00:00Z")
    assert item["instance"] == "RMA-1"
    assert item["error"] is None
    assert item["result"]["instance"]["status"] == "running"
    assert "timer_fired" in [e["kind"] for e in item["result"]["events"]]


@pytest.mark.parametrize(("command", "done"), [("run-due", "fired"), ("retry", "retried")])
def test_run_due_and_retry_all_exit_1_when_an_instance_could_not_be_done(
    started: Cli, monkeypatch: pytest.MonkeyPatch, command: str, done: str
) -> None:
    """Every instance is tried and reported; then a cron job or a script learns from
    the exit code that one was not. One skipped because another command changed it
    meanwhile is not a failure."""
    from engine.api import DueResult, Engine

    results = [
        DueResult("RMA-1", None, "the diagram's expression failed"),
        DueResult("RMA-2", None, "changed by another command; skipped", raced=True),
    ]
    method = "run_due" if command == "run-due" else "retry_all"
    monkeypatch.setattr(Engine, method, lambda self, **kwargs: results)
    argv = [command] if command == "run-due" else [command, "--all"]
    failed = started(*argv, code=1)
    assert "RMA-1: the diagram's expression failed" in failed.stderr
    assert "RMA-2: changed by another command; skipped" in failed.stderr
    assert f"Error: 1 of 2 instance(s) could not be {done}; the others were." in failed.stderr
    as_json = started(*argv, "--json", code=1)
    assert [item["instance"] for item in json.loads(as_json.stdout)] == ["RMA-1", "RMA-2"]
    del results[0]
    assert "could not be" not in started(*argv).stderr  # a race alone: exit 0


def test_a_bad_now_is_refused_with_a_clear_message(started: Cli) -> None:
    result = started("tasks", now="yesterday", code=2)
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message == "Error: --now (or ARTRETURNS_NOW): 'yesterday' is not an ISO 8601 time"
    assert hint.startswith("Hint: ")
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", hint), "the hint shows a valid time"
    assert "Traceback" not in result.stderr


# -- retry after a failing handler -------------------------------------------------------


class Flaky:
    """A `test.double` handler that fails on its first call and works afterwards."""

    def __init__(self) -> None:
        self.calls = 0

    def double(self, params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Return twice `value`; the first call fails as if the service were down."""
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("service unreachable")
        return {"value": params["value"] * 2}


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Flaky:
    handler = Flaky()
    registry = Registry()
    registry.register_mapping({"test.double": handler.double}, source="tests")
    monkeypatch.setattr(
        cli_module.Registry, "from_entry_points", classmethod(lambda cls, group="": registry)
    )
    return handler


def test_retry_runs_a_failed_service_task_again(run: Cli, flaky: Flaky) -> None:
    run("deploy", str(BPMN / "review_call.bpmn"))
    run("start", "review_call", "--key", "K-1", "--set", "amount=7")

    failed = run("complete", "K-1:review")
    assert failed.stdout.startswith("Completed a task of K-1 (review_call v1): running\n")
    assert "Call it [call]  (service, role system, FAILED: ConnectionError" in failed.stdout
    warning, hint = error_lines(failed)
    assert warning.startswith("Warning: a service task failed:")
    assert "service unreachable" in warning
    assert hint == "Hint: fix the cause, then run `artreturns retry K-1`."
    assert flaky.calls == 1

    assert "FAILED (1x)" in run("tasks", "--any-kind").stdout
    shown = run("show", "K-1").stdout
    assert shown.startswith("K-1  review_call v1, running, 1 failed task(s)  (instance #1")
    assert "Incidents:" in shown
    assert "calling test.double, 1 attempt(s): ConnectionError: service unreachable" in shown

    retried = run("retry", "K-1")
    assert retried.stdout == "Retried K-1 (review_call v1): completed\n"
    assert retried.stderr == ""
    assert flaky.calls == 2
    assert run.json("show", "K-1")["data"]["echo"] == {"value": 14}
    kinds = [e["kind"] for e in run.json("history", "K-1")]
    assert kinds == [
        "started",
        "task_completed",
        "handler_failed",
        "retried",
        "handler_result",
        "completed",
    ]
    nothing = run("retry", "K-1", code=1)
    assert error_lines(nothing)[0] == "Error: K-1 is completed"


def test_retry_without_failed_tasks_says_so(started: Cli) -> None:
    result = started("retry", "RMA-1", code=1)
    message, hint = error_lines(result)
    assert message == "Error: RMA-1: no failed tasks"
    assert "artreturns incidents" in hint


def test_incidents_list_failed_tasks_and_retry_takes_one_or_all(run: Cli, flaky: Flaky) -> None:
    run("deploy", str(BPMN / "review_call.bpmn"))
    assert run("incidents").stdout == "No incidents.\n"
    for key in ("K-1", "K-2"):
        run("start", "review_call", "--key", key, "--set", "amount=7")
        flaky.calls = 0  # each first call fails
        run("complete", f"{key}:review")

    listed = run.json("incidents")
    assert [(i["business_key"], i["bpmn_id"], i["operator"], i["attempts"]) for i in listed] == [
        ("K-1", "call", "test.double", 1),
        ("K-2", "call", "test.double", 1),
    ]
    assert "service unreachable" in listed[0]["error"]
    text = run("incidents", "--operator", "test.double").stdout
    assert listed[0]["short_id"] in text
    assert "ConnectionError" in text
    assert run.json("incidents", "--operator", "notify.customer") == []

    one = run("retry", listed[0]["short_id"])  # the incident by its id
    assert one.stdout == "Retried K-1 (review_call v1): completed\n"
    assert [i["business_key"] for i in run.json("incidents")] == ["K-2"]

    every = run("retry", "--all", "--operator", "test.double")
    assert every.stdout == "K-2: ran, now completed\n"
    assert run("incidents").stdout == "No incidents.\n"
    assert [e["kind"] for e in run.json("history", "K-2")][-3:] == [
        "retried",
        "handler_result",
        "completed",
    ]


def test_retry_needs_a_target_or_all(run: Cli) -> None:
    assert "give an incident or an instance" in run("retry", code=2).stderr
    assert "give an incident or an instance" in run("retry", "K-1", "--all", code=2).stderr


def test_handlers_lists_the_registry_in_use(run: Cli, flaky: Flaky) -> None:
    assert run.json("handlers") == [
        {
            "operator": "test.double",
            "summary": "Return twice `value`; the first call fails as if the service were down.",
            "source": "tests",
        }
    ]


# -- history and verify ------------------------------------------------------------------


def test_history_as_text_and_json_in_order(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED, now="2026-11-02T10:00:00Z")
    started("comment", "RMA-1", "checked by phone", now="2026-11-02T11:00:00Z")
    events = started.json("history", "RMA-1")
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["kind"] for e in events] == [
        "started",
        "task_completed",
        "handler_result",
        "comment",
    ]
    assert [e["at"] for e in events] == [
        "2026-11-02T09:00:00+00:00",
        "2026-11-02T10:00:00+00:00",
        "2026-11-02T10:00:00+00:00",
        "2026-11-02T11:00:00+00:00",
    ]
    assert events[1]["bpmn_id"] == "register"
    assert events[2]["data"]["operator"] == "intake.check_completeness"
    assert len({e["hash"] for e in events}) == 4

    text = started("history", "RMA-1").stdout
    rows = [line for line in text.splitlines() if re.match(r"│ \d ", line)]
    assert [row.split("│")[4].strip() for row in rows] == [
        "started return_request",
        "completed 'Register the request'",
        "'Check completeness': intake.check_completeness ran",
        "commented: checked by phone",
    ]
    assert "2026-11-02 10:00" in rows[1]
    assert "asked: artreturns comment RMA-1 'checked by phone'" in text


def test_history_of_an_unknown_instance(run: Cli) -> None:
    result = run("history", "RMA-404", code=1)
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message == "Error: no instance 'RMA-404'"
    assert hint.startswith("Hint: ")
    assert "Traceback" not in result.stderr


def test_verify_reports_an_intact_history(started: Cli) -> None:
    started("complete", "RMA-1:register", *REGISTERED)
    result = started("verify", "RMA-1")
    assert result.stdout == "RMA-1: history intact.\n"


def test_verify_names_the_event_that_was_changed(started: Cli, db: str) -> None:
    started("complete", "RMA-1:register", *REGISTERED)
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        changed = conn.execute(
            "UPDATE event SET data = replace(data, 'damaged', 'as new') WHERE seq = 2"
        ).rowcount
    assert changed == 1
    result = started.runner.invoke(
        cli_module.cli, ["--db", started.db, "verify", "RMA-1"], catch_exceptions=False
    )
    assert result.exit_code == 5
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message.startswith("Error: the history of RMA-1 is broken at event 2: ")
    assert hint.startswith("Hint: ")


# -- handlers ----------------------------------------------------------------------------


def test_handlers_lists_the_shipped_operators(run: Cli) -> None:
    text = run("handlers").stdout
    [row] = [line for line in text.splitlines() if "intake.check_completeness" in line]
    assert "Check that every required field of a request is present and not blank." in row
    listed = {h["operator"]: h for h in run.json("handlers")}
    assert listed["intake.check_completeness"]["summary"] == (
        "Check that every required field of a request is present and not blank."
    )


# -- errors, --debug, the acting user and the environment ----------------------------


def test_debug_prints_the_traceback_as_well(started: Cli) -> None:
    plain = started("show", "NOPE", code=1)
    assert "Traceback" not in plain.stderr
    debug = started("--debug", "show", "NOPE", code=1)
    assert "Traceback (most recent call last)" in debug.stderr
    assert "InstanceNotFoundError" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-2] == "Error: no instance 'NOPE'"


def test_debug_shows_the_traceback_for_a_bad_now(started: Cli) -> None:
    result = started("--debug", "tasks", now="yesterday", code=2)
    assert "Traceback (most recent call last)" in result.stderr


def test_the_acting_user_comes_from_as_or_the_environment(started: Cli) -> None:
    started("comment", "RMA-1", "by option", actor="ann")
    started("comment", "RMA-1", "by env", actor=None, env={"ARTRETURNS_USER": "bob"})
    started("comment", "RMA-1", "option wins", actor="cyd", env={"ARTRETURNS_USER": "bob"})
    events = started.json("history", "RMA-1")
    assert [(e["data"].get("text"), e["actor"]) for e in events[1:]] == [
        ("by option", "ann"),
        ("by env", "bob"),
        ("option wins", "cyd"),
    ]
    assert events[0]["actor"] == "tester"


def test_database_and_time_from_the_environment(db: str) -> None:
    cli = Cli(db)
    env = {
        "ARTRETURNS_DB": db,
        "ARTRETURNS_NOW": "2026-12-24T18:30:00+01:00",
        "ARTRETURNS_USER": "dee",
    }
    cli("init", db=None, now=None, actor=None, env=env)
    cli("deploy", str(RETURN_REQUEST), db=None, now=None, actor=None, env=env)
    cli("start", "return_request", "--key", "ENV-1", db=None, now=None, actor=None, env=env)
    # The same database, read through --db: the instance was stored there.
    shown = cli.json("show", "ENV-1")
    assert shown["started_at"] == "2026-12-24T17:30:00+00:00"
    assert shown["started_by"] == "dee"
    # --now given on the command line wins over ARTRETURNS_NOW.
    cli("comment", "ENV-1", "later", db=None, now="2026-12-31T00:00:00Z", actor=None, env=env)
    assert cli.json("history", "ENV-1")[-1]["at"] == "2026-12-31T00:00:00+00:00"


# -- bench and help -----------------------------------------------------------------------


def test_bench_runs_a_tiny_measurement(run: Cli) -> None:
    result = run(
        "bench",
        "--instances",
        "2",
        "--rounds",
        "1",
        "--history",
        "5",
        "--samples",
        "2",
        "--cli-returns",
        "0",
        "--markdown",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "| measurement | value | unit | how |"
    assert any(line.startswith("| engine, persisted on SQLite |") for line in lines)
    assert lines[-1].startswith("Machine: ")
    bad = run("bench", "--history", "ten", code=2)
    assert error_lines(bad) == ["Error: --history 'ten' is not a list of numbers"]


def test_help_and_version(db: str) -> None:
    cli = Cli(db)
    top = cli("--help", db=None, now=None, actor=None)
    for name in cli_module.cli.commands:
        assert re.search(rf"^  {re.escape(name)}\s", top.stdout, re.M), name
    assert cli("-h", db=None, now=None, actor=None).stdout == top.stdout
    version = cli("--version", db=None, now=None, actor=None)
    assert re.fullmatch(r"artreturns, version \S+\n", version.stdout)


# -- the installed console script -------------------------------------------------------


def _script() -> str:
    beside = Path(sys.executable).parent / "artreturns"
    if beside.exists():
        return str(beside)
    found = shutil.which("artreturns")
    if found is None:
        pytest.fail("the artreturns console script is not installed (pip install -e .)")
    return found


def test_the_installed_console_script_end_to_end(tmp_path: Path) -> None:
    script = _script()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        ARTRETURNS_DB=f"sqlite:///{tmp_path / 'real.db'}",
        ARTRETURNS_NOW=T0,
        ARTRETURNS_USER="sub",
    )

    def artreturns(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [script, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    assert "schema none ->" in artreturns("init").stdout
    assert "deployed as version 1" in artreturns("deploy", str(RETURN_REQUEST)).stdout
    started = artreturns("start", "return_request", "--key", "RMA-1", "--set", "customer=Ann")
    assert started.stdout.startswith("Started RMA-1 (return_request v1): running\n")
    register = short_id(started.stdout, "register")
    listed = artreturns("tasks").stdout
    assert register in listed
    assert "Register the request" in listed
    done = artreturns("complete", register, *REGISTERED)
    assert "Review and decide [review]" in done.stdout
    shown = artreturns("show", "RMA-1").stdout
    assert "  started:   2026-11-02 09:00 by sub" in shown
    assert '"customer": "Ann"' in shown
    missing = artreturns("show", "RMA-404", code=1)
    assert missing.stdout == ""
    assert missing.stderr.splitlines()[0] == "Error: no instance 'RMA-404'"
    assert "Traceback" not in missing.stderr


def test_roles_are_deployed_with_the_diagrams_and_listed(run: Cli, tmp_path: Path) -> None:
    assert run("roles").stdout.startswith("No roles deployed.")
    assert run.json("roles") == []
    where = tmp_path / "procedure"
    where.mkdir()
    (where / "escalate_review.bpmn").write_bytes((BPMN / "escalate_review.bpmn").read_bytes())
    (where / "roles.toml").write_bytes((FIXTURES / "roles" / "roles.toml").read_bytes())
    deployed = run("deploy", str(where)).stdout
    assert deployed.endswith("roles: 1 declared, lanes checked against them\n")
    assert "clerk_supervisor" in run("roles").stdout
    assert run.json("roles") == [
        {
            "name": "clerk",
            "title": "Clerk",
            "does": "Reviews things.",
            "supervisor": "clerk_supervisor",
        }
    ]
    (where / "roles.toml").write_text('[clark]\ntitle = "C"\ndoes = "x"\n')
    refused = run("deploy", str(where), code=1)
    assert "lane 'clerk' names a role roles.toml does not declare" in refused.stderr
    assert "did you mean 'clark'?" in refused.stderr
