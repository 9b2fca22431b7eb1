"""Retention: the events of closed instances moved out of the database into an export.

`artreturns audit archive` (`Engine.audit_archive`) takes the instances completed or
cancelled before a time that still have events in `event`. It writes their events whole
into a new folder in the format of `audit export` (`engine.audit`), makes the files
durable and checks them offline; only then, in one transaction, it deletes those events,
inserts an `archive` row per instance (through which event, that event's hash, the
folder, the digest of its events file) and logs the operation. If anything fails before
the commit, nothing is deleted.

The instance row keeps its chain head, so verification still holds: for an archived
instance `check` requires the head recorded with its archive to be the instance's head,
and whatever is left in `event` (normally nothing) to continue the chain from there. A
changed archive row, or a changed head, shows. The archived events themselves are
checked in their export (`audit verify --export DIR`), whose last hash must be the head
recorded here (`against_export`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, select
from sqlalchemy.orm import Session

from engine.audit import EVENTS, MANIFEST, Manifest, _check_chain, event_line, verify_export
from engine.errors import ConcurrencyError, EngineError, HistoryBrokenError
from engine.history import GENESIS_HASH, Break, ChainedEvent
from engine.persistence import ArchiveRecord, EventRecord, InstanceRecord
from engine.views import _View

#: The statuses of a closed instance: nothing can add to its history any more.
CLOSED = ("completed", "cancelled")
ARCHIVE = cast(Table, ArchiveRecord.__table__)
_EVENT = cast(Table, EventRecord.__table__)
_INSTANCE = cast(Table, InstanceRecord.__table__)


def _label(business_key: str | None, instance_id: int) -> str:
    return business_key or f"#{instance_id}"


@dataclass(frozen=True)
class ArchivedInstance(_View):
    """An instance an archive takes: its events from `first_seq` to `last_seq`."""

    instance: str
    instance_id: int
    uid: str
    status: str
    ended_at: datetime | None
    first_seq: int
    last_seq: int


@dataclass
class ArchiveResult:
    """What `audit archive` took (or, in a dry run, would take)."""

    folder: str
    before: datetime
    dry_run: bool
    instances: list[ArchivedInstance] = field(default_factory=list)
    #: The SHA-256 of the export's events file (None in a dry run or when nothing went).
    events_sha256: str | None = None

    @property
    def events(self) -> int:
        return sum(i.last_seq - i.first_seq + 1 for i in self.instances)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "before": self.before.isoformat(),
            "dry_run": self.dry_run,
            "events": self.events,
            "events_sha256": self.events_sha256,
            "instances": [i.to_dict() for i in self.instances],
        }


@dataclass(frozen=True)
class Archive(_View):
    """Where an instance's archived events are: a row of `archive`, the latest."""

    instance: str
    uid: str
    through_seq: int
    head_hash: str
    folder: str
    events_sha256: str
    archived_at: datetime
    archived_by: str


# -- choosing ---------------------------------------------------------------------------


def closed_before(session: Session, before: datetime) -> list[ArchivedInstance]:
    """The instances closed before `before` with events still in the database, oldest
    instance first, each with the run of events an archive takes."""
    rows = session.execute(
        select(
            InstanceRecord.id,
            InstanceRecord.business_key,
            InstanceRecord.uid,
            InstanceRecord.status,
            InstanceRecord.ended_at,
            func.min(EventRecord.seq),
            func.max(EventRecord.seq),
        )
        .join(EventRecord, EventRecord.instance_id == InstanceRecord.id)
        .where(InstanceRecord.status.in_(CLOSED), InstanceRecord.ended_at < before)
        .group_by(
            InstanceRecord.id,
            InstanceRecord.business_key,
            InstanceRecord.uid,
            InstanceRecord.status,
            InstanceRecord.ended_at,
        )
        .order_by(InstanceRecord.id)
    ).all()
    return [
        ArchivedInstance(_label(key, number), number, uid, status, ended, first, last)
        for number, key, uid, status, ended, first, last in rows
    ]


def archived(session: Session, instance_id: int | None = None) -> list[Archive]:
    """The latest archive of each archived instance (or of one), oldest instance first."""
    query = (
        select(ArchiveRecord, InstanceRecord.business_key, InstanceRecord.uid)
        .join(InstanceRecord, InstanceRecord.id == ArchiveRecord.instance_id)
        .order_by(ArchiveRecord.instance_id, ArchiveRecord.through_seq)
    )
    if instance_id is not None:
        query = query.where(ArchiveRecord.instance_id == instance_id)
    latest: dict[int, Archive] = {}
    for row, key, uid in session.execute(query).all():
        latest[row.instance_id] = Archive(
            instance=_label(key, row.instance_id),
            uid=uid,
            through_seq=row.through_seq,
            head_hash=row.head_hash,
            folder=row.folder,
            events_sha256=row.events_sha256,
            archived_at=row.archived_at,
            archived_by=row.archived_by,
        )
    return list(latest.values())


# -- writing ----------------------------------------------------------------------------


