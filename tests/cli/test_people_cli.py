"""People and their rights through the `artreturns` command: users, the acting user,
auditors, roles, worklists, claims, four eyes, escalation and the operation log.

Most tests run in-process (click's CliRunner) on a copy of one prepared SQLite file: the
procedure of processes/ deployed, a few orders imported, the users of USERS added, and
one return (RMA) registered at T0 and waiting at `approve_return`. Every refusal is
asserted with its exit code, its message, and where it was recorded: a `denied` event in
the return's history when it concerns a return, else the operation log. Two claims race
on two engines, and so do refusals and admins disabling users (SQLite, and PostgreSQL
when ARTRETURNS_TEST_PG is set); a few tests run the installed executable to see exit
codes and what goes to stdout and stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL
from test_cli import ENV_VARS, RETURN_REQUEST, Cli, error_lines

import cli as cli_module
import engine.oplog as oplog_module
import engine.people as people_module
from engine import (
    ConcurrencyError,
    Engine,
    FixedClock,
    InvalidStateError,
    PermissionDeniedError,
    Registry,
    parse_time,
)
from engine.views import CommandResult, UserView
from handlers.store import Folders, services_factory

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
EXECUTABLE = Path(sys.executable).parent / "artreturns"
#: The settings a developer may have that must not reach the commands under test.
CLEAN_ENV = (*ENV_VARS, "ARTRETURNS_DATA")

T0 = "2026-11-02T09:00:00Z"  # RMA is registered
T1 = "2026-11-02T10:00:00Z"  # the tests act
#: After approve_return's two days: run-due escalates it to the supervisor.
LATE = "2026-11-04T09:30:00Z"

RMA = "RMA-2026-000001"
APPROVE = f"{RMA}:approve_return"
APPROVED = ("--data", json.dumps({"decision": "approve", "note": "Sealed"}))
#: A second return's request, for those who may not make it.
APPLY_P2 = (
    "apply",
    "--order",
    "P-2",
    "--artwork",
    "W-2",
    "--type",
    "return",
    "--reason",
    "no_reason",
    "--description",
    "Changed my mind.",
)

USERS: dict[str, tuple[str, ...]] = {
    "ada": ("admin",),
    "cs-ann": ("customer_service",),
    "cs-bob": ("customer_service",),
    "cs-sue": ("customer_service_supervisor",),
    "cs-max": ("customer_service", "finance"),
    "fin-fay": ("finance",),
    "log-leo": ("logistics",),
    "aud-al": ("auditor",),
}
USER_KEYS = [
    "name",
    "roles",
    "active",
    "created_at",
    "created_by",
    "disabled_at",
    "disabled_by",
]
OPERATION_KEYS = ["id", "at", "actor", "operation", "target", "outcome", "details", "hash"]

# Two sealed prints (CNY 1,200: customer service alone approves, tier T1) and an oil
# painting (EUR 4,500: customer service, then finance confirms the amount, tier T2).
ORDERS_CSV = """\
order_number,channel,jurisdiction,currency,sold_at,delivered_at,payment_method,payer,\
shipping_charge,customer_name,customer_email,customer_locale,customer_address,artwork_id,\
title,artist,category,price,custom_made,indivisible_set,auction_lot,guarantee_years,\
authenticity_disclaimer,set_id,condition_grade,condition_notes,certificate,accessories
P-1,online_shop,CN,CNY,2026-10-25,2026-10-28,alipay,Wang Fang,0,Wang Fang,\
wang.fang@example.com,zh-Hant,"12 Fuxing Road, Shanghai",W-1,"Mist over Huangshan",\
Lin Feng,print,1200,no,no,no,0,no,,excellent,sealed,,
P-2,online_shop,CN,CNY,2026-10-25,2026-10-28,alipay,Zhao Lei,0,Zhao Lei,\
zhao.lei@example.com,zh-Hant,"3 Xinhua Road, Hangzhou",W-2,"Plum blossom",\
Lin Feng,print,1200,no,no,no,0,no,,excellent,sealed,,
E-1,online_shop,EU,EUR,2026-10-22,2026-10-26,card,Jonas Weber,0,Jonas Weber,\
jonas.weber@example.de,en,"Bergstrasse 9, Munich",W-9,Harbour at Dusk,Jonas Maier,\
painting,4500,no,no,no,0,no,,excellent,,,
"""


# -- the prepared database -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


def prepare(cli: Cli, root: Path) -> None:
    """The procedure deployed, orders imported, USERS added, RMA waiting for approval."""
    cli("init", actor=None)
    cli("deploy", str(PROCESSES), actor="ada")
    orders = root / "orders.csv"
    orders.write_text(ORDERS_CSV, encoding="utf-8")
    cli("orders", "import", str(orders), actor="ada")
    for name, roles in USERS.items():
        cli("users", "add", name, *roles_args(*roles), actor="ada")
    assert apply_for(cli, "P-1", "W-1", now=T0) == RMA


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("people")
    with pytest.MonkeyPatch.context() as patch:
        for name in CLEAN_ENV:
            patch.delenv(name, raising=False)
        prepare(Cli(f"sqlite:///{root / 'people.db'}"), root)
    return root


def copy_database(template: Path, to: Path) -> Path:
    """A consistent copy of the prepared SQLite file (and its data folder)."""
    target = to / "people.db"
    source = sqlite3.connect(template / "people.db")
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    if (template / "people-data").is_dir():
        shutil.copytree(template / "people-data", to / "people-data")
    return target


@pytest.fixture
def db_file(template: Path, tmp_path: Path) -> Path:
    return copy_database(template, tmp_path)


@pytest.fixture
def run(db_file: Path) -> Cli:
    return Cli(f"sqlite:///{db_file}")


# -- helpers -------------------------------------------------------------------------------


def roles_args(*roles: str) -> list[str]:
    return [arg for role in roles for arg in ("--role", role)]


def refused(result: Any, message: str) -> str:
    """A refusal prints nothing on stdout, the message and a hint on stderr; returns the hint."""
    assert result.stdout == ""
    lines = error_lines(result)
    assert lines[0] == f"Error: {message}", lines
    assert len(lines) == 2, lines
    assert lines[1].startswith("Hint: "), lines
    return str(lines[1])


def history(run: Cli, rma: str = RMA) -> list[dict[str, Any]]:
    return list(run.json("history", rma, actor="aud-al"))


def denied_events(run: Cli, rma: str = RMA) -> list[tuple[str, str, str]]:
    """(actor, operation, reason) of each `denied` event in the return's history."""
    return [
        (e["actor"], e["data"]["operation"], e["data"]["reason"])
        for e in history(run, rma)
        if e["kind"] == "denied"
    ]


