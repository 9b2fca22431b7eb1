"""Who may do what, tried exhaustively: every command that changes something, as every
kind of user, on a task nobody holds, one they hold and one someone else holds.

`THE_RULES` below is docs/permissions.md's table "The rules", row by row: the operation
cell and the "who may" cell word for word (a test checks them against the page, so the
two cannot drift apart unnoticed), and beside each the rule as a predicate over the
facts. The matrix is generated from it: each mutating command (`COMMANDS`), by each kind
of user (`KINDS`), by each claim state of the task (`CLAIMS`, where the command concerns a
task or an instance with one), and the expected outcome is what the row says.

Every case runs `artreturns` in-process (click's CliRunner) on a copy of one SQLite file
prepared once per module on the procedure of processes/ (returns waiting for approval,
one of them for each claimer, one waiting for its parcel, one stuck on a failed notice,
one cancelled, notices pending, a second version of return_request). The claims were
made before the first user existed, when names are only labels and claims already hold:
so even an auditor, an admin or an unknown name can be found holding a task.

Allowed: exit 0 and the change made, recorded with the acting user. Denied: exit 4, a
reason and a hint on stderr and nothing on stdout, the database exactly as before apart
from the refusal, recorded in the instance's history as a `denied` event when it
concerns a running instance, else in the operation log (`operations --denied`).

The escalation attempts the security review names have tests of their own at the end:
another role's task, a task someone else claimed, approving twice in a chain, an auditor
writing, a disabled user, delegating to someone barred. A subset of the matrix runs on
PostgreSQL too (marker `postgres`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine

import cli as cli_module
from engine import Registry

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
PERMISSIONS_DOC = ROOT / "docs" / "permissions.md"
ENV_VARS = (
    "ARTRETURNS_DB",
    "ARTRETURNS_NOW",
    "ARTRETURNS_USER",
    "ARTRETURNS_DATA",
    "ARTRETURNS_SMTP",
    "ARTRETURNS_INLINE_HANDLERS",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)

SETUP = "2026-11-02T08:00:00Z"  # the template is prepared
NOW = "2026-11-02T10:00:00Z"  # the cases act: nothing is due yet
#: After approve_return's two days: its due-time timer is due on every open return.
LATE = "2026-11-04T10:00:00Z"
#: Pending notices: a mail server is configured while the template is prepared, and
#: nothing is sent (`notices send` in the cases writes them to the outbox folder).
SMTP = "smtp://127.0.0.1:9?from=returns@example.com"

# -- the people ------------------------------------------------------------------------

TASK_ROLE = "customer_service"  # approve_return, the task every task command works on
SUPERVISOR_ROLE = "customer_service_supervisor"


@dataclass(frozen=True)
class Kind:
    """A kind of user, as the matrix sees them (relative to approve_return)."""

    key: str
    name: str
    roles: frozenset[str] = frozenset()
    active: bool = True
    known: bool = True


KINDS = (
    Kind("holder", "cs-ann", frozenset({TASK_ROLE})),
    Kind("other_role", "fin-fay", frozenset({"finance"})),
    Kind("supervisor", "cs-sue", frozenset({SUPERVISOR_ROLE})),
    Kind("admin", "ada", frozenset({"admin"})),
    Kind("auditor", "aud-al", frozenset({"auditor"})),
    Kind("disabled", "cs-dan", frozenset({TASK_ROLE}), active=False),
    Kind("unknown", "nobody", known=False),
)
BY_KEY = {k.key: k for k in KINDS}
OTHER_CLAIMER = "cs-bob"  # holds the role, claims the task in the state "other"
DELEGATE_TO = "cs-cy"  # holds the role, the one a delegation goes to
#: Every user of the template, the first an admin (as it must be), and their roles.
USERS: dict[str, tuple[str, ...]] = {
    "ada": ("admin",),
    "cs-ann": (TASK_ROLE,),
    "cs-bob": (TASK_ROLE,),
    "cs-cy": (TASK_ROLE,),
    "cs-dan": (TASK_ROLE,),
    "cs-sue": (SUPERVISOR_ROLE,),
    "cs-max": (TASK_ROLE, "finance"),
    "fin-fay": ("finance",),
    "log-leo": ("logistics",),
    "aud-al": ("auditor",),
}
DISABLED = ("cs-dan",)

#: The claim states of approve_return: nobody's, the acting user's, someone else's.
CLAIMS = ("unclaimed", "self", "other")

# -- the rules, as docs/permissions.md's table says them -------------------------------


@dataclass(frozen=True)
class Facts:
    """What a case's outcome depends on."""

    kind: Kind
    claim: str  # one of CLAIMS
    lanes: frozenset[str]  # the roles the process draws as lanes

    @property
    def claimer(self) -> str | None:
        return {"unclaimed": None, "self": self.kind.name, "other": OTHER_CLAIMER}[self.claim]


def _active(f: Facts) -> bool:
    return f.kind.known and f.kind.active


def _changes(f: Facts) -> bool:
    """The least every change needs: an active user who is not an auditor."""
    return _active(f) and "auditor" not in f.kind.roles


def _supervisor_of(role: str) -> str:
    return f"{role}_supervisor"  # processes/roles.toml names no other supervisor


def _holds_task(f: Facts) -> bool:
    return TASK_ROLE in f.kind.roles


def _supervises_task(f: Facts) -> bool:
    return _supervisor_of(TASK_ROLE) in f.kind.roles


def _claim_holds(f: Facts) -> bool:
    """A disabled user's claim no longer holds (nor an unknown name's, once users exist)."""
    return f.claimer in USERS and f.claimer not in DISABLED


def _claimed_by_someone_else(f: Facts) -> bool:
    return f.claimer not in (None, f.kind.name) and _claim_holds(f)


def _may_work(f: Facts) -> bool:
    return _changes(f) and _holds_task(f) and not _claimed_by_someone_else(f)


def _may_unclaim(f: Facts) -> bool:
    return _changes(f) and (
        f.claimer == f.kind.name or _supervises_task(f) or (not _claim_holds(f) and _holds_task(f))
    )


def _may_delegate(f: Facts) -> bool:
    return _changes(f) and (_may_work(f) or _supervises_task(f))


def _takes_part(f: Facts) -> bool:
    drawn = f.lanes | {_supervisor_of(lane) for lane in f.lanes}
    return _changes(f) and bool(f.kind.roles & drawn)


def _may_retry(f: Facts) -> bool:
    return _takes_part(f) or (_changes(f) and "admin" in f.kind.roles)


def _may_cancel(f: Facts) -> bool:
    bosses = {_supervisor_of(lane) for lane in f.lanes} | {
        lane for lane in f.lanes if lane.endswith("_supervisor")
    }
    return _changes(f) and bool(f.kind.roles & bosses)