def make_durable(folder: Path) -> None:
    """Flush the export's files, and the folder that lists them, to the disk."""
    for name in (EVENTS, MANIFEST):
        descriptor = os.open(folder / name, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    for directory in (folder, folder.parent):
        # Not every system can open a folder to flush it (Windows cannot).
        with contextlib.suppress(OSError):
            descriptor = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


def confirm(folder: Path, written: Manifest, anchors: dict[str, str]) -> None:
    """Check the written export offline, and that it holds each instance's whole chain
    from where it stands in the database (`anchors`: the hash its first exported event
    must follow) to its head. Raise, so that nothing is deleted, when it does not."""
    manifest, breaks = verify_export(folder)
    problems = [str(b) for b in breaks]
    if manifest["events_sha256"] != written.events_sha256:
        problems.append(f"{EVENTS} is not the file just written")
    for instance in written.instances:
        label = instance.business_key or instance.uid
        if instance.anchor != anchors[instance.uid]:
            problems.append(f"{label}: its first event does not follow the archived ones")
        if (instance.last_seq, instance.last_hash) != (instance.head_seq, instance.head_hash):
            problems.append(f"{label}: its events do not reach its chain head")
    if problems:
        raise HistoryBrokenError(
            f"the export written to {folder} does not hold, so nothing was archived: "
            + "; ".join(problems),
            "Verify the histories (`artreturns audit verify --all`); nothing was deleted.",
        )


def record(
    conn: Connection,
    chosen: Sequence[ArchivedInstance],
    written: Manifest,
    *,
    folder: str,
    at: datetime,
    actor: str,
    progress: Callable[[int], None],
) -> None:
    """In the caller's transaction: delete each instance's exported events and insert
    its `archive` row, provided the instance still has the head that was exported."""
    exported = {i.uid: i for i in written.instances}
    for done, item in enumerate(chosen, start=1):
        instance = exported[item.uid]
        head = conn.execute(
            select(_INSTANCE.c.event_count, _INSTANCE.c.head_hash)
            .where(_INSTANCE.c.id == item.instance_id)
            .with_for_update()
        ).one()
        if (head.event_count, head.head_hash) != (instance.last_seq, instance.last_hash):
            raise ConcurrencyError(
                f"{item.instance} changed while it was being archived; nothing was archived",
                f"Run the command again into a new folder ({folder} holds an export).",
            )
        deleted = conn.execute(
            delete(_EVENT).where(
                _EVENT.c.instance_id == item.instance_id,
                _EVENT.c.seq >= instance.first_seq,
                _EVENT.c.seq <= instance.last_seq,
            )
        ).rowcount
        if deleted != instance.last_seq - instance.first_seq + 1:
            raise ConcurrencyError(
                f"{item.instance}'s events changed while they were being archived; nothing "
                "was archived",
                f"Run the command again into a new folder ({folder} holds an export).",
            )
        conn.execute(
            ARCHIVE.insert().values(
                instance_id=item.instance_id,
                through_seq=instance.last_seq,
                head_hash=instance.last_hash,
                folder=folder,
                events_sha256=written.events_sha256,
                archived_at=at,
                archived_by=actor,
            )
        )
        progress(done)


def write_failed(folder: Path, exc: OSError) -> EngineError:
    return EngineError(
        f"cannot write the archive to {folder}: {exc}",
        "Nothing was deleted from the database; free space or choose another folder, "
        "then run the command again into a new folder.",
    )


# -- verifying --------------------------------------------------------------------------


def check(
    archive: Archive, events: Sequence[ChainedEvent], head_seq: int, head_hash: str
) -> Break | None:
    """The first place where an archived instance's chain does not hold: the events
    left in the database (normally none) must continue the chain from the archived
    head, and end at the instance's head."""
    for event in events:
        if event.seq <= archive.through_seq:
            return Break(
                event.seq, f"it was archived to {archive.folder}, yet it is in the database"
            )
    last_seq, last_hash = archive.through_seq, archive.head_hash
    if events:
        span = {
            "anchor": archive.head_hash,
            "first_seq": archive.through_seq + 1,
            "last_seq": events[-1].seq,
            "last_hash": events[-1].hash,
        }
        found = _check_chain(span, [event_line(e, None) for e in events])
        if found is not None:
            return Break(*found)
        last_seq, last_hash = events[-1].seq, events[-1].hash
    if last_seq != head_seq:
        return Break(
            min(last_seq, head_seq) + 1,
            f"the instance records {head_seq} events; its archive and the database hold {last_seq}",
        )
    if last_hash != head_hash:
        whose = "the last event's hash" if events else "the head recorded with its archive"
        return Break(head_seq, f"{whose} differs from the instance's chain head")
    return None


def against_export(archive: Archive, manifest: dict[str, Any]) -> str | None:
    """Why an (already verified) export does not hold `archive`'s events, or None."""
    found = [i for i in manifest["instances"] if i["uid"] == archive.uid]
    if not found:
        return f"{archive.instance} is not in this export"
    first, last = found[0], found[-1]
    if int(first["first_seq"]) == 1 and first["anchor"] != GENESIS_HASH:
        return f"{archive.instance}: its first event in the export follows another"
    if (int(last["last_seq"]), last["last_hash"]) != (archive.through_seq, archive.head_hash):
        return (
            f"{archive.instance}: the export ends at event {last['last_seq']} with another "
            f"hash than the archived head (event {archive.through_seq})"
        )
    return None


__all__ = [
    "CLOSED",
    "Archive",
    "ArchiveResult",
    "ArchivedInstance",
    "against_export",
    "archived",
    "check",
    "closed_before",
    "confirm",
    "make_durable",
    "record",
]
