"""The ten returns of shared/scenarios.md, end to end through the `artreturns` command.

Each scenario is played as the desk would play it: orders imported, the request applied,
every person's step completed under their own name, messages from customers, carriers
and appraisers delivered, and time moved with `--now` (timers fire on `run-due`). Each
asserts the path taken (the steps in the history, in order), the amounts (the ledger as
the customer's refund and the notices quote it), the notices sent, and the history
(who did what, and that its hash chain verifies). The defaults of the policy tables are
pinned here: a process owner who changes a table changes these expectations.

"Day N" counts from the day after delivery. Every order was delivered on 1 November 2026.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli as cli_module

DELIVERED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ENV_VARS = (
    "ARTRETURNS_DB",
    "ARTRETURNS_NOW",
    "ARTRETURNS_USER",
    "ARTRETURNS_DATA",
    "ARTRETURNS_SMTP",
)


def day(n: float, hour: int = 9) -> datetime:
    """Day n after delivery (day 1 is 2 November), at `hour` UTC."""
    return (DELIVERED + timedelta(days=n)).replace(hour=hour, minute=0)


def customer(name: str, email: str, locale: str, address: str) -> dict[str, str]:
    return {"name": name, "email": email, "locale": locale, "address": address}


LI = customer("Li Wei", "li.wei@example.com", "zh-Hant", "88 Huaihai Road, Shanghai")
ANNA = customer("Anna Becker", "anna.becker@example.de", "en", "Kastanienallee 12, Berlin")
CHEN = customer("Chen Yu", "chen.yu@example.com", "zh-Hant", "5 Nanjing Road, Shanghai")


def order(
    number: str,
    *,
    channel: str,
    jurisdiction: str,
    currency: str,
    buyer: Mapping[str, str],
    works: Sequence[Mapping[str, Any]],
    sold_at: str = "2026-10-28",
    shipping_charge: str = "0",
) -> dict[str, Any]:
    return {
        "order_number": number,
        "channel": channel,
        "jurisdiction": jurisdiction,
        "currency": currency,
        "sold_at": sold_at,
        "delivered_at": DELIVERED.date().isoformat(),
        "payment_method": "card",
        "payer": buyer["name"],
        "shipping_charge": shipping_charge,
        "customer": dict(buyer),
        "artworks": [dict(w) for w in works],
    }


def work(
    artwork_id: str,
    title: str,
    artist: str,
    category: str,
    price: str,
    *,
    grade: str = "excellent",
    accessories: Sequence[str] = (),
    **flags: Any,
) -> dict[str, Any]:
    return {
        "artwork_id": artwork_id,
        "title": title,
        "artist": artist,
        "category": category,
        "price": price,
        "flags": flags,
        "condition": {"grade": grade, "notes": "", "accessories": list(accessories)},
    }


ORDERS = [
    order(
        "SO-1001",
        channel="online_shop",
        jurisdiction="CN",
        currency="CNY",
        buyer=LI,
        works=[work("GP-17", "Spring Rain, open edition", "Lin Feng", "print", "1200")],
    ),
    order(
        "SO-1002",
        channel="online_shop",
        jurisdiction="EU",
        currency="EUR",
        buyer=ANNA,
        works=[
            work("OP-3", "Harbour at Dusk", "Jonas Maier", "painting", "4500", grade="excellent")
        ],
    ),
    order(
        "SO-1003",
        channel="marketplace",
        jurisdiction="CN",
        currency="CNY",
        buyer=CHEN,
        works=[
            work("PT-8", "Portrait of Mrs Chen", "Zhou Min", "painting", "30000", custom_made=True)
        ],
    ),
    order(
        "SO-1004",
        channel="store",
        jurisdiction="CN",
        currency="CNY",
        buyer=LI,
        works=[
            work(
                "BR-2",
                "Crane, bronze",
                "Guo Tai",
                "sculpture",
                "180000",
                accessories=["certificate of authenticity"],
            )
        ],
    ),
    order(
        "SO-1005",
        channel="auction",
        jurisdiction="CN",
        currency="CNY",
        buyer=CHEN,
        sold_at="2026-07-01",
        works=[
            work(
                "QV-1",
                "Vase, famille rose, Qianlong mark",
                "Unknown, Qing dynasty",
                "antique",
                "600000",
                auction_lot=True,
                guarantee_years=5,
            )
        ],
    ),
    order(
        "SO-1055",
        channel="auction",
        jurisdiction="CN",
        currency="CNY",
        buyer=CHEN,
        sold_at="2026-07-01",
        works=[
            work(
                "QV-2",
                "Vase, famille rose, Qianlong mark",
                "Unknown, Qing dynasty",
                "antique",
                "600000",
                auction_lot=True,
                guarantee_years=5,
                authenticity_disclaimer=True,
            )
        ],
    ),
    order(
        "SO-1006",
        channel="marketplace",
        jurisdiction="EU",
        currency="EUR",
        buyer=ANNA,
        works=[
            work(
                "WC-4",
                "Lake Constance, watercolour, framed",
                "Ilse Vogt",
                "painting",
                "2200",
                accessories=["frame", "glazing"],
            )
        ],
    ),
    order(
        "SO-1007",
        channel="online_shop",
        jurisdiction="EU",
        currency="EUR",
        buyer=ANNA,
        works=[
            work(
                "DP-1A",
                "Tide, left panel (3/10)",
                "Mara Lind",
                "print",
                "1500",
                indivisible_set=True,
                set_id="DP-1",
            ),
            work(
                "DP-1B",
                "Tide, right panel (3/10)",
                "Mara Lind",
                "print",
                "1500",
                indivisible_set=True,
                set_id="DP-1",
            ),
        ],
    ),
    order(
        "SO-1008",
        channel="online_shop",
        jurisdiction="CN",
        currency="CNY",
        buyer=LI,
        works=[work("CE-5", "Celadon bowl", "He Lan", "craft", "2800")],
    ),
    order(
        "SO-1009",
        channel="marketplace",
        jurisdiction="EU",
        currency="EUR",
        buyer=ANNA,
        shipping_charge="35",
        works=[
            work(
                "PH-3",
                "Dunes, signed and numbered 3/25",
                "Sven Ahl",
                "photograph",
                "1200",
                accessories=["signature", "edition number"],
            )
        ],
    ),
    order(
        "SO-1010",
        channel="online_shop",
        jurisdiction="EU",
        currency="EUR",
        buyer=ANNA,
        works=[
            work(
                "CV-9",
                "Blue Interior",
                "Paul Renard",
                "painting",
                "25000",
                accessories=["certificate of authenticity"],
            )
        ],
    ),
]


class Desk:
    """`artreturns` run in-process on one SQLite file, each command at its own time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = str(root / "returns.db")
        self.runner = CliRunner()
        self.now = day(0)
        #: Every `show` the scenario looked at: when, which return, what it printed.
        self.shown: list[tuple[datetime, str, dict[str, Any]]] = []
        self("init")
        self("deploy", "processes/", actor="owner")
        orders_file = root / "orders.json"
        orders_file.write_text(json.dumps(ORDERS), encoding="utf-8")
        self("orders", "import", str(orders_file), actor="owner")

    def __call__(self, *args: str, actor: str = "desk", code: int = 0) -> Result:
        argv = ["--db", self.db, "--now", self.now.isoformat(), "--as", actor, *args]
        result = self.runner.invoke(cli_module.cli, argv, prog_name="artreturns")
        assert result.exit_code == code, (
            f"artreturns {' '.join(args)}: exit {result.exit_code}, expected {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{result.exception!r}"
        )
        return result

    def json(self, *args: str, actor: str = "desk") -> Any:
        return json.loads(self(*args, "--json", actor=actor).stdout)

    def at(self, when: datetime) -> Desk:
        assert when >= self.now, f"time runs forward: {when} < {self.now}"
        self.now = when
        return self

    def check_show_paths(self) -> None:
        """`show` of every instance reads the data stored beside its state through the
        driver; with that data taken away it restores the state through the engine.
        Both must give the same page."""
        with sqlite3.connect(self.db) as conn:
            numbers = [row[0] for row in conn.execute("SELECT id FROM instance ORDER BY id")]
        stored = {n: self.json("show", f"#{n}") for n in numbers}
        with sqlite3.connect(self.db) as conn:
            conn.execute("UPDATE instance SET data = NULL")
        for number in numbers:
            assert self.json("show", f"#{number}") == stored[number], f"instance #{number}"

    def check_replays(self) -> None:
        """Every instance replays cleanly from its history, and the instance as replayed
        at each moment the scenario looked at a return is what `show` printed then."""
        with sqlite3.connect(self.db) as conn:
            numbers = [row[0] for row in conn.execute("SELECT id FROM instance ORDER BY id")]
        for number in numbers:
            line = self("replay", f"#{number}", actor="desk").stdout
            assert line.endswith("every state matched its recorded digest.\n"), line
        for when, rma, then in self.shown:
            seen = self.json("show", rma, "--at", when.isoformat(), actor="desk")
            if seen["event_count"] != then["event_count"]:
                # Later commands at the same moment added events: stop at the event.
                until = str(then["event_count"])
                seen = self.json("replay", rma, "--until", until, actor="desk")["instance_then"]
            assert _moment(seen) == _moment(then), (
                f"{rma} at {when}: {_moment(seen)['open_tasks']} {_moment(then)['open_tasks']}"
            )

    # -- the desk's moves --------------------------------------------------------------

    def photos(self, *names: str) -> list[str]:
        paths = []
        for name in names:
            path = self.root / "files" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(f"photo {name}".encode())
            paths.append(str(path))
        return paths

    def apply(
        self,
        order_number: str,
        artworks: Sequence[str],
        reason: str,
        description: str,
        *,
        kind: str = "return",
        evidence: Sequence[str] = (),
        actor: str = "cs-ann",
    ) -> str:
        args = [
            "apply",
            "--order",
            order_number,
            "--type",
            kind,
            "--reason",
            reason,
            "--description",
            description,
        ]
        for artwork in artworks:
            args += ["--artwork", artwork]
        for path in evidence:
            args += ["--evidence", path]
        result = self.json(*args, actor=actor)
        rma = str(result["instance"]["business_key"])
        assert rma.startswith("RMA-2026-")
        return rma

    def complete(
        self, rma: str, step: str, data: Mapping[str, Any], actor: str, code: int = 0
    ) -> Result:
        return self("complete", f"{rma}:{step}", "--data", json.dumps(data), actor=actor, code=code)

    def message(self, rma: str, name: str, payload: Mapping[str, Any]) -> None:
        self("message", rma, name, "--data", json.dumps(payload), actor="desk")

    def run_due(self) -> None:
        self("run-due", actor="scheduler")

    def evidence(self, rma: str, *names: str, actor: str = "inspector-ivy") -> None:
        self("evidence", "add", rma, *self.photos(*names), actor=actor)

    # -- what happened -----------------------------------------------------------------

    def show(self, rma: str) -> dict[str, Any]:
        shown = dict(self.json("show", rma))
        self.shown.append((self.now, rma, shown))
        return shown

    def data(self, rma: str) -> dict[str, Any]:
        return dict(self.show(rma)["data"])

    def open_steps(self, rma: str) -> list[str]:
        return sorted(t["bpmn_id"] for t in self.json("tasks", "--instance", rma))

    def history(self, rma: str) -> list[dict[str, Any]]:
        return list(self.json("history", rma))

    def path(self, rma: str) -> list[str]:
        """The steps people and handlers completed, in order."""
        return [
            e["bpmn_id"]
            for e in self.history(rma)
            if e["kind"] in ("task_completed", "handler_result") and e["bpmn_id"]
        ]

    def who(self, rma: str) -> dict[str, str]:
        """Who completed each person's step."""
        return {
            e["bpmn_id"]: e["actor"] for e in self.history(rma) if e["kind"] == "task_completed"
        }

    def notices(self, rma: str) -> list[str]:
        return [n["notice"] for n in self.json("notices", "list", rma)]

    def notice_text(self, rma: str, notice: str) -> str:
        [found] = [n for n in self.json("notices", "list", rma) if n["notice"] == notice]
        return str(self("notices", "show", str(found["id"])).stdout)

    def returns(self) -> dict[str, dict[str, Any]]:
        return {line["rma"]: line for line in self.json("returns")}

    def verified(self, rma: str) -> bool:
        return self("verify", rma).stdout == f"{rma}: history intact.\n"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = Desk(tmp_path)
    yield made
    made.check_replays()
    made.check_show_paths()


