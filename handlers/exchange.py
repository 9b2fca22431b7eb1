"""Exchanges: the difference between the work returned and its replacement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import TaskContext
from handlers.common import HandlerInputError, need
from handlers.money import Money, MoneyError


def price_difference(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Work out who pays what when a work is exchanged.

    Parameters: `artworks` (returned), `replacement` ({artwork_id, title, artist,
    price}), `inspection` (optional: its `deduction` lowers what the returned work is
    credited at). Returns `exchange` {difference, direction (customer_pays, refund or
    even), amount (what changes hands, never negative), credit (the returned work's
    price less any deduction)}.
    """
    artworks = need(params, "artworks", list)
    replacement = need(params, "replacement", Mapping)
    try:
        new_price = Money.from_data(replacement.get("price"))
    except MoneyError as exc:
        raise HandlerInputError(f"the replacement's price cannot be read: {exc}") from exc
    if not new_price.is_positive:
        raise HandlerInputError(f"the replacement's price must be more than zero, not {new_price}")
    returned = Money.zero(new_price.currency)
    for work in artworks:
        price = Money.from_data(work.get("price"))
        if price.currency != new_price.currency:
            raise HandlerInputError(
                f"the replacement is priced in {new_price.currency}, the work returned in "
                f"{price.currency}"
            )
        returned = returned + price
    inspection = params.get("inspection")
    if isinstance(inspection, Mapping) and inspection.get("deduction"):
        deduction = Money.from_data(inspection["deduction"])
        if deduction.currency != returned.currency:
            raise HandlerInputError(
                f"the deduction is in {deduction.currency}, the work returned in "
                f"{returned.currency}"
            )
        returned = returned - deduction
    difference = new_price - returned
    direction = (
        "customer_pays"
        if difference.is_positive
        else ("refund" if difference.amount < 0 else "even")
    )
    amount = difference if difference.amount >= 0 else -difference
    return {
        "exchange": {
            "difference": difference.as_data(),
            "direction": direction,
            "amount": amount.as_data(),
            "credit": returned.as_data(),
        }
    }


HANDLERS = {"exchange.price_difference": price_difference}