def denied_operations(run: Cli) -> list[tuple[str, str, str | None, str]]:
    """(actor, operation, target, reason) of each refusal in the operation log."""
    return [
        (o["actor"], o["operation"], o["target"], o["details"]["reason"])
        for o in run.json("operations", "--denied", actor="aud-al")
    ]


def my_tasks(run: Cli, user: str, *args: str, now: str = T1) -> list[tuple[str, str, str | None]]:
    """(rma, step, claimed_by) of each task `artreturns tasks` lists for `user`."""
    return [
        (t["business_key"], t["bpmn_id"], t["claimed_by"])
        for t in run.json("tasks", *args, actor=user, now=now)
    ]


def open_steps(run: Cli, rma: str = RMA) -> list[str]:
    return sorted(t["bpmn_id"] for t in run.json("tasks", "--instance", rma, actor="aud-al"))


def apply_for(run: Cli, order: str, artwork: str, actor: str = "cs-ann", now: str = T1) -> str:
    started = run.json(
        "apply",
        "--order",
        order,
        "--artwork",
        artwork,
        "--type",
        "return",
        "--reason",
        "no_reason",
        "--description",
        "I withdraw from the purchase.",
        actor=actor,
        now=now,
    )
    return str(started["instance"]["business_key"])


# -- users ---------------------------------------------------------------------------------


def test_before_any_user_anyone_acts_and_the_first_user_must_be_an_admin(tmp_path: Path) -> None:
    run = Cli(f"sqlite:///{tmp_path / 'fresh.db'}")
    run("init", actor=None)
    assert run("users", "list", actor="whoever").stdout.startswith("No users yet: anyone may act.")
    assert run.json("users", "list", actor="whoever") == []

    first = run("users", "add", "ann", "--role", "auditor", actor="whoever", code=2)
    hint = refused(
        first,
        "the first user must be an admin: from the first user on, only known users may act, "
        "and someone must be able to add the others",
    )
    assert "--role admin" in hint
    assert run.json("users", "list", actor="whoever") == []

    ada = run.json("users", "add", "ada", "--role", "admin", actor="whoever")
    assert ada == {
        "name": "ada",
        "roles": ["admin"],
        "active": True,
        "created_at": "2026-11-02T09:00:00+00:00",
        "created_by": "whoever",
        "disabled_at": None,
        "disabled_by": None,
    }
    # From now on names are people: the one who added ada is not one of them.
    refused(
        run("users", "list", actor="whoever", code=4),
        "'whoever' is not a user of this database",
    )
    assert [u["name"] for u in run.json("users", "list", actor="ada")] == ["ada"]


def test_users_list_as_json_has_stable_keys_and_every_user(run: Cli) -> None:
    listed = run.json("users", "list", actor="ada")
    assert [u["name"] for u in listed] == sorted(USERS)
    for user in listed:
        assert list(user) == USER_KEYS
        assert user["roles"] == sorted(USERS[user["name"]])
        assert (user["active"], user["created_by"], user["disabled_at"]) == (True, "ada", None)
    text = run("users", "list", actor="cs-ann").stdout
    assert "customer_service, finance" in text  # cs-max, roles in order
    added = [
        (o["target"], o["details"]["roles"])
        for o in run.json("operations", actor="ada")
        if o["operation"] == "users add"
    ]
    assert added == [(name, sorted(roles)) for name, roles in USERS.items()]


def test_users_add_prints_what_it_did(run: Cli) -> None:
    done = run("users", "add", "insp-ivy", "--role", "inspector", "--role", "expert", actor="ada")
    assert done.stdout == "Added insp-ivy with the role(s) expert, inspector.\n"
    assert done.stderr == ""


def test_an_unknown_role_is_refused_with_a_suggestion(run: Cli) -> None:
    result = run("users", "add", "cs-cat", "--role", "customer_servce", actor="ada", code=2)
    hint = refused(
        result,
        "no role 'customer_servce': roles are the ones deployed (`artreturns roles`), the "
        "lanes of deployed diagrams, admin and auditor",
    )
    assert hint == "Hint: Did you mean 'customer_service'?"
    assert "cs-cat" not in [u["name"] for u in run.json("users", "list", actor="ada")]


def test_supervisor_roles_of_the_roles_file_are_known(run: Cli) -> None:
    # logistics_supervisor is drawn as a lane; the roles file's own supervisors count too.
    run("users", "add", "log-lou", "--role", "logistics_supervisor", actor="ada")
    run("users", "add", "insp-ian", "--role", "inspector_supervisor", actor="ada")


def test_a_user_is_added_once(run: Cli) -> None:
    result = run("users", "add", "cs-ann", "--role", "finance", actor="ada", code=2)
    refused(result, "user 'cs-ann' already exists")
    [ann] = [u for u in run.json("users", "list", actor="ada") if u["name"] == "cs-ann"]
    assert ann["roles"] == ["customer_service"]


def test_a_bad_user_name_is_refused(run: Cli) -> None:
    result = run("users", "add", "ann smith", "--role", "finance", actor="ada", code=2)
    assert error_lines(result)[0] == "Error: 'ann smith' is not a user name"


def test_an_auditor_holds_no_other_role(run: Cli) -> None:
    result = run("users", "add", "aud-bo", *roles_args("auditor", "finance"), actor="ada", code=2)
    refused(
        result,
        "an auditor holds no other role: auditors read everything and change nothing",
    )


def test_only_an_admin_adds_and_disables_users(run: Cli) -> None:
    result = run("users", "add", "cs-cat", "--role", "customer_service", actor="cs-ann", code=4)
    refused(result, "cs-ann may not add users: that needs the admin role")
    result = run("users", "disable", "cs-bob", actor="cs-sue", code=4)
    refused(result, "cs-sue may not disable users: that needs the admin role")
    assert denied_operations(run) == [
        ("cs-ann", "users add", "cs-cat", "cs-ann may not add users: that needs the admin role"),
        (
            "cs-sue",
            "users disable",
            "cs-bob",
            "cs-sue may not disable users: that needs the admin role",
        ),
    ]
    users = {u["name"]: u["active"] for u in run.json("users", "list", actor="ada")}
    assert "cs-cat" not in users
    assert users["cs-bob"] is True