def _moment(shown: Mapping[str, Any]) -> dict[str, Any]:
    """What `show --json` says of an instance that a replay rebuilds."""
    task_fields = (
        "id",
        "bpmn_id",
        "name",
        "kind",
        "role",
        "state",
        "due_at",
        "escalated_to",
        "claimed_by",
        "attempts",
    )
    return {
        **{
            k: shown[k]
            for k in (
                "status",
                "data",
                "event_count",
                "next_timer_at",
                "ended_at",
                "incident_count",
            )
        },
        "open_tasks": [{f: t[f] for f in task_fields} for t in shown["open_tasks"]],
        # Steps done by people and handlers (the waits that ended at the very moment
        # are told apart from later ones only by `show --at`, not by `replay --until`).
        "done_tasks": sorted(
            t["id"] for t in shown["done_tasks"] if t["kind"] in ("user", "manual", "service")
        ),
    }


# -- shared stretches of the path ----------------------------------------------------------


def ship_and_receive(
    desk: Desk, rma: str, shipped: datetime, received: datetime, tracking: str | None = None
) -> None:
    """The customer ships (with their own tracking number when they pay the postage) and
    the work arrives."""
    payload = {"carrier": "SF Express", "tracking_number": tracking} if tracking else {}
    desk.at(shipped).message(rma, "return_shipped", payload)
    desk.at(received).message(rma, "return_received", {})


