"""processes/return_request.bpmn: the whole return, on the paths the ten scenarios leave out.

Run through the returns desk (the real handlers and sub-processes, a fresh engine for
every step, so the state is saved and reloaded in between). The scenarios in
tests/scenarios cover the main roads through the CLI; these cover the side roads: the
information loop and its limit, manual review both ways, a rejection by the approval
chain, a return never shipped, an appraisal that rejects a claim, a mismatch a dispute
settles with a refund, an exchange never paid, a refund never confirmed, and a customer
who never answers the survey.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Desk
from support import T0

CS, CS2, FIN, INSPECTOR, LEGAL = "cs-ann", "cs-bob", "fin-fay", "insp-ivy", "legal-lu"
DELIVERED = (T0 - timedelta(days=3)).date()  # T0 is day 3


def order(number: str, price: str, **changes: Any) -> dict[str, Any]:
    flags = changes.pop("flags", {})
    base: dict[str, Any] = {
        "order_number": number,
        "channel": "online_shop",
        "jurisdiction": "CN",
        "currency": "CNY",
        "sold_at": (DELIVERED - timedelta(days=2)).isoformat(),
        "delivered_at": DELIVERED.isoformat(),
        "payment_method": "alipay",
        "payer": "Li Wei",
        "customer": {
            "name": "Li Wei",
            "email": "li.wei@example.com",
            "locale": "en",
            "address": "88 Huaihai Road, Shanghai",
        },
        "artworks": [
            {
                "artwork_id": f"{number}-W",
                "title": "Autumn Pond",
                "artist": "Lin Feng",
                "category": changes.pop("category", "painting"),
                "price": price,
                "flags": flags,
                "condition": {"grade": "excellent", "accessories": []},
            }
        ],
    }
    base.update(changes)
    return base


def photo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(f"image {name}".encode())
    return path


def rule(desk: Desk, rma: str) -> Any:
    return desk.data(rma)["rma_closed"]["rule"]


def ticket(desk: Desk, rma: str) -> str:
    [line] = [line for line in _overview(desk) if line.rma == rma]
    return line.ticket


def _overview(desk: Desk) -> list[Any]:
    from handlers.desk import overview

    return overview(desk.engine(), desk.folders)


def approve(desk: Desk, rma: str) -> None:
    desk.complete(rma, "approve_return", {"decision": "approve", "note": "ok"}, actor=CS2)


def ship_back(desk: Desk, rma: str) -> None:
    desk.message(rma, "return_shipped", {"carrier": "SF Express", "tracking_number": "SF77001"})
    desk.message(rma, "return_received", {})


def inspect(desk: Desk, rma: str, report: Mapping[str, Any] | None = None) -> None:
    desk.complete(
        rma,
        "inspect_work",
        dict(report or {"outcome": "accepted", "grade": "excellent", "observations": []}),
        actor=INSPECTOR,
    )


@pytest.fixture
def orders(desk: Desk) -> Desk:
    desk.import_orders(
        [
            order("SO-1", "1200"),
            order("SO-2", "2800", category="craft"),
            order(
                "SO-3",
                "600000",
                channel="auction",
                category="antique",
                flags={"auction_lot": True, "guarantee_years": 5},
            ),
        ]
    )
    return desk


# -- intake ------------------------------------------------------------------------------


def test_an_incomplete_request_is_asked_for_twice_then_declined(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"], reason="defective", description="Cracked.")
    assert desk.data(rma)["completeness"]["missing"] == ["evidence"]
    assert desk.open_steps(rma) == ["record_missing_information"]
    desk.complete(rma, "record_missing_information", {"description": "Cracked glaze"}, actor=CS)
    assert desk.open_steps(rma) == ["record_missing_information"]
    desk.complete(rma, "record_missing_information", {"note": "No photos yet"}, actor=CS)

    assert desk.status(rma) == "completed"
    assert desk.notices(rma) == [
        "received",
        "more_information_needed",
        "more_information_needed",
        "declined",
    ]
    assert rule(desk, rma) == "INCOMPLETE"
    assert ticket(desk, rma) == "declined"
    assert desk.data(rma)["request"]["description"] == "Cracked glaze"
    assert "gather_facts" not in desk.completed_steps(rma)


def test_evidence_kept_after_the_request_completes_it(orders: Desk, tmp_path: Path) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"], reason="defective", description="Cracked.")
    desk.add_evidence(rma, [photo(tmp_path, "crack.jpg")], actor=CS)
    desk.complete(rma, "record_missing_information", {"note": "Photo received"}, actor=CS)
    data = desk.data(rma)
    assert data["completeness"] == {"complete": True, "missing": []}
    assert (data["policy_rule"], data["damage_photos"]) == ("QUALITY-30DAY-CN", 1)
    assert desk.open_steps(rma) == ["approve_return"]


def test_the_missing_information_task_escalates_after_three_days(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"], reason="defective", description="Cracked.")
    desk.advance(days=3, minutes=1)
    [task] = desk.tasks(rma, role="customer_service_supervisor")
    assert (task.bpmn_id, task.escalated_to) == (
        "record_missing_information",
        "customer_service_supervisor",
    )


# -- eligibility --------------------------------------------------------------------------


def late_quality_claim(desk: Desk, tmp_path: Path) -> str:
    desk.at(T0 + timedelta(days=32))  # day 35: past the 30-day quality window
    return desk.apply(
        "SO-1",
        ["SO-1-W"],
        reason="defective",
        description="Flaking paint.",
        evidence=[photo(tmp_path, "flaking.jpg")],
    )


def test_manual_review_can_find_a_request_eligible(orders: Desk, tmp_path: Path) -> None:
    desk = orders
    rma = late_quality_claim(desk, tmp_path)
    assert (desk.data(rma)["eligibility"], desk.open_steps(rma)) == (
        "manual_review",
        ["review_eligibility"],
    )
    desk.complete(
        rma,
        "review_eligibility",
        {"decision": "eligible", "basis": "A hidden defect, reported on discovery"},
        actor=CS,
    )
    assert desk.open_steps(rma) == ["approve_return"]


def test_manual_review_can_decline_with_its_basis(orders: Desk, tmp_path: Path) -> None:
    desk = orders
    rma = late_quality_claim(desk, tmp_path)
    desk.complete(
        rma,
        "review_eligibility",
        {"decision": "ineligible", "basis": "Wear from hanging in direct sun"},
        actor=CS,
    )
    assert desk.status(rma) == "completed"
    assert rule(desk, rma) == "MANUAL-REVIEW"
    assert desk.notices(rma) == ["received", "declined"]
    assert desk.data(rma)["policy_basis"] == "Wear from hanging in direct sun"


# -- approval and shipping ---------------------------------------------------------------


def test_a_rejection_in_the_approval_chain_is_told_with_its_note(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"])
    desk.complete(
        rma, "approve_return", {"decision": "reject", "note": "Opened and used"}, actor=CS2
    )
    assert desk.status(rma) == "completed"
    assert (rule(desk, rma), ticket(desk, rma)) == ("HOUSE-DECISION", "rejected")
    assert desk.notices(rma) == ["received", "declined"]
    assert "return_shipping" not in str(desk.completed_steps(rma))


def test_a_return_never_shipped_lapses_after_reminding(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"])
    approve(desk, rma)
    desk.advance(days=15)
    assert desk.status(rma) == "completed"
    assert ticket(desk, rma) == "lapsed"
    assert desk.notices(rma) == [
        "received",
        "approved",
        "return_instructions",
        "reminder",
        "lapsed",
    ]


# -- disputes --------------------------------------------------------------------------------


def test_an_appraisal_that_rejects_the_claim_ends_the_return(orders: Desk, tmp_path: Path) -> None:
    desk = orders
    rma = desk.apply(
        "SO-3",
        ["SO-3-W"],
        reason="authenticity",
        description="Not Qing.",
        evidence=[photo(tmp_path, "report.pdf")],
    )
    desk.message(rma, "appraisal_report", {"authentic": True, "findings": "Period piece"})
    desk.complete(
        rma,
        "decide_dispute",
        {"outcome": "reject", "note": "The appraiser confirms the period."},
        actor=LEGAL,
    )
    assert desk.status(rma) == "completed"
    assert (rule(desk, rma), ticket(desk, rma)) == ("APPRAISAL", "rejected")
    assert desk.notices(rma) == ["received", "dispute_opened", "declined"]
    assert "approve_return" not in desk.completed_steps(rma)


def test_a_mismatch_a_dispute_settles_for_the_customer_is_refunded(
    orders: Desk, tmp_path: Path
) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"])
    approve(desk, rma)
    ship_back(desk, rma)
    desk.add_evidence(rma, [photo(tmp_path, "back.jpg")], actor=INSPECTOR)
    inspect(
        desk,
        rma,
        {
            "outcome": "mismatch",
            "grade": "good",
            "observations": [
                {"zone": "support", "text": "Different stretcher", "photos": ["back.jpg"]}
            ],
        },
    )
    assert "confirm_refund" not in desk.open_steps(rma)
    desk.message(rma, "appraisal_report", {"authentic": True, "findings": "Same work, restretched"})
    desk.complete(
        rma,
        "decide_dispute",
        {"outcome": "refund", "note": "Restretched by a framer; it is the work."},
        actor=LEGAL,
    )
    desk.complete(
        rma, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, actor=FIN
    )
    assert [(e["kind"], e["amount_minor"]) for e in desk.ledger(rma)] == [("refund", 120000)]
    steps = desk.completed_steps(rma)
    assert steps.index("decide_dispute") < steps.index("pay_refund")


# -- settling ------------------------------------------------------------------------------


def test_an_exchange_never_paid_is_followed_up_without_a_survey(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-2", ["SO-2-W"], type="exchange")
    approve(desk, rma)
    ship_back(desk, rma)
    inspect(desk, rma)
    desk.complete(
        rma,
        "confirm_replacement",
        {
            "artwork_id": "X-9",
            "title": "Bowl, large",
            "artist": "He Lan",
            "price_amount": "3500.00",
        },
        actor=CS,
    )
    desk.advance(days=14, minutes=1)
    desk.complete(rma, "follow_up_unpaid", {"note": "No answer"}, actor=CS)
    data = desk.data(rma)
    assert data["exchange_result"] == "unpaid"
    assert "survey" not in desk.notices(rma)
    assert ticket(desk, rma) == "closed"
    assert data["customer_file"]["recorded"] is True


def test_a_refund_the_flow_cannot_pay_goes_to_finance_to_settle_by_hand(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"])
    approve(desk, rma)
    ship_back(desk, rma)
    inspect(desk, rma)
    for _ in range(3):
        desk.complete(
            rma, "confirm_refund", {"amount": "9999.00", "channel": "original_payment"}, actor=FIN
        )
    assert desk.data(rma)["refunded"] is None
    assert desk.ledger(rma) == []
    assert desk.open_steps(rma) == ["settle_refund_by_hand"]
    assert ticket(desk, rma) == "open"
    desk.advance(days=2, minutes=1)
    [task] = desk.tasks(rma, role="finance_supervisor")
    assert task.bpmn_id == "settle_refund_by_hand"

    desk.complete(
        rma,
        "settle_refund_by_hand",
        {"outcome": "paid_outside", "note": "Bank transfer TX-881"},
        actor="fin-gus",
    )
    assert desk.status(rma) == "completed"
    assert (ticket(desk, rma), desk.data(rma)["rma_closed"]["rule"]) == ("closed", "REFUND-BY-HAND")
    assert "survey" not in desk.notices(rma)


def test_without_an_answer_in_fourteen_days_the_follow_up_goes_on(orders: Desk) -> None:
    desk = orders
    rma = desk.apply("SO-1", ["SO-1-W"])
    approve(desk, rma)
    ship_back(desk, rma)
    inspect(desk, rma)
    desk.complete(
        rma, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, actor=FIN
    )
    desk.advance(days=14, minutes=1)
    data = desk.data(rma)
    assert data["confirmation"] is None
    assert ticket(desk, rma) == "closed"
    desk.advance(days=30)
    desk.complete(rma, "call_back", {"reached": True, "note": "Happy"}, actor=CS)
    assert desk.status(rma) == "completed"


@pytest.mark.postgres
def test_a_return_refunded_on_postgres(pg_desk: Desk) -> None:
    desk = pg_desk
    desk.import_orders([order("SO-1", "1200")])
    rma = desk.apply("SO-1", ["SO-1-W"])
    approve(desk, rma)
    ship_back(desk, rma)
    inspect(desk, rma)
    desk.complete(
        rma, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, actor=FIN
    )
    desk.message(rma, "customer_confirmation", {"score": 4, "comment": "Fine"})
    assert [(e["kind"], e["amount_minor"]) for e in desk.ledger(rma)] == [("refund", 120000)]
    assert desk.notices(rma)[-2:] == ["refunded", "survey"]
