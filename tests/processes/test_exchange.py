"""processes/exchange.bpmn: exchanging the returned work for a replacement.

Run on its own through the returns desk (the real handlers, a fresh engine per step).
Every path: the customer pays a dearer replacement's difference (and the replacement
waits for the money), the house refunds a cheaper one's, an even swap, a difference
left unpaid for 14 days, a payment of another amount (the wait starts again; the third
is followed up as unpaid), a delivery address of the customer's choosing, and each due
time escalating to the supervisor of its lane.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select
from support import T0

from engine import InvalidStateError
from handlers.store.tables import outbox

CS = "cs-ann"
LOGISTICS = "log-lu"
ADDRESS = "Room 1203, 88 Century Avenue, Shanghai"
# Scenario 8: a CNY 2,800 hand-made ceramic, swapped on day 5.
CERAMIC: dict[str, Any] = {
    "order_number": "WEB-2026-0008",
    "channel": "online_shop",
    "jurisdiction": "CN",
    "currency": "CNY",
    "sold_at": "2026-10-25",
    "delivered_at": "2026-10-28",
    "payment_method": "alipay",
    "payer": "Zhou Min",
    "shipping_charge": "0",
    "customer": {
        "name": "Zhou Min",
        "email": "zhou.min@example.cn",
        "locale": "en",
        "address": ADDRESS,
    },
    "artworks": [
        {
            "artwork_id": "CER-0801",
            "title": "Moon Jar",
            "artist": "Han Yue",
            "category": "craft",
            "price": "2800.00",
        }
    ],
}


def replacement(price: str, address: str = "") -> dict[str, str]:
    """Customer service's form for the replacement."""
    return {
        "artwork_id": "CER-0802",
        "title": "Large Moon Jar",
        "artist": "Han Yue",
        "price_amount": price,
        "address": address,
    }


def start(
    desk: Desk, sale: dict[str, Any] = CERAMIC, inspection: dict[str, Any] | None = None
) -> str:
    desk.import_orders([sale])
    return desk.apply(
        sale["order_number"],
        [sale["artworks"][0]["artwork_id"]],
        type="exchange",
        reason="no_reason",
        process="exchange",
        extra={
            "request_type": "exchange",
            "reason": "no_reason",
            "inspection": inspection or {"outcome": "accepted", "deduction": None},
            "dispute_outcome": None,
            "dispute_decision": None,
            "confirmation": None,
            "exchange_result": None,
        },
    )


def choose(desk: Desk, rma: str, price: str, address: str = "") -> None:
    desk.complete(rma, "confirm_replacement", replacement(price, address), actor=CS)


def pack(desk: Desk, rma: str) -> None:
    desk.complete(rma, "pack_replacement", {"checked": True, "note": ""}, actor=LOGISTICS)


def bodies(desk: Desk, rma: str) -> dict[str, str]:
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(outbox.c.notice, outbox.c.body).where(outbox.c.rma == rma)
        ).all()
    return {row.notice: row.body for row in rows}


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def waits(desk: Desk, rma: str) -> list[tuple[str, str]]:
    """The message and timer waits of the return: (bpmn id, kind)."""
    return sorted(
        (t.bpmn_id, t.kind)
        for t in desk.show(rma).open_tasks
        if t.kind in ("message", "timer", "service")
    )


def ledger(desk: Desk, rma: str) -> list[tuple[str, int, str, str, str]]:
    return [
        (e["kind"], e["amount_minor"], e["currency"], e["channel"], e["payer"])
        for e in desk.ledger(rma)
    ]