def inspect(desk: Desk, rma: str, report: Mapping[str, Any], actor: str = "inspector-ivy") -> None:
    desk.complete(rma, "inspect_work", report, actor)


ACCEPTED = {"outcome": "accepted", "grade": "excellent", "observations": [], "accessories": []}
SETTLE_PATH = ["compute_refund", "confirm_refund", "pay_refund", "notify_refunded"]


def refunded(data: Mapping[str, Any]) -> tuple[Decimal, str, str]:
    paid = data["refunded"]
    return Decimal(paid["amount"]["amount"]), paid["amount"]["currency"], paid["channel"]


def confirm_and_close(desk: Desk, rma: str, when: datetime, score: int = 5) -> None:
    desk.at(when).message(rma, "customer_confirmation", {"score": score, "comment": "Thank you."})


# -- 1 ---------------------------------------------------------------------------------------


def test_1_a_sealed_print_returned_within_seven_days(desk: Desk) -> None:
    rma = desk.at(day(6)).apply("SO-1001", ["GP-17"], "no_reason", "Changed my mind; still sealed.")
    data = desk.data(rma)
    assert (data["eligibility"], data["policy_rule"], data["tier"]) == (
        "eligible",
        "CN-7DAY-NO-REASON",
        "T1",
    )
    assert data["seller_pays_return"] is False
    assert desk.open_steps(rma) == ["approve_return"]

    desk.at(day(6, 11)).complete(
        rma, "approve_return", {"decision": "approve", "note": "Sealed"}, "cs-bob"
    )
    ship_and_receive(desk, rma, day(7), day(9), tracking="SF1001000001")
    assert desk.data(rma)["shipping"]["seller_pays"] is False
    inspect(desk, rma, ACCEPTED)
    desk.at(day(9, 14)).complete(
        rma, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, "fin-fay"
    )
    assert refunded(desk.data(rma)) == (Decimal("1200.00"), "CNY", "original_payment")
    confirm_and_close(desk, rma, day(10))

    assert desk.notices(rma) == [
        "received",
        "approved",
        "return_instructions",
        "inspection_result",
        "refunded",
        "survey",
    ]
    assert "1,200.00" in desk.notice_text(rma, "refunded") or "1200.00" in desk.notice_text(
        rma, "refunded"
    )
    path = desk.path(rma)
    assert path[:6] == [
        "open_rma",
        "notify_received",
        "check_completeness",
        "gather_facts",
        "approve_return",
        "notify_approved",
    ]
    assert (
        path.index("register_shipment")
        < path.index("inspect_work")
        < path.index("confirm_refund")
        < path.index("close_return")
    )
    assert desk.who(rma)["approve_return"] == "cs-bob"
    assert desk.who(rma)["confirm_refund"] == "fin-fay"
    assert desk.returns()[rma]["refunded"] == "CNY 1,200.00"
    assert desk.verified(rma)


