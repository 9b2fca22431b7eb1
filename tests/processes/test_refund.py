"""processes/refund.bpmn: paying the customer's refund, once, by the deadline.

Run on its own through the returns desk (the real handlers, a fresh engine per step),
with the data the earlier flows would have set passed in at the start. Every path:
the amount (price, restocking fee, inspection deduction, shipping refunded), each
channel, a confirmation that cannot be paid (an amount that is not one, not above zero
or above the refund worked out, a channel the sale may not be refunded to: refused
with its reason and asked again, three times at most), a refund blocked by a mismatch,
a mismatch a dispute decided for refund, the escalation two days before the legal
deadline (CN: receipt + 7 days, EU: notice + 14 days), and payment exactly once however
often the step is run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Desk
from lxml import etree
from sqlalchemy import select
from support import PROCESSES, T0

import handlers
from engine import TaskNotFoundError
from handlers.store.tables import outbox

FINANCE = "fin-fay"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def order(number: str, **changes: Any) -> dict[str, Any]:
    """One order of one work; `price`, `category` and order fields may be changed."""
    price = changes.pop("price")
    category = changes.pop("category", "painting")
    base: dict[str, Any] = {
        "order_number": number,
        "channel": "online_shop",
        "jurisdiction": "EU",
        "currency": "EUR",
        "sold_at": "2026-10-12",
        "delivered_at": "2026-10-16",
        "payment_method": "card",
        "payer": "Jonas Weber",
        "shipping_charge": "0",
        "customer": {
            "name": "Jonas Weber",
            "email": "jonas.weber@example.org",
            "locale": "en",
            "address": "Bergstrasse 9, 80331 Munich",
        },
        "artworks": [
            {
                "artwork_id": f"{number}-A",
                "title": "Morning Field",
                "artist": "Ida Brandt",
                "category": category,
                "price": price,
            }
        ],
    }
    base.update(changes)
    return base


# Scenario 1: a CNY 1,200 print, own web shop, CN buyer.
PRINT = order(
    "WEB-2026-0001",
    price="1200.00",
    category="print",
    jurisdiction="CN",
    currency="CNY",
    payer="Li Na",
)
# Scenario 2: a EUR 4,500 oil painting, online gallery, buyer in Germany.
PAINTING = order("OG-2026-0002", price="4500.00")
# Scenario 4: a CNY 180,000 bronze sold in the gallery, 10 % restocking fee.
BRONZE = order(
    "ST-2026-0004",
    price="180000.00",
    category="sculpture",
    channel="store",
    jurisdiction="CN",
    currency="CNY",
    payer="Wang Fang",
)
# Scenario 9: a EUR 1,200 photograph, not as described, the seller pays the return.
PHOTO = order(
    "MK-2026-0009",
    price="1200.00",
    category="photograph",
    channel="marketplace",
    shipping_charge="35.00",
)
# Scenario 10: a EUR 25,000 canvas: refunded only to the original payer.
CANVAS = order("OL-2026-0010", price="25000.00", payer="Claire Martin")


def inspection(outcome: str = "accepted", deduction: str | None = None) -> dict[str, Any]:
    """What inspection.compare leaves in the data."""
    return {
        "outcome": outcome,
        "grade": "good",
        "observations": [],
        "accessories_missing": [],
        "deduction": {"amount": deduction, "currency": "EUR"} if deduction else None,
        "differences": [],
    }


def facts(**changes: Any) -> dict[str, Any]:
    """The data the top level and the earlier flows leave for the refund."""
    data: dict[str, Any] = {
        "restocking_rate": "0",
        "seller_pays_return": False,
        "jurisdiction": "EU",
        "reason": "no_reason",
        "request_type": "return",
        "inspection": inspection(),
        "refund_deadline_days": 14,
        "refund_clock": "notice",
        "received_at": "2026-11-01T10:00:00+00:00",
        "dispute_outcome": None,
        "dispute_decision": None,
        "confirmation": None,
        "exchange_result": None,
    }
    data.update(changes)
    return data


def start(desk: Desk, sale: dict[str, Any], **changes: Any) -> str:
    desk.import_orders([sale])
    data = facts(**changes)
    return desk.apply(
        sale["order_number"],
        [sale["artworks"][0]["artwork_id"]],
        reason=data["reason"],
        process="refund",
        extra=data,
    )


def confirm(desk: Desk, rma: str, amount: str, channel: str = "original_payment") -> None:
    desk.complete(
        rma, "confirm_refund", {"amount": amount, "channel": channel, "note": ""}, actor=FINANCE
    )


def bodies(desk: Desk, rma: str) -> dict[str, str]:
    """The text of each notice sent for the return."""
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(outbox.c.notice, outbox.c.body).where(outbox.c.rma == rma)
        ).all()
    return {row.notice: row.body for row in rows}


def fired(desk: Desk, rma: str) -> list[str]:
    """bpmn ids of the timers fired so far, in order."""
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def errors(desk: Desk, rma: str) -> list[str]:
    return [e.data["code"] for e in desk.history(rma) if e.kind == "error_thrown"]


def run_at(desk: Desk, when: datetime) -> None:
    desk.at(when)
    desk.engine().run_due(actor="timer")


def ledger(desk: Desk, rma: str) -> list[tuple[str, int, str, str, str]]:
    return [
        (e["kind"], e["amount_minor"], e["currency"], e["channel"], e["payer"])
        for e in desk.ledger(rma)
    ]


# -- the amount ------------------------------------------------------------------------


def test_the_restocking_fee_is_kept_and_the_rest_paid_by_bank_transfer(desk: Desk) -> None:
    """Scenario 4: CNY 180,000 less the store's 10 % restocking fee."""
    rma = start(
        desk,
        BRONZE,
        jurisdiction="CN",
        restocking_rate="0.10",
        refund_deadline_days=7,
        refund_clock="receipt",
    )
    assert desk.open_steps(rma) == ["confirm_refund"]
    assert desk.task(rma, "confirm_refund").role == "finance"
    refund = desk.data(rma)["refund"]
    assert refund["amount"] == {"amount": "162000.00", "currency": "CNY"}
    assert refund["breakdown"]["restocking_fee"] == {"amount": "18000.00", "currency": "CNY"}
    assert refund["breakdown"]["shipping_refunded"]["amount"] == "0.00"

    confirm(desk, rma, "162000.00", "bank_transfer")

    assert desk.status(rma) == "completed"
    assert ledger(desk, rma) == [("refund", 16200000, "CNY", "bank_transfer", "Wang Fang")]
    assert desk.notices(rma) == ["refunded"]
    assert "CNY 162,000.00 by bank transfer" in bodies(desk, rma)["refunded"]
    data = desk.data(rma)
    assert data["refunded"]["amount"] == {"amount": "162000.00", "currency": "CNY"}
    assert data["refunded"]["reference"] == desk.ledger(rma)[0]["reference"]
    assert data["refund_confirmation"]["channel"] == "bank_transfer"
    assert desk.completed_steps(rma) == [
        "compute_refund",
        "confirm_refund",
        "pay_refund",
        "notify_refunded",
    ]


