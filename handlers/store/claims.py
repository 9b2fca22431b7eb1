"""Claims with outside parties: insurance claims and third-party appraisals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from handlers.money import Money
from handlers.store.tables import claims

KINDS = {"insurance": "INS", "appraisal": "APR"}


class ClaimError(ValueError):
    pass


@dataclass(frozen=True)
class Claim:
    reference: str
    kind: str
    rma: str
    counterparty: str
    status: str
    deadline: date | None
    amount: Money | None
    details: dict[str, Any]


class Claims:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def open(
        self,
        *,
        key: str,
        rma: str,
        kind: str,
        counterparty: str,
        deadline: date | None,
        details: dict[str, Any],
    ) -> Claim:
        if kind not in KINDS:
            raise ClaimError(f"unknown claim kind {kind!r}")
        row = (
            self.conn.execute(select(claims).where(claims.c.idempotency_key == key))
            .mappings()
            .first()
        )
        if row is not None:
            return _claim(row)
        count = self.conn.execute(
            select(func.count()).select_from(claims).where(claims.c.kind == kind)
        ).scalar_one()
        reference = f"{KINDS[kind]}-{self.now.year}-{count + 1:05d}"
        self.conn.execute(
            claims.insert().values(
                idempotency_key=key,
                rma=rma,
                kind=kind,
                reference=reference,
                counterparty=counterparty,
                status="open",
                opened_at=self.now,
                deadline=deadline,
                details=details,
            )
        )
        return self.get(reference)

    def settle(
        self, reference: str, status: str, amount: Money | None, details: dict[str, Any]
    ) -> Claim:
        claim = self.get(reference)
        merged = {**claim.details, **details}
        self.conn.execute(
            update(claims)
            .where(claims.c.reference == reference)
            .values(
                status=status,
                settled_at=self.now,
                amount_minor=amount.minor if amount else None,
                currency=amount.currency if amount else None,
                details=merged,
            )
        )
        return self.get(reference)

    def get(self, reference: str) -> Claim:
        row = (
            self.conn.execute(select(claims).where(claims.c.reference == reference))
            .mappings()
            .first()
        )
        if row is None:
            raise ClaimError(f"no claim {reference}")
        return _claim(row)

    def of(self, rma: str) -> list[Claim]:
        rows = self.conn.execute(
            select(claims).where(claims.c.rma == rma).order_by(claims.c.id)
        ).mappings()
        return [_claim(row) for row in rows]


def _claim(row: Any) -> Claim:
    amount = (
        Money.from_minor(row["amount_minor"], row["currency"])
        if row["amount_minor"] is not None
        else None
    )
    return Claim(
        row["reference"],
        row["kind"],
        row["rma"],
        row["counterparty"],
        row["status"],
        row["deadline"],
        amount,
        dict(row["details"]),
    )