def test_1_variant_on_day_8_the_request_is_declined_citing_the_seven_day_rule(
    desk: Desk,
) -> None:
    rma = desk.at(day(8)).apply("SO-1001", ["GP-17"], "no_reason", "Changed my mind.")
    assert desk.show(rma)["status"] == "completed"
    assert desk.data(rma)["policy_rule"] == "CN-7DAY-NO-REASON-EXPIRED"
    assert desk.notices(rma) == ["received", "declined"]
    declined = desk.notice_text(rma, "declined")
    assert "CN-7DAY-NO-REASON-EXPIRED" in declined
    assert "7" in declined
    path = desk.path(rma)
    assert "approve_return" not in path
    assert not any(e["bpmn_id"] == "approve_return" for e in desk.history(rma))
    assert desk.returns()[rma]["ticket"] == "declined"
    assert desk.verified(rma)


# -- 2 ---------------------------------------------------------------------------------------


def test_2_an_oil_painting_withdrawn_in_the_eu_with_a_deduction(desk: Desk) -> None:
    notice_at = day(12)
    rma = desk.at(notice_at).apply(
        "SO-1002", ["OP-3"], "no_reason", "I withdraw from the purchase."
    )
    data = desk.data(rma)
    assert (data["policy_rule"], data["tier"], data["needs_finance"]) == (
        "EU-14DAY-WITHDRAWAL",
        "T2",
        True,
    )
    assert (data["refund_deadline_days"], data["refund_clock"]) == (14, "notice")

    desk.at(day(12, 11)).complete(
        rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann"
    )
    desk.at(day(12, 15)).complete(
        rma,
        "confirm_refund_amount",
        {"decision": "approve", "amount": "4500.00", "note": "ok"},
        "fin-fay",
    )
    ship_and_receive(desk, rma, day(13), day(16), tracking="DHL00000002")
    desk.at(day(16, 12)).evidence(rma, "stretcher-1.jpg", "stretcher-2.jpg")
    inspect(
        desk,
        rma,
        {
            "outcome": "accepted_with_deduction",
            "grade": "good",
            "observations": [
                {
                    "zone": "support",
                    "text": "Canvas taken off its stretcher and rolled",
                    "photos": ["stretcher-1.jpg", "stretcher-2.jpg"],
                }
            ],
            "accessories": [],
            "deduction_amount": "300.00",
            "deduction_currency": "EUR",
        },
    )
    refund = desk.data(rma)["refund"]
    assert refund["amount"] == {"amount": "4200.00", "currency": "EUR"}
    deadline = notice_at + timedelta(days=14)
    assert refund["deadline"].startswith(deadline.date().isoformat())

    # Finance has not paid two days before the deadline: the task escalates.
    desk.at(deadline - timedelta(days=2, hours=-1)).run_due()
    [task] = desk.json("tasks", "--role", "finance_supervisor")
    assert (task["bpmn_id"], task["escalated_to"], task["role"]) == (
        "confirm_refund",
        "finance_supervisor",
        "finance",
    )
    assert any(
        e["kind"] == "escalated" and e["bpmn_id"] == "confirm_refund" for e in desk.history(rma)
    )

    desk.at(deadline - timedelta(days=1)).complete(
        rma, "confirm_refund", {"amount": "4200.00", "channel": "original_payment"}, "fin-gus"
    )
    assert refunded(desk.data(rma)) == (Decimal("4200.00"), "EUR", "original_payment")
    assert desk.returns()[rma]["refunded"] == "EUR 4,200.00"
    assert desk.notices(rma)[:5] == [
        "received",
        "approved",
        "return_instructions",
        "inspection_result",
        "refunded",
    ]
    assert "300.00" in desk.notice_text(rma, "inspection_result")
    assert desk.verified(rma)