def _admin(f: Facts) -> bool:
    return _changes(f) and "admin" in f.kind.roles


@dataclass(frozen=True)
class Rule:
    """A row of the table: its two cells as the page has them, and the rule."""

    operations: str
    who: str
    may: Callable[[Facts], bool]
    #: For a row whose dry run is a read: who may do that (any active user).
    dry_run: Callable[[Facts], bool] | None = None


THE_RULES = (
    Rule(
        "`claim`, `complete`",
        "a holder of the task's role, or of the role it was escalated to; not while someone "
        "else holds a claim on it",
        _may_work,
    ),
    Rule(
        "`unclaim`",
        "the claimer; a supervisor of the task's role; anyone who may work the task once the "
        "claimer is disabled",
        _may_unclaim,
    ),
    Rule(
        "`delegate TASK --to USER`",
        "whoever may claim the task, or a supervisor of its role; only to an active user who "
        "holds the role and is not barred by four eyes",
        _may_delegate,
    ),
    Rule(
        "`apply`, `start`, `message`, `comment`, `evidence add`",
        "a role the process draws as a lane, or its supervisor",
        _takes_part,
    ),
    Rule("`retry`", "a role of the process, or an admin", _may_retry),
    Rule("`cancel`", "a supervisor of one of the process's roles", _may_cancel),
    Rule(
        "`run-due`, `notices send`, `worker`",
        "any active user but an auditor (they do only what is due anyway, so a scheduler "
        "account needs no role)",
        _changes,
    ),
    Rule(
        "`users add/disable`, `deploy`, `init` (upgrade), `orders import`",
        "admins",
        _admin,
    ),
    Rule(
        "`audit archive` (moves closed instances' events out of the database)",
        "admins; its `--dry-run`, which changes nothing, any active user",
        _admin,
        dry_run=_active,
    ),
    Rule(
        "`migrate` (moves running instances to a newer version)",
        "admins; its `--dry-run`, which changes nothing, any active user",
        _admin,
        dry_run=_active,
    ),
)
#: The commands each row names (its first cell, as commands).
ROW_COMMANDS = (
    ("claim", "complete"),
    ("unclaim",),
    ("delegate",),
    ("apply", "start", "message", "comment", "evidence add"),
    ("retry",),
    ("cancel",),
    ("run-due", "notices send", "worker"),
    ("users add", "users disable", "deploy", "init", "orders import"),
    ("audit archive",),
    ("migrate",),
)
RULE_OF = {
    name: rule for rule, names in zip(THE_RULES, ROW_COMMANDS, strict=True) for name in names
}


def test_the_rules_here_are_the_table_of_docs_permissions_md() -> None:
    """If the page changes, this fails: the matrix must then be brought in line."""
    rows = {}
    for line in PERMISSIONS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2:
            rows[cells[0]] = cells[1]
    for rule in THE_RULES:
        assert rule.operations in rows, f"docs/permissions.md has no row {rule.operations!r}"
        assert rows[rule.operations] == rule.who, rule.operations
    # The auditor's rule, under the table.
    assert "Auditors read everything and change nothing: every change above is refused" in (
        PERMISSIONS_DOC.read_text(encoding="utf-8")
    )


def cli_commands() -> set[str]:
    """Every command of `artreturns`, a group's as "group command"."""
    import click

    found: set[str] = set()
    for name, command in cli_module.cli.commands.items():
        if isinstance(command, click.Group):
            found.update(f"{name} {sub}" for sub in command.commands)
        else:
            found.add(name)
    return found


def test_every_command_is_in_the_table() -> None:
    """A new command must say who may run it: in a row of the table (bench, a tool of
    its own, in a paragraph under it)."""
    page = PERMISSIONS_DOC.read_text(encoding="utf-8")
    named: set[str] = set()
    for line in page.splitlines():
        if not line.startswith("| "):
            continue
        for quoted in re.findall(r"`([^`]+)`", line.split("|")[1]):
            words = quoted.split(" -")[0].split(" TASK")[0].split()
            *group, last = words
            named.update(" ".join([*group, one]) for one in last.split("/"))
    missing = {c for c in cli_commands() - named if f"`{c}`" not in page}
    assert missing == set(), f"docs/permissions.md does not say who may run {sorted(missing)}"
    assert "bench" not in named  # the paragraph, not the table


# -- the commands ----------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A mutating command as the matrix runs it.

    `argv(case)` builds its arguments; `target(case)` names the instance it concerns
    (None: none, its refusals go to the operation log); `done(check, case)` asserts the
    change an allowed run made. `claims`: whether the claim state of approve_return is
    one of its axes (it concerns that task, or the instance that holds it)."""

    name: str
    argv: Callable[[Case], list[str]]
    done: Callable[[Check, Case], None]
    target: Callable[[Case], str | None] = lambda case: None
    claims: bool = False
    dry_run: bool = False
    now: str = NOW
    #: The operation name a refusal is recorded under.
    operation: str | None = None
    #: The process whose lanes the rule looks at.
    process: str = "return_request"
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def rule(self) -> Rule:
        return RULE_OF[self.name.removesuffix(" --dry-run")]

    @property
    def id(self) -> str:
        return self.name.replace(" ", "-")


@dataclass(frozen=True)
class Case:
    command: Command
    kind: Kind
    claim: str
    prepared: Prepared

    @property
    def id(self) -> str:
        claim = f"-{self.claim}" if self.command.claims else ""
        return f"{self.command.id}-{self.kind.key}{claim}"

    @property
    def rma(self) -> str:
        """The return waiting at approve_return in this case's claim state."""
        if self.claim == "unclaimed":
            return self.prepared.rmas["open"]
        claimer = self.kind.name if self.claim == "self" else OTHER_CLAIMER
        return self.prepared.rmas[f"claimed:{claimer}"]

    @property
    def task(self) -> str:
        return f"{self.rma}:approve_return"

    def facts(self) -> Facts:
        lanes = self.prepared.lanes[self.command.process]
        return Facts(self.kind, self.claim, lanes)

    def expected(self) -> str:
        """ALLOWED, DENIED, or (allowed, but there is nothing to do) INVALID."""
        facts = self.facts()
        rule = self.command.rule
        decide = rule.dry_run if self.command.dry_run else rule.may
        assert decide is not None
        allowed = decide(facts)
        name = self.command.name
        if name == "claim" and self.claim == "self" and allowed:
            return INVALID  # already theirs
        if name == "unclaim" and self.claim == "unclaimed":
            # Nothing to let go: said before whose it is, once the user may change anything.
            return INVALID if _changes(facts) else DENIED
        return ALLOWED if allowed else DENIED


