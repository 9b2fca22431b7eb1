"""Fuzz the offline check of an audit export with damaged and tampered copies.

An export is what an auditor is handed and checks with no database: it may have been
cut short by a full disk, edited by someone covering their tracks, or saved by another
program. Copies are made from a real export by flipping, inserting, deleting and
splicing bytes, and by putting any JSON value in place of a field or a whole line.
`verify_export` (and `exported_events`, which replay reads) then either reports what
does not hold or refuses with an EngineError that has a message; never a traceback.
And any change at all to the events file is caught.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fuzzing import VALUES, budgets, refused_or_done
from hypothesis import given, settings
from hypothesis import strategies as st
from mutants import BYTE_EDITS, _edit_bytes
from support import T0, fixture

from engine import Engine, FixedClock
from engine.audit import EVENTS, MANIFEST, exported_events, verify_export


@dataclass(frozen=True)
class Export:
    events: bytes
    manifest: bytes
    uids: tuple[str, ...]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """A real export: three instances with a few events each."""
    folder = tmp_path_factory.mktemp("export")
    engine = Engine(f"sqlite:///{folder / 'audit.db'}", clock=FixedClock(T0))
    try:
        engine.init()
        engine.deploy(fixture("msg_wait.bpmn"), actor="owner")
        for n in range(3):
            key = f"RMA-{n}"
            engine.start("msg_wait", {"customer": "名前 \u202e"}, business_key=key, actor="ann")
            engine.comment(key, f"note {n}", actor="ann")
        manifest = engine.audit_export(folder / "out", actor="auditor")
    finally:
        engine.db.dispose()
    out = folder / "out"
    uids = tuple(i.uid for i in manifest.instances)
    return Export((out / EVENTS).read_bytes(), (out / MANIFEST).read_bytes(), uids)


#: A line replaced by any JSON text, or one field of a line set to any JSON value.
LINE_EDITS = st.one_of(
    st.tuples(st.just("line"), st.integers(0, 50), VALUES),
    st.tuples(
        st.just("field"),
        st.integers(0, 50),
        st.sampled_from(["instance", "seq", "at", "actor", "kind", "data", "prev_hash", "hash"]),
        VALUES,
    ),
    st.tuples(st.just("drop"), st.integers(0, 50), st.sampled_from(["seq", "at", "hash"])),
)
#: A field of the manifest (or of one of its instances) set to any JSON value, or gone.
MANIFEST_EDITS = st.one_of(
    st.tuples(
        st.just("top"),
        st.sampled_from(["format", "events", "events_sha256", "instances", "since"]),
        st.one_of(VALUES, st.just(KeyError)),
    ),
    st.tuples(
        st.just("instance"),
        st.integers(0, 5),
        st.sampled_from(["uid", "anchor", "first_seq", "last_seq", "last_hash", "business_key"]),
        st.one_of(VALUES, st.just(KeyError)),
    ),
)


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return repr(value).encode("utf-8", "surrogatepass")


def _edit_lines(events: bytes, edit: tuple[Any, ...]) -> bytes:
    lines = events.splitlines(keepends=True)
    kind, at, *rest = edit
    at %= len(lines)
    if kind == "line":
        lines[at] = _dumps(rest[0]) + b"\n"
        return b"".join(lines)
    try:
        line = json.loads(lines[at])
    except (ValueError, RecursionError):
        return events  # an earlier edit made it something else
    if not isinstance(line, dict):
        return events
    if kind == "field":
        line[rest[0]] = rest[1]
    else:
        line.pop(rest[0], None)
    lines[at] = _dumps(line) + b"\n"
    return b"".join(lines)


def _edit_manifest(manifest: bytes, edit: tuple[Any, ...]) -> bytes:
    data = json.loads(manifest)
    if edit[0] == "top":
        where, name, value = data, edit[1], edit[2]
    else:
        instances = data.get("instances")
        listed = isinstance(instances, list) and instances
        where = instances[edit[1] % len(instances)] if listed else None
        if not isinstance(where, dict):
            return manifest  # an earlier edit took the instances away
        name, value = edit[2:]
    if value is KeyError:
        where.pop(name, None)
    else:
        where[name] = value
    return _dumps(data)


def _check(events: bytes, manifest: bytes, uids: tuple[str, ...]) -> bool:
    """Check a copy of the export; whether anything was found not to hold."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / EVENTS).write_bytes(events)
        (folder / MANIFEST).write_bytes(manifest)
        checked, refusal = refused_or_done(lambda: verify_export(folder))
        for uid in uids:  # what replay --export reads
            refused_or_done(partial(exported_events, folder, uid))
    return refusal is not None or bool(checked[1])


def test_the_export_as_written_holds(export: Export) -> None:
    assert not _check(export.events, export.manifest, export.uids)


@budgets
def test_any_change_to_the_events_is_caught_and_none_crashes(
    export: Export, budget: settings
) -> None:
    @budget
    @given(
        st.lists(LINE_EDITS, max_size=2),
        st.lists(BYTE_EDITS, max_size=3),
    )
    def check(lines: list[tuple[Any, ...]], raw: list[tuple[Any, ...]]) -> None:
        events = export.events
        for edit in lines:
            events = _edit_lines(events, edit)
        for edit in raw:
            events = _edit_bytes(events, edit)
        found = _check(events, export.manifest, export.uids)
        assert found == (events != export.events)

    check()


@budgets
def test_a_damaged_manifest_never_crashes(export: Export, budget: settings) -> None:
    @budget
    @given(
        st.lists(MANIFEST_EDITS, max_size=3),
        st.lists(BYTE_EDITS, max_size=2),
    )
    def check(edits: list[tuple[Any, ...]], raw: list[tuple[Any, ...]]) -> None:
        manifest = export.manifest
        for edit in edits:
            manifest = _edit_manifest(manifest, edit)
        for edit in raw:
            manifest = _edit_bytes(manifest, edit)
        found = _check(export.events, manifest, export.uids)
        if _chain_fields(manifest) != _chain_fields(export.manifest):
            assert found, "a manifest with another digest or other chain heads passed"
        elif manifest == export.manifest:
            assert not found

    check()


def _chain_fields(manifest: bytes) -> Any:
    """What the check relies on: the digest and each instance's anchor, numbers and
    hashes (None when the manifest is not an export's at all)."""
    try:
        data = json.loads(manifest)
        return (
            data["format"],
            data["events_sha256"],
            [
                [i[k] for k in ("uid", "anchor", "first_seq", "last_seq", "last_hash")]
                for i in data["instances"]
            ],
        )
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
