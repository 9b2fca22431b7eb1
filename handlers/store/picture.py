"""The whole picture of one return, read in plain SQL through the database driver.

`artreturns show` is asked for often, and must not pay for importing SQLAlchemy to
read five small tables: the picture is read here once, over a DB-API connection
(`engine.reading.Reader`). The desk's `picture` runs it on the engine's connection; the
command line on a connection it opened with the driver alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.reading import Reader
from handlers.money import Money
from handlers.store import Folders

_HEX = frozenset("0123456789abcdef")


def picture(
    reader: Reader, folders: Folders, rma: str, data: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Everything about one return on one page: the customer, the order and its works,
    the request, the policy's decision, the money, the evidence and the notices, from
    its stores and `data` (the instance's data, as `engine.show` gives it). None when
    `rma` is not a return (an instance of another process)."""
    found = reader.rows("SELECT status FROM rma_number WHERE number = ?", [rma])
    if not found:
        return None
    ticket = str(found[0][0])
    entries = reader.rows(
        "SELECT reference, kind, amount_minor, currency, channel, created_at "
        "FROM ledger_entry WHERE rma = ? ORDER BY id",
        [rma],
    )
    notices = reader.rows(
        "SELECT id, notice, created_at, recipient, delivered_at "
        "FROM outbox_message WHERE rma = ? ORDER BY id",
        [rma],
    )
    order = data.get("order") or {}
    refund = data.get("refund") or {}
    return {
        "rma": rma,
        "ticket": ticket,
        "customer": data.get("customer"),
        "order": {
            key: order.get(key)
            for key in ("order_number", "channel", "jurisdiction", "sold_at", "delivered_at")
        },
        "artworks": [
            {key: work.get(key) for key in ("artwork_id", "title", "artist", "category", "price")}
            for work in data.get("artworks") or []
        ],
        "request": {
            key: (data.get("request") or {}).get(key)
            for key in ("type", "reason", "description", "reported_at")
        },
        "policy": {
            "eligibility": data.get("eligibility"),
            "rule": data.get("policy_rule"),
            "basis": data.get("policy_basis"),
            "tier": data.get("tier"),
            "closed_by": closing_rule(data),
        },
        "money": {
            "refund_due": refund.get("amount"),
            "refund_deadline": refund.get("deadline"),
            "exchange": data.get("exchange"),
            "ledger": [
                {
                    "reference": reference,
                    "kind": kind,
                    "amount": Money.from_minor(int(minor), currency).as_data(),
                    "channel": channel,
                    "at": _iso(reader, at),
                }
                for reference, kind, minor, currency, channel, at in entries
            ],
        },
        "evidence": evidence(reader, folders, rma),
        "notices": [
            {
                "id": number,
                "notice": notice,
                "at": _iso(reader, at),
                "to": recipient,
                "delivered": delivered is not None,
            }
            for number, notice, at, recipient, delivered in notices
        ],
    }


def evidence(reader: Reader, folders: Folders, rma: str) -> list[dict[str, Any]]:
    """A return's evidence files, each checked against its SHA-256 (`intact`)."""
    rows = reader.rows(
        "SELECT sha256, name, size, kind, locked_at FROM evidence_file WHERE rma = ? ORDER BY id",
        [rma],
    )
    return [
        {
            "name": name,
            "sha256": sha,
            "kind": kind,
            "size": size,
            "locked": locked is not None,
            "intact": intact(folders.evidence, sha),
        }
        for sha, name, size, kind, locked in rows
    ]


def evidence_path(folder: Path, sha: str) -> Path | None:
    """Where the evidence store keeps the file of this digest (None: not a digest)."""
    if len(sha) != 64 or not set(sha) <= _HEX:
        return None
    return folder / sha[:2] / sha


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def intact(folder: Path, sha: str) -> bool:
    """Whether the stored file of this digest is there and still has it. A symbolic
    link in the store, in place of the file or of its folder, is never followed: it
    does not count as the file."""
    path = evidence_path(folder, sha)
    if path is None or path.parent.is_symlink() or path.is_symlink() or not path.is_file():
        return False
    try:
        return sha256_of(path) == sha
    except OSError:  # unreadable, or replaced by a link since the check
        return False


def closing_rule(data: Mapping[str, Any]) -> str | None:
    closed = data.get("rma_closed")
    rule = closed.get("rule") if isinstance(closed, Mapping) else None
    return str(rule) if rule else None


def _iso(reader: Reader, value: Any) -> str:
    at = reader.time(value)
    assert at is not None
    return at.isoformat()


__all__ = [
    "closing_rule",
    "evidence",
    "evidence_path",
    "intact",
    "picture",
    "sha256_of",
]
