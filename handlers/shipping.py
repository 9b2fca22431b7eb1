"""Return shipping and replacement shipping: instructions, labels, tracking."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, NoReturn

from engine.registry import BpmnError, TaskContext, sample
from handlers.common import HOUSE, HandlerInputError, need, rma_of, services
from handlers.money import Money
from handlers.store.carrier import TrackingNumberError, parse_tracking_number

#: Works at or above these values get fine-art packing instructions.
FINE_ART_PACKING = {"CNY": Decimal(50000), "EUR": Decimal(6500), "USD": Decimal(7000)}
#: Days the customer has to ship the work once instructed.
SHIP_WITHIN_DAYS = 14
#: The BPMN error thrown when a shipment cannot be registered; its payload says why.
NUMBER_REFUSED = "tracking_number_refused"
#: The BPMN error thrown for a parcel update that cannot be recorded; its payload says why.
UPDATE_REFUSED = "parcel_update_refused"
#: What a parcel update may report (a label is issued before, never after, the shipment).
PARCEL_STATUSES = ("shipped", "in_transit", "delivered", "lost")


def _instructions_as_planned(params: Mapping[str, Any]) -> dict[str, Any]:
    """The instructions without booking a label or reading the clock (a simulated
    return): a prepaid label's carrier and number are placeholders."""
    seller_pays = bool(params.get("seller_pays"))
    currency = str(params.get("currency") or "CNY")
    threshold = FINE_ART_PACKING.get(currency, FINE_ART_PACKING["CNY"])
    value = Decimal(str(params.get("amount") or 0))
    return {
        "shipping": {
            "address": HOUSE["address"],
            "ship_by": None,
            "seller_pays": seller_pays,
            "fine_art_packing": value >= threshold,
            "carrier": "prepaid label" if seller_pays else None,
            "tracking_number": "SIMULATED1" if seller_pays else None,
        }
    }


@sample(_instructions_as_planned)
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
    """Record that the customer shipped the work, under a tracking number the carrier accepts.

    Parameters: `rma`, `shipment` (the message, or logistics' answer: {carrier,
    tracking_number}), `shipping` (the instructions, whose prepaid label counts when the
    shipment names no other number). The number is written as the carrier writes it
    (spaces removed, upper case). Throws `tracking_number_refused` with {"reason": "..."}
    when there is no tracking number, when it is not one (6 to 40 letters and digits, at
    least one a digit) or when another shipment already uses it; nothing is recorded
    then. Returns `shipment` {carrier, tracking_number, status}.
    """
    shipment = _mapping(params, "shipment")
    planned = _mapping(params, "shipping")
    label = planned.get("tracking_number") or None
    given = shipment.get("tracking_number")
    if given is None or (isinstance(given, str) and not given.strip()):
        if label is None:
            _refuse_number("The shipment has no tracking number.")
        given = label
    try:
        number = parse_tracking_number(given)
        if label is not None and number == parse_tracking_number(label):
            recorded = services(ctx).carrier.report(number, "shipped", "handed to the carrier")
        else:
            recorded = services(ctx).carrier.register(
                key=ctx.idempotency_key,
                rma=rma_of(params, ctx),
                direction="return",
                carrier=str(shipment.get("carrier") or ""),
                tracking_number=number,
            )
    except TrackingNumberError as exc:
        _refuse_number(str(exc))
    return {
        "shipment": {
            "carrier": recorded.carrier,
            "tracking_number": recorded.tracking_number,
            "status": recorded.status,
        }
    }


def track(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record a tracking event of a shipment.

    Parameters: `shipment` ({tracking_number}), `update` (the message: {status, note};
    status is one of shipped, in_transit, delivered, lost, in_transit when left out).
    Throws `parcel_update_refused` with {"reason": "..."} for any other status; nothing
    is recorded then. Returns `shipment` with the new status.
    """
    shipment = need(params, "shipment", Mapping)
    update = need(params, "update", Mapping)
    given = update.get("status")
    status = "_".join(str(given or "in_transit").lower().replace("-", " ").split())
    if status not in PARCEL_STATUSES:
        reason = (
            f"{given!r} is not a parcel status; a parcel update says "
            f"{', '.join(PARCEL_STATUSES[:-1])} or {PARCEL_STATUSES[-1]}."
        )
        raise BpmnError(UPDATE_REFUSED, reason, {"reason": reason})
    number = shipment.get("tracking_number")
    if not isinstance(number, str) or not number:
        raise HandlerInputError("parameter 'shipment' has no tracking_number")
    recorded = services(ctx).carrier.report(number, status, str(update.get("note") or ""))
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


def _mapping(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """An optional object parameter: absent or null is empty."""
    value = params.get(name) or {}
    if not isinstance(value, Mapping):
        raise HandlerInputError(f"parameter '{name}' must be an object, not {type(value).__name__}")
    return value


def _refuse_number(reason: str) -> NoReturn:
    raise BpmnError(NUMBER_REFUSED, reason, {"reason": reason})


HANDLERS = {
    "shipping.instructions": instructions,
    "shipping.register": register,
    "shipping.track": track,
    "shipping.receive": receive,
    "shipping.ship_replacement": ship_replacement,
}