# -- 3 ---------------------------------------------------------------------------------------


def test_3_a_commissioned_portrait_is_not_returnable_without_reason(desk: Desk) -> None:
    rma = desk.at(day(3)).apply("SO-1003", ["PT-8"], "no_reason", "We do not like it.")
    assert desk.show(rma)["status"] == "completed"
    data = desk.data(rma)
    assert (data["eligibility"], data["policy_rule"]) == ("ineligible", "CUSTOM-MADE")
    assert desk.notices(rma) == ["received", "declined"]
    declined = desk.notice_text(rma, "declined")
    assert "CUSTOM-MADE" in declined
    assert data["policy_basis"] in declined
    path = desk.path(rma)
    assert path == [
        "open_rma",
        "notify_received",
        "check_completeness",
        "gather_facts",
        "close_ineligible",
        "notify_ineligible",
    ]
    assert "shipping" not in data
    line = desk.returns()[rma]
    assert (line["ticket"], line["rule"]) == ("declined", "CUSTOM-MADE")


# -- 4 ---------------------------------------------------------------------------------------


def test_4_a_bronze_returned_to_the_gallery_with_three_approvers(desk: Desk) -> None:
    rma = desk.at(day(3)).apply("SO-1004", ["BR-2"], "no_reason", "Buyer's remorse.")
    data = desk.data(rma)
    assert (data["policy_rule"], data["restocking_rate"]) == ("STORE-7DAY-VOLUNTARY", "0.10")
    assert (data["needs_finance"], data["needs_expert"], data["needs_manager"]) == (
        True,
        True,
        False,
    )

    desk.at(day(3, 11)).complete(
        rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann"
    )
    # The same person may not decide a second level of the same chain.
    refused = desk.at(day(3, 12)).complete(
        rma,
        "confirm_refund_amount",
        {"decision": "approve", "amount": "162000.00"},
        "cs-ann",
        code=4,
    )
    assert "another person" in refused.stderr
    assert any(e["kind"] == "denied" and e["actor"] == "cs-ann" for e in desk.history(rma))
    desk.complete(
        rma,
        "confirm_refund_amount",
        {"decision": "approve", "amount": "162000.00", "note": "10 % restocking"},
        "fin-fay",
    )
    desk.at(day(4)).complete(
        rma,
        "appraise_work",
        {"decision": "approve", "appraiser": "in_house", "findings": "Cast and patina as at sale"},
        "exp-eli",
    )
    who = desk.who(rma)
    assert (who["approve_return"], who["confirm_refund_amount"], who["appraise_work"]) == (
        "cs-ann",
        "fin-fay",
        "exp-eli",
    )

    ship_and_receive(desk, rma, day(5), day(7), tracking="SF1004000004")
    inspect(desk, rma, {**ACCEPTED, "accessories": ["certificate of authenticity"]})
    assert desk.data(rma)["inspection"]["accessories_missing"] == []
    assert desk.data(rma)["refund"]["amount"] == {"amount": "162000.00", "currency": "CNY"}
    desk.at(day(8)).complete(
        rma, "confirm_refund", {"amount": "162000.00", "channel": "bank_transfer"}, "fin-fay"
    )
    assert refunded(desk.data(rma)) == (Decimal("162000.00"), "CNY", "bank_transfer")
    assert desk.verified(rma)


