"""Return shipping and replacement shipping: instructions, labels, tracking."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from engine.registry import BpmnError, TaskContext
from handlers.common import HOUSE, HandlerInputError, need, rma_of, services
from handlers.money import Money

#: Works at or above these values get fine-art packing instructions.
FINE_ART_PACKING = {"CNY": Decimal(50000), "EUR": Decimal(6500), "USD": Decimal(7000)}
#: Days the customer has to ship the work once instructed.
SHIP_WITHIN_DAYS = 14


def instructions(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Work out how the customer returns the work; book a prepaid label when the house pays.

    Parameters: `seller_pays` (bool), `amount` and `currency` (the works' value).
    Returns `shipping` {address, ship_by, seller_pays, fine_art_packing, carrier,
    tracking_number (only with a prepaid label)}.
    """
    seller_pays = bool(need(params, "seller_pays", bool))
    value = Money.of(need(params, "amount", (int, Decimal, str)), need(params, "currency", str))
    threshold = FINE_ART_PACKING.get(value.currency, FINE_ART_PACKING["CNY"])
    result: dict[str, Any] = {
        "address": HOUSE["address"],
        "ship_by": (ctx.now + timedelta(days=SHIP_WITHIN_DAYS)).date().isoformat(),
        "seller_pays": seller_pays,
        "fine_art_packing": value.amount >= threshold,
        "carrier": None,
        "tracking_number": None,
    }
    if seller_pays:
        label = services(ctx).carrier.book(
            key=ctx.idempotency_key,
            rma=rma_of(params, ctx),
            direction="return",
            paid_by="seller",
        )
        result["carrier"] = label.carrier
        result["tracking_number"] = label.tracking_number
    return {"shipping": result}


def register(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record that the customer shipped the work. A tracking number is required: without
    one this throws the BPMN error `no_tracking_number`.

    Parameters: `rma`, `shipment` (the message: {carrier, tracking_number}), `shipping`
    (the instructions, whose prepaid label counts). Returns `shipment` {carrier,
    tracking_number, status}.
    """
    shipment = params.get("shipment") or {}
    if not isinstance(shipment, Mapping):
        raise HandlerInputError("parameter 'shipment' must be an object")
    planned = params.get("shipping") or {}
    number = str(shipment.get("tracking_number") or planned.get("tracking_number") or "").strip()
    if not number:
        raise BpmnError("no_tracking_number", "the shipment has no tracking number")
    carrier = str(shipment.get("carrier") or planned.get("carrier") or "")
    store = services(ctx).carrier
    if planned.get("tracking_number") == number:
        recorded = store.report(number, "shipped", "handed to the carrier")
    else:
        recorded = store.register(
            key=ctx.idempotency_key,
            rma=rma_of(params, ctx),
            direction="return",
            carrier=carrier,
            tracking_number=number,
        )
    return {
        "shipment": {
            "carrier": recorded.carrier,
            "tracking_number": recorded.tracking_number,
            "status": recorded.status,
        }
    }


def track(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record a tracking event of a shipment.

    Parameters: `shipment` ({tracking_number}), `update` (the message: {status, note}).
    Returns `shipment` with the new status.
    """
    shipment = need(params, "shipment", Mapping)
    update = need(params, "update", Mapping)
    status = str(update.get("status") or "in_transit")
    recorded = services(ctx).carrier.report(
        str(shipment.get("tracking_number")), status, str(update.get("note") or "")
    )
    return {"shipment": {**dict(shipment), "status": recorded.status}}


def receive(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record that the returned work arrived at the house.

    Parameters: `shipment` ({tracking_number}). Returns `received_at` (now) and the
    shipment marked delivered.
    """
    shipment = need(params, "shipment", Mapping)
    recorded = services(ctx).carrier.report(
        str(shipment.get("tracking_number")), "delivered", "received by the house"
    )
    return {
        "received_at": ctx.now.isoformat(),
        "shipment": {**dict(shipment), "status": recorded.status},
    }


def ship_replacement(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Ship the replacement of an exchange with a tracking number.

    Parameters: `rma`, `replacement` ({artwork_id, title, artist, price}), `address`.
    Returns `replacement_shipment` {carrier, tracking_number, address}.
    """
    need(params, "replacement", Mapping)
    address = need(params, "address", str)
    label = services(ctx).carrier.book(
        key=ctx.idempotency_key,
        rma=rma_of(params, ctx),
        direction="replacement",
        paid_by="seller",
    )
    return {
        "replacement_shipment": {
            "carrier": label.carrier,
            "tracking_number": label.tracking_number,
            "address": address,
        }
    }


HANDLERS = {
    "shipping.instructions": instructions,
    "shipping.register": register,
    "shipping.track": track,
    "shipping.receive": receive,
    "shipping.ship_replacement": ship_replacement,
}
