"""The outbox: every notice to a customer once, kept in the database and delivered.

The row is the record (a transactional outbox): it is written in the same transaction
as the instance that sends the notice, and a notice rendered twice under the same
idempotency key is stored once. How it leaves depends on the setting ARTRETURNS_SMTP:

- not set (the default): it is written as a text file under the outbox folder
  (`<outbox>/<RMA>/<NNN>-<notice>.<locale>.txt`) as it is stored, where a mail gateway
  or a person picks it up, and is marked delivered;
- set: it is stored pending, and `artreturns notices send` mails it later, outside the
  command that wrote it (handlers/mail.py), claiming it first so that two senders never
  try the same notice at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from handlers.store.tables import outbox

SMTP_ENV = "ARTRETURNS_SMTP"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def smtp_configured() -> bool:
    """Whether notices are delivered by SMTP (ARTRETURNS_SMTP is set and not blank)."""
    return bool(os.environ.get(SMTP_ENV, "").strip())


@dataclass(frozen=True)
class Sent:
    notice: str
    locale: str
    recipient: str
    subject: str
    file: str | None
    repeated: bool


@dataclass(frozen=True)
class Notice:
    """A stored notice with its delivery state."""

    id: int
    idempotency_key: str
    rma: str
    notice: str
    locale: str
    recipient: str
    subject: str
    body: str
    created_at: datetime
    file: str | None
    delivered_at: datetime | None
    attempts: int
    last_attempt_at: datetime | None
    last_error: str | None
    claimed_until: datetime | None
    #: Its place among the notices of its RMA (1, 2, ...): the NNN of its file name.
    number: int

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None

    def as_data(self, *, body: bool = True) -> dict[str, Any]:
        """JSON-ready; `body=False` leaves the body out (for listings)."""
        data: dict[str, Any] = {
            "id": self.id,
            "rma": self.rma,
            "notice": self.notice,
            "locale": self.locale,
            "recipient": self.recipient,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
            "status": "delivered" if self.delivered else "pending",
            "delivered_at": _iso(self.delivered_at),
            "attempts": self.attempts,
            "last_attempt_at": _iso(self.last_attempt_at),
            "last_error": self.last_error,
            "file": self.file,
            "idempotency_key": self.idempotency_key,
        }
        if body:
            data["body"] = self.body
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_earlier = outbox.alias("earlier")
_NUMBER = (
    select(func.count())
    .where(_earlier.c.rma == outbox.c.rma, _earlier.c.id <= outbox.c.id)
    .correlate(outbox)
    .scalar_subquery()
    .label("number")
)
_NOTICES = select(*outbox.c, _NUMBER)
_PENDING = outbox.c.delivered_at.is_(None)


class Outbox:
    """The outbox on one command's connection, at that command's time.

    `folder` is where notices are delivered as they are stored (the default delivery);
    with `smtp` (by default: whether ARTRETURNS_SMTP is set), or without a folder, they
    are stored pending, for `artreturns notices send`.
    """

    def __init__(
        self, conn: Connection, now: datetime, folder: Path | None, *, smtp: bool | None = None
    ) -> None:
        self.conn = conn
        self.now = now
        self.folder = folder
        self.smtp = smtp_configured() if smtp is None else smtp

    def send(
        self,
        *,
        key: str,
        rma: str,
        notice: str,
        locale: str | None,
        recipient: str,
        context: Mapping[str, Any],
    ) -> Sent:
        existing = (
            self.conn.execute(select(outbox).where(outbox.c.idempotency_key == key))
            .mappings()
            .first()
        )
        if existing is not None:
            return Sent(
                existing["notice"],
                existing["locale"],
                existing["recipient"],
                existing["subject"],
                existing["file"],
                repeated=True,
            )
        from handlers import notices  # Jinja, imported only when a notice is written

        chosen = notices.pick_locale(locale)
        rendered = notices.render(notice, chosen, context)
        file = None
        if not self.smtp and self.folder is not None:
            count = self.conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.rma == rma)
            ).scalar_one()
            file = write_file(
                self.folder, rma, count + 1, notice, chosen, rendered.subject, rendered.body
            )
        delivered = self.now if file is not None else None
        self.conn.execute(
            outbox.insert().values(
                idempotency_key=key,
                rma=rma,
                notice=notice,
                locale=chosen,
                recipient=recipient,
                subject=rendered.subject,
                body=rendered.body,
                created_at=self.now,
                file=file,
                delivered_at=delivered,
                attempts=1 if delivered else 0,
                last_attempt_at=delivered,
            )
        )
        return Sent(notice, chosen, recipient, rendered.subject, file, repeated=False)

    def sent(self, rma: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(outbox).where(outbox.c.rma == rma).order_by(outbox.c.id)
        ).mappings()
        return [dict(row) for row in rows]

    # -- reading -------------------------------------------------------------------

    def notices(self, rma: str | None = None, *, pending: bool = False) -> list[Notice]:
        """Notices oldest first, of one RMA or all; only the undelivered with `pending`."""
        query = _NOTICES.order_by(outbox.c.id)
        if rma is not None:
            query = query.where(outbox.c.rma == rma)
        if pending:
            query = query.where(_PENDING)
        return [Notice(**row) for row in self.conn.execute(query).mappings()]

    def get(self, notice_id: int) -> Notice | None:
        row = self.conn.execute(_NOTICES.where(outbox.c.id == notice_id)).mappings().first()
        return Notice(**row) if row is not None else None

    def pending_count(self) -> int:
        query = select(func.count()).select_from(outbox).where(_PENDING)
        return int(self.conn.execute(query).scalar_one())

    # -- delivery (handlers/mail.py, each step its own short transaction) ------------

    def claim(self, *, after: int, until: datetime) -> Notice | None:
        """Claim the oldest pending notice after id `after` that nobody has claimed (or
        whose claim has lapsed): count an attempt and keep others off it until `until`.

        On PostgreSQL the row is chosen with SELECT ... FOR UPDATE SKIP LOCKED, so that
        senders on several machines pass over each other's rows instead of waiting. SQLite
        has one writer: the UPDATE takes the write lock before it reads, so two senders
        cannot choose the same row either.
        """
        free = and_(
            _PENDING,
            outbox.c.id > after,
            or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= self.now),
        )
        oldest = select(outbox.c.id).where(free).order_by(outbox.c.id).limit(1)
        if self.conn.dialect.name == "postgresql":
            found = self.conn.execute(oldest.with_for_update(skip_locked=True)).scalar()
            if found is None:
                return None
            target = outbox.c.id == found
        else:
            target = outbox.c.id.in_(oldest)
        claimed = self.conn.execute(
            outbox.update()
            .where(target, free)
            .values(
                claimed_until=until,
                attempts=outbox.c.attempts + 1,
                last_attempt_at=self.now,
            )
            .returning(outbox.c.id)
        ).scalar()
        return self.get(claimed) if claimed is not None else None

    def mark_delivered(self, notice_id: int, file: str | None = None) -> None:
        values: dict[str, Any] = {"delivered_at": self.now, "claimed_until": None}
        if file is not None:
            values["file"] = file
        self.conn.execute(outbox.update().where(outbox.c.id == notice_id).values(**values))

    def mark_failed(self, notice_id: int, error: str) -> None:
        """Record why an attempt failed; the notice stays pending for the next run."""
        self.conn.execute(
            outbox.update()
            .where(outbox.c.id == notice_id)
            .values(last_error=error[:2000], claimed_until=None)
        )


def write_file(
    folder: Path, rma: str, number: int, notice: str, locale: str, subject: str, body: str
) -> str:
    """Write a notice as `<folder>/<RMA>/<NNN>-<notice>.<locale>.txt`; return its path.

    Each part is made a plain file name first (`file_name`): a business key such as
    "../x" or "/etc" names a folder inside the outbox, never one outside it."""
    target = folder / file_name(rma)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{number:03d}-{file_name(notice)}.{file_name(locale)}.txt"
    path.write_text(f"{subject}\n\n{body}", encoding="utf-8")
    return str(path)


def file_name(text: str) -> str:
    """`text` as one plain file name: letters, digits, '-' and '_' kept, anything else
    (a slash, a dot, a space, a non-ASCII letter) made '_', with a short digest of the
    text added when anything was replaced, so that two texts never share a name."""
    safe = _UNSAFE.sub("_", text)
    if safe == text and safe:
        return safe
    return f"{safe[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