ALLOWED, DENIED, INVALID = "allowed", "denied", "invalid"


@dataclass
class Prepared:
    """The template: where it is and what it holds."""

    root: Path
    url: str | URL
    rmas: dict[str, str]
    lanes: dict[str, frozenset[str]]
    files: dict[str, Path] = field(default_factory=dict)


# -- checks on a database ----------------------------------------------------------------

#: Columns of an instance that any recorded event moves on (a refusal too).
EVENT_BOOKKEEPING = frozenset({"revision", "updated_at", "event_count", "head_hash"})


#: The logs: appended to, never changed; a snapshot keeps each entry's id and hash.
LOGS = ("event", "operation")


def snapshot(db: Engine, data: Path | None) -> dict[str, Any]:
    """Every row of every table, and the names of the data files."""
    found: dict[str, Any] = {}
    with db.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            if table in LOGS:
                found[table] = conn.execute(text(f"SELECT id, hash FROM {table} ORDER BY id")).all()
                continue
            rows = [dict(r) for r in conn.execute(text(f'SELECT * FROM "{table}"')).mappings()]
            if table == "instance":
                rows = [{k: v for k, v in r.items() if k not in EVENT_BOOKKEEPING} for r in rows]
            found[table] = sorted(repr(sorted(r.items())) for r in rows)
    if data is not None and data.is_dir():
        found["files"] = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    return found


@dataclass
class Check:
    """A case's database before and after: what changed, what was recorded."""

    db: Engine
    data: Path | None
    before: dict[str, Any] = field(default_factory=dict)
    events_before: int = 0
    operations_before: int = 0
    before_jobs: int = 0

    def start(self) -> None:
        self.before = snapshot(self.db, self.data)
        self.events_before = self.scalar("SELECT max(id) FROM event") or 0
        self.operations_before = self.scalar("SELECT max(id) FROM operation") or 0
        self.before_jobs = self.scalar("SELECT count(*) FROM job WHERE kind = 'service'")

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]

    def _since(self, sql: str, since: int, column: str) -> list[dict[str, Any]]:
        return [{**r, column: json.loads(r[column])} for r in self.rows(sql, b=since)]

    def new_events(self) -> list[dict[str, Any]]:
        """rma, actor, kind, bpmn_id and data of each event the case recorded."""
        return self._since(
            "SELECT i.business_key AS rma, e.actor, e.kind, e.bpmn_id, e.data FROM event e "
            "JOIN instance i ON i.id = e.instance_id WHERE e.id > :b ORDER BY e.id",
            self.events_before,
            "data",
        )

    def new_operations(self) -> list[dict[str, Any]]:
        """actor, operation, target, outcome and details of each entry the case logged."""
        return self._since(
            "SELECT actor, operation, target, outcome, details FROM operation WHERE id > :b "
            "ORDER BY id",
            self.operations_before,
            "details",
        )

    def kinds_by(self, actor: str) -> list[tuple[str, str | None]]:
        return [(e["kind"], e["bpmn_id"]) for e in self.new_events() if e["actor"] == actor]

    def task(self, rma: str, step: str = "approve_return") -> dict[str, Any]:
        [row] = self.rows(
            "SELECT t.* FROM task t JOIN instance i ON i.id = t.instance_id "
            "WHERE i.business_key = :rma AND t.bpmn_id = :step ORDER BY t.created_at DESC "
            "LIMIT 1",
            rma=rma,
            step=step,
        )
        return row

    def unchanged(self) -> None:
        """Nothing changed but what was added to the logs (the checks look at that)."""
        now = snapshot(self.db, self.data)
        for log, last in zip(LOGS, (self.events_before, self.operations_before), strict=True):
            now[log] = [entry for entry in now[log] if entry[0] <= last]
        assert now == self.before


# -- the cases' commands and what an allowed one changes ---------------------------------


def _claimed(check: Check, case: Case) -> None:
    assert check.task(case.rma)["claimed_by"] == case.kind.name
    assert check.kinds_by(case.kind.name) == [("claimed", "approve_return")]


def _completed(check: Check, case: Case) -> None:
    task = check.task(case.rma)
    assert (task["state"], task["completed_by"]) == ("COMPLETED", case.kind.name)
    assert ("task_completed", "approve_return") in check.kinds_by(case.kind.name)


def _unclaimed(check: Check, case: Case) -> None:
    assert check.task(case.rma)["claimed_by"] is None
    assert check.kinds_by(case.kind.name) == [("unclaimed", "approve_return")]


def _delegated(check: Check, case: Case) -> None:
    assert check.task(case.rma)["claimed_by"] == DELEGATE_TO
    [event] = [e for e in check.new_events() if e["kind"] == "delegated"]
    assert (event["actor"], event["data"]["to"]) == (case.kind.name, DELEGATE_TO)


def _started(check: Check, case: Case) -> None:
    [(kind, rma)] = [
        (e["kind"], e["rma"]) for e in check.new_events() if e["actor"] == case.kind.name
    ][:1]
    assert kind == "started"
    assert check.scalar("SELECT started_by FROM instance WHERE business_key = :k", k=rma) == (
        case.kind.name
    )


def _messaged(check: Check, case: Case) -> None:
    events = [e for e in check.new_events() if e["kind"] == "message"]
    assert [(e["actor"], e["data"]["name"]) for e in events] == [(case.kind.name, "return_shipped")]


def _commented(check: Check, case: Case) -> None:
    assert check.kinds_by(case.kind.name) == [("comment", None)]


def _evidence_added(check: Check, case: Case) -> None:
    assert check.rows("SELECT rma, added_by FROM evidence_file WHERE name = 'crack.jpg'") == [
        {"rma": case.rma, "added_by": case.kind.name}
    ]


def _retried(check: Check, case: Case) -> None:
    rma = case.prepared.rmas["incident"]
    kinds = check.kinds_by(case.kind.name)
    assert kinds[0] == ("retried", "notify_received")
    assert ("handler_result", "notify_received") in kinds
    assert check.scalar("SELECT incident_count FROM instance WHERE business_key = :k", k=rma) == 0


def _cancelled(check: Check, case: Case) -> None:
    status = check.scalar("SELECT status FROM instance WHERE business_key = :k", k=case.rma)
    assert status == "cancelled"
    assert check.kinds_by(case.kind.name) == [("cancelled", None)]


def _fired(check: Check, case: Case) -> None:
    escalated = {e["rma"] for e in check.new_events() if e["kind"] == "escalated"}
    assert case.prepared.rmas[f"claimed:{OTHER_CLAIMER}"] in escalated
    assert {e["actor"] for e in check.new_events()} == {case.kind.name}


