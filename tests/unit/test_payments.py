"""handlers/payments.py: what finance's confirmation and the customer's payment must be.

No database: every refusal is decided before the ledger is touched, so a context
without services shows which confirmations get that far (they stop at `services`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import BpmnError, TaskContext
from handlers import payments
from handlers.common import HandlerInputError

NO_SERVICES = "needs the return procedure's services"


def context() -> TaskContext:
    return TaskContext(
        instance_id=1,
        instance_uid="uid-1",
        business_key="RMA-2026-00001",
        process_id="refund",
        process_version=1,
        task_id="task-1",
        bpmn_id="pay_refund",
        operator="payments.refund",
        idempotency_key="uid-1:task-1",
        attempt=1,
        now=datetime(2026, 11, 2, 9, tzinfo=UTC),
        actor="fin-fay",
        logger=logging.getLogger("test"),
    )


def refund_params(amount: Any, channel: str = "original_payment", **computed: Any) -> dict:
    return {
        "rma": "RMA-2026-00001",
        "refund": {
            "amount": {"amount": "4500.00", "currency": "EUR"},
            "channel": "original_payment",
            "original_payer_only": False,
            **computed,
        },
        "confirmation": {"amount": amount, "channel": channel},
        "order": {"payer": "Jonas Weber"},
        "inspection": {"outcome": "accepted"},
        "dispute_outcome": None,
    }


def refused(params: dict) -> str:
    """The reason the confirmation was refused (fails when it was not)."""
    with pytest.raises(BpmnError) as caught:
        payments.refund(params, context())
    assert caught.value.code == "confirmation_refused"
    assert caught.value.payload == {"reason": str(caught.value)}
    reason = caught.value.payload["reason"]
    assert reason[0].isupper()
    assert reason.endswith(".")
    return reason


def reaches_the_ledger(params: dict) -> bool:
    """True when the handler accepted the confirmation and went on to pay."""
    with pytest.raises((HandlerInputError, BpmnError)) as caught:
        payments.refund(params, context())
    if isinstance(caught.value, BpmnError):
        assert caught.value.code == "confirmation_refused"
        return False
    assert NO_SERVICES in str(caught.value)
    return True


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (eur("9999.00"), "EUR 9,999.00 is more than the refund worked out (EUR 4,500.00)"),
        (eur("4500.01"), "EUR 4,500.01 is more than the refund worked out"),
        (eur("4.500,00"), "'4.500,00' is not an amount"),
        (eur("4,500.00"), "'4,500.00' is not an amount"),
        (eur("4.500"), "'4.500' has more decimals than EUR has (2)"),
        (eur("4500.001"), "more decimals"),
        (eur(""), "'' is not an amount"),
        (eur("0.00"), "must be more than zero, not EUR 0.00"),
        (eur("-1"), "must be more than zero"),
        (eur("Infinity"), "not a finite decimal amount"),
        ({"amount": "4500.00", "currency": "USD"}, "paid in EUR, not in USD"),
        ({"amount": "4500.00"}, "paid in EUR, not in no currency"),
        ("4500.00", "The amount '4500.00' has no currency."),
    ],
)
def test_a_confirmation_that_cannot_be_paid_is_refused(amount: Any, words: str) -> None:
    assert words in refused(refund_params(amount))


def test_a_channel_the_sale_may_not_go_to_is_refused() -> None:
    reason = refused(refund_params(eur("4500.00"), "bank_transfer", original_payer_only=True))
    assert reason == (
        "Sales of EUR 10,000 or more are refunded only to the original payment method; "
        "bank transfer is not allowed for this sale."
    )


def test_an_unknown_channel_is_refused() -> None:
    assert "There is no refund channel 'cash'" in refused(refund_params(eur("4500.00"), "cash"))


def test_a_mismatch_blocks_before_any_confirmation_is_looked_at() -> None:
    params = {**refund_params(eur("9999.00")), "inspection": {"outcome": "mismatch"}}
    with pytest.raises(BpmnError) as caught:
        payments.refund(params, context())
    assert caught.value.code == "refund_blocked"


@pytest.mark.parametrize("confirmation", [{}, None])
def test_no_confirmation_pays_the_refund_worked_out(confirmation: Any) -> None:
    """The exchange refunds a difference without a confirmation form."""
    assert reaches_the_ledger({**refund_params(None), "confirmation": confirmation})


@given(cents=st.integers(min_value=-(10**9), max_value=10**9))
def test_finance_may_lower_the_amount_never_raise_it(cents: int) -> None:
    amount = Decimal(cents).scaleb(-2)
    paid = reaches_the_ledger(refund_params(eur(f"{amount:.2f}")))
    assert paid == (Decimal(0) < amount <= Decimal("4500.00"))


# -- the customer's payment of an exchange's difference --------------------------------------


def charge_params(paid: Any) -> dict:
    return {
        "rma": "RMA-2026-00001",
        "exchange": {"amount": {"amount": "700.00", "currency": "CNY"}},
        "payment": {"reference": "ALI-1", "amount": paid},
        "order": {"payer": "Zhou Min"},
    }


@pytest.mark.parametrize(
    ("paid", "words"),
    [
        (
            {"amount": "600.00", "currency": "CNY"},
            "The customer paid CNY 600.00; the difference asked for is CNY 700.00.",
        ),
        (
            {"amount": "700.00", "currency": "EUR"},
            "The customer paid EUR 700.00; the difference asked for is CNY 700.00.",
        ),
        ({"amount": "7OO", "currency": "CNY"}, "The amount paid cannot be read: '7OO'"),
        ("700", "The amount paid cannot be read"),
    ],
)
def test_a_payment_of_another_amount_is_a_mismatch(paid: Any, words: str) -> None:
    with pytest.raises(BpmnError) as caught:
        payments.record_charge(charge_params(paid), context())
    assert caught.value.code == "payment_mismatch"
    assert words in caught.value.payload["reason"]
    assert set(caught.value.payload) == {"reason"}


def test_the_difference_paid_goes_on_to_the_ledger() -> None:
    with pytest.raises(HandlerInputError, match=NO_SERVICES):
        payments.record_charge(charge_params({"amount": "700.00", "currency": "CNY"}), context())


def compute_params(days: Any, clock: str = "receipt") -> dict[str, Any]:
    return {
        "artworks": [{"price": {"amount": "1200.00", "currency": "CNY"}}],
        "order": {"currency": "CNY", "shipping_charge": {"amount": "0", "currency": "CNY"}},
        "request": {"reported_at": "2026-11-01T09:00:00+00:00"},
        "restocking_rate": "0",
        "seller_pays_return": False,
        "jurisdiction": "CN",
        "reason": "no_reason",
        "inspection": {"outcome": "accepted"},
        "refund_deadline_days": days,
        "refund_clock": clock,
        "received_at": "2026-11-05T10:00:00+00:00",
    }


@pytest.mark.parametrize(("days", "deadline"), [(7, "2026-11-12"), (0, "2026-11-05")])
def test_the_refund_deadline_counts_the_policy_days(days: int, deadline: str) -> None:
    refund = payments.compute_refund(compute_params(days), context())["refund"]
    assert refund["deadline"].startswith(deadline)


@pytest.mark.parametrize("days", [None, -1, "7", True, 7.5])
def test_a_refund_deadline_that_is_not_whole_days_is_refused(days: Any) -> None:
    with pytest.raises(HandlerInputError, match="refund_deadline_days"):
        payments.compute_refund(compute_params(days), context())