def test_an_inspection_deduction_is_taken_off(desk: Desk) -> None:
    """Scenario 2: EUR 4,500 with the canvas off its stretcher: EUR 300 deducted."""
    rma = start(desk, PAINTING, inspection=inspection("accepted_with_deduction", "300.00"))
    refund = desk.data(rma)["refund"]
    assert refund["amount"] == {"amount": "4200.00", "currency": "EUR"}
    assert refund["breakdown"]["deduction"] == {"amount": "300.00", "currency": "EUR"}

    confirm(desk, rma, refund["amount"]["amount"])

    assert ledger(desk, rma) == [("refund", 420000, "EUR", "original_payment", "Jonas Weber")]
    assert "EUR 4,200.00 to your original payment method" in bodies(desk, rma)["refunded"]


def test_the_shipping_charge_is_refunded_when_the_seller_is_at_fault(desk: Desk) -> None:
    """Scenario 9: not as described, the seller pays: the EUR 35 shipping comes back."""
    rma = start(desk, PHOTO, reason="not_as_described", seller_pays_return=True)
    refund = desk.data(rma)["refund"]
    assert refund["breakdown"]["shipping_refunded"] == {"amount": "35.00", "currency": "EUR"}
    assert refund["amount"] == {"amount": "1235.00", "currency": "EUR"}

    confirm(desk, rma, "1235.00")

    assert ledger(desk, rma) == [("refund", 123500, "EUR", "original_payment", "Jonas Weber")]