def _sent(check: Check, case: Case) -> None:
    assert check.before["outbox_message"] != snapshot(check.db, None)["outbox_message"]
    assert check.scalar("SELECT count(*) FROM outbox_message WHERE delivered_at IS NULL") == 0


def _logged(operation: str) -> Callable[[Check, Case], None]:
    def logged(check: Check, case: Case) -> None:
        assert [(o["actor"], o["operation"], o["outcome"]) for o in check.new_operations()] == [
            (case.kind.name, operation, "done")
        ]

    return logged


def _user_added(check: Check, case: Case) -> None:
    _logged("users add")(check, case)
    assert check.scalar("SELECT created_by FROM user_account WHERE name = 'log-lou'") == (
        case.kind.name
    )


def _user_disabled(check: Check, case: Case) -> None:
    _logged("users disable")(check, case)
    row = check.rows("SELECT active, disabled_by FROM user_account WHERE name = 'log-leo'")
    assert [(bool(r["active"]), r["disabled_by"]) for r in row] == [(False, case.kind.name)]


def _deployed(check: Check, case: Case) -> None:
    _logged("deploy")(check, case)
    assert check.scalar(
        "SELECT deployed_by FROM definition WHERE process_id = 'return_request' AND version = 3"
    ) == (case.kind.name)


def _upgraded(check: Check, case: Case) -> None:
    _logged("init")(check, case)
    versions = {r["version_num"] for r in check.rows("SELECT version_num FROM alembic_version")}
    assert "0012" in versions


def _imported(check: Check, case: Case) -> None:
    _logged("orders import")(check, case)
    assert check.scalar("SELECT count(*) FROM sales_order WHERE order_number = 'N-1'") == 1


def _archived(check: Check, case: Case) -> None:
    _logged("audit archive")(check, case)
    closed = case.prepared.rmas["closed"]
    assert (
        check.scalar(
            "SELECT count(*) FROM event e JOIN instance i ON i.id = e.instance_id "
            "WHERE i.business_key = :k",
            k=closed,
        )
        == 0
    )


def _read_only(check: Check, case: Case) -> None:
    """A dry run reads: nothing changes, nothing is logged."""
    check.unchanged()
    assert check.new_events() == []
    assert check.new_operations() == []


def _migrated(check: Check, case: Case) -> None:
    version = check.scalar(
        "SELECT process_version FROM instance WHERE business_key = :k", k=case.rma
    )
    assert version == 2
    assert check.kinds_by(case.kind.name) == [("migrated", None)]


def _ran_jobs(check: Check, case: Case) -> None:
    queued = case.prepared.rmas["queued"]
    ran = [(e["rma"], e["kind"]) for e in check.new_events() if e["actor"] == case.kind.name]
    assert (queued, "handler_result") in ran
    assert check.before_jobs > 0
    assert check.scalar("SELECT count(*) FROM job WHERE kind = 'service'") == 0


def _rma_of(case: Case) -> str | None:
    return case.rma


COMMANDS = (
    Command("claim", lambda c: ["claim", c.task], _claimed, _rma_of, claims=True),
    Command(
        "complete",
        lambda c: ["complete", c.task, "--data", json.dumps({"decision": "approve", "note": "ok"})],
        _completed,
        _rma_of,
        claims=True,
    ),
    Command("unclaim", lambda c: ["unclaim", c.task], _unclaimed, _rma_of, claims=True),
    Command(
        "delegate",
        lambda c: ["delegate", c.task, "--to", DELEGATE_TO],
        _delegated,
        _rma_of,
        claims=True,
    ),
    Command(
        "apply",
        lambda c: application("P-2"),
        _started,
    ),
    Command("start", lambda c: ["start", "return_request", "--key", "K-START"], _started),
    Command(
        "message",
        lambda c: [
            "message",
            c.prepared.rmas["shipped"],
            "return_shipped",
            "--data",
            json.dumps({"carrier": "SF Express", "tracking_number": "SF1"}),
        ],
        _messaged,
        lambda c: c.prepared.rmas["shipped"],
    ),
    Command(
        "comment",
        lambda c: ["comment", c.rma, "Called the customer."],
        _commented,
        _rma_of,
        claims=True,
    ),
    Command(
        "evidence add",
        lambda c: ["evidence", "add", c.rma, str(c.prepared.files["evidence"])],
        _evidence_added,
        _rma_of,
        claims=True,
    ),
    Command(
        "retry",
        lambda c: ["retry", c.prepared.rmas["incident"]],
        _retried,
        lambda c: c.prepared.rmas["incident"],
    ),
    Command(
        "cancel",
        lambda c: ["cancel", c.rma, "--reason", "withdrawn"],
        _cancelled,
        _rma_of,
        claims=True,
    ),
    Command("run-due", lambda c: ["run-due"], _fired, now=LATE),
    Command("notices send", lambda c: ["notices", "send"], _sent),
    # As its help says: where workers run, commands leave service tasks to them.
    Command(
        "worker",
        lambda c: ["worker", "--once"],
        _ran_jobs,
        env={"ARTRETURNS_INLINE_HANDLERS": "off"},
    ),
    Command("users add", lambda c: ["users", "add", "log-lou", "--role", "logistics"], _user_added),
    Command("users disable", lambda c: ["users", "disable", "log-leo"], _user_disabled),
    Command("deploy", lambda c: ["deploy", str(c.prepared.files["v3"])], _deployed),
    Command("init", lambda c: ["init"], _upgraded),
    Command(
        "orders import", lambda c: ["orders", "import", str(c.prepared.files["orders"])], _imported
    ),
    Command(
        "audit archive",
        lambda c: ["audit", "archive", "--before", LATE, "-o", str(c.prepared.files["archive"])],
        _archived,
    ),
    Command(
        "audit archive --dry-run",
        lambda c: [
            "audit",
            "archive",
            "--before",
            LATE,
            "-o",
            str(c.prepared.files["archive"]),
            "--dry-run",
        ],
        _read_only,
        dry_run=True,
        operation="audit archive",
    ),
    Command(
        "migrate",
        lambda c: ["migrate", c.prepared.rmas["open"], "--to-version", "2"],
        _migrated,
        lambda c: c.prepared.rmas["open"],
    ),
    Command(
        "migrate --dry-run",
        lambda c: ["migrate", c.prepared.rmas["open"], "--to-version", "2", "--dry-run"],
        _read_only,
        dry_run=True,
        operation="migrate",
    ),
)


# -- the prepared database -------------------------------------------------------------