def test_the_customer_pays_the_difference_before_the_replacement_ships(desk: Desk) -> None:
    """Scenario 8: CNY 2,800 for CNY 3,500: CNY 700 paid, then the replacement ships."""
    rma = start(desk)
    assert desk.task(rma, "confirm_replacement").role == "customer_service"

    choose(desk, rma, "3500.00")

    data = desk.data(rma)
    assert data["replacement"]["price"] == {"amount": "3500.00", "currency": "CNY"}
    assert data["exchange"]["direction"] == "customer_pays"
    assert data["exchange"]["amount"] == {"amount": "700.00", "currency": "CNY"}
    assert desk.notices(rma) == ["payment_requested"]
    assert "CNY 700.00 by 9 November 2026" in bodies(desk, rma)["payment_requested"]
    assert desk.open_steps(rma) == []
    assert waits(desk, rma) == [("difference_unpaid", "timer"), ("wait_for_payment", "message")]
    assert desk.ledger(rma) == []

    desk.message(
        rma, "difference_paid", {"reference": "ALI-7781", "amount": data["exchange"]["amount"]}
    )

    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]
    assert desk.data(rma)["charged"]["reference"] == desk.ledger(rma)[0]["reference"]
    assert desk.open_steps(rma) == ["pack_replacement"]
    assert desk.task(rma, "pack_replacement").role == "logistics"
    assert "exchange_shipped" not in desk.notices(rma)

    pack(desk, rma)

    assert desk.status(rma) == "completed"
    assert desk.notices(rma) == ["payment_requested", "exchange_shipped"]
    data = desk.data(rma)
    shipment = data["replacement_shipment"]
    assert shipment["address"] == ADDRESS
    assert shipment["tracking_number"]
    text = bodies(desk, rma)["exchange_shipped"]
    assert "Large Moon Jar by Han Yue" in text
    assert shipment["tracking_number"] in text
    assert data["exchange_result"] == "shipped"
    assert desk.completed_steps(rma) == [
        "confirm_replacement",
        "work_out_difference",
        "request_payment",
        "record_charge",
        "pack_replacement",
        "ship_replacement",
        "notify_shipped",
    ]
    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]


def test_the_house_refunds_a_cheaper_replacement(desk: Desk) -> None:
    """Scenario 8, variant: a CNY 2,000 piece: CNY 800 back to the original payment."""
    rma = start(desk)

    choose(desk, rma, "2000.00")

    assert desk.data(rma)["exchange"]["direction"] == "refund"
    assert ledger(desk, rma) == [("refund", 80000, "CNY", "original_payment", "Zhou Min")]
    assert desk.data(rma)["refunded"]["amount"] == {"amount": "800.00", "currency": "CNY"}
    assert desk.notices(rma) == ["refunded"]
    assert "CNY 800.00 to your original payment method" in bodies(desk, rma)["refunded"]
    assert desk.open_steps(rma) == ["pack_replacement"]

    pack(desk, rma)

    assert desk.status(rma) == "completed"
    assert desk.notices(rma) == ["refunded", "exchange_shipped"]
    assert desk.data(rma)["exchange_result"] == "shipped"
    assert "charged" not in desk.data(rma)
    assert len(desk.ledger(rma)) == 1


def test_an_even_exchange_moves_no_money(desk: Desk) -> None:
    rma = start(desk)

    choose(desk, rma, "2800.00")

    assert desk.data(rma)["exchange"]["direction"] == "even"
    assert desk.open_steps(rma) == ["pack_replacement"]
    pack(desk, rma)
    assert desk.status(rma) == "completed"
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == ["exchange_shipped"]
    assert desk.completed_steps(rma) == [
        "confirm_replacement",
        "work_out_difference",
        "pack_replacement",
        "ship_replacement",
        "notify_shipped",
    ]


def test_an_unpaid_difference_ends_the_exchange_after_14_days(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "3500.00")

    desk.advance(days=14, minutes=-1)
    assert fired(desk, rma) == []
    assert desk.open_steps(rma) == []

    desk.advance(minutes=2)
    assert fired(desk, rma) == ["difference_unpaid"]
    assert desk.open_steps(rma) == ["follow_up_unpaid"]
    assert desk.task(rma, "follow_up_unpaid").role == "customer_service"
    with pytest.raises(InvalidStateError):  # too late: the wait for the money is over
        desk.message(rma, "difference_paid", {"reference": "ALI-LATE"})

    desk.advance(days=2, minutes=1)  # the follow-up is due in 2 days
    assert fired(desk, rma) == ["difference_unpaid", "follow_up_unpaid_due"]
    assert desk.task(rma, "follow_up_unpaid").escalated_to == "customer_service_supervisor"

    desk.complete(rma, "follow_up_unpaid", {"note": "No answer by phone or e-mail."}, actor=CS)

    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["exchange_result"] == "unpaid"
    assert "replacement_shipment" not in data
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == ["payment_requested"]
    assert "ship_replacement" not in desk.completed_steps(rma)