def test_no_shipping_charge_comes_back_when_the_buyer_is_at_fault(desk: Desk) -> None:
    rma = start(
        desk,
        order(
            "WEB-2026-0019",
            price="1200.00",
            currency="CNY",
            jurisdiction="CN",
            shipping_charge="15.00",
        ),
        jurisdiction="CN",
        reason="no_reason",
        seller_pays_return=False,
    )
    refund = desk.data(rma)["refund"]
    assert refund["breakdown"]["shipping_refunded"] == {"amount": "0.00", "currency": "CNY"}
    assert refund["amount"] == {"amount": "1200.00", "currency": "CNY"}


def test_finance_may_correct_the_amount(desk: Desk) -> None:
    rma = start(desk, PAINTING)
    assert desk.data(rma)["refund"]["amount"]["amount"] == "4500.00"

    confirm(desk, rma, "4450.00")

    assert ledger(desk, rma) == [("refund", 445000, "EUR", "original_payment", "Jonas Weber")]
    assert desk.data(rma)["refunded"]["amount"] == {"amount": "4450.00", "currency": "EUR"}


# -- the channels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "kind", "arrives", "words"),
    [
        ("original_payment", "refund", "2026-11-07", "to your original payment method"),
        ("bank_transfer", "refund", "2026-11-05", "by bank transfer"),
        ("store_credit", "store_credit", "2026-11-02", "as store credit"),
    ],
)
def test_each_channel_pays_through_the_ledger(
    desk: Desk, channel: str, kind: str, arrives: str, words: str
) -> None:
    """Scenario 1's CNY 1,200 print refunded by each channel finance may choose."""
    rma = start(desk, PRINT, jurisdiction="CN", refund_deadline_days=7, refund_clock="receipt")

    confirm(desk, rma, "1200.00", channel)

    assert ledger(desk, rma) == [(kind, 120000, "CNY", channel, "Li Na")]
    refunded = desk.data(rma)["refunded"]
    assert refunded["channel"] == channel
    assert refunded["expected_by"] == arrives
    assert refunded["paid_at"] == T0.isoformat()
    assert words in bodies(desk, rma)["refunded"]


# -- confirmation refused ----------------------------------------------------------------


def refusals(desk: Desk, rma: str) -> list[str]:
    """The reasons of the confirmations refused so far, from the history."""
    return [
        e.data["payload"]["reason"]
        for e in desk.history(rma)
        if e.kind == "error_thrown" and e.data["code"] == "confirmation_refused"
    ]


def test_a_large_sale_goes_back_only_to_the_original_payment(desk: Desk) -> None:
    """EUR 10,000 and more: another channel is refused and finance is asked again."""
    rma = start(desk, CANVAS)
    assert desk.data(rma)["refund"]["original_payer_only"] is True
    assert desk.data(rma)["refusal"] is None

    confirm(desk, rma, "25000.00", "bank_transfer")

    assert errors(desk, rma) == ["confirmation_refused"]
    assert desk.open_steps(rma) == ["confirm_refund"]
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == []
    data = desk.data(rma)
    assert data["confirmation_refusals"] == 1
    assert data["refunded"] is None
    assert data["refusal"] == {
        "reason": "Sales of EUR 10,000 or more are refunded only to the original payment "
        "method; bank transfer is not allowed for this sale."
    }

    confirm(desk, rma, "25000.00", "original_payment")

    assert desk.status(rma) == "completed"
    assert ledger(desk, rma) == [("refund", 2500000, "EUR", "original_payment", "Claire Martin")]
    assert desk.notices(rma) == ["refunded"]
    assert desk.completed_steps(rma) == [
        "compute_refund",
        "confirm_refund",
        "confirm_refund",
        "pay_refund",
        "notify_refunded",
    ]