ORDERS_HEADER = (
    "order_number,channel,jurisdiction,currency,sold_at,delivered_at,payment_method,payer,"
    "shipping_charge,customer_name,customer_email,customer_locale,customer_address,artwork_id,"
    "title,artist,category,price,custom_made,indivisible_set,auction_lot,guarantee_years,"
    "authenticity_disclaimer,set_id,condition_grade,condition_notes,certificate,accessories\n"
)
#: A sealed print (CNY 1,200: customer service alone approves its return).
PRINT = (
    "{number},online_shop,CN,CNY,2026-10-25,2026-10-28,alipay,Wang Fang,0,Wang Fang,"
    'wang.fang@example.com,zh-Hant,"12 Fuxing Road, Shanghai",W-{number},Mist over Huangshan,'
    "Lin Feng,print,1200,no,no,no,0,no,,excellent,sealed,,\n"
)
#: An oil painting (EUR 4,500): an approval chain of two levels, customer service and
#: then finance confirming the amount.
PAINTING = (
    "E-1,online_shop,EU,EUR,2026-10-22,2026-10-26,card,Jonas Weber,0,Jonas Weber,"
    'jonas.weber@example.de,en,"Bergstrasse 9, Munich",W-E-1,Harbour at Dusk,Jonas Maier,'
    "painting,4500,no,no,no,0,no,,excellent,,,\n"
)


def orders_csv(*numbers: str) -> str:
    """The prints of these order numbers (each one artwork, W-<number>), the painting."""
    prints = "".join(PRINT.format(number=n) for n in numbers)
    return ORDERS_HEADER + prints + PAINTING


def application(order: str) -> list[str]:
    """`artreturns apply` for the print of `order`."""
    return [
        "apply",
        *("--order", order, "--artwork", f"W-{order}", "--type", "return"),
        *("--reason", "no_reason", "--description", "Changed my mind."),
    ]


