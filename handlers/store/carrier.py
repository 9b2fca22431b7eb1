"""Shipments: labels, tracking numbers and tracking events.

`LocalCarrier` is the default: it issues tracking numbers derived from the shipment's
idempotency key (so a repeated call gets the same number) and takes tracking events as
they are reported. A real carrier adapter implements the same three methods.
"""

from __future__ import annotations

import hashlib
import re
import reprlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, update

from handlers.store.tables import shipments

DIRECTIONS = ("return", "replacement")
STATUSES = ("label_issued", "shipped", "in_transit", "delivered", "lost")
#: Letters and digits, in groups joined by single hyphens: the tracking numbers carriers issue.
TRACKING_NUMBER = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
TRACKING_NUMBER_LENGTH = (6, 40)


class ShippingError(ValueError):
    pass


class TrackingNumberError(ShippingError):
    """A tracking number the carrier does not accept for this shipment. The message is a
    sentence for the person who entered it."""


def parse_tracking_number(value: object) -> str:
    """A tracking number as the carrier writes it: spaces removed, letters upper case.

    Refuses (TrackingNumberError) anything that is not 6 to 40 letters and digits with
    at least one digit, such as "123", "n/a", "unknown" or a number written as 1.5e9.
    """
    text = value if isinstance(value, str | int) and not isinstance(value, bool) else None
    number = "".join(str(text).split()).upper() if text is not None else ""
    shortest, longest = TRACKING_NUMBER_LENGTH
    if (
        not TRACKING_NUMBER.fullmatch(number)
        or not shortest <= len(number) <= longest
        or not any(c.isdigit() for c in number)
    ):
        raise TrackingNumberError(
            f"{_SHORT.repr(value)} is not a tracking number: a tracking number has "
            f"{shortest} to {longest} letters and digits, at least one of them a digit."
        )
    return number


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 50


@dataclass(frozen=True)
class Shipment:
    rma: str
    direction: str
    carrier: str
    tracking_number: str
    paid_by: str
    status: str
    events: list[dict[str, Any]]


class Carrier(Protocol):
    name: str

    def book(self, *, key: str, rma: str, direction: str, paid_by: str) -> Shipment: ...

    def register(
        self, *, key: str, rma: str, direction: str, carrier: str, tracking_number: str
    ) -> Shipment:
        """Raises TrackingNumberError for a number the carrier does not accept."""
        ...

    def report(self, tracking_number: str, status: str, note: str) -> Shipment: ...


class LocalCarrier:
    """The house's own shipping desk: labels and tracking kept in the database."""

    name = "ArtReturns Fine Art Logistics"

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def book(self, *, key: str, rma: str, direction: str, paid_by: str) -> Shipment:
        """Issue a prepaid label (or the replacement's shipment) with a tracking number."""
        existing = self._by_key(key)
        if existing is not None:
            return existing
        number = "AR" + str(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))[:10].zfill(10)
        return self._insert(key, rma, direction, self.name, number, paid_by, "label_issued")

    def register(
        self, *, key: str, rma: str, direction: str, carrier: str, tracking_number: str
    ) -> Shipment:
        """Record a shipment the customer arranged, under the carrier's tracking number.

        Refuses (TrackingNumberError) a number that is not a tracking number, or one
        already used by another shipment; the same return's shipment in the same direction
        under the same number is that shipment.
        """
        existing = self._by_key(key)
        if existing is not None:
            return existing
        number = parse_tracking_number(tracking_number)
        taken = self._by_number(number)
        if taken is not None and (taken.rma, taken.direction) == (rma, direction):
            if taken.status == "label_issued":  # the house's own label, written another way
                return self.report(number, "shipped", "handed to the carrier")
            return taken
        if taken is not None:
            whose = f"this return's {taken.direction} shipment" if taken.rma == rma else taken.rma
            raise TrackingNumberError(f"Tracking number {number} is already used by {whose}.")
        return self._insert(
            key, rma, direction, carrier.strip() or "unknown", number, "customer", "shipped"
        )

    def report(self, tracking_number: str, status: str, note: str) -> Shipment:
        if status not in STATUSES:
            raise ShippingError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        shipment = self._by_number(tracking_number)
        if shipment is None:
            raise ShippingError(f"no shipment with tracking number {tracking_number}")
        events = [*shipment.events, {"at": self.now.isoformat(), "status": status, "note": note}]
        self.conn.execute(
            update(shipments)
            .where(shipments.c.tracking_number == tracking_number)
            .values(status=status, events=events, updated_at=self.now)
        )
        return Shipment(
            shipment.rma,
            shipment.direction,
            shipment.carrier,
            tracking_number,
            shipment.paid_by,
            status,
            events,
        )

    def of(self, rma: str) -> list[Shipment]:
        rows = self.conn.execute(
            select(shipments).where(shipments.c.rma == rma).order_by(shipments.c.id)
        ).mappings()
        return [_shipment(row) for row in rows]

    def _insert(
        self,
        key: str,
        rma: str,
        direction: str,
        carrier: str,
        number: str,
        paid_by: str,
        status: str,
    ) -> Shipment:
        if direction not in DIRECTIONS:
            raise ShippingError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        events = [{"at": self.now.isoformat(), "status": status, "note": ""}]
        self.conn.execute(
            shipments.insert().values(
                idempotency_key=key,
                rma=rma,
                direction=direction,
                carrier=carrier,
                tracking_number=number,
                paid_by=paid_by,
                status=status,
                events=events,
                created_at=self.now,
                updated_at=self.now,
            )
        )
        return Shipment(rma, direction, carrier, number, paid_by, status, events)

    def _by_key(self, key: str) -> Shipment | None:
        row = (
            self.conn.execute(select(shipments).where(shipments.c.idempotency_key == key))
            .mappings()
            .first()
        )
        return _shipment(row) if row is not None else None

    def _by_number(self, number: str) -> Shipment | None:
        row = (
            self.conn.execute(select(shipments).where(shipments.c.tracking_number == number))
            .mappings()
            .first()
        )
        return _shipment(row) if row is not None else None


def _shipment(row: Any) -> Shipment:
    return Shipment(
        row["rma"],
        row["direction"],
        row["carrier"],
        row["tracking_number"],
        row["paid_by"],
        row["status"],
        list(row["events"]),
    )
