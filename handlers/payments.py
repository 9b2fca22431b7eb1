"""Refunds and payments: the amount worked out, confirmed, paid once through the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from engine.registry import BpmnError, TaskContext
from handlers.common import HandlerInputError, day, need, rma_of, services
from handlers.money import Money, MoneyError
from handlers.store.ledger import CHANNELS

#: Sales of at least this much are refunded only to the original payer (EU AMLD5).
ORIGINAL_PAYER_ONLY = {"EUR": Decimal(10000)}
#: Days before the refund deadline at which an unpaid refund escalates.
ESCALATE_DAYS_BEFORE = 2
#: Days the money takes to arrive, as told to the customer.
ARRIVES_WITHIN_DAYS = {"original_payment": 5, "bank_transfer": 3, "store_credit": 0}
#: The BPMN error thrown when finance's confirmation cannot be paid; its payload says why.
REFUSED = "confirmation_refused"
#: The BPMN error thrown when the customer paid another amount than the difference.
MISMATCH = "payment_mismatch"


def compute_refund(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Work out the refund: price, restocking fee, shipping refunded, deductions, deadline.

    Parameters: `artworks`, `order`, `request`, `restocking_rate` (text decimal),
    `seller_pays_return`, `jurisdiction`, `reason`, `inspection` (its `deduction`),
    `refund_deadline_days`, `refund_clock` ("receipt" or "notice"), `received_at`.
    Returns `refund` {amount, breakdown, deadline, escalate_at, channel,
    original_payer_only}.
    """
    artworks = need(params, "artworks", list)
    order = need(params, "order", Mapping)
    currency = str(order.get("currency"))
    price = Money.zero(currency)
    for work in artworks:
        price = price + Money.from_data(work.get("price"))
    rate = Decimal(str(params.get("restocking_rate") or "0"))
    if not Decimal(0) <= rate <= Decimal(1):
        raise HandlerInputError(f"restocking rate {rate} is not between 0 and 1")
    restocking = price.times(rate)
    seller_at_fault = bool(params.get("seller_pays_return"))
    eu_withdrawal = params.get("jurisdiction") == "EU" and params.get("reason") == "no_reason"
    shipping = (
        Money.from_data(order.get("shipping_charge"))
        if seller_at_fault or eu_withdrawal
        else Money.zero(currency)
    )
    inspection = params.get("inspection") or {}
    deduction = (
        Money.from_data(inspection["deduction"])
        if isinstance(inspection, Mapping) and inspection.get("deduction")
        else Money.zero(currency)
    )
    amount = price - restocking + shipping - deduction
    if not amount.is_positive:
        raise HandlerInputError(f"the refund would be {amount}: check the deductions")
    clock = params.get("refund_clock") or "receipt"
    started = (
        day((params.get("request") or {}).get("reported_at"))
        if clock == "notice"
        else day(params.get("received_at") or ctx.now)
    )
    days = params.get("refund_deadline_days")
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise HandlerInputError(
            f"refund_deadline_days must be a whole number of days (the return policy sets "
            f"it), not {days!r}"
        )
    deadline = started + timedelta(days=days)
    escalate_at = datetime.combine(deadline - timedelta(days=ESCALATE_DAYS_BEFORE), time(0, 0), UTC)
    threshold = ORIGINAL_PAYER_ONLY.get(currency)
    return {
        "refund": {
            "amount": amount.as_data(),
            "breakdown": {
                "price": price.as_data(),
                "restocking_fee": restocking.as_data(),
                "shipping_refunded": shipping.as_data(),
                "deduction": deduction.as_data(),
            },
            "deadline": deadline.isoformat(),
            "escalate_at": escalate_at.isoformat(),
            "channel": "original_payment",
            "original_payer_only": threshold is not None and price.amount >= threshold,
        }
    }