class Desk:
    """`artreturns` in-process on one database, as someone, at some time."""

    def __init__(self, url: str | URL, data: Path) -> None:
        self.db = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        self.data = data
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        actor: str,
        now: str = SETUP,
        code: int | None = 0,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        argv = ["--db", self.db, "--now", now, "--as", actor, *args]
        result = self.runner.invoke(
            cli_module.cli,
            argv,
            env={"ARTRETURNS_DATA": str(self.data), **(env or {})},
            prog_name="artreturns",
            catch_exceptions=False,
        )
        if code is not None:
            assert result.exit_code == code, (
                f"artreturns --as {actor} {' '.join(args)}: exit {result.exit_code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def apply(self, order: str = "P-1", **kwargs: Any) -> str:
        started = self(*application(order), "--json", **kwargs)
        return str(json.loads(started.stdout)["instance"]["business_key"])


def failing(operator: str) -> Callable[[], Registry]:
    """The handlers of the procedure, with `operator` failing as if its service were down."""

    def broken(params: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        raise ConnectionError("mail service unreachable")

    def registry() -> Registry:
        real = REAL_REGISTRY()
        made = Registry()
        for info in real:
            made.register(info.operator, broken if info.operator == operator else info.handler)
        return made

    return registry


REAL_REGISTRY = Registry.from_entry_points


def renamed(target: Path, old: str, new: str) -> Path:
    """A copy of processes/ whose return_request names one late step otherwise: a new
    version, and one an instance waiting for approval can safely move to."""
    shutil.copytree(PROCESSES, target)
    diagram = target / "return_request.bpmn"
    source = diagram.read_text(encoding="utf-8")
    assert source.count(old) == 1
    diagram.write_text(source.replace(old, new), encoding="utf-8")
    return target


WAIT_NAME = 'name="Wait for the customer\'s confirmation"'


def prepare(url: str | URL, root: Path) -> Prepared:
    """Everything the cases need, made before the first user exists (names are labels
    then, and claims hold), then the users."""
    desk = Desk(url, root / "data")
    setup = "setup"
    desk("init", actor=setup)
    desk("deploy", str(PROCESSES), actor=setup)
    orders = root / "orders.csv"
    orders.write_text(orders_csv("P-1", "P-2"), encoding="utf-8")
    desk("orders", "import", str(orders), actor=setup)
    pending = {"ARTRETURNS_SMTP": SMTP}  # the notices the returns send wait to be sent
    rmas = {"open": desk.apply(actor=setup, env=pending)}
    for claimer in [k.name for k in KINDS] + [OTHER_CLAIMER]:
        rma = rmas[f"claimed:{claimer}"] = desk.apply(actor=setup, env=pending)
        desk("claim", f"{rma}:approve_return", actor=claimer)
    shipped = rmas["shipped"] = desk.apply(actor=setup, env=pending)
    desk(
        "complete",
        f"{shipped}:approve_return",
        "--data",
        json.dumps({"decision": "approve", "note": "Sealed"}),
        actor="cs-ann",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Registry, "from_entry_points", failing("notify.customer"))
        rmas["incident"] = desk.apply(actor=setup)
    # Its service tasks wait in the job queue for a worker.
    rmas["queued"] = desk.apply(actor=setup, env={"ARTRETURNS_INLINE_HANDLERS": "off"})
    closed = rmas["closed"] = desk.apply(actor=setup)
    desk("cancel", closed, "--reason", "withdrawn", actor=setup)
    rmas["chain"] = desk.apply("E-1", actor=setup)
    desk("deploy", str(renamed(root / "v2", WAIT_NAME, 'name="Wait for the answer"')), actor=setup)
    for name, roles in USERS.items():
        desk("users", "add", name, *[a for r in roles for a in ("--role", r)], actor="ada")
    for name in DISABLED:
        desk("users", "disable", name, actor="ada")

    files = {
        "orders": root / "orders-new.csv",
        "evidence": root / "crack.jpg",
        "v3": renamed(root / "v3", WAIT_NAME, 'name="Wait for the reply"'),
    }
    files["orders"].write_text(ORDERS_HEADER + PRINT.format(number="N-1"), encoding="utf-8")
    files["evidence"].write_bytes(b"\xff\xd8\xff\xe0 a photo of a crack")
    db = create_engine(url)
    try:
        with db.connect() as conn:
            found = conn.execute(text("SELECT process_id, lanes FROM definition WHERE version = 1"))
            lanes = {
                str(p): frozenset(json.loads(ls) if isinstance(ls, str) else ls) for p, ls in found
            }
    finally:
        db.dispose()
    return Prepared(root, url, rmas, lanes, files)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module", autouse=True)
def _specs_parsed_once() -> Iterator[None]:
    """Each command is a new engine, which parses the deployed diagrams' specs when it
    first loads an instance (a tenth of a second for the procedure); an engine keeps
    them for every instance after. Here every case's engine shares them, keyed by the
    stored text itself, so that the matrix runs in seconds."""
    from engine import spiff

    parsed: dict[str, Any] = {}
    load = spiff.load_specs

    def load_once(text: str) -> Any:
        if text not in parsed:
            parsed[text] = load(text)
        return parsed[text]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spiff, "load_specs", load_once)
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    root = tmp_path_factory.mktemp("matrix")
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV_VARS:
            patch.delenv(name, raising=False)
        prepared = prepare(f"sqlite:///{root / 'returns.db'}", root)
    with contextlib.closing(sqlite3.connect(root / "returns.db")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone is the database
    return prepared


def copy_of(template: Prepared, to: Path) -> Prepared:
    """A copy of the prepared SQLite file (nobody writes it any more) and its data."""
    target = to / "returns.db"
    shutil.copyfile(template.root / "returns.db", target)
    shutil.copytree(template.root / "data", to / "data")
    files = {**template.files, "archive": to / "archive"}
    return Prepared(to, f"sqlite:///{target}", template.rmas, template.lanes, files)


def cases() -> Iterator[Any]:
    for command in COMMANDS:
        for kind in KINDS:
            for claim in CLAIMS if command.claims else ("unclaimed",):
                name = f"{command.id}-{kind.key}" + (f"-{claim}" if command.claims else "")
                yield pytest.param(command, kind, claim, id=name)


def schema_one_revision_back(db: Engine) -> None:
    """`init` then has something to upgrade: revision 0012 again (its column is there
    already, so it only writes the fields of instances that have none)."""
    with db.begin() as conn:
        conn.execute(
            text("UPDATE alembic_version SET version_num = '0011' WHERE version_num = '0012'")
        )
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert "0011" in set(versions)


def run_case(case: Case, desk: Desk, db: Engine) -> None:
    """Run the case's command and assert the outcome the rules give, exactly."""
    command = case.command
    if command.name == "init":
        schema_one_revision_back(db)
    check = Check(db, desk.data)
    check.start()
    result = desk(
        *command.argv(case), actor=case.kind.name, now=command.now, code=None, env=command.env
    )
    expected = case.expected()
    said = f"{case.id}: exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    if expected == ALLOWED:
        assert result.exit_code == 0, said
        command.done(check, case)
        assert [e for e in check.new_events() if e["kind"] == "denied"] == []
        assert [o for o in check.new_operations() if o["outcome"] == "denied"] == []
        return
    if expected == INVALID:
        assert result.exit_code == 1, said
        assert re.match(r"Error: '.+' is (already claimed by|not claimed)", result.stderr), said
        check.unchanged()
        assert (check.new_events(), check.new_operations()) == ([], []), said
        return
    assert result.exit_code == 4, said
    assert result.stdout == "", said
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, said
    assert lines[0].startswith("Error: "), said
    assert lines[1].startswith("Hint: "), said
    assert lines[1].removeprefix("Hint: ").strip(), said
    reason = lines[0].removeprefix("Error: ")
    assert reason, said
    check.unchanged()
    operation = command.operation or command.name
    target = command.target(case)
    if target is not None:  # a running instance: its history has the refusal
        [denied] = check.new_events()
        assert (denied["rma"], denied["actor"], denied["kind"]) == (
            target,
            case.kind.name,
            "denied",
        ), said
        assert (denied["data"]["operation"], denied["data"]["reason"]) == (operation, reason)
        # The command that asked, as it was given (options that only format left out).
        assert denied["data"]["intent"].startswith(f"artreturns {command.argv(case)[0]} "), denied
        assert check.new_operations() == []
    else:  # the operation log has it
        assert check.new_events() == [], said
        [logged] = check.new_operations()
        assert (logged["actor"], logged["operation"], logged["outcome"]) == (
            case.kind.name,
            operation,
            "denied",
        ), said
        assert logged["details"]["reason"] == reason
        assert logged["details"]["intent"].startswith(f"artreturns {command.argv(case)[0]}")


@pytest.mark.parametrize(("command", "kind", "claim"), list(cases()))
def test_matrix(
    template: Prepared, tmp_path: Path, command: Command, kind: Kind, claim: str
) -> None:
    prepared = copy_of(template, tmp_path)
    db = create_engine(prepared.url)
    try:
        run_case(Case(command, kind, claim, prepared), Desk(prepared.url, tmp_path / "data"), db)
    finally:
        db.dispose()


# -- escalation attempts, one by one -----------------------------------------------------


@dataclass
class Copy:
    """A copy of the template, with `artreturns` on it and its database open."""

    prepared: Prepared
    desk: Desk
    db: Engine

    def refused(self, *args: str, actor: str, now: str = NOW) -> str:
        """Run a command `actor` may not: exit 4, nothing on stdout; the reason."""
        result = self.desk(*args, actor=actor, now=now, code=4)
        assert result.stdout == ""
        message, hint = result.stderr.strip().splitlines()
        assert hint.startswith("Hint: ")
        return message.removeprefix("Error: ")

    def denied(self, rma: str) -> list[tuple[str, str, str]]:
        """(actor, operation, reason) of each `denied` event in the return's history."""
        history = json.loads(self.desk("history", rma, "--json", actor="aud-al").stdout)
        return [
            (e["actor"], e["data"]["operation"], e["data"]["reason"])
            for e in history
            if e["kind"] == "denied"
        ]

    def denied_operations(self) -> list[tuple[str, str, str]]:
        listed = self.desk("operations", "--denied", "--json", actor="aud-al").stdout
        return [(o["actor"], o["operation"], o["details"]["reason"]) for o in json.loads(listed)]

    def claimed_by(self, rma: str, step: str = "approve_return") -> str | None:
        with self.db.connect() as conn:
            claimer = conn.execute(
                text(
                    "SELECT t.claimed_by FROM task t JOIN instance i ON i.id = t.instance_id "
                    "WHERE i.business_key = :k AND t.bpmn_id = :s AND t.state = 'READY'"
                ),
                {"k": rma, "s": step},
            ).scalar_one()
        return None if claimer is None else str(claimer)

    def verified(self, *rmas: str) -> None:
        """Refusals are links of the chains like everything else: they verify."""
        for rma in rmas:
            assert self.desk("verify", rma, actor="aud-al").stdout == f"{rma}: history intact.\n"
        assert self.desk("operations", "--verify", actor="aud-al").stdout == (
            "Operation log intact.\n"
        )


@pytest.fixture
def copy(template: Prepared, tmp_path: Path) -> Iterator[Copy]:
    prepared = copy_of(template, tmp_path)
    db = create_engine(prepared.url)
    try:
        yield Copy(prepared, Desk(prepared.url, tmp_path / "data"), db)
    finally:
        db.dispose()


APPROVE = ("--data", json.dumps({"decision": "approve", "note": "Sealed"}))


def test_claiming_or_completing_another_roles_task_is_refused_and_recorded(copy: Copy) -> None:
    rma = copy.prepared.rmas["open"]
    task = f"{rma}:approve_return"
    assert copy.refused("claim", task, actor="fin-fay") == (
        "fin-fay may not claim 'Approve the return': it needs the role customer_service"
    )
    assert copy.refused("complete", task, *APPROVE, actor="fin-fay") == (
        "fin-fay may not complete 'Approve the return': it needs the role customer_service"
    )
    # Supervising a role is not holding it: the supervisor hands the task on instead.
    assert copy.refused("claim", task, actor="cs-sue") == (
        "cs-sue may not claim 'Approve the return': it needs the role customer_service"
    )
    # Nor does running the desk: an admin does none of the procedure's work.
    assert copy.refused("complete", task, *APPROVE, actor="ada").startswith("ada may not complete")
    assert copy.claimed_by(rma) is None
    assert [(a, op) for a, op, _ in copy.denied(rma)] == [
        ("fin-fay", "claim"),
        ("fin-fay", "complete"),
        ("cs-sue", "claim"),
        ("ada", "complete"),
    ]
    copy.verified(rma)


def test_a_task_claimed_by_someone_else_is_theirs_until_they_let_go(copy: Copy) -> None:
    rma = copy.prepared.rmas[f"claimed:{OTHER_CLAIMER}"]
    task = f"{rma}:approve_return"
    taken = "'Approve the return' is claimed by cs-bob"
    assert copy.refused("claim", task, actor="cs-ann") == taken
    assert copy.refused("complete", task, *APPROVE, actor="cs-ann") == taken
    assert copy.refused("unclaim", task, actor="cs-ann").startswith(
        "cs-ann may not unclaim 'Approve the return': it is cs-bob's"
    )
    assert copy.refused("delegate", task, "--to", "cs-ann", actor="cs-ann") == (
        "cs-ann may not delegate 'Approve the return': it is cs-bob's"
    )
    assert copy.claimed_by(rma) == OTHER_CLAIMER
    assert [(a, op) for a, op, _ in copy.denied(rma)] == [
        ("cs-ann", "claim"),
        ("cs-ann", "complete"),
        ("cs-ann", "unclaim"),
        ("cs-ann", "delegate"),
    ]
    # Their supervisor may take it from them and give it to someone else.
    copy.desk("delegate", task, "--to", "cs-ann", actor="cs-sue", now=NOW)
    copy.desk("complete", task, *APPROVE, actor="cs-ann", now=NOW)
    copy.verified(rma)


def test_a_disabled_users_claim_no_longer_holds_and_they_can_do_nothing(copy: Copy) -> None:
    rma = copy.prepared.rmas["claimed:cs-dan"]
    task = f"{rma}:approve_return"
    assert copy.refused("complete", task, *APPROVE, actor="cs-dan") == "user 'cs-dan' is disabled"
    assert copy.refused("unclaim", task, actor="cs-dan") == "user 'cs-dan' is disabled"
    assert copy.refused("comment", rma, "still mine", actor="cs-dan") == (
        "user 'cs-dan' is disabled"
    )
    # The task is free for its role: another holder may let it go, or simply take it.
    copy.desk("unclaim", task, actor="cs-ann", now=NOW)
    copy.desk("claim", task, actor="cs-bob", now=NOW)
    assert copy.claimed_by(rma) == "cs-bob"
    # ... but not someone of another role.
    assert copy.refused("unclaim", task, actor="fin-fay").startswith("fin-fay may not unclaim")
    assert [(a, op) for a, op, _ in copy.denied(rma)] == [
        ("cs-dan", "complete"),
        ("cs-dan", "unclaim"),
        ("cs-dan", "comment"),
        ("fin-fay", "unclaim"),
    ]
    # Refusals that concern no return are in the operation log.
    assert copy.refused("run-due", actor="cs-dan") == "user 'cs-dan' is disabled"
    assert copy.denied_operations()[-1] == ("cs-dan", "run-due", "user 'cs-dan' is disabled")
    copy.verified(rma)


def test_approving_twice_in_one_chain_is_refused_four_eyes(copy: Copy) -> None:
    rma = copy.prepared.rmas["chain"]
    copy.desk("complete", f"{rma}:approve_return", *APPROVE, actor="cs-max", now=NOW)
    level_two = f"{rma}:confirm_refund_amount"
    confirm = ("--data", json.dumps({"decision": "approve", "amount": "4500.00"}))
    twice = (
        "cs-max already decided 'Approve the return' in this approval chain; another person "
        "must decide 'Confirm the refund amount'"
    )
    # cs-max holds finance too, and may neither take nor decide the second level.
    assert copy.refused("claim", level_two, actor="cs-max") == twice
    assert copy.refused("complete", level_two, *confirm, actor="cs-max") == twice
    # Nor can anyone hand it to them.
    assert copy.refused("delegate", level_two, "--to", "cs-max", actor="fin-fay") == (
        "cannot delegate 'Confirm the refund amount' to cs-max: they already decided "
        "'Approve the return' in this approval chain"
    )
    assert copy.claimed_by(rma, "confirm_refund_amount") is None
    assert [(a, op) for a, op, _ in copy.denied(rma)] == [
        ("cs-max", "claim"),
        ("cs-max", "complete"),
        ("fin-fay", "delegate"),
    ]
    copy.desk("complete", level_two, *confirm, actor="fin-fay", now=NOW)
    history = json.loads(copy.desk("history", rma, "--json", actor="aud-al").stdout)
    decided = [(e["bpmn_id"], e["actor"]) for e in history if e["kind"] == "task_completed"]
    assert decided == [("approve_return", "cs-max"), ("confirm_refund_amount", "fin-fay")]
    copy.verified(rma)


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        (
            "aud-al",
            "cannot delegate 'Approve the return' to aud-al: they do not hold the role "
            "customer_service",
        ),
        (
            "fin-fay",
            "cannot delegate 'Approve the return' to fin-fay: they do not hold the role "
            "customer_service",
        ),
        (
            "cs-sue",
            "cannot delegate 'Approve the return' to cs-sue: they do not hold the role "
            "customer_service",
        ),
        ("cs-dan", "cannot delegate to cs-dan: user 'cs-dan' is disabled"),
        ("nobody", "cannot delegate to nobody: 'nobody' is not a user of this database"),
    ],
)
def test_delegating_to_someone_barred_is_refused(copy: Copy, to: str, reason: str) -> None:
    rma = copy.prepared.rmas["open"]
    for who in ("cs-ann", "cs-sue"):  # whoever may claim it, and its supervisor
        assert copy.refused("delegate", f"{rma}:approve_return", "--to", to, actor=who) == reason
    assert copy.claimed_by(rma) is None
    assert copy.denied(rma) == [("cs-ann", "delegate", reason), ("cs-sue", "delegate", reason)]


