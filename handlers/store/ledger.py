"""The local payments ledger: every refund or charge once, under its idempotency key.

The default payment gateway. A real gateway adapter has the same interface: `pay`
returns the first result for a key it has seen, whatever happens in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from handlers.money import Money
from handlers.store.tables import ledger

KINDS = ("refund", "charge", "store_credit")
CHANNELS = ("original_payment", "bank_transfer", "store_credit")


class LedgerError(ValueError):
    """A payment was refused: the message says why."""


@dataclass(frozen=True)
class Entry:
    reference: str
    kind: str
    amount: Money
    channel: str
    payer: str
    created_at: datetime
    repeated: bool


class Ledger:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def pay(
        self, *, key: str, rma: str, kind: str, amount: Money, channel: str, payer: str
    ) -> Entry:
        """Record a payment exactly once per key; a repeated call returns the first entry
        (and refuses if it asks for a different payment under the same key)."""
        if kind not in KINDS:
            raise LedgerError(f"unknown ledger entry kind {kind!r}")
        if channel not in CHANNELS:
            raise LedgerError(f"unknown payment channel {channel!r}")
        if not amount.is_positive:
            raise LedgerError(f"a {kind} must be more than zero, not {amount}")
        existing = self._by_key(key)
        if existing is not None:
            if (existing.amount, existing.kind, existing.channel) != (amount, kind, channel):
                raise LedgerError(
                    f"idempotency key {key} was used for {existing.kind} of {existing.amount} "
                    f"by {existing.channel}; refusing {kind} of {amount} by {channel}"
                )
            return existing
        reference = f"LDG-{rma}-{self._next_line(rma):03d}"
        self.conn.execute(
            ledger.insert().values(
                idempotency_key=key,
                rma=rma,
                kind=kind,
                amount_minor=amount.minor,
                currency=amount.currency,
                channel=channel,
                payer=payer,
                reference=reference,
                created_at=self.now,
            )
        )
        return Entry(reference, kind, amount, channel, payer, self.now, repeated=False)

    def entries(self, rma: str) -> list[Entry]:
        rows = self.conn.execute(
            select(ledger).where(ledger.c.rma == rma).order_by(ledger.c.id)
        ).mappings()
        return [_entry(row, repeated=False) for row in rows]

    def _by_key(self, key: str) -> Entry | None:
        row = (
            self.conn.execute(select(ledger).where(ledger.c.idempotency_key == key))
            .mappings()
            .first()
        )
        return _entry(row, repeated=True) if row is not None else None

    def _next_line(self, rma: str) -> int:
        count = self.conn.execute(select(ledger.c.id).where(ledger.c.rma == rma)).all()
        return len(count) + 1


def _entry(row: object, repeated: bool) -> Entry:
    data = dict(row)  # type: ignore[call-overload]
    return Entry(
        reference=data["reference"],
        kind=data["kind"],
        amount=Money.from_minor(data["amount_minor"], data["currency"]),
        channel=data["channel"],
        payer=data["payer"],
        created_at=data["created_at"],
        repeated=repeated,
    )