def test_the_last_admin_cannot_be_disabled(run: Cli) -> None:
    result = run("users", "disable", "ada", actor="ada", code=1)
    refused(result, "'ada' is the last active admin: nobody could manage users after")

    run("users", "add", "root", "--role", "admin", actor="ada")
    gone = run.json("users", "disable", "ada", actor="root")
    assert (gone["active"], gone["disabled_by"], gone["disabled_at"]) == (
        False,
        "root",
        "2026-11-02T09:00:00+00:00",
    )
    refused(run("users", "list", actor="ada", code=4), "user 'ada' is disabled")
    result = run("users", "disable", "ada", actor="root", code=1)
    assert error_lines(result) == ["Error: user 'ada' is already disabled"]
    result = run("users", "disable", "rooot", actor="root", code=1)
    assert error_lines(result) == ["Error: no user 'rooot'", "Hint: Did you mean 'root'?"]
    disabled = [
        (o["actor"], o["target"], o["details"]["roles"], o["details"]["active"])
        for o in run.json("operations", actor="root")
        if o["operation"] == "users disable"
    ]
    assert disabled == [("root", "ada", ["admin"], [True, False])]


# -- the acting user -----------------------------------------------------------------------


def test_as_wins_over_the_environment(run: Cli) -> None:
    env = {"ARTRETURNS_USER": "aud-al"}
    result = run("comment", RMA, "Called the customer", actor=None, env=env, code=4)
    refused(
        result,
        "aud-al is an auditor and may not comment: auditors read everything and change nothing",
    )
    run("comment", RMA, "Called the customer", actor="cs-ann", env=env)
    events = history(run)
    assert [(e["kind"], e["actor"]) for e in events[-2:]] == [
        ("denied", "aud-al"),
        ("comment", "cs-ann"),
    ]
    assert events[-1]["data"]["text"] == "Called the customer"


def test_an_unknown_user_is_refused_once_users_exist(run: Cli) -> None:
    message = "'nobody' is not a user of this database"
    hint = refused(run("tasks", actor="nobody", code=4), message)
    assert "--as NAME" in hint
    assert "ARTRETURNS_USER" in hint
    refused(run("show", RMA, actor="nobody", code=4), message)
    refused(run("complete", APPROVE, *APPROVED, actor="nobody", code=4), message)
    refused(
        run(
            *APPLY_P2,
            actor="nobody",
            code=4,
        ),
        message,
    )
    # The refusal about the return is in its history, the others in the operation log.
    assert denied_events(run) == [("nobody", "complete", message)]
    assert denied_operations(run) == [
        ("nobody", "tasks", None, message),
        ("nobody", "show", RMA, message),
        ("nobody", "apply", "return_request", message),
    ]
    assert open_steps(run) == ["approve_return"]


def test_a_disabled_user_can_do_nothing(run: Cli) -> None:
    run("users", "disable", "cs-bob", actor="ada")
    message = "user 'cs-bob' is disabled"
    refused(run("tasks", actor="cs-bob", code=4), message)
    refused(run("complete", APPROVE, *APPROVED, actor="cs-bob", code=4), message)
    refused(run("claim", APPROVE, actor="cs-bob", code=4), message)
    assert denied_events(run) == [("cs-bob", "complete", message), ("cs-bob", "claim", message)]
    assert [(o[0], o[1]) for o in denied_operations(run)] == [("cs-bob", "tasks")]
    assert open_steps(run) == ["approve_return"]
    # Their name stays in the list, and in everything they did.
    [bob] = [u for u in run.json("users", "list", actor="ada") if u["name"] == "cs-bob"]
    assert (bob["active"], bob["disabled_by"]) == (False, "ada")


# -- auditors ------------------------------------------------------------------------------


def test_an_auditor_reads_everything(run: Cli) -> None:
    assert my_tasks(run, "aud-al", "--all") == [(RMA, "approve_return", None)]
    assert my_tasks(run, "aud-al", "--role", "customer_service") == [(RMA, "approve_return", None)]
    assert my_tasks(run, "aud-al") == []  # no work of their own
    shown = run.json("show", RMA, actor="aud-al")
    assert (shown["business_key"], shown["status"]) == (RMA, "running")
    assert history(run)[0]["kind"] == "started"
    assert run("verify", RMA, actor="aud-al").stdout == f"{RMA}: history intact.\n"
    assert len(run.json("users", "list", actor="aud-al")) == len(USERS)
    assert [o["operation"] for o in run.json("operations", "--limit", "1", actor="aud-al")] == [
        "users add"
    ]
    assert run("operations", "--verify", actor="aud-al").stdout == "Operation log intact.\n"
    [line] = run.json("returns", actor="aud-al")
    assert line["rma"] == RMA
    run("processes", actor="aud-al")
    run("roles", actor="aud-al")
    run("form", APPROVE, actor="aud-al")
    assert denied_operations(run) == []


AUDITOR_CHANGES_A_RETURN = [
    pytest.param(("complete", APPROVE, *APPROVED), "complete", id="complete"),
    pytest.param(("claim", APPROVE), "claim", id="claim"),
    pytest.param(("unclaim", APPROVE), "unclaim", id="unclaim"),
    pytest.param(("delegate", APPROVE, "--to", "cs-bob"), "delegate", id="delegate"),
    pytest.param(("comment", RMA, "Looks fine"), "comment", id="comment"),
    pytest.param(("cancel", RMA, "--reason", "duplicate"), "cancel an instance", id="cancel"),
    pytest.param(
        ("message", RMA, "return_shipped", "--data", "{}"), "deliver messages", id="message"
    ),
]