def every_mutating_command(copy: Copy, actor: str) -> list[str]:
    """Run each command of the matrix as `actor` on one copy; each must be refused.
    Returns the reasons."""
    reasons = []
    for command in COMMANDS:
        if command.dry_run:
            continue
        case = Case(command, BY_KEY_NAME[actor], "unclaimed", copy.prepared)
        reasons.append(copy.refused(*command.argv(case), actor=actor, now=command.now))
    return reasons


BY_KEY_NAME = {k.name: k for k in KINDS}


@pytest.mark.parametrize("actor", ["aud-al", "cs-dan", "nobody"])
def test_an_auditor_a_disabled_user_and_a_stranger_change_nothing(copy: Copy, actor: str) -> None:
    schema_one_revision_back(copy.db)  # `init` has something to upgrade, and may not
    check = Check(copy.db, copy.desk.data)
    check.start()
    reasons = every_mutating_command(copy, actor)
    assert len(reasons) == len([c for c in COMMANDS if not c.dry_run])
    if actor == "aud-al":
        assert all(r.endswith("auditors read everything and change nothing") for r in reasons), (
            reasons
        )
    check.unchanged()
    # Each refusal is on record once: in the history of the return it concerns, else in
    # the operation log.
    on_returns = [
        c
        for c in COMMANDS
        if not c.dry_run
        and c.target(Case(c, BY_KEY_NAME[actor], "unclaimed", copy.prepared)) is not None
    ]
    recorded = [
        op for rma in sorted(set(copy.prepared.rmas.values())) for _, op, _ in copy.denied(rma)
    ]
    assert sorted(recorded) == sorted(c.operation or c.name for c in on_returns)
    logged = [op for who, op, _ in copy.denied_operations() if who == actor]
    assert sorted(logged) == sorted(
        c.operation or c.name for c in COMMANDS if not c.dry_run and c not in on_returns
    )
    copy.verified(*copy.prepared.rmas.values())