def test_the_replacement_goes_to_the_address_the_customer_gives(desk: Desk) -> None:
    rma = start(desk)
    elsewhere = "Studio 4, 12 Wukang Road, Shanghai"

    choose(desk, rma, "2800.00", address=elsewhere)
    pack(desk, rma)

    assert desk.data(rma)["replacement_shipment"]["address"] == elsewhere
    text = bodies(desk, rma)["exchange_shipped"]
    assert elsewhere in text
    assert ADDRESS not in text


def test_the_replacement_is_priced_in_the_currency_of_the_order(desk: Desk) -> None:
    rma = start(desk, {**CERAMIC, "order_number": "OG-2026-0018", "currency": "EUR"})

    choose(desk, rma, "3100.00")

    assert desk.data(rma)["replacement"]["price"] == {"amount": "3100.00", "currency": "EUR"}
    assert desk.data(rma)["exchange"]["amount"] == {"amount": "300.00", "currency": "EUR"}
    assert "EUR 300.00" in bodies(desk, rma)["payment_requested"]


def test_confirming_the_replacement_escalates_after_two_days(desk: Desk) -> None:
    rma = start(desk)
    assert desk.task(rma, "confirm_replacement").due_at == T0 + timedelta(days=2)

    desk.advance(days=2, minutes=-1)
    assert fired(desk, rma) == []
    desk.advance(minutes=2)

    assert fired(desk, rma) == ["confirm_replacement_due"]
    task = desk.task(rma, "confirm_replacement")
    assert (task.role, task.escalated_to) == ("customer_service", "customer_service_supervisor")
    assert [t.bpmn_id for t in desk.tasks(rma, role="customer_service_supervisor")] == [
        "confirm_replacement"
    ]
    choose(desk, rma, "2800.00")  # still open for customer service
    assert desk.open_steps(rma) == ["pack_replacement"]


def test_packing_escalates_to_the_logistics_supervisor(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "2800.00")

    desk.advance(days=2, minutes=1)

    assert fired(desk, rma) == ["pack_replacement_due"]
    task = desk.task(rma, "pack_replacement")
    assert (task.role, task.escalated_to) == ("logistics", "logistics_supervisor")
    pack(desk, rma)
    assert desk.status(rma) == "completed"


def test_the_payment_is_recorded_once(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "3500.00")
    desk.message(rma, "difference_paid", {"reference": "ALI-7781", "amount": cny("700.00")})

    with pytest.raises(InvalidStateError):
        desk.message(rma, "difference_paid", {"reference": "ALI-7781", "amount": cny("700.00")})

    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]


def cny(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "CNY"}


def mismatches(desk: Desk, rma: str) -> list[str]:
    """The reasons of the payments refused so far, from the history."""
    return [
        e.data["payload"]["reason"]
        for e in desk.history(rma)
        if e.kind == "error_thrown" and e.data["code"] == "payment_mismatch"
    ]


def test_a_payment_of_another_amount_waits_for_the_right_one(desk: Desk) -> None:
    """CNY 600 paid on a CNY 700 difference: nothing is recorded, the wait starts again,
    and the operator delivers the message again once the right amount is in."""
    rma = start(desk)
    choose(desk, rma, "3500.00")
    assert desk.data(rma)["payment_mismatches"] == 0
    assert desk.data(rma)["payment_problem"] is None

    desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": cny("600.00")})

    assert mismatches(desk, rma) == [
        "The customer paid CNY 600.00; the difference asked for is CNY 700.00."
    ]
    data = desk.data(rma)
    assert data["payment_problem"] == {"reason": mismatches(desk, rma)[0]}
    assert data["payment_mismatches"] == 1
    assert data["reason"] == "no_reason"  # the payload stays under payment_problem
    assert [t for t in desk.show(rma).open_tasks if t.state == "FAILED"] == []
    assert waits(desk, rma) == [("difference_unpaid", "timer"), ("wait_for_payment", "message")]
    assert desk.ledger(rma) == []
    assert desk.open_steps(rma) == []
    assert "charged" not in data

    desk.message(rma, "difference_paid", {"reference": "ALI-2", "amount": cny("700.00")})

    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]
    assert desk.data(rma)["charged"]["payment_reference"] == "ALI-2"
    assert desk.open_steps(rma) == ["pack_replacement"]
    pack(desk, rma)
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["exchange_result"] == "shipped"
    assert desk.completed_steps(rma).count("record_charge") == 1


