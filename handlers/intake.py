"""Intake: checks made when a request is registered, and the facts the rules read."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.registry import TaskContext, sample
from handlers.common import HandlerInputError, day, need, services
from handlers.money import Money


def _completeness_as_given(params: Mapping[str, Any]) -> dict[str, Any]:
    """The check over the request as given (its own evidence list): what a simulated
    return is told."""
    request = params.get("request") or {}
    required = params.get("required") or []
    missing = [name for name in required if _blank(request.get(name))]
    return {"complete": not missing, "missing": missing}


@sample(_completeness_as_given)
def check_completeness(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Check that every required field of a request is present and not blank.

    Parameters: `request` (the request's fields), `required` (the names of the fields
    that must be filled) and, optionally, `rma`: then `evidence` is what is kept for the
    return now (files added with `artreturns evidence add` after the request count).
    Returns `complete` (true or false) and `missing` (the names of the required fields
    that are absent or blank, in the order given).
    """
    request = params.get("request") or {}
    if not isinstance(request, Mapping):
        raise TypeError("parameter 'request' must be a mapping of field names to values")
    request = {**request, "evidence": _evidence(params, request, ctx)}
    required = params.get("required") or []
    if isinstance(required, str) or not all(isinstance(name, str) for name in required):
        raise TypeError("parameter 'required' must be a list of field names")
    missing = [name for name in required if _blank(request.get(name))]
    ctx.logger.info("completeness of %s: missing %s", ctx.business_key, missing or "nothing")
    return {"complete": not missing, "missing": missing}


def _evidence(params: Mapping[str, Any], request: Mapping[str, Any], ctx: TaskContext) -> Any:
    """The evidence of the return: kept in the store when `rma` is given, else as the
    request listed it when it was registered."""
    rma = params.get("rma")
    if not rma:
        return request.get("evidence") or []
    return [
        {"name": item.name, "sha256": item.sha256, "kind": item.kind}
        for item in services(ctx).evidence.items(str(rma))
    ]


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def facts(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Work out the facts the return policy and the approval tiers are decided on.

    Parameters: `request` ({order_number, artwork_ids, type, reason, evidence,
    reported_at}) and, optionally, `rma` (then the evidence kept for the return now is
    counted). The order and its artworks are read from the orders on record.
    Returns, as process data of their own: jurisdiction, channel, reason, request_type,
    custom_made, partial_set, auction_lot, authenticity_disclaimer, guarantee_years,
    days_since_delivery (day 1 is the day after delivery), days_since_sale,
    damage_photos, currency, amount (the price of the works returned), antique,
    authenticity.
    """
    request = need(params, "request", Mapping)
    number = str(request.get("order_number") or "")
    order = services(ctx).orders.get(number)
    if order is None:
        raise HandlerInputError(f"order {number!r} is not on record")
    wanted = list(request.get("artwork_ids") or [])
    works = [order.artwork(str(artwork_id)) for artwork_id in wanted]
    if not works or any(work is None for work in works):
        raise HandlerInputError(f"the request names artworks {wanted} that order {number} lacks")
    chosen = [work for work in works if work is not None]
    reported = day(request.get("reported_at") or ctx.now)
    delivered = order.delivered_at or order.sold_at
    sets = {w.flags.get("set_id") for w in chosen if w.flags.get("indivisible_set")}
    partial = any(
        {a.artwork_id for a in order.artworks if a.flags.get("set_id") == set_id}
        - {w.artwork_id for w in chosen}
        for set_id in sets
    )
    total = Money.zero(order.currency)
    for work in chosen:
        total = total + work.price
    evidence = _evidence(params, request, ctx)
    reason = str(request.get("reason") or "")
    return {
        "jurisdiction": order.jurisdiction,
        "channel": order.channel,
        "reason": reason,
        "request_type": str(request.get("type") or "return"),
        "custom_made": any(bool(w.flags.get("custom_made")) for w in chosen),
        "partial_set": partial,
        "auction_lot": any(bool(w.flags.get("auction_lot")) for w in chosen),
        "authenticity_disclaimer": any(
            bool(w.flags.get("authenticity_disclaimer")) for w in chosen
        ),
        "guarantee_years": max(int(w.flags.get("guarantee_years") or 0) for w in chosen),
        "days_since_delivery": (reported - delivered).days,
        "days_since_sale": (reported - order.sold_at).days,
        "damage_photos": sum(
            1 for e in evidence if isinstance(e, Mapping) and e.get("kind") == "photo"
        ),
        "currency": order.currency,
        "amount": Decimal(total.amount),
        "antique": any(w.category == "antique" for w in chosen),
        "authenticity": reason == "authenticity",
    }


HANDLERS = {
    "intake.check_completeness": check_completeness,
    "intake.facts": facts,
}