# -- 5 ---------------------------------------------------------------------------------------


def test_5_an_auction_vase_rescinded_under_the_authenticity_guarantee(desk: Desk) -> None:
    claim_day = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # four months after the sale
    desk.at(claim_day)
    rma = desk.apply(
        "SO-1005",
        ["QV-1"],
        "authenticity",
        "A laboratory dates the glaze to the 20th century.",
        evidence=desk.photos("lab-report.pdf"),
    )
    data = desk.data(rma)
    assert (data["eligibility"], data["policy_rule"], data["seller_pays_return"]) == (
        "eligible",
        "AUTH-GUARANTEE",
        True,
    )
    # The dispute flow orders a third-party appraisal before anyone approves.
    assert desk.open_steps(rma) == []
    assert "dispute_opened" in desk.notices(rma)
    desk.at(claim_day + timedelta(days=20)).message(
        rma, "appraisal_report", {"authentic": False, "findings": "Glaze and foot: 1930s copy"}
    )
    desk.complete(
        rma,
        "decide_dispute",
        {"outcome": "refund", "note": "The appraisal confirms the claim."},
        "legal-lu",
    )

    approvers = [
        ("approve_return", {"decision": "approve", "note": "ok"}, "cs-ann"),
        ("confirm_refund_amount", {"decision": "approve", "amount": "600000.00"}, "fin-fay"),
        (
            "appraise_work",
            {"decision": "approve", "appraiser": "third_party", "findings": "See the appraisal"},
            "exp-eli",
        ),
        ("sign_off_return", {"decision": "approve", "note": "Rescind"}, "mgr-max"),
    ]
    for step, form, actor in approvers:
        assert desk.open_steps(rma) == [step]
        desk.complete(rma, step, form, actor)
    assert desk.data(rma)["tier"] == "T4"

    shipping = desk.data(rma)["shipping"]
    assert shipping["seller_pays"] is True
    assert shipping["tracking_number"]
    ship_and_receive(desk, rma, claim_day + timedelta(days=22), claim_day + timedelta(days=25))
    inspect(desk, rma, ACCEPTED)
    desk.at(claim_day + timedelta(days=26)).complete(
        rma, "confirm_refund", {"amount": "600000.00", "channel": "original_payment"}, "fin-fay"
    )
    assert refunded(desk.data(rma)) == (Decimal("600000.00"), "CNY", "original_payment")
    path = desk.path(rma)
    assert path.index("decide_dispute") < path.index("approve_return")
    assert desk.verified(rma)


