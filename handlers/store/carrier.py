"""Shipments: labels, tracking numbers and tracking events.

`LocalCarrier` is the default: it issues tracking numbers derived from the shipment's
idempotency key (so a repeated call gets the same number) and takes tracking events as
they are reported. A real carrier adapter implements the same three methods.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, update

from handlers.store.tables import shipments

DIRECTIONS = ("return", "replacement")
STATUSES = ("label_issued", "shipped", "in_transit", "delivered", "lost")


class ShippingError(ValueError):
    pass


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
    ) -> Shipment: ...

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
        """Record a shipment the customer arranged, under the carrier's tracking number."""
        existing = self._by_key(key)
        if existing is not None:
            return existing
        number = tracking_number.strip()
        if len(number) < 6:
            raise ShippingError(f"{tracking_number!r} is not a tracking number")
        taken = self._by_number(number)
        if taken is not None:
            raise ShippingError(f"tracking number {number} is already used by {taken.rma}")
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