@pytest.mark.parametrize(("args", "what"), AUDITOR_CHANGES_A_RETURN)
def test_an_auditor_changes_no_return(run: Cli, args: tuple[str, ...], what: str) -> None:
    before = run.json("show", RMA, actor="aud-al")
    result = run(*args, actor="aud-al", code=4)
    message = (
        f"aud-al is an auditor and may not {what}: auditors read everything and change nothing"
    )
    refused(result, message)
    assert denied_events(run) == [("aud-al", args[0], message)]
    after = run.json("show", RMA, actor="aud-al")
    assert after["status"] == "running"
    assert after["data"] == before["data"]
    assert [t["bpmn_id"] for t in after["open_tasks"]] == [
        t["bpmn_id"] for t in before["open_tasks"]
    ]
    assert after["event_count"] == before["event_count"] + 1  # the refusal, nothing else


def test_an_auditor_starts_nothing_and_administers_nothing(run: Cli) -> None:
    result = run(
        *APPLY_P2,
        actor="aud-al",
        code=4,
    )
    refused(
        result,
        "aud-al is an auditor and may not register a return: auditors read everything "
        "and change nothing",
    )
    refused(
        run("start", "return_request", "--key", "RMA-X", actor="aud-al", code=4),
        "aud-al is an auditor and may not start return_request: auditors read everything "
        "and change nothing",
    )
    refused(
        run("deploy", str(PROCESSES), actor="aud-al", code=4),
        "aud-al is an auditor and may not deploy diagrams: auditors read everything and "
        "change nothing",
    )
    refused(
        run("users", "add", "x-1", "--role", "finance", actor="aud-al", code=4),
        "aud-al is an auditor and may not add users: auditors read everything and change nothing",
    )
    refused(
        run("run-due", actor="aud-al", now=LATE, code=4),
        "aud-al is an auditor and may not fire due timers: auditors read everything and "
        "change nothing",
    )
    assert [(o[1], o[2]) for o in denied_operations(run)] == [
        ("apply", "return_request"),
        ("start", "return_request"),
        ("deploy", None),
        ("users add", "x-1"),
        ("run-due", None),
    ]
    assert [line["rma"] for line in run.json("returns", actor="aud-al")] == [RMA]
    assert open_steps(run) == ["approve_return"]  # run-due escalated nothing


def test_an_auditor_adds_no_evidence(run: Cli, tmp_path: Path) -> None:
    photo = tmp_path / "parcel.jpg"
    photo.write_bytes(b"a photo")
    message = (
        "aud-al is an auditor and may not use 'evidence add': auditors read everything and "
        "change nothing"
    )
    refused(run("evidence", "add", RMA, str(photo), actor="aud-al", code=4), message)
    assert denied_events(run) == [("aud-al", "evidence add", message)]
    assert run.json("evidence", "list", RMA, actor="aud-al") == []