def test_5_variant_a_lot_sold_with_a_disclaimer_is_declined_with_that_basis(
    desk: Desk,
) -> None:
    desk.at(datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    rma = desk.apply(
        "SO-1055",
        ["QV-2"],
        "authenticity",
        "Not of the period.",
        evidence=desk.photos("lab-report.pdf"),
    )
    data = desk.data(rma)
    assert (data["eligibility"], data["policy_rule"]) == ("ineligible", "AUTH-AUCTION-DISCLAIMER")
    assert desk.notices(rma) == ["received", "declined"]
    assert "Auction Law" in desk.notice_text(rma, "declined")


# -- 6 ---------------------------------------------------------------------------------------


def test_6_a_watercolour_damaged_in_transit_refunded_before_the_insurer_settles(
    desk: Desk,
) -> None:
    reported = DELIVERED + timedelta(hours=36)
    photos = desk.photos(
        *(f"work-{i}.jpg" for i in range(1, 5)), *(f"box-{i}.jpg" for i in range(1, 3))
    )
    rma = desk.at(reported).apply(
        "SO-1006", ["WC-4"], "transit_damage", "The glazing arrived cracked.", evidence=photos
    )
    data = desk.data(rma)
    assert (data["policy_rule"], data["seller_pays_return"], data["damage_photos"]) == (
        "TRANSIT-DAMAGE-7DAY-EU",
        True,
        6,
    )
    desk.complete(rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann")
    desk.complete(
        rma, "confirm_refund_amount", {"decision": "approve", "amount": "2200.00"}, "fin-fay"
    )
    assert desk.data(rma)["shipping"]["seller_pays"] is True
    ship_and_receive(desk, rma, day(3), day(5))
    desk.at(day(5, 12)).evidence(rma, "glazing-crack.jpg")
    inspect(
        desk,
        rma,
        {
            "outcome": "transit_damage",
            "grade": "fair",
            "accessories": [],
            "observations": [
                {
                    "zone": "frame_glazing",
                    "text": "Glazing cracked",
                    "photos": ["glazing-crack.jpg"],
                }
            ],
        },
    )
    # The claim runs beside the refund, which does not wait for it.
    assert "confirm_refund" in desk.open_steps(rma)
    assert desk.data(rma)["insurance_claim"]["status"] == "open"
    desk.at(day(6)).complete(
        rma, "confirm_refund", {"amount": "2200.00", "channel": "original_payment"}, "fin-fay"
    )
    assert refunded(desk.data(rma)) == (Decimal("2200.00"), "EUR", "original_payment")
    confirm_and_close(desk, rma, day(7))
    assert desk.show(rma)["status"] == "running"  # the claim is still open

    desk.at(day(26)).message(
        rma,
        "insurer_settlement",
        {"status": "settled", "amount": {"amount": "2200.00", "currency": "EUR"}},
    )
    claim = desk.data(rma)["insurance_claim"]
    assert claim["status"] == "settled"
    assert claim["recovered"] == {"amount": "2200.00", "currency": "EUR"}
    path = desk.path(rma)
    assert path.index("pay_refund") < path.index("record_settlement")


# -- 7 ---------------------------------------------------------------------------------------


def test_7_one_panel_of_a_diptych_is_refused_the_whole_set_accepted(desk: Desk) -> None:
    partial = desk.at(day(5)).apply("SO-1007", ["DP-1A"], "no_reason", "Only the left panel.")
    assert desk.data(partial)["policy_rule"] == "SET-PARTIAL-RETURN"
    assert desk.notices(partial) == ["received", "declined"]

    whole = desk.at(day(5, 12)).apply(
        "SO-1007", ["DP-1A", "DP-1B"], "no_reason", "The whole diptych, then."
    )
    data = desk.data(whole)
    assert (data["eligibility"], data["policy_rule"]) == ("eligible", "EU-14DAY-WITHDRAWAL")
    desk.complete(whole, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann")
    desk.complete(
        whole, "confirm_refund_amount", {"decision": "approve", "amount": "3000.00"}, "fin-fay"
    )
    ship_and_receive(desk, whole, day(6), day(8), tracking="DHL00000007")
    inspect(desk, whole, {**ACCEPTED, "grade": "good"})
    differences = desk.data(whole)["inspection"]["differences"]
    assert sorted(d.split(":")[0] for d in differences) == ["DP-1A", "DP-1B"]
    desk.at(day(9)).complete(
        whole, "confirm_refund", {"amount": "3000.00", "channel": "original_payment"}, "fin-fay"
    )
    assert refunded(desk.data(whole)) == (Decimal("3000.00"), "EUR", "original_payment")
    assert desk.path(whole).count("pay_refund") == 1


# -- 8 ---------------------------------------------------------------------------------------


def exchange_to_replacement(desk: Desk, price: str) -> str:
    rma = desk.at(day(5)).apply(
        "SO-1008", ["CE-5"], "no_reason", "A larger bowl, please.", kind="exchange"
    )
    desk.complete(rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann")
    ship_and_receive(desk, rma, day(6), day(8), tracking="SF1008000008")
    inspect(desk, rma, ACCEPTED)
    desk.at(day(8, 14)).complete(
        rma,
        "confirm_replacement",
        {
            "artwork_id": "CE-9",
            "title": "Celadon bowl, large",
            "artist": "He Lan",
            "price_amount": price,
        },
        "cs-ann",
    )
    return rma


def test_8_an_exchange_for_a_dearer_bowl_is_paid_before_it_ships(desk: Desk) -> None:
    rma = exchange_to_replacement(desk, "3500.00")
    exchange = desk.data(rma)["exchange"]
    assert (exchange["direction"], exchange["amount"]) == (
        "customer_pays",
        {"amount": "700.00", "currency": "CNY"},
    )
    assert "payment_requested" in desk.notices(rma)
    assert "pack_replacement" not in desk.open_steps(rma)  # nothing ships before payment
    desk.at(day(9)).message(
        rma,
        "difference_paid",
        {"reference": "PAY-77", "amount": {"amount": "700.00", "currency": "CNY"}},
    )
    desk.complete(rma, "pack_replacement", {"checked": True}, "log-leo")
    assert desk.data(rma)["charged"]["amount"] == {"amount": "700.00", "currency": "CNY"}
    assert desk.returns()[rma]["charged"] == "CNY 700.00"
    notices = desk.notices(rma)
    assert notices.index("payment_requested") < notices.index("exchange_shipped")
    assert "refunded" not in notices


def test_8_variant_an_exchange_for_a_cheaper_bowl_refunds_the_difference(desk: Desk) -> None:
    rma = exchange_to_replacement(desk, "2000.00")
    assert refunded(desk.data(rma)) == (Decimal("800.00"), "CNY", "original_payment")
    desk.complete(rma, "pack_replacement", {"checked": True}, "log-leo")
    notices = desk.notices(rma)
    assert notices.index("refunded") < notices.index("exchange_shipped")


# -- 9 ---------------------------------------------------------------------------------------


def test_9_an_unsigned_photograph_is_a_quality_return_with_shipping_refunded(
    desk: Desk,
) -> None:
    rma = desk.at(day(20)).apply(
        "SO-1009",
        ["PH-3"],
        "not_as_described",
        "Sold as signed and numbered 3/25; it is unsigned.",
        evidence=desk.photos("back-unsigned.jpg"),
    )
    data = desk.data(rma)
    assert (data["policy_rule"], data["seller_pays_return"]) == ("QUALITY-30DAY-EU", True)
    desk.complete(rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann")
    ship_and_receive(desk, rma, day(21), day(24))
    inspect(desk, rma, ACCEPTED)
    refund = desk.data(rma)["refund"]
    assert refund["amount"] == {"amount": "1235.00", "currency": "EUR"}
    desk.at(day(25)).complete(
        rma, "confirm_refund", {"amount": "1235.00", "channel": "original_payment"}, "fin-fay"
    )
    assert refunded(desk.data(rma)) == (Decimal("1235.00"), "EUR", "original_payment")


# -- 10 --------------------------------------------------------------------------------------


def test_10_a_switched_canvas_blocks_the_refund_and_opens_a_dispute(desk: Desk) -> None:
    rma = desk.at(day(10)).apply("SO-1010", ["CV-9"], "no_reason", "I withdraw.")
    desk.complete(rma, "approve_return", {"decision": "approve", "note": "ok"}, "cs-ann")
    desk.complete(
        rma, "confirm_refund_amount", {"decision": "approve", "amount": "25000.00"}, "fin-fay"
    )
    desk.complete(
        rma,
        "appraise_work",
        {"decision": "approve", "appraiser": "in_house", "findings": "As sold"},
        "exp-eli",
    )
    ship_and_receive(desk, rma, day(11), day(13), tracking="DHL00000010")
    desk.at(day(13, 12)).evidence(rma, "dimensions.jpg", "stamp.jpg", "certificate.jpg")
    inspect(
        desk,
        rma,
        {
            "outcome": "mismatch",
            "grade": "poor",
            "accessories": ["certificate of authenticity"],
            "observations": [
                {
                    "zone": "support",
                    "text": "61 x 50 cm; the work sold is 65 x 54 cm",
                    "photos": ["dimensions.jpg"],
                },
                {
                    "zone": "support",
                    "text": "No canvas maker's stamp on the back",
                    "photos": ["stamp.jpg"],
                },
                {
                    "zone": "packaging",
                    "text": "Certificate serial differs from the dispatch report",
                    "photos": ["certificate.jpg"],
                },
            ],
        },
    )
    data = desk.data(rma)
    assert data["inspection"]["outcome"] == "mismatch"
    # No refund step exists while the inspection says mismatch: a dispute opened instead.
    assert "confirm_refund" not in desk.open_steps(rma)
    assert "compute_refund" not in desk.path(rma)
    assert "dispute_opened" in desk.notices(rma)
    # The evidence is locked: what was held is final; later files are kept beside it.
    held = desk.json("evidence", "list", rma)
    assert sorted(e["name"] for e in held) == ["certificate.jpg", "dimensions.jpg", "stamp.jpg"]
    assert all(e["locked"] and e["intact"] for e in held)
    desk.at(day(14)).evidence(rma, "courier-note.jpg")
    later = {e["name"]: e["locked"] for e in desk.json("evidence", "list", rma)}
    assert later == {
        "dimensions.jpg": True,
        "stamp.jpg": True,
        "certificate.jpg": True,
        "courier-note.jpg": False,
    }

    desk.at(day(30)).message(
        rma, "appraisal_report", {"authentic": False, "findings": "A reproduction on new canvas"}
    )
    desk.complete(
        rma,
        "decide_dispute",
        {"outcome": "reject", "note": "The work returned is not the work sold."},
        "legal-lu",
    )
    assert desk.show(rma)["status"] == "completed"
    assert desk.returns()[rma]["refunded"] is None
    line = desk.returns()[rma]
    assert (line["ticket"], line["rule"]) == ("rejected", "MISMATCH")
    who = desk.who(rma)
    assert (
        who["approve_return"],
        who["confirm_refund_amount"],
        who["appraise_work"],
        who["inspect_work"],
        who["decide_dispute"],
    ) == ("cs-ann", "fin-fay", "exp-eli", "inspector-ivy", "legal-lu")
    assert desk.verified(rma)