def test_an_escalated_task_is_the_supervisors_to_take(copy: Copy) -> None:
    rma = copy.prepared.rmas["open"]
    task = f"{rma}:approve_return"
    copy.desk("run-due", actor="cs-ann", now=LATE)
    # Escalated: the supervisor's role may now claim and decide it; the role keeps it too.
    copy.desk("claim", task, actor="cs-sue", now=LATE)
    assert copy.refused("complete", task, *APPROVE, actor="cs-ann", now=LATE) == (
        "'Approve the return' is claimed by cs-sue"
    )
    copy.desk("complete", task, *APPROVE, actor="cs-sue", now=LATE)
    # Another role is still refused.
    other = copy.prepared.rmas[f"claimed:{OTHER_CLAIMER}"]
    assert copy.refused("claim", f"{other}:approve_return", actor="fin-fay", now=LATE).startswith(
        "fin-fay may not claim 'Approve the return': it needs the role customer_service or "
        "customer_service_supervisor"
    )


def test_starting_a_process_that_draws_none_of_ones_roles_is_refused(copy: Copy) -> None:
    # insurance_claim is drawn in finance's lanes alone.
    assert copy.refused("start", "insurance_claim", "--key", "IC-1", actor="cs-ann") == (
        "cs-ann may not start insurance_claim: that needs a role of the process (finance, "
        "finance_supervisor)"
    )
    assert copy.denied_operations()[-1][:2] == ("cs-ann", "start")
    copy.desk("start", "insurance_claim", "--key", "IC-1", actor="fin-fay", now=NOW)


# -- the same on PostgreSQL ----------------------------------------------------------------

#: Allowed cases that leave each other's instances alone, in an order that keeps each
#: one's starting point: (command, kind, claim state).
PG_ALLOWED = (
    ("claim", "holder", "unclaimed"),
    ("complete", "holder", "self"),
    ("delegate", "supervisor", "self"),
    ("comment", "other_role", "unclaimed"),
    ("evidence add", "holder", "unclaimed"),
    ("message", "holder", "unclaimed"),
    ("retry", "admin", "unclaimed"),
    ("apply", "other_role", "unclaimed"),
    ("start", "supervisor", "unclaimed"),
    ("users add", "admin", "unclaimed"),
    ("users disable", "admin", "unclaimed"),
    ("deploy", "admin", "unclaimed"),
    ("orders import", "admin", "unclaimed"),
    ("migrate --dry-run", "auditor", "unclaimed"),
    ("migrate", "admin", "unclaimed"),
    ("cancel", "supervisor", "unclaimed"),
    ("audit archive --dry-run", "holder", "unclaimed"),
    ("audit archive", "admin", "unclaimed"),
    ("notices send", "holder", "unclaimed"),
    ("worker", "other_role", "unclaimed"),
    ("init", "admin", "unclaimed"),
    ("unclaim", "supervisor", "other"),
    ("run-due", "supervisor", "unclaimed"),
)


def pg_cases(prepared: Prepared) -> list[Case]:
    """For each command, the refusals to a holder of another role (or whoever its rule
    refuses first), an auditor and a stranger; then the allowed cases of PG_ALLOWED.
    Refusals change nothing but the record of them: they may share one database."""
    by_name = {c.name: c for c in COMMANDS}
    chosen: list[Case] = []
    for command in COMMANDS:
        claim = "other" if command.claims else "unclaimed"
        refused = [
            case
            for kind in KINDS
            if (case := Case(command, kind, claim, prepared)).expected() == DENIED
        ]
        rule_specific = [c for c in refused if c.kind.key not in ("auditor", "disabled", "unknown")]
        chosen += rule_specific[:1] + [c for c in refused if c.kind.key in ("auditor", "unknown")]
    allowed = [Case(by_name[n], BY_KEY[k], claim, prepared) for n, k, claim in PG_ALLOWED]
    assert all(case.expected() == ALLOWED for case in allowed)
    assert {c.command.name for c in allowed} == set(by_name)
    return chosen + allowed


@pytest.mark.postgres
def test_matrix_on_postgres(pg_url: URL, tmp_path: Path) -> None:
    prepared = prepare(pg_url, tmp_path)
    prepared.files["archive"] = tmp_path / "archive"
    db = create_engine(pg_url)
    try:
        desk = Desk(pg_url, tmp_path / "data")
        for case in pg_cases(prepared):
            run_case(case, desk, db)
    finally:
        db.dispose()