def test_a_refused_apply_keeps_nothing(run: Cli, db_file: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a photo")
    run(
        *APPLY_P2,
        "--evidence",
        str(photo),
        actor="aud-al",
        code=4,
    )
    with sqlite3.connect(db_file) as conn:
        evidence = conn.execute("SELECT rma, added_by FROM evidence_file").fetchall()
        numbers = conn.execute("SELECT number, status FROM rma_number ORDER BY number").fetchall()
    conn.close()
    assert evidence == []
    assert numbers == [(RMA, "open")]


# -- roles ---------------------------------------------------------------------------------


def test_finance_may_not_do_customer_service_work(run: Cli) -> None:
    message = "fin-fay may not complete 'Approve the return': it needs the role customer_service"
    refused(run("complete", APPROVE, *APPROVED, actor="fin-fay", code=4), message)
    claim = "fin-fay may not claim 'Approve the return': it needs the role customer_service"
    refused(run("claim", APPROVE, actor="fin-fay", code=4), claim)
    assert denied_events(run) == [
        ("fin-fay", "complete", message),
        ("fin-fay", "claim", claim),
    ]
    assert open_steps(run) == ["approve_return"]
    # A supervisor holds no work of the role until it is escalated to them.
    refused(
        run("complete", APPROVE, *APPROVED, actor="cs-sue", code=4),
        "cs-sue may not complete 'Approve the return': it needs the role customer_service",
    )


def test_comments_and_messages_need_a_role_of_the_process(run: Cli) -> None:
    # An admin manages the system; the procedure's work needs one of its roles.
    result = run("comment", RMA, "Looks fine", actor="ada", code=4)
    assert result.stdout == ""
    message, hint = error_lines(result)
    assert message.startswith(
        "Error: ada may not comment: that needs a role of the process (customer_service, "
        "customer_service_supervisor, "
    )
    assert hint.startswith("Hint: ")
    result = run("message", RMA, "return_shipped", "--data", "{}", actor="ada", code=4)
    assert error_lines(result)[0].startswith("Error: ada may not deliver messages: ")
    run("comment", RMA, "Parcel expected Monday", actor="log-leo")
    assert [(e["kind"], e["actor"]) for e in history(run)[-3:]] == [
        ("denied", "ada"),
        ("denied", "ada"),
        ("comment", "log-leo"),
    ]


def test_cancelling_needs_a_supervisor_of_the_process(run: Cli) -> None:
    result = run("cancel", RMA, "--reason", "duplicate", actor="cs-ann", code=4)
    assert error_lines(result)[0].startswith(
        "Error: cs-ann may not cancel: that needs a supervisor role of the process ("
    )
    assert run.json("show", RMA, actor="ada")["status"] == "running"
    run("cancel", RMA, "--reason", "duplicate", actor="cs-sue")
    assert run.json("show", RMA, actor="ada")["status"] == "cancelled"
    assert [e[0] for e in denied_events(run)] == ["cs-ann"]


# -- worklists -----------------------------------------------------------------------------


def test_tasks_lists_only_the_callers_own(run: Cli) -> None:
    assert my_tasks(run, "cs-ann") == [(RMA, "approve_return", None)]
    assert my_tasks(run, "cs-bob") == [(RMA, "approve_return", None)]
    assert my_tasks(run, "cs-max") == [(RMA, "approve_return", None)]
    for user in ("fin-fay", "log-leo", "cs-sue", "ada", "aud-al"):
        assert my_tasks(run, user) == [], user
    assert run("tasks", actor="fin-fay").stdout == "No open tasks.\n"
    # --instance shows every open task of one return, to anyone.
    assert my_tasks(run, "fin-fay", "--instance", RMA) == [(RMA, "approve_return", None)]


def test_tasks_of_a_role_need_the_role_or_its_supervision(run: Cli) -> None:
    message = (
        "fin-fay may not list the tasks of customer_service: it is neither their role nor "
        "one they supervise"
    )
    refused(run("tasks", "--role", "customer_service", actor="fin-fay", code=4), message)
    for user in ("cs-ann", "cs-sue", "ada", "aud-al"):
        assert my_tasks(run, user, "--role", "customer_service") == [
            (RMA, "approve_return", None)
        ], user
    assert my_tasks(run, "fin-fay", "--role", "finance") == []
    assert denied_operations(run) == [("fin-fay", "tasks", "role customer_service", message)]


def test_everyones_tasks_are_for_supervisors_admins_and_auditors(run: Cli) -> None:
    message = "cs-ann may not list everyone's tasks: that is for supervisors, admins and auditors"
    refused(run("tasks", "--all", actor="cs-ann", code=4), message)
    refused(run("tasks", "--all", "--csv", actor="cs-ann", code=4), message)
    for user in ("cs-sue", "ada", "aud-al"):
        assert my_tasks(run, user, "--all") == [(RMA, "approve_return", None)], user
    assert denied_operations(run) == [
        ("cs-ann", "tasks", "everyone", message),
        ("cs-ann", "tasks", "everyone", message),
    ]


# -- claims --------------------------------------------------------------------------------


def test_a_claimed_task_is_the_claimers_alone(run: Cli) -> None:
    claimed = run.json("claim", APPROVE, actor="cs-bob", now=T1)
    assert [e["kind"] for e in claimed["events"]] == ["claimed"]
    assert claimed["events"][0]["data"]["by"] == "cs-bob"

    assert my_tasks(run, "cs-ann") == []  # gone from colleagues' lists
    assert my_tasks(run, "cs-max") == []
    assert my_tasks(run, "cs-bob") == [(RMA, "approve_return", "cs-bob")]
    assert my_tasks(run, "cs-sue", "--role", "customer_service") == [
        (RMA, "approve_return", "cs-bob")
    ]

    message = "'Approve the return' is claimed by cs-bob"
    hint = refused(run("complete", APPROVE, *APPROVED, actor="cs-ann", code=4), message)
    assert "cs-bob" in hint
    refused(run("claim", APPROVE, actor="cs-ann", code=4), message)
    again = run("claim", APPROVE, actor="cs-bob", code=1)
    assert error_lines(again)[0] == "Error: 'Approve the return' is already claimed by cs-bob"
    assert denied_events(run) == [("cs-ann", "complete", message), ("cs-ann", "claim", message)]

    done = run.json("complete", APPROVE, *APPROVED, actor="cs-bob", now=T1)
    assert "approve_return" not in [t["bpmn_id"] for t in done["instance"]["open_tasks"]]
    [completed] = [
        e
        for e in history(run)
        if e["kind"] == "task_completed" and e["bpmn_id"] == "approve_return"
    ]
    assert completed["actor"] == "cs-bob"


def test_unclaim_by_the_claimer_or_a_supervisor(run: Cli) -> None:
    run("claim", APPROVE, actor="cs-bob")
    message = (
        "cs-ann may not unclaim 'Approve the return': it is cs-bob's, and only they or "
        "customer_service_supervisor may let it go"
    )
    refused(run("unclaim", APPROVE, actor="cs-ann", code=4), message)
    run("unclaim", APPROVE, actor="cs-sue")
    assert my_tasks(run, "cs-ann") == [(RMA, "approve_return", None)]
    result = run("unclaim", APPROVE, actor="cs-bob", code=1)
    assert error_lines(result)[0] == "Error: 'Approve the return' is not claimed"

    run("claim", APPROVE, actor="cs-ann")
    run("unclaim", APPROVE, actor="cs-ann")
    claims = [
        (e["kind"], e["actor"], e["data"].get("from"))
        for e in history(run)
        if e["kind"] in ("claimed", "unclaimed", "denied")
    ]
    assert claims == [
        ("claimed", "cs-bob", None),
        ("denied", "cs-ann", None),
        ("unclaimed", "cs-sue", "cs-bob"),
        ("claimed", "cs-ann", None),
        ("unclaimed", "cs-ann", "cs-ann"),
    ]


def test_delegate_only_to_an_active_holder_of_the_role(run: Cli) -> None:
    refused(
        run("delegate", APPROVE, "--to", "cs-max", actor="fin-fay", code=4),
        "fin-fay may not delegate 'Approve the return': it is not their role's task, and "
        "they do not supervise it",
    )
    run("claim", APPROVE, actor="cs-bob")
    refused(
        run("delegate", APPROVE, "--to", "fin-fay", actor="cs-bob", code=4),
        "cannot delegate 'Approve the return' to fin-fay: they do not hold the role "
        "customer_service",
    )
    refused(
        run("delegate", APPROVE, "--to", "aud-al", actor="cs-bob", code=4),
        "cannot delegate 'Approve the return' to aud-al: they do not hold the role "
        "customer_service",
    )
    refused(
        run("delegate", APPROVE, "--to", "nobody", actor="cs-bob", code=4),
        "cannot delegate to nobody: 'nobody' is not a user of this database",
    )
    refused(
        run("delegate", APPROVE, "--to", "cs-max", actor="cs-ann", code=4),
        "cs-ann may not delegate 'Approve the return': it is cs-bob's",
    )
    assert my_tasks(run, "cs-bob") == [(RMA, "approve_return", "cs-bob")]

    run("delegate", APPROVE, "--to", "cs-ann", actor="cs-bob")
    assert my_tasks(run, "cs-ann") == [(RMA, "approve_return", "cs-ann")]
    assert my_tasks(run, "cs-bob") == []
    run("delegate", APPROVE, "--to", "cs-max", actor="cs-sue")  # a supervisor, at any time
    assert my_tasks(run, "cs-max") == [(RMA, "approve_return", "cs-max")]
    assert my_tasks(run, "cs-ann") == []
    delegated = [
        (e["actor"], e["data"]["from"], e["data"]["to"])
        for e in history(run)
        if e["kind"] == "delegated"
    ]
    assert delegated == [("cs-bob", "cs-bob", "cs-ann"), ("cs-sue", "cs-ann", "cs-max")]
    assert [e[0] for e in denied_events(run)] == ["fin-fay", "cs-bob", "cs-bob", "cs-bob", "cs-ann"]
    run("complete", APPROVE, *APPROVED, actor="cs-max")


def test_disabling_a_user_frees_their_claims(run: Cli) -> None:
    run("claim", APPROVE, actor="cs-bob")
    assert my_tasks(run, "cs-ann") == []
    run("users", "disable", "cs-bob", actor="ada")
    assert my_tasks(run, "cs-ann") == [(RMA, "approve_return", "cs-bob")]
    run("claim", APPROVE, actor="cs-ann")
    assert my_tasks(run, "cs-ann") == [(RMA, "approve_return", "cs-ann")]
    run("complete", APPROVE, *APPROVED, actor="cs-ann")
    assert "approve_return" not in open_steps(run)


def test_only_peoples_tasks_are_claimed(run: Cli) -> None:
    run("complete", APPROVE, *APPROVED, actor="cs-ann")
    [wait] = [
        t
        for t in run.json("tasks", "--instance", RMA, "--any-kind", actor="aud-al")
        if t["bpmn_id"] == "work_shipped"
    ]
    assert (wait["kind"], wait["state"]) == ("message", "WAITING")
    result = run("claim", wait["short_id"], actor="cs-ann", code=2)
    assert error_lines(result)[0] == (
        f"Error: '{wait['name']}' is a message task: only people's tasks are claimed"
    )


def test_a_claim_by_a_name_that_never_became_a_user_no_longer_holds(tmp_path: Path) -> None:
    run = Cli(f"sqlite:///{tmp_path / 'early.db'}")
    run("init", actor=None)
    run("deploy", str(RETURN_REQUEST), actor="bob")
    run("start", "return_request", "--key", "RMA-1", "--set", "customer=Ann", actor="bob")
    run("claim", "RMA-1:register", actor="bob")  # single-user: a label, but claims hold
    refused(
        run("complete", "RMA-1:register", actor="ann", code=4),
        "'Register the request' is claimed by bob",
    )
    run("users", "add", "ada", "--role", "admin", actor="bob")
    run("users", "add", "cs-ann", "--role", "customer_service", actor="ada")
    # bob is nobody now: his claim holds no more, and the task is cs-ann's to see and do.
    assert my_tasks(run, "cs-ann", now=T0) == [("RMA-1", "register", "bob")]
    run("claim", "RMA-1:register", actor="cs-ann")
    assert my_tasks(run, "cs-ann", now=T0) == [("RMA-1", "register", "cs-ann")]


# -- claim conflicts -----------------------------------------------------------------------


def test_two_users_claiming_one_task_one_after_the_other(run: Cli) -> None:
    run("claim", APPROVE, actor="cs-ann")
    result = run("claim", APPROVE, actor="cs-bob", code=4)
    refused(result, "'Approve the return' is claimed by cs-ann")
    assert my_tasks(run, "cs-bob") == []


@dataclass
class Shared:
    """One prepared database that several engines use at once."""

    url: str | URL
    data: Path
    cli: Cli

    def engine(self) -> Engine:
        """An engine of its own, as each `artreturns` process builds one."""
        return Engine(
            self.url,
            registry=Registry.from_entry_points(),
            clock=FixedClock(parse_time(T1)),
            services=services_factory(Folders(self.data)),
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(
    request: pytest.FixtureRequest, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Shared:
    """The prepared database on SQLite (a copy) and on PostgreSQL (prepared anew)."""
    if request.param == "sqlite":
        db_file = copy_database(template, tmp_path)
        return Shared(f"sqlite:///{db_file}", tmp_path / "people-data", Cli(f"sqlite:///{db_file}"))
    pg_url: URL = request.getfixturevalue("pg_url")
    monkeypatch.setenv("ARTRETURNS_DATA", str(tmp_path / "data"))
    cli = Cli(pg_url.render_as_string(hide_password=False))
    prepare(cli, tmp_path)
    return Shared(pg_url, tmp_path / "data", cli)


def at_once(calls: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each call on a thread of its own, all at once; the result or the exception
    of each, by name."""
    start = threading.Barrier(len(calls))
    outcomes: dict[str, Any] = {}

    def call(name: str) -> None:
        start.wait(timeout=30)
        try:
            outcomes[name] = calls[name]()
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=call, args=(name,)) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_two_users_claiming_at_once_one_wins_the_other_is_told_who(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both claims load the return before either saves it: the one that saves second
    # finds the task changed, runs again on what is stored, and sees who won.
    both_loaded = threading.Barrier(2)
    first_look = threading.local()
    person_task = people_module._person_task

    def wait_for_the_other(*args: Any) -> Any:
        found = person_task(*args)
        if not getattr(first_look, "done", False):
            first_look.done = True
            both_loaded.wait(timeout=30)
        return found

    monkeypatch.setattr(people_module, "_person_task", wait_for_the_other)
    engines = {name: shared.engine() for name in ("cs-ann", "cs-bob")}
    outcomes = at_once(
        {name: partial(engine.claim, APPROVE, actor=name) for name, engine in engines.items()}
    )
    for engine in engines.values():
        engine.db.dispose()

    winners = [n for n, o in outcomes.items() if isinstance(o, CommandResult)]
    losers = [n for n, o in outcomes.items() if isinstance(o, PermissionDeniedError)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    [winner], [loser] = winners, losers
    assert str(outcomes[loser]) == f"'Approve the return' is claimed by {winner}"
    run = shared.cli
    assert my_tasks(run, winner) == [(RMA, "approve_return", winner)]
    assert my_tasks(run, loser) == []
    events = [e for e in history(run) if e["kind"] in ("claimed", "denied")]
    assert [(e["kind"], e["actor"]) for e in events] == [("claimed", winner), ("denied", loser)]
    assert run("verify", RMA, actor="aud-al").stdout == f"{RMA}: history intact.\n"


def test_refusals_at_once_are_each_logged_on_one_chain(shared: Shared) -> None:
    engines = [shared.engine() for _ in range(4)]

    def refused_ten_times(engine: Engine) -> list[str]:
        outcomes = []
        for _ in range(10):
            try:
                engine.worklist(actor="cs-ann", everyone=True)
                outcomes.append("listed")
            except PermissionDeniedError:
                outcomes.append("denied")
        return outcomes

    outcomes = at_once({str(i): partial(refused_ten_times, e) for i, e in enumerate(engines)})
    for engine in engines:
        engine.db.dispose()
    assert outcomes == {str(i): ["denied"] * 10 for i in range(4)}
    run = shared.cli
    assert len(run.json("operations", "--denied", actor="aud-al")) == 40
    assert run("operations", "--verify", actor="aud-al").stdout == "Operation log intact.\n"


def disable_at_once(
    shared: Shared, monkeypatch: pytest.MonkeyPatch, who: dict[str, str]
) -> dict[str, Any]:
    """Each admin of `who` disables their user at once; each holds on (up to half a second)
    before it commits, so that both have checked what they may before either is done."""
    both_checked = threading.Barrier(len(who))
    append = oplog_module.append

    def wait_for_the_other(*args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=0.5)
        append(*args, **kwargs)

    monkeypatch.setattr(oplog_module, "append", wait_for_the_other)
    engines = {admin: shared.engine() for admin in who}
    try:
        return at_once(
            {
                admin: partial(engines[admin].disable_user, user, actor=admin)
                for admin, user in who.items()
            }
        )
    finally:
        monkeypatch.setattr(oplog_module, "append", append)
        for engine in engines.values():
            engine.db.dispose()


def test_two_admins_disabling_each_other_at_once_leave_one(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared.cli("users", "add", "root", "--role", "admin", actor="ada")
    outcomes = disable_at_once(shared, monkeypatch, {"ada": "root", "root": "ada"})
    done = [n for n, o in outcomes.items() if isinstance(o, UserView)]
    assert len(done) == 1, outcomes
    [other] = [o for n, o in outcomes.items() if n not in done]
    assert isinstance(other, (InvalidStateError, ConcurrencyError)), outcomes
    admins = [
        u["name"]
        for u in shared.cli.json("users", "list", actor=done[0])
        if "admin" in u["roles"] and u["active"]
    ]
    assert admins == done


def test_one_user_disabled_by_two_admins_at_once_is_disabled_once(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared.cli("users", "add", "root", "--role", "admin", actor="ada")
    outcomes = disable_at_once(shared, monkeypatch, {"ada": "cs-bob", "root": "cs-bob"})
    done = [n for n, o in outcomes.items() if isinstance(o, UserView)]
    assert len(done) == 1, outcomes
    [other] = [o for n, o in outcomes.items() if n not in done]
    assert isinstance(other, (InvalidStateError, ConcurrencyError)), outcomes
    logged = [
        (o["actor"], o["target"])
        for o in shared.cli.json("operations", actor="ada")
        if o["operation"] == "users disable"
    ]
    assert logged == [(done[0], "cs-bob")]


# -- four eyes and escalation --------------------------------------------------------------


def test_four_eyes_one_person_decides_one_level_of_an_approval(run: Cli) -> None:
    rma = apply_for(run, "E-1", "W-9")
    data = run.json("show", rma, actor="ada")["data"]
    assert (data["tier"], data["needs_finance"]) == ("T2", True)
    run("complete", f"{rma}:approve_return", *APPROVED, actor="cs-max")
    assert open_steps(run, rma) == ["confirm_refund_amount"]
    amount = ("--data", json.dumps({"decision": "approve", "amount": "4500.00"}))

    message = (
        "cs-max already decided 'Approve the return' in this approval chain; another "
        "person must decide 'Confirm the refund amount'"
    )
    hint = refused(
        run("complete", f"{rma}:confirm_refund_amount", *amount, actor="cs-max", code=4),
        message,
    )
    assert "Four eyes" in hint
    # Nor may they claim it: the claim would keep it from finance, and they could never
    # complete it.
    refused(run("claim", f"{rma}:confirm_refund_amount", actor="cs-max", code=4), message)
    assert my_tasks(run, "fin-fay") == [(rma, "confirm_refund_amount", None)]
    refused(
        run("delegate", f"{rma}:confirm_refund_amount", "--to", "cs-max", actor="fin-fay", code=4),
        "cannot delegate 'Confirm the refund amount' to cs-max: they already decided "
        "'Approve the return' in this approval chain",
    )
    assert denied_events(run, rma) == [
        ("cs-max", "complete", message),
        ("cs-max", "claim", message),
        (
            "fin-fay",
            "delegate",
            "cannot delegate 'Confirm the refund amount' to cs-max: they already decided "
            "'Approve the return' in this approval chain",
        ),
    ]
    assert open_steps(run, rma) == ["confirm_refund_amount"]

    run("complete", f"{rma}:confirm_refund_amount", *amount, actor="fin-fay")
    decided = {e["bpmn_id"]: e["actor"] for e in history(run, rma) if e["kind"] == "task_completed"}
    assert decided == {"approve_return": "cs-max", "confirm_refund_amount": "fin-fay"}
    assert run.json("show", rma, actor="ada")["data"]["approval_result"] == "approved"


def test_an_overdue_task_escalates_to_the_supervisor(run: Cli) -> None:
    assert my_tasks(run, "cs-sue", now=LATE) == []
    run("run-due", actor="ada", now=LATE)
    [task] = run.json("tasks", actor="cs-sue", now=LATE)
    assert (task["bpmn_id"], task["role"], task["escalated_to"], task["overdue"]) == (
        "approve_return",
        "customer_service",
        "customer_service_supervisor",
        True,
    )
    assert my_tasks(run, "cs-sue", "--role", "customer_service_supervisor", now=LATE) == [
        (RMA, "approve_return", None)
    ]
    assert any(e["kind"] == "escalated" and e["bpmn_id"] == "approve_return" for e in history(run))
    # A role holder still sees it; a finance user still may not do it.
    assert my_tasks(run, "cs-ann", now=LATE) == [(RMA, "approve_return", None)]
    refused(
        run("complete", APPROVE, *APPROVED, actor="fin-fay", now=LATE, code=4),
        "fin-fay may not complete 'Approve the return': it needs the role customer_service "
        "or customer_service_supervisor",
    )
    run("complete", APPROVE, *APPROVED, actor="cs-sue", now=LATE)
    [completed] = [
        e
        for e in history(run)
        if e["kind"] == "task_completed" and e["bpmn_id"] == "approve_return"
    ]
    assert completed["actor"] == "cs-sue"


# -- the operation log ---------------------------------------------------------------------


def test_the_operation_log_is_for_admins_and_auditors(run: Cli) -> None:
    message = "cs-ann may not read the operation log: it is for admins and auditors"
    hint = refused(run("operations", actor="cs-ann", code=4), message)
    assert "artreturns history RMA" in hint
    refused(run("operations", "--verify", actor="cs-ann", code=4), message)
    entries = run.json("operations", actor="ada")
    assert all(list(o) == OPERATION_KEYS for o in entries)
    assert [o["operation"] for o in entries[:2]] == ["init", "deploy"]
    assert [o["id"] for o in entries] == sorted(o["id"] for o in entries)
    mine = run.json("operations", "--user", "cs-ann", actor="ada")
    assert [(o["operation"], o["outcome"]) for o in mine] == [
        ("operations", "denied"),
        ("operations", "denied"),
    ]
    last = run.json("operations", "--limit", "2", actor="ada")
    assert last == entries[-2:]


def test_an_import_is_in_the_operation_log(run: Cli) -> None:
    [imported] = [
        o for o in run.json("operations", actor="ada") if o["operation"] == "orders import"
    ]
    assert (imported["actor"], imported["target"], imported["outcome"]) == (
        "ada",
        "orders.csv",
        "done",
    )


def test_operations_verify_finds_a_changed_row(run: Cli, db_file: Path) -> None:
    assert run("operations", "--verify", actor="ada").stdout == "Operation log intact.\n"
    entries = run.json("operations", actor="ada")
    [deploy] = [o for o in entries if o["operation"] == "deploy"]
    number = entries.index(deploy) + 1
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE operation SET actor = 'mallory' WHERE id = ?", (deploy["id"],))
    conn.close()
    result = run("operations", "--verify", actor="ada", code=5)
    assert result.stdout == ""
    assert error_lines(result)[0] == (
        f"Error: the operation log is broken at entry {number}: its content does not match "
        "its hash (it was changed)"
    )


# -- exit codes ----------------------------------------------------------------------------


def test_exit_codes_say_what_kind_of_no_it_was(run: Cli) -> None:
    run("users", "list", actor="cs-ann", code=0)
    run("users", "disable", "nobody", actor="ada", code=1)  # expected error: no such user
    run("unclaim", APPROVE, actor="cs-ann", code=1)  # expected error: not claimed
    run("users", "add", "x-1", "--role", "nope", actor="ada", code=2)  # bad input
    run("complete", APPROVE, "--data", "{not json", actor="cs-ann", code=2)
    run("tasks", "--json", "--csv", actor="cs-ann", code=2)  # usage
    run("complete", APPROVE, *APPROVED, actor="fin-fay", code=4)  # not allowed
    run("complete", APPROVE, *APPROVED, actor="cs-ann", code=0)


# -- the installed executable --------------------------------------------------------------


def artreturns(
    db_file: Path, *args: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    if user is not None:
        env["ARTRETURNS_USER"] = user
    return subprocess.run(
        [str(EXECUTABLE), "--db", f"sqlite:///{db_file}", "--now", T1, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


needs_executable = pytest.mark.skipif(
    not EXECUTABLE.is_file(),
    reason=f"the artreturns console script is not installed at {EXECUTABLE}",
)


@needs_executable
def test_the_executable_refuses_with_exit_code_4_on_stderr(db_file: Path) -> None:
    done = artreturns(db_file, "complete", APPROVE, *APPROVED, user="fin-fay")
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "Error: fin-fay may not complete 'Approve the return': it needs the role customer_service",
        "Hint: `artreturns tasks` lists the tasks of your roles.",
    ]


@needs_executable
def test_the_executable_prints_data_on_stdout_and_nothing_else(db_file: Path) -> None:
    done = artreturns(db_file, "--as", "cs-ann", "tasks", "--json", user="aud-al")
    assert (done.returncode, done.stderr) == (0, "")
    [task] = json.loads(done.stdout)
    assert (task["business_key"], task["bpmn_id"]) == (RMA, "approve_return")
    # ARTRETURNS_USER alone names the auditor, who has no work of their own.
    done = artreturns(db_file, "tasks", "--json", user="aud-al")
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


# -- the worklist read through the driver alone ---------------------------------------------


def test_the_driver_worklist_is_the_engines(db_url: str | URL, tmp_path: Path) -> None:
    """`artreturns tasks` reads through the database driver without SQLAlchemy; whoever
    asks, whatever they ask, it must list what `Engine.worklist` lists."""
    url = db_url.render_as_string(hide_password=False) if isinstance(db_url, URL) else db_url
    run = Cli(url)
    prepare(run, tmp_path)
    apply_for(run, "P-2", "W-2", actor="cs-bob", now=T1)
    run("claim", APPROVE, actor="cs-max", now=T1)
    run("run-due", actor="ada", now=LATE)  # the second approval is escalated
    engine = Engine(url, clock=FixedClock(parse_time(LATE)))
    try:
        asks: list[dict[str, Any]] = [
            {},
            {"everyone": True},
            {"everyone": True, "sort": "age"},
            {"everyone": True, "overdue": True},
            {"role": "customer_service"},
            {"role": "customer_service_supervisor"},
            {"instance": RMA},
            {
                "everyone": True,
                "kinds": ("user", "manual", "service", "timer", "message"),
                "states": ("READY", "QUEUED", "FAILED", "WAITING"),
            },
        ]
        compared = 0
        for actor in USERS:
            for ask in asks:
                asked = {
                    "role": None,
                    "everyone": False,
                    "overdue": False,
                    "kinds": ("user", "manual"),
                    "states": ("READY",),
                    "sort": "due",
                    **{k: v for k, v in ask.items() if k != "instance"},
                }
                context = cli_module.Context(db=url, now=parse_time(LATE), actor=actor, debug=False)
                by_driver = cli_module._worklist_by_driver(context, ask.get("instance"), asked)
                try:
                    by_engine = engine.worklist(actor=actor, instance=ask.get("instance"), **asked)
                except PermissionDeniedError:
                    assert by_driver is None, (actor, ask)  # the engine records refusals
                    continue
                assert by_driver is not None, (actor, ask)
                assert [i.to_dict() for i in by_driver] == [i.to_dict() for i in by_engine]
                compared += len(by_engine)
        assert compared > 40  # the asks above found tasks, not only empty lists
    finally:
        engine.db.dispose()
