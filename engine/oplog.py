"""The operation log: what happened outside any one instance's history, hash-chained.

Adding and disabling users, deployments, schema upgrades, data imports, and every refusal
that concerns no single instance (a user who may not deploy, an unknown user reading a
worklist) are appended here; refusals that concern an instance go into its own history
instead. Like an instance's history, each row's hash covers the one before it, so a
changed, removed or reordered row breaks the chain (`artreturns operations --verify`).
`prev_hash` is unique: two writers can never both extend the same head, and the one that
loses reads the new head and tries again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from engine.canonical import canonical_json
from engine.errors import ConcurrencyError
from engine.history import GENESIS_HASH, Break
from engine.persistence import OperationRecord

OPERATION = cast(Table, OperationRecord.__table__)
DONE = "done"
DENIED = "denied"
#: Attempts at appending when other writers keep extending the chain first.
APPEND_ATTEMPTS = 8

_HEAD = select(OPERATION.c.hash).order_by(OPERATION.c.id.desc()).limit(1)
_INSERT = OPERATION.insert().values(
    at=bindparam("at"),
    actor=bindparam("actor"),
    operation=bindparam("operation"),
    target=bindparam("target"),
    outcome=bindparam("outcome"),
    details=bindparam("details"),
    prev_hash=bindparam("prev_hash"),
    hash=bindparam("hash"),
)


@dataclass(frozen=True)
class Entry:
    """One operation as the chain covers it."""

    at: datetime
    actor: str
    operation: str
    target: str | None
    outcome: str
    details: str
    prev_hash: str
    hash: str


def entry_hash(
    *,
    prev_hash: str,
    at: datetime,
    actor: str,
    operation: str,
    target: str | None,
    outcome: str,
    details: str,
) -> str:
    body = canonical_json(
        {
            "at": at.isoformat(),
            "actor": actor,
            "operation": operation,
            "target": target,
            "outcome": outcome,
            "details": details,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    operation: str,
    target: str | None,
    outcome: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one operation to the chain, inside the caller's transaction."""
    text = canonical_json(dict(details or {}))
    for _ in range(APPEND_ATTEMPTS):
        head = conn.execute(_HEAD).scalar_one_or_none() or GENESIS_HASH
        digest = entry_hash(
            prev_hash=head,
            at=at,
            actor=actor,
            operation=operation,
            target=target,
            outcome=outcome,
            details=text,
        )
        values = {
            "at": at,
            "actor": actor,
            "operation": operation,
            "target": target,
            "outcome": outcome,
            "details": text,
            "prev_hash": head,
            "hash": digest,
        }
        try:
            with conn.begin_nested():
                conn.execute(_INSERT, values)
            return
        except IntegrityError:
            continue  # another writer extended the chain first: read the new head
    raise ConcurrencyError(
        "the operation log kept changing while this command tried to write to it",
        "Run the command again.",
    )


def verify(entries: Iterable[Entry]) -> Break | None:
    """Recompute the chain in insertion order; return the first broken link, if any."""
    expected_prev = GENESIS_HASH
    for number, entry in enumerate(entries, start=1):
        if entry.prev_hash != expected_prev:
            return Break(number, "its previous-hash does not match the entry before it")
        recomputed = entry_hash(
            prev_hash=entry.prev_hash,
            at=entry.at,
            actor=entry.actor,
            operation=entry.operation,
            target=entry.target,
            outcome=entry.outcome,
            details=entry.details,
        )
        if recomputed != entry.hash:
            return Break(number, "its content does not match its hash (it was changed)")
        expected_prev = entry.hash
    return None
