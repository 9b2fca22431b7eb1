"""One return from intake to refund, as six people would play it through `artreturns`.

An admin sets the desk up (schema, procedure, users, orders); customer service registers
and approves the return; logistics reports the parcel on its way and in; an inspector
fills in the inspection report; finance confirms the refund; an auditor reviews the
result. Every command runs as the person whose step it is, at its own time (`--now`),
following the first return of docs/demo/run.sh. Along the way each person tries a step
that is not theirs and is refused (exit 4), and each refusal is found in the return's
history or the operation log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli as cli_module

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
ENV_VARS = (
    "ARTRETURNS_DB",
    "ARTRETURNS_NOW",
    "ARTRETURNS_USER",
    "ARTRETURNS_DATA",
    "ARTRETURNS_SMTP",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)

ADMIN, DESK, CARRIER_DESK, INSPECTOR, FINANCE, AUDITOR = (
    "ada",
    "cs-ann",
    "log-leo",
    "inspector-ivy",
    "fin-fay",
    "aud-al",
)
ROLES = {
    ADMIN: "admin",
    DESK: "customer_service",
    CARRIER_DESK: "logistics",
    INSPECTOR: "inspector",
    FINANCE: "finance",
    AUDITOR: "auditor",
}

# The sealed print of the demo's first return: CNY 1,200, delivered on 28 October.
ORDERS_CSV = """\
order_number,channel,jurisdiction,currency,sold_at,delivered_at,payment_method,payer,\
shipping_charge,customer_name,customer_email,customer_locale,customer_address,artwork_id,\
title,artist,category,price,custom_made,indivisible_set,auction_lot,guarantee_years,\
authenticity_disclaimer,set_id,condition_grade,condition_notes,certificate,accessories
D-2001,online_shop,CN,CNY,2026-10-25,2026-10-28,alipay,Wang Fang,0,Wang Fang,\
wang.fang@example.com,zh-Hant,"12 Fuxing Road, Shanghai",W-101,\
"Mist over Huangshan, open edition",Lin Feng,print,1200,no,no,no,0,no,,excellent,sealed,,
"""
APPLICATION = (
    "apply",
    "--order",
    "D-2001",
    "--artwork",
    "W-101",
    "--type",
    "return",
    "--reason",
    "no_reason",
    "--description",
    "Changed my mind; still sealed.",
)
ACCEPTED = {"outcome": "accepted", "grade": "excellent", "observations": [], "accessories": []}
REFUND = {"amount": "1200.00", "channel": "original_payment"}


class Desk:
    """`artreturns` in-process on one SQLite file; each command as someone, at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "returns.db"
        self.runner = CliRunner()

    def __call__(self, *args: str, user: str | None, at: str, code: int = 0) -> Result:
        argv = ["--db", str(self.db), "--now", at]
        if user is not None:
            argv += ["--as", user]
        result = self.runner.invoke(
            cli_module.cli, [*argv, *args], prog_name="artreturns", catch_exceptions=False
        )
        assert result.exit_code == code, (
            f"artreturns --as {user} {' '.join(args)}: exit {result.exit_code}, expected "
            f"{code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def json(self, *args: str, user: str, at: str) -> Any:
        return json.loads(self(*args, "--json", user=user, at=at).stdout)

    def refused(self, *args: str, user: str, at: str) -> str:
        """Run a command `user` may not: exit 4, nothing on stdout; the reason."""
        result = self(*args, user=user, at=at, code=4)
        assert result.stdout == ""
        message, hint = result.stderr.strip().splitlines()
        assert message.startswith("Error: ")
        assert hint.startswith("Hint: ")
        return message.removeprefix("Error: ")

    def complete(self, rma: str, step: str, data: Mapping[str, Any], user: str, at: str) -> None:
        self("complete", f"{rma}:{step}", "--data", json.dumps(data), user=user, at=at)

    def message(self, rma: str, name: str, data: Mapping[str, Any], user: str, at: str) -> None:
        self("message", rma, name, "--data", json.dumps(data), user=user, at=at)

    def mine(self, user: str, at: str) -> list[tuple[str, str]]:
        """(rma, step) of each task in `user`'s own worklist."""
        return [(t["business_key"], t["bpmn_id"]) for t in self.json("tasks", user=user, at=at)]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_one_return_from_intake_to_refund_by_six_people(tmp_path: Path) -> None:
    desk = Desk(tmp_path)

    # -- the admin sets up the desk --------------------------------------------------------
    day0 = "2026-11-01T08:00:00Z"
    desk("init", user=ADMIN, at=day0)
    desk("deploy", str(PROCESSES), user=ADMIN, at=day0)
    desk("users", "add", ADMIN, "--role", "admin", user=ADMIN, at=day0)
    for name, role in ROLES.items():
        if name != ADMIN:
            desk("users", "add", name, "--role", role, user=ADMIN, at=day0)
    orders = tmp_path / "orders.csv"
    orders.write_text(ORDERS_CSV, encoding="utf-8")
    imported = desk("orders", "import", str(orders), user=ADMIN, at=day0)
    assert imported.stdout == "Imported 1 order(s) with 1 artwork(s) from orders.csv.\n"
    assert {u["name"]: u["roles"] for u in desk.json("users", "list", user=ADMIN, at=day0)} == {
        name: [role] for name, role in ROLES.items()
    }
    # Only the admin sets up: the desk may neither add people nor import orders.
    assert desk.refused(
        "users", "add", "cs-cat", "--role", "customer_service", user=DESK, at=day0
    ) == ("cs-ann may not add users: that needs the admin role")
    assert desk.refused("orders", "import", str(orders), user=DESK, at=day0) == (
        "cs-ann may not import orders: that needs the admin role"
    )

    # -- customer service registers the request (day 5) and approves it ---------------------
    applied_at = "2026-11-02T09:00:00Z"
    # An admin runs the desk but does none of the procedure's work.
    assert desk.refused(*APPLICATION, user=ADMIN, at=applied_at).startswith(
        "ada may not register a return: that needs a role of the process ("
    )
    started = desk.json(*APPLICATION, user=DESK, at=applied_at)
    rma = started["instance"]["business_key"]
    assert rma.startswith("RMA-2026-")
    assert desk.mine(DESK, applied_at) == [(rma, "approve_return")]
    for other in (CARRIER_DESK, INSPECTOR, FINANCE, AUDITOR, ADMIN):
        assert desk.mine(other, applied_at) == [], other

    approved_at = "2026-11-02T10:00:00Z"
    assert (
        desk.refused(
            "complete",
            f"{rma}:approve_return",
            "--data",
            json.dumps({"decision": "approve"}),
            user=CARRIER_DESK,
            at=approved_at,
        )
        == "log-leo may not complete 'Approve the return': it needs the role customer_service"
    )
    desk.complete(
        rma, "approve_return", {"decision": "approve", "note": "Sealed"}, DESK, approved_at
    )

    # -- logistics: the parcel is on its way (day 6), then in (day 8) ---------------------------
    shipped_at, received_at = "2026-11-03T09:00:00Z", "2026-11-05T09:00:00Z"
    parcel = {"carrier": "SF Express", "tracking_number": "SF2001000001"}
    assert desk.refused(
        "message", rma, "return_shipped", "--data", json.dumps(parcel), user=AUDITOR, at=shipped_at
    ) == (
        "aud-al is an auditor and may not deliver messages: auditors read everything and "
        "change nothing"
    )
    desk.message(rma, "return_shipped", parcel, CARRIER_DESK, shipped_at)
    desk.message(rma, "return_received", {}, CARRIER_DESK, received_at)

    # -- the inspector fills in the report -----------------------------------------------------
    inspected_at = "2026-11-05T11:00:00Z"
    assert desk.mine(INSPECTOR, inspected_at) == [(rma, "inspect_work")]
    form = desk.json("form", f"{rma}:inspect_work", user=INSPECTOR, at=inspected_at)
    assert {"outcome", "grade", "observations", "accessories"} <= {f["id"] for f in form["fields"]}
    assert (
        desk.refused(
            "complete",
            f"{rma}:inspect_work",
            "--data",
            json.dumps(ACCEPTED),
            user=FINANCE,
            at=inspected_at,
        )
        == "fin-fay may not complete 'Inspect the returned work': it needs the role inspector"
    )
    desk.complete(rma, "inspect_work", ACCEPTED, INSPECTOR, inspected_at)

    # -- finance confirms the refund -------------------------------------------------------------
    confirmed_at = "2026-11-05T15:00:00Z"
    assert desk.mine(FINANCE, confirmed_at) == [(rma, "confirm_refund")]
    assert (
        desk.refused(
            "complete",
            f"{rma}:confirm_refund",
            "--data",
            json.dumps(REFUND),
            user=INSPECTOR,
            at=confirmed_at,
        )
        == "inspector-ivy may not complete 'Confirm the refund': it needs the role finance"
    )
    desk("claim", f"{rma}:confirm_refund", user=FINANCE, at=confirmed_at)
    desk.complete(rma, "confirm_refund", REFUND, FINANCE, confirmed_at)

    # -- the customer confirms, customer service delivers it: the return closes --------------------
    closed_at = "2026-11-06T09:00:00Z"
    desk.message(
        rma, "customer_confirmation", {"score": 5, "comment": "Quick and kind."}, DESK, closed_at
    )

    # -- the auditor reviews -----------------------------------------------------------------------
    review_at = "2026-11-07T09:00:00Z"
    # The ticket is closed and the money refunded; the instance only waits to call the
    # customer back a month later (the procedure's return visit).
    [line] = desk.json("returns", user=AUDITOR, at=review_at)
    assert line == {
        "rma": rma,
        "order_number": "D-2001",
        "works": "Mist over Huangshan, open edition",
        "type": "return",
        "reason": "no_reason",
        "ticket": "closed",
        "process": "running",
        "where": "waiting: A month later (2026-12-06)",
        "rule": None,
        "refunded": "CNY 1,200.00",
        "charged": None,
        "notices": 6,
    }
    shown = desk.json("show", rma, user=AUDITOR, at=review_at)
    assert [(t["bpmn_id"], t["kind"]) for t in shown["open_tasks"]] == [("month_later", "timer")]
    data = shown["data"]
    assert (data["eligibility"], data["policy_rule"], data["tier"]) == (
        "eligible",
        "CN-7DAY-NO-REASON",
        "T1",
    )
    paid = data["refunded"]
    assert (paid["amount"], paid["channel"], paid["paid_at"]) == (
        {"amount": "1200.00", "currency": "CNY"},
        "original_payment",
        "2026-11-05T15:00:00+00:00",
    )
    assert data["confirmation"] == {"score": 5, "comment": "Quick and kind."}

    events = desk.json("history", rma, user=AUDITOR, at=review_at)
    done_by = {e["bpmn_id"]: e["actor"] for e in events if e["kind"] == "task_completed"}
    assert done_by == {
        "approve_return": DESK,
        "inspect_work": INSPECTOR,
        "confirm_refund": FINANCE,
    }
    messages = [(e["actor"], e["data"]["name"]) for e in events if e["kind"] == "message"]
    assert messages == [
        (CARRIER_DESK, "return_shipped"),
        (CARRIER_DESK, "return_received"),
        (DESK, "customer_confirmation"),
    ]
    assert [(e["actor"], e["data"]["operation"]) for e in events if e["kind"] == "denied"] == [
        (CARRIER_DESK, "complete"),
        (AUDITOR, "message"),
        (FINANCE, "complete"),
        (INSPECTOR, "complete"),
    ]
    assert (events[0]["kind"], events[0]["actor"]) == ("started", DESK)
    closed = [e for e in events if e["kind"] == "handler_result" and e["bpmn_id"] == "close_return"]
    assert [e["actor"] for e in closed] == [DESK]
    assert desk("verify", rma, user=AUDITOR, at=review_at).stdout == f"{rma}: history intact.\n"

    # The refusals that concern no return are in the operation log, which verifies too.
    denied = desk.json("operations", "--denied", user=AUDITOR, at=review_at)
    assert [(o["actor"], o["operation"]) for o in denied] == [
        (DESK, "users add"),
        (DESK, "orders import"),
        (ADMIN, "apply"),
    ]
    assert desk("operations", "--verify", user=AUDITOR, at=review_at).stdout == (
        "Operation log intact.\n"
    )

    # The money went out once, from the ledger.
    with sqlite3.connect(desk.db) as conn:
        ledger = conn.execute(
            "SELECT rma, kind, amount_minor, currency, channel FROM ledger_entry"
        ).fetchall()
    conn.close()
    assert ledger == [(rma, "refund", 120000, "CNY", "original_payment")]
