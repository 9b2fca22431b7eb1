"""RMA numbers: RMA-YYYY-NNNNNN, unique, one per return request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from handlers.store.tables import rma_numbers

ATTEMPTS = 5


class Numbers:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def allocate(self, order_number: str) -> str:
        """The next number of the current year. Two requests allocating at once cannot
        get the same number: the (year, sequence) pair is unique and the loser tries the
        next one."""
        year = self.now.year
        for _ in range(ATTEMPTS):
            last = self.conn.execute(
                select(func.max(rma_numbers.c.sequence)).where(rma_numbers.c.year == year)
            ).scalar()
            sequence = (last or 0) + 1
            number = f"RMA-{year}-{sequence:06d}"
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        rma_numbers.insert().values(
                            number=number,
                            year=year,
                            sequence=sequence,
                            order_number=order_number,
                            status="requested",
                            assigned_at=self.now,
                            updated_at=self.now,
                        )
                    )
            except IntegrityError:
                continue
            return number
        raise RuntimeError(f"could not allocate an RMA number after {ATTEMPTS} attempts")

    def set_status(self, number: str, status: str) -> bool:
        """Move a ticket to a new status; False when there is no such number."""
        done = self.conn.execute(
            update(rma_numbers)
            .where(rma_numbers.c.number == number)
            .values(status=status, updated_at=self.now)
        )
        return bool(done.rowcount)

    def recent(self, limit: int) -> list[tuple[str, str, str]]:
        """The latest numbers issued and not voided, newest first: (number, order, status)."""
        rows = self.conn.execute(
            select(rma_numbers.c.number, rma_numbers.c.order_number, rma_numbers.c.status)
            .where(rma_numbers.c.status != "void")
            .order_by(rma_numbers.c.year.desc(), rma_numbers.c.sequence.desc())
            .limit(limit)
        ).all()
        return [(r.number, r.order_number, r.status) for r in rows]

    def status(self, number: str) -> str | None:
        value = self.conn.execute(
            select(rma_numbers.c.status).where(rma_numbers.c.number == number)
        ).scalar_one_or_none()
        return str(value) if value is not None else None
