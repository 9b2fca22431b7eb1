"""Audit exports: events as JSON Lines and a manifest of chain heads, checked offline.

`export` writes, for every instance with events in a time window, those events exactly
as they were hashed (`events.jsonl`, one event a line, oldest instance first, each
instance's events in order) and a manifest (`manifest.json`): for each instance the
hash its first exported event follows (the anchor: the genesis hash when the export
starts at its first event), its last exported event's number and hash, and the chain
head the database held when exported; and the SHA-256 of the events file. Keep the
manifest, or its digest, somewhere the database's owner cannot write: a later change to
the database then shows against it.

`verify_export` checks a folder with no database: the events file against its digest,
each instance's events against the anchor, their numbers and their hashes, and its
last hash against the manifest. Nothing here needs SQLAlchemy or a connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import HistoryBrokenError, InputError
from engine.history import GENESIS_HASH, ChainedEvent, rehash

FORMAT = "artreturns-audit-export/1"
EVENTS = "events.jsonl"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportedInstance:
    uid: str
    business_key: str | None
    process_id: str
    first_seq: int
    last_seq: int
    #: The hash the first exported event follows (GENESIS_HASH from the first event on).
    anchor: str
    last_hash: str
    #: The instance's chain head in the database when exported.
    head_seq: int
    head_hash: str


@dataclass
class Manifest:
    exported_at: datetime
    since: datetime | None
    until: datetime | None
    events_sha256: str = ""
    events: int = 0
    instances: list[ExportedInstance] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "exported_at": self.exported_at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "events": self.events,
            "events_sha256": self.events_sha256,
            "instances": [vars(i) for i in self.instances],
        }


@dataclass(frozen=True)
class ExportBreak:
    """What does not hold in an export: the instance (None: the export as a whole),
    the event number, and why."""

    instance: str | None
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = self.instance or "the export"
        at = f" at event {self.seq}" if self.seq is not None else ""
        return f"{where}{at}: {self.reason}"


def event_line(event: ChainedEvent, business_key: str | None) -> dict[str, Any]:
    return {
        "instance": event.instance_uid,
        "business_key": business_key,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "kind": event.kind,
        "bpmn_id": event.bpmn_id,
        "task_name": event.task_name,
        "task_id": event.task_id,
        "data": event.data,
        "process_id": event.process_id,
        "process_version": event.process_version,
        "state_digest": event.state_digest,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def write_export(
    folder: Path,
    manifest: Manifest,
    chains: Iterable[tuple[ExportedInstance, list[ChainedEvent]]],
) -> Manifest:
    """Write the events and the manifest into `folder` (created; must be empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InputError(
            f"{folder} is not empty", "Export into a new folder: an export is never mixed."
        )
    digest = hashlib.sha256()
    with (folder / EVENTS).open("w", encoding="utf-8", newline="\n") as handle:
        for instance, events in chains:
            for event in events:
                line = json.dumps(event_line(event, instance.business_key), ensure_ascii=False)
                handle.write(line + "\n")
                digest.update((line + "\n").encode("utf-8"))
                manifest.events += 1
            manifest.instances.append(instance)
    manifest.events_sha256 = digest.hexdigest()
    (folder / MANIFEST).write_text(
        json.dumps(manifest.as_data(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def _manifest(folder: Path) -> dict[str, Any]:
    """The export's manifest, its fields checked before anything relies on them."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(folder, f"it is not JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise _damaged(folder, "it is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise InputError(f"{MANIFEST} is not an artreturns audit export ({FORMAT})")
    instances = manifest.get("instances")
    if not isinstance(manifest.get("events_sha256"), str) or not _whole(manifest.get("events")):
        raise _damaged(folder, "it has no events_sha256 or events count")
    if not isinstance(instances, list):
        raise _damaged(folder, "it has no list of instances")
    for number, instance in enumerate(instances, start=1):
        shaped = isinstance(instance, dict) and all(
            isinstance(instance.get(name), str) for name in _TEXT_FIELDS
        )
        if not shaped or not all(_whole(instance.get(name)) for name in _NUMBER_FIELDS):
            raise _damaged(
                folder,
                f"instance {number} of its list lacks one of "
                + ", ".join(_TEXT_FIELDS + _NUMBER_FIELDS),
            )
    return manifest


_TEXT_FIELDS = ("uid", "anchor", "last_hash")
_NUMBER_FIELDS = ("first_seq", "last_seq")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _damaged(folder: Path, what: str) -> HistoryBrokenError:
    return HistoryBrokenError(
        f"the export in {folder} does not hold: {MANIFEST} is damaged: {what}",
        "Check the export against another copy of its manifest.",
    )


def _events(data: bytes) -> tuple[list[dict[str, Any]], list[ExportBreak]]:
    """The lines of the events file that are events, and a break for each that is not
    (not UTF-8, not JSON, not an object, a field missing or of the wrong kind)."""
    events: list[dict[str, Any]] = []
    breaks: list[ExportBreak] = []
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the newline that ends the last line
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            line = json.loads(raw.decode("utf-8"))
            if not isinstance(line, dict):
                raise TypeError("it is not a JSON object")
            chained_line(line)
        except KeyError as exc:
            reason = f"it has no {exc.args[0]}"
        except UnicodeDecodeError:
            reason = "it is not UTF-8"
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            reason = str(exc) or type(exc).__name__
        else:
            events.append(line)
            continue
        breaks.append(ExportBreak(None, None, f"{EVENTS} line {number} is not an event: {reason}"))
    return events, breaks


def verify_export(folder: Path) -> tuple[dict[str, Any], list[ExportBreak]]:
    """Check an export offline; the manifest and every break found (empty: intact).

    A damaged manifest (not JSON, a field missing) raises HistoryBrokenError: there is
    nothing to check the events against."""
    manifest, breaks, _events_read = _checked(folder)
    return manifest, breaks


def _checked(
    folder: Path,
) -> tuple[dict[str, Any], list[ExportBreak], list[dict[str, Any]]]:
    """`verify_export`, with the lines of the events file that are events."""
    manifest_path, events_path = folder / MANIFEST, folder / EVENTS
    if not manifest_path.is_file() or not events_path.is_file():
        raise InputError(
            f"{folder} holds no export",
            f"An export is a folder with {MANIFEST} and {EVENTS} (`artreturns audit export`).",
        )
    manifest = _manifest(folder)
    breaks: list[ExportBreak] = []
    data = events_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["events_sha256"]:
        breaks.append(ExportBreak(None, None, f"{EVENTS} does not match the digest in {MANIFEST}"))
    events, unreadable = _events(data)
    breaks += unreadable
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for line in events:
        by_instance.setdefault(str(line["instance"]), []).append(line)
    described = {str(i["uid"]): i for i in manifest["instances"]}
    for uid in by_instance.keys() - described.keys():
        breaks.append(ExportBreak(uid, None, f"its events are not in {MANIFEST}"))
    for uid, instance in described.items():
        label = instance.get("business_key") or uid
        found = _check_chain(instance, by_instance.get(uid, []))
        if found is not None:
            seq, reason = found
            breaks.append(ExportBreak(label, seq, reason))
    return manifest, breaks, events


def _check_chain(instance: dict[str, Any], lines: list[dict[str, Any]]) -> tuple[int, str] | None:
    expected_prev = str(instance["anchor"])
    expected_seq = int(instance["first_seq"])
    for line in lines:
        seq = int(line["seq"])
        if seq != expected_seq:
            return expected_seq, f"event {expected_seq} is missing (found {seq})"
        if line["prev_hash"] != expected_prev:
            return seq, "its previous-hash does not match the event before it"
        try:
            recomputed = rehash(chained_line(line))
        except ValueError as exc:  # a value no event can hold, such as NaN
            return seq, f"its content cannot be hashed ({exc}): it was changed"
        if recomputed != line["hash"]:
            return seq, "its content does not match its hash (it was changed)"
        expected_prev = line["hash"]
        expected_seq += 1
    if expected_seq - 1 != int(instance["last_seq"]):
        return expected_seq, f"the manifest lists {instance['last_seq']} as the last event"
    if expected_prev != instance["last_hash"]:
        return int(instance["last_seq"]), "the last event's hash differs from the manifest"
    return None


def chained_line(line: dict[str, Any]) -> ChainedEvent:
    """An exported line as the event it was."""
    return ChainedEvent(
        instance_uid=str(line["instance"]),
        seq=int(line["seq"]),
        at=datetime.fromisoformat(line["at"]),
        actor=line["actor"],
        kind=line["kind"],
        bpmn_id=line["bpmn_id"],
        task_name=line["task_name"],
        task_id=line["task_id"],
        data=line["data"],
        process_id=line["process_id"],
        process_version=int(line["process_version"]),
        state_digest=line["state_digest"],
        prev_hash=line["prev_hash"],
        hash=line["hash"],
    )


def exported_events(folder: Path, uid: str) -> tuple[list[ChainedEvent], list[str]]:
    """One instance's events in an export, oldest first, with what does not hold in the
    export (its digest, or that instance's chain)."""
    manifest, breaks, lines = _checked(folder)
    problems = [str(b) for b in breaks if b.instance is None]
    described = {str(i["uid"]): i for i in manifest["instances"]}
    if uid in described:
        label = described[uid].get("business_key") or uid
        problems += [str(b) for b in breaks if b.instance == label]
    events = [chained_line(line) for line in lines if str(line["instance"]) == uid]
    return events, problems


__all__ = [
    "EVENTS",
    "FORMAT",
    "GENESIS_HASH",
    "MANIFEST",
    "ExportBreak",
    "ExportedInstance",
    "Manifest",
    "chained_line",
    "exported_events",
    "verify_export",
    "write_export",
]
