"""The outbox: every notice to a customer once, kept in the database and written out.

By default each notice is also written as a text file under the outbox folder
(`<outbox>/<RMA>/<NNN>-<notice>.<locale>.txt`), where a mail gateway or a person picks it
up. A notice rendered twice under the same idempotency key is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from handlers import notices
from handlers.store.tables import outbox


@dataclass(frozen=True)
class Sent:
    notice: str
    locale: str
    recipient: str
    subject: str
    file: str | None
    repeated: bool


class Outbox:
    def __init__(self, conn: Connection, now: datetime, folder: Path | None) -> None:
        self.conn = conn
        self.now = now
        self.folder = folder

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
        chosen = notices.pick_locale(locale)
        rendered = notices.render(notice, chosen, context)
        count = self.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.rma == rma)
        ).scalar_one()
        file = self._write(rma, count + 1, notice, chosen, rendered.subject, rendered.body)
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
            )
        )
        return Sent(notice, chosen, recipient, rendered.subject, file, repeated=False)

    def sent(self, rma: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(outbox).where(outbox.c.rma == rma).order_by(outbox.c.id)
        ).mappings()
        return [dict(row) for row in rows]

    def _write(
        self, rma: str, number: int, notice: str, locale: str, subject: str, body: str
    ) -> str | None:
        if self.folder is None:
            return None
        folder = self.folder / rma
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{number:03d}-{notice}.{locale}.txt"
        path.write_text(f"{subject}\n\n{body}", encoding="utf-8")
        return str(path)