def test_an_amount_that_cannot_be_read_is_a_mismatch_too(desk: Desk) -> None:
    """An operator's typo in the message does not fail the step: it is delivered again."""
    rma = start(desk)
    choose(desk, rma, "3500.00")

    desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": cny("7OO")})

    [reason] = mismatches(desk, rma)
    assert reason.startswith("The amount paid cannot be read: '7OO' is not an amount.")
    assert "CNY 700.00" in reason
    assert waits(desk, rma) == [("difference_unpaid", "timer"), ("wait_for_payment", "message")]

    desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": cny("700.00")})
    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]


def test_the_third_mismatch_is_followed_up_as_unpaid(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "3500.00")

    for paid in (cny("600.00"), {"amount": "700.00", "currency": "EUR"}):
        desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": paid})
        assert desk.open_steps(rma) == []
    desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": cny("800.00")})

    assert len(mismatches(desk, rma)) == 3
    data = desk.data(rma)
    assert data["payment_mismatches"] == 3
    assert data["payment_problem"] == {
        "reason": "The customer paid CNY 800.00; the difference asked for is CNY 700.00."
    }
    assert desk.open_steps(rma) == ["follow_up_unpaid"]
    assert desk.task(rma, "follow_up_unpaid").role == "customer_service"
    assert waits(desk, rma) == [("follow_up_unpaid_due", "timer")]  # no wait for money
    with pytest.raises(InvalidStateError):  # the wait for the money is over
        desk.message(rma, "difference_paid", {"reference": "ALI-9", "amount": cny("700.00")})

    desk.complete(rma, "follow_up_unpaid", {"note": "Refunded the CNY 800 by hand."}, actor=CS)

    assert desk.status(rma) == "completed"
    assert desk.data(rma)["exchange_result"] == "unpaid"
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == ["payment_requested"]
    assert "ship_replacement" not in desk.completed_steps(rma)


def test_after_a_mismatch_the_customer_has_14_days_again(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "3500.00")
    desk.advance(days=10)

    desk.message(rma, "difference_paid", {"reference": "ALI-1", "amount": cny("600.00")})

    assert desk.show(rma).next_timer_at.replace(tzinfo=UTC) == desk.now + timedelta(days=14)
    desk.advance(days=13, hours=23)
    assert fired(desk, rma) == []
    desk.advance(hours=2)
    assert fired(desk, rma) == ["difference_unpaid"]
    assert desk.open_steps(rma) == ["follow_up_unpaid"]
    assert desk.data(rma)["payment_mismatches"] == 1


@pytest.mark.postgres
def test_the_customer_pays_on_postgres(pg_desk: Desk) -> None:
    rma = start(pg_desk)
    choose(pg_desk, rma, "3500.00")
    pg_desk.message(
        rma,
        "difference_paid",
        {"reference": "ALI-7781", "amount": {"amount": "700.00", "currency": "CNY"}},
    )
    pack(pg_desk, rma)

    assert pg_desk.status(rma) == "completed"
    assert ledger(pg_desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]
    assert pg_desk.notices(rma) == ["payment_requested", "exchange_shipped"]
    assert pg_desk.data(rma)["exchange_result"] == "shipped"


def test_a_payment_that_names_no_amount_is_sent_back(desk: Desk) -> None:
    rma = start(desk)
    choose(desk, rma, "3500.00")
    desk.message(rma, "difference_paid", {"reference": "ALI-7781"})
    assert "names no amount" in desk.data(rma)["payment_problem"]["reason"]
    assert ledger(desk, rma) == []
    desk.message(rma, "difference_paid", {"reference": "ALI-7781", "amount": cny("700.00")})
    assert ledger(desk, rma) == [("charge", 70000, "CNY", "original_payment", "Zhou Min")]


def test_an_inspection_deduction_lowers_the_credit_for_the_returned_work(desk: Desk) -> None:
    deducted = {"outcome": "accepted_with_deduction", "deduction": cny("300.00")}
    rma = start(desk, inspection=deducted)
    choose(desk, rma, "3500.00")
    exchange = desk.data(rma)["exchange"]
    assert exchange["credit"] == cny("2500.00")
    assert (exchange["direction"], exchange["amount"]) == ("customer_pays", cny("1000.00"))