def test_an_amount_above_the_refund_is_refused_and_finance_asked_again(desk: Desk) -> None:
    """Finance may lower the refund, never raise it: EUR 9,999 on EUR 4,500 is not paid."""
    rma = start(desk, PAINTING)

    confirm(desk, rma, "9999.00")

    assert errors(desk, rma) == ["confirmation_refused"]
    assert desk.ledger(rma) == []
    assert desk.open_steps(rma) == ["confirm_refund"]
    assert desk.task(rma, "confirm_refund").role == "finance"
    assert desk.data(rma)["refusal"] == {
        "reason": "EUR 9,999.00 is more than the refund worked out (EUR 4,500.00): the amount "
        "may be lowered, never raised."
    }
    # The payload lands under `refusal` only: the return's own `reason` is untouched.
    assert desk.data(rma)["reason"] == "no_reason"
    assert desk.notices(rma) == []

    confirm(desk, rma, "4500.00")

    assert desk.status(rma) == "completed"
    assert ledger(desk, rma) == [("refund", 450000, "EUR", "original_payment", "Jonas Weber")]
    assert desk.data(rma)["refunded"]["amount"] == {"amount": "4500.00", "currency": "EUR"}


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("4.500,00", "'4.500,00' is not an amount"),
        ("4.500", "'4.500' has more decimals than EUR has (2)"),
        ("EUR 4500", "'EUR 4500' is not an amount"),
        ("about 4500", "'about 4500' is not an amount"),
        ("0", "must be more than zero, not EUR 0.00"),
        ("-4500.00", "must be more than zero, not EUR -4,500.00"),
        ("NaN", "not a finite decimal amount"),
    ],
)
def test_an_amount_that_cannot_be_paid_is_refused_with_its_reason(
    desk: Desk, typed: str, words: str
) -> None:
    """A mistyped amount does not fail the step: finance is told why and asked again."""
    rma = start(desk, PAINTING)

    confirm(desk, rma, typed)

    assert errors(desk, rma) == ["confirmation_refused"]
    [reason] = refusals(desk, rma)
    assert words in reason
    assert desk.data(rma)["refusal"] == {"reason": reason}
    assert [t.state for t in desk.show(rma).open_tasks if t.bpmn_id == "pay_refund"] == []
    assert desk.open_steps(rma) == ["confirm_refund"]
    assert desk.ledger(rma) == []

    confirm(desk, rma, "4450.00")

    assert ledger(desk, rma) == [("refund", 445000, "EUR", "original_payment", "Jonas Weber")]


def test_three_refused_confirmations_end_the_refund_unpaid(desk: Desk) -> None:
    """Each reason counts; the third refusal ends the refund with nothing paid."""
    rma = start(desk, CANVAS)

    confirm(desk, rma, "25000.00", "bank_transfer")
    assert desk.open_steps(rma) == ["confirm_refund"]
    confirm(desk, rma, "25000,00")
    assert desk.open_steps(rma) == ["confirm_refund"]
    confirm(desk, rma, "25000.01", "original_payment")

    assert desk.status(rma) == "completed"
    assert errors(desk, rma) == ["confirmation_refused"] * 3
    assert len(set(refusals(desk, rma))) == 3
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == []
    data = desk.data(rma)
    assert data["confirmation_refusals"] == 3
    assert data["refunded"] is None  # what the top level tests to tell an unpaid refund
    assert data["refusal"] == {"reason": refusals(desk, rma)[-1]}
    assert "more than the refund worked out" in data["refusal"]["reason"]
    assert desk.completed_steps(rma).count("confirm_refund") == 3
    assert desk.completed_steps(rma)[-1] == "confirm_refund"


def test_the_diagram_declares_the_refusal_and_names_the_unpaid_end() -> None:
    """The error's payload goes to `refusal`; the unpaid end is named for every reason."""
    root = etree.parse(str(PROCESSES / "refund.bpmn")).getroot()
    errors = {e.get("errorCode"): e for e in root.findall(f"{{{BPMN}}}error")}
    assert set(errors) == {"confirmation_refused", "refund_blocked"}
    error = errors["confirmation_refused"]
    assert error.findtext(f"{{{BPMN}}}extensionElements/{{{SPIFF}}}variableName") == "refusal"
    [boundary] = [
        b
        for b in root.iter(f"{{{BPMN}}}boundaryEvent")
        if b.find(f"{{{BPMN}}}errorEventDefinition[@errorRef='{error.get('id')}']") is not None
    ]
    assert boundary.get("attachedToRef") == "pay_refund"
    [end] = [e for e in root.iter(f"{{{BPMN}}}endEvent") if e.get("id") == "refund_not_paid"]
    assert end.get("name") == "Refund not paid: confirmation refused"


