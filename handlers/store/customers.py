"""The customer file: why each customer returned what, how it ended, what they said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from handlers.store.tables import customer_files


@dataclass(frozen=True)
class Repeat:
    """A category or an artist whose returns recur within the window."""

    what: str
    value: str
    returns: int


class CustomerFiles:
    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def record(
        self,
        *,
        key: str,
        customer_email: str,
        rma: str,
        artist: str,
        category: str,
        reason: str,
        outcome: str,
        satisfaction: int | None,
        comment: str | None,
    ) -> bool:
        """Add the entry once; False when this key was recorded before."""
        exists = self.conn.execute(
            select(customer_files.c.id).where(customer_files.c.idempotency_key == key)
        ).first()
        if exists is not None:
            return False
        self.conn.execute(
            customer_files.insert().values(
                idempotency_key=key,
                customer_email=customer_email,
                rma=rma,
                artist=artist,
                category=category,
                reason=reason,
                outcome=outcome,
                satisfaction=satisfaction,
                comment=comment,
                recorded_at=self.now,
            )
        )
        return True

    def repeats(self, *, artist: str, category: str, days: int, threshold: int) -> list[Repeat]:
        """The artist and category of this return, when either was returned at least
        `threshold` times in the last `days` days."""
        since = self.now - timedelta(days=days)
        flagged: list[Repeat] = []
        for what, column, value in (
            ("artist", customer_files.c.artist, artist),
            ("category", customer_files.c.category, category),
        ):
            count = self.conn.execute(
                select(func.count())
                .select_from(customer_files)
                .where(column == value, customer_files.c.recorded_at >= since)
            ).scalar_one()
            if count >= threshold:
                flagged.append(Repeat(what, value, int(count)))
        return flagged

    def history(self, customer_email: str) -> int:
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(customer_files)
                .where(customer_files.c.customer_email == customer_email)
            ).scalar_one()
        )
