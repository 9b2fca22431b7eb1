"""The append-only, hash-chained history of every instance.

Each event's hash is SHA-256 over the previous event's hash and the canonical JSON of
the event's own fields, so changing, removing or reordering any stored event breaks
the chain from that point on. The instance row keeps the head of its chain (count and
last hash), so appending an event never reads the history it extends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.canonical import canonical_json

#: The previous hash of an instance's first event.
GENESIS_HASH = "0" * 64


class EventKind:
    """The kinds of event an instance's history holds."""

    STARTED = "started"
    TASK_COMPLETED = "task_completed"
    HANDLER_RESULT = "handler_result"
    HANDLER_FAILED = "handler_failed"
    ERROR_THROWN = "error_thrown"
    TIMER_FIRED = "timer_fired"
    MESSAGE = "message"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    COMMENT = "comment"
    DENIED = "denied"
    ESCALATED = "escalated"
    CLAIMED = "claimed"
    UNCLAIMED = "unclaimed"
    DELEGATED = "delegated"
    MIGRATED = "migrated"
    #: Its stored state was written by an older SpiffWorkflow serializer and is saved
    #: in today's format from now on (data: from, to).
    STATE_UPGRADED = "state_upgraded"


@dataclass(slots=True)
class PendingEvent:
    """An event built during a command, before its sequence number and hash are known."""

    kind: str
    at: datetime
    actor: str
    data: Mapping[str, Any]
    state_digest: str
    bpmn_id: str | None = None
    task_name: str | None = None
    task_id: str | None = None


@dataclass(slots=True)
class ChainedEvent:
    """An event with its place in the chain, as stored."""

    instance_uid: str
    seq: int
    at: datetime
    actor: str
    kind: str
    bpmn_id: str | None
    task_name: str | None
    task_id: str | None
    data: str
    process_id: str
    process_version: int
    state_digest: str
    prev_hash: str
    hash: str


def event_hash(
    *,
    prev_hash: str,
    instance_uid: str,
    seq: int,
    at: datetime,
    actor: str,
    kind: str,
    bpmn_id: str | None,
    task_name: str | None,
    task_id: str | None,
    data: str,
    process_id: str,
    process_version: int,
    state_digest: str,
) -> str:
    body = canonical_json(
        {
            "instance": instance_uid,
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "kind": kind,
            "bpmn_id": bpmn_id,
            "task_name": task_name,
            "task_id": task_id,
            "data": data,
            "process": process_id,
            "version": process_version,
            "state": state_digest,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def chain(
    pending: Iterable[PendingEvent],
    *,
    instance_uid: str,
    process_id: str,
    process_version: int,
    first_seq: int,
    prev_hash: str,
) -> list[ChainedEvent]:
    """Give each pending event its sequence number and hash, continuing a chain."""
    chained: list[ChainedEvent] = []
    seq = first_seq
    for event in pending:
        data = canonical_json(dict(event.data))
        digest = event_hash(
            prev_hash=prev_hash,
            instance_uid=instance_uid,
            seq=seq,
            at=event.at,
            actor=event.actor,
            kind=event.kind,
            bpmn_id=event.bpmn_id,
            task_name=event.task_name,
            task_id=event.task_id,
            data=data,
            process_id=process_id,
            process_version=process_version,
            state_digest=event.state_digest,
        )
        chained.append(
            ChainedEvent(
                instance_uid=instance_uid,
                seq=seq,
                at=event.at,
                actor=event.actor,
                kind=event.kind,
                bpmn_id=event.bpmn_id,
                task_name=event.task_name,
                task_id=event.task_id,
                data=data,
                process_id=process_id,
                process_version=process_version,
                state_digest=event.state_digest,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
        seq += 1
    return chained


def rehash(event: ChainedEvent) -> str:
    """The hash a stored event's content and previous hash give."""
    return event_hash(
        prev_hash=event.prev_hash,
        instance_uid=event.instance_uid,
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        kind=event.kind,
        bpmn_id=event.bpmn_id,
        task_name=event.task_name,
        task_id=event.task_id,
        data=event.data,
        process_id=event.process_id,
        process_version=event.process_version,
        state_digest=event.state_digest,
    )


@dataclass(frozen=True)
class Break:
    """The first place where a stored chain does not hold."""

    seq: int
    reason: str


def verify(events: Iterable[ChainedEvent], head_seq: int, head_hash: str) -> Break | None:
    """Recompute a chain from its first event; return the first broken link, if any."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for event in events:
        if event.seq != expected_seq:
            return Break(expected_seq, f"event {expected_seq} is missing (found {event.seq})")
        if event.prev_hash != expected_prev:
            return Break(event.seq, "its previous-hash does not match the event before it")
        if rehash(event) != event.hash:
            return Break(event.seq, "its content does not match its hash (it was changed)")
        expected_prev = event.hash
        expected_seq += 1
    if expected_seq - 1 != head_seq:
        return Break(
            expected_seq, f"the instance records {head_seq} events, found {expected_seq - 1}"
        )
    if expected_prev != head_hash:
        return Break(head_seq, "the last event's hash differs from the instance's chain head")
    return None