def refund(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Pay the refund once, through the ledger, under this task's idempotency key.

    Parameters: `rma`, `refund` (the computed refund), `confirmation` (finance's form:
    amount, channel; empty pays the computed refund), `order` (its payer),
    `inspection`, `dispute_outcome`. Throws `refund_blocked` while an inspection says
    mismatch and no dispute decided a refund. Throws `confirmation_refused` with
    {"reason": "..."} for a confirmed amount that is not an amount, not more than
    zero, in another currency or more than the computed refund (finance may lower it,
    never raise it), and for a channel the sale may not be refunded to. Returns
    `refunded` {reference, amount, channel, paid_at, expected_by}.
    """
    computed = need(params, "refund", Mapping)
    confirmation = params.get("confirmation") or {}
    if not isinstance(confirmation, Mapping):
        raise HandlerInputError(
            f"parameter 'confirmation' must be Mapping, not {type(confirmation).__name__}"
        )
    inspection = params.get("inspection") or {}
    if inspection.get("outcome") == "mismatch" and params.get("dispute_outcome") != "refund":
        raise BpmnError(
            "refund_blocked", "the inspection found a mismatch and no dispute decided a refund"
        )
    try:
        due = Money.from_data(computed.get("amount"))
    except MoneyError as exc:
        raise HandlerInputError(f"the computed refund has no valid amount: {exc}") from exc
    amount = _confirmed_amount(confirmation.get("amount"), due)
    channel = str(confirmation.get("channel") or computed.get("channel") or "original_payment")
    if channel not in CHANNELS:
        _refuse(f"There is no refund channel {channel!r}; choose {' or '.join(CHANNELS)}.")
    if computed.get("original_payer_only") and channel != "original_payment":
        _refuse(
            "Sales of EUR 10,000 or more are refunded only to the original payment method; "
            f"{channel.replace('_', ' ')} is not allowed for this sale."
        )
    order = need(params, "order", Mapping)
    entry = services(ctx).ledger.pay(
        key=ctx.idempotency_key,
        rma=rma_of(params, ctx),
        kind="store_credit" if channel == "store_credit" else "refund",
        amount=amount,
        channel=channel,
        payer=str(order.get("payer") or ""),
    )
    expected = entry.created_at + timedelta(days=ARRIVES_WITHIN_DAYS.get(channel, 5))
    return {
        "refunded": {
            "reference": entry.reference,
            "amount": entry.amount.as_data(),
            "channel": entry.channel,
            "paid_at": entry.created_at.isoformat(),
            "expected_by": expected.date().isoformat(),
        }
    }


def _refuse(reason: str) -> NoReturn:
    raise BpmnError(REFUSED, reason, {"reason": reason})


def _confirmed_amount(confirmed: Any, due: Money) -> Money:
    """The amount finance confirmed, checked against the computed refund `due`."""
    if confirmed is None or confirmed == {}:
        return due
    if not isinstance(confirmed, Mapping):
        _refuse(f"The amount {confirmed!r} has no currency.")
    currency = str(confirmed.get("currency") or "").strip().upper()
    if currency != due.currency:
        _refuse(f"The refund is paid in {due.currency}, not in {currency or 'no currency'}.")
    try:
        amount = Money.from_data(confirmed)
    except MoneyError as exc:
        _refuse(
            f"The amount cannot be read: {exc}. Write it with a dot before the cents and no "
            f"thousands separators, for example {due.amount}."
        )
    if not amount.is_positive:
        _refuse(f"The amount to refund must be more than zero, not {amount}.")
    if amount.amount > due.amount:
        _refuse(
            f"{amount} is more than the refund worked out ({due}): the amount may be "
            "lowered, never raised."
        )
    return amount


def record_charge(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record the customer's payment of an exchange's price difference, once.

    Parameters: `rma`, `exchange` ({amount}), `payment` (the message: {reference,
    amount}), `order`. Throws `payment_mismatch` with {"reason": "..."} when the
    amount paid cannot be read or is not the difference asked for; nothing is
    recorded then. Returns `charged` {reference, amount, payment_reference}.
    """
    exchange = need(params, "exchange", Mapping)
    expected = Money.from_data(exchange.get("amount"))
    payment = params.get("payment") or {}
    if not isinstance(payment, Mapping):
        raise HandlerInputError(
            f"parameter 'payment' must be Mapping, not {type(payment).__name__}"
        )
    if not payment.get("amount"):
        reason = f"The payment names no amount; the difference asked for is {expected}."
        raise BpmnError(MISMATCH, reason, {"reason": reason})
    if payment.get("amount"):
        try:
            paid = Money.from_data(payment["amount"])
        except MoneyError as exc:
            reason = f"The amount paid cannot be read: {exc}. The difference is {expected}."
            raise BpmnError(MISMATCH, reason, {"reason": reason}) from exc
        if paid != expected:
            reason = f"The customer paid {paid}; the difference asked for is {expected}."
            raise BpmnError(MISMATCH, reason, {"reason": reason})
    order = need(params, "order", Mapping)
    entry = services(ctx).ledger.pay(
        key=ctx.idempotency_key,
        rma=rma_of(params, ctx),
        kind="charge",
        amount=expected,
        channel="original_payment",
        payer=str(order.get("payer") or ""),
    )
    return {
        "charged": {
            "reference": entry.reference,
            "amount": entry.amount.as_data(),
            "payment_reference": str(payment.get("reference") or ""),
        }
    }


HANDLERS = {
    "payments.compute_refund": compute_refund,
    "payments.refund": refund,
    "payments.record_charge": record_charge,
}