def test_a_small_sale_may_go_to_another_channel(desk: Desk) -> None:
    rma = start(desk, PAINTING)
    assert desk.data(rma)["refund"]["original_payer_only"] is False

    confirm(desk, rma, "4500.00", "bank_transfer")

    assert errors(desk, rma) == []
    assert ledger(desk, rma) == [("refund", 450000, "EUR", "bank_transfer", "Jonas Weber")]


# -- mismatch ----------------------------------------------------------------------------


@pytest.mark.parametrize("decided", [None, "reject", "compensation"])
def test_a_mismatch_blocks_the_refund_unless_a_dispute_decided_one(
    desk: Desk, decided: str | None
) -> None:
    """Scenario 10: the work returned is not the work sold; nothing is paid."""
    rma = start(desk, CANVAS, inspection=inspection("mismatch"), dispute_outcome=decided)

    confirm(desk, rma, "25000.00")

    assert desk.status(rma) == "completed"
    assert errors(desk, rma) == ["refund_blocked"]
    assert desk.ledger(rma) == []
    assert desk.notices(rma) == []
    assert desk.data(rma)["refunded"] is None
    assert desk.completed_steps(rma) == ["compute_refund", "confirm_refund"]


def test_a_mismatch_the_dispute_decided_for_refund_is_paid(desk: Desk) -> None:
    rma = start(desk, CANVAS, inspection=inspection("mismatch"), dispute_outcome="refund")

    confirm(desk, rma, "25000.00")

    assert errors(desk, rma) == []
    assert ledger(desk, rma) == [("refund", 2500000, "EUR", "original_payment", "Claire Martin")]
    assert desk.notices(rma) == ["refunded"]


# -- the deadline --------------------------------------------------------------------------


def test_cn_escalates_two_days_before_seven_days_from_receipt(desk: Desk) -> None:
    """Received 1 November: pay by 8 November; escalate at the start of 6 November."""
    rma = start(
        desk,
        PRINT,
        jurisdiction="CN",
        refund_deadline_days=7,
        refund_clock="receipt",
        received_at="2026-11-01T15:00:00+00:00",
    )
    refund = desk.data(rma)["refund"]
    assert refund["deadline"] == "2026-11-08"
    assert refund["escalate_at"] == "2026-11-06T00:00:00+00:00"
    assert desk.task(rma, "confirm_refund").due_at == datetime(2026, 11, 6, tzinfo=UTC)

    run_at(desk, datetime(2026, 11, 5, 23, 59, tzinfo=UTC))
    assert fired(desk, rma) == []
    assert desk.task(rma, "confirm_refund").escalated_to is None

    run_at(desk, datetime(2026, 11, 6, 0, 1, tzinfo=UTC))
    assert fired(desk, rma) == ["confirm_refund_due"]
    task = desk.task(rma, "confirm_refund")
    assert (task.role, task.escalated_to) == ("finance", "finance_supervisor")
    assert [t.bpmn_id for t in desk.tasks(rma, role="finance_supervisor")] == ["confirm_refund"]
    [escalated] = [e for e in desk.history(rma) if e.kind == "escalated"]
    assert escalated.data["role"] == "finance_supervisor"

    confirm(desk, rma, "1200.00")  # finance may still pay: the task stayed open
    assert desk.status(rma) == "completed"
    assert ledger(desk, rma) == [("refund", 120000, "CNY", "original_payment", "Li Na")]


def test_eu_escalates_two_days_before_fourteen_days_from_the_notice(desk: Desk) -> None:
    """Notice on 28 October: pay by 11 November, whenever the work arrived."""
    desk.import_orders([PAINTING])
    data = facts(received_at="2026-11-01T10:00:00+00:00", refund_clock="notice")
    data["request"] = {
        "order_number": PAINTING["order_number"],
        "artwork_ids": ["OG-2026-0002-A"],
        "type": "return",
        "reason": "no_reason",
        "description": "I withdraw from the purchase.",
        "evidence": [],
        "reported_at": "2026-10-28T16:20:00+00:00",
    }
    rma = desk.apply("OG-2026-0002", ["OG-2026-0002-A"], process="refund", extra=data)
    refund = desk.data(rma)["refund"]
    assert refund["deadline"] == "2026-11-11"
    assert refund["escalate_at"] == "2026-11-09T00:00:00+00:00"

    run_at(desk, datetime(2026, 11, 8, 23, 59, tzinfo=UTC))
    assert fired(desk, rma) == []

    run_at(desk, datetime(2026, 11, 9, 0, 1, tzinfo=UTC))
    assert fired(desk, rma) == ["confirm_refund_due"]
    assert desk.task(rma, "confirm_refund").escalated_to == "finance_supervisor"
    assert desk.status(rma) == "running"


