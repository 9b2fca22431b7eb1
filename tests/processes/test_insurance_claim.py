"""processes/insurance_claim.bpmn: a transit-damage claim with the carrier's insurer.

Run on its own through the returns desk (the real handlers, a fresh engine per step):
the claim is opened, the insurer settles or refuses, or is chased every 30 days until
the sixth chase gives up with the claim left open in the claims register.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select
from support import T0

from engine import InvalidStateError
from handlers.store.tables import claims

FINANCE = "fin-fay"
OTHER_FINANCE = "fin-finn"
ORDER: dict[str, Any] = {
    "order_number": "MK-2026-0611",
    "channel": "marketplace",
    "jurisdiction": "EU",
    "currency": "EUR",
    "sold_at": "2026-10-26",
    "delivered_at": "2026-10-31",
    "payment_method": "card",
    "payer": "Lena Vogel",
    "shipping_charge": "25.00",
    "customer": {
        "name": "Lena Vogel",
        "email": "lena.vogel@example.org",
        "locale": "de-DE",
        "address": "Lindenstrasse 4, 10969 Berlin",
    },
    "artworks": [
        {
            "artwork_id": "WC-0611",
            "title": "Harbour at Dusk",
            "artist": "Marta Keller",
            "category": "painting",
            "price": "2200.00",
            "condition": {"grade": "excellent", "notes": "framed, glazed"},
        }
    ],
}
SHIPMENT = {"carrier": "ArtCourier", "tracking_number": "AC-77120", "status": "delivered"}


def open_claim(desk: Desk) -> str:
    """Start the claim with the data the return has by then (amount as intake.facts gives it)."""
    desk.import_orders([ORDER])
    return desk.apply(
        "MK-2026-0611",
        ["WC-0611"],
        reason="transit_damage",
        process="insurance_claim",
        extra={"amount": Decimal("2200.00"), "currency": "EUR", "shipment": SHIPMENT},
    )


def claim_rows(desk: Desk, rma: str) -> list[dict[str, Any]]:
    with desk.engine().db.read() as session:
        rows = session.execute(select(claims).where(claims.c.rma == rma)).mappings().all()
    return [dict(row) for row in rows]


def fired(desk: Desk, rma: str) -> list[str]:
    """bpmn ids of the timers fired so far, in order."""
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def chase(desk: Desk, rma: str, actor: str = FINANCE) -> None:
    """Let the 30 days pass without a settlement and chase the insurer once."""
    desk.advance(days=30, minutes=1)
    desk.complete(rma, "chase_insurer", {"note": "Called the claims desk."}, actor=actor)


def test_opening_the_claim_waits_for_the_insurer(desk: Desk) -> None:
    rma = open_claim(desk)

    data = desk.data(rma)
    claim = data["insurance_claim"]
    assert claim["reference"].startswith("INS-2026-")
    assert claim["insurer"] == "ArtCourier (insurer)"
    assert claim["status"] == "open"
    assert data["insurer_chases"] == 0
    assert desk.status(rma) == "running"
    assert desk.tasks(rma) == []
    [row] = claim_rows(desk, rma)
    assert row["kind"] == "insurance"
    assert row["status"] == "open"
    assert row["details"]["declared_value"] == {"amount": "2200.00", "currency": "EUR"}
    assert row["details"]["artworks"] == ["WC-0611"]
    # The insurer gets 30 days before anyone is asked to chase.
    due = desk.show(rma).next_timer_at
    assert due is not None
    assert due.replace(tzinfo=UTC) == T0 + timedelta(days=30)


def test_settlement_is_recorded_on_the_claim(desk: Desk) -> None:
    rma = open_claim(desk)
    desk.advance(days=12)

    desk.message(
        rma,
        "insurer_settlement",
        {"status": "settled", "amount": {"amount": "1950.00", "currency": "EUR"}},
        actor="insurer-desk",
    )

    assert desk.status(rma) == "completed"
    claim = desk.data(rma)["insurance_claim"]
    assert claim["status"] == "settled"
    assert claim["recovered"] == {"amount": "1950.00", "currency": "EUR"}
    assert desk.completed_steps(rma) == ["open_claim", "record_settlement"]
    [row] = claim_rows(desk, rma)
    assert row["status"] == "settled"
    assert (row["amount_minor"], row["currency"]) == (195000, "EUR")
    assert fired(desk, rma) == []
    assert desk.notices(rma) == []  # the customer is not told about the house's claim


def test_refusal_is_recorded_without_an_amount(desk: Desk) -> None:
    rma = open_claim(desk)

    desk.message(rma, "insurer_settlement", {"status": "refused"})

    assert desk.status(rma) == "completed"
    claim = desk.data(rma)["insurance_claim"]
    assert claim["status"] == "refused"
    assert claim["recovered"] is None
    [row] = claim_rows(desk, rma)
    assert row["status"] == "refused"
    assert row["amount_minor"] is None


@pytest.mark.parametrize(
    ("settlement", "words"),
    [
        (
            {"status": "paid", "amount": {"amount": "1950.00", "currency": "EUR"}},
            "has the status 'paid'",
        ),
        (
            {"status": "Settled", "amount": {"amount": "1950.00", "currency": "EUR"}},
            "has the status 'Settled'",
        ),
        ({"amount": {"amount": "1950.00", "currency": "EUR"}}, "has no status"),
        ({"status": "settled"}, "a settled claim needs the amount recovered"),
        (
            {"status": "settled", "amount": {"amount": "1950.00", "currency": "USD"}},
            "is in EUR; the amount recovered is in USD",
        ),
        (
            {"status": "settled", "amount": {"amount": "0", "currency": "EUR"}},
            "recovers more than zero, not EUR 0.00",
        ),
        (
            {"status": "settled", "amount": {"amount": "1.950,00", "currency": "EUR"}},
            "the amount recovered cannot be read",
        ),
        (
            {"status": "refused", "amount": {"amount": "1950.00", "currency": "EUR"}},
            "send the settlement without an amount",
        ),
    ],
)
def test_a_settlement_that_is_not_one_is_not_recorded(
    desk: Desk, settlement: dict[str, Any], words: str
) -> None:
    """Only "settled" (with an amount in the claim's currency) or "refused" (without one)."""
    rma = open_claim(desk)

    desk.message(rma, "insurer_settlement", settlement)

    [failed] = [t for t in desk.show(rma).open_tasks if t.bpmn_id == "record_settlement"]
    assert failed.state == "FAILED"
    assert words in (failed.error or "")
    assert desk.data(rma)["insurance_claim"]["status"] == "open"
    [row] = claim_rows(desk, rma)
    assert (row["status"], row["amount_minor"], row["settled_at"]) == ("open", None, None)


def test_no_settlement_in_30_days_asks_finance_to_chase(desk: Desk) -> None:
    rma = open_claim(desk)

    desk.advance(days=29, hours=23)
    assert desk.tasks(rma) == []
    desk.advance(hours=2)

    assert fired(desk, rma) == ["no_settlement"]
    task = desk.task(rma, "chase_insurer")
    assert task.role == "finance"
    # The wait was interrupted: a settlement now is refused until the chase is done.
    with pytest.raises(InvalidStateError):
        desk.message(rma, "insurer_settlement", {"status": "settled"})

    desk.complete(rma, "chase_insurer", {"note": "They promise an answer."}, actor=FINANCE)

    assert desk.data(rma)["insurer_chases"] == 1
    assert desk.tasks(rma) == []
    desk.message(
        rma,
        "insurer_settlement",
        {"status": "settled", "amount": {"amount": "2200.00", "currency": "EUR"}},
    )
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["insurance_claim"]["status"] == "settled"
    assert desk.completed_steps(rma) == ["open_claim", "chase_insurer", "record_settlement"]


def test_an_overdue_chase_escalates_to_the_finance_supervisor(desk: Desk) -> None:
    rma = open_claim(desk)
    desk.advance(days=30, minutes=1)
    before = desk.task(rma, "chase_insurer")

    desk.advance(days=2, minutes=1)

    assert fired(desk, rma) == ["no_settlement", "chase_insurer_due"]
    after = desk.task(rma, "chase_insurer")
    assert after.id == before.id  # the same task stays open for finance
    assert after.role == "finance"
    assert after.escalated_to == "finance_supervisor"
    supervisor = desk.engine().tasks(role="finance_supervisor")
    assert [(t.id, t.bpmn_id) for t in supervisor] == [(before.id, "chase_insurer")]
    escalated = [e for e in desk.history(rma) if e.kind == "escalated"]
    assert [(e.bpmn_id, e.data["role"]) for e in escalated] == [
        ("chase_insurer", "finance_supervisor")
    ]
    desk.complete(rma, "chase_insurer", {"note": "Late, but done."}, actor=FINANCE)
    assert desk.data(rma)["insurer_chases"] == 1


def test_the_sixth_chase_gives_up_and_leaves_the_claim_open(desk: Desk) -> None:
    rma = open_claim(desk)

    for round_ in range(1, 6):
        chase(desk, rma, actor=FINANCE if round_ % 2 else OTHER_FINANCE)
        assert desk.status(rma) == "running"
        assert desk.data(rma)["insurer_chases"] == round_
    chase(desk, rma)

    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["insurer_chases"] == 6
    assert data["insurance_claim"]["status"] == "open"
    assert "settlement" not in data
    assert desk.completed_steps(rma) == ["open_claim"] + ["chase_insurer"] * 6
    assert fired(desk, rma) == ["no_settlement"] * 6
    [row] = claim_rows(desk, rma)
    assert row["status"] == "open"
    assert row["settled_at"] is None


@pytest.mark.postgres
def test_settlement_after_a_chase_on_postgres(pg_desk: Desk) -> None:
    rma = open_claim(pg_desk)
    chase(pg_desk, rma)

    pg_desk.message(
        rma,
        "insurer_settlement",
        {"status": "settled", "amount": {"amount": "2100.00", "currency": "EUR"}},
    )

    assert pg_desk.status(rma) == "completed"
    assert pg_desk.data(rma)["insurance_claim"]["recovered"] == {
        "amount": "2100.00",
        "currency": "EUR",
    }
    assert pg_desk.completed_steps(rma) == ["open_claim", "chase_insurer", "record_settlement"]
    [row] = claim_rows(pg_desk, rma)
    assert (row["status"], row["amount_minor"]) == ("settled", 210000)