def test_a_refund_paid_in_time_never_escalates(desk: Desk) -> None:
    rma = start(desk, PAINTING)
    confirm(desk, rma, "4500.00")

    desk.advance(days=30)

    assert fired(desk, rma) == []
    assert [e.kind for e in desk.history(rma)].count("escalated") == 0


def test_asked_again_after_the_deadline_escalates_at_once(desk: Desk) -> None:
    """A refused channel after the escalation time: the new confirmation is overdue."""
    rma = start(desk, CANVAS)
    escalate_at = datetime.fromisoformat(desk.data(rma)["refund"]["escalate_at"])
    run_at(desk, escalate_at.replace(minute=1))
    assert desk.task(rma, "confirm_refund").escalated_to == "finance_supervisor"

    confirm(desk, rma, "25000.00", "store_credit")

    task = desk.task(rma, "confirm_refund")
    assert task.escalated_to == "finance_supervisor"
    assert task.due_at == escalate_at


# -- once only -------------------------------------------------------------------------------


def test_completing_the_confirmation_twice_pays_once(desk: Desk) -> None:
    rma = start(desk, PAINTING)
    task_id = desk.task(rma, "confirm_refund").id
    data = {"amount": "4500.00", "channel": "original_payment", "note": ""}
    desk.engine().complete(task_id, data, actor=FINANCE)

    with pytest.raises(TaskNotFoundError):
        desk.engine().complete(task_id, data, actor=FINANCE)

    assert ledger(desk, rma) == [("refund", 450000, "EUR", "original_payment", "Jonas Weber")]
    assert desk.notices(rma) == ["refunded"]


def test_a_payment_retried_after_a_failure_pays_once(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger paid, then the step failed: running it again must not pay again."""
    real = handlers.HANDLERS["payments.refund"]
    attempts: list[int] = []

    def reply_lost(params: Any, ctx: Any) -> Any:
        attempts.append(ctx.attempt)
        result = real(params, ctx)
        if ctx.attempt == 1:
            raise ConnectionError("the payment went through but its reply was lost")
        return result

    monkeypatch.setitem(handlers.HANDLERS, "payments.refund", reply_lost)
    rma = start(desk, PAINTING)
    confirm(desk, rma, "4500.00")

    [failed] = [t for t in desk.show(rma).open_tasks if t.bpmn_id == "pay_refund"]
    assert failed.state == "FAILED"
    assert len(desk.ledger(rma)) == 1
    assert desk.notices(rma) == []

    desk.engine().retry(rma, actor=FINANCE)

    assert attempts == [1, 2]
    assert desk.status(rma) == "completed"
    assert ledger(desk, rma) == [("refund", 450000, "EUR", "original_payment", "Jonas Weber")]
    assert desk.data(rma)["refunded"]["reference"] == desk.ledger(rma)[0]["reference"]
    assert desk.notices(rma) == ["refunded"]


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_scenario_two_on_postgres(pg_desk: Desk) -> None:
    rma = start(pg_desk, PAINTING, inspection=inspection("accepted_with_deduction", "300.00"))
    assert pg_desk.data(rma)["refund"]["amount"]["amount"] == "4200.00"
    run_at(pg_desk, datetime(2026, 11, 14, 0, 1, tzinfo=UTC))
    assert pg_desk.task(rma, "confirm_refund").escalated_to == "finance_supervisor"

    confirm(pg_desk, rma, "4200.00")

    assert pg_desk.status(rma) == "completed"
    assert ledger(pg_desk, rma) == [("refund", 420000, "EUR", "original_payment", "Jonas Weber")]
    assert pg_desk.notices(rma) == ["refunded"]
